//! voucher-ledger: an event-sourced ledger and settlement engine for computing-power
//! vouchers (算力券). See ARCHITECTURE.md for the code map and the invariants.
//!
//! Layers, inside out: [`domain`] (pure rules and state machine), [`storage`] (record
//! format, hash chain, RocksDB), [`ledger`] (group commit of the state machine's events),
//! [`engine`] (the single writer thread behind a bounded queue), [`api`] and [`server`]
//! (gRPC), [`verify`] (the auditor's independent check), [`demo`] (a seeded programme
//! year) and [`cli`] (the `voucher-ledger` command).

pub mod api;
pub mod bench;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod ledger;
pub mod server;
pub mod storage;
pub mod verify;
pub mod workload;
