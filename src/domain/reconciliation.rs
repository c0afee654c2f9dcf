//! What the ledger records of a reconciliation: which file (its SM3 digest, name, format,
//! encoding, rows), of which kind, for which center and period (or year), and how many
//! lines of each discrepancy kind it found. Who and when are the record's origin and time.
//!
//! The report itself (every line) is not recorded: it can be 200,000 lines, and the log's
//! records are small. A re-import of the same file (same digest, kind and scope) is
//! answered with the recorded counts and the lines recomputed from the same bytes.
//! Reading the files and matching them is `crate::reconcile`; only the facts live here.

use std::fmt;
use std::sync::Arc;

use super::ids::{Date, ProgrammeYear, Uscc};
use super::text::check_text;
use super::validation::ValidationError;

/// The SM3 digest of an imported file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileDigest(pub [u8; 32]);

impl FileDigest {
    pub fn to_hex(self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Parses 64 hexadecimal digits.
    pub fn parse(field: &'static str, text: &str) -> Result<FileDigest, ValidationError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(ValidationError::new(
                field,
                text,
                "must be 64 hexadecimal digits (an SM3 digest)",
            ));
        }
        let mut digest = [0u8; 32];
        for (index, pair) in bytes.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            digest[index] = u8::from_str_radix(text, 16)
                .map_err(|_| ValidationError::new(field, text, "is not hexadecimal"))?;
        }
        Ok(FileDigest(digest))
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

/// The name an imported file had (for people; the digest identifies it).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(Arc<str>);

impl FileName {
    /// 1..=[`crate::limits::RECONCILIATION_FILE_NAME_MAX_BYTES`] bytes of text by the
    /// ledger's text rules (no control, format or bidi characters).
    pub fn parse(text: &str) -> Result<FileName, ValidationError> {
        let field = "file_name";
        if text.is_empty() {
            return Err(ValidationError::new(field, text, "must not be empty"));
        }
        if text.len() > crate::limits::RECONCILIATION_FILE_NAME_MAX_BYTES {
            return Err(ValidationError::new(
                field,
                text,
                format!(
                    "is {} bytes, longer than the limit of {}",
                    text.len(),
                    crate::limits::RECONCILIATION_FILE_NAME_MAX_BYTES
                ),
            ));
        }
        check_text(text).map_err(|reason| ValidationError::new(field, text, reason))?;
        Ok(FileName(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:?}", &*self.0)
    }
}

/// The file format, told from the content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FileFormat {
    Csv,
    Xlsx,
    Xls,
    /// ISO 20022 camt.053 (bank to customer statement), XML.
    Camt053,
}

impl FileFormat {
    pub const ALL: [FileFormat; 4] = [
        FileFormat::Csv,
        FileFormat::Xlsx,
        FileFormat::Xls,
        FileFormat::Camt053,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Xlsx => "xlsx",
            FileFormat::Xls => "xls",
            FileFormat::Camt053 => "camt.053",
        }
    }
}

/// The text encoding of the file, detected.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FileEncoding {
    Utf8,
    /// UTF-8 with a byte order mark (as Excel writes it).
    Utf8Bom,
    /// GB18030, which includes GBK and GB2312.
    Gb18030,
    /// A spreadsheet: its text is Unicode inside the container.
    Binary,
}

impl FileEncoding {
    pub const ALL: [FileEncoding; 4] = [
        FileEncoding::Utf8,
        FileEncoding::Utf8Bom,
        FileEncoding::Gb18030,
        FileEncoding::Binary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileEncoding::Utf8 => "UTF-8",
            FileEncoding::Utf8Bom => "UTF-8 with BOM",
            FileEncoding::Gb18030 => "GB18030",
            FileEncoding::Binary => "binary (spreadsheet)",
        }
    }
}

/// What was reconciled with what.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ReconciliationScope {
    /// A center's own invoice list against its invoices issued `from..=to`.
    CenterInvoices { center: Uscc, from: Date, to: Date },
    /// The bank's payment file against a programme year's statements and payments.
    BankPayments { year: ProgrammeYear },
}

impl ReconciliationScope {
    pub fn kind_name(&self) -> &'static str {
        match self {
            ReconciliationScope::CenterInvoices { .. } => "center_invoices",
            ReconciliationScope::BankPayments { .. } => "bank_payments",
        }
    }
}

