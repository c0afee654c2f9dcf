//! The programme-year summary: pool use, vouchers by tier, top enterprises, and what each
//! computing center was redeemed, is due, owes back and was paid. Plain text for a
//! terminal; amounts with thousands separators.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::domain::{FacilityTier, LedgerState, Money, ProgrammeYear, VoucherStatus};

/// Formats an amount with thousands separators: 250,000,000.00.
pub fn format_yuan(amount: Money) -> String {
    let plain = amount.to_string();
    let (integer, decimals) = plain.split_once('.').unwrap_or((&plain, "00"));
    let mut grouped = String::new();
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped}.{decimals}")
}

/// The programme-year summary (`voucher-ledger summary`, and the end of `demo`).
/// `appendix` goes before the closing log line (the demo puts its tally there).
pub fn summarize(state: &LedgerState, year: ProgrammeYear, appendix: Option<&str>) -> String {
    let mut out = String::new();
    let Some(policy) = state.policy(year) else {
        return format!("no policy published for {year}\n");
    };
    let pool = state.pool_usage(year);
    let released = state
        .vouchers_sorted()
        .iter()
        .filter(|voucher| voucher.terms.year == year)
        .fold(Money::ZERO, |sum, voucher| sum.plus(voucher.released));
    let _ = writeln!(
        out,
        "Programme year {year}: pool {}",
        format_yuan(policy.annual_pool())
    );
    let _ = writeln!(
        out,
        "  approved, not yet redeemed (held) {:>20}",
        format_yuan(pool.held)
    );
    let _ = writeln!(
        out,
        "  redeemed                          {:>20}",
        format_yuan(pool.redeemed)
    );
    let _ = writeln!(
        out,
        "  free                              {:>20}",
        format_yuan(pool.free_under(policy.annual_pool()))
    );
    let _ = writeln!(
        out,
        "  (released from expired or cancelled vouchers: {})",
        format_yuan(released)
    );

    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_tier: BTreeMap<FacilityTier, (usize, Money, Money)> = BTreeMap::new();
    for voucher in state.vouchers_sorted() {
        if voucher.terms.year != year {
            continue;
        }
        *by_status.entry(voucher.status.name()).or_default() += 1;
        let tier = by_tier
            .entry(voucher.terms.tier)
            .or_insert((0, Money::ZERO, Money::ZERO));
        tier.0 += 1;
        tier.1 = tier.1.plus(voucher.terms.face_value);
        tier.2 = tier.2.plus(voucher.subsidy_total);
    }
    let _ = writeln!(
        out,
        "\nVouchers: {}",
        by_status
            .iter()
            .map(|(status, count)| format!("{count} {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "  {:<16} {:>8} {:>20} {:>20}",
        "tier", "vouchers", "face value", "redeemed"
    );
    for (tier, (count, face, redeemed)) in &by_tier {
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>20} {:>20}",
            tier.name(),
            count,
            format_yuan(*face),
            format_yuan(*redeemed)
        );
    }

    let mut enterprises: Vec<_> = state
        .enterprises_sorted()
        .into_iter()
        .map(|account| (state.enterprise_usage(&account.enterprise, year), account))
        .collect();
    enterprises.sort_by(|left, right| {
        right
            .0
            .redeemed
            .cmp(&left.0.redeemed)
            .then(left.1.enterprise.cmp(&right.1.enterprise))
    });
    let _ = writeln!(out, "\nTop enterprises by subsidy redeemed in {year}:");
    let _ = writeln!(
        out,
        "  {:<18} {:>16} {:>16} {:>16}",
        "USCC", "cap", "redeemed", "held"
    );
    for (usage, account) in enterprises.iter().take(10) {
        let cap = state
            .enterprise_cap(&account.enterprise, year)
            .unwrap_or(Money::ZERO);
        let _ = writeln!(
            out,
            "  {:<18} {:>16} {:>16} {:>16}",
            account.enterprise,
            format_yuan(cap),
            format_yuan(usage.redeemed),
            format_yuan(usage.held)
        );
    }

    let _ = writeln!(
        out,
        "\nComputing centers (amounts due are net of clawbacks):"
    );
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>16}",
        "USCC", "tier", "status", "redeemed", "due now", "clawback", "paid"
    );
    let mut totals = (Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO);
    let centers: Vec<_> = state.centers().collect();
    for account in &centers {
        totals.0 = totals.0.plus(
            account
                .redeemed_total
                .saturating_minus(account.reversed_total),
        );
        totals.1 = totals.1.plus(account.amount_due());
        totals.2 = totals.2.plus(account.clawback_owed);
        totals.3 = totals.3.plus(account.paid_total);
    }
    for account in &centers {
        let _ = writeln!(
            out,
            "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>16}",
            account.center,
            account.tier.name(),
            account.status.name(),
            format_yuan(
                account
                    .redeemed_total
                    .saturating_minus(account.reversed_total)
            ),
            format_yuan(account.amount_due()),
            format_yuan(account.clawback_owed),
            format_yuan(account.paid_total)
        );
    }
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>16}",
        "all centers",
        "",
        "",
        format_yuan(totals.0),
        format_yuan(totals.1),
        format_yuan(totals.2),
        format_yuan(totals.3)
    );

    if let Some(appendix) = appendix {
        out.push_str(appendix);
    }
    let active = state
        .vouchers_sorted()
        .iter()
        .filter(|voucher| voucher.status == VoucherStatus::Active)
        .count();
    let _ = writeln!(
        out,
        "\nLog: {} events, {} invoices indexed, {} active vouchers",
        state.last_sequence(),
        state.invoices_redeemed(),
        active
    );
    out
}
