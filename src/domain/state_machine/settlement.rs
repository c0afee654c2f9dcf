//! Settlement rules: what the finance bureau owes each payee and how it is paid.
//!
//! The payee is the center, or in a reimbursement year (`payee = "enterprise"`) the
//! voucher's enterprise; every rule below reads "center" as "payee".
//!
//! - A settlement run cuts a programme year off at its own event: every redemption of
//!   the year before it, not yet in a statement and not reversed, goes into exactly one
//!   statement, one per payee with anything to settle (in USCC order; at most
//!   `STATEMENTS_PER_RUN_MAX`, the rest wait for the next run). A run id used again for
//!   the same year answers the original run.
//! - A statement's net is its gross subsidy minus the center's receivables of that year
//!   that it recovers (oldest first); never below zero: what it cannot absorb stays
//!   outstanding. A statement with nothing to pay is paid at once.
//! - A payment must be exactly the statement's net; the same bank reference for the same
//!   statement answers the original; a paid statement is not paid twice; a returned
//!   payment reopens it. A bank reference is used once, across payments and repayments.
//! - A repayment recovers a center's receivables of a year, oldest first, and never more
//!   than it owes.
//! - Stacked funding: a run issues each payee a second statement for the second source's
//!   subsidy of the same redemptions (same cutoff), offset by the receivables owed to the
//!   second source; it is paid and returned like any statement, by its own funder. A
//!   repayment names the source it repays.
//! - A year closes once every voucher of it is past its redemption window; the close
//!   releases what is left and from then on refuses approvals, invoices and reversals for
//!   that year. Settling, paying and repaying go on.

use super::{reject, Decision, Reply, RunOutcome};
use crate::domain::event::{Event, ReleaseCause, StatementIssued};
use crate::domain::ids::{
    BankReference, Date, ProgrammeYear, Reason, SettlementRunId, StatementId, Timestamp, Uscc,
};
use crate::domain::money::Money;
use crate::domain::programme::{FundingSource, Payee};
use crate::domain::rejection::{Rejection, RejectionCode};
use crate::domain::state::{BankUse, CenterYear, LedgerState, StatementState};
use crate::limits::{EXPIRY_BATCH_LIMIT, STATEMENTS_PER_RUN_MAX};

impl LedgerState {
    pub(super) fn decide_settlement_run(
        &self,
        run: &SettlementRunId,
        year: ProgrammeYear,
    ) -> Result<Decision, Rejection> {
        if let Some(existing) = self.runs.get(run) {
            if existing.year != year {
                return reject(
                    RejectionCode::SettlementRunConflict,
                    format!("run {run} was created for {}, not {year}", existing.year),
                );
            }
            return Ok(Decision::Answer(Reply::SettlementRunCreated(RunOutcome {
                run: *run,
                year,
                cutoff: existing.cutoff,
                statements: existing.statements.clone(),
                duplicate: true,
                sequence: existing
                    .statements
                    .last()
                    .map_or(existing.cutoff, |statement| statement.0),
            })));
        }
        self.existing_policy(year)?;
        // The run's own event gets the next sequence: it is the cutoff.
        let cutoff = self.last_sequence + 1;
        let mut events = vec![Event::SettlementRunCreated { run: *run, year }];
        let pending = |books: &&CenterYear| books.unsettled_count > 0 || !books.unsettled.is_zero();
        for ((payee, books_year), books) in &self.center_years {
            if *books_year != year || !pending(&books) {
                continue;
            }
            // Stacked funding: the second source's statement for the same payee, at the
            // same cutoff, so both parts of every invoice are settled together. Every
            // redemption is in the programme's books, so a payee with anything unsettled
            // for the second source has it here as well.
            let second = self
                .second_center_years
                .get(&(*payee, year))
                .filter(pending);
            // Enterprise payees are not bounded in number; the rest wait for the next run.
            if events.len() + usize::from(second.is_some()) > STATEMENTS_PER_RUN_MAX {
                break;
            }
            for (source, books) in std::iter::once((FundingSource::Primary, books))
                .chain(second.map(|second| (FundingSource::Second, second)))
            {
                let gross = books.unsettled;
                let clawback_offset = gross.min(books.outstanding());
                events.push(Event::StatementIssued(Box::new(StatementIssued {
                    run: *run,
                    center: *payee,
                    year,
                    cutoff,
                    invoices: books.unsettled_count,
                    gross,
                    clawback_offset,
                    net: gross.saturating_minus(clawback_offset),
                    source,
                })));
            }
        }
        if events.len() == 1 {
            return reject(
                RejectionCode::NothingToSettle,
                format!(
                    "no {} has a redemption of {year} to settle",
                    self.payee_kind(year).name()
                ),
            );
        }
        let run = *run;
        Ok(Decision::Append {
            events,
            reply: Box::new(move |first, last| {
                Reply::SettlementRunCreated(RunOutcome {
                    run,
                    year,
                    cutoff: first,
                    statements: (first + 1..=last).map(StatementId).collect(),
                    duplicate: false,
                    sequence: last,
                })
            }),
        })
    }

