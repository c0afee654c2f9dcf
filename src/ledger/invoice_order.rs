//! [`InvoiceOrderGroups`]: a batch's redemptions, noted as the writer decides them and
//! gathered into the invoice order's groups (one per center and year) while it waits for
//! the record encoder.
//!
//! The invoice order (`storage::index`, `VLIO` v2) keeps, per center and year, the
//! sequence and number of every invoice redeemed, one group per batch. Until the
//! thirty-seventh round of issue 12 the writer noted each redemption's place among the
//! batch's events while deciding, and gathered the groups when it sealed the batch: a
//! pass over 8,189 places, each a read of an event somewhere in ~2 MB of chunks and a
//! hash lookup, ~0.5 ms between the encoder's last chunk and the batch's write, with the
//! other core idle (one connection, timed per phase). Now each redemption is noted with
//! its invoice number, in one vector written in order (the decide loop's memory traffic
//! stays one stream: gathering into ~50 groups right there made deciding slower), and the
//! groups are gathered from it once the last chunk is handed to the encoder, while the
//! writer would otherwise wait for the encoder's last records, and sorted into key order
//! there too ([`InvoiceOrderGroups::gather`]); sealing only writes them.

use rustc_hash::FxHashMap;

use crate::domain::{InvoiceNumber, ProgrammeYear, Uscc};

/// One redemption of the batch, as noted while it was decided.
#[derive(Debug)]
struct NotedRedemption {
    center: Uscc,
    year: ProgrammeYear,
    sequence: u64,
    invoice_number: InvoiceNumber,
}

/// One center's redemptions of one year: the places of their notes, in sequence order.
#[derive(Debug)]
struct Group {
    center: Uscc,
    year: ProgrammeYear,
    notes: Vec<u32>,
}

/// The batch's redemptions and, once gathered, their groups; the room of both is kept
/// from batch to batch.
#[derive(Debug, Default)]
pub(crate) struct InvoiceOrderGroups {
    notes: Vec<NotedRedemption>,
    groups: Vec<Group>,
    /// Where each (center, year) has its group in `groups` while they are gathered.
    position_of: FxHashMap<(Uscc, ProgrammeYear), usize>,
    /// Emptied note lists whose room the next batch's groups use.
    spare: Vec<Vec<u32>>,
    /// Set once the notes are in their groups; nothing may be noted until
    /// [`InvoiceOrderGroups::clear`].
    gathered: bool,
}

impl InvoiceOrderGroups {
    /// Writes the room of `redemptions` notes now, so the first batches do not fault
    /// its pages in while they are decided (`storage::heap`).
    pub(crate) fn prepare_room(&mut self, redemptions: usize) {
        crate::storage::heap::write_spare_room(&mut self.notes, redemptions);
    }

    /// Empties the groups for the next batch, keeping their room.
    pub(crate) fn clear(&mut self) {
        self.notes.clear();
        self.position_of.clear();
        for group in self.groups.drain(..) {
            let mut notes = group.notes;
            notes.clear();
            self.spare.push(notes);
        }
        self.gathered = false;
    }

    /// Notes a redemption: `invoice_number` of `center`, on a voucher of `year`, redeemed
    /// by the event `sequence`. Redemptions are noted in sequence order.
    pub(crate) fn note(
        &mut self,
        center: Uscc,
        year: ProgrammeYear,
        sequence: u64,
        invoice_number: &InvoiceNumber,
    ) {
        assert!(
            !self.gathered,
            "a redemption is noted after its batch's groups were gathered"
        );
        debug_assert!(
            self.notes
                .last()
                .is_none_or(|last| last.sequence < sequence),
            "redemptions are noted in sequence order"
        );
        self.notes.push(NotedRedemption {
            center,
            year,
            sequence,
            invoice_number: invoice_number.clone(),
        });
    }

    /// Puts every note in its (center, year) group and sorts the groups into the key
    /// order of the invoice order's family (a batch's keys go into the memtable fastest
    /// in key order). Once per batch; later calls do nothing.
    pub(crate) fn gather(&mut self) {
        if self.gathered {
            return;
        }
        self.gathered = true;
        // A place is kept as u32 (a quarter of the room of a usize); a batch holds at
        // most `SUBMIT_BATCH_LIMIT` commands.
        assert!(
            u32::try_from(self.notes.len()).is_ok(),
            "a batch's redemptions are numbered in u32"
        );
        let groups = &mut self.groups;
        let spare = &mut self.spare;
        for (place, note) in self.notes.iter().enumerate() {
            let position = *self
                .position_of
                .entry((note.center, note.year))
                .or_insert_with(|| {
                    groups.push(Group {
                        center: note.center,
                        year: note.year,
                        notes: spare.pop().unwrap_or_default(),
                    });
                    groups.len() - 1
                });
            groups[position].notes.push(place as u32);
        }
        groups.sort_unstable_by_key(|group| (group.center, group.year));
    }

