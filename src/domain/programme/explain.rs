//! What a programme year's rules mean, in sentences a bureau official can check against
//! the published measures (`voucher-ledger policy check FILE`). Chinese terms with English.

use super::rules::{Payee, ProgrammeRules};
use crate::domain::money::Money;
use crate::domain::policy::{FacilityTier, ProgrammePolicy};

fn percent(rate: crate::domain::money::Rate) -> String {
    let basis_points = rate.basis_points();
    if basis_points.is_multiple_of(100) {
        format!("{}%", basis_points / 100)
    } else {
        format!("{}.{:02}%", basis_points / 100, basis_points % 100)
    }
}

/// A worked example: the face value of a voucher for `fee` at `rate` (rounded down).
fn example(fee: Money, rate: crate::domain::money::Rate) -> String {
    format!(
        "a contract of {fee} gets at most {}",
        fee.times_rate_floor(rate)
    )
}

/// One line per rule, in the order an official reads the measures.
pub fn explain(policy: &ProgrammePolicy) -> Vec<String> {
    let rules: &ProgrammeRules = policy.rules();
    let year = policy.year();
    let mut lines = vec![
        format!("Programme year {year} (年度): vouchers belong to the year their contract term starts in."),
        format!(
            "Pool (年度资金总额): {} for the year; approvals stop when it is held, redeemed or owed back in full.",
            policy.annual_pool()
        ),
        format!(
            "Cap per enterprise (单个企业年度上限): {} a year, unless the bureau grants a higher cap to one enterprise.",
            policy.default_enterprise_cap()
        ),
        format!(
            "Ceiling (补贴比例上限): a voucher never pays above {} of its contract's fee.",
            percent(policy.contract_fee_ceiling())
        ),
    ];
    let rates: Vec<_> = FacilityTier::ALL
        .iter()
        .map(|tier| policy.rate_for(*tier))
        .collect();
    if rates.iter().all(|rate| *rate == rates[0]) {
        lines.push(format!(
            "Rate (补贴比例): {} of each invoice, whatever the facility; {}.",
            percent(rates[0]),
            example(Money::from_whole_yuan(1_000_000), rates[0])
        ));
    } else {
        lines.push(format!(
            "Rate by facility (按算力类型): domestic compute (国产/信创算力) {}, model-as-a-service on a filed multimodal model (多模态大模型MaaS) {}, any other facility {}.",
            percent(policy.rate_for(FacilityTier::Domestic)),
            percent(policy.rate_for(FacilityTier::MaasMultimodal)),
            percent(policy.rate_for(FacilityTier::Other)),
        ));
    }
    if let Some(small) = &rules.small_enterprise_rate {
        lines.push(format!(
            "Small and medium enterprises (中小企业): {} instead, while the enterprise's contracts approved in {year}, this one included, total at most {} (exactly {} still qualifies). The contract that crosses the line gets the facility rate; vouchers approved before keep their rate.",
            percent(small.rate),
            small.cumulative_contract_limit,
            small.cumulative_contract_limit,
        ));
    }
    lines.push(match rules.max_term_days {
        Some(days) => format!(
            "Contract term (合同期限): at most {days} days, start and end day included (and under one year)."
        ),
        None => "Contract term (合同期限): under one year from its start day.".to_string(),
    });
    lines.push(
        "One voucher per contract (一合同一申请); enterprise and center must not be declared related parties.".to_string(),
    );
    if let Some(eligibility) = &rules.eligibility {
        lines.push(format!(
            "Eligible centers (算力设施门槛): only centers registered with {}; a figure not registered does not count.",
            eligibility.describe()
        ));
    }
    if !rules.required_declarations.is_empty() {
        let wording: Vec<&str> = rules
            .required_declarations
            .iter()
            .map(|declaration| declaration.wording())
            .collect();
        lines.push(format!(
            "Declarations on every application (申请承诺): {}.",
            wording.join("; ")
        ));
    }
    lines.push(match rules.payee {
        Payee::Center => "Who is paid (补贴对象): the computing center, by settlement statement; the enterprise pays the invoice minus the subsidy (discount at the point of sale, 直接抵扣).".to_string(),
        Payee::Enterprise => "Who is paid (补贴对象): the enterprise, which pays the invoice in full and claims with proof of payment (先支付后补贴): every invoice must carry the proof (PAYMENT_PROOF_MISSING without it); one statement per enterprise, and clawbacks are owed by the enterprise.".to_string(),
    });
    if let Some(second) = &rules.second_source {
        lines.push(format!(
            "Second funding source (叠加支持): {} pays a further {} from its own pool of {}; both together never above {} of a contract's fee.",
            second.name,
            percent(second.rate),
            second.annual_pool,
            percent(second.combined_ceiling)
        ));
        lines.push(format!(
            "  How it runs: each voucher also holds a second share on {name}'s pool, {rate} of the fee cut to the combined ceiling less the voucher's own face value, and to what that pool has left (a pool that ran dry lowers the top-up, never the city's voucher); each invoice earns {rate} of its amount from the share until it is used up; a settlement run issues each payee a second statement for it (same cutoff), which {name} pays; clawbacks of it are owed to {name} and repaid to it.",
            name = second.name,
            rate = percent(second.rate),
        ));
    }
    lines.push(format!(
        "Invoices (发票): issued inside the term, posted until {} days after it ends; subsidies are rounded down to the fen.",
        policy.redemption_grace_days()
    ));
    lines
}
