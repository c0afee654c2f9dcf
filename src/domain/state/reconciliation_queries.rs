//! Read-only questions about reconciliations and what they are matched against: the
//! recorded reconciliations (by id, by file and scope, paged), and a year's statements.

use std::ops::Bound;

use super::{LedgerState, Statement};
use crate::domain::ids::ProgrammeYear;
use crate::domain::programme::FundingSource;
use crate::domain::reconciliation::{FileDigest, ReconciliationRecord, ReconciliationScope};

impl LedgerState {
    /// The reconciliation recorded at `sequence`.
    pub fn reconciliation(&self, sequence: u64) -> Option<&ReconciliationRecord> {
        self.reconciliations.get(&sequence)
    }

    /// The reconciliation recorded for this file and scope, if any.
    pub fn reconciliation_of(
        &self,
        digest: &FileDigest,
        scope: &ReconciliationScope,
    ) -> Option<&ReconciliationRecord> {
        self.reconciliation_index
            .get(&(*digest, *scope))
            .and_then(|sequence| self.reconciliations.get(sequence))
    }

    /// Recorded reconciliations after `after` (a sequence), in the order they were
    /// recorded, that pass `keep`; at most `limit`, looking at no more than `scan_limit`.
    /// Returns the page and the sequence the next page starts after, if there may be more.
    pub fn reconciliations_page(
        &self,
        after: Option<u64>,
        limit: usize,
        scan_limit: usize,
        keep: impl Fn(&ReconciliationRecord) -> bool,
    ) -> (Vec<&ReconciliationRecord>, Option<u64>) {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::new();
        let mut last_seen = None;
        for (scanned, (sequence, record)) in self
            .reconciliations
            .range((start, Bound::Unbounded))
            .enumerate()
        {
            if page.len() == limit || scanned == scan_limit {
                return (page, last_seen);
            }
            last_seen = Some(*sequence);
            if keep(record) {
                page.push(record);
            }
        }
        (page, None)
    }

    /// Every recorded reconciliation, in order (images, reports).
    pub fn reconciliations(&self) -> impl Iterator<Item = &ReconciliationRecord> {
        self.reconciliations.values()
    }

    /// The bureau's statements of a programme year, in id order.
    pub fn statements_of_year(&self, year: ProgrammeYear) -> impl Iterator<Item = &Statement> {
        // The bureau's statements: a stacked second source's are paid from its funder's
        // account, not in the bureau's bank statement.
        self.statements.values().filter(move |statement| {
            statement.year == year && statement.source == FundingSource::Primary
        })
    }
}
