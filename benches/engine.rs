//! Durable redemptions per second through the library: the ledger decides a batch,
//! writes it as one RocksDB WriteBatch with one fsync, and answers. Batches of 1, 64,
//! 1,024 and 8,189 invoices, fsync on.
//!
//! `cargo bench --bench engine`; under `cargo test` it runs each case once.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};

use voucher_ledger::domain::{Command, Envelope, Origin, Timestamp};
use voucher_ledger::ledger::engine::{Engine, EngineConfig};
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::tooling::load::percentiles;
use voucher_ledger::tooling::population::{InvoiceStream, Population};

fn durable_batches(criterion: &mut Criterion) {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        sync: true,
        snapshot_interval: u64::MAX,
        ..LedgerOptions::default()
    };
    let (mut ledger, _) = Ledger::open(directory.path(), options).expect("open");
    // Tiny under `cargo test` (no --bench flag), the full population under `cargo bench`.
    let vouchers = if std::env::args().any(|argument| argument == "--bench") {
        20_000
    } else {
        200
    };
    let population = Population::bench(50, 5_000, vouchers).expect("population");
    let commands = population.commands();
    let envelopes: Vec<Envelope> = commands
        .into_iter()
        .map(|command| Envelope::new(Timestamp(1), command))
        .collect();
    for chunk in envelopes.chunks(8_000) {
        for reply in ledger.submit(chunk).expect("seed") {
            reply.expect("seed accepted");
        }
    }
    let mut stream = InvoiceStream::new(population, 11, 0).expect("stream");

    // Criterion reports means; the target is on the tail, so first a plain run of many
    // batches per size with every batch's latency (building the batch is not timed).
    let full = std::env::args().any(|argument| argument == "--bench");
    for batch in [1usize, 64, 1_024, 8_189] {
        let rounds = if full {
            (400_000 / batch).clamp(50, 4_000)
        } else {
            2
        };
        let mut latencies = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let envelopes: Vec<Envelope> = (0..batch)
                .map(|_| {
                    Envelope::new(
                        Timestamp(2),
                        Command::PostInvoice(stream.next_invoice().expect("invoice")),
                    )
                })
                .collect();
            let started = Instant::now();
            let replies = ledger.submit(&envelopes).expect("commit");
            latencies.push(started.elapsed());
            assert!(replies.iter().all(Result::is_ok));
        }
        let busy: Duration = latencies.iter().sum();
        let rate = (rounds * batch) as f64 / busy.as_secs_f64();
        let (p50, p99, _, max) = percentiles(&mut latencies);
        println!("engine batch {batch:>5}: {rate:>9.0} durable redemptions/s  batch p50 {p50:.2} ms  p99 {p99:.2} ms  max {max:.2} ms  ({rounds} batches)");
    }

    let mut group = criterion.benchmark_group("engine");
    group.sample_size(10);
    for batch in [1usize, 64, 1_024, 8_189] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("durable_batch_{batch}"), |bencher| {
            bencher.iter_batched(
                || {
                    (0..batch)
                        .map(|_| {
                            Envelope::new(
                                Timestamp(2),
                                Command::PostInvoice(stream.next_invoice().expect("invoice")),
                            )
                        })
                        .collect::<Vec<_>>()
                },
                |envelopes| {
                    let replies = ledger.submit(&envelopes).expect("commit");
                    assert!(replies.iter().all(Result::is_ok));
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();

    // The server's path: jobs through the engine's bounded queue and writer thread, with
    // two submitters so one batch is always queued behind the one being written.
    let engine = Engine::start(ledger, EngineConfig::default()).expect("engine");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for batch in [1_024usize, 8_189] {
        let rounds = if full {
            (1_600_000 / batch / 2).max(20)
        } else {
            2
        };
        let jobs: Vec<Vec<Vec<Command>>> = (0..2)
            .map(|_| {
                (0..rounds)
                    .map(|_| {
                        (0..batch)
                            .map(|_| Command::PostInvoice(stream.next_invoice().expect("invoice")))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let latencies = runtime.block_on(async {
            let mut submitters = tokio::task::JoinSet::new();
            for mine in jobs {
                let handle = engine.handle();
                submitters.spawn(async move {
                    let mut latencies = Vec::new();
                    for commands in mine {
                        let sent = Instant::now();
                        let replies = handle
                            .submit(Origin::system("bench"), commands)
                            .await
                            .expect("durable");
                        latencies.push(sent.elapsed());
                        assert!(replies.iter().all(Result::is_ok));
                    }
                    latencies
                });
            }
            let mut all = Vec::new();
            while let Some(done) = submitters.join_next().await {
                all.extend(done.expect("submitter"));
            }
            all
        });
        let elapsed = started.elapsed();
        let mut latencies = latencies;
        let rate = (latencies.len() * batch) as f64 / elapsed.as_secs_f64();
        let (p50, p99, _, max) = percentiles(&mut latencies);
        println!("engine via queue batch {batch:>5}: {rate:>9.0} durable redemptions/s  batch p50 {p50:.2} ms  p99 {p99:.2} ms  max {max:.2} ms  ({} batches, 2 submitters)", latencies.len());
    }
    runtime.block_on(engine.shutdown());
}

criterion_group!(benches, durable_batches);
criterion_main!(benches);
