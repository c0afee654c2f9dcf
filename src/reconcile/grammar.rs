//! The grammar of the values an imported file may hold: amounts, dates, identifiers.
//!
//! A file's amounts are read in two steps. First the forms people and banks actually
//! write are brought to the project's one strict grammar: full-width digits and
//! punctuation through NFKC (`１，２３４．５０` is `1,234.50`), surrounding white space
//! trimmed, and thousands separators removed when, and only when, they group the integer
//! part in threes (`1,234,567.89`). Then [`Money::parse`] decides, as for every other entry
//! point. Anything else — `1.234,50`, `1,23`, `12,3456`, a space inside, a sign, an
//! exponent, a currency sign — is a row error: a reconciliation that guessed would prove
//! nothing.
//!
//! Dates are `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD`, or a spreadsheet's date cell.

use unicode_normalization::UnicodeNormalization;

use crate::domain::{Date, Money};

/// One cell of a table read from a file, as the file typed it.
#[derive(Clone, PartialEq, Debug)]
pub enum Cell {
    Empty,
    Text(String),
    /// A spreadsheet's number cell.
    Number(f64),
    /// A spreadsheet's integer cell.
    Integer(i64),
    /// A spreadsheet's date cell, as the days since 1899-12-30 (the 1900 system) it
    /// stores; a fraction is a time of day.
    Date(f64),
}

impl Cell {
    /// The cell as text for a message (what the person sees in the file).
    pub fn shown(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Number(number) => number.to_string(),
            Cell::Integer(integer) => integer.to_string(),
            Cell::Date(serial) => format!("date cell {serial}"),
        }
    }

    /// True when the cell holds nothing but white space.
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => normalized(text).is_empty(),
            _ => false,
        }
    }
}

/// NFKC (full-width forms to ASCII, the ideographic space to a space), trimmed.
pub fn normalized(text: &str) -> String {
    let folded: String = text.nfkc().collect();
    folded.trim().to_owned()
}

/// Reads an amount of yuan from a text, see the module doc. The error says why.
pub fn parse_amount_text(field: &'static str, text: &str) -> Result<Money, String> {
    let value = normalized(text);
    if value.is_empty() {
        return Err("is empty".into());
    }
    let plain = match value.split_once('.') {
        Some((integer, decimals)) if integer.contains(',') => {
            format!("{}.{decimals}", ungroup(integer, &value)?)
        }
        None if value.contains(',') => ungroup(&value, &value)?,
        _ => value.clone(),
    };
    if plain.contains(',') {
        // A comma after the decimal point: `1.234,50` (decimal comma) or worse.
        return Err(format!(
            "{value:?} has a comma after the decimal point (a decimal comma is ambiguous)"
        ));
    }
    Money::parse(field, &plain).map_err(|error| error.reason)
}

/// `1,234,567` → `1234567` when the groups are exactly three digits after a first group
/// of one to three digits (no leading zero); anything else is ambiguous.
fn ungroup(integer: &str, whole: &str) -> Result<String, String> {
    let mut groups = integer.split(',');
    let first = groups.next().unwrap_or("");
    let digits = |group: &str| group.bytes().all(|byte| byte.is_ascii_digit());
    let first_ok = (1..=3).contains(&first.len()) && digits(first) && !(first.starts_with('0'));
    let rest: Vec<&str> = groups.collect();
    if !first_ok || rest.is_empty() || rest.iter().any(|group| group.len() != 3 || !digits(group)) {
        return Err(format!(
            "{whole:?} has thousands separators that do not group digits in threes (such as 1,234.50)"
        ));
    }
    Ok(std::iter::once(first).chain(rest).collect())
}

