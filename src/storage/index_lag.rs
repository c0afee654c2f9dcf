//! The invoice index one step behind the log: how it is written after the log, how
//! readers wait for it, and how an open derives what a crash left out.
//!
//! A batch is written in two parts (issue 12). The log part (the records and the invoice
//! order) is written with the fsync the callers' answers wait for. The index part (one
//! entry per invoice the batch redeemed or reversed, and the watermark, which a batch of
//! records always moves) is written just after the answers have gone
//! out, before the next batch's log part: inserting ~8,000 keys that arrive in no order
//! into the index's skip list was about half of RocksDB's write, and the callers no longer
//! wait for it. The writer's next prefetch may read the index in between (the engine
//! decides a large batch while the one before is written, `ledger/engine.rs`), but never
//! for that batch's invoices: those are in the writer's invoice cache, which is not
//! emptied while a batch is unwritten.
//!
//! What this costs, and what keeps it correct:
//! - Readers of the index on other threads wait for the index parts of the batches whose
//!   log parts may be visible when they start ([`IndexGate`]); a few milliseconds at
//!   most, never a stale answer. A pending part that is abandoned (the writer failed or
//!   stopped between the two writes) turns the wait into an error, so no reader waits
//!   forever; and no further log part is written (`EventStore::commit_log` refuses), so
//!   the watermark never covers records whose entries are missing.
//! - The index part is written without RocksDB's write-ahead log (data directory format
//!   6): the index is derived from the log, which is durable first, so a second copy in
//!   the write-ahead log, synced with every later batch, bought nothing an open cannot
//!   derive (it was 5–9% of the rate at 1 M invoices, issue 12, twenty-ninth round). A
//!   crash therefore takes whatever of the index RocksDB had not flushed to a table file:
//!   up to a memtable or two, ~10^6 entries, never more.
//! - What survives is consistent: the watermark (`index.rs`, `VLIW`, the last sequence
//!   indexed) is kept in the `invoices` family with the entries and written with them,
//!   and RocksDB persists a family's writes in order (its memtables are flushed oldest
//!   first; the writes to the family that take the write-ahead log, a migration's
//!   watermark, the reset of a watermark past the log's end and a copy into a fresh
//!   directory, come after the family is flushed or into an empty one). So the watermark
//!   a crash leaves names records whose entries survived.
//! - An open derives the entries of every record after the watermark from the log
//!   ([`derive_index_tail`]), which is checked as it is read (frames and chain). A
//!   writable open writes them, a bounded number at a time
//!   (`limits::INDEX_CATCH_UP_WRITE_ENTRIES`); a read-only open (`verify`, offline
//!   exports, a backup of a running server) keeps them in memory beside the index, so it
//!   reads what a writable open would have written. A clean close flushes the index
//!   (RocksDB flushes memtables written without the log when it closes), so only a
//!   crash, or a read-only view of a running server, meets a lagging index; and a
//!   running server flushes it when quiet (`api/index_flusher.rs`), so those meet a
//!   memtable or two only when the server was busy.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::index::invoice_key;
use super::store::{EventStore, StoreError};
use crate::domain::{Event, InvoiceEntry};

/// How far the index has come: batches whose log part was started (`shut`), batches
/// whose index part is written (`settled`), and whether an index part failed. They
/// alternate, so `shut - settled` is 0 or 1.
#[derive(Debug, Default)]
struct IndexProgress {
    shut: u64,
    settled: u64,
    failed: Option<String>,
    /// Readers waiting now (for tests that must know a reader is waiting).
    waiting: u32,
}

/// The gate readers of the index pass: a reader waits for the index parts of the batches
/// whose log parts may be visible when it starts (never for later ones, so a reader is
/// not starved by a stream of batches).
#[derive(Debug)]
pub(super) struct IndexGate {
    progress: Mutex<IndexProgress>,
    changed: Condvar,
}

impl IndexGate {
    pub(super) fn new() -> Arc<IndexGate> {
        Arc::new(IndexGate {
            progress: Mutex::new(IndexProgress::default()),
            changed: Condvar::new(),
        })
    }

    /// Whether a batch's log part may be written now: not while an index part is pending
    /// (its watermark would cover records without entries) or after one failed.
    pub(super) fn check_current(&self) -> Result<(), StoreError> {
        let progress = self.progress.lock();
        gate_refusal(&progress)
    }

    /// Shuts the gate before a log part becomes visible.
    pub(super) fn shut(&self) -> Result<(), StoreError> {
        let mut progress = self.progress.lock();
        gate_refusal(&progress)?;
        progress.shut += 1;
        Ok(())
    }

    /// Opens the gate (the index part is written, or the log part was not), or marks the
    /// index failed, and wakes every waiting reader.
    pub(super) fn settle(&self, outcome: Result<(), String>) {
        let mut progress = self.progress.lock();
        match outcome {
            Ok(()) => progress.settled = progress.shut,
            Err(reason) => progress.failed = Some(reason),
        }
        self.changed.notify_all();
    }

