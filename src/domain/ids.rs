//! Identifiers and dates: USCC codes, voucher ids, contract and invoice numbers, dates,
//! timestamps and programme years. Each is checked in its constructor.

use std::fmt;
use std::str::FromStr;

use super::text::{canonical_identifier, check_text, is_canonical_identifier};
use super::validation::ValidationError;

/// The 31 characters of GB 32100-2015, in the order that gives each its value (I, O, Z, S
/// and V are left out so they cannot be confused with digits).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1..=17 (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn uscc_value(byte: u8) -> Option<u32> {
    USCC_ALPHABET
        .iter()
        .position(|candidate| *candidate == byte)
        .map(|position| position as u32)
}

fn uscc_check_character(body: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (byte, weight) in body.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(*byte)? * weight;
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_ALPHABET[check as usize])
}

/// A Unified Social Credit Code (统一社会信用代码): 18 characters from the GB 32100-2015
/// alphabet, the last one a check character over the first 17.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uscc([u8; 18]);

/// Byte order (as the derived order would be), compared as two big-endian integers:
/// codes key most of the ledger's ordered maps, and the derived order called `memcmp`
/// for every comparison (~2% of the server's CPU on the redemption path, issue 12).
impl Ord for Uscc {
    fn cmp(&self, other: &Uscc) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl PartialOrd for Uscc {
    fn partial_cmp(&self, other: &Uscc) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Uscc {
    /// Parses and validates a code for the field named `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<Uscc, ValidationError> {
        let bytes = text.as_bytes();
        if bytes.len() != 18 {
            return Err(ValidationError::new(
                field,
                text,
                format!("must be 18 characters, got {}", text.chars().count()),
            ));
        }
        if let Some(bad) = bytes.iter().find(|byte| uscc_value(**byte).is_none()) {
            return Err(ValidationError::new(
                field,
                text,
                format!(
                    "contains {:?}, outside the GB 32100-2015 alphabet 0-9 A-H J-N P-R T U W-Y",
                    char::from(*bad)
                ),
            ));
        }
        let expected = uscc_check_character(&bytes[..17])
            .ok_or_else(|| ValidationError::new(field, text, "invalid character"))?;
        if bytes[17] != expected {
            return Err(ValidationError::new(
                field,
                text,
                format!(
                    "has check character {:?}, expected {:?}",
                    char::from(bytes[17]),
                    char::from(expected)
                ),
            ));
        }
        let mut code = [0u8; 18];
        code.copy_from_slice(bytes);
        Ok(Uscc(code))
    }

    /// Completes a 17-character body with its check character. Used by the demo and tests
    /// to make valid codes; fails if the body has a character outside the alphabet.
    pub fn from_body(body: &str) -> Result<Uscc, ValidationError> {
        let bytes = body.as_bytes();
        if bytes.len() != 17 {
            return Err(ValidationError::new(
                "uscc",
                body,
                "body must be 17 characters",
            ));
        }
        let check = uscc_check_character(bytes)
            .ok_or_else(|| ValidationError::new("uscc", body, "outside the alphabet"))?;
        let mut code = [0u8; 18];
        code[..17].copy_from_slice(bytes);
        code[17] = check;
        Ok(Uscc(code))
    }

    pub fn as_bytes(&self) -> &[u8; 18] {
        &self.0
    }

    /// The code as (bytes 0..16, bytes 16..18), big-endian: integers that order as the
    /// bytes do.
    fn order_key(&self) -> (u128, u16) {
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17] =
            self.0;
        (
            u128::from_be_bytes([
                b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
            ]),
            u16::from_be_bytes([b16, b17]),
        )
    }

