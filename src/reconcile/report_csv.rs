//! The discrepancy report as CSV: UTF-8 with a BOM (so Excel shows Chinese names
//! intact), one row per report line, then one per malformed row, with both sides' values
//! in their own columns and amounts as plain decimals of yuan.

use super::rows::describe_row_error;
use super::Report;

/// The header row (bilingual, as the bureau reads it).
pub const REPORT_COLUMNS: [&str; 14] = [
    "类型/kind",
    "编号/reference",
    "文件行/file_line",
    "文件金额/file_amount",
    "文件补贴/file_subsidy",
    "文件日期/file_date",
    "文件收款方/file_payee",
    "首次出现行/first_line",
    "账本金额/ledger_amount",
    "账本补贴/ledger_subsidy",
    "账本日期/ledger_date",
    "结算单/ledger_statement",
    "账本收款方/ledger_payee",
    "说明/detail",
];

/// The report's rows under [`REPORT_COLUMNS`]: its lines, then its malformed rows.
pub fn report_rows(report: &Report) -> Vec<Vec<String>> {
    let text = |value: Option<String>| value.unwrap_or_default();
    let mut rows = Vec::with_capacity(report.lines.len() + report.row_errors.len());
    for line in &report.lines {
        let file = line.file.clone().unwrap_or_default();
        let ledger = line.ledger.clone().unwrap_or_default();
        rows.push(vec![
            line.kind.name().to_owned(),
            line.reference.clone(),
            text(file.line.map(|value| value.to_string())),
            text(file.amount.map(|value| value.to_string())),
            text(file.subsidy.map(|value| value.to_string())),
            text(file.date.map(|value| value.to_string())),
            text(file.payee.map(|value| value.to_string())),
            text(file.first_line.map(|value| value.to_string())),
            text(ledger.amount.map(|value| value.to_string())),
            text(ledger.subsidy.map(|value| value.to_string())),
            text(ledger.date.map(|value| value.to_string())),
            text(ledger.statement.map(|value| value.0.to_string())),
            text(ledger.payee.map(|value| value.to_string())),
            line.describe(),
        ]);
    }
    for error in &report.row_errors {
        rows.push(row_error_row(error.line, &describe_row_error(error)));
    }
    rows
}

/// A malformed row as a report row.
pub fn row_error_row(line: u32, description: &str) -> Vec<String> {
    let mut row = vec![String::new(); REPORT_COLUMNS.len()];
    row[0] = "ROW_ERROR".to_owned();
    row[2] = line.to_string();
    row[13] = description.to_owned();
    row
}

/// CSV bytes (UTF-8 with BOM): the header, then `rows`.
pub fn csv_bytes(rows: &[Vec<String>]) -> Result<Vec<u8>, csv::Error> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut writer = csv::WriterBuilder::new().from_writer(&mut out);
        writer.write_record(REPORT_COLUMNS)?;
        for row in rows {
            writer.write_record(row)?;
        }
        writer.flush()?;
    }
    Ok(out)
}

/// The report as CSV bytes (UTF-8 with BOM).
pub fn report_to_csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    csv_bytes(&report_rows(report))
}
