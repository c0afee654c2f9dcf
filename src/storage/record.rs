//! The on-disk record format of the event log, and its SM3 hash chain.
//!
//! Every record is self-describing and self-checking:
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VLEV"
//!      4     2  format version   1 (little-endian)
//!      6     2  event type       Event::type_number
//!      8     8  sequence         dense, from 1
//!     16     8  time             ms since the Unix epoch, of the command
//!     24     4  payload length   N
//!     28     N  payload          v2: origin + the event, field by field (`payload_v2`)
//!                                 v1: the event, bincode of frozen shapes (`payload_v1`)
//!   28+N    32  chain hash       v3: SM3(bytes 0..28+N || previous chain hash)
//!                                 v1, v2: SM3(previous chain hash || bytes 0..28+N)
//! ```
//!
//! Version 3 (written now) puts the previous chain hash after the record's own bytes
//! instead of before them: all but the last block or two of a record's SM3 then do not
//! wait for the record before it, so the writer hashes eight records' first blocks at
//! once (`sm3_lanes.rs`; issue 12). Its payload is version 2's. Version 2 records who
//! sent each command in the payload; versions 1 and 2 are still read (version 1's events
//! show the origin as "not recorded"), and a log may hold records of several versions in
//! order: each record's hash is checked by its own version's rule.
//!
//! The chain hash makes the log tamper-evident: changing a byte, dropping a record or
//! swapping two changes every later hash. A torn or truncated record fails the length or
//! the hash check. Records of an unknown format version are refused, not guessed at.

use sm3::{Digest, Sm3};

use super::sm3_lanes::{finish_chain_hash, Midstate, RecordSpan};
use super::{payload_v1, payload_v2};
use crate::domain::{Event, Origin, SequencedEvent, Timestamp};
pub use crate::limits::RECORD_PAYLOAD_LIMIT;

pub const RECORD_MAGIC: [u8; 4] = *b"VLEV";
pub const RECORD_FORMAT_VERSION: u16 = 3;
/// The oldest record format this build reads.
pub const RECORD_FORMAT_OLDEST_READ: u16 = 1;
pub const RECORD_HEADER_LENGTH: usize = 28;
pub const CHAIN_HASH_LENGTH: usize = 32;

/// The hash that precedes record 1: SM3 of a fixed label, so an empty log has a
/// well-defined head.
pub fn genesis_chain_hash() -> ChainHash {
    let mut hasher = Sm3::new();
    hasher.update(b"voucher-ledger event log genesis v1");
    ChainHash(hasher.finalize().into())
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; CHAIN_HASH_LENGTH]);

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

/// What can be wrong with a record; each names the sequence number it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record {sequence}: {length} bytes is too short for a record")]
    Truncated { sequence: u64, length: usize },
    #[error("record {sequence}: bad magic {found:02x?}")]
    BadMagic { sequence: u64, found: [u8; 4] },
    #[error("record {sequence}: unknown format version {version}")]
    UnknownVersion { sequence: u64, version: u16 },
    #[error(
        "record {sequence}: payload length {declared} does not match the record size {actual}"
    )]
    LengthMismatch {
        sequence: u64,
        declared: usize,
        actual: usize,
    },
    #[error("record stored under sequence {key} says it is sequence {inside}")]
    SequenceMismatch { key: u64, inside: u64 },
    #[error("record {sequence} is missing (the next stored record is {next})")]
    Missing { sequence: u64, next: u64 },
    #[error("record {sequence}: chain hash mismatch (edited, dropped or reordered records)")]
    ChainBroken { sequence: u64 },
    #[error("record {sequence}: payload does not decode: {reason}")]
    BadPayload { sequence: u64, reason: String },
    #[error("record {sequence}: type {declared} in the frame, but the payload is type {decoded}")]
    TypeMismatch {
        sequence: u64,
        declared: u16,
        decoded: u16,
    },
    /// The log block (`block.rs`) that holds, or should hold, this record is damaged.
    #[error("record {sequence}: its log block is damaged: {reason}")]
    BadBlock { sequence: u64, reason: String },
}

