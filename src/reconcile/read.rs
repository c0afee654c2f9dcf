//! Reading an imported file into a table of cells, each row with the line a person finds
//! it on: the format is told by the content (magic bytes), never by a flag or the name.
//!
//! | first bytes | format | line number of a row |
//! |---|---|---|
//! | `PK\x03\x04` (a zip) | XLSX, first sheet | the spreadsheet's row number |
//! | `D0 CF 11 E0 A1 B1 1A E1` (OLE2) | XLS, first sheet | the spreadsheet's row number |
//! | `<?xml` or `<Document` (after a BOM and white space) | ISO 20022 camt.053 | the line its `TxDtls` (or `Ntry`) starts on |
//! | anything else | CSV | the line the record starts on |
//!
//! A CSV's encoding is detected: a UTF-8 BOM, or the whole file valid UTF-8, is UTF-8;
//! else the whole file valid GB18030 (a superset of GBK) is GB18030. A file valid in
//! neither is read in the one that decodes more of its lines (UTF-8 on a tie); each line
//! that does not decode in it becomes a row error naming its first bad byte, and a header
//! that does not decode refuses the file.

use std::io::Cursor;

use calamine::{Data, Reader};
use quick_xml::events::Event as XmlEvent;

use super::grammar::Cell;
use super::{FileEncoding, FileFormat, ReconcileError};
use crate::limits::RECONCILIATION_COLUMNS_MAX;

/// A table as read from a file: its first row is the header.
#[derive(Clone, Debug)]
pub struct Table {
    pub format: FileFormat,
    pub encoding: FileEncoding,
    pub rows: Vec<TableRow>,
}

#[derive(Clone, Debug)]
pub struct TableRow {
    /// The line (CSV, XML) or row (spreadsheet) number, from 1.
    pub line: u32,
    pub cells: Result<Vec<Cell>, String>,
}

/// Tells the format from the first bytes.
pub fn detect_format(bytes: &[u8]) -> FileFormat {
    if bytes.starts_with(b"PK\x03\x04") {
        return FileFormat::Xlsx;
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return FileFormat::Xls;
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if text.starts_with(b"<?xml") || text.starts_with(b"<Document") {
        return FileFormat::Camt053;
    }
    FileFormat::Csv
}

/// Reads the file's table. `row_limit` bounds the rows read (the header included).
pub fn read_table(bytes: &[u8], row_limit: usize) -> Result<Table, ReconcileError> {
    match detect_format(bytes) {
        FileFormat::Csv => read_csv(bytes, row_limit),
        format @ (FileFormat::Xlsx | FileFormat::Xls) => read_workbook(bytes, format, row_limit),
        FileFormat::Camt053 => read_camt053(bytes, row_limit),
    }
}

fn too_many_rows(row_limit: usize) -> ReconcileError {
    ReconcileError::TooManyRows { limit: row_limit }
}

// ----------------------------------------------------------------------------- CSV

/// Where the first invalid byte of `line` is in `encoding`, if any.
fn first_bad_byte(line: &[u8], encoding: FileEncoding) -> Option<usize> {
    match encoding {
        FileEncoding::Gb18030 => {
            let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
            let mut output = String::with_capacity(line.len() * 3 + 8);
            let (result, read) =
                decoder.decode_to_string_without_replacement(line, &mut output, true);
            match result {
                // `read` counts the malformed bytes and those consumed after them.
                encoding_rs::DecoderResult::Malformed(bad, after) => {
                    Some(read.saturating_sub(usize::from(bad) + usize::from(after)))
                }
                _ => None,
            }
        }
        _ => std::str::from_utf8(line)
            .err()
            .map(|error| error.valid_up_to()),
    }
}

fn decode_line(line: &[u8], encoding: FileEncoding) -> String {
    match encoding {
        FileEncoding::Gb18030 => encoding_rs::GB18030
            .decode_without_bom_handling(line)
            .0
            .into_owned(),
        _ => String::from_utf8_lossy(line).into_owned(),
    }
}

/// Splits on `\n`: neither UTF-8 nor GB18030 has 0x0A inside a multi-byte character.
fn physical_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
    if lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines
}

