//! [`DenseTable`]: records dense in a vector, found through a small map from key to
//! position. The state's vouchers and enterprise accounts live in one each.
//!
//! A redemption's first read of its voucher was the state machine's largest single cost,
//! and of its enterprise's account the next: a hash map holding the records themselves
//! (~400 bytes a voucher) can only be searched by reading the bucket's key, which is the
//! record's own cache line, so each look-up waited on memory (~15% and ~10% of the
//! state-machine benchmark's samples at 20,000 vouchers over 5,000 enterprises, issue
//! 12), and reading a batch's vouchers ahead with plain loads overlapped nothing. Here
//! the index holds a position and 32 bits of the key's hash (8 bytes), so it stays near
//! the CPU, and [`DenseTable::prefetch`] asks for a coming redemption's record without
//! waiting for it while the redemptions before it are decided. The index is a table of
//! our own rather than a hash map so that the slot a search starts from can be
//! prefetched too, earlier ([`DenseTable::prefetch_position`]): with a map from key to
//! position, the map's own misses were what was left (issue 12).
//!
//! Records are never removed (a released or expired voucher keeps its record, an
//! enterprise stays registered), so a position, once given, names the same record for
//! the table's life. Iteration is in the order the keys were first inserted; nothing may
//! be emitted in that order without sorting (a state restored from an image inserted in
//! key order). Equality is a map's: the same records under the same keys, whatever the
//! order of insertion.

use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

/// Records by key, dense in insertion order.
#[derive(Clone, Debug)]
pub struct DenseTable<K, V> {
    /// Each key's position in `entries`; exactly one per entry.
    positions: PositionIndex,
    /// The keys and their records, in the order the keys were first inserted.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for DenseTable<K, V> {
    fn default() -> DenseTable<K, V> {
        DenseTable {
            positions: PositionIndex::default(),
            entries: Vec::new(),
        }
    }
}

impl<K: Copy + Eq + Hash, V> DenseTable<K, V> {
    pub fn new() -> DenseTable<K, V> {
        DenseTable::default()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let position = self.position_of(key)?;
        self.entries.get(position).map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let position = self.position_of(key)?;
        self.entries.get_mut(position).map(|(_, value)| value)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.position_of(key).is_some()
    }

