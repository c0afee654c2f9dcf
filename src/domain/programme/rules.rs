//! The rules a programme year may add to Hangzhou 2024's (tier rates, a contract-fee
//! ceiling, a cap and a pool): a small-enterprise rate under a cumulative contract line,
//! a longest contract term, capacity thresholds for centers, declarations an approval must
//! carry, who is paid, and a second funding source. `ProgrammeRules::default()` is "none of
//! them": a policy read from a v1 or v2 record means exactly that.
//!
//! See `docs/programmes.md` for what each rule means and why.

use std::fmt;

use crate::domain::ids::LegalName;
use crate::domain::money::{Money, Rate};
use crate::domain::validation::ValidationError;
use crate::limits::CONTRACT_TERM_DAYS_MAX;

/// How the bureau classes the enterprise when it approves a voucher (declared on the
/// approval, recorded on the voucher: a firm's class may change from one year to the next).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum EnterpriseClass {
    /// Not classed as small or medium (today's default).
    #[default]
    Standard,
    /// A small or medium enterprise (中小企业).
    SmallOrMedium,
}

impl EnterpriseClass {
    pub const ALL: [EnterpriseClass; 2] =
        [EnterpriseClass::Standard, EnterpriseClass::SmallOrMedium];

    pub fn name(self) -> &'static str {
        match self {
            EnterpriseClass::Standard => "standard",
            EnterpriseClass::SmallOrMedium => "small_or_medium",
        }
    }

    pub fn parse(field: &'static str, text: &str) -> Result<EnterpriseClass, ValidationError> {
        EnterpriseClass::ALL
            .into_iter()
            .find(|class| class.name() == text)
            .ok_or_else(|| ValidationError::new(field, text, "must be standard or small_or_medium"))
    }
}

/// A declaration the enterprise makes on its application, recorded by the bureau on the
/// approval. The bit of each is part of the disk format: append only.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Declaration {
    /// No other municipal compute subsidy for the same contract (此合同未享受其他市级算力补贴).
    NoOtherMunicipalSubsidy,
    /// Supplier and buyer are not affiliated (供需双方无关联关系).
    SuppliersNotAffiliated,
}

impl Declaration {
    pub const ALL: [Declaration; 2] = [
        Declaration::NoOtherMunicipalSubsidy,
        Declaration::SuppliersNotAffiliated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Declaration::NoOtherMunicipalSubsidy => "no_other_municipal_subsidy",
            Declaration::SuppliersNotAffiliated => "suppliers_not_affiliated",
        }
    }

    /// What it says, for a bureau official (Chinese, then English).
    pub fn wording(self) -> &'static str {
        match self {
            Declaration::NoOtherMunicipalSubsidy => {
                "此合同未享受其他市级算力补贴 / no other municipal compute subsidy for this contract"
            }
            Declaration::SuppliersNotAffiliated => {
                "供需双方无关联关系 / the supplier is not affiliated with the enterprise"
            }
        }
    }

    fn bit(self) -> u8 {
        match self {
            Declaration::NoOtherMunicipalSubsidy => 1,
            Declaration::SuppliersNotAffiliated => 2,
        }
    }

    pub fn parse(field: &'static str, text: &str) -> Result<Declaration, ValidationError> {
        Declaration::ALL
            .into_iter()
            .find(|declaration| declaration.name() == text)
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    text,
                    "must be no_other_municipal_subsidy or suppliers_not_affiliated",
                )
            })
    }
}

/// A set of declarations (stored as one byte of bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Declarations(u8);

impl Declarations {
    pub const NONE: Declarations = Declarations(0);

    pub fn of(declarations: &[Declaration]) -> Declarations {
        Declarations(
            declarations
                .iter()
                .fold(0, |bits, declaration| bits | declaration.bit()),
        )
    }

    pub fn with(self, declaration: Declaration) -> Declarations {
        Declarations(self.0 | declaration.bit())
    }

