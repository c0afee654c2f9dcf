//! `voucher-ledger demo`: seeds the demo's programme year ([`crate::tooling::demo`]) into
//! an empty data directory, with a progress bar, and prints the year's summary, the
//! tally of what was submitted, the throughput and the chain head.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::CliError;
use crate::domain::ProgrammeYear;
use crate::ledger::{Ledger, LedgerOptions};
use crate::report::summary::summarize;
use crate::tooling::demo::{run_demo, tally_lines, DemoConfig};

pub fn run(data_dir: &Path, config: DemoConfig, sync: bool) -> Result<ExitCode, CliError> {
    if !sync {
        eprintln!("WARNING: --no-sync: commits are not fsynced; for tests only.");
    }
    let year = ProgrammeYear::new(config.year)?;
    let options = LedgerOptions {
        sync,
        ..LedgerOptions::default()
    };
    let (mut ledger, report) =
        Ledger::open(data_dir, options).map_err(CliError::ledger(data_dir))?;
    if report.last_sequence > 0 {
        return Err(CliError::NotEmpty {
            path: data_dir.to_path_buf(),
            events: report.last_sequence,
        });
    }
    let bar = indicatif::ProgressBar::new(config.invoices as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} invoices {pos}/{len} [{bar:40}] {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let tally = run_demo(&mut ledger, &config, |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
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
    ledger.close().map_err(CliError::ledger(data_dir))?;
    Ok(ExitCode::SUCCESS)
}