    /// Waits, at most `longest`, until the index parts of every batch whose log part was
    /// started before this call are written.
    pub(super) fn wait_until_current(&self, longest: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + longest;
        let mut progress = self.progress.lock();
        let wanted = progress.shut;
        progress.waiting += 1;
        let outcome = loop {
            if let Some(reason) = &progress.failed {
                break Err(StoreError::Poisoned(format!(
                    "the invoice index is behind the log ({reason}); reopening the data directory derives the missing entries from the log"
                )));
            }
            if progress.settled >= wanted {
                break Ok(());
            }
            if self.changed.wait_until(&mut progress, deadline).timed_out()
                && progress.settled < wanted
                && progress.failed.is_none()
            {
                break Err(StoreError::Poisoned(format!(
                    "the invoice index was not written within {longest:?} of its batch's log"
                )));
            }
        };
        progress.waiting -= 1;
        outcome
    }

    /// Readers waiting now.
    #[cfg(test)]
    fn waiting(&self) -> u32 {
        self.progress.lock().waiting
    }
}

/// Why no log part may be written now, if that is so.
fn gate_refusal(progress: &IndexProgress) -> Result<(), StoreError> {
    if let Some(reason) = &progress.failed {
        return Err(StoreError::Poisoned(format!(
            "the invoice index is behind the log ({reason}); reopen the data directory"
        )));
    }
    if progress.shut != progress.settled {
        return Err(StoreError::Poisoned(
            "a batch's log part was written while the previous batch's index part was pending"
                .into(),
        ));
    }
    Ok(())
}

/// A batch's index part, written to the log's store by [`EventStore::commit_index`].
/// Dropped unwritten, it marks the index failed (readers get an error, not a wait
/// without end; the next open derives the entries).
#[must_use = "a batch's index part must be written with EventStore::commit_index"]
pub struct PendingIndexWrite {
    pub(super) index: rocksdb::WriteBatch,
    /// The last sequence of the batch's log part: the watermark once this is written.
    /// `None` for an index part without log records (a migration's rewrites).
    pub(super) through: Option<u64>,
    /// The gate this part holds shut, if any.
    pub(super) gate: Option<Arc<IndexGate>>,
    /// The entries are built apart and not supplied yet
    /// (`CommitBatch::expect_index_part`, `EventStore::complete_index_part`): writing the
    /// watermark now would cover records whose entries are missing.
    pub(super) awaiting_part: bool,
}

impl PendingIndexWrite {
    /// Whether its entries are built apart and still to be supplied
    /// (`EventStore::complete_index_part`).
    pub fn awaits_part(&self) -> bool {
        self.awaiting_part
    }

    /// Nothing to write (the log part carried the watermark, or there was no batch).
    pub(super) fn nothing() -> PendingIndexWrite {
        PendingIndexWrite {
            index: rocksdb::WriteBatch::default(),
            through: None,
            gate: None,
            awaiting_part: false,
        }
    }
}

impl Drop for PendingIndexWrite {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.settle(Err(format!(
                "the index entries of the batch ending at sequence {} were never written",
                self.through.unwrap_or(0)
            )));
        }
    }
}

/// The index entries the records after the watermark imply, by index key (the key's
/// order, as RocksDB keeps them).
#[derive(Debug, Default)]
pub(super) struct IndexTail {
    /// The watermark: records after it are covered here.
    pub(super) after: u64,
    /// The last record read.
    pub(super) through: u64,
    pub(super) entries: BTreeMap<Vec<u8>, InvoiceEntry>,
}

