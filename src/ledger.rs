//! The durable ledger: the pure state machine in front, the RocksDB store behind, and
//! group commit in between.
//!
//! `Ledger::submit` takes a batch of envelopes, lets the state machine decide each one
//! (a later command sees the effects of an earlier one), frames and chains the resulting
//! events once, writes them with the invoice-index updates as one `WriteBatch` with one
//! fsync, and only then returns the replies. If that write fails the in-memory state is
//! ahead of the disk, so the ledger poisons itself: it refuses further work until it is
//! reopened, which rebuilds the state from what is durable.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};

use crate::domain::{Command, InvoiceNumber, Uscc};
use crate::domain::{Envelope, Event, LedgerState, Rejection, Reply, SequencedEvent};
use crate::storage::record::{
    check_record, decode_value, encode_record, encode_value, genesis_chain_hash, ChainHash,
};
use crate::storage::store::{encode_index_entry, encode_snapshot, invoice_key, CommitBatch};
use crate::storage::{EventStore, RecordError, StoreError};

/// An invoice read from the store's index before a batch: its key and its entry.
type PrefetchedInvoice = ((Uscc, InvoiceNumber), crate::domain::state::InvoiceEntry);

/// The most envelopes one `submit` call takes; larger batches are split by the caller.
pub const SUBMIT_BATCH_LIMIT: usize = 8_192;

#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// fsync every commit. Off only for tests and throw-away benchmarks.
    pub sync: bool,
    /// Write a snapshot after this many events since the last one.
    pub snapshot_interval: u64,
    /// How many snapshots to keep (the newest ones).
    pub snapshots_kept: usize,
    /// Invoices kept in memory between batches; past this the cache is emptied (the
    /// store's invoice index is the durable copy, prefetched again when needed).
    pub invoice_cache_limit: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            sync: true,
            snapshot_interval: 100_000,
            snapshots_kept: 2,
            invoice_cache_limit: 65_536,
        }
    }
}

/// What opening the ledger did, for the operator's log.
#[derive(Clone, Debug)]
pub struct OpenReport {
    pub snapshot_sequence: Option<u64>,
    pub snapshots_skipped: Vec<String>,
    pub events_replayed: u64,
    pub last_sequence: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the log breaks an invariant after replay: {0}")]
    Invariant(String),
    #[error("batch of {0} envelopes is above the limit of {SUBMIT_BATCH_LIMIT}")]
    BatchTooLarge(usize),
}

pub struct Ledger {
    store: Arc<EventStore>,
    /// Shared with readers (the API's queries). The writer holds the write lock only
    /// while the state machine decides a batch, never across I/O.
    state: Arc<RwLock<LedgerState>>,
    chain_head: ChainHash,
    options: LedgerOptions,
    last_snapshot_sequence: u64,
    poisoned: Option<String>,
    events: Vec<SequencedEvent>,
    /// (key, value) of invoice-index updates of the current batch.
    index_updates: Vec<(Vec<u8>, Vec<u8>)>,
    payload_scratch: Vec<u8>,
    record_scratch: Vec<u8>,
}

