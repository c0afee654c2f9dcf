//! An in-memory filter of the invoice index's keys, so that the prefetch before a batch
//! asks RocksDB only about invoices that may already exist: a brand-new invoice (nearly
//! every one posted) is known absent without a lookup.
//!
//! A blocked Bloom filter of fixed size ([`INVOICE_FILTER_BYTES`], whatever the number of
//! invoices: past ~10 M keys it only answers "maybe" more often, which costs what every
//! lookup cost without it). It is filled once, in the background, by a scan of the
//! `invoices` family after the store opens, while the store adds every key it writes from
//! the start; it answers "absent" only once that scan is complete.
//!
//! Why it never calls a stored invoice absent: a key in the index was either there when
//! the scan's iterator was created (the scan adds it before the filter is marked
//! complete) or written after the store opened, through [`super::EventStore::put_invoice`],
//! `put_redeemed_invoice` or `defer_redeemed_invoice` (a large batch's entries, put into
//! its index part after the log part), whose keys are added to the filter before the log
//! part of the batch holding them is committed ([`super::EventStore::commit_log`] adds any
//! the encoder has not). `complete_index_part` adds none: its entries are reversals, and a
//! reversed invoice's key was added when it was redeemed, or was in the index already.
//! Bits are only ever set, never cleared (the index never deletes an entry).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use crate::limits::INVOICE_FILTER_BYTES;

/// Bits set per key, all in one 64-bit word (a blocked Bloom filter: one memory access
/// per lookup or insertion, where a classic one would miss the cache once per bit).
const HASHES: u32 = 3;

/// A key's word and bits in the filter (see [`InvoiceFilter::place_of`]).
#[derive(Clone, Copy, Debug)]
pub struct FilterPlace {
    word: usize,
    bits: u64,
}

pub struct InvoiceFilter {
    words: Box<[AtomicU64]>,
    /// `words.len() - 1`: the word count is a power of two.
    mask: u64,
    complete: AtomicBool,
    stop: AtomicBool,
}

