//! Reading the log: the one loop that turns stored records into events.
//!
//! Recovery, `verify`, `ReadEvents` and subscriptions all read through
//! [`EventStore::read_log`], which checks, for every record in order: that no sequence
//! number is missing, the frame (magic, version, lengths), the link of the SM3 chain to
//! the record before, and that the payload decodes into the event type the frame names.
//! Whether the records are stored in log blocks or one per key (older directories, or
//! the older part of a log) makes no difference here: each record comes with the sequence
//! its place in the log gives it. The chain is checked eight records at a time
//! ([`CHAIN_CHECK_GROUP`]), with the same result as one at a time; `verify` checks it
//! with the `sm3` crate instead ([`ChainCheck`]).

use std::ops::ControlFlow;

use super::block::{segment_records, SegmentRecords};
use super::record::{
    chained_bytes, check_record_after, genesis_chain_hash, parse_frame, record_version, ChainHash,
    RecordError,
};
use super::sm3_lanes::{midstates_of, LANES};
use super::store::{EventStore, StoreError};
use crate::domain::{Event, Origin, SequencedEvent, Timestamp};

/// Records whose chain hashes the reader computes together: SM3 compresses the blocks
/// that all of them have in full in the eight lanes of one AVX2 register
/// (`sm3_lanes.rs`), as the writer does; only each record's last block or two waits for
/// the record before it. A reader that stops after one record has hashed at most seven
/// more in vain.
const CHAIN_CHECK_GROUP: usize = LANES;

/// How [`EventStore::read_log_checked_by`] computes the chain hashes it checks. Both
/// give the same verdict on every log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Eight records at a time, their common full blocks in the SM3 lanes
    /// (`sm3_lanes.rs`): the code that computed them when they were written. Replay,
    /// the invoice index's catch-up, reads and subscriptions.
    Lanes,
    /// One record at a time with the `sm3` crate, a second implementation: `verify`
    /// uses it, so that a fault in the writer's own SM3 cannot pass its own check.
    Reference,
}

/// An event as the log holds it: its place, its time and the chain hash after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    pub sequence: u64,
    pub at: Timestamp,
    pub chain_hash: ChainHash,
    /// Who sent the command that caused it.
    pub origin: Origin,
    pub event: Event,
}

