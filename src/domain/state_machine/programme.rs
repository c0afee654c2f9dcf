//! The programme's own rules at approval (see `docs/programmes.md`):
//!
//! - the small-enterprise rate: decided once, at approval, from the enterprise's
//!   cumulative contract total in the year *including this contract* (≤ the line: the
//!   small-enterprise rate; above: the tier rate; earlier vouchers keep theirs);
//! - the longest contract term;
//! - capacity thresholds a center must meet (≥, judged on its registered figures);
//! - declarations an approval must carry.
//!
//! An enterprise payee is applied in `redemption.rs` and `settlement.rs`; a second
//! funding source (stacked funding) in `vouchers.rs` (its share of the face value),
//! `redemption.rs` (its subsidy) and `settlement.rs` (its statements).

use super::reject;
use crate::domain::command::ApproveVoucher;
use crate::domain::ids::{ProgrammeYear, Uscc, VoucherId};
use crate::domain::money::{Money, Rate};
use crate::domain::policy::ProgrammePolicy;
use crate::domain::programme::{ApprovalTerms, EnterpriseClass, RateBasis};
use crate::domain::rejection::{Rejection, RejectionCode};
use crate::domain::state::{CenterAccount, LedgerState};

/// The rate, the ceiling and the recorded terms an approval gets.
pub(super) struct ApprovedRate {
    pub rate: Rate,
    pub ceiling: Rate,
    pub terms: ApprovalTerms,
}

impl LedgerState {
    /// The contract fees of every voucher approved for `enterprise` in `year` (cancelled,
    /// expired and withdrawn ones included: a signed contract stays signed, and cancelling
    /// must not reset the count). Walks the enterprise's vouchers; asked only when the
    /// policy has a small-enterprise rate and the approval is for a small enterprise.
    pub fn enterprise_contract_total(&self, enterprise: &Uscc, year: ProgrammeYear) -> Money {
        self.vouchers_by_enterprise
            .range((*enterprise, VoucherId::MIN)..=(*enterprise, VoucherId::MAX))
            .filter_map(|(_, voucher)| self.vouchers.get(voucher))
            .filter(|voucher| voucher.terms.year == year)
            .fold(Money::ZERO, |total, voucher| {
                total.plus(voucher.terms.contract_fee)
            })
    }

    /// The programme's approval rules beyond today's: term length, center capacity,
    /// declarations. Called after the registry checks, before any money is looked at.
    pub(super) fn check_programme_approval(
        &self,
        policy: &ProgrammePolicy,
        approve: &ApproveVoucher,
        center: &CenterAccount,
    ) -> Result<(), Rejection> {
        let rules = policy.rules();
        if let Some(most) = rules.max_term_days {
            let days =
                approve.term_end.days_since_epoch() - approve.term_start.days_since_epoch() + 1;
            if days > i32::from(most) {
                return reject(
                    RejectionCode::ContractTermInvalid,
                    format!(
                        "term {}..{} lasts {days} days; the {} programme allows at most {most}",
                        approve.term_start,
                        approve.term_end,
                        policy.year()
                    ),
                );
            }
        }
        if let Some(eligibility) = &rules.eligibility {
            if !eligibility.admits(&center.capacity) {
                return reject(
                    RejectionCode::CenterNotEligible,
                    format!(
                        "center {} is registered with {}; the {} programme admits only centers with {}",
                        approve.center,
                        center.capacity,
                        policy.year(),
                        eligibility.describe()
                    ),
                );
            }
        }
        let missing = rules
            .required_declarations
            .missing_from(approve.declarations);
        if !missing.is_empty() {
            let names: Vec<&str> = missing
                .iter()
                .map(|declaration| declaration.name())
                .collect();
            return reject(
                RejectionCode::DeclarationMissing,
                format!(
                    "the {} programme requires the declaration(s) {} on every approval",
                    policy.year(),
                    names.join(", ")
                ),
            );
        }
        Ok(())
    }

    /// The second source's share of a voucher (stacked funding): its rate on the fee, cut
    /// so both shares together stay within the combined ceiling (to the fen: the second
    /// is the one cut), and at most what the second pool has left. A second pool that ran
    /// dry reduces the top-up, never the programme's own voucher. Zero without a second
    /// source.
    pub(super) fn second_share(
        &self,
        policy: &ProgrammePolicy,
        fee: Money,
        face_value: Money,
    ) -> Money {
        let Some(second) = &policy.rules().second_source else {
            return Money::ZERO;
        };
        let by_rate = fee.times_rate_floor(second.rate);
        let under_ceiling = fee
            .times_rate_floor(second.combined_ceiling)
            .saturating_minus(face_value);
        let pool_free = self
            .second_years
            .get(&policy.year())
            .map_or(Money::ZERO, |book| book.usage.free_under(book.pool));
        by_rate.min(under_ceiling).min(pool_free)
    }

    /// The rate and ceiling for an approval: the small-enterprise rate while the
    /// enterprise's cumulative contract total, this contract included, is at most the
    /// line; else the center's tier rate and the policy's ceiling.
    pub(super) fn approved_rate(
        &self,
        policy: &ProgrammePolicy,
        approve: &ApproveVoucher,
        center: &CenterAccount,
    ) -> ApprovedRate {
        let terms = ApprovalTerms {
            enterprise_class: approve.enterprise_class,
            declarations: approve.declarations,
            rate_basis: RateBasis::FacilityTier,
            // Decided with the face value, in `decide_approve`.
            second_face_value: Money::ZERO,
        };
        let standard = ApprovedRate {
            rate: policy.rate_for(center.tier),
            ceiling: policy.contract_fee_ceiling(),
            terms,
        };
        let Some(small) = policy.rules().small_enterprise_rate else {
            return standard;
        };
        if approve.enterprise_class != EnterpriseClass::SmallOrMedium {
            return standard;
        }
        let total = self
            .enterprise_contract_total(&approve.enterprise, approve.year)
            .plus(approve.contract_fee);
        // The rule raises a small enterprise's rate; it never lowers one.
        if total > small.cumulative_contract_limit || small.rate <= standard.rate {
            return standard;
        }
        ApprovedRate {
            rate: small.rate,
            ceiling: small.rate.max(policy.contract_fee_ceiling()),
            terms: ApprovalTerms {
                rate_basis: RateBasis::SmallEnterprise,
                ..terms
            },
        }
    }
}