impl RecordError {
    pub fn sequence(&self) -> u64 {
        match self {
            RecordError::Truncated { sequence, .. }
            | RecordError::BadMagic { sequence, .. }
            | RecordError::UnknownVersion { sequence, .. }
            | RecordError::LengthMismatch { sequence, .. }
            | RecordError::ChainBroken { sequence }
            | RecordError::BadPayload { sequence, .. }
            | RecordError::TypeMismatch { sequence, .. }
            | RecordError::BadBlock { sequence, .. } => *sequence,
            RecordError::SequenceMismatch { key, .. } => *key,
            RecordError::Missing { sequence, .. } => *sequence,
        }
    }
}

/// Appends the framed record for `event` to `out` and returns its chain hash.
/// `payload_scratch` is reused across calls so the hot path allocates nothing.
pub fn encode_record(
    event: &SequencedEvent,
    previous: &ChainHash,
    payload_scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<ChainHash, String> {
    let span = encode_record_frame(event, payload_scratch, out)?;
    let hash = chain_hash_of(
        RECORD_FORMAT_VERSION,
        previous,
        &out[span.start..span.body_end],
    );
    out[span.body_end..].copy_from_slice(&hash.0);
    Ok(hash)
}

/// Appends the framed record for `event` to `out` with 32 zero bytes where its chain
/// hash goes, and says where it lies; the hash is filled in later for many records at
/// once (`sm3_lanes::fill_chain_hashes`).
pub(super) fn encode_record_frame(
    event: &SequencedEvent,
    payload_scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<RecordSpan, String> {
    payload_scratch.clear();
    payload_v2::encode(&event.origin, &event.event, payload_scratch);
    if payload_scratch.len() > RECORD_PAYLOAD_LIMIT {
        return Err(format!(
            "event {} is {} bytes, above the {RECORD_PAYLOAD_LIMIT}-byte limit",
            event.sequence,
            payload_scratch.len()
        ));
    }
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&RECORD_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&event.event.type_number().to_le_bytes());
    out.extend_from_slice(&event.sequence.to_le_bytes());
    out.extend_from_slice(&event.at.0.to_le_bytes());
    out.extend_from_slice(&(payload_scratch.len() as u32).to_le_bytes());
    out.extend_from_slice(payload_scratch);
    let body_end = out.len();
    out.extend_from_slice(&[0u8; CHAIN_HASH_LENGTH]);
    Ok(RecordSpan { start, body_end })
}

/// The chain hash of a record of format `version` whose bytes before the hash are
/// `body`, following `previous`: SM3(body || previous) from version 3 on, SM3(previous
/// || body) before. The `sm3` crate computes it: it is the reference the writer's own
/// batched hashing (`sm3_lanes.rs`) is tested against.
pub fn chain_hash_of(version: u16, previous: &ChainHash, body: &[u8]) -> ChainHash {
    let mut hasher = Sm3::new();
    if version >= 3 {
        hasher.update(body);
        hasher.update(previous.0);
    } else {
        hasher.update(previous.0);
        hasher.update(body);
    }
    ChainHash(hasher.finalize().into())
}

/// A record whose frame has been checked; the payload is not decoded yet.
pub struct CheckedRecord<'a> {
    /// The sequence the record is stored under.
    pub sequence: u64,
    /// The sequence written inside the frame (equal to `sequence` once chain-checked).
    pub inside_sequence: u64,
    pub at: Timestamp,
    pub event_type: u16,
    pub version: u16,
    pub payload: &'a [u8],
    pub chain_hash: ChainHash,
}

/// Checks the frame of `bytes` (stored under `key_sequence`) and its link to `previous`.
pub fn check_record<'a>(
    key_sequence: u64,
    bytes: &'a [u8],
    previous: &ChainHash,
) -> Result<CheckedRecord<'a>, RecordError> {
    check_record_after(key_sequence, bytes, previous, None)
}

/// The format version a stored record's frame names (`None` for bytes too short to
/// name one; [`parse_frame`] refuses those).
pub(super) fn record_version(bytes: &[u8]) -> Option<u16> {
    let version = bytes.get(4..6)?;
    Some(u16::from_le_bytes([version[0], version[1]]))
}

/// The bytes of a stored record that its chain hash is computed over (all but the hash
/// at its end); empty for bytes too short to hold a hash, which [`parse_frame`] refuses.
pub(super) fn chained_bytes(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().saturating_sub(CHAIN_HASH_LENGTH)]
}

