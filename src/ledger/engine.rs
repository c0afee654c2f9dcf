//! The engine: one writer thread that owns the [`Ledger`], fed through a bounded queue,
//! and one committer thread that writes what the writer decided.
//!
//! Network tasks submit jobs (a single command or a batch); the writer drains whatever is
//! queued, up to [`SUBMIT_BATCH_LIMIT`] commands, stamps them with the time, lets the
//! state machine decide them, and has them written as one `WriteBatch` with one fsync
//! (group commit); only then is every job of the batch answered. So batches form both
//! from `PostInvoices` calls and from many concurrent `PostInvoice` calls.
//!
//! When 1,024 commands or more are queued behind a decided batch, the batch is handed to
//! the committer, which writes it, answers it and writes its index part while the writer
//! decides the next one (issue 12: the write with its fsync was a fifth to a quarter of a
//! batch's time on the writer). With less queued and nothing in flight the writer writes
//! the batch itself, as before. What
//! keeps the pipeline correct is on [`Committer`].
//!
//! Everything is bounded: the queue (jobs and commands), the batch, and the time a
//! reader waits for the writer. When the queue is full, submission fails at once with
//! [`EngineError::Overloaded`] instead of growing memory.
//!
//! Readers never touch the writer's thread: they read the shared projections under a
//! read lock, then wait until the writer reports that the sequence they saw is durable,
//! so a reply never shows a state that a crash could take back.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::{Command, Envelope, Event, LedgerState, Origin, Rejection, Reply, Timestamp};
use crate::ledger::{
    CheckpointJob, Ledger, LedgerReader, SealedBatch, SealedBatchWriter, SnapshotJob, Submission,
    SUBMIT_BATCH_LIMIT,
};
use crate::limits::{
    CHECKPOINT_QUEUE, QUEUE_COMMANDS_DEFAULT, QUEUE_JOBS_DEFAULT, READ_WAIT_DEFAULT,
};
use crate::storage::checkpoint::CheckpointSigner;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most commands waiting in the queue; beyond it submissions are refused.
    pub queue_commands: usize,
    /// Most jobs waiting in the queue.
    pub queue_jobs: usize,
    /// Most commands per group commit (at most [`SUBMIT_BATCH_LIMIT`]).
    pub batch_commands: usize,
    /// How long a reader waits for the writer to make what it read durable.
    pub read_wait: Duration,
    /// Signed checkpoints: none without a key.
    pub checkpoints: Option<CheckpointPolicy>,
    /// Told about every batch (metrics).
    pub observer: Option<Arc<dyn BatchObserver>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_commands: QUEUE_COMMANDS_DEFAULT,
            queue_jobs: QUEUE_JOBS_DEFAULT,
            batch_commands: SUBMIT_BATCH_LIMIT,
            read_wait: READ_WAIT_DEFAULT,
            checkpoints: None,
            observer: None,
        }
    }
}

impl std::fmt::Debug for dyn BatchObserver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BatchObserver")
    }
}

/// When the writer has the durable head signed: every `interval` events, after every
/// batch with a settlement run or a year close, when it starts with an unsigned tail and
/// when it stops. Signing and storing happen on their own thread, after the batch's
/// replies were sent, so they never delay an acknowledgement.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    pub signer: CheckpointSigner,
    pub interval: u64,
}

