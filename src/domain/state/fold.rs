//! The fold: `LedgerState::apply(sequence, time, event)`.
//!
//! `apply` never fails and reads nothing but its arguments and the state. The live path
//! (the state machine right after deciding) and replay (recovery, `verify`) both use it,
//! which is why a replayed log gives exactly the live state. Amounts that would go below
//! zero (only possible with a log that breaks the invariants) clamp at zero, and
//! `check_invariants` reports them.

use std::collections::BTreeMap;

use super::{BankUse, CapOverride, CenterAccount, CenterYear, EnterpriseAccount, InvoiceEntry};
use super::{LedgerState, PaymentRecord, ReceivableItem, SettlementRun, Statement};
use super::{StatementState, Usage, UsageByYear, Voucher, VoucherShare, VoucherStatus, YearBook};
use crate::domain::command::CenterStatus;
use crate::domain::event::{
    Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, StatementIssued, VoucherApproved,
};
use crate::domain::ids::{ProgrammeYear, StatementId, Timestamp, Uscc, VoucherId};
use crate::domain::money::Money;
use crate::domain::programme::{FundingSource, Payee};
use crate::domain::reconciliation::ReconciliationRecord;

impl Usage {
    fn hold(&mut self, amount: Money) {
        self.held = self.held.plus(amount);
    }

    fn redeem_from_hold(&mut self, amount: Money) {
        self.held = self.held.saturating_minus(amount);
        self.redeemed = self.redeemed.plus(amount);
    }

    fn release_hold(&mut self, amount: Money) {
        self.held = self.held.saturating_minus(amount);
    }

    /// An unsettled redemption reversed: back to the voucher's hold, or freed.
    fn unredeem(&mut self, amount: Money, back_to_hold: bool) {
        self.redeemed = self.redeemed.saturating_minus(amount);
        if back_to_hold {
            self.held = self.held.plus(amount);
        }
    }

    /// A settled redemption reversed: it stays used, as a receivable, until recovered.
    fn claw_back(&mut self, amount: Money) {
        self.redeemed = self.redeemed.saturating_minus(amount);
        self.receivable = self.receivable.plus(amount);
    }

    /// A receivable recovered: freed.
    fn recover(&mut self, amount: Money) {
        self.receivable = self.receivable.saturating_minus(amount);
    }
}

/// A year's books and its payee-year books, for one funding source.
type SourceBooks<'a> = (
    &'a mut BTreeMap<ProgrammeYear, YearBook>,
    &'a mut BTreeMap<(Uscc, ProgrammeYear), CenterYear>,
);

/// A redemption granted: into the source's pool usage and figures, and its payee's books.
fn grant(book: &mut YearBook, books: &mut CenterYear, subsidy: Money) {
    book.usage.redeem_from_hold(subsidy);
    book.granted = book.granted.plus(subsidy);
    book.unsettled = book.unsettled.plus(subsidy);
    books.granted = books.granted.plus(subsidy);
    books.granted_count += 1;
    books.unsettled = books.unsettled.plus(subsidy);
    books.unsettled_count += 1;
}

/// What a reversal says about every source's part of it.
struct ReversedPart {
    sequence: u64,
    redeemed_sequence: u64,
    voucher: VoucherId,
    enterprise: Uscc,
    clawback: bool,
    returned_to_voucher: bool,
    /// Format v1 set both flags for a settled invoice on an active voucher: the subsidy
    /// went back to the voucher at once and the center owed it as well.
    legacy_clawback: bool,
}

