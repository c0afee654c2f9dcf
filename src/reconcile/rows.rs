//! From a table to typed rows: the header names the columns (in Chinese or English, in
//! any order, other columns ignored), and each data row is parsed into an invoice row or
//! a payment row, or refused as a [`RowError`] with its line number and what was wrong.

use super::grammar::{parse_amount_cell, parse_date_cell, text_of, Cell};
use super::read::{Table, TableRow};
use super::ReconcileError;
use crate::domain::{BankReference, Date, InvoiceNumber, Money, Uscc};

/// One row of a center's invoice list.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceRow {
    pub line: u32,
    pub invoice_number: InvoiceNumber,
    pub issue_date: Date,
    pub amount: Money,
    pub subsidy: Money,
}

/// One row of the bank's payment file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PaymentRow {
    pub line: u32,
    pub bank_reference: BankReference,
    pub payee: Uscc,
    pub payee_name: String,
    pub amount: Money,
    pub value_date: Date,
}

/// A malformed row: it changes nothing and is reported.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RowError {
    pub line: u32,
    /// The column (its English name), or `row` for the row as a whole.
    pub column: &'static str,
    /// The value as the file has it (shortened).
    pub value: String,
    pub reason: String,
}

/// A column: its English name and every header text that names it (compared after
/// NFKC, trimming, lower-casing, and with spaces and hyphens read as underscores).
struct Column {
    name: &'static str,
    aliases: &'static [&'static str],
    required: bool,
}

const INVOICE_COLUMNS: &[Column] = &[
    Column {
        name: "invoice_number",
        aliases: &["发票号码", "发票号", "invoice_number", "invoice_no"],
        required: true,
    },
    Column {
        name: "issue_date",
        aliases: &["开票日期", "issue_date", "invoice_date"],
        required: true,
    },
    Column {
        name: "amount",
        aliases: &["金额", "开票金额", "发票金额", "amount", "invoiced_amount"],
        required: true,
    },
    Column {
        name: "subsidy",
        aliases: &["补贴", "补贴金额", "subsidy", "subsidy_claimed"],
        required: true,
    },
];

const PAYMENT_COLUMNS: &[Column] = &[
    Column {
        name: "bank_reference",
        aliases: &["流水号", "交易流水号", "bank_reference", "reference"],
        required: true,
    },
    Column {
        name: "payee_uscc",
        aliases: &["收款方统一社会信用代码", "统一社会信用代码", "payee_uscc"],
        required: true,
    },
    Column {
        name: "payee_name",
        aliases: &["收款方名称", "收款方", "payee_name"],
        required: true,
    },
    Column {
        name: "amount",
        aliases: &["金额", "交易金额", "amount"],
        required: true,
    },
    Column {
        name: "value_date",
        aliases: &["日期", "起息日", "交易日期", "value_date", "date"],
        required: true,
    },
    // camt.053 only: DBIT (money out) or CRDT (money in).
    Column {
        name: "credit_debit",
        aliases: &["credit_debit"],
        required: false,
    },
];

fn header_key(text: &str) -> String {
    super::grammar::normalized(text)
        .to_lowercase()
        .replace([' ', '-'], "_")
}

/// Where each column is in the header; a missing required column, or a column named
/// twice, refuses the file.
fn map_header(columns: &[Column], header: &TableRow) -> Result<Vec<Option<usize>>, ReconcileError> {
    let cells = header.cells.as_ref().map_err(|reason| {
        ReconcileError::Malformed(format!("the header (line {}) {reason}", header.line))
    })?;
    let keys: Vec<String> = cells
        .iter()
        .map(|cell| match cell {
            Cell::Text(text) => header_key(text),
            other => header_key(&other.shown()),
        })
        .collect();
    let mut positions = Vec::with_capacity(columns.len());
    for column in columns {
        let found: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, key)| {
                column
                    .aliases
                    .iter()
                    .any(|alias| header_key(alias) == **key)
            })
            .map(|(index, _)| index)
            .collect();
        match found.as_slice() {
            [] if column.required => {
                return Err(ReconcileError::MissingColumn {
                    column: column.name,
                    expected: column.aliases.join(" / "),
                    line: header.line,
                })
            }
            [] => positions.push(None),
            [one] => positions.push(Some(*one)),
            [first, second, ..] => {
                return Err(ReconcileError::Malformed(format!(
                    "the header (line {}) names the {} column twice (columns {} and {})",
                    header.line,
                    column.name,
                    first + 1,
                    second + 1
                )))
            }
        }
    }
    Ok(positions)
}

