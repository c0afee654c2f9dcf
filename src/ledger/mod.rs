//! The durable ledger: the pure state machine in front, the store behind, and group
//! commit in between.
//!
//! `Ledger::submit` takes a batch of envelopes. Before deciding, it prefetches from the
//! store's invoice index every invoice the batch names (I/O before; brand-new invoices
//! are answered by the store's in-memory filter without a lookup once it is filled). The state machine
//! then decides each envelope (a later one sees the effects of an earlier one) without
//! I/O. The resulting events are framed and chained once (in a large batch, by the
//! encoder thread while the writer is still deciding, see `encoder.rs`) and written, with
//! the invoice order, as one `WriteBatch` with one fsync (I/O after); only then are the
//! replies returned. The invoice index's entries follow, after the replies and before the
//! next batch (`storage/index_lag.rs`). If that write fails the in-memory state is ahead of the disk, so
//! the ledger poisons itself: it refuses further work until it is reopened, which
//! rebuilds the state from what is durable.
//!
//! Readers on other threads use a [`LedgerReader`]: the projections under a read lock,
//! invoices (cache, then index) and the log, never the store or the lock directly.

mod batch_events;
mod encoder;
pub mod engine;
mod invoice_order;
pub mod priority;
mod reader;
mod sealed;
mod submission;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};

pub use batch_events::BatchEvents;
use invoice_order::InvoiceOrderGroups;
pub use reader::LedgerReader;
pub use sealed::{SealedBatch, SealedBatchWriter, UnindexedBatch};
pub use submission::Submission;

use crate::domain::{Command, Envelope, Event, InvoiceEntry, InvoiceNumber, LedgerState};
use crate::domain::{Rejection, Reply, SequencedEvent, StateImage, Uscc};
pub use crate::limits::SUBMIT_BATCH_LIMIT;
use crate::limits::{
    INVOICE_CACHE_DEFAULT, INVOICE_CACHE_MAX, SNAPSHOTS_KEPT_DEFAULT, SNAPSHOT_INTERVAL_DEFAULT,
};
use crate::storage::checkpoint::CheckpointSigner;
use crate::storage::record::{genesis_chain_hash, ChainHash};
use crate::storage::{
    CommitBatch, EventStore, LogError, LogPosition, RecordError, StoreError, StoreSettings,
};

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
    /// How the store compresses its table files and how large its block cache is.
    pub store: StoreSettings,
    /// Take and write, while opening, the memory the first batches would otherwise fault
    /// in page by page (~3 µs per 4 KiB page on the machines of issue 12): the invoice
    /// cache's room (~16 MiB at the default limit), every page of the invoice filter
    /// (8 MiB at least), a batch's worth of events; and start the record encoder. Worth
    /// it for a ledger that will decide batches under load (the server); a read-only open
    /// (`summary`, `report`) leaves it off and keeps neither the time nor the memory.
    pub prepare_memory_for_batches: bool,
    /// The nice value of the commit path's threads, the writer and the record encoder
    /// (`priority.rs`); none leaves them at the process's. The server sets it from its
    /// config; tools and tests leave it alone.
    pub commit_thread_niceness: Option<priority::Niceness>,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            sync: true,
            snapshot_interval: SNAPSHOT_INTERVAL_DEFAULT,
            snapshots_kept: SNAPSHOTS_KEPT_DEFAULT,
            invoice_cache_limit: INVOICE_CACHE_DEFAULT,
            store: StoreSettings::default(),
            prepare_memory_for_batches: false,
            commit_thread_niceness: None,
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
    /// The whole open.
    pub elapsed: Duration,
    /// Of which opening the store: RocksDB's open (with its recovery from its write-ahead
    /// log, after a crash), the format check and any migration.
    pub store_open: Duration,
    /// Bringing the invoice index up to the log, beside the next.
    pub index_catch_up: Duration,
    /// Loading the snapshot, replaying the log after it and checking the invariants,
    /// beside the previous.
    pub snapshot_and_replay: Duration,
}

/// What [`load_state`] read back: the state as of the log's end.
struct LoadedState {
    state: LedgerState,
    snapshot_sequence: Option<u64>,
    snapshots_skipped: Vec<String>,
    events_replayed: u64,
    /// The chain hash of the log's last record.
    chain_head: ChainHash,
}