    /// A bank reference's earlier use, if any, as a rejection unless it is exactly the
    /// use `is_same` recognises (then `Ok(true)`: a repeat).
    fn fresh_reference(
        &self,
        reference: &BankReference,
        is_same: impl Fn(&BankUse) -> bool,
    ) -> Result<bool, Rejection> {
        match self.bank_reference(reference) {
            None => Ok(false),
            Some(used) if is_same(used) => Ok(true),
            Some(used) => reject(
                RejectionCode::BankReferenceReused,
                format!(
                    "bank reference {reference} was already recorded for {}",
                    match used {
                        BankUse::Payment { statement } =>
                            format!("a payment of statement {statement}"),
                        BankUse::Repayment { center, year, .. } => format!(
                            "a repayment by {} {center} for {year}",
                            self.payee_kind(*year).name()
                        ),
                    }
                ),
            ),
        }
    }

    pub(super) fn decide_payment(
        &self,
        statement_id: StatementId,
        bank_reference: &BankReference,
        amount: Money,
        value_date: Date,
        at: Timestamp,
    ) -> Result<Decision, Rejection> {
        let statement = self.statements.get(&statement_id).ok_or_else(|| {
            Rejection::new(
                RejectionCode::StatementNotFound,
                format!("there is no statement {statement_id}"),
            )
        })?;
        let current = statement.current_payment();
        let repeat = self.fresh_reference(bank_reference, |used| {
            matches!(used, BankUse::Payment { statement } if *statement == statement_id)
                && current.is_some_and(|payment| {
                    payment.bank_reference == *bank_reference
                        && payment.amount == amount
                        && payment.value_date == value_date
                })
        })?;
        if let (true, Some(payment)) = (repeat, current) {
            return Ok(Decision::Answer(Reply::PaymentConfirmed {
                statement: statement_id,
                sequence: payment.sequence,
                duplicate: true,
            }));
        }
        if statement.state == StatementState::Paid {
            return reject(
                RejectionCode::StatementAlreadyPaid,
                format!(
                    "statement {statement_id} is paid{}",
                    current.map_or(" (nothing was due)".to_string(), |payment| format!(
                        " by bank reference {} on {}",
                        payment.bank_reference, payment.value_date
                    ))
                ),
            );
        }
        if amount != statement.net {
            return reject(
                RejectionCode::PaymentAmountMismatch,
                format!(
                    "payment {amount} differs from statement {statement_id}'s net {}",
                    statement.net
                ),
            );
        }
        let issued = statement.issued_at.date();
        if value_date < issued || value_date > at.date() {
            return reject(
                RejectionCode::ValueDateInvalid,
                format!(
                    "value date {value_date} is not between the statement's issue date {issued} and today {}",
                    at.date()
                ),
            );
        }
        Ok(Decision::one(
            Event::PaymentConfirmed {
                statement: statement_id,
                bank_reference: bank_reference.clone(),
                amount,
                value_date,
            },
            move |sequence| Reply::PaymentConfirmed {
                statement: statement_id,
                sequence,
                duplicate: false,
            },
        ))
    }

    pub(super) fn decide_payment_returned(
        &self,
        statement_id: StatementId,
        bank_reference: &BankReference,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        let statement = self.statements.get(&statement_id).ok_or_else(|| {
            Rejection::new(
                RejectionCode::StatementNotFound,
                format!("there is no statement {statement_id}"),
            )
        })?;
        let payment = statement
            .payments
            .iter()
            .rev()
            .find(|payment| payment.bank_reference == *bank_reference)
            .ok_or_else(|| {
                Rejection::new(
                    RejectionCode::PaymentNotFound,
                    format!(
                        "statement {statement_id} has no payment with bank reference {bank_reference}"
                    ),
                )
            })?;
        if let Some((_, sequence)) = &payment.returned {
            return Ok(Decision::Answer(Reply::PaymentReturned {
                statement: statement_id,
                sequence: *sequence,
                duplicate: true,
            }));
        }
        let amount = payment.amount;
        Ok(Decision::one(
            Event::PaymentReturned {
                statement: statement_id,
                bank_reference: bank_reference.clone(),
                amount,
                reason: reason.clone(),
            },
            move |sequence| Reply::PaymentReturned {
                statement: statement_id,
                sequence,
                duplicate: false,
            },
        ))
    }

