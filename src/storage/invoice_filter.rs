//! An in-memory filter of the invoice index's keys, so that the prefetch before a batch
//! asks RocksDB only about invoices that may already exist: a brand-new invoice (nearly
//! every one posted) is known absent without a lookup.
//!
//! A blocked Bloom filter ([`InvoiceFilter`]), sized at open for the keys the index holds
//! (at least [`INVOICE_FILTER_BYTES`]). It is filled once, in the background, by a scan of
//! the `invoices` family after the store opens, while the store adds every key it writes
//! from the start; it answers "absent" only once that scan is complete. When the index
//! outgrows it (fewer than [`INVOICE_FILTER_GROW_BELOW_BITS_PER_KEY`] bits per key), the
//! writer starts one four times as large ([`GrowingInvoiceFilter`]): every key written
//! from then on goes into both, a background scan of the index fills the new one, and it
//! replaces the old once that scan is complete. A full filter only answers "maybe" more
//! often, which costs what every lookup cost without it, so the growth stops at
//! [`INVOICE_FILTER_BYTES_MAX`].
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
//!
//! Why a grown filter never calls a stored invoice absent either: the writer starts it
//! between batches ([`GrowingInvoiceFilter::begin_growth`]), after the previous batch's
//! index part is written and before the next batch puts any key. So every key added to the
//! old filter alone is in the index by then, and the scan that fills the new filter, whose
//! iterator is created after that, reads it; every key put later is added to both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

pub use crate::limits::{
    INVOICE_FILTER_BYTES, INVOICE_FILTER_BYTES_MAX, INVOICE_FILTER_GROWN_BITS_PER_KEY,
    INVOICE_FILTER_GROW_BELOW_BITS_PER_KEY, INVOICE_FILTER_OPEN_BITS_PER_KEY,
};

/// Bits set per key, all in one 64-bit word (a blocked Bloom filter: one memory access
/// per lookup or insertion, where a classic one would miss the cache once per bit).
const HASHES: u32 = 3;

/// A key's hash, from which each filter takes its word and bits (see
/// [`InvoiceFilter::place_of`]): the same place serves a filter and the larger one that
/// replaces it.
#[derive(Clone, Copy, Debug)]
pub struct FilterPlace {
    hash: u64,
}

