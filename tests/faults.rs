//! Fault tests (issue 11), each bounded in time:
//!
//! - a full disk (the data directory on a small tmpfs this test mounts): the ledger stops
//!   accepting with UNAVAILABLE, health turns NOT_SERVING, no acknowledged invoice is
//!   lost, and once space is freed and the server restarted everything verifies and it
//!   continues;
//! - a corrupt record in the middle of the log stops `serve` from starting, with an error
//!   naming its sequence;
//! - SIGHUP reloads the config's tokens without dropping connections: a subscription
//!   opened before goes on, a removed token is refused from then on.

mod support;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use tonic::transport::Channel;
use voucher_ledger::api::auth::token_hash;
use voucher_ledger::api::proto::*;
use voucher_ledger::audit::verify;

/// Policy, center 1, enterprise 1 and a voucher large enough for every invoice here.
async fn seed(channel: &Channel) -> String {
    programme_service_client::ProgrammeServiceClient::new(channel.clone())
        .publish_policy(authed(BUREAU, standard_policy_request()))
        .await
        .expect("policy");
    register_pair_and_approve(channel, "C-FAULTS", "20000000.00", "6000000.00").await
}

fn invoices(voucher_id: &str, prefix: &str, batch: usize, size: usize) -> Vec<Invoice> {
    (0..size)
        .map(|item| Invoice {
            center: center_code(1),
            voucher_id: voucher_id.to_string(),
            invoice_number: format!("{prefix}-{batch:05}-{item:04}"),
            amount: "1.00".into(),
            issue_date: "2026-06-30".into(),
            // Long proofs fill the disk sooner.
            delivery_proof: format!("acceptance/{}", "x".repeat(200)),
            invoice_code: String::new(),
            payment_proof: String::new(),
        })
        .collect()
}

