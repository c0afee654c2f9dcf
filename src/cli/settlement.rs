//! `voucher-ledger settlement ...`: the finance bureau's work from a terminal, as a gRPC
//! client of a running server (which holds the data directory): settlement runs,
//! statements, payments and returns, repayments, receivables, pool adjustments, the year
//! close and its figures, and the clock confirmation the expiry sweep may wait for.
//!
//! The bearer token comes from `--token` or the `VOUCHER_LEDGER_TOKEN` environment
//! variable; every call sends an `x-request-id` so the log records who did what, and
//! under which request.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use crate::api::proto;
use crate::api::proto::programme_service_client::ProgrammeServiceClient;
use crate::api::proto::settlement_service_client::SettlementServiceClient;
use crate::cli::CliError;
use crate::domain::FundingSource;

#[derive(Args)]
pub struct SettlementArgs {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    server: String,
    /// A bureau (or, for reading, auditor) bearer token; defaults to $VOUCHER_LEDGER_TOKEN.
    #[arg(
        long,
        env = "VOUCHER_LEDGER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    action: SettlementAction,
}

#[derive(Subcommand)]
enum SettlementAction {
    /// Cut a programme year off now and issue one statement per center.
    Run {
        #[arg(long)]
        year: u32,
        /// Makes a retry safe: the same id again answers the original run.
        #[arg(long)]
        run_id: Option<String>,
    },
    /// List statements (filters are optional).
    Statements {
        #[arg(long, default_value_t = 0)]
        year: u32,
        #[arg(long, default_value = "")]
        center: String,
        /// The payee's USCC: a center, or an enterprise in a reimbursement year.
        #[arg(long, default_value = "")]
        payee: String,
        /// open, paid or returned
        #[arg(long)]
        state: Option<String>,
    },
    /// Record the bank's payment of a statement (the amount must be its net).
    Pay {
        #[arg(long)]
        statement: u64,
        #[arg(long)]
        bank_reference: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        value_date: String,
    },
    /// Record that the bank returned a payment; the statement is open again.
    Return {
        #[arg(long)]
        statement: u64,
        #[arg(long)]
        bank_reference: String,
        #[arg(long)]
        reason: String,
    },
    /// Record a center's repayment of clawbacks for a year.
    Repay {
        #[arg(long)]
        center: String,
        #[arg(long)]
        year: u32,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        bank_reference: String,
        #[arg(long)]
        value_date: String,
        /// Whose receivables: `primary` (the programme's own) or `second` (a stacked
        /// second source's).
        #[arg(long, default_value = "primary")]
        source: String,
    },
    /// Outstanding receivables (clawbacks) per center and year.
    Receivables {
        #[arg(long, default_value_t = 0)]
        year: u32,
        #[arg(long, default_value = "")]
        center: String,
    },
    /// Raise or lower a year's pool.
    AdjustPool {
        #[arg(long)]
        year: u32,
        #[arg(long)]
        pool: String,
        #[arg(long)]
        reason: String,
    },
    /// Close a programme year (once every voucher is past its redemption window).
    CloseYear {
        #[arg(long)]
        year: u32,
    },
    /// A year's figures: pool, approved, redeemed, released, settled, paid, receivables.
    Figures {
        #[arg(long)]
        year: u32,
    },
    /// Confirm the clock after the expiry sweep stopped on a suspected jump.
    ConfirmClock {
        #[arg(long)]
        reason: String,
    },
}

/// Builds authenticated requests with a fresh request id each.
struct Caller {
    token: String,
}