    pub fn contains(self, declaration: Declaration) -> bool {
        self.0 & declaration.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The declarations in `self` missing from `given`, in a stable order.
    pub fn missing_from(self, given: Declarations) -> Vec<Declaration> {
        self.iter()
            .filter(|declaration| !given.contains(*declaration))
            .collect()
    }

    pub fn iter(self) -> impl Iterator<Item = Declaration> {
        Declaration::ALL
            .into_iter()
            .filter(move |declaration| self.contains(*declaration))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Rebuilds a stored set; unknown bits are refused, never dropped.
    pub fn from_bits(bits: u8) -> Result<Declarations, ValidationError> {
        let known = Declarations::of(&Declaration::ALL).0;
        if bits & !known != 0 {
            return Err(ValidationError::new(
                "declarations",
                bits.to_string(),
                "holds a declaration this build does not know",
            ));
        }
        Ok(Declarations(bits))
    }
}

impl fmt::Display for Declarations {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Declaration::name).collect();
        if names.is_empty() {
            formatter.write_str("none")
        } else {
            formatter.write_str(&names.join(", "))
        }
    }
}

/// Who the finance bureau pays the subsidy to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum Payee {
    /// The computing center, by statement; the enterprise paid the invoice minus the
    /// subsidy (a discount at the point of sale). Today's programme.
    #[default]
    Center,
    /// The enterprise, which paid the invoice in full (reimbursement, 先支付后补贴).
    Enterprise,
}

impl Payee {
    pub fn name(self) -> &'static str {
        match self {
            Payee::Center => "center",
            Payee::Enterprise => "enterprise",
        }
    }

    pub fn parse(field: &'static str, text: &str) -> Result<Payee, ValidationError> {
        match text {
            "center" => Ok(Payee::Center),
            "enterprise" => Ok(Payee::Enterprise),
            _ => Err(ValidationError::new(
                field,
                text,
                "must be center or enterprise",
            )),
        }
    }
}

/// Which rule set a voucher's rate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum RateBasis {
    /// The center's facility tier (today's rule).
    #[default]
    FacilityTier,
    /// The small-enterprise rate under the cumulative contract line.
    SmallEnterprise,
}

impl RateBasis {
    pub fn name(self) -> &'static str {
        match self {
            RateBasis::FacilityTier => "facility_tier",
            RateBasis::SmallEnterprise => "small_enterprise",
        }
    }
}

/// A computing center's capacity figures, as registered. `None`: not given.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct CenterCapacity {
    /// Intelligent computing capacity (智能算力), whole PFLOPS (FP16), rounded down.
    pub intelligent_pflops: Option<u32>,
    /// Standard racks (标准机架).
    pub racks: Option<u32>,
}

impl CenterCapacity {
    pub fn is_unknown(&self) -> bool {
        self.intelligent_pflops.is_none() && self.racks.is_none()
    }
}

impl fmt::Display for CenterCapacity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let figure = |value: Option<u32>| value.map_or("not given".to_string(), |v| v.to_string());
        write!(
            formatter,
            "{} PFLOPS, {} racks",
            figure(self.intelligent_pflops),
            figure(self.racks)
        )
    }
}

/// Hangzhou 2025: a small or medium enterprise whose contracts approved in the year total
/// at most `cumulative_contract_limit`, this contract included, gets `rate` (and a ceiling
/// of at least `rate`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SmallEnterpriseRate {
    pub rate: Rate,
    pub cumulative_contract_limit: Money,
}

/// Whether one threshold met is enough, or all of them must be.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CapacityRequirement {
    All,
    Any,
}

impl CapacityRequirement {
    pub fn name(self) -> &'static str {
        match self {
            CapacityRequirement::All => "all",
            CapacityRequirement::Any => "any",
        }
    }
}

/// Henan: only centers at or above capacity thresholds may get vouchers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CapacityEligibility {
    pub min_intelligent_pflops: Option<u32>,
    pub min_racks: Option<u32>,
    pub require: CapacityRequirement,
}

