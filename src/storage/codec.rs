//! The explicit binary codec that storage's own formats are written in: fixed-width
//! little-endian integers, length-prefixed text, and the domain's value types (money as
//! i64 fen, USCC as 18 bytes, UUIDs as 16 bytes, dates as i32 days).
//!
//! Each format (snapshot image, invoice index entry, ...) writes its fields one by one
//! in an order of its own, so renaming or reordering a field of a domain struct cannot
//! change a byte on disk; adding one is a compile error in the decoder until the format
//! (and its version) says where the field goes.

use std::fmt;

use crate::domain::{
    ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, Money, ProgrammeYear, Rate,
    Reason, SettlementId, SettlementRunId, Timestamp, Uscc, ValidationError, VoucherId,
};

/// Why bytes did not decode: what was being read and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    pub reason: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.reason)
    }
}

impl std::error::Error for CodecError {}

impl From<ValidationError> for CodecError {
    fn from(error: ValidationError) -> CodecError {
        CodecError {
            reason: format!("stored value is invalid: {error}"),
        }
    }
}

fn error(reason: impl Into<String>) -> CodecError {
    CodecError {
        reason: reason.into(),
    }
}

/// Appends fields to a byte vector.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { out }
    }

    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub fn bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    pub fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.out.extend_from_slice(value);
    }

    /// A length (u32) then the UTF-8 bytes.
    pub fn text(&mut self, value: &str) {
        self.length(value.len());
        self.out.extend_from_slice(value.as_bytes());
    }

    /// A count of items or bytes. Every count in these formats is far below 2^32 (the
    /// limits module bounds them); a larger one is a bug, not data.
    pub fn length(&mut self, count: usize) {
        assert!(count <= u32::MAX as usize, "a stored count fits u32");
        self.u32(count as u32);
    }

    /// A single amount (an event's or an entry's), as i64 fen. Every single amount is
    /// at most 10^13 yuan, or a sum bounded by a pool of at most that: it fits.
    pub fn money(&mut self, value: Money) {
        let fen = value.to_fen();
        assert!(fen.is_some(), "a single amount fits i64 fen: {value}");
        self.i64(fen.unwrap_or(i64::MAX));
    }

    /// A running total (snapshots), as i128 fen: totals of a long-lived ledger may pass
    /// i64 (issue 9: 9,300 post-and-reverse pairs of 10^13 yuan), so they are never
    /// narrowed.
    pub fn money_total(&mut self, value: Money) {
        self.out
            .extend_from_slice(&value.to_fen_wide().to_le_bytes());
    }

    pub fn rate(&mut self, value: Rate) {
        self.u16(value.basis_points());
    }

    pub fn uscc(&mut self, value: &Uscc) {
        self.bytes(value.as_bytes());
    }

    pub fn year(&mut self, value: ProgrammeYear) {
        // ProgrammeYear is 2000..=2999 by construction.
        self.u16(value.get() as u16);
    }

    pub fn date(&mut self, value: Date) {
        self.i32(value.days_since_epoch());
    }

    pub fn timestamp(&mut self, value: Timestamp) {
        self.i64(value.0);
    }

    pub fn voucher_id(&mut self, value: &VoucherId) {
        self.bytes(value.as_uuid().as_bytes());
    }

    pub fn settlement_id(&mut self, value: &SettlementId) {
        self.bytes(value.as_uuid().as_bytes());
    }

    pub fn settlement_run_id(&mut self, value: &SettlementRunId) {
        self.bytes(value.as_uuid().as_bytes());
    }
}

