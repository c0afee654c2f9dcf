//! Money and rates: exact decimal amounts in yuan at fen scale, never floats.
//!
//! `Money` is a newtype over `rust_decimal::Decimal` that is always non-negative, has
//! exactly two decimal places and is at most 10^13 yuan. Those preconditions are checked
//! once, in the constructors, so every function that takes `Money` can rely on them.
//! Because every amount has scale 2 (or is zero), sums and comparisons work on the
//! mantissa, a count of fen, as integers: `Decimal`'s general arithmetic (which aligns
//! scales) was ~3% of the server's CPU on the redemption path (issue 12).
//! A `Rate` is a fraction in `[0, 1]` with at most four decimal places (basis points).
//! Subsidies are `rate × amount` rounded **down** to the fen: the programme never pays a
//! fraction of a fen more than the rules allow.

use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::validation::ValidationError;

pub use crate::limits::MONEY_MAX_FEN;

/// A non-negative amount of yuan with exactly two decimal places (fen).
///
/// Equality, order and hashing are those of the count of fen (the mantissa): every
/// constructor makes scale 2, and the only other value, `Default`'s zero, has mantissa 0.
#[derive(Clone, Copy, Default)]
pub struct Money(Decimal);

impl PartialEq for Money {
    fn eq(&self, other: &Money) -> bool {
        self.to_fen_wide() == other.to_fen_wide()
    }
}

impl Eq for Money {}

impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Money) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Money {
    fn cmp(&self, other: &Money) -> std::cmp::Ordering {
        self.to_fen_wide().cmp(&other.to_fen_wide())
    }
}

impl std::hash::Hash for Money {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_fen_wide().hash(state);
    }
}

impl Money {
    /// Room for the longest text [`Money::print_plain`] writes: `u64::MAX` fen prints as
    /// 21 characters (18 digits of yuan, the point, two of fen).
    pub const PLAIN_TEXT_MAX: usize = 24;

