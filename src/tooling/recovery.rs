//! The recovery benchmark (`voucher-ledger bench-recovery`): how long a restart takes and
//! how much memory the server needs with a long log, the README's "restart with
//! 10,000,000 events" figures.
//!
//! It fills a data directory to `--events` events through the library (fsync on, the
//! benchmarks' population and invoice stream), then starts `voucher-ledger serve` on it
//! `--runs` times and measures the time from start until the health check answers
//! SERVING, and the server's resident memory while serving. With `--crash` the fill runs
//! in a child process that exits without closing the ledger, as a crash would leave it:
//! no closing snapshot, so the restart replays the tail of the log, and RocksDB's
//! memtables lost, so the restart replays its write-ahead log and derives the invoice
//! index entries the crash took (written without that log since data directory format 6).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::domain::{Command, Envelope, Timestamp};
use crate::ledger::{Ledger, LedgerOptions, SUBMIT_BATCH_LIMIT};
use crate::tooling::population::{InvoiceStream, Population};
use crate::tooling::{runtime, today, ToolError};

/// How long a restart may take before the benchmark gives up.
const SERVING_DEADLINE: Duration = Duration::from_secs(120);
/// The time the filled log's commands are stamped with, at the earliest: 2026-01-01.
const FILL_TIME_MS: i64 = 1_767_225_600_000;

/// What `voucher-ledger bench-recovery` runs (its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct RecoverySettings {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    #[arg(long, default_value = "config/server.toml")]
    pub config: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Leave the log as a crash would: no closing snapshot, so restart replays the tail.
    #[arg(long)]
    pub crash: bool,
    /// The `--crash` fill's child process: fill, then exit without closing anything.
    #[arg(long, hide = true)]
    pub fill_then_exit: bool,
}