/// The cell of `column` in a row, or the row error for a missing one.
fn cell<'a>(
    row: &'a [Cell],
    line: u32,
    column: &'static str,
    position: Option<usize>,
) -> Result<&'a Cell, RowError> {
    match position.and_then(|position| row.get(position)) {
        Some(cell) if !cell.is_blank() => Ok(cell),
        _ => Err(RowError {
            line,
            column,
            value: String::new(),
            reason: "is missing (empty or no such cell in this row)".into(),
        }),
    }
}

fn row_error(line: u32, column: &'static str, cell: &Cell, reason: String) -> RowError {
    let mut value = cell.shown();
    if value.len() > 80 {
        let mut cut = 77;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push_str("...");
    }
    RowError {
        line,
        column,
        value,
        reason,
    }
}

/// The rows of a table after its header, each parsed by `parse` or refused.
fn data_rows<T>(
    table: &Table,
    columns: &[Column],
    mut parse: impl FnMut(&[Cell], u32, &[Option<usize>]) -> Result<T, RowError>,
) -> Result<(Vec<T>, Vec<RowError>), ReconcileError> {
    let Some((header, rows)) = table.rows.split_first() else {
        return Err(ReconcileError::NoDataRows);
    };
    let positions = map_header(columns, header)?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in rows {
        match &row.cells {
            Err(reason) => bad.push(RowError {
                line: row.line,
                column: "row",
                value: String::new(),
                reason: reason.clone(),
            }),
            Ok(cells) => match parse(cells, row.line, &positions) {
                Ok(parsed) => good.push(parsed),
                Err(error) => bad.push(error),
            },
        }
    }
    if good.is_empty() {
        return Err(if bad.is_empty() {
            ReconcileError::NoDataRows
        } else {
            ReconcileError::OnlyBadRows {
                row_errors: bad.len(),
                first: bad.first().map(describe_row_error).unwrap_or_default(),
            }
        });
    }
    Ok((good, bad))
}

/// A row error as a sentence.
pub fn describe_row_error(error: &RowError) -> String {
    if error.value.is_empty() {
        format!("line {}: {} {}", error.line, error.column, error.reason)
    } else {
        format!(
            "line {}: {} {:?} {}",
            error.line, error.column, error.value, error.reason
        )
    }
}

/// A center's invoice list.
pub fn invoice_rows(table: &Table) -> Result<(Vec<InvoiceRow>, Vec<RowError>), ReconcileError> {
    data_rows(table, INVOICE_COLUMNS, |row, line, positions| {
        let number_cell = cell(row, line, "invoice_number", positions[0])?;
        let invoice_number = text_of(number_cell)
            .and_then(|text| InvoiceNumber::parse(&text).map_err(|error| error.reason))
            .map_err(|reason| row_error(line, "invoice_number", number_cell, reason))?;
        let date_cell = cell(row, line, "issue_date", positions[1])?;
        let issue_date = parse_date_cell("issue_date", date_cell)
            .map_err(|reason| row_error(line, "issue_date", date_cell, reason))?;
        let amount_cell = cell(row, line, "amount", positions[2])?;
        let amount = parse_amount_cell("amount", amount_cell)
            .map_err(|reason| row_error(line, "amount", amount_cell, reason))?;
        let subsidy_cell = cell(row, line, "subsidy", positions[3])?;
        let subsidy = parse_amount_cell("subsidy", subsidy_cell)
            .map_err(|reason| row_error(line, "subsidy", subsidy_cell, reason))?;
        Ok(InvoiceRow {
            line,
            invoice_number,
            issue_date,
            amount,
            subsidy,
        })
    })
}

