//! `verify`: the auditor's check of a data directory, independent of the running ledger.
//!
//! It reads every record in order through the store's checked read loop (density, frame,
//! format version, payload and the SM3 chain); rebuilds the projections by replay;
//! compares them with every stored snapshot at its sequence; checks the invariants; and
//! checks the invoice idempotency index against the log.
//!
//! It streams: memory does not grow with the number of invoices. Replay keeps no
//! invoices (its invoice cache is emptied as it goes), and the index is checked in two
//! passes that need none either:
//!
//! 1. during replay, every `InvoiceRedeemed` is looked up in the index (batched
//!    multi-gets) and must match field for field (all but the reversed flag, which a later
//!    event may set), and every `InvoiceReversed` must find its entry marked reversed;
//! 2. after replay, one scan of the index counts entries and reversed entries, which must
//!    equal the log's counts of redemptions and reversals.
//!
//! Together these prove the index holds exactly one entry per redeemed invoice, agreeing
//! with the log: pass 1 shows each of the log's invoices is there and right, pass 2 that
//! nothing else is.
//!
//! With a trusted public key ([`CheckpointCheck`]) it also checks signed checkpoints, the
//! stored ones and those the auditor kept outside the server: every signature, that the
//! log's chain hash at each checkpoint's sequence is the one signed (a log rewritten and
//! re-hashed without the private key differs there), and that the log reaches the newest
//! one (a truncated tail does not).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

use std::collections::BTreeMap;

use crate::domain::{Event, InvoiceEntry, InvoiceNumber, LedgerState, ProgrammeYear, Uscc};
use crate::storage::checkpoint::{Checkpoint, TrustedKey};
use crate::storage::record::{genesis_chain_hash, ChainHash};
use crate::storage::{ChainCheck, EventStore, LogError, StoreError};

/// Invoices whose index entries are looked up at once.
const INDEX_CHECK_BATCH: usize = 4_096;
/// Invoices the replay's cache holds before it is emptied.
const REPLAY_CACHE_LIMIT: usize = 65_536;

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub records_checked: u64,
    pub chain_head: Option<ChainHash>,
    pub snapshots_checked: Vec<u64>,
    pub invoice_index_entries: u64,
    pub invariants_checked: bool,
    /// The first bad sequence number, if a record is at fault.
    pub first_bad_sequence: Option<u64>,
    pub problems: Vec<String>,
    /// Findings that are not faults (e.g. a snapshot in an older format, not compared).
    pub notes: Vec<String>,
    /// Signed checkpoints whose signature and head were checked.
    pub checkpoints_checked: usize,
    /// The newest checkpoint's sequence, when checkpoints were checked.
    pub newest_checkpoint: Option<u64>,
}

/// What `verify --trusted-key` checks the log against.
pub struct CheckpointCheck {
    /// The bureau's public key.
    pub key: TrustedKey,
    /// Checkpoints kept outside the server (`--checkpoints FILE`), checked with the
    /// stored ones.
    pub external: Vec<Checkpoint>,
    /// Where the external ones came from, for the report.
    pub external_source: Option<String>,
}

