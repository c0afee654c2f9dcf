//! [`InvoiceCache`]: the invoices the state machine may consult while it decides.
//!
//! Invoices are the one unbounded collection (millions a year), so they are not part of
//! the projections. Their durable home is the store's invoice index. The state machine
//! stays pure by deciding only on what is in memory, which the cache provides in one of
//! two modes:
//!
//! - **complete** ([`InvoiceCache::complete`]): every invoice ever applied stays, and a
//!   miss means the invoice does not exist. For states that live only in memory (the
//!   given/when/then tests, the state-machine benchmark).
//! - **bounded** ([`InvoiceCache::bounded`]): the durable ledger fills it before each
//!   batch (prefetch, as TigerBeetle does): every invoice the batch names is either put
//!   in with its index entry or marked *known absent*. A lookup of a key that was never
//!   prefetched is a broken promise, and the state machine asserts against it rather than
//!   treat it as "new" and pay a subsidy twice. After the batch the ledger may empty it.
//!
//! The layout: the invoices live in one vector, in the order they became known (a
//! batch's prefetch, then its redemptions), and a hash table of their positions finds
//! them. A batch's own invoices are therefore next to each other in memory, in the order
//! the state machine then reads and fills them (the prefetch marks them, the decision
//! looks them up, the fold fills them in), where a table holding the entries themselves
//! scattered them over all of its buckets. And the room for a bounded cache is set aside
//! once ([`InvoiceCache::clear`] with the ledger's limit plus a batch): neither the vector
//! nor the table grows while the ledger runs, where a table of entries rehashed every one
//! of them into freshly faulted memory at each doubling (the first batches after a start
//! took 2–4× as long). Memory the vector has not reached yet is not touched. Because the
//! state machine then reads a batch's invoices in the order they were put in, a lookup
//! first tries the position after the invoice the fold last filled in, and asks the hash
//! table only when the key is not there.

use std::hash::{BuildHasher, Hash, Hasher};

use super::InvoiceEntry;
use crate::domain::ids::{InvoiceNumber, Uscc};

/// A cached invoice: its key, and its entry or `None` for an invoice known not to exist.
#[derive(Clone, PartialEq, Eq, Debug)]
struct CachedInvoice {
    center: Uscc,
    number: InvoiceNumber,
    slot: Option<InvoiceEntry>,
}

impl CachedInvoice {
    fn has_key(&self, center: &Uscc, number: &InvoiceNumber) -> bool {
        self.center == *center && self.number.as_str() == number.as_str()
    }
}

/// The hash of an invoice key: the center, then the canonical number's text.
fn key_hash(center: &Uscc, number: &InvoiceNumber) -> u64 {
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    center.hash(&mut hasher);
    number.as_str().hash(&mut hasher);
    hasher.finish()
}

/// What a lookup found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InvoiceLookup<'a> {
    Found(&'a InvoiceEntry),
    /// The invoice does not exist (a complete cache's miss, or a prefetched miss).
    Absent,
    /// A bounded cache was not told about this invoice: the caller did not prefetch it.
    NotPrefetched,
}

#[derive(Clone, Default)]
pub struct InvoiceCache {
    /// Every invoice held, in the order it became known. Positions fit in `u32`: a
    /// bounded cache holds at most its limit plus a batch, and the limit's maximum
    /// (`limits::INVOICE_CACHE_MAX`) is far below; a complete cache lives in tests and
    /// the state machine's benchmark.
    invoices: Vec<CachedInvoice>,
    /// Positions in `invoices`, by the hash of their key.
    positions: hashbrown::HashTable<u32>,
    /// The room [`InvoiceCache::clear`] keeps (entries and positions), taken at the
    /// first invoice after it: a cache that is never filled, or not yet, costs no memory.
    room: usize,
    bounded: bool,
    /// The position a lookup tries before the hash table: the one after the invoice the
    /// fold last filled in. The ledger's prefetch puts a batch's new invoices in the
    /// batch's order and the state machine then decides and fills them in the same
    /// order, so the invoice a lookup wants is usually there, next in memory, and the
    /// table's probe (a cache miss more often than not) is skipped. A hint only: a key
    /// is held at one position at most, so a match there is the answer, and anything
    /// else asks the table.
    expected: usize,
}

