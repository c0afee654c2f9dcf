//! Redemption rules: what an invoice earns and when it may be posted or reversed.
//!
//! - subsidy = ⌊rate × invoiced amount⌋ to the fen, at most what is left of the face
//!   value; the invoiced total stays within the contract fee and the subsidy total within
//!   ceiling × fee;
//! - with a stacked second source, the same invoice also earns ⌊rate₂ × amount⌋ from it,
//!   at most what is left of the voucher's second share; both together stay within the
//!   combined ceiling × fee; a voucher is exhausted only when both shares are;
//! - an invoice issued inside the contract term may be posted until the end of the
//!   voucher's redemption window (term end + grace days), judged by the command's time,
//!   so whether it is accepted never depends on when the expiry sweep ran;
//! - the same invoice number (canonical form) again with the same content answers the
//!   original outcome, before any other rule (a retry after a suspension still gets it);
//!   with other content it is a conflict; if it was reversed since, the answer says so
//!   and the subsidy that stands is 0.00. The content compared is what the invoice index
//!   keeps (voucher, amount, issue date, delivery proof); a proof of payment is evidence
//!   recorded once, with the redemption, so a retry is answered whatever proof it carries;
//! - in a reimbursement year (the enterprise is the payee) every invoice carries the
//!   enterprise's proof of payment (`PAYMENT_PROOF_MISSING` without one);
//! - a reversal before the invoice is in a statement takes the subsidy back (to the
//!   voucher if it is active, else to cap and pool); after, it is a clawback: the payee
//!   (center, or enterprise in a reimbursement year) owes it back, and cap and pool are
//!   freed only when it is recovered. Only the bureau may reverse a settled invoice. A
//!   second source's subsidy is reversed with it the same way (both parts of an invoice
//!   are settled by the same run).

use super::{reject, Decision, InvoiceOutcome, Reply, ReversalOutcome};
use crate::domain::command::{CenterStatus, Envelope, PostInvoice};
use crate::domain::event::{Event, InvoiceRedeemed, InvoiceReversed};
use crate::domain::ids::{InvoiceNumber, Reason, Timestamp, Uscc};
use crate::domain::money::Money;
use crate::domain::origin::PrincipalRole;
use crate::domain::programme::Payee;
use crate::domain::rejection::{Rejection, RejectionCode};
use crate::domain::state::{InvoiceEntry, InvoiceLookup, LedgerState, Voucher, VoucherStatus};

pub(super) enum InvoiceDecision {
    /// The original outcome, and the second source's subsidy that stands on it.
    Duplicate(InvoiceOutcome, Money),
    Redeem(InvoiceRedeemed),
}

impl LedgerState {
    /// The invoice the command names, from the invoice cache. The ledger promises that
    /// every invoice a batch names was prefetched; deciding "new" on a key it forgot
    /// would pay a subsidy twice, so a broken promise stops the writer instead.
    fn prefetched_invoice(&self, center: &Uscc, number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        match self.invoice_cache.lookup(center, number) {
            InvoiceLookup::Found(entry) => Some(entry),
            InvoiceLookup::Absent => None,
            InvoiceLookup::NotPrefetched => panic!(
                "invoice {number} of center {center} was not prefetched before the batch was decided"
            ),
        }
    }

    pub(super) fn decide_post_invoice(
        &self,
        post: &PostInvoice,
        at: Timestamp,
    ) -> Result<InvoiceDecision, Rejection> {
        let center = self.existing_center(&post.center)?;
        // A retry must get the original answer even if the center has since been
        // suspended, so duplicates are recognised before any other rule.
        if let Some(entry) = self.prefetched_invoice(&post.center, &post.invoice_number) {
            let same = entry.voucher == post.voucher
                && entry.amount == post.amount
                && entry.issue_date == post.issue_date
                && entry.delivery_proof == post.delivery_proof;
            if !same {
                return reject(
                    RejectionCode::InvoiceConflict,
                    format!(
                        "invoice {} of center {} was posted before with other content (event {})",
                        post.invoice_number, post.center, entry.sequence
                    ),
                );
            }
            let (subsidy, second_subsidy) = if entry.is_reversed() {
                (Money::ZERO, Money::ZERO)
            } else {
                (entry.subsidy, entry.second_subsidy)
            };
            return Ok(InvoiceDecision::Duplicate(
                InvoiceOutcome {
                    subsidy,
                    sequence: entry.sequence,
                    duplicate: true,
                    reversed: entry.is_reversed(),
                },
                second_subsidy,
            ));
        }
        if center.status != CenterStatus::Active {
            return reject(
                RejectionCode::CenterNotActive,
                format!("center {} is {}", post.center, center.status.name()),
            );
        }
        let voucher = self.existing_voucher(&post.voucher)?;
        let terms = &voucher.terms;
        if terms.center != post.center {
            // Which center owns it is not the caller's business.
            return reject(
                RejectionCode::VoucherCenterMismatch,
                format!(
                    "voucher {} does not belong to center {}",
                    post.voucher, post.center
                ),
            );
        }
        self.open_year(terms.year)?;
        if voucher.status != VoucherStatus::Active {
            return reject(
                RejectionCode::VoucherNotActive,
                format!("voucher {} is {}", post.voucher, voucher.status.name()),
            );
        }
        // Reimbursement: the bureau pays the enterprise only for what it shows it paid.
        if self.payee_kind(terms.year) == Payee::Enterprise && post.payment_proof.is_none() {
            return reject(
                RejectionCode::PaymentProofMissing,
                format!(
                    "invoice {} of center {} has no proof of payment; the {} programme reimburses enterprise {} and needs the proof (bank reference or payment voucher number) of every invoice",
                    post.invoice_number, post.center, terms.year, terms.enterprise
                ),
            );
        }
        if post.issue_date < terms.term_start || post.issue_date > terms.term_end {
            return reject(
                RejectionCode::InvoiceDateOutsideTerm,
                format!(
                    "issue date {} is outside the contract term {}..{}",
                    post.issue_date, terms.term_start, terms.term_end
                ),
            );
        }
        if at.date() > terms.redemption_window_end {
            return reject(
                RejectionCode::RedemptionWindowClosed,
                format!(
                    "voucher {}'s redemption window (term end {} + grace) closed on {}; today is {}",
                    post.voucher,
                    terms.term_end,
                    terms.redemption_window_end,
                    at.date()
                ),
            );
        }
        let invoiced = voucher.invoiced_total.plus(post.amount);
        if invoiced > terms.contract_fee {
            return reject(
                RejectionCode::ContractFeeExceeded,
                format!(
                    "invoiced total would be {invoiced}, above the contract fee {}",
                    terms.contract_fee
                ),
            );
        }
        if voucher.remaining.is_zero() && voucher.second.remaining.is_zero() {
            return reject(
                RejectionCode::VoucherExhausted,
                format!("voucher {} has no face value left", post.voucher),
            );
        }
        let subsidy = post
            .amount
            .times_rate_floor(terms.rate)
            .min(voucher.remaining);
        let subsidy_total = voucher.subsidy_total.plus(subsidy);
        if subsidy_total.is_above_share_of(terms.contract_fee, terms.ceiling) {
            return reject(
                RejectionCode::ContractCeilingExceeded,
                format!(
                    "subsidy total would be {subsidy_total}, above {} x contract fee {}",
                    terms.ceiling, terms.contract_fee
                ),
            );
        }
        let second_subsidy = self.second_subsidy(post, voucher, subsidy_total)?;
        Ok(InvoiceDecision::Redeem(InvoiceRedeemed {
            voucher: post.voucher,
            center: post.center,
            invoice_number: post.invoice_number.clone(),
            amount: post.amount,
            issue_date: post.issue_date,
            delivery_proof: post.delivery_proof.clone(),
            subsidy,
            payment_proof: post.payment_proof.clone(),
            second_subsidy,
        }))
    }

