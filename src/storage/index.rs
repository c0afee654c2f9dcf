//! The invoice index: the durable home of every posted invoice's outcome (what a retry
//! is answered with, what a conflicting repost is compared with, what a reversal takes
//! back). Written just after the events that change it (`index_lag.rs`).
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
//!
//! Invoice order (family `invoice_order`): key [`invoice_order_key`] (center, year, the
//! first sequence the value holds); value, version 2 (written now), one per center, year
//! and group commit, so a batch adds one key per center-year instead of one per invoice:
//!
//! ```text
//! magic "VLIO" | version u16 = 2 | count u32 | count × (sequence u64 | number: u32 length + UTF-8)
//! ```
//!
//! with the sequences strictly increasing and the first equal to the key's. Read too:
//! version 1 (format 2 and 3 directories), no magic, the bare invoice number of the one
//! redemption at the key's sequence. The two cannot be confused: an invoice number holds
//! no control character, and the version's first byte after the magic is one.
//!
//! The index's watermark: the last log sequence whose index entries are written. The
//! index is written just after the batch's log write that answers the callers, and since
//! format 6 without RocksDB's write-ahead log (`index_lag.rs`), so after a crash it may
//! lag the log, and the open derives what is missing from the log:
//!
//! ```text
//! magic "VLIW" | version u16 = 1 | sequence u64
//! ```
//!
//! Where it is kept: format 6, in the `invoices` family itself, under
//! [`INDEX_WATERMARK_KEY`] (which sorts after every invoice key, whose first byte is an
//! ASCII USCC character), so that it is persisted in order with the entries it covers;
//! format 5, in the `default` family under `index_through`.

use super::codec::{CodecError, Reader, Writer};
use super::payload_v1;
use crate::domain::{Date, InvoiceEntry, InvoiceNumber, Money, ProgrammeYear, Uscc, VoucherId};

pub const INDEX_MAGIC: [u8; 4] = *b"VLIX";
/// The newest version, written when an entry has a second source's subsidy.
pub const INDEX_FORMAT_VERSION: u16 = 4;
/// The version written when it says everything (no second subsidy).
const INDEX_FORMAT_VERSION_SINGLE_SOURCE: u16 = 3;
pub const INVOICE_ORDER_MAGIC: [u8; 4] = *b"VLIO";
pub const INVOICE_ORDER_FORMAT_VERSION: u16 = 2;
const USCC_LENGTH: usize = 18;

/// The key of the index's watermark in the `invoices` family (format 6 on). No invoice
/// key starts with 0xFF (a USCC is ASCII), so it sorts after every invoice key; scans of
/// the index pass over this key, and report any other that is not an invoice's.
pub const INDEX_WATERMARK_KEY: &[u8] = b"\xffindex_through";

pub const INDEX_WATERMARK_MAGIC: [u8; 4] = *b"VLIW";
pub const INDEX_WATERMARK_FORMAT_VERSION: u16 = 1;

/// Encodes the index's watermark: every record up to `sequence` has its index entries.
pub fn encode_index_watermark(sequence: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    let mut writer = Writer::new(&mut out);
    writer.bytes(&INDEX_WATERMARK_MAGIC);
    writer.u16(INDEX_WATERMARK_FORMAT_VERSION);
    writer.u64(sequence);
    out
}

/// Decodes the index's watermark (see [`encode_index_watermark`]).
pub fn decode_index_watermark(bytes: &[u8]) -> Result<u64, CodecError> {
    let mut reader = Reader::new(bytes);
    if reader.take(4).ok() != Some(&INDEX_WATERMARK_MAGIC[..]) {
        return Err(CodecError {
            reason: "the index watermark does not start with VLIW".into(),
        });
    }
    match reader.u16()? {
        INDEX_WATERMARK_FORMAT_VERSION => {
            let sequence = reader.u64()?;
            reader.finish()?;
            Ok(sequence)
        }
        version => Err(CodecError {
            reason: format!("unknown index watermark format version {version}"),
        }),
    }
}

/// The index key of an invoice.
pub fn invoice_key(center: &Uscc, invoice_number: &InvoiceNumber) -> Vec<u8> {
    let mut key = Vec::with_capacity(USCC_LENGTH + invoice_number.as_str().len());
    key.extend_from_slice(center.as_bytes());
    key.extend_from_slice(invoice_number.as_str().as_bytes());
    key
}

/// Writes the index key of an invoice into `key` (emptied first), so a caller reusing
/// one buffer allocates no key per invoice.
pub fn invoice_key_into(center: &Uscc, invoice_number: &InvoiceNumber, key: &mut Vec<u8>) {
    key.clear();
    append_invoice_key(center, invoice_number, key);
}

