//! The RocksDB store: the append-only event log, the invoice idempotency index and the
//! projection snapshots, each in its own column family.
//!
//! | column family | key                               | value                          |
//! |---------------|-----------------------------------|--------------------------------|
//! | `events`      | first sequence, u64 big-endian    | a log block of records (`block.rs`); before format 3, one framed record (`record.rs`) |
//! | `invoices`    | center USCC (18 B) + invoice no.  | `VLIX` entry (`index.rs`)      |
//! | `invoices`    | 0xFF `index_through` (after every invoice key) | `VLIW` watermark of the index (`index.rs`; format 6 on) |
//! | `snapshots`   | sequence, u64 big-endian          | `VLSN` frame (`snapshot.rs`)   |
//! | `invoice_order` | center + year + first sequence (`index.rs`) | `VLIO` group: a center-year's redemptions of one batch; before format 4, one bare invoice number |
//! | `checkpoints` | sequence, u64 big-endian          | `VLCP` signed checkpoint (`checkpoint.rs`) |
//! | `default`     | `format`                          | `VLDB` + version               |
//! | `default`     | `index_through`                   | `VLIW` watermark of the index (`index.rs`; format 5 only) |
//!
//! A batch is written in two parts: the log part (records, invoice order) with one fsync
//! (when `sync` is on), which is the group commit the answers wait for, then the index
//! part (the invoice index's entries and its watermark) after the answers, before the
//! next batch, without the write-ahead log (`index_lag.rs`: readers wait for it; an open
//! derives what a crash took).
//! The batch's records go into a few log blocks (one key each), not one key per record;
//! reads find the block holding a sequence by seeking for the key at or before it. The
//! store never interprets events (except `index_lag.rs` and `migrate.rs`, which derive
//! index entries from them); the ledger (`crate::ledger`) decides what to write.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::block::{
    finish_block, segment_last_sequence, segment_records, start_block, LOG_BLOCK_BYTES_TARGET,
};
use super::checkpoint::Checkpoint;
use super::index::{
    append_invoice_key, decode_index_entry, decode_index_watermark, decode_invoice_order_value,
    encode_index_entry, encode_index_fields, encode_index_watermark, encode_invoice_order_group,
    invoice_key, invoice_key_into, invoice_order_key, parse_invoice_key, parse_invoice_order_key,
    IndexFields, INDEX_WATERMARK_KEY,
};
use super::index_lag::{derive_index_tail, IndexGate, IndexTail, PendingIndexWrite};
use super::invoice_filter::{
    FilterPlace, GrowingInvoiceFilter, InvoiceFilter, INVOICE_FILTER_BYTES,
    INVOICE_FILTER_BYTES_MAX,
};
use super::record::{encode_record_frame, ChainHash, RecordError};
use super::sm3_lanes::{fill_chain_hashes, Midstate, RecordSpan};
use super::snapshot::{decode_snapshot, encode_snapshot, StoredSnapshot};
use crate::domain::{
    InvoiceEntry, InvoiceNumber, InvoiceRedeemed, ProgrammeYear, SequencedEvent, StateImage, Uscc,
};
use crate::limits::{
    BLOCK_CACHE_BYTES_DEFAULT, INDEX_CATCH_UP_WRITE_ENTRIES, INDEX_WRITE_WAIT_MAX,
    WAL_RETAINED_BYTES_MAX,
};

pub const DATABASE_MAGIC: [u8; 4] = *b"VLDB";
/// Version 2 added the `invoice_order` family; version 3 writes the log in blocks
/// (`block.rs`; the bare records of a version 1 or 2 log stay as they are and are read
/// beside them) and adds the `checkpoints` family. An older directory is migrated when it
/// is first opened for writing (see `migrate.rs`) and read as it is by `verify`. The bump
/// keeps builds that cannot read blocks or do not know the new family from opening it.
/// Version 4 writes the invoice order as one `VLIO` group per center, year and batch
/// (`index.rs`; the single entries of a version 2 or 3 directory are read beside them);
/// nothing is rebuilt, the bump only keeps older builds, which would take a group for a
/// corrupt invoice number, from opening it.
/// Version 5 writes the invoice index just after the log (`index_lag.rs`), so the index may
/// lag the log by one batch after a crash; the `index_through` watermark says how far it
/// goes and an open derives the rest from the log. The bump keeps older builds, which
/// would trust an index that lags, from opening it; migrating a version 4 directory only
/// writes the watermark (its index was written with its log).
/// Version 6 writes the invoice index without RocksDB's write-ahead log (`index_lag.rs`):
/// the index is derived from the log, so writing it to the write-ahead log as well bought
/// nothing an open cannot derive again. Its watermark therefore moves into the `invoices`
/// family ([`INDEX_WATERMARK_KEY`]), whose writes RocksDB persists in order, so that the
/// watermark a crash leaves never names entries the crash took. The bump keeps older
/// builds, which would read the stale watermark of the `default` family, from opening
/// it; migrating a version 5 directory moves the watermark.
pub const DATABASE_FORMAT_VERSION: u16 = 6;
pub const DATABASE_FORMAT_OLDEST_READ: u16 = 1;

const EVENTS: &str = "events";
const INVOICES: &str = "invoices";
const SNAPSHOTS: &str = "snapshots";
const INVOICE_ORDER: &str = "invoice_order";
const CHECKPOINTS: &str = "checkpoints";
/// Every column family this build knows, in the order they are opened.
const FAMILIES: [&str; 5] = [EVENTS, INVOICES, SNAPSHOTS, INVOICE_ORDER, CHECKPOINTS];
const FORMAT_KEY: &[u8] = b"format";
/// The invoice index's watermark in a format 5 directory (family `default`): see
/// `index_lag.rs`. Format 6 keeps it in the `invoices` family ([`INDEX_WATERMARK_KEY`]).
const FORMAT_5_INDEX_WATERMARK_KEY: &[u8] = b"index_through";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("data directory {path}: {reason}")]
    Format { path: String, reason: String },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("the ledger stopped after a failed write and must be reopened: {0}")]
    Poisoned(String),
}

/// An invoice order group read back: its key and its (sequence, number) entries.
type DecodedOrderGroup = (Vec<u8>, Vec<(u64, InvoiceNumber)>);

/// Writes accumulated for one group commit: the log part and the index part (see the
/// module doc).
#[derive(Default)]
pub struct CommitBatch {
    /// Log blocks, the invoice order, and anything else written with the fsync.
    batch: WriteBatch,
    /// Invoice index entries, written after the log part.
    index: WriteBatch,
    /// The last sequence the log part holds.
    last_sequence: Option<u64>,
    scratch: Vec<u8>,
    /// A key being built (RocksDB copies it into the batch).
    key: Vec<u8>,
    payload_scratch: Vec<u8>,
    block: Vec<u8>,
    /// Where the records of the open block lie in it, for their chain hashes.
    record_spans: Vec<RecordSpan>,
    /// Scratch of the chain hashing (`sm3_lanes::fill_chain_hashes`).
    midstates: Vec<Midstate>,
    /// Index keys put in the batch and not yet added to the invoice filter. They are
    /// added together (see [`EventStore::add_to_invoice_filter`]), and always before the
    /// batch is committed.
    filter_pending: Vec<FilterPlace>,
    /// The index part is built apart ([`IndexPart`]) and supplied after the log part is
    /// written ([`EventStore::complete_index_part`]), so the log part holds the gate shut
    /// even though this batch's own index part is empty.
    index_follows: bool,
}

/// The most a RocksDB write batch adds to a put's key and value: its tag (1 byte) and
/// the family's id, the key's length and the value's length (varint32s, 5 bytes at most
/// each).
const WRITE_BATCH_PUT_OVERHEAD_MAX: usize = 16;

/// A write batch's header (sequence and count).
const WRITE_BATCH_HEADER_BYTES: usize = 12;

/// Room an index part keeps beyond its entries for what the writer puts after them: the
/// watermark, and the batch's reversals (a few at most, usually none). More grows the
/// buffer, which is only slower.
const INDEX_PART_TAIL_BYTES: usize = 4_096;

/// The room to reserve for a write like the last one, `previous_bytes` long: an eighth
/// more. Reserved exactly, a batch a few bytes larger than the last (longer invoice
/// numbers, a watermark) made RocksDB's buffer grow: a copy of the whole buffer into
/// freshly faulted memory, ~5% of the writer's samples on the gRPC path (issue 12).
/// Room not written to is address space only.
fn room_for_write_like(previous_bytes: usize) -> usize {
    previous_bytes + previous_bytes / 8
}

impl CommitBatch {
    /// A batch with room for writes like a last one of `bytes` ([`room_for_write_like`]),
    /// so RocksDB's buffer is not grown (and copied, and its fresh pages faulted in)
    /// while a large batch fills.
    pub fn with_capacity(bytes: usize) -> CommitBatch {
        CommitBatch::with_capacities(bytes, 0)
    }

    /// A batch with room for a log part like a last one of `log_bytes` and an index part
    /// like a last one of `index_bytes` ([`room_for_write_like`]).
    pub fn with_capacities(log_bytes: usize, index_bytes: usize) -> CommitBatch {
        CommitBatch {
            batch: WriteBatch::with_capacity_bytes(room_for_write_like(log_bytes)),
            index: WriteBatch::with_capacity_bytes(room_for_write_like(index_bytes)),
            ..CommitBatch::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.index.is_empty()
    }

    /// Fills in the chain hashes of the open block's `count` records, following
    /// `previous`, and its record count; returns the chain hash after its last record.
    fn seal_block(&mut self, previous: ChainHash, count: u32) -> ChainHash {
        debug_assert_eq!(self.record_spans.len(), count as usize);
        let head = fill_chain_hashes(
            &mut self.block,
            &self.record_spans,
            previous,
            &mut self.midstates,
        );
        self.record_spans.clear();
        finish_block(&mut self.block, count);
        head
    }

    /// The bytes the log part holds so far.
    pub fn size_in_bytes(&self) -> usize {
        self.batch.size_in_bytes()
    }

    /// The bytes the index part holds so far.
    pub fn index_size_in_bytes(&self) -> usize {
        self.index.size_in_bytes()
    }

    /// Says that this batch's index entries are built apart, as an [`IndexPart`], and
    /// supplied to its [`PendingIndexWrite`] after the log part is written
    /// ([`EventStore::complete_index_part`]).
    pub fn expect_index_part(&mut self) {
        self.index_follows = true;
    }

    fn note_sequence(&mut self, sequence: u64) {
        self.last_sequence = Some(
            self.last_sequence
                .map_or(sequence, |last| last.max(sequence)),
        );
    }
}

/// A large batch's redemption index entries, encoded (key, then value) beside its records
/// but put into a RocksDB batch only later ([`EventStore::index_part_of`]). The encoder
/// does that after it hands the batch's log part to the writer, so sorting and copying
/// the entries overlaps the log part's fsync instead of delaying it (issue 12).
#[derive(Default)]
pub struct DeferredIndexEntries {
    /// Each entry's key followed by its value, entry after entry.
    bytes: Vec<u8>,
    entries: Vec<DeferredIndexEntry>,
    /// A value being encoded.
    scratch: Vec<u8>,
}

#[derive(Clone, Copy)]
struct DeferredIndexEntry {
    start: usize,
    key_end: usize,
    end: usize,
}

/// The room an index part of `entries` of `deferred`'s entries reserves: every entry's
/// key and value with RocksDB's most per put, and the tail the writer puts after them.
fn index_part_room(deferred: &DeferredIndexEntries, entries: usize) -> usize {
    WRITE_BATCH_HEADER_BYTES
        + deferred.bytes.len()
        + entries * WRITE_BATCH_PUT_OVERHEAD_MAX
        + INDEX_PART_TAIL_BYTES
}

impl DeferredIndexEntries {
    /// Forgets every entry, keeping the room for the next batch's.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Whether no entry is waiting to be put.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, entry: DeferredIndexEntry) -> &[u8] {
        &self.bytes[entry.start..entry.key_end]
    }
}

/// A batch's invoice index entries in key order, built apart from its log part (see
/// [`DeferredIndexEntries`]); written by [`EventStore::complete_index_part`] and
/// [`EventStore::commit_index`].
pub struct IndexPart {
    batch: WriteBatch,
    entries: usize,
}

impl IndexPart {
    /// Whether it holds no entry (a batch that redeemed nothing).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

pub struct EventStore {
    db: DB,
    sync: bool,
    path: String,
    /// The data directory's format version (older ones are read; see `migrate.rs`).
    format_version: u16,
    /// Which invoice keys may be in the index (complete once `fill_invoice_filter` ran;
    /// made larger as the index grows).
    invoice_filter: GrowingInvoiceFilter,
    /// Shut while a batch's index part is pending (readers of the index wait).
    index_gate: std::sync::Arc<IndexGate>,
    /// A read-only store's view of the entries the index lacks after a crash, derived
    /// from the log when it opened (a writable open writes them instead).
    index_tail: Option<IndexTail>,
    /// Why a read-only open could not derive those entries (`verify` reports it).
    index_tail_problem: Option<String>,
}

/// How the families every batch writes (the log, the invoice index, the invoice order)
/// store their table files: the server's `table_compression` setting. Every table file
/// says in its blocks how they were compressed, so a directory written with one choice
/// opens and reads with the other; a compaction rewrites what it touches the new way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableCompression {
    /// No compression at any level (the default). At 10 M invoices LZ4 was ~6% of the
    /// server's CPU on the redemption path, nearly all of it in compactions: the log's
    /// level-0 files (uncompressed, see `Lz4`) were rewritten only to be compressed, and
    /// the invoice index's compactions compressed every block they wrote. Without it the
    /// log's compactions are moves of whole files (its keys only grow): at 10 M invoices
    /// the server's CPU per invoice was 0.89× (0.88–0.91), at 1 M unchanged (issue 12,
    /// eighteenth round). The price is disk: 2.9 GB instead of 1.7 GB at 10 M invoices.
    #[default]
    None,
    /// LZ4 below level 0, as every build before the eighteenth round of issue 12 wrote:
    /// level 0 holds the memtables as flushed and is soon compacted, so compressing it on
    /// every flush (~3% of the server's CPU) would be done again by the compaction.
    Lz4,
}

impl TableCompression {
    /// RocksDB's compression by level for this choice (RocksDB reads the array from the
    /// level level-0 files are compacted into on, and uses its last entry below).
    fn by_level(self) -> &'static [rocksdb::DBCompressionType] {
        match self {
            TableCompression::None => &[rocksdb::DBCompressionType::None],
            TableCompression::Lz4 => &[
                rocksdb::DBCompressionType::None,
                rocksdb::DBCompressionType::Lz4,
            ],
        }
    }
}