/// `voucher-ledger bench-recovery`: fills, then restarts the server `runs` times.
pub fn run(settings: &RecoverySettings) -> Result<ExitCode, ToolError> {
    let filling = Instant::now();
    let progress = |sequence: u64| {
        if sequence % 1_000_000 < SUBMIT_BATCH_LIMIT as u64 {
            eprintln!(
                "  filled to {sequence} events ({:.0} s)",
                filling.elapsed().as_secs_f64()
            );
        }
    };
    let executable = std::env::current_exe().map_err(ToolError::io("finding this executable"))?;
    if settings.fill_then_exit {
        let (ledger, last) = fill(&settings.data_dir, settings.events, progress)?;
        println!("{last}");
        // As a crash: no destructor runs, so neither the ledger's closing snapshot nor
        // RocksDB's flush of its memtables happens; the lock goes with the process.
        std::mem::forget(ledger);
        std::process::exit(0);
    }
    let last = if settings.crash {
        let output = std::process::Command::new(&executable)
            .args(["bench-recovery", "--fill-then-exit", "--data-dir"])
            .arg(&settings.data_dir)
            .arg("--events")
            .arg(settings.events.to_string())
            .stderr(Stdio::inherit())
            .output()
            .map_err(ToolError::io(format!("starting {}", executable.display())))?;
        if !output.status.success() {
            return Err(ToolError::Server(format!(
                "the filling process exited with {}",
                output.status
            )));
        }
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u64>()
            .map_err(|error| {
                ToolError::Server(format!(
                    "the filling process printed no last sequence: {error}"
                ))
            })?
    } else {
        fill_to(&settings.data_dir, settings.events, false, progress)?
    };
    println!(
        "log holds {last} events (filled in {:.1} s{})",
        filling.elapsed().as_secs_f64(),
        if settings.crash {
            ", left as after a crash"
        } else {
            ""
        }
    );
    // After a crash only the first start replays the tail: the graceful stop that ends
    // each run writes a snapshot. Repeat --crash measurements on fresh copies.
    let runs = if settings.crash { 1 } else { settings.runs };
    for run in 1..=runs {
        let started = Instant::now();
        let mut child = std::process::Command::new(&executable)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&settings.data_dir)
            .arg("--config")
            .arg(&settings.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(ToolError::io(format!("starting {}", executable.display())))?;
        let measured = measure(&mut child, started);
        // Stop the server whatever the measurement gave, so no run leaves one behind.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child
            .wait()
            .map_err(ToolError::io("waiting for the server"))?;
        let (serving, rss, peak) = measured?;
        println!(
            "run {run}: serving {:.3} s after start; RSS {rss:.0} MiB (peak {peak:.0} MiB)",
            serving.as_secs_f64()
        );
        if !status.success() {
            return Err(ToolError::Server(format!("exited with {status}")));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the child's "listening" line, then for SERVING; returns the time since
/// `started` and the resident and peak memory half a second later, in MiB.
fn measure(child: &mut Child, started: Instant) -> Result<(Duration, f64, f64), ToolError> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ToolError::Server("gave no standard output".into()))?;
    let address = super::listening_address(std::io::BufReader::new(stdout).lines())
        .ok_or_else(|| ToolError::Server("exited before listening".into()))?;
    let serving = runtime()?.block_on(wait_until_serving(&address, started))?;
    std::thread::sleep(Duration::from_millis(500));
    let (rss, peak) = resident_mib(child.id()).unwrap_or((0.0, 0.0));
    Ok((serving, rss, peak))
}

async fn wait_until_serving(address: &str, started: Instant) -> Result<Duration, ToolError> {
    let endpoint = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .map_err(|_| ToolError::Server(format!("listens on {address:?}, not a host:port")))?;
    let deadline = Instant::now() + SERVING_DEADLINE;
    loop {
        if Instant::now() > deadline {
            return Err(ToolError::Server(format!(
                "was not serving after {} s",
                SERVING_DEADLINE.as_secs()
            )));
        }
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest {
                service: "voucher.v1.RedemptionService".into(),
            };
            if let Ok(reply) = health.check(request).await {
                if reply.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return Ok(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Fills `data_dir` up to `events` events through the library (fsync on): the
/// benchmarks' population (terms from a month ago, so the server's expiry sweep keeps
/// them), then fresh invoices. With `crash`, the ledger is dropped without its closing
/// snapshot, as a crash would leave it. Returns the last sequence number.
pub fn fill_to(
    data_dir: &Path,
    events: u64,
    crash: bool,
    progress: impl Fn(u64),
) -> Result<u64, ToolError> {
    let (ledger, last) = fill(data_dir, events, progress)?;
    if !crash {
        ledger.close()?;
    }
    Ok(last)
}

/// [`fill_to`]'s work: returns the ledger open, for the caller to close or not.
fn fill(data_dir: &Path, events: u64, progress: impl Fn(u64)) -> Result<(Ledger, u64), ToolError> {
    let (mut ledger, _) = Ledger::open(data_dir, LedgerOptions::default())?;
    let at = Timestamp(ledger.state().last_time().0.max(FILL_TIME_MS));
    let population = Population::bench_from(50, 5_000, 20_000, today().plus_days(-30))?;
    if ledger.state().last_sequence() == 0 {
        let envelopes: Vec<Envelope> = population
            .commands()
            .into_iter()
            .map(|command| Envelope::new(at, command))
            .collect();
        for chunk in envelopes.chunks(SUBMIT_BATCH_LIMIT) {
            for (envelope, reply) in chunk.iter().zip(ledger.submit(chunk)?) {
                reply.map_err(|rejection| ToolError::Rejected {
                    command: envelope.command.name(),
                    rejection,
                })?;
            }
        }
    }
    let mut stream = InvoiceStream::new(population, 5, ledger.state().invoices_redeemed())?;
    let mut envelopes = Vec::with_capacity(SUBMIT_BATCH_LIMIT);
    while ledger.state().last_sequence() < events {
        let wanted =
            (events - ledger.state().last_sequence()).min(SUBMIT_BATCH_LIMIT as u64) as usize;
        envelopes.clear();
        for _ in 0..wanted {
            envelopes.push(Envelope::new(
                at,
                Command::PostInvoice(stream.next_invoice()?),
            ));
        }
        ledger.submit(&envelopes)?;
        progress(ledger.state().last_sequence());
    }
    let last = ledger.state().last_sequence();
    Ok((ledger, last))
}

/// Resident and peak resident memory of a process, in MiB, from /proc.
pub fn resident_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
