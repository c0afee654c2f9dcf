//! `voucher-ledger reconcile ...`: send a center's invoice list or the bank's payment
//! file to a running server, print the discrepancy report, and optionally write it as
//! CSV (UTF-8 with BOM) or XLSX, with the exports' table writer. The file's format and
//! encoding are detected by the server.
//!
//! The bearer token comes from `--token` or `VOUCHER_LEDGER_TOKEN`; every call sends an
//! `x-request-id`, so the recorded reconciliation names who sent it under which request.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use crate::api::proto;
use crate::api::proto::reconciliation_service_client::ReconciliationServiceClient;
use crate::cli::CliError;
use crate::domain::{Date, Money, Timestamp};
use crate::export::table::{write_csv, write_xlsx, Cell};
use crate::limits::{RECONCILE_MESSAGE_BYTES, RECONCILE_REPLY_BYTES_MAX};
use crate::reconcile::report_csv::{report_table, row_error_row};

#[derive(Args)]
pub struct ReconcileArgs {
    /// The server's address.
    #[arg(
        long,
        alias = "server",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    target: String,
    /// A bureau (or, for its own invoices, center) bearer token; defaults to
    /// $VOUCHER_LEDGER_TOKEN.
    #[arg(
        long,
        env = "VOUCHER_LEDGER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Also write the report as CSV (UTF-8 with BOM, opens in Excel) to this file.
    #[arg(long, global = true, conflicts_with = "xlsx")]
    csv: Option<PathBuf>,
    /// Also write the report as XLSX (money cells #,##0.00) to this file.
    #[arg(long, global = true)]
    xlsx: Option<PathBuf>,
    /// Print every line, matched ones too (by default only discrepancies).
    #[arg(long, global = true)]
    all: bool,
    #[command(subcommand)]
    kind: ReconcileKind,
}

#[derive(Subcommand)]
enum ReconcileKind {
    /// A center's own invoice list against its invoices issued FROM..=TO.
    CenterInvoices {
        #[arg(long)]
        center: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// CSV (UTF-8 or GB18030/GBK), XLSX or XLS.
        file: PathBuf,
    },
    /// The bank's payment file against a programme year's statements and payments.
    BankPayments {
        #[arg(long)]
        year: u32,
        /// CSV (UTF-8 or GB18030/GBK), XLSX, XLS or camt.053 XML.
        file: PathBuf,
    },
}

fn status(call: &'static str) -> impl FnOnce(tonic::Status) -> CliError {
    move |status| {
        CliError::Client(format!(
            "{call}: {} ({:?})",
            status.message(),
            status.code()
        ))
    }
}

fn request<T>(token: &str, message: T) -> Result<Request<T>, CliError> {
    let mut request = Request::new(message);
    let bearer = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| CliError::Client("the token is not valid header text".into()))?;
    request.metadata_mut().insert("authorization", bearer);
    let id = format!("cli-{}", uuid::Uuid::new_v4());
    if let Ok(value) = MetadataValue::try_from(id.as_str()) {
        request.metadata_mut().insert("x-request-id", value);
    }
    Ok(request)
}

fn read_file(path: &Path) -> Result<(Vec<u8>, String), CliError> {
    let bytes = std::fs::read(path)
        .map_err(|error| CliError::Client(format!("reading {}: {error}", path.display())))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok((bytes, name))
}

