//! The invoice index: the durable home of every posted invoice's outcome (what a retry
//! is answered with, what a conflicting repost is compared with, what a reversal takes
//! back). Written in the same `WriteBatch` as the events that change it.
//!
//! Key: the center's USCC (18 ASCII bytes) followed by the invoice number's UTF-8 bytes.
//!
//! Value, version 3 (written for every invoice without a second source's subsidy):
//!
//! ```text
//! magic "VLIX" | version u16 = 3 | voucher uuid 16 | amount i64 fen | issue date i32
//! | delivery proof (u32 length + UTF-8) | subsidy i64 fen | sequence u64
//! | reversed at u64 (the InvoiceReversed event's sequence; 0: not reversed)
//! ```
//!
//! Version 4 (an invoice of a stacked-funding year with a second source's subsidy, so a
//! reversal takes both parts back without reading the log): version 3's fields, then
//! `second subsidy i64 fen` (never zero: a zero is written as version 3). Writing version 3
//! whenever it says everything keeps the index of a year without a second source byte for
//! byte what it was.
//!
//! Read only: version 2 (the same up to the sequence, then a u32 settlement epoch, which
//! settlement statements replaced, and a reversed flag u8) and version 1 (the magic and version, then bincode of
//! the frozen v1 shape in `payload_v1`). The key is the center and the invoice number's
//! canonical form, so spellings of one number share one entry.

use super::codec::{CodecError, Reader, Writer};
use super::payload_v1;
use crate::domain::{InvoiceEntry, InvoiceNumber, Money, ProgrammeYear, Uscc};

pub const INDEX_MAGIC: [u8; 4] = *b"VLIX";
/// The newest version, written when an entry has a second source's subsidy.
pub const INDEX_FORMAT_VERSION: u16 = 4;
/// The version written when it says everything (no second subsidy).
const INDEX_FORMAT_VERSION_SINGLE_SOURCE: u16 = 3;
const USCC_LENGTH: usize = 18;

/// The index key of an invoice.
pub fn invoice_key(center: &Uscc, invoice_number: &InvoiceNumber) -> Vec<u8> {
    let mut key = Vec::with_capacity(USCC_LENGTH + invoice_number.as_str().len());
    key.extend_from_slice(center.as_bytes());
    key.extend_from_slice(invoice_number.as_str().as_bytes());
    key
}

/// The center and invoice number an index key names.
pub fn parse_invoice_key(key: &[u8]) -> Result<(Uscc, InvoiceNumber), CodecError> {
    let mut reader = Reader::new(key);
    let center = reader.uscc()?;
    let rest = &key[USCC_LENGTH..];
    let number = std::str::from_utf8(rest).map_err(|_| CodecError {
        reason: "invoice number in the key is not UTF-8".into(),
    })?;
    Ok((center, InvoiceNumber::from_stored(number)?))
}

/// The key of an invoice in its center's order for a year: the USCC, the year (u16
/// big-endian) and the sequence of its `InvoiceRedeemed` event (u64 big-endian), so a
/// range scan walks one center-year in log order.
pub fn invoice_order_key(center: &Uscc, year: ProgrammeYear, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(USCC_LENGTH + 2 + 8);
    key.extend_from_slice(center.as_bytes());
    key.extend_from_slice(&(year.get() as u16).to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

pub fn parse_invoice_order_key(key: &[u8]) -> Result<(Uscc, ProgrammeYear, u64), CodecError> {
    if key.len() != USCC_LENGTH + 10 {
        return Err(CodecError {
            reason: format!(
                "an invoice order key is {} bytes, not {}",
                key.len(),
                USCC_LENGTH + 10
            ),
        });
    }
    let mut reader = Reader::new(key);
    let center = reader.uscc()?;
    let year = u16::from_be_bytes([key[USCC_LENGTH], key[USCC_LENGTH + 1]]);
    let mut sequence = [0u8; 8];
    sequence.copy_from_slice(&key[USCC_LENGTH + 2..]);
    Ok((
        center,
        ProgrammeYear::new(u32::from(year))?,
        u64::from_be_bytes(sequence),
    ))
}

/// Encodes an index value in the current version.
pub fn encode_index_entry(entry: &InvoiceEntry, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    let stacked = !entry.second_subsidy.is_zero();
    writer.bytes(&INDEX_MAGIC);
    writer.u16(if stacked {
        INDEX_FORMAT_VERSION
    } else {
        INDEX_FORMAT_VERSION_SINGLE_SOURCE
    });
    writer.voucher_id(&entry.voucher);
    writer.money(entry.amount);
    writer.date(entry.issue_date);
    writer.text(entry.delivery_proof.as_str());
    writer.money(entry.subsidy);
    writer.u64(entry.sequence);
    writer.u64(entry.reversed_at.unwrap_or(0));
    if stacked {
        writer.money(entry.second_subsidy);
    }
}

/// Decodes an index value of any version this build reads.
pub fn decode_index_entry(bytes: &[u8]) -> Result<InvoiceEntry, CodecError> {
    let mut reader = Reader::new(bytes);
    if reader.take(4).ok() != Some(&INDEX_MAGIC[..]) {
        return Err(CodecError {
            reason: "bad magic (not an invoice index entry)".into(),
        });
    }
    match reader.u16()? {
        1 => payload_v1::decode_index_entry(&bytes[6..]),
        version @ (2..=4) => {
            let voucher = reader.voucher_id()?;
            let amount = reader.money()?;
            let issue_date = reader.date()?;
            let delivery_proof = reader.delivery_proof()?;
            let subsidy = reader.money()?;
            let sequence = reader.u64()?;
            if version == 2 {
                // The settlement epoch of version 2; settlement follows from the sequence now.
                reader.u32()?;
            }
            let entry = InvoiceEntry {
                voucher,
                amount,
                issue_date,
                delivery_proof,
                subsidy,
                second_subsidy: Money::ZERO,
                sequence,
                reversed_at: if version == 2 {
                    // Version 2 kept only whether it was reversed.
                    reader.bool()?.then_some(0)
                } else {
                    Some(reader.u64()?).filter(|sequence| *sequence != 0)
                },
            };
            let entry = if version == 4 {
                let second_subsidy = reader.money()?;
                if second_subsidy.is_zero() {
                    return Err(CodecError {
                        reason: "a version 4 invoice index entry with a second subsidy of 0.00 (written as version 3)".into(),
                    });
                }
                InvoiceEntry {
                    second_subsidy,
                    ..entry
                }
            } else {
                entry
            };
            reader.finish()?;
            Ok(entry)
        }
        version => Err(CodecError {
            reason: format!("unknown invoice index format version {version}"),
        }),
    }
}
