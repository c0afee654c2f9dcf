//! voucher-ledger: an event-sourced ledger and settlement engine for computing-power
//! vouchers (算力券). See ARCHITECTURE.md for the code map and the invariants.
//!
//! The folders are the layers, inside out:
//!
//! - [`domain`]: the rules. Money, identifiers, policy, commands, events, projections and
//!   the pure state machine. No I/O, no clock, no byte layout.
//! - [`storage`]: the bytes. Every on-disk layout (record frame and hash chain, event
//!   payloads, invoice index, snapshots) and the RocksDB store, behind a typed read API.
//! - [`ledger`]: the durable ledger. Group commit of the state machine's events, recovery,
//!   snapshots, and the single writer thread ([`ledger::engine`]) behind a bounded queue.
//! - [`api`]: the gRPC interface and its server; the only layer that sees proto types.
//! - [`ops`]: what an operator watches: Prometheus metrics.
//! - [`audit`]: the auditor's independent check of a data directory (`verify`).
//! - [`export`]: the figures as CSV and XLSX files, and the year's audit package.
//! - [`reconcile`]: a center's invoice list or the bank's payment file (CSV in UTF-8 or
//!   GB18030, XLSX, XLS, camt.053) matched with the ledger into a discrepancy report.
//! - [`http`]: the server's HTTP side: the bureau's report page, sign-in and sessions,
//!   and `/metrics`.
//! - [`report`]: what a person reads: the programme-year summary and the bureau's HTML
//!   report with its charts.
//! - [`cli`]: the `voucher-ledger` command line.
//! - [`tooling`]: what serves development rather than the product: the population
//!   generator, the demo year, load and recovery benchmarks, the crash-test writer.
//! - [`limits`]: every limit the system promises, in one place.

pub mod api;
pub mod audit;
pub mod cli;
pub mod domain;
pub mod export;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod ops;
pub mod reconcile;
pub mod report;
pub mod storage;
pub mod tooling;
