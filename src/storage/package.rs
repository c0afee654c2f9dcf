//! The events file of an audit package (`crate::export::package`): the log's records
//! exactly as stored, framed so they can be read back and checked offline.
//!
//! ```text
//! offset  size  field
//!      0     4  magic                   b"VLPK"
//!      4     2  format version          1 (little-endian)
//!      6     2  reserved                0
//!      8     8  first sequence          the first record's sequence (1: the whole log)
//!     16    32  chain hash before it    the genesis hash when the first sequence is 1
//!     48     …  records, each:          length (u32 LE) + the record's bytes as stored
//!                                       (a `VLEV` frame with its own chain hash)
//! ```
//!
//! The records are not re-encoded: a package holds the bytes the ledger hashed, so its
//! chain is checked by [`check_record`], as `verify` checks the live log's (with the
//! `sm3` crate, not the writer's own SM3).

use std::io::{Read, Write};

use super::record::{check_record, ChainHash, CheckedRecord, RecordError, CHAIN_HASH_LENGTH};
use super::store::{EventStore, StoreError};
use crate::limits::RECORD_PAYLOAD_LIMIT;

pub const PACKAGE_EVENTS_MAGIC: [u8; 4] = *b"VLPK";
pub const PACKAGE_EVENTS_VERSION: u16 = 1;
pub const PACKAGE_EVENTS_HEADER_LENGTH: usize = 48;
/// Longest record the events file may declare: a frame around the largest payload.
const RECORD_MAX_BYTES: usize =
    super::record::RECORD_HEADER_LENGTH + RECORD_PAYLOAD_LIMIT + CHAIN_HASH_LENGTH;

impl EventStore {
    /// Hands every stored record from `from` on to `visit`, as stored (unchecked: the
    /// caller checks each with [`check_record`]), until `visit` returns false.
    pub fn scan_raw_records(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Records are framed one by one inside the stored blocks; a damaged block ends the
        // scan with its error, as every other reader of the log sees it.
        let mut damaged = None;
        self.scan_records(from.max(1), |item| match item {
            Ok((sequence, record)) => visit(sequence, record),
            Err(error) => {
                damaged = Some(error);
                false
            }
        })?;
        match damaged {
            Some(error) => Err(super::store::corrupt_log(error)),
            None => Ok(()),
        }
    }
}

/// Writes the events file's header.
pub fn write_events_header(
    out: &mut impl Write,
    first_sequence: u64,
    chain_before: &ChainHash,
) -> std::io::Result<()> {
    out.write_all(&PACKAGE_EVENTS_MAGIC)?;
    out.write_all(&PACKAGE_EVENTS_VERSION.to_le_bytes())?;
    out.write_all(&0u16.to_le_bytes())?;
    out.write_all(&first_sequence.to_le_bytes())?;
    out.write_all(&chain_before.0)
}

/// Writes one record of the events file.
pub fn write_events_record(out: &mut impl Write, record: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(record.len())
        .map_err(|_| std::io::Error::other("a record longer than 4 GiB"))?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(record)
}

/// What is wrong with an events file; each names the byte offset or the sequence.
#[derive(Debug, thiserror::Error)]
pub enum EventsFileError {
    #[error("the header is cut short (48 bytes expected)")]
    Truncated,
    #[error("bad magic {found:02x?} (expected \"VLPK\")")]
    BadMagic { found: [u8; 4] },
    #[error("unknown format version {0}")]
    UnknownVersion(u16),
    #[error("the record at byte {offset} is cut short")]
    RecordCut { offset: u64 },
    #[error("the record at byte {offset} declares {declared} bytes, above the largest record")]
    RecordTooLong { offset: u64, declared: usize },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
}

/// The events file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsHeader {
    pub first_sequence: u64,
    pub chain_before: ChainHash,
}

/// Reads an events file as a stream: checks its header, then every record in order —
/// its frame, the sequence it should have, and the chain from the header's hash — and
/// hands each checked record to `visit`. Returns the header, the last sequence and the
/// chain head after it (the header's values when there is no record). Memory holds one
/// record at a time.
pub fn read_events_file(
    mut input: impl Read,
    mut visit: impl FnMut(&CheckedRecord<'_>) -> Result<(), RecordError>,
) -> Result<(EventsHeader, u64, ChainHash), EventsFileError> {
    let mut header_bytes = [0u8; PACKAGE_EVENTS_HEADER_LENGTH];
    read_exactly(&mut input, &mut header_bytes).map_err(|error| match error {
        Cut::Eof | Cut::Partial => EventsFileError::Truncated,
        Cut::Io(error) => EventsFileError::Io(error),
    })?;
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&header_bytes[0..4]);
    if magic != PACKAGE_EVENTS_MAGIC {
        return Err(EventsFileError::BadMagic { found: magic });
    }
    let version = u16::from_le_bytes([header_bytes[4], header_bytes[5]]);
    if version != PACKAGE_EVENTS_VERSION {
        return Err(EventsFileError::UnknownVersion(version));
    }
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&header_bytes[8..16]);
    let mut chain = [0u8; CHAIN_HASH_LENGTH];
    chain.copy_from_slice(&header_bytes[16..48]);
    let header = EventsHeader {
        first_sequence: u64::from_le_bytes(eight),
        chain_before: ChainHash(chain),
    };
    let mut offset = PACKAGE_EVENTS_HEADER_LENGTH as u64;
    let mut previous = header.chain_before;
    let mut last_sequence = header.first_sequence.saturating_sub(1);
    let mut record_bytes: Vec<u8> = Vec::with_capacity(1_024);
    // Bounded by the file: every round consumes at least four bytes, or ends.
    loop {
        let mut four = [0u8; 4];
        match read_exactly(&mut input, &mut four) {
            Ok(()) => {}
            Err(Cut::Eof) => break,
            Err(Cut::Partial) => return Err(EventsFileError::RecordCut { offset }),
            Err(Cut::Io(error)) => return Err(error.into()),
        }
        let declared = u32::from_le_bytes(four) as usize;
        if declared > RECORD_MAX_BYTES {
            return Err(EventsFileError::RecordTooLong { offset, declared });
        }
        record_bytes.resize(declared, 0);
        read_exactly(&mut input, &mut record_bytes).map_err(|error| match error {
            Cut::Eof | Cut::Partial => EventsFileError::RecordCut { offset },
            Cut::Io(error) => EventsFileError::Io(error),
        })?;
        let sequence = last_sequence + 1;
        let record = check_record(sequence, &record_bytes, &previous)?;
        visit(&record)?;
        previous = record.chain_hash;
        last_sequence = sequence;
        offset += 4 + declared as u64;
    }
    Ok((header, last_sequence, previous))
}