/// [`check_record`], with the first blocks of [`chained_bytes`] already compressed into
/// `midstate` (from `sm3_lanes::midstates_of`, eight records at a time), as the log's
/// reader checks them (`log.rs`). A record of a format before 3, whose hash begins with
/// the previous hash, is hashed whole, and the midstate is not used.
pub(super) fn check_record_after<'a>(
    key_sequence: u64,
    bytes: &'a [u8],
    previous: &ChainHash,
    midstate: Option<Midstate>,
) -> Result<CheckedRecord<'a>, RecordError> {
    let record = parse_frame(key_sequence, bytes)?;
    let body = chained_bytes(bytes);
    let computed = match midstate {
        Some(midstate) if record.version >= 3 => finish_chain_hash(body, midstate, previous),
        _ => chain_hash_of(record.version, previous, body),
    };
    if computed != record.chain_hash {
        return Err(RecordError::ChainBroken {
            sequence: key_sequence,
        });
    }
    if record.inside_sequence != key_sequence {
        return Err(RecordError::SequenceMismatch {
            key: key_sequence,
            inside: record.inside_sequence,
        });
    }
    Ok(record)
}

/// Checks everything about a record's frame except its link to the previous record:
/// for readers (subscriptions, range reads) that trust the store and want the record's
/// own chain hash to pass on.
pub fn parse_frame(key_sequence: u64, bytes: &[u8]) -> Result<CheckedRecord<'_>, RecordError> {
    let sequence = key_sequence;
    if bytes.len() < RECORD_HEADER_LENGTH + CHAIN_HASH_LENGTH {
        return Err(RecordError::Truncated {
            sequence,
            length: bytes.len(),
        });
    }
    let magic: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != RECORD_MAGIC {
        return Err(RecordError::BadMagic {
            sequence,
            found: magic,
        });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(RECORD_FORMAT_OLDEST_READ..=RECORD_FORMAT_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion { sequence, version });
    }
    let event_type = u16::from_le_bytes([bytes[6], bytes[7]]);
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[8..16]);
    let inside_sequence = u64::from_le_bytes(eight);
    eight.copy_from_slice(&bytes[16..24]);
    let at = Timestamp(i64::from_le_bytes(eight));
    let mut four = [0u8; 4];
    four.copy_from_slice(&bytes[24..28]);
    let declared = u32::from_le_bytes(four) as usize;
    let actual = bytes.len() - RECORD_HEADER_LENGTH - CHAIN_HASH_LENGTH;
    if declared != actual {
        return Err(RecordError::LengthMismatch {
            sequence,
            declared,
            actual,
        });
    }
    let body_end = RECORD_HEADER_LENGTH + declared;
    let mut stored = [0u8; CHAIN_HASH_LENGTH];
    stored.copy_from_slice(&bytes[body_end..]);
    Ok(CheckedRecord {
        sequence,
        inside_sequence,
        at,
        event_type,
        version,
        payload: &bytes[RECORD_HEADER_LENGTH..body_end],
        chain_hash: ChainHash(stored),
    })
}

impl CheckedRecord<'_> {
    /// Decodes the payload and checks that it is the type the frame says.
    pub fn decode(&self) -> Result<Event, RecordError> {
        Ok(self.decode_with_origin()?.1)
    }

    /// Decodes the payload into who sent the command and the event, and checks that it
    /// is the type the frame says.
    pub fn decode_with_origin(&self) -> Result<(Origin, Event), RecordError> {
        let bad = |error: super::codec::CodecError| RecordError::BadPayload {
            sequence: self.sequence,
            reason: error.reason,
        };
        let (origin, event) = match self.version {
            1 => (
                Origin::unrecorded(),
                payload_v1::decode(self.payload).map_err(bad)?,
            ),
            _ => payload_v2::decode(self.event_type, self.payload).map_err(bad)?,
        };
        if event.type_number() != self.event_type {
            return Err(RecordError::TypeMismatch {
                sequence: self.sequence,
                declared: self.event_type,
                decoded: event.type_number(),
            });
        }
        Ok((origin, event))
    }
}

/// SM3 of `bytes`, for snapshot and index checksums.
pub fn sm3_digest(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sm3::new();
    hasher.update(bytes);
    hasher.finalize().into()
}
