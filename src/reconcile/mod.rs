//! Reconciliation: a center's invoice list, or the bank's payment file, matched with the
//! ledger to the fen.
//!
//! - [`read`]: the file's bytes to a table (format and encoding detected from content);
//! - [`grammar`]: amounts, dates and identifiers as files write them, to the one strict
//!   grammar;
//! - [`rows`]: the header's columns, and each row typed or refused with its line number;
//! - [`matching`]: the pure matcher, rows and ledger facts to report lines;
//! - [`ledger_facts`]: the ledger's facts for a scope, read through `LedgerReader`;
//! - [`report_csv`]: the report as a table for the exports' writer: CSV (UTF-8 with BOM,
//!   so Excel shows Chinese intact) or XLSX.
//!
//! Nothing here changes the ledger: the API records the outcome with
//! `Command::RecordReconciliation` (who, when, the file's SM3 digest, counts per kind).

pub mod grammar;
pub mod ledger_facts;
pub mod matching;
pub mod read;
pub mod report_csv;
pub mod rows;

use sm3::{Digest, Sm3};

pub use crate::domain::{
    DiscrepancyCounts, DiscrepancyKind, FileDigest, FileEncoding, FileFormat, FileName,
    ReconciliationRecorded, ReconciliationScope,
};
pub use matching::{
    DiscrepancyLine, FileSide, LedgerInvoice, LedgerPayment, LedgerSide, LedgerStatement,
};
pub use rows::{InvoiceRow, PaymentRow, RowError};

use crate::limits::{RECONCILIATION_FILE_BYTES_MAX, RECONCILIATION_ROWS_MAX};

/// Why a file was refused as a whole (nothing is recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("the file is {bytes} bytes, over the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the file has more than {limit} data rows (the limit)")]
    TooManyRows { limit: usize },
    #[error("{0}")]
    Encoding(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the header (line {line}) has no {column} column (expected one of: {expected})")]
    MissingColumn {
        column: &'static str,
        expected: String,
        line: u32,
    },
    #[error("the file has no data rows")]
    NoDataRows,
    #[error("every one of the file's {row_errors} data rows is malformed, so nothing was reconciled (first: {first})")]
    OnlyBadRows { row_errors: usize, first: String },
}

/// The SM3 digest of a file's bytes: how a re-import is recognised.
pub fn file_digest(bytes: &[u8]) -> FileDigest {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&Sm3::digest(bytes));
    FileDigest(digest)
}

/// A file checked against the limits and read into a table.
pub struct PreparedFile {
    pub digest: FileDigest,
    pub table: read::Table,
}

/// Checks the size limit, hashes, detects the format and reads the table.
pub fn prepare(bytes: &[u8]) -> Result<PreparedFile, ReconcileError> {
    prepare_with_limits(
        bytes,
        RECONCILIATION_FILE_BYTES_MAX,
        RECONCILIATION_ROWS_MAX,
    )
}

/// [`prepare`] with other limits (tests).
pub fn prepare_with_limits(
    bytes: &[u8],
    byte_limit: usize,
    row_limit: usize,
) -> Result<PreparedFile, ReconcileError> {
    if bytes.len() > byte_limit {
        return Err(ReconcileError::TooLarge {
            bytes: bytes.len(),
            limit: byte_limit,
        });
    }
    // The header is a row too.
    let table =
        read::read_table(bytes, row_limit.saturating_add(1)).map_err(|error| match error {
            ReconcileError::TooManyRows { .. } => ReconcileError::TooManyRows { limit: row_limit },
            other => other,
        })?;
    Ok(PreparedFile {
        digest: file_digest(bytes),
        table,
    })
}

/// The outcome of matching one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub scope: ReconciliationScope,
    pub digest: FileDigest,
    pub format: FileFormat,
    pub encoding: FileEncoding,
    /// Data rows read, good and bad.
    pub rows: u64,
    pub lines: Vec<DiscrepancyLine>,
    pub row_errors: Vec<RowError>,
}

impl Report {
    pub fn counts(&self) -> DiscrepancyCounts {
        DiscrepancyCounts {
            by_kind: matching::count_lines(&self.lines),
            rows: self.rows,
            row_errors: self.row_errors.len() as u64,
        }
    }

    /// What the ledger records of it.
    pub fn to_recorded(&self, file_name: FileName) -> ReconciliationRecorded {
        ReconciliationRecorded {
            digest: self.digest,
            file_name,
            format: self.format,
            encoding: self.encoding,
            scope: self.scope,
            counts: self.counts(),
        }
    }
}

/// A center's invoice list against the ledger's invoices of that center and period.
pub fn reconcile_center_invoices(
    file: &PreparedFile,
    scope: ReconciliationScope,
    ledger: &[LedgerInvoice],
) -> Result<Report, ReconcileError> {
    let (rows, row_errors) = rows::invoice_rows(&file.table)?;
    let lines = matching::match_center_invoices(&rows, ledger);
    Ok(Report {
        scope,
        digest: file.digest,
        format: file.table.format,
        encoding: file.table.encoding,
        rows: (rows.len() + row_errors.len()) as u64,
        lines,
        row_errors,
    })
}

/// The bank's payment file against a year's statements and payments.
pub fn reconcile_bank_payments(
    file: &PreparedFile,
    scope: ReconciliationScope,
    statements: &[LedgerStatement],
) -> Result<Report, ReconcileError> {
    let (rows, row_errors) = rows::payment_rows(&file.table)?;
    let lines = matching::match_bank_payments(&rows, statements);
    Ok(Report {
        scope,
        digest: file.digest,
        format: file.table.format,
        encoding: file.table.encoding,
        rows: (rows.len() + row_errors.len()) as u64,
        lines,
        row_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_the_limits_are_refused_with_the_figures() {
        let csv =
            "发票号码,开票日期,金额,补贴\nA,2026-03-05,1,0\nB,2026-03-05,1,0\nC,2026-03-05,1,0\n";
        assert_eq!(
            prepare_with_limits(csv.as_bytes(), 10, 100).err(),
            Some(ReconcileError::TooLarge {
                bytes: csv.len(),
                limit: 10
            })
        );
        assert_eq!(
            prepare_with_limits(csv.as_bytes(), 1 << 20, 2).err(),
            Some(ReconcileError::TooManyRows { limit: 2 })
        );
        assert!(prepare_with_limits(csv.as_bytes(), 1 << 20, 3).is_ok());
    }
}
