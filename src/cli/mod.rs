//! The `voucher-ledger` command line: its arguments and the dispatch to each command.
//! `main.rs` only calls [`main`]. The product's commands each live in a small file here;
//! the development tools' bodies live in [`crate::tooling`], and only their arguments are
//! named here.

mod demo;
mod error;
mod report;
mod serve;
mod settlement;
mod summary;
mod token_hash;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

use crate::tooling::demo::DemoConfig;
use crate::tooling::{load, recovery, torture};

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
        /// Address of the live report page (HTTP); an empty string turns it off.
        /// Default: the config's `server.http`, else 127.0.0.1:8080.
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
    Bench(load::LoadSettings),
    /// Fill DIR to --events events, then time `serve` from start to SERVING and read its RSS.
    BenchRecovery(recovery::RecoverySettings),
    /// The finance bureau's work on a running server: settlement runs, statements,
    /// payments, returns, repayments, receivables, pool adjustments, the year close.
    Settlement(settlement::SettlementArgs),
    /// Print the SM3 hash of a bearer token, for the `token_sm3` field of the config.
    TokenHash { token: String },
    /// Post invoices until killed, printing each acknowledged invoice (crash testing).
    #[command(hide = true)]
    Torture(torture::TortureSettings),
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
            no_sync,
        } => demo::run(
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
        CliCommand::Verify { data_dir } => verify::run(&data_dir),
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
        CliCommand::Bench(settings) => load::run(settings).map_err(CliError::from),
        CliCommand::BenchRecovery(settings) => recovery::run(&settings).map_err(CliError::from),
        CliCommand::Torture(settings) => torture::run(&settings).map_err(CliError::from),
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
