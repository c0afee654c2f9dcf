//! The crash test's writer (`voucher-ledger torture`, hidden from `--help`).
//! `tests/crash.rs` starts it as a child process, kills it with SIGKILL at an arbitrary
//! moment and then checks that every invoice it acknowledged is in the log exactly once.
//! It must be a separate process for SIGKILL to be a real crash (no destructor, no
//! flush, no closing snapshot), which is why it is a command at all.
//!
//! On an empty directory it seeds a one-voucher population (center 1, enterprise 1, in
//! the [`Style::Plain`] style); then it posts fresh invoices from center 1 in batches,
//! printing `acked <invoice number>` for each one the ledger accepted, once the batch is
//! durable. After a restart it numbers on from the invoices already redeemed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::{Command, Date, Envelope, ProgrammeYear, Timestamp};
use crate::ledger::{Ledger, LedgerOptions, SUBMIT_BATCH_LIMIT};
use crate::tooling::population::{inexhaustible_policy, InvoiceStream, Population, Style};
use crate::tooling::ToolError;

/// The earliest time the writer stamps its commands with: 2026-03-01.
const START_MS: i64 = 1_772_323_200_000;

/// What the hidden `voucher-ledger torture` runs (its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct TortureSettings {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = u64::MAX)]
    pub max_invoices: u64,
}

/// The writer's population: the one center that posts, center 1, with one voucher of
/// enterprise 1 that lasts for millions of invoices.
pub fn torture_population() -> Result<Population, ToolError> {
    let population = Population::registered(
        inexhaustible_policy(ProgrammeYear::new(2026)?)?,
        Style::Plain,
        [1],
        [1],
    )?;
    Ok(population.with_vouchers(1, Date::from_ymd(2026, 1, 1)?)?)
}

/// `voucher-ledger torture`: seeds if empty, then posts until `max_invoices` (or killed).
pub fn run(settings: &TortureSettings) -> Result<ExitCode, ToolError> {
    if settings.batch == 0 || settings.batch > SUBMIT_BATCH_LIMIT {
        return Err(ToolError::Setting {
            name: "batch",
            value: settings.batch.to_string(),
            reason: "must be 1 to 8,192 (the ledger's batch limit)",
        });
    }
    let (mut ledger, _) = Ledger::open(&settings.data_dir, LedgerOptions::default())?;
    let mut clock = ledger.state().last_time().0.max(START_MS);
    let mut envelope = |command| {
        clock += 1;
        Envelope::new(Timestamp(clock), command)
    };
    let population = torture_population()?;
    if ledger.state().last_sequence() == 0 {
        let seed: Vec<Envelope> = population
            .commands()
            .into_iter()
            .map(&mut envelope)
            .collect();
        for (sent, reply) in seed.iter().zip(ledger.submit(&seed)?) {
            reply.map_err(|rejection| ToolError::Rejected {
                command: sent.command.name(),
                rejection,
            })?;
        }
    }
    let mut next = ledger.state().invoices_redeemed();
    let mut stream = InvoiceStream::new(population, 1, next)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let printing = |error| ToolError::Io {
        what: "printing an acknowledgement".into(),
        source: error,
    };
    while next < settings.max_invoices {
        let mut envelopes = Vec::with_capacity(settings.batch);
        let mut numbers = Vec::with_capacity(settings.batch);
        for _ in 0..settings.batch {
            let invoice = stream.next_invoice()?;
            numbers.push(invoice.invoice_number.clone());
            envelopes.push(envelope(Command::PostInvoice(invoice)));
        }
        let replies = ledger.submit(&envelopes)?;
        for (number, reply) in numbers.iter().zip(&replies) {
            if reply.is_ok() {
                writeln!(out, "acked {number}").map_err(printing)?;
            }
        }
        out.flush().map_err(printing)?;
        next += settings.batch as u64;
    }
    ledger.close()?;
    Ok(ExitCode::SUCCESS)
}
