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

    /// Forgets everything (the ledger's eviction), keeping `capacity` slots allocated.
    /// A complete cache cannot forget: it would turn "does not exist" into a lie.
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
