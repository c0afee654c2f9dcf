//! The discrepancy report as a table for the exports' one table writer
//! (`crate::export::table`): CSV (UTF-8 with BOM, so Excel shows Chinese names intact) or
//! XLSX (money cells `#,##0.00`, dates as dates). One row per report line, then one per
//! malformed row, with both sides' values in their own columns.

use super::rows::describe_row_error;
use super::Report;
use crate::domain::Timestamp;
use crate::export::table::{write_csv, write_xlsx, Cell, Column, ExportError, Table};

/// The columns (Chinese, with the English name beside it).
pub const REPORT_COLUMNS: [Column; 14] = [
    Column::new("类型", "kind"),
    Column::new("编号", "reference"),
    Column::new("文件行", "file_line"),
    Column::new("文件金额", "file_amount"),
    Column::new("文件补贴", "file_subsidy"),
    Column::new("文件日期", "file_date"),
    Column::new("文件收款方", "file_payee"),
    Column::new("首次出现行", "first_line"),
    Column::new("账本金额", "ledger_amount"),
    Column::new("账本补贴", "ledger_subsidy"),
    Column::new("账本日期", "ledger_date"),
    Column::new("结算单", "ledger_statement"),
    Column::new("账本收款方", "ledger_payee"),
    Column::new("说明", "detail"),
];

/// The sheet's name in an XLSX.
pub const REPORT_SHEET: &str = "对账差异 discrepancies";

/// A value or an empty cell.
fn or_empty<T>(value: Option<T>, cell: impl FnOnce(T) -> Cell) -> Cell {
    value.map_or(Cell::Empty, cell)
}

/// The report's rows under [`REPORT_COLUMNS`]: its lines, then its malformed rows.
pub fn report_rows(report: &Report) -> Vec<Vec<Cell>> {
    let mut rows = Vec::with_capacity(report.lines.len() + report.row_errors.len());
    for line in &report.lines {
        let file = line.file.clone().unwrap_or_default();
        let ledger = line.ledger.clone().unwrap_or_default();
        rows.push(vec![
            Cell::text(line.kind.name()),
            Cell::text(&line.reference),
            or_empty(file.line, |value| Cell::Count(u64::from(value))),
            or_empty(file.amount, Cell::Money),
            or_empty(file.subsidy, Cell::Money),
            or_empty(file.date, Cell::Date),
            or_empty(file.payee, Cell::text),
            or_empty(file.first_line, |value| Cell::Count(u64::from(value))),
            or_empty(ledger.amount, Cell::Money),
            or_empty(ledger.subsidy, Cell::Money),
            or_empty(ledger.date, Cell::Date),
            or_empty(ledger.statement, |value| Cell::Count(value.0)),
            or_empty(ledger.payee, Cell::text),
            Cell::text(line.describe()),
        ]);
    }
    for error in &report.row_errors {
        rows.push(row_error_row(error.line, &describe_row_error(error)));
    }
    rows
}

/// A malformed row as a report row.
pub fn row_error_row(line: u32, description: &str) -> Vec<Cell> {
    let mut row = vec![Cell::Empty; REPORT_COLUMNS.len()];
    row[0] = Cell::text("ROW_ERROR");
    row[2] = Cell::Count(u64::from(line));
    row[13] = Cell::text(description);
    row
}

/// The table of `rows` (see [`report_rows`]).
pub fn report_table(rows: Vec<Vec<Cell>>) -> Result<Table, ExportError> {
    let mut table = Table::new(REPORT_SHEET, REPORT_COLUMNS.to_vec());
    for row in rows {
        table.push_row(row)?;
    }
    Ok(table)
}

/// The report as CSV bytes (UTF-8 with BOM).
pub fn report_to_csv(report: &Report) -> Result<Vec<u8>, ExportError> {
    write_csv(&report_table(report_rows(report))?)
}

/// The report as XLSX bytes; `created_at` is the file's recorded creation time.
pub fn report_to_xlsx(report: &Report, created_at: Timestamp) -> Result<Vec<u8>, ExportError> {
    write_xlsx(&report_table(report_rows(report))?, created_at)
}
