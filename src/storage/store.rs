//! The RocksDB store: the append-only event log, the invoice idempotency index and the
//! projection snapshots, each in its own column family.
//!
//! | column family | key                               | value                          |
//! |---------------|-----------------------------------|--------------------------------|
//! | `events`      | sequence, u64 big-endian          | a framed record (`record.rs`)  |
//! | `invoices`    | center USCC (18 B) + invoice no.  | `VLIX` entry (`index.rs`)      |
//! | `snapshots`   | sequence, u64 big-endian          | `VLSN` frame (`snapshot.rs`)   |
//! | `default`     | `format`                          | `VLDB` + version               |
//!
//! A batch of records and index updates is one `WriteBatch`, written with one fsync
//! (when `sync` is on): that is the group commit. The store never interprets events; the
//! ledger (`crate::ledger`) decides what to write.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::index::{decode_index_entry, encode_index_entry, invoice_key, parse_invoice_key};
use super::record::ChainHash;
use super::snapshot::{decode_snapshot, encode_snapshot, StoredSnapshot};
use crate::domain::{InvoiceEntry, InvoiceNumber, StateImage, Uscc};

pub const DATABASE_MAGIC: [u8; 4] = *b"VLDB";
pub const DATABASE_FORMAT_VERSION: u16 = 1;

const EVENTS: &str = "events";
const INVOICES: &str = "invoices";
const SNAPSHOTS: &str = "snapshots";
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
        ];
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let store = EventStore {
            db,
            sync,
            path: path.display().to_string(),
        };
        store.check_or_write_format()?;
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
        let db = DB::open_cf_for_read_only(&options, path, [EVENTS, INVOICES, SNAPSHOTS], false)?;
        let store = EventStore {
            db,
            sync: false,
            path: path.display().to_string(),
        };
        let mut expected = DATABASE_MAGIC.to_vec();
        expected.extend_from_slice(&DATABASE_FORMAT_VERSION.to_le_bytes());
        match store.db.get(FORMAT_KEY)? {
            Some(found) if found == expected => Ok(store),
            other => Err(StoreError::Format {
                path: store.path.clone(),
                reason: format!("format marker {other:02x?} is not this version's {expected:02x?}"),
            }),
        }
    }

    fn check_or_write_format(&self) -> Result<(), StoreError> {
        let mut expected = DATABASE_MAGIC.to_vec();
        expected.extend_from_slice(&DATABASE_FORMAT_VERSION.to_le_bytes());
        match self.db.get(FORMAT_KEY)? {
            Some(found) if found == expected => Ok(()),
            Some(found) => Err(StoreError::Format {
                path: self.path.clone(),
                reason: format!("format marker {found:02x?} is not this version's {expected:02x?}"),
            }),
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
                Ok(())
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
