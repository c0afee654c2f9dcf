//! Recording reconciliations. The matching happened outside (it reads files); the rule
//! here is only which records the log keeps: one per file and scope. The same file (by
//! its SM3 digest) reconciled again for the same scope is answered with the original
//! record, so a retried or repeated import appends nothing.

use super::{Decision, Reply};
use crate::domain::event::Event;
use crate::domain::reconciliation::{ReconciliationRecorded, ReconciliationScope};
use crate::domain::rejection::Rejection;
use crate::domain::state::LedgerState;

impl LedgerState {
    pub(super) fn decide_reconciliation(
        &self,
        recorded: &ReconciliationRecorded,
    ) -> Result<Decision, Rejection> {
        if let Some(original) = self.reconciliation_of(&recorded.digest, &recorded.scope) {
            return Ok(Decision::Answer(Reply::ReconciliationRecorded {
                sequence: original.sequence,
                duplicate: true,
            }));
        }
        if let ReconciliationScope::CenterInvoices { center, .. } = &recorded.scope {
            self.existing_center(center)?;
        }
        Ok(Decision::one(
            Event::ReconciliationRecorded(Box::new(recorded.clone())),
            |sequence| Reply::ReconciliationRecorded {
                sequence,
                duplicate: false,
            },
        ))
    }
}
