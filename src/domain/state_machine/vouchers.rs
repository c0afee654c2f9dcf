//! Voucher rules: approval holds face value on the enterprise's cap and the year's pool
//! (and, with a stacked second source, the second share on the second pool);
//! a voucher belongs to the programme year its contract term starts in; one voucher per
//! contract (numbers compared in canonical form); a voucher whose redemption window is
//! already over when it would be approved is refused; retrying an approval with the same
//! id and content answers the original; cancellation releases what is left; expiry releases
//! it once the redemption window (term end + the policy's grace days) is over, decided
//! from the command's time.

use super::{reject, Decision, Reply};
use crate::domain::command::{ApproveVoucher, CenterStatus};
use crate::domain::event::{Event, ReleaseCause, VoucherApproved};
use crate::domain::ids::{Reason, Timestamp, VoucherId};
use crate::domain::money::Money;
use crate::domain::programme::ApprovalTerms;
use crate::domain::rejection::{Rejection, RejectionCode};
use crate::domain::state::{LedgerState, Voucher, VoucherStatus};
use crate::limits::{ACTIVE_VOUCHERS_PER_CENTER_MAX, EXPIRY_BATCH_LIMIT};

/// True when an approval asks for exactly what `voucher` was approved with.
fn same_approval(voucher: &Voucher, approve: &ApproveVoucher) -> bool {
    let terms = &voucher.terms;
    terms.year == approve.year
        && terms.enterprise == approve.enterprise
        && terms.center == approve.center
        && terms.contract_number == approve.contract_number
        && terms.contract_fee == approve.contract_fee
        && terms.term_start == approve.term_start
        && terms.term_end == approve.term_end
        && terms.requested == approve.requested
        && terms.programme.enterprise_class == approve.enterprise_class
        && terms.programme.declarations == approve.declarations
}

impl LedgerState {
    pub(super) fn decide_approve(
        &self,
        approve: &ApproveVoucher,
        at: Timestamp,
    ) -> Result<Decision, Rejection> {
        // A retry gets its original answer even if the rules would refuse it now (the
        // pool may have run dry since), so the id is looked at before anything else.
        if let Some(existing) = self.vouchers.get(&approve.voucher) {
            if same_approval(existing, approve) {
                return Ok(Decision::Answer(Reply::VoucherApproved {
                    voucher: approve.voucher,
                    face_value: existing.terms.face_value,
                    sequence: existing.approved_sequence,
                    duplicate: true,
                }));
            }
            return reject(
                RejectionCode::VoucherAlreadyExists,
                format!(
                    "voucher {} exists already with other terms (contract {} of center {})",
                    approve.voucher, existing.terms.contract_number, existing.terms.center
                ),
            );
        }
        let policy = self.existing_policy(approve.year)?;
        self.open_year(approve.year)?;
        let (start_year, _, _) = approve.term_start.year_month_day();
        if i64::from(start_year) != i64::from(approve.year.get()) {
            return reject(
                RejectionCode::VoucherYearMismatch,
                format!(
                    "the contract term starts on {}, so the voucher belongs to programme year {start_year}, not {}",
                    approve.term_start, approve.year
                ),
            );
        }
        self.existing_enterprise(&approve.enterprise)?;
        let center = self.existing_center(&approve.center)?;
        if center.status != CenterStatus::Active {
            return reject(
                RejectionCode::CenterNotActive,
                format!("center {} is {}", approve.center, center.status.name()),
            );
        }
        if self.are_related(&approve.enterprise, &approve.center) {
            return reject(
                RejectionCode::RelatedParty,
                format!(
                    "enterprise {} and center {} are declared related parties",
                    approve.enterprise, approve.center
                ),
            );
        }
        if let Some(existing) = self.voucher_for_contract(&approve.center, &approve.contract_number)
        {
            return reject(
                RejectionCode::ContractAlreadyHasVoucher,
                format!(
                    "contract {} with center {} already has voucher {existing}",
                    approve.contract_number, approve.center
                ),
            );
        }
        if approve.term_end < approve.term_start
            || approve.term_end >= approve.term_start.plus_one_year()
        {
            return reject(
                RejectionCode::ContractTermInvalid,
                format!(
                    "term {}..{} must end on or after its start and last at most one year",
                    approve.term_start, approve.term_end
                ),
            );
        }
        self.check_programme_approval(policy, approve, center)?;
        if self.active_voucher_count(&approve.center) >= ACTIVE_VOUCHERS_PER_CENTER_MAX {
            return reject(
                RejectionCode::RegistryLimitReached,
                format!(
                    "center {} holds {ACTIVE_VOUCHERS_PER_CENTER_MAX} active vouchers, the most one center may",
                    approve.center
                ),
            );
        }
        let redemption_window_end = approve
            .term_end
            .plus_days(i32::from(policy.redemption_grace_days()));
        if at.date() > redemption_window_end {
            return reject(
                RejectionCode::RedemptionWindowClosed,
                format!(
                    "a voucher for the term {}..{} could be redeemed only until {redemption_window_end}; today is {}",
                    approve.term_start,
                    approve.term_end,
                    at.date()
                ),
            );
        }
        let approved_rate = self.approved_rate(policy, approve, center);
        let rate = approved_rate.rate;
        let most = approve.contract_fee.times_rate_floor(rate);
        let face_value = approve.requested.min(most);
        if face_value.is_zero() {
            return reject(
                RejectionCode::FaceValueZero,
                format!(
                    "face value is zero: requested {}, {rate} x fee {} = {most}",
                    approve.requested, approve.contract_fee
                ),
            );
        }
        let cap = self
            .enterprise_cap(&approve.enterprise, approve.year)
            .unwrap_or(Money::ZERO);
        let usage = self.enterprise_usage(&approve.enterprise, approve.year);
        let enterprise_free = usage.free_under(cap);
        if face_value > enterprise_free {
            return reject(
                RejectionCode::EnterpriseCapExceeded,
                format!(
                    "face value {face_value} exceeds what enterprise {} has left of its {} cap {cap}: {enterprise_free} (held {}, redeemed {}, owed back {})",
                    approve.enterprise, approve.year, usage.held, usage.redeemed, usage.receivable
                ),
            );
        }
        let pool = self.pool(approve.year).unwrap_or(Money::ZERO);
        let pool_free = self.pool_usage(approve.year).free_under(pool);
        if face_value > pool_free {
            return reject(
                RejectionCode::PoolExhausted,
                format!(
                    "face value {face_value} exceeds what is left of the {} pool: {pool_free}",
                    approve.year
                ),
            );
        }
        // Stacked funding: the second source's share, held on its own pool.
        let second_face_value = self.second_share(policy, approve.contract_fee, face_value);
        let approved = VoucherApproved {
            voucher: approve.voucher,
            year: approve.year,
            enterprise: approve.enterprise,
            center: approve.center,
            contract_number: approve.contract_number.clone(),
            contract_fee: approve.contract_fee,
            term_start: approve.term_start,
            term_end: approve.term_end,
            redemption_window_end,
            tier: center.tier,
            rate,
            ceiling: approved_rate.ceiling,
            requested: approve.requested,
            face_value,
            programme: ApprovalTerms {
                second_face_value,
                ..approved_rate.terms
            },
        };
        let voucher = approve.voucher;
        Ok(Decision::one(
            Event::VoucherApproved(Box::new(approved)),
            move |sequence| Reply::VoucherApproved {
                voucher,
                face_value,
                sequence,
                duplicate: false,
            },
        ))
    }