    pub fn as_str(&self) -> &str {
        // Only alphabet bytes (ASCII) are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??????????????????")
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Debug for Uscc {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Checks a text field against the rules every text of the ledger follows (see
/// [`super::text`]): 1..=`max` bytes, no control, format or bidi characters, no
/// surrounding white space.
fn check_field(field: &'static str, text: &str, max: usize) -> Result<(), ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::new(field, text, "must not be empty"));
    }
    if text.len() > max {
        return Err(ValidationError::new(
            field,
            text,
            format!("is {} bytes, longer than the limit of {max}", text.len()),
        ));
    }
    check_text(text).map_err(|reason| ValidationError::new(field, text, reason))
}

/// Defines a bounded text field (names, reasons, delivery proofs).
macro_rules! text_identifier {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$meta])*
        // `SmolStr`: the same text travels from command to event to projection, and a
        // clone is a copy (up to 23 bytes, held inline) or a reference-count increment
        // (longer text, shared). Short text needs no allocation at all: on the
        // redemption path an allocation made by a network thread and freed by the
        // ledger's writer cost more than the copy (issue 12).
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(smol_str::SmolStr);

        impl $name {
            pub const MAX_LENGTH: usize = $max;

            /// Accepts 1..=MAX_LENGTH bytes of visible text without surrounding spaces.
            pub fn parse(text: &str) -> Result<$name, ValidationError> {
                check_field($field, text, Self::MAX_LENGTH)?;
                Ok($name(text.into()))
            }

            /// Rebuilds a value the ledger stored. Records written before today's text
            /// rules must still read back, so only emptiness and length are checked.
            pub fn from_stored(text: &str) -> Result<$name, ValidationError> {
                if text.is_empty() || text.len() > Self::MAX_LENGTH {
                    return Err(ValidationError::new(
                        $field,
                        text,
                        format!("stored text must be 1..={} bytes", Self::MAX_LENGTH),
                    ));
                }
                Ok($name(text.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{:?}", &*self.0)
            }
        }
    };
}

/// Defines a number that identifies something (a contract, an invoice): compared in its
/// canonical form (NFKC, trimmed, ASCII upper case; see [`super::text`]), shown as typed.
macro_rules! canonical_identifier {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            /// The canonical form: what equality, ordering, hashing and keys use.
            /// `SmolStr` (see `text_identifier!`): up to 23 bytes inline, no allocation;
            /// a 20-digit e-invoice number or a code-and-number fits.
            canonical: smol_str::SmolStr,
            /// As typed, for display; shares the canonical text's allocation (if it has
            /// one) when it is already canonical.
            typed: smol_str::SmolStr,
        }

        impl $name {
            pub const MAX_LENGTH: usize = $max;

            /// Accepts 1..=MAX_LENGTH bytes of visible text; the canonical form must not
            /// be empty either.
            pub fn parse(text: &str) -> Result<$name, ValidationError> {
                check_field($field, text, Self::MAX_LENGTH)?;
                let built = $name::build(text);
                if built.canonical.is_empty() || built.canonical.len() > Self::MAX_LENGTH {
                    return Err(ValidationError::new(
                        $field,
                        text,
                        format!(
                            "its canonical form {:?} must be 1..={} bytes",
                            &*built.canonical,
                            Self::MAX_LENGTH
                        ),
                    ));
                }
                Ok(built)
            }

            /// Rebuilds a number the ledger stored (as typed). Records written before
            /// today's text rules must still read back, so only length is checked.
            pub fn from_stored(text: &str) -> Result<$name, ValidationError> {
                if text.is_empty() || text.len() > Self::MAX_LENGTH {
                    return Err(ValidationError::new(
                        $field,
                        text,
                        format!("stored text must be 1..={} bytes", Self::MAX_LENGTH),
                    ));
                }
                Ok($name::build(text))
            }

            fn build(text: &str) -> $name {
                let typed = smol_str::SmolStr::new(text);
                // Most numbers are typed in canonical form already: at most one allocation.
                let canonical = if is_canonical_identifier(text) {
                    typed.clone()
                } else {
                    canonical_identifier(text).into()
                };
                $name { canonical, typed }
            }

            /// The canonical form (what the ledger compares and keys on).
            pub fn as_str(&self) -> &str {
                &self.canonical
            }

            /// The number as it was typed.
            pub fn as_typed(&self) -> &str {
                &self.typed
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                self.canonical == other.canonical
            }
        }

        impl Eq for $name {}

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &$name) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &$name) -> std::cmp::Ordering {
                self.canonical.cmp(&other.canonical)
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                // As a `str`, so a borrowed `&str` key hashes the same (see InvoiceCache).
                (*self.canonical).hash(state);
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.typed)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{:?}", &*self.typed)
            }
        }
    };
}