/// A reversal's `subsidy` taken out of one source's books: a clawback (a receivable of
/// the payee; the statement that holds the invoice stands for less) or, unsettled, back
/// to the voucher's hold or freed.
fn reverse_in_books(
    book: &mut YearBook,
    books: &mut CenterYear,
    statements: &mut BTreeMap<StatementId, Statement>,
    part: &ReversedPart,
    subsidy: Money,
) {
    if part.clawback {
        if part.legacy_clawback {
            book.usage.unredeem(subsidy, true);
        } else {
            book.usage.claw_back(subsidy);
        }
        book.clawed_back = book.clawed_back.plus(subsidy);
        books.clawed_back = books.clawed_back.plus(subsidy);
        books.receivables.push_back(ReceivableItem {
            reversal: part.sequence,
            voucher: part.voucher,
            enterprise: part.enterprise,
            outstanding: subsidy,
            holds_pool: !part.legacy_clawback,
        });
        let paid = match books.settlement_of(part.redeemed_sequence) {
            Some((_, Some(statement))) => match statements.get_mut(&statement) {
                Some(found) => {
                    found.clawed_back = found.clawed_back.plus(subsidy);
                    found.state == StatementState::Paid
                }
                None => true,
            },
            // Settled by format v1's CenterSettled, which paid at once.
            _ => true,
        };
        if paid {
            book.standing_paid = book.standing_paid.saturating_minus(subsidy);
        } else {
            book.standing_open = book.standing_open.saturating_minus(subsidy);
        }
    } else {
        book.usage.unredeem(subsidy, part.returned_to_voucher);
        if !part.returned_to_voucher {
            book.released = book.released.plus(subsidy);
        }
        book.unsettled = book.unsettled.saturating_minus(subsidy);
        book.reversed_unsettled = book.reversed_unsettled.plus(subsidy);
        books.unsettled = books.unsettled.saturating_minus(subsidy);
        books.unsettled_count = books.unsettled_count.saturating_sub(1);
        books.reversed_unsettled = books.reversed_unsettled.plus(subsidy);
        books.reversed_unsettled_count += 1;
    }
}

/// How a receivable was recovered.
#[derive(Clone, Copy)]
enum Recovery {
    Offset,
    Repaid,
}

