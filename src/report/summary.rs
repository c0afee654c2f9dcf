//! The programme-year summary: pool use, vouchers by tier, top enterprises, and what each
//! computing center was redeemed, is due, owes back and was paid. Plain text for a
//! terminal; amounts with thousands separators.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::domain::{
    FacilityTier, LedgerState, Money, ProgrammeYear, StatementState, VoucherStatus,
};

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
    let pool_size = state.pool(year).unwrap_or(policy.annual_pool());
    let released = state
        .vouchers_sorted()
        .iter()
        .filter(|voucher| voucher.terms.year == year)
        .fold(Money::ZERO, |sum, voucher| sum.plus(voucher.released));
    let _ = writeln!(
        out,
        "Programme year {year}: pool {}{}",
        format_yuan(pool_size),
        if state.year_closed(year) {
            " (closed)"
        } else {
            ""
        }
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
        "  owed back by centers (receivable) {:>20}",
        format_yuan(pool.receivable)
    );
    let _ = writeln!(
        out,
        "  free                              {:>20}",
        format_yuan(pool.free_under(pool_size))
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

    centers_section(&mut out, state, year);
    settlement_section(&mut out, state, year);

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

/// Per center: subsidy that stands, not yet settled, due on open statements, owed back,
/// paid.
fn centers_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let _ = writeln!(out, "\nComputing centers, {year}:");
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
        "USCC", "tier", "status", "redeemed", "unsettled", "due (stmts)", "owed back", "paid"
    );
    let mut totals = [Money::ZERO; 5];
    for account in state.centers() {
        let books = state.center_year(&account.center, year);
        let standing = books.map_or(Money::ZERO, |books| {
            books
                .granted
                .saturating_minus(books.reversed_unsettled)
                .saturating_minus(books.clawed_back)
        });
        let due = state
            .statements_page(None, usize::MAX, usize::MAX, |statement| {
                statement.center == account.center
                    && statement.year == year
                    && statement.state != StatementState::Paid
            })
            .0
            .iter()
            .fold(Money::ZERO, |sum, statement| sum.plus(statement.net));
        let row = [
            standing,
            books.map_or(Money::ZERO, |books| books.unsettled),
            due,
            books.map_or(Money::ZERO, |books| books.outstanding()),
            books.map_or(Money::ZERO, |books| books.paid),
        ];
        for (total, amount) in totals.iter_mut().zip(row) {
            *total = total.plus(amount);
        }
        let _ = writeln!(
            out,
            "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
            account.center,
            account.tier.name(),
            account.status.name(),
            format_yuan(row[0]),
            format_yuan(row[1]),
            format_yuan(row[2]),
            format_yuan(row[3]),
            format_yuan(row[4])
        );
    }
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
        "all centers",
        "",
        "",
        format_yuan(totals[0]),
        format_yuan(totals[1]),
        format_yuan(totals[2]),
        format_yuan(totals[3]),
        format_yuan(totals[4])
    );
}

/// Settlement runs with their statements by state, payments and returns, and where
/// every fen of the year's subsidy is.
fn settlement_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let Some(book) = state.year(year) else {
        return;
    };
    let statements = state
        .statements_page(None, usize::MAX, usize::MAX, |statement| {
            statement.year == year
        })
        .0;
    let mut by_state: BTreeMap<&str, (usize, Money)> = BTreeMap::new();
    let (mut payments, mut returned) = (0usize, 0usize);
    for statement in &statements {
        let entry = by_state
            .entry(statement.state.name())
            .or_insert((0, Money::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.plus(statement.net);
        payments += statement.payments.len();
        returned += statement
            .payments
            .iter()
            .filter(|payment| payment.returned.is_some())
            .count();
    }
    let _ = writeln!(
        out,
        "\nSettlement {year}: {} statements, {payments} payments ({returned} returned by the bank)",
        statements.len()
    );
    for (name, (count, net)) in &by_state {
        let _ = writeln!(
            out,
            "  {name:<10} {count:>6} statements, net {:>18}",
            format_yuan(*net)
        );
    }
    let _ = writeln!(out, "Where the year's subsidy is:");
    for (label, amount) in [
        ("granted by redemptions", book.granted),
        ("  reversed before settlement", book.reversed_unsettled),
        ("  unsettled", book.unsettled),
        ("  in open statements", book.standing_open),
        ("  in paid statements", book.standing_paid),
        ("  clawed back", book.clawed_back),
        ("    of which offset against statements", book.offset),
        ("    of which repaid by centers", book.repaid),
        ("    of which still owed", book.outstanding()),
        ("paid to centers (net, after returns)", book.paid),
    ] {
        let _ = writeln!(out, "  {label:<40} {:>20}", format_yuan(amount));
    }
}
