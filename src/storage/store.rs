//! The RocksDB store: the append-only event log, the invoice idempotency index and the
//! projection snapshots, each in its own column family.
//!
//! | column family | key                               | value                          |
//! |---------------|-----------------------------------|--------------------------------|
//! | `events`      | sequence, u64 big-endian          | a framed record (`record.rs`)  |
//! | `invoices`    | center USCC (18 B) + invoice no.  | `VLIX` entry (`index.rs`)      |
//! | `snapshots`   | sequence, u64 big-endian          | `VLSN` frame (`snapshot.rs`)   |
//! | `invoice_order` | center + year + sequence (`index.rs`) | the invoice number        |
//! | `checkpoints` | sequence, u64 big-endian          | `VLCP` signed checkpoint (`checkpoint.rs`) |
//! | `default`     | `format`                          | `VLDB` + version               |
//!
//! A batch of records and index updates is one `WriteBatch`, written with one fsync
//! (when `sync` is on): that is the group commit. The store never interprets events; the
//! ledger (`crate::ledger`) decides what to write.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::checkpoint::Checkpoint;
use super::index::{
    decode_index_entry, encode_index_entry, invoice_key, invoice_order_key, parse_invoice_key,
    parse_invoice_order_key,
};
use super::record::ChainHash;
use super::snapshot::{decode_snapshot, encode_snapshot, StoredSnapshot};
use crate::domain::{InvoiceEntry, InvoiceNumber, ProgrammeYear, StateImage, Uscc};

pub const DATABASE_MAGIC: [u8; 4] = *b"VLDB";
/// Version 2 added the `invoice_order` family, version 3 the `checkpoints` family; an
/// older directory is migrated when it is first opened for writing (see `migrate.rs`)
/// and read as it is by `verify`. (An older build cannot open a directory with a family
/// it does not know, so the new family needs a new version that it refuses by name.)
pub const DATABASE_FORMAT_VERSION: u16 = 3;
pub const DATABASE_FORMAT_OLDEST_READ: u16 = 1;

const EVENTS: &str = "events";
const INVOICES: &str = "invoices";
const SNAPSHOTS: &str = "snapshots";
const INVOICE_ORDER: &str = "invoice_order";
const CHECKPOINTS: &str = "checkpoints";
/// Every column family this build knows, in the order they are opened.
const FAMILIES: [&str; 5] = [EVENTS, INVOICES, SNAPSHOTS, INVOICE_ORDER, CHECKPOINTS];
const FORMAT_KEY: &[u8] = b"format";

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

/// Writes accumulated for one group commit.
#[derive(Default)]
pub struct CommitBatch {
    batch: WriteBatch,
    scratch: Vec<u8>,
}

impl CommitBatch {
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

pub struct EventStore {
    db: DB,
    sync: bool,
    path: String,
    /// The data directory's format version (older ones are read; see `migrate.rs`).
    format_version: u16,
}

impl EventStore {
    /// Opens (creating if needed) the store in `path`. Refuses a directory written by an
    /// unknown format version.
    pub fn open(path: &Path, sync: bool) -> Result<EventStore, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Larger memtables mean fewer, larger flushes on the append-heavy path.
        options.set_write_buffer_size(64 * 1024 * 1024);
        options.set_max_background_jobs(2);
        let mut events_options = Options::default();
        events_options.set_write_buffer_size(64 * 1024 * 1024);
        // Most lookups in the invoice index are for new invoices, i.e. misses: bloom filters
        // (on tables and on the memtable) answer those without reading data blocks.
        let mut invoices_options = Options::default();
        let mut table_options = rocksdb::BlockBasedOptions::default();
        table_options.set_bloom_filter(10.0, false);
        table_options.set_cache_index_and_filter_blocks(true);
        invoices_options.set_block_based_table_factory(&table_options);
        invoices_options.set_memtable_prefix_bloom_ratio(0.1);
        invoices_options.set_memtable_whole_key_filtering(true);
        invoices_options.set_write_buffer_size(64 * 1024 * 1024);
        let families = vec![
            ColumnFamilyDescriptor::new(EVENTS, events_options),
            ColumnFamilyDescriptor::new(INVOICES, invoices_options),
            ColumnFamilyDescriptor::new(SNAPSHOTS, Options::default()),
            ColumnFamilyDescriptor::new(INVOICE_ORDER, Options::default()),
            ColumnFamilyDescriptor::new(CHECKPOINTS, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let mut store = EventStore {
            db,
            sync,
            path: path.display().to_string(),
            format_version: DATABASE_FORMAT_VERSION,
        };
        store.format_version = store.check_or_write_format()?;
        if store.format_version < DATABASE_FORMAT_VERSION {
            super::migrate::to_current(&mut store)?;
        }
        Ok(store)
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
        Ok(store)
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
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.put_opt(FORMAT_KEY, marker, &options)?;
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

    pub fn put_record(
        &self,
        batch: &mut CommitBatch,
        sequence: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        batch.batch.put_cf(family, sequence.to_be_bytes(), record);
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
        batch
            .batch
            .put_cf(family, invoice_key(center, invoice_number), &batch.scratch);
        Ok(())
    }

    /// Adds an invoice's place in its center's order for a year (for paged listings).
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
        let end = invoice_order_key(center, year, until);
        iterator.seek(invoice_order_key(center, year, from));
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            if key >= end.as_slice() {
                break;
            }
            let (_, _, sequence) =
                parse_invoice_order_key(key).map_err(|error| corrupt_entry(key, &error.reason))?;
            let number = std::str::from_utf8(value)
                .ok()
                .and_then(|text| InvoiceNumber::from_stored(text).ok())
                .ok_or_else(|| corrupt_entry(key, "the invoice number is not valid text"))?;
            if visit(sequence, number).is_break() {
                break;
            }
            iterator.next();
        }
        iterator.status()?;
        Ok(())
    }

