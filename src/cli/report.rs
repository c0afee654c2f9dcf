//! `voucher-ledger report`: writes the bureau's report of a programme year (one
//! self-contained HTML page, see [`crate::report::html`]) from a data directory.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CliError;
use crate::domain::ProgrammeYear;
use crate::ledger::{Ledger, LedgerOptions};
use crate::report::{report_html, Page};

pub fn run(data_dir: &Path, year: u32, out: &Path) -> Result<ExitCode, CliError> {
    let year = ProgrammeYear::new(year)?;
    let (ledger, _) =
        Ledger::open(data_dir, LedgerOptions::default()).map_err(CliError::ledger(data_dir))?;
    let page =
        report_html(&ledger.reader(), year, Page::File).map_err(|source| CliError::Report {
            path: data_dir.to_path_buf(),
            source,
        })?;
    ledger.close().map_err(CliError::ledger(data_dir))?;
    // Written beside the target and renamed over it: a reader never sees half a page.
    let partial = out.with_extension("html.partial");
    let written =
        std::fs::write(&partial, page.as_bytes()).and_then(|()| std::fs::rename(&partial, out));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(CliError::Write {
            path: out.to_path_buf(),
            source,
        });
    }
    println!(
        "report of {year} written to {} ({} bytes)",
        out.display(),
        page.len()
    );
    Ok(ExitCode::SUCCESS)
}
