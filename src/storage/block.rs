//! Log blocks: the records of one committed batch stored under one key of the `events`
//! column family, instead of one key per record.
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VLBK"
//!      4     2  format version   1 (little-endian)
//!      6     2  reserved         0
//!      8     8  first sequence   the sequence of its first record (= the key)
//!     16     4  record count     N ≥ 1
//!     20     …  N records        each a complete `VLEV` record (`record.rs`), back to
//!                                back, in sequence order; each one's payload length
//!                                says where the next begins
//! ```
//!
//! A block changes only how records are stored, not what they are: every record keeps its
//! own frame and its own link in the SM3 chain, so a log hashes the same whether its
//! records were written one per key (before block format 1) or in blocks, and a log may
//! hold both (old records, then blocks). Every value of the `events` family is a
//! *segment*: a run of consecutive records stored under the sequence of its first one,
//! either one bare record or a block. Reading from a sequence seeks for the segment at or
//! before it.
//!
//! A block holds records of one batch only (one `WriteBatch`, so it is written whole or
//! not at all); a large batch is cut into blocks of about [`LOG_BLOCK_BYTES_TARGET`]
//! bytes, so that reading one event never loads more than that.
//!
//! What a reader refuses, naming a sequence: a block whose first sequence differs from
//! its key, an unknown block version, no records, a record running past the block's end,
//! or bytes after the records it counts. Everything inside a record (magic, version,
//! length, chain, payload) is checked by `record.rs` as for a bare record.

use super::record::{RecordError, CHAIN_HASH_LENGTH, RECORD_HEADER_LENGTH, RECORD_MAGIC};
pub use crate::limits::LOG_BLOCK_BYTES_TARGET;

pub const BLOCK_MAGIC: [u8; 4] = *b"VLBK";
pub const BLOCK_FORMAT_VERSION: u16 = 1;
pub const BLOCK_HEADER_LENGTH: usize = 20;

/// Starts a block in `out` (which must be empty) for records from `first_sequence` on;
/// its count is written by [`finish_block`].
pub fn start_block(out: &mut Vec<u8>, first_sequence: u64) {
    debug_assert!(out.is_empty(), "a block starts an empty value");
    out.extend_from_slice(&BLOCK_MAGIC);
    out.extend_from_slice(&BLOCK_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&first_sequence.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Writes the count of records appended after [`start_block`].
pub fn finish_block(block: &mut [u8], count: u32) {
    block[16..20].copy_from_slice(&count.to_le_bytes());
}

/// Whether a stored value of the `events` family is a block (else it is a bare record).
pub fn is_block(value: &[u8]) -> bool {
    value.len() >= 4 && value[..4] == BLOCK_MAGIC
}

/// A block's first sequence and record count, checked against its key.
pub fn block_header(key_sequence: u64, value: &[u8]) -> Result<(u64, u32), RecordError> {
    let bad = |reason: String| RecordError::BadBlock {
        sequence: key_sequence,
        reason,
    };
    if value.len() < BLOCK_HEADER_LENGTH {
        return Err(bad(format!(
            "{} bytes is too short for a block header",
            value.len()
        )));
    }
    let version = u16::from_le_bytes([value[4], value[5]]);
    if version != BLOCK_FORMAT_VERSION {
        return Err(bad(format!("unknown block format version {version}")));
    }
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&value[8..16]);
    let first = u64::from_le_bytes(eight);
    if first != key_sequence {
        return Err(bad(format!(
            "the block stored under sequence {key_sequence} says it starts at {first}"
        )));
    }
    let count = u32::from_le_bytes([value[16], value[17], value[18], value[19]]);
    if count == 0 {
        return Err(bad("the block holds no records".into()));
    }
    Ok((first, count))
}

/// The sequence of the last record of the segment stored under `key_sequence`.
pub fn segment_last_sequence(key_sequence: u64, value: &[u8]) -> Result<u64, RecordError> {
    if !is_block(value) {
        return Ok(key_sequence);
    }
    let (first, count) = block_header(key_sequence, value)?;
    Ok(first + u64::from(count) - 1)
}

/// The records of the segment stored under `key_sequence`, in order, as (sequence, the
/// record's bytes); an error (once, then nothing) where the segment is damaged.
pub fn segment_records(key_sequence: u64, value: &[u8]) -> SegmentRecords<'_> {
    if !is_block(value) {
        return SegmentRecords {
            state: SegmentState::Bare {
                sequence: key_sequence,
                value: Some(value),
            },
        };
    }
    let state = match block_header(key_sequence, value) {
        Ok((first, count)) => SegmentState::Block {
            value,
            offset: BLOCK_HEADER_LENGTH,
            next: first,
            left: count,
        },
        Err(error) => SegmentState::Failed(Some(error)),
    };
    SegmentRecords { state }
}