    /// Inserts `value` under `key`, replacing a record already held under it in its place.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(position) = self.position_of(&key) {
            self.entries[position].1 = value;
            return;
        }
        // Four billion records is far past any registry (and the snapshot's counts); a
        // position that did not fit would name another record (and u32::MAX marks an
        // empty slot).
        let position = u32::try_from(self.entries.len())
            .ok()
            .filter(|position| *position != EMPTY_SLOT)
            .unwrap_or_else(|| panic!("a dense table is full at {} records", EMPTY_SLOT));
        self.entries.push((key, value));
        let entries = &self.entries;
        self.positions.insert(hash_of(&key), position, |at| {
            hash_of(&entries[at as usize].0)
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The records in the order their keys were first inserted (sort before emitting).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    /// Asks the CPU to bring the slot of the position index where `key`'s search starts
    /// into its caches, without waiting for it; no effect on what the table holds or
    /// answers. A batch calls it a few places before [`DenseTable::prefetch`] for the
    /// same key, so that finding the record's position then does not wait on memory.
    #[inline]
    pub fn prefetch_position(&self, key: &K) {
        if let Some(slot) = self.positions.home_slot(hash_of(key)) {
            prefetch_lines(slot);
        }
    }

    /// Asks the CPU to bring the record `key` names into its caches, without waiting for
    /// it; no effect on what the table holds or answers. A batch calls it for a
    /// redemption a few places ahead of the one it decides. It reads only the position
    /// index (a record whose slot only looks like `key`'s, one time in four billion, is
    /// prefetched in vain: a hint may be wrong).
    #[inline]
    pub fn prefetch(&self, key: &K) {
        let Some(position) = self.positions.probable_position(hash_of(key)) else {
            return;
        };
        if let Some(entry) = self.entries.get(position as usize) {
            prefetch_lines(entry);
        }
    }

    fn position_of(&self, key: &K) -> Option<usize> {
        self.positions
            .find(hash_of(key), |position| {
                self.entries
                    .get(position as usize)
                    .is_some_and(|(stored, _)| stored == key)
            })
            .map(|position| position as usize)
    }
}

fn hash_of<K: Hash>(key: &K) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// A slot of the position index that holds no position.
const EMPTY_SLOT: u32 = u32::MAX;

/// The position index's smallest number of slots once it holds anything.
const POSITION_INDEX_SLOTS_MIN: usize = 16;

/// A slot: a position in the entries and the low 32 bits of its key's hash, so that a
/// search reads a record's key only when the hash's bits agree.
#[derive(Clone, Copy, Debug)]
struct Slot {
    hash_bits: u32,
    position: u32,
}

const EMPTY: Slot = Slot {
    hash_bits: 0,
    position: EMPTY_SLOT,
};

/// Each key's position in the entries: open addressing with linear probing over a
/// power-of-two number of slots, at most half of them used, never removing (the table
/// never removes a record). Why not a hash map from key to position: a search's first
/// slot is known from the key's hash alone, so a batch can prefetch it before it looks
/// the key up (`DenseTable::prefetch_position`); a map hides where it will look. Slots
/// are 8 bytes (20,000 vouchers: 256 KiB, half a core's L2 cache here), and the keys stay
/// in the entries.
#[derive(Clone, Debug, Default)]
struct PositionIndex {
    slots: Vec<Slot>,
    used: usize,
}

impl PositionIndex {
    /// The slot where the search for `hash` starts; None while the index is empty.
    fn home_slot(&self, hash: u64) -> Option<&Slot> {
        let index = self.home_index(hash)?;
        self.slots.get(index)
    }

    fn home_index(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(home_index_among(self.slots.len(), hash))
    }

    /// The position of the first slot on `hash`'s probe sequence whose bits agree,
    /// without checking the key: for prefetching.
    fn probable_position(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// The position whose key is the one `is_key` recognises, searched from `hash`'s
    /// slot; None when no slot on the way holds it. Ends: at most half the slots are
    /// used, so the probe meets an empty one.
    fn find(&self, hash: u64, is_key: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut index = self.home_index(hash)?;
        loop {
            let slot = self.slots[index];
            if slot.position == EMPTY_SLOT {
                return None;
            }
            if slot.hash_bits == hash as u32 && is_key(slot.position) {
                return Some(slot.position);
            }
            index = (index + 1) & mask;
        }
    }

    /// Adds `position` for a key of `hash` (not held yet: the caller searched first).
    /// `hash_at` gives the hash of the key at a position, to move every slot when the
    /// index doubles.
    fn insert(&mut self, hash: u64, position: u32, hash_at: impl Fn(u32) -> u64) {
        if (self.used + 1) * 2 > self.slots.len() {
            let slots = (self.slots.len() * 2).max(POSITION_INDEX_SLOTS_MIN);
            let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots]);
            self.used = 0;
            for slot in old.into_iter().filter(|slot| slot.position != EMPTY_SLOT) {
                self.place(hash_at(slot.position), slot.position);
            }
        }
        self.place(hash, position);
    }

    fn place(&mut self, hash: u64, position: u32) {
        let mask = self.slots.len() - 1;
        let mut index = home_index_among(self.slots.len(), hash);
        while self.slots[index].position != EMPTY_SLOT {
            index = (index + 1) & mask;
        }
        self.slots[index] = Slot {
            hash_bits: hash as u32,
            position,
        };
        self.used += 1;
    }
}

/// The slot where the search for `hash` starts among `slots` slots (a power of two, at
/// least 2). The hash's high bits choose the slot (FxHash mixes them best); its low bits
/// are the slot's check.
fn home_index_among(slots: usize, hash: u64) -> usize {
    (hash >> (64 - slots.trailing_zeros())) as usize
}

impl<K: Copy + Eq + Hash, V: PartialEq> PartialEq for DenseTable<K, V> {
    fn eq(&self, other: &DenseTable<K, V>) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl<K: Copy + Eq + Hash, V: Eq> Eq for DenseTable<K, V> {}

impl<K: Copy + Eq + Hash, V> FromIterator<(K, V)> for DenseTable<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> DenseTable<K, V> {
        let mut table = DenseTable::new();
        for (key, value) in entries {
            table.insert(key, value);
        }
        table
    }
}

/// The size of a cache line on the machines this runs on (x86-64, and 64 is the common
/// line of ARM servers too); a wrong guess only prefetches less or more.
const CACHE_LINE_BYTES: usize = 64;

