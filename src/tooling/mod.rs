//! Tooling: what serves development and measurement rather than the product, kept out of
//! the product's modules so that a reader of `cli/`, `api/` or `ledger/` sees only what
//! runs in production.
//!
//! - [`population`]: the one generator of synthetic policies, centers, enterprises,
//!   vouchers and invoices, used by everything below and by the tests and benches;
//! - [`demo`]: the demo's programme year, driven through a ledger;
//! - [`load`]: the gRPC load generator (`voucher-ledger bench`), and
//!   [`encoded_batches`], its `PostInvoices` client (bodies encoded ahead, answers tallied);
//! - [`recovery`]: the restart benchmark (`voucher-ledger bench-recovery`);
//! - [`torture`]: the crash test's writer (hidden `voucher-ledger torture`);
//! - [`soak`]: SIGKILL and restart of a served ledger under gRPC load, checked after each
//!   kill (hidden `voucher-ledger soak`, `scripts/soak.sh`, `tests/crash.rs`);
//! - [`ToolError`]: their errors.

pub mod demo;
pub mod encoded_batches;
pub mod error;
pub mod load;
pub mod population;
pub mod recovery;
pub mod soak;
pub mod torture;

pub use error::ToolError;

use crate::domain::{Date, Timestamp};

/// A multi-threaded tokio runtime for a tool that talks gRPC.
fn runtime() -> Result<tokio::runtime::Runtime, ToolError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ToolError::io("starting the async runtime"))
}

/// Today's date (UTC) by the wall clock; 1970-01-01 if the clock is before it.
fn today() -> Date {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    Timestamp(now).date()
}