    /// Stacked funding: the second source's subsidy on an invoice, ⌊rate₂ × amount⌋ at
    /// most what is left of the voucher's second share. The share was cut at approval so
    /// both sources stay within the combined ceiling, and each subsidy is within its
    /// share, so the check below cannot refuse today: it is the promise stated where the
    /// money is decided, and would catch a later change to the approval rule.
    fn second_subsidy(
        &self,
        post: &PostInvoice,
        voucher: &Voucher,
        first_total: Money,
    ) -> Result<Money, Rejection> {
        // The hot path of a year without a second source stops here.
        if voucher.second.remaining.is_zero() {
            return Ok(Money::ZERO);
        }
        let terms = &voucher.terms;
        let Some(second) = self
            .policy(terms.year)
            .and_then(|policy| policy.rules().second_source.as_ref())
        else {
            return Ok(Money::ZERO);
        };
        let second_subsidy = post
            .amount
            .times_rate_floor(second.rate)
            .min(voucher.second.remaining);
        let combined = first_total
            .plus(voucher.second.subsidy_total)
            .plus(second_subsidy);
        let ceiling = terms.contract_fee.times_rate_floor(second.combined_ceiling);
        if combined > ceiling {
            return reject(
                RejectionCode::ContractCeilingExceeded,
                format!(
                    "both sources' subsidy would be {combined}, above the combined ceiling {} x contract fee {} = {ceiling}",
                    second.combined_ceiling, terms.contract_fee
                ),
            );
        }
        Ok(second_subsidy)
    }

    pub(super) fn decide_reversal(
        &self,
        envelope: &Envelope,
        center: &Uscc,
        invoice_number: &InvoiceNumber,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        self.existing_center(center)?;
        let Some(entry) = self.prefetched_invoice(center, invoice_number) else {
            return reject(
                RejectionCode::InvoiceNotFound,
                format!("center {center} has no invoice {invoice_number}"),
            );
        };
        if entry.is_reversed() {
            return reject(
                RejectionCode::InvoiceAlreadyReversed,
                format!("invoice {invoice_number} of center {center} is already reversed"),
            );
        }
        let voucher = self.existing_voucher(&entry.voucher)?;
        let year = voucher.terms.year;
        self.open_year(year)?;
        let settled = self.invoice_settlement(center, year, entry).is_some();
        let bureau = matches!(
            envelope.origin.principal.role,
            PrincipalRole::Bureau | PrincipalRole::System
        );
        if settled && !bureau {
            return reject(
                RejectionCode::ReversalNeedsBureau,
                format!(
                    "invoice {invoice_number} is in a statement already; only the bureau may reverse a settled invoice"
                ),
            );
        }
        let returned_to_voucher = !settled && voucher.status == VoucherStatus::Active;
        let (subsidy, second_subsidy, clawback) = (entry.subsidy, entry.second_subsidy, settled);
        Ok(Decision::one(
            Event::InvoiceReversed(InvoiceReversed {
                voucher: entry.voucher,
                center: *center,
                invoice_number: invoice_number.clone(),
                redeemed_sequence: entry.sequence,
                amount: entry.amount,
                subsidy,
                clawback,
                returned_to_voucher,
                reason: reason.clone(),
                second_subsidy,
            }),
            move |sequence| {
                Reply::reversal(
                    ReversalOutcome {
                        subsidy,
                        clawback,
                        returned_to_voucher,
                        sequence,
                    },
                    second_subsidy,
                )
            },
        ))
    }
}
