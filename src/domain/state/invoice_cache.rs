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

use std::hash::{Hash, Hasher};

use super::InvoiceEntry;
use crate::domain::ids::{InvoiceNumber, Uscc};

/// The center of [`InvoiceCache::preallocate`]'s placeholder keys (a valid code).
const PLACEHOLDER_CENTER: &str = "91330100MA0000001F";

/// A cached slot: the entry, or `None` for an invoice known not to exist.
type Slot = Option<InvoiceEntry>;

type InvoiceMap = hashbrown::HashMap<(Uscc, InvoiceNumber), Slot, rustc_hash::FxBuildHasher>;

/// A borrowed invoice key. It hashes exactly as the owned `(Uscc, InvoiceNumber)` tuple
/// does (field by field, the number as a `str`), which `Equivalent` requires.
struct InvoiceKeyRef<'a> {
    center: &'a Uscc,
    number: &'a InvoiceNumber,
}

impl Hash for InvoiceKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.center.hash(state);
        self.number.as_str().hash(state);
    }
}

impl hashbrown::Equivalent<(Uscc, InvoiceNumber)> for InvoiceKeyRef<'_> {
    fn equivalent(&self, key: &(Uscc, InvoiceNumber)) -> bool {
        *self.center == key.0 && self.number.as_str() == key.1.as_str()
    }
}

/// The owned key of a borrowed one, built only when a slot is inserted.
impl From<&InvoiceKeyRef<'_>> for (Uscc, InvoiceNumber) {
    fn from(key: &InvoiceKeyRef<'_>) -> (Uscc, InvoiceNumber) {
        (*key.center, key.number.clone())
    }
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

#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct InvoiceCache {
    map: InvoiceMap,
    bounded: bool,
}

impl InvoiceCache {
    /// Keeps every invoice; a miss means "does not exist".
    pub fn complete() -> InvoiceCache {
        InvoiceCache::default()
    }

    /// Holds only what was prefetched (and what batches since added).
    pub fn bounded() -> InvoiceCache {
        InvoiceCache {
            map: InvoiceMap::default(),
            bounded: true,
        }
    }

    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// Looks an invoice up without building an owned key.
    pub fn lookup(&self, center: &Uscc, number: &InvoiceNumber) -> InvoiceLookup<'_> {
        let key = InvoiceKeyRef { center, number };
        match self.map.get(&key) {
            Some(Some(entry)) => InvoiceLookup::Found(entry),
            Some(None) => InvoiceLookup::Absent,
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
        let key = InvoiceKeyRef { center, number };
        match self.map.entry_ref(&key) {
            hashbrown::hash_map::EntryRef::Occupied(_) => false,
            hashbrown::hash_map::EntryRef::Vacant(vacant) => {
                if may_exist() {
                    true
                } else {
                    vacant.insert(None);
                    false
                }
            }
        }
    }

    /// Prefetch: records what the store's index holds for a key (`None`: not there).
    /// A key already in memory is left alone: memory is at least as new as the index.
    pub fn prefetched(&mut self, center: Uscc, number: InvoiceNumber, entry: Option<InvoiceEntry>) {
        self.map.entry((center, number)).or_insert(entry);
    }

    /// The fold's insert of a newly redeemed invoice, with one lookup. In a bounded
    /// cache the key is usually there already (prefetched as known absent): the slot is
    /// filled in place, and an owned key is built only for a key not yet held.
    pub(super) fn insert(&mut self, center: Uscc, number: &InvoiceNumber, entry: InvoiceEntry) {
        let key = InvoiceKeyRef {
            center: &center,
            number,
        };
        *self.map.entry_ref(&key).or_insert(None) = Some(entry);
    }

    /// The fold's update of an existing invoice (a reversal); absent keys are ignored,
    /// since a bounded cache may not hold an invoice that a replayed event names.
    pub(super) fn update(
        &mut self,
        center: &Uscc,
        number: &InvoiceNumber,
        change: impl FnOnce(&mut InvoiceEntry),
    ) {
        let key = InvoiceKeyRef { center, number };
        if let Some(Some(entry)) = self.map.get_mut(&key) {
            change(entry);
        }
    }