/// The bank's payment file.
pub fn payment_rows(table: &Table) -> Result<(Vec<PaymentRow>, Vec<RowError>), ReconcileError> {
    data_rows(table, PAYMENT_COLUMNS, |row, line, positions| {
        if let Some(indicator) = positions[5].and_then(|position| row.get(position)) {
            let value = text_of(indicator).unwrap_or_default().to_uppercase();
            if value != "DBIT" {
                return Err(row_error(
                    line,
                    "credit_debit",
                    indicator,
                    "is not DBIT: only money paid out is a payment of a statement".into(),
                ));
            }
        }
        let reference_cell = cell(row, line, "bank_reference", positions[0])?;
        let bank_reference = text_of(reference_cell)
            .and_then(|text| BankReference::parse(&text).map_err(|error| error.reason))
            .map_err(|reason| row_error(line, "bank_reference", reference_cell, reason))?;
        let payee_cell = cell(row, line, "payee_uscc", positions[1])?;
        let payee = text_of(payee_cell)
            .and_then(|text| {
                Uscc::parse("payee_uscc", &text.to_uppercase()).map_err(|error| error.reason)
            })
            .map_err(|reason| row_error(line, "payee_uscc", payee_cell, reason))?;
        let name_cell = cell(row, line, "payee_name", positions[2])?;
        let payee_name = text_of(name_cell)
            .map_err(|reason| row_error(line, "payee_name", name_cell, reason))?;
        let amount_cell = cell(row, line, "amount", positions[3])?;
        let amount = parse_amount_cell("amount", amount_cell)
            .map_err(|reason| row_error(line, "amount", amount_cell, reason))?;
        let date_cell = cell(row, line, "value_date", positions[4])?;
        let value_date = parse_date_cell("value_date", date_cell)
            .map_err(|reason| row_error(line, "value_date", date_cell, reason))?;
        Ok(PaymentRow {
            line,
            bank_reference,
            payee,
            payee_name,
            amount,
            value_date,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::read::read_table;

    fn table(text: &str) -> Table {
        read_table(text.as_bytes(), 1_000).expect("reads")
    }

    #[test]
    fn headers_in_chinese_or_english_in_any_order() {
        let chinese =
            table("补贴,金额,开票日期,发票号码,备注\n100.00,\"1,000.00\",2026-03-05,INV-1,x\n");
        let (rows, errors) = invoice_rows(&chinese).expect("rows");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows[0].invoice_number.as_str(), "INV-1");
        assert_eq!(rows[0].amount.to_string(), "1000.00");
        assert_eq!(rows[0].subsidy.to_string(), "100.00");
        assert_eq!(rows[0].line, 2);
        let english = table("Invoice Number,issue_date,AMOUNT,subsidy\nINV-1,20260305,1000,100\n");
        assert_eq!(invoice_rows(&english).expect("rows").0, rows);
    }

    #[test]
    fn a_missing_column_refuses_the_file_and_a_missing_cell_the_row() {
        assert!(matches!(
            invoice_rows(&table("发票号码,开票日期,金额\nINV-1,2026-03-05,1\n")),
            Err(ReconcileError::MissingColumn {
                column: "subsidy",
                ..
            })
        ));
        let (rows, errors) = invoice_rows(&table(
            "发票号码,开票日期,金额,补贴\nINV-1,2026-03-05,1,0\nINV-2,2026-03-05,1\n",
        ))
        .expect("one good row");
        assert_eq!(rows.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (3, "subsidy"));
    }

    #[test]
    fn only_bad_rows_or_no_rows_refuse_the_file() {
        assert!(matches!(
            invoice_rows(&table(
                "发票号码,开票日期,金额,补贴\nINV-1,2026-13-05,1,0\n"
            )),
            Err(ReconcileError::OnlyBadRows { row_errors: 1, .. })
        ));
        assert!(matches!(
            invoice_rows(&table("发票号码,开票日期,金额,补贴\n\n")),
            Err(ReconcileError::NoDataRows)
        ));
        assert!(matches!(
            invoice_rows(&table("")),
            Err(ReconcileError::NoDataRows)
        ));
    }

    #[test]
    fn payment_rows_check_the_uscc() {
        let (rows, errors) = payment_rows(&table(
            "流水号,收款方统一社会信用代码,收款方名称,金额,起息日\n\
             R-1,91330100MA2H00001P,算力中心,\"1,000.00\",2026/04/01\n\
             R-2,91330100MA2H00001Q,算力中心,1.00,2026-04-01\n",
        ))
        .expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].payee.as_str(), "91330100MA2H00001P");
        assert_eq!((errors[0].line, errors[0].column), (3, "payee_uscc"));
    }
}
