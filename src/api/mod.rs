//! The gRPC API: the only layer that sees proto types. It parses and validates requests
//! into domain commands (malformed input never reaches the state machine), checks who may
//! do what, hands commands to the engine, and maps replies and rejections to responses
//! and statuses. [`server`] serves them.
//!
//! | file | what it does |
//! |---|---|
//! | `convert.rs` | proto ⇄ domain: every request field parsed and validated, every reply built |
//! | `batch_wire.rs` | `PostInvoices` and `PostInvoicesBrief` read as slices of the request body and answered straight from the replies (the hot path; the brief answer lists only the exceptions, with the batch's totals), byte-compatible with the generated messages |
//! | `convert_reconciliation.rs` | reconciliation records, report lines and row errors to proto |
//! | `errors.rs` | the error model: rejections, validation and engine errors as gRPC statuses |
//! | `auth.rs` | bearer tokens (SM3-hashed), roles, and who may do what |
//! | `services/` | one file per gRPC service |
//! | `server.rs` | `run(listener, settings, shutdown)`: connections, health, reflection, TLS; `server/` its connection guard, the gate (auth, limits, access log) and the route that sends `PostInvoices` and `PostInvoicesBrief` down the fast path |
//! | `health.rs` | keeps `grpc.health.v1` true: NOT_SERVING after a failed write, clock alarm |
//! | `sweeper.rs` | the expiry sweep, stopped on a suspected clock jump until confirmed |
//! | `index_flusher.rs` | flushes the invoice index when the server is quiet, or its entries have waited too long, so a crash or a read-only view derives little from the log |

pub mod auth;
pub mod batch_wire;
pub mod convert;
pub mod convert_reconciliation;
pub mod errors;
pub mod health;
pub mod index_flusher;
pub mod server;
pub mod services;
pub mod sweeper;

/// Generated protobuf and tonic code for package `voucher.v1`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("voucher.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("voucher_v1_descriptor");
}