/// What one batch did, counted by the writer for [`BatchObserver`]: commands by name and
/// outcome, rejections by code, sizes and times.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// (command name, accepted, rejected), one entry per name in the batch.
    pub commands: Vec<(&'static str, u64, u64)>,
    /// (rejection name, count).
    pub rejections: Vec<(&'static str, u64)>,
    pub events: u64,
    /// From taking the batch off the queue until it was written (its replies go out
    /// right after).
    pub commit: Duration,
    /// The write with its fsync.
    pub write: Duration,
}

impl BatchReport {
    fn clear(&mut self) {
        self.commands.clear();
        self.rejections.clear();
        self.events = 0;
        self.commit = Duration::ZERO;
        self.write = Duration::ZERO;
    }

    fn count(&mut self, envelopes: &[Envelope], replies: &[Result<Reply, Rejection>]) {
        for (envelope, reply) in envelopes.iter().zip(replies) {
            let name = envelope.command.name();
            let position = match self.commands.iter().position(|entry| entry.0 == name) {
                Some(position) => position,
                None => {
                    self.commands.push((name, 0, 0));
                    self.commands.len() - 1
                }
            };
            match reply {
                Ok(_) => self.commands[position].1 += 1,
                Err(rejection) => {
                    self.commands[position].2 += 1;
                    let reason = rejection.code.name();
                    match self.rejections.iter_mut().find(|entry| entry.0 == reason) {
                        Some(entry) => entry.1 += 1,
                        None => self.rejections.push((reason, 1)),
                    }
                }
            }
        }
    }
}

/// Metrics' view of the writer, called on its thread once per batch: keep it cheap.
pub trait BatchObserver: Send + Sync {
    /// A batch was written; called before its callers are answered, so the metrics a
    /// caller reads after its answer count its commands.
    fn batch_committed(&self, report: &BatchReport);
    /// A batch's write failed (the ledger is poisoned).
    fn batch_failed(&self, commands: usize);
}

/// Figures the writer keeps for readers (metrics, health): atomics, set off the hot path.
#[derive(Debug, Default)]
pub struct EngineStatus {
    /// Sequence of the newest snapshot written (0: none since start).
    pub snapshot_sequence: AtomicU64,
    /// When it was written, ms since the epoch (0: none since start).
    pub snapshot_written_ms: AtomicI64,
    /// Sequence of the newest checkpoint signed and stored.
    pub checkpoint_sequence: AtomicU64,
    pub checkpoints_signed: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    /// Whether the writer stopped after a failed write.
    pub poisoned: AtomicBool,
    /// Batches decided while the batch before was being written (the committer's
    /// pipeline, see `writer_loop`), since the engine started.
    pub batches_decided_during_write: AtomicU64,
    /// Flushes of the invoice index the server asked for (`api::index_flusher`), because
    /// it was idle and because entries had waited too long, and flushes that failed.
    pub index_flushes_idle: AtomicU64,
    pub index_flushes_age: AtomicU64,
    pub index_flush_failures: AtomicU64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("the ledger is overloaded: {queued} commands queued, limit {limit}")]
    Overloaded { queued: usize, limit: usize },
    #[error("the ledger is shutting down")]
    ShuttingDown,
    #[error("the ledger's storage failed: {0}")]
    Storage(String),
    #[error("a batch holds at most {limit} commands, got {got}")]
    BatchTooLarge { got: usize, limit: usize },
    #[error("timed out waiting for sequence {0} to become durable")]
    ReadTimeout(u64),
}

type JobReply = Result<Vec<Result<Reply, Rejection>>, EngineError>;

enum Job {
    Commands {
        submission: Submission,
        reply: oneshot::Sender<JobReply>,
    },
    Shutdown,
}

/// A cloneable handle for submitting commands and reading state.
#[derive(Clone)]
pub struct EngineHandle {
    sender: mpsc::Sender<Job>,
    queued_commands: Arc<AtomicUsize>,
    config: EngineConfig,
    reader: LedgerReader,
    committed: watch::Receiver<u64>,
    /// Why the writer stopped accepting work (a failed write), once it has.
    failure: watch::Receiver<Option<String>>,
    status: Arc<EngineStatus>,
}

