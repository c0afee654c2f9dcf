//! The programme-year summary: pool use, vouchers by tier, top enterprises, and what each
//! computing center was redeemed, is due, owes back and was paid. Plain text for a
//! terminal; amounts with thousands separators. The figures come from [`super::figures`],
//! which the HTML report prints as well.

use std::fmt::Write as _;

use super::figures::{
    center_figures, payee_figures, pool_figures, second_source_figures, settlement_figures,
    top_enterprises, voucher_figures, PayeeTotals,
};

use crate::domain::{LedgerState, Money, Payee, ProgrammeYear, VoucherStatus};

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
    let Some(pool) = pool_figures(state, year) else {
        return format!("no policy published for {year}\n");
    };
    let _ = writeln!(
        out,
        "Programme year {year}: pool {}{}",
        format_yuan(pool.pool),
        if pool.closed { " (closed)" } else { "" }
    );
    let _ = writeln!(
        out,
        "  approved, not yet redeemed (held) {:>20}",
        format_yuan(pool.usage.held)
    );
    let _ = writeln!(
        out,
        "  redeemed                          {:>20}",
        format_yuan(pool.usage.redeemed)
    );
    // Who owes clawbacks back: the payees (enterprises in a reimbursement year).
    let owed_back = match state.payee_kind(year) {
        Payee::Center => "owed back by centers (receivable)",
        Payee::Enterprise => "owed back by enterprises (recv.)",
    };
    let _ = writeln!(
        out,
        "  {owed_back:<33} {:>20}",
        format_yuan(pool.usage.receivable)
    );
    let _ = writeln!(
        out,
        "  free                              {:>20}",
        format_yuan(pool.free)
    );
    let _ = writeln!(
        out,
        "  (released from expired or cancelled vouchers: {})",
        format_yuan(pool.released)
    );
    second_source_section(&mut out, state, year);

    let vouchers = voucher_figures(state, year);
    let _ = writeln!(
        out,
        "\nVouchers: {}",
        vouchers
            .by_status
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
    for row in &vouchers.by_tier {
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>20} {:>20}",
            row.tier.name(),
            row.vouchers,
            format_yuan(row.face_value),
            format_yuan(row.redeemed)
        );
    }

    let _ = writeln!(out, "\nTop enterprises by subsidy redeemed in {year}:");
    let _ = writeln!(
        out,
        "  {:<18} {:>16} {:>16} {:>16}",
        "USCC", "cap", "redeemed", "held"
    );
    for row in top_enterprises(state, year, 10) {
        let _ = writeln!(
            out,
            "  {:<18} {:>16} {:>16} {:>16}",
            row.enterprise,
            format_yuan(row.cap),
            format_yuan(row.usage.redeemed),
            format_yuan(row.usage.held)
        );
    }

    centers_section(&mut out, state, year);
    if state.payee_kind(year) == Payee::Enterprise {
        payees_section(&mut out, state, year);
    }
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
/// Stacked funding: the second source's pool and where it is, and what it paid.
fn second_source_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let Some(second) = second_source_figures(state, year) else {
        return;
    };
    let (book, usage) = (&second.book, second.book.usage);
    let _ = writeln!(
        out,
        "\nSecond source {}: pool {}",
        second.name,
        format_yuan(book.pool)
    );
    for (what, amount) in [
        ("held by vouchers' second shares", usage.held),
        ("redeemed", usage.redeemed),
        ("owed back to it (receivable)", usage.receivable),
        ("free", usage.free_under(book.pool)),
        ("paid by it to payees", book.paid),
    ] {
        let _ = writeln!(out, "  {what:<33} {:>20}", format_yuan(amount));
    }
}

fn centers_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let _ = writeln!(out, "\nComputing centers, {year}:");
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
        "USCC", "tier", "status", "redeemed", "unsettled", "due (stmts)", "owed back", "paid"
    );
    let centers = center_figures(state, year);
    for row in &centers.rows {
        let _ = writeln!(
            out,
            "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
            row.center,
            row.tier.name(),
            row.status.name(),
            format_yuan(row.standing),
            format_yuan(row.unsettled),
            format_yuan(row.due),
            format_yuan(row.outstanding),
            format_yuan(row.paid)
        );
    }
    let total = centers.total;
    let _ = writeln!(
        out,
        "  {:<18} {:<16} {:<10} {:>16} {:>14} {:>14} {:>14} {:>16}",
        "all centers",
        "",
        "",
        format_yuan(total.standing),
        format_yuan(total.unsettled),
        format_yuan(total.due),
        format_yuan(total.outstanding),
        format_yuan(total.paid)
    );
}

/// Enterprises the most settled for, in a reimbursement year: the bureau pays them, so
/// the centers' table above shows no money owed to centers.
const PAYEES_SHOWN: usize = 20;

/// A reimbursement year's payees: per enterprise, settled, due on statements not yet
/// paid, owed back and paid (the most settled first, then USCC order).
fn payees_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let Some(payees) = payee_figures(state, year) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nEnterprises paid (reimbursement, 先支付后补贴), {year}: {} with redemptions",
        payees.rows.len()
    );
    let _ = writeln!(
        out,
        "  {:<18} {:>16} {:>14} {:>14} {:>16}",
        "USCC", "settled", "due (stmts)", "owed back", "paid"
    );
    for row in payees.rows.iter().take(PAYEES_SHOWN) {
        payee_line(out, &row.payee.to_string(), row.totals);
    }
    payee_line(out, "all enterprises", payees.total);
}

/// One line of the payees' table: settled, due, owed back, paid.
fn payee_line(out: &mut String, label: &str, totals: PayeeTotals) {
    let _ = writeln!(
        out,
        "  {:<18} {:>16} {:>14} {:>14} {:>16}",
        label,
        format_yuan(totals.settled),
        format_yuan(totals.due),
        format_yuan(totals.outstanding),
        format_yuan(totals.paid)
    );
}

/// Settlement runs with their statements by state, payments and returns, and where
/// every fen of the year's subsidy is.
fn settlement_section(out: &mut String, state: &LedgerState, year: ProgrammeYear) {
    let Some(settlement) = settlement_figures(state, year) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nSettlement {year}: {} statements, {} payments ({} returned by the bank)",
        settlement.statements, settlement.payments, settlement.returned
    );
    for row in &settlement.by_state {
        let _ = writeln!(
            out,
            "  {:<10} {:>6} statements, net {:>18}",
            row.state.name(),
            row.statements,
            format_yuan(row.net)
        );
    }
    let book = &settlement.book;
    // Who is paid, and so who repays: the centers, or the enterprises (reimbursement).
    let (repaid_by, paid_to) = match state.payee_kind(year) {
        Payee::Center => (
            "    of which repaid by centers",
            "paid to centers (net, after returns)",
        ),
        Payee::Enterprise => (
            "    of which repaid by enterprises",
            "paid to enterprises (net, after returns)",
        ),
    };
    let _ = writeln!(out, "Where the year's subsidy is:");
    for (label, amount) in [
        ("granted by redemptions", book.granted),
        ("  reversed before settlement", book.reversed_unsettled),
        ("  unsettled", book.unsettled),
        ("  in open statements", book.standing_open),
        ("  in paid statements", book.standing_paid),
        ("  clawed back", book.clawed_back),
        ("    of which offset against statements", book.offset),
        (repaid_by, book.repaid),
        ("    of which still owed", book.outstanding()),
        (paid_to, book.paid),
    ] {
        let _ = writeln!(out, "  {label:<40} {:>20}", format_yuan(amount));
    }
}
