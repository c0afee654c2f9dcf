//! Metrics (issue 11): a real server with `/metrics` on 127.0.0.1:0; after a known
//! workload the exposition passes `promtool check metrics` and its values are what was
//! posted: commands by type and outcome, rejections by reason, batches, the log head,
//! subscribers, RocksDB figures. Also: every response carries the call's request id.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;
use voucher_ledger::api::proto::*;
use voucher_ledger::api::server::{run_with, ServeExtras, ServeSettings, ServerSection};
use voucher_ledger::ops::metrics::Metrics;

async fn scrape(address: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("in time")
    .expect("response");
    let text = String::from_utf8(response).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// Sample name with its labels (as written) → value.
fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("sample line");
            (name.to_string(), value.parse::<f64>().expect("number"))
        })
        .collect()
}

fn promtool_check(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/prerequisites.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool: {}{}\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn invoice(voucher_id: &str, number: &str, amount: &str) -> Invoice {
    Invoice {
        center: center_code(1),
        voucher_id: voucher_id.to_string(),
        invoice_number: number.to_string(),
        amount: amount.to_string(),
        issue_date: "2026-06-30".into(),
        delivery_proof: "acceptance/metrics".into(),
        invoice_code: String::new(),
        payment_proof: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_passes_promtool_and_counts_what_was_posted() {
    // Given a server serving /metrics
    let directory = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind http");
    let address = listener.local_addr().expect("address").to_string();
    let http_address = http.local_addr().expect("address").to_string();
    let metrics = Arc::new(Metrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(
        listener,
        ServeSettings {
            data_dir: directory.path().to_path_buf(),
            config: test_config(ServerSection::default()),
            sync: true,
            http_listener: None,
        },
        ServeExtras {
            http_listener: Some(http),
            token_reloads: None,
            metrics: Some(Arc::clone(&metrics)),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    // When the bureau seeds a programme (1 policy, 1 center, 1 enterprise, 1 voucher)
    let policy = standard_policy_request();
    programme_service_client::ProgrammeServiceClient::new(channel.clone())
        .publish_policy(authed_with_id(BUREAU, "metrics-policy-1", policy))
        .await
        .expect("policy");
    let voucher_id =
        register_pair_and_approve(&channel, "C-METRICS", "100000.00", "30000.00").await;
    // ... and a center posts 3 batches of 40 invoices, reposts the first batch (40
    // duplicates, answered as accepted), 5 conflicting reposts, and 7 unary invoices
    let mut redemption = redemption_service_client::RedemptionServiceClient::new(channel.clone());
    for batch in 0..3 {
        let invoices = (0..40)
            .map(|item| invoice(&voucher_id, &format!("M-{batch}-{item}"), "10.00"))
            .collect();
        redemption
            .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices }))
            .await
            .expect("batch");
    }
    let again = (0..40)
        .map(|item| invoice(&voucher_id, &format!("M-0-{item}"), "10.00"))
        .collect();
    redemption
        .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices: again }))
        .await
        .expect("duplicates");
    let conflicting = (0..5)
        .map(|item| invoice(&voucher_id, &format!("M-1-{item}"), "11.00"))
        .collect();
    redemption
        .post_invoices(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: conflicting,
            },
        ))
        .await
        .expect("conflicts");
    for item in 0..7 {
        let reply = redemption
            .post_invoice(authed_with_id(
                CENTER_1,
                &format!("metrics-unary-{item}"),
                invoice(&voucher_id, &format!("M-U-{item}"), "10.00"),
            ))
            .await
            .expect("unary");
        // Every response echoes the call's request id.
        assert_eq!(
            reply
                .metadata()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok()),
            Some(format!("metrics-unary-{item}").as_str())
        );
    }
    // ... and one generates an id when the client sent none
    let generated = redemption
        .get_invoice(authed(
            CENTER_1,
            GetInvoiceRequest {
                center: center_code(1),
                invoice_number: "M-U-0".into(),
            },
        ))
        .await
        .expect("get invoice");
    let generated_id = generated
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("a generated request id");
    assert_eq!(generated_id.len(), 36, "{generated_id}");
    // ... and an auditor subscribes to the log
    let mut subscription = ledger_service_client::LedgerServiceClient::new(channel.clone())
        .subscribe_events(authed(AUDITOR, SubscribeEventsRequest { from_sequence: 1 }))
        .await
        .expect("subscribe")
        .into_inner();
    subscription.message().await.expect("event").expect("one");

    // Then the exposition is valid for promtool
    let exposition = scrape(&http_address).await;
    promtool_check(&exposition);
    let values = samples(&exposition);
    let value = |name: &str| {
        *values
            .get(name)
            .unwrap_or_else(|| panic!("{name} in\n{exposition}"))
    };
    // And it counts what was posted
    let accepted = |command: &str| {
        value(&format!(
            "voucher_ledger_commands_total{{command=\"{command}\",outcome=\"accepted\"}}"
        ))
    };
    assert_eq!(accepted("PostInvoice"), (120 + 40 + 7) as f64);
    assert_eq!(accepted("PublishPolicy"), 1.0);
    assert_eq!(accepted("RegisterCenter"), 1.0);
    assert_eq!(accepted("ApproveVoucher"), 1.0);
    assert_eq!(
        value("voucher_ledger_commands_total{command=\"PostInvoice\",outcome=\"rejected\"}"),
        5.0
    );
    assert_eq!(
        value("voucher_ledger_rejections_total{reason=\"INVOICE_CONFLICT\"}"),
        5.0
    );
    // 4 seed calls, 5 batches, 7 unary calls and the expiry sweep's commands: at most
    // that many group commits (fewer if the writer merged some), holding 4 + 120 + 40 +
    // 5 + 7 commands and the sweeps
    let optional = |name: &str| values.get(name).copied().unwrap_or(0.0);
    let sweeps =
        optional("voucher_ledger_commands_total{command=\"ExpireVouchers\",outcome=\"accepted\"}")
            + optional(
                "voucher_ledger_commands_total{command=\"ExpireVouchers\",outcome=\"rejected\"}",
            );
    let batches = value("voucher_ledger_batch_size_commands_count");
    assert!((1.0..=16.0 + sweeps).contains(&batches), "{batches}");
    assert_eq!(
        value("voucher_ledger_batch_size_commands_sum"),
        176.0 + sweeps
    );
    assert_eq!(value("voucher_ledger_batch_commit_seconds_count"), batches);
    // Events: 4 seed + 120 redemptions + 7 (duplicates and conflicts write nothing)
    assert_eq!(value("voucher_ledger_log_head_sequence"), 131.0);
    assert_eq!(value("voucher_ledger_subscribers"), 1.0);
    assert_eq!(value("voucher_ledger_ledger_poisoned"), 0.0);
    assert_eq!(value("voucher_ledger_queue_depth_commands"), 0.0);
    assert_eq!(value("voucher_ledger_rocksdb_write_stopped"), 0.0);
    assert!(value("voucher_ledger_rocksdb_memtable_bytes{family=\"events\"}") > 0.0);
    assert!(
        values.contains_key("voucher_ledger_rocksdb_pending_compaction_bytes{family=\"events\"}")
    );
    assert!(values.contains_key("voucher_ledger_rocksdb_live_sst_bytes{family=\"invoices\"}"));
    // (Every family reports the one shared cache; `store.rs`'s tests check that it is
    // shared. Here the figures are read one after the other, so only their presence is.)
    assert!(values.contains_key("voucher_ledger_rocksdb_block_cache_bytes{family=\"events\"}"));
    assert!(values.contains_key("voucher_ledger_rocksdb_table_readers_bytes{family=\"invoices\"}"));
    assert!(values.contains_key("voucher_ledger_snapshot_age_seconds"));
    // The invoice index holds the 127 invoices' entries and a watermark per batch of
    // records, all unflushed: fewer than an idle flush waits for, and younger than the
    // age flush's 10 minutes, so the server has flushed nothing itself
    let unflushed = value("voucher_ledger_invoice_index_unflushed_entries");
    assert!(
        (127.0..=127.0 + batches).contains(&unflushed),
        "{unflushed} unflushed entries after {batches} batches"
    );
    assert_eq!(
        value("voucher_ledger_invoice_index_flushes{reason=\"idle\"}"),
        0.0
    );
    assert_eq!(
        value("voucher_ledger_invoice_index_flushes{reason=\"age\"}"),
        0.0
    );
    assert_eq!(value("voucher_ledger_invoice_index_flush_failures"), 0.0);
    // And every voucher_ledger_ name the alerts and the dashboard use is exported
    deploy_files_name_only(&exposition);
    drop(subscription);
    let _ = stop.send(());
    task.await.expect("join").expect("server ran cleanly");
}

/// Every `voucher_ledger_` name in `deploy/alerts.yml` and `deploy/grafana-dashboard.json`
/// is a metric family of `exposition` (histograms by their `_bucket`/`_sum`/`_count`).
fn deploy_files_name_only(exposition: &str) {
    let exported: std::collections::BTreeSet<String> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_string)
        .collect();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect("deploy file");
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("voucher_ledger_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                exported.contains(family) || exported.contains(&name),
                "{file} uses {name}, which /metrics does not export: {exported:?}"
            );
            seen += 1;
        }
        assert!(seen > 5, "{file} names the metrics");
    }
}

#[test]
fn the_deploy_scrape_config_and_alert_rules_pass_promtool() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for (what, file) in [("rules", "alerts.yml"), ("config", "prometheus.yml")] {
        let output = Command::new("promtool")
            .args(["check", what])
            .arg(deploy.join(file))
            .output()
            .expect("promtool");
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
