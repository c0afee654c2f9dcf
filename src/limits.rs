//! Every limit the system promises, in one place (TigerBeetle: "put a limit on
//! everything"). A limit that a client can observe is part of the contract; the README's
//! Operating section lists the configurable ones with their config keys.
//!
//! Each constant says what breaks without it. The assertions at the bottom pin the
//! relations between limits that the code relies on, at compile time.

use std::time::Duration;

// ------------------------------------------------------------------------ the domain

/// The largest amount the ledger accepts, in fen: 10^13 yuan, far above any programme
/// pool. Sums of many amounts stay exact in `Decimal` and in `i64` fen.
pub const MONEY_MAX_FEN: i64 = 1_000_000_000_000_000;

/// Most vouchers one `ExpireVouchers` command releases, so one command never makes an
/// unbounded batch; the caller repeats until none are left.
pub const EXPIRY_BATCH_LIMIT: usize = 4_096;

/// Longest contract number, in bytes.
pub const CONTRACT_NUMBER_MAX_BYTES: usize = 64;
/// Longest invoice number, in bytes.
pub const INVOICE_NUMBER_MAX_BYTES: usize = 64;
/// Longest delivery-proof reference, in bytes.
pub const DELIVERY_PROOF_MAX_BYTES: usize = 256;
/// Longest legal name, in bytes.
pub const LEGAL_NAME_MAX_BYTES: usize = 200;
/// Longest reason text, in bytes.
pub const REASON_MAX_BYTES: usize = 500;
/// Longest bank reference, in bytes.
pub const BANK_REFERENCE_MAX_BYTES: usize = 64;
/// Most computing centers a programme registers: a settlement run issues at most one
/// statement per center, so this bounds the events one run appends.
pub const CENTERS_MAX: usize = 4_096;
/// Most active vouchers one center may hold: delisting releases them all in one
/// command, so this bounds the events one delisting appends.
pub const ACTIVE_VOUCHERS_PER_CENTER_MAX: usize = 65_536;
/// Default days after a contract term's end during which invoices issued inside the
/// term may still be posted.
pub const REDEMPTION_GRACE_DAYS_DEFAULT: u16 = 60;
/// Longest grace a policy may set.
pub const REDEMPTION_GRACE_DAYS_MAX: u16 = 366;

// ----------------------------------------------------------------------- the ledger

/// Most commands one group commit takes; larger batches are split by the caller.
pub const SUBMIT_BATCH_LIMIT: usize = 8_192;

/// Default: events between snapshots (a crash replays at most this many).
pub const SNAPSHOT_INTERVAL_DEFAULT: u64 = 100_000;
/// Default: snapshots kept (the newest ones).
pub const SNAPSHOTS_KEPT_DEFAULT: usize = 2;
/// Default: invoices the writer keeps in memory between batches; past it the cache is
/// emptied (the store's invoice index is the durable copy).
pub const INVOICE_CACHE_DEFAULT: usize = 65_536;

/// Default: most commands waiting for the writer; beyond it submissions are refused.
pub const QUEUE_COMMANDS_DEFAULT: usize = 131_072;
/// Default: most jobs (calls) waiting for the writer.
pub const QUEUE_JOBS_DEFAULT: usize = 16_384;
/// Default: how long a reader waits for the writer to make what it read durable.
pub const READ_WAIT_DEFAULT: Duration = Duration::from_secs(5);

// ----------------------------------------------------------------------- the storage

/// No single event payload is larger than this; a bigger length field means a corrupt
/// record.
pub const RECORD_PAYLOAD_LIMIT: usize = 64 * 1024;

// --------------------------------------------------------------------------- the API

/// Most events one `ReadEvents` call may ask for.
pub const READ_EVENTS_LIMIT: u32 = 10_000;
/// Events one `ReadEvents` call returns when the caller names no limit.
pub const READ_EVENTS_DEFAULT: u32 = 1_000;
/// Events buffered per subscriber; a slower subscriber is paced, never buffered further.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// A subscriber that accepts nothing for this long is disconnected.
pub const SUBSCRIBER_STALL_LIMIT: Duration = Duration::from_secs(60);
/// Page size of List calls when the caller names none.
pub const LIST_PAGE_DEFAULT: u32 = 100;
/// Largest page size of List calls.
pub const LIST_PAGE_LIMIT: u32 = 1_000;

// ------------------------------------------------------------------------ the server

/// Default: most open client connections; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS_DEFAULT: usize = 1_024;
/// Default: seconds between expiry sweeps.
pub const EXPIRY_SWEEP_SECONDS_DEFAULT: u64 = 3_600;
/// Default: hours the wall clock may be ahead of the last event (or the previous expiry
/// sweep) before the sweep stops and waits for an operator to confirm the time.
pub const EXPIRY_CLOCK_JUMP_LIMIT_HOURS_DEFAULT: u64 = 48;
/// Default: seconds in-flight calls may take after SIGTERM before connections close.
pub const SHUTDOWN_GRACE_SECONDS_DEFAULT: u64 = 10;

// ------------------------------------------------------- relations the code relies on

const _: () = assert!(EXPIRY_BATCH_LIMIT <= SUBMIT_BATCH_LIMIT);
const _: () = assert!(READ_EVENTS_DEFAULT <= READ_EVENTS_LIMIT);
const _: () = assert!(LIST_PAGE_DEFAULT <= LIST_PAGE_LIMIT);
// A whole batch of new invoices fits the cache, so the prefetch of one batch is never
// evicted before the batch is decided.
const _: () = assert!(SUBMIT_BATCH_LIMIT <= INVOICE_CACHE_DEFAULT);
// A queue must hold at least one full batch or `PostInvoices` could never be accepted.
const _: () = assert!(SUBMIT_BATCH_LIMIT <= QUEUE_COMMANDS_DEFAULT);
// i64 fen: the sum of 2^13 maximal amounts must not overflow (a batch's totals).
const _: () = assert!((MONEY_MAX_FEN as i128) * (SUBMIT_BATCH_LIMIT as i128) < i64::MAX as i128);