/// How RocksDB compacts the invoice index: the server's `invoice_index_compaction`
/// setting. Either opens a directory the other wrote (universal compaction takes each
/// level's files as one sorted run, and levelled compaction takes universal's runs as its
/// levels), and the next compactions go the new way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexCompaction {
    /// Universal (tiered) compaction (the default): a few sorted runs of similar size are
    /// merged into one. The index's keys arrive in no order and are never overwritten,
    /// and lookups are rare (the in-memory `InvoiceFilter` answers brand-new invoices
    /// first), so what matters is how often each entry is rewritten, not how many runs a
    /// lookup's bloom filters are asked about. Levelled, every compaction of a level into
    /// the next rewrote the part of the level below that its keys span, which for keys in
    /// no order is all of it: at 30 M invoices the index's compactions read 104.5 M
    /// entries and took 36.1 s of CPU (1.2 µs per invoice); universal, 46.2 M entries and
    /// 15.2 s (issue 12, nineteenth round).
    #[default]
    Universal,
    /// Levelled compaction, as every build before the nineteenth round of issue 12
    /// compacted the index: fewer sorted runs for a lookup to pass, more rewriting.
    Leveled,
}

/// Level-0 files of the invoice index that start a compaction into level 1 when it is
/// compacted by level (RocksDB's default is 4): the index's keys arrive in no order, so
/// every such compaction rewrites all of level 1 beneath, and waiting for twice as much
/// halves how often (at 10 M invoices the index's compaction CPU 12.6 -> 9.1 s, the
/// server's CPU per invoice 0.97x; issue 12).
const INVOICE_INDEX_LEVEL0_FILES_LEVELED: i32 = 8;

/// Sorted runs of the invoice index that start a compaction when it is compacted
/// universally: RocksDB then merges runs of similar size, so each entry is rewritten
/// about once per multiplication of the index by this many memtables' worth. At 8
/// (nineteenth round) a 10 M-invoice run merged 6.9-13.0 M entries (2.3-5.0 s of
/// CPU); at 24 it merges none until ~11 M invoices (24 memtables of ~467 k entries), and
/// at 30 M about half as many as at 8 (issue 12, twentieth round: RocksDB's threads
/// 0.73-0.82 -> 0.39-0.51 µs per invoice at 10 M). Lookups reach every run (through its
/// bloom filter), but few do: the in-memory `InvoiceFilter` answers for brand-new
/// invoices. Past ~30 M, as that filter thins before it grows, more get through, and at
/// 50 M the writer's dearer lookups cost about what the compactions save.
const INVOICE_INDEX_SORTED_RUNS_UNIVERSAL: i32 = 24;

/// Sorted runs of the invoice index at which RocksDB slows, then stops, writes until
/// compaction catches up (its defaults, 20 and 36, lie at or below the trigger above):
/// two and three times the trigger, so 24 more memtables (~11 M invoices) can be flushed
/// while a merge of 24 runs goes on before writes slow. No 30 M run slowed them.
const INVOICE_INDEX_SORTED_RUNS_SLOWDOWN: i32 = 2 * INVOICE_INDEX_SORTED_RUNS_UNIVERSAL;
const INVOICE_INDEX_SORTED_RUNS_STOP: i32 = 3 * INVOICE_INDEX_SORTED_RUNS_UNIVERSAL;

/// Under universal compaction, the size of the index's newer runs against its oldest, in
/// percent, past which RocksDB merges them all into one. RocksDB's measure assumes newer
/// runs overwrite older ones (its default, 200, bounds the space that garbage takes); the
/// index's entries are never overwritten, so the ratio measures growth, not garbage: at
/// 200 every tripling of the index rewrote all of it (at 30 M invoices 62.6 M entries
/// read by the compactions and 21.2 s of CPU, against 46.2 M and 15.2 s at 1,000). At
/// 100,000 (a thousandfold) it never triggers, and only runs of similar size are merged.
const INVOICE_INDEX_SIZE_AMPLIFICATION_PERCENT: i32 = 100_000;

impl IndexCompaction {
    /// Sets the invoice index's compaction in its column family's `options`.
    fn apply(self, options: &mut Options) {
        match self {
            IndexCompaction::Leveled => {
                options.set_compaction_style(rocksdb::DBCompactionStyle::Level);
                options
                    .set_level_zero_file_num_compaction_trigger(INVOICE_INDEX_LEVEL0_FILES_LEVELED);
            }
            IndexCompaction::Universal => {
                options.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
                options.set_level_zero_file_num_compaction_trigger(
                    INVOICE_INDEX_SORTED_RUNS_UNIVERSAL,
                );
                options.set_level_zero_slowdown_writes_trigger(INVOICE_INDEX_SORTED_RUNS_SLOWDOWN);
                options.set_level_zero_stop_writes_trigger(INVOICE_INDEX_SORTED_RUNS_STOP);
                let mut universal = rocksdb::UniversalCompactOptions::default();
                universal
                    .set_max_size_amplification_percent(INVOICE_INDEX_SIZE_AMPLIFICATION_PERCENT);
                options.set_universal_compaction_options(&universal);
            }
        }
    }
}

/// How the store lays its data out and what memory it may hold: the server's settings
/// that reach RocksDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// How the families every batch writes compress their table files.
    pub table_compression: TableCompression,
    /// How the invoice index is compacted.
    pub invoice_index_compaction: IndexCompaction,
    /// Bytes of the one block cache every column family reads through (the server's
    /// `block_cache_bytes`; default [`BLOCK_CACHE_BYTES_DEFAULT`]). One cache, because
    /// RocksDB gives each family that names no cache one of its own (32 MiB each), so the
    /// six families could hold up to 192 MiB, and how much they held depended on what had
    /// been read and compacted since the start. Serving 10 M events after a crash, the
    /// server's resident memory was 126 MiB from one filled directory and 166-170 MiB from
    /// another with the same events; the caches held 40 and 68 MiB (the invoice index's
    /// 3.4 and 32 MiB), blocks read during the open. With one shared cache: 93 and 101 MiB
    /// (issue 12). The default has room for the invoice index's index and filter blocks of
    /// ~100 M invoices (~21 MiB at 10 M; see [`BLOCK_CACHE_BYTES_DEFAULT`]), which it holds
    /// with high priority. The cache is a HyperClockCache, the kind RocksDB makes for a
    /// family by itself: an LRU cache of the same size, whose every hit takes a shard's lock
    /// and moves the block in a list, cost the writer's invoice lookups 0.5 µs per invoice
    /// at 10 M invoices (server CPU 1.11-1.16x, two rounds).
    pub block_cache_bytes: usize,
    /// The least size of the in-memory invoice filter, in bytes: [`INVOICE_FILTER_BYTES`]
    /// (not a server setting: the filter sizes itself to the index; tests make it small to
    /// see it grow).
    pub invoice_filter_least_bytes: usize,
    /// Most index entries a writable open holds while it derives what a crash left out of
    /// the index: [`INDEX_CATCH_UP_WRITE_ENTRIES`] (not a server setting; tests make it
    /// small to see the open write them in several parts).
    pub index_catch_up_write_entries: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            table_compression: TableCompression::default(),
            invoice_index_compaction: IndexCompaction::default(),
            block_cache_bytes: BLOCK_CACHE_BYTES_DEFAULT,
            invoice_filter_least_bytes: INVOICE_FILTER_BYTES,
            index_catch_up_write_entries: INDEX_CATCH_UP_WRITE_ENTRIES,
        }
    }
}

/// The index entry an `InvoiceRedeemed` event at `sequence` makes (the entry the fold
/// makes of it): what both the writer's puts and the encoder's deferred entries encode.
fn redeemed_index_fields(sequence: u64, redeemed: &InvoiceRedeemed) -> IndexFields<'_> {
    IndexFields {
        voucher: &redeemed.voucher,
        amount: redeemed.amount,
        issue_date: redeemed.issue_date,
        delivery_proof: redeemed.delivery_proof.as_str(),
        subsidy: redeemed.subsidy,
        second_subsidy: redeemed.second_subsidy,
        sequence,
        reversed_at: None,
    }
}

/// Read options for reads whose blocks will not be wanted again soon, so they do not
/// push out of the shared cache what lookups use:
/// - a pass over every entry of a family (the invoice filter's fill, the invoice index
///   for `verify` and exports);
/// - a log scan (replay, `verify`, a subscriber, a page of `ReadEvents`: each block once);
/// - a snapshot, read once at open.
fn read_once() -> ReadOptions {
    let mut read_options = ReadOptions::default();
    read_options.fill_cache(false);
    read_options
}

/// Table options for a column family, reading through the shared `cache`.
fn table_options_with(cache: &rocksdb::Cache) -> rocksdb::BlockBasedOptions {
    let mut table_options = rocksdb::BlockBasedOptions::default();
    table_options.set_block_cache(cache);
    table_options
}

/// Whether files in `directory` can be opened for direct I/O (`O_DIRECT`), tried on a
/// probe file that is removed at once. RocksDB opens its table files the same way when
/// asked to, and would fail every flush on a file system that refuses it (some do), so
/// the store asks first. `directory` is created if missing, as the store would.
fn direct_io_supported(directory: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if std::fs::create_dir_all(directory).is_err() {
            return false;
        }
        let probe = directory.join(DIRECT_IO_PROBE);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe);
        let _ = std::fs::remove_file(&probe);
        opened.is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = directory;
        false
    }
}

/// The probe file [`direct_io_supported`] creates and removes in a data directory.
const DIRECT_IO_PROBE: &str = "DIRECT-IO-PROBE";

/// A writable store whose invoice index may still be behind its log (a crash took what
/// RocksDB had not flushed of it): what [`EventStore::open_before_index_catch_up`]
/// returns. Batches need the whole index, so the store itself comes only out of
/// [`StoreOpening::finish`]; until then it can be read through [`StoreOpening::store`],
/// beside the catch-up (which writes only the index and reads only the log and the
/// index). After a crash at 10 M events the catch-up took ~0.4 s and the ledger's
/// snapshot load and replay ~0.3 s; run one beside the other, a restart waits for the
/// longer only (issue 12, thirtieth round).
pub(crate) struct StoreOpening {
    store: EventStore,
    /// Most index entries the catch-up holds before it writes them.
    index_catch_up_write_entries: usize,
}

impl StoreOpening {
    /// The store, for reads while the index is caught up: the snapshots and the log, and
    /// nothing that needs the index or writes. A contract, not a type (the reads share
    /// `EventStore`'s methods with the writes), which is why the type stays in the crate:
    /// `Ledger::open` is its one user.
    pub(crate) fn store(&self) -> &EventStore {
        &self.store
    }

    /// Brings the invoice index up to the log (see `index_lag.rs`): derives the entries
    /// of the records after its watermark and writes them. Nothing to do after a clean
    /// close. Takes `&self`, so it can run on a thread of its own.
    pub(crate) fn catch_up_index(&self) -> Result<(), StoreError> {
        self.store.catch_up_index(self.index_catch_up_write_entries)
    }

    /// The store, once [`StoreOpening::catch_up_index`] has given `caught_up`. A failure
    /// is kept, not returned: a damaged log is reported by the ledger's replay, as a
    /// record error, which says more; `Ledger::open` refuses the store if the replay
    /// passes and the catch-up still failed (see [`EventStore::check_index_caught_up`]).
    pub(crate) fn finish(self, caught_up: Result<(), StoreError>) -> EventStore {
        let mut store = self.store;
        if let Err(error) = caught_up {
            store.index_tail_problem = Some(error.to_string());
        }
        store
    }
}

impl EventStore {
    /// Opens (creating if needed) the store in `path`. Refuses a directory written by an
    /// unknown format version.
    pub fn open(path: &Path, sync: bool) -> Result<EventStore, StoreError> {
        EventStore::open_with(path, sync, StoreSettings::default())
    }

    /// [`EventStore::open`] with `settings` (compression, block cache).
    pub fn open_with(
        path: &Path,
        sync: bool,
        settings: StoreSettings,
    ) -> Result<EventStore, StoreError> {
        let opening = EventStore::open_before_index_catch_up(path, sync, settings)?;
        let caught_up = opening.catch_up_index();
        Ok(opening.finish(caught_up))
    }

    /// [`EventStore::open_with`] up to the point where the invoice index is brought up to
    /// the log: the caller runs [`StoreOpening::catch_up_index`], while it reads the store
    /// for other things if it likes (the ledger loads its snapshot and replays the log
    /// meanwhile), then gets the store from [`StoreOpening::finish`].
    pub(crate) fn open_before_index_catch_up(
        path: &Path,
        sync: bool,
        settings: StoreSettings,
    ) -> Result<StoreOpening, StoreError> {
        EventStore::open_with_wal_limit(path, sync, WAL_RETAINED_BYTES_MAX, settings)
    }

