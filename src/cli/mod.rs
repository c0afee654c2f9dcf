//! The `voucher-ledger` command line: `demo`, `verify`, `summary` and the hidden
//! `torture` writer used by the crash test. `main.rs` only calls [`main`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::audit::verify;
use crate::domain::{
    ApproveVoucher, Command, ContractNumber, Date, DeliveryProof, Envelope, FacilityTier,
    InvoiceNumber, LegalName, ListingBasis, Money, PostInvoice, ProgrammePolicy, ProgrammeYear,
    Timestamp, VoucherId,
};
use crate::ledger::{Ledger, LedgerOptions};
use crate::report::summary::summarize;
use crate::tooling::demo::{run_demo, tally_lines, DemoConfig};

#[derive(Parser)]
#[command(
    name = "voucher-ledger",
    version,
    about = "Ledger and settlement engine for computing-power vouchers (算力券)"
)]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Subcommand)]
enum CliCommand {
    /// Seed a realistic programme year into DIR and print its summary.
    Demo {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        #[arg(long, default_value_t = 50)]
        centers: usize,
        #[arg(long, default_value_t = 5_000)]
        enterprises: usize,
        #[arg(long, default_value_t = 20_000)]
        contracts: usize,
        #[arg(long, default_value_t = 1_000_000)]
        invoices: usize,
        /// TESTS ONLY: do not fsync commits. A crash can lose acknowledged work.
        #[arg(long)]
        no_sync: bool,
    },
    /// Check the hash chain and every record, rebuild the projections and compare them
    /// with the stored snapshots and the invoice index. Exits 1 on any mismatch.
    Verify {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Print the programme-year summary of DIR.
    Summary {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2026)]
        year: u32,
    },
    /// Serve the gRPC API on an embedded RocksDB in DIR.
    Serve {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: String,
        #[arg(long, default_value = "config/server.toml")]
        config: PathBuf,
        /// text or json (one JSON object per line, for log shippers)
        #[arg(long, default_value = "text")]
        log_format: String,
        /// TESTS ONLY: do not fsync commits. Acknowledged work can be LOST on a crash.
        #[arg(long)]
        no_sync: bool,
    },
    /// Load generator over gRPC: PostInvoices batches, then unary PostInvoice at a fixed rate.
    Bench(crate::tooling::load::LoadSettings),
    /// Fill DIR to --events events, then time `serve` from start to SERVING and read its RSS.
    BenchRecovery {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value = "config/server.toml")]
        config: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Leave the log as a crash would: no closing snapshot, so restart replays the tail.
        #[arg(long)]
        crash: bool,
    },
    /// Print the SM3 hash of a bearer token, for the `token_sm3` field of the config.
    TokenHash { token: String },
    /// Post invoices until killed, printing each acknowledged invoice (crash testing).
    #[command(hide = true)]
    Torture {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = u64::MAX)]
        max_invoices: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        CliCommand::Demo {
            data_dir,
            seed,
            centers,
            enterprises,
            contracts,
            invoices,
            no_sync,
        } => demo_command(
            &data_dir,
            DemoConfig {
                seed,
                year: 2026,
                centers,
                enterprises,
                contracts,
                invoices,
            },
            !no_sync,
        ),
        CliCommand::Verify { data_dir } => verify_command(&data_dir),
        CliCommand::Serve {
            data_dir,
            listen,
            config,
            log_format,
            no_sync,
        } => serve_command(data_dir, &listen, &config, &log_format, !no_sync),
        CliCommand::Bench(settings) => bench_command(settings),
        CliCommand::BenchRecovery {
            data_dir,
            events,
            config,
            runs,
            crash,
        } => bench_recovery_command(&data_dir, events, &config, runs, crash),
        CliCommand::TokenHash { token } => {
            println!("{}", crate::api::auth::token_hash(&token));
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Summary { data_dir, year } => summary_command(&data_dir, year),
        CliCommand::Torture {
            data_dir,
            batch,
            max_invoices,
        } => torture_command(&data_dir, batch, max_invoices),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn demo_command(data_dir: &Path, config: DemoConfig, sync: bool) -> Result<ExitCode, String> {
    if !sync {
        eprintln!("WARNING: --no-sync: commits are not fsynced; for tests only.");
    }
    let options = LedgerOptions {
        sync,
        ..LedgerOptions::default()
    };
    let (mut ledger, report) = Ledger::open(data_dir, options).map_err(|e| e.to_string())?;
    if report.last_sequence > 0 {
        return Err(format!(
            "{} already holds {} events; the demo seeds an empty data directory",
            data_dir.display(),
            report.last_sequence
        ));
    }
    let bar = indicatif::ProgressBar::new(config.invoices as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} invoices {pos}/{len} [{bar:40}] {per_sec} eta {eta}",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let tally = run_demo(&mut ledger, &config, |done, _| bar.set_position(done))
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let year = ProgrammeYear::new(config.year).map_err(|e| e.to_string())?;
    println!(
        "{}",
        summarize(&ledger.state(), year, Some(&tally_lines(&tally)))
    );
    println!(
        "Seeded {} commands in {:.1} s ({:.0} commands/s, fsync {}). Chain head {}.",
        tally.commands,
        elapsed.as_secs_f64(),
        tally.commands as f64 / elapsed.as_secs_f64(),
        if sync { "on" } else { "OFF" },
        ledger.chain_head()
    );
    ledger.close().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().try_init().map_err(|e| e.to_string()),
        "text" => builder.try_init().map_err(|e| e.to_string()),
        other => Err(format!("--log-format must be text or json, got {other:?}")),
    }
}