/// Detects the encoding (see the module doc). Returns it and, per physical line, the
/// offset in the file of its first bad byte when it does not decode.
fn detect_encoding(bytes: &[u8]) -> (FileEncoding, Vec<Option<usize>>) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        let bad = line_errors(rest, FileEncoding::Utf8Bom, 3);
        return (FileEncoding::Utf8Bom, bad);
    }
    let lines = physical_lines(bytes);
    if std::str::from_utf8(bytes).is_ok() {
        return (FileEncoding::Utf8, vec![None; lines.len()]);
    }
    let utf8 = line_errors(bytes, FileEncoding::Utf8, 0);
    let gb18030 = line_errors(bytes, FileEncoding::Gb18030, 0);
    let good = |errors: &[Option<usize>]| errors.iter().filter(|bad| bad.is_none()).count();
    if good(&gb18030) > good(&utf8) {
        (FileEncoding::Gb18030, gb18030)
    } else {
        (FileEncoding::Utf8, utf8)
    }
}

fn line_errors(bytes: &[u8], encoding: FileEncoding, base: usize) -> Vec<Option<usize>> {
    let mut offset = base;
    physical_lines(bytes)
        .into_iter()
        .map(|line| {
            let bad = first_bad_byte(line, encoding).map(|at| offset + at);
            offset += line.len() + 1;
            bad
        })
        .collect()
}

fn read_csv(bytes: &[u8], row_limit: usize) -> Result<Table, ReconcileError> {
    let (encoding, bad_lines) = detect_encoding(bytes);
    let body = match encoding {
        FileEncoding::Utf8Bom => &bytes[3..],
        _ => bytes,
    };
    // Each physical line decoded on its own, so one badly encoded line spoils only its
    // own row; the lines are joined again for the CSV parser (quoted fields may span
    // lines).
    let mut text = String::with_capacity(body.len() + body.len() / 2);
    for line in physical_lines(body) {
        text.push_str(&decode_line(line, encoding));
        text.push('\n');
    }
    // Where each line starts in the decoded text: a record's line is found from its byte
    // offset (the parser's own line count is not the file's line number).
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            text.bytes()
                .enumerate()
                .filter(|(_, byte)| *byte == b'\n')
                .map(|(index, _)| index + 1),
        )
        .collect();
    let line_of = |offset: u64| -> usize {
        // The parser may place a record after the `\r` of the line before: a record
        // starts at its first byte that is not a line end.
        let mut offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        while matches!(text.as_bytes().get(offset), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        line_starts.partition_point(|start| *start <= offset)
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = error
                    .position()
                    .map_or(0, |position| line_of(position.byte()));
                return Err(ReconcileError::Malformed(format!(
                    "CSV line {line}: {error}"
                )));
            }
        }
        let line = record
            .position()
            .map_or(0, |position| line_of(position.byte()));
        let line_u32 = u32::try_from(line).unwrap_or(u32::MAX);
        let cells: Vec<Cell> = record
            .iter()
            .map(|field| Cell::Text(field.to_owned()))
            .collect();
        if cells.iter().all(Cell::is_blank) {
            continue;
        }
        if rows.len() >= row_limit {
            return Err(too_many_rows(row_limit));
        }
        let bad = bad_lines.get(line.saturating_sub(1)).copied().flatten();
        let cells = match bad {
            Some(offset) => Err(format!(
                "is not valid {} (first bad byte at file offset {offset})",
                encoding.name()
            )),
            None => Ok(cells),
        };
        if rows.is_empty() {
            if let Err(reason) = &cells {
                return Err(ReconcileError::Encoding(format!(
                    "the header (line {line}) {reason}: the file is neither UTF-8 nor GB18030"
                )));
            }
        }
        rows.push(TableRow {
            line: line_u32,
            cells,
        });
    }
    Ok(Table {
        format: FileFormat::Csv,
        encoding,
        rows,
    })
}

// ----------------------------------------------------------------------- workbooks

fn read_workbook(
    bytes: &[u8],
    format: FileFormat,
    row_limit: usize,
) -> Result<Table, ReconcileError> {
    match format {
        FileFormat::Xls => read_xls(bytes, row_limit),
        _ => read_xlsx(bytes, row_limit),
    }
}