impl InvoiceCache {
    /// Keeps every invoice; a miss means "does not exist".
    pub fn complete() -> InvoiceCache {
        InvoiceCache::default()
    }

    /// Holds only what was prefetched (and what batches since added).
    pub fn bounded() -> InvoiceCache {
        InvoiceCache {
            bounded: true,
            ..InvoiceCache::default()
        }
    }

    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// The position of an invoice whose key hashes to `hash`, if held.
    fn position(&self, hash: u64, center: &Uscc, number: &InvoiceNumber) -> Option<usize> {
        let invoices = &self.invoices;
        self.positions
            .find(hash, |&position| {
                invoices[position as usize].has_key(center, number)
            })
            .map(|&position| position as usize)
    }

    /// The position of an invoice, trying the expected position first.
    fn find(&self, center: &Uscc, number: &InvoiceNumber) -> Option<usize> {
        if let Some(invoice) = self.invoices.get(self.expected) {
            if invoice.has_key(center, number) {
                return Some(self.expected);
            }
        }
        self.position(key_hash(center, number), center, number)
    }

    /// Appends an invoice that is not held yet and records its position under `hash`.
    fn push(&mut self, hash: u64, invoice: CachedInvoice) {
        let Ok(position) = u32::try_from(self.invoices.len()) else {
            panic!("an invoice cache holds fewer than 2^32 invoices");
        };
        if self.invoices.capacity() == 0 && self.room > 0 {
            // Empty, so nothing is rehashed (the hasher is never called).
            self.invoices.reserve_exact(self.room);
            self.positions.reserve(self.room, |_| 0);
        }
        self.invoices.push(invoice);
        let invoices = &self.invoices;
        self.positions.insert_unique(hash, position, |&held| {
            let held = &invoices[held as usize];
            key_hash(&held.center, &held.number)
        });
    }

