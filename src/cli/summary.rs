//! `voucher-ledger summary`: prints the programme-year summary of a data directory (the
//! same report the demo ends with), rebuilt from the log.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CliError;
use crate::domain::ProgrammeYear;
use crate::ledger::{Ledger, LedgerOptions};
use crate::report::summary::summarize;

pub fn run(data_dir: &Path, year: u32) -> Result<ExitCode, CliError> {
    let year = ProgrammeYear::new(year)?;
    let (ledger, _) =
        Ledger::open(data_dir, LedgerOptions::default()).map_err(CliError::ledger(data_dir))?;
    println!("{}", summarize(&ledger.state(), year, None));
    Ok(ExitCode::SUCCESS)
}
