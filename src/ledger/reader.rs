//! [`LedgerReader`]: how code on other threads (the API, reports) reads the ledger.
//!
//! It reads the projections under the state's read lock (the writer holds the write lock
//! only while deciding a batch, never across I/O), invoices from the writer's cache or
//! else the store's index, and the log through the store's one checked read loop. It
//! never hands out the lock or the store. Waiting until what was read is durable is the
//! engine's job (`EngineHandle::read`).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::LedgerError;
use crate::domain::{InvoiceEntry, InvoiceNumber, LedgerState, ProgrammeYear, Uscc};
use crate::limits::INVOICE_CACHE_DEFAULT;
use crate::storage::backup::{BackupError, BackupManifest};
use crate::storage::checkpoint::Checkpoint;
use crate::storage::record::genesis_chain_hash;
use crate::storage::{EventStore, LogError, LogPosition, LoggedEvent, StoreError};

#[derive(Clone)]
pub struct LedgerReader {
    store: Arc<EventStore>,
    state: Arc<RwLock<LedgerState>>,
}

impl LedgerReader {
    pub(super) fn new(store: Arc<EventStore>, state: Arc<RwLock<LedgerState>>) -> LedgerReader {
        LedgerReader { store, state }
    }

    /// Runs `read` on the projections under the read lock and returns what it returns,
    /// with the sequence the state was at. Keep `read` short: the writer waits for it.
    pub fn read<T>(&self, read: impl FnOnce(&LedgerState) -> T) -> (T, u64) {
        let state = self.state.read();
        (read(&state), state.last_sequence())
    }

    /// An invoice, from the writer's cache (newest) or else the store's index (durable),
    /// with the sequence the state was at when the cache was consulted.
    pub fn invoice(
        &self,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
    ) -> Result<(Option<InvoiceEntry>, u64), StoreError> {
        let (cached, as_of) = self.read(|state| state.invoice(center, invoice_number).cloned());
        match cached {
            Some(entry) => Ok((Some(entry), as_of)),
            None => Ok((self.store.invoice(center, invoice_number)?, as_of)),
        }
    }

    /// Reads stored events from `from` on, each checked (frame, payload, and the chain
    /// from the record before `from`), until `visit` breaks or the log ends.
    pub fn read_events(
        &self,
        from: u64,
        visit: impl FnMut(LoggedEvent) -> ControlFlow<()>,
    ) -> Result<LogPosition, LogError> {
        let from = from.max(1);
        let previous = self.store.chain_hash_after(from - 1)?;
        self.store.read_log(from, previous, visit)
    }

    /// Invoices from the store's index (durable), in the order asked.
    pub fn invoices(
        &self,
        wanted: &[(Uscc, InvoiceNumber)],
    ) -> Result<Vec<Option<InvoiceEntry>>, StoreError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.store.invoices(wanted)
    }

    /// A center's invoices of a year in log order, sequences `from..until`.
    pub fn scan_invoice_order(
        &self,
        center: &Uscc,
        year: ProgrammeYear,
        from: u64,
        until: u64,
        visit: impl FnMut(u64, InvoiceNumber) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.store
            .scan_invoice_order(center, year, from, until, visit)
    }

    /// Opens the data directory at `path` read only (a running server may hold it) and
    /// rebuilds the projections as [`super::Ledger::open`] does: the newest valid
    /// snapshot, the log after it (checked), the invariants. For offline tools (exports);
    /// it sees the data as of the moment it opened.
    pub fn open_read_only(path: &Path) -> Result<LedgerReader, LedgerError> {
        let store = EventStore::open_read_only(path)?;
        // An index behind the log whose missing entries could not be derived would leave
        // invoices out of exports without a word (`verify` reports it instead).
        store.check_index_caught_up()?;
        let mut start = (
            LedgerState::with_bounded_invoice_cache(),
            genesis_chain_hash(),
        );
        for sequence in store.snapshot_sequences()? {
            // A snapshot that does not load is skipped, as on a writable open.
            if let Ok(loaded) = super::load_snapshot(&store, sequence) {
                start = loaded;
                break;
            }
        }
        let (mut state, chain_head) = start;
        super::replay(&store, &mut state, chain_head, INVOICE_CACHE_DEFAULT)?;
        if let Some(first) = state.check_invariants().first() {
            return Err(LedgerError::Invariant(first.clone()));
        }
        state.invoice_cache_mut().clear(INVOICE_CACHE_DEFAULT);
        Ok(LedgerReader::new(
            Arc::new(store),
            Arc::new(RwLock::new(state)),
        ))
    }

    /// Stored checkpoints from `from` on, at most `limit`.
    pub fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
        self.store.checkpoints(from, limit)
    }

    /// The checkpoint of `sequence`, or the newest one for 0.
    pub fn checkpoint(&self, sequence: u64) -> Result<Option<Checkpoint>, StoreError> {
        if sequence == 0 {
            self.store.newest_checkpoint()
        } else {
            self.store.checkpoint(sequence)
        }
    }

    /// A consistent backup of the live store into `target` (RocksDB's checkpoint).
    pub fn backup_to(&self, target: &std::path::Path) -> Result<BackupManifest, BackupError> {
        crate::storage::backup::backup_live_store(&self.store, target)
    }

    /// RocksDB's figures that warn of trouble, read now (see `EventStore::rocksdb_figures`).
    pub fn rocksdb_figures(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.store.rocksdb_figures()
    }

    /// Entries of the invoice index not yet flushed to a table file
    /// (`EventStore::invoice_index_unflushed_entries`).
    pub fn invoice_index_unflushed_entries(&self) -> Result<u64, StoreError> {
        self.store.invoice_index_unflushed_entries()
    }

    /// Flushes the invoice index's memtables and waits (`EventStore::flush_invoice_index`).
    pub fn flush_invoice_index(&self) -> Result<(), StoreError> {
        self.store.flush_invoice_index()
    }

    /// The sequence of the newest stored record.
    pub fn stored_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.store.last_sequence()?.unwrap_or(0))
    }
}