impl LedgerState {
    /// Folds one event into the projections. Never fails: the event is a fact.
    pub fn apply(&mut self, sequence: u64, at: Timestamp, event: &Event) {
        assert_eq!(
            sequence,
            self.last_sequence + 1,
            "sequence numbers are dense"
        );
        self.last_sequence = sequence;
        self.last_time = self.last_time.max(at);
        match event {
            Event::PolicyPublished { policy } => {
                self.policies.insert(policy.year(), (**policy).clone());
                self.years.entry(policy.year()).or_default().pool = policy.annual_pool();
                if let Some(second) = &policy.rules().second_source {
                    self.second_years.entry(policy.year()).or_default().pool = second.annual_pool;
                }
            }
            Event::CenterRegistered {
                center,
                name,
                tier,
                listing_basis,
                capacity,
            } => {
                self.centers.insert(
                    *center,
                    CenterAccount {
                        center: *center,
                        name: name.clone(),
                        tier: *tier,
                        listing_basis: *listing_basis,
                        capacity: *capacity,
                        status: CenterStatus::Active,
                        redeemed_total: Money::ZERO,
                        reversed_total: Money::ZERO,
                        paid_total: Money::ZERO,
                    },
                );
            }
            Event::CenterStatusChanged { center, to, .. } => {
                if let Some(account) = self.centers.get_mut(center) {
                    account.status = *to;
                }
            }
            Event::EnterpriseRegistered { enterprise, name } => {
                self.enterprises.insert(
                    *enterprise,
                    EnterpriseAccount {
                        enterprise: *enterprise,
                        name: name.clone(),
                        usage_by_year: UsageByYear::new(),
                        cap_overrides: BTreeMap::new(),
                    },
                );
            }
            Event::CapOverrideGranted {
                enterprise,
                year,
                cap,
                reason,
            } => {
                if let Some(account) = self.enterprises.get_mut(enterprise) {
                    account.cap_overrides.insert(
                        *year,
                        CapOverride {
                            cap: *cap,
                            reason: reason.clone(),
                        },
                    );
                }
            }
            Event::RelatedPartyDeclared {
                enterprise, center, ..
            } => {
                self.related_parties.insert((*enterprise, *center));
            }
            Event::VoucherApproved(approved) => self.apply_voucher_approved(sequence, approved),
            Event::InvoiceRedeemed(redeemed) => self.apply_invoice_redeemed(sequence, redeemed),
            Event::InvoiceReversed(reversed) => self.apply_invoice_reversed(sequence, reversed),
            Event::VoucherReleased {
                voucher,
                cause,
                released,
                ..
            } => self.apply_voucher_released(*voucher, *cause, *released),
            Event::CenterSettled {
                center,
                settlement_id,
                clawback_offset,
                paid,
                ..
            } => {
                self.legacy_settlements.insert(*settlement_id);
                self.apply_legacy_settlement(sequence, *center, *clawback_offset, *paid);
            }
            Event::SettlementRunCreated { run, year } => {
                self.runs.insert(
                    *run,
                    SettlementRun {
                        run: *run,
                        year: *year,
                        cutoff: sequence,
                        statements: Vec::new(),
                    },
                );
            }
            Event::StatementIssued(issued) => self.apply_statement_issued(sequence, at, issued),
            Event::PaymentConfirmed {
                statement,
                bank_reference,
                amount,
                value_date,
            } => {
                self.bank_references.insert(
                    bank_reference.clone(),
                    BankUse::Payment {
                        statement: *statement,
                    },
                );
                let Some(found) = self.statements.get_mut(statement) else {
                    return;
                };
                found.payments.push(PaymentRecord {
                    bank_reference: bank_reference.clone(),
                    amount: *amount,
                    value_date: *value_date,
                    sequence,
                    returned: None,
                });
                found.state = StatementState::Paid;
                let (center, year, standing, source) =
                    (found.center, found.year, found.standing(), found.source);
                self.pay(source, center, year, *amount, standing, true);
            }
            Event::PaymentReturned {
                statement,
                bank_reference,
                amount,
                reason,
            } => {
                let Some(found) = self.statements.get_mut(statement) else {
                    return;
                };
                if let Some(payment) = found
                    .payments
                    .iter_mut()
                    .rev()
                    .find(|payment| payment.bank_reference == *bank_reference)
                {
                    payment.returned = Some((reason.clone(), sequence));
                }
                found.state = StatementState::Returned;
                let (center, year, standing, source) =
                    (found.center, found.year, found.standing(), found.source);
                self.pay(source, center, year, *amount, standing, false);
            }
            Event::RepaymentRecorded {
                center,
                year,
                amount,
                bank_reference,
                value_date,
                source,
            } => {
                self.bank_references.insert(
                    bank_reference.clone(),
                    BankUse::Repayment {
                        center: *center,
                        year: *year,
                        amount: *amount,
                        value_date: *value_date,
                        sequence,
                        source: *source,
                    },
                );
                self.recover(*source, *center, *year, *amount, Recovery::Repaid);
            }
            Event::ProgrammeYearClosed { year } => {
                self.years.entry(*year).or_default().closed = Some(sequence);
            }
            Event::PoolAdjusted { year, new_pool, .. } => {
                self.years.entry(*year).or_default().pool = *new_pool;
            }
            Event::ClockConfirmed { .. } => {}
            Event::ReconciliationRecorded(recorded) => {
                // The first record of a file and scope stays the one a re-import finds.
                self.reconciliation_index
                    .entry((recorded.digest, recorded.scope))
                    .or_insert(sequence);
                self.reconciliations.insert(
                    sequence,
                    ReconciliationRecord {
                        sequence,
                        at,
                        reconciliation: (**recorded).clone(),
                    },
                );
            }
        }
    }

