//! [`ToolError`]: what can go wrong in a development tool (the demo, the load generator,
//! the recovery benchmark, the crash test's writer), typed so that the message names the
//! step, the setting or the value that was wrong, and the cause is kept as a source.

use crate::domain::{Rejection, ValidationError};
use crate::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The ledger could not be opened, written or closed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A generated value failed a domain constructor (a bug in the generator); the error
    /// names the field and the value.
    #[error("generated data: {0}")]
    Generated(#[from] ValidationError),
    /// The ledger rejected a command the tool relies on, such as a population's seed.
    #[error("{command} was rejected: {rejection}")]
    Rejected {
        command: &'static str,
        rejection: Rejection,
    },
    /// A command-line setting is out of range.
    #[error("--{name} {value}: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Reading, writing or starting something failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// No connection to the server under test.
    #[error("connecting to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// A call to the server under test failed.
    #[error("{call}: {status}")]
    Rpc {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    /// A worker task panicked or was cancelled.
    #[error("a worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The server under test misbehaved: exited early, or never reported SERVING.
    #[error("the server {0}")]
    Server(String),
}

impl ToolError {
    /// An I/O error, with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolError {
        let what = what.into();
        move |source| ToolError::Io { what, source }
    }

    /// A failed call, named.
    pub fn rpc(call: &'static str) -> impl FnOnce(tonic::Status) -> ToolError {
        move |status| ToolError::Rpc {
            call,
            status: Box::new(status),
        }
    }
}
