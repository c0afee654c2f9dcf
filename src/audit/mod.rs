//! The auditor's tools: an independent check of a data directory ([`verify`]), which
//! trusts nothing the running ledger computed.

pub mod verify;

pub use verify::{
    verify, verify_store, verify_store_with, verify_with_checkpoints, CheckpointCheck, VerifyReport,
};