/// One checkpoint to compare with the log: the head it signed and where it came from.
struct Expected {
    chain_head: ChainHash,
    source: String,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn verify(path: &Path) -> Result<VerifyReport, StoreError> {
    let store = EventStore::open_read_only(path)?;
    verify_store(&store)
}

/// [`verify`], and the log against signed checkpoints.
pub fn verify_with_checkpoints(
    path: &Path,
    checkpoints: &CheckpointCheck,
) -> Result<VerifyReport, StoreError> {
    let store = EventStore::open_read_only(path)?;
    verify_store_with(&store, Some(checkpoints))
}

/// Checks every signature; returns the heads the log must have, by sequence, and the
/// problems found.
fn signed_heads(
    store: &EventStore,
    check: &CheckpointCheck,
    report: &mut VerifyReport,
) -> Result<BTreeMap<u64, Vec<Expected>>, StoreError> {
    let mut expected: BTreeMap<u64, Vec<Expected>> = BTreeMap::new();
    let stored = store.checkpoints(0, usize::MAX)?;
    let external_source = check
        .external_source
        .clone()
        .unwrap_or_else(|| "the export file".into());
    let all = stored
        .iter()
        .map(|checkpoint| (checkpoint, "the data directory".to_string()))
        .chain(
            check
                .external
                .iter()
                .map(|checkpoint| (checkpoint, external_source.clone())),
        );
    for (checkpoint, source) in all {
        report.checkpoints_checked += 1;
        if let Err(reason) = check.key.check(checkpoint) {
            report.problems.push(format!(
                "FORGED CHECKPOINT: checkpoint of sequence {} in {source}: {reason}",
                checkpoint.sequence
            ));
            continue;
        }
        report.newest_checkpoint = report.newest_checkpoint.max(Some(checkpoint.sequence));
        expected
            .entry(checkpoint.sequence)
            .or_default()
            .push(Expected {
                chain_head: checkpoint.chain_head,
                source,
            });
    }
    Ok(expected)
}

/// What the index must say about one invoice of the log.
enum IndexExpectation {
    /// Redeemed with this entry (the reversed flag is not compared).
    Redeemed(InvoiceEntry),
    /// Reversed by the event at this sequence.
    Reversed(u64),
}

struct IndexChecker<'a> {
    store: &'a EventStore,
    pending: Vec<(Uscc, InvoiceNumber, IndexExpectation)>,
    /// Invoice order entries the log implies: (center, year, sequence) → number.
    pending_order: Vec<((Uscc, ProgrammeYear, u64), InvoiceNumber)>,
    reversals: u64,
    problems: Vec<String>,
}

impl IndexChecker<'_> {
    fn expect_order(
        &mut self,
        center: Uscc,
        year: ProgrammeYear,
        sequence: u64,
        number: InvoiceNumber,
    ) {
        if !self.store.has_invoice_order() {
            return;
        }
        self.pending_order.push(((center, year, sequence), number));
        if self.pending_order.len() >= INDEX_CHECK_BATCH {
            self.flush_order();
        }
    }

    fn flush_order(&mut self) {
        if self.pending_order.is_empty() {
            return;
        }
        let keys: Vec<(Uscc, ProgrammeYear, u64)> =
            self.pending_order.iter().map(|(key, _)| *key).collect();
        match self.store.invoice_order_entries(&keys) {
            Ok(found) => {
                for (((center, year, sequence), number), stored) in
                    self.pending_order.drain(..).zip(found)
                {
                    if stored.as_deref() != Some(number.as_str()) {
                        self.problems.push(format!(
                            "invoice order index at center {center} {year} sequence {sequence}: expected {number}, found {stored:?}"
                        ));
                    }
                }
            }
            Err(error) => {
                self.problems
                    .push(format!("invoice order index could not be read: {error}"));
                self.pending_order.clear();
            }
        }
    }

    fn expect(&mut self, center: Uscc, number: InvoiceNumber, expectation: IndexExpectation) {
        self.pending.push((center, number, expectation));
        if self.pending.len() >= INDEX_CHECK_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let wanted: Vec<(Uscc, InvoiceNumber)> = self
            .pending
            .iter()
            .map(|(center, number, _)| (*center, number.clone()))
            .collect();
        match self.store.invoices(&wanted) {
            Ok(found) => {
                for ((center, number, expectation), stored) in self.pending.drain(..).zip(found) {
                    check_entry(&center, &number, &expectation, stored, &mut self.problems);
                }
            }
            Err(error) => {
                self.problems
                    .push(format!("invoice index could not be read: {error}"));
                self.pending.clear();
            }
        }
    }
}

fn check_entry(
    center: &Uscc,
    number: &InvoiceNumber,
    expectation: &IndexExpectation,
    stored: Option<InvoiceEntry>,
    problems: &mut Vec<String>,
) {
    let Some(stored) = stored else {
        problems.push(format!(
            "invoice {number} of center {center} is in the log but not in the invoice index"
        ));
        return;
    };
    match expectation {
        IndexExpectation::Redeemed(expected) => {
            let comparable = InvoiceEntry {
                reversed_at: expected.reversed_at,
                ..stored.clone()
            };
            if comparable != *expected {
                problems.push(format!(
                    "invoice index entry of {number} (center {center}) differs from the log: stored {stored:?}, replayed {expected:?}"
                ));
            }
        }
        IndexExpectation::Reversed(sequence) => {
            // Older formats kept only that it was reversed (recorded as 0).
            if stored.reversed_at != Some(*sequence) && stored.reversed_at != Some(0) {
                problems.push(format!(
                    "invoice {number} of center {center} was reversed by event {sequence}, the invoice index says {:?}",
                    stored.reversed_at
                ));
            }
        }
    }
}

