//! The kill-and-restart soak (`voucher-ledger soak`, hidden; `scripts/soak.sh` runs it):
//! a real `voucher-ledger serve` child under gRPC load (concurrent `PostInvoices` batches
//! and unary `PostInvoice` calls), killed with SIGKILL at a random moment, restarted, over
//! and over. After each kill, before the restart, it reads the data directory and checks:
//!
//! - lost: an invoice the server acknowledged as accepted is not in the log;
//! - doubled: an invoice is in the log more than once, or one the server rejected is in it;
//! - partial: a `PostInvoices` batch (acknowledged or cut off by the kill) whose accepted
//!   items are in the log in part: every batch must be all or nothing;
//! - verify: the auditor's full check of the directory.
//!
//! It prints one line per cycle, with the server's resident memory just before the kill.
//! `tests/crash.rs` runs ten short cycles of it.

use std::io::BufRead as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::{Rng as _, SeedableRng as _};
use tonic::transport::Channel;

use crate::api::proto;
use crate::api::proto::redemption_service_client::RedemptionServiceClient;
use crate::audit::verify;
use crate::domain::Event;
use crate::storage::EventStore;
use crate::tooling::load::{authed, bearer, seed_over_grpc, to_proto_invoice};
use crate::tooling::population::{InvoiceStream, Population};
use crate::tooling::recovery::resident_mib;
use crate::tooling::{runtime, today, ToolError};

/// Invoice numbers of cycle `c` are `B` + 12 digits from `c × CYCLE_NUMBERS`.
const CYCLE_NUMBERS: u64 = 1_000_000_000;
/// How long a server may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long one call may take before the client gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Vouchers the load spreads over. Each is worth 300,000,000.00 and an invoice's subsidy
/// averages ~1,500.00, so 512 of them last ~100 M invoices: a 30-minute soak on this
/// machine posts ~40 M. (With 8 they ran out at 1.6 M and every later invoice was
/// rejected, which measured nothing.)
const SOAK_VOUCHERS: usize = 512;

/// What `voucher-ledger soak` runs (its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct SoakSettings {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The server's config (its tokens must include `--token` as a bureau).
    #[arg(long, default_value = "config/server.toml")]
    pub config: PathBuf,
    #[arg(long, default_value = "dev-bureau-token")]
    pub token: String,
    /// Stop starting new cycles after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Stop after this many kill/restart cycles (0: only the time limit).
    #[arg(long, default_value_t = 0)]
    pub cycles: u32,
    /// The kill comes between these many milliseconds after the load starts.
    #[arg(long, default_value_t = 500)]
    pub kill_min_ms: u64,
    #[arg(long, default_value_t = 5_000)]
    pub kill_max_ms: u64,
    /// Clients posting `PostInvoices` batches, closed loop.
    #[arg(long, default_value_t = 2)]
    pub batch_clients: usize,
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Clients posting unary `PostInvoice` calls, closed loop.
    #[arg(long, default_value_t = 4)]
    pub unary_clients: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `voucher-ledger` executable to serve with (default: this one).
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
}

/// What one cycle found.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    pub cycle: u32,
    /// Invoices acknowledged by the server in this cycle.
    pub acknowledged: u64,
    /// Invoices in the log that were never acknowledged (the kill cut their reply off).
    pub unacknowledged_present: u64,
    pub lost: u64,
    pub doubled: u64,
    /// Batches found in the log in part.
    pub partial_batches: u64,
    /// Batches sent (acknowledged or not).
    pub batches: u64,
    /// Items the server rejected (fresh invoices on large vouchers: expected 0). A
    /// rejected item must be absent from the log; one found there counts as doubled.
    pub rejected: u64,
    /// The auditor's check: None when clean, else its first problem.
    pub verify_problem: Option<String>,
    pub log_head: u64,
    pub rss_mib: f64,
    pub seconds: f64,
}

impl CycleReport {
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.partial_batches == 0
            && self.rejected == 0
            && self.verify_problem.is_none()
    }
}

