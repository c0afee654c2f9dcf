//! `voucher-ledger verify`: the auditor's check of a data directory
//! ([`crate::audit::verify`]), printed for a person. Exits 0 when clean, 1 naming the
//! first bad sequence number and every problem found. With `--trusted-key PUB.pem` it
//! also checks the signed checkpoints (stored, and those of `--checkpoints FILE`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::audit::{verify, verify_with_checkpoints, CheckpointCheck};
use crate::cli::CliError;
use crate::storage::checkpoint::{parse_export, TrustedKey};

pub fn run(
    data_dir: &Path,
    trusted_key: Option<&Path>,
    checkpoints: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let check = match trusted_key {
        Some(path) => {
            let key = TrustedKey::from_pem_file(path)
                .map_err(|error| CliError::Client(format!("--trusted-key: {error}")))?;
            let external = match checkpoints {
                Some(file) => {
                    let text = std::fs::read_to_string(file).map_err(|error| {
                        CliError::Client(format!("--checkpoints {}: {error}", file.display()))
                    })?;
                    parse_export(&text).map_err(|reason| {
                        CliError::Client(format!("--checkpoints {}: {reason}", file.display()))
                    })?
                }
                None => Vec::new(),
            };
            Some(CheckpointCheck {
                key,
                external,
                external_source: checkpoints.map(|file| file.display().to_string()),
            })
        }
        None if checkpoints.is_some() => {
            return Err(CliError::Client(
                "--checkpoints needs --trusted-key, the public key that signed them".into(),
            ))
        }
        None => None,
    };
    let report = match &check {
        Some(check) => verify_with_checkpoints(data_dir, check),
        None => verify(data_dir),
    }
    .map_err(|source| CliError::Store {
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
    if check.is_some() {
        println!(
            "checkpoints        {} checked (signature, chain head at their sequence); newest {}",
            report.checkpoints_checked,
            report
                .newest_checkpoint
                .map_or("none".to_string(), |sequence| sequence.to_string())
        );
    }
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
    // What is worth knowing but wrong with nothing: snapshots of an older format, an
    // invoice index behind the log whose missing entries were derived from it.
    for note in &report.notes {
        println!("note               {note}");
    }
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