pub struct InvoiceFilter {
    words: Box<[AtomicU64]>,
    /// `words.len() - 1`: the word count is a power of two.
    mask: u64,
    complete: AtomicBool,
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
        }
    }

    /// The filter's size in bytes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// Writes one word of every memory page the filter spans, leaving every bit as it is.
    /// The words are allocated zeroed, so the allocator may hand over pages the process
    /// has never written: the first batch's probes would then fault each page in (read,
    /// ~2,000 pages of an 8 MiB filter) and its insertions fault each again (written),
    /// ~10 ms of the first batch on the machines of issue 12 (twenty-fourth round).
    pub fn write_every_page(&self) {
        const WORDS_PER_PAGE: usize = 4096 / 8;
        // Adding nothing changes no bit and is safe beside a scan or a batch setting bits
        // at the same time. The nothing is hidden from the compiler: an add or OR of a
        // known 0 is an idempotent read-modify-write, which LLVM turns into a plain load
        // (and drops when unused), and a load maps the shared zero page, not a page of
        // the filter's own.
        for word in self.words.iter().step_by(WORDS_PER_PAGE) {
            word.fetch_add(std::hint::black_box(0), Ordering::Relaxed);
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
        self.word_and_bits(InvoiceFilter::hash(key))
    }

    /// The word and bits of a key with `hash` in this filter.
    fn word_and_bits(&self, hash: u64) -> (usize, u64) {
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
            let (word, _) = self.word_and_bits(place.hash);
            touched ^= self.words[word].load(Ordering::Relaxed);
        }
        std::hint::black_box(touched);
        for place in places {
            let (word, bits) = self.word_and_bits(place.hash);
            self.words[word].fetch_or(bits, Ordering::Relaxed);
        }
    }

    /// Where a key's bits live, for [`InvoiceFilter::may_contain_each`] and
    /// [`InvoiceFilter::insert_each`].
    pub fn place_of(&self, key: &[u8]) -> FilterPlace {
        FilterPlace {
            hash: InvoiceFilter::hash(key),
        }
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
            let (word, bits) = self.word_and_bits(place.hash);
            self.words[word].load(Ordering::Relaxed) & bits == bits
        }));
    }

    /// Marks the filter complete: every key of the index has been inserted.
    pub fn mark_complete(&self) {
        self.complete.store(true, Ordering::Release);
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// The bytes of a filter with at least `bits_per_key` bits for each of `keys` keys: a
/// power of two, within `least` and `most` bytes.
pub fn filter_bytes_for(keys: u64, bits_per_key: u64, least: usize, most: usize) -> usize {
    let wanted = keys.saturating_mul(bits_per_key) / 8;
    let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
    wanted
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .clamp(least, most.max(least))
}

/// The filter in use, and the larger one being filled to replace it (see the module doc).
struct FilterGeneration {
    current: Arc<InvoiceFilter>,
    next: Option<Arc<InvoiceFilter>>,
}

/// The store's invoice filter: an [`InvoiceFilter`] that the writer replaces with a larger
/// one when the index outgrows it.
pub struct GrowingInvoiceFilter {
    generation: RwLock<FilterGeneration>,
    /// Keys in the index, as far as the filter knows: those the first scan found, and every
    /// one added since (a key the scan found and a write added is counted twice; only
    /// during the first scan, and only the growth's timing depends on it).
    keys: AtomicU64,
    /// The size a filter is first made with (never smaller).
    least_bytes: usize,
    /// The largest a filter is made.
    most_bytes: usize,
    stop: AtomicBool,
}

impl GrowingInvoiceFilter {
    /// A filter for `keys` keys at [`INVOICE_FILTER_OPEN_BITS_PER_KEY`] (see
    /// [`filter_bytes_for`]), between `least_bytes` and `most_bytes`; it grows up to
    /// `most_bytes`.
    pub fn for_keys(keys: u64, least_bytes: usize, most_bytes: usize) -> GrowingInvoiceFilter {
        let bytes = filter_bytes_for(
            keys,
            INVOICE_FILTER_OPEN_BITS_PER_KEY,
            least_bytes,
            most_bytes,
        );
        GrowingInvoiceFilter {
            generation: RwLock::new(FilterGeneration {
                current: Arc::new(InvoiceFilter::new(bytes)),
                next: None,
            }),
            keys: AtomicU64::new(0),
            least_bytes,
            most_bytes,
            stop: AtomicBool::new(false),
        }
    }

    /// The filter in use (the first scan fills it; see [`GrowingInvoiceFilter::note_scanned`]).
    pub fn current(&self) -> Arc<InvoiceFilter> {
        Arc::clone(&self.generation.read().current)
    }

    /// [`InvoiceFilter::write_every_page`] of the filter in use.
    pub fn write_every_page(&self) {
        self.current().write_every_page();
    }

    /// The size of the filter in use, in bytes.
    pub fn bytes(&self) -> usize {
        self.generation.read().current.bytes()
    }

    /// Whether a larger filter is being filled.
    pub fn growing(&self) -> bool {
        self.generation.read().next.is_some()
    }

    /// Where a key's bits live, in this filter and any that replaces it.
    pub fn place_of(&self, key: &[u8]) -> FilterPlace {
        FilterPlace {
            hash: InvoiceFilter::hash(key),
        }
    }

    /// Adds keys to the filter in use and to the one being filled, if any.
    pub fn insert_each(&self, places: &[FilterPlace]) {
        let generation = self.generation.read();
        generation.current.insert_each(places);
        if let Some(next) = &generation.next {
            next.insert_each(places);
        }
        self.keys.fetch_add(places.len() as u64, Ordering::Relaxed);
    }

    /// See [`InvoiceFilter::may_contain`] (of the filter in use).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.generation.read().current.may_contain(key)
    }

    /// See [`InvoiceFilter::may_contain_each`] (of the filter in use).
    pub fn may_contain_each(
        &self,
        places: impl Iterator<Item = FilterPlace>,
        answers: &mut Vec<bool>,
    ) {
        let current = self.current();
        current.may_contain_each(places, answers);
    }

    /// Whether the filter in use is complete.
    pub fn is_complete(&self) -> bool {
        self.generation.read().current.is_complete()
    }

    /// Counts the keys the first scan found (it filled [`GrowingInvoiceFilter::current`]).
    pub fn note_scanned(&self, keys: u64) {
        self.keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// Whether [`GrowingInvoiceFilter::begin_growth`] would start a larger filter now.
    pub fn growth_due(&self) -> bool {
        let keys = self.keys.load(Ordering::Relaxed);
        self.growth_due_in(&self.generation.read(), keys)
    }

    fn growth_due_in(&self, generation: &FilterGeneration, keys: u64) -> bool {
        let current_bytes = generation.current.bytes();
        generation.next.is_none()
            && generation.current.is_complete()
            && keys.saturating_mul(INVOICE_FILTER_GROW_BELOW_BITS_PER_KEY)
                > current_bytes as u64 * 8
            && current_bytes < self.most_bytes
            && !self.stopping()
    }

    /// If the filter in use is complete, none is being filled, and the index has outgrown
    /// it, makes a larger one (for [`INVOICE_FILTER_GROWN_BITS_PER_KEY`], and at least
    /// twice the size), which every key added from now on goes into too, and returns it
    /// to be filled by a scan of the index. Only the writer calls this, between batches
    /// (see the module doc).
    pub fn begin_growth(&self) -> Option<Arc<InvoiceFilter>> {
        // Asked before every batch: nearly always no, answered under the read lock that
        // the batch's own probes take too.
        if !self.growth_due() {
            return None;
        }
        let keys = self.keys.load(Ordering::Relaxed);
        let mut generation = self.generation.write();
        if !self.growth_due_in(&generation, keys) {
            return None;
        }
        let current_bytes = generation.current.bytes();
        let bytes = filter_bytes_for(
            keys,
            INVOICE_FILTER_GROWN_BITS_PER_KEY,
            self.least_bytes,
            self.most_bytes,
        )
        .max(current_bytes.saturating_mul(2))
        .min(self.most_bytes);
        let next = Arc::new(InvoiceFilter::new(bytes));
        generation.next = Some(Arc::clone(&next));
        Some(next)
    }

    /// Puts the filter `grown`, now filled by a complete scan of the index, in use.
    pub fn finish_growth(&self, grown: &Arc<InvoiceFilter>) {
        let mut generation = self.generation.write();
        if generation
            .next
            .as_ref()
            .is_some_and(|next| Arc::ptr_eq(next, grown))
        {
            grown.mark_complete();
            generation.current = Arc::clone(grown);
            generation.next = None;
        }
    }

    /// Drops the filter being filled (its scan failed or was stopped); the one in use
    /// stays, and a later batch may start another.
    pub fn abandon_growth(&self) {
        self.generation.write().next = None;
    }

    /// Asks a running scan to stop (the store is closing).
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

    /// A key the growth tests add.
    fn growth_key(number: usize) -> String {
        format!("91330100MA2H00001PINV-{number}")
    }

    fn places_of(
        filter: &GrowingInvoiceFilter,
        numbers: std::ops::Range<usize>,
    ) -> Vec<FilterPlace> {
        numbers
            .map(|number| filter.place_of(growth_key(number).as_bytes()))
            .collect()
    }

    /// How many of 5,000 keys never added `filter` may contain.
    fn passed_unknown_keys(filter: &GrowingInvoiceFilter) -> usize {
        (0..5_000)
            .filter(|number| filter.may_contain(format!("NEVER-{number}").as_bytes()))
            .count()
    }

    #[test]
    fn a_grown_filter_holds_every_key_added_before_and_while_it_was_filled() {
        // Given a filter of 512 bytes (room for 682 keys at 6 bits a key), filled by the
        // scan of an empty index.
        let growing = GrowingInvoiceFilter::for_keys(0, 512, 64 * 1024);
        assert_eq!(growing.bytes(), 512);
        growing.current().mark_complete();
        // When 600 keys are added it keeps its size; at 800 it starts a larger one, for
        // 16 bits a key (1,600 bytes, rounded up to 2,048).
        growing.insert_each(&places_of(&growing, 0..600));
        assert!(
            growing.begin_growth().is_none(),
            "600 keys fit in 512 bytes"
        );
        growing.insert_each(&places_of(&growing, 600..800));
        let grown = growing.begin_growth().expect("800 keys outgrow 512 bytes");
        assert_eq!(grown.bytes(), 2_048);
        assert!(growing.growing());
        assert!(
            growing.begin_growth().is_none(),
            "one larger filter at a time"
        );
        // Keys added while it is filled go into both; the scan adds what the index held
        // when it began (the first 800).
        growing.insert_each(&places_of(&growing, 800..900));
        for number in 0..800 {
            grown.insert(growth_key(number).as_bytes());
        }
        let passed_before = passed_unknown_keys(&growing);
        assert_eq!(
            growing.bytes(),
            512,
            "the smaller filter answers until the scan ends"
        );
        growing.finish_growth(&grown);
        // Then the larger one is in use, knows every key added, and passes fewer unknown
        // ones on to the index.
        assert_eq!(growing.bytes(), 2_048);
        assert!(!growing.growing());
        assert!((0..900).all(|number| growing.may_contain(growth_key(number).as_bytes())));
        let passed_after = passed_unknown_keys(&growing);
        assert!(
            passed_after < passed_before,
            "unknown keys passed: {passed_before} of 5,000 at 512 bytes, {passed_after} at 2,048"
        );
    }

    #[test]
    fn a_filter_grows_only_once_complete_and_never_past_its_largest() {
        let growing = GrowingInvoiceFilter::for_keys(0, 512, 1_024);
        growing.insert_each(&places_of(&growing, 0..2_000));
        // Not complete (its first scan is running): no growth, whatever the keys.
        assert!(growing.begin_growth().is_none());
        growing.current().mark_complete();
        let grown = growing
            .begin_growth()
            .expect("2,000 keys outgrow 512 bytes");
        assert_eq!(grown.bytes(), 1_024, "capped at the largest");
        // A scan that fails or is stopped leaves the smaller filter in use.
        growing.abandon_growth();
        assert_eq!(growing.bytes(), 512);
        let grown = growing.begin_growth().expect("still outgrown");
        for number in 0..2_000 {
            grown.insert(growth_key(number).as_bytes());
        }
        growing.finish_growth(&grown);
        assert_eq!(growing.bytes(), 1_024);
        growing.insert_each(&places_of(&growing, 2_000..4_000));
        assert!(growing.begin_growth().is_none(), "at its largest already");
        // And a filter stopped (the store closing) starts none.
        let stopped = GrowingInvoiceFilter::for_keys(0, 512, 64 * 1_024);
        stopped.current().mark_complete();
        stopped.insert_each(&places_of(&stopped, 0..2_000));
        stopped.stop();
        assert!(stopped.begin_growth().is_none());
    }

    #[test]
    fn a_filter_is_first_made_for_the_keys_the_index_holds() {
        let mib = 1 << 20;
        // 8 bits a key, rounded up to a power of two, within the least and the most.
        assert_eq!(filter_bytes_for(0, 8, 8 * mib, 256 * mib), 8 * mib);
        assert_eq!(
            filter_bytes_for(10_000_000, 8, 8 * mib, 256 * mib),
            16 * mib
        );
        assert_eq!(
            filter_bytes_for(30_000_000, 8, 8 * mib, 256 * mib),
            32 * mib
        );
        assert_eq!(
            filter_bytes_for(11_200_000, 16, 8 * mib, 256 * mib),
            32 * mib
        );
        assert_eq!(filter_bytes_for(u64::MAX, 8, 8 * mib, 256 * mib), 256 * mib);
        let sized = GrowingInvoiceFilter::for_keys(10_000_000, 8 * mib, 256 * mib);
        assert_eq!(sized.bytes(), 16 * mib);
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