impl fmt::Display for ReconciliationScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconciliationScope::CenterInvoices { center, from, to } => {
                write!(formatter, "center {center} invoices {from}..={to}")
            }
            ReconciliationScope::BankPayments { year } => {
                write!(formatter, "bank payments of {year}")
            }
        }
    }
}

macro_rules! discrepancy_kinds {
    ($($(#[$meta:meta])* $variant:ident = $number:literal, $name:literal;)+) => {
        /// The kinds of report line. Numbers are written in the log (append only).
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(u8)]
        pub enum DiscrepancyKind {
            $($(#[$meta])* $variant = $number,)+
        }

        impl DiscrepancyKind {
            pub const ALL: &'static [DiscrepancyKind] = &[$(DiscrepancyKind::$variant,)+];

            /// The stable name, e.g. `AMOUNT_MISMATCH`.
            pub fn name(self) -> &'static str {
                match self {
                    $(DiscrepancyKind::$variant => $name,)+
                }
            }

            pub fn number(self) -> u8 {
                self as u8
            }

            pub fn from_number(number: u8) -> Option<DiscrepancyKind> {
                match number {
                    $($number => Some(DiscrepancyKind::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

discrepancy_kinds! {
    /// Both sides agree.
    Matched = 0, "MATCHED";
    /// The ledger has it, the file does not (an invoice of the period; a payment the
    /// ledger confirmed is `StatementNotPaid`).
    InLedgerNotInFile = 1, "IN_LEDGER_NOT_IN_FILE";
    /// The file has an invoice the ledger does not.
    InFileNotInLedger = 2, "IN_FILE_NOT_IN_LEDGER";
    /// Same invoice or payment, different amounts.
    AmountMismatch = 3, "AMOUNT_MISMATCH";
    /// Same invoice, different subsidy.
    SubsidyMismatch = 4, "SUBSIDY_MISMATCH";
    /// The ledger reversed the invoice; the file still claims it.
    ReversedButClaimed = 5, "REVERSED_BUT_CLAIMED";
    /// A bank payment the ledger knows no payment of a statement for.
    PaymentWithoutStatement = 6, "PAYMENT_WITHOUT_STATEMENT";
    /// A bank payment of a statement the ledger holds as paid by another reference.
    StatementPaidTwice = 7, "STATEMENT_PAID_TWICE";
    /// The ledger holds the statement as paid (by a reference) that the bank file lacks.
    StatementNotPaid = 8, "STATEMENT_NOT_PAID";
    /// The same invoice number or bank reference twice in the file.
    DuplicateInFile = 9, "DUPLICATE_IN_FILE";
    /// Same payment, another payee than the statement's center.
    PayeeMismatch = 10, "PAYEE_MISMATCH";
    /// The bank file shows a payment the ledger recorded as returned by the bank.
    ReturnedButPaid = 11, "RETURNED_BUT_PAID";
}

/// How many report lines of each kind, and how many rows were read and refused.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DiscrepancyCounts {
    /// Non-zero counts only, in kind order.
    pub by_kind: Vec<(DiscrepancyKind, u64)>,
    /// Data rows read (the header not counted), good and bad.
    pub rows: u64,
    /// Rows refused as malformed.
    pub row_errors: u64,
}

impl DiscrepancyCounts {
    pub fn of(&self, kind: DiscrepancyKind) -> u64 {
        self.by_kind
            .iter()
            .find(|(have, _)| *have == kind)
            .map_or(0, |(_, count)| *count)
    }
}

/// The payload of a `ReconciliationRecorded` event (and of the command that records it).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReconciliationRecorded {
    pub digest: FileDigest,
    pub file_name: FileName,
    pub format: FileFormat,
    pub encoding: FileEncoding,
    pub scope: ReconciliationScope,
    pub counts: DiscrepancyCounts,
}

/// A recorded reconciliation as the projection keeps it. Who recorded it is the origin
/// of its record in the log (`apply` folds events, not origins).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReconciliationRecord {
    /// The sequence of its event: its id.
    pub sequence: u64,
    pub at: super::ids::Timestamp,
    pub reconciliation: ReconciliationRecorded,
}
