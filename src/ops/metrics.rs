//! Prometheus metrics at `/metrics` ([`router`]), with the `prometheus-client` crate.
//!
//! The writer reports each batch once ([`BatchObserver`]: a handful of counter and
//! histogram updates per batch, never per invoice); everything else is read when
//! Prometheus scrapes: the queue, subscribers, the log head, the newest snapshot and
//! checkpoint, whether the ledger is poisoned, and RocksDB's own figures that warn of
//! trouble (pending compaction, write stalls, memtables, live SST files).
//!
//! The exposition is Prometheus' classic text format (`text/plain; version=0.0.4`):
//! `prometheus-client` writes OpenMetrics, whose counter families are named without
//! `_total`, which the classic parsers (and `promtool check metrics`) reject, so
//! [`classic_text`] renames them and drops the OpenMetrics-only lines.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::ledger::engine::{BatchObserver, BatchReport, EngineHandle};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: &'static str,
}

/// What is read at scrape time, attached once the engine runs.
struct Sources {
    engine: EngineHandle,
    subscribers: Arc<AtomicUsize>,
}

/// The server's metrics: the registry and every family in it.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    sources: OnceLock<Sources>,
    commands: Family<CommandLabels, Counter>,
    rejections: Family<ReasonLabels, Counter>,
    batch_size: Histogram,
    batch_commit_seconds: Histogram,
    fsync_seconds: Histogram,
    batch_failures: Counter,
    queue_depth: Gauge,
    subscribers: Gauge,
    log_head_sequence: Gauge,
    snapshot_sequence: Gauge,
    snapshot_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    checkpoint_sequence: Gauge,
    checkpoints_signed: Gauge,
    checkpoint_failures: Gauge,
    batches_decided_during_write: Gauge,
    invoice_index_unflushed_entries: Gauge,
    invoice_index_flushes: Family<ReasonLabels, Gauge>,
    invoice_index_flush_failures: Gauge,
    poisoned: Gauge,
    pending_compaction_bytes: Family<FamilyLabels, Gauge>,
    memtable_bytes: Family<FamilyLabels, Gauge>,
    live_sst_bytes: Family<FamilyLabels, Gauge>,
    block_cache_bytes: Family<FamilyLabels, Gauge>,
    table_readers_bytes: Family<FamilyLabels, Gauge>,
    write_stopped: Gauge,
    delayed_write_rate: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("voucher_ledger");
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands decided, by command and outcome (accepted or rejected)",
            commands.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejections",
            "Rejected commands by reason (the stable rejection name)",
            rejections.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "batch_size_commands",
            "Commands per group commit",
            batch_size.clone(),
        );
        let batch_commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "batch_commit_seconds",
            "Time from taking a batch off the queue until it was written (its replies go out right after)",
            batch_commit_seconds.clone(),
        );
        let fsync_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "fsync_seconds",
            "Time of a batch's write with its fsync",
            fsync_seconds.clone(),
        );
        let batch_failures = Counter::default();
        registry.register(
            "batch_failures",
            "Group commits whose write failed (the ledger stops until restarted)",
            batch_failures.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let family_gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<FamilyLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let queue_depth = gauge(
            &mut registry,
            "queue_depth_commands",
            "Commands waiting for the writer",
        );
        let subscribers = gauge(&mut registry, "subscribers", "Open event subscriptions");
        let log_head_sequence = gauge(
            &mut registry,
            "log_head_sequence",
            "Sequence of the newest durable event",
        );
        let snapshot_sequence = gauge(
            &mut registry,
            "snapshot_sequence",
            "Sequence of the newest snapshot",
        );
        let snapshot_age_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "snapshot_age_seconds",
            "Seconds since the newest snapshot was written (since the server started, for one found at start)",
            snapshot_age_seconds.clone(),
        );
        let checkpoint_sequence = gauge(
            &mut registry,
            "checkpoint_sequence",
            "Sequence of the newest signed checkpoint (0: none)",
        );
        let checkpoints_signed = gauge(
            &mut registry,
            "checkpoints_signed",
            "Checkpoints signed and stored since the server started",
        );
        let checkpoint_failures = gauge(
            &mut registry,
            "checkpoint_failures",
            "Checkpoints that could not be signed or stored since the server started",
        );
        let batches_decided_during_write = gauge(
            &mut registry,
            "batches_decided_during_write",
            "Batches the writer decided while the batch before was being written, since the server started",
        );
        let invoice_index_unflushed_entries = gauge(
            &mut registry,
            "invoice_index_unflushed_entries",
            "Invoice index entries in RocksDB's memtables, not yet in a table file: what a crash would make the next start derive from the log, and what a read-only view (verify, an export, a backup) derives now",
        );
        let invoice_index_flushes = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "invoice_index_flushes",
            "Flushes of the invoice index the server asked for since it started, by reason (idle: no batch for index_flush_idle_ms; age: entries waited index_flush_age_seconds); RocksDB's own flushes of full memtables are not counted",
            invoice_index_flushes.clone(),
        );
        let invoice_index_flush_failures = gauge(
            &mut registry,
            "invoice_index_flush_failures",
            "Flushes of the invoice index the server asked for that failed, since it started",
        );
        let poisoned = gauge(
            &mut registry,
            "ledger_poisoned",
            "1 once a write failed and the ledger refuses writes until restarted",
        );
        let pending_compaction_bytes = family_gauge(
            &mut registry,
            "rocksdb_pending_compaction_bytes",
            "RocksDB estimate-pending-compaction-bytes per column family",
        );
        let memtable_bytes = family_gauge(
            &mut registry,
            "rocksdb_memtable_bytes",
            "RocksDB cur-size-all-mem-tables per column family",
        );
        let live_sst_bytes = family_gauge(
            &mut registry,
            "rocksdb_live_sst_bytes",
            "RocksDB live-sst-files-size per column family",
        );
        let block_cache_bytes = family_gauge(
            &mut registry,
            "rocksdb_block_cache_bytes",
            "RocksDB block-cache-usage: bytes the block cache a column family reads through holds",
        );
        let table_readers_bytes = family_gauge(
            &mut registry,
            "rocksdb_table_readers_bytes",
            "RocksDB estimate-table-readers-mem: bytes the open table files' readers hold outside the block cache",
        );
        let write_stopped = gauge(
            &mut registry,
            "rocksdb_write_stopped",
            "RocksDB is-write-stopped: 1 while writes are stopped",
        );
        let delayed_write_rate = gauge(
            &mut registry,
            "rocksdb_delayed_write_rate_bytes",
            "RocksDB actual-delayed-write-rate: bytes/s writes are slowed to (0: not slowed)",
        );
        Metrics {
            registry,
            started: Instant::now(),
            sources: OnceLock::new(),
            commands,
            rejections,
            batch_size,
            batch_commit_seconds,
            fsync_seconds,
            batch_failures,
            queue_depth,
            subscribers,
            log_head_sequence,
            snapshot_sequence,
            snapshot_age_seconds,
            checkpoint_sequence,
            checkpoints_signed,
            checkpoint_failures,
            batches_decided_during_write,
            invoice_index_unflushed_entries,
            invoice_index_flushes,
            invoice_index_flush_failures,
            poisoned,
            pending_compaction_bytes,
            memtable_bytes,
            live_sst_bytes,
            block_cache_bytes,
            table_readers_bytes,
            write_stopped,
            delayed_write_rate,
        }
    }

    /// Gives the scrape what it reads: the engine and the subscriber count.
    pub fn attach(&self, engine: EngineHandle, subscribers: Arc<AtomicUsize>) {
        let _ = self.sources.set(Sources {
            engine,
            subscribers,
        });
    }

    /// Reads the figures kept elsewhere into the gauges.
    fn refresh(&self) {
        let Some(sources) = self.sources.get() else {
            return;
        };
        let engine = &sources.engine;
        let status = engine.status();
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.queue_depth
            .set(as_gauge(engine.queued_commands() as u64));
        self.subscribers
            .set(as_gauge(sources.subscribers.load(Ordering::Relaxed) as u64));
        self.log_head_sequence
            .set(as_gauge(engine.committed_sequence()));
        self.snapshot_sequence
            .set(as_gauge(status.snapshot_sequence.load(Ordering::Relaxed)));
        let written = status.snapshot_written_ms.load(Ordering::Relaxed);
        let age = if written > 0 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as i64);
            (now - written).max(0) as f64 / 1_000.0
        } else {
            self.started.elapsed().as_secs_f64()
        };
        self.snapshot_age_seconds.set(age);
        self.checkpoint_sequence
            .set(as_gauge(status.checkpoint_sequence.load(Ordering::Relaxed)));
        self.checkpoints_signed
            .set(as_gauge(status.checkpoints_signed.load(Ordering::Relaxed)));
        self.checkpoint_failures
            .set(as_gauge(status.checkpoint_failures.load(Ordering::Relaxed)));
        self.batches_decided_during_write.set(as_gauge(
            status.batches_decided_during_write.load(Ordering::Relaxed),
        ));
        for (reason, flushes) in [
            ("idle", &status.index_flushes_idle),
            ("age", &status.index_flushes_age),
        ] {
            self.invoice_index_flushes
                .get_or_create(&ReasonLabels { reason })
                .set(as_gauge(flushes.load(Ordering::Relaxed)));
        }
        self.invoice_index_flush_failures.set(as_gauge(
            status.index_flush_failures.load(Ordering::Relaxed),
        ));
        if let Ok(unflushed) = engine.reader().invoice_index_unflushed_entries() {
            self.invoice_index_unflushed_entries
                .set(as_gauge(unflushed));
        }
        let poisoned =
            status.poisoned.load(Ordering::Relaxed) || engine.failure_watch().borrow().is_some();
        self.poisoned.set(i64::from(poisoned));
        for (property, family, value) in engine.reader().rocksdb_figures() {
            let value = as_gauge(value);
            let labels = FamilyLabels { family };
            match property {
                "rocksdb.estimate-pending-compaction-bytes" => {
                    self.pending_compaction_bytes
                        .get_or_create(&labels)
                        .set(value);
                }
                "rocksdb.cur-size-all-mem-tables" => {
                    self.memtable_bytes.get_or_create(&labels).set(value);
                }
                "rocksdb.live-sst-files-size" => {
                    self.live_sst_bytes.get_or_create(&labels).set(value);
                }
                "rocksdb.block-cache-usage" => {
                    self.block_cache_bytes.get_or_create(&labels).set(value);
                }
                "rocksdb.estimate-table-readers-mem" => {
                    self.table_readers_bytes.get_or_create(&labels).set(value);
                }
                "rocksdb.is-write-stopped" => {
                    self.write_stopped.set(value);
                }
                "rocksdb.actual-delayed-write-rate" => {
                    self.delayed_write_rate.set(value);
                }
                _ => {}
            }
        }
    }

    /// The exposition, in Prometheus' classic text format.
    pub fn render(&self) -> String {
        self.refresh();
        let mut text = String::with_capacity(16 * 1024);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        classic_text(&text)
    }
}

