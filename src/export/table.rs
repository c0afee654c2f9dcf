//! The one table writer every export uses: a [`Table`] of typed [`Cell`]s under bilingual
//! headers (`发票号码 invoice_number`), written as CSV ([`write_csv`]) or XLSX
//! ([`write_xlsx`], [`write_xlsx_workbook`] for several sheets).
//!
//! - **CSV** is the text of record: UTF-8 with a byte-order mark (so Excel opens Chinese
//!   names intact instead of guessing the ANSI code page), RFC 4180 quoting and CRLF line
//!   ends (the `csv` crate), money as plain `1234.50` (no separators, no currency sign) so
//!   it parses back with `Money::parse` to the fen.
//! - **XLSX** is for people: money as numeric cells formatted `#,##0.00`, dates as date
//!   cells, a bold frozen header row, an autofilter, and column widths that fit the
//!   widest value (CJK characters count double). The file is reproducible: its creation
//!   time is a value the caller passes (the ledger's time), never the clock, so the same
//!   figures give the same bytes over gRPC and on the command line.

use std::fmt;

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet};
use unicode_width::UnicodeWidthStr;

use crate::domain::{Date, Money, Rate, Timestamp};
use crate::limits::{EXPORT_ROWS_MAX, XLSX_COLUMN_WIDTH_MAX, XLSX_MONEY_EXACT_MAX_FEN};

/// The UTF-8 byte-order mark every CSV export starts with.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Excel's number format for money cells.
pub const MONEY_FORMAT: &str = "#,##0.00";
/// Excel's number format for date cells (ISO 8601, as in the CSV).
pub const DATE_FORMAT: &str = "yyyy-mm-dd";
/// Excel's number format for rates.
pub const PERCENT_FORMAT: &str = "0.00%";

/// One value of a table, typed so each file format can write it as what it is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Cell {
    /// Nothing (a value one side of a comparison does not have).
    Empty,
    Text(String),
    /// An amount in yuan, exact to the fen.
    Money(Money),
    Date(Date),
    /// A whole number: a count, a sequence number, a statement id.
    Count(u64),
    /// A rate (CSV: the decimal fraction `0.3`; XLSX: a number formatted `0.00%`).
    Percent(Rate),
}

impl Cell {
    pub fn text(text: impl fmt::Display) -> Cell {
        Cell::Text(text.to_string())
    }

    /// The value as the CSV writes it (before the formula guard on text, see
    /// [`write_csv`]).
    pub fn to_plain_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Money(amount) => amount.to_string(),
            Cell::Date(date) => date.to_string(),
            Cell::Count(count) => count.to_string(),
            Cell::Percent(rate) => rate.to_string(),
        }
    }

    /// How wide the value shows in a spreadsheet, in character cells (CJK count two).
    fn display_width(&self) -> usize {
        match self {
            Cell::Money(amount) => with_thousands_separators(&amount.to_string()).len(),
            Cell::Percent(_) => "100.00%".len(),
            other => UnicodeWidthStr::width(other.to_plain_text().as_str()),
        }
    }
}

/// A column: its header in Chinese, with the English name beside it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Column {
    pub chinese: &'static str,
    pub english: &'static str,
}

impl Column {
    pub const fn new(chinese: &'static str, english: &'static str) -> Column {
        Column { chinese, english }
    }

    /// The header cell: `发票号码 invoice_number`.
    pub fn header(&self) -> String {
        format!("{} {}", self.chinese, self.english)
    }
}

/// The file formats an export is written in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FileFormat {
    Csv,
    Xlsx,
}

