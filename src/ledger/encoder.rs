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
//! key order across the batch, where the writer's own batches put them in key order
//! chunk by chunk (reversals come last in both).
//!
//! The redemptions' index entries are only encoded while the chunks come in. Sorting them
//! and putting them into RocksDB's batch waits until the log part is handed back: the
//! encoder then builds the index part ([`IndexPart`]) while the log part is written and
//! its fsync waited for, and whoever writes the index part after the answers takes it
//! from the batch's own [`IndexPartReceiver`] (the writer, or in the engine's pipeline
//! the committer thread). Before, that work (a tenth of the encoder's) was the last thing
//! the writer waited for before its write (issue 12).
//!
//! Small batches (a unary call) are encoded by the writer itself: a hand-over to another
//! thread costs more than it saves below [`ENCODE_IN_PARALLEL_FROM`] commands.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::RwLock;

use super::{execute_noting_invoice_order, BatchEvents, InvoiceOrderGroups};
use crate::domain::{
    Envelope, Event, InvoiceRedeemed, LedgerState, Rejection, Reply, SequencedEvent,
};
use crate::storage::record::ChainHash;
use crate::storage::{CommitBatch, DeferredIndexEntries, EventStore, IndexPart, StoreError};

/// Events the writer decides before handing them to the encoder.
pub(super) const ENCODE_CHUNK_EVENTS: usize = 512;

/// Batches of at least this many commands are encoded beside the writer.
pub(super) const ENCODE_IN_PARALLEL_FROM: usize = 2 * ENCODE_CHUNK_EVENTS;

/// Chunks waiting to be encoded at most: the writer waits beyond, so encoding never
/// falls far behind deciding. (A batch's events are bounded by the batch limit.)
const CHUNKS_QUEUED_MAX: usize = 64;

/// Where a batch's records go in the log: chained after the hash `previous`, with
/// `expected_log_bytes` of room for its log part reserved up front (the ledger passes the
/// last batch's size).
#[derive(Clone, Copy, Debug)]
pub(super) struct PlaceInTheLog {
    pub previous: ChainHash,
    pub expected_log_bytes: usize,
}

enum EncoderJob {
    /// A batch begins at `place` in the log. `index_part`: where its index part goes once
    /// its log part is sent back.
    Begin {
        place: PlaceInTheLog,
        index_part: SyncSender<Result<IndexPart, StoreError>>,
    },
    /// The next events of the batch, in sequence order.
    Chunk(Vec<SequencedEvent>),
    /// Every chunk is sent: hand the encoded batch back.
    Finish,
}

/// A batch as the encoder built it.
pub(super) struct EncodedBatch {
    /// Every record in blocks, ready for the writer's invoice order. Its index part
    /// follows (`index_part`).
    pub batch: CommitBatch,
    /// The chain hash of the batch's last record.
    pub head: ChainHash,
    /// The events, in the chunks they came in (returned for the writer's later use).
    pub chunks: Vec<Vec<SequencedEvent>>,
    /// Where the batch's index part arrives, built while its log part is written.
    pub index_part: IndexPartReceiver,
}

/// The one place a batch's index part arrives from the encoder. Dropped untaken (a batch
/// that wrote nothing, or was abandoned), the part is dropped with it: each batch has its
/// own, so no later batch can take an earlier batch's part by mistake.
pub(crate) struct IndexPartReceiver {
    part: Receiver<Result<IndexPart, StoreError>>,
}

impl IndexPartReceiver {
    /// The batch's index part: its redemptions' entries in key order (waits while the
    /// encoder is still building it).
    pub(crate) fn take(self) -> Result<IndexPart, StoreError> {
        self.part.recv().map_err(|_| {
            StoreError::Encode("the record encoder stopped before the batch's index part".into())
        })?
    }
}

/// What the encoder hands back for a batch: its log part, its head and its events.
type EncodedLogPart = (CommitBatch, ChainHash, Vec<Vec<SequencedEvent>>);

/// The writer's handle on the encoder thread.
pub(super) struct RecordEncoder {
    jobs: Option<SyncSender<EncoderJob>>,
    done: Receiver<Result<EncodedLogPart, StoreError>>,
    thread: Option<JoinHandle<()>>,
}