impl BatchObserver for Metrics {
    fn batch_committed(&self, report: &BatchReport) {
        let mut commands = 0;
        for &(command, accepted, rejected) in &report.commands {
            commands += accepted + rejected;
            if accepted > 0 {
                self.commands
                    .get_or_create(&CommandLabels {
                        command,
                        outcome: "accepted",
                    })
                    .inc_by(accepted);
            }
            if rejected > 0 {
                self.commands
                    .get_or_create(&CommandLabels {
                        command,
                        outcome: "rejected",
                    })
                    .inc_by(rejected);
            }
        }
        for &(reason, count) in &report.rejections {
            self.rejections
                .get_or_create(&ReasonLabels { reason })
                .inc_by(count);
        }
        self.batch_size.observe(commands as f64);
        self.batch_commit_seconds
            .observe(report.commit.as_secs_f64());
        if report.events > 0 {
            self.fsync_seconds.observe(report.write.as_secs_f64());
        }
    }

    fn batch_failed(&self, _commands: usize) {
        self.batch_failures.inc();
        self.poisoned.set(1);
    }
}

/// OpenMetrics text as Prometheus' classic text format: counter families take their
/// samples' `_total` name in `# HELP` and `# TYPE`; `# UNIT` and `# EOF` are dropped.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 16);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `GET /metrics`: the exposition, for Prometheus to scrape.
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}