impl FileFormat {
    /// `csv` or `xlsx` (case-insensitive), as typed on the command line.
    pub fn parse(text: &str) -> Result<FileFormat, ExportError> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(FileFormat::Csv),
            "xlsx" => Ok(FileFormat::Xlsx),
            _ => Err(ExportError::Format(text.to_string())),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Xlsx => "xlsx",
        }
    }

    /// The media type a download announces.
    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::Csv => "text/csv; charset=utf-8",
            FileFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// Why an export could not be written; each names the table, row and column concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export format must be csv or xlsx, got {0:?}")]
    Format(String),
    #[error("table {sheet:?} has more than {limit} rows; narrow the export (a center, a shorter period)")]
    TooManyRows { sheet: String, limit: usize },
    #[error("table {sheet:?} row {row}: {cells} cells for {columns} columns")]
    RowWidth {
        sheet: String,
        row: usize,
        cells: usize,
        columns: usize,
    },
    #[error("table {sheet:?} row {row} column {column:?}: {amount} is above the largest amount an XLSX number cell holds exactly (10^13 yuan); use the CSV export")]
    MoneyBeyondXlsx {
        sheet: String,
        row: usize,
        column: String,
        amount: Money,
    },
    #[error("writing the CSV of table {sheet:?}: {source}")]
    Csv {
        sheet: String,
        #[source]
        source: csv::Error,
    },
    #[error("writing the XLSX of table {sheet:?}: {source}")]
    Xlsx {
        sheet: String,
        #[source]
        source: rust_xlsxwriter::XlsxError,
    },
    /// The figures could not be read from the ledger (the message says which).
    #[error("{0}")]
    Ledger(String),
    /// The caller may not see what it asked for (the message says which).
    #[error("{0}")]
    NotAllowed(String),
    /// An argument is wrong (the message names it and its value).
    #[error("{0}")]
    Argument(String),
}

/// A table: a sheet name (the XLSX sheet, at most 31 characters), columns and rows of
/// cells, at most [`EXPORT_ROWS_MAX`] rows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Table {
    sheet_name: String,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(sheet_name: impl Into<String>, columns: Vec<Column>) -> Table {
        Table {
            sheet_name: sheet_name.into(),
            columns,
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per column, and the table must stay within
    /// [`EXPORT_ROWS_MAX`] rows.
    pub fn push_row(&mut self, row: Vec<Cell>) -> Result<(), ExportError> {
        if row.len() != self.columns.len() {
            return Err(ExportError::RowWidth {
                sheet: self.sheet_name.clone(),
                row: self.rows.len() + 1,
                cells: row.len(),
                columns: self.columns.len(),
            });
        }
        if self.rows.len() >= EXPORT_ROWS_MAX {
            return Err(ExportError::TooManyRows {
                sheet: self.sheet_name.clone(),
                limit: EXPORT_ROWS_MAX,
            });
        }
        self.rows.push(row);
        Ok(())
    }

    pub fn sheet_name(&self) -> &str {
        &self.sheet_name
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The rows, without the header.
    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header cells, in column order.
    pub fn headers(&self) -> Vec<String> {
        self.columns.iter().map(Column::header).collect()
    }
}

/// Writes `table` in `format`; `created_at` is the XLSX's creation time (see the module
/// doc: never the clock, so the bytes are reproducible).
pub fn write_table(
    table: &Table,
    format: FileFormat,
    created_at: Timestamp,
) -> Result<Vec<u8>, ExportError> {
    match format {
        FileFormat::Csv => write_csv(table),
        FileFormat::Xlsx => write_xlsx(table, created_at),
    }
}

/// The table as CSV: BOM, header row, one record per row, RFC 4180 (fields with a comma,
/// quote or line break are quoted, quotes doubled; CRLF line ends).
///
/// Text that starts with `=`, `+`, `-` or `@` gets a leading `'` (OWASP's guard against
/// CSV formula injection): a legal name such as `=HYPERLINK(...)` is shown, not run, when
/// a person opens the file in Excel. Money, dates and counts never start with those, so
/// figures are written exactly as they are.
pub fn write_csv(table: &Table) -> Result<Vec<u8>, ExportError> {
    let fail = |source: csv::Error| ExportError::Csv {
        sheet: table.sheet_name.clone(),
        source,
    };
    let mut bytes = UTF8_BOM.to_vec();
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(&mut bytes);
        writer.write_record(table.headers()).map_err(fail)?;
        for row in &table.rows {
            writer
                .write_record(row.iter().map(csv_field))
                .map_err(fail)?;
        }
        writer.flush().map_err(|error| fail(error.into()))?;
    }
    Ok(bytes)
}

fn csv_field(cell: &Cell) -> String {
    match cell {
        Cell::Text(text) if text.starts_with(['=', '+', '-', '@']) => format!("'{text}"),
        other => other.to_plain_text(),
    }
}

/// The table as an XLSX workbook of one sheet.
pub fn write_xlsx(table: &Table, created_at: Timestamp) -> Result<Vec<u8>, ExportError> {
    write_xlsx_workbook(&[table], created_at)
}

/// Several tables as the sheets of one XLSX workbook, in order.
pub fn write_xlsx_workbook(
    tables: &[&Table],
    created_at: Timestamp,
) -> Result<Vec<u8>, ExportError> {
    let workbook_error = |source| ExportError::Xlsx {
        sheet: tables
            .first()
            .map_or_else(String::new, |table| table.sheet_name.clone()),
        source,
    };
    let mut workbook = Workbook::new();
    // A time outside Excel's years 1900-9999 (never a ledger's) falls back to 1970.
    let creation = ExcelDateTime::from_timestamp(created_at.0.div_euclid(1_000))
        .or_else(|_| ExcelDateTime::from_timestamp(0))
        .map_err(workbook_error)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&creation));
    let formats = CellFormats::new();
    for table in tables {
        let worksheet = workbook.add_worksheet();
        write_sheet(worksheet, table, &formats).map_err(|error| match error {
            SheetError::Xlsx(source) => ExportError::Xlsx {
                sheet: table.sheet_name.clone(),
                source,
            },
            SheetError::Export(error) => error,
        })?;
    }
    workbook.save_to_buffer().map_err(workbook_error)
}