    /// The books of a funding source: its year books and its payee-year books.
    fn source_books_mut(&mut self, source: FundingSource) -> SourceBooks<'_> {
        match source {
            FundingSource::Primary => (&mut self.years, &mut self.center_years),
            FundingSource::Second => (&mut self.second_years, &mut self.second_center_years),
        }
    }

    fn apply_voucher_approved(&mut self, sequence: u64, approved: &VoucherApproved) {
        let face = approved.face_value;
        let second_face = approved.programme.second_face_value;
        if !second_face.is_zero() {
            let book = self.second_years.entry(approved.year).or_default();
            book.usage.hold(second_face);
            book.approved = book.approved.plus(second_face);
        }
        let year = self.years.entry(approved.year).or_default();
        year.usage.hold(face);
        year.approved = year.approved.plus(face);
        if let Some(account) = self.enterprises.get_mut(&approved.enterprise) {
            account.usage_by_year.year_mut(approved.year).hold(face);
        }
        self.contracts.insert(
            (approved.center, approved.contract_number.clone()),
            approved.voucher,
        );
        self.active_by_window_end
            .insert((approved.redemption_window_end, approved.voucher));
        self.active_by_center
            .insert((approved.center, approved.voucher));
        *self
            .active_count_by_center
            .entry(approved.center)
            .or_default() += 1;
        self.vouchers_by_center
            .insert((approved.center, approved.voucher));
        self.vouchers_by_enterprise
            .insert((approved.enterprise, approved.voucher));
        self.vouchers.insert(
            approved.voucher,
            Voucher {
                terms: approved.clone(),
                approved_sequence: sequence,
                status: VoucherStatus::Active,
                remaining: face,
                subsidy_total: Money::ZERO,
                invoiced_total: Money::ZERO,
                released: Money::ZERO,
                clawback_outstanding: Money::ZERO,
                invoice_count: 0,
                second: VoucherShare {
                    remaining: second_face,
                    ..VoucherShare::default()
                },
            },
        );
    }

    fn apply_invoice_redeemed(&mut self, sequence: u64, redeemed: &InvoiceRedeemed) {
        let subsidy = redeemed.subsidy;
        self.invoices_redeemed += 1;
        if let Some(center) = self.centers.get_mut(&redeemed.center) {
            center.redeemed_total = center.redeemed_total.plus(subsidy);
        }
        // One look-up of the voucher serves everything below (the hot path of a batch).
        if let Some(voucher) = self.vouchers.get_mut(&redeemed.voucher) {
            voucher.remaining = voucher.remaining.saturating_minus(subsidy);
            voucher.subsidy_total = voucher.subsidy_total.plus(subsidy);
            voucher.invoiced_total = voucher.invoiced_total.plus(redeemed.amount);
            voucher.invoice_count += 1;
            let (year, enterprise) = (voucher.terms.year, voucher.terms.enterprise);
            // The books the redemption goes into: its payee's (the center, or the
            // enterprise in a reimbursement year).
            let payee = LedgerState::payee_of_in(&self.policies, &voucher.terms);
            if let Some(account) = self.enterprises.get_mut(&enterprise) {
                account
                    .usage_by_year
                    .year_mut(year)
                    .redeem_from_hold(subsidy);
            }
            grant(
                self.years.entry(year).or_default(),
                self.center_years.entry((payee, year)).or_default(),
                subsidy,
            );
            // The second source's part, in its own books (only a redemption that has
            // one is counted there).
            let second = redeemed.second_subsidy;
            if !second.is_zero() {
                voucher.second.remaining = voucher.second.remaining.saturating_minus(second);
                voucher.second.subsidy_total = voucher.second.subsidy_total.plus(second);
                grant(
                    self.second_years.entry(year).or_default(),
                    self.second_center_years.entry((payee, year)).or_default(),
                    second,
                );
            }
        }
        self.invoice_cache.insert(
            redeemed.center,
            &redeemed.invoice_number,
            InvoiceEntry {
                voucher: redeemed.voucher,
                amount: redeemed.amount,
                issue_date: redeemed.issue_date,
                delivery_proof: redeemed.delivery_proof.clone(),
                subsidy,
                second_subsidy: redeemed.second_subsidy,
                sequence,
                reversed_at: None,
            },
        );
    }

    fn apply_invoice_reversed(&mut self, sequence: u64, reversed: &InvoiceReversed) {
        let subsidy = reversed.subsidy;
        self.invoice_cache
            .update(&reversed.center, &reversed.invoice_number, |entry| {
                entry.reversed_at = Some(sequence);
            });
        if let Some(center) = self.centers.get_mut(&reversed.center) {
            center.reversed_total = center.reversed_total.plus(subsidy);
        }
        let payee = self
            .vouchers
            .get(&reversed.voucher)
            .map_or(reversed.center, |voucher| self.payee_of(&voucher.terms));
        let Some(voucher) = self.vouchers.get_mut(&reversed.voucher) else {
            return;
        };
        voucher.subsidy_total = voucher.subsidy_total.saturating_minus(subsidy);
        voucher.invoiced_total = voucher.invoiced_total.saturating_minus(reversed.amount);
        let (year, enterprise) = (voucher.terms.year, voucher.terms.enterprise);
        // Format v1 set both flags for a settled invoice on an active voucher: the
        // subsidy went back to the voucher at once and the center owed it as well.
        let legacy_clawback = reversed.clawback && reversed.returned_to_voucher;
        if legacy_clawback {
            voucher.remaining = voucher.remaining.plus(subsidy);
        } else if reversed.clawback {
            voucher.clawback_outstanding = voucher.clawback_outstanding.plus(subsidy);
        } else if reversed.returned_to_voucher {
            voucher.remaining = voucher.remaining.plus(subsidy);
        } else {
            voucher.released = voucher.released.plus(subsidy);
        }
        let second = reversed.second_subsidy;
        if !second.is_zero() {
            let share = &mut voucher.second;
            share.subsidy_total = share.subsidy_total.saturating_minus(second);
            if reversed.clawback {
                share.clawback_outstanding = share.clawback_outstanding.plus(second);
            } else if reversed.returned_to_voucher {
                share.remaining = share.remaining.plus(second);
            } else {
                share.released = share.released.plus(second);
            }
        }
        // The enterprise's cap is the programme's own: only the first source uses it.
        if let Some(account) = self.enterprises.get_mut(&enterprise) {
            let usage = account.usage_by_year.year_mut(year);
            if !reversed.clawback {
                usage.unredeem(subsidy, reversed.returned_to_voucher);
            } else if legacy_clawback {
                usage.unredeem(subsidy, true);
            } else {
                usage.claw_back(subsidy);
            }
        }
        let part = ReversedPart {
            sequence,
            redeemed_sequence: reversed.redeemed_sequence,
            voucher: reversed.voucher,
            enterprise,
            clawback: reversed.clawback,
            returned_to_voucher: reversed.returned_to_voucher,
            legacy_clawback,
        };
        reverse_in_books(
            self.years.entry(year).or_default(),
            self.center_years.entry((payee, year)).or_default(),
            &mut self.statements,
            &part,
            subsidy,
        );
        if !second.is_zero() {
            reverse_in_books(
                self.second_years.entry(year).or_default(),
                self.second_center_years.entry((payee, year)).or_default(),
                &mut self.statements,
                &part,
                second,
            );
        }
    }

    fn apply_voucher_released(
        &mut self,
        voucher_id: VoucherId,
        cause: ReleaseCause,
        released: Money,
    ) {
        let Some(voucher) = self.vouchers.get_mut(&voucher_id) else {
            return;
        };
        voucher.status = match cause {
            ReleaseCause::Expired => VoucherStatus::Expired,
            ReleaseCause::Cancelled => VoucherStatus::Cancelled,
            ReleaseCause::Delisted => VoucherStatus::Withdrawn,
        };
        voucher.remaining = voucher.remaining.saturating_minus(released);
        voucher.released = voucher.released.plus(released);
        // A release ends the voucher: the second source's share goes back with it.
        let second_released = voucher.second.remaining;
        voucher.second.remaining = Money::ZERO;
        voucher.second.released = voucher.second.released.plus(second_released);
        self.active_by_window_end
            .remove(&(voucher.terms.redemption_window_end, voucher_id));
        if self
            .active_by_center
            .remove(&(voucher.terms.center, voucher_id))
        {
            if let Some(count) = self.active_count_by_center.get_mut(&voucher.terms.center) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.active_count_by_center.remove(&voucher.terms.center);
                }
            }
        }
        let (year, enterprise) = (voucher.terms.year, voucher.terms.enterprise);
        let book = self.years.entry(year).or_default();
        book.usage.release_hold(released);
        book.released = book.released.plus(released);
        if let Some(account) = self.enterprises.get_mut(&enterprise) {
            account.usage_by_year.year_mut(year).release_hold(released);
        }
        if !second_released.is_zero() {
            let book = self.second_years.entry(year).or_default();
            book.usage.release_hold(second_released);
            book.released = book.released.plus(second_released);
        }
    }

    fn apply_statement_issued(&mut self, sequence: u64, at: Timestamp, issued: &StatementIssued) {
        let id = StatementId(sequence);
        let paid_at_once = issued.net.is_zero();
        let (years, center_years) = self.source_books_mut(issued.source);
        let books = center_years
            .entry((issued.center, issued.year))
            .or_default();
        let previous_cutoff = books.last_cutoff();
        books.unsettled = books.unsettled.saturating_minus(issued.gross);
        books.unsettled_count = books.unsettled_count.saturating_sub(issued.invoices);
        books.settled = books.settled.plus(issued.gross);
        books.settled_count += issued.invoices;
        books.settlements.push((issued.cutoff, Some(id)));
        let book = years.entry(issued.year).or_default();
        book.unsettled = book.unsettled.saturating_minus(issued.gross);
        book.settled = book.settled.plus(issued.gross);
        if paid_at_once {
            book.standing_paid = book.standing_paid.plus(issued.gross);
        } else {
            book.standing_open = book.standing_open.plus(issued.gross);
        }
        if let Some(run) = self.runs.get_mut(&issued.run) {
            run.statements.push(id);
        }
        self.statements.insert(
            id,
            Statement {
                id,
                run: issued.run,
                source: issued.source,
                center: issued.center,
                year: issued.year,
                issued_at: at,
                previous_cutoff,
                cutoff: issued.cutoff,
                invoices: issued.invoices,
                gross: issued.gross,
                clawback_offset: issued.clawback_offset,
                net: issued.net,
                state: if paid_at_once {
                    StatementState::Paid
                } else {
                    StatementState::Open
                },
                payments: Vec::new(),
                clawed_back: Money::ZERO,
            },
        );
        self.recover(
            issued.source,
            issued.center,
            issued.year,
            issued.clawback_offset,
            Recovery::Offset,
        );
    }

    /// Moves a statement's standing subsidy between open and paid, and counts the cash.
    /// `payee` is the statement's; a center's account counts what the bureau paid it (an
    /// enterprise payee's cash, and a second source's, are in the books only).
    fn pay(
        &mut self,
        source: FundingSource,
        payee: Uscc,
        year: ProgrammeYear,
        amount: Money,
        standing: Money,
        paid: bool,
    ) {
        let center_paid =
            self.payee_kind(year) == Payee::Center && source == FundingSource::Primary;
        let (years, center_years) = match source {
            FundingSource::Primary => (&mut self.years, &mut self.center_years),
            FundingSource::Second => (&mut self.second_years, &mut self.second_center_years),
        };
        let book = years.entry(year).or_default();
        let books = center_years.entry((payee, year)).or_default();
        let account = self.centers.get_mut(&payee).filter(|_| center_paid);
        if paid {
            book.standing_open = book.standing_open.saturating_minus(standing);
            book.standing_paid = book.standing_paid.plus(standing);
            book.paid = book.paid.plus(amount);
            books.paid = books.paid.plus(amount);
            if let Some(account) = account {
                account.paid_total = account.paid_total.plus(amount);
            }
        } else {
            book.standing_paid = book.standing_paid.saturating_minus(standing);
            book.standing_open = book.standing_open.plus(standing);
            book.paid = book.paid.saturating_minus(amount);
            books.paid = books.paid.saturating_minus(amount);
            if let Some(account) = account {
                account.paid_total = account.paid_total.saturating_minus(amount);
            }
        }
    }

    /// Recovers `amount` of a payee's receivables of `year` owed to `source`, oldest
    /// first: each fen recovered frees the source's pool (and, for the programme's own,
    /// the enterprise's cap), and counts as released from the voucher (or its second
    /// share) it was clawed back from.
    fn recover(
        &mut self,
        source: FundingSource,
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        how: Recovery,
    ) {
        if amount.is_zero() {
            return;
        }
        // Field by field (not `source_books_mut`): the loop below also updates the
        // enterprises and vouchers.
        let (years, center_years) = match source {
            FundingSource::Primary => (&mut self.years, &mut self.center_years),
            FundingSource::Second => (&mut self.second_years, &mut self.second_center_years),
        };
        let books = center_years.entry((center, year)).or_default();
        match how {
            Recovery::Offset => books.offset = books.offset.plus(amount),
            Recovery::Repaid => books.repaid = books.repaid.plus(amount),
        }
        let mut left = amount;
        let mut freed: Vec<(VoucherId, Uscc, Money, bool)> = Vec::new();
        while !left.is_zero() {
            let Some(item) = books.receivables.front_mut() else {
                break;
            };
            let take = item.outstanding.min(left);
            item.outstanding = item.outstanding.saturating_minus(take);
            left = left.saturating_minus(take);
            freed.push((item.voucher, item.enterprise, take, item.holds_pool));
            if item.outstanding.is_zero() {
                books.receivables.pop_front();
            }
        }
        let book = years.entry(year).or_default();
        match how {
            Recovery::Offset => book.offset = book.offset.plus(amount),
            Recovery::Repaid => book.repaid = book.repaid.plus(amount),
        }
        for (voucher, enterprise, take, holds_pool) in freed {
            if !holds_pool {
                // A format-v1 clawback: the voucher and the pool had it back already.
                continue;
            }
            book.usage.recover(take);
            book.released = book.released.plus(take);
            if source == FundingSource::Primary {
                if let Some(account) = self.enterprises.get_mut(&enterprise) {
                    account.usage_by_year.year_mut(year).recover(take);
                }
            }
            if let Some(found) = self.vouchers.get_mut(&voucher) {
                match source {
                    FundingSource::Primary => {
                        found.clawback_outstanding =
                            found.clawback_outstanding.saturating_minus(take);
                        found.released = found.released.plus(take);
                    }
                    FundingSource::Second => {
                        let share = &mut found.second;
                        share.clawback_outstanding =
                            share.clawback_outstanding.saturating_minus(take);
                        share.released = share.released.plus(take);
                    }
                }
            }
        }
    }

    /// Format v1's `CenterSettled`: everything unsettled of the center, in every year,
    /// settled and paid at once, with `clawback_offset` recovered oldest year first.
    fn apply_legacy_settlement(
        &mut self,
        sequence: u64,
        center: Uscc,
        clawback_offset: Money,
        paid: Money,
    ) {
        let years: Vec<ProgrammeYear> = self
            .center_years
            .range((center, ProgrammeYear::MIN)..=(center, ProgrammeYear::MAX))
            .map(|((_, year), _)| *year)
            .collect();
        let mut offset_left = clawback_offset;
        let mut paid_left = paid;
        for year in years {
            let Some(books) = self.center_years.get_mut(&(center, year)) else {
                continue;
            };
            let gross = books.unsettled;
            let offset = offset_left.min(books.outstanding()).min(gross);
            offset_left = offset_left.saturating_minus(offset);
            let net = gross.saturating_minus(offset).min(paid_left);
            paid_left = paid_left.saturating_minus(net);
            books.settled = books.settled.plus(gross);
            books.settled_count += books.unsettled_count;
            books.unsettled = Money::ZERO;
            books.unsettled_count = 0;
            books.settlements.push((sequence, None));
            books.paid = books.paid.plus(net);
            let book = self.years.entry(year).or_default();
            book.unsettled = book.unsettled.saturating_minus(gross);
            book.settled = book.settled.plus(gross);
            book.standing_paid = book.standing_paid.plus(gross);
            book.paid = book.paid.plus(net);
            self.recover(
                FundingSource::Primary,
                center,
                year,
                offset,
                Recovery::Offset,
            );
        }
        if let Some(account) = self.centers.get_mut(&center) {
            account.paid_total = account.paid_total.plus(paid);
        }
    }
}