enum Cut {
    /// The input ended before the first byte (for a record's length: the file's end).
    Eof,
    /// The input ended part way through.
    Partial,
    Io(std::io::Error),
}

/// Fills `buffer`, or says where the input ended.
fn read_exactly(input: &mut impl Read, buffer: &mut [u8]) -> Result<(), Cut> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) if filled == 0 => return Err(Cut::Eof),
            Ok(0) => return Err(Cut::Partial),
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Cut::Io(error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, Origin, Reason, SequencedEvent, Timestamp};
    use crate::storage::record::{encode_record, genesis_chain_hash};

    /// An events file of `count` records, and the chain head after them.
    fn events_file(count: u64) -> (Vec<u8>, ChainHash) {
        let mut file = Vec::new();
        let genesis = genesis_chain_hash();
        write_events_header(&mut file, 1, &genesis).expect("header");
        let mut previous = genesis;
        let mut scratch = Vec::new();
        for sequence in 1..=count {
            let event = SequencedEvent {
                sequence,
                at: Timestamp(1_767_225_600_000 + sequence as i64),
                origin: Origin::unrecorded(),
                event: Event::ClockConfirmed {
                    reason: Reason::parse("时钟已核对 clock checked").expect("reason"),
                },
            };
            let mut record = Vec::new();
            previous = encode_record(&event, &previous, &mut scratch, &mut record).expect("record");
            write_events_record(&mut file, &record).expect("record");
        }
        (file, previous)
    }

    #[test]
    fn the_header_is_pinned_and_records_read_back_with_their_chain() {
        let (file, head) = events_file(3);
        assert_eq!(&file[0..4], b"VLPK");
        assert_eq!(&file[4..8], &[1, 0, 0, 0]);
        assert_eq!(&file[8..16], &1u64.to_le_bytes());
        assert_eq!(&file[16..48], &genesis_chain_hash().0);
        let mut sequences = Vec::new();
        let (header, last, found_head) = read_events_file(file.as_slice(), |record| {
            sequences.push(record.sequence);
            record.decode().map(|_| ())
        })
        .expect("read");
        assert_eq!(header.first_sequence, 1);
        assert_eq!((last, found_head), (3, head));
        assert_eq!(sequences, [1, 2, 3]);
    }

    #[test]
    fn damage_is_refused_naming_the_record_or_the_byte() {
        fn ignore(_: &CheckedRecord<'_>) -> Result<(), RecordError> {
            Ok(())
        }
        let (file, _) = events_file(3);
        // A flipped byte in the second record's payload breaks its chain link.
        let mut flipped = file.clone();
        let second =
            PACKAGE_EVENTS_HEADER_LENGTH + (file.len() - PACKAGE_EVENTS_HEADER_LENGTH) / 3 + 40;
        flipped[second] ^= 0x20;
        let error = read_events_file(flipped.as_slice(), ignore).expect_err("flipped");
        assert!(error.to_string().contains("record 2"), "{error}");
        // A torn tail: the last record cut short.
        let torn = &file[..file.len() - 5];
        let error = read_events_file(torn, ignore).expect_err("torn");
        assert!(
            matches!(error, EventsFileError::RecordCut { .. }),
            "{error}"
        );
        // A length prefix cut short.
        let (one, _) = events_file(1);
        let mut cut = one.clone();
        cut.extend_from_slice(&[7, 0]);
        let error = read_events_file(cut.as_slice(), ignore).expect_err("cut length");
        assert!(
            matches!(error, EventsFileError::RecordCut { .. }),
            "{error}"
        );
        // An absurd length allocates nothing.
        let mut absurd = one;
        absurd.extend_from_slice(&u32::MAX.to_le_bytes());
        let error = read_events_file(absurd.as_slice(), ignore).expect_err("absurd");
        assert!(
            matches!(error, EventsFileError::RecordTooLong { .. }),
            "{error}"
        );
        // Not a package.
        let error = read_events_file(&b"VLEV"[..], ignore).expect_err("short");
        assert!(matches!(error, EventsFileError::Truncated), "{error}");
    }
}