/// Reads fields from a byte slice, refusing anything short, out of range or invalid.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    /// True when every byte was read (an optional trailing part is absent).
    pub fn at_end(&self) -> bool {
        self.position == self.bytes.len()
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        let left = self.bytes.len() - self.position;
        if left != 0 {
            return Err(error(format!("{left} trailing bytes")));
        }
        Ok(())
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .position
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                error(format!(
                    "needs {count} bytes at offset {}, only {} left",
                    self.position,
                    self.bytes.len() - self.position
                ))
            })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(error(format!("{other} is not a boolean"))),
        }
    }

    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A count written by [`Writer::length`], refused if it could not fit in what is left
    /// (each item takes at least `min_item_bytes`), so corrupt counts never allocate.
    pub fn length(&mut self, min_item_bytes: usize) -> Result<usize, CodecError> {
        let count = self.u32()? as usize;
        let left = self.bytes.len() - self.position;
        if count.saturating_mul(min_item_bytes.max(1)) > left {
            return Err(error(format!(
                "count {count} cannot fit in the {left} bytes left"
            )));
        }
        Ok(count)
    }

    pub fn text(&mut self) -> Result<&'a str, CodecError> {
        let length = self.length(1)?;
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes).map_err(|_| error("text is not UTF-8"))
    }

    pub fn money(&mut self) -> Result<Money, CodecError> {
        Ok(Money::from_total_fen(self.i64()?)?)
    }

    pub fn money_total(&mut self) -> Result<Money, CodecError> {
        Ok(Money::from_total_fen_wide(i128::from_le_bytes(
            self.array()?,
        ))?)
    }

    pub fn rate(&mut self) -> Result<Rate, CodecError> {
        Ok(Rate::from_basis_points(self.u16()?)?)
    }

    pub fn uscc(&mut self) -> Result<Uscc, CodecError> {
        let bytes = self.take(18)?;
        let text = std::str::from_utf8(bytes).map_err(|_| error("USCC is not ASCII"))?;
        Ok(Uscc::parse("uscc", text)?)
    }

    pub fn year(&mut self) -> Result<ProgrammeYear, CodecError> {
        Ok(ProgrammeYear::new(u32::from(self.u16()?))?)
    }

    pub fn date(&mut self) -> Result<Date, CodecError> {
        Ok(Date::from_days_since_epoch(self.i32()?))
    }

    pub fn timestamp(&mut self) -> Result<Timestamp, CodecError> {
        Ok(Timestamp(self.i64()?))
    }

    fn uuid(&mut self) -> Result<uuid::Uuid, CodecError> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }

    pub fn voucher_id(&mut self) -> Result<VoucherId, CodecError> {
        Ok(VoucherId::from_uuid(self.uuid()?)?)
    }

    pub fn settlement_id(&mut self) -> Result<SettlementId, CodecError> {
        Ok(SettlementId::from_uuid(self.uuid()?)?)
    }

    pub fn settlement_run_id(&mut self) -> Result<SettlementRunId, CodecError> {
        Ok(SettlementRunId::from_uuid(self.uuid()?)?)
    }

    // Stored text is rebuilt with `from_stored`: it was validated when it entered the
    // ledger, under the text rules of its day, and must read back even if they tightened.

    pub fn contract_number(&mut self) -> Result<ContractNumber, CodecError> {
        Ok(ContractNumber::from_stored(self.text()?)?)
    }

    pub fn invoice_number(&mut self) -> Result<InvoiceNumber, CodecError> {
        Ok(InvoiceNumber::from_stored(self.text()?)?)
    }

    pub fn delivery_proof(&mut self) -> Result<DeliveryProof, CodecError> {
        Ok(DeliveryProof::from_stored(self.text()?)?)
    }

    pub fn legal_name(&mut self) -> Result<LegalName, CodecError> {
        Ok(LegalName::from_stored(self.text()?)?)
    }

    pub fn reason(&mut self) -> Result<Reason, CodecError> {
        Ok(Reason::from_stored(self.text()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_refused() {
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        writer.u64(7);
        writer.text("INV-1");
        writer.money(Money::parse("amount", "12.34").expect("money"));
        writer.bool(true);
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u64().expect("u64"), 7);
        assert_eq!(reader.text().expect("text"), "INV-1");
        assert_eq!(reader.money().expect("money").to_string(), "12.34");
        assert!(reader.bool().expect("bool"));
        reader.finish().expect("all read");
        let mut short = Reader::new(&bytes[..10]);
        short.u64().expect("u64");
        assert!(short.text().is_err());
    }

    #[test]
    fn a_corrupt_count_does_not_allocate() {
        let bytes = u32::MAX.to_le_bytes();
        let mut reader = Reader::new(&bytes);
        assert!(reader.length(1).is_err());
    }
}
