//! The engine: one writer thread that owns the [`Ledger`], fed through a bounded queue.
//!
//! Network tasks submit jobs (a single command or a batch); the writer drains whatever is
//! queued, up to [`SUBMIT_BATCH_LIMIT`] commands, stamps them with the time, lets the
//! state machine decide them and frames them; a committer thread writes each batch as one
//! `WriteBatch` with one fsync (group commit) and only then answers every job of the
//! batch. The two stages overlap (a two-batch pipeline), so one core decides while the
//! other writes. Batches form both from `PostInvoices` calls and from many concurrent
//! `PostInvoice` calls.
//!
//! Everything is bounded: the queue (jobs and commands), the batch, and the time a
//! reader waits for the writer. When the queue is full, submission fails at once with
//! [`EngineError::Overloaded`] instead of growing memory.
//!
//! Readers never touch the writer's thread: they read the shared projections under a
//! read lock, then wait until the writer reports that the sequence they saw is durable,
//! so a reply never shows a state that a crash could take back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::{Command, Envelope, LedgerState, Rejection, Reply, Timestamp};
use crate::ledger::{commit_prepared, Ledger, PreparedCommit, SUBMIT_BATCH_LIMIT};
use crate::storage::EventStore;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_commands: 131_072,
            queue_jobs: 16_384,
            batch_commands: SUBMIT_BATCH_LIMIT,
            read_wait: Duration::from_secs(5),
        }
    }
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
        commands: Vec<Command>,
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
    state: Arc<RwLock<LedgerState>>,
    store: Arc<EventStore>,
    committed: watch::Receiver<u64>,
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
        let queued_commands = Arc::new(AtomicUsize::new(0));
        let handle = EngineHandle {
            sender,
            queued_commands: Arc::clone(&queued_commands),
            config: config.clone(),
            state: ledger.shared_state(),
            store: ledger.shared_store(),
            committed,
        };
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer_loop(ledger, receiver, committed_sender, queued_commands, config))
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

/// A batch on its way from the writer to the committer, with whom to answer.
struct InFlight {
    prepared: Option<PreparedCommit>,
    replies: Vec<Result<Reply, Rejection>>,
    waiting: Vec<(usize, oneshot::Sender<JobReply>)>,
    failure: Option<String>,
}

/// What the committer has made durable, for the writer's cache eviction to wait on.
#[derive(Default)]
struct Durable {
    sequence: Mutex<u64>,
    advanced: Condvar,
}

/// The writer thread: drains jobs into batches, stamps time, and prepares each batch
/// (prefetch, decide, frame, chain); the committer thread writes prepared batches in
/// order, one fsync each, and only then answers. With two cores the next batch is
/// decided while the previous one is being written.
fn writer_loop(
    mut ledger: Ledger,
    mut receiver: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
    queued_commands: Arc<AtomicUsize>,
    config: EngineConfig,
) {
    let batch_limit = config.batch_commands.clamp(1, SUBMIT_BATCH_LIMIT);
    let durable = Arc::new(Durable::default());
    *durable.sequence.lock() = ledger.state().last_sequence();
    let poison: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (to_committer, from_writer) = std::sync::mpsc::sync_channel::<InFlight>(PIPELINE_DEPTH);
    let committer = {
        let (store, durable, poison) = (
            ledger.shared_store(),
            Arc::clone(&durable),
            Arc::clone(&poison),
        );
        std::thread::Builder::new()
            .name("ledger-committer".into())
            .spawn(move || committer_loop(&store, from_writer, &committed, &durable, &poison))
    };
    let committer = match committer {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "cannot start the committer thread");
            return;
        }
    };
    let mut carried: Option<Job> = None;
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(batch_limit);
    let mut shutting_down = false;
    while !shutting_down {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        envelopes.clear();
        let mut waiting: Vec<(usize, oneshot::Sender<JobReply>)> = Vec::new();
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
                Job::Commands { commands, reply } => {
                    if !envelopes.is_empty() && envelopes.len() + commands.len() > batch_limit {
                        carried = Some(Job::Commands { commands, reply });
                        break;
                    }
                    queued_commands.fetch_sub(commands.len(), Ordering::Relaxed);
                    waiting.push((commands.len(), reply));
                    envelopes.extend(commands.into_iter().map(|command| Envelope { at, command }));
                }
            }
            if envelopes.len() < batch_limit {
                next = receiver.try_recv().ok();
            }
        }
        if envelopes.is_empty() {
            continue;
        }
        if let Some(reason) = poison.lock().clone() {
            ledger.poison(reason);
        }
        if ledger.invoice_cache_over_limit() {
            // The cache may forget only what the store's index already holds.
            let target = ledger.state().last_sequence();
            let mut sequence = durable.sequence.lock();
            while *sequence < target && poison.lock().is_none() {
                durable
                    .advanced
                    .wait_for(&mut sequence, Duration::from_millis(100));
            }
            drop(sequence);
            ledger.evict_if_over_limit();
        }
        let mut replies = Vec::with_capacity(envelopes.len());
        let in_flight = match ledger.prepare(&envelopes, &mut replies) {
            Ok(prepared) => InFlight {
                prepared,
                replies,
                waiting,
                failure: None,
            },
            Err(error) => {
                tracing::error!(%error, "preparing a batch failed; the ledger refuses further writes until restarted");
                InFlight {
                    prepared: None,
                    replies: Vec::new(),
                    waiting,
                    failure: Some(error.to_string()),
                }
            }
        };
        if let Err(std::sync::mpsc::SendError(in_flight)) = to_committer.send(in_flight) {
            for (_, reply) in in_flight.waiting {
                let _ = reply.send(Err(EngineError::ShuttingDown));
            }
        }
    }
    // Let the committer finish what is in flight, answer what is still queued, then close
    // the ledger (final snapshot) unless a write failed.
    drop(to_committer);
    let _ = committer.join();
    if let Some(reason) = poison.lock().clone() {
        ledger.poison(reason);
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
    if let Err(error) = ledger.close() {
        tracing::error!(%error, "closing the ledger failed");
    }
}

