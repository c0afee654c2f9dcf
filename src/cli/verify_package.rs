//! `voucher-ledger verify --package PKG`: the offline check of an audit package
//! ([`crate::export::package::verify_package`]), printed for a person. Exits 0 when
//! clean, 1 naming every file at fault.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CliError;
use crate::export::package::verify_package;

pub fn run(package: &Path) -> Result<ExitCode, CliError> {
    let report = verify_package(package)?;
    println!("audit package      {}", package.display());
    println!("programme year     {}", report.year);
    println!(
        "files hashed       {} (size and SM3 against the manifest)",
        report.files_checked
    );
    println!(
        "records checked    {} (frame, payload, SM3 chain from the genesis hash)",
        report.records_checked
    );
    if let Some(head) = report.chain_head {
        println!("chain head         {head}");
    }
    println!(
        "invariants         {}",
        if report.invariants_checked {
            "checked"
        } else {
            "not reached"
        }
    );
    println!(
        "files rebuilt      {} (chain listing and figures, from the replayed records)",
        report.figures_compared
    );
    if report.is_clean() {
        println!("OK");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    Ok(ExitCode::from(1))
}