canonical_identifier!(
    /// A contract number as printed on the signed contract; unique per center in its
    /// canonical form.
    ContractNumber, "contract_number", crate::limits::CONTRACT_NUMBER_MAX_BYTES
);
canonical_identifier!(
    /// An invoice number (发票号码); unique per center in its canonical form. A
    /// fully-digital e-invoice (数电票) number is 20 digits; an older paper or electronic
    /// invoice is identified by its code and number (see [`InvoiceNumber::from_code_and_number`]).
    InvoiceNumber, "invoice_number", crate::limits::INVOICE_NUMBER_MAX_BYTES
);
text_identifier!(
    /// A reference to the delivery proof (acceptance record, usage report) behind an invoice.
    DeliveryProof, "delivery_proof", crate::limits::DELIVERY_PROOF_MAX_BYTES
);
canonical_identifier!(
    /// A bank transaction reference (流水号) of a payment or repayment; compared in its
    /// canonical form, so the same reference typed twice is recognised.
    BankReference, "bank_reference", crate::limits::BANK_REFERENCE_MAX_BYTES
);
canonical_identifier!(
    /// An enterprise's proof that it paid an invoice in full (a bank reference, a payment
    /// voucher number): required on every invoice of a reimbursement year, recorded on
    /// its redemption; compared in its canonical form.
    PaymentProof, "payment_proof", crate::limits::PAYMENT_PROOF_MAX_BYTES
);
text_identifier!(
    /// A human name of a center or enterprise.
    LegalName, "name", crate::limits::LEGAL_NAME_MAX_BYTES
);
text_identifier!(
    /// Why the bureau did something (cap override, cancellation, status change).
    Reason, "reason", crate::limits::REASON_MAX_BYTES
);

impl InvoiceNumber {
    /// An older invoice's identity: its invoice code (发票代码, 10 or 12 digits) and its
    /// number (发票号码, 8 digits), kept as `CODE-NUMBER`. A fully-digital e-invoice needs
    /// no code: its 20-digit number is the identity ([`InvoiceNumber::parse`]).
    pub fn from_code_and_number(
        code: &str,
        number: &str,
    ) -> Result<InvoiceNumber, ValidationError> {
        let digits =
            |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        if !(digits(code) && (code.len() == 10 || code.len() == 12)) {
            return Err(ValidationError::new(
                "invoice_code",
                code,
                "must be the 10- or 12-digit invoice code (发票代码)",
            ));
        }
        if !(digits(number) && number.len() == 8) {
            return Err(ValidationError::new(
                "invoice_number",
                number,
                "with an invoice code, must be the 8-digit invoice number (发票号码)",
            ));
        }
        InvoiceNumber::parse(&format!("{code}-{number}"))
    }
}

/// Defines an id that is a UUID chosen by the client (or the API layer) before the command
/// enters the log, so the state machine never draws randomness.
macro_rules! uuid_identifier {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// The smallest and largest ids, as bounds of ordered ranges (never ids).
            pub const MIN: $name = $name(uuid::Uuid::nil());
            pub const MAX: $name = $name(uuid::Uuid::max());

            pub fn from_uuid(uuid: uuid::Uuid) -> Result<$name, ValidationError> {
                if uuid.is_nil() {
                    return Err(ValidationError::new($field, uuid.to_string(), "must not be nil"));
                }
                Ok($name(uuid))
            }

            pub fn parse(text: &str) -> Result<$name, ValidationError> {
                let uuid = uuid::Uuid::from_str(text)
                    .map_err(|_| ValidationError::new($field, text, "is not a UUID"))?;
                Self::from_uuid(uuid)
            }

            /// A fresh random id; only for callers outside the state machine.
            pub fn random() -> $name {
                $name(uuid::Uuid::new_v4())
            }

            /// A deterministic id from a number (demo and tests).
            pub fn from_u128(value: u128) -> $name {
                $name(uuid::Uuid::from_u128(value.max(1)))
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }
    };
}