    /// Looks up whether the order index holds these (center, year, sequence) keys, and
    /// the invoice numbers it holds for them.
    pub fn invoice_order_entries(
        &self,
        keys: &[(Uscc, ProgrammeYear, u64)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let family = self.family(INVOICE_ORDER)?;
        let encoded: Vec<Vec<u8>> = keys
            .iter()
            .map(|(center, year, sequence)| invoice_order_key(center, *year, *sequence))
            .collect();
        self.db
            .batched_multi_get_cf(family, &encoded, false)
            .into_iter()
            .map(|found| Ok(found?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())))
            .collect()
    }

    /// Counts the entries of the order index.
    pub fn count_invoice_order(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self
            .db
            .iterator_cf(self.family(INVOICE_ORDER)?, IteratorMode::Start)
        {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// Writes the batch atomically, with one fsync of the write-ahead log when `sync`.
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        self.db.write_opt(batch.batch, &options)?;
        Ok(())
    }

    /// The sequence of the last record, if any.
    pub fn last_sequence(&self) -> Result<Option<u64>, StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        iterator.seek_to_last();
        iterator.status()?;
        match iterator.key() {
            Some(key) => Ok(Some(sequence_from_key(key)?)),
            None => Ok(None),
        }
    }

    /// Visits records with sequence ≥ `from` in order, as (key sequence, bytes), until
    /// `visit` returns false. Raw: `log.rs` is the one reader that interprets them.
    pub(super) fn scan_records(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        let mut iterator = self.db.raw_iterator_cf(family);
        iterator.seek(from.to_be_bytes());
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            if !visit(sequence_from_key(key)?, value) {
                break;
            }
            iterator.next();
        }
        iterator.status()?;
        Ok(())
    }

    pub fn record(&self, sequence: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get_cf(self.family(EVENTS)?, sequence.to_be_bytes())?)
    }

    /// An invoice's index entry, if the index has one.
    pub fn invoice(
        &self,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
    ) -> Result<Option<InvoiceEntry>, StoreError> {
        let key = invoice_key(center, invoice_number);
        match self.db.get_pinned_cf(self.family(INVOICES)?, &key)? {
            Some(bytes) => Ok(Some(decode_entry(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Looks many invoices up at once (one RocksDB multi-get), in the order asked.
    pub fn invoices(
        &self,
        wanted: &[(Uscc, InvoiceNumber)],
    ) -> Result<Vec<Option<InvoiceEntry>>, StoreError> {
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
            match found? {
                Some(bytes) => entries.push(Some(decode_entry(key, &bytes)?)),
                None => entries.push(None),
            }
        }
        Ok(entries)
    }

    /// Visits every invoice index entry in key order (center, then invoice number). An
    /// entry that does not decode is passed on as an error naming its key, so `verify`
    /// can report it and go on.
    pub fn scan_invoices(
        &self,
        mut visit: impl FnMut(Result<(Uscc, InvoiceNumber, InvoiceEntry), StoreError>),
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.family(INVOICES)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let decoded = parse_invoice_key(&key)
                .map_err(|error| corrupt_entry(&key, &error.reason))
                .and_then(|(center, number)| Ok((center, number, decode_entry(&key, &value)?)));
            visit(decoded);
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
            .iterator_cf(self.family(SNAPSHOTS)?, IteratorMode::End)
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
            .get_pinned_cf(self.family(SNAPSHOTS)?, sequence.to_be_bytes())?
            .and_then(|bytes| {
                bytes
                    .get(4..6)
                    .map(|version| u16::from_le_bytes([version[0], version[1]]))
            }))
    }

    /// The snapshot at `sequence`, checked and decoded.
    pub fn snapshot(&self, sequence: u64) -> Result<Option<StoredSnapshot>, StoreError> {
        match self
            .db
            .get_cf(self.family(SNAPSHOTS)?, sequence.to_be_bytes())?
        {
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

    /// Raw access for tamper tests and repair tools: overwrite or delete a record.
    pub fn overwrite_record_for_tests(
        &self,
        sequence: u64,
        bytes: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let family = self.family(EVENTS)?;
        match bytes {
            Some(bytes) => self.db.put_cf(family, sequence.to_be_bytes(), bytes)?,
            None => self.db.delete_cf(family, sequence.to_be_bytes())?,
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
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
        let mut figures = Vec::with_capacity(16);
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

fn corrupt_entry(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("invoice index entry {}", String::from_utf8_lossy(key)),
        reason: reason.to_string(),
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