/// Loads the newest valid snapshot in `store`, replays the log after it and checks the
/// invariants (reads only: it runs beside the invoice index's catch-up).
fn load_state(store: &EventStore, invoice_cache_limit: usize) -> Result<LoadedState, LedgerError> {
    let mut snapshots_skipped = Vec::new();
    let mut start = (
        LedgerState::with_bounded_invoice_cache(),
        genesis_chain_hash(),
        None,
    );
    for sequence in store.snapshot_sequences()? {
        match load_snapshot(store, sequence) {
            Ok((state, chain)) => {
                start = (state, chain, Some(sequence));
                break;
            }
            Err(error) => snapshots_skipped.push(error.to_string()),
        }
    }
    let (mut state, chain_head, snapshot_sequence) = start;
    let from = state.last_sequence() + 1;
    let position = replay(store, &mut state, chain_head, invoice_cache_limit)?;
    let violations = state.check_invariants();
    if let Some(first) = violations.first() {
        return Err(LedgerError::Invariant(first.clone()));
    }
    Ok(LoadedState {
        state,
        snapshot_sequence,
        snapshots_skipped,
        events_replayed: position.last_sequence + 1 - from,
        chain_head: position.chain_head,
    })
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

impl From<LogError> for LedgerError {
    fn from(error: LogError) -> LedgerError {
        match error {
            LogError::Store(error) => LedgerError::Store(error),
            LogError::Record(error) => LedgerError::Record(error),
        }
    }
}

/// Decides one command of a batch, appending its events to `events`, and notes each
/// redemption it made for the invoice order ([`InvoiceOrderGroups`]: center, year,
/// sequence and invoice number). Noted as each command is decided, while its voucher is
/// still in the CPU's cache: looking the vouchers up again after the batch missed the
/// cache each time (~0.6 ms of a batch of 8,189, on the writer's path once the encoder
/// was done; issue 12).
pub(crate) fn execute_noting_invoice_order(
    state: &mut LedgerState,
    envelope: &Envelope,
    events: &mut Vec<SequencedEvent>,
    order_groups: &mut InvoiceOrderGroups,
) -> Result<Reply, Rejection> {
    let first_new = events.len();
    let reply = state.execute(envelope, events);
    note_invoice_order(state, &events[first_new..], order_groups);
    reply
}

/// Notes each redemption among `new_events` for the invoice order.
fn note_invoice_order(
    state: &LedgerState,
    new_events: &[SequencedEvent],
    order_groups: &mut InvoiceOrderGroups,
) {
    for event in new_events {
        if let Event::InvoiceRedeemed(redeemed) = &event.event {
            let year = state
                .voucher(&redeemed.voucher)
                .map(|voucher| voucher.terms.year);
            assert!(year.is_some(), "a redeemed invoice's voucher exists");
            if let Some(year) = year {
                order_groups.note(
                    redeemed.center,
                    year,
                    event.sequence,
                    &redeemed.invoice_number,
                );
            }
        }
    }
}

pub struct Ledger {
    store: Arc<EventStore>,
    /// Shared with readers through [`LedgerReader`]. The writer holds the write lock
    /// while it marks a batch's new invoices absent (prefetch, no I/O) and while the
    /// state machine decides the batch (handing chunks to the encoder may wait for its
    /// queue, never for I/O); never across a read or a write of the store.
    state: Arc<RwLock<LedgerState>>,
    chain_head: ChainHash,
    options: LedgerOptions,
    last_snapshot_sequence: u64,
    poisoned: Option<String>,
    events: BatchEvents,
    /// The invoices the current batch reversed, with their entries as of its end (a
    /// redemption's entry is encoded from its event when written: no copy is kept).
    index_updates: Vec<(Uscc, InvoiceNumber, InvoiceEntry)>,
    /// The invoices the current batch redeemed, noted as they are decided
    /// ([`execute_noting_invoice_order`]) and gathered into the invoice order's groups
    /// before the batch is sealed.
    order_groups: InvoiceOrderGroups,
    /// The threads filling the store's in-memory invoice filter: after opening, and each
    /// time the writer starts a larger one; stopped and joined when the ledger is dropped,
    /// so the store closes with them.
    invoice_filter_fills: Vec<std::thread::JoinHandle<()>>,
    /// The size of the last group commit's log part: the next one reserves as much.
    last_batch_bytes: usize,
    /// The size of the index part of the last batch the writer encoded itself (a small
    /// one): the next such part reserves as much. The encoder sizes its own.
    last_index_bytes: usize,
    /// The last batch's invoice index entries, written after its answers
    /// ([`Ledger::write_pending_index`]) and always before the next batch's prefetch.
    /// A large batch's part awaits the encoder's redemption entries; its reversals go
    /// after them. (Only [`Ledger::commit_batch`] leaves one here; the engine's committer
    /// writes the index parts of the batches it writes.)
    pending_index: Option<UnindexedBatch>,
    /// Batches sealed ([`Ledger::decide_batch`]) not yet written (by the engine's
    /// committer: log and index part; by [`Ledger::commit_batch`]: the log part, its
    /// index part then waits in `pending_index`), or whose write failed unreported.
    /// While one is, the state is ahead of the durable
    /// log and the cache holds invoices the index lacks: nothing that needs the state to
    /// be the durable one (a snapshot, a checkpoint, emptying the cache, growing the
    /// invoice filter) may run.
    sealed_unwritten: u32,
    /// How long the last batch's write (with its fsync) took.
    last_write: Duration,
    /// Encodes a large batch's records while the writer decides the rest of it; started
    /// with the first large batch.
    encoder: Option<encoder::RecordEncoder>,
}

impl Ledger {
    /// Opens the ledger in `path`: loads the newest valid snapshot, replays the log after
    /// it (checking every frame and the hash chain), and checks the invariants. Meanwhile
    /// a thread of its own brings the invoice index up to the log (after a crash; see
    /// `storage::store::StoreOpening`).
    pub fn open(path: &Path, options: LedgerOptions) -> Result<(Ledger, OpenReport), LedgerError> {
        let started = Instant::now();
        let opening = EventStore::open_before_index_catch_up(path, options.sync, options.store)?;
        let store_opened = started.elapsed();
        let (loaded, caught_up) = std::thread::scope(|scope| {
            let catching_up = std::thread::Builder::new()
                .name("index-catch-up".into())
                .spawn_scoped(scope, || {
                    let catching_up = Instant::now();
                    (opening.catch_up_index(), catching_up.elapsed())
                });
            let loading = Instant::now();
            let loaded = load_state(opening.store(), options.invoice_cache_limit)
                .map(|loaded| (loaded, loading.elapsed()));
            let caught_up = match catching_up {
                Ok(thread) => match thread.join() {
                    Ok(caught_up) => caught_up,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(error) => {
                    tracing::warn!(%error, "no thread for the invoice index's catch-up; it runs after the replay");
                    let catching_up = Instant::now();
                    (opening.catch_up_index(), catching_up.elapsed())
                }
            };
            (loaded, caught_up)
        });
        let (caught_up, index_catch_up) = caught_up;
        let store = opening.finish(caught_up);
        let (loaded, snapshot_and_replay) = loaded?;
        let LoadedState {
            mut state,
            snapshot_sequence,
            snapshots_skipped,
            events_replayed,
            chain_head,
        } = loaded;
        // The log read back whole; an index the open could not bring up to it would let
        // a repeated invoice be paid twice.
        store.check_index_caught_up()?;
        // Replay filled the invoice cache with the tail's invoices; start empty, and when
        // batches will follow, with the room the first ones will fill taken and written now.
        state
            .invoice_cache_mut()
            .clear(invoice_cache_room(options.invoice_cache_limit));
        if options.prepare_memory_for_batches {
            state.invoice_cache_mut().take_room_now();
            store.write_invoice_filter_pages();
        }
        // RocksDB's recovery and the replay are done with what they allocated: hand it
        // back before serving, so the memory a server starts with is what it uses.
        let releasing = Instant::now();
        crate::storage::heap::release_freed_heap_after_open();
        tracing::info!(
            elapsed_ms = releasing.elapsed().as_millis() as u64,
            "freed heap memory handed back to the system"
        );
        let report = OpenReport {
            snapshot_sequence,
            snapshots_skipped,
            events_replayed,
            last_sequence: state.last_sequence(),
            elapsed: started.elapsed(),
            store_open: store_opened,
            index_catch_up,
            snapshot_and_replay,
        };
        let store = Arc::new(store);
        let filling = Arc::clone(&store);
        let invoice_filter_fill = std::thread::Builder::new()
            .name("invoice-filter".into())
            .spawn(move || {
                if let Err(error) = filling.fill_invoice_filter() {
                    tracing::warn!(%error, "filling the invoice filter failed; every invoice is looked up");
                }
                // The scan's reads are freed now too.
                crate::storage::heap::release_freed_heap();
            })
            .map_err(|error| {
                tracing::warn!(%error, "no thread for the invoice filter; every invoice is looked up");
            })
            .ok();
        let mut events = BatchEvents::default();
        let mut encoder = None;
        let mut order_groups = InvoiceOrderGroups::default();
        if options.prepare_memory_for_batches {
            order_groups.prepare_room(SUBMIT_BATCH_LIMIT);
            // A full batch's chunks (each may pass the target by one command's events).
            events.prepare_room(
                SUBMIT_BATCH_LIMIT.div_ceil(encoder::ENCODE_CHUNK_EVENTS) + 1,
                encoder::ENCODE_CHUNK_EVENTS + 8,
            );
            // Started now rather than by the first large batch; one that cannot start
            // here is tried again there, which reports the failure.
            encoder =
                encoder::RecordEncoder::start(Arc::clone(&store), options.commit_thread_niceness)
                    .map_err(
                        |error| tracing::warn!(%error, "the record encoder did not start at open"),
                    )
                    .ok();
        }
        let ledger = Ledger {
            store,
            last_snapshot_sequence: snapshot_sequence.unwrap_or(0),
            state: Arc::new(RwLock::new(state)),
            chain_head,
            options,
            poisoned: None,
            events,
            index_updates: Vec::new(),
            order_groups,
            invoice_filter_fills: invoice_filter_fill.into_iter().collect(),
            last_batch_bytes: 0,
            last_index_bytes: 0,
            pending_index: None,
            sealed_unwritten: 0,
            last_write: Duration::ZERO,
            encoder,
        };
        Ok((ledger, report))
    }

    /// A read view of the projections for in-process tools and tests (holds the read
    /// lock while alive; the writer waits for it).
    pub fn state(&self) -> RwLockReadGuard<'_, LedgerState> {
        self.state.read()
    }

    /// A reader for other threads: projections, invoices and the log.
    pub fn reader(&self) -> LedgerReader {
        LedgerReader::new(Arc::clone(&self.store), Arc::clone(&self.state))
    }

    pub fn chain_head(&self) -> ChainHash {
        self.chain_head
    }

    /// Starts filling a larger invoice filter on a thread of its own if the index has
    /// outgrown the one in use (`storage::invoice_filter`). Called between batches.
    fn grow_invoice_filter_if_due(&mut self) {
        let Some(grown) = self.store.grow_invoice_filter_if_due() else {
            return;
        };
        self.invoice_filter_fills
            .retain(|filling| !filling.is_finished());
        let store = Arc::clone(&self.store);
        let bytes = grown.bytes();
        let started = std::thread::Builder::new()
            .name("invoice-filter".into())
            .spawn(move || {
                priority::leave_the_favour_to_the_commit_threads("invoice-filter");
                let began = Instant::now();
                match store.fill_grown_invoice_filter(&grown) {
                    Ok(true) => tracing::info!(
                        bytes,
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        cpu_ms = this_thread_cpu_time().as_millis() as u64,
                        "the invoice filter was made larger for the keys the index holds"
                    ),
                    Ok(false) => {
                        tracing::info!(bytes, "filling a larger invoice filter stopped: the ledger is closing")
                    }
                    Err(error) => tracing::warn!(%error, bytes, "filling a larger invoice filter failed; the smaller one stays in use"),
                }
                crate::storage::heap::release_freed_heap();
            });
        match started {
            Ok(filling) => self.invoice_filter_fills.push(filling),
            Err(error) => {
                // `grown` went with the closure; the store still holds it as the next
                // filter, so drop it there too.
                self.store.abandon_invoice_filter_growth();
                tracing::warn!(%error, "no thread to fill a larger invoice filter; the smaller one stays in use");
            }
        }
    }

    /// The in-memory invoice filter's size in bytes, and whether a larger one is being
    /// filled (for tests and operators' logs).
    pub fn invoice_filter_size(&self) -> (usize, bool) {
        self.store.invoice_filter_size()
    }

    /// Whether brand-new invoices already skip the index lookup (the store's in-memory
    /// filter has been filled from the index since opening).
    pub fn invoice_filter_ready(&self) -> bool {
        self.store.invoice_filter_complete()
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
        self.write_pending_index()?;
        self.snapshot_if_due()
    }

    /// For tests of a crash between a batch's two writes: drops the last batch's index
    /// part unwritten, as a process killed after the answers would, and stops the ledger
    /// (readers of the index get an error; reopening derives the entries from the log).
    pub fn abandon_pending_index_for_tests(&mut self) {
        if let Some(pending) = self.pending_index.take() {
            self.poisoned = Some("the last batch's index part was abandoned (a test)".into());
            drop(pending);
        }
    }

    /// Writes the last batch's invoice index entries (the engine calls this after the
    /// batch's answers are sent; [`Ledger::commit_batch`] calls it first if it was not).
    /// Until then readers of the index on other threads wait (`storage::index_lag`). A
    /// failure stops the ledger as a failed batch does; the entries are derived from the
    /// log again when it is reopened.
    pub fn write_pending_index(&mut self) -> Result<(), LedgerError> {
        if let Err(error) = self.finish_pending_index() {
            self.poisoned = Some(error.to_string());
            return Err(error.into());
        }
        Ok(())
    }

    /// Writes the pending index part, if any: first the encoder's entries (a large
    /// batch's redemptions), then the reversals read from the state.
    fn finish_pending_index(&mut self) -> Result<(), StoreError> {
        let Some(pending) = self.pending_index.take() else {
            return Ok(());
        };
        self.sealed_batch_writer().write_index(pending)
    }

    /// Writes sealed batches ([`Ledger::decide_batch`]) on another thread: the engine's
    /// committer.
    pub fn sealed_batch_writer(&self) -> SealedBatchWriter {
        SealedBatchWriter {
            store: Arc::clone(&self.store),
        }
    }

    /// The committer has written a sealed batch's log and index parts, or failed to
    /// (`failure`: the ledger then refuses further batches, as after its own failed
    /// write).
    pub fn sealed_batch_settled(&mut self, failure: Option<String>) {
        assert!(
            self.sealed_unwritten > 0,
            "a sealed batch is settled only once, after it was sealed"
        );
        self.sealed_unwritten -= 1;
        if let Some(reason) = failure {
            self.poisoned.get_or_insert(reason);
        }
    }

    /// Stops the ledger: it refuses further batches until reopened (the engine's
    /// committer stopped, or its write failed).
    pub fn poison(&mut self, reason: String) {
        self.poisoned.get_or_insert(reason);
    }

    /// Whether the ledger refuses further batches.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Whether work is due that needs the state to be the durable one (no sealed batch
    /// unwritten): emptying the invoice cache, growing the invoice filter, a snapshot.
    /// The engine then lets its committer finish before it decides the next batch.
    pub fn quiet_work_due(&self) -> bool {
        let state = self.state.read();
        state.invoices_in_memory() > self.options.invoice_cache_limit
            || self.store.invoice_filter_growth_due()
            || state
                .last_sequence()
                .saturating_sub(self.last_snapshot_sequence)
                >= self.options.snapshot_interval.max(1)
    }

    /// The work [`Ledger::quiet_work_due`] names that stays on the writer's thread:
    /// empties the invoice cache if full and starts a larger invoice filter if due.
    /// (The snapshot is [`Ledger::snapshot_job_if_due`].)
    pub fn do_quiet_work(&mut self) {
        assert_eq!(
            self.sealed_unwritten, 0,
            "quiet work waits for every sealed batch to be written"
        );
        // A batch of `commit_batch`'s may still owe its index part: written first, so the
        // index holds every key the cache and the filter know.
        if self.write_pending_index().is_err() {
            return;
        }
        self.evict_invoice_cache_if_full();
        self.grow_invoice_filter_if_due();
    }

    /// The group commit without the snapshot, on this thread: decides the batch, writes
    /// its log part with the fsync, and leaves its index part for
    /// [`Ledger::write_pending_index`] (called after the answers, or first thing in the
    /// next batch).
    pub fn commit_batch(
        &mut self,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
    ) -> Result<(), LedgerError> {
        if let Some(sealed) = self.decide_batch(envelopes, replies)? {
            let writing = Instant::now();
            let written = self.sealed_batch_writer().write_log(sealed);
            self.last_write = writing.elapsed();
            self.sealed_unwritten -= 1;
            match written {
                Ok(unindexed) => self.pending_index = Some(unindexed),
                Err(error) => {
                    self.poisoned = Some(error.to_string());
                    return Err(error.into());
                }
            }
        }
        // A batch of refusals too: its prefetch may have marked invoices absent, and the
        // cache's limit holds for those as well.
        self.evict_invoice_cache_if_full();
        Ok(())
    }

    /// The first half of a group commit: decides the batch (after its prefetch) and
    /// encodes it. `None`: every command was refused and there is nothing to write.
    /// The state holds the batch's effects at once; the sealed batch is durable only
    /// once written ([`SealedBatchWriter::write_log`]), so readers wait for its sequence,
    /// and a failed write must be reported ([`Ledger::sealed_batch_settled`]).
    ///
    /// Only the previous batch's index part must be in the index, or its invoices still
    /// in the cache, when this is called: the cache is never emptied while a sealed batch
    /// is unwritten ([`Ledger::do_quiet_work`]).
    pub fn decide_batch(
        &mut self,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
    ) -> Result<Option<SealedBatch>, LedgerError> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::Poisoned(reason.clone()).into());
        }
        if envelopes.len() > SUBMIT_BATCH_LIMIT {
            return Err(LedgerError::BatchTooLarge(envelopes.len()));
        }
        // The prefetch below reads the index: the previous batch's entries must be in it,
        // or (a batch the committer still writes) in the cache.
        self.write_pending_index()?;
        if self.sealed_unwritten == 0 {
            // Here every key added to the invoice filter is in the index: the one moment
            // a larger filter can be started and filled by a scan of the index.
            self.grow_invoice_filter_if_due();
        }
        self.events.clear();
        self.index_updates.clear();
        self.order_groups.clear();
        self.prefetch_invoices(envelopes)?;
        let replies_before = replies.len();
        // A large batch's records are encoded beside the writer while it decides; the
        // events come back with them.
        let encoded = if envelopes.len() >= encoder::ENCODE_IN_PARALLEL_FROM {
            let mut encoder = match self.encoder.take() {
                Some(encoder) => encoder,
                None => encoder::RecordEncoder::start(
                    Arc::clone(&self.store),
                    self.options.commit_thread_niceness,
                )?,
            };
            let encoded = encoder.decide_and_encode(
                &self.state,
                envelopes,
                replies,
                &mut self.order_groups,
                &mut self.events,
                encoder::PlaceInTheLog {
                    previous: self.chain_head,
                    expected_log_bytes: self.last_batch_bytes,
                },
            );
            self.encoder = Some(encoder);
            match encoded {
                Ok(encoded) => {
                    for chunk in encoded.chunks {
                        self.events.push_chunk(chunk);
                    }
                    Some((encoded.batch, encoded.head, encoded.index_part))
                }
                Err(error) => {
                    // The state may have moved past what the log can hold (and a stopped
                    // encoder would fail every large batch): stop, as after a failed write.
                    self.poisoned = Some(error.to_string());
                    return Err(error.into());
                }
            }
        } else {
            let mut state = self.state.write();
            let mut events = self.events.spare_chunk(encoder::ENCODE_CHUNK_EVENTS);
            for (place, envelope) in envelopes.iter().enumerate() {
                state.prefetch_ahead(envelopes, place);
                replies.push(execute_noting_invoice_order(
                    &mut state,
                    envelope,
                    &mut events,
                    &mut self.order_groups,
                ));
            }
            self.events.push_chunk(events);
            None
        };
        assert_eq!(replies.len() - replies_before, envelopes.len());
        {
            let state = self.state.read();
            // The idempotency index holds each touched invoice's outcome as of the end of
            // the batch. A redemption's entry is what its event says (written from the
            // event, see `write_events`; its place in the invoice order was noted as it
            // was decided); a reversal's is read from the state (only this thread changes
            // it), and, put after its redemption's, wins in the write batch.
            for event in self.events.iter() {
                let (center, invoice_number) = match &event.event {
                    Event::InvoiceReversed(reversed) => {
                        (&reversed.center, &reversed.invoice_number)
                    }
                    _ => continue,
                };
                let entry = state.invoice(center, invoice_number);
                assert!(
                    entry.is_some(),
                    "an invoice event's invoice is in the cache"
                );
                if let Some(entry) = entry {
                    self.index_updates
                        .push((*center, invoice_number.clone(), entry.clone()));
                }
            }
        }
        if self.events.is_empty() {
            return Ok(None);
        }
        match self.seal(encoded) {
            Ok((sealed, head)) => {
                // The head moves now: the next batch is chained after this one, whether
                // it is decided before or after this one is written.
                self.chain_head = head;
                self.sealed_unwritten += 1;
                Ok(Some(sealed))
            }
            Err(error) => {
                self.poisoned = Some(error.to_string());
                Err(error.into())
            }
        }
    }

    /// Empties the invoice cache once it holds more than its limit (after a batch, so
    /// a batch's prefetch is never evicted before it is decided).
    fn evict_invoice_cache_if_full(&mut self) {
        assert_eq!(
            self.sealed_unwritten, 0,
            "the cache holds an unwritten batch's invoices: it is not emptied before the batch is written"
        );
        let mut state = self.state.write();
        if state.invoices_in_memory() > self.options.invoice_cache_limit {
            state
                .invoice_cache_mut()
                .clear(invoice_cache_room(self.options.invoice_cache_limit));
        }
    }

    /// Writes a snapshot if `snapshot_interval` events have passed since the last one.
    pub fn snapshot_if_due(&mut self) -> Result<(), LedgerError> {
        match self.snapshot_job_if_due() {
            Some(job) => Ok(job.write()?),
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
        // A snapshot of a state ahead of the durable log could outlive a failed write.
        assert_eq!(
            self.sealed_unwritten, 0,
            "a snapshot is taken of a durable state only"
        );
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
            store: Arc::clone(&self.store),
        })
    }

    /// I/O before the state machine: makes the invoice cache know every invoice the batch
    /// names, so deciding needs no I/O. A key the cache does not know is marked known
    /// absent at once when the store's filter rules it out (nearly every new invoice: one
    /// probe of the cache, no read); the few the filter cannot rule out are read from the
    /// index, outside the lock, and put in with what was found (or as absent).
    fn prefetch_invoices(&self, envelopes: &[Envelope]) -> Result<(), LedgerError> {
        // The filter is asked about the whole batch first, outside the lock: its loads
        // then overlap (see `InvoiceFilter::may_contain_each`).
        let mut may_exist = Vec::with_capacity(envelopes.len());
        self.store
            .invoices_may_exist(envelopes.iter().filter_map(invoice_named), &mut may_exist);
        let mut to_read: Vec<(Uscc, InvoiceNumber)> = Vec::new();
        {
            let mut state = self.state.write();
            let cache = state.invoice_cache_mut();
            let named = envelopes.iter().filter_map(invoice_named);
            for ((center, invoice_number), may_exist) in named.zip(may_exist) {
                let must_read =
                    cache.mark_absent_unless_known(center, invoice_number, || may_exist);
                if must_read {
                    to_read.push((*center, invoice_number.clone()));
                }
            }
        }
        if to_read.is_empty() {
            return Ok(());
        }
        let found = self.store.prefetch_invoices(&to_read)?;
        assert_eq!(found.len(), to_read.len());
        let mut state = self.state.write();
        let cache = state.invoice_cache_mut();
        for ((center, invoice_number), entry) in to_read.into_iter().zip(found) {
            cache.prefetched(center, invoice_number, entry);
        }
        Ok(())
    }

    /// How long the last batch's write, with its fsync, took.
    pub fn last_write_duration(&self) -> Duration {
        self.last_write
    }

    /// The sequence of the newest snapshot taken (0: none yet).
    pub fn last_snapshot_sequence(&self) -> u64 {
        self.last_snapshot_sequence
    }

    /// The sequence of the newest signed checkpoint in the store (0: none).
    pub fn newest_checkpoint_sequence(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .newest_checkpoint()?
            .map_or(0, |checkpoint| checkpoint.sequence))
    }

    /// What a checkpoint of the durable head needs: its sequence, its chain hash, and
    /// the store to keep it in. Signed and stored by [`CheckpointJob::sign_and_store`]
    /// off the writer's thread.
    /// None once poisoned: the state is then ahead of the durable log.
    pub fn checkpoint_job(&self) -> Option<CheckpointJob> {
        if self.poisoned.is_some() {
            return None;
        }
        assert_eq!(
            self.sealed_unwritten, 0,
            "a checkpoint signs a durable head only"
        );
        Some(CheckpointJob {
            sequence: self.state.read().last_sequence(),
            chain_head: self.chain_head,
            store: Arc::clone(&self.store),
        })
    }

    /// The events appended by the last successful batch.
    pub fn last_batch_events(&self) -> &BatchEvents {
        &self.events
    }

    /// Puts the batch's events and invoice order into one write, to be made durable by
    /// [`SealedBatchWriter::write_log`]; its index entries follow after the answers.
    /// `encoded`: the records, already encoded by the encoder, which then builds the
    /// redemptions' index entries while the write waits for its fsync. Returns it with
    /// the chain hash of its last record.
    fn seal(
        &mut self,
        encoded: Option<(CommitBatch, ChainHash, encoder::IndexPartReceiver)>,
    ) -> Result<(SealedBatch, ChainHash), StoreError> {
        let from_encoder = encoded.is_some();
        let (mut batch, head, index_part) = match encoded {
            Some((batch, head, index_part)) => (batch, head, Some(index_part)),
            None => {
                let mut batch =
                    CommitBatch::with_capacities(self.last_batch_bytes, self.last_index_bytes);
                let mut head = self.chain_head;
                for chunk in self.events.chunks() {
                    head = encoder::encode_chunk(&self.store, &mut batch, head, chunk)?;
                }
                (batch, head, None)
            }
        };
        // Redemptions (encoded above, in key order: RocksDB inserts a batch's keys into
        // the memtable's skip list in batch order, starting each search from the
        // previous key's place, so sorted keys spare most of the comparisons) first,
        // reversals after: a reversal's entry must win over the entry of a redemption of
        // the same invoice in the same batch. The encoder's redemptions come later, so
        // the reversals wait for them (`finish_pending_index`).
        if !from_encoder {
            for (center, invoice_number, entry) in &self.index_updates {
                self.store
                    .put_invoice(&mut batch, center, invoice_number, entry)?;
            }
        }
        // One invoice-order group per center and year, in key order for the memtable
        // (gathered while the encoder finished, `invoice_order.rs`).
        for (center, year, entries) in self.order_groups.in_key_order() {
            self.store
                .put_invoice_order_group(&mut batch, center, year, entries)?;
        }
        self.last_batch_bytes = batch.size_in_bytes();
        if !from_encoder {
            self.last_index_bytes = batch.index_size_in_bytes();
        }
        assert!(
            self.pending_index.is_none(),
            "the previous batch's index part is written before the next batch is"
        );
        let last_sequence = self.events.last().map_or(0, |event| event.sequence);
        assert!(last_sequence > 0, "a sealed batch holds events");
        let sealed = SealedBatch {
            batch,
            index_part,
            reversals: if from_encoder {
                std::mem::take(&mut self.index_updates)
            } else {
                Vec::new()
            },
            last_sequence,
        };
        Ok((sealed, head))
    }

    /// Persists the projections at the current sequence and prunes old snapshots.
    pub fn write_snapshot(&mut self) -> Result<(), LedgerError> {
        match self.take_snapshot_job(1) {
            Some(job) => Ok(job.write()?),
            None => Ok(()),
        }
    }

    /// Writes a final snapshot; call on graceful shutdown so the next start replays little.
    pub fn close(mut self) -> Result<(), LedgerError> {
        if self.poisoned.is_none() {
            self.write_pending_index()?;
            self.write_snapshot()?;
            self.store.flush()?;
        }
        Ok(())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // A batch answered but not yet indexed: write its entries now (were this to fail,
        // the next open derives them from the log).
        if self.pending_index.is_some() {
            if let Err(error) = self.finish_pending_index() {
                tracing::warn!(%error, "the last batch's invoice index entries were not written; the next open derives them from the log");
            }
        }
        self.store.stop_invoice_filter();
        for filling in self.invoice_filter_fills.drain(..) {
            let _ = filling.join();
        }
    }
}

