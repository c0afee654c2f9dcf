//! The programme file as the bureau writes it (TOML; presets in `config/programmes/`),
//! read into a [`ProgrammePolicy`] with errors that name the line, the column and the
//! field. Amounts and rates are strings so that no float ever touches money. Pure: the
//! caller reads the file and adds its path to the error.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::rules::{
    CapacityEligibility, CapacityRequirement, Declaration, Declarations, Payee, ProgrammeRules,
    SecondSource, SmallEnterpriseRate,
};
use crate::domain::ids::{LegalName, ProgrammeYear};
use crate::domain::money::{Money, Rate};
use crate::domain::policy::ProgrammePolicy;
use crate::domain::validation::ValidationError;
use crate::limits::REDEMPTION_GRACE_DAYS_DEFAULT;

/// A programme file read and validated: the policy it publishes, and the descriptive
/// `[programme]` table (not published).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProgrammeFile {
    pub policy: ProgrammePolicy,
    pub name: Option<String>,
    pub title: Option<String>,
}

/// What is wrong with a programme file, and where.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PolicyFileError {
    /// 1-based line and column of the offending value; 0 when the error is about the
    /// file as a whole (a required key missing).
    pub line: usize,
    pub column: usize,
    /// The dotted key, e.g. `tier_rates.domestic`; empty when unknown.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(formatter, "line {}, column {}", self.line, self.column)?;
        } else {
            formatter.write_str("the file")?;
        }
        if !self.field.is_empty() {
            write!(formatter, ", field `{}`", self.field)?;
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for PolicyFileError {}

impl PolicyFileError {
    /// The same error as a [`ValidationError`] (what the API reports for `policy_toml`).
    pub fn into_validation_error(self) -> ValidationError {
        ValidationError::new("policy_toml", self.field.clone(), self.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFileToml {
    year: Spanned<u32>,
    annual_pool: Option<Spanned<String>>,
    default_enterprise_cap: Option<Spanned<String>>,
    contract_fee_ceiling: Option<Spanned<String>>,
    redemption_grace_days: Option<Spanned<u16>>,
    max_term_days: Option<Spanned<u16>>,
    required_declarations: Option<Vec<Spanned<String>>>,
    payee: Option<Spanned<String>>,
    programme: Option<ProgrammeToml>,
    tier_rates: Option<TierRatesToml>,
    small_enterprise_rate: Option<SmallEnterpriseToml>,
    eligibility: Option<EligibilityToml>,
    second_source: Option<SecondSourceToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgrammeToml {
    name: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TierRatesToml {
    domestic: Option<Spanned<String>>,
    maas_multimodal: Option<Spanned<String>>,
    other: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmallEnterpriseToml {
    rate: Spanned<String>,
    cumulative_contract_limit: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EligibilityToml {
    min_intelligent_pflops: Option<Spanned<u32>>,
    min_racks: Option<Spanned<u32>>,
    require: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondSourceToml {
    name: Spanned<String>,
    annual_pool: Spanned<String>,
    rate: Spanned<String>,
    combined_ceiling: Spanned<String>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |newline| {
            before[newline + 1..].chars().count()
        })
        + 1;
    (line, column)
}

/// The dotted key of the assignment on the line holding `offset`, found from the text
/// (toml's own errors do not name it): the last `[table]` header above, then the key.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    let line_end = text[offset..]
        .find('\n')
        .map_or(text.len(), |end| offset + end);
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|candidate| candidate.starts_with('[') && candidate.ends_with(']'))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        });
    match (table, key.is_empty()) {
        (Some(table), false) => format!("{table}.{key}"),
        (Some(table), true) => table,
        (None, _) => key,
    }
}

/// Where each given field's value is, so cross-field errors can point at a line.
struct Spans<'a> {
    text: &'a str,
    by_field: BTreeMap<&'static str, Range<usize>>,
}

impl Spans<'_> {
    fn note<T>(&mut self, field: &'static str, value: &Option<Spanned<T>>) {
        if let Some(value) = value {
            self.by_field.insert(field, value.span());
        }
    }

    fn error_at(
        &self,
        span: Option<Range<usize>>,
        field: &str,
        message: String,
    ) -> PolicyFileError {
        let (line, column) = span.map_or((0, 0), |span| line_column(self.text, span.start));
        PolicyFileError {
            line,
            column,
            field: field.to_string(),
            message,
        }
    }

    /// Places a validation error from a constructor at its field's value.
    fn place(&self, error: ValidationError) -> PolicyFileError {
        let field = self
            .by_field
            .keys()
            .find(|key| **key == error.field)
            .or_else(|| {
                // A tier rate refused against the ceiling names `tier_rates` and the tier.
                self.by_field.keys().find(|key| {
                    key.strip_prefix(error.field)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|leaf| error.value.starts_with(leaf))
                })
            })
            .copied();
        let span = field.and_then(|field| self.by_field.get(field).cloned());
        if span.is_none() {
            // The value was left out of the file: the Hangzhou 2024 default is refused.
            let leaf = error.value.split(" = ").next().unwrap_or_default();
            let named = if error.value.contains(" = ") {
                format!("{}.{leaf}", error.field)
            } else {
                error.field.to_string()
            };
            let message = format!(
                "{:?} {} (left out of the file, so the Hangzhou 2024 default applies: give it)",
                error.value, error.reason
            );
            return self.error_at(None, &named, message);
        }
        let message = format!("{:?} {}", error.value, error.reason);
        self.error_at(span, field.unwrap_or(error.field), message)
    }

    fn parsed<T>(
        &self,
        field: &'static str,
        value: &Spanned<String>,
        parse: impl Fn(&'static str, &str) -> Result<T, ValidationError>,
    ) -> Result<T, PolicyFileError> {
        parse(field, value.get_ref()).map_err(|error| {
            self.error_at(
                Some(value.span()),
                field,
                format!("{:?} {}", error.value, error.reason),
            )
        })
    }

    fn optional<T>(
        &self,
        field: &'static str,
        value: &Option<Spanned<String>>,
        default: T,
        parse: impl Fn(&'static str, &str) -> Result<T, ValidationError>,
    ) -> Result<T, PolicyFileError> {
        match value {
            Some(value) => self.parsed(field, value, parse),
            None => Ok(default),
        }
    }
}

/// Reads a programme file. Missing keys take the Hangzhou 2024 values; `year` is required.
pub fn read_programme_file(text: &str) -> Result<ProgrammeFile, PolicyFileError> {
    let file: PolicyFileToml = toml::from_str(text).map_err(|error| {
        // A missing key has no place in the file: name it, and no line.
        let missing = error
            .message()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let span = error.span().filter(|_| missing.is_none());
        let field = missing.unwrap_or_else(|| {
            span.as_ref()
                .map(|span| key_at(text, span.start))
                .unwrap_or_default()
        });
        let (line, column) = span.map_or((0, 0), |span| line_column(text, span.start));
        PolicyFileError {
            line,
            column,
            field,
            message: error.message().trim().to_string(),
        }
    })?;
    let mut spans = Spans {
        text,
        by_field: BTreeMap::new(),
    };
    spans.by_field.insert("year", file.year.span());
    spans.note("annual_pool", &file.annual_pool);
    spans.note("default_enterprise_cap", &file.default_enterprise_cap);
    spans.note("contract_fee_ceiling", &file.contract_fee_ceiling);
    spans.note("redemption_grace_days", &file.redemption_grace_days);
    spans.note("max_term_days", &file.max_term_days);
    spans.note("payee", &file.payee);
    let tiers = file.tier_rates.unwrap_or_default();
    spans.note("tier_rates.domestic", &tiers.domestic);
    spans.note("tier_rates.maas_multimodal", &tiers.maas_multimodal);
    spans.note("tier_rates.other", &tiers.other);

    let year = ProgrammeYear::new(*file.year.get_ref()).map_err(|error| {
        spans.error_at(
            Some(file.year.span()),
            "year",
            format!("{:?} {}", error.value, error.reason),
        )
    })?;
    let defaults = ProgrammePolicy::hangzhou_defaults(year);
    let policy = ProgrammePolicy::new(
        year,
        spans.optional(
            "annual_pool",
            &file.annual_pool,
            defaults.annual_pool(),
            Money::parse,
        )?,
        spans.optional(
            "default_enterprise_cap",
            &file.default_enterprise_cap,
            defaults.default_enterprise_cap(),
            Money::parse,
        )?,
        spans.optional(
            "contract_fee_ceiling",
            &file.contract_fee_ceiling,
            defaults.contract_fee_ceiling(),
            Rate::parse,
        )?,
        [
            spans.optional(
                "tier_rates.domestic",
                &tiers.domestic,
                defaults.rate_for(crate::domain::policy::FacilityTier::Domestic),
                Rate::parse,
            )?,
            spans.optional(
                "tier_rates.maas_multimodal",
                &tiers.maas_multimodal,
                defaults.rate_for(crate::domain::policy::FacilityTier::MaasMultimodal),
                Rate::parse,
            )?,
            spans.optional(
                "tier_rates.other",
                &tiers.other,
                defaults.rate_for(crate::domain::policy::FacilityTier::Other),
                Rate::parse,
            )?,
        ],
    )
    .map_err(|error| spans.place(error))?
    .with_redemption_grace_days(
        file.redemption_grace_days
            .as_ref()
            .map_or(REDEMPTION_GRACE_DAYS_DEFAULT, |days| *days.get_ref()),
    )
    .map_err(|error| spans.place(error))?;

    let mut rules = ProgrammeRules {
        max_term_days: file.max_term_days.as_ref().map(|days| *days.get_ref()),
        ..ProgrammeRules::default()
    };
    if let Some(small) = &file.small_enterprise_rate {
        spans
            .by_field
            .insert("small_enterprise_rate.rate", small.rate.span());
        spans.by_field.insert(
            "small_enterprise_rate.cumulative_contract_limit",
            small.cumulative_contract_limit.span(),
        );
        rules.small_enterprise_rate = Some(SmallEnterpriseRate {
            rate: spans.parsed("small_enterprise_rate.rate", &small.rate, Rate::parse)?,
            cumulative_contract_limit: spans.parsed(
                "small_enterprise_rate.cumulative_contract_limit",
                &small.cumulative_contract_limit,
                Money::parse,
            )?,
        });
    }
    if let Some(eligibility) = &file.eligibility {
        spans.note(
            "eligibility.min_intelligent_pflops",
            &eligibility.min_intelligent_pflops,
        );
        spans.note("eligibility.min_racks", &eligibility.min_racks);
        let require = match &eligibility.require {
            None => CapacityRequirement::All,
            Some(text) => match text.get_ref().as_str() {
                "all" => CapacityRequirement::All,
                "any" => CapacityRequirement::Any,
                other => {
                    return Err(spans.error_at(
                        Some(text.span()),
                        "eligibility.require",
                        format!("{other:?} must be \"all\" or \"any\""),
                    ))
                }
            },
        };
        rules.eligibility = Some(CapacityEligibility {
            min_intelligent_pflops: eligibility
                .min_intelligent_pflops
                .as_ref()
                .map(|value| *value.get_ref()),
            min_racks: eligibility.min_racks.as_ref().map(|value| *value.get_ref()),
            require,
        });
    }
    if let Some(declarations) = &file.required_declarations {
        let mut set = Declarations::NONE;
        for declaration in declarations {
            set =
                set.with(spans.parsed("required_declarations", declaration, Declaration::parse)?);
        }
        rules.required_declarations = set;
    }
    if let Some(payee) = &file.payee {
        rules.payee = spans.parsed("payee", payee, Payee::parse)?;
    }
    if let Some(second) = &file.second_source {
        spans
            .by_field
            .insert("second_source.annual_pool", second.annual_pool.span());
        spans
            .by_field
            .insert("second_source.rate", second.rate.span());
        spans.by_field.insert(
            "second_source.combined_ceiling",
            second.combined_ceiling.span(),
        );
        rules.second_source = Some(SecondSource {
            name: spans.parsed("second_source.name", &second.name, |_, text| {
                LegalName::parse(text)
            })?,
            annual_pool: spans.parsed(
                "second_source.annual_pool",
                &second.annual_pool,
                Money::parse,
            )?,
            rate: spans.parsed("second_source.rate", &second.rate, Rate::parse)?,
            combined_ceiling: spans.parsed(
                "second_source.combined_ceiling",
                &second.combined_ceiling,
                Rate::parse,
            )?,
        });
    }
    let policy = policy
        .with_rules(rules)
        .map_err(|error| spans.place(error))?;
    let (name, title) = file
        .programme
        .map_or((None, None), |programme| (programme.name, programme.title));
    Ok(ProgrammeFile {
        policy,
        name,
        title,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_error_names_its_line_column_and_field() {
        let error = read_programme_file("year = 2025\n\n[tier_rates]\ndomestic = \"0.35\"\n")
            .expect_err("above the ceiling");
        assert_eq!((error.line, error.column), (4, 12), "{error}");
        assert_eq!(error.field, "tier_rates.domestic");
        assert!(error.message.contains("ceiling"), "{error}");
    }

    #[test]
    fn a_type_error_and_an_unknown_key_name_their_line() {
        let error = read_programme_file("year = 2025\nannual_pool = 1.5\n").expect_err("float");
        assert_eq!(error.line, 2, "{error}");
        assert_eq!(error.field, "annual_pool");
        let error = read_programme_file("year = 2025\n[eligibility]\nmin_rack = 3\n")
            .expect_err("unknown key");
        assert_eq!(error.line, 3, "{error}");
        assert_eq!(error.field, "eligibility.min_rack");
        let error = read_programme_file("annual_pool = \"1.00\"\n").expect_err("no year");
        assert!(error.message.contains("year"), "{error}");
    }

    #[test]
    fn only_todays_keys_read_as_hangzhou_2024_rules() {
        let file = read_programme_file("year = 2026\n").expect("minimal");
        assert!(file.policy.rules().is_hangzhou_2024());
        assert_eq!(
            file.policy,
            ProgrammePolicy::hangzhou_defaults(file.policy.year())
        );
    }

    #[test]
    fn a_rule_error_points_at_the_rule() {
        let error =
            read_programme_file("year = 2025\nmax_term_days = 400\n").expect_err("too long");
        assert_eq!(
            (error.line, error.field.as_str()),
            (2, "max_term_days"),
            "{error}"
        );
    }
}