pub fn verify_store(store: &EventStore) -> Result<VerifyReport, StoreError> {
    verify_store_with(store, None)
}

/// [`verify_store`], and the log against signed checkpoints when `checkpoints` is given.
pub fn verify_store_with(
    store: &EventStore,
    checkpoints: Option<&CheckpointCheck>,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let expected_heads = match checkpoints {
        Some(check) => signed_heads(store, check, &mut report)?,
        None => BTreeMap::new(),
    };
    let mut rewritten: Vec<String> = Vec::new();
    let mut first_rewritten: Option<u64> = None;
    let snapshot_sequences: BTreeSet<u64> = store.snapshot_sequences()?.into_iter().collect();
    let mut state = LedgerState::with_bounded_invoice_cache();
    let mut index = IndexChecker {
        store,
        pending: Vec::new(),
        pending_order: Vec::new(),
        reversals: 0,
        problems: Vec::new(),
    };
    let mut snapshot_problems = Vec::new();
    let mut notes = Vec::new();
    let mut snapshots_checked = Vec::new();
    // The chain is checked with the `sm3` crate, not the writer's own SM3 (`ChainCheck`):
    // an auditor's check should not share the code that made what it checks.
    let read = store.read_log_checked_by(ChainCheck::Reference, 1, genesis_chain_hash(), |logged| {
        state.apply(logged.sequence, logged.at, &logged.event);
        match &logged.event {
            Event::InvoiceRedeemed(redeemed) => {
                if let Some(entry) = state.invoice(&redeemed.center, &redeemed.invoice_number) {
                    index.expect(
                        redeemed.center,
                        redeemed.invoice_number.clone(),
                        IndexExpectation::Redeemed(entry.clone()),
                    );
                }
                if let Some(voucher) = state.voucher(&redeemed.voucher) {
                    index.expect_order(
                        redeemed.center,
                        voucher.terms.year,
                        logged.sequence,
                        redeemed.invoice_number.clone(),
                    );
                }
            }
            Event::InvoiceReversed(reversed) => {
                index.reversals += 1;
                index.expect(
                    reversed.center,
                    reversed.invoice_number.clone(),
                    IndexExpectation::Reversed(logged.sequence),
                );
            }
            _ => {}
        }
        if state.invoices_in_memory() > REPLAY_CACHE_LIMIT {
            state.invoice_cache_mut().clear(REPLAY_CACHE_LIMIT);
        }
        if let Some(signed) = expected_heads.get(&logged.sequence) {
            for expected in signed {
                if expected.chain_head != logged.chain_hash {
                    first_rewritten.get_or_insert(logged.sequence);
                    rewritten.push(format!(
                        "REWRITTEN LOG: the checkpoint of sequence {} in {} signed chain head {}, the log has {}: the log was changed after it was signed",
                        logged.sequence, expected.source, expected.chain_head, logged.chain_hash
                    ));
                }
            }
        }
        if snapshot_sequences.contains(&logged.sequence) {
            match compare_snapshot(store, logged.sequence, &state, &logged.chain_hash) {
                Ok(SnapshotComparison::Matched) => snapshots_checked.push(logged.sequence),
                Ok(SnapshotComparison::OlderFormat(note)) => notes.push(note),
                Err(problem) => snapshot_problems.push(problem),
            }
        }
        ControlFlow::Continue(())
    });
    index.flush();
    index.flush_order();
    report.snapshots_checked = snapshots_checked;
    report.notes = notes;
    let position = match read {
        Ok(position) => position,
        Err(LogError::Record(error)) => {
            report.records_checked = state.last_sequence();
            report.first_bad_sequence = Some(error.sequence());
            report.problems.push(error.to_string());
            report.problems.append(&mut rewritten);
            return Ok(report);
        }
        Err(LogError::Store(error)) => return Err(error),
    };
    report.records_checked = position.last_sequence;
    report.chain_head = Some(position.chain_head);
    if let Some(sequence) = first_rewritten {
        report.first_bad_sequence.get_or_insert(sequence);
    }
    report.problems.append(&mut rewritten);
    if let Some((&newest, signed)) = expected_heads.last_key_value() {
        if newest > position.last_sequence {
            let sources: Vec<&str> = signed
                .iter()
                .map(|expected| expected.source.as_str())
                .collect();
            report.problems.push(format!(
                "TRUNCATED LOG: the log ends at sequence {}, but a checkpoint of sequence {newest} was signed (in {}): records {}..={newest} were dropped",
                position.last_sequence,
                sources.join(" and "),
                position.last_sequence + 1
            ));
            report
                .first_bad_sequence
                .get_or_insert(position.last_sequence + 1);
        }
    }
    if checkpoints.is_some() && position.last_sequence > 0 && report.newest_checkpoint.is_none() {
        report.problems.push(
            "NO CHECKPOINT: a trusted key was given but no checkpoint signed by it was found; the log cannot be shown unaltered".into(),
        );
    }
    report.problems.extend(snapshot_problems);
    for sequence in &snapshot_sequences {
        if *sequence > state.last_sequence() {
            report.problems.push(format!(
                "snapshot {sequence} is beyond the end of the log ({}): records were dropped from the tail",
                state.last_sequence()
            ));
            report
                .first_bad_sequence
                .get_or_insert(state.last_sequence() + 1);
        }
    }
    report.problems.extend(state.check_invariants());
    report.invariants_checked = true;
    report.problems.append(&mut index.problems);
    count_index_entries(store, &state, index.reversals, &mut report)?;
    Ok(report)
}