fn serve_command(
    data_dir: PathBuf,
    listen: &str,
    config_path: &Path,
    log_format: &str,
    sync: bool,
) -> Result<ExitCode, String> {
    init_logging(log_format)?;
    let config = crate::api::server::ServerConfig::load(config_path)?;
    tracing::info!(config = %config_path.display(), tokens = config.tokens.len(), "configuration loaded");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        // A machine-readable line for scripts and tests that listen on port 0.
        if let Ok(address) = listener.local_addr() {
            println!("voucher-ledger listening on {address}");
            let _ = std::io::stdout().flush();
        }
        let settings = crate::api::server::ServeSettings {
            data_dir,
            config,
            sync,
        };
        crate::api::server::run(listener, settings, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn bench_command(settings: crate::tooling::load::LoadSettings) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(crate::tooling::load::run_load(settings))?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn bench_recovery_command(
    data_dir: &Path,
    events: u64,
    config: &Path,
    runs: u32,
    crash: bool,
) -> Result<ExitCode, String> {
    let filling = Instant::now();
    let last = crate::tooling::load::fill_to(data_dir, events, crash, |sequence| {
        if sequence % 1_000_000 < crate::ledger::SUBMIT_BATCH_LIMIT as u64 {
            eprintln!(
                "  filled to {sequence} events ({:.0} s)",
                filling.elapsed().as_secs_f64()
            );
        }
    })?;
    println!(
        "log holds {last} events (filled in {:.1} s{})",
        filling.elapsed().as_secs_f64(),
        if crash { ", left as after a crash" } else { "" }
    );
    let executable = std::env::current_exe().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // After a crash only the first start replays the tail: the graceful stop that ends
    // each run writes a snapshot. Repeat --crash measurements on fresh copies.
    let runs = if crash { 1 } else { runs };
    for run in 1..=runs {
        let started = Instant::now();
        let mut child = std::process::Command::new(&executable)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("voucher-ledger listening on ") {
                        break address.to_string();
                    }
                }
                _ => return Err("the server exited before listening".into()),
            }
        };
        let serving = runtime.block_on(async {
            let deadline = Instant::now() + std::time::Duration::from_secs(120);
            loop {
                if Instant::now() > deadline {
                    return Err("not serving after 120 s".to_string());
                }
                if let Ok(channel) =
                    tonic::transport::Channel::from_shared(format!("http://{address}"))
                        .map_err(|e| e.to_string())?
                        .connect()
                        .await
                {
                    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                    let request = tonic_health::pb::HealthCheckRequest {
                        service: "voucher.v1.RedemptionService".into(),
                    };
                    if let Ok(reply) = health.check(request).await {
                        if reply.into_inner().status
                            == tonic_health::pb::health_check_response::ServingStatus::Serving
                                as i32
                        {
                            return Ok(started.elapsed());
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (rss, peak) = crate::tooling::load::resident_mib(child.id()).unwrap_or((0.0, 0.0));
        println!(
            "run {run}: serving {:.3} s after start; RSS {rss:.0} MiB (peak {peak:.0} MiB)",
            serving.as_secs_f64()
        );
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the server exited with {status}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn verify_command(data_dir: &Path) -> Result<ExitCode, String> {
    let started = Instant::now();
    let report = verify(data_dir).map_err(|e| e.to_string())?;
    println!("data directory     {}", data_dir.display());
    println!(
        "records checked    {} (frame, format version, payload, SM3 chain, density)",
        report.records_checked
    );
    if let Some(head) = report.chain_head {
        println!("chain head         {head}");
    }
    println!("snapshots matched  {:?}", report.snapshots_checked);
    println!(
        "invoice index      {} entries compared with the log",
        report.invoice_index_entries
    );
    println!(
        "invariants         {}",
        if report.invariants_checked {
            "checked"
        } else {
            "not reached"
        }
    );
    println!(
        "elapsed            {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if report.is_clean() {
        println!("OK");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(sequence) = report.first_bad_sequence {
        println!("FIRST BAD SEQUENCE {sequence}");
    }
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    Ok(ExitCode::from(1))
}

fn summary_command(data_dir: &Path, year: u32) -> Result<ExitCode, String> {
    let (ledger, _) =
        Ledger::open(data_dir, LedgerOptions::default()).map_err(|e| e.to_string())?;
    let year = ProgrammeYear::new(year).map_err(|e| e.to_string())?;
    println!("{}", summarize(&ledger.state(), year, None));
    Ok(ExitCode::SUCCESS)
}

/// Seeds a tiny programme if the directory is empty, then posts invoices `T{n}` forever,
/// printing `acked T{n}` once each batch is durable. The crash test kills it with SIGKILL.
fn torture_command(data_dir: &Path, batch: usize, max_invoices: u64) -> Result<ExitCode, String> {
    let (mut ledger, _) =
        Ledger::open(data_dir, LedgerOptions::default()).map_err(|e| e.to_string())?;
    let year = ProgrammeYear::new(2026).map_err(|e| e.to_string())?;
    let center = crate::tooling::demo::center_uscc(1).map_err(|e| e.to_string())?;
    let enterprise = crate::tooling::demo::enterprise_uscc(1).map_err(|e| e.to_string())?;
    let voucher = VoucherId::from_u128(42);
    let day = Date::from_ymd(2026, 3, 1).map_err(|e| e.to_string())?;
    let mut clock = ledger.state().last_time().0.max(1_772_323_200_000);
    let mut envelope = |command| {
        clock += 1;
        Envelope::new(Timestamp(clock), command)
    };
    if ledger.state().last_sequence() == 0 {
        let seed = vec![
            envelope(Command::PublishPolicy {
                policy: ProgrammePolicy::hangzhou_defaults(year),
            }),
            envelope(Command::RegisterCenter {
                center,
                name: LegalName::parse("Torture Center").map_err(|e| e.to_string())?,
                tier: FacilityTier::Domestic,
                listing_basis: ListingBasis::PlanningLayout,
            }),
            envelope(Command::RegisterEnterprise {
                enterprise,
                name: LegalName::parse("Torture Enterprise").map_err(|e| e.to_string())?,
            }),
            envelope(Command::ApproveVoucher(ApproveVoucher {
                voucher,
                year,
                enterprise,
                center,
                contract_number: ContractNumber::parse("T-1").map_err(|e| e.to_string())?,
                contract_fee: Money::from_fen(2_000_000_000).map_err(|e| e.to_string())?,
                term_start: day,
                term_end: day.plus_days(300),
                requested: Money::from_fen(600_000_000).map_err(|e| e.to_string())?,
            })),
        ];
        for reply in ledger.submit(&seed).map_err(|e| e.to_string())? {
            reply.map_err(|e| e.to_string())?;
        }
    }
    let mut next = ledger.state().invoices_redeemed();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let amount = Money::from_fen(1_000).map_err(|e| e.to_string())?;
    while next < max_invoices {
        let mut envelopes = Vec::with_capacity(batch);
        for offset in 0..batch as u64 {
            let number = next + offset;
            envelopes.push(envelope(Command::PostInvoice(PostInvoice {
                center,
                voucher,
                invoice_number: InvoiceNumber::parse(&format!("T{number}"))
                    .map_err(|e| e.to_string())?,
                amount,
                issue_date: day,
                delivery_proof: DeliveryProof::parse("torture").map_err(|e| e.to_string())?,
            })));
        }
        let replies = ledger.submit(&envelopes).map_err(|e| e.to_string())?;
        for (offset, reply) in replies.iter().enumerate() {
            if reply.is_ok() {
                writeln!(out, "acked T{}", next + offset as u64).map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
        next += batch as u64;
    }
    ledger.close().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
