//! `check_invariants`: the promises every state keeps, checked after every replay, by
//! `verify`, and after every command in the property tests. ARCHITECTURE.md states them.

use std::collections::BTreeMap;

use super::{LedgerState, Usage, VoucherStatus};
use crate::domain::ids::ProgrammeYear;

impl LedgerState {
    /// Checks every invariant the rules promise, returning a sentence per violation.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut violations = Vec::new();
        for (year, usage) in &self.pools {
            match self.policies.get(year) {
                Some(policy) if usage.used() > policy.annual_pool() => violations.push(format!(
                    "pool {year}: held {} + redeemed {} exceeds pool {}",
                    usage.held,
                    usage.redeemed,
                    policy.annual_pool()
                )),
                Some(_) => {}
                None if usage.used().is_zero() => {}
                None => violations.push(format!("pool {year}: usage without a policy")),
            }
        }
        let mut expected_pools: BTreeMap<ProgrammeYear, Usage> = BTreeMap::new();
        for account in self.enterprises_sorted() {
            for (year, usage) in &account.usage_by_year {
                let expected = expected_pools.entry(*year).or_default();
                expected.held = expected.held.plus(usage.held);
                expected.redeemed = expected.redeemed.plus(usage.redeemed);
                if let Some(cap) = self.enterprise_cap(&account.enterprise, *year) {
                    if usage.used() > cap {
                        violations.push(format!(
                            "enterprise {} {year}: held {} + redeemed {} exceeds cap {cap}",
                            account.enterprise, usage.held, usage.redeemed
                        ));
                    }
                }
            }
        }
        for (year, expected) in &expected_pools {
            if self.pool_usage(*year) != *expected {
                violations.push(format!(
                    "pool {year}: {:?} differs from the sum over enterprises {:?}",
                    self.pool_usage(*year),
                    expected
                ));
            }
        }
        for voucher in self.vouchers_sorted() {
            let terms = &voucher.terms;
            let ceiling = terms.contract_fee.as_decimal() * terms.ceiling.as_decimal();
            if voucher.subsidy_total.as_decimal() > ceiling {
                violations.push(format!(
                    "voucher {}: subsidy {} exceeds ceiling {} x fee {}",
                    terms.voucher, voucher.subsidy_total, terms.ceiling, terms.contract_fee
                ));
            }
            if voucher.invoiced_total > terms.contract_fee {
                violations.push(format!(
                    "voucher {}: invoiced {} exceeds contract fee {}",
                    terms.voucher, voucher.invoiced_total, terms.contract_fee
                ));
            }
            let accounted = voucher
                .remaining
                .plus(voucher.subsidy_total)
                .plus(voucher.released);
            if voucher.status == VoucherStatus::Active && accounted != terms.face_value {
                violations.push(format!(
                    "voucher {}: remaining {} + redeemed {} differs from face {}",
                    terms.voucher, voucher.remaining, voucher.subsidy_total, terms.face_value
                ));
            }
            if voucher.subsidy_total.plus(voucher.released) > terms.face_value
                && voucher.status == VoucherStatus::Active
            {
                violations.push(format!("voucher {}: balance below zero", terms.voucher));
            }
        }
        violations
    }
}
