//! Online backups (issue 11): `voucher-ledger backup` copies the data directory of a
//! running server while invoices are being posted; `voucher-ledger restore` brings it
//! back into a new directory, which verifies, ends at the sequence and chain head the
//! manifest recorded, and is a prefix of the live log.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;
use voucher_ledger::api::proto::{self, *};
use voucher_ledger::audit::verify;
use voucher_ledger::storage::backup::read_manifest;
use voucher_ledger::storage::EventStore;

/// Policy, center 1, enterprise 1, a voucher with room for every invoice below.
async fn seed(server: &TestServer) -> String {
    let policy = standard_policy_request();
    server
        .programme()
        .publish_policy(authed(BUREAU, policy))
        .await
        .expect("policy");
    register_pair_and_approve(&server.channel, "C-BACKUP", "1000000.00", "300000.00").await
}

fn invoices(voucher_id: &str, batch: usize, size: usize) -> Vec<proto::Invoice> {
    (0..size)
        .map(|item| proto::Invoice {
            center: center_code(1),
            voucher_id: voucher_id.to_string(),
            invoice_number: format!("BK-{batch:04}-{item:04}"),
            amount: "1.00".into(),
            issue_date: "2026-06-30".into(),
            delivery_proof: "acceptance/backup".into(),
            invoice_code: String::new(),
            payment_proof: String::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_verifies_and_keeps_its_head() {
    // Given a running server
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
    let data_dir = server.directory.path().to_path_buf();
    // When invoices are posted continuously
    let mut redemption = server.redemption();
    let load = tokio::spawn(async move {
        let mut accepted = 0;
        for batch in 0..60 {
            let reply = redemption
                .post_invoices(authed(
                    CENTER_1,
                    PostInvoicesRequest {
                        invoices: invoices(&voucher_id, batch, 200),
                    },
                ))
                .await
                .expect("batch")
                .into_inner();
            accepted += reply
                .results
                .iter()
                .filter(|result| matches!(result.result, Some(invoice_result::Result::Accepted(_))))
                .count();
        }
        accepted
    });
    // ... and, while they are, the backup command copies the live directory
    tokio::time::sleep(Duration::from_millis(100)).await;
    let files = tempfile::tempdir().expect("tempdir");
    let backup = files.path().join("backup");
    let backed_up = {
        let (data_dir, backup) = (data_dir.clone(), backup.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
                .args(["backup", "--data-dir"])
                .arg(&data_dir)
                .arg("--out")
                .arg(&backup)
                .output()
                .expect("backup")
        })
        .await
        .expect("join")
    };
    assert!(
        backed_up.status.success(),
        "{}",
        String::from_utf8_lossy(&backed_up.stderr)
    );
    let accepted = load.await.expect("load");
    assert_eq!(accepted, 60 * 200);
    let manifest = read_manifest(&backup).expect("manifest");
    assert!(manifest.sequence >= 4, "{manifest:?}");
    // Then restoring it into a new directory verifies, at the manifest's head
    let restored = files.path().join("restored");
    let restore = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .arg("restore")
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .expect("restore");
    let stdout = String::from_utf8_lossy(&restore.stdout);
    assert!(restore.status.success(), "{stdout}");
    assert!(stdout.contains("verify        OK"), "{stdout}");
    let report = verify(&restored).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.chain_head, Some(manifest.chain_head));
    assert_eq!(report.records_checked, manifest.sequence);
    // And it is a prefix of the live log: the live record at that sequence has that head
    let kept = server.stop().await;
    let live = EventStore::open_read_only(kept.path()).expect("live store");
    assert_eq!(
        live.chain_hash_after(manifest.sequence).expect("chain"),
        manifest.chain_head
    );
    // And restoring over a directory that is not empty is refused
    let again = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .arg("restore")
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .expect("restore again");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}