/// XLSX, streamed cell by cell: a dense range would allocate every cell between A1 and
/// the farthest one, so a few bytes naming cell XFD1048576 could ask for gigabytes. Rows
/// are bounded by `row_limit`, columns by [`RECONCILIATION_COLUMNS_MAX`] (cells to the
/// right of it are not read: no column the import needs is that far).
fn read_xlsx(bytes: &[u8], row_limit: usize) -> Result<Table, ReconcileError> {
    let malformed = |error: calamine::XlsxError| {
        ReconcileError::Malformed(format!("not a readable XLSX workbook: {error}"))
    };
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes)).map_err(malformed)?;
    let first = workbook
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| ReconcileError::Malformed("the workbook has no sheet".into()))?;
    let mut reader = workbook.worksheet_cells_reader(&first).map_err(malformed)?;
    let mut rows: Vec<TableRow> = Vec::new();
    let mut current: Option<(u32, Vec<Cell>)> = None;
    let finish = |row: Option<(u32, Vec<Cell>)>, rows: &mut Vec<TableRow>| {
        if let Some((index, cells)) = row {
            if cells.iter().all(Cell::is_blank) {
                return Ok(());
            }
            if rows.len() >= row_limit {
                return Err(too_many_rows(row_limit));
            }
            rows.push(TableRow {
                line: index.saturating_add(1),
                cells: Ok(cells),
            });
        }
        Ok(())
    };
    while let Some(cell) = reader.next_cell().map_err(malformed)? {
        let (row, column) = cell.get_position();
        let Ok(column) = usize::try_from(column) else {
            continue;
        };
        if column >= RECONCILIATION_COLUMNS_MAX {
            continue;
        }
        if current.as_ref().is_none_or(|(index, _)| *index != row) {
            finish(current.take(), &mut rows)?;
            current = Some((row, Vec::new()));
        }
        if let Some((_, cells)) = current.as_mut() {
            if cells.len() <= column {
                cells.resize(column + 1, Cell::Empty);
            }
            cells[column] = cell_of_ref(cell.get_value());
        }
    }
    finish(current.take(), &mut rows)?;
    Ok(Table {
        format: FileFormat::Xlsx,
        encoding: FileEncoding::Binary,
        rows,
    })
}

/// XLS (BIFF8): at most 65,536 rows of 256 columns by the format itself, so its dense
/// range is bounded.
fn read_xls(bytes: &[u8], row_limit: usize) -> Result<Table, ReconcileError> {
    let mut workbook = calamine::Xls::new(Cursor::new(bytes)).map_err(|error| {
        ReconcileError::Malformed(format!("not a readable XLS workbook: {error}"))
    })?;
    let range = first_sheet(&mut workbook)?;
    let first_row = range.start().map_or(0, |(row, _)| row);
    let mut rows = Vec::new();
    for (index, row) in range.rows().enumerate() {
        let cells: Vec<Cell> = row
            .iter()
            .take(RECONCILIATION_COLUMNS_MAX)
            .map(cell_of)
            .collect();
        if cells.iter().all(Cell::is_blank) {
            continue;
        }
        if rows.len() >= row_limit {
            return Err(too_many_rows(row_limit));
        }
        let number = u64::from(first_row) + index as u64 + 1;
        rows.push(TableRow {
            line: u32::try_from(number).unwrap_or(u32::MAX),
            cells: Ok(cells),
        });
    }
    Ok(Table {
        format: FileFormat::Xls,
        encoding: FileEncoding::Binary,
        rows,
    })
}

fn cell_of_ref(data: &calamine::DataRef<'_>) -> Cell {
    use calamine::DataRef;
    match data {
        DataRef::Empty => Cell::Empty,
        DataRef::String(text) => Cell::Text(text.clone()),
        DataRef::SharedString(text) => Cell::Text((*text).to_owned()),
        DataRef::Int(integer) => Cell::Integer(*integer),
        DataRef::Float(number) => Cell::Number(*number),
        DataRef::DateTime(date) => Cell::Date(date.as_f64()),
        DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => Cell::Text(text.clone()),
        DataRef::Bool(value) => Cell::Text(value.to_string()),
        DataRef::Error(error) => Cell::Text(format!("#{error:?}")),
    }
}

fn first_sheet<R, W>(workbook: &mut W) -> Result<calamine::Range<Data>, ReconcileError>
where
    R: std::io::Read + std::io::Seek,
    W: Reader<R>,
    W::Error: std::fmt::Display,
{
    match workbook.worksheet_range_at(0) {
        Some(Ok(range)) => Ok(range),
        Some(Err(error)) => Err(ReconcileError::Malformed(format!(
            "the first sheet does not read: {error}"
        ))),
        None => Err(ReconcileError::Malformed(
            "the workbook has no sheet".into(),
        )),
    }
}

fn cell_of(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::String(text) => Cell::Text(text.clone()),
        Data::Int(integer) => Cell::Integer(*integer),
        Data::Float(number) => Cell::Number(*number),
        Data::DateTime(date) => Cell::Date(date.as_f64()),
        Data::DateTimeIso(text) | Data::DurationIso(text) => Cell::Text(text.clone()),
        Data::Bool(value) => Cell::Text(value.to_string()),
        Data::Error(error) => Cell::Text(format!("#{error:?}")),
    }
}