impl Ledger {
    /// Opens the ledger in `path`: loads the newest valid snapshot, replays the log after
    /// it (checking every frame and the hash chain), and checks the invariants.
    pub fn open(path: &Path, options: LedgerOptions) -> Result<(Ledger, OpenReport), LedgerError> {
        let started = Instant::now();
        let store = EventStore::open(path, options.sync)?;
        let mut snapshots_skipped = Vec::new();
        let mut start = (LedgerState::new(), genesis_chain_hash(), None);
        for sequence in store.snapshot_sequences()? {
            match load_snapshot(&store, sequence) {
                Ok((state, chain)) => {
                    start = (state, chain, Some(sequence));
                    break;
                }
                Err(error) => snapshots_skipped.push(error.to_string()),
            }
        }
        let (mut state, mut chain_head, snapshot_sequence) = start;
        let from = state.last_sequence() + 1;
        let replayed = replay(&store, &mut state, &mut chain_head, from)?;
        let violations = state.check_invariants();
        if let Some(first) = violations.first() {
            return Err(LedgerError::Invariant(first.clone()));
        }
        // Replay filled the invoice cache with the tail's invoices; start empty.
        state.evict_invoices(options.invoice_cache_limit);
        let report = OpenReport {
            snapshot_sequence,
            snapshots_skipped,
            events_replayed: replayed,
            last_sequence: state.last_sequence(),
            elapsed: started.elapsed(),
        };
        let ledger = Ledger {
            store: Arc::new(store),
            last_snapshot_sequence: snapshot_sequence.unwrap_or(0),
            state: Arc::new(RwLock::new(state)),
            chain_head,
            options,
            poisoned: None,
            events: Vec::with_capacity(SUBMIT_BATCH_LIMIT),
            index_updates: Vec::new(),
            payload_scratch: Vec::with_capacity(512),
            record_scratch: Vec::with_capacity(1024),
        };
        Ok((ledger, report))
    }

