//! The RocksDB store: the append-only event log, the invoice idempotency index and the
//! projection snapshots, each in its own column family.
//!
//! | column family | key                               | value                          |
//! |---------------|-----------------------------------|--------------------------------|
//! | `events`      | sequence, u64 big-endian          | a framed record (`record.rs`)  |
//! | `invoices`    | center USCC (18 B) + invoice no.  | `VLIX` + version + outcome     |
//! | `snapshots`   | sequence, u64 big-endian          | `VLSN` frame + state image     |
//! | `default`     | `format`                          | `VLDB` + version               |
//!
//! A batch of records and index updates is one `WriteBatch`, written with one fsync
//! (when `sync` is on): that is the group commit. The store never interprets events; the
//! ledger (`crate::ledger`) decides what to write.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::record::{decode_value, encode_value, sm3_digest, ChainHash};
use crate::domain::state::InvoiceEntry;
use crate::domain::{InvoiceNumber, Uscc};

pub const DATABASE_MAGIC: [u8; 4] = *b"VLDB";
pub const DATABASE_FORMAT_VERSION: u16 = 1;
pub const INDEX_MAGIC: [u8; 4] = *b"VLIX";
pub const INDEX_FORMAT_VERSION: u16 = 1;
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VLSN";
pub const SNAPSHOT_FORMAT_VERSION: u16 = 1;

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

pub fn invoice_key(center: &Uscc, invoice_number: &InvoiceNumber) -> Vec<u8> {
    let mut key = Vec::with_capacity(18 + invoice_number.as_str().len());
    key.extend_from_slice(center.as_bytes());
    key.extend_from_slice(invoice_number.as_str().as_bytes());
    key
}

/// The index value: magic, version, and the invoice's outcome and content (everything
/// the state machine needs to answer a retry, detect a conflict or reverse it).
pub fn encode_index_entry(entry: &InvoiceEntry) -> Result<Vec<u8>, StoreError> {
    let mut value = Vec::with_capacity(64);
    value.extend_from_slice(&INDEX_MAGIC);
    value.extend_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
    encode_value(entry, &mut value).map_err(StoreError::Encode)?;
    Ok(value)
}

pub fn decode_index_entry(bytes: &[u8]) -> Result<InvoiceEntry, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "invoice index entry".into(),
        reason,
    };
    if bytes.len() < 6 || bytes[..4] != INDEX_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != INDEX_FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    decode_value(&bytes[6..]).map_err(corrupt)
}

/// A snapshot as read back: where it stands in the log and the encoded state image.
pub struct StoredSnapshot {
    pub sequence: u64,
    pub chain_hash: ChainHash,
    pub image_bytes: Vec<u8>,
}

/// Frames a state image: magic, version, sequence, chain hash, length, image, SM3.
pub fn encode_snapshot(sequence: u64, chain_hash: &ChainHash, image_bytes: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(image_bytes.len() + 96);
    value.extend_from_slice(&SNAPSHOT_MAGIC);
    value.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    value.extend_from_slice(&0u16.to_le_bytes());
    value.extend_from_slice(&sequence.to_le_bytes());
    value.extend_from_slice(&chain_hash.0);
    value.extend_from_slice(&(image_bytes.len() as u64).to_le_bytes());
    value.extend_from_slice(image_bytes);
    let digest = sm3_digest(&value);
    value.extend_from_slice(&digest);
    value
}

pub fn decode_snapshot(key_sequence: u64, bytes: &[u8]) -> Result<StoredSnapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: format!("snapshot at sequence {key_sequence}"),
        reason,
    };
    const HEADER: usize = 4 + 2 + 2 + 8 + 32 + 8;
    if bytes.len() < HEADER + 32 {
        return Err(corrupt(format!("{} bytes is too short", bytes.len())));
    }
    if bytes[..4] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    let body_end = bytes.len() - 32;
    if sm3_digest(&bytes[..body_end])[..] != bytes[body_end..] {
        return Err(corrupt("checksum mismatch (torn or edited)".into()));
    }
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[8..16]);
    let sequence = u64::from_le_bytes(eight);
    if sequence != key_sequence {
        return Err(corrupt(format!("says it is at sequence {sequence}")));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&bytes[16..48]);
    eight.copy_from_slice(&bytes[48..56]);
    let length = u64::from_le_bytes(eight) as usize;
    if HEADER + length != body_end {
        return Err(corrupt("length mismatch".into()));
    }
    Ok(StoredSnapshot {
        sequence,
        chain_hash: ChainHash(chain),
        image_bytes: bytes[HEADER..body_end].to_vec(),
    })
}

/// Writes accumulated for one group commit.
#[derive(Default)]
pub struct CommitBatch {
    batch: WriteBatch,
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

    pub fn put_invoice(
        &self,
        batch: &mut CommitBatch,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let family = self.family(INVOICES)?;
        batch.batch.put_cf(family, key, value);
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
    /// `visit` returns false.
    pub fn scan_records(
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

    pub fn invoice_entry(&self, key: &[u8]) -> Result<Option<InvoiceEntry>, StoreError> {
        match self.db.get_pinned_cf(self.family(INVOICES)?, key)? {
            Some(bytes) => Ok(Some(decode_index_entry(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Looks many invoices up at once (one RocksDB multi-get), in the order of `keys`.
    pub fn invoice_entries(
        &self,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<InvoiceEntry>>, StoreError> {
        let family = self.family(INVOICES)?;
        let mut entries = Vec::with_capacity(keys.len());
        for found in self.db.batched_multi_get_cf(family, keys, false) {
            match found? {
                Some(bytes) => entries.push(Some(decode_index_entry(&bytes)?)),
                None => entries.push(None),
            }
        }
        Ok(entries)
    }

    /// Visits every invoice index entry in key order.
    pub fn scan_invoices(
        &self,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.family(INVOICES)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    pub fn put_snapshot(&self, sequence: u64, framed: &[u8]) -> Result<(), StoreError> {
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

    pub fn snapshot(&self, sequence: u64) -> Result<Option<StoredSnapshot>, StoreError> {
        match self
            .db
            .get_cf(self.family(SNAPSHOTS)?, sequence.to_be_bytes())?
        {
            Some(bytes) => Ok(Some(decode_snapshot(sequence, &bytes)?)),
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

fn sequence_from_key(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        what: "event key".into(),
        reason: format!("{} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}
