//! `verify`: the auditor's check of a data directory, independent of the running ledger.
//!
//! It reads every record in order and checks density, frame, format version, payload
//! and the SM3 chain; rebuilds the projections by replay; compares them, byte for byte,
//! with every stored snapshot at its sequence; checks the invariants; and checks the
//! invoice idempotency index against the rebuilt state, entry by entry.

use std::collections::BTreeSet;
use std::path::Path;

use crate::domain::LedgerState;
use crate::storage::record::{check_record, encode_value, genesis_chain_hash, ChainHash};
use crate::storage::store::{decode_index_entry, invoice_key};
use crate::storage::{EventStore, StoreError};

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

pub fn verify_store(store: &EventStore) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let snapshot_sequences: BTreeSet<u64> = store.snapshot_sequences()?.into_iter().collect();
    let mut state = LedgerState::new();
    let mut chain = genesis_chain_hash();
    let mut expected = 1u64;
    let mut stop: Option<(u64, String)> = None;
    let mut snapshot_problems = Vec::new();
    store.scan_records(1, |sequence, bytes| {
        if sequence != expected {
            stop = Some((
                expected,
                format!("record {expected} is missing (the next stored record is {sequence})"),
            ));
            return false;
        }
        let checked = check_record(sequence, bytes, &chain).and_then(|record| {
            let event = record.decode()?;
            Ok((record.at, record.chain_hash, event))
        });
        match checked {
            Ok((at, hash, event)) => {
                state.apply(sequence, at, &event);
                chain = hash;
                expected += 1;
            }
            Err(error) => {
                stop = Some((sequence, error.to_string()));
                return false;
            }
        }
        if snapshot_sequences.contains(&sequence) {
            match compare_snapshot(store, sequence, &state, &chain) {
                Ok(()) => report.snapshots_checked.push(sequence),
                Err(problem) => snapshot_problems.push(problem),
            }
        }
        true
    })?;
    report.records_checked = expected - 1;
    report.chain_head = Some(chain);
    if let Some((sequence, problem)) = stop {
        report.first_bad_sequence = Some(sequence);
        report.problems.push(problem);
        return Ok(report);
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
    check_invoice_index(store, &state, &mut report)?;
    Ok(report)
}

fn compare_snapshot(
    store: &EventStore,
    sequence: u64,
    state: &LedgerState,
    chain: &ChainHash,
) -> Result<(), String> {
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
    let mut rebuilt = Vec::new();
    encode_value(&state.to_image(), &mut rebuilt)?;
    if rebuilt != snapshot.image_bytes {
        return Err(format!(
            "snapshot {sequence} differs from the projections rebuilt from the log"
        ));
    }
    Ok(())
}

fn check_invoice_index(
    store: &EventStore,
    state: &LedgerState,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let mut seen = 0u64;
    let mut problems = Vec::new();
    store.scan_invoices(|key, value| {
        seen += 1;
        let entry = match decode_index_entry(value) {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(format!("invoice index key {}: {error}", hex::encode(key)));
                return Ok(());
            }
        };
        match state.invoice_by_key(key) {
            Some(expected) if *expected == entry => {}
            Some(expected) => problems.push(format!(
                "invoice index entry {} differs from the log: stored {entry:?}, replayed {expected:?}",
                String::from_utf8_lossy(key)
            )),
            None => problems.push(format!(
                "invoice index entry {} has no InvoiceRedeemed event in the log",
                String::from_utf8_lossy(key)
            )),
        }
        Ok(())
    })?;
    // verify replays without evicting, so every invoice of the log is in memory.
    if seen != state.invoices_in_memory() as u64 {
        problems.push(format!(
            "invoice index has {seen} entries, the log has {} invoices",
            state.invoices_in_memory()
        ));
    }
    report.invoice_index_entries = seen;
    report.problems.extend(problems);
    Ok(())
}

impl LedgerState {
    /// Looks an invoice up by its index key (center USCC + invoice number bytes).
    fn invoice_by_key(&self, key: &[u8]) -> Option<&crate::domain::state::InvoiceEntry> {
        let center =
            crate::domain::Uscc::parse("center", std::str::from_utf8(key.get(..18)?).ok()?).ok()?;
        let number =
            crate::domain::InvoiceNumber::parse(std::str::from_utf8(key.get(18..)?).ok()?).ok()?;
        debug_assert_eq!(invoice_key(&center, &number), key);
        self.invoice(&center, &number)
    }
}