    #[allow(clippy::too_many_arguments)] // the command's fields, one by one
    pub(super) fn decide_repayment(
        &self,
        source: FundingSource,
        center: &Uscc,
        year: ProgrammeYear,
        amount: Money,
        bank_reference: &BankReference,
        value_date: Date,
        at: Timestamp,
    ) -> Result<Decision, Rejection> {
        let policy = self.existing_policy(year)?;
        // The payee repays: a center, or in a reimbursement year an enterprise.
        match policy.rules().payee {
            Payee::Center => {
                self.existing_center(center)?;
            }
            Payee::Enterprise => {
                self.existing_enterprise(center)?;
            }
        }
        if source == FundingSource::Second && policy.rules().second_source.is_none() {
            return reject(
                RejectionCode::RepaymentExceedsReceivable,
                format!("the {year} programme has no second funding source to repay"),
            );
        }
        let outstanding = self
            .source_payee_year(source, center, year)
            .map_or(Money::ZERO, |books| books.outstanding());
        let repeat = self.fresh_reference(bank_reference, |used| {
            matches!(used, BankUse::Repayment { center: used_center, year: used_year, amount: used_amount, value_date: used_date, source: used_source, .. }
                if used_center == center && *used_year == year && *used_amount == amount && *used_date == value_date && *used_source == source)
        })?;
        if repeat {
            let sequence = match self.bank_reference(bank_reference) {
                Some(BankUse::Repayment { sequence, .. }) => *sequence,
                _ => self.last_sequence,
            };
            return Ok(Decision::Answer(Reply::RepaymentRecorded {
                center: *center,
                year,
                amount,
                outstanding,
                sequence,
                duplicate: true,
            }));
        }
        if amount.is_zero() || amount > outstanding {
            return reject(
                RejectionCode::RepaymentExceedsReceivable,
                format!(
                    "repayment {amount} by {} {center} for {year} ({} source) must be above zero and at most what it owes: {outstanding}",
                    self.payee_kind(year).name(),
                    source.name()
                ),
            );
        }
        if value_date > at.date() {
            return reject(
                RejectionCode::ValueDateInvalid,
                format!("value date {value_date} is after today {}", at.date()),
            );
        }
        let after = outstanding.saturating_minus(amount);
        let center = *center;
        Ok(Decision::one(
            Event::RepaymentRecorded {
                center,
                year,
                amount,
                bank_reference: bank_reference.clone(),
                value_date,
                source,
            },
            move |sequence| Reply::RepaymentRecorded {
                center,
                year,
                amount,
                outstanding: after,
                sequence,
                duplicate: false,
            },
        ))
    }

    pub(super) fn decide_close(
        &self,
        year: ProgrammeYear,
        at: Timestamp,
    ) -> Result<Decision, Rejection> {
        self.existing_policy(year)?;
        if let Some(sequence) = self.year(year).and_then(|book| book.closed) {
            return Ok(Decision::Answer(Reply::ProgrammeYearClosed {
                year,
                released_vouchers: 0,
                sequence,
                duplicate: true,
            }));
        }
        let today = at.date();
        // Vouchers of the year may be approved until its last day, so it cannot be over
        // before the next year begins, whatever vouchers exist now.
        let (today_year, _, _) = today.year_month_day();
        if i64::from(today_year) <= i64::from(year.get()) {
            return reject(
                RejectionCode::YearNotOver,
                format!("programme year {year} runs until its 31 December; today is {today}"),
            );
        }
        let active: Vec<_> = self
            .active_by_window_end
            .iter()
            .filter_map(|(window_end, id)| {
                let voucher = self.vouchers.get(id)?;
                (voucher.terms.year == year).then_some((*window_end, voucher))
            })
            .collect();
        if let Some((window_end, voucher)) = active.iter().rev().find(|(end, _)| *end >= today) {
            return reject(
                RejectionCode::YearNotOver,
                format!(
                    "voucher {} of {year} may still be redeemed until {window_end}",
                    voucher.terms.voucher
                ),
            );
        }
        if active.len() > EXPIRY_BATCH_LIMIT {
            return reject(
                RejectionCode::TooManyActiveVouchers,
                format!(
                    "{} vouchers of {year} are still active; the expiry sweep releases them {EXPIRY_BATCH_LIMIT} at a time, close after it",
                    active.len()
                ),
            );
        }
        let mut events: Vec<Event> = active
            .iter()
            .map(|(_, voucher)| Event::VoucherReleased {
                voucher: voucher.terms.voucher,
                cause: ReleaseCause::Expired,
                released: voucher.remaining,
                reason: None,
            })
            .collect();
        let released_vouchers = events.len() as u32;
        events.push(Event::ProgrammeYearClosed { year });
        Ok(Decision::Append {
            events,
            reply: Box::new(move |_, sequence| Reply::ProgrammeYearClosed {
                year,
                released_vouchers,
                sequence,
                duplicate: false,
            }),
        })
    }
}
