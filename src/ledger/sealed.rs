//! A batch between its two halves: decided and encoded by the writer ([`SealedBatch`]),
//! then written by whoever holds a [`SealedBatchWriter`]: the log part with its fsync,
//! and after the answers the index part ([`UnindexedBatch`]).
//!
//! Why apart: the engine writes one batch's log part and waits for its fsync on a thread
//! of its own (the committer) while the writer decides the next batch (issue 12; the fsync
//! was a fifth to a quarter of a batch's time on the writer). What keeps that correct is
//! in `engine.rs`; here is only what both halves carry. [`super::Ledger::commit_batch`]
//! does both halves in turn, on one thread.

use std::sync::Arc;

use super::encoder::IndexPartReceiver;
use crate::domain::{InvoiceEntry, InvoiceNumber, Uscc};
use crate::storage::{CommitBatch, EventStore, PendingIndexWrite, StoreError};

/// A batch the state machine has decided and the encoder has encoded: its log part ready
/// to be written. The state already holds its effects; nothing of it is durable yet.
pub struct SealedBatch {
    pub(super) batch: CommitBatch,
    /// Where a large batch's index part arrives from the encoder.
    pub(super) index_part: Option<IndexPartReceiver>,
    /// Reversals' entries, read from the state at the batch's end, put after the
    /// encoder's part (a large batch; a small one has them in its batch already).
    pub(super) reversals: Vec<(Uscc, InvoiceNumber, InvoiceEntry)>,
    /// The sequence of the batch's last event.
    pub(super) last_sequence: u64,
}

impl SealedBatch {
    /// The sequence of the batch's last event: durable once the log part is written.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }
}

/// A batch whose log part is durable and whose invoice index entries are still to be
/// written (`storage/index_lag.rs`: readers of the index wait for them meanwhile).
pub struct UnindexedBatch {
    pending: PendingIndexWrite,
    index_part: Option<IndexPartReceiver>,
    reversals: Vec<(Uscc, InvoiceNumber, InvoiceEntry)>,
}

/// Writes sealed batches, in the order they were sealed: each one's log part, then (after
/// its answers) its index part, before the next one's log part.
#[derive(Clone)]
pub struct SealedBatchWriter {
    pub(super) store: Arc<EventStore>,
}

impl SealedBatchWriter {
    /// Writes the batch's log part with its fsync (when the store syncs): once this
    /// returns, the batch is durable and may be answered.
    pub fn write_log(&self, sealed: SealedBatch) -> Result<UnindexedBatch, StoreError> {
        let SealedBatch {
            batch,
            index_part,
            reversals,
            last_sequence: _,
        } = sealed;
        let pending = self.store.commit_log(batch)?;
        Ok(UnindexedBatch {
            pending,
            index_part,
            reversals,
        })
    }

    /// Writes the batch's invoice index entries: first the encoder's (a large batch's
    /// redemptions, in key order), then the reversals, so that a reversal's entry wins
    /// over its redemption's in the same batch.
    pub fn write_index(&self, unindexed: UnindexedBatch) -> Result<(), StoreError> {
        let UnindexedBatch {
            mut pending,
            index_part,
            reversals,
        } = unindexed;
        if pending.awaits_part() {
            let part = index_part
                .ok_or_else(|| {
                    StoreError::Encode(
                        "a batch awaits an index part from the encoder but has no way to receive it"
                            .into(),
                    )
                })?
                .take()?;
            self.store
                .complete_index_part(&mut pending, part, &reversals)?;
        }
        self.store.commit_index(pending)
    }
}
