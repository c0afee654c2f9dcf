//! Signed checkpoints (issue 11): the engine signs the durable head every N events, at a
//! settlement run and when it stops; `verify` with the bureau's public key and the
//! checkpoints kept outside the server detects, and names, a log rewritten and re-hashed
//! without the private key, a truncated tail, and a forged signature, none of which the
//! plain `verify` can see. Also the gRPC reads of checkpoints and the bureau's backup.

mod common;
mod support;

use std::path::Path;

use common::*;
use voucher_ledger::audit::{verify, verify_with_checkpoints, CheckpointCheck};
use voucher_ledger::domain::*;
use voucher_ledger::ledger::engine::{CheckpointPolicy, Engine, EngineConfig};
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::storage::checkpoint::{
    export_text, generate_key_pair, parse_export, Checkpoint, CheckpointSigner, TrustedKey,
};
use voucher_ledger::storage::record::ChainHash;
use voucher_ledger::storage::EventStore;

fn key_pair() -> (CheckpointSigner, TrustedKey, String, String) {
    let (private, public) = generate_key_pair().expect("key pair");
    let signer = CheckpointSigner::from_pem(&private).expect("private key");
    let trusted = TrustedKey::from_pem(&public).expect("public key");
    (signer, trusted, private, public)
}

/// A ledger history in `directory`, through the engine with `signer` (every `interval`
/// events): the programme and a voucher, 10 batches of 10 invoices, a settlement run,
/// and last `tail_enterprises` enterprise registrations. Returns the last sequence.
async fn history(
    directory: &Path,
    signer: Option<&CheckpointSigner>,
    interval: u64,
    tail_enterprises: usize,
) -> u64 {
    let options = LedgerOptions {
        snapshot_interval: 40,
        ..LedgerOptions::default()
    };
    let (ledger, _) = Ledger::open(directory, options).expect("open");
    let engine = Engine::start(
        ledger,
        EngineConfig {
            checkpoints: signer.map(|signer| CheckpointPolicy {
                signer: signer.clone(),
                interval,
            }),
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    let handle = engine.handle();
    let origin = || Origin::system("test");
    let mut seed = registration_commands();
    seed.push(approve(1, 1, 1, "10000000.00", "3000000.00"));
    for reply in handle.submit(origin(), seed).await.expect("seed") {
        reply.expect("seed accepted");
    }
    for batch in 0..10 {
        let invoices = (0..10)
            .map(|item| post(1, 1, &format!("CP-{batch}-{item}"), "100.00"))
            .collect();
        for reply in handle.submit(origin(), invoices).await.expect("invoices") {
            reply.expect("invoice accepted");
        }
    }
    let run = Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(0x5e77_1e00_0000_0001),
        year: year(),
    };
    handle
        .submit_one(origin(), run)
        .await
        .expect("run durable")
        .expect("run accepted");
    let tail: Vec<Command> = (0..tail_enterprises)
        .map(|index| Command::RegisterEnterprise {
            enterprise: enterprise(100 + index),
            name: name(&format!("Tail enterprise {index}")),
        })
        .collect();
    if !tail.is_empty() {
        for reply in handle.submit(origin(), tail).await.expect("tail") {
            reply.expect("tail accepted");
        }
    }
    let last = handle.committed_sequence();
    engine.shutdown().await;
    last
}

fn stored_checkpoints(directory: &Path) -> Vec<Checkpoint> {
    EventStore::open_read_only(directory)
        .expect("store")
        .checkpoints(0, usize::MAX)
        .expect("checkpoints")
}

fn chain_hash_at(directory: &Path, sequence: u64) -> ChainHash {
    EventStore::open_read_only(directory)
        .expect("store")
        .chain_hash_after(sequence)
        .expect("chain hash")
}

fn check(trusted: &TrustedKey, external: Vec<Checkpoint>) -> CheckpointCheck {
    CheckpointCheck {
        key: trusted.clone(),
        external,
        external_source: Some("the bureau's copy".into()),
    }
}

#[test]
fn a_key_pair_signs_and_verifies_and_refuses_a_forged_or_foreign_signature() {
    // Given the bureau's key pair and an insider's
    let (signer, trusted, _, _) = key_pair();
    let (insider, _, _, _) = key_pair();
    let head = ChainHash([7; 32]);
    // When the bureau signs a checkpoint, it verifies, and survives its encoding
    let checkpoint = signer
        .sign(42, head, Timestamp(1_790_000_000_000))
        .expect("sign");
    assert_eq!(trusted.check(&checkpoint), Ok(()));
    let decoded = Checkpoint::decode(&checkpoint.encode()).expect("decode");
    assert_eq!(decoded, checkpoint);
    assert_eq!(
        parse_export(&export_text(std::slice::from_ref(&checkpoint))).expect("export"),
        vec![checkpoint.clone()]
    );
    // Then a changed sequence, head or signature byte does not verify
    let mut moved = checkpoint.clone();
    moved.sequence = 43;
    assert!(trusted.check(&moved).is_err());
    let mut other_head = checkpoint.clone();
    other_head.chain_head = ChainHash([8; 32]);
    assert!(trusted.check(&other_head).is_err());
    let mut forged = checkpoint.clone();
    forged.signature[10] ^= 0x01;
    assert!(trusted.check(&forged).is_err());
    // And one signed by the insider's key is named as such
    let foreign = insider
        .sign(42, head, Timestamp(1_790_000_000_000))
        .expect("sign");
    let refused = trusted.check(&foreign).expect_err("foreign key");
    assert!(refused.contains("not the trusted key"), "{refused}");
    // And damaged values are refused, naming what is wrong
    let bytes = checkpoint.encode();
    assert!(Checkpoint::decode(&bytes[..100]).is_err());
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    assert!(Checkpoint::decode(&bad_magic)
        .expect_err("magic")
        .to_string()
        .contains("magic"));
    let mut unknown_version = bytes;
    unknown_version[4] = 9;
    assert!(Checkpoint::decode(&unknown_version)
        .expect_err("version")
        .to_string()
        .contains("version 9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_signs_every_interval_at_a_settlement_run_and_at_its_stop() {
    // Given a ledger whose engine signs every 25 events
    let directory = tempfile::tempdir().expect("tempdir");
    let (signer, trusted, _, _) = key_pair();
    // When a history with a settlement run and a tail of registrations is written
    let last = history(directory.path(), Some(&signer), 25, 3).await;
    let checkpoints = stored_checkpoints(directory.path());
    // Then every checkpoint is signed by the key over the log's head at its sequence
    assert!(checkpoints.len() >= 4, "{checkpoints:?}");
    for checkpoint in &checkpoints {
        assert_eq!(trusted.check(checkpoint), Ok(()));
        assert_eq!(
            checkpoint.chain_head,
            chain_hash_at(directory.path(), checkpoint.sequence)
        );
    }
    // And the head as it stopped is signed, and so is the settlement run's batch
    assert_eq!(
        checkpoints.last().map(|checkpoint| checkpoint.sequence),
        Some(last)
    );
    let store = EventStore::open_read_only(directory.path()).expect("store");
    let mut run_sequence = 0;
    store
        .read_log(
            1,
            voucher_ledger::storage::record::genesis_chain_hash(),
            |logged| {
                if matches!(logged.event, Event::SettlementRunCreated { .. }) {
                    run_sequence = logged.sequence;
                }
                std::ops::ControlFlow::Continue(())
            },
        )
        .expect("log");
    drop(store);
    assert!(
        checkpoints
            .iter()
            .any(|checkpoint| checkpoint.sequence >= run_sequence && checkpoint.sequence < last),
        "a checkpoint covers the settlement run ({run_sequence}) before the stop ({last})"
    );
    // And consecutive interval checkpoints are at most 25 events apart (plus one batch)
    for pair in checkpoints.windows(2) {
        assert!(pair[1].sequence - pair[0].sequence <= 25 + 12, "{pair:?}");
    }
    // And verify with the trusted key is clean
    let report = verify_with_checkpoints(directory.path(), &check(&trusted, checkpoints.clone()))
        .expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.checkpoints_checked, 2 * checkpoints.len());
    assert_eq!(report.newest_checkpoint, Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_and_rehashed_without_the_key_is_detected_and_named() {
    // Given the bureau's ledger, with its checkpoints exported outside the server
    let (signer, trusted, _, _) = key_pair();
    let original = tempfile::tempdir().expect("tempdir");
    history(original.path(), Some(&signer), 25, 0).await;
    let exported =
        parse_export(&export_text(&stored_checkpoints(original.path()))).expect("export file");
    // When an insider writes a whole new history in its place (every record, hash,
    // snapshot and index entry consistent) and signs it with a key of their own
    let (insider, _, _, _) = key_pair();
    let forged = tempfile::tempdir().expect("tempdir");
    history(forged.path(), Some(&insider), 25, 0).await;
    // Then the plain verify finds nothing wrong: the chain alone cannot tell
    let plain = verify(forged.path()).expect("verify");
    assert!(plain.is_clean(), "{:?}", plain.problems);
    // But verify with the trusted key names the rewrite at a checkpoint's sequence and
    // the insider's signatures as foreign
    let report =
        verify_with_checkpoints(forged.path(), &check(&trusted, exported.clone())).expect("verify");
    assert!(!report.is_clean());
    let rewritten: Vec<&String> = report
        .problems
        .iter()
        .filter(|problem| problem.starts_with("REWRITTEN LOG"))
        .collect();
    assert!(!rewritten.is_empty(), "{:?}", report.problems);
    let first = exported.first().expect("a checkpoint");
    assert!(
        rewritten[0].contains(&format!("sequence {}", first.sequence)),
        "{rewritten:?}"
    );
    assert!(report
        .problems
        .iter()
        .any(|problem| problem.starts_with("FORGED CHECKPOINT")
            && problem.contains("not the trusted key")));
    assert_eq!(report.first_bad_sequence, Some(first.sequence));
    // And the original verifies against the same file
    let clean =
        verify_with_checkpoints(original.path(), &check(&trusted, exported)).expect("verify");
    assert!(clean.is_clean(), "{:?}", clean.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_tail_is_detected_and_named() {
    // Given a ledger whose last five events are registrations after the newest
    // interval checkpoint, and the bureau's export of its checkpoints
    let (signer, trusted, _, _) = key_pair();
    let directory = tempfile::tempdir().expect("tempdir");
    let last = history(directory.path(), Some(&signer), 1_000, 5).await;
    let exported = stored_checkpoints(directory.path());
    assert_eq!(
        exported.last().map(|checkpoint| checkpoint.sequence),
        Some(last)
    );
    // When an insider drops the last five records, the snapshots after the cut and the
    // stored checkpoints (the store keeps no other trace of them)
    let cut = last - 5;
    {
        let store = EventStore::open(directory.path(), true).expect("store");
        for sequence in cut + 1..=last {
            store
                .overwrite_record_for_tests(sequence, None)
                .expect("drop a record");
        }
        for sequence in store.snapshot_sequences().expect("snapshots") {
            if sequence > cut {
                store.delete_snapshot(sequence).expect("delete snapshot");
            }
        }
        store
            .delete_checkpoints_for_tests()
            .expect("delete checkpoints");
    }
    // Then the plain verify sees a shorter, valid log
    let plain = verify(directory.path()).expect("verify");
    assert!(plain.is_clean(), "{:?}", plain.problems);
    assert_eq!(plain.records_checked, cut);
    // But with the bureau's copy of the checkpoints the truncation is named
    let report =
        verify_with_checkpoints(directory.path(), &check(&trusted, exported)).expect("verify");
    let truncated: Vec<&String> = report
        .problems
        .iter()
        .filter(|problem| problem.starts_with("TRUNCATED LOG"))
        .collect();
    assert_eq!(truncated.len(), 1, "{:?}", report.problems);
    assert!(
        truncated[0].contains(&format!("ends at sequence {cut}"))
            && truncated[0].contains(&format!("sequence {last} was signed")),
        "{}",
        truncated[0]
    );
    assert_eq!(report.first_bad_sequence, Some(cut + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_signature_in_the_export_file_is_named_by_the_command_line() {
    // Given a ledger and the files an auditor holds: the public key and the export
    let (signer, _, _, public) = key_pair();
    let directory = tempfile::tempdir().expect("tempdir");
    history(directory.path(), Some(&signer), 25, 0).await;
    let files = tempfile::tempdir().expect("tempdir");
    let public_path = files.path().join("bureau.pub.pem");
    std::fs::write(&public_path, public).expect("public key");
    let export_path = files.path().join("checkpoints.txt");
    let exported = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args(["checkpoints", "--data-dir"])
        .arg(directory.path())
        .arg("--out")
        .arg(&export_path)
        .output()
        .expect("checkpoints");
    assert!(exported.status.success(), "{exported:?}");
    let verify_cli = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
            .args(["verify", "--data-dir"])
            .arg(directory.path())
            .arg("--trusted-key")
            .arg(&public_path)
            .arg("--checkpoints")
            .arg(&export_path)
            .output()
            .expect("verify")
    };
    let clean = verify_cli();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    // When one signature byte in the export file is changed
    let text = std::fs::read_to_string(&export_path).expect("export");
    let mut checkpoints = parse_export(&text).expect("parse");
    let victim = checkpoints[1].sequence;
    checkpoints[1].signature[20] ^= 0x40;
    std::fs::write(&export_path, export_text(&checkpoints)).expect("rewrite export");
    // Then verify exits 1 naming the forged checkpoint's sequence
    let forged = verify_cli();
    let stdout = String::from_utf8_lossy(&forged.stdout);
    assert_eq!(forged.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FORGED CHECKPOINT: checkpoint of sequence {victim} in {}",
            export_path.display()
        )),
        "{stdout}"
    );
}

// ------------------------------------------------------------------------- gRPC

use support::{authed, standard_policy_request, TestServer, AUDITOR, BUREAU, CENTER_1};
use voucher_ledger::api::proto::checkpoint_service_client::CheckpointServiceClient;
use voucher_ledger::api::proto::{self, RegisterCenterRequest};
use voucher_ledger::api::server::ServerSection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_backups_over_grpc() {
    // Given a server with a signing key (every 2 events) and a backup directory
    let (signer, trusted, private, _) = key_pair();
    let files = tempfile::tempdir().expect("tempdir");
    let key_path = files.path().join("checkpoint-key.pem");
    std::fs::write(&key_path, private).expect("key");
    let backups = files.path().join("backups");
    let server = TestServer::start_with(ServerSection {
        checkpoint_key: Some(key_path),
        checkpoint_interval: 2,
        backup_dir: Some(backups.clone()),
        ..ServerSection::default()
    })
    .await;
    let policy = standard_policy_request();
    server
        .programme()
        .publish_policy(authed(BUREAU, policy))
        .await
        .expect("policy");
    for index in 1..=4 {
        server
            .registry()
            .register_center(authed(
                BUREAU,
                RegisterCenterRequest {
                    uscc: support::center_code(index),
                    name: format!("Center {index}"),
                    tier: proto::FacilityTier::Domestic as i32,
                    listing_basis: proto::ListingBasis::PlanningLayout as i32,
                    ..Default::default()
                },
            ))
            .await
            .expect("center");
    }
    let mut client = CheckpointServiceClient::new(server.channel.clone());
    // When the auditor asks for the newest checkpoint (signing is asynchronous: poll)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let newest = loop {
        match client
            .get_checkpoint(authed(AUDITOR, proto::GetCheckpointRequest { sequence: 0 }))
            .await
        {
            Ok(reply) if reply.get_ref().sequence == 4 => break reply.into_inner(),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => panic!("no checkpoint in time: {other:?}"),
        }
    };
    // Then it is signed by the server's key over the log's head
    let decoded = Checkpoint::decode(&newest.encoded).expect("encoded");
    assert_eq!(trusted.check(&decoded), Ok(()));
    assert_eq!(decoded.sequence, newest.sequence);
    assert_eq!(decoded.chain_head.to_string(), newest.chain_head);
    assert_eq!(hex::encode(signer.fingerprint()), newest.key_fingerprint);
    // And the list pages, and a center may read neither
    let listed = client
        .list_checkpoints(authed(
            BUREAU,
            proto::ListCheckpointsRequest {
                from_sequence: 0,
                limit: 1,
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.checkpoints.len(), 1);
    assert_eq!(listed.checkpoints[0].sequence, 2);
    assert_eq!(listed.next_sequence, 3);
    let denied = client
        .get_checkpoint(authed(
            CENTER_1,
            proto::GetCheckpointRequest { sequence: 0 },
        ))
        .await
        .expect_err("a center may not");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let missing = client
        .get_checkpoint(authed(AUDITOR, proto::GetCheckpointRequest { sequence: 3 }))
        .await
        .expect_err("none at 3");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // When the bureau takes a backup (the auditor may not)
    let refused = client
        .backup(authed(AUDITOR, proto::BackupRequest {}))
        .await
        .expect_err("auditor");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let backup = client
        .backup(authed(BUREAU, proto::BackupRequest {}))
        .await
        .expect("backup")
        .into_inner();
    // Then it is under the backup directory, holds the whole log, and restores
    assert!(
        Path::new(&backup.directory).starts_with(&backups),
        "{backup:?}"
    );
    assert_eq!(backup.sequence, 5);
    let restored = files.path().join("restored");
    let manifest =
        voucher_ledger::storage::backup::restore(Path::new(&backup.directory), &restored)
            .expect("restore");
    assert_eq!(manifest.chain_head.to_string(), backup.chain_head);
    let report = verify(&restored).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(
        report.chain_head.map(|head| head.to_string()),
        Some(backup.chain_head)
    );
    server.stop().await;
}
