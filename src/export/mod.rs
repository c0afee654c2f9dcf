//! Exports: the ledger's figures as files a finance bureau opens (CSV and XLSX), and the
//! year's audit package.
//!
//! - [`table`]: the one table writer (typed cells, bilingual headers, CSV with BOM, XLSX
//!   with money cells formatted `#,##0.00`). Every export, and the reconciliation's
//!   discrepancy report, is a [`Table`] written by it.

pub mod table;

pub use table::{
    write_csv, write_table, write_xlsx, write_xlsx_workbook, Cell, Column, ExportError,
    FileFormat, Table,
};