/// Appends the index key of an invoice to `out` (the one definition of the key's bytes:
/// the center's USCC, then the invoice number's canonical text).
pub fn append_invoice_key(center: &Uscc, invoice_number: &InvoiceNumber, out: &mut Vec<u8>) {
    out.extend_from_slice(center.as_bytes());
    out.extend_from_slice(invoice_number.as_str().as_bytes());
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

/// Encodes an invoice order value in the current version: a center-year's redemptions
/// of one group commit, as (sequence, invoice number) in increasing sequence order. Its
/// key is [`invoice_order_key`] with the first sequence.
pub fn encode_invoice_order_group<'a>(
    entries: impl ExactSizeIterator<Item = (u64, &'a str)>,
    out: &mut Vec<u8>,
) {
    let mut writer = Writer::new(out);
    writer.bytes(&INVOICE_ORDER_MAGIC);
    writer.u16(INVOICE_ORDER_FORMAT_VERSION);
    writer.length(entries.len());
    for (sequence, number) in entries {
        writer.u64(sequence);
        writer.text(number);
    }
}

/// Decodes an invoice order value of either version stored under the key whose sequence
/// is `key_sequence`: the (sequence, invoice number) pairs it holds, in order.
pub fn decode_invoice_order_value(
    key_sequence: u64,
    bytes: &[u8],
) -> Result<Vec<(u64, InvoiceNumber)>, CodecError> {
    let versioned = bytes.len() > INVOICE_ORDER_MAGIC.len()
        && bytes[..4] == INVOICE_ORDER_MAGIC
        && bytes[4] < 0x20;
    if !versioned {
        // Version 1: the bare invoice number of the redemption at the key's sequence.
        let number = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| InvoiceNumber::from_stored(text).ok())
            .ok_or_else(|| CodecError {
                reason: "the invoice number (invoice order value v1) is not valid text".into(),
            })?;
        return Ok(vec![(key_sequence, number)]);
    }
    let mut reader = Reader::new(bytes);
    reader.take(4)?;
    match reader.u16()? {
        INVOICE_ORDER_FORMAT_VERSION => {
            // Each entry is at least a sequence and a length.
            let count = reader.length(12)?;
            if count == 0 {
                return Err(CodecError {
                    reason: "an invoice order group holds no invoice".into(),
                });
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let sequence = reader.u64()?;
                let expected_order = match entries.last() {
                    None => sequence == key_sequence,
                    Some((previous, _)) => sequence > *previous,
                };
                if !expected_order {
                    return Err(CodecError {
                        reason: format!(
                            "invoice order group at sequence {key_sequence}: sequence {sequence} is out of order"
                        ),
                    });
                }
                entries.push((sequence, reader.invoice_number()?));
            }
            reader.finish()?;
            Ok(entries)
        }
        version => Err(CodecError {
            reason: format!("unknown invoice order format version {version}"),
        }),
    }
}

/// Encodes an index value in the current version.
pub fn encode_index_entry(entry: &InvoiceEntry, out: &mut Vec<u8>) {
    encode_index_fields(
        IndexFields {
            voucher: &entry.voucher,
            amount: entry.amount,
            issue_date: entry.issue_date,
            delivery_proof: entry.delivery_proof.as_str(),
            subsidy: entry.subsidy,
            second_subsidy: entry.second_subsidy,
            sequence: entry.sequence,
            reversed_at: entry.reversed_at,
        },
        out,
    );
}

/// An index entry's fields, borrowed: the writer encodes a new redemption's entry
/// straight from its event, without building (and cloning into) an [`InvoiceEntry`].
pub struct IndexFields<'a> {
    pub voucher: &'a VoucherId,
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: &'a str,
    pub subsidy: Money,
    pub second_subsidy: Money,
    pub sequence: u64,
    pub reversed_at: Option<u64>,
}

/// Encodes an index value in the current version from borrowed fields.
pub fn encode_index_fields(fields: IndexFields<'_>, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    let stacked = !fields.second_subsidy.is_zero();
    writer.bytes(&INDEX_MAGIC);
    writer.u16(if stacked {
        INDEX_FORMAT_VERSION
    } else {
        INDEX_FORMAT_VERSION_SINGLE_SOURCE
    });
    writer.voucher_id(fields.voucher);
    writer.money(fields.amount);
    writer.date(fields.issue_date);
    writer.text(fields.delivery_proof);
    writer.money(fields.subsidy);
    writer.u64(fields.sequence);
    writer.u64(fields.reversed_at.unwrap_or(0));
    if stacked {
        writer.money(fields.second_subsidy);
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
