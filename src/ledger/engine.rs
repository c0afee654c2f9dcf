//! The engine: one writer thread that owns the [`Ledger`], fed through a bounded queue.
//!
//! Network tasks submit jobs (a single command or a batch); the writer drains whatever is
//! queued, up to [`SUBMIT_BATCH_LIMIT`] commands, stamps them with the time, lets the
//! state machine decide them, writes them as one `WriteBatch` with one fsync (group
//! commit) and only then answers every job of the batch. So batches form both from
//! `PostInvoices` calls and from many concurrent `PostInvoice` calls.
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

use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::{Command, Envelope, LedgerState, Origin, Rejection, Reply, Timestamp};
use crate::ledger::{Ledger, LedgerReader, SnapshotJob, SUBMIT_BATCH_LIMIT};
use crate::limits::{QUEUE_COMMANDS_DEFAULT, QUEUE_JOBS_DEFAULT, READ_WAIT_DEFAULT};

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
            queue_commands: QUEUE_COMMANDS_DEFAULT,
            queue_jobs: QUEUE_JOBS_DEFAULT,
            batch_commands: SUBMIT_BATCH_LIMIT,
            read_wait: READ_WAIT_DEFAULT,
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
        origin: Origin,
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
    reader: LedgerReader,
    committed: watch::Receiver<u64>,
    /// Why the writer stopped accepting work (a failed write), once it has.
    failure: watch::Receiver<Option<String>>,
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
        let handle = EngineHandle {
            sender,
            queued_commands: Arc::clone(&queued_commands),
            config: config.clone(),
            reader: ledger.reader(),
            committed,
            failure,
        };
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                writer_loop(
                    ledger,
                    receiver,
                    committed_sender,
                    failure_sender,
                    queued_commands,
                    config,
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

fn writer_loop(
    mut ledger: Ledger,
    mut receiver: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
    failure: watch::Sender<Option<String>>,
    queued_commands: Arc<AtomicUsize>,
    config: EngineConfig,
) {
    let batch_limit = config.batch_commands.clamp(1, SUBMIT_BATCH_LIMIT);
    let mut carried: Option<Job> = None;
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(batch_limit);
    let mut replies: Vec<Result<Reply, Rejection>> = Vec::with_capacity(batch_limit);
    let mut waiting: Vec<(usize, oneshot::Sender<JobReply>)> = Vec::new();
    let (snapshots, snapshot_jobs) = std::sync::mpsc::sync_channel::<SnapshotJob>(1);
    let snapshot_writer = std::thread::Builder::new()
        .name("ledger-snapshots".into())
        .spawn(move || {
            for job in snapshot_jobs {
                if let Err(error) = job.write() {
                    tracing::warn!(%error, "writing a snapshot failed; the next restart replays more");
                }
            }
        });
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
        replies.clear();
        waiting.clear();
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
                    origin,
                    commands,
                    reply,
                } => {
                    if !envelopes.is_empty() && envelopes.len() + commands.len() > batch_limit {
                        carried = Some(Job::Commands {
                            origin,
                            commands,
                            reply,
                        });
                        break;
                    }
                    queued_commands.fetch_sub(commands.len(), Ordering::Relaxed);
                    waiting.push((commands.len(), reply));
                    envelopes.extend(
                        commands
                            .into_iter()
                            .map(|command| Envelope::from_origin(at, origin.clone(), command)),
                    );
                }
            }
            if envelopes.len() < batch_limit {
                next = receiver.try_recv().ok();
            }
        }
        if envelopes.is_empty() {
            continue;
        }
        let outcome = ledger.commit_batch(&envelopes, &mut replies);
        match outcome {
            Ok(()) => {
                let _ = committed.send(ledger.state().last_sequence());
                let mut results = replies.drain(..);
                for (count, reply) in waiting.drain(..) {
                    let mine: Vec<_> = results.by_ref().take(count).collect();
                    let _ = reply.send(Ok(mine));
                }
                // After the replies, and written by another thread: a snapshot is for the
                // next restart, not for callers. If the previous one is still being
                // written, this one is skipped (the next is due soon enough).
                if let Some(job) = ledger.snapshot_job_if_due() {
                    if snapshots.try_send(job).is_err() {
                        tracing::debug!("previous snapshot still being written; skipped one");
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; the ledger refuses further writes until restarted");
                let _ = failure.send(Some(error.to_string()));
                for (_, reply) in waiting.drain(..) {
                    let _ = reply.send(Err(EngineError::Storage(error.to_string())));
                }
            }
        }
    }
    // Answer whatever is still queued, then close the ledger (final snapshot) once any
    // snapshot in flight is written.
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
    if let Err(error) = ledger.close() {
        tracing::error!(%error, "closing the ledger failed");
    }
}

impl EngineHandle {
    /// Submits commands from `origin` as one job; answers once they are durable. Fails
    /// at once with `Overloaded` when the queue is full.
    pub async fn submit(&self, origin: Origin, commands: Vec<Command>) -> JobReply {
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
        let job = Job::Commands {
            origin,
            commands,
            reply,
        };
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
