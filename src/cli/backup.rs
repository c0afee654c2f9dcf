//! `voucher-ledger backup --data-dir DIR --out B` and `voucher-ledger restore B --data-dir
//! NEW`. A backup is consistent while a server writes (see `storage::backup` for how);
//! a restore copies it into a new directory, checks that the restored log ends at the
//! manifest's sequence and head, and runs the full `verify` on it.

use std::path::Path;
use std::process::ExitCode;

use crate::audit::verify;
use crate::cli::CliError;
use crate::storage::backup::{backup_data_directory, restore};

pub fn run_backup(data_dir: &Path, out: &Path) -> Result<ExitCode, CliError> {
    let manifest = backup_data_directory(data_dir, out)
        .map_err(|error| CliError::Client(format!("backup of {}: {error}", data_dir.display())))?;
    println!("backup        {}", out.display());
    println!("sequence      {}", manifest.sequence);
    println!("chain head    {}", manifest.chain_head);
    println!("method        {}", manifest.method);
    Ok(ExitCode::SUCCESS)
}

pub fn run_restore(backup: &Path, data_dir: &Path) -> Result<ExitCode, CliError> {
    let manifest = restore(backup, data_dir)
        .map_err(|error| CliError::Client(format!("restore of {}: {error}", backup.display())))?;
    println!(
        "restored      {} into {}",
        backup.display(),
        data_dir.display()
    );
    println!("sequence      {}", manifest.sequence);
    println!(
        "chain head    {} (as the manifest records)",
        manifest.chain_head
    );
    let report = verify(data_dir).map_err(|source| CliError::Store {
        path: data_dir.to_path_buf(),
        source,
    })?;
    if report.is_clean() && report.chain_head == Some(manifest.chain_head) {
        println!("verify        OK");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    if report.chain_head != Some(manifest.chain_head) {
        println!(
            "FAIL the restored log's head {:?} is not the manifest's {}",
            report.chain_head, manifest.chain_head
        );
    }
    Ok(ExitCode::from(1))
}
