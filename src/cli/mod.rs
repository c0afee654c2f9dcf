//! The `voucher-ledger` command line: its arguments and the dispatch to each command.
//! `main.rs` only calls [`main`]. The product's commands each live in a small file here;
//! the development tools' bodies live in [`crate::tooling`], and only their arguments are
//! named here.

mod backup;
mod checkpoints;
mod demo;
mod error;
mod export;
mod keygen;
pub mod policy;
mod reconcile;
mod report;
mod serve;
mod settlement;
mod summary;
mod token_hash;
mod verify;
mod verify_package;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

use crate::tooling::demo::DemoConfig;
use crate::tooling::{load, recovery, soak, torture};

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
        /// A programme preset (`hangzhou-2025`, ... under config/programmes/) or a
        /// programme file; its year is the demo's. Default: Hangzhou 2024 rules, 2026.
        #[arg(long)]
        programme: Option<String>,
        /// TESTS ONLY: do not fsync commits. A crash can lose acknowledged work.
        #[arg(long)]
        no_sync: bool,
    },
    /// Programme files: `policy check FILE` validates one and prints what it means.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Check the hash chain and every record, rebuild the projections and compare them
    /// with the stored snapshots and the invoice index. Exits 1 on any mismatch. With
    /// --package, check an audit package offline instead (see `export`).
    Verify {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// An audit package directory written by `export`.
        #[arg(long, conflicts_with = "data_dir")]
        package: Option<PathBuf>,
        /// The bureau's public key (PEM): also check every signed checkpoint, that the
        /// log has the signed chain head at each, and that it reaches the newest.
        #[arg(long)]
        trusted_key: Option<PathBuf>,
        /// Checkpoints kept outside the server (`voucher-ledger checkpoints --out`),
        /// checked with the stored ones.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Make an SM2 key pair for signing checkpoints (PEM files in DIR).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Export the signed checkpoints of DIR to FILE (read-only; beside a live server too).
    Checkpoints {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// A consistent backup of DIR (served or not) into the new directory B.
    Backup {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore backup B into the new data directory NEW, and verify it.
    Restore {
        backup: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Write a year's audit package (--data-dir DIR --year Y --out PKG), or one export
    /// as CSV or XLSX (statements, invoices, receivables).
    Export(export::ExportArgs),
    /// Print the programme-year summary of DIR.
    Summary {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2026)]
        year: u32,
    },
    /// Write the bureau's report of a programme year: one self-contained HTML page.
    Report {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2026)]
        year: u32,
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// Serve the gRPC API on an embedded RocksDB in DIR.
    Serve {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: String,
        /// The HTTP address: the live report page and Prometheus `/metrics`; an empty
        /// string turns it off. Default: the config's `server.http`, else 127.0.0.1:8080.
        #[arg(long)]
        http: Option<String>,
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
    Bench(load::BenchArgs),
    /// Fill DIR to --events events, then time `serve` from start to SERVING and read its RSS.
    BenchRecovery(recovery::RecoverySettings),
    /// The finance bureau's work on a running server: settlement runs, statements,
    /// payments, returns, repayments, receivables, pool adjustments, the year close.
    Settlement(settlement::SettlementArgs),
    /// Match a center's invoice list or the bank's payment file (CSV in UTF-8 or GBK,
    /// XLSX, XLS, camt.053) with the ledger on a running server, and print the report.
    Reconcile(reconcile::ReconcileArgs),
    /// Print the SM3 hash of a bearer token, for the `token_sm3` field of the config.
    TokenHash { token: String },
    /// Post invoices until killed, printing each acknowledged invoice (crash testing).
    #[command(hide = true)]
    Torture(torture::TortureSettings),
    /// Serve under gRPC load, SIGKILL, restart, check, repeat (scripts/soak.sh).
    #[command(hide = true)]
    Soak(soak::SoakSettings),
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Validate a programme file and print its rules in words (a dry run; nothing is published).
    Check { file: PathBuf },
}

/// Runs the command line. Exit codes: 0 done, 1 `verify` found a problem, 2 an error
/// (printed on stderr).
pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        CliCommand::Demo {
            data_dir,
            seed,
            centers,
            enterprises,
            contracts,
            invoices,
            programme,
            no_sync,
        } => programme
            .map(|name| policy::load(&policy::preset_path(&name)).map(|file| file.policy))
            .transpose()
            .and_then(|policy| {
                demo::run(
                    &data_dir,
                    DemoConfig {
                        seed,
                        year: policy.as_ref().map_or(2026, |policy| policy.year().get()),
                        centers,
                        enterprises,
                        contracts,
                        invoices,
                        policy,
                    },
                    !no_sync,
                )
            }),
        CliCommand::Policy {
            action: PolicyAction::Check { file },
        } => policy::run_check(&file),
        CliCommand::Verify {
            package: Some(package),
            ..
        } => verify_package::run(&package),
        CliCommand::Verify {
            data_dir,
            trusted_key,
            checkpoints,
            ..
        } => verify::run(&data_dir, trusted_key.as_deref(), checkpoints.as_deref()),
        CliCommand::Export(arguments) => export::run(arguments),
        CliCommand::Keygen { out } => keygen::run(&out),
        CliCommand::Checkpoints { data_dir, out } => checkpoints::run(&data_dir, &out),
        CliCommand::Backup { data_dir, out } => backup::run_backup(&data_dir, &out),
        CliCommand::Restore { backup, data_dir } => backup::run_restore(&backup, &data_dir),
        CliCommand::Summary { data_dir, year } => summary::run(&data_dir, year),
        CliCommand::Report {
            data_dir,
            year,
            out,
        } => report::run(&data_dir, year, &out),
        CliCommand::Serve {
            data_dir,
            listen,
            http,
            config,
            log_format,
            no_sync,
        } => serve::run(
            data_dir,
            &listen,
            http.as_deref(),
            &config,
            &log_format,
            !no_sync,
        ),
        CliCommand::TokenHash { token } => Ok(token_hash::run(&token)),
        CliCommand::Settlement(arguments) => settlement::run(arguments),
        CliCommand::Reconcile(arguments) => reconcile::run(arguments),
        CliCommand::Bench(settings) => load::run(settings).map_err(CliError::from),
        CliCommand::BenchRecovery(settings) => recovery::run(&settings).map_err(CliError::from),
        CliCommand::Torture(settings) => torture::run(&settings).map_err(CliError::from),
        CliCommand::Soak(settings) => soak::run(&settings).map_err(CliError::from),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {}", with_causes(&error));
        ExitCode::from(2)
    })
}

/// The error's message followed by those of its causes that it does not already quote
/// (a transport error's own message is only "transport error"; its cause says why).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = next.source();
    }
    message
}
