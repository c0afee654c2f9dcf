//! Reconciliation types to proto: the recorded event, a recorded reconciliation with who
//! recorded it, report lines and row errors.

use crate::api::proto;
use crate::domain::{
    DiscrepancyCounts, Origin, ReconciliationRecord, ReconciliationRecorded, ReconciliationScope,
};
use crate::reconcile::{DiscrepancyLine, RowError};

pub fn counts_to_proto(counts: &DiscrepancyCounts) -> Vec<proto::DiscrepancyCount> {
    counts
        .by_kind
        .iter()
        .map(|(kind, count)| proto::DiscrepancyCount {
            kind: kind.name().to_owned(),
            count: *count,
        })
        .collect()
}

pub fn reconciliation_recorded_to_proto(
    recorded: &ReconciliationRecorded,
) -> proto::ReconciliationRecorded {
    let (center, from, to, year) = match &recorded.scope {
        ReconciliationScope::CenterInvoices { center, from, to } => {
            (center.to_string(), from.to_string(), to.to_string(), 0)
        }
        ReconciliationScope::BankPayments { year } => {
            (String::new(), String::new(), String::new(), year.get())
        }
    };
    proto::ReconciliationRecorded {
        file_sm3: recorded.digest.to_hex(),
        file_name: recorded.file_name.to_string(),
        format: recorded.format.name().to_owned(),
        encoding: recorded.encoding.name().to_owned(),
        kind: recorded.scope.kind_name().to_owned(),
        center,
        from,
        to,
        year,
        rows: recorded.counts.rows,
        row_errors: recorded.counts.row_errors,
        counts: counts_to_proto(&recorded.counts),
    }
}

/// A recorded reconciliation; `origin` is its record's, from the log.
pub fn record_to_proto(
    record: &ReconciliationRecord,
    origin: Option<&Origin>,
) -> proto::RecordedReconciliation {
    proto::RecordedReconciliation {
        sequence: record.sequence,
        time_unix_ms: record.at.0,
        principal_role: origin
            .map(|origin| origin.principal.role.name().to_owned())
            .unwrap_or_default(),
        principal_name: origin
            .map(|origin| origin.principal.name().to_owned())
            .unwrap_or_default(),
        reconciliation: Some(reconciliation_recorded_to_proto(&record.reconciliation)),
    }
}

pub fn line_to_proto(line: &DiscrepancyLine) -> proto::DiscrepancyLine {
    let file = line.file.clone().unwrap_or_default();
    let ledger = line.ledger.clone().unwrap_or_default();
    let text = |value: Option<String>| value.unwrap_or_default();
    proto::DiscrepancyLine {
        kind: line.kind.name().to_owned(),
        reference: line.reference.clone(),
        file_line: file.line.unwrap_or(0),
        file_amount: text(file.amount.map(|value| value.to_string())),
        file_subsidy: text(file.subsidy.map(|value| value.to_string())),
        file_date: text(file.date.map(|value| value.to_string())),
        file_payee: text(file.payee.map(|value| value.to_string())),
        first_line: file.first_line.unwrap_or(0),
        ledger_amount: text(ledger.amount.map(|value| value.to_string())),
        ledger_subsidy: text(ledger.subsidy.map(|value| value.to_string())),
        ledger_date: text(ledger.date.map(|value| value.to_string())),
        ledger_statement_id: ledger.statement.map_or(0, |statement| statement.0),
        ledger_payee: text(ledger.payee.map(|value| value.to_string())),
        ledger_reversed: ledger.reversed,
        description: line.describe(),
    }
}

pub fn row_error_to_proto(error: &RowError) -> proto::RowError {
    proto::RowError {
        line: error.line,
        column: error.column.to_owned(),
        value: error.value.clone(),
        reason: error.reason.clone(),
    }
}