struct CellFormats {
    header: Format,
    money: Format,
    date: Format,
    percent: Format,
}

impl CellFormats {
    fn new() -> CellFormats {
        CellFormats {
            header: Format::new().set_bold(),
            money: Format::new().set_num_format(MONEY_FORMAT),
            date: Format::new().set_num_format(DATE_FORMAT),
            percent: Format::new().set_num_format(PERCENT_FORMAT),
        }
    }
}

enum SheetError {
    Xlsx(rust_xlsxwriter::XlsxError),
    Export(ExportError),
}

impl From<rust_xlsxwriter::XlsxError> for SheetError {
    fn from(error: rust_xlsxwriter::XlsxError) -> SheetError {
        SheetError::Xlsx(error)
    }
}

fn write_sheet(
    worksheet: &mut Worksheet,
    table: &Table,
    formats: &CellFormats,
) -> Result<(), SheetError> {
    worksheet.set_name(table.sheet_name.as_str())?;
    let mut widths: Vec<usize> = table
        .columns
        .iter()
        .map(|column| UnicodeWidthStr::width(column.header().as_str()))
        .collect();
    for (column_index, column) in table.columns.iter().enumerate() {
        worksheet.write_string_with_format(
            0,
            column_number(column_index),
            column.header(),
            &formats.header,
        )?;
    }
    for (row_index, row) in table.rows.iter().enumerate() {
        // Row 0 is the header; EXPORT_ROWS_MAX keeps this below Excel's 1,048,576 rows.
        let sheet_row = u32::try_from(row_index + 1).unwrap_or(u32::MAX);
        for (column_index, cell) in row.iter().enumerate() {
            let column = column_number(column_index);
            if let Some(width) = widths.get_mut(column_index) {
                *width = (*width).max(cell.display_width());
            }
            match cell {
                Cell::Empty => {}
                Cell::Text(text) => {
                    worksheet.write_string(sheet_row, column, text.as_str())?;
                }
                Cell::Money(amount) => {
                    let number = money_as_xlsx_number(*amount).ok_or_else(|| {
                        SheetError::Export(ExportError::MoneyBeyondXlsx {
                            sheet: table.sheet_name.clone(),
                            row: row_index + 1,
                            column: table
                                .columns
                                .get(column_index)
                                .map_or_else(String::new, Column::header),
                            amount: *amount,
                        })
                    })?;
                    worksheet.write_number_with_format(
                        sheet_row,
                        column,
                        number,
                        &formats.money,
                    )?;
                }
                Cell::Date(date) => match excel_date(*date) {
                    Some(excel) => {
                        worksheet.write_datetime_with_format(
                            sheet_row,
                            column,
                            &excel,
                            &formats.date,
                        )?;
                    }
                    // Before 1900 Excel has no date: write the ISO text instead.
                    None => {
                        worksheet.write_string(sheet_row, column, date.to_string())?;
                    }
                },
                Cell::Count(count) => {
                    // Counts and sequence numbers stay far below 2^53, where every
                    // integer is an exact f64; a larger one is written as text.
                    if *count <= (1u64 << 53) {
                        worksheet.write_number(sheet_row, column, *count as f64)?;
                    } else {
                        worksheet.write_string(sheet_row, column, count.to_string())?;
                    }
                }
                Cell::Percent(rate) => {
                    let fraction = f64::from(rate.basis_points()) / 10_000.0;
                    worksheet.write_number_with_format(
                        sheet_row,
                        column,
                        fraction,
                        &formats.percent,
                    )?;
                }
            }
        }
    }
    for (column_index, width) in widths.iter().enumerate() {
        // Two characters of padding for the autofilter button and the cell margin.
        let width = (*width + 2).min(XLSX_COLUMN_WIDTH_MAX);
        worksheet.set_column_width(column_number(column_index), width as f64)?;
    }
    worksheet.set_freeze_panes(1, 0)?;
    if !table.columns.is_empty() {
        let last_row = u32::try_from(table.rows.len()).unwrap_or(u32::MAX);
        worksheet.autofilter(0, 0, last_row, column_number(table.columns.len() - 1))?;
    }
    Ok(())
}

