//! [`DenseTable`]: records dense in a vector, found through a small map from key to
//! position. The state's vouchers and enterprise accounts live in one each.
//!
//! A redemption's first read of its voucher was the state machine's largest single cost,
//! and of its enterprise's account the next: a hash map holding the records themselves
//! (~400 bytes a voucher) can only be searched by reading the bucket's key, which is the
//! record's own cache line, so each look-up waited on memory (~15% and ~10% of the
//! state-machine benchmark's samples at 20,000 vouchers over 5,000 enterprises, issue
//! 12), and reading a batch's vouchers ahead with plain loads overlapped nothing. Here
//! the map's entries are a key and a position (~20-24 bytes), so the map stays near the
//! CPU, and [`DenseTable::prefetch`] asks for a coming redemption's record without
//! waiting for it while the redemptions before it are decided.
//!
//! Records are never removed (a released or expired voucher keeps its record, an
//! enterprise stays registered), so a position, once given, names the same record for
//! the table's life. Iteration is in the order the keys were first inserted; nothing may
//! be emitted in that order without sorting (a state restored from an image inserted in
//! key order). Equality is a map's: the same records under the same keys, whatever the
//! order of insertion.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Records by key, dense in insertion order.
#[derive(Clone, Debug)]
pub struct DenseTable<K, V> {
    /// Each key's position in `entries`; exactly one per entry.
    positions: FxHashMap<K, u32>,
    /// The keys and their records, in the order the keys were first inserted.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for DenseTable<K, V> {
    fn default() -> DenseTable<K, V> {
        DenseTable {
            positions: FxHashMap::default(),
            entries: Vec::new(),
        }
    }
}

impl<K: Copy + Eq + Hash, V> DenseTable<K, V> {
    pub fn new() -> DenseTable<K, V> {
        DenseTable::default()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let position = *self.positions.get(key)?;
        self.entries.get(position as usize).map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let position = *self.positions.get(key)?;
        self.entries
            .get_mut(position as usize)
            .map(|(_, value)| value)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.positions.contains_key(key)
    }

    /// Inserts `value` under `key`, replacing a record already held under it in its place.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(&position) = self.positions.get(&key) {
            self.entries[position as usize].1 = value;
            return;
        }
        // Four billion records is far past any registry (and the snapshot's counts); a
        // position that did not fit would name another record.
        let position = u32::try_from(self.entries.len())
            .unwrap_or_else(|_| panic!("a dense table is full at {} records", u32::MAX));
        self.positions.insert(key, position);
        self.entries.push((key, value));
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

    /// Asks the CPU to bring the record `key` names into its caches, without waiting for
    /// it; no effect on what the table holds or answers. A batch calls it for a
    /// redemption a few places ahead of the one it decides.
    #[inline]
    pub fn prefetch(&self, key: &K) {
        let Some(&position) = self.positions.get(key) else {
            return;
        };
        if let Some(entry) = self.entries.get(position as usize) {
            prefetch_lines(entry);
        }
    }
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
fn prefetch_lines<T>(value: &T) {
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

    proptest! {
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
