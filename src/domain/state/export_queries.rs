//! Read-only questions the exports ask (`crate::export`): paged walks the request paths do
//! not need. Like [`super::queries`], they cost O(page) and come back in a stable order.

use std::ops::Bound;

use super::{BankUse, LedgerState};
use crate::domain::ids::BankReference;

impl LedgerState {
    /// Bank references after `after`, in their canonical order, at most `limit`, with
    /// what each paid: a statement's payment or a repayment of receivables. O(limit).
    pub fn bank_references_page(
        &self,
        after: Option<&BankReference>,
        limit: usize,
    ) -> Vec<(&BankReference, &BankUse)> {
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        self.bank_references
            .range::<BankReference, _>((start, Bound::Unbounded))
            .take(limit)
            .collect()
    }
}