    /// A read view of the projections (holds the read lock while alive).
    pub fn state(&self) -> RwLockReadGuard<'_, LedgerState> {
        self.state.read()
    }

    /// The projections, shared with readers on other threads.
    pub fn shared_state(&self) -> Arc<RwLock<LedgerState>> {
        Arc::clone(&self.state)
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn shared_store(&self) -> Arc<EventStore> {
        Arc::clone(&self.store)
    }

    pub fn chain_head(&self) -> ChainHash {
        self.chain_head
    }

    pub fn options(&self) -> &LedgerOptions {
        &self.options
    }

    /// Decides, writes durably and answers a batch of envelopes (group commit). Returns
    /// one result per envelope, in order. An `Err` means nothing in the batch is
    /// acknowledged and the ledger must be reopened.
    pub fn submit(
        &mut self,
        envelopes: &[Envelope],
    ) -> Result<Vec<Result<Reply, Rejection>>, LedgerError> {
        let mut replies = Vec::with_capacity(envelopes.len());
        self.submit_into(envelopes, &mut replies)?;
        Ok(replies)
    }

    /// As [`Ledger::submit`], appending replies to a caller-owned vector. The events the
    /// batch appended are available from [`Ledger::last_batch_events`] until the next call.
    pub fn submit_into(
        &mut self,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
    ) -> Result<(), LedgerError> {
        self.commit_batch(envelopes, replies)?;
        self.snapshot_if_due()
    }

    /// The group commit without the snapshot: the engine answers its callers first and
    /// then calls [`Ledger::snapshot_if_due`], so a snapshot never delays a reply.
    pub fn commit_batch(
        &mut self,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
    ) -> Result<(), LedgerError> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::Poisoned(reason.clone()).into());
        }
        if envelopes.len() > SUBMIT_BATCH_LIMIT {
            return Err(LedgerError::BatchTooLarge(envelopes.len()));
        }
        self.events.clear();
        self.index_updates.clear();
        let prefetched = self.prefetch_invoices(envelopes)?;
        {
            let mut state = self.state.write();
            for ((center, invoice_number), entry) in prefetched {
                state.cache_invoice(center, invoice_number, entry);
            }
            for envelope in envelopes {
                replies.push(state.execute(envelope, &mut self.events));
            }
            // The idempotency index holds each touched invoice's outcome as of the end of
            // the batch, read from the state while the lock is held.
            for event in &self.events {
                let (center, invoice_number) = match &event.event {
                    Event::InvoiceRedeemed(redeemed) => {
                        (&redeemed.center, &redeemed.invoice_number)
                    }
                    Event::InvoiceReversed(reversed) => {
                        (&reversed.center, &reversed.invoice_number)
                    }
                    _ => continue,
                };
                if let Some(entry) = state.invoice(center, invoice_number) {
                    match encode_index_entry(entry) {
                        Ok(value) => self
                            .index_updates
                            .push((invoice_key(center, invoice_number), value)),
                        Err(error) => {
                            self.poisoned = Some(error.to_string());
                            return Err(error.into());
                        }
                    }
                }
            }
        }
        if self.events.is_empty() {
            return Ok(());
        }
        match self.write_events() {
            Ok(head) => {
                self.chain_head = head;
            }
            Err(error) => {
                self.poisoned = Some(error.to_string());
                return Err(error.into());
            }
        }
        {
            let mut state = self.state.write();
            if state.invoices_in_memory() > self.options.invoice_cache_limit {
                state.evict_invoices(self.options.invoice_cache_limit);
            }
        }
        Ok(())
    }

    /// Writes a snapshot if `snapshot_interval` events have passed since the last one.
    pub fn snapshot_if_due(&mut self) -> Result<(), LedgerError> {
        match self.snapshot_job_if_due() {
            Some(job) => Ok(job.write(&self.store)?),
            None => Ok(()),
        }
    }

    /// The state image for a snapshot, if one is due, to be encoded and written by
    /// [`SnapshotJob::write`] off the writer's thread. Taking the image is the only part
    /// that must see a quiet state; it is a copy of the small projections (no invoices).
    pub fn snapshot_job_if_due(&mut self) -> Option<SnapshotJob> {
        self.take_snapshot_job(self.options.snapshot_interval)
    }

    /// Copies the projections for a snapshot if at least `min_new_events` events (and at
    /// least one) came since the last one, and counts it as taken.
    fn take_snapshot_job(&mut self, min_new_events: u64) -> Option<SnapshotJob> {
        let state = self.state.read();
        let sequence = state.last_sequence();
        let new_events = sequence - self.last_snapshot_sequence;
        if sequence == 0 || new_events == 0 || new_events < min_new_events {
            return None;
        }
        let image = state.to_image();
        drop(state);
        self.last_snapshot_sequence = sequence;
        Some(SnapshotJob {
            sequence,
            chain_head: self.chain_head,
            image,
            snapshots_kept: self.options.snapshots_kept.max(1),
        })
    }

    /// I/O before the state machine: reads from the store's invoice index every invoice
    /// the batch names that is not in memory, so deciding needs no I/O.
    fn prefetch_invoices(
        &self,
        envelopes: &[Envelope],
    ) -> Result<Vec<PrefetchedInvoice>, LedgerError> {
        let mut wanted: Vec<(Uscc, InvoiceNumber)> = Vec::new();
        {
            let state = self.state.read();
            for envelope in envelopes {
                let (center, invoice_number) = match &envelope.command {
                    Command::PostInvoice(post) => (&post.center, &post.invoice_number),
                    Command::ReverseInvoice {
                        center,
                        invoice_number,
                        ..
                    } => (center, invoice_number),
                    _ => continue,
                };
                if state.invoice(center, invoice_number).is_none() {
                    wanted.push((*center, invoice_number.clone()));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|(center, invoice_number)| invoice_key(center, invoice_number))
            .collect();
        let found = self.store.invoice_entries(&keys)?;
        Ok(wanted
            .into_iter()
            .zip(found)
            .filter_map(|(key, entry)| entry.map(|entry| (key, entry)))
            .collect())
    }

    /// The events appended by the last successful batch.
    pub fn last_batch_events(&self) -> &[SequencedEvent] {
        &self.events
    }

    fn write_events(&mut self) -> Result<ChainHash, StoreError> {
        let mut batch = CommitBatch::default();
        let mut head = self.chain_head;
        for event in &self.events {
            self.record_scratch.clear();
            head = encode_record(
                event,
                &head,
                &mut self.payload_scratch,
                &mut self.record_scratch,
            )
            .map_err(StoreError::Encode)?;
            self.store
                .put_record(&mut batch, event.sequence, &self.record_scratch)?;
        }
        for (key, value) in &self.index_updates {
            self.store.put_invoice(&mut batch, key, value)?;
        }
        self.store.commit(batch)?;
        Ok(head)
    }

    /// Persists the projections at the current sequence and prunes old snapshots.
    pub fn write_snapshot(&mut self) -> Result<(), LedgerError> {
        match self.take_snapshot_job(1) {
            Some(job) => Ok(job.write(&self.store)?),
            None => Ok(()),
        }
    }

    /// Writes a final snapshot; call on graceful shutdown so the next start replays little.
    pub fn close(mut self) -> Result<(), LedgerError> {
        if self.poisoned.is_none() {
            self.write_snapshot()?;
            self.store.flush()?;
        }
        Ok(())
    }
}

/// A snapshot taken but not yet written: the image of the projections at `sequence`.
pub struct SnapshotJob {
    sequence: u64,
    chain_head: ChainHash,
    image: crate::domain::state::StateImage,
    snapshots_kept: usize,
}

impl SnapshotJob {
    /// Encodes, frames (with its SM3 checksum), writes with fsync, and prunes old ones.
    pub fn write(self, store: &EventStore) -> Result<(), StoreError> {
        let mut image_bytes = Vec::new();
        encode_value(&self.image, &mut image_bytes).map_err(StoreError::Encode)?;
        let framed = encode_snapshot(self.sequence, &self.chain_head, &image_bytes);
        store.put_snapshot(self.sequence, &framed)?;
        for old in store
            .snapshot_sequences()?
            .into_iter()
            .skip(self.snapshots_kept)
        {
            store.delete_snapshot(old)?;
        }
        Ok(())
    }
}

fn load_snapshot(
    store: &EventStore,
    sequence: u64,
) -> Result<(LedgerState, ChainHash), LedgerError> {
    let snapshot = store
        .snapshot(sequence)?
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("snapshot {sequence}"),
            reason: "vanished while opening".into(),
        })?;
    // The snapshot must belong to this log: the record at its sequence must carry the
    // chain hash the snapshot recorded.
    let record = store.record(sequence)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("snapshot {sequence}"),
        reason: "the log has no record at its sequence".into(),
    })?;
    if record.len() < 32 || record[record.len() - 32..] != snapshot.chain_hash.0 {
        return Err(StoreError::Corrupt {
            what: format!("snapshot {sequence}"),
            reason: "its chain hash differs from the log's".into(),
        }
        .into());
    }
    let image = decode_value(&snapshot.image_bytes).map_err(|reason| StoreError::Corrupt {
        what: format!("snapshot {sequence}"),
        reason,
    })?;
    let state = LedgerState::from_image(image);
    if state.last_sequence() != sequence {
        return Err(StoreError::Corrupt {
            what: format!("snapshot {sequence}"),
            reason: format!("holds state at sequence {}", state.last_sequence()),
        }
        .into());
    }
    Ok((state, snapshot.chain_hash))
}

/// Applies records `from..` to `state`, checking density, frames and the chain.
pub fn replay(
    store: &EventStore,
    state: &mut LedgerState,
    chain_head: &mut ChainHash,
    from: u64,
) -> Result<u64, LedgerError> {
    let mut expected = from;
    let mut failure: Option<LedgerError> = None;
    store.scan_records(from, |sequence, bytes| {
        if sequence != expected {
            failure = Some(
                RecordError::SequenceMismatch {
                    key: expected,
                    inside: sequence,
                }
                .into(),
            );
            return false;
        }
        let decoded = check_record(sequence, bytes, chain_head).and_then(|record| {
            let event = record.decode()?;
            Ok((record.at, record.chain_hash, event))
        });
        match decoded {
            Ok((at, hash, event)) => {
                state.apply(sequence, at, &event);
                *chain_head = hash;
                expected += 1;
                true
            }
            Err(error) => {
                failure = Some(error.into());
                false
            }
        }
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(expected - from),
    }
}