/// Reads an amount from a cell: text as [`parse_amount_text`]; a number cell by its
/// shortest decimal form (so `1234.5` is 1234.50, and `0.30000000000000004`, three
/// decimals or more, is refused rather than rounded).
pub fn parse_amount_cell(field: &'static str, cell: &Cell) -> Result<Money, String> {
    match cell {
        Cell::Empty => Err("is empty".into()),
        Cell::Text(text) => parse_amount_text(field, text),
        Cell::Integer(integer) => {
            Money::parse(field, &integer.to_string()).map_err(|error| error.reason)
        }
        Cell::Number(number) => {
            if !number.is_finite() {
                return Err(format!("{number} is not an amount"));
            }
            // Rust prints an f64 as the shortest text that reads back as the same number.
            Money::parse(field, &number.to_string()).map_err(|error| error.reason)
        }
        Cell::Date(serial) => Err(format!("is a date cell ({serial}), not an amount")),
    }
}

/// Reads a date from a text: `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD` (full-width forms
/// folded first).
pub fn parse_date_text(field: &'static str, text: &str) -> Result<Date, String> {
    let value = normalized(text);
    let canonical = if value.len() == 8 && value.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("{}-{}-{}", &value[..4], &value[4..6], &value[6..])
    } else if value.len() == 10 && value.as_bytes()[4] == b'/' && value.as_bytes()[7] == b'/' {
        value.replace('/', "-")
    } else {
        value.clone()
    };
    Date::parse(field, &canonical)
        .map_err(|_| format!("{value:?} is not a date like 2026-03-31, 2026/03/31 or 20260331"))
}

/// Days from 1899-12-30 (day 0 of the spreadsheets' 1900 date system) to 1970-01-01.
const SPREADSHEET_EPOCH_OFFSET_DAYS: i64 = 25_569;

/// Reads a date from a cell: text as [`parse_date_text`]; a date cell of a whole day.
/// A number cell is refused: `20260331` typed as a number is ambiguous with a serial.
pub fn parse_date_cell(field: &'static str, cell: &Cell) -> Result<Date, String> {
    match cell {
        Cell::Empty => Err("is empty".into()),
        Cell::Text(text) => parse_date_text(field, text),
        Cell::Date(serial) => {
            if !serial.is_finite() || serial.fract() != 0.0 || *serial < 1.0 {
                return Err(format!(
                    "date cell {serial} is not a whole day (a time of day is not a date)"
                ));
            }
            let days = *serial as i64 - SPREADSHEET_EPOCH_OFFSET_DAYS;
            let days =
                i32::try_from(days).map_err(|_| format!("date cell {serial} is out of range"))?;
            let date = Date::from_days_since_epoch(days);
            let (year, month, day) = date.year_month_day();
            Date::from_ymd(year, month, day)
                .map_err(|_| format!("date cell {serial} is outside the years 1970 to 9999"))
        }
        Cell::Number(_) | Cell::Integer(_) => Err(format!(
            "{} is a number cell, not a date (type it as 2026-03-31 or format it as a date)",
            cell.shown()
        )),
    }
}

