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

/// The start of the line `voucher-ledger serve` prints once its gRPC listener is bound
/// (`src/cli/serve.rs`), the address after it: how a parent that started a server on
/// port 0 learns where it listens.
pub const LISTENING_LINE_PREFIX: &str = "voucher-ledger listening on ";

/// Reads `lines` (a child `serve`'s standard output) up to its listening line and returns
/// the address on it; `None` if the output ends, or cannot be read, first.
pub fn listening_address(
    lines: impl IntoIterator<Item = std::io::Result<String>>,
) -> Option<String> {
    for line in lines {
        let line = line.ok()?;
        if let Some(address) = line.strip_prefix(LISTENING_LINE_PREFIX) {
            return Some(address.to_string());
        }
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<std::io::Result<String>> {
        text.iter().map(|line| Ok(line.to_string())).collect()
    }

    #[test]
    fn the_address_is_read_from_the_listening_line_after_any_other() {
        let output = lines(&[
            "voucher-ledger report page on http://127.0.0.1:1/",
            "voucher-ledger listening on 127.0.0.1:50051",
        ]);
        assert_eq!(
            listening_address(output).as_deref(),
            Some("127.0.0.1:50051")
        );
    }

    #[test]
    fn output_that_ends_or_fails_before_the_listening_line_gives_no_address() {
        assert_eq!(listening_address(lines(&["starting"])), None);
        let failed = vec![Err(std::io::Error::other("pipe closed"))];
        assert_eq!(listening_address(failed), None);
    }
}