/// Derives the index entries of the records after sequence `after` from the log (read
/// through the one checked loop: frames, payloads, chain from record `after`): a
/// redemption's entry is what its event says; a reversal marks the entry it reverses,
/// from earlier in the tail or from the index. Whenever `spill_at` entries are held,
/// `spill` is given them to write into the index (it must empty the map), so a writable
/// open holds a bounded number; a read-only open, which writes nothing, passes
/// `usize::MAX` and keeps them all in the returned tail.
pub(super) fn derive_index_tail(
    store: &EventStore,
    after: u64,
    spill_at: usize,
    mut spill: impl FnMut(&mut BTreeMap<Vec<u8>, InvoiceEntry>) -> Result<(), StoreError>,
) -> Result<IndexTail, StoreError> {
    let previous = store
        .chain_hash_after(after)
        .map_err(|error| StoreError::Corrupt {
            what: format!("the log at the index's watermark (sequence {after})"),
            reason: error.to_string(),
        })?;
    let mut tail = IndexTail {
        after,
        through: after,
        entries: BTreeMap::new(),
    };
    let mut failure: Option<StoreError> = None;
    let read = store.read_log(after + 1, previous, |logged| {
        match &logged.event {
            Event::InvoiceRedeemed(redeemed) => {
                tail.entries.insert(
                    invoice_key(&redeemed.center, &redeemed.invoice_number),
                    InvoiceEntry {
                        voucher: redeemed.voucher,
                        amount: redeemed.amount,
                        issue_date: redeemed.issue_date,
                        delivery_proof: redeemed.delivery_proof.clone(),
                        subsidy: redeemed.subsidy,
                        second_subsidy: redeemed.second_subsidy,
                        sequence: logged.sequence,
                        reversed_at: None,
                    },
                );
            }
            Event::InvoiceReversed(reversed) => {
                let key = invoice_key(&reversed.center, &reversed.invoice_number);
                let entry = match tail.entries.remove(&key) {
                    Some(entry) => Some(entry),
                    None => match store.invoice_as_stored(&key) {
                        Ok(entry) => entry,
                        Err(error) => {
                            failure = Some(error);
                            return ControlFlow::Break(());
                        }
                    },
                };
                let Some(mut entry) = entry else {
                    failure = Some(StoreError::Corrupt {
                        what: format!("the log at sequence {}", logged.sequence),
                        reason: format!(
                            "it reverses invoice {} of center {}, which neither the index nor the log before it holds",
                            reversed.invoice_number, reversed.center
                        ),
                    });
                    return ControlFlow::Break(());
                };
                entry.reversed_at = Some(logged.sequence);
                tail.entries.insert(key, entry);
            }
            _ => {}
        }
        if tail.entries.len() >= spill_at {
            // A reversal of a spilled entry later finds it in the index, where it is now.
            if let Err(error) = spill(&mut tail.entries) {
                failure = Some(error);
                return ControlFlow::Break(());
            }
            assert!(tail.entries.is_empty(), "a spill writes and forgets what it is given");
        }
        ControlFlow::Continue(())
    });
    if let Some(error) = failure {
        return Err(error);
    }
    let position = read.map_err(|error| StoreError::Corrupt {
        what: format!("the log after the index's watermark (sequence {after})"),
        reason: error.to_string(),
    })?;
    tail.through = position.last_sequence;
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns once a reader is waiting at the gate (at most ten seconds).
    fn until_a_reader_waits(gate: &IndexGate) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while gate.waiting() == 0 {
            assert!(
                Instant::now() < deadline,
                "the reader never reached the gate"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_log_part_is_refused_while_the_previous_index_part_is_pending_or_failed() {
        let gate = IndexGate::new();
        gate.check_current().expect("a new store is current");
        gate.shut().expect("the first batch");
        assert!(gate.check_current().is_err(), "pending");
        assert!(
            gate.shut().is_err(),
            "a second log part before the index part"
        );
        gate.settle(Ok(()));
        gate.check_current().expect("written");
        gate.shut().expect("the next batch");
        gate.settle(Err("disk full".into()));
        let refused = gate.check_current().expect_err("failed");
        assert!(refused.to_string().contains("disk full"), "{refused}");
        assert!(gate.shut().is_err());
    }

    #[test]
    fn a_reader_waits_only_for_the_batches_started_before_it() {
        let gate = IndexGate::new();
        gate.wait_until_current(Duration::from_millis(1))
            .expect("nothing pending: no wait");
        gate.shut().expect("batch 1");
        let reader = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.wait_until_current(Duration::from_secs(20)))
        };
        until_a_reader_waits(&gate);
        assert!(!reader.is_finished(), "batch 1's index part is pending");
        // Batch 1's index part is written and batch 2's log part starts at once: the
        // reader, which started before batch 2, must not wait for it.
        {
            gate.settle(Ok(()));
            gate.shut().expect("batch 2");
        }
        reader
            .join()
            .expect("reader thread")
            .expect("let in once batch 1 is indexed, whatever batch 2 does");
        // A reader that starts now waits for batch 2, and a failure ends its wait.
        let late = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.wait_until_current(Duration::from_secs(20)))
        };
        until_a_reader_waits(&gate);
        assert!(!late.is_finished(), "batch 2's index part is pending");
        gate.settle(Err("abandoned".into()));
        let error = late
            .join()
            .expect("reader thread")
            .expect_err("a failed index part is an error, not a wait");
        assert!(error.to_string().contains("abandoned"), "{error}");
    }

    #[test]
    fn a_reader_waits_no_longer_than_its_limit() {
        let gate = IndexGate::new();
        gate.shut().expect("batch 1");
        let error = gate
            .wait_until_current(Duration::from_millis(20))
            .expect_err("nobody writes the index part");
        assert!(error.to_string().contains("not written within"), "{error}");
    }

    #[test]
    fn an_index_part_dropped_unwritten_fails_the_gate() {
        let gate = IndexGate::new();
        gate.shut().expect("batch 1");
        drop(PendingIndexWrite {
            index: rocksdb::WriteBatch::default(),
            through: Some(7),
            gate: Some(Arc::clone(&gate)),
            awaiting_part: false,
        });
        let error = gate.check_current().expect_err("failed");
        assert!(error.to_string().contains("sequence 7"), "{error}");
    }
}