/// Prefetches every cache line `value` spans, for reading.
#[inline]
pub(crate) fn prefetch_lines<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = (value as *const T).cast::<i8>();
        let mut offset = 0;
        while offset < std::mem::size_of::<T>() {
            // SAFETY: a prefetch is a hint: it never faults and reads nothing the program
            // sees, whatever the address; this one is inside `value`, a live reference.
            // SSE, which `prefetcht0` belongs to, is part of every x86-64 CPU.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
            offset += CACHE_LINE_BYTES;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::ids::VoucherId;
    use crate::domain::state::Voucher;
    use crate::domain::{Envelope, LedgerState, Timestamp};
    use crate::tooling::population::Population;

    fn id(n: u64) -> VoucherId {
        VoucherId::from_u128(u128::from(n) + 1)
    }

    /// A voucher as the state machine approves one, under id `n` (the nil id is taken
    /// by none), with `invoice_count` set: a field to tell copies apart.
    fn voucher_with(n: u64, invoice_count: u64) -> Voucher {
        static APPROVED: std::sync::OnceLock<Voucher> = std::sync::OnceLock::new();
        let approved = APPROVED.get_or_init(|| {
            let population = Population::bench(1, 1, 1).expect("population");
            let mut state = LedgerState::new();
            let mut sink = Vec::new();
            for command in population.commands() {
                state
                    .execute(&Envelope::new(Timestamp(1), command), &mut sink)
                    .expect("seed accepted");
            }
            state.vouchers_sorted()[0].clone()
        });
        let mut voucher = approved.clone();
        voucher.terms.voucher = id(n);
        voucher.invoice_count = invoice_count as u32;
        voucher
    }

    #[test]
    fn a_voucher_inserted_is_found_by_its_id_and_changed_in_place() {
        // Given a table with two vouchers,
        let mut table: DenseTable<VoucherId, Voucher> = DenseTable::new();
        table.insert(id(1), voucher_with(1, 100));
        table.insert(id(2), voucher_with(2, 200));
        // when one is changed through `get_mut`,
        let first = id(1);
        if let Some(voucher) = table.get_mut(&first) {
            voucher.invoice_count = 7;
        }
        // then it is found changed, the other untouched, and an unknown id is absent.
        assert_eq!(
            table.get(&first).map(|voucher| voucher.invoice_count),
            Some(7)
        );
        let second = id(2);
        assert_eq!(table.get(&second), Some(&voucher_with(2, 200)));
        assert_eq!(table.get(&id(3)), None);
        assert_eq!(table.len(), 2);
        // A prefetch changes nothing.
        table.prefetch(&first);
        table.prefetch(&id(3));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn tables_with_the_same_vouchers_are_equal_whatever_the_order_of_insertion() {
        let forward: DenseTable<VoucherId, Voucher> =
            (1..=3).map(|n| (id(n), voucher_with(n, 10 * n))).collect();
        let backward: DenseTable<VoucherId, Voucher> = (1..=3)
            .rev()
            .map(|n| (id(n), voucher_with(n, 10 * n)))
            .collect();
        assert_eq!(forward, backward);
        let other: DenseTable<VoucherId, Voucher> =
            (1..=3).map(|n| (id(n), voucher_with(n, 11 * n))).collect();
        assert_ne!(forward, other);
        let fewer: DenseTable<VoucherId, Voucher> =
            (1..=2).map(|n| (id(n), voucher_with(n, 10 * n))).collect();
        assert_ne!(forward, fewer);
        assert_ne!(fewer, forward);
    }

    #[test]
    fn an_empty_table_finds_nothing_and_its_prefetches_do_nothing() {
        let table: DenseTable<u64, u64> = DenseTable::new();
        table.prefetch_position(&1);
        table.prefetch(&1);
        assert_eq!(table.get(&1), None);
        assert!(!table.contains_key(&0));
    }

    proptest! {
        /// Many keys, so the position index doubles several times and searches run
        /// along probe chains: every key held is found at its record, every other key
        /// is absent, and the prefetches (hints) never panic.
        #[test]
        fn many_keys_are_found_through_the_position_index(
            keys in proptest::collection::vec(0u64..100_000, 0..3_000),
            probes in proptest::collection::vec(0u64..100_000, 0..200),
        ) {
            let mut table: DenseTable<u64, u64> = DenseTable::new();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            for (step, key) in keys.iter().enumerate() {
                table.insert(*key, step as u64);
                model.insert(*key, step as u64);
                table.prefetch_position(key);
                table.prefetch(key);
            }
            prop_assert_eq!(table.len(), model.len());
            for (key, value) in &model {
                prop_assert_eq!(table.get(key), Some(value));
            }
            for key in probes {
                prop_assert_eq!(table.get(&key), model.get(&key));
                prop_assert_eq!(table.contains_key(&key), model.contains_key(&key));
            }
        }

        /// Inserts (new keys and replacements) and in-place changes agree with a map.
        #[test]
        fn the_table_answers_as_a_map_does(
            steps in proptest::collection::vec((0u64..12, 0u64..1_000, any::<bool>()), 0..80)
        ) {
            let mut table: DenseTable<VoucherId, Voucher> = DenseTable::new();
            let mut model: BTreeMap<VoucherId, Voucher> = BTreeMap::new();
            for (n, count, replace) in steps {
                let voucher = voucher_with(n, count);
                let id = voucher.terms.voucher;
                if replace {
                    table.insert(id, voucher.clone());
                    model.insert(id, voucher);
                } else {
                    if let Some(held) = table.get_mut(&id) {
                        held.invoice_count = count as u32;
                    }
                    if let Some(held) = model.get_mut(&id) {
                        held.invoice_count = count as u32;
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                for n in 0..12 {
                    let id = voucher_with(n, 0).terms.voucher;
                    prop_assert_eq!(table.get(&id), model.get(&id));
                }
            }
            let mut listed: Vec<&Voucher> = table.values().collect();
            listed.sort_by_key(|voucher| voucher.terms.voucher);
            prop_assert_eq!(listed, model.values().collect::<Vec<_>>());
        }
    }
}
