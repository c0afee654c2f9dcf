//! The seeded programme year: it runs, it verifies, it is deterministic (two runs give
//! the same log, byte for byte, so the same chain head), and its summary has every part.

use voucher_ledger::audit::verify;
use voucher_ledger::cli::policy::{load, preset_path};
use voucher_ledger::domain::{Payee, ProgrammeYear, RejectionCode, StatementState};
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::report::summary::summarize;
use voucher_ledger::tooling::demo::{run_demo, tally_lines, DemoConfig};

fn small() -> DemoConfig {
    DemoConfig {
        seed: 7,
        year: 2026,
        centers: 12,
        enterprises: 300,
        contracts: 1_200,
        invoices: 30_000,
        policy: None,
    }
}

fn run(config: &DemoConfig) -> (tempfile::TempDir, String, String) {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
    let tally = run_demo(&mut ledger, config, |_, _| {}).expect("demo");
    let summary = summarize(
        &ledger.state(),
        ProgrammeYear::new(config.year).expect("year"),
        Some(&tally_lines(&tally)),
    );
    let head = ledger.chain_head().to_string();
    ledger.close().expect("close");
    (directory, head, summary)
}

#[test]
fn demo_year_is_deterministic_verifies_and_summarises() {
    let (directory, head, summary) = run(&small());
    let (_, head_again, summary_again) = run(&small());
    assert_eq!(head, head_again, "same seed, same log");
    assert_eq!(summary, summary_again);
    for part in [
        "Programme year 2026",
        "redeemed",
        "free",
        "Top enterprises",
        "domestic",
        "maas_multimodal",
        "other",
        "all centers",
        "Rejections by reason",
        "INVOICE_CONFLICT",
        "CENTER_NOT_ACTIVE",
    ] {
        assert!(summary.contains(part), "summary lacks {part}:\n{summary}");
    }
    let report = verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.records_checked > 25_000);
}

/// The reimbursement preset (`demo --programme reimbursement`): a whole year where the
/// bureau pays enterprises, with proofs of payment on the invoices, a settlement run per
/// quarter, payments and a repayment; it verifies and is deterministic.
#[test]
fn demo_year_of_the_reimbursement_preset_pays_enterprises_and_verifies() {
    let preset =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(preset_path("reimbursement"));
    let policy = load(&preset).expect("preset").policy;
    assert_eq!(policy.rules().payee, Payee::Enterprise);
    let config = DemoConfig {
        year: policy.year().get(),
        policy: Some(policy),
        ..small()
    };
    let (directory, head, summary) = run(&config);
    let (_, head_again, _) = run(&config);
    assert_eq!(head, head_again, "same seed, same log");
    for part in [
        "Enterprises paid (reimbursement",
        "all enterprises",
        "paid to enterprises",
        RejectionCode::PaymentProofMissing.name(),
    ] {
        assert!(summary.contains(part), "summary lacks {part}:\n{summary}");
    }
    let report = verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    let (ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
    let state = ledger.state();
    let year = config.policy.as_ref().expect("policy").year();
    let (statements, _) = state.statements_page(None, usize::MAX, usize::MAX, |statement| {
        statement.year == year
    });
    assert!(statements
        .iter()
        .all(|statement| state.enterprise(&statement.center).is_some()));
    assert!(statements
        .iter()
        .any(|statement| statement.state == StatementState::Paid && !statement.net.is_zero()));
    assert!(state.year_closed(year));
}