pub fn run(arguments: ReconcileArgs) -> Result<ExitCode, CliError> {
    let token = arguments.token.clone().ok_or_else(|| {
        CliError::Client("give a bearer token with --token or VOUCHER_LEDGER_TOKEN".into())
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let response = runtime.block_on(call(&arguments.target, &token, &arguments.kind))?;
    print!("{}", render(&response, arguments.all));
    for (path, xlsx) in [(&arguments.csv, false), (&arguments.xlsx, true)] {
        let Some(path) = path else { continue };
        let table = report_table(report_rows(&response))
            .map_err(|error| CliError::Client(format!("the report table: {error}")))?;
        // The file records the reconciliation's own time, so the same answer gives the
        // same bytes.
        let recorded_at = Timestamp(
            response
                .recorded
                .as_ref()
                .map_or(0, |recorded| recorded.time_unix_ms),
        );
        let bytes = if xlsx {
            write_xlsx(&table, recorded_at)
        } else {
            write_csv(&table)
        }
        .map_err(|error| CliError::Client(format!("writing {}: {error}", path.display())))?;
        std::fs::write(path, bytes)
            .map_err(|error| CliError::Client(format!("writing {}: {error}", path.display())))?;
        println!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn call(
    target: &str,
    token: &str,
    kind: &ReconcileKind,
) -> Result<proto::ReconciliationResponse, CliError> {
    let channel = Channel::from_shared(target.to_string())
        .map_err(|error| CliError::Client(format!("--target {target:?}: {error}")))?
        .connect()
        .await
        .map_err(|error| CliError::Client(format!("connecting to {target}: {error}")))?;
    let mut client = ReconciliationServiceClient::new(channel)
        .max_encoding_message_size(RECONCILE_MESSAGE_BYTES)
        .max_decoding_message_size(RECONCILE_REPLY_BYTES_MAX);
    let response = match kind {
        ReconcileKind::CenterInvoices {
            center,
            from,
            to,
            file,
        } => {
            let (file, file_name) = read_file(file)?;
            client
                .reconcile_center_invoices(request(
                    token,
                    proto::ReconcileCenterInvoicesRequest {
                        file,
                        file_name,
                        center: center.clone(),
                        from: from.clone(),
                        to: to.clone(),
                    },
                )?)
                .await
                .map_err(status("ReconcileCenterInvoices"))?
        }
        ReconcileKind::BankPayments { year, file } => {
            let (file, file_name) = read_file(file)?;
            client
                .reconcile_bank_payments(request(
                    token,
                    proto::ReconcileBankPaymentsRequest {
                        file,
                        file_name,
                        year: *year,
                    },
                )?)
                .await
                .map_err(status("ReconcileBankPayments"))?
        }
    };
    Ok(response.into_inner())
}

/// The report's rows, typed, from the server's answer.
fn report_rows(response: &proto::ReconciliationResponse) -> Vec<Vec<Cell>> {
    let line = |value: u32| {
        if value == 0 {
            Cell::Empty
        } else {
            Cell::Count(u64::from(value))
        }
    };
    // The server's values are canonical; one that does not parse is shown as text.
    let money = |text: &str| match text {
        "" => Cell::Empty,
        _ => Money::parse("amount", text).map_or_else(|_| Cell::text(text), Cell::Money),
    };
    let date = |text: &str| match text {
        "" => Cell::Empty,
        _ => Date::parse("date", text).map_or_else(|_| Cell::text(text), Cell::Date),
    };
    let text = |text: &str| {
        if text.is_empty() {
            Cell::Empty
        } else {
            Cell::text(text)
        }
    };
    let mut rows: Vec<Vec<Cell>> = response
        .lines
        .iter()
        .map(|found| {
            vec![
                Cell::text(&found.kind),
                Cell::text(&found.reference),
                line(found.file_line),
                money(&found.file_amount),
                money(&found.file_subsidy),
                date(&found.file_date),
                text(&found.file_payee),
                line(found.first_line),
                money(&found.ledger_amount),
                money(&found.ledger_subsidy),
                date(&found.ledger_date),
                if found.ledger_statement_id == 0 {
                    Cell::Empty
                } else {
                    Cell::Count(found.ledger_statement_id)
                },
                text(&found.ledger_payee),
                Cell::text(&found.description),
            ]
        })
        .collect();
    for error in &response.row_errors {
        let description = if error.value.is_empty() {
            format!("line {}: {} {}", error.line, error.column, error.reason)
        } else {
            format!(
                "line {}: {} {:?} {}",
                error.line, error.column, error.value, error.reason
            )
        };
        rows.push(row_error_row(error.line, &description));
    }
    rows
}

/// The answer as a person reads it: the record, counts per kind, then the lines.
fn render(response: &proto::ReconciliationResponse, all: bool) -> String {
    let mut out = String::new();
    if let Some(recorded) = &response.recorded {
        if let Some(reconciliation) = &recorded.reconciliation {
            let scope = if reconciliation.kind == "center_invoices" {
                format!(
                    "center {} invoices {}..={}",
                    reconciliation.center, reconciliation.from, reconciliation.to
                )
            } else {
                format!("bank payments of {}", reconciliation.year)
            };
            let _ = writeln!(
                out,
                "{} {} ({}, {}): {} rows, {} malformed",
                if response.reimport {
                    "Re-import of"
                } else {
                    "Reconciled"
                },
                reconciliation.file_name,
                reconciliation.format,
                reconciliation.encoding,
                reconciliation.rows,
                reconciliation.row_errors
            );
            let _ = writeln!(out, "  scope: {scope}");
            let _ = writeln!(out, "  file SM3: {}", reconciliation.file_sm3);
            let _ = writeln!(
                out,
                "  recorded at sequence {} by {} ({})",
                recorded.sequence, recorded.principal_name, recorded.principal_role
            );
            let _ = writeln!(out, "  counts:");
            for count in &reconciliation.counts {
                let _ = writeln!(out, "    {:<26} {:>8}", count.kind, count.count);
            }
        }
    }
    if !response.recomputed_counts.is_empty() {
        let _ = writeln!(out, "  the ledger changed since; recomputed now:");
        for count in &response.recomputed_counts {
            let _ = writeln!(out, "    {:<26} {:>8}", count.kind, count.count);
        }
    }
    let _ = writeln!(out, "Lines:");
    for line in &response.lines {
        if !all && line.kind == "MATCHED" {
            continue;
        }
        let _ = writeln!(out, "  {}", line.description);
    }
    if !response.row_errors.is_empty() {
        let _ = writeln!(out, "Malformed rows (nothing recorded from them):");
        for error in &response.row_errors {
            let _ = writeln!(
                out,
                "  line {}: {} {:?} {}",
                error.line, error.column, error.value, error.reason
            );
        }
    }
    out
}