    /// The batch's groups in key order (gathered first if they were not): each group's
    /// center, year and (sequence, canonical invoice number) entries in sequence order.
    pub(crate) fn in_key_order(
        &mut self,
    ) -> impl Iterator<Item = (&Uscc, ProgrammeYear, GroupEntries<'_>)> + '_ {
        self.gather();
        let notes = &self.notes;
        self.groups.iter().map(move |group| {
            (
                &group.center,
                group.year,
                GroupEntries {
                    notes,
                    places: group.notes.iter(),
                },
            )
        })
    }
}

/// One group's entries: (sequence, canonical invoice number), in sequence order.
#[derive(Clone)]
pub(crate) struct GroupEntries<'a> {
    notes: &'a [NotedRedemption],
    places: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for GroupEntries<'a> {
    type Item = (u64, &'a str);

    fn next(&mut self) -> Option<(u64, &'a str)> {
        // Every place was taken from `notes` by `gather`: indexing is the assertion.
        let note = &self.notes[*self.places.next()? as usize];
        Some((note.sequence, note.invoice_number.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.places.size_hint()
    }
}

impl ExactSizeIterator for GroupEntries<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn center(body: &str) -> Uscc {
        Uscc::from_body(body).expect("a valid USCC body")
    }

    fn number(text: &str) -> InvoiceNumber {
        InvoiceNumber::parse(text).expect("an invoice number")
    }

    fn year(year: u32) -> ProgrammeYear {
        ProgrammeYear::new(year).expect("a year")
    }

    type Written = Vec<(Uscc, u32, Vec<(u64, String)>)>;

    fn written(groups: &mut InvoiceOrderGroups) -> Written {
        groups
            .in_key_order()
            .map(|(center, year, entries)| {
                assert_eq!(entries.len(), entries.clone().count());
                (
                    *center,
                    year.get(),
                    entries
                        .map(|(sequence, number)| (sequence, number.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn given_redemptions_of_several_centers_and_years_when_gathered_then_one_group_each_in_key_order(
    ) {
        let (first, second) = (center("91330100MA2H00001"), center("91330106MA0000001"));
        let mut groups = InvoiceOrderGroups::default();
        groups.note(second, year(2026), 1, &number("b-1"));
        groups.note(first, year(2026), 2, &number("A-1"));
        groups.note(second, year(2025), 3, &number("B-2"));
        groups.note(second, year(2026), 4, &number("B-3"));
        groups.note(first, year(2026), 5, &number("A-2"));
        groups.gather();
        groups.gather();

        let mut expected = vec![
            (
                first,
                2026,
                vec![(2, "A-1".to_string()), (5, "A-2".to_string())],
            ),
            (second, 2025, vec![(3, "B-2".to_string())]),
            // The canonical form (upper case), as the invoice order keys it.
            (
                second,
                2026,
                vec![(1, "B-1".to_string()), (4, "B-3".to_string())],
            ),
        ];
        expected.sort_by_key(|(center, year, _)| (*center, *year));
        assert_eq!(written(&mut groups), expected);
    }

    #[test]
    fn given_a_cleared_batch_when_the_next_is_noted_then_nothing_of_the_first_remains() {
        let one = center("91330100MA2H00001");
        let mut groups = InvoiceOrderGroups::default();
        groups.prepare_room(4);
        groups.note(one, year(2026), 1, &number("A-1"));
        assert_eq!(written(&mut groups).len(), 1);
        groups.clear();
        assert!(written(&mut groups).is_empty());
        groups.clear();
        groups.note(one, year(2026), 7, &number("A-9"));
        assert_eq!(
            written(&mut groups),
            vec![(one, 2026, vec![(7, "A-9".to_string())])]
        );
    }

    #[test]
    #[should_panic(expected = "noted after its batch's groups were gathered")]
    fn a_redemption_noted_after_the_gathering_is_refused() {
        let one = center("91330100MA2H00001");
        let mut groups = InvoiceOrderGroups::default();
        groups.gather();
        groups.note(one, year(2026), 1, &number("A-1"));
    }
}
