//! [`CliError`]: why a command could not run, typed so the message names what was wrong
//! and with which value, and keeps the cause. Every error exits with code 2; `verify`
//! finding a problem is not an error (it exits 1 with its report).

use std::path::PathBuf;

use crate::domain::ValidationError;
use crate::ledger::LedgerError;
use crate::storage::StoreError;
use crate::tooling::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument failed a domain constructor (for instance `--year`).
    #[error(transparent)]
    Argument(#[from] ValidationError),
    /// The ledger in the data directory could not be opened, written or closed.
    #[error("{}: {source}", .path.display())]
    Ledger {
        path: PathBuf,
        #[source]
        source: LedgerError,
    },
    /// `verify` could not read the store at all (a bad record is a finding, not this).
    #[error("data directory {}: {source}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// The demo seeds only an empty data directory.
    #[error("{} already holds {events} events; the demo seeds an empty data directory", .path.display())]
    NotEmpty { path: PathBuf, events: u64 },
    /// The server's configuration could not be read (the message names the file).
    #[error("{0}")]
    Config(String),
    /// `--log-format` is neither `text` nor `json`.
    #[error("--log-format must be text or json, got {0:?}")]
    LogFormat(String),
    /// The log subscriber could not be installed.
    #[error("starting the log: {0}")]
    Logging(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("server: {0}")]
    Server(String),
    /// The progress bar's template is malformed.
    #[error("progress bar: {0}")]
    Progress(#[from] indicatif::style::TemplateError),
    /// A call to the server failed, or its arguments were wrong (the message says which).
    #[error("{0}")]
    Client(String),
    /// The bureau's report of the data directory `path` could not be made.
    #[error("report of {}: {source}", .path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: crate::report::ReportError,
    },
    /// An output file could not be written.
    #[error("writing {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A development tool failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A programme file could not be read or is invalid: `path:line:column: field: why`.
    #[error("{}:{}", .path.display(), .detail)]
    Programme { path: PathBuf, detail: String },
    /// An export could not be built (the message names the table, row or argument).
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// An audit package could not be written or read (the message names the file).
    #[error(transparent)]
    Package(#[from] crate::export::package::PackageError),
}

impl CliError {
    /// A ledger error in the data directory `path`.
    pub fn ledger(path: &std::path::Path) -> impl FnOnce(LedgerError) -> CliError + '_ {
        move |source| CliError::Ledger {
            path: path.to_path_buf(),
            source,
        }
    }
}
