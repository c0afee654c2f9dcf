//! The invoice index flushed by a quiet server (`api/index_flusher.rs`): a read-only view
//! opened beside a running server (`verify`, an offline export, a backup) finds the index
//! complete once the server has been idle a moment, or once entries have waited the
//! configured age; with both rules off it still derives them from the log, which is what
//! the flusher spares it.

mod support;

use std::time::{Duration, Instant};

use support::*;
use voucher_ledger::api::proto::*;
use voucher_ledger::api::server::ServerSection;
use voucher_ledger::storage::EventStore;

fn invoice(voucher_id: &str, number: &str) -> Invoice {
    Invoice {
        center: center_code(1),
        voucher_id: voucher_id.to_string(),
        invoice_number: number.to_string(),
        amount: "1.00".into(),
        issue_date: "2026-06-30".into(),
        delivery_proof: "acceptance/index-flush".into(),
        invoice_code: String::new(),
        payment_proof: String::new(),
    }
}

/// Publishes the programme, approves a voucher and posts `batches` batches of
/// `per_batch` invoices against it.
async fn post_invoices(server: &TestServer, batches: usize, per_batch: usize) {
    let policy = standard_policy_request();
    server
        .programme()
        .publish_policy(authed(BUREAU, policy))
        .await
        .expect("policy");
    let voucher_id =
        register_pair_and_approve(&server.channel, "C-FLUSH", "10000000.00", "3000000.00").await;
    let mut redemption = server.redemption();
    for batch in 0..batches {
        let invoices = (0..per_batch)
            .map(|item| invoice(&voucher_id, &format!("F-{batch}-{item}")))
            .collect();
        let reply = redemption
            .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices }))
            .await
            .expect("batch")
            .into_inner();
        assert_eq!(reply.results.len(), per_batch);
    }
}

/// What a read-only view of the running server's directory reports of the index: `None`
/// when it is complete, else how many entries it derived from the log.
fn lag_of_read_only_view(server: &TestServer) -> Option<String> {
    let store = EventStore::open_read_only(server.directory.path()).expect("read-only view");
    store
        .index_lag_report()
        .map(|report| report.expect("the view derives the missing entries"))
}

/// `voucher-ledger verify` run on the server's directory beside it: its output, after
/// checking that it found nothing wrong.
fn verify_beside(server: &TestServer) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .arg("verify")
        .arg("--data-dir")
        .arg(server.directory.path())
        .output()
        .expect("verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "verify: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Polls the read-only view until its index is complete, for at most `limit`.
async fn wait_until_complete(server: &TestServer, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        match lag_of_read_only_view(server) {
            None => return Ok(started.elapsed()),
            Some(report) if started.elapsed() >= limit => return Err(report),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_idle_for_a_moment_flushes_its_index_so_a_read_only_view_derives_nothing() {
    // Given a server that flushes after 200 ms without a batch (and never on age)
    let server = TestServer::start_with(ServerSection {
        index_flush_idle_ms: 200,
        index_flush_age_seconds: 0,
        ..ServerSection::default()
    })
    .await;
    // When a center posts 2 × 700 invoices (more than the 1,024 entries an idle flush
    // waits for) and then nothing
    post_invoices(&server, 2, 700).await;
    // Then a read-only view opened beside it soon finds the index complete
    let waited = wait_until_complete(&server, Duration::from_secs(20))
        .await
        .unwrap_or_else(|report| panic!("the index was never flushed: {report}"));
    eprintln!("index complete {waited:?} after the last batch");
    // ... and `verify` beside it compares the whole index with the log, deriving nothing
    let verified = verify_beside(&server);
    assert!(
        verified.contains("invoice index      1400 entries compared with the log"),
        "{verified}"
    );
    assert!(!verified.contains("derived from the log"), "{verified}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_both_rules_off_leaves_its_index_to_be_derived_by_a_read_only_view() {
    // Given a server that never flushes its index itself
    let server = TestServer::start_with(ServerSection {
        index_flush_idle_ms: 0,
        index_flush_age_seconds: 0,
        ..ServerSection::default()
    })
    .await;
    // When the same invoices are posted and the server stays quiet a while
    post_invoices(&server, 2, 700).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Then a read-only view still derives the 1,400 invoices' entries from the log
    let report = lag_of_read_only_view(&server).expect("the index lags the log");
    let derived: usize = report
        .split("; the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("a count of derived entries in: {report}"));
    assert!(derived >= 1_400, "{report}");
    // ... which `verify` beside it says in a note, having checked those entries too
    let verified = verify_beside(&server);
    assert!(
        verified.contains("invoice index      1400 entries compared with the log"),
        "{verified}"
    );
    let note = verified
        .lines()
        .find(|line| line.starts_with("note") && line.contains("derived from the log"))
        .unwrap_or_else(|| panic!("a note on the derived entries in: {verified}"));
    assert!(note.contains(&format!("the {derived} entries")), "{note}");
    // ... and a clean stop flushes it, so the directory reopens complete
    let directory = server.stop().await;
    let store = EventStore::open_read_only(directory.path()).expect("read-only");
    assert_eq!(store.index_lag_report(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_entries_are_flushed_once_they_have_waited_the_age() {
    // Given a server that flushes entries older than 1 s, and not on idleness
    let server = TestServer::start_with(ServerSection {
        index_flush_idle_ms: 0,
        index_flush_age_seconds: 1,
        ..ServerSection::default()
    })
    .await;
    // When a center posts 5 invoices (far fewer than an idle flush waits for)
    post_invoices(&server, 1, 5).await;
    // Then a read-only view finds the index complete within a few seconds
    let waited = wait_until_complete(&server, Duration::from_secs(20))
        .await
        .unwrap_or_else(|report| panic!("the index was never flushed: {report}"));
    eprintln!("index complete {waited:?} after the last batch");
    server.stop().await;
}