/// A column index as XLSX's column number (tables have a handful of columns).
fn column_number(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX)
}

/// The amount as the number an XLSX cell holds, or `None` above
/// [`XLSX_MONEY_EXACT_MAX_FEN`].
///
/// An XLSX number cell is an IEEE 754 double, so money there is an `f64` by necessity
/// (a text cell would not sum, sort or take the `#,##0.00` format). It is exact to the
/// fen in the sense that matters: the cell's value reads back as the same amount.
/// - The fen count `n` is an integer below 2^53, so `n as f64` is exact, and `n / 100.0`
///   is the double nearest to the decimal `n/100` (IEEE division rounds correctly).
/// - A decimal of at most 15 significant digits survives decimal → double → decimal
///   (binary64 guarantees 15 digits, `DBL_DIG`), and Rust writes a double in the
///   shortest form that reads back as it (which rust_xlsxwriter puts in the XML), so the
///   file holds the text `1234.5` for 1234.50 yuan and Excel shows 15 digits. Amounts up
///   to 10^15 fen (10^13 yuan, the ledger's largest amount) have at most 15 significant
///   digits (10^15 itself is exact), so they come back to the fen. 2^53 fen alone would
///   not be enough: a 16-digit amount of fen need not survive the trip through yuan.
///
/// Larger sums are refused rather than written inexactly; the CSV (and the ledger)
/// remain the text of record.
pub fn money_as_xlsx_number(amount: Money) -> Option<f64> {
    let fen = amount.to_fen_wide();
    if !(0..=i128::from(XLSX_MONEY_EXACT_MAX_FEN)).contains(&fen) {
        return None;
    }
    // Exact: fen < 2^53 (asserted in limits.rs).
    Some(fen as f64 / 100.0)
}

fn excel_date(date: Date) -> Option<ExcelDateTime> {
    let (year, month, day) = date.year_month_day();
    let year = u16::try_from(year).ok()?;
    ExcelDateTime::from_ymd(year, u8::try_from(month).ok()?, u8::try_from(day).ok()?).ok()
}