    /// Looks an invoice up without building an owned key.
    pub fn lookup(&self, center: &Uscc, number: &InvoiceNumber) -> InvoiceLookup<'_> {
        match self.find(center, number) {
            Some(position) => match &self.invoices[position].slot {
                Some(entry) => InvoiceLookup::Found(entry),
                None => InvoiceLookup::Absent,
            },
            None if self.bounded => InvoiceLookup::NotPrefetched,
            None => InvoiceLookup::Absent,
        }
    }

    /// The entry if known, `None` if absent or not prefetched.
    pub fn get(&self, center: &Uscc, number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        match self.lookup(center, number) {
            InvoiceLookup::Found(entry) => Some(entry),
            InvoiceLookup::Absent | InvoiceLookup::NotPrefetched => None,
        }
    }

    /// True when a lookup of this key would not be [`InvoiceLookup::NotPrefetched`].
    pub fn knows(&self, center: &Uscc, number: &InvoiceNumber) -> bool {
        self.lookup(center, number) != InvoiceLookup::NotPrefetched
    }

    /// Prefetch, first pass: a key already held is left alone (`false`); an unknown key
    /// is marked known absent when `may_exist` says the store cannot hold it (`false`),
    /// else left unknown for the caller to read from the store (`true`). One probe.
    pub fn mark_absent_unless_known(
        &mut self,
        center: &Uscc,
        number: &InvoiceNumber,
        may_exist: impl FnOnce() -> bool,
    ) -> bool {
        let hash = key_hash(center, number);
        if self.position(hash, center, number).is_some() {
            return false;
        }
        if may_exist() {
            return true;
        }
        self.push(
            hash,
            CachedInvoice {
                center: *center,
                number: number.clone(),
                slot: None,
            },
        );
        false
    }

    /// Prefetch: records what the store's index holds for a key (`None`: not there).
    /// A key already in memory is left alone: memory is at least as new as the index.
    pub fn prefetched(&mut self, center: Uscc, number: InvoiceNumber, entry: Option<InvoiceEntry>) {
        let hash = key_hash(&center, &number);
        if self.position(hash, &center, &number).is_none() {
            self.push(
                hash,
                CachedInvoice {
                    center,
                    number,
                    slot: entry,
                },
            );
        }
    }

    /// The fold's insert of a newly redeemed invoice. In a bounded cache the key is
    /// usually there already (prefetched as known absent): the slot is filled in place,
    /// and an owned key is built only for a key not yet held.
    pub(super) fn insert(&mut self, center: Uscc, number: &InvoiceNumber, entry: InvoiceEntry) {
        let position = match self.find(&center, number) {
            Some(position) => {
                self.invoices[position].slot = Some(entry);
                position
            }
            None => {
                self.push(
                    key_hash(&center, number),
                    CachedInvoice {
                        center,
                        number: number.clone(),
                        slot: Some(entry),
                    },
                );
                self.invoices.len() - 1
            }
        };
        // The next invoice decided is most likely the next one prefetched.
        self.expected = position + 1;
    }

    /// The fold's update of an existing invoice (a reversal); absent keys are ignored,
    /// since a bounded cache may not hold an invoice that a replayed event names.
    pub(super) fn update(
        &mut self,
        center: &Uscc,
        number: &InvoiceNumber,
        change: impl FnOnce(&mut InvoiceEntry),
    ) {
        if let Some(position) = self.find(center, number) {
            if let Some(entry) = &mut self.invoices[position].slot {
                change(entry);
            }
        }
    }

    /// Entries held (found and known-absent alike).
    pub fn len(&self) -> usize {
        self.invoices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.invoices.is_empty()
    }

    /// Forgets everything (the ledger's eviction), keeping room for at least `capacity`
    /// entries (at most twice that), so that filling it again up to there never moves
    /// what it holds. The room is address space until entries reach it.
    /// A complete cache cannot forget: it would turn "does not exist" into a lie.
    pub fn clear(&mut self, capacity: usize) {
        assert!(self.bounded, "only a bounded invoice cache may be emptied");
        self.invoices.clear();
        self.positions.clear();
        self.expected = 0;
        let held_capacity = self.invoices.capacity();
        // The table is checked too: grown by doubling (a replay, a complete fill), it
        // may hold fewer positions than the vector holds entries.
        if held_capacity < capacity
            || held_capacity / 2 > capacity
            || self.positions.capacity() < capacity
        {
            // Freed, and taken anew at the next invoice, rather than resized: a
            // reallocation would copy (and so touch) the whole old room although nothing
            // in it is kept.
            self.invoices = Vec::new();
            self.positions = hashbrown::HashTable::new();
        }
        self.room = capacity;
    }

    /// Takes the room [`InvoiceCache::clear`] set aside, and writes every page of it, now
    /// rather than under the first batches that fill it. A page's first write costs a
    /// page fault and the page's zeroing: ~3 µs per 4 KiB page on the machines of issue 12,
    /// a 2 MiB huge page at a time, and in some runs 4–6 ms more for a batch of 8,189
    /// invoices as its entries reached fresh memory (twenty-third round). The ledger calls
    /// this when it opens, before it serves. A cache that holds entries, or has no room
    /// set aside, is left as it is.
    pub fn take_room_now(&mut self) {
        if !self.invoices.is_empty() || self.room == 0 {
            return;
        }
        self.invoices.reserve_exact(self.room);
        self.positions.reserve(self.room, |_| 0);
        // The vector's spare room is written with zeros (no entry is made: the length
        // stays 0), and kept from the optimiser, which may drop writes nothing reads.
        for slot in self.invoices.spare_capacity_mut() {
            *slot = std::mem::MaybeUninit::zeroed();
        }
        std::hint::black_box(self.invoices.spare_capacity_mut());
        // The table's buckets are written by filling it with placeholder positions
        // (distinct hashes, so no probe is long), then emptied; emptying keeps the room.
        let room = u32::try_from(self.room).unwrap_or(u32::MAX);
        let placeholder_hash =
            |position: u32| u64::from(position).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for position in 0..room.min(u32::try_from(self.positions.capacity()).unwrap_or(u32::MAX)) {
            self.positions
                .insert_unique(placeholder_hash(position), position, |&held| {
                    placeholder_hash(held)
                });
        }
        std::hint::black_box(&self.positions);
        self.positions.clear();
    }

    /// Entries the cache has room for without moving what it holds (tests).
    pub fn room_taken(&self) -> usize {
        self.invoices.capacity().min(self.positions.capacity())
    }

    /// Every entry held, in the order it became known (tests and tools).
    pub fn entries(&self) -> impl Iterator<Item = (&Uscc, &InvoiceNumber, &InvoiceEntry)> {
        self.invoices.iter().filter_map(|invoice| {
            invoice
                .slot
                .as_ref()
                .map(|entry| (&invoice.center, &invoice.number, entry))
        })
    }
}