    /// [`EventStore::open_before_index_catch_up`] with the write-ahead log bounded to
    /// `wal_bytes_max` (0: RocksDB's default, four times all memtables). A restart after a
    /// crash replays what the log holds, so this bounds that replay too.
    fn open_with_wal_limit(
        path: &Path,
        sync: bool,
        wal_bytes_max: u64,
        settings: StoreSettings,
    ) -> Result<StoreOpening, StoreError> {
        let compression = settings.table_compression;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_total_wal_size(wal_bytes_max);
        // Old log files are not reused (RocksDB's `recycle_log_file_num`): RocksDB refuses
        // writes without the log in a database that reuses log files, and the invoice
        // index is written without it (format 6, `index_lag.rs`). Reusing them had kept
        // the unlink of a ~70 MB file out of the batches' fsyncs (twenty-second round);
        // the log files now hold only the log parts, about half the bytes, so there are
        // half as many to delete.
        // Larger memtables mean fewer, larger flushes on the append-heavy path.
        options.set_write_buffer_size(64 * 1024 * 1024);
        options.set_max_background_jobs(2);
        // Flushes and compactions write their table files out a megabyte at a time
        // (sync_file_range), so a batch's fsync of the WAL does not wait behind a whole
        // memtable's worth of a new table's dirty pages (ext4's journal commit writes
        // those first).
        options.set_bytes_per_sync(1 << 20);
        // Flushes and compactions write their tables with direct I/O, past the page
        // cache: copying a memtable's worth of table into fresh page-cache pages was most of
        // RocksDB's CPU (at 1 M invoices its threads 0.68-0.76 -> 0.37-0.41 µs per invoice;
        // at 10 M 2.0-2.1 -> 1.5-1.6, with compactions; issue 12). Reads stay buffered. A
        // file system that refuses direct I/O keeps the buffered writes.
        let block_cache = rocksdb::Cache::new_hyper_clock_cache(settings.block_cache_bytes, 0);
        options.set_block_based_table_factory(&table_options_with(&block_cache));
        let direct = direct_io_supported(path);
        if direct {
            options.set_use_direct_io_for_flush_and_compaction(true);
        } else {
            tracing::warn!(
                path = %path.display(),
                "the file system refuses direct I/O: RocksDB's flushes and compactions go through the page cache"
            );
        }
        let mut events_options = Options::default();
        events_options.set_block_based_table_factory(&table_options_with(&block_cache));
        events_options.set_write_buffer_size(64 * 1024 * 1024);
        events_options.set_compression_per_level(compression.by_level());
        // Lookups that reach the invoice index are few (the in-memory `InvoiceFilter` rules
        // out brand-new invoices first) and are often misses: the tables' bloom filters
        // answer those without reading data blocks. The memtable has none: it cost a
        // cache miss on every insert (~2% of the server's CPU under load) to spare the
        // rare lookup a skip-list search.
        let mut invoices_options = Options::default();
        let mut table_options = table_options_with(&block_cache);
        table_options.set_bloom_filter(10.0, false);
        table_options.set_cache_index_and_filter_blocks(true);
        // Index and filter blocks are kept in preference to data blocks: every lookup
        // needs them, and a data block serves only the keys it holds.
        table_options.set_cache_index_and_filter_blocks_with_high_priority(true);
        invoices_options.set_block_based_table_factory(&table_options);
        invoices_options.set_write_buffer_size(64 * 1024 * 1024);
        invoices_options.set_compression_per_level(compression.by_level());
        settings
            .invoice_index_compaction
            .apply(&mut invoices_options);
        let mut invoice_order_options = Options::default();
        invoice_order_options.set_block_based_table_factory(&table_options_with(&block_cache));
        invoice_order_options.set_compression_per_level(compression.by_level());
        let mut snapshots_options = Options::default();
        snapshots_options.set_block_based_table_factory(&table_options_with(&block_cache));
        let mut checkpoints_options = Options::default();
        checkpoints_options.set_block_based_table_factory(&table_options_with(&block_cache));
        let families = vec![
            ColumnFamilyDescriptor::new(EVENTS, events_options),
            ColumnFamilyDescriptor::new(INVOICES, invoices_options),
            ColumnFamilyDescriptor::new(SNAPSHOTS, snapshots_options),
            ColumnFamilyDescriptor::new(INVOICE_ORDER, invoice_order_options),
            ColumnFamilyDescriptor::new(CHECKPOINTS, checkpoints_options),
        ];
        let db = DB::open_cf_descriptors(&options, path, families)?;
        // The filter is sized for the keys the index holds now (RocksDB's estimate, from
        // its table files' counts), so a restart does not begin with one already full.
        let index_keys = match db.cf_handle(INVOICES) {
            Some(family) => db
                .property_int_value_cf(family, "rocksdb.estimate-num-keys")?
                .unwrap_or(0),
            None => 0,
        };
        let mut store = EventStore {
            db,
            sync,
            path: path.display().to_string(),
            format_version: DATABASE_FORMAT_VERSION,
            invoice_filter: GrowingInvoiceFilter::for_keys(
                index_keys,
                settings.invoice_filter_least_bytes,
                INVOICE_FILTER_BYTES_MAX.max(settings.invoice_filter_least_bytes),
            ),
            index_gate: IndexGate::new(),
            index_tail: None,
            index_tail_problem: None,
        };
        store.format_version = store.check_or_write_format()?;
        if store.format_version < DATABASE_FORMAT_VERSION {
            super::migrate::to_current(&mut store)?;
        }
        Ok(StoreOpening {
            store,
            index_catch_up_write_entries: settings.index_catch_up_write_entries.max(1),
        })
    }