    /// Writes the amount as [`Display`](fmt::Display) prints it into the end of
    /// `buffer` and returns that text, or `None` for an amount no constructor makes
    /// (another scale, a sign), which only the general formatting prints. Every
    /// `PostInvoices` answer prints three amounts per invoice: going through
    /// `core::fmt` for each cost ~2% of the network thread's time (issue 12).
    pub fn print_plain(self, buffer: &mut [u8; Money::PLAIN_TEXT_MAX]) -> Option<&str> {
        if self.0.scale() != 2 || self.0.is_sign_negative() {
            return None;
        }
        let fen = u64::try_from(self.0.mantissa()).ok()?;
        // Digits written backwards: two of fen, the point, then the yuan (at least one).
        let mut start = buffer.len();
        let mut rest = fen;
        for _ in 0..2 {
            start -= 1;
            buffer[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        start -= 1;
        buffer[start] = b'.';
        loop {
            start -= 1;
            buffer[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        std::str::from_utf8(&buffer[start..]).ok()
    }

    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// An amount of whole yuan known when the program is written (policy defaults).
    pub const fn from_whole_yuan(yuan: u32) -> Money {
        let fen = yuan as u64 * 100;
        Money(Decimal::from_parts(
            (fen & 0xffff_ffff) as u32,
            (fen >> 32) as u32,
            0,
            false,
            2,
        ))
    }

    /// Builds an amount from a whole number of fen. Fails for negative amounts and for
    /// amounts above [`MONEY_MAX_FEN`].
    pub fn from_fen(fen: i64) -> Result<Money, ValidationError> {
        if !(0..=MONEY_MAX_FEN).contains(&fen) {
            return Err(ValidationError::new(
                "amount",
                fen.to_string(),
                "must be between 0 and 10^13 yuan, in fen",
            ));
        }
        Ok(Money(Decimal::new(fen, 2)))
    }

    /// Rebuilds a stored amount or total from fen. Totals (sums over many amounts) may
    /// exceed [`MONEY_MAX_FEN`]; only negative values are refused.
    pub fn from_total_fen(fen: i64) -> Result<Money, ValidationError> {
        if fen < 0 {
            return Err(ValidationError::new(
                "amount",
                fen.to_string(),
                "must not be negative",
            ));
        }
        Ok(Money(Decimal::new(fen, 2)))
    }

    /// Parses an amount of yuan for the field named `field`, in the one grammar every
    /// entry point uses (gRPC, TOML, imports after their own normalisation):
    ///
    /// ```text
    /// amount = integer [ "." 1*2DIGIT ]      integer = "0" | NONZERO *13DIGIT
    /// ```
    ///
    /// ASCII digits only: no sign, no exponent, no white space (not even a trailing
    /// no-break space), no leading zeros, at most two decimals, at most 10^13 yuan. The
    /// error names the field and the value.
    pub fn parse(field: &'static str, text: &str) -> Result<Money, ValidationError> {
        let fail = |reason: &str| Err(ValidationError::new(field, text, reason));
        let (integer, decimals) = match text.split_once('.') {
            Some((integer, decimals)) => (integer, Some(decimals)),
            None => (text, None),
        };
        let digits =
            |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
        if text.starts_with('-') {
            return fail("must not be negative");
        }
        if !digits(integer) || decimals.is_some_and(|decimals| !digits(decimals)) {
            return fail("must be a plain decimal number of yuan such as 1234.56 (ASCII digits, no sign, spaces or separators)");
        }
        if integer.len() > 1 && integer.starts_with('0') {
            return fail("must not have leading zeros");
        }
        if decimals.is_some_and(|decimals| decimals.len() > 2) {
            return fail("has more than 2 decimal places (amounts are exact to the fen)");
        }
        if integer.len() > 14 {
            return fail("is above 10^13 yuan");
        }
        // At most 14 + 2 digits: fits i64 exactly.
        let mut fen: i64 = 0;
        for byte in integer.bytes() {
            fen = fen * 10 + i64::from(byte - b'0');
        }
        let decimals = decimals.unwrap_or("");
        for position in 0..2 {
            let digit = decimals
                .as_bytes()
                .get(position)
                .map_or(0, |byte| byte - b'0');
            fen = fen * 10 + i64::from(digit);
        }
        if fen > MONEY_MAX_FEN {
            return fail("is above 10^13 yuan");
        }
        Ok(Money(Decimal::new(fen, 2)))
    }

    /// The amount as a whole number of fen, if it fits `i64` (every single amount does;
    /// a running total might not, see [`Money::to_fen_wide`]).
    pub fn to_fen(self) -> Option<i64> {
        i64::try_from(self.to_fen_wide()).ok()
    }

    /// The amount as a whole number of fen, exactly: `Decimal`'s 96-bit mantissa always
    /// fits `i128`. Running totals are stored this way, and equality, order, sums and
    /// differences work on it: the mantissa is the count of fen, since every constructor
    /// makes scale 2 (`Default`'s zero has scale 0 and mantissa 0). Never negative.
    #[inline]
    pub fn to_fen_wide(self) -> i128 {
        self.0.mantissa()
    }

    /// Rebuilds a stored running total from fen; only negative values are refused.
    pub fn from_total_fen_wide(fen: i128) -> Result<Money, ValidationError> {
        if fen < 0 {
            return Err(ValidationError::new(
                "amount",
                fen.to_string(),
                "must not be negative",
            ));
        }
        Decimal::try_from_i128_with_scale(fen, 2)
            .map(Money)
            .map_err(|_| ValidationError::new("amount", fen.to_string(), "is out of range"))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Sum of two amounts. Sums of amounts stay far inside `Decimal`'s 96-bit range
    /// (2^96 fen is 7.9 × 10^26 yuan); the result may exceed [`MONEY_MAX_FEN`] only for
    /// totals, which are never parsed back from user input.
    #[must_use]
    pub fn plus(self, other: Money) -> Money {
        Money::of_fen(self.to_fen_wide() + other.to_fen_wide())
    }

    /// `self - other`, or `None` when the result would be negative.
    pub fn checked_minus(self, other: Money) -> Option<Money> {
        let difference = self.to_fen_wide() - other.to_fen_wide();
        if difference < 0 {
            None
        } else {
            Some(Money::of_fen(difference))
        }
    }

    /// An amount from a count of fen that arithmetic on amounts produced (so it is not
    /// negative and, summing real money, far below 2^96). Past 2^96 − 1 `Decimal` cannot
    /// hold it: a broken promise, not an input to refuse.
    ///
    /// Built from its three 32-bit words in registers: `Decimal::try_from_i128_with_scale`
    /// wrote its result to memory a field at a time, and the 16-byte read of it that
    /// followed waited for those writes to land (a failed store-to-load forward, ~6% of
    /// the fold's samples at each of the four sums of a redemption; issue 12).
    #[inline]
    fn of_fen(fen: i128) -> Money {
        let Ok(fen) = u128::try_from(fen) else {
            panic!("{fen} fen is negative: arithmetic on amounts never makes one");
        };
        assert!(
            fen < 1 << 96,
            "{fen} fen is beyond what an amount can hold (2^96 - 1 fen)"
        );
        Money(Decimal::from_parts(
            fen as u32,
            (fen >> 32) as u32,
            (fen >> 64) as u32,
            false,
            2,
        ))
    }

    /// `self - other`, clamped at zero. Used only in projections, whose invariants
    /// (checked by `LedgerState::check_invariants`) guarantee `other <= self`.
    #[must_use]
    pub fn saturating_minus(self, other: Money) -> Money {
        self.checked_minus(other).unwrap_or(Money::ZERO)
    }

    #[must_use]
    pub fn min(self, other: Money) -> Money {
        if self <= other {
            self
        } else {
            other
        }
    }

    /// True when `self` is above `rate × base`, compared exactly (in fen × basis points:
    /// no rounding either way). The redemption rule's ceiling check, in integers where
    /// `Decimal` multiplication and comparison cost ~1% of the server on that path.
    pub fn is_above_share_of(self, base: Money, rate: Rate) -> bool {
        // fen < 2^96 and basis points ≤ 10,000 < 2^14: both products fit i128.
        self.to_fen_wide() * 10_000 > base.to_fen_wide() * i128::from(rate.basis_points())
    }

    /// `rate × self`, rounded down to the fen.
    ///
    /// Computed in integers (fen × basis points / 10,000): exact, since both operands are
    /// exact and non-negative, and an order of magnitude cheaper than `Decimal`
    /// multiplication and rounding on the redemption hot path.
    #[must_use]
    pub fn times_rate_floor(self, rate: Rate) -> Money {
        let product = self.to_fen_wide() * i128::from(rate.basis_points()) / 10_000;
        // product ≤ self, so it is a valid amount whenever self is.
        Money::of_fen(product)
    }
}

// `u64::MAX` fen prints as 21 characters.
const _: () = assert!(Money::PLAIN_TEXT_MAX >= 21);

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Yuan and fen printed as integers skip `Decimal`'s general formatting (~1% of
        // the server on the batched path); the general path stays for what no
        // constructor makes.
        let mut buffer = [0u8; Money::PLAIN_TEXT_MAX];
        match self.print_plain(&mut buffer) {
            Some(text) => formatter.write_str(text),
            None => write!(formatter, "{:.2}", self.0),
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:.2}", self.0)
    }
}

/// A fraction in `[0, 1]` with at most four decimal places, e.g. `0.30`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(Decimal, u16);

impl Rate {
    /// A rate known when the program is written, in basis points; clamped to 100%.
    pub const fn basis_points_const(basis_points: u16) -> Rate {
        let clamped = if basis_points > 10_000 {
            10_000
        } else {
            basis_points
        };
        Rate(Decimal::from_parts(clamped as u32, 0, 0, false, 4), clamped)
    }

    /// Builds a rate from basis points (1/10,000): `3000` is 30%.
    pub fn from_basis_points(basis_points: u16) -> Result<Rate, ValidationError> {
        if basis_points > 10_000 {
            return Err(ValidationError::new(
                "rate",
                basis_points.to_string(),
                "must be at most 10000 basis points (100%)",
            ));
        }
        Ok(Rate(Decimal::new(i64::from(basis_points), 4), basis_points))
    }

    /// Parses `"0.30"` for the field named `field`.
    /// Parses a rate in the one grammar every entry point uses:
    ///
    /// ```text
    /// rate = ( "0" [ "." 1*4DIGIT ] ) | ( "1" [ "." 1*4"0" ] )
    /// ```
    ///
    /// No sign, exponent, white space, underscore or leading zero; at most four decimals
    /// (a basis point), never silently rounded.
    pub fn parse(field: &'static str, text: &str) -> Result<Rate, ValidationError> {
        let fail = |reason: &str| Err(ValidationError::new(field, text, reason));
        let (integer, decimals) = match text.split_once('.') {
            Some((integer, decimals)) => (integer, decimals),
            None => (text, ""),
        };
        let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if !(integer == "0" || integer == "1")
            || !digits(decimals)
            || (text.contains('.') && decimals.is_empty())
        {
            return fail("must be a decimal fraction between 0 and 1 such as 0.30 (ASCII digits, no sign or exponent)");
        }
        if decimals.len() > 4 {
            return fail("has more than 4 decimal places (rates are exact to the basis point)");
        }
        let mut basis_points: u32 = if integer == "1" { 10_000 } else { 0 };
        for position in 0..4 {
            let digit = decimals
                .as_bytes()
                .get(position)
                .map_or(0, |byte| byte - b'0');
            basis_points += u32::from(digit) * [1_000, 100, 10, 1][position];
        }
        if basis_points > 10_000 {
            return fail("must be at most 1");
        }
        Self::from_basis_points(basis_points as u16)
    }

    pub fn from_decimal(field: &'static str, decimal: Decimal) -> Result<Rate, ValidationError> {
        if decimal.is_sign_negative() || decimal > Decimal::ONE {
            return Err(ValidationError::new(
                field,
                decimal.to_string(),
                "must be between 0 and 1",
            ));
        }
        if decimal.normalize().scale() > 4 {
            return Err(ValidationError::new(
                field,
                decimal.to_string(),
                "has more than 4 decimal places",
            ));
        }
        let basis_points = (decimal * Decimal::new(10_000, 0))
            .to_u16()
            .ok_or_else(|| ValidationError::new(field, decimal.to_string(), "out of range"))?;
        Self::from_basis_points(basis_points)
    }

    pub fn basis_points(self) -> u16 {
        self.1
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0.normalize())
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0.normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_with_two_places_as_decimal_does() {
        for fen in [
            0i64,
            1,
            9,
            10,
            99,
            100,
            101,
            1_000,
            123_456,
            999_999_999,
            MONEY_MAX_FEN,
        ] {
            let money = Money::from_fen(fen).expect("in range");
            assert_eq!(
                money.to_string(),
                format!("{:.2}", money.as_decimal()),
                "{fen} fen"
            );
        }
    }

    fn money(text: &str) -> Money {
        Money::parse("amount", text).expect("valid amount")
    }

    #[test]
    fn fen_arithmetic_agrees_with_decimal_arithmetic() {
        // Money sums, subtracts and compares its count of fen (the mantissa): the results
        // must be what decimal arithmetic on the same amounts gives, at scale 2, totals
        // beyond u64 fen included.
        let mut fen: i64 = 0;
        while fen < MONEY_MAX_FEN {
            let left = Money::from_fen(fen).expect("fen");
            let right = Money::from_fen(MONEY_MAX_FEN - fen).expect("fen");
            let sum = left.plus(right);
            assert_eq!(sum.as_decimal(), left.as_decimal() + right.as_decimal());
            assert_eq!(sum.as_decimal().scale(), 2);
            assert_eq!(left.cmp(&right), left.as_decimal().cmp(&right.as_decimal()));
            match left.checked_minus(right) {
                Some(difference) => {
                    assert_eq!(
                        difference.as_decimal(),
                        left.as_decimal() - right.as_decimal()
                    )
                }
                None => assert!(left.as_decimal() < right.as_decimal()),
            }
            fen = fen * 7 + 13;
        }
        let wide = Money::from_total_fen_wide(u64::MAX as i128 * 1_000).expect("a total");
        assert_eq!(wide.to_string(), format!("{:.2}", wide.as_decimal()));
        assert_eq!(wide.to_fen_wide(), u64::MAX as i128 * 1_000);
        assert!(Money::from_total_fen_wide(1i128 << 96).is_err());
        assert!(Money::from_total_fen_wide(-1).is_err());
        assert_eq!(Money::default(), Money::ZERO);
        assert_eq!(Money::from_whole_yuan(8_000_000), money("8000000"));
    }

    #[test]
    fn sums_across_each_word_of_the_mantissa_agree_with_decimal() {
        // A result is built from its three 32-bit words: carries into the middle and the
        // high word, and the largest total an amount holds, must come out as Decimal's.
        let one_fen = Money::from_fen(1).expect("fen");
        for total in [
            (1_i128 << 32) - 1,
            (1 << 64) - 1,
            (1 << 64) + (1 << 32) - 1,
            (1 << 96) - 2,
        ] {
            let left = Money::from_total_fen_wide(total).expect("a total");
            let sum = left.plus(one_fen);
            assert_eq!(sum.as_decimal(), left.as_decimal() + one_fen.as_decimal());
            assert_eq!(sum.to_fen_wide(), total + 1);
            assert_eq!(sum.as_decimal().scale(), 2);
            assert_eq!(sum.checked_minus(one_fen), Some(left));
        }
    }

    #[test]
    #[should_panic(expected = "beyond what an amount can hold")]
    fn a_sum_past_the_largest_amount_stops_rather_than_wraps() {
        let largest = Money::from_total_fen_wide((1 << 96) - 1).expect("a total");
        let _ = largest.plus(Money::from_fen(1).expect("fen"));
    }

    #[test]
    fn the_share_check_is_exact_to_the_fen_and_basis_point() {
        // subsidy > ceiling × fee, compared without rounding: the fen just at the
        // ceiling passes, one fen more does not, for every ceiling in basis points.
        for basis_points in [0u16, 1, 2_999, 3_000, 3_333, 5_000, 9_999, 10_000] {
            let rate = Rate::from_basis_points(basis_points).expect("rate");
            for fee_fen in [0i64, 1, 3, 999, 1_000_001, 33_333_333, MONEY_MAX_FEN] {
                let fee = Money::from_fen(fee_fen).expect("fee");
                let exact = fee.as_decimal() * rate.as_decimal();
                let at_or_below = fee.times_rate_floor(rate);
                assert!(!at_or_below.is_above_share_of(fee, rate), "{fee} × {rate}");
                let above = at_or_below.plus(Money::from_fen(1).expect("a fen"));
                assert_eq!(
                    above.is_above_share_of(fee, rate),
                    above.as_decimal() > exact,
                    "{above} against {fee} × {rate}"
                );
                assert!(
                    above.is_above_share_of(fee, rate),
                    "{above} against {fee} × {rate}"
                );
            }
        }
    }

    #[test]
    fn display_prints_what_decimal_prints_at_two_places() {
        let mut fen: i64 = 0;
        while fen < 10_000_000_000_000 {
            for value in [fen, fen + 1, fen + 9, fen + 10, fen + 99] {
                let money = Money::from_total_fen(value).expect("fen");
                assert_eq!(money.to_string(), format!("{:.2}", money.0), "{value} fen");
            }
            fen = fen * 3 + 7;
        }
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(money("1234.5").to_string(), "1234.50");
        assert_eq!(money("0.07").to_string(), "0.07");
    }

    #[test]
    fn plain_printing_fits_the_largest_amount_and_leaves_other_scales_to_decimal() {
        let mut buffer = [0u8; Money::PLAIN_TEXT_MAX];
        let largest = Money(Decimal::from_i128_with_scale(i128::from(u64::MAX), 2));
        assert_eq!(
            largest.print_plain(&mut buffer),
            Some("184467440737095516.15")
        );
        assert_eq!(largest.to_string(), format!("{:.2}", largest.0));
        for unusual in [Decimal::new(5, 3), Decimal::new(-5, 2), Decimal::new(7, 0)] {
            let money = Money(unusual);
            assert_eq!(money.print_plain(&mut buffer), None, "{unusual}");
            assert_eq!(money.to_string(), format!("{unusual:.2}"));
        }
    }

    #[test]
    fn subsidies_round_down_to_the_fen() {
        let thirty = Rate::parse("rate", "0.30").expect("rate");
        let twenty = Rate::parse("rate", "0.20").expect("rate");
        assert_eq!(
            money("100000.03").times_rate_floor(thirty),
            money("30000.00")
        );
        assert_eq!(money("0.04").times_rate_floor(twenty), money("0.00"));
        assert_eq!(money("1000.07").times_rate_floor(thirty), money("300.02"));
        assert_eq!(money("0.05").times_rate_floor(twenty), money("0.01"));
        assert_eq!(money("0.00").times_rate_floor(thirty), Money::ZERO);
    }

    #[test]
    fn parsing_rejects_what_is_not_an_exact_amount() {
        for (text, reason_fragment) in [
            ("1.234", "more than 2 decimal places"),
            ("-1.00", "negative"),
            ("10000000000000.01", "above 10^13"),
            ("99999999999999999", "above 10^13"),
            ("", "plain decimal"),
            ("1e5", "plain decimal"),
            ("1,000.00", "plain decimal"),
            ("NaN", "plain decimal"),
            (".5", "plain decimal"),
            ("5.", "plain decimal"),
            ("1.2.3", "plain decimal"),
        ] {
            let error = Money::parse("contract_fee", text).expect_err(text);
            assert_eq!(error.field, "contract_fee");
            assert!(
                error.to_string().contains(reason_fragment),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn parsing_normalises_to_two_places() {
        assert_eq!(money("7").to_string(), "7.00");
        assert_eq!(money("7.5").to_string(), "7.50");
        assert_eq!(money("10000000000000.00").to_fen(), Some(MONEY_MAX_FEN));
        assert_eq!(money("0.30").to_fen(), Some(30));
        assert_eq!(money("12.3").to_fen(), Some(1230));
    }

    /// Issue 9, item 9: every lenient spelling below was accepted once.
    #[test]
    fn one_strict_grammar_for_amounts_and_rates() {
        let zeros = format!("{}1", "0".repeat(100_000));
        for text in [
            " 1",
            "\u{3000}1",
            "1\u{a0}",
            "1 ",
            "+1",
            "0012.30",
            zeros.as_str(),
            "１",
            "1_000",
        ] {
            assert!(Money::parse("amount", text).is_err(), "{text:?}");
        }
        for text in [
            "1e-1",
            "+0.3",
            "-0",
            "0_.3",
            "0.300000000000000000000000000001",
            " 0.3",
            "00.3",
            ".3",
            "0.",
            "1.0001",
            "2",
        ] {
            assert!(Rate::parse("rate", text).is_err(), "{text:?}");
        }
        for (text, basis_points) in [
            ("0", 0),
            ("1", 10_000),
            ("1.0000", 10_000),
            ("0.3", 3_000),
            ("0.0001", 1),
        ] {
            assert_eq!(
                Rate::parse("rate", text).expect(text).basis_points(),
                basis_points
            );
        }
    }

    #[test]
    fn rates_are_fractions_with_four_places_at_most() {
        assert!(Rate::parse("rate", "0.3").is_ok());
        assert!(Rate::parse("rate", "0.30005").is_err());
        assert!(Rate::parse("rate", "1.01").is_err());
        assert!(Rate::parse("rate", "-0.1").is_err());
        assert_eq!(
            Rate::parse("rate", "0.3").expect("rate").basis_points(),
            3000
        );
    }
}