uuid_identifier!(
    /// A voucher's id.
    VoucherId, "voucher_id"
);
uuid_identifier!(
    /// The id of a settlement recorded by format v1's `SettleCenter` (read back only).
    SettlementId, "settlement_id"
);
uuid_identifier!(
    /// A settlement run's id, chosen by the client so a retried run is created once.
    SettlementRunId, "run_id"
);

/// A statement's id: the sequence number of its `StatementIssued` event, so it is
/// unique, stable and says where in the log the statement was issued.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct StatementId(pub u64);

impl fmt::Display for StatementId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "S{}", self.0)
    }
}

/// A programme year, 2000..=2999.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgrammeYear(u16);

impl ProgrammeYear {
    pub const MIN: ProgrammeYear = ProgrammeYear(2000);
    pub const MAX: ProgrammeYear = ProgrammeYear(2999);

    pub fn new(year: u32) -> Result<ProgrammeYear, ValidationError> {
        if !(2000..=2999).contains(&year) {
            return Err(ValidationError::new(
                "year",
                year.to_string(),
                "must be between 2000 and 2999",
            ));
        }
        Ok(ProgrammeYear(year as u16))
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for ProgrammeYear {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl fmt::Debug for ProgrammeYear {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A calendar date (proleptic Gregorian), stored as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// Builds a date from its parts, rejecting impossible dates such as 2026-02-30.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Result<Date, ValidationError> {
        // The error's text is printed only on the error path: this runs for every
        // invoice posted, and formatting was most of its cost.
        let valid = (1970..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day != 0
            && day <= days_in_month(year, month);
        if !valid {
            return Err(ValidationError::new(
                "date",
                format!("{year:04}-{month:02}-{day:02}"),
                "is not a valid date",
            ));
        }
        Ok(Date(days_from_civil(year, month, day)))
    }

    /// Parses `YYYY-MM-DD` for the field named `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<Date, ValidationError> {
        // Exactly YYYY-MM-DD in ASCII digits (`"+5".parse::<u32>()` would accept a sign),
        // read digit by digit: no split, no allocation.
        let bytes = text.as_bytes();
        let well_formed = bytes.len() == 10
            && bytes
                .iter()
                .enumerate()
                .all(|(position, byte)| match position {
                    4 | 7 => *byte == b'-',
                    _ => byte.is_ascii_digit(),
                });
        let number = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
        };
        let parsed = if well_formed {
            // Four digits are at most 9,999: the year fits an i32.
            let year = number(0..4) as i32;
            Date::from_ymd(year, number(5..7), number(8..10)).ok()
        } else {
            None
        };
        parsed.ok_or_else(|| ValidationError::new(field, text, "is not a date like 2026-03-31"))
    }

    pub fn from_days_since_epoch(days: i32) -> Date {
        Date(days)
    }

    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    pub fn year_month_day(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// The same day one year later (29 February maps to 28 February).
    pub fn plus_one_year(self) -> Date {
        let (year, month, day) = self.year_month_day();
        let day = day.min(days_in_month(year + 1, month));
        Date(days_from_civil(year + 1, month, day))
    }

    pub fn plus_days(self, days: i32) -> Date {
        Date(self.0 + days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.year_month_day();
        write!(formatter, "{year:04}-{month:02}-{day:02}")
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days: exact for the proleptic Gregorian
// calendar, with no table and no dependency.
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = (year - era * 400) as u32;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era as i32 - 719_468
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let shifted = days + 719_468;
    let era = if shifted >= 0 {
        shifted
    } else {
        shifted - 146_096
    } / 146_097;
    let day_of_era = (shifted - era * 146_097) as u32;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era as i32 + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

/// A point in time, milliseconds since the Unix epoch (UTC). It comes in with each
/// command; the state machine never reads the clock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The calendar date (UTC) of this instant.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(86_400_000) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_order_as_their_bytes_do() {
        // Bodies that differ in the first byte, in the middle, and only in the 16th and
        // 17th (so the check character, the 18th, decides some pairs).
        let codes: Vec<Uscc> = [
            "91330100MA2H00001",
            "91330106MA0000001",
            "91330100MA0000001",
            "91330100MA0000002",
            "12100000400000398",
            "91330100MA27Y1234",
            "91330100MA27Y1235",
            "91330100MA27Y1244",
            "Y1330100MA27Y1234",
        ]
        .iter()
        .map(|body| Uscc::from_body(body).expect("valid body"))
        .collect();
        for left in &codes {
            for right in &codes {
                assert_eq!(
                    left.cmp(right),
                    left.as_bytes().cmp(right.as_bytes()),
                    "{left} {right}"
                );
                assert_eq!(left.partial_cmp(right), Some(left.cmp(right)));
            }
        }
    }

    #[test]
    fn published_uscc_examples_validate() {
        // Codes printed on public business licences.
        for code in ["91350100M000100Y43", "91110000802100433B"] {
            assert!(Uscc::parse("uscc", code).is_ok(), "{code}");
        }
    }

    #[test]
    fn uscc_rejects_bad_length_charset_and_check_character() {
        let too_short = Uscc::parse("center", "91350100M000100Y4").expect_err("short");
        assert!(
            too_short.to_string().contains("18 characters"),
            "{too_short}"
        );
        let bad_char = Uscc::parse("center", "91350100M000100I43").expect_err("I");
        assert!(bad_char.to_string().contains("'I'"), "{bad_char}");
        let bad_check = Uscc::parse("center", "91350100M000100Y44").expect_err("check");
        assert!(
            bad_check.to_string().contains("expected '3'"),
            "{bad_check}"
        );
        let lowercase = Uscc::parse("center", "91350100m000100Y43").expect_err("lower");
        assert_eq!(lowercase.field, "center");
    }

    #[test]
    fn from_body_makes_codes_that_parse() {
        let code = Uscc::from_body("91330100MA2AAAAA0").expect("body");
        assert!(Uscc::parse("uscc", code.as_str()).is_ok());
    }

    #[test]
    fn dates_round_trip_and_reject_impossible_days() {
        for days in [-1, 0, 59, 365, 20_000, 20_454, 2_932_896] {
            let date = Date::from_days_since_epoch(days);
            let (year, month, day) = date.year_month_day();
            if year >= 1970 {
                assert_eq!(Date::from_ymd(year, month, day).expect("date"), date);
            }
        }
        assert_eq!(
            Date::parse("d", "2026-03-31").expect("date").to_string(),
            "2026-03-31"
        );
        assert!(Date::parse("d", "2026-02-29").is_err());
        assert!(Date::parse("d", "2028-02-29").is_ok());
        assert!(Date::parse("d", "2026-13-01").is_err());
        assert!(Date::parse("d", "26-1-1").is_err());
        // Issue 9, item 9: a sign or space inside a part was accepted once.
        for text in [
            "2026-+5-01",
            "2026-0+5-01",
            "+026-05-01",
            "2026-05-1 ",
            " 2026-05-01",
            "２０２６-05-01",
        ] {
            assert!(Date::parse("d", text).is_err(), "{text:?}");
        }
        for text in [
            "0000-01-01",
            "1969-12-31",
            "2026-00-10",
            "2026-01-00",
            "2026-04-31",
        ] {
            assert!(Date::parse("d", text).is_err(), "{text:?}");
        }
        // Every day from 1970 to 2100 reads back as the day it prints as.
        for days in 0..47_847 {
            let date = Date::from_days_since_epoch(days);
            assert_eq!(Date::parse("d", &date.to_string()), Ok(date));
        }
        let leap = Date::parse("d", "2028-02-29").expect("date");
        assert_eq!(leap.plus_one_year().to_string(), "2029-02-28");
        assert_eq!(
            Timestamp(86_400_000 * 2 + 5).date().to_string(),
            "1970-01-03"
        );
    }

    #[test]
    fn text_identifiers_are_bounded() {
        assert!(InvoiceNumber::parse("").is_err());
        assert!(InvoiceNumber::parse(" 12").is_err());
        assert!(InvoiceNumber::parse("a\nb").is_err());
        assert!(InvoiceNumber::parse(&"9".repeat(65)).is_err());
        assert!(InvoiceNumber::parse("25332000000012345678").is_ok());
    }
}
