//! Durable redemptions per second through the library: the ledger decides a batch,
//! writes it as one RocksDB WriteBatch with one fsync, and answers. Batches of 1, 64,
//! 1,024 and 8,189 invoices, fsync on.
//!
//! `cargo bench --bench engine`; under `cargo test` it runs each case once.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use voucher_ledger::domain::{Command, Envelope, Timestamp};
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::workload::{InvoiceStream, Population};

fn durable_batches(criterion: &mut Criterion) {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = LedgerOptions {
        sync: true,
        snapshot_interval: u64::MAX,
        ..LedgerOptions::default()
    };
    let (mut ledger, _) = Ledger::open(directory.path(), options).expect("open");
    let vouchers = if cfg!(debug_assertions) { 200 } else { 20_000 };
    let (population, commands) =
        Population::seed_commands(50, 5_000, vouchers).expect("population");
    let envelopes: Vec<Envelope> = commands
        .into_iter()
        .map(|command| Envelope {
            at: Timestamp(1),
            command,
        })
        .collect();
    for chunk in envelopes.chunks(8_000) {
        for reply in ledger.submit(chunk).expect("seed") {
            reply.expect("seed accepted");
        }
    }
    let mut stream = InvoiceStream::new(population, 11, 0).expect("stream");
    let mut group = criterion.benchmark_group("engine");
    group.sample_size(10);
    for batch in [1usize, 64, 1_024, 8_189] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("durable_batch_{batch}"), |bencher| {
            bencher.iter_batched(
                || {
                    (0..batch)
                        .map(|_| Envelope {
                            at: Timestamp(2),
                            command: Command::PostInvoice(stream.next_invoice().expect("invoice")),
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
}

criterion_group!(benches, durable_batches);
criterion_main!(benches);