pub struct SegmentRecords<'a> {
    state: SegmentState<'a>,
}

enum SegmentState<'a> {
    Bare {
        sequence: u64,
        value: Option<&'a [u8]>,
    },
    Block {
        value: &'a [u8],
        offset: usize,
        next: u64,
        left: u32,
    },
    Failed(Option<RecordError>),
}

impl<'a> Iterator for SegmentRecords<'a> {
    type Item = Result<(u64, &'a [u8]), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.state {
            SegmentState::Bare { sequence, value } => {
                value.take().map(|bytes| Ok((*sequence, bytes)))
            }
            SegmentState::Failed(error) => error.take().map(Err),
            SegmentState::Block {
                value,
                offset,
                next,
                left,
            } => {
                let sequence = *next;
                let whole: &'a [u8] = value;
                let rest: &'a [u8] = &whole[*offset..];
                if *left == 0 {
                    if rest.is_empty() {
                        return None;
                    }
                    let error = RecordError::BadBlock {
                        sequence,
                        reason: format!("{} bytes follow the records the block counts", rest.len()),
                    };
                    self.state = SegmentState::Failed(None);
                    return Some(Err(error));
                }
                match record_length(sequence, rest) {
                    Ok(length) => {
                        *offset += length;
                        *next += 1;
                        *left -= 1;
                        Some(Ok((sequence, &rest[..length])))
                    }
                    Err(error) => {
                        self.state = SegmentState::Failed(None);
                        Some(Err(error))
                    }
                }
            }
        }
    }
}

/// The length of the record at the start of `rest`, from its payload length field,
/// refused if it runs past the end of the block.
fn record_length(sequence: u64, rest: &[u8]) -> Result<usize, RecordError> {
    let minimum = RECORD_HEADER_LENGTH + CHAIN_HASH_LENGTH;
    if rest.len() < minimum {
        return Err(RecordError::Truncated {
            sequence,
            length: rest.len(),
        });
    }
    if rest[..4] != RECORD_MAGIC {
        return Err(RecordError::BadMagic {
            sequence,
            found: [rest[0], rest[1], rest[2], rest[3]],
        });
    }
    let declared = u32::from_le_bytes([rest[24], rest[25], rest[26], rest[27]]) as usize;
    let length = declared.saturating_add(minimum);
    if length > rest.len() {
        return Err(RecordError::LengthMismatch {
            sequence,
            declared,
            actual: rest.len() - minimum,
        });
    }
    Ok(length)
}

/// Where the record `sequence` lies in a segment stored under `key_sequence`: its byte
/// range, or `None` when the segment does not hold it.
pub fn find_record(
    key_sequence: u64,
    value: &[u8],
    sequence: u64,
) -> Result<Option<std::ops::Range<usize>>, RecordError> {
    let start = value.as_ptr() as usize;
    for item in segment_records(key_sequence, value) {
        let (found, bytes) = item?;
        if found == sequence {
            let offset = bytes.as_ptr() as usize - start;
            return Ok(Some(offset..offset + bytes.len()));
        }
        if found > sequence {
            break;
        }
    }
    Ok(None)
}

/// Builds a block value from (already framed) records starting at `first_sequence`.
pub fn block_of(first_sequence: u64, records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        BLOCK_HEADER_LENGTH + records.iter().map(|record| record.len()).sum::<usize>(),
    );
    start_block(&mut out, first_sequence);
    for record in records {
        out.extend_from_slice(record);
    }
    finish_block(&mut out, records.len() as u32);
    out
}