/// The engine's owner: holds the writer thread so it can be shut down and joined.
pub struct Engine {
    handle: EngineHandle,
    writer: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the writer thread over an opened ledger.
    pub fn start(ledger: Ledger, config: EngineConfig) -> Result<Engine, EngineError> {
        let (sender, receiver) = mpsc::channel(config.queue_jobs.max(1));
        let committed_sequence = ledger.state().last_sequence();
        let (committed_sender, committed) = watch::channel(committed_sequence);
        let (failure_sender, failure) = watch::channel(None);
        let queued_commands = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(EngineStatus::default());
        status
            .snapshot_sequence
            .store(ledger.last_snapshot_sequence(), Ordering::Relaxed);
        let handle = EngineHandle {
            sender,
            queued_commands: Arc::clone(&queued_commands),
            // Without the observer and the signer: the metrics hold a handle, and a
            // handle holding the metrics would keep the store open forever (a cycle).
            config: EngineConfig {
                checkpoints: None,
                observer: None,
                ..config.clone()
            },
            reader: ledger.reader(),
            committed,
            failure,
            status: Arc::clone(&status),
        };
        let niceness = ledger.options().commit_thread_niceness;
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                super::priority::favour_this_thread(niceness, "ledger-writer");
                writer_loop(
                    ledger,
                    receiver,
                    committed_sender,
                    failure_sender,
                    queued_commands,
                    config,
                    status,
                )
            })
            .map_err(|error| EngineError::Storage(format!("cannot start the writer: {error}")))?;
        Ok(Engine {
            handle,
            writer: Some(writer),
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Finishes every job queued before this call, writes a final snapshot and stops.
    pub async fn shutdown(mut self) {
        let _ = self.handle.sender.send(Job::Shutdown).await;
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = self.handle.sender.try_send(Job::Shutdown);
            let _ = writer.join();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// A batch the writer hands to the committer: sealed (or, every command refused,
/// nothing to write), with its callers and their replies.
struct HandedBatch {
    sealed: Option<SealedBatch>,
    /// The state's sequence after the batch: durable once it is written.
    last_sequence: u64,
    commands: usize,
    buffers: BatchBuffers,
    /// When the writer took the batch off the queue.
    started: Instant,
}

/// What travels with a batch from the writer to the committer and back: its replies,
/// who waits for them, and its report. Kept and reused (a batch's replies take ~1 MB,
/// which would otherwise be faulted in anew).
struct BatchBuffers {
    replies: Vec<Result<Reply, Rejection>>,
    waiting: Vec<(usize, oneshot::Sender<JobReply>)>,
    report: BatchReport,
}

impl BatchBuffers {
    fn new(batch_limit: usize) -> BatchBuffers {
        let mut replies = Vec::new();
        // Written now: the first batches would otherwise fault the room in (see
        // `storage::heap::write_spare_room`).
        crate::storage::heap::write_spare_room(&mut replies, batch_limit);
        BatchBuffers {
            replies,
            waiting: Vec::new(),
            report: BatchReport::default(),
        }
    }

    /// Sends each caller its share of the replies, in the order they were gathered.
    fn answer(&mut self) {
        let mut results = self.replies.drain(..);
        for (count, reply) in self.waiting.drain(..) {
            let mine: Vec<_> = results.by_ref().take(count).collect();
            let _ = reply.send(Ok(mine));
        }
    }

    /// Fails every caller with `error`.
    fn fail(&mut self, error: &EngineError) {
        self.replies.clear();
        for (_, reply) in self.waiting.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// The committer's word that a handed batch is answered: its buffers come back, and
/// whether its write (log or index part) failed.
struct SettledBatch {
    /// The batch was sealed (it counted in [`Ledger::sealed_batch_settled`]).
    sealed: bool,
    failure: Option<String>,
    buffers: BatchBuffers,
}

/// The writer's side of the pipeline to the committer: the batches handed over and not
/// yet settled, and the buffers free for the next batch.
struct Pipeline {
    handed: Option<std::sync::mpsc::SyncSender<HandedBatch>>,
    /// Told when the committer is found gone, as after a failed write.
    status: Arc<EngineStatus>,
    failure: Arc<watch::Sender<Option<String>>>,
    settled: std::sync::mpsc::Receiver<SettledBatch>,
    in_flight: usize,
    spare: Vec<BatchBuffers>,
    batch_limit: usize,
    committer: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// Buffers for the next batch: a returned set if there is one.
    fn buffers(&mut self) -> BatchBuffers {
        self.spare
            .pop()
            .unwrap_or_else(|| BatchBuffers::new(self.batch_limit))
    }

    /// Hands a decided batch to the committer: waits until it takes it, once the batch
    /// before is written and answered.
    fn hand(&mut self, batch: HandedBatch) -> Result<(), Box<HandedBatch>> {
        let Some(handed) = &self.handed else {
            return Err(Box::new(batch));
        };
        match handed.send(batch) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(std::sync::mpsc::SendError(batch)) => Err(Box::new(batch)),
        }
    }

    /// Takes in what the committer has settled, without waiting (`wait`: false) or until
    /// nothing is in flight (`wait`: true).
    fn absorb(&mut self, ledger: &mut Ledger, wait: bool) {
        while self.in_flight > 0 {
            let next = if wait {
                self.settled.recv().ok()
            } else {
                match self.settled.try_recv() {
                    Ok(settled) => Some(settled),
                    Err(std::sync::mpsc::TryRecvError::Empty) => return,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
                }
            };
            let Some(settled) = next else {
                // The committer is gone (it panicked): what it held is lost, so is the
                // guarantee that the state is the durable one.
                let reason = "the committer thread stopped".to_string();
                tracing::error!(%reason, "the ledger refuses further writes until restarted");
                ledger.poison(reason.clone());
                self.status.poisoned.store(true, Ordering::Relaxed);
                let _ = self.failure.send(Some(reason));
                self.in_flight = 0;
                return;
            };
            self.in_flight -= 1;
            self.take_in(ledger, settled);
        }
    }

    /// Takes in one settled batch: its failure poisons the ledger, its buffers are free.
    fn take_in(&mut self, ledger: &mut Ledger, settled: SettledBatch) {
        if settled.sealed {
            ledger.sealed_batch_settled(settled.failure);
        } else if let Some(reason) = settled.failure {
            ledger.poison(reason);
        }
        self.spare.push(settled.buffers);
    }

    /// Lets every handed batch settle, then stops the committer.
    fn finish(mut self, ledger: &mut Ledger) {
        self.absorb(ledger, true);
        self.handed = None;
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

/// The committer's thread: writes each handed batch's log part with its fsync, then
/// answers its callers, then writes its index part, in the order the batches were
/// handed. Why a thread of its own: the writer decides the next batch meanwhile.
///
/// What keeps that correct:
/// - every answer, the committed watermark, and with it every read, waits for its
///   batch's fsync, as before;
/// - batches are written in order, one at a time, each one's index part before the next
///   one's log part (the order `storage/index_lag.rs` relies on);
/// - once a write fails, every later batch fails too: it was decided on a state the log
///   does not hold;
/// - the writer never empties the invoice cache, grows the invoice filter, snapshots or
///   signs a checkpoint while a batch is in flight (`Ledger::sealed_unwritten`): the
///   next batch's prefetch finds an in-flight batch's invoices in the cache, not the
///   index.
#[derive(Clone)]
struct Committer {
    writer: SealedBatchWriter,
    committed: Arc<watch::Sender<u64>>,
    failure: Arc<watch::Sender<Option<String>>>,
    observer: Option<Arc<dyn BatchObserver>>,
    status: Arc<EngineStatus>,
}

impl Committer {
    fn run(
        self,
        handed: std::sync::mpsc::Receiver<HandedBatch>,
        settled: std::sync::mpsc::SyncSender<SettledBatch>,
    ) {
        let mut failed: Option<String> = None;
        for batch in handed {
            let settled_batch = self.commit(batch, &mut failed);
            if settled.send(settled_batch).is_err() {
                return;
            }
        }
    }

    fn commit(&self, batch: HandedBatch, failed: &mut Option<String>) -> SettledBatch {
        let HandedBatch {
            sealed,
            last_sequence,
            commands,
            mut buffers,
            started,
        } = batch;
        let was_sealed = sealed.is_some();
        let written = match (&*failed, sealed) {
            (Some(reason), _) => Err(reason.clone()),
            (None, None) => Ok(None),
            (None, Some(sealed)) => {
                let writing = Instant::now();
                let written = self.writer.write_log(sealed);
                buffers.report.write = writing.elapsed();
                written.map(Some).map_err(|error| error.to_string())
            }
        };
        let failure = match written {
            Ok(unindexed) => {
                self.committed.send_if_modified(|durable| {
                    let newer = *durable < last_sequence;
                    if newer {
                        *durable = last_sequence;
                    }
                    newer
                });
                // Counted before anyone is answered, so a caller that reads the metrics
                // after its answer finds its own commands in them.
                if let Some(observer) = &self.observer {
                    buffers.report.commit = started.elapsed();
                    observer.batch_committed(&buffers.report);
                }
                buffers.answer();
                // The batch's invoice index entries, after its answers: its callers do
                // not wait for them, readers of the index do (`storage::index_lag`).
                // A failure here failed no caller (the batch is durable and answered), so
                // it is not counted as a failed batch: the ledger stops, health says so,
                // and the next open derives the entries from the log.
                match unindexed.map(|unindexed| self.writer.write_index(unindexed)) {
                    Some(Err(error)) => {
                        tracing::error!(%error, "writing the invoice index failed; the ledger refuses further writes until restarted");
                        Some(error.to_string())
                    }
                    _ => None,
                }
            }
            Err(reason) => {
                if failed.is_none() {
                    tracing::error!(error = %reason, "group commit failed; the ledger refuses further writes until restarted");
                }
                if let Some(observer) = &self.observer {
                    observer.batch_failed(commands);
                }
                buffers.fail(&EngineError::Storage(reason.clone()));
                Some(reason)
            }
        };
        if let Some(reason) = &failure {
            if failed.is_none() {
                self.status.poisoned.store(true, Ordering::Relaxed);
                let _ = self.failure.send(Some(reason.clone()));
                *failed = Some(reason.clone());
            }
        }
        SettledBatch {
            sealed: was_sealed,
            failure,
            buffers,
        }
    }
}

/// Work that needs the state to be the durable one, done by the writer when nothing is
/// in flight: the invoice cache and filter (`Ledger::do_quiet_work`), a snapshot (written
/// by another thread: a snapshot is for the next restart, not for callers; if the
/// previous one is still being written, this one is skipped), and a checkpoint.
fn do_quiet_work(
    ledger: &mut Ledger,
    snapshots: &std::sync::mpsc::SyncSender<SnapshotJob>,
    checkpoints: &mut Option<Checkpoints>,
    settled_since_checkpoint: &mut bool,
) {
    if ledger.is_poisoned() {
        return;
    }
    ledger.do_quiet_work();
    if let Some(job) = ledger.snapshot_job_if_due() {
        if snapshots.try_send(job).is_err() {
            tracing::debug!("previous snapshot still being written; skipped one");
        }
    }
    let settled = std::mem::take(settled_since_checkpoint);
    if let Some(checkpoints) = checkpoints.as_mut() {
        checkpoints.after_batch(ledger, settled);
    }
}

/// Commands queued (counting a job carried over) from which the writer decides the next
/// batch while the last one is written: as many as the encoder works beside the writer
/// for, whose deciding takes about a millisecond, as long as a write with its fsync.
const PIPELINE_FROM_QUEUED_COMMANDS: usize = 1024;

fn writer_loop(
    mut ledger: Ledger,
    mut receiver: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
    failure: watch::Sender<Option<String>>,
    queued_commands: Arc<AtomicUsize>,
    config: EngineConfig,
    status: Arc<EngineStatus>,
) {
    let batch_limit = config.batch_commands.clamp(1, SUBMIT_BATCH_LIMIT);
    let failure = Arc::new(failure);
    let mut carried: Option<Job> = None;
    // The room of a batch of several submissions (one alone is decided where it lies),
    // written now: the first such batch would otherwise fault ~3 MB of fresh pages in
    // (see `storage::heap::write_spare_room`).
    let mut room: Vec<Envelope> = Vec::new();
    crate::storage::heap::write_spare_room(&mut room, batch_limit);
    // The submissions of the batch being formed, as taken off the queue.
    let mut submissions: Vec<Submission> = Vec::with_capacity(batch_limit);
    let (snapshots, snapshot_jobs) = std::sync::mpsc::sync_channel::<SnapshotJob>(1);
    let snapshot_status = Arc::clone(&status);
    let snapshot_writer = std::thread::Builder::new()
        .name("ledger-snapshots".into())
        .spawn(move || {
            super::priority::leave_the_favour_to_the_commit_threads("ledger-snapshots");
            for job in snapshot_jobs {
                let sequence = job.sequence();
                match job.write() {
                    Ok(()) => {
                        snapshot_status
                            .snapshot_sequence
                            .store(sequence, Ordering::Relaxed);
                        snapshot_status
                            .snapshot_written_ms
                            .store(now_ms(), Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "writing a snapshot failed; the next restart replays more")
                    }
                }
            }
        });
    // A rendezvous: one batch being written, and the next one waiting in the writer's hand
    // at most.
    let (handed, handed_batches) = std::sync::mpsc::sync_channel::<HandedBatch>(0);
    let (settled_sender, settled) = std::sync::mpsc::sync_channel::<SettledBatch>(4);
    let committer = Committer {
        writer: ledger.sealed_batch_writer(),
        committed: Arc::new(committed),
        failure: Arc::clone(&failure),
        observer: config.observer.clone(),
        status: Arc::clone(&status),
    };
    // The writer's own: a batch with nothing in flight and little queued behind it is
    // written here, as in a plain group commit, without the hand-over to the committer.
    let inline_committer = committer.clone();
    let mut inline_failed: Option<String> = None;
    let niceness = ledger.options().commit_thread_niceness;
    let committer = std::thread::Builder::new()
        .name("ledger-commit".into())
        .spawn(move || {
            super::priority::favour_this_thread(niceness, "ledger-commit");
            committer.run(handed_batches, settled_sender)
        });
    let committer = match committer {
        Ok(committer) => Some(committer),
        Err(error) => {
            // Without it only batches written inline can be written; the first batch
            // handed over fails (`Pipeline::hand`) and poisons the ledger.
            tracing::error!(%error, "cannot start the committer thread; the first large batch will stop the ledger");
            None
        }
    };
    let mut pipeline = Pipeline {
        handed: committer.is_some().then_some(handed),
        status: Arc::clone(&status),
        failure: Arc::clone(&failure),
        settled,
        in_flight: 0,
        spare: (0..2).map(|_| BatchBuffers::new(batch_limit)).collect(),
        batch_limit,
        committer,
    };
    let mut checkpoints = Checkpoints::start(&ledger, config.checkpoints.clone(), &status);
    // A settlement run or a year close was decided since the last checkpoint: the next
    // quiet moment signs one.
    let mut settled_since_checkpoint = false;
    let mut shutting_down = false;
    while !shutting_down {
        pipeline.absorb(&mut ledger, false);
        // Decide the next batch while one is written only when the next is large: its
        // deciding then takes about as long as the write, and hides it. A few commands
        // (unary calls) are decided in a moment; handed ahead they would only make the
        // group commits smaller and the fsyncs more, so they wait for the write, and
        // whatever comes meanwhile joins them, as in a plain group commit.
        if pipeline.in_flight > 0
            && queued_commands.load(Ordering::Relaxed) < PIPELINE_FROM_QUEUED_COMMANDS
        {
            pipeline.absorb(&mut ledger, true);
        }
        if pipeline.in_flight == 0 {
            do_quiet_work(
                &mut ledger,
                &snapshots,
                &mut checkpoints,
                &mut settled_since_checkpoint,
            );
        }
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        // The last batch's envelopes, dropped here (a submission's own, or the room's).
        submissions.clear();
        room.clear();
        let mut taken = 0;
        let mut buffers = pipeline.buffers();
        // Time comes in with the commands, from here, never from inside the state
        // machine; it never runs backwards even if the wall clock does.
        let at = Timestamp(now_ms().max(ledger.state().last_time().0));
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Shutdown => {
                    shutting_down = true;
                    break;
                }
                Job::Commands {
                    mut submission,
                    reply,
                } => {
                    if taken > 0 && taken + submission.len() > batch_limit {
                        carried = Some(Job::Commands { submission, reply });
                        break;
                    }
                    queued_commands.fetch_sub(submission.len(), Ordering::Relaxed);
                    taken += submission.len();
                    buffers.waiting.push((submission.len(), reply));
                    submission.stamp(at);
                    submissions.push(submission);
                }
            }
            if taken < batch_limit {
                next = receiver.try_recv().ok();
            }
        }
        // A batch of one submission (one PostInvoices call) is decided where the caller
        // built it; several are moved into the writer's room, one after another.
        let envelopes: &[Envelope] = match submissions.as_mut_slice() {
            [alone] => alone.envelopes(),
            several => {
                for submission in several {
                    submission.move_into(&mut room);
                }
                &room
            }
        };
        debug_assert_eq!(
            envelopes.len(),
            taken,
            "every command taken is in the batch"
        );
        if envelopes.is_empty() {
            pipeline.spare.push(buffers);
            continue;
        }
        // Work that needs a durable state is due (the cache is full, a snapshot or a
        // checkpoint is due): let what is in flight be written first. About one batch in
        // eight at 8,192 commands a batch, for the cache.
        pipeline.absorb(&mut ledger, false);
        if pipeline.in_flight > 0
            && (ledger.quiet_work_due()
                || settled_since_checkpoint
                || checkpoints
                    .as_ref()
                    .is_some_and(|checkpoints| checkpoints.due(&ledger)))
        {
            pipeline.absorb(&mut ledger, true);
        }
        if pipeline.in_flight == 0 {
            do_quiet_work(
                &mut ledger,
                &snapshots,
                &mut checkpoints,
                &mut settled_since_checkpoint,
            );
        }
        let started = Instant::now();
        if pipeline.in_flight > 0 {
            status
                .batches_decided_during_write
                .fetch_add(1, Ordering::Relaxed);
        }
        match ledger.decide_batch(envelopes, &mut buffers.replies) {
            Ok(sealed) => {
                if config.observer.is_some() {
                    buffers.report.clear();
                    buffers.report.count(envelopes, &buffers.replies);
                    buffers.report.events = ledger.last_batch_events().len() as u64;
                }
                // Only with checkpoints: the flag makes the next batch wait for a quiet
                // moment, and only signing a checkpoint clears it.
                settled_since_checkpoint |= checkpoints.is_some()
                    && ledger.last_batch_events().iter().any(|event| {
                        matches!(
                            event.event,
                            Event::SettlementRunCreated { .. } | Event::ProgrammeYearClosed { .. }
                        )
                    });
                let batch = HandedBatch {
                    last_sequence: ledger.state().last_sequence(),
                    sealed,
                    commands: envelopes.len(),
                    buffers,
                    started,
                };
                // With nothing in flight and little queued behind (unary calls, or one
                // connection waiting for its answer) the batch is written here: there is
                // nothing to decide meanwhile, and the hand-over would cost a thread's
                // wake-up and the batch's memory moving to another core.
                if pipeline.in_flight == 0
                    && queued_commands.load(Ordering::Relaxed) < PIPELINE_FROM_QUEUED_COMMANDS
                {
                    let settled = inline_committer.commit(batch, &mut inline_failed);
                    pipeline.take_in(&mut ledger, settled);
                } else if let Err(batch) = pipeline.hand(batch) {
                    // The committer is gone: nothing more can be written.
                    let reason = "the committer thread stopped".to_string();
                    if batch.sealed.is_some() {
                        ledger.sealed_batch_settled(Some(reason.clone()));
                    } else {
                        ledger.poison(reason.clone());
                    }
                    status.poisoned.store(true, Ordering::Relaxed);
                    let _ = failure.send(Some(reason.clone()));
                    let mut buffers = batch.buffers;
                    buffers.fail(&EngineError::Storage(reason));
                    pipeline.spare.push(buffers);
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; the ledger refuses further writes until restarted");
                status.poisoned.store(true, Ordering::Relaxed);
                if let Some(observer) = &config.observer {
                    observer.batch_failed(envelopes.len());
                }
                let _ = failure.send(Some(error.to_string()));
                buffers.fail(&EngineError::Storage(error.to_string()));
                pipeline.spare.push(buffers);
            }
        }
    }
    // Everything handed is written and answered; then the queue is answered, and the
    // ledger closed (final snapshot) once any snapshot in flight is written.
    pipeline.finish(&mut ledger);
    drop(snapshots);
    if let Ok(handle) = snapshot_writer {
        let _ = handle.join();
    }
    receiver.close();
    while let Ok(job) = receiver.try_recv() {
        if let Job::Commands { reply, .. } = job {
            let _ = reply.send(Err(EngineError::ShuttingDown));
        }
    }
    if let Some(Job::Commands { reply, .. }) = carried {
        let _ = reply.send(Err(EngineError::ShuttingDown));
    }
    // The last checkpoint covers everything written before the stop.
    if let Some(checkpoints) = checkpoints.take() {
        checkpoints.finish(&ledger);
    }
    if let Err(error) = ledger.close() {
        tracing::error!(%error, "closing the ledger failed");
    }
}

/// The writer's side of signed checkpoints: decides when one is due and hands the head
/// to the signing thread.
struct Checkpoints {
    interval: u64,
    /// The sequence of the newest checkpoint handed to the signer (or found stored).
    last: u64,
    /// A checkpoint was due but the signer's queue was full: send one after the next batch.
    owed: bool,
    jobs: Option<std::sync::mpsc::SyncSender<CheckpointJob>>,
    signer_thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    /// Starts the signing thread, and has the tail signed if the log is ahead of the
    /// newest stored checkpoint (a crash, or a key configured on an existing ledger).
    fn start(
        ledger: &Ledger,
        policy: Option<CheckpointPolicy>,
        status: &Arc<EngineStatus>,
    ) -> Option<Checkpoints> {
        let Some(policy) = policy else {
            tracing::info!("no checkpoint_key configured: no signed checkpoints");
            return None;
        };
        let last = match ledger.newest_checkpoint_sequence() {
            Ok(last) => last,
            Err(error) => {
                tracing::error!(%error, "reading the newest checkpoint failed; signing from the start");
                0
            }
        };
        status.checkpoint_sequence.store(last, Ordering::Relaxed);
        let (jobs, received) = std::sync::mpsc::sync_channel::<CheckpointJob>(CHECKPOINT_QUEUE);
        let signer = policy.signer.clone();
        let signer_status = Arc::clone(status);
        let signer_thread = std::thread::Builder::new()
            .name("ledger-checkpoints".into())
            .spawn(move || {
                super::priority::leave_the_favour_to_the_commit_threads("ledger-checkpoints");
                for job in received {
                    let sequence = job.sequence;
                    match job.sign_and_store(&signer, Timestamp(now_ms())) {
                        Ok(()) => {
                            signer_status
                                .checkpoint_sequence
                                .fetch_max(sequence, Ordering::Relaxed);
                            signer_status
                                .checkpoints_signed
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            signer_status
                                .checkpoint_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::error!(sequence, %error, "signing or storing a checkpoint failed");
                        }
                    }
                }
            });
        let signer_thread = match signer_thread {
            Ok(thread) => thread,
            Err(error) => {
                tracing::error!(%error, "cannot start the checkpoint signer: no signed checkpoints");
                return None;
            }
        };
        tracing::info!(
            interval = policy.interval,
            key = %hex::encode(policy.signer.fingerprint()),
            newest = last,
            "signing checkpoints"
        );
        let mut checkpoints = Checkpoints {
            interval: policy.interval.max(1),
            last,
            owed: false,
            jobs: Some(jobs),
            signer_thread: Some(signer_thread),
        };
        if ledger.state().last_sequence() > last {
            checkpoints.send(ledger);
        }
        Some(checkpoints)
    }

    /// Whether a checkpoint is owed or the interval has passed (a settlement run or a
    /// year close makes one due as well: the writer tracks those).
    fn due(&self, ledger: &Ledger) -> bool {
        self.owed || ledger.state().last_sequence().saturating_sub(self.last) >= self.interval
    }

    fn after_batch(&mut self, ledger: &Ledger, settled: bool) {
        let sequence = ledger.state().last_sequence();
        if settled || self.owed || sequence.saturating_sub(self.last) >= self.interval {
            self.send(ledger);
        }
    }

    fn send(&mut self, ledger: &Ledger) {
        let Some(job) = ledger.checkpoint_job() else {
            return;
        };
        let sequence = job.sequence;
        if sequence <= self.last {
            self.owed = false;
            return;
        }
        let Some(jobs) = &self.jobs else {
            return;
        };
        match jobs.try_send(job) {
            Ok(()) => {
                self.last = sequence;
                self.owed = false;
            }
            Err(_) => {
                tracing::debug!(
                    sequence,
                    "checkpoint signer busy; signing after the next batch"
                );
                self.owed = true;
            }
        }
    }

    /// Signs the head as the writer stops, and waits for the signer to finish.
    fn finish(mut self, ledger: &Ledger) {
        if ledger.state().last_sequence() > self.last {
            if let (Some(job), Some(jobs)) = (ledger.checkpoint_job(), &self.jobs) {
                let _ = jobs.send(job);
            }
        }
        self.jobs = None;
        if let Some(thread) = self.signer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl EngineHandle {
    /// The writer's figures (snapshots, checkpoints, poisoned), for metrics.
    pub fn status(&self) -> &EngineStatus {
        &self.status
    }

    /// Submits commands from `origin` as one job; answers once they are durable. Fails
    /// at once with `Overloaded` when the queue is full.
    pub async fn submit(&self, origin: Origin, commands: Vec<Command>) -> JobReply {
        self.submit_prepared(Submission::of(origin, commands)).await
    }

    /// Submits a batch already in its envelopes (the writer sets their time); replies in
    /// order once the batch is durable. Fails at once with [`EngineError::Overloaded`]
    /// when the queue is full, and with [`EngineError::BatchTooLarge`] above
    /// [`SUBMIT_BATCH_LIMIT`] commands.
    pub async fn submit_prepared(&self, submission: Submission) -> JobReply {
        let count = submission.len();
        if count > SUBMIT_BATCH_LIMIT {
            return Err(EngineError::BatchTooLarge {
                got: count,
                limit: SUBMIT_BATCH_LIMIT,
            });
        }
        let queued = self.queued_commands.fetch_add(count, Ordering::Relaxed);
        if queued + count > self.config.queue_commands {
            self.queued_commands.fetch_sub(count, Ordering::Relaxed);
            return Err(EngineError::Overloaded {
                queued,
                limit: self.config.queue_commands,
            });
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Commands { submission, reply };
        if let Err(error) = self.sender.try_send(job) {
            self.queued_commands.fetch_sub(count, Ordering::Relaxed);
            return Err(match error {
                mpsc::error::TrySendError::Full(_) => EngineError::Overloaded {
                    queued,
                    limit: self.config.queue_commands,
                },
                mpsc::error::TrySendError::Closed(_) => EngineError::ShuttingDown,
            });
        }
        answer.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Submits one command.
    pub async fn submit_one(
        &self,
        origin: Origin,
        command: Command,
    ) -> Result<Result<Reply, Rejection>, EngineError> {
        let mut replies = self.submit(origin, vec![command]).await?;
        replies.pop().ok_or(EngineError::ShuttingDown)
    }

    /// Reads the projections with `read`, then waits until what it saw is durable.
    /// Returns the value and the sequence number it reflects.
    pub async fn read<T>(
        &self,
        read: impl FnOnce(&LedgerState) -> T,
    ) -> Result<(T, u64), EngineError> {
        let (value, sequence) = self.reader.read(read);
        self.wait_durable(sequence).await?;
        Ok((value, sequence))
    }

    /// Waits until the writer reports `sequence` durable.
    pub async fn wait_durable(&self, sequence: u64) -> Result<(), EngineError> {
        let mut committed = self.committed.clone();
        let waited = tokio::time::timeout(self.config.read_wait, async {
            committed
                .wait_for(|durable| *durable >= sequence)
                .await
                .map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(EngineError::ShuttingDown),
            Err(_) => Err(EngineError::ReadTimeout(sequence)),
        }
    }

    /// A receiver that says why the ledger stopped accepting writes, once it has (a
    /// failed write poisons it until restart); `None` while it is healthy.
    pub fn failure_watch(&self) -> watch::Receiver<Option<String>> {
        self.failure.clone()
    }

    /// The highest durable sequence number now.
    pub fn committed_sequence(&self) -> u64 {
        *self.committed.borrow()
    }

    /// A receiver that changes whenever a batch becomes durable (for subscriptions).
    pub fn committed_watch(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// The ledger's reader: invoices and the log. Reads of the projections go through
    /// [`EngineHandle::read`], which also waits until what was read is durable.
    pub fn reader(&self) -> &LedgerReader {
        &self.reader
    }

    pub fn queued_commands(&self) -> usize {
        self.queued_commands.load(Ordering::Relaxed)
    }
}