/// A text cell's value, NFKC-folded and trimmed; numbers are refused for identifiers
/// only when they are not whole (an invoice number typed as a number keeps its digits).
pub fn text_of(cell: &Cell) -> Result<String, String> {
    match cell {
        Cell::Empty => Err("is empty".into()),
        Cell::Text(text) => {
            let value = normalized(text);
            if value.is_empty() {
                Err("is empty".into())
            } else {
                Ok(value)
            }
        }
        Cell::Integer(integer) => Ok(integer.to_string()),
        Cell::Number(number)
            if number.is_finite() && number.fract() == 0.0 && number.abs() < 1e15 =>
        {
            Ok(format!("{number:.0}"))
        }
        Cell::Number(number) => Err(format!("{number} is a number cell, not an identifier")),
        Cell::Date(serial) => Err(format!("is a date cell ({serial}), not text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str) -> Result<String, String> {
        parse_amount_text("amount", text).map(|money| money.to_string())
    }

    #[test]
    fn amount_grammar_table() {
        let accepted = [
            ("1234.50", "1234.50"),
            ("0", "0.00"),
            ("0.5", "0.50"),
            ("1,234.50", "1234.50"),
            ("1,234", "1234.00"),
            ("12,345,678.9", "12345678.90"),
            ("999,999", "999999.00"),
            ("  1,234.50\u{3000}", "1234.50"),
            ("１，２３４．５０", "1234.50"),
            ("１２３４", "1234.00"),
        ];
        for (text, expected) in accepted {
            assert_eq!(amount(text).as_deref(), Ok(expected), "{text:?}");
        }
        let refused = [
            "1.234,50",
            "1,23",
            "12,3456",
            "1,2345.00",
            ",123",
            "1,,234",
            "0,123",
            "1 234.50",
            "-5.00",
            "+5.00",
            "1e3",
            "1.5E2",
            "1.234",
            "¥1,234.50",
            "1234.",
            ".5",
            "",
            "   ",
            "1，234。50",
            "01234",
            "1,234.50,00",
            "NaN",
        ];
        for text in refused {
            assert!(
                amount(text).is_err(),
                "{text:?} must be refused, got {:?}",
                amount(text)
            );
        }
    }

    #[test]
    fn amount_cells_keep_fen_exact_and_refuse_fractions_of_a_fen() {
        let cell = |cell: Cell| parse_amount_cell("amount", &cell).map(|money| money.to_string());
        assert_eq!(cell(Cell::Number(1234.5)).as_deref(), Ok("1234.50"));
        assert_eq!(cell(Cell::Number(0.1 + 0.2)).ok(), None);
        assert_eq!(cell(Cell::Integer(88)).as_deref(), Ok("88.00"));
        assert!(cell(Cell::Number(-1.0)).is_err());
        assert!(cell(Cell::Number(f64::NAN)).is_err());
        assert!(cell(Cell::Date(46000.0)).is_err());
        assert!(cell(Cell::Empty).is_err());
    }

    #[test]
    fn date_grammar_table() {
        let date = |text: &str| parse_date_text("date", text).map(|date| date.to_string());
        for (text, expected) in [
            ("2026-03-05", "2026-03-05"),
            ("2026/03/05", "2026-03-05"),
            ("20260305", "2026-03-05"),
            (" ２０２６－０３－０５ ", "2026-03-05"),
            ("2028-02-29", "2028-02-29"),
        ] {
            assert_eq!(date(text).as_deref(), Ok(expected), "{text:?}");
        }
        for text in [
            "2026-3-5",
            "2026.03.05",
            "05/03/2026",
            "03/05/2026",
            "2026-02-30",
            "2026/03-05",
            "2026年3月5日",
            "260305",
            "",
            "2026-03-05T00:00:00",
        ] {
            assert!(date(text).is_err(), "{text:?} must be refused");
        }
        // 2026-03-05 is day 46086 of the 1900 date system.
        let cell = |cell: Cell| parse_date_cell("date", &cell).map(|date| date.to_string());
        assert_eq!(cell(Cell::Date(46086.0)).as_deref(), Ok("2026-03-05"));
        assert!(cell(Cell::Date(46086.5)).is_err());
        assert!(cell(Cell::Integer(20260305)).is_err());
        assert!(cell(Cell::Number(46086.0)).is_err());
    }

    #[test]
    fn identifiers_from_cells() {
        assert_eq!(text_of(&Cell::Integer(12345)).as_deref(), Ok("12345"));
        assert_eq!(
            text_of(&Cell::Number(26332000000.0)).as_deref(),
            Ok("26332000000")
        );
        assert!(text_of(&Cell::Number(1.5)).is_err());
        assert!(text_of(&Cell::Text("  ".into())).is_err());
        assert_eq!(
            text_of(&Cell::Text(" ＩＮＶ－１ ".into())).as_deref(),
            Ok("INV-1")
        );
    }
}