/// Batches waiting to be written while the writer prepares the next one.
const PIPELINE_DEPTH: usize = 2;

fn committer_loop(
    store: &EventStore,
    from_writer: std::sync::mpsc::Receiver<InFlight>,
    committed: &watch::Sender<u64>,
    durable: &Durable,
    poison: &Mutex<Option<String>>,
) {
    for in_flight in from_writer {
        let outcome = if let Some(failure) = in_flight.failure {
            Err(failure)
        } else if let Some(reason) = poison.lock().clone() {
            Err(reason)
        } else if let Some(prepared) = in_flight.prepared {
            let last_sequence = prepared.last_sequence();
            match commit_prepared(store, prepared) {
                Ok(()) => {
                    let _ = committed.send(last_sequence);
                    *durable.sequence.lock() = last_sequence;
                    durable.advanced.notify_all();
                    Ok(())
                }
                Err(error) => {
                    tracing::error!(%error, "group commit failed; the ledger refuses further writes until restarted");
                    *poison.lock() = Some(error.to_string());
                    durable.advanced.notify_all();
                    Err(error.to_string())
                }
            }
        } else {
            // Nothing to write (all rejected or duplicates); answering after the batches
            // before it keeps a duplicate's answer behind its original's fsync.
            Ok(())
        };
        match outcome {
            Ok(()) => {
                let mut results = in_flight.replies.into_iter();
                for (count, reply) in in_flight.waiting {
                    let mine: Vec<_> = results.by_ref().take(count).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(reason) => {
                for (_, reply) in in_flight.waiting {
                    let _ = reply.send(Err(EngineError::Storage(reason.clone())));
                }
            }
        }
    }
}

impl EngineHandle {
    /// Submits commands as one job; answers once they are durable. Fails at once with
    /// `Overloaded` when the queue is full.
    pub async fn submit(&self, commands: Vec<Command>) -> JobReply {
        let count = commands.len();
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
        let job = Job::Commands { commands, reply };
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
        command: Command,
    ) -> Result<Result<Reply, Rejection>, EngineError> {
        let mut replies = self.submit(vec![command]).await?;
        replies.pop().ok_or(EngineError::ShuttingDown)
    }

    /// Reads the projections with `read`, then waits until what it saw is durable.
    /// Returns the value and the sequence number it reflects.
    pub async fn read<T>(
        &self,
        read: impl FnOnce(&LedgerState) -> T,
    ) -> Result<(T, u64), EngineError> {
        let (value, sequence) = {
            let state = self.state.read();
            (read(&state), state.last_sequence())
        };
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

    /// The highest durable sequence number now.
    pub fn committed_sequence(&self) -> u64 {
        *self.committed.borrow()
    }

    /// A receiver that changes whenever a batch becomes durable (for subscriptions).
    pub fn committed_watch(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn queued_commands(&self) -> usize {
        self.queued_commands.load(Ordering::Relaxed)
    }
}