    pub(super) fn decide_cancel(
        &self,
        voucher: &VoucherId,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        let existing = self.existing_voucher(voucher)?;
        self.open_year(existing.terms.year)?;
        if existing.status != VoucherStatus::Active {
            return reject(
                RejectionCode::VoucherNotActive,
                format!("voucher {voucher} is {}", existing.status.name()),
            );
        }
        let released = existing.remaining;
        Ok(Decision::one(
            Event::VoucherReleased {
                voucher: *voucher,
                cause: ReleaseCause::Cancelled,
                released,
                reason: Some(reason.clone()),
            },
            move |sequence| Reply::VoucherCancelled { released, sequence },
        ))
    }

    /// Releases up to [`EXPIRY_BATCH_LIMIT`] vouchers whose redemption window ended
    /// before the command's date; the caller repeats while some are released.
    pub(super) fn decide_expiry(&self, at: Timestamp) -> Decision {
        let today = at.date();
        let mut released = Money::ZERO;
        let events: Vec<Event> = self
            .active_by_window_end
            .iter()
            .take_while(|(window_end, _)| *window_end < today)
            .take(EXPIRY_BATCH_LIMIT)
            .filter_map(|(_, voucher_id)| {
                let voucher = self.vouchers.get(voucher_id)?;
                released = released.plus(voucher.remaining);
                Some(Event::VoucherReleased {
                    voucher: *voucher_id,
                    cause: ReleaseCause::Expired,
                    released: voucher.remaining,
                    reason: None,
                })
            })
            .collect();
        if events.is_empty() {
            return Decision::Answer(Reply::VouchersExpired {
                released_vouchers: 0,
                released: Money::ZERO,
                last_sequence: self.last_sequence,
            });
        }
        let released_vouchers = events.len() as u32;
        Decision::Append {
            events,
            reply: Box::new(move |_, last_sequence| Reply::VouchersExpired {
                released_vouchers,
                released,
                last_sequence,
            }),
        }
    }
}
