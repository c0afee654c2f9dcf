//! The record encoder: a thread that turns a large batch's events into log records
//! (framed, SM3-chained, packed into blocks) and invoice index entries while the writer
//! is still deciding the rest of the same batch.
//!
//! Why: on the redemption path the writer's work per invoice is about half deciding and
//! folding, half encoding and hashing its record. Both are sequential within themselves
//! (the state machine decides in order; the chain hashes record after record), but they
//! need not wait for each other: the writer hands over the events decided so far each
//! time they reach [`ENCODE_CHUNK_EVENTS`] (never splitting a command's events) and goes
//! on deciding while this thread encodes them. The writer still performs the one write
//! with its fsync, after the last chunk is encoded, so nothing about durability changes:
//! the records, the chain and what the index holds afterwards are exactly what the
//! writer alone would produce. Only the packing differs: a log block may end at a
//! chunk's end rather than at its byte target, and redemptions' index entries are put in
//! key order within each chunk rather than across the batch (reversals still come last).
//!
//! Small batches (a unary call) are encoded by the writer itself: a hand-over to another
//! thread costs more than it saves below [`ENCODE_IN_PARALLEL_FROM`] commands.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::RwLock;

use super::{execute_noting_invoice_order, InvoiceOrderPlace};
use crate::domain::{
    Envelope, Event, InvoiceRedeemed, LedgerState, Rejection, Reply, SequencedEvent,
};
use crate::storage::record::ChainHash;
use crate::storage::{CommitBatch, EventStore, StoreError};

/// Events the writer decides before handing them to the encoder.
pub(super) const ENCODE_CHUNK_EVENTS: usize = 512;

/// Batches of at least this many commands are encoded beside the writer.
pub(super) const ENCODE_IN_PARALLEL_FROM: usize = 2 * ENCODE_CHUNK_EVENTS;

/// Chunks waiting to be encoded at most: the writer waits beyond, so encoding never
/// falls far behind deciding. (A batch's events are bounded by the batch limit.)
const CHUNKS_QUEUED_MAX: usize = 64;

enum EncoderJob {
    /// A batch begins after the record whose chain hash is `previous`.
    /// `bytes`: the room to reserve in the log part and the index part of the batch.
    Begin {
        previous: ChainHash,
        bytes: (usize, usize),
    },
    /// The next events of the batch, in sequence order.
    Chunk(Vec<SequencedEvent>),
    /// Every chunk is sent: hand the encoded batch back.
    Finish,
}

/// A batch as the encoder built it.
pub(super) struct EncodedBatch {
    /// Every record in blocks and every redeemed invoice's index entry (sorted by key
    /// within each chunk), ready for the writer's reversals and invoice order.
    pub batch: CommitBatch,
    /// The chain hash of the batch's last record.
    pub head: ChainHash,
    /// The events, in the chunks they came in (returned for the writer's later use).
    pub chunks: Vec<Vec<SequencedEvent>>,
}

/// The writer's handle on the encoder thread.
pub(super) struct RecordEncoder {
    jobs: Option<SyncSender<EncoderJob>>,
    done: Receiver<Result<EncodedBatch, StoreError>>,
    thread: Option<JoinHandle<()>>,
}