impl std::fmt::Display for CycleReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "cycle {:>4} at {:>7.1} s: acked {:>7} (+{} unacked in log), batches {:>5}, lost {}, doubled {}, partial {}, rejected {}, verify {}, log head {}, RSS {:.0} MiB",
            self.cycle,
            self.seconds,
            self.acknowledged,
            self.unacknowledged_present,
            self.batches,
            self.lost,
            self.doubled,
            self.partial_batches,
            self.rejected,
            self.verify_problem.as_deref().unwrap_or("OK"),
            self.log_head,
            self.rss_mib
        )
    }
}

/// `voucher-ledger soak`: runs and prints; exits 1 if any cycle was not clean.
pub fn run(settings: &SoakSettings) -> Result<ExitCode, ToolError> {
    let reports = soak(settings, |report| println!("{report}"))?;
    let clean = reports.iter().all(CycleReport::is_clean);
    let sum = |field: fn(&CycleReport) -> u64| reports.iter().map(field).sum::<u64>();
    println!(
        "{} cycles: acked {}, lost {}, doubled {}, partial batches {}, verify failures {}: {}",
        reports.len(),
        sum(|report| report.acknowledged),
        sum(|report| report.lost),
        sum(|report| report.doubled),
        sum(|report| report.partial_batches),
        reports
            .iter()
            .filter(|report| report.verify_problem.is_some())
            .count(),
        if clean { "OK" } else { "FAILED" }
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs cycles until the time or cycle limit, calling `each` after every one.
pub fn soak(
    settings: &SoakSettings,
    mut each: impl FnMut(&CycleReport),
) -> Result<Vec<CycleReport>, ToolError> {
    let executable = match &settings.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(ToolError::io("finding this executable"))?,
    };
    let population = Population::bench_from(2, 2, SOAK_VOUCHERS, today().plus_days(-30))?;
    let runtime = runtime()?;
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut checked_to = 0u64;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(settings.seed);
    for cycle in 1u32.. {
        if (settings.cycles > 0 && cycle > settings.cycles)
            || (cycle > 1 && started.elapsed() >= Duration::from_secs(settings.seconds))
        {
            break;
        }
        let kill_after = Duration::from_millis(
            rng.random_range(settings.kill_min_ms..=settings.kill_max_ms.max(settings.kill_min_ms)),
        );
        let mut child = start_server(&executable, settings)?;
        let outcome = runtime.block_on(load_until_killed(
            &mut child,
            settings,
            &population,
            cycle,
            kill_after,
        ));
        // Whatever happened, the child is killed and reaped before the directory is read.
        let _ = child.kill();
        let _ = child.wait();
        let sent = outcome?;
        let mut report = check(&settings.data_dir, cycle, &sent, &mut checked_to)?;
        report.seconds = started.elapsed().as_secs_f64();
        each(&report);
        reports.push(report);
    }
    Ok(reports)
}

fn start_server(executable: &Path, settings: &SoakSettings) -> Result<ServerChild, ToolError> {
    let mut child = std::process::Command::new(executable)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&settings.data_dir)
        .arg("--config")
        .arg(&settings.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(ToolError::io(format!("starting {}", executable.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ToolError::Server("gave no standard output".into()))?;
    // The address comes on stdout; read it on a thread so a silent server cannot hang us.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(address) = super::listening_address(&mut lines) {
            let _ = sender.send(address);
        }
        // Read on to the end, so the child never blocks on a full pipe.
        for _ in lines {}
    });
    match receiver.recv_timeout(START_DEADLINE) {
        Ok(address) => Ok(ServerChild { child, address }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(ToolError::Server(format!(
                "did not print its address within {} s",
                START_DEADLINE.as_secs()
            )))
        }
    }
}

struct ServerChild {
    child: Child,
    address: String,
}