    /// Opens an existing store without taking the write lock (for `verify` next to a
    /// running server). Sees the data as of the moment it opened.
    pub fn open_read_only(path: &Path) -> Result<EventStore, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Format {
                path: path.display().to_string(),
                reason: "is not a voucher-ledger data directory (no CURRENT file)".into(),
            });
        }
        let options = Options::default();
        let existing = DB::list_cf(&options, path)?;
        let families: Vec<&str> = FAMILIES
            .into_iter()
            .filter(|family| existing.iter().any(|name| name == family))
            .collect();
        let db = DB::open_cf_for_read_only(&options, path, families, false)?;
        let mut store = EventStore {
            db,
            sync: false,
            path: path.display().to_string(),
            format_version: DATABASE_FORMAT_VERSION,
            // Never filled: a read-only store always looks up.
            invoice_filter: GrowingInvoiceFilter::for_keys(0, 8, 8),
            index_gate: IndexGate::new(),
            index_tail: None,
            index_tail_problem: None,
        };
        store.format_version = match store.db.get(FORMAT_KEY)? {
            Some(found) => store.parse_format_marker(&found)?,
            None => {
                return Err(StoreError::Format {
                    path: store.path.clone(),
                    reason: "has no format marker".into(),
                })
            }
        };
        match store.index_lag() {
            Ok(None) => {}
            Ok(Some(after)) => match derive_index_tail(&store, after, usize::MAX, |_| Ok(())) {
                Ok(tail) => store.index_tail = Some(tail),
                Err(error) => store.index_tail_problem = Some(error.to_string()),
            },
            Err(error) => store.index_tail_problem = Some(error.to_string()),
        }
        Ok(store)
    }

    /// The invoice index's watermark: the last sequence whose entries it holds. A
    /// directory older than format 5 wrote its index with its log, so it is the log's
    /// last sequence; a format 5 directory keeps it in the `default` family, a format 6
    /// one in the `invoices` family; one without it has indexed nothing yet.
    pub fn index_watermark(&self) -> Result<u64, StoreError> {
        if self.format_version < 5 {
            return Ok(self.last_sequence()?.unwrap_or(0));
        }
        let found = if self.format_version == 5 {
            self.db.get(FORMAT_5_INDEX_WATERMARK_KEY)?
        } else {
            self.db
                .get_cf(self.family(INVOICES)?, INDEX_WATERMARK_KEY)?
        };
        match found {
            Some(bytes) => decode_index_watermark(&bytes).map_err(|error| StoreError::Corrupt {
                what: "the invoice index's watermark".into(),
                reason: error.reason,
            }),
            None => Ok(0),
        }
    }

    /// Where the index stops short of the log: `Some(watermark)` when records after the
    /// watermark have no entries yet (see `index_lag.rs`), `None` when it is complete.
    fn index_lag(&self) -> Result<Option<u64>, StoreError> {
        let (watermark, last) = self.index_position()?;
        // A watermark past the log's end arises only when records were removed from the
        // end (a truncation, which `verify` against exported checkpoints names): the
        // index then covers the whole log, and `index_lag_report` notes it.
        Ok((watermark < last).then_some(watermark))
    }

    /// The index's watermark and the log's last sequence (0 for an empty log).
    fn index_position(&self) -> Result<(u64, u64), StoreError> {
        Ok((self.index_watermark()?, self.last_sequence()?.unwrap_or(0)))
    }

    /// A writable open: writes the index entries a crash left out (derived from the log
    /// after the watermark) and moves the watermark to the log's end.
    fn catch_up_index(&self, write_entries: usize) -> Result<(), StoreError> {
        let (watermark, last) = self.index_position()?;
        if watermark > last {
            // Records were removed from the log's end. Left there, the watermark would
            // hide a later crash's missing entries: bring it back to the log's end.
            tracing::warn!(
                watermark,
                last,
                "the invoice index's watermark was past the log's end (records were removed from it); set to the log's end"
            );
            return self.write_index_watermark(last);
        }
        if watermark == last {
            return Ok(());
        }
        // The entries are written as they are derived, a bounded number at a time (a crash
        // can leave a memtable or two of the index unwritten, ~10^6 entries), as every
        // index write is, without the write-ahead log; then the family is flushed, which
        // persists them and the watermark in order and frees the memtable they filled
        // (left in memory, it kept the restarted server's resident memory ~25 MiB
        // higher at 10 M invoices).
        let started = std::time::Instant::now();
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        let family = self.family(INVOICES)?;
        let mut value = Vec::new();
        let mut written = 0usize;
        let mut write_part = |entries: &mut BTreeMap<Vec<u8>, InvoiceEntry>| {
            let mut batch = WriteBatch::default();
            for (key, entry) in entries.iter() {
                value.clear();
                encode_index_entry(entry, &mut value);
                batch.put_cf(family, key, &value);
            }
            written += entries.len();
            entries.clear();
            self.db.write_opt(batch, &unlogged)?;
            Ok(())
        };
        let mut tail = derive_index_tail(self, watermark, write_entries, &mut write_part)?;
        write_part(&mut tail.entries)?;
        self.db.put_cf_opt(
            family,
            INDEX_WATERMARK_KEY,
            encode_index_watermark(tail.through),
            &unlogged,
        )?;
        self.db.flush_cf(family)?;
        tracing::info!(
            after = watermark,
            through = tail.through,
            entries = written,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "the invoice index was behind the log; wrote the entries derived from it"
        );
        Ok(())
    }

    /// Writes the index's watermark alone (a migration: the index is complete up to
    /// `sequence`). The family's memtables are flushed first: a migration may have
    /// written entries without the write-ahead log (`commit_index`), and the watermark,
    /// written with it, must not outlive them in a crash.
    pub(super) fn write_index_watermark(&self, sequence: u64) -> Result<(), StoreError> {
        let family = self.family(INVOICES)?;
        self.db.flush_cf(family)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            family,
            INDEX_WATERMARK_KEY,
            encode_index_watermark(sequence),
        );
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// An error if a writable open could not bring the invoice index up to the log (or a
    /// read-only open could not derive what it lacks). Such a store must not take new
    /// batches, nor feed exports: its index would miss invoices.
    pub fn check_index_caught_up(&self) -> Result<(), StoreError> {
        match &self.index_tail_problem {
            Some(problem) => Err(StoreError::Corrupt {
                what: "the invoice index".into(),
                reason: problem.clone(),
            }),
            None => Ok(()),
        }
    }

    /// For `verify`: what a read-only open derived because the index was behind the log
    /// (a crash took what RocksDB had not flushed of it, or a running server has not
    /// flushed it yet; the next writable open writes it), or why it could not. `None`
    /// when the index was complete.
    pub fn index_lag_report(&self) -> Option<Result<String, String>> {
        if let Some(problem) = &self.index_tail_problem {
            return Some(Err(format!(
                "the invoice index could not be brought up to the log (its watermark, or the entries the log implies after it): {problem}"
            )));
        }
        if let (Ok(watermark), Ok(Some(last))) = (self.index_watermark(), self.last_sequence()) {
            if watermark > last {
                return Some(Ok(format!(
                    "the invoice index's watermark names sequence {watermark}, past the log's last record {last}: records were removed from the end of the log"
                )));
            }
        }
        self.index_tail.as_ref().map(|tail| {
            Ok(format!(
                "the invoice index holds records up to sequence {}; the {} entries of records {}..={} were derived from the log (the next writable open writes them)",
                tail.after,
                tail.entries.len(),
                tail.after + 1,
                tail.through
            ))
        })
    }

    /// The data directory's format version.
    pub fn format_version(&self) -> u16 {
        self.format_version
    }

    fn parse_format_marker(&self, found: &[u8]) -> Result<u16, StoreError> {
        let version = match found {
            [m0, m1, m2, m3, low, high] if [*m0, *m1, *m2, *m3] == DATABASE_MAGIC => {
                u16::from_le_bytes([*low, *high])
            }
            _ => {
                return Err(StoreError::Format {
                    path: self.path.clone(),
                    reason: format!("format marker {found:02x?} is not a voucher-ledger marker"),
                })
            }
        };
        if !(DATABASE_FORMAT_OLDEST_READ..=DATABASE_FORMAT_VERSION).contains(&version) {
            return Err(StoreError::Format {
                path: self.path.clone(),
                reason: format!(
                    "format version {version} is not read by this build (it reads {DATABASE_FORMAT_OLDEST_READ} to {DATABASE_FORMAT_VERSION})"
                ),
            });
        }
        Ok(version)
    }

    /// Writes the current format marker (after a migration brought the data up to it).
    pub(super) fn write_format_marker(&mut self) -> Result<(), StoreError> {
        let mut marker = DATABASE_MAGIC.to_vec();
        marker.extend_from_slice(&DATABASE_FORMAT_VERSION.to_le_bytes());
        let mut batch = WriteBatch::default();
        batch.put(FORMAT_KEY, marker);
        // A format 5 watermark, moved into the `invoices` family by the migration, goes
        // with the marker that stops it being read: a crash between the two leaves a
        // format 5 directory that still has it.
        batch.delete(FORMAT_5_INDEX_WATERMARK_KEY);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        self.format_version = DATABASE_FORMAT_VERSION;
        Ok(())
    }

    /// Returns the directory's format version, writing the current marker into a new one.
    fn check_or_write_format(&self) -> Result<u16, StoreError> {
        let mut expected = DATABASE_MAGIC.to_vec();
        expected.extend_from_slice(&DATABASE_FORMAT_VERSION.to_le_bytes());
        match self.db.get(FORMAT_KEY)? {
            Some(found) => self.parse_format_marker(&found),
            None => {
                if self.last_sequence()?.is_some() {
                    return Err(StoreError::Format {
                        path: self.path.clone(),
                        reason: "has events but no format marker".into(),
                    });
                }
                let mut options = WriteOptions::default();
                options.set_sync(self.sync);
                self.db.put_opt(FORMAT_KEY, expected, &options)?;
                Ok(DATABASE_FORMAT_VERSION)
            }
        }
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Format {
            path: self.path.clone(),
            reason: format!("column family {name} is missing"),
        })
    }

    /// Frames `events` (dense, in order, following the record whose chain hash is
    /// `previous`) and adds them to the batch as log blocks. Returns the chain hash after
    /// the last one.
    ///
    /// A block's records are framed first and their chain hashes filled in together
    /// before the block is put (`sm3_lanes.rs`: eight records' leading SM3 blocks at
    /// once); the bytes are the same as framing and hashing record by record.
    pub fn put_events(
        &self,
        batch: &mut CommitBatch,
        events: &[SequencedEvent],
        previous: ChainHash,
    ) -> Result<ChainHash, StoreError> {
        let family = self.family(EVENTS)?;
        let mut head = previous;
        let mut block_start: Option<(u64, u32)> = None;
        batch.block.clear();
        batch.record_spans.clear();
        if events.len() > 1 {
            batch
                .block
                .reserve(LOG_BLOCK_BYTES_TARGET + super::record::RECORD_PAYLOAD_LIMIT);
        }
        for event in events {
            let (first, count) = match block_start {
                Some(open) => open,
                None => {
                    start_block(&mut batch.block, event.sequence);
                    (event.sequence, 0)
                }
            };
            if event.sequence != first + u64::from(count) {
                return Err(StoreError::Encode(format!(
                    "event {} does not follow event {} in its block",
                    event.sequence,
                    first + u64::from(count) - 1
                )));
            }
            let span = encode_record_frame(event, &mut batch.payload_scratch, &mut batch.block)
                .map_err(StoreError::Encode)?;
            batch.record_spans.push(span);
            batch.note_sequence(event.sequence);
            block_start = Some((first, count + 1));
            if batch.block.len() >= LOG_BLOCK_BYTES_TARGET {
                head = batch.seal_block(head, count + 1);
                batch
                    .batch
                    .put_cf(family, first.to_be_bytes(), &batch.block);
                batch.block.clear();
                block_start = None;
            }
        }
        if let Some((first, count)) = block_start {
            head = batch.seal_block(head, count);
            batch
                .batch
                .put_cf(family, first.to_be_bytes(), &batch.block);
            batch.block.clear();
        }
        Ok(head)
    }

    /// Adds one framed record under its own key, as data directories before format 3
    /// stored every record: for tests and fixtures of such directories (and mixed logs).
    pub fn put_record(
        &self,
        batch: &mut CommitBatch,
        sequence: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        batch.batch.put_cf(family, sequence.to_be_bytes(), record);
        batch.note_sequence(sequence);
        Ok(())
    }

    /// Adds an invoice's index entry (its state as of the end of the batch).
    pub fn put_invoice(
        &self,
        batch: &mut CommitBatch,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
        entry: &InvoiceEntry,
    ) -> Result<(), StoreError> {
        let family = self.family(INVOICES)?;
        batch.scratch.clear();
        encode_index_entry(entry, &mut batch.scratch);
        let key = invoice_key(center, invoice_number);
        // Added to the filter before the batch is committed, so the filter never calls a
        // stored key absent.
        batch
            .filter_pending
            .push(self.invoice_filter.place_of(&key));
        batch.index.put_cf(family, key, &batch.scratch);
        Ok(())
    }

    /// Adds the index entry of an invoice redeemed by the event at `sequence`, encoded
    /// straight from the event (the same bytes as [`EventStore::put_invoice`] of the entry
    /// the fold makes of it). A reversal later in the same batch puts the key again, and
    /// the later put wins.
    pub fn put_redeemed_invoice(
        &self,
        batch: &mut CommitBatch,
        sequence: u64,
        redeemed: &InvoiceRedeemed,
    ) -> Result<(), StoreError> {
        let family = self.family(INVOICES)?;
        batch.scratch.clear();
        encode_index_fields(
            redeemed_index_fields(sequence, redeemed),
            &mut batch.scratch,
        );
        invoice_key_into(&redeemed.center, &redeemed.invoice_number, &mut batch.key);
        // Added to the filter before the batch is committed, so the filter never calls a
        // stored key absent.
        batch
            .filter_pending
            .push(self.invoice_filter.place_of(&batch.key));
        batch.index.put_cf(family, &batch.key, &batch.scratch);
        Ok(())
    }

    /// Encodes the index entry of an invoice redeemed by the event at `sequence` into
    /// `deferred` (the same bytes as [`EventStore::put_redeemed_invoice`]), to be put
    /// into an index part later by [`EventStore::index_part_of`]. The key goes into the
    /// filter with `batch`'s log part, as a put one does.
    pub fn defer_redeemed_invoice(
        &self,
        batch: &mut CommitBatch,
        deferred: &mut DeferredIndexEntries,
        sequence: u64,
        redeemed: &InvoiceRedeemed,
    ) {
        let start = deferred.bytes.len();
        append_invoice_key(
            &redeemed.center,
            &redeemed.invoice_number,
            &mut deferred.bytes,
        );
        let key_end = deferred.bytes.len();
        batch.filter_pending.push(
            self.invoice_filter
                .place_of(&deferred.bytes[start..key_end]),
        );
        deferred.scratch.clear();
        encode_index_fields(
            redeemed_index_fields(sequence, redeemed),
            &mut deferred.scratch,
        );
        deferred.bytes.extend_from_slice(&deferred.scratch);
        deferred.entries.push(DeferredIndexEntry {
            start,
            key_end,
            end: deferred.bytes.len(),
        });
    }

    /// The index part of `deferred`'s entries, put in key order: RocksDB inserts a
    /// batch's keys into the memtable's skip list in batch order, starting each search
    /// from the previous key's place, so keys in order spare most of the comparisons.
    /// A batch redeems an invoice at most once (a second posting is a duplicate), so
    /// every key is put once. The part's buffer is reserved whole, with room for what the
    /// writer adds after the entries (the watermark, reversals): a buffer that grows is
    /// copied into freshly faulted memory.
    pub fn index_part_of(
        &self,
        deferred: &mut DeferredIndexEntries,
    ) -> Result<IndexPart, StoreError> {
        let family = self.family(INVOICES)?;
        let mut entries = std::mem::take(&mut deferred.entries);
        entries.sort_unstable_by(|left, right| deferred.key(*left).cmp(deferred.key(*right)));
        let mut batch = WriteBatch::with_capacity_bytes(index_part_room(deferred, entries.len()));
        for entry in &entries {
            batch.put_cf(
                family,
                deferred.key(*entry),
                &deferred.bytes[entry.key_end..entry.end],
            );
        }
        let part = IndexPart {
            batch,
            entries: entries.len(),
        };
        // The list's room is kept for the next batch.
        deferred.entries = entries;
        deferred.clear();
        Ok(part)
    }

    /// Supplies the index part built apart for the batch `pending` belongs to (the
    /// batch said so with [`CommitBatch::expect_index_part`]), then `later`: entries
    /// read from the state at the end of the batch (reversals), put after the part's so
    /// that they win over the entry of a redemption of the same invoice in the batch.
    /// Their keys are in the filter already: a reversed invoice was redeemed first.
    pub fn complete_index_part(
        &self,
        pending: &mut PendingIndexWrite,
        part: IndexPart,
        later: &[(Uscc, InvoiceNumber, InvoiceEntry)],
    ) -> Result<(), StoreError> {
        if !pending.awaiting_part || !pending.index.is_empty() {
            return Err(StoreError::Encode(format!(
                "the batch ending at sequence {} awaits no index part (or has it already)",
                pending.through.unwrap_or(0)
            )));
        }
        let family = self.family(INVOICES)?;
        pending.index = part.batch;
        pending.awaiting_part = false;
        let mut scratch = Vec::new();
        for (center, invoice_number, entry) in later {
            scratch.clear();
            encode_index_entry(entry, &mut scratch);
            pending
                .index
                .put_cf(family, invoice_key(center, invoice_number), &scratch);
        }
        Ok(())
    }

    /// Adds the index keys `batch` has put since the last call to the invoice filter.
    /// [`EventStore::commit`] calls it; the encoder calls it after each chunk, so the
    /// work is done on its thread, beside the writer.
    pub fn add_to_invoice_filter(&self, batch: &mut CommitBatch) {
        self.invoice_filter.insert_each(&batch.filter_pending);
        batch.filter_pending.clear();
    }

    /// Adds a center-year's redemptions of one batch to the invoice order as one group
    /// (`VLIO` v2), under the first one's sequence: `entries` are (sequence, number) in
    /// increasing sequence order, all after any sequence already in the order index.
    pub fn put_invoice_order_group<'a>(
        &self,
        batch: &mut CommitBatch,
        center: &Uscc,
        year: ProgrammeYear,
        entries: impl ExactSizeIterator<Item = (u64, &'a str)> + Clone,
    ) -> Result<(), StoreError> {
        let Some((first, _)) = entries.clone().next() else {
            return Ok(());
        };
        let family = self.family(INVOICE_ORDER)?;
        batch.scratch.clear();
        encode_invoice_order_group(entries, &mut batch.scratch);
        batch.batch.put_cf(
            family,
            invoice_order_key(center, year, first),
            &batch.scratch,
        );
        Ok(())
    }

    /// Adds one invoice's place in its center's order for a year as a single entry (`VLIO`
    /// v1, the bare number, as format 2 and 3 directories hold them): for the migration
    /// from format 1 and for fixtures of such directories.
    pub fn put_invoice_order(
        &self,
        batch: &mut CommitBatch,
        center: &Uscc,
        year: ProgrammeYear,
        sequence: u64,
        invoice_number: &InvoiceNumber,
    ) -> Result<(), StoreError> {
        let family = self.family(INVOICE_ORDER)?;
        batch.batch.put_cf(
            family,
            invoice_order_key(center, year, sequence),
            invoice_number.as_str().as_bytes(),
        );
        Ok(())
    }

    /// Whether this directory has the invoice order (format 2 on; a format 1 directory
    /// opened read-only does not).
    pub fn has_invoice_order(&self) -> bool {
        self.db.cf_handle(INVOICE_ORDER).is_some() && self.format_version >= 2
    }

    /// Visits a center's invoices of a year in sequence order, from `from` (inclusive)
    /// to `until` (exclusive), as (sequence, invoice number), until `visit` breaks.
    pub fn scan_invoice_order(
        &self,
        center: &Uscc,
        year: ProgrammeYear,
        from: u64,
        until: u64,
        mut visit: impl FnMut(u64, InvoiceNumber) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let family = self.family(INVOICE_ORDER)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        let start = invoice_order_key(center, year, from);
        let end = invoice_order_key(center, year, until);
        // A group is keyed by its first sequence, so the one holding `from` may start
        // before it: begin at the center-year's last key at or before `from`.
        let prefix = &start[..start.len() - 8];
        iterator.seek_for_prev(&start);
        if !iterator.key().is_some_and(|key| key.starts_with(prefix)) {
            iterator.seek(&start);
        }
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            if key >= end.as_slice() {
                break;
            }
            let (_, _, first) =
                parse_invoice_order_key(key).map_err(|error| corrupt_order(key, &error.reason))?;
            let entries = decode_invoice_order_value(first, value)
                .map_err(|error| corrupt_order(key, &error.reason))?;
            for (sequence, number) in entries {
                if sequence < from {
                    continue;
                }
                if sequence >= until {
                    return Ok(());
                }
                if visit(sequence, number).is_break() {
                    return Ok(());
                }
            }
            iterator.next();
        }
        iterator.status()?;
        Ok(())
    }

    /// Looks up whether the order index holds these (center, year, sequence) keys, and
    /// the invoice numbers it holds for them. Each is found in the group at or before
    /// its sequence; a group is decoded once for all the keys in a row that fall in it.
    pub fn invoice_order_entries(
        &self,
        keys: &[(Uscc, ProgrammeYear, u64)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let family = self.family(INVOICE_ORDER)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        // The last group decoded per center-year: its key and its entries.
        let mut groups: HashMap<(Uscc, ProgrammeYear), DecodedOrderGroup> = HashMap::new();
        let mut found = Vec::with_capacity(keys.len());
        for (center, year, sequence) in keys {
            let wanted = invoice_order_key(center, *year, *sequence);
            let cached = groups.get(&(*center, *year)).is_some_and(|(key, entries)| {
                key.as_slice() <= wanted.as_slice()
                    && entries.last().is_some_and(|(last, _)| last >= sequence)
            });
            if !cached {
                iterator.seek_for_prev(&wanted);
                iterator.status()?;
                let prefix = &wanted[..wanted.len() - 8];
                match (iterator.key(), iterator.value()) {
                    (Some(key), Some(value)) if key.starts_with(prefix) => {
                        let (_, _, first) = parse_invoice_order_key(key)
                            .map_err(|error| corrupt_order(key, &error.reason))?;
                        let entries = decode_invoice_order_value(first, value)
                            .map_err(|error| corrupt_order(key, &error.reason))?;
                        groups.insert((*center, *year), (key.to_vec(), entries));
                    }
                    _ => {
                        groups.remove(&(*center, *year));
                    }
                }
            }
            let number = groups.get(&(*center, *year)).and_then(|(_, entries)| {
                entries
                    .binary_search_by_key(sequence, |(at, _)| *at)
                    .ok()
                    .map(|place| entries[place].1.as_str().to_string())
            });
            found.push(number);
        }
        Ok(found)
    }

    /// Counts the entries of the order index (every group's invoices).
    pub fn count_invoice_order(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self
            .db
            .iterator_cf(self.family(INVOICE_ORDER)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let (_, _, first) = parse_invoice_order_key(&key)
                .map_err(|error| corrupt_order(&key, &error.reason))?;
            let entries = decode_invoice_order_value(first, &value)
                .map_err(|error| corrupt_order(&key, &error.reason))?;
            count += entries.len() as u64;
        }
        Ok(count)
    }

    /// Writes the batch's log part and, at once after it, its index part (see
    /// [`EventStore::commit_log`]).
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let pending = self.commit_log(batch)?;
        self.commit_index(pending)
    }

    /// Writes the batch's log part, with one fsync of the write-ahead log when `sync`:
    /// once this returns, the batch is durable and may be answered. Its index part is
    /// returned, to be written by [`EventStore::commit_index`] before the next batch;
    /// readers of the index wait until then. A batch of records always has an index part,
    /// if only the watermark; one without records or index entries (none to follow,
    /// [`CommitBatch::expect_index_part`]) returns nothing to write.
    pub fn commit_log(&self, mut batch: CommitBatch) -> Result<PendingIndexWrite, StoreError> {
        // The filter must know every key the write stores before any prefetch can see it.
        self.add_to_invoice_filter(&mut batch);
        let CommitBatch {
            batch: log,
            index,
            last_sequence,
            index_follows,
            ..
        } = batch;
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        // A pending or failed index part: this batch's watermark would cover records
        // whose entries are missing.
        self.index_gate.check_current()?;
        if index.is_empty() && !index_follows && last_sequence.is_none() {
            self.db.write_opt(log, &options)?;
            return Ok(PendingIndexWrite::nothing());
        }
        // A batch of records always has an index part, if only the watermark: the
        // watermark lives in the index's family and is written as the index is, without
        // the write-ahead log (format 6, `index_lag.rs`).
        let Some(through) = last_sequence else {
            // Index entries without records (a migration's rewrites): the watermark stays.
            self.db.write_opt(log, &options)?;
            return Ok(PendingIndexWrite {
                index,
                through: None,
                gate: None,
                awaiting_part: index_follows,
            });
        };
        self.index_gate.shut()?;
        if let Err(error) = self.db.write_opt(log, &options) {
            // Nothing of the batch is visible: the index is as current as before.
            self.index_gate.settle(Ok(()));
            return Err(error.into());
        }
        Ok(PendingIndexWrite {
            index,
            through: Some(through),
            gate: Some(std::sync::Arc::clone(&self.index_gate)),
            awaiting_part: index_follows,
        })
    }

    /// Writes a batch's index part and the index's watermark without RocksDB's
    /// write-ahead log (anything a crash takes is derived again from the log at the next
    /// open, `index_lag.rs`), and lets readers of the index in again.
    pub fn commit_index(&self, mut pending: PendingIndexWrite) -> Result<(), StoreError> {
        if pending.awaiting_part {
            // Dropping `pending` marks the index failed: readers get an error, and the
            // next open derives the batch's entries from the log.
            return Err(StoreError::Encode(format!(
                "the index part of the batch ending at sequence {} was never supplied; its watermark is not written",
                pending.through.unwrap_or(0)
            )));
        }
        if let Some(through) = pending.through {
            let family = self.family(INVOICES)?;
            pending
                .index
                .put_cf(family, INDEX_WATERMARK_KEY, encode_index_watermark(through));
        }
        let index = std::mem::take(&mut pending.index);
        let written = if index.is_empty() {
            Ok(())
        } else {
            // The index is derived from the log, which is durable before this write: a
            // second copy of it in the write-ahead log (and in every later fsync) would
            // buy nothing the next open cannot derive (5–9% of the rate at 1 M invoices,
            // issue 12, twenty-ninth round). RocksDB persists the family's memtables in
            // order, so the watermark that survives a crash never names lost entries.
            let mut options = WriteOptions::default();
            options.disable_wal(true);
            self.db.write_opt(index, &options)
        };
        if let Some(gate) = pending.gate.take() {
            gate.settle(
                written
                    .as_ref()
                    .map(|_| ())
                    .map_err(|error| format!("writing the invoice index failed: {error}")),
            );
        }
        Ok(written?)
    }

    /// Waits until no batch's index part is pending (see `index_lag.rs`).
    fn wait_for_index(&self) -> Result<(), StoreError> {
        self.index_gate.wait_until_current(INDEX_WRITE_WAIT_MAX)
    }

    /// The sequence of the last record, if any.
    pub fn last_sequence(&self) -> Result<Option<u64>, StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        iterator.seek_to_last();
        iterator.status()?;
        match (iterator.key(), iterator.value()) {
            (Some(key), Some(value)) => {
                let first = sequence_from_key(key)?;
                Ok(Some(
                    segment_last_sequence(first, value).map_err(corrupt_log)?,
                ))
            }
            _ => Ok(None),
        }
    }

    /// Visits records with sequence ≥ `from` in order, as (the sequence their place in
    /// the log gives them, bytes), until `visit` returns false; a damaged block is passed
    /// on as an error naming the first sequence it cannot deliver, and ends the scan.
    /// Raw: `log.rs` is the one reader that interprets the records.
    pub(super) fn scan_records(
        &self,
        from: u64,
        mut visit: impl FnMut(Result<(u64, &[u8]), RecordError>) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_segments(from, |first, value| {
            for item in segment_records(first, value) {
                match item {
                    Ok((sequence, _)) if sequence < from => continue,
                    Ok(record) => {
                        if !visit(Ok(record)) {
                            return false;
                        }
                    }
                    Err(error) => {
                        visit(Err(error));
                        return false;
                    }
                }
            }
            true
        })
    }

    /// Visits the log's segments (first sequence, stored value: one bare record or a
    /// block, `block.rs`) in order from the one holding `from` on, until `visit` returns
    /// false. The records before `from` in the first one are the visitor's to skip.
    pub(super) fn scan_segments(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf_opt(family, read_once());
        // The segment holding `from` starts at or before it.
        iterator.seek_for_prev(from.to_be_bytes());
        if !iterator.valid() {
            iterator.status()?;
            iterator.seek(from.to_be_bytes());
        }
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            if !visit(sequence_from_key(key)?, value) {
                break;
            }
            iterator.next();
        }
        iterator.status()?;
        Ok(())
    }

    /// The segment (first sequence, stored value) that holds `sequence`, if stored.
    fn segment_holding(&self, sequence: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        iterator.seek_for_prev(sequence.to_be_bytes());
        iterator.status()?;
        match (iterator.key(), iterator.value()) {
            (Some(key), Some(value)) => Ok(Some((sequence_from_key(key)?, value.to_vec()))),
            _ => Ok(None),
        }
    }

    /// The bytes of record `sequence` (its frame, as `record.rs` reads it), if stored.
    pub fn record(&self, sequence: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        iterator.seek_for_prev(sequence.to_be_bytes());
        iterator.status()?;
        let (Some(key), Some(value)) = (iterator.key(), iterator.value()) else {
            return Ok(None);
        };
        let first = sequence_from_key(key)?;
        Ok(super::block::find_record(first, value, sequence)
            .map_err(corrupt_log)?
            .map(|range| value[range].to_vec()))
    }

    /// An invoice's index entry, if the index has one (waiting while a batch's index
    /// part is pending).
    pub fn invoice(
        &self,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
    ) -> Result<Option<InvoiceEntry>, StoreError> {
        self.wait_for_index()?;
        let key = invoice_key(center, invoice_number);
        if let Some(entry) = self
            .index_tail
            .as_ref()
            .and_then(|tail| tail.entries.get(&key))
        {
            return Ok(Some(entry.clone()));
        }
        self.invoice_as_stored(&key)
    }

    /// The entry stored under an index key, as RocksDB holds it (no wait, no tail).
    pub(super) fn invoice_as_stored(&self, key: &[u8]) -> Result<Option<InvoiceEntry>, StoreError> {
        match self.db.get_pinned_cf(self.family(INVOICES)?, key)? {
            Some(bytes) => Ok(Some(decode_entry(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Looks many invoices up at once (one RocksDB multi-get), in the order asked
    /// (waiting while a batch's index part is pending).
    pub fn invoices(
        &self,
        wanted: &[(Uscc, InvoiceNumber)],
    ) -> Result<Vec<Option<InvoiceEntry>>, StoreError> {
        self.wait_for_index()?;
        let family = self.family(INVOICES)?;
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(center, number)| invoice_key(center, number))
            .collect();
        let mut entries = Vec::with_capacity(keys.len());
        for (key, found) in keys
            .iter()
            .zip(self.db.batched_multi_get_cf(family, &keys, false))
        {
            let derived = self
                .index_tail
                .as_ref()
                .and_then(|tail| tail.entries.get(key));
            match (derived, found?) {
                (Some(entry), _) => entries.push(Some(entry.clone())),
                (None, Some(bytes)) => entries.push(Some(decode_entry(key, &bytes)?)),
                (None, None) => entries.push(None),
            }
        }
        Ok(entries)
    }

    /// Whether the index may hold each invoice, one answer per invoice in `answers`:
    /// `false` only when the in-memory filter (complete) rules it out. The filter's loads
    /// are issued together (see [`InvoiceFilter::may_contain_each`]). Only for the
    /// writer: it sees every insertion into the filter made for earlier batches (its own,
    /// or the encoder's, which happen before the encoder hands the batch back).
    pub fn invoices_may_exist<'a>(
        &self,
        invoices: impl Iterator<Item = (&'a Uscc, &'a InvoiceNumber)>,
        answers: &mut Vec<bool>,
    ) {
        let mut key = Vec::new();
        let places = invoices.map(|(center, invoice_number)| {
            invoice_key_into(center, invoice_number, &mut key);
            self.invoice_filter.place_of(&key)
        });
        self.invoice_filter.may_contain_each(places, answers);
    }

    /// The writer's prefetch: as [`EventStore::invoices`], but invoices the in-memory
    /// filter knows to be absent are answered `None` without asking RocksDB. Only for
    /// the writer (see [`EventStore::invoices_may_exist`]).
    pub fn prefetch_invoices(
        &self,
        wanted: &[(Uscc, InvoiceNumber)],
    ) -> Result<Vec<Option<InvoiceEntry>>, StoreError> {
        let family = self.family(INVOICES)?;
        let mut entries: Vec<Option<InvoiceEntry>> = vec![None; wanted.len()];
        let mut places = Vec::new();
        let mut keys = Vec::new();
        // One buffer for every key the filter rules out (most of them, for new invoices).
        let mut key = Vec::new();
        let filter = self.invoice_filter.current();
        for (place, (center, number)) in wanted.iter().enumerate() {
            invoice_key_into(center, number, &mut key);
            if filter.may_contain(&key) {
                places.push(place);
                keys.push(key.clone());
            }
        }
        if keys.is_empty() {
            return Ok(entries);
        }
        for ((place, key), found) in places
            .into_iter()
            .zip(&keys)
            .zip(self.db.batched_multi_get_cf(family, &keys, false))
        {
            if let Some(bytes) = found? {
                entries[place] = Some(decode_entry(key, &bytes)?);
            }
        }
        Ok(entries)
    }

    /// Fills the in-memory invoice filter with every key of the index, then marks it
    /// complete (unless [`EventStore::stop_invoice_filter`] stopped it first). Run once,
    /// on a thread of its own, after opening; lookups work meanwhile, without the filter.
    pub fn fill_invoice_filter(&self) -> Result<(), StoreError> {
        let filter = self.invoice_filter.current();
        if let Some(scanned) = self.scan_index_into(&filter)? {
            filter.mark_complete();
            self.invoice_filter.note_scanned(scanned);
        }
        Ok(())
    }

    /// Inserts every key of the invoice index into `filter`; the keys scanned, or `None`
    /// if [`EventStore::stop_invoice_filter`] stopped the scan.
    fn scan_index_into(&self, filter: &InvoiceFilter) -> Result<Option<u64>, StoreError> {
        let family = self.family(INVOICES)?;
        let mut iterator = self.db.raw_iterator_cf_opt(family, read_once());
        iterator.seek_to_first();
        let mut scanned = 0u64;
        while let Some(key) = iterator.key() {
            if key == INDEX_WATERMARK_KEY {
                // The watermark, after every invoice key.
                iterator.next();
                continue;
            }
            filter.insert(key);
            scanned += 1;
            if scanned.is_multiple_of(4_096) && self.invoice_filter.stopping() {
                return Ok(None);
            }
            iterator.next();
        }
        iterator.status()?;
        Ok((!self.invoice_filter.stopping()).then_some(scanned))
    }

    /// Whether [`EventStore::grow_invoice_filter_if_due`] would start a larger filter.
    pub fn invoice_filter_growth_due(&self) -> bool {
        self.invoice_filter.growth_due()
    }

    /// Starts a larger invoice filter if the index has outgrown the one in use (see
    /// `invoice_filter.rs`): returns it, to be filled by
    /// [`EventStore::fill_grown_invoice_filter`] on another thread. Only for the writer,
    /// between batches: after the previous batch's index part is written and before the
    /// next batch puts a key.
    pub fn grow_invoice_filter_if_due(&self) -> Option<Arc<InvoiceFilter>> {
        self.invoice_filter.begin_growth()
    }

    /// Fills `grown` (from [`EventStore::grow_invoice_filter_if_due`]) by a scan of the
    /// index, then puts it in use (`true`). If the scan is stopped (`false`) or fails, the
    /// filter in use stays.
    pub fn fill_grown_invoice_filter(
        &self,
        grown: &Arc<InvoiceFilter>,
    ) -> Result<bool, StoreError> {
        match self.scan_index_into(grown) {
            Ok(Some(_)) => {
                self.invoice_filter.finish_growth(grown);
                Ok(true)
            }
            Ok(None) => {
                self.invoice_filter.abandon_growth();
                Ok(false)
            }
            Err(error) => {
                self.invoice_filter.abandon_growth();
                Err(error)
            }
        }
    }

    /// Drops a larger invoice filter that no scan will fill.
    pub fn abandon_invoice_filter_growth(&self) {
        self.invoice_filter.abandon_growth();
    }

    /// The in-memory invoice filter's size in bytes, and whether a larger one is being
    /// filled.
    pub fn invoice_filter_size(&self) -> (usize, bool) {
        (self.invoice_filter.bytes(), self.invoice_filter.growing())
    }

    /// Writes every page of the invoice filter in use now, rather than under the first
    /// batches (see [`InvoiceFilter::write_every_page`]).
    pub fn write_invoice_filter_pages(&self) {
        self.invoice_filter.write_every_page();
    }

    /// Stops a running [`EventStore::fill_invoice_filter`] (the ledger is closing).
    pub fn stop_invoice_filter(&self) {
        self.invoice_filter.stop();
    }

    /// Whether the in-memory invoice filter is complete (brand-new invoices skip the
    /// index lookup).
    pub fn invoice_filter_complete(&self) -> bool {
        self.invoice_filter.is_complete()
    }

    /// Visits every invoice index entry in key order (center, then invoice number). An
    /// entry that does not decode is passed on as an error naming its key, so `verify`
    /// can report it and go on.
    pub fn scan_invoices(
        &self,
        mut visit: impl FnMut(Result<(Uscc, InvoiceNumber, InvoiceEntry), StoreError>),
    ) -> Result<(), StoreError> {
        self.wait_for_index()?;
        // A read-only store's derived entries are merged in key order; one replaces a
        // stored entry under the same key (a reversal of an invoice indexed before).
        let mut derived = self
            .index_tail
            .iter()
            .flat_map(|tail| tail.entries.iter())
            .peekable();
        let derived_item = |key: &[u8], entry: &InvoiceEntry| {
            parse_invoice_key(key)
                .map_err(|error| corrupt_entry(key, &error.reason))
                .map(|(center, number)| (center, number, entry.clone()))
        };
        for item in
            self.db
                .iterator_cf_opt(self.family(INVOICES)?, read_once(), IteratorMode::Start)
        {
            let (key, value) = item?;
            if &*key == INDEX_WATERMARK_KEY {
                // The watermark, after every invoice key; any other key is parsed below
                // and reported if it is not an invoice's.
                continue;
            }
            while let Some((derived_key, entry)) =
                derived.next_if(|(derived_key, _)| derived_key.as_slice() < &*key)
            {
                visit(derived_item(derived_key, entry));
            }
            if let Some((derived_key, entry)) =
                derived.next_if(|(derived_key, _)| derived_key.as_slice() == &*key)
            {
                visit(derived_item(derived_key, entry));
                continue;
            }
            let decoded = parse_invoice_key(&key)
                .map_err(|error| corrupt_entry(&key, &error.reason))
                .and_then(|(center, number)| Ok((center, number, decode_entry(&key, &value)?)));
            visit(decoded);
        }
        for (derived_key, entry) in derived {
            visit(derived_item(derived_key, entry));
        }
        Ok(())
    }

    /// Writes a snapshot of `image` (at `sequence`, whose record has `chain_hash`).
    pub fn put_snapshot(
        &self,
        sequence: u64,
        chain_hash: &ChainHash,
        image: &StateImage,
    ) -> Result<(), StoreError> {
        let framed = encode_snapshot(sequence, chain_hash, image);
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        self.db.put_cf_opt(
            self.family(SNAPSHOTS)?,
            sequence.to_be_bytes(),
            framed,
            &options,
        )?;
        Ok(())
    }

    /// Sequences of stored snapshots, newest first.
    pub fn snapshot_sequences(&self) -> Result<Vec<u64>, StoreError> {
        let mut sequences = Vec::new();
        for item in self
            .db
            .iterator_cf_opt(self.family(SNAPSHOTS)?, read_once(), IteratorMode::End)
        {
            let (key, _) = item?;
            sequences.push(sequence_from_key(&key)?);
        }
        Ok(sequences)
    }

    /// The format version a stored snapshot declares, without decoding it.
    pub fn snapshot_format_version(&self, sequence: u64) -> Result<Option<u16>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf_opt(
                self.family(SNAPSHOTS)?,
                sequence.to_be_bytes(),
                &read_once(),
            )?
            .and_then(|bytes| {
                bytes
                    .get(4..6)
                    .map(|version| u16::from_le_bytes([version[0], version[1]]))
            }))
    }

    /// The snapshot at `sequence`, checked and decoded.
    pub fn snapshot(&self, sequence: u64) -> Result<Option<StoredSnapshot>, StoreError> {
        match self.db.get_cf_opt(
            self.family(SNAPSHOTS)?,
            sequence.to_be_bytes(),
            &read_once(),
        )? {
            Some(bytes) => Ok(Some(decode_snapshot(sequence, &bytes).map_err(
                |error| StoreError::Corrupt {
                    what: format!("snapshot at sequence {sequence}"),
                    reason: error.reason,
                },
            )?)),
            None => Ok(None),
        }
    }

    pub fn delete_snapshot(&self, sequence: u64) -> Result<(), StoreError> {
        self.db
            .delete_cf(self.family(SNAPSHOTS)?, sequence.to_be_bytes())?;
        Ok(())
    }

    /// Raw access for tamper tests and repair tools: overwrite or delete a record, where
    /// it is stored (a bare record's key, or its place in a block). Deleting a record from
    /// a block cuts the block in two around it, as if it had never been written.
    pub fn overwrite_record_for_tests(
        &self,
        sequence: u64,
        bytes: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        let Some((first, value)) = self.segment_holding(sequence)? else {
            if let Some(bytes) = bytes {
                self.db.put_cf(family, sequence.to_be_bytes(), bytes)?;
            }
            return Ok(());
        };
        if !super::block::is_block(&value) {
            match (first == sequence, bytes) {
                (_, Some(bytes)) => self.db.put_cf(family, sequence.to_be_bytes(), bytes)?,
                (true, None) => self.db.delete_cf(family, sequence.to_be_bytes())?,
                (false, None) => {}
            }
            return Ok(());
        }
        let records: Vec<(u64, &[u8])> = segment_records(first, &value)
            .collect::<Result<_, _>>()
            .map_err(corrupt_log)?;
        if !records.iter().any(|(found, _)| *found == sequence) {
            if let Some(bytes) = bytes {
                self.db.put_cf(family, sequence.to_be_bytes(), bytes)?;
            }
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        match bytes {
            Some(bytes) => {
                let replaced: Vec<&[u8]> = records
                    .iter()
                    .map(|(found, record)| if *found == sequence { bytes } else { *record })
                    .collect();
                batch.put_cf(
                    family,
                    first.to_be_bytes(),
                    super::block::block_of(first, &replaced),
                );
            }
            None => {
                let before: Vec<&[u8]> = records
                    .iter()
                    .filter(|(found, _)| *found < sequence)
                    .map(|(_, record)| *record)
                    .collect();
                let after: Vec<&[u8]> = records
                    .iter()
                    .filter(|(found, _)| *found > sequence)
                    .map(|(_, record)| *record)
                    .collect();
                batch.delete_cf(family, first.to_be_bytes());
                if !before.is_empty() {
                    batch.put_cf(
                        family,
                        first.to_be_bytes(),
                        super::block::block_of(first, &before),
                    );
                }
                if !after.is_empty() {
                    batch.put_cf(
                        family,
                        (sequence + 1).to_be_bytes(),
                        super::block::block_of(sequence + 1, &after),
                    );
                }
            }
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Makes everything written durable: the write-ahead log synced, and the invoice
    /// index, written without it, flushed to its table files (RocksDB would flush it when
    /// the database closes, but only logs a failure there).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        self.db.flush_cf(self.family(INVOICES)?)?;
        Ok(())
    }

    /// Entries of the invoice index (the watermark's puts among them) in its memtables,
    /// not yet in a table file: what a crash would take of the index now, and what a
    /// read-only view opened now would derive from the log (`index_lag.rs`).
    pub fn invoice_index_unflushed_entries(&self) -> Result<u64, StoreError> {
        let family = self.family(INVOICES)?;
        let mut entries = 0u64;
        for property in [
            "rocksdb.num-entries-active-mem-table",
            "rocksdb.num-entries-imm-mem-tables",
        ] {
            entries += self
                .db
                .property_int_value_cf(family, property)?
                .unwrap_or(0);
        }
        Ok(entries)
    }

    /// Flushes the invoice index's memtables to a table file and waits for it, so a crash
    /// or a read-only view no longer has to derive those entries from the log. Only whole
    /// index parts are in a memtable (each is one write), so a flush never splits one from
    /// its watermark. The server calls it when it has been idle a while
    /// (`api/index_flusher.rs`); writes go on into a fresh memtable meanwhile.
    pub fn flush_invoice_index(&self) -> Result<(), StoreError> {
        self.db.flush_cf(self.family(INVOICES)?)?;
        Ok(())
    }
}

impl EventStore {
    // ------------------------------------------------------------------ checkpoints

    /// Whether this directory has the checkpoints family (format 3 on; a format 1 or 2
    /// directory opened read-only has none).
    pub fn has_checkpoints(&self) -> bool {
        self.db.cf_handle(CHECKPOINTS).is_some()
    }

    /// Stores a signed checkpoint (synced when the store syncs).
    pub fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        self.db.put_cf_opt(
            self.family(CHECKPOINTS)?,
            checkpoint.sequence.to_be_bytes(),
            checkpoint.encode(),
            &options,
        )?;
        Ok(())
    }

    /// Stored checkpoints with sequence ≥ `from`, in order, at most `limit`. A value that
    /// does not decode is an error naming its sequence.
    pub fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
        if !self.has_checkpoints() {
            return Ok(Vec::new());
        }
        let mut iterator = self.db.raw_iterator_cf(self.family(CHECKPOINTS)?);
        iterator.seek(from.to_be_bytes());
        let mut found = Vec::new();
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            if found.len() >= limit {
                break;
            }
            found.push(decode_checkpoint(sequence_from_key(key)?, value)?);
            iterator.next();
        }
        iterator.status()?;
        Ok(found)
    }

    /// The checkpoint of `sequence`, if one was signed.
    pub fn checkpoint(&self, sequence: u64) -> Result<Option<Checkpoint>, StoreError> {
        if !self.has_checkpoints() {
            return Ok(None);
        }
        match self
            .db
            .get_pinned_cf(self.family(CHECKPOINTS)?, sequence.to_be_bytes())?
        {
            Some(bytes) => Ok(Some(decode_checkpoint(sequence, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The newest stored checkpoint.
    pub fn newest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        if !self.has_checkpoints() {
            return Ok(None);
        }
        let mut iterator = self.db.raw_iterator_cf(self.family(CHECKPOINTS)?);
        iterator.seek_to_last();
        iterator.status()?;
        match (iterator.key(), iterator.value()) {
            (Some(key), Some(value)) => {
                Ok(Some(decode_checkpoint(sequence_from_key(key)?, value)?))
            }
            _ => Ok(None),
        }
    }

    /// Raw access for tamper tests: delete every stored checkpoint (what an insider
    /// with the directory can do; only copies kept elsewhere reveal it).
    pub fn delete_checkpoints_for_tests(&self) -> Result<(), StoreError> {
        for checkpoint in self.checkpoints(0, usize::MAX)? {
            self.db
                .delete_cf(self.family(CHECKPOINTS)?, checkpoint.sequence.to_be_bytes())?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------- backups

    /// Writes a RocksDB checkpoint of this (open, writable) store into `target`, which
    /// must not exist: the memtables are flushed and the table files hard-linked (copied
    /// across filesystems). It holds exactly what had been written when it was made.
    pub fn create_rocksdb_checkpoint(&self, target: &Path) -> Result<(), StoreError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        checkpoint.create_checkpoint(target)?;
        Ok(())
    }

    /// Copies every key of every family, and the format marker, into a new store at
    /// `target` (a logical copy). For a read-only view of a live server's directory,
    /// which RocksDB's own checkpoint cannot use (it must flush, a read-only instance
    /// cannot): the view is fixed when it was opened, so the copy is consistent.
    pub fn copy_into(&self, target: &Path) -> Result<(), StoreError> {
        let copy = EventStore::open(target, false)?;
        if copy.last_sequence()?.is_some() {
            return Err(StoreError::Format {
                path: copy.path.clone(),
                reason: "already holds events; a copy needs an empty directory".into(),
            });
        }
        for name in FAMILIES {
            let Some(source) = self.db.cf_handle(name) else {
                continue;
            };
            let family = copy.family(name)?;
            let mut batch = WriteBatch::default();
            for item in self.db.iterator_cf(source, IteratorMode::Start) {
                let (key, value) = item?;
                batch.put_cf(family, key, value);
                if batch.len() >= COPY_BATCH_KEYS {
                    copy.db.write(std::mem::take(&mut batch))?;
                }
            }
            copy.db.write(batch)?;
        }
        if let Some(marker) = self.db.get(FORMAT_KEY)? {
            copy.db.put(FORMAT_KEY, marker)?;
        }
        // The index's watermark travels with the index it describes: in its family
        // (format 6), copied with it above, or in the `default` family of a format 5
        // source, whose marker the copy takes (a copy without it would derive its whole
        // index from the log at its next open; one behind the log is brought up to it
        // then, as the original would be).
        if let Some(watermark) = self.db.get(FORMAT_5_INDEX_WATERMARK_KEY)? {
            copy.db.put(FORMAT_5_INDEX_WATERMARK_KEY, watermark)?;
        }
        copy.db.flush_wal(true)?;
        for name in FAMILIES {
            copy.db.flush_cf(copy.family(name)?)?;
        }
        copy.db.flush()?;
        Ok(())
    }

    // ---------------------------------------------------------------------- metrics

    /// RocksDB's own figures that warn of trouble, read now, as (property, column family
    /// or "" for the whole database, value). Unknown properties are left out.
    pub fn rocksdb_figures(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut figures = Vec::with_capacity(32);
        for property in [
            "rocksdb.is-write-stopped",
            "rocksdb.actual-delayed-write-rate",
        ] {
            if let Ok(Some(value)) = self.db.property_int_value(property) {
                figures.push((property, "", value));
            }
        }
        for name in FAMILIES {
            let Some(family) = self.db.cf_handle(name) else {
                continue;
            };
            for property in [
                "rocksdb.estimate-pending-compaction-bytes",
                "rocksdb.cur-size-all-mem-tables",
                "rocksdb.live-sst-files-size",
                "rocksdb.block-cache-usage",
                "rocksdb.estimate-table-readers-mem",
            ] {
                if let Ok(Some(value)) = self.db.property_int_value_cf(family, property) {
                    figures.push((property, name, value));
                }
            }
        }
        figures
    }
}

/// Keys per write while copying a store.
const COPY_BATCH_KEYS: usize = 65_536;

fn decode_checkpoint(sequence: u64, bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    let checkpoint = Checkpoint::decode(bytes).map_err(|error| StoreError::Corrupt {
        what: format!("checkpoint at sequence {sequence}"),
        reason: error.reason,
    })?;
    if checkpoint.sequence != sequence {
        return Err(StoreError::Corrupt {
            what: format!("checkpoint at sequence {sequence}"),
            reason: format!("it says it is of sequence {}", checkpoint.sequence),
        });
    }
    Ok(checkpoint)
}

/// A value of the invoice order that does not decode, named by its key's center, year and
/// first sequence (or by the key's bytes when the key itself is broken).
fn corrupt_order(key: &[u8], reason: &str) -> StoreError {
    let what = match parse_invoice_order_key(key) {
        Ok((center, year, sequence)) => {
            format!("invoice order entry of center {center} year {year} at sequence {sequence}")
        }
        Err(_) => format!("invoice order key {key:02x?}"),
    };
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn corrupt_entry(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("invoice index entry {}", String::from_utf8_lossy(key)),
        reason: reason.to_string(),
    }
}

pub(super) fn corrupt_log(error: RecordError) -> StoreError {
    StoreError::Corrupt {
        what: "the event log".into(),
        reason: error.to_string(),
    }
}

fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<InvoiceEntry, StoreError> {
    decode_index_entry(bytes).map_err(|error| corrupt_entry(key, &error.reason))
}

fn sequence_from_key(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        what: "event key".into(),
        reason: format!("{} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// The write-ahead log files in the data directory, by number, with their sizes.
    fn wal_files(path: &Path) -> BTreeMap<u64, u64> {
        std::fs::read_dir(path)
            .expect("the data directory lists")
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let number = name.strip_suffix(".log")?.parse().ok()?;
                Some((number, entry.metadata().ok()?.len()))
            })
            .collect()
    }

    /// Bytes of the write-ahead log files a reopen would replay: those RocksDB still needs.
    fn live_wal_bytes(store: &EventStore, path: &Path) -> u64 {
        let oldest_needed = store
            .db
            .property_int_value("rocksdb.min-log-number-to-keep")
            .expect("the property reads")
            .expect("RocksDB has the property");
        wal_files(path)
            .range(oldest_needed..)
            .map(|(_, bytes)| bytes)
            .sum()
    }

    /// Commits one record of `bytes` at `sequence`.
    fn commit_one_record(store: &EventStore, sequence: u64, bytes: &[u8]) {
        let mut batch = CommitBatch::default();
        store
            .put_record(&mut batch, sequence, bytes)
            .expect("a record is added");
        store.commit(batch).expect("the batch commits");
    }

    /// Opens a store with `wal_bytes_max`, writes 8 MiB of log records (far below one
    /// memtable, so nothing flushes on its own; the format marker in the default family is
    /// the rarely written family that pins the oldest log file), and returns the bytes of
    /// write-ahead log left on disk: once it is at most `expected_at_most`, or after
    /// `patience`. RocksDB checks the limit when a write arrives and flushes on its own thread,
    /// so while waiting the test goes on writing a small record every 20 ms, as a server
    /// under load does.
    fn wal_left_after_8_mib(wal_bytes_max: u64, expected_at_most: u64, patience: Duration) -> u64 {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open_with_wal_limit(
            directory.path(),
            false,
            wal_bytes_max,
            StoreSettings::default(),
        )
        .expect("the store opens");
        let caught_up = store.catch_up_index();
        let store = store.finish(caught_up);
        let record = vec![0x5a_u8; 64 * 1024];
        for batch_number in 0..16_u64 {
            let mut batch = CommitBatch::default();
            for index in 0..8_u64 {
                store
                    .put_record(&mut batch, 1 + batch_number * 8 + index, &record)
                    .expect("a record is added");
            }
            store.commit(batch).expect("the batch commits");
        }
        let deadline = Instant::now() + patience;
        let mut sequence = 16 * 8;
        while live_wal_bytes(&store, directory.path()) > expected_at_most
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
            sequence += 1;
            commit_one_record(&store, sequence, b"small");
        }
        live_wal_bytes(&store, directory.path())
    }

    /// A store with one record whose log part is written and whose index part is to be
    /// built apart, and the pending index part.
    fn log_part_awaiting_its_index_part(directory: &Path) -> (EventStore, PendingIndexWrite) {
        let store = EventStore::open(directory, false).expect("the store opens");
        let mut batch = CommitBatch::default();
        store
            .put_record(&mut batch, 1, b"a record")
            .expect("a record is added");
        batch.expect_index_part();
        let pending = store.commit_log(batch).expect("the log part is written");
        (store, pending)
    }

    #[test]
    fn an_index_part_built_apart_and_never_supplied_moves_no_watermark() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let (store, pending) = log_part_awaiting_its_index_part(directory.path());
        // The log part did not carry the watermark, though its own index part was empty.
        assert_eq!(store.index_watermark().expect("watermark"), 0);
        let error = store
            .commit_index(pending)
            .expect_err("written without its part");
        assert!(error.to_string().contains("sequence 1"), "{error}");
        assert_eq!(store.index_watermark().expect("watermark"), 0);
        // Readers and the next log part are told, instead of reading a short index.
        assert!(store.index_gate.check_current().is_err());
    }

    #[test]
    fn an_index_part_built_apart_is_written_once_supplied() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let (store, mut pending) = log_part_awaiting_its_index_part(directory.path());
        let part = store
            .index_part_of(&mut DeferredIndexEntries::default())
            .expect("an empty part");
        assert!(part.is_empty());
        store
            .complete_index_part(&mut pending, part, &[])
            .expect("supplied");
        store.commit_index(pending).expect("written");
        assert_eq!(store.index_watermark().expect("watermark"), 1);
        assert!(store.index_gate.check_current().is_ok());
    }

    #[test]
    fn an_index_part_reserves_room_for_its_entries_and_what_the_writer_puts_after_them() {
        use crate::domain::event::InvoiceRedeemed;
        use crate::domain::ids::{Date, DeliveryProof, InvoiceNumber, VoucherId};
        use crate::domain::money::Money;

        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open(directory.path(), false).expect("the store opens");
        let center = crate::tooling::population::uscc("91330100MA", 1).expect("a USCC");
        let redeemed = |index: u64| InvoiceRedeemed {
            voucher: VoucherId::from_u128(u128::from(index % 7) + 1),
            center,
            invoice_number: InvoiceNumber::parse(&format!("INV-{index:012}")).expect("a number"),
            amount: Money::from_fen(10_000).expect("an amount"),
            issue_date: Date::from_ymd(2026, 3, 1).expect("a date"),
            delivery_proof: DeliveryProof::parse("DLV-2026-000001").expect("a proof"),
            subsidy: Money::from_fen(3_000).expect("a subsidy"),
            payment_proof: None,
            second_subsidy: Money::ZERO,
        };
        // Given a batch's 2,000 deferred entries, built into a part.
        let mut log = CommitBatch::default();
        let mut deferred = DeferredIndexEntries::default();
        for index in 0..2_000 {
            store.defer_redeemed_invoice(&mut log, &mut deferred, index + 1, &redeemed(index));
        }
        log.expect_index_part();
        let mut pending = store.commit_log(log).expect("the log part is written");
        let room = index_part_room(&deferred, deferred.entries.len());
        let part = store.index_part_of(&mut deferred).expect("the part");
        // When the writer puts a reversal after the entries, then the watermark (as
        // `commit_index` does for a part that follows records).
        let reversed = sample_entry(Some(2_001));
        let number = InvoiceNumber::parse("INV-000000000000").expect("a number");
        store
            .complete_index_part(&mut pending, part, &[(center, number, reversed)])
            .expect("supplied");
        pending.index.put_cf(
            store.family(INVOICES).expect("the invoices family"),
            INDEX_WATERMARK_KEY,
            encode_index_watermark(2_000),
        );
        // Then everything fits in the room the part reserved: RocksDB's buffer never
        // grew (a growth copies the whole part into freshly faulted memory).
        let written = pending.index.data().len();
        assert!(written <= room, "{written} bytes in a room of {room}");
        store.commit_index(pending).expect("written");
        assert_eq!(store.index_watermark().expect("watermark"), 2_000);
    }

    /// Writes `entries` (key, value) into the invoice index and flushes them into a table.
    fn write_index_table(store: &EventStore, entries: impl Iterator<Item = (String, Vec<u8>)>) {
        let family = store.family(INVOICES).expect("the invoices family");
        for (key, value) in entries {
            store
                .db
                .put_cf(family, key.as_bytes(), value)
                .expect("an entry is written");
        }
        store.db.flush_cf(family).expect("the memtable flushes");
    }

    #[test]
    fn filling_the_invoice_filter_does_not_fill_the_block_cache() {
        // Given an index of 20,000 entries (~2.4 MB) in a table file.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open(directory.path(), false).expect("the store opens");
        write_index_table(
            &store,
            (0..20_000_u32).map(|number| {
                let key = format!("91330100MA0000000C/INV-{number:08}");
                (key, vec![0x11_u8; 96])
            }),
        );
        let before = block_cache_bytes(&store, INVOICES);
        // When the filter is filled (a scan of every key), the cache grows by no more
        // than the table's index and filter blocks.
        store.fill_invoice_filter().expect("the filter fills");
        assert!(store.invoice_filter_complete());
        let after_filter = block_cache_bytes(&store, INVOICES);
        assert!(
            after_filter.saturating_sub(before) < 256 << 10,
            "the filter's scan added {} bytes to the block cache",
            after_filter.saturating_sub(before)
        );
        // Control: a plain scan does keep the data blocks, so the check above can fail.
        scan_filling_the_cache(&store, INVOICES);
        let after_plain_scan = block_cache_bytes(&store, INVOICES);
        assert!(
            after_plain_scan.saturating_sub(after_filter) > 1 << 20,
            "a plain scan added only {} bytes to the block cache (before {before}, after the filter {after_filter})",
            after_plain_scan.saturating_sub(after_filter)
        );
    }

    /// Reads every entry of `family` with RocksDB's default read options (which keep the
    /// blocks in the cache): the tests' control.
    fn scan_filling_the_cache(store: &EventStore, family: &str) {
        let handle = store.family(family).expect("the family exists");
        let mut iterator = store.db.raw_iterator_cf(handle);
        iterator.seek_to_first();
        while iterator.valid() {
            iterator.next();
        }
    }

    /// Bytes the block cache `family` reads through holds.
    fn block_cache_bytes(store: &EventStore, family: &str) -> u64 {
        let handle = store.family(family).expect("the family exists");
        store
            .db
            .property_int_value_cf(handle, "rocksdb.block-cache-usage")
            .expect("the property reads")
            .expect("the property exists")
    }

    /// The capacity of the block cache `family` reads through, as RocksDB reports it.
    fn block_cache_capacity(store: &EventStore, family: &str) -> Option<u64> {
        let handle = store.family(family).expect("the family exists");
        store
            .db
            .property_int_value_cf(handle, "rocksdb.block-cache-capacity")
            .expect("the property reads")
    }

    /// A store holding 2,000 log records of 4 KiB (8 MB in table files), a stored
    /// snapshot of 4 MB and 20,000 invoice-index entries in a table file.
    fn store_with_tables(directory: &Path) -> EventStore {
        let store = EventStore::open(directory, false).expect("the store opens");
        let record = vec![0x5a_u8; 4096];
        for batch_number in 0..20_u64 {
            let mut batch = CommitBatch::default();
            for index in 0..100_u64 {
                store
                    .put_record(&mut batch, 1 + batch_number * 100 + index, &record)
                    .expect("a record is added");
            }
            store.commit(batch).expect("the batch commits");
        }
        let snapshots = store.family(SNAPSHOTS).expect("the snapshots family");
        store
            .db
            .put_cf(snapshots, 2_000_u64.to_be_bytes(), vec![0x33_u8; 4 << 20])
            .expect("a snapshot is written");
        let invoices = store.family(INVOICES).expect("the invoices family");
        for number in 0..20_000_u32 {
            let key = format!("91330100MA0000000C/INV-{number:08}");
            store
                .db
                .put_cf(invoices, key.as_bytes(), [0x11_u8; 96])
                .expect("an entry is written");
        }
        for family in [EVENTS, SNAPSHOTS, INVOICES] {
            let handle = store.family(family).expect("the family exists");
            store.db.flush_cf(handle).expect("the memtable flushes");
        }
        store
    }

    #[test]
    fn the_default_block_cache_has_room_for_the_invoice_index_metadata_of_100_m_invoices() {
        // Given a table of 50,000 invoice-index entries of the load generator's sizes (a
        // 31-byte key: a center's USCC and an invoice number; an 80-byte entry).
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open(directory.path(), false).expect("the store opens");
        write_index_table(
            &store,
            (0..50_000_u64).map(|number| {
                let key = format!("91330100MA0000000C{number:013}");
                (key, vec![(number % 251) as u8; 80])
            }),
        );
        let invoices = store.family(INVOICES).expect("the invoices family");
        // When its index and filter blocks are weighed per entry.
        let properties = store
            .db
            .property_value_cf(invoices, "rocksdb.aggregated-table-properties")
            .expect("the property reads")
            .expect("RocksDB has the property");
        let property = |name: &str| {
            table_property(&properties, name)
                .unwrap_or_else(|| panic!("no {name:?} in the table's properties: {properties}"))
        };
        let entries = property("# entries");
        assert_eq!(entries, 50_000, "{properties}");
        let metadata = property("index block size") + property("filter block size");
        let per_entry = metadata as f64 / entries as f64;
        // Then they take 1-4 bytes an entry (2.24 in a 50 M run's tables), and the default
        // block cache holds those of 100 M invoices: lookups past the in-memory filter
        // find them cached rather than reading whole blocks of megabytes back.
        assert!(
            (1.0..4.0).contains(&per_entry),
            "{per_entry:.2} bytes of index and filter per entry: {properties}"
        );
        use crate::limits::INVOICE_INDEX_CACHED_INVOICES;
        let needed = per_entry * INVOICE_INDEX_CACHED_INVOICES as f64;
        assert!(
            BLOCK_CACHE_BYTES_DEFAULT as f64 >= needed,
            "the default block cache ({BLOCK_CACHE_BYTES_DEFAULT} bytes) is smaller than the \
             index and filter blocks of {INVOICE_INDEX_CACHED_INVOICES} invoices ({needed:.0})"
        );
    }

    /// The number of property `name` in RocksDB's text of table properties
    /// (`name=value; …`; a name may be followed by a note in parentheses).
    fn table_property(properties: &str, name: &str) -> Option<u64> {
        properties.split(';').find_map(|property| {
            let (key, value) = property.split_once('=')?;
            let key = key.trim();
            let named = key == name
                || key
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(" ("));
            if named {
                value.trim().parse().ok()
            } else {
                None
            }
        })
    }

    #[test]
    fn every_family_reads_through_one_bounded_block_cache() {
        // Given a store with tables in three families.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = store_with_tables(directory.path());
        // When the invoice index alone is read (a plain scan keeps its data blocks),
        scan_filling_the_cache(&store, INVOICES);
        // then every family reports the same cache holding them: with a cache per family
        // the others would report only their own few blocks.
        let held = block_cache_bytes(&store, INVOICES);
        assert!(
            held > 1 << 20,
            "the scan left only {held} bytes in the cache"
        );
        for family in FAMILIES {
            assert_eq!(
                block_cache_bytes(&store, family),
                held,
                "the {family} family reads through a cache of its own"
            );
            assert_eq!(
                block_cache_capacity(&store, family),
                Some(BLOCK_CACHE_BYTES_DEFAULT as u64),
                "{family}"
            );
        }
    }

    #[test]
    fn the_block_cache_has_the_size_the_settings_give() {
        // Given a store opened with a 12 MiB block cache, then every family reports it.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let settings = StoreSettings {
            block_cache_bytes: 12 << 20,
            ..StoreSettings::default()
        };
        let store =
            EventStore::open_with(directory.path(), false, settings).expect("the store opens");
        for family in FAMILIES {
            assert_eq!(
                block_cache_capacity(&store, family),
                Some(12 << 20),
                "{family}"
            );
        }
    }

    #[test]
    fn log_scans_and_snapshot_reads_leave_the_block_cache_as_it_was() {
        // Given a store with 8 MB of log records and a 4 MB snapshot in table files.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = store_with_tables(directory.path());
        let before = block_cache_bytes(&store, EVENTS);
        // When the whole log is scanned, as a replay does, and the snapshot is read as
        // an open does,
        let mut records = 0_u64;
        store
            .scan_records(1, |record| {
                assert!(record.is_ok(), "record {records} reads: {record:?}");
                records += 1;
                true
            })
            .expect("the log scans");
        assert_eq!(records, 2_000);
        assert_eq!(store.snapshot_sequences().expect("listed"), vec![2_000]);
        let _ = store.snapshot_format_version(2_000).expect("read");
        assert!(
            store.snapshot(2_000).is_err(),
            "the test's snapshot is not a valid one"
        );
        // then the cache holds no more than the tables' index blocks.
        let after = block_cache_bytes(&store, EVENTS);
        assert!(
            after.saturating_sub(before) < 256 << 10,
            "the reads added {} bytes to the block cache",
            after.saturating_sub(before)
        );
        // Control: a plain read of the same log does keep its blocks.
        scan_filling_the_cache(&store, EVENTS);
        let after_plain_scan = block_cache_bytes(&store, EVENTS);
        assert!(
            after_plain_scan.saturating_sub(after) > 4 << 20,
            "a plain scan added only {} bytes",
            after_plain_scan.saturating_sub(after)
        );
    }

    /// The text of the newest OPTIONS file RocksDB wrote into `directory`.
    fn newest_options_file(directory: &Path) -> Option<String> {
        let newest = std::fs::read_dir(directory)
            .expect("the directory lists")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("OPTIONS-"))
            })
            .max()?;
        std::fs::read_to_string(newest).ok()
    }

    /// The value of `option` in the `[CFOptions "family"]` section of the newest OPTIONS
    /// file RocksDB wrote into `directory` (what the store really opened with).
    fn family_option(directory: &Path, family: &str, option: &str) -> Option<String> {
        let text = newest_options_file(directory)?;
        let header = format!("[CFOptions \"{family}\"]");
        let section = text.split(&header).nth(1)?;
        let section = section.split("\n[").next()?;
        section.lines().find_map(|line| {
            let (name, value) = line.trim().split_once('=')?;
            (name == option).then(|| value.to_string())
        })
    }

    #[test]
    fn the_invoice_index_waits_for_24_sorted_runs_universally_and_eight_level0_files_by_level() {
        // Given a new store with the default (universal) and one with levelled compaction,
        // when RocksDB records the options each opened with.
        let (universal_directory, leveled_directory) = universal_and_leveled_directories();
        let option = |directory: &tempfile::TempDir, family, name| {
            family_option(directory.path(), family, name)
        };
        let trigger = "level0_file_num_compaction_trigger";
        let slowdown = "level0_slowdown_writes_trigger";
        let stop = "level0_stop_writes_trigger";
        // Then universally the index compacts at 24 runs, and slows and stops writes only
        // at two and three times that (RocksDB's 20 and 36 would hold writes before the
        // first compaction could start); by level, at eight level-0 files, with RocksDB's
        // write limits.
        for (directory, name, expected) in [
            (&universal_directory, trigger, "24"),
            (&universal_directory, slowdown, "48"),
            (&universal_directory, stop, "72"),
            (&leveled_directory, trigger, "8"),
            (&leveled_directory, slowdown, "20"),
            (&leveled_directory, stop, "36"),
        ] {
            assert_eq!(
                option(directory, INVOICES, name).as_deref(),
                Some(expected),
                "{name}"
            );
        }
        // The log keeps RocksDB's defaults either way.
        for directory in [&universal_directory, &leveled_directory] {
            assert_eq!(option(directory, EVENTS, trigger).as_deref(), Some("4"));
            assert_eq!(option(directory, EVENTS, slowdown).as_deref(), Some("20"));
        }
    }

    #[test]
    fn the_invoice_index_alone_is_compacted_universally_unless_leveled_is_chosen() {
        // Given a store opened with the default and one opened with levelled compaction.
        let (universal_directory, leveled_directory) = universal_and_leveled_directories();
        // When RocksDB records the options each opened with.
        let option = |directory: &tempfile::TempDir, family, name| {
            family_option(directory.path(), family, name)
        };
        // Then the default compacts the index universally, with RocksDB's size
        // amplification trigger raised, and the other families by level.
        assert_eq!(
            option(&universal_directory, INVOICES, "compaction_style").as_deref(),
            Some("kCompactionStyleUniversal")
        );
        let universal_options = option(
            &universal_directory,
            INVOICES,
            "compaction_options_universal",
        )
        .expect("the index's universal options");
        assert!(
            universal_options.contains("max_size_amplification_percent=100000;"),
            "the index's universal options: {universal_options}"
        );
        for family in [EVENTS, INVOICE_ORDER, SNAPSHOTS] {
            assert_eq!(
                option(&universal_directory, family, "compaction_style").as_deref(),
                Some("kCompactionStyleLevel"),
                "{family}"
            );
        }
        assert_eq!(
            option(&leveled_directory, INVOICES, "compaction_style").as_deref(),
            Some("kCompactionStyleLevel")
        );
    }

    #[test]
    fn a_directory_compacted_by_level_reads_back_compacted_universally_and_back_again() {
        // Given a directory whose invoice index was compacted by level (every build before
        // the default changed did so), its tables below level 0.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let leveled = EventStore::open_with(directory.path(), false, leveled_settings())
            .expect("the store opens");
        write_and_compact(&leveled, 1, 500);
        drop(leveled);
        // When it is opened with the default (universal) and written and compacted again.
        let universal = EventStore::open(directory.path(), false).expect("the store opens");
        assert_reads_back(&universal, 500);
        write_and_compact(&universal, 501, 500);
        // Then the old entries and the new read back.
        assert_reads_back(&universal, 1_000);
        drop(universal);
        // And opened by level again, with more written and compacted, everything does too.
        let leveled = EventStore::open_with(directory.path(), false, leveled_settings())
            .expect("the store opens");
        assert_reads_back(&leveled, 1_000);
        write_and_compact(&leveled, 1_001, 500);
        assert_reads_back(&leveled, 1_500);
    }

    #[test]
    fn tables_are_written_with_direct_io_where_the_file_system_allows_it() {
        // Given a directory on a file system that takes O_DIRECT (the probe says so), when
        // a store opens there, then RocksDB writes its tables with direct I/O, and the
        // probe leaves no file behind.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let supported = direct_io_supported(directory.path());
        assert!(!directory.path().join(DIRECT_IO_PROBE).exists());
        let store = EventStore::open(directory.path(), false).expect("the store opens");
        drop(store);
        assert!(!directory.path().join(DIRECT_IO_PROBE).exists());
        let text = newest_options_file(directory.path()).expect("RocksDB wrote its options");
        let expected = format!("use_direct_io_for_flush_and_compaction={supported}");
        assert!(
            text.contains(&expected),
            "no {expected} in the OPTIONS file"
        );
    }

    #[test]
    fn a_directory_that_cannot_be_probed_is_taken_as_refusing_direct_io() {
        // A path under a regular file can be neither created nor probed.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let file = directory.path().join("a-file");
        std::fs::write(&file, b"not a directory").expect("write");
        assert!(!direct_io_supported(&file.join("data")));
    }

    /// An index entry of 100.00 redeemed at sequence 1 (reversed at `reversed_at`).
    fn sample_entry(reversed_at: Option<u64>) -> crate::domain::state::InvoiceEntry {
        use crate::domain::ids::{Date, DeliveryProof, VoucherId};
        use crate::domain::money::Money;
        crate::domain::state::InvoiceEntry {
            voucher: VoucherId::from_u128(1),
            amount: Money::from_fen(10_000).expect("an amount"),
            issue_date: Date::from_ymd(2026, 3, 1).expect("a date"),
            delivery_proof: DeliveryProof::parse("DLV-2026-000001").expect("a proof"),
            subsidy: Money::from_fen(3_000).expect("a subsidy"),
            second_subsidy: Money::ZERO,
            sequence: 1,
            reversed_at,
        }
    }

    /// Copies the files of `store`'s open directory into `copy`, as a crash would leave
    /// them: what RocksDB has written to its files, nothing of its memtables.
    fn crash_image(path: &Path, copy: &Path) {
        std::fs::create_dir_all(copy).expect("the copy's directory");
        for entry in std::fs::read_dir(path).expect("the directory lists") {
            let entry = entry.expect("an entry");
            if entry.file_name() != "LOCK" && entry.file_type().expect("a type").is_file() {
                std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copied");
            }
        }
    }

    #[test]
    fn the_index_is_written_without_the_write_ahead_log_and_a_crash_takes_its_watermark_with_it() {
        use crate::domain::ids::InvoiceNumber;

        // Given a store (format 6) that commits one record with 4,000 index entries.
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = EventStore::open(directory.path(), true).expect("the store opens");
        let center = crate::tooling::population::uscc("91330100MA", 1).expect("a USCC");
        let entry = sample_entry(None);
        let number =
            |index: u32| InvoiceNumber::parse(&format!("INV-{index:012}")).expect("a number");
        let wal_before: u64 = wal_files(directory.path()).values().sum();
        let mut batch = CommitBatch::default();
        store
            .put_record(&mut batch, 1, b"one record")
            .expect("a record is added");
        for index in 0..4_000 {
            store
                .put_invoice(&mut batch, &center, &number(index), &entry)
                .expect("an entry is added");
        }
        store.commit(batch).expect("the batch commits");
        // Then the index and its watermark are read back, the watermark from the index's
        // own family, and the write-ahead log grew by the record, not by ~300 KB of
        // entries.
        assert_eq!(store.index_watermark().expect("the watermark"), 1);
        assert!(store
            .invoice(&center, &number(3_999))
            .expect("a lookup")
            .is_some());
        let wal_grown = wal_files(directory.path()).values().sum::<u64>() - wal_before;
        assert!(
            wal_grown < 4_096,
            "the write-ahead log grew by {wal_grown} bytes"
        );
        assert!(store
            .db
            .get(FORMAT_5_INDEX_WATERMARK_KEY)
            .expect("reads")
            .is_none());
        // When the machine crashes before RocksDB flushes the index's memtable.
        let image = directory.path().join("crashed");
        crash_image(directory.path(), &image);
        drop(store);
        let crashed = EventStore::open_read_only(&image).expect("the image opens");
        // Then the record survived (it went through the synced log), and the index lost
        // its entries and its watermark together: the open sees an index behind the log
        // (and tries to derive the entries; this record is not an event, so it reports
        // that), never a watermark that names entries the crash took.
        assert_eq!(crashed.last_sequence().expect("reads"), Some(1));
        assert_eq!(crashed.index_watermark().expect("the watermark"), 0);
        assert!(crashed
            .db
            .get_cf(
                crashed.family(INVOICES).expect("family"),
                invoice_key(&center, &number(0))
            )
            .expect("reads")
            .is_none());
        assert!(crashed.check_index_caught_up().is_err());
        drop(crashed);
        // And a clean close flushes the index: the directory itself, reopened read-only,
        // holds every entry and the watermark.
        let reopened = EventStore::open_read_only(directory.path()).expect("reopens");
        assert_eq!(reopened.index_watermark().expect("the watermark"), 1);
        assert!(reopened.check_index_caught_up().is_ok());
        assert!(reopened
            .db
            .get_cf(
                reopened.family(INVOICES).expect("family"),
                invoice_key(&center, &number(3_999))
            )
            .expect("reads")
            .is_some());
    }

    #[test]
    fn the_write_ahead_log_is_bounded_whatever_family_was_written_last() {
        // Given a limit of 1 MiB, 8 MiB of writes leave no more than a few log files.
        let bounded = wal_left_after_8_mib(1 << 20, 4 << 20, Duration::from_secs(10));
        assert!(
            bounded <= 4 << 20,
            "{bounded} bytes of write-ahead log kept with a 1 MiB limit"
        );
        // Without a limit (RocksDB's default, what the store used before), all of it stays:
        // the check above is one that fails when the limit is not applied.
        let unbounded = wal_left_after_8_mib(0, 0, Duration::from_millis(300));
        assert!(
            unbounded >= 8 << 20,
            "only {unbounded} bytes of write-ahead log kept without a limit"
        );
    }

    /// Two new stores, opened and closed: one with the default settings (the invoice index
    /// compacted universally), one with it compacted by level.
    fn universal_and_leveled_directories() -> (tempfile::TempDir, tempfile::TempDir) {
        let universal = tempfile::tempdir().expect("a temporary directory");
        drop(EventStore::open(universal.path(), false).expect("the store opens"));
        let leveled = tempfile::tempdir().expect("a temporary directory");
        drop(
            EventStore::open_with(leveled.path(), false, leveled_settings())
                .expect("the store opens"),
        );
        (universal, leveled)
    }

    /// The default settings with the invoice index compacted by level.
    fn leveled_settings() -> StoreSettings {
        StoreSettings {
            invoice_index_compaction: IndexCompaction::Leveled,
            ..StoreSettings::default()
        }
    }

    /// The default settings with LZ4 below level 0.
    fn lz4_settings() -> StoreSettings {
        StoreSettings {
            table_compression: TableCompression::Lz4,
            ..StoreSettings::default()
        }
    }

    /// A log record of 4 KiB that LZ4 shrinks ~250×: one byte, repeated, that depends on
    /// the sequence (so a record read back under another's sequence would show).
    fn compressible_record(sequence: u64) -> Vec<u8> {
        vec![(sequence % 251) as u8; 4096]
    }

    /// The invoice-index key and value the compression tests write for `number`.
    fn compressible_index_entry(number: u64) -> (String, Vec<u8>) {
        (
            format!("91330100MA0000000C/INV-{number:08}"),
            vec![(number % 241) as u8; 200],
        )
    }

    /// Writes log records `first..first + count` and as many invoice-index entries into
    /// `store`, then flushes and compacts both families, so their table files lie below
    /// level 0 (where the choice of compression applies).
    fn write_and_compact(store: &EventStore, first: u64, count: u64) {
        let mut batch = CommitBatch::default();
        for sequence in first..first + count {
            store
                .put_record(&mut batch, sequence, &compressible_record(sequence))
                .expect("a record is added");
        }
        store.commit(batch).expect("the batch commits");
        let invoices = store.family(INVOICES).expect("the invoices family");
        for number in first..first + count {
            let (key, value) = compressible_index_entry(number);
            store
                .db
                .put_cf(invoices, key.as_bytes(), value)
                .expect("an entry is written");
        }
        for family in [EVENTS, INVOICES] {
            let handle = store.family(family).expect("the family exists");
            store.db.flush_cf(handle).expect("the memtable flushes");
            store
                .db
                .compact_range_cf(handle, None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Bytes of `family`'s table files below level 0.
    fn table_bytes_below_level_zero(store: &EventStore, family: &str) -> u64 {
        let files = store.db.live_files().expect("the live files list");
        let in_family = files
            .iter()
            .filter(|file| file.column_family_name == family);
        assert!(
            in_family.clone().all(|file| file.level > 0),
            "a table of {family} is still in level 0 after the compaction"
        );
        in_family.map(|file| file.size as u64).sum()
    }

    /// Checks that records `1..=count` and as many index entries read back as written.
    fn assert_reads_back(store: &EventStore, count: u64) {
        for sequence in 1..=count {
            assert_eq!(
                store.record(sequence).expect("the record reads"),
                Some(compressible_record(sequence)),
                "record {sequence}"
            );
        }
        let invoices = store.family(INVOICES).expect("the invoices family");
        for number in 1..=count {
            let (key, value) = compressible_index_entry(number);
            assert_eq!(
                store
                    .db
                    .get_cf(invoices, key.as_bytes())
                    .expect("the entry reads"),
                Some(value),
                "index entry {number}"
            );
        }
    }

    #[test]
    fn tables_below_level_zero_are_uncompressed_unless_lz4_is_chosen() {
        // Given 1,000 log records of 4 KiB (4 MB) and 1,000 index entries of ~230 bytes,
        // each written into a store opened with the default and into one with LZ4.
        let plain_directory = tempfile::tempdir().expect("a temporary directory");
        let plain = EventStore::open(plain_directory.path(), false).expect("the store opens");
        let lz4_directory = tempfile::tempdir().expect("a temporary directory");
        let lz4 = EventStore::open_with(lz4_directory.path(), false, lz4_settings())
            .expect("the store opens");
        // When both are flushed and compacted below level 0.
        write_and_compact(&plain, 1, 1_000);
        write_and_compact(&lz4, 1, 1_000);
        // Then the default's tables hold every byte, and LZ4's a small part of them.
        let log_plain = table_bytes_below_level_zero(&plain, EVENTS);
        let log_lz4 = table_bytes_below_level_zero(&lz4, EVENTS);
        assert!(
            log_plain >= 4_096_000,
            "the uncompressed log took {log_plain} bytes"
        );
        assert!(
            log_lz4 * 8 < log_plain,
            "the LZ4 log took {log_lz4} bytes against {log_plain} uncompressed"
        );
        let index_plain = table_bytes_below_level_zero(&plain, INVOICES);
        let index_lz4 = table_bytes_below_level_zero(&lz4, INVOICES);
        assert!(
            index_plain >= 200_000,
            "the uncompressed index took {index_plain} bytes"
        );
        assert!(
            index_lz4 * 2 < index_plain,
            "the LZ4 index took {index_lz4} bytes against {index_plain} uncompressed"
        );
        assert_eq!(
            family_option(
                plain_directory.path(),
                INVOICE_ORDER,
                "compression_per_level"
            )
            .as_deref(),
            Some("kNoCompression"),
            "the invoice order's compression"
        );
    }

    #[test]
    fn a_directory_of_lz4_tables_reads_back_without_compression_and_back_again() {
        // Given a directory whose tables were written with LZ4 (every build before the
        // default changed wrote its tables below level 0 so).
        let directory = tempfile::tempdir().expect("a temporary directory");
        let lz4 = EventStore::open_with(directory.path(), false, lz4_settings())
            .expect("the store opens");
        write_and_compact(&lz4, 1, 500);
        let lz4_bytes = table_bytes_below_level_zero(&lz4, EVENTS);
        drop(lz4);
        // When it is opened with the default and written and compacted again.
        let plain = EventStore::open(directory.path(), false).expect("the store opens");
        assert_reads_back(&plain, 500);
        write_and_compact(&plain, 501, 500);
        // Then old and new tables read back, the new ones uncompressed beside the old.
        assert_reads_back(&plain, 1_000);
        let mixed_bytes = table_bytes_below_level_zero(&plain, EVENTS);
        assert!(
            mixed_bytes >= lz4_bytes + 2_048_000,
            "the log grew from {lz4_bytes} to only {mixed_bytes} bytes with 2 MB uncompressed"
        );
        drop(plain);
        // And opened with LZ4 again, everything reads back too.
        let lz4 = EventStore::open_with(directory.path(), false, lz4_settings())
            .expect("the store opens");
        assert_reads_back(&lz4, 1_000);
    }
}