impl RecordEncoder {
    pub(super) fn start(store: Arc<EventStore>) -> Result<RecordEncoder, StoreError> {
        let (jobs, job_queue) = std::sync::mpsc::sync_channel(CHUNKS_QUEUED_MAX);
        let (done_sender, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ledger-encoder".into())
            .spawn(move || encoder_loop(&store, &job_queue, &done_sender))
            .map_err(|error| StoreError::Encode(format!("cannot start the encoder: {error}")))?;
        Ok(RecordEncoder {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    fn send(&self, job: EncoderJob) -> Result<(), StoreError> {
        let stopped = || StoreError::Encode("the record encoder stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    /// Decides `envelopes` under `state`'s write lock, appending a reply per envelope to
    /// `replies`, and hands the events over in chunks as they are decided; returns the
    /// encoded batch (records after `previous`; `bytes` is the expected size of its
    /// log and index parts, reserved up front) once the last chunk is encoded. An error means the
    /// encoder stopped: the state may be ahead of anything that can be written.
    pub(super) fn decide_and_encode(
        &self,
        state: &RwLock<LedgerState>,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
        order_updates: &mut Vec<InvoiceOrderPlace>,
        previous: ChainHash,
        bytes: (usize, usize),
    ) -> Result<EncodedBatch, StoreError> {
        self.send(EncoderJob::Begin { previous, bytes })?;
        {
            let mut state = state.write();
            let mut chunk = Vec::with_capacity(ENCODE_CHUNK_EVENTS);
            // Events of the batch in the chunks already sent: a place in the batch's
            // events is this plus the place in the current chunk.
            let mut sent_events = 0;
            for envelope in envelopes {
                replies.push(execute_noting_invoice_order(
                    &mut state,
                    envelope,
                    &mut chunk,
                    sent_events,
                    order_updates,
                ));
                if chunk.len() >= ENCODE_CHUNK_EVENTS {
                    sent_events += chunk.len();
                    let full =
                        std::mem::replace(&mut chunk, Vec::with_capacity(ENCODE_CHUNK_EVENTS));
                    self.send(EncoderJob::Chunk(full))?;
                }
            }
            if !chunk.is_empty() {
                self.send(EncoderJob::Chunk(chunk))?;
            }
        }
        self.send(EncoderJob::Finish)?;
        self.done
            .recv()
            .map_err(|_| StoreError::Encode("the record encoder stopped mid-batch".into()))?
    }
}

impl Drop for RecordEncoder {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The batch being built, and the first failure in it (later chunks are only kept).
struct Building {
    batch: CommitBatch,
    head: ChainHash,
    chunks: Vec<Vec<SequencedEvent>>,
    failure: Option<StoreError>,
}

fn encoder_loop(
    store: &EventStore,
    jobs: &Receiver<EncoderJob>,
    done: &SyncSender<Result<EncodedBatch, StoreError>>,
) {
    let mut building: Option<Building> = None;
    for job in jobs {
        match job {
            EncoderJob::Begin { previous, bytes } => {
                building = Some(Building {
                    batch: CommitBatch::with_capacities(bytes.0, bytes.1),
                    head: previous,
                    chunks: Vec::new(),
                    failure: None,
                });
            }
            EncoderJob::Chunk(events) => {
                let Some(open) = building.as_mut() else {
                    // A protocol error of the writer's: report it at Finish.
                    building = Some(Building {
                        batch: CommitBatch::default(),
                        head: ChainHash([0; crate::storage::record::CHAIN_HASH_LENGTH]),
                        chunks: vec![events],
                        failure: Some(StoreError::Encode(
                            "a chunk came before its batch began".into(),
                        )),
                    });
                    continue;
                };
                if open.failure.is_none() {
                    match encode_chunk(store, &mut open.batch, open.head, &events) {
                        Ok(head) => open.head = head,
                        Err(error) => open.failure = Some(error),
                    }
                }
                open.chunks.push(events);
            }
            EncoderJob::Finish => {
                let result = match building.take() {
                    Some(Building {
                        failure: Some(error),
                        ..
                    }) => Err(error),
                    Some(Building {
                        batch,
                        head,
                        chunks,
                        failure: None,
                    }) => Ok(EncodedBatch {
                        batch,
                        head,
                        chunks,
                    }),
                    None => Err(StoreError::Encode(
                        "a batch was finished that never began".into(),
                    )),
                };
                if done.send(result).is_err() {
                    return;
                }
            }
        }
    }
}

/// Encodes one chunk: its records after `previous`, then its redemptions' index entries
/// in key order (see `Ledger::write_events` for why the order matters).
pub(super) fn encode_chunk(
    store: &EventStore,
    batch: &mut CommitBatch,
    previous: ChainHash,
    events: &[SequencedEvent],
) -> Result<ChainHash, StoreError> {
    let head = store.put_events(batch, events, previous)?;
    let mut redeemed: Vec<(u64, &InvoiceRedeemed)> = events
        .iter()
        .filter_map(|event| match &event.event {
            Event::InvoiceRedeemed(redeemed) => Some((event.sequence, redeemed)),
            _ => None,
        })
        .collect();
    redeemed.sort_unstable_by(|(_, left), (_, right)| {
        (&left.center.as_bytes()[..], left.invoice_number.as_str())
            .cmp(&(&right.center.as_bytes()[..], right.invoice_number.as_str()))
    });
    for (sequence, redeemed) in redeemed {
        store.put_redeemed_invoice(batch, sequence, redeemed)?;
    }
    store.add_to_invoice_filter(batch);
    Ok(head)
}