impl CapacityEligibility {
    /// True when `capacity` meets the thresholds (`>=`; a figure not given meets none).
    pub fn admits(&self, capacity: &CenterCapacity) -> bool {
        let meets = |threshold: Option<u32>, figure: Option<u32>| {
            threshold.map(|least| figure.is_some_and(|value| value >= least))
        };
        let checks = [
            meets(self.min_intelligent_pflops, capacity.intelligent_pflops),
            meets(self.min_racks, capacity.racks),
        ];
        let mut given = checks.iter().flatten().peekable();
        if given.peek().is_none() {
            return true;
        }
        match self.require {
            CapacityRequirement::All => given.all(|met| *met),
            CapacityRequirement::Any => given.any(|met| *met),
        }
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(least) = self.min_intelligent_pflops {
            parts.push(format!("≥ {least} PFLOPS intelligent computing (智能算力)"));
        }
        if let Some(least) = self.min_racks {
            parts.push(format!("≥ {least} racks (标准机架)"));
        }
        let joiner = match self.require {
            CapacityRequirement::All => " and ",
            CapacityRequirement::Any => " or ",
        };
        parts.join(joiner)
    }
}

/// Which funder a figure belongs to: the programme's own pool (the city's voucher), or a
/// policy's second source (stacked funding). Each has its own pool, statements,
/// payments and receivables; both are recorded on the same redemption.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum FundingSource {
    #[default]
    Primary,
    Second,
}

impl FundingSource {
    pub const ALL: [FundingSource; 2] = [FundingSource::Primary, FundingSource::Second];

    pub fn name(self) -> &'static str {
        match self {
            FundingSource::Primary => "primary",
            FundingSource::Second => "second",
        }
    }

    pub fn parse(field: &'static str, text: &str) -> Result<FundingSource, ValidationError> {
        match text {
            "" | "primary" => Ok(FundingSource::Primary),
            "second" => Ok(FundingSource::Second),
            _ => Err(ValidationError::new(
                field,
                text,
                "must be primary (the programme's own pool) or second (the stacked source)",
            )),
        }
    }
}

/// A second funder (a provincial or national voucher) covering a further share of the
/// same contracts from its own pool.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SecondSource {
    pub name: LegalName,
    pub annual_pool: Money,
    pub rate: Rate,
    /// Both sources together never pay above this share of a contract's fee.
    pub combined_ceiling: Rate,
}

/// The rules beyond Hangzhou 2024's. The default is none of them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ProgrammeRules {
    pub small_enterprise_rate: Option<SmallEnterpriseRate>,
    /// Longest contract term in days (start and end inclusive); `None`: the one-year rule.
    pub max_term_days: Option<u16>,
    pub eligibility: Option<CapacityEligibility>,
    pub required_declarations: Declarations,
    pub payee: Payee,
    pub second_source: Option<SecondSource>,
}

impl ProgrammeRules {
    /// True when the rules add nothing to Hangzhou 2024's (what v1 and v2 records mean).
    pub fn is_hangzhou_2024(&self) -> bool {
        *self == ProgrammeRules::default()
    }