/// The CPU time the calling thread has used (zero where the clock cannot be read): what a
/// background scan cost, for its log line.
fn this_thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points to a
    // live, writable one on this stack frame.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if read != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// A snapshot taken but not yet written: the image of the projections at `sequence`.
pub struct SnapshotJob {
    sequence: u64,
    chain_head: ChainHash,
    image: StateImage,
    snapshots_kept: usize,
    store: Arc<EventStore>,
}

/// A checkpoint due: the durable head to sign.
pub struct CheckpointJob {
    pub sequence: u64,
    pub chain_head: ChainHash,
    store: Arc<EventStore>,
}

impl CheckpointJob {
    /// Signs the head with `signer` at `signed_at` and stores the checkpoint (synced).
    pub fn sign_and_store(
        self,
        signer: &CheckpointSigner,
        signed_at: crate::domain::Timestamp,
    ) -> Result<(), String> {
        let checkpoint = signer
            .sign(self.sequence, self.chain_head, signed_at)
            .map_err(|error| error.to_string())?;
        self.store
            .put_checkpoint(&checkpoint)
            .map_err(|error| error.to_string())
    }
}

impl SnapshotJob {
    /// The sequence the snapshot is of.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Encodes, frames (with its SM3 checksum), writes with fsync, and prunes old ones,
    /// in the store of the ledger that took it.
    pub fn write(self) -> Result<(), StoreError> {
        let store = &self.store;
        store.put_snapshot(self.sequence, &self.chain_head, &self.image)?;
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

/// Loads the snapshot at `sequence` after checking that it belongs to this log: the
/// record at its sequence must carry the chain hash the snapshot recorded.
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
    let in_log = store.chain_hash_after(sequence)?;
    if in_log != snapshot.chain_hash {
        return Err(StoreError::Corrupt {
            what: format!("snapshot {sequence}"),
            reason: "its chain hash differs from the log's".into(),
        }
        .into());
    }
    Ok((LedgerState::from_image(snapshot.image), snapshot.chain_hash))
}

/// The invoice a command names, if it names one (what the prefetch must make known).
fn invoice_named(envelope: &Envelope) -> Option<(&Uscc, &InvoiceNumber)> {
    match &envelope.command {
        Command::PostInvoice(post) => Some((&post.center, &post.invoice_number)),
        Command::ReverseInvoice {
            center,
            invoice_number,
            ..
        } => Some((center, invoice_number)),
        _ => None,
    }
}

/// The room the writer's invoice cache keeps when it is emptied: its limit, plus a batch
/// (a batch is decided before the cache is checked against its limit), so that it never
/// grows while the ledger runs. A limit above the configurable maximum (the options are
/// public; the server's configuration refuses one) reserves no more than the maximum's
/// room: beyond it the cache grows as it fills.
fn invoice_cache_room(invoice_cache_limit: usize) -> usize {
    invoice_cache_limit
        .min(INVOICE_CACHE_MAX)
        .saturating_add(SUBMIT_BATCH_LIMIT)
}

/// Applies every record after the state's sequence to `state`, checking density, frames
/// and the chain from `chain_head` (the hash after the state's sequence). Empties the
/// state's invoice cache whenever it grows past `invoice_cache_limit`, so replaying a long
/// tail needs bounded memory. Returns where the log ends.
pub fn replay(
    store: &EventStore,
    state: &mut LedgerState,
    chain_head: ChainHash,
    invoice_cache_limit: usize,
) -> Result<LogPosition, LedgerError> {
    let bounded = state.invoice_cache().is_bounded();
    let position = store.read_log(state.last_sequence() + 1, chain_head, |logged| {
        state.apply(logged.sequence, logged.at, &logged.event);
        if bounded && state.invoices_in_memory() > invoice_cache_limit {
            state
                .invoice_cache_mut()
                .clear(invoice_cache_room(invoice_cache_limit));
        }
        ControlFlow::Continue(())
    })?;
    Ok(position)
}
