//! The programme policy for one year: pool, default enterprise cap, contract-fee ceiling
//! and a subsidy rate per facility tier. The bureau publishes it as data (a TOML file
//! loaded through the `PublishPolicy` command), never as constants in code.

use std::fmt;

use super::ids::ProgrammeYear;
use super::money::{Money, Rate};
use super::programme::ProgrammeRules;
use super::validation::ValidationError;

/// The facility tier of a computing center, which sets its subsidy rate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FacilityTier {
    /// Domestic (信创) compute.
    Domestic,
    /// Model-as-a-service on a multimodal model filed with the regulator.
    MaasMultimodal,
    /// Every other facility.
    Other,
}

impl FacilityTier {
    pub const ALL: [FacilityTier; 3] = [
        FacilityTier::Domestic,
        FacilityTier::MaasMultimodal,
        FacilityTier::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FacilityTier::Domestic => "domestic",
            FacilityTier::MaasMultimodal => "maas_multimodal",
            FacilityTier::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Result<FacilityTier, ValidationError> {
        FacilityTier::ALL
            .into_iter()
            .find(|tier| tier.name() == text)
            .ok_or_else(|| {
                ValidationError::new("tier", text, "must be domestic, maas_multimodal or other")
            })
    }
}

impl fmt::Display for FacilityTier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One year's published programme rules. Constructed only through [`ProgrammePolicy::new`],
/// which refuses a tier rate above the contract-fee ceiling.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProgrammePolicy {
    year: ProgrammeYear,
    annual_pool: Money,
    default_enterprise_cap: Money,
    contract_fee_ceiling: Rate,
    tier_rates: [Rate; 3],
    /// Days after a contract term ends during which invoices issued inside the term may
    /// still be posted; the unredeemed face value is released only after them.
    redemption_grace_days: u16,
    /// The rules beyond Hangzhou 2024's (none by default; see `domain::programme`).
    rules: ProgrammeRules,
}

impl ProgrammePolicy {
    pub fn new(
        year: ProgrammeYear,
        annual_pool: Money,
        default_enterprise_cap: Money,
        contract_fee_ceiling: Rate,
        tier_rates: [Rate; 3],
    ) -> Result<ProgrammePolicy, ValidationError> {
        if annual_pool.is_zero() {
            return Err(ValidationError::new(
                "annual_pool",
                annual_pool.to_string(),
                "must be above zero",
            ));
        }
        if default_enterprise_cap > annual_pool {
            return Err(ValidationError::new(
                "default_enterprise_cap",
                default_enterprise_cap.to_string(),
                format!("is above the annual pool {annual_pool}"),
            ));
        }
        for (tier, rate) in FacilityTier::ALL.iter().zip(tier_rates) {
            if rate > contract_fee_ceiling {
                return Err(ValidationError::new(
                    "tier_rates",
                    format!("{tier} = {rate}"),
                    format!("is above the contract-fee ceiling {contract_fee_ceiling}"),
                ));
            }
        }
        Ok(ProgrammePolicy {
            year,
            annual_pool,
            default_enterprise_cap,
            contract_fee_ceiling,
            tier_rates,
            redemption_grace_days: crate::limits::REDEMPTION_GRACE_DAYS_DEFAULT,
            rules: ProgrammeRules::default(),
        })
    }

    /// The same policy with another redemption grace (0..=366 days).
    pub fn with_redemption_grace_days(
        mut self,
        days: u16,
    ) -> Result<ProgrammePolicy, ValidationError> {
        if days > crate::limits::REDEMPTION_GRACE_DAYS_MAX {
            return Err(ValidationError::new(
                "redemption_grace_days",
                days.to_string(),
                format!(
                    "must be at most {} days",
                    crate::limits::REDEMPTION_GRACE_DAYS_MAX
                ),
            ));
        }
        self.redemption_grace_days = days;
        Ok(self)
    }

    /// Hangzhou-style defaults for `year`: pool 250,000,000.00, cap 8,000,000.00, ceiling
    /// 30%, domestic and MaaS-multimodal 30%, other 20%.
    pub fn hangzhou_defaults(year: ProgrammeYear) -> ProgrammePolicy {
        ProgrammePolicy {
            year,
            annual_pool: Money::from_whole_yuan(250_000_000),
            default_enterprise_cap: Money::from_whole_yuan(8_000_000),
            contract_fee_ceiling: Rate::basis_points_const(3000),
            tier_rates: [
                Rate::basis_points_const(3000),
                Rate::basis_points_const(3000),
                Rate::basis_points_const(2000),
            ],
            redemption_grace_days: crate::limits::REDEMPTION_GRACE_DAYS_DEFAULT,
            rules: ProgrammeRules::default(),
        }
    }

    /// The same policy with `rules` beyond Hangzhou 2024's, checked against its ceiling.
    pub fn with_rules(mut self, rules: ProgrammeRules) -> Result<ProgrammePolicy, ValidationError> {
        rules.validate(self.contract_fee_ceiling)?;
        self.rules = rules;
        Ok(self)
    }

    /// Reads a policy from the bureau's TOML file. Missing keys take the Hangzhou
    /// defaults; `year` is required. See `config/programmes/` and `docs/programmes.md`;
    /// the error names the line and the field.
    pub fn from_toml(text: &str) -> Result<ProgrammePolicy, ValidationError> {
        super::programme::read_programme_file(text)
            .map(|file| file.policy)
            .map_err(super::programme::PolicyFileError::into_validation_error)
    }

    pub fn year(&self) -> ProgrammeYear {
        self.year
    }
    pub fn annual_pool(&self) -> Money {
        self.annual_pool
    }
    pub fn default_enterprise_cap(&self) -> Money {
        self.default_enterprise_cap
    }
    pub fn contract_fee_ceiling(&self) -> Rate {
        self.contract_fee_ceiling
    }
    pub fn rate_for(&self, tier: FacilityTier) -> Rate {
        self.tier_rates[tier as usize]
    }
    pub fn redemption_grace_days(&self) -> u16 {
        self.redemption_grace_days
    }
    pub fn rules(&self) -> &ProgrammeRules {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_policy_with_defaults_and_overrides() {
        let policy = ProgrammePolicy::from_toml(
            "year = 2026\nannual_pool = \"10000000.00\"\n[tier_rates]\nother = \"0.15\"\n",
        )
        .expect("policy");
        assert_eq!(policy.annual_pool().to_string(), "10000000.00");
        assert_eq!(policy.default_enterprise_cap().to_string(), "8000000.00");
        assert_eq!(policy.rate_for(FacilityTier::Other).to_string(), "0.15");
        assert_eq!(policy.rate_for(FacilityTier::Domestic).to_string(), "0.3");
    }

    #[test]
    fn tier_rate_above_ceiling_is_refused() {
        let error = ProgrammePolicy::from_toml("year = 2026\n[tier_rates]\ndomestic = \"0.35\"\n")
            .expect_err("above ceiling");
        assert!(error.to_string().contains("tier_rates.domestic"), "{error}");
        assert!(error.to_string().contains("ceiling"), "{error}");
    }

    #[test]
    fn float_amounts_and_unknown_keys_are_refused() {
        assert!(ProgrammePolicy::from_toml("year = 2026\nannual_pool = 1.5\n").is_err());
        assert!(ProgrammePolicy::from_toml("year = 2026\npool = \"1.00\"\n").is_err());
        assert!(ProgrammePolicy::from_toml("annual_pool = \"1.00\"\n").is_err());
    }
}