impl ServerChild {
    fn kill(&mut self) -> std::io::Result<()> {
        // Child::kill is SIGKILL on Unix: no destructor, no flush, no snapshot.
        self.child.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

/// What the clients sent in one cycle.
#[derive(Default)]
struct Sent {
    /// One per call; unary calls are batches of 1.
    batches: Vec<SentBatch>,
    rss_mib: f64,
}

/// One call: invoices `first .. first + count` of the cycle.
struct SentBatch {
    first: u64,
    count: u64,
    /// The server answered (the kill did not cut the reply off).
    acknowledged: bool,
    /// Positions in the batch the server answered with a rejection.
    rejected: Vec<u32>,
}

async fn load_until_killed(
    child: &mut ServerChild,
    settings: &SoakSettings,
    population: &Population,
    cycle: u32,
    kill_after: Duration,
) -> Result<Sent, ToolError> {
    let target = format!("http://{}", child.address);
    let endpoint = Channel::from_shared(target.clone())
        .map_err(|_| ToolError::Server(format!("listens on {target:?}, not a host:port")))?
        .timeout(CALL_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| ToolError::Connect { target, source })?;
    let bearer = bearer(&settings.token)?;
    seed_over_grpc(&channel, &bearer, population).await?;
    let start = u64::from(cycle) * CYCLE_NUMBERS;
    let stream = Arc::new(Mutex::new(InvoiceStream::new(
        population.clone(),
        settings.seed.wrapping_add(u64::from(cycle)),
        start,
    )?));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    let clients_of = [
        (settings.batch_clients, settings.batch.max(1)),
        (settings.unary_clients, 1),
    ];
    for (count, size) in clients_of {
        for _ in 0..count {
            let (stream, sent, stop) = (Arc::clone(&stream), Arc::clone(&sent), Arc::clone(&stop));
            let mut client =
                RedemptionServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
            let bearer = bearer.clone();
            clients.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let mut invoices = Vec::with_capacity(size);
                    let mut first = None;
                    {
                        let mut stream = stream.lock();
                        for _ in 0..size {
                            let Ok(invoice) = stream.next_invoice() else {
                                return;
                            };
                            first.get_or_insert(invoice_index(
                                invoice.invoice_number.as_str(),
                                start,
                            ));
                            invoices.push(to_proto_invoice(&invoice));
                        }
                    }
                    let Some(Some(first)) = first else {
                        return;
                    };
                    let slot = {
                        let mut sent = sent.lock();
                        sent.batches.push(SentBatch {
                            first,
                            count: size as u64,
                            acknowledged: false,
                            rejected: Vec::new(),
                        });
                        sent.batches.len() - 1
                    };
                    let (acknowledged, rejected) = if size == 1 {
                        let invoice = invoices.pop();
                        match invoice {
                            Some(invoice) => match client
                                .post_invoice(authed(&bearer, invoice))
                                .await
                            {
                                Ok(_) => (true, Vec::new()),
                                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                                    (true, vec![0])
                                }
                                Err(_) => return,
                            },
                            None => return,
                        }
                    } else {
                        let request = proto::PostInvoicesRequest { invoices };
                        match client.post_invoices(authed(&bearer, request)).await {
                            Ok(response) => {
                                let rejected = response
                                    .into_inner()
                                    .results
                                    .iter()
                                    .enumerate()
                                    .filter(|(_, result)| {
                                        !matches!(
                                            result.result,
                                            Some(proto::invoice_result::Result::Accepted(_))
                                        )
                                    })
                                    .map(|(position, _)| position as u32)
                                    .collect();
                                (true, rejected)
                            }
                            Err(_) => return,
                        }
                    };
                    let mut sent = sent.lock();
                    sent.batches[slot].acknowledged = acknowledged;
                    sent.batches[slot].rejected = rejected;
                }
            });
        }
    }
    tokio::time::sleep(kill_after).await;
    let rss = resident_mib(child.child.id()).map_or(0.0, |(rss, _)| rss);
    let _ = child.kill();
    stop.store(true, Ordering::Relaxed);
    let drained = tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(5), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        clients.abort_all();
    }
    let mut sent = std::mem::take(&mut *sent.lock());
    sent.rss_mib = rss;
    Ok(sent)
}

