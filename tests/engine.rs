//! The engine with a tiny invoice cache: concurrent submitters whose jobs are merged into
//! group commits, retries and conflicts of invoices long evicted, answered exactly as the
//! rules say, and a log that verifies.

mod common;

use common::*;
use voucher_ledger::domain::*;
use voucher_ledger::ledger::engine::{Engine, EngineConfig};
use voucher_ledger::ledger::{Ledger, LedgerOptions};

fn seed() -> Vec<Command> {
    let mut commands = registration_commands();
    commands.push(approve(1, 1, 1, "10000000.00", "3000000.00"));
    commands
}

fn job(job: usize, amount: &str) -> Vec<Command> {
    (0..10)
        .map(|item| post(1, 1, &format!("J{job}-{item}"), amount))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_with_a_tiny_cache_answers_retries_and_conflicts_correctly() {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        invoice_cache_limit: 4,
        snapshot_interval: 150,
        ..LedgerOptions::default()
    };
    let (ledger, _) = Ledger::open(directory.path(), options).expect("open");
    let engine = Engine::start(
        ledger,
        EngineConfig {
            batch_commands: 64,
            ..EngineConfig::default()
        },
    )
    .expect("engine");
    for reply in engine
        .handle()
        .submit(Origin::system("test"), seed())
        .await
        .expect("seed")
    {
        reply.expect("seed accepted");
    }
    let run_all = |amount: &'static str| {
        let handle = engine.handle();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for number in 0..50 {
                let handle = handle.clone();
                tasks.spawn(async move {
                    (
                        number,
                        handle
                            .submit(Origin::system("test"), job(number, amount))
                            .await
                            .expect("durable"),
                    )
                });
            }
            let mut all = Vec::new();
            while let Some(done) = tasks.join_next().await {
                all.push(done.expect("task"));
            }
            all.sort_by_key(|(number, _)| *number);
            all
        }
    };
    let first = run_all("100.00").await;
    let retried = run_all("100.00").await;
    for ((_, original), (_, again)) in first.iter().zip(&retried) {
        for (original, again) in original.iter().zip(again) {
            let (Ok(Reply::InvoiceOutcome(original)), Ok(Reply::InvoiceOutcome(again))) =
                (original, again)
            else {
                panic!("{original:?} / {again:?}")
            };
            assert!(!original.duplicate && again.duplicate);
            assert_eq!(
                (original.subsidy, original.sequence),
                (again.subsidy, again.sequence)
            );
        }
    }
    let conflicting = run_all("100.01").await;
    assert!(conflicting.iter().flat_map(|(_, replies)| replies).all(
        |reply| matches!(reply, Err(rejection) if rejection.code == RejectionCode::InvoiceConflict)
    ));
    let (redeemed, _) = engine
        .handle()
        .read(|state| state.invoices_redeemed())
        .await
        .expect("read");
    assert_eq!(redeemed, 500);
    engine.shutdown().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(!report.snapshots_checked.is_empty());
}
