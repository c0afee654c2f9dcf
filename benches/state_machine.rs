//! Redemptions applied per second by the pure state machine (no I/O): decide, apply and
//! emit the `InvoiceRedeemed` event for fresh invoices over a seeded population
//! (50 centers, 5,000 enterprises, 20,000 vouchers).
//!
//! `cargo bench --bench state_machine`; under `cargo test` it runs each case once, on 200
//! vouchers. `SM_VOUCHERS=500 cargo bench --bench state_machine` changes the number of
//! vouchers (500: 1.5–1.6× faster on 2026-11-30, as the vouchers and enterprises the
//! invoices touch then stay in the CPU's caches).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voucher_ledger::domain::{Command, Envelope, LedgerState, Timestamp};
use voucher_ledger::tooling::population::{InvoiceStream, Population};

fn seeded_state(vouchers: usize) -> (LedgerState, InvoiceStream) {
    let population = Population::bench(50, 5_000, vouchers).expect("population");
    let commands = population.commands();
    let mut state = LedgerState::with_bounded_invoice_cache();
    let mut sink = Vec::new();
    for command in commands {
        state
            .execute(&Envelope::new(Timestamp(1), command), &mut sink)
            .expect("seed accepted");
        sink.clear();
    }
    (state, InvoiceStream::new(population, 7, 0).expect("stream"))
}

fn redemptions(criterion: &mut Criterion) {
    // Tiny under `cargo test` (no --bench flag), the full population under `cargo bench`.
    let vouchers = if std::env::args().any(|argument| argument == "--bench") {
        std::env::var("SM_VOUCHERS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(20_000)
    } else {
        200
    };
    let (mut state, mut stream) = seeded_state(vouchers);
    let mut group = criterion.benchmark_group("state_machine");
    const BATCH: usize = 8_189;
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut sink = Vec::with_capacity(BATCH);
    group.bench_function("post_invoice_x8189", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut measured = std::time::Duration::ZERO;
            for _ in 0..iterations {
                // As in the durable ledger, invoices live in memory only as a bounded
                // cache between batches (the store's index holds them all), and the
                // ledger's prefetch (I/O, not timed here) tells the cache about each new
                // invoice before the batch is decided.
                if state.invoices_in_memory() > 65_536 {
                    state.invoice_cache_mut().clear(65_536);
                }
                let envelopes: Vec<Envelope> = (0..BATCH)
                    .map(|_| {
                        Envelope::new(
                            Timestamp(2),
                            Command::PostInvoice(stream.next_invoice().expect("invoice")),
                        )
                    })
                    .collect();
                for envelope in &envelopes {
                    if let Command::PostInvoice(post) = &envelope.command {
                        state.invoice_cache_mut().prefetched(
                            post.center,
                            post.invoice_number.clone(),
                            None,
                        );
                    }
                }
                sink.clear();
                let started = std::time::Instant::now();
                for (place, envelope) in envelopes.iter().enumerate() {
                    // As the ledger's batch loops do.
                    state.prefetch_ahead(&envelopes, place);
                    let reply = state.execute(envelope, &mut sink);
                    assert!(reply.is_ok(), "{reply:?}");
                }
                measured += started.elapsed();
            }
            measured
        });
    });
    group.finish();
}

criterion_group!(benches, redemptions);
criterion_main!(benches);
