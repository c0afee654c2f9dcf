//! `voucher-ledger export`: the audit package of a year
//! (`export --data-dir DIR --year Y --out PKG`, see [`crate::export::package`]), or one
//! export as a file (`export statements|invoices|receivables ... --format csv|xlsx --out
//! FILE`), the same bytes the gRPC `ExportService` streams. Both open the data directory
//! read only, so a running server may keep it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cli::CliError;
use crate::domain::{Date, ProgrammeYear, Uscc};
use crate::export::download::{export_file, ExportRequest};
use crate::export::figures::InvoicePeriod;
use crate::export::package::write_package;
use crate::export::FileFormat;
use crate::ledger::LedgerReader;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExportArgs {
    #[command(subcommand)]
    kind: Option<ExportKind>,
    /// The data directory to export from (opened read only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The programme year of the audit package.
    #[arg(long)]
    year: Option<u32>,
    /// The directory to write the audit package into (empty or new).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ExportKind {
    /// The statements of a year (of one center, if given).
    Statements {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        year: u32,
        /// One center's USCC; every center when absent.
        #[arg(long)]
        center: Option<String>,
    },
    /// The invoices issued from --from to --to (both included; of one center, if given).
    Invoices {
        #[command(flatten)]
        target: Target,
        /// First issue date, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last issue date, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        #[arg(long)]
        center: Option<String>,
    },
    /// The receivables of a year per center (of one center, if given).
    Receivables {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        year: u32,
        #[arg(long)]
        center: Option<String>,
    },
}

#[derive(Args)]
struct Target {
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// csv or xlsx
    #[arg(long, default_value = "csv")]
    format: String,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(arguments: ExportArgs) -> Result<ExitCode, CliError> {
    let Some(kind) = arguments.kind else {
        let (Some(data_dir), Some(year), Some(out)) =
            (arguments.data_dir, arguments.year, arguments.out)
        else {
            return Err(CliError::Client(
                "the audit package needs --data-dir, --year and --out (or name an export: statements, invoices, receivables)".into(),
            ));
        };
        return package(&data_dir, year, &out);
    };
    let center = |text: &Option<String>| -> Result<Option<Uscc>, CliError> {
        Ok(match text {
            Some(text) => Some(Uscc::parse("--center", text)?),
            None => None,
        })
    };
    let (target, request) = match &kind {
        ExportKind::Statements {
            target,
            year,
            center: text,
        } => (
            target,
            ExportRequest::Statements {
                year: ProgrammeYear::new(*year)?,
                center: center(text)?,
            },
        ),
        ExportKind::Receivables {
            target,
            year,
            center: text,
        } => (
            target,
            ExportRequest::Receivables {
                year: ProgrammeYear::new(*year)?,
                center: center(text)?,
            },
        ),
        ExportKind::Invoices {
            target,
            from,
            to,
            center: text,
        } => (
            target,
            ExportRequest::Invoices(InvoicePeriod {
                center: center(text)?,
                from: Date::parse("--from", from)?,
                to: Date::parse("--to", to)?,
            }),
        ),
    };
    let format = FileFormat::parse(&target.format)?;
    let reader = LedgerReader::open_read_only(&target.data_dir)
        .map_err(CliError::ledger(&target.data_dir))?;
    let file = export_file(&reader, &request, format)?;
    std::fs::write(&target.out, &file.bytes).map_err(|source| CliError::Write {
        path: target.out.clone(),
        source,
    })?;
    println!(
        "{} ({}): as of sequence {}, {} bytes, SM3 {}",
        target.out.display(),
        file.file_name,
        file.as_of,
        file.bytes.len(),
        file.sm3
    );
    Ok(ExitCode::SUCCESS)
}

fn package(data_dir: &Path, year: u32, out: &Path) -> Result<ExitCode, CliError> {
    let year = ProgrammeYear::new(year)?;
    let summary = write_package(data_dir, year, out)?;
    let manifest = &summary.manifest;
    println!("audit package      {}", summary.directory.display());
    println!("programme year     {}", manifest.year);
    println!(
        "records            {}..={} (the whole log, from the genesis hash)",
        manifest.first_sequence, manifest.last_sequence
    );
    println!("chain head         {}", manifest.chain_head);
    for file in &manifest.files {
        println!(
            "{:<22} {:>12} bytes  SM3 {}",
            file.name, file.bytes, file.sm3
        );
    }
    Ok(ExitCode::SUCCESS)
}
