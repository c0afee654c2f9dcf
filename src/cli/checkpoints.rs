//! `voucher-ledger checkpoints --data-dir DIR --out FILE`: exports every signed checkpoint
//! of a data directory (read-only, so beside a running server too) to a text file the
//! bureau and auditors keep outside the server, for `verify --checkpoints FILE`.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CliError;
use crate::storage::checkpoint::export_text;
use crate::storage::EventStore;

pub fn run(data_dir: &Path, out: &Path) -> Result<ExitCode, CliError> {
    let store = EventStore::open_read_only(data_dir).map_err(|source| CliError::Store {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let checkpoints = store
        .checkpoints(0, usize::MAX)
        .map_err(|source| CliError::Store {
            path: data_dir.to_path_buf(),
            source,
        })?;
    std::fs::write(out, export_text(&checkpoints))
        .map_err(|error| CliError::Client(format!("{}: {error}", out.display())))?;
    println!(
        "checkpoints   {} written to {}",
        checkpoints.len(),
        out.display()
    );
    if let Some(newest) = checkpoints.last() {
        println!(
            "newest        sequence {} chain head {}",
            newest.sequence, newest.chain_head
        );
    }
    Ok(ExitCode::SUCCESS)
}