    /// Checks the rules on their own and against the policy's ceiling.
    pub fn validate(&self, contract_fee_ceiling: Rate) -> Result<(), ValidationError> {
        if let Some(small) = &self.small_enterprise_rate {
            if small.rate.basis_points() == 0 {
                return Err(ValidationError::new(
                    "small_enterprise_rate.rate",
                    small.rate.to_string(),
                    "must be above zero",
                ));
            }
            if small.cumulative_contract_limit.is_zero() {
                return Err(ValidationError::new(
                    "small_enterprise_rate.cumulative_contract_limit",
                    small.cumulative_contract_limit.to_string(),
                    "must be above zero",
                ));
            }
        }
        if let Some(days) = self.max_term_days {
            if days == 0 || days > CONTRACT_TERM_DAYS_MAX {
                return Err(ValidationError::new(
                    "max_term_days",
                    days.to_string(),
                    format!("must be 1..={CONTRACT_TERM_DAYS_MAX} days"),
                ));
            }
        }
        if let Some(eligibility) = &self.eligibility {
            if eligibility.min_intelligent_pflops.is_none() && eligibility.min_racks.is_none() {
                return Err(ValidationError::new(
                    "eligibility",
                    "no threshold",
                    "must give min_intelligent_pflops or min_racks",
                ));
            }
            for (field, threshold) in [
                (
                    "eligibility.min_intelligent_pflops",
                    eligibility.min_intelligent_pflops,
                ),
                ("eligibility.min_racks", eligibility.min_racks),
            ] {
                if threshold == Some(0) {
                    return Err(ValidationError::new(field, "0", "must be above zero"));
                }
            }
        }
        if let Some(second) = &self.second_source {
            if second.annual_pool.is_zero() {
                return Err(ValidationError::new(
                    "second_source.annual_pool",
                    second.annual_pool.to_string(),
                    "must be above zero",
                ));
            }
            if second.rate.basis_points() == 0 {
                return Err(ValidationError::new(
                    "second_source.rate",
                    second.rate.to_string(),
                    "must be above zero",
                ));
            }
            let first_most = self
                .small_enterprise_rate
                .map_or(contract_fee_ceiling, |small| {
                    small.rate.max(contract_fee_ceiling)
                });
            if second.combined_ceiling < first_most {
                return Err(ValidationError::new(
                    "second_source.combined_ceiling",
                    second.combined_ceiling.to_string(),
                    format!("is below what the first source alone may pay ({first_most})"),
                ));
            }
            if second.rate > second.combined_ceiling {
                return Err(ValidationError::new(
                    "second_source.rate",
                    second.rate.to_string(),
                    format!("is above the combined ceiling {}", second.combined_ceiling),
                ));
            }
        }
        Ok(())
    }
}

/// What an approval decided beyond today's terms, recorded on the voucher. The default
/// is what every voucher approved before programmes were data means.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ApprovalTerms {
    pub enterprise_class: EnterpriseClass,
    pub declarations: Declarations,
    pub rate_basis: RateBasis,
    /// The second source's share of the voucher (stacked funding), held on the second
    /// pool: `min(⌊rate₂ × fee⌋, ⌊combined ceiling × fee⌋ − face value, second pool free)`.
    /// Zero without a second source, and when its pool had nothing left.
    pub second_face_value: Money,
}

impl ApprovalTerms {
    pub fn is_default(&self) -> bool {
        *self == ApprovalTerms::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_thresholds_are_inclusive_and_a_missing_figure_meets_none() {
        let henan = CapacityEligibility {
            min_intelligent_pflops: Some(100),
            min_racks: Some(1_000),
            require: CapacityRequirement::Any,
        };
        let center = |pflops, racks| CenterCapacity {
            intelligent_pflops: pflops,
            racks,
        };
        assert!(henan.admits(&center(Some(100), None)));
        assert!(!henan.admits(&center(Some(99), Some(999))));
        assert!(henan.admits(&center(None, Some(1_000))));
        assert!(!henan.admits(&center(None, None)));
        let both = CapacityEligibility {
            require: CapacityRequirement::All,
            ..henan
        };
        assert!(both.admits(&center(Some(100), Some(1_000))));
        assert!(!both.admits(&center(Some(100), Some(999))));
    }

    #[test]
    fn declarations_round_trip_and_unknown_bits_are_refused() {
        let both = Declarations::of(&Declaration::ALL);
        assert_eq!(Declarations::from_bits(both.bits()), Ok(both));
        assert!(Declarations::from_bits(0x80).is_err());
        let one = Declarations::NONE.with(Declaration::SuppliersNotAffiliated);
        assert_eq!(
            both.missing_from(one),
            vec![Declaration::NoOtherMunicipalSubsidy]
        );
    }
}
