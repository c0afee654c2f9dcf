//! The benchmarks' own code runs in CI with tiny inputs so it cannot rot: the gRPC load
//! generator against a real server, and the recovery benchmark's fill and restart. These
//! assert correctness only, never time.

mod support;

use std::process::Command;

use support::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::tooling::load::{
    percentiles, run_load, run_load_answered, AnswerKind, LoadSettings,
};
use voucher_ledger::tooling::recovery::fill_to;

/// The figure that follows `label` in a load report, up to the next space.
fn figure_after<T: std::str::FromStr>(report: &str, label: &str) -> Option<T> {
    report.split(label).nth(1)?.split(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_posts_every_invoice_it_claims() {
    let server = TestServer::start().await;
    let report = run_load(LoadSettings {
        target: server.address.clone(),
        token: BUREAU.into(),
        connections: 2,
        batch: 100,
        invoices: 1_000,
        centers: 3,
        enterprises: 10,
        vouchers: 20,
        unary_rate: 200,
        unary_seconds: 1,
        list_clients: 2,
        seed: 3,
    })
    .await
    .expect("load run");
    assert!(
        report.contains("PostInvoices: 1000 accepted, 0 rejected"),
        "{report}"
    );
    assert!(report.contains("200 calls"), "{report}");
    assert!(report.contains("0 failed"), "{report}");
    // Its own CPU over the batches, in the form `benches/ab.sh` and `compare.sh` read.
    let client_cpu: f64 = figure_after(&report, "load generator CPU over the batches: ")
        .unwrap_or_else(|| panic!("no load generator CPU line in {report}"));
    assert!(client_cpu.is_finite() && client_cpu >= 0.0, "{report}");
    // The read load ran beside the unary phase and answered (each lister calls at least once).
    let list_calls: u64 = figure_after(&report, "ListVouchers clients made ")
        .unwrap_or_else(|| panic!("no list load line in {report}"));
    assert!(report.contains("2 ListVouchers clients"), "{report}");
    assert!(list_calls >= 2, "{report}");
    // Running it again seeds nothing new and posts fresh invoice numbers.
    let again = run_load(LoadSettings {
        target: server.address.clone(),
        token: BUREAU.into(),
        connections: 1,
        batch: 250,
        invoices: 500,
        centers: 3,
        enterprises: 10,
        vouchers: 20,
        unary_rate: 0,
        unary_seconds: 0,
        list_clients: 0,
        seed: 4,
    })
    .await
    .expect("second run");
    assert!(
        again.contains("PostInvoices: 500 accepted, 0 rejected"),
        "{again}"
    );
    let directory = server.stop().await;
    let (ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("reopen");
    assert_eq!(ledger.state().invoices_redeemed(), 1_700);
}

/// With brief answers the load generator counts from each answer's totals and list:
/// every invoice it posted is counted, and the ledger holds them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_counts_brief_answers_as_it_counts_full_ones() {
    let server = TestServer::start().await;
    let settings = LoadSettings {
        target: server.address.clone(),
        token: BUREAU.into(),
        connections: 2,
        batch: 300,
        invoices: 1_000,
        centers: 3,
        enterprises: 10,
        vouchers: 20,
        unary_rate: 0,
        unary_seconds: 0,
        list_clients: 0,
        seed: 5,
    };
    let report = run_load_answered(settings, AnswerKind::Brief)
        .await
        .expect("load run with brief answers");
    assert!(
        report.contains("PostInvoices: 1000 accepted, 0 rejected"),
        "{report}"
    );
    assert!(
        report.contains("brief answers: PostInvoicesBrief"),
        "{report}"
    );
    let directory = server.stop().await;
    let (ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("reopen");
    assert_eq!(ledger.state().invoices_redeemed(), 1_000);
}

#[test]
fn percentiles_pick_the_right_ranks() {
    let mut samples: Vec<std::time::Duration> =
        (1..=1_000).map(std::time::Duration::from_millis).collect();
    samples.reverse();
    let (p50, p99, p999, max) = percentiles(&mut samples);
    assert_eq!((p50, p99, p999, max), (500.0, 990.0, 999.0, 1_000.0));
}

#[test]
fn recovery_benchmark_fills_and_restarts() {
    let directory = tempfile::tempdir().expect("tempdir");
    let last = fill_to(directory.path(), 30_000, true, |_| {}).expect("fill");
    assert!(last >= 30_000);
    let output = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args([
            "bench-recovery",
            "--events",
            "30000",
            "--runs",
            "2",
            "--config",
            "config/server.toml",
            "--data-dir",
        ])
        .arg(directory.path())
        .output()
        .expect("run bench-recovery");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("serving").count(), 2, "{stdout}");
    assert!(stdout.contains("RSS"), "{stdout}");
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}