impl Caller {
    fn request<T>(&self, message: T) -> Result<Request<T>, CliError> {
        let mut request = Request::new(message);
        let bearer = MetadataValue::try_from(format!("Bearer {}", self.token))
            .map_err(|_| CliError::Client("the token is not valid header text".into()))?;
        request.metadata_mut().insert("authorization", bearer);
        let id = format!("cli-{}", uuid::Uuid::new_v4());
        if let Ok(value) = MetadataValue::try_from(id.as_str()) {
            request.metadata_mut().insert("x-request-id", value);
        }
        Ok(request)
    }
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

fn statement_table(statements: &[proto::Statement]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>10}  {:<10}  {:<18}  {:>4}  {:>8}  {:>16}  {:>14}  {:>16}  {:<8}  bank reference",
        "statement", "payee", "USCC", "year", "invoices", "gross", "offset", "net due", "state"
    );
    for statement in statements {
        let state = match proto::StatementState::try_from(statement.state) {
            Ok(proto::StatementState::Open) => "open",
            Ok(proto::StatementState::Paid) => "paid",
            Ok(proto::StatementState::Returned) => "returned",
            _ => "?",
        };
        // Who is paid: the center, or the enterprise in a reimbursement year.
        let kind = match proto::Payee::try_from(statement.payee_kind) {
            Ok(proto::Payee::Enterprise) => "enterprise",
            _ => "center",
        };
        let _ = writeln!(
            out,
            "{:>10}  {:<10}  {:<18}  {:>4}  {:>8}  {:>16}  {:>14}  {:>16}  {:<8}  {}",
            statement.statement_id,
            kind,
            statement.payee,
            statement.year,
            statement.invoices,
            statement.gross_subsidy,
            statement.clawback_offset,
            statement.net_due,
            state,
            statement.bank_reference
        );
        // A stacked second source's statement says who pays it.
        if statement.funding_source == proto::FundingSource::Second as i32 {
            let _ = writeln!(
                out,
                "{:>10}  paid by the second source: {}",
                "", statement.funder
            );
        }
    }
    out
}

fn state_filter(text: Option<&str>) -> Result<i32, CliError> {
    Ok(match text {
        None => proto::StatementState::Unspecified as i32,
        Some("open") => proto::StatementState::Open as i32,
        Some("paid") => proto::StatementState::Paid as i32,
        Some("returned") => proto::StatementState::Returned as i32,
        Some(other) => {
            return Err(CliError::Client(format!(
                "--state must be open, paid or returned, got {other:?}"
            )))
        }
    })
}

