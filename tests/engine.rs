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

/// An engine over a ledger opened in `directory` with `options`, batches of at most
/// `batch_commands`, with the registrations and the voucher of `seed` in it.
async fn start_seeded(
    directory: &std::path::Path,
    options: LedgerOptions,
    batch_commands: usize,
) -> Engine {
    let (ledger, _) = Ledger::open(directory, options).expect("open");
    let engine = Engine::start(
        ledger,
        EngineConfig {
            batch_commands,
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
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_with_a_tiny_cache_answers_retries_and_conflicts_correctly() {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        invoice_cache_limit: 4,
        snapshot_interval: 150,
        ..LedgerOptions::default()
    };
    let engine = start_seeded(directory.path(), options, 64).await;
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

/// Invoice `item` of job `job` of task `task`, as the pipelined test names them.
fn pipelined_number(task: usize, job: usize, item: usize) -> String {
    format!("P{task}-{job}-{item}")
}

/// Large jobs from several tasks at once, so the writer decides one batch while the
/// committer writes the one before (`ledger::engine`, the committer), with a cache so
/// small that it is full after every second batch: each job also reposts invoices of another
/// task's job of the same round and of the round before, which may sit in the batch being
/// written, whose index part is not written yet. Every invoice is redeemed exactly once,
/// each repost answered as its duplicate, and after a restart the index holds every one.
/// (Emptying the cache while a batch is in flight makes some reposts redeem again here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_decided_while_the_last_is_written_answer_duplicates_exactly_once() {
    const TASKS: usize = 4;
    const JOBS: usize = 6;
    const ITEMS: usize = 1_100;
    const REPOSTS: usize = 10;
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        invoice_cache_limit: 3_000,
        snapshot_interval: 5_000,
        ..LedgerOptions::default()
    };
    let engine = start_seeded(directory.path(), options.clone(), 2_400).await;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let handle = engine.handle();
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for job in 0..JOBS {
                let mut commands: Vec<Command> = (0..ITEMS)
                    .map(|item| post(1, 1, &pipelined_number(task, job, item), "100.00"))
                    .collect();
                let neighbour = (task + 1) % TASKS;
                let reposts: Vec<String> = (job.saturating_sub(1)..=job)
                    .flat_map(|round| {
                        (0..REPOSTS).map(move |item| pipelined_number(neighbour, round, item))
                    })
                    .collect();
                commands.extend(reposts.iter().map(|number| post(1, 1, number, "100.00")));
                let numbers: Vec<String> = (0..ITEMS)
                    .map(|item| pipelined_number(task, job, item))
                    .chain(reposts)
                    .collect();
                let replies = handle
                    .submit(Origin::system("test"), commands)
                    .await
                    .expect("durable");
                assert_eq!(replies.len(), numbers.len());
                for (number, reply) in numbers.into_iter().zip(replies) {
                    match reply {
                        Ok(Reply::InvoiceOutcome(outcome)) => outcomes.push((number, outcome)),
                        other => panic!("invoice {number}: {other:?}"),
                    }
                }
            }
            outcomes
        });
    }
    let mut by_number: std::collections::BTreeMap<String, Vec<InvoiceOutcome>> =
        std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (number, outcome) in done.expect("task") {
            by_number.entry(number).or_default().push(outcome);
        }
    }
    assert_eq!(by_number.len(), TASKS * JOBS * ITEMS);
    let mut reposted = 0;
    for (number, outcomes) in &by_number {
        let originals: Vec<_> = outcomes
            .iter()
            .filter(|outcome| !outcome.duplicate)
            .collect();
        assert_eq!(
            originals.len(),
            1,
            "invoice {number} redeemed once: {outcomes:?}"
        );
        for outcome in outcomes {
            assert_eq!(
                (outcome.subsidy, outcome.sequence),
                (originals[0].subsidy, originals[0].sequence),
                "invoice {number}: a duplicate answers as its original"
            );
        }
        reposted += outcomes.len() - 1;
    }
    assert_eq!(reposted, TASKS * (2 * JOBS - 1) * REPOSTS);
    let pipelined = engine
        .handle()
        .status()
        .batches_decided_during_write
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        pipelined > 0,
        "some batch was decided while the one before was written"
    );
    let (redeemed, _) = engine
        .handle()
        .read(|state| state.invoices_redeemed())
        .await
        .expect("read");
    assert_eq!(redeemed, (TASKS * JOBS * ITEMS) as u64);
    engine.shutdown().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);

    // After a restart every invoice is in the index, with its original's sequence.
    let (ledger, _) = Ledger::open(directory.path(), options).expect("reopen");
    let wanted: Vec<(Uscc, InvoiceNumber)> = by_number
        .keys()
        .map(|number| (center(1), invoice_number(number)))
        .collect();
    let found = ledger.reader().invoices(&wanted).expect("index");
    for ((_, number), entry) in wanted.iter().zip(found) {
        let entry = entry.unwrap_or_else(|| panic!("invoice {number} is in the index"));
        let original = by_number[number.as_str()]
            .iter()
            .find(|outcome| !outcome.duplicate)
            .expect("original");
        assert_eq!(entry.sequence, original.sequence, "invoice {number}");
    }
}

/// Given a job decided alone (40 commands) and then 30 concurrent jobs of 10 in batches of
/// at most 64 commands (the writer merges the jobs queued together, and carries a job
/// that does not fit into the next batch, as the timing falls), when they are decided,
/// then every event carries the writer's time: never the placeholder callers build their
/// envelopes with, never before the job was submitted nor after it was answered, and
/// never earlier than the event before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_carries_the_writers_time_whether_its_job_was_alone_merged_or_carried() {
    let now_ms = || {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970");
        i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let engine = start_seeded(directory.path(), LedgerOptions::default(), 64).await;
    let after_seed = engine.handle().committed_sequence();
    let submitted_from = now_ms();
    let alone = engine
        .handle()
        .submit(
            Origin::system("test"),
            (0..40)
                .map(|item| post(1, 1, &format!("A-{item}"), "10.00"))
                .collect(),
        )
        .await
        .expect("durable");
    assert!(alone.iter().all(Result::is_ok), "{alone:?}");
    let mut tasks = tokio::task::JoinSet::new();
    for number in 0..30 {
        let handle = engine.handle();
        tasks.spawn(async move {
            handle
                .submit(Origin::system("test"), job(number, "10.00"))
                .await
                .expect("durable")
        });
    }
    while let Some(replies) = tasks.join_next().await {
        let replies = replies.expect("task");
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    }
    let answered_by = now_ms();
    let mut times = Vec::new();
    engine
        .handle()
        .reader()
        .read_events(after_seed + 1, |logged| {
            times.push(logged.at.0);
            std::ops::ControlFlow::Continue(())
        })
        .expect("the log reads");
    assert_eq!(times.len(), 40 + 30 * 10, "one redemption per invoice");
    for (place, at) in times.iter().enumerate() {
        assert!(
            (submitted_from..=answered_by).contains(at),
            "event {place} at {at} ms, outside {submitted_from}..={answered_by}"
        );
    }
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "time never runs backwards in the log: {times:?}"
    );
    engine.shutdown().await;
}
