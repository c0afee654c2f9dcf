//! `voucher-ledger policy check FILE`: reads a programme file (a preset from
//! `config/programmes/`, or the bureau's own), validates it, and prints what its rules
//! mean in words a bureau official can check against the published measures. Nothing is
//! published: a dry run. Also resolves `demo --programme NAME` to its preset.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::CliError;
use crate::domain::programme::{explain, read_programme_file, ProgrammeFile};

/// Where the presets live, relative to the working directory (the repository root).
pub const PRESETS_DIR: &str = "config/programmes";

/// Reads and validates a programme file; the error names the file, line, column and field.
pub fn load(path: &Path) -> Result<ProgrammeFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|error| CliError::Programme {
        path: path.to_path_buf(),
        detail: format!(" cannot be read: {error}"),
    })?;
    read_programme_file(&text).map_err(|error| CliError::Programme {
        path: path.to_path_buf(),
        detail: if error.line > 0 {
            format!(
                "{}:{}: {}{}",
                error.line,
                error.column,
                if error.field.is_empty() {
                    String::new()
                } else {
                    format!("field `{}`: ", error.field)
                },
                error.message
            )
        } else {
            format!(" {error}")
        },
    })
}

/// A preset's file: `NAME` under [`PRESETS_DIR`] (`NAME.toml`), or a path to a file.
pub fn preset_path(name: &str) -> PathBuf {
    let given = Path::new(name);
    if given.extension().is_some() || given.components().count() > 1 {
        return given.to_path_buf();
    }
    Path::new(PRESETS_DIR).join(format!("{name}.toml"))
}

/// The words `policy check` prints for a valid file.
pub fn describe(file: &ProgrammeFile) -> String {
    let mut out = String::new();
    let heading = match (&file.name, &file.title) {
        (Some(name), Some(title)) => format!("{name}: {title}"),
        (Some(name), None) => name.clone(),
        (None, Some(title)) => title.clone(),
        (None, None) => format!("programme year {}", file.policy.year()),
    };
    out.push_str(&heading);
    out.push('\n');
    for line in explain(&file.policy) {
        out.push_str("  - ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub fn run_check(path: &Path) -> Result<ExitCode, CliError> {
    let file = load(path)?;
    print!("{}", describe(&file));
    Ok(ExitCode::SUCCESS)
}