// ----------------------------------------------------------------------- camt.053

/// The columns a camt.053 entry is read into, in this order (the bank file's English
/// header names, see `rows`).
pub const CAMT_COLUMNS: [&str; 6] = [
    "bank_reference",
    "payee_uscc",
    "payee_name",
    "amount",
    "value_date",
    "credit_debit",
];

#[derive(Default, Clone)]
struct CamtValues {
    line: u32,
    account_servicer_reference: Option<String>,
    end_to_end_id: Option<String>,
    amount: Option<String>,
    value_date: Option<String>,
    credit_debit: Option<String>,
    creditor_name: Option<String>,
    creditor_id: Option<String>,
}

/// ISO 20022 camt.053: one row per `Ntry/NtryDtls/TxDtls` (or per `Ntry` without any),
/// the transaction's values first, the entry's where the transaction has none. The bank
/// reference is `AcctSvcrRef`, else `EndToEndId`; the payee is `RltdPties/Cdtr` (`Nm`,
/// and the USCC in `Id/OrgId/Othr/Id`, also under `Pty` as camt.053.001.08 nests it).
fn read_camt053(bytes: &[u8], row_limit: usize) -> Result<Table, ReconcileError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(body).map_err(|error| {
        ReconcileError::Encoding(format!(
            "the camt.053 file is not valid UTF-8 (first bad byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    // Offsets only grow, so lines are counted once over the file, not once per element.
    let mut counted_to = 0usize;
    let mut newlines = 0usize;
    let mut line_at = |offset: usize| -> u32 {
        let end = offset.min(text.len()).max(counted_to);
        newlines += text.as_bytes()[counted_to..end]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count();
        counted_to = end;
        u32::try_from(newlines + 1).unwrap_or(u32::MAX)
    };
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut entry: Option<CamtValues> = None;
    let mut transactions: Vec<CamtValues> = Vec::new();
    let mut transaction: Option<CamtValues> = None;
    let mut rows = vec![TableRow {
        line: 0,
        cells: Ok(CAMT_COLUMNS
            .iter()
            .map(|name| Cell::Text((*name).to_owned()))
            .collect()),
    }];
    let mut saw_document = false;
    loop {
        let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                return Err(ReconcileError::Malformed(format!(
                    "camt.053 XML does not parse at line {}: {error}",
                    line_at(position)
                )))
            }
        };
        // A start tag's line is the line its `>` is on (the position after reading it):
        // the position before may still be on the line of the element before.
        let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            XmlEvent::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if name == "Document" {
                    saw_document = true;
                }
                if name == "Ntry" {
                    entry = Some(CamtValues {
                        line: line_at(position),
                        ..CamtValues::default()
                    });
                    transactions.clear();
                }
                if name == "TxDtls" {
                    transaction = Some(CamtValues {
                        line: line_at(position),
                        ..CamtValues::default()
                    });
                }
                path.push(name);
            }
            XmlEvent::End(_) => {
                let name = path.pop().unwrap_or_default();
                if name == "TxDtls" {
                    if let Some(done) = transaction.take() {
                        transactions.push(done);
                    }
                }
                if name == "Ntry" {
                    if let Some(done) = entry.take() {
                        let singles = if transactions.is_empty() {
                            vec![CamtValues::default()]
                        } else {
                            std::mem::take(&mut transactions)
                        };
                        for single in singles {
                            if rows.len() > row_limit {
                                return Err(too_many_rows(row_limit));
                            }
                            rows.push(camt_row(&done, single));
                        }
                    }
                }
            }
            XmlEvent::Text(content) => {
                let value = content
                    .decode()
                    .map_err(|error| {
                        ReconcileError::Malformed(format!(
                            "camt.053 text at line {} does not read: {error}",
                            line_at(position)
                        ))
                    })?
                    .into_owned();
                let target = match transaction.as_mut() {
                    Some(transaction) => Some(transaction),
                    None => entry.as_mut(),
                };
                if let Some(values) = target {
                    assign_camt_value(values, &path, value);
                }
            }
            XmlEvent::GeneralRef(reference) => {
                // `&amp;` and friends inside a name: resolved and appended.
                let name = String::from_utf8_lossy(reference.as_ref()).into_owned();
                let resolved = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                let target = match transaction.as_mut() {
                    Some(transaction) => Some(transaction),
                    None => entry.as_mut(),
                };
                if let Some(values) = target {
                    if path.last().is_some_and(|last| last == "Nm") {
                        let name = values.creditor_name.get_or_insert_with(String::new);
                        name.push_str(resolved);
                    }
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !saw_document {
        return Err(ReconcileError::Malformed(
            "the XML file has no ISO 20022 <Document> element (camt.053 expected)".into(),
        ));
    }
    Ok(Table {
        format: FileFormat::Camt053,
        encoding: FileEncoding::Utf8,
        rows,
    })
}

fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(have, want)| have == want)
}

fn assign_camt_value(values: &mut CamtValues, path: &[String], value: String) {
    let in_creditor = path.iter().any(|element| element == "Cdtr");
    if ends_with(path, &["AcctSvcrRef"]) {
        values.account_servicer_reference = Some(value);
    } else if ends_with(path, &["Refs", "EndToEndId"]) {
        values.end_to_end_id = Some(value);
    } else if ends_with(path, &["Amt"]) && !path.iter().any(|element| element == "AmtDtls") {
        values.amount = Some(value);
    } else if ends_with(path, &["ValDt", "Dt"]) {
        values.value_date = Some(value);
    } else if ends_with(path, &["ValDt", "DtTm"]) {
        values.value_date = Some(value.chars().take(10).collect());
    } else if ends_with(path, &["CdtDbtInd"]) {
        values.credit_debit = Some(value);
    } else if in_creditor && ends_with(path, &["Nm"]) {
        match values.creditor_name.as_mut() {
            Some(name) => name.push_str(&value),
            None => values.creditor_name = Some(value),
        }
    } else if in_creditor && ends_with(path, &["Othr", "Id"]) {
        values.creditor_id = Some(value);
    }
}

fn camt_row(entry: &CamtValues, transaction: CamtValues) -> TableRow {
    let pick = |own: Option<String>, fallback: &Option<String>| own.or_else(|| fallback.clone());
    let line = if transaction.line > 0 {
        transaction.line
    } else {
        entry.line
    };
    let reference = transaction
        .account_servicer_reference
        .or(transaction.end_to_end_id)
        .or_else(|| entry.account_servicer_reference.clone())
        .or_else(|| entry.end_to_end_id.clone());
    let cell = |value: Option<String>| value.map_or(Cell::Empty, Cell::Text);
    TableRow {
        line,
        cells: Ok(vec![
            cell(reference),
            cell(pick(transaction.creditor_id, &entry.creditor_id)),
            cell(pick(transaction.creditor_name, &entry.creditor_name)),
            cell(pick(transaction.amount, &entry.amount)),
            cell(pick(transaction.value_date, &entry.value_date)),
            cell(pick(transaction.credit_debit, &entry.credit_debit)),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content() {
        assert_eq!(detect_format(b"PK\x03\x04rest"), FileFormat::Xlsx);
        assert_eq!(
            detect_format(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]),
            FileFormat::Xls
        );
        assert_eq!(
            detect_format(b"\xEF\xBB\xBF  <?xml version"),
            FileFormat::Camt053
        );
        assert_eq!(detect_format(b"<Document xmlns"), FileFormat::Camt053);
        assert_eq!(detect_format("发票号码,金额".as_bytes()), FileFormat::Csv);
    }

    #[test]
    fn encodings_are_detected_and_bad_lines_named() {
        let utf8 = "发票号码,金额\nA,1\n".as_bytes();
        assert_eq!(detect_encoding(utf8).0, FileEncoding::Utf8);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(utf8);
        assert_eq!(detect_encoding(&bom).0, FileEncoding::Utf8Bom);
        let (gbk, _, _) = encoding_rs::GBK.encode("发票号码,金额\nA,1\n");
        assert_eq!(detect_encoding(&gbk).0, FileEncoding::Gb18030);
        // A GBK file with one line of an undecodable byte: that line alone is bad.
        let mut mixed = gbk.to_vec();
        mixed.extend_from_slice(b"B,\xFF2\n");
        let (encoding, bad) = detect_encoding(&mixed);
        assert_eq!(encoding, FileEncoding::Gb18030);
        assert_eq!(bad, vec![None, None, Some(gbk.len() + 2)]);
        let table = read_csv(&mixed, 10).expect("reads");
        assert_eq!(table.rows.len(), 3);
        assert!(table.rows[2]
            .cells
            .as_ref()
            .is_err_and(|reason| reason.contains("GB18030")));
        assert_eq!(table.rows[2].line, 3);
        // A header that decodes in neither refuses the file.
        assert!(matches!(
            read_csv(b"\xFF\xFE,x\nA,1\n", 10),
            Err(ReconcileError::Encoding(_))
        ));
    }
}