    /// Entries held (found and known-absent alike).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Makes room for `capacity` invoices and touches all of it now, while nothing waits.
    ///
    /// A bounded cache fills to its limit within its first batches after a start. Each
    /// time the table grew then, the batch paid for a rehash into a new table whose
    /// pages the kernel handed out one fault at a time as they were first written: the
    /// first, second, fourth and eighth batches of 8,189 after a start took 50–100 ms
    /// instead of ~25 (issue 12). [`InvoiceCache::clear`] keeps the room, so a table
    /// made large enough here never grows while the ledger serves.
    ///
    /// Only an empty cache is touched (by filling it with placeholder keys and emptying
    /// it again); a cache holding entries only reserves the room.
    pub fn preallocate(&mut self, capacity: usize) {
        use std::fmt::Write as _;
        self.map.reserve(capacity.saturating_sub(self.map.len()));
        if !self.map.is_empty() {
            return;
        }
        let room = self.map.capacity();
        // Any valid code will do: the placeholders are gone before the method returns.
        let Ok(center) = Uscc::parse("center", PLACEHOLDER_CENTER) else {
            return;
        };
        let mut number = String::new();
        for index in 0..capacity {
            number.clear();
            // Writing into a String cannot fail.
            let _ = write!(number, "{index}");
            if let Ok(number) = InvoiceNumber::from_stored(&number) {
                self.map.insert((center, number), None);
            }
        }
        self.map.clear();
        debug_assert_eq!(
            room,
            self.map.capacity(),
            "touching the room never grows it"
        );
    }

    /// Invoices the table has room for without growing.
    pub fn room(&self) -> usize {
        self.map.capacity()
    }

    /// Forgets everything (the ledger's eviction), keeping room for `capacity` invoices
    /// (the table shrinks only if it had room for more). A complete cache cannot forget:
    /// it would turn "does not exist" into a lie.
    pub fn clear(&mut self, capacity: usize) {
        assert!(self.bounded, "only a bounded invoice cache may be emptied");
        self.map.clear();
        self.map.shrink_to(capacity);
    }

    /// Every entry held, in no particular order (tests and tools).
    pub fn entries(&self) -> impl Iterator<Item = (&Uscc, &InvoiceNumber, &InvoiceEntry)> {
        self.map.iter().filter_map(|((center, number), slot)| {
            slot.as_ref().map(|entry| (center, number, entry))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(index: usize) -> InvoiceNumber {
        InvoiceNumber::parse(&format!("INV-{index}")).expect("invoice number")
    }

    #[test]
    fn a_preallocated_cache_is_empty_and_filling_it_to_the_capacity_asked_never_grows_it() {
        let center = Uscc::parse("center", PLACEHOLDER_CENTER).expect("a valid code");
        let mut cache = InvoiceCache::bounded();
        cache.preallocate(10_000);
        let room = cache.room();
        assert!(room >= 10_000, "room {room}");
        // The placeholders are gone: nothing is known, not even a placeholder's key.
        assert_eq!(cache.entries().count(), 0);
        let placeholder = InvoiceNumber::from_stored("7").expect("number");
        assert_eq!(
            cache.lookup(&center, &placeholder),
            InvoiceLookup::NotPrefetched
        );
        for index in 0..10_000 {
            assert!(!cache.mark_absent_unless_known(&center, &number(index), || false));
        }
        assert_eq!(
            cache.room(),
            room,
            "filling to the capacity asked grew the table"
        );
        // Emptying to a limit below the room keeps the room.
        cache.clear(10_000 - 1_000);
        assert_eq!(cache.room(), room);
        assert_eq!(
            cache.lookup(&center, &number(3)),
            InvoiceLookup::NotPrefetched
        );
    }

    #[test]
    fn a_cache_holding_entries_only_reserves_and_keeps_them() {
        let center = Uscc::parse("center", PLACEHOLDER_CENTER).expect("a valid code");
        let mut cache = InvoiceCache::bounded();
        cache.mark_absent_unless_known(&center, &number(1), || false);
        cache.preallocate(5_000);
        assert!(cache.room() >= 5_000);
        assert_eq!(cache.lookup(&center, &number(1)), InvoiceLookup::Absent);
        assert_eq!(
            cache.lookup(&center, &number(2)),
            InvoiceLookup::NotPrefetched
        );
    }
}
