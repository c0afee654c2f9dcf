//! `voucher-ledger verify`: the auditor's check of a data directory
//! ([`crate::audit::verify`]), printed for a person. Exits 0 when clean, 1 naming the
//! first bad sequence number and every problem found.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::audit::verify;
use crate::cli::CliError;

pub fn run(data_dir: &Path) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let report = verify(data_dir).map_err(|source| CliError::Store {
        path: data_dir.to_path_buf(),
        source,
    })?;
    println!("data directory     {}", data_dir.display());
    println!(
        "records checked    {} (frame, format version, payload, SM3 chain, density)",
        report.records_checked
    );
    if let Some(head) = report.chain_head {
        println!("chain head         {head}");
    }
    println!("snapshots matched  {:?}", report.snapshots_checked);
    println!(
        "invoice index      {} entries compared with the log",
        report.invoice_index_entries
    );
    println!(
        "invariants         {}",
        if report.invariants_checked {
            "checked"
        } else {
            "not reached"
        }
    );
    println!(
        "elapsed            {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if report.is_clean() {
        println!("OK");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(sequence) = report.first_bad_sequence {
        println!("FIRST BAD SEQUENCE {sequence}");
    }
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    Ok(ExitCode::from(1))
}