impl RecordEncoder {
    pub(super) fn start(
        store: Arc<EventStore>,
        niceness: Option<super::priority::Niceness>,
    ) -> Result<RecordEncoder, StoreError> {
        let (jobs, job_queue) = std::sync::mpsc::sync_channel(CHUNKS_QUEUED_MAX);
        let (done_sender, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ledger-encoder".into())
            .spawn(move || {
                super::priority::favour_this_thread(niceness, "ledger-encoder");
                encoder_loop(&store, &job_queue, &done_sender)
            })
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
    /// `replies`, and hands the events over in chunks as they are decided (in vectors
    /// from `events`' spare room; `events` holds no chunk of this batch yet); returns the
    /// encoded batch (its records chained after `place.previous`, its log part's room
    /// reserved from `place.expected_log_bytes`) once the last chunk is encoded; its index
    /// part follows ([`EncodedBatch::index_part`]). An error means the
    /// encoder stopped: the state may be ahead of anything that can be written.
    pub(super) fn decide_and_encode(
        &mut self,
        state: &RwLock<LedgerState>,
        envelopes: &[Envelope],
        replies: &mut Vec<Result<Reply, Rejection>>,
        order_groups: &mut InvoiceOrderGroups,
        events: &mut BatchEvents,
        place: PlaceInTheLog,
    ) -> Result<EncodedBatch, StoreError> {
        // Room for the one part: the encoder never waits to hand it over, even while the
        // batch's log part waits behind an earlier batch's write (the engine's pipeline).
        let (index_part, part) = std::sync::mpsc::sync_channel(1);
        self.send(EncoderJob::Begin { place, index_part })?;
        {
            let mut state = state.write();
            let mut chunk = events.spare_chunk(ENCODE_CHUNK_EVENTS);
            assert!(events.is_empty(), "the batch's events start empty");
            for (place, envelope) in envelopes.iter().enumerate() {
                state.prefetch_ahead(envelopes, place);
                replies.push(execute_noting_invoice_order(
                    &mut state,
                    envelope,
                    &mut chunk,
                    order_groups,
                ));
                if chunk.len() >= ENCODE_CHUNK_EVENTS {
                    let full =
                        std::mem::replace(&mut chunk, events.spare_chunk(ENCODE_CHUNK_EVENTS));
                    self.send(EncoderJob::Chunk(full))?;
                }
            }
            if chunk.is_empty() {
                events.give_back(chunk);
            } else {
                self.send(EncoderJob::Chunk(chunk))?;
            }
        }
        self.send(EncoderJob::Finish)?;
        // The encoder is a few chunks behind here: gathering the invoice order's groups
        // now takes that work off the path between its last records and the write.
        order_groups.gather();
        let (batch, head, chunks) = self
            .done
            .recv()
            .map_err(|_| StoreError::Encode("the record encoder stopped mid-batch".into()))??;
        // The encoder builds the index part next, and sends it after every log part it
        // sends back.
        Ok(EncodedBatch {
            batch,
            head,
            chunks,
            index_part: IndexPartReceiver { part },
        })
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
    /// Where the batch's index part goes (`None` for a batch that never began).
    index_part: Option<SyncSender<Result<IndexPart, StoreError>>>,
}

fn encoder_loop(
    store: &EventStore,
    jobs: &Receiver<EncoderJob>,
    done: &SyncSender<Result<EncodedLogPart, StoreError>>,
) {
    let mut building: Option<Building> = None;
    // Kept from batch to batch, so its room is reused.
    let mut deferred = DeferredIndexEntries::default();
    for job in jobs {
        match job {
            EncoderJob::Begin { place, index_part } => {
                deferred.clear();
                let mut batch = CommitBatch::with_capacity(place.expected_log_bytes);
                batch.expect_index_part();
                building = Some(Building {
                    batch,
                    head: place.previous,
                    chunks: Vec::new(),
                    failure: None,
                    index_part: Some(index_part),
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
                        index_part: None,
                    });
                    continue;
                };
                if open.failure.is_none() {
                    match encode_chunk_deferring_index(
                        store,
                        &mut open.batch,
                        &mut deferred,
                        open.head,
                        &events,
                    ) {
                        Ok(head) => open.head = head,
                        Err(error) => open.failure = Some(error),
                    }
                }
                open.chunks.push(events);
            }
            EncoderJob::Finish => {
                let (result, index_part) = match building.take() {
                    Some(Building {
                        failure: Some(error),
                        ..
                    }) => (Err(error), None),
                    Some(Building {
                        batch,
                        head,
                        chunks,
                        failure: None,
                        index_part,
                    }) => (Ok((batch, head, chunks)), index_part),
                    None => (
                        Err(StoreError::Encode(
                            "a batch was finished that never began".into(),
                        )),
                        None,
                    ),
                };
                if done.send(result).is_err() {
                    return;
                }
                // While the log part is written and its fsync waited for. Nobody may be
                // waiting for it any more (a batch that wrote nothing, or was abandoned):
                // that is no reason to stop.
                if let Some(index_part) = index_part {
                    let _ = index_part.send(store.index_part_of(&mut deferred));
                }
            }
        }
    }
}

/// Encodes one chunk of a large batch: its records after `previous`, and its redemptions'
/// index entries into `deferred` (put into the index part after the log part is sent).
fn encode_chunk_deferring_index(
    store: &EventStore,
    batch: &mut CommitBatch,
    deferred: &mut DeferredIndexEntries,
    previous: ChainHash,
    events: &[SequencedEvent],
) -> Result<ChainHash, StoreError> {
    let head = store.put_events(batch, events, previous)?;
    for event in events {
        if let Event::InvoiceRedeemed(redeemed) = &event.event {
            store.defer_redeemed_invoice(batch, deferred, event.sequence, redeemed);
        }
    }
    store.add_to_invoice_filter(batch);
    Ok(head)
}

/// Encodes the events of a batch the writer encodes itself (a small one): its records
/// after `previous`, then its redemptions' index entries in key order (see
/// `Ledger::write_events` for why the order matters).
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