/// The index of invoice `B<12 digits>` within the cycle that starts at `start`.
fn invoice_index(number: &str, start: u64) -> Option<u64> {
    let value: u64 = number.strip_prefix('B')?.parse().ok()?;
    value
        .checked_sub(start)
        .filter(|index| *index < CYCLE_NUMBERS)
}

/// Reads the log written since `checked_to` and checks the cycle's invoices and batches,
/// then runs the auditor's full check.
fn check(
    data_dir: &Path,
    cycle: u32,
    sent: &Sent,
    checked_to: &mut u64,
) -> Result<CycleReport, ToolError> {
    let start = u64::from(cycle) * CYCLE_NUMBERS;
    let issued = sent
        .batches
        .iter()
        .map(|batch| batch.first + batch.count)
        .max()
        .unwrap_or(0);
    let mut counts = vec![0u8; issued as usize];
    let mut report = CycleReport {
        cycle,
        rejected: sent
            .batches
            .iter()
            .map(|batch| batch.rejected.len() as u64)
            .sum(),
        rss_mib: sent.rss_mib,
        batches: sent.batches.len() as u64,
        ..CycleReport::default()
    };
    let store_error = |error: crate::storage::StoreError| {
        ToolError::Server(format!("left a data directory that does not open: {error}"))
    };
    let store = EventStore::open_read_only(data_dir).map_err(store_error)?;
    let previous = store
        .chain_hash_after(*checked_to)
        .map_err(|error| ToolError::Server(format!("left a log that does not read: {error}")))?;
    let mut foreign = 0u64;
    let position = store.read_log(*checked_to + 1, previous, |logged| {
        if let Event::InvoiceRedeemed(redeemed) = &logged.event {
            match invoice_index(redeemed.invoice_number.as_str(), start) {
                Some(index) if index < issued => {
                    let count = &mut counts[index as usize];
                    *count = count.saturating_add(1);
                }
                _ => foreign += 1,
            }
        }
        ControlFlow::Continue(())
    });
    match position {
        Ok(position) => {
            *checked_to = position.last_sequence;
            report.log_head = position.last_sequence;
        }
        Err(error) => report.verify_problem = Some(format!("reading the log: {error}")),
    }
    // An invoice of another cycle written now would be a resurrected or doubled one.
    report.doubled += foreign;
    drop(store);
    for batch in &sent.batches {
        let members = &counts[batch.first as usize..(batch.first + batch.count) as usize];
        report.doubled += members.iter().filter(|count| **count > 1).count() as u64;
        // A rejected item must not be in the log; set apart, the rest of the batch must
        // be all there (acknowledged) or all there or all absent (cut off by the kill).
        // `rejected` is in ascending order: the positions were enumerated in order.
        let is_rejected =
            |position: usize| batch.rejected.binary_search(&(position as u32)).is_ok();
        let mut present = 0u64;
        for (position, count) in members.iter().enumerate() {
            match (is_rejected(position), *count > 0) {
                (true, true) => report.doubled += 1,
                (false, true) => present += 1,
                (_, false) => {}
            }
        }
        let expected = batch.count - batch.rejected.len() as u64;
        if batch.acknowledged {
            report.acknowledged += batch.count;
            report.lost += expected - present;
        } else {
            report.unacknowledged_present += present;
        }
        if present != 0 && present != expected {
            report.partial_batches += 1;
        }
    }
    match verify(data_dir) {
        Ok(verified) if verified.is_clean() => {}
        Ok(verified) => {
            report.verify_problem.get_or_insert(
                verified
                    .problems
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "not clean".into()),
            );
        }
        Err(error) => {
            report.verify_problem.get_or_insert(error.to_string());
        }
    }
    Ok(report)
}