impl LoggedEvent {
    pub fn into_sequenced(self) -> SequencedEvent {
        SequencedEvent {
            sequence: self.sequence,
            at: self.at,
            origin: self.origin,
            event: self.event,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record is missing, corrupt, or breaks the chain; it names the sequence.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// How far a read of the log got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// The last record read (or `from - 1` when none was).
    pub last_sequence: u64,
    /// The chain hash after it.
    pub chain_head: ChainHash,
}

impl EventStore {
    /// The chain hash after record `sequence`, as that record stores it (the genesis hash
    /// for 0). Lets a reader start in the middle of the log and still check every link
    /// from there on.
    pub fn chain_hash_after(&self, sequence: u64) -> Result<ChainHash, LogError> {
        if sequence == 0 {
            return Ok(genesis_chain_hash());
        }
        let bytes = self
            .record(sequence)?
            .ok_or(RecordError::Missing { sequence, next: 0 })?;
        Ok(parse_frame(sequence, &bytes)?.chain_hash)
    }

    /// Reads records `from..` in order, checking each one (see the module doc) against
    /// `previous`, the chain hash after record `from - 1`, and hands each event to
    /// `visit` until it breaks or the log ends. Stops at the first bad record with an
    /// error naming its sequence.
    pub fn read_log(
        &self,
        from: u64,
        previous: ChainHash,
        visit: impl FnMut(LoggedEvent) -> ControlFlow<()>,
    ) -> Result<LogPosition, LogError> {
        self.read_log_checked_by(ChainCheck::Lanes, from, previous, visit)
    }

    /// [`EventStore::read_log`], its chain checked by `check`.
    pub fn read_log_checked_by(
        &self,
        check: ChainCheck,
        from: u64,
        previous: ChainHash,
        mut visit: impl FnMut(LoggedEvent) -> ControlFlow<()>,
    ) -> Result<LogPosition, LogError> {
        assert!(from >= 1, "sequence numbers start at 1");
        let mut position = LogPosition {
            last_sequence: from - 1,
            chain_head: previous,
        };
        let mut failure: Option<RecordError> = None;
        let mut midstates = Vec::with_capacity(CHAIN_CHECK_GROUP);
        self.scan_segments(from, |first, value| {
            let mut records = segment_records(first, value);
            let mut group: [(u64, &[u8]); CHAIN_CHECK_GROUP] = [(0, &[]); CHAIN_CHECK_GROUP];
            loop {
                let (count, damaged) = next_group(&mut records, from, &mut group);
                let group = &group[..count];
                if check == ChainCheck::Lanes {
                    // A record before format 3 begins its hash with the previous one, so
                    // no block of it can be hashed ahead: handed over empty, it sends its
                    // group to the scalar path rather than be hashed twice.
                    midstates_of(
                        group.len(),
                        |index| match record_version(group[index].1) {
                            Some(version) if version >= 3 => chained_bytes(group[index].1),
                            _ => &[],
                        },
                        &mut midstates,
                    );
                }
                for (index, &(sequence, bytes)) in group.iter().enumerate() {
                    let midstate = match check {
                        ChainCheck::Lanes => midstates.get(index).copied(),
                        ChainCheck::Reference => None,
                    };
                    let expected = position.last_sequence + 1;
                    if sequence != expected {
                        failure = Some(RecordError::Missing {
                            sequence: expected,
                            next: sequence,
                        });
                        return false;
                    }
                    let decoded =
                        check_record_after(sequence, bytes, &position.chain_head, midstate)
                            .and_then(|record| {
                                Ok((record.at, record.chain_hash, record.decode_with_origin()?))
                            });
                    let (at, chain_hash, (origin, event)) = match decoded {
                        Ok(decoded) => decoded,
                        Err(error) => {
                            failure = Some(error);
                            return false;
                        }
                    };
                    position = LogPosition {
                        last_sequence: sequence,
                        chain_head: chain_hash,
                    };
                    let next = visit(LoggedEvent {
                        sequence,
                        at,
                        chain_hash,
                        origin,
                        event,
                    });
                    if next.is_break() {
                        return false;
                    }
                }
                if let Some(error) = damaged {
                    failure = Some(error);
                    return false;
                }
                if count < CHAIN_CHECK_GROUP {
                    // The segment is read; on to the next.
                    return true;
                }
            }
        })?;
        match failure {
            Some(error) => Err(error.into()),
            None => Ok(position),
        }
    }

    /// Reads one event, checked against the record before it.
    pub fn read_event(&self, sequence: u64) -> Result<Option<LoggedEvent>, LogError> {
        let previous = self.chain_hash_after(sequence.saturating_sub(1))?;
        let mut found = None;
        self.read_log(sequence, previous, |event| {
            found = Some(event);
            ControlFlow::Break(())
        })?;
        Ok(found)
    }
}

/// Fills `group` with the segment's next records from `from` on, as many as it holds:
/// returns how many it took and, if damage ended them, the error that names it.
fn next_group<'a>(
    records: &mut SegmentRecords<'a>,
    from: u64,
    group: &mut [(u64, &'a [u8]); CHAIN_CHECK_GROUP],
) -> (usize, Option<RecordError>) {
    let mut count = 0;
    while count < CHAIN_CHECK_GROUP {
        match records.next() {
            None => break,
            Some(Ok((sequence, _))) if sequence < from => continue,
            Some(Ok(record)) => {
                group[count] = record;
                count += 1;
            }
            Some(Err(error)) => return (count, Some(error)),
        }
    }
    (count, None)
}
