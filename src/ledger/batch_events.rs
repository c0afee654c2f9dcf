//! [`BatchEvents`]: the events of the batch the writer last decided, kept in the chunks
//! they were decided in.
//!
//! A large batch is decided in chunks of about [`super::encoder::ENCODE_CHUNK_EVENTS`]
//! events, each handed to the record encoder as it fills and handed back with the
//! encoded batch. Until the thirty-third round of issue 12 the writer then appended every
//! chunk into one vector: a copy of the whole batch's events (~1.6 MB at 8,189
//! invoices) on the writer, between the last chunk's encoding and the batch's write, on
//! the path of every answer (memmove there was ~1% of the server's CPU), and a fresh
//! allocation for every chunk of every batch. Kept as chunks, nothing is copied, and the
//! chunks' vectors are used again by the next batch.

use crate::domain::SequencedEvent;

/// The last batch's events in decision order, as chunks; and emptied chunks kept for the
/// next batch.
#[derive(Debug, Default)]
pub struct BatchEvents {
    /// The batch's events: each chunk's in order, the chunks in order.
    chunks: Vec<Vec<SequencedEvent>>,
    /// Emptied chunks whose room the next batch uses.
    spare: Vec<Vec<SequencedEvent>>,
}

impl BatchEvents {
    /// Empties the batch; its chunks' room is kept for the next.
    pub(crate) fn clear(&mut self) {
        for mut chunk in self.chunks.drain(..) {
            chunk.clear();
            self.spare.push(chunk);
        }
    }

    /// An empty vector for a chunk: a spare one if there is one, else one with room for
    /// `capacity` events.
    pub(crate) fn spare_chunk(&mut self, capacity: usize) -> Vec<SequencedEvent> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Keeps `chunk` (already emptied) for a later batch.
    pub(crate) fn give_back(&mut self, mut chunk: Vec<SequencedEvent>) {
        chunk.clear();
        self.spare.push(chunk);
    }

    /// Adds the next chunk of the batch's events; an empty chunk is kept as spare room.
    pub(crate) fn push_chunk(&mut self, chunk: Vec<SequencedEvent>) {
        if chunk.is_empty() {
            self.give_back(chunk);
        } else {
            self.chunks.push(chunk);
        }
    }

    /// The batch's chunks in order (none empty).
    pub(crate) fn chunks(&self) -> &[Vec<SequencedEvent>] {
        &self.chunks
    }

    /// How many events the batch appended.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Vec::is_empty)
    }

    /// The batch's events in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = &SequencedEvent> + '_ {
        self.chunks.iter().flatten()
    }

    /// The batch's last event.
    pub fn last(&self) -> Option<&SequencedEvent> {
        self.chunks.iter().rev().find_map(|chunk| chunk.last())
    }

    /// A copy of the batch's events, in order.
    pub fn to_vec(&self) -> Vec<SequencedEvent> {
        self.iter().cloned().collect()
    }

    /// Writes the room of `chunks` spare chunks of `capacity` events each now, so the
    /// first batches do not stop to fault their pages in (`storage::heap`).
    pub(crate) fn prepare_room(&mut self, chunks: usize, capacity: usize) {
        for _ in 0..chunks {
            let mut chunk = Vec::new();
            crate::storage::heap::write_spare_room(&mut chunk, capacity);
            self.spare.push(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, Origin, ProgrammeYear, Timestamp};

    fn event(sequence: u64) -> SequencedEvent {
        SequencedEvent {
            sequence,
            at: Timestamp(1),
            origin: Origin::system("batch events test"),
            event: Event::ProgrammeYearClosed {
                year: ProgrammeYear::new(2025).expect("year"),
            },
        }
    }

    #[test]
    fn given_chunks_when_read_then_events_come_in_order() {
        let mut events = BatchEvents::default();
        assert!(events.is_empty());
        assert_eq!(events.last(), None);
        let mut first = events.spare_chunk(4);
        first.extend([event(1), event(2)]);
        events.push_chunk(first);
        events.push_chunk(Vec::new());
        assert_eq!(events.chunks().len(), 1, "an empty chunk is not a chunk");
        let mut second = events.spare_chunk(4);
        second.push(event(3));
        events.push_chunk(second);

        assert_eq!(events.len(), 3);
        assert!(!events.is_empty());
        let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
        assert_eq!(sequences, [1, 2, 3]);
        assert_eq!(events.to_vec(), [event(1), event(2), event(3)]);
        assert_eq!(events.last().map(|event| event.sequence), Some(3));
    }

    #[test]
    fn given_a_batch_when_cleared_then_its_chunks_room_serves_the_next() {
        let mut events = BatchEvents::default();
        let mut chunk = events.spare_chunk(16);
        chunk.push(event(1));
        let room = chunk.as_ptr();
        events.push_chunk(chunk);
        events.clear();
        assert!(events.is_empty());
        assert_eq!(events.len(), 0);
        let reused = events.spare_chunk(1);
        assert!(reused.is_empty());
        assert_eq!(
            reused.as_ptr(),
            room,
            "the cleared chunk's room is used again"
        );
        assert!(reused.capacity() >= 16);
    }
}
