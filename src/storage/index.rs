//! The invoice index: the durable home of every posted invoice's outcome (what a retry
//! is answered with, what a conflicting repost is compared with, what a reversal takes
//! back). Written in the same `WriteBatch` as the events that change it.
//!
//! Key: the center's USCC (18 ASCII bytes) followed by the invoice number's UTF-8 bytes.
//!
//! Value, version 2 (written now):
//!
//! ```text
//! magic "VLIX" | version u16 = 2 | voucher uuid 16 | amount i64 fen | issue date i32
//! | delivery proof (u32 length + UTF-8) | subsidy i64 fen | sequence u64
//! | settlement epoch u32 | reversed u8
//! ```
//!
//! Version 1 (read only): the same magic and version, then bincode of the frozen v1 shape
//! in `payload_v1`.

use super::codec::{CodecError, Reader, Writer};
use super::payload_v1;
use crate::domain::{InvoiceEntry, InvoiceNumber, Uscc};

pub const INDEX_MAGIC: [u8; 4] = *b"VLIX";
pub const INDEX_FORMAT_VERSION: u16 = 2;
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
    Ok((center, InvoiceNumber::parse(number)?))
}

/// Encodes an index value in the current version.
pub fn encode_index_entry(entry: &InvoiceEntry, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    writer.bytes(&INDEX_MAGIC);
    writer.u16(INDEX_FORMAT_VERSION);
    writer.voucher_id(&entry.voucher);
    writer.money(entry.amount);
    writer.date(entry.issue_date);
    writer.text(entry.delivery_proof.as_str());
    writer.money(entry.subsidy);
    writer.u64(entry.sequence);
    writer.u32(entry.settlement_epoch);
    writer.bool(entry.reversed);
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
        2 => {
            let entry = InvoiceEntry {
                voucher: reader.voucher_id()?,
                amount: reader.money()?,
                issue_date: reader.date()?,
                delivery_proof: reader.delivery_proof()?,
                subsidy: reader.money()?,
                sequence: reader.u64()?,
                settlement_epoch: reader.u32()?,
                reversed: reader.bool()?,
            };
            reader.finish()?;
            Ok(entry)
        }
        version => Err(CodecError {
            reason: format!("unknown invoice index format version {version}"),
        }),
    }
}
