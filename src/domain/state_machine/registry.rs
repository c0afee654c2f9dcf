//! Registry rules: a year's policy is published once; centers and enterprises are
//! registered once; a center's status changes (delisting is final and releases the
//! unredeemed face value of its active vouchers at once, one event each; suspension
//! keeps them); caps are raised per enterprise and year; related parties are declared;
//! a year's pool may be adjusted, never below what it already carries.

use super::{reject, Decision, Reply};
use crate::domain::command::{CenterStatus, ListingBasis};
use crate::domain::event::{Event, ReleaseCause};
use crate::domain::ids::{LegalName, ProgrammeYear, Reason, Uscc};
use crate::domain::money::Money;
use crate::domain::policy::{FacilityTier, ProgrammePolicy};
use crate::domain::programme::CenterCapacity;
use crate::domain::rejection::{Rejection, RejectionCode};
use crate::domain::state::LedgerState;
use crate::limits::{ACTIVE_VOUCHERS_PER_CENTER_MAX, CENTERS_MAX};

impl LedgerState {
    pub(super) fn decide_publish_policy(
        &self,
        policy: &ProgrammePolicy,
    ) -> Result<Decision, Rejection> {
        if self.policies.contains_key(&policy.year()) {
            return reject(
                RejectionCode::PolicyAlreadyPublished,
                format!(
                    "the policy for {} is published and immutable (AdjustPool changes its pool)",
                    policy.year()
                ),
            );
        }
        Ok(Decision::one(
            Event::PolicyPublished {
                policy: Box::new(policy.clone()),
            },
            |sequence| Reply::PolicyPublished { sequence },
        ))
    }

    pub(super) fn decide_register_center(
        &self,
        center: &Uscc,
        name: &LegalName,
        tier: FacilityTier,
        listing_basis: ListingBasis,
        capacity: CenterCapacity,
    ) -> Result<Decision, Rejection> {
        if self.centers.contains_key(center) {
            return reject(
                RejectionCode::CenterAlreadyRegistered,
                format!("center {center} is already registered"),
            );
        }
        if self.centers.len() >= CENTERS_MAX {
            return reject(
                RejectionCode::RegistryLimitReached,
                format!("{CENTERS_MAX} centers are registered, the most a programme holds"),
            );
        }
        Ok(Decision::one(
            Event::CenterRegistered {
                center: *center,
                name: name.clone(),
                tier,
                listing_basis,
                capacity,
            },
            |sequence| Reply::CenterRegistered { sequence },
        ))
    }

    pub(super) fn decide_center_status(
        &self,
        center: &Uscc,
        status: CenterStatus,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        let account = self.existing_center(center)?;
        if account.status == CenterStatus::Delisted {
            return reject(
                RejectionCode::CenterDelisted,
                format!("center {center} is delisted; delisting is final"),
            );
        }
        if account.status == status {
            return reject(
                RejectionCode::CenterStatusUnchanged,
                format!("center {center} is already {}", status.name()),
            );
        }
        let mut events = vec![Event::CenterStatusChanged {
            center: *center,
            from: account.status,
            to: status,
            reason: reason.clone(),
        }];
        let mut released = Money::ZERO;
        if status == CenterStatus::Delisted {
            for voucher_id in self.active_vouchers_of_center(center) {
                let Some(voucher) = self.vouchers.get(&voucher_id) else {
                    continue;
                };
                released = released.plus(voucher.remaining);
                events.push(Event::VoucherReleased {
                    voucher: voucher_id,
                    cause: ReleaseCause::Delisted,
                    released: voucher.remaining,
                    reason: Some(reason.clone()),
                });
            }
        }
        assert!(events.len() <= ACTIVE_VOUCHERS_PER_CENTER_MAX + 1);
        let released_vouchers = (events.len() - 1) as u32;
        Ok(Decision::Append {
            events,
            reply: Box::new(move |_, sequence| Reply::CenterStatusChanged {
                released_vouchers,
                released,
                sequence,
            }),
        })
    }

    pub(super) fn decide_register_enterprise(
        &self,
        enterprise: &Uscc,
        name: &LegalName,
    ) -> Result<Decision, Rejection> {
        if self.enterprises.contains_key(enterprise) {
            return reject(
                RejectionCode::EnterpriseAlreadyRegistered,
                format!("enterprise {enterprise} is already registered"),
            );
        }
        Ok(Decision::one(
            Event::EnterpriseRegistered {
                enterprise: *enterprise,
                name: name.clone(),
            },
            |sequence| Reply::EnterpriseRegistered { sequence },
        ))
    }

    pub(super) fn decide_cap_override(
        &self,
        enterprise: &Uscc,
        year: ProgrammeYear,
        cap: Money,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        self.existing_policy(year)?;
        self.open_year(year)?;
        self.existing_enterprise(enterprise)?;
        let used = self.enterprise_usage(enterprise, year).used();
        if cap < used {
            return reject(
                RejectionCode::CapOverrideBelowUsage,
                format!(
                    "cap {cap} for {enterprise} in {year} is below its held, redeemed and owed {used}"
                ),
            );
        }
        Ok(Decision::one(
            Event::CapOverrideGranted {
                enterprise: *enterprise,
                year,
                cap,
                reason: reason.clone(),
            },
            |sequence| Reply::CapOverrideGranted { sequence },
        ))
    }

    pub(super) fn decide_related_party(
        &self,
        enterprise: &Uscc,
        center: &Uscc,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        self.existing_enterprise(enterprise)?;
        self.existing_center(center)?;
        if self.are_related(enterprise, center) {
            return reject(
                RejectionCode::RelatedPartyAlreadyDeclared,
                format!("{enterprise} and {center} are already declared related"),
            );
        }
        Ok(Decision::one(
            Event::RelatedPartyDeclared {
                enterprise: *enterprise,
                center: *center,
                reason: reason.clone(),
            },
            |sequence| Reply::RelatedPartyDeclared { sequence },
        ))
    }

    pub(super) fn decide_adjust_pool(
        &self,
        year: ProgrammeYear,
        new_pool: Money,
        reason: &Reason,
    ) -> Result<Decision, Rejection> {
        self.existing_policy(year)?;
        self.open_year(year)?;
        let previous_pool = self.pool(year).unwrap_or(Money::ZERO);
        let usage = self.pool_usage(year);
        if new_pool < usage.used() {
            return reject(
                RejectionCode::PoolBelowUsage,
                format!(
                    "pool {new_pool} for {year} is below what it carries: held {} + redeemed {} + receivable {} = {}",
                    usage.held,
                    usage.redeemed,
                    usage.receivable,
                    usage.used()
                ),
            );
        }
        Ok(Decision::one(
            Event::PoolAdjusted {
                year,
                previous_pool,
                new_pool,
                reason: reason.clone(),
            },
            move |sequence| Reply::PoolAdjusted {
                year,
                previous_pool,
                new_pool,
                sequence,
            },
        ))
    }
}