// ------------------------------------------------------------------ disk full

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallFilesystem {
    mount_point: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(megabytes: u32) -> Option<SmallFilesystem> {
        let mount_point = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(mount_point.path())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallFilesystem { mount_point })
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    fn grow(&self, megabytes: u32) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={megabytes}m")])
            .arg(self.path())
            .status()
            .expect("remount");
        assert!(status.success(), "remount to {megabytes} MiB");
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

async fn health_of(channel: &Channel, service: &str) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_with_unavailable_and_loses_no_acknowledged_invoice() {
    // Given a server whose data directory is on a 24 MiB filesystem
    let Some(filesystem) = SmallFilesystem::mount(24) else {
        // Mounting needs root; the test says so instead of passing silently.
        panic!("this test mounts a tmpfs (mount -t tmpfs) and needs root to do so");
    };
    let data_dir = tempfile::tempdir_in(filesystem.path()).expect("data dir on tmpfs");
    let server = TestServer::start_in(
        data_dir,
        voucher_ledger::api::server::ServerSection::default(),
    )
    .await;
    let voucher_id = seed(&server.channel).await;
    // When batches are posted until the disk is full (bounded: 400 batches, 60 s)
    let mut redemption = server.redemption();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut refusal = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    for batch in 0..400 {
        if Instant::now() > deadline {
            break;
        }
        let sent = invoices(&voucher_id, "DF", batch, 1_000);
        let numbers: Vec<String> = sent
            .iter()
            .map(|invoice| invoice.invoice_number.clone())
            .collect();
        match redemption
            .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices: sent }))
            .await
        {
            Ok(reply) => {
                for (number, result) in numbers.into_iter().zip(&reply.get_ref().results) {
                    assert!(
                        matches!(result.result, Some(invoice_result::Result::Accepted(_))),
                        "{number}: {result:?}"
                    );
                    acknowledged.push(number);
                }
            }
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    // Then the write that did not fit is refused with UNAVAILABLE, and so is the next
    let refusal = refusal.expect("the disk filled up within 400 batches");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(!acknowledged.is_empty());
    let next = redemption
        .post_invoices(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: invoices(&voucher_id, "DF-AFTER", 0, 1),
            },
        ))
        .await
        .expect_err("refused after the failure");
    assert_eq!(next.code(), tonic::Code::Unavailable, "{next:?}");
    // And health says NOT_SERVING, for every service and the server as a whole (it is
    // set by a watcher of the writer: bounded wait)
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while health_of(&server.channel, "").await != not_serving && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(health_of(&server.channel, "").await, not_serving);
    assert_eq!(
        health_of(&server.channel, "voucher.v1.RedemptionService").await,
        not_serving
    );
    let data_dir = server.stop().await;
    // When space is freed and the server restarted on the same directory
    filesystem.grow(512);
    let server = TestServer::start_in(
        data_dir,
        voucher_ledger::api::server::ServerSection::default(),
    )
    .await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let restarted = tonic_health::pb::health_client::HealthClient::new(server.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    if !matches!(&restarted, Ok(reply) if reply.get_ref().status == serving) {
        // The server's own error says why it did not start.
        server.stop().await;
        panic!("the restarted server is not serving: {restarted:?}");
    }
    // Then every acknowledged invoice is there, and posting continues
    let mut redemption = server.redemption();
    for number in acknowledged.iter().step_by(97).chain(acknowledged.last()) {
        redemption
            .get_invoice(authed(
                CENTER_1,
                GetInvoiceRequest {
                    center: center_code(1),
                    invoice_number: number.clone(),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("acknowledged {number} lost: {status:?}"));
    }
    let after = redemption
        .post_invoices(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: invoices(&voucher_id, "DF-AFTER", 1, 10),
            },
        ))
        .await
        .expect("posting continues")
        .into_inner();
    assert_eq!(after.results.len(), 10);
    assert_eq!(health_of(&server.channel, "").await, serving);
    let data_dir = server.stop().await;
    // And the whole directory verifies (one index entry per invoice in the log), and
    // holds every acknowledged invoice (the refused batch may be there too, or not:
    // it was never acknowledged)
    let report = verify(data_dir.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.invoice_index_entries >= acknowledged.len() as u64 + 10);
    let store =
        voucher_ledger::storage::EventStore::open_read_only(data_dir.path()).expect("store");
    let center = voucher_ledger::domain::Uscc::parse("center", &center_code(1)).expect("uscc");
    for chunk in acknowledged.chunks(4_096) {
        let wanted: Vec<_> = chunk
            .iter()
            .map(|number| {
                (
                    center,
                    voucher_ledger::domain::InvoiceNumber::parse(number).expect("number"),
                )
            })
            .collect();
        let found = store.invoices(&wanted).expect("index");
        for (number, entry) in chunk.iter().zip(found) {
            assert!(entry.is_some(), "acknowledged invoice {number} was lost");
        }
    }
    drop(store);
    drop(data_dir);
    drop(filesystem);
}

// ------------------------------------------------------ corrupt record in the middle

#[test]
fn a_corrupt_record_in_the_middle_stops_serve_naming_its_sequence() {
    use voucher_ledger::domain::{Envelope, Timestamp};
    use voucher_ledger::ledger::{Ledger, LedgerOptions};
    use voucher_ledger::storage::EventStore;
    // Given a log of a dozen records, written and closed
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let (mut ledger, _) =
            Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
        let population =
            voucher_ledger::tooling::torture::torture_population().expect("population");
        let envelopes: Vec<Envelope> = population
            .commands()
            .into_iter()
            .enumerate()
            .map(|(index, command)| {
                Envelope::new(Timestamp(1_772_323_200_000 + index as i64), command)
            })
            .collect();
        ledger.submit(&envelopes).expect("seed");
        ledger.close().expect("close");
    }
    let last = EventStore::open_read_only(directory.path())
        .expect("store")
        .last_sequence()
        .expect("last")
        .expect("records");
    assert!(last >= 4, "{last}");
    // When one byte of a record in the middle is changed (and no snapshot skips it)
    let middle = last / 2;
    {
        let store = EventStore::open(directory.path(), true).expect("store");
        let mut bytes = store.record(middle).expect("read").expect("record");
        let payload_byte = 30;
        bytes[payload_byte] ^= 0x20;
        store
            .overwrite_record_for_tests(middle, Some(&bytes))
            .expect("overwrite");
        for sequence in store.snapshot_sequences().expect("snapshots") {
            store.delete_snapshot(sequence).expect("delete snapshot");
        }
    }
    // Then serve refuses to start, exit code 2, naming the record (bounded: 60 s)
    let mut child = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(directory.path())
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/server.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started on a log with a corrupt record");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("record {middle}")), "{stderr}");
}