/// Two caches are equal when they hold the same keys with the same slots, whatever the
/// order they learnt them in (as two maps are).
impl PartialEq for InvoiceCache {
    fn eq(&self, other: &InvoiceCache) -> bool {
        self.bounded == other.bounded
            && self.invoices.len() == other.invoices.len()
            && self.invoices.iter().all(|invoice| {
                other
                    .position(
                        key_hash(&invoice.center, &invoice.number),
                        &invoice.center,
                        &invoice.number,
                    )
                    .is_some_and(|position| other.invoices[position].slot == invoice.slot)
            })
    }
}

impl Eq for InvoiceCache {}

impl std::fmt::Debug for InvoiceCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InvoiceCache")
            .field("bounded", &self.bounded)
            .field("invoices", &self.invoices)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::ids::{Date, DeliveryProof, VoucherId};
    use crate::domain::money::Money;

    fn center(index: u64) -> Uscc {
        crate::tooling::population::uscc("91330100MA", index).expect("a valid USCC")
    }

    fn number(index: u64) -> InvoiceNumber {
        InvoiceNumber::parse(&format!("INV-{index:08}")).expect("a valid invoice number")
    }

    fn entry(sequence: u64) -> InvoiceEntry {
        InvoiceEntry {
            voucher: VoucherId::from_u128(u128::from(sequence) + 1),
            amount: Money::from_fen(100 + sequence as i64).expect("an amount"),
            issue_date: Date::from_ymd(2026, 3, 1).expect("a date"),
            delivery_proof: DeliveryProof::parse("proof").expect("a proof"),
            subsidy: Money::from_fen(30).expect("a subsidy"),
            second_subsidy: Money::ZERO,
            sequence,
            reversed_at: None,
        }
    }

    #[test]
    fn the_room_taken_at_open_is_empty_and_filling_it_moves_nothing() {
        let mut cache = InvoiceCache::bounded();
        cache.clear(10_000);
        assert_eq!(
            cache.room_taken(),
            0,
            "a cleared cache takes its room lazily"
        );
        cache.take_room_now();
        let room = cache.room_taken();
        assert!(room >= 10_000, "room {room}");
        // Nothing is held, not even a placeholder position: every key is unknown.
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.entries().count(), 0);
        for index in 0..16 {
            assert_eq!(
                cache.lookup(&center(index), &number(index)),
                InvoiceLookup::NotPrefetched
            );
        }
        let first_entry_at = |cache: &InvoiceCache| cache.invoices.as_ptr();
        let before = first_entry_at(&cache);
        for index in 0..10_000 {
            assert!(!cache.mark_absent_unless_known(&center(1), &number(index), || false));
        }
        assert_eq!(
            first_entry_at(&cache),
            before,
            "filling the room moved the entries"
        );
        assert_eq!(cache.room_taken(), room, "filling the room grew the cache");
        for index in 0..10_000 {
            assert_eq!(
                cache.lookup(&center(1), &number(index)),
                InvoiceLookup::Absent
            );
        }
        // Emptied to the same room, it keeps it.
        cache.clear(10_000);
        assert_eq!(cache.room_taken(), room);
    }

    // A test's measuring tool from the process's memory module, not a dependency of the
    // cache itself (the domain does not use `storage`).
    use crate::storage::heap::page_faults_of_this_thread;

    #[test]
    fn filling_the_room_taken_at_open_touches_no_new_memory() {
        const ROOM: usize = 100_000;
        let keys: Vec<(Uscc, InvoiceNumber)> = (0..ROOM as u64)
            .map(|index| (center(1), number(index)))
            .collect();
        let mut cache = InvoiceCache::bounded();
        cache.clear(ROOM);
        cache.take_room_now();
        let Some(before) = page_faults_of_this_thread() else {
            eprintln!("no /proc/thread-self/stat here: page faults not counted");
            return;
        };
        for (center, number) in &keys {
            cache.mark_absent_unless_known(center, number, || false);
        }
        let faults = page_faults_of_this_thread().unwrap_or(before) - before;
        // ~18 MB of entries: thousands of faults (or one per 2 MiB huge page) had the
        // room not been written when it was taken.
        assert!(
            faults <= 4,
            "{faults} page faults while filling the room taken"
        );
        assert_eq!(cache.len(), ROOM);
    }

    #[test]
    fn a_cache_holding_entries_or_without_room_is_left_as_it_is() {
        let mut cache = InvoiceCache::bounded();
        cache.take_room_now();
        assert_eq!(cache.room_taken(), 0, "no room was set aside");
        cache.clear(1_000);
        cache.mark_absent_unless_known(&center(1), &number(1), || false);
        let capacity = cache.invoices.capacity();
        cache.take_room_now();
        assert_eq!(cache.invoices.capacity(), capacity);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.lookup(&center(1), &number(1)), InvoiceLookup::Absent);
    }

    #[test]
    fn a_bounded_cache_tells_known_absent_from_not_prefetched() {
        let mut cache = InvoiceCache::bounded();
        let (a, b) = ((center(1), number(1)), (center(1), number(2)));
        assert_eq!(cache.lookup(&a.0, &a.1), InvoiceLookup::NotPrefetched);
        // Ruled out by the filter: marked absent, nothing to read.
        assert!(!cache.mark_absent_unless_known(&a.0, &a.1, || false));
        assert_eq!(cache.lookup(&a.0, &a.1), InvoiceLookup::Absent);
        // Maybe in the store: left unknown for the caller to read.
        assert!(cache.mark_absent_unless_known(&b.0, &b.1, || true));
        assert_eq!(cache.lookup(&b.0, &b.1), InvoiceLookup::NotPrefetched);
        cache.prefetched(b.0, b.1.clone(), Some(entry(7)));
        assert_eq!(cache.lookup(&b.0, &b.1), InvoiceLookup::Found(&entry(7)));
        // A key held is left alone, whatever the filter or the store say later.
        assert!(!cache.mark_absent_unless_known(&b.0, &b.1, || true));
        cache.prefetched(b.0, b.1.clone(), None);
        assert_eq!(cache.get(&b.0, &b.1), Some(&entry(7)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_complete_cache_answers_absent_for_what_it_never_saw() {
        let mut cache = InvoiceCache::complete();
        assert_eq!(cache.lookup(&center(1), &number(1)), InvoiceLookup::Absent);
        cache.insert(center(1), &number(1), entry(1));
        assert_eq!(cache.get(&center(1), &number(1)), Some(&entry(1)));
        assert!(cache.knows(&center(2), &number(1)));
    }

    #[test]
    fn the_fold_fills_a_prefetched_slot_in_place_and_updates_it() {
        let mut cache = InvoiceCache::bounded();
        cache.prefetched(center(3), number(9), None);
        cache.insert(center(3), &number(9), entry(11));
        assert_eq!(
            cache.len(),
            1,
            "the absent slot was filled, not a second one made"
        );
        cache.update(&center(3), &number(9), |held| held.reversed_at = Some(12));
        assert_eq!(
            cache
                .get(&center(3), &number(9))
                .and_then(|held| held.reversed_at),
            Some(12)
        );
        // An update of a key not held is ignored (a bounded cache may not hold it).
        cache.update(&center(3), &number(10), |held| held.reversed_at = Some(13));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_same_number_at_two_centers_is_two_invoices() {
        let mut cache = InvoiceCache::complete();
        cache.insert(center(1), &number(5), entry(1));
        cache.insert(center(2), &number(5), entry(2));
        assert_eq!(cache.get(&center(1), &number(5)), Some(&entry(1)));
        assert_eq!(cache.get(&center(2), &number(5)), Some(&entry(2)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn clearing_forgets_everything_and_keeps_its_room() {
        let mut cache = InvoiceCache::bounded();
        cache.clear(64);
        for index in 0..70 {
            cache.insert(center(1), &number(index), entry(index));
        }
        assert_eq!(cache.len(), 70);
        assert!((0..70).all(|index| cache.get(&center(1), &number(index)) == Some(&entry(index))));
        cache.clear(64);
        assert!(cache.is_empty());
        assert_eq!(
            cache.lookup(&center(1), &number(3)),
            InvoiceLookup::NotPrefetched
        );
        // Filled again: the room it kept (grown once past 64) is reused, not replaced:
        // the same allocation, and a table that never rehashes up to the room.
        let room = cache.invoices.capacity();
        let allocation = cache.invoices.as_ptr();
        assert!(room >= 64, "room {room}");
        assert!(cache.positions.capacity() >= 64);
        for index in 1..64 {
            cache.insert(center(1), &number(index), entry(index));
        }
        assert_eq!(cache.invoices.capacity(), room);
        assert_eq!(cache.invoices.as_ptr(), allocation);
        // A much smaller room is taken anew at the next invoice.
        cache.clear(4);
        cache.insert(center(1), &number(1), entry(1));
        assert_eq!(cache.invoices.capacity(), 4);
    }

    #[test]
    #[should_panic(expected = "only a bounded invoice cache may be emptied")]
    fn a_complete_cache_refuses_to_forget() {
        InvoiceCache::complete().clear(8);
    }

    #[test]
    fn equality_does_not_depend_on_the_order_invoices_became_known() {
        let (mut first, mut second) = (InvoiceCache::bounded(), InvoiceCache::bounded());
        first.prefetched(center(1), number(1), None);
        first.insert(center(1), &number(2), entry(2));
        second.insert(center(1), &number(2), entry(2));
        second.prefetched(center(1), number(1), None);
        assert_eq!(first, second);
        second.insert(center(1), &number(1), entry(1));
        assert_ne!(first, second, "an absent slot differs from a found one");
        assert_ne!(InvoiceCache::bounded(), InvoiceCache::complete());
        // As many invoices, not the same ones.
        let (mut third, mut fourth) = (InvoiceCache::bounded(), InvoiceCache::bounded());
        third.prefetched(center(1), number(1), None);
        fourth.prefetched(center(1), number(2), None);
        assert_ne!(third, fourth);
    }

    #[test]
    fn entries_come_in_the_order_they_became_known_without_the_absent_ones() {
        let mut cache = InvoiceCache::bounded();
        cache.insert(center(1), &number(3), entry(3));
        cache.prefetched(center(1), number(1), None);
        cache.insert(center(2), &number(2), entry(2));
        let numbers: Vec<u64> = cache.entries().map(|(_, _, held)| held.sequence).collect();
        assert_eq!(numbers, [3, 2]);
    }

    /// What a cache is told, in any order: the model is a map of keys to slots.
    #[derive(Clone, Debug)]
    enum Told {
        Mark {
            center: u64,
            number: u64,
            may_exist: bool,
        },
        Prefetched {
            center: u64,
            number: u64,
            found: Option<u64>,
        },
        Insert {
            center: u64,
            number: u64,
            sequence: u64,
        },
        Reverse {
            center: u64,
            number: u64,
            at: u64,
        },
        Clear {
            room: usize,
        },
        Lookup {
            center: u64,
            number: u64,
        },
    }

    fn told() -> impl Strategy<Value = Told> {
        // Few keys, so the same invoice comes back often.
        let key = (0..3u64, 0..40u64);
        prop_oneof![
            (key.clone(), any::<bool>()).prop_map(|((center, number), may_exist)| Told::Mark {
                center,
                number,
                may_exist
            }),
            (key.clone(), proptest::option::of(0..1_000u64)).prop_map(
                |((center, number), found)| Told::Prefetched {
                    center,
                    number,
                    found
                }
            ),
            (key.clone(), 0..1_000u64).prop_map(|((center, number), sequence)| Told::Insert {
                center,
                number,
                sequence
            }),
            (key, 0..1_000u64).prop_map(|((center, number), at)| Told::Reverse {
                center,
                number,
                at
            }),
            (0..64usize).prop_map(|room| Told::Clear { room }),
            (0..3u64, 0..40u64).prop_map(|(center, number)| Told::Lookup { center, number }),
        ]
    }

    type Model = HashMap<(Uscc, InvoiceNumber), Option<InvoiceEntry>>;

    /// What a bounded cache holding `model` answers for `key`.
    fn expected_lookup<'a>(model: &'a Model, key: &(Uscc, InvoiceNumber)) -> InvoiceLookup<'a> {
        match model.get(key) {
            Some(Some(held)) => InvoiceLookup::Found(held),
            Some(None) => InvoiceLookup::Absent,
            None => InvoiceLookup::NotPrefetched,
        }
    }

    #[test]
    fn a_batch_decided_in_prefetch_order_is_found_where_expected_and_others_still_found() {
        let mut cache = InvoiceCache::bounded();
        cache.clear(64);
        // An invoice from an earlier batch, then a batch's three new invoices prefetched.
        cache.insert(center(1), &number(100), entry(100));
        for index in 1..=3 {
            assert!(!cache.mark_absent_unless_known(&center(1), &number(index), || false));
        }
        // Decided in order: each is where the fold's last fill points.
        assert_eq!(cache.expected, 1);
        assert_eq!(cache.lookup(&center(1), &number(1)), InvoiceLookup::Absent);
        cache.insert(center(1), &number(1), entry(1));
        assert_eq!(cache.expected, 2);
        // A lookup elsewhere (a duplicate of the earlier batch's) is answered by the table
        // and moves nothing.
        assert_eq!(
            cache.lookup(&center(1), &number(100)),
            InvoiceLookup::Found(&entry(100))
        );
        assert_eq!(cache.expected, 2);
        // The second is rejected (never filled): the third is found through the table and
        // the expectation follows it.
        assert_eq!(cache.lookup(&center(1), &number(3)), InvoiceLookup::Absent);
        cache.insert(center(1), &number(3), entry(3));
        assert_eq!(cache.expected, 4);
        assert_eq!(cache.get(&center(1), &number(3)), Some(&entry(3)));
        assert_eq!(cache.lookup(&center(1), &number(2)), InvoiceLookup::Absent);
        assert_eq!(cache.len(), 4);
    }

    proptest! {
        /// The cache answers every lookup as a map of its keys would, however it was
        /// filled, emptied and refilled (its room outgrown or not).
        #[test]
        fn the_cache_answers_as_a_map_would(steps in proptest::collection::vec(told(), 1..300)) {
            let mut cache = InvoiceCache::bounded();
            let mut model: Model = HashMap::new();
            for step in steps {
                match step {
                    Told::Mark { center: center_index, number: number_index, may_exist } => {
                        let key = (center(center_index), number(number_index));
                        let must_read = cache.mark_absent_unless_known(&key.0, &key.1, || may_exist);
                        let held = model.contains_key(&key);
                        prop_assert_eq!(must_read, !held && may_exist);
                        if !held && !may_exist {
                            model.insert(key, None);
                        }
                    }
                    Told::Prefetched { center: center_index, number: number_index, found } => {
                        let key = (center(center_index), number(number_index));
                        cache.prefetched(key.0, key.1.clone(), found.map(entry));
                        model.entry(key).or_insert(found.map(entry));
                    }
                    Told::Insert { center: center_index, number: number_index, sequence } => {
                        let key = (center(center_index), number(number_index));
                        cache.insert(key.0, &key.1, entry(sequence));
                        model.insert(key, Some(entry(sequence)));
                    }
                    Told::Reverse { center: center_index, number: number_index, at } => {
                        let key = (center(center_index), number(number_index));
                        cache.update(&key.0, &key.1, |held| held.reversed_at = Some(at));
                        if let Some(Some(held)) = model.get_mut(&key) {
                            held.reversed_at = Some(at);
                        }
                    }
                    Told::Clear { room } => {
                        cache.clear(room);
                        model.clear();
                    }
                    Told::Lookup { center: center_index, number: number_index } => {
                        let key = (center(center_index), number(number_index));
                        prop_assert_eq!(cache.lookup(&key.0, &key.1), expected_lookup(&model, &key));
                    }
                }
                prop_assert_eq!(cache.len(), model.len());
            }
            for center_index in 0..3 {
                for number_index in 0..40 {
                    let key = (center(center_index), number(number_index));
                    prop_assert_eq!(cache.lookup(&key.0, &key.1), expected_lookup(&model, &key));
                }
            }
            let mut held: Vec<u64> = cache.entries().map(|(_, _, entry)| entry.sequence).collect();
            let mut modelled: Vec<u64> = model.values().flatten().map(|entry| entry.sequence).collect();
            held.sort_unstable();
            modelled.sort_unstable();
            prop_assert_eq!(held, modelled);
        }
    }
}