pub fn run(arguments: SettlementArgs) -> Result<ExitCode, CliError> {
    let token = arguments.token.clone().ok_or_else(|| {
        CliError::Client("give a bearer token with --token or VOUCHER_LEDGER_TOKEN".into())
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let output = runtime.block_on(call(&arguments.server, Caller { token }, arguments.action))?;
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}

async fn call(server: &str, caller: Caller, action: SettlementAction) -> Result<String, CliError> {
    let channel = Channel::from_shared(server.to_string())
        .map_err(|error| CliError::Client(format!("--server {server:?}: {error}")))?
        .connect()
        .await
        .map_err(|error| CliError::Client(format!("connecting to {server}: {error}")))?;
    let mut settlement = SettlementServiceClient::new(channel.clone());
    let mut out = String::new();
    match action {
        SettlementAction::Run { year, run_id } => {
            let run_id = run_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let run = settlement
                .create_settlement_run(
                    caller.request(proto::CreateSettlementRunRequest { run_id, year })?,
                )
                .await
                .map_err(status("CreateSettlementRun"))?
                .into_inner();
            let _ = writeln!(
                out,
                "run {} for {}: cut off at sequence {}{}; gross {}, offset {}, net due {}",
                run.run_id,
                run.year,
                run.cutoff_sequence,
                if run.duplicate {
                    " (an earlier run, answered again)"
                } else {
                    ""
                },
                run.gross_subsidy,
                run.clawback_offset,
                run.net_due
            );
            out.push_str(&statement_table(&run.statements));
        }
        SettlementAction::Statements {
            year,
            center,
            payee,
            state,
        } => {
            let state = state_filter(state.as_deref())?;
            let mut page_token = String::new();
            let mut all = Vec::new();
            loop {
                let page = settlement
                    .list_statements(caller.request(proto::ListStatementsRequest {
                        center: center.clone(),
                        year,
                        run_id: String::new(),
                        state,
                        page_size: 1_000,
                        page_token: page_token.clone(),
                        payee: payee.clone(),
                    })?)
                    .await
                    .map_err(status("ListStatements"))?
                    .into_inner();
                all.extend(page.statements);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            out.push_str(&statement_table(&all));
        }
        SettlementAction::Pay {
            statement,
            bank_reference,
            amount,
            value_date,
        } => {
            let answer = settlement
                .confirm_payment(caller.request(proto::ConfirmPaymentRequest {
                    statement_id: statement,
                    bank_reference,
                    amount,
                    value_date,
                })?)
                .await
                .map_err(status("ConfirmPayment"))?
                .into_inner();
            out.push_str(&statement_table(answer.statement.as_slice()));
        }
        SettlementAction::Return {
            statement,
            bank_reference,
            reason,
        } => {
            let answer = settlement
                .record_payment_returned(caller.request(proto::RecordPaymentReturnedRequest {
                    statement_id: statement,
                    bank_reference,
                    reason,
                })?)
                .await
                .map_err(status("RecordPaymentReturned"))?
                .into_inner();
            out.push_str(&statement_table(answer.statement.as_slice()));
        }
        SettlementAction::Repay {
            center,
            year,
            amount,
            bank_reference,
            value_date,
            source,
        } => {
            let funding_source = match FundingSource::parse("--source", &source)? {
                FundingSource::Primary => proto::FundingSource::Primary,
                FundingSource::Second => proto::FundingSource::Second,
            };
            let answer = settlement
                .record_repayment(caller.request(proto::RecordRepaymentRequest {
                    center,
                    year,
                    amount,
                    bank_reference,
                    value_date,
                    funding_source: funding_source as i32,
                })?)
                .await
                .map_err(status("RecordRepayment"))?
                .into_inner();
            let _ = writeln!(
                out,
                "center {} repaid {} for {}; still owes {} (sequence {}{})",
                answer.center,
                answer.repaid,
                answer.year,
                answer.outstanding,
                answer.sequence,
                if answer.duplicate {
                    ", recorded before"
                } else {
                    ""
                }
            );
        }
        SettlementAction::Receivables { year, center } => {
            let answer = settlement
                .list_receivables(caller.request(proto::ListReceivablesRequest { center, year })?)
                .await
                .map_err(status("ListReceivables"))?
                .into_inner();
            let _ = writeln!(
                out,
                "{:<18}  {:>4}  {:>14}  {:>14}  {:>14}  {:>14}",
                "center", "year", "clawed back", "offset", "repaid", "outstanding"
            );
            for receivable in answer.receivables {
                let _ = writeln!(
                    out,
                    "{:<18}  {:>4}  {:>14}  {:>14}  {:>14}  {:>14}",
                    receivable.center,
                    receivable.year,
                    receivable.clawed_back,
                    receivable.offset,
                    receivable.repaid,
                    receivable.outstanding
                );
            }
        }
        SettlementAction::AdjustPool { year, pool, reason } => {
            let answer = settlement
                .adjust_pool(caller.request(proto::AdjustPoolRequest {
                    year,
                    new_pool: pool,
                    reason,
                })?)
                .await
                .map_err(status("AdjustPool"))?
                .into_inner();
            let _ = writeln!(
                out,
                "pool {}: {} -> {} (sequence {})",
                answer.year, answer.previous_pool, answer.pool, answer.sequence
            );
        }
        SettlementAction::CloseYear { year } => {
            let figures = settlement
                .close_programme_year(caller.request(proto::CloseProgrammeYearRequest { year })?)
                .await
                .map_err(status("CloseProgrammeYear"))?
                .into_inner();
            out.push_str(&figures_text(&figures));
        }
        SettlementAction::Figures { year } => {
            let figures = settlement
                .get_year_figures(caller.request(proto::GetYearFiguresRequest { year })?)
                .await
                .map_err(status("GetYearFigures"))?
                .into_inner();
            out.push_str(&figures_text(&figures));
        }
        SettlementAction::ConfirmClock { reason } => {
            let answer = ProgrammeServiceClient::new(channel)
                .confirm_clock(caller.request(proto::ConfirmClockRequest { reason })?)
                .await
                .map_err(status("ConfirmClock"))?
                .into_inner();
            let _ = writeln!(
                out,
                "clock confirmed at {} ms since the epoch (sequence {}); the expiry sweep resumes",
                answer.confirmed_time_unix_ms, answer.sequence
            );
        }
    }
    Ok(out)
}

fn figures_text(response: &proto::YearFiguresResponse) -> String {
    let mut out = String::new();
    let Some(figures) = &response.figures else {
        return out;
    };
    let _ = writeln!(
        out,
        "programme year {}{}",
        figures.year,
        if figures.closed { " (closed)" } else { "" }
    );
    for (label, value) in [
        ("pool", &figures.pool),
        ("approved (face value)", &figures.approved),
        ("held", &figures.held),
        ("redeemed (standing)", &figures.redeemed),
        ("released", &figures.released),
        ("settled (gross)", &figures.settled),
        ("paid (net)", &figures.paid),
        ("receivables outstanding", &figures.receivables_outstanding),
        ("free", &figures.free),
    ] {
        let _ = writeln!(out, "  {label:<26} {value:>20}");
    }
    let _ = writeln!(
        out,
        "{} tiers, {} centers, {} enterprises in the figures",
        response.tiers.len(),
        response.centers.len(),
        response.enterprises.len()
    );
    out
}
