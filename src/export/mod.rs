//! Exports: the ledger's figures as files a finance bureau opens (CSV and XLSX), and the
//! year's audit package.
//!
//! - [`table`]: the one table writer (typed cells, bilingual headers, CSV with BOM, XLSX
//!   with money cells formatted `#,##0.00`). Every export, and the reconciliation's
//!   discrepancy report, is a [`Table`] written by it.
//! - [`figures`]: the ledger's figures as tables (statements, payments, receivables, the
//!   year's figures, invoices of a period), read a page at a time.
//! - [`package`]: the audit package of a year (`voucher-ledger export`) and its offline
//!   check (`voucher-ledger verify --package`).
//! - [`download`]: one export by kind and format, as a named file (what the gRPC
//!   `ExportService` streams and `voucher-ledger export statements|invoices|receivables`
//!   writes).

pub mod download;
pub mod figures;
pub mod package;
pub mod table;

pub use table::{
    write_csv, write_table, write_xlsx, write_xlsx_workbook, Cell, Column, ExportError, FileFormat,
    Table,
};
