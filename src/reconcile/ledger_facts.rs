//! The ledger's side of a reconciliation, read through [`LedgerReader`]: a center's
//! invoices issued in a period (from the invoice order index and the invoice index, in
//! log order), and a year's statements with their payments (from the projections).
//! Callers read after the engine reported what they saw durable.

use std::ops::ControlFlow;

use super::matching::{LedgerInvoice, LedgerPayment, LedgerStatement};
use crate::domain::{Date, InvoiceNumber, LedgerState, ProgrammeYear, StatementState, Uscc};
use crate::ledger::LedgerReader;
use crate::limits::RECONCILIATION_LEDGER_INVOICES_MAX;
use crate::storage::StoreError;

/// Why the ledger's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("center {center} has more than {limit} invoices on record, the most one reconciliation scans")]
    TooManyInvoices { center: Uscc, limit: usize },
}

/// Invoices looked up in the index per batch.
const LOOKUP_BATCH: usize = 4_096;

/// The center's invoices issued `from..=to`, over the programme years `years` (every
/// year the center has books for), in log order of each year.
pub fn center_invoices(
    reader: &LedgerReader,
    center: &Uscc,
    years: &[ProgrammeYear],
    from: Date,
    to: Date,
) -> Result<Vec<LedgerInvoice>, FactsError> {
    let mut numbers: Vec<(Uscc, InvoiceNumber)> = Vec::new();
    let mut over = false;
    for year in years {
        reader.scan_invoice_order(center, *year, 0, u64::MAX, |_, number| {
            if numbers.len() == RECONCILIATION_LEDGER_INVOICES_MAX {
                over = true;
                return ControlFlow::Break(());
            }
            numbers.push((*center, number));
            ControlFlow::Continue(())
        })?;
        if over {
            return Err(FactsError::TooManyInvoices {
                center: *center,
                limit: RECONCILIATION_LEDGER_INVOICES_MAX,
            });
        }
    }
    let mut invoices = Vec::new();
    for batch in numbers.chunks(LOOKUP_BATCH) {
        let entries = reader.invoices(batch)?;
        for ((_, number), entry) in batch.iter().zip(entries) {
            let Some(entry) = entry else { continue };
            if entry.issue_date < from || entry.issue_date > to {
                continue;
            }
            invoices.push(LedgerInvoice {
                invoice_number: number.clone(),
                issue_date: entry.issue_date,
                amount: entry.amount,
                subsidy: entry.subsidy,
                reversed: entry.is_reversed(),
            });
        }
    }
    Ok(invoices)
}

/// The programme years `center` has books for.
pub fn center_years(state: &LedgerState, center: &Uscc) -> Vec<ProgrammeYear> {
    state
        .center_years_of(center)
        .map(|(year, _)| year)
        .collect()
}

/// The year's statements, in id order, with every payment made of each.
pub fn year_statements(state: &LedgerState, year: ProgrammeYear) -> Vec<LedgerStatement> {
    state
        .statements_of_year(year)
        .map(|statement| LedgerStatement {
            id: statement.id,
            center: statement.center,
            net: statement.net,
            paid: statement.state == StatementState::Paid,
            payments: statement
                .payments
                .iter()
                .map(|payment| LedgerPayment {
                    bank_reference: payment.bank_reference.clone(),
                    amount: payment.amount,
                    value_date: payment.value_date,
                    returned: payment.returned.is_some(),
                })
                .collect(),
        })
        .collect()
}