enum SnapshotComparison {
    Matched,
    OlderFormat(String),
}

fn compare_snapshot(
    store: &EventStore,
    sequence: u64,
    state: &LedgerState,
    chain: &ChainHash,
) -> Result<SnapshotComparison, String> {
    if let Ok(Some(version)) = store.snapshot_format_version(sequence) {
        if version < crate::storage::snapshot::SNAPSHOT_FORMAT_VERSION {
            return Ok(SnapshotComparison::OlderFormat(format!(
                "snapshot {sequence} is in the older format v{version}: not compared (the ledger replays past it)"
            )));
        }
    }
    let snapshot = match store.snapshot(sequence) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return Err(format!("snapshot {sequence} vanished")),
        Err(error) => return Err(error.to_string()),
    };
    if snapshot.chain_hash != *chain {
        return Err(format!(
            "snapshot {sequence} records chain hash {}, the log has {chain}",
            snapshot.chain_hash
        ));
    }
    if snapshot.image != state.to_image() {
        return Err(format!(
            "snapshot {sequence} differs from the projections rebuilt from the log"
        ));
    }
    Ok(SnapshotComparison::Matched)
}

/// Pass 2: the index holds as many entries, and as many reversed ones, as the log says.
fn count_index_entries(
    store: &EventStore,
    state: &LedgerState,
    reversals: u64,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let mut entries = 0u64;
    let mut reversed = 0u64;
    let mut problems = Vec::new();
    store.scan_invoices(|decoded| match decoded {
        Ok((_, _, entry)) => {
            entries += 1;
            reversed += u64::from(entry.is_reversed());
        }
        Err(error) => {
            entries += 1;
            problems.push(error.to_string());
        }
    })?;
    if entries != state.invoices_redeemed() {
        problems.push(format!(
            "invoice index has {entries} entries, the log has {} invoices",
            state.invoices_redeemed()
        ));
    }
    if reversed != reversals {
        problems.push(format!(
            "invoice index has {reversed} reversed entries, the log has {reversals} reversals"
        ));
    }
    if store.has_invoice_order() {
        let ordered = store.count_invoice_order()?;
        if ordered != state.invoices_redeemed() {
            problems.push(format!(
                "invoice order index has {ordered} entries, the log has {} invoices",
                state.invoices_redeemed()
            ));
        }
    } else {
        report.notes.push(format!(
            "data directory format {}: no invoice order index yet (built when the ledger next opens it)",
            store.format_version()
        ));
    }
    // When the index is behind the log (a crash took what RocksDB had not flushed of it,
    // or a running server has not flushed it yet: storage::index_lag), the read-only
    // store derived the missing entries from the log: counted and checked above like the
    // rest, and said here.
    match store.index_lag_report() {
        Some(Ok(note)) => report.notes.push(note),
        Some(Err(problem)) => problems.push(problem),
        None => {}
    }
    report.invoice_index_entries = entries;
    report.problems.extend(problems);
    Ok(())
}