impl InvoiceFilter {
    /// A filter of `bytes` bytes (rounded down to a power of two, at least 8).
    pub fn new(bytes: usize) -> InvoiceFilter {
        let words = (bytes / 8).max(1);
        let words = if words.is_power_of_two() {
            words
        } else {
            words.next_power_of_two() / 2
        };
        InvoiceFilter {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            mask: words as u64 - 1,
            complete: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    /// A 64-bit hash of the key, eight bytes at a time, with a final avalanche (the
    /// filter never leaves memory, so the hash is part of no format).
    fn hash(key: &[u8]) -> u64 {
        let mut hash: u64 = 0x9e37_79b9_7f4a_7c15 ^ (key.len() as u64);
        let mut chunks = key.chunks_exact(8);
        for chunk in &mut chunks {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(chunk);
            hash = (hash ^ u64::from_le_bytes(eight))
                .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                .rotate_left(31);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut eight = [0u8; 8];
            eight[..rest.len()].copy_from_slice(rest);
            hash = (hash ^ u64::from_le_bytes(eight))
                .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                .rotate_left(31);
        }
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }

    /// The word a key lives in (from the hash's high bits) and its bits in that word
    /// (from the low bits, six per bit).
    fn place(&self, key: &[u8]) -> (usize, u64) {
        let hash = InvoiceFilter::hash(key);
        let word = ((hash >> 32) & self.mask) as usize;
        let mut bits = 0u64;
        for index in 0..HASHES {
            bits |= 1u64 << ((hash >> (6 * index)) & 63);
        }
        (word, bits)
    }

    /// Adds an index key.
    pub fn insert(&self, key: &[u8]) {
        let (word, bits) = self.place(key);
        self.words[word].fetch_or(bits, Ordering::Relaxed);
    }

    /// False only if the key is certainly not in the index (the filter is complete and
    /// one of its bits is clear).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let (word, bits) = self.place(key);
        self.words[word].load(Ordering::Relaxed) & bits == bits
    }

    /// [`InvoiceFilter::insert`] of many keys. Setting a word's bits is an atomic
    /// read-modify-write (the background fill may insert at the same time), and each one
    /// on a word not in the CPU's caches stalled the thread for a whole miss to memory
    /// (~3.5% of the server's CPU under load, issue 12). So the words are read first, in
    /// a loop whose loads overlap, and then set, each now in the cache.
    pub fn insert_each(&self, places: &[FilterPlace]) {
        let mut touched = 0u64;
        for place in places {
            touched ^= self.words[place.word].load(Ordering::Relaxed);
        }
        std::hint::black_box(touched);
        for place in places {
            self.words[place.word].fetch_or(place.bits, Ordering::Relaxed);
        }
    }

    /// Where a key's bits live, for [`InvoiceFilter::may_contain_each`] and
    /// [`InvoiceFilter::insert_each`].
    pub fn place_of(&self, key: &[u8]) -> FilterPlace {
        let (word, bits) = self.place(key);
        FilterPlace { word, bits }
    }

    /// [`InvoiceFilter::may_contain`] for many keys at once, one answer per place in
    /// `answers` (cleared first). The filter is megabytes, so nearly every probe misses
    /// the CPU's caches. Probed one key at a time, between the invoice cache's own probes
    /// and the key's hashing, each miss was paid on its own (~4% of the server's CPU
    /// under load, issue 12). Here the places are computed first, then the words are
    /// loaded in a loop of a few instructions whose loads do not depend on each other,
    /// so the CPU keeps many of the misses in flight at once.
    pub fn may_contain_each(
        &self,
        places: impl Iterator<Item = FilterPlace>,
        answers: &mut Vec<bool>,
    ) {
        answers.clear();
        let places: Vec<FilterPlace> = places.collect();
        if !self.complete.load(Ordering::Acquire) {
            answers.resize(places.len(), true);
            return;
        }
        answers.extend(places.iter().map(|place| {
            self.words[place.word].load(Ordering::Relaxed) & place.bits == place.bits
        }));
    }

    /// Marks the filter complete: every key of the index has been inserted.
    pub fn mark_complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Asks a running fill to stop (the store is closing).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_key_is_never_called_absent_and_most_others_are() {
        let filter = InvoiceFilter::new(64 * 1024);
        let keys: Vec<String> = (0..20_000)
            .map(|n| format!("91330100MA2H00001PINV-{n}"))
            .collect();
        for key in &keys {
            filter.insert(key.as_bytes());
        }
        // Before it is complete, it knows nothing.
        assert!(filter.may_contain(b"91330100MA2H00001PNEVER"));
        filter.mark_complete();
        assert!(keys.iter().all(|key| filter.may_contain(key.as_bytes())));
        let false_positives = (0..20_000)
            .filter(|n| filter.may_contain(format!("91330100MA2H00001PNEW-{n}").as_bytes()))
            .count();
        // 26 bits per key, 3 bits in one word: well under 1% expected; 2% would mean a
        // broken hash.
        assert!(false_positives < 400, "{false_positives} of 20,000");
    }

    #[test]
    fn asked_together_it_answers_each_key_as_asked_alone() {
        let filter = InvoiceFilter::new(4 * 1024);
        let inserted: Vec<String> = (0..2_000).map(|n| format!("INV-{n}")).collect();
        for key in &inserted {
            filter.insert(key.as_bytes());
        }
        let asked: Vec<String> = (0..4_000).map(|n| format!("INV-{}", n * 3)).collect();
        let places = || asked.iter().map(|key| filter.place_of(key.as_bytes()));
        let mut answers = vec![false; 3];
        // Not complete: every key may exist, whatever its bits.
        filter.may_contain_each(places(), &mut answers);
        assert_eq!(answers, vec![true; asked.len()]);
        filter.mark_complete();
        filter.may_contain_each(places(), &mut answers);
        let alone: Vec<bool> = asked
            .iter()
            .map(|key| filter.may_contain(key.as_bytes()))
            .collect();
        assert_eq!(answers, alone);
        // Both kinds of answer occur, so the comparison above is not of constants; and
        // every inserted key asked (the multiples of three below 2,000) may exist.
        assert!(answers.iter().any(|may| !may) && answers.iter().any(|may| *may));
        assert!(asked
            .iter()
            .zip(&answers)
            .filter(|(key, _)| inserted.contains(key))
            .all(|(_, may)| *may));
    }

    #[test]
    fn keys_inserted_together_are_never_called_absent() {
        let filter = InvoiceFilter::new(4 * 1024);
        filter.mark_complete();
        let keys: Vec<String> = (0..3_000).map(|n| format!("INV-{n}")).collect();
        let places: Vec<FilterPlace> = keys
            .iter()
            .map(|key| filter.place_of(key.as_bytes()))
            .collect();
        assert!(!keys.iter().all(|key| filter.may_contain(key.as_bytes())));
        filter.insert_each(&places);
        assert!(keys.iter().all(|key| filter.may_contain(key.as_bytes())));
    }

    #[test]
    fn the_size_is_a_power_of_two_of_bits() {
        for bytes in [0, 1, 8, 9, 100, 8 << 20] {
            let filter = InvoiceFilter::new(bytes);
            assert!((filter.mask + 1).is_power_of_two(), "{bytes}");
            assert_eq!(filter.mask + 1, filter.words.len() as u64, "{bytes}");
            assert!(filter.words.len() * 8 <= bytes.max(8), "{bytes}");
        }
    }
}