/// `1234567.50` as `1,234,567.50` (what `#,##0.00` shows), for column widths.
fn with_thousands_separators(plain: &str) -> String {
    let (integer, decimals) = plain.split_once('.').unwrap_or((plain, ""));
    let mut grouped = String::with_capacity(plain.len() + plain.len() / 3);
    for (position, digit) in integer.chars().enumerate() {
        if position > 0 && (integer.len() - position) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if !decimals.is_empty() {
        grouped.push('.');
        grouped.push_str(decimals);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Money {
        Money::parse("amount", text).expect("amount")
    }

    fn sample() -> Table {
        let mut table = Table::new(
            "发票 invoices",
            vec![
                Column::new("名称", "name"),
                Column::new("金额", "amount"),
                Column::new("开票日期", "issue_date"),
                Column::new("笔数", "count"),
            ],
        );
        table
            .push_row(vec![
                Cell::text("杭州算力中心有限公司"),
                Cell::Money(money("1234567.5")),
                Cell::Date(Date::parse("d", "2026-03-01").expect("date")),
                Cell::Count(3),
            ])
            .expect("row");
        table
            .push_row(vec![
                Cell::text("Quote \"and\", comma"),
                Cell::Money(Money::ZERO),
                Cell::Empty,
                Cell::Count(0),
            ])
            .expect("row");
        table
    }

    #[test]
    fn csv_starts_with_a_bom_and_quotes_by_rfc_4180() {
        let bytes = write_csv(&sample()).expect("csv");
        assert!(bytes.starts_with(UTF8_BOM));
        let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
        assert_eq!(
            text,
            "名称 name,金额 amount,开票日期 issue_date,笔数 count\r\n\
             杭州算力中心有限公司,1234567.50,2026-03-01,3\r\n\
             \"Quote \"\"and\"\", comma\",0.00,,0\r\n"
        );
    }

    #[test]
    fn csv_guards_text_that_excel_would_run_as_a_formula() {
        let mut table = Table::new("t", vec![Column::new("名称", "name")]);
        table.push_row(vec![Cell::text("=1+1")]).expect("row");
        let bytes = write_csv(&table).expect("csv");
        assert!(std::str::from_utf8(&bytes)
            .expect("utf-8")
            .ends_with("'=1+1\r\n"));
    }

    #[test]
    fn rows_of_the_wrong_width_are_refused_naming_the_row() {
        let mut table = sample();
        let error = table.push_row(vec![Cell::Empty]).expect_err("width");
        assert!(
            error.to_string().contains("row 3: 1 cells for 4 columns"),
            "{error}"
        );
    }

    #[test]
    fn xlsx_money_is_exact_up_to_the_largest_amount_and_refused_beyond() {
        for fen in [
            0,
            1,
            10,
            99,
            123_456_789,
            999_999_999_999_999,
            1_000_000_000_000_000,
        ] {
            let amount = Money::from_total_fen(fen).expect("amount");
            let number = money_as_xlsx_number(amount).expect("in range");
            // What the XML holds (shortest round trip), parsed back as money.
            let written = format!("{number}");
            let reread: f64 = written.parse().expect("f64");
            assert_eq!(reread, number);
            let decimal = format!("{reread:.2}");
            assert_eq!(money(&decimal), amount, "{fen} fen written as {written}");
        }
        let beyond = Money::from_total_fen(1_000_000_000_000_001).expect("total");
        assert_eq!(money_as_xlsx_number(beyond), None);
    }

    #[test]
    fn xlsx_is_reproducible_for_the_same_time() {
        let first = write_xlsx(&sample(), Timestamp(1_767_225_600_000)).expect("xlsx");
        let second = write_xlsx(&sample(), Timestamp(1_767_225_600_000)).expect("xlsx");
        assert!(first.starts_with(b"PK"));
        assert_eq!(first, second);
    }

    #[test]
    fn thousands_separators_group_from_the_right() {
        assert_eq!(with_thousands_separators("1234567.50"), "1,234,567.50");
        assert_eq!(with_thousands_separators("123.00"), "123.00");
        assert_eq!(with_thousands_separators("1000.00"), "1,000.00");
    }
}
