//! The fold: `LedgerState::apply(sequence, time, event)`.
//!
//! `apply` never fails and reads nothing but its arguments. The live path (the state
//! machine right after deciding) and replay (recovery, `verify`) both use it, which is why
//! a replayed log gives exactly the live state. Amounts that would go below zero (only
//! possible with a log that breaks the invariants) clamp at zero, and `check_invariants`
//! reports them.

use std::collections::BTreeMap;

use super::{CapOverride, CenterAccount, EnterpriseAccount, InvoiceEntry, LedgerState, Usage};
use super::{Voucher, VoucherStatus};
use crate::domain::command::CenterStatus;
use crate::domain::event::{
    Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, VoucherApproved,
};
use crate::domain::ids::{Timestamp, VoucherId};
use crate::domain::money::Money;

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

    fn unredeem(&mut self, amount: Money, back_to_hold: bool) {
        self.redeemed = self.redeemed.saturating_minus(amount);
        if back_to_hold {
            self.held = self.held.plus(amount);
        }
    }
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
                self.pools.entry(policy.year()).or_default();
            }
            Event::CenterRegistered {
                center,
                name,
                tier,
                listing_basis,
            } => {
                self.centers.insert(
                    *center,
                    CenterAccount {
                        center: *center,
                        name: name.clone(),
                        tier: *tier,
                        listing_basis: *listing_basis,
                        status: CenterStatus::Active,
                        redeemed_total: Money::ZERO,
                        reversed_total: Money::ZERO,
                        unsettled: Money::ZERO,
                        clawback_owed: Money::ZERO,
                        paid_total: Money::ZERO,
                        settlement_epoch: 0,
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
                        usage_by_year: BTreeMap::new(),
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
            Event::VoucherApproved(approved) => self.apply_voucher_approved(approved),
            Event::InvoiceRedeemed(redeemed) => self.apply_invoice_redeemed(sequence, redeemed),
            Event::InvoiceReversed(reversed) => self.apply_invoice_reversed(reversed),
            Event::VoucherReleased {
                voucher,
                cause,
                released,
                ..
            } => self.apply_voucher_released(*voucher, *cause, *released),
            Event::CenterSettled {
                center,
                settlement_id,
                redeemed,
                clawback_offset,
                paid,
            } => {
                self.settlements.insert(*settlement_id);
                if let Some(account) = self.centers.get_mut(center) {
                    account.unsettled = account.unsettled.saturating_minus(*redeemed);
                    account.clawback_owed =
                        account.clawback_owed.saturating_minus(*clawback_offset);
                    account.paid_total = account.paid_total.plus(*paid);
                    account.settlement_epoch += 1;
                }
            }
        }
    }

    fn apply_voucher_approved(&mut self, approved: &VoucherApproved) {
        let face = approved.face_value;
        self.pools.entry(approved.year).or_default().hold(face);
        if let Some(account) = self.enterprises.get_mut(&approved.enterprise) {
            account
                .usage_by_year
                .entry(approved.year)
                .or_default()
                .hold(face);
        }
        self.contracts.insert(
            (approved.center, approved.contract_number.clone()),
            approved.voucher,
        );
        self.active_by_term_end
            .insert((approved.term_end, approved.voucher));
        self.vouchers.insert(
            approved.voucher,
            Voucher {
                terms: approved.clone(),
                status: VoucherStatus::Active,
                remaining: face,
                subsidy_total: Money::ZERO,
                invoiced_total: Money::ZERO,
                released: Money::ZERO,
                invoice_count: 0,
            },
        );
    }

    fn apply_invoice_redeemed(&mut self, sequence: u64, redeemed: &InvoiceRedeemed) {
        let subsidy = redeemed.subsidy;
        let mut settlement_epoch = 0;
        self.invoices_redeemed += 1;
        if let Some(center) = self.centers.get_mut(&redeemed.center) {
            center.redeemed_total = center.redeemed_total.plus(subsidy);
            center.unsettled = center.unsettled.plus(subsidy);
            settlement_epoch = center.settlement_epoch;
        }
        if let Some(voucher) = self.vouchers.get_mut(&redeemed.voucher) {
            voucher.remaining = voucher.remaining.saturating_minus(subsidy);
            voucher.subsidy_total = voucher.subsidy_total.plus(subsidy);
            voucher.invoiced_total = voucher.invoiced_total.plus(redeemed.amount);
            voucher.invoice_count += 1;
            let year = voucher.terms.year;
            self.pools
                .entry(year)
                .or_default()
                .redeem_from_hold(subsidy);
            if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
                account
                    .usage_by_year
                    .entry(year)
                    .or_default()
                    .redeem_from_hold(subsidy);
            }
        }
        self.invoice_cache.insert(
            redeemed.center,
            redeemed.invoice_number.clone(),
            InvoiceEntry {
                voucher: redeemed.voucher,
                amount: redeemed.amount,
                issue_date: redeemed.issue_date,
                delivery_proof: redeemed.delivery_proof.clone(),
                subsidy,
                sequence,
                settlement_epoch,
                reversed: false,
            },
        );
    }

    fn apply_invoice_reversed(&mut self, reversed: &InvoiceReversed) {
        let subsidy = reversed.subsidy;
        self.invoice_cache
            .update(&reversed.center, &reversed.invoice_number, |entry| {
                entry.reversed = true;
            });
        if let Some(center) = self.centers.get_mut(&reversed.center) {
            center.reversed_total = center.reversed_total.plus(subsidy);
            if reversed.clawback {
                center.clawback_owed = center.clawback_owed.plus(subsidy);
            } else {
                center.unsettled = center.unsettled.saturating_minus(subsidy);
            }
        }
        if let Some(voucher) = self.vouchers.get_mut(&reversed.voucher) {
            voucher.subsidy_total = voucher.subsidy_total.saturating_minus(subsidy);
            voucher.invoiced_total = voucher.invoiced_total.saturating_minus(reversed.amount);
            if reversed.returned_to_voucher {
                voucher.remaining = voucher.remaining.plus(subsidy);
            }
            let year = voucher.terms.year;
            self.pools
                .entry(year)
                .or_default()
                .unredeem(subsidy, reversed.returned_to_voucher);
            if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
                account
                    .usage_by_year
                    .entry(year)
                    .or_default()
                    .unredeem(subsidy, reversed.returned_to_voucher);
            }
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
        };
        voucher.remaining = voucher.remaining.saturating_minus(released);
        voucher.released = voucher.released.plus(released);
        self.active_by_term_end
            .remove(&(voucher.terms.term_end, voucher_id));
        let year = voucher.terms.year;
        self.pools.entry(year).or_default().release_hold(released);
        if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
            account
                .usage_by_year
                .entry(year)
                .or_default()
                .release_hold(released);
        }
    }
}