// ------------------------------------------------------------ token rotation

struct ServeChild {
    child: Child,
    address: String,
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(path: &Path, tokens: &[(&str, &str, &str)]) {
    let mut text = String::from("[server]\nsnapshot_interval = 1000\n");
    for (principal, role, token) in tokens {
        text.push_str(&format!(
            "\n[[tokens]]\nprincipal = \"{principal}\"\nrole = \"{role}\"\ntoken_sm3 = \"{}\"\n",
            token_hash(token)
        ));
    }
    std::fs::write(path, text).expect("config");
}

fn serve(data_dir: &Path, config: &Path) -> ServeChild {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let address =
        voucher_ledger::tooling::listening_address(std::io::BufReader::new(stdout).lines())
            .expect("a line before exit");
    ServeChild { child, address }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_tokens_without_dropping_connections() {
    // Given a served ledger whose config lists the bureau and an auditor
    let files = tempfile::tempdir().expect("tempdir");
    let config: PathBuf = files.path().join("server.toml");
    write_config(
        &config,
        &[
            ("bureau", "bureau", BUREAU),
            ("auditor", "auditor", AUDITOR),
        ],
    );
    let data_dir = files.path().join("data");
    let server = serve(&data_dir, &config);
    let channel = Channel::from_shared(format!("http://{}", server.address))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut programme = programme_service_client::ProgrammeServiceClient::new(channel.clone());
    programme
        .publish_policy(authed(BUREAU, standard_policy_request()))
        .await
        .expect("policy");
    let mut ledger = ledger_service_client::LedgerServiceClient::new(channel.clone());
    // ... the auditor follows the log on this connection
    let mut subscription = ledger
        .subscribe_events(authed(AUDITOR, SubscribeEventsRequest { from_sequence: 1 }))
        .await
        .expect("subscribe")
        .into_inner();
    assert_eq!(
        subscription
            .message()
            .await
            .expect("event")
            .expect("one")
            .sequence,
        1
    );
    // When the auditor's token is removed from the config and the server gets SIGHUP
    write_config(&config, &[("bureau", "bureau", BUREAU)]);
    // SAFETY: kill(2) on the child's pid, which this test owns and has not reaped.
    let sent = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(sent, 0);
    // Then the auditor's token is refused from then on (the reload is asynchronous:
    // bounded wait)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = ledger
            .read_events(authed(
                AUDITOR,
                ReadEventsRequest {
                    from_sequence: 1,
                    limit: 1,
                },
            ))
            .await;
        match read {
            Err(status) if status.code() == tonic::Code::Unauthenticated => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the removed token still works after 10 s: {other:?}"),
        }
    }
    // And the bureau's call on the same connection works, and the subscription opened
    // before the reload goes on and sees the new event
    let mut registry = registry_service_client::RegistryServiceClient::new(channel.clone());
    registry
        .register_enterprise(authed(
            BUREAU,
            RegisterEnterpriseRequest {
                uscc: enterprise_code(1),
                name: "Enterprise 1".into(),
            },
        ))
        .await
        .expect("bureau still served");
    let next = tokio::time::timeout(Duration::from_secs(10), subscription.message())
        .await
        .expect("in time")
        .expect("stream still open")
        .expect("an event");
    assert_eq!(next.sequence, 2);
    drop(server);
}
