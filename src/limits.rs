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

/// Longest contract term a programme may set (`max_term_days`), in days: a term lasts
/// under one year, and a leap year has 366 days.
pub const CONTRACT_TERM_DAYS_MAX: u16 = 366;

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
/// Longest proof of payment (a bank reference or payment voucher number) on an invoice of
/// a reimbursement year.
pub const PAYMENT_PROOF_MAX_BYTES: usize = 64;
/// Most computing centers a programme registers: a settlement run issues at most one
/// statement per center, so this bounds the events one run appends.
pub const CENTERS_MAX: usize = 4_096;
/// Most statements one settlement run issues. A center-payee year has at most
/// [`CENTERS_MAX`] payees, each with the programme's statement and, in a stacked-funding
/// year, the second source's: one run settles them all. A reimbursement year pays
/// enterprises, which are not bounded, so a run settles the first payees (USCC order, both
/// statements of a payee or neither) and the rest wait for the next run (their cutoff is
/// then that run's).
pub const STATEMENTS_PER_RUN_MAX: usize = 2 * CENTERS_MAX;
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
/// The most an operator may configure (`server.invoice_cache`): about 2 GiB of entries.
pub const INVOICE_CACHE_MAX: usize = 8 << 20;
/// Default: bytes of RocksDB's one block cache (see `storage/store.rs`): room for the
/// invoice index's index and filter blocks of [`INVOICE_INDEX_CACHED_INVOICES`] (2.24 bytes
/// an invoice in a 50 M run's tables: ~21 MiB at 10 M, ~107 MiB at 50 M). A table's filter
/// and index are one block each, megabytes for a large table: once they outgrew the cache
/// (32 MiB until the twenty-first round of issue 12, ~15 M invoices), each lookup past the
/// in-memory invoice filter could evict one and read it back whole from the page cache and
/// checksum it; at 30-50 M invoices the writer's CPU per invoice doubled (3.7-4.1 µs against
/// 1.85-1.90 with room). The cache fills only as blocks are read: a server holding 10 M
/// invoices uses about what it did with 32 MiB (RSS after a restart +5%).
pub const BLOCK_CACHE_BYTES_DEFAULT: usize = 256 << 20;
/// Invoices whose index and filter blocks the default block cache has room for.
pub const INVOICE_INDEX_CACHED_INVOICES: u64 = 100_000_000;
/// The least an operator may configure (`server.block_cache_bytes`).
pub const BLOCK_CACHE_BYTES_MIN: usize = 8 << 20;
/// The most an operator may configure: 64 GiB.
pub const BLOCK_CACHE_BYTES_MAX: usize = 64 << 30;

/// Default: most commands waiting for the writer; beyond it submissions are refused.
pub const QUEUE_COMMANDS_DEFAULT: usize = 131_072;
/// Default: most jobs (calls) waiting for the writer.
pub const QUEUE_JOBS_DEFAULT: usize = 16_384;
/// Default: how long a reader waits for the writer to make what it read durable.
pub const READ_WAIT_DEFAULT: Duration = Duration::from_secs(5);

/// Default: events between signed checkpoints (`checkpoint_interval`). Records after the
/// newest checkpoint are the only ones a truncation could drop unseen; a settlement run,
/// a year close, a start with an unsigned tail and a stop are signed regardless.
pub const CHECKPOINT_INTERVAL_DEFAULT: u64 = 10_000;
/// Checkpoints waiting for the signing thread; when it is full the writer signs the head
/// after its next batch instead (it never waits for the signer).
pub const CHECKPOINT_QUEUE: usize = 64;

// ----------------------------------------------------------------------- the storage

/// No single event payload is larger than this; a bigger length field means a corrupt
/// record.
pub const RECORD_PAYLOAD_LIMIT: usize = 64 * 1024;
/// A batch's records are stored as log blocks of about this many bytes (a block is closed
/// once it reaches it), so one key holds a few thousand records but reading one event
/// never loads more than this plus one record. A batch of 8,189 redemptions is ~10 blocks.
pub const LOG_BLOCK_BYTES_TARGET: usize = 256 * 1024;
/// Most bytes of write-ahead log RocksDB keeps. A family written rarely (the format marker,
/// snapshots, checkpoints) would otherwise keep every log file since its last write alive
/// until RocksDB's own default limit (four times all memtables, ~3 GB here): 3.5 GB of log
/// at 10 M events, all replayed on a restart after a crash (4.2–4.4 s). Past this limit the
/// families holding the oldest log file are flushed and the file is no longer needed and is
/// deleted.
pub const WAL_RETAINED_BYTES_MAX: u64 = 256 << 20;
/// Least memory of the in-memory filter of invoice keys (`storage::invoice_filter`); it is
/// made larger when the index holds more keys than it has room for (see the next two).
pub const INVOICE_FILTER_BYTES: usize = 8 * 1024 * 1024;
/// Most memory of the in-memory filter of invoice keys: room for ~350 M invoices at
/// [`INVOICE_FILTER_GROW_BELOW_BITS_PER_KEY`]; past that it only answers "maybe" more often.
pub const INVOICE_FILTER_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Bits per key of the index that the invoice filter is made with when the store opens
/// (rounded up to a power of two of bytes): 16 MiB for 10 M invoices.
pub const INVOICE_FILTER_OPEN_BITS_PER_KEY: u64 = 8;
/// Bits of the invoice filter per key of the index below which the writer starts a larger
/// one. A filter of fixed size (8 MiB, every build before the nineteenth round of issue 12)
/// passed ~7% of brand-new invoices on to RocksDB at 10 M invoices (6.7 bits per key) and
/// ~40% at 30 M (2.2 bits per key), where the writer's CPU per invoice was 2.17 µs against
/// 1.41 with 32 MiB (8.9 bits per key). Filling a larger filter scans the index (~0.4 µs
/// of CPU per key), so it is put off until the smaller one passes ~7%.
pub const INVOICE_FILTER_GROW_BELOW_BITS_PER_KEY: u64 = 6;
/// Bits per key a larger invoice filter is made with (rounded up to a power of two of
/// bytes): four times the bytes when it starts, so the index quadruples before the next
/// scan (doubling scanned as many keys again as the index held; 0.33 µs per invoice at
/// 10 M, where the first growth fell).
pub const INVOICE_FILTER_GROWN_BITS_PER_KEY: u64 = 16;
/// Longest a reader of the invoice index waits for a batch's index part, which the writer
/// writes just after the batch's answers (`storage::index_lag`; a few milliseconds). Past
/// it the reader gets an error, never an index that lacks the batch.
pub const INDEX_WRITE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Most invoice index entries an open holds while it derives what a crash left out of the
/// index (`storage::index_lag`): it writes them this many at a time. Since the index is
/// written without the write-ahead log (data directory format 6), a crash can take the
/// index's unflushed memtables, up to ~10^6 entries (~200 bytes each held in memory).
pub const INDEX_CATCH_UP_WRITE_ENTRIES: usize = 65_536;
/// Default: milliseconds without a committed batch after which the server flushes the
/// invoice index's memtables (`api::index_flusher`), so a crash or a read-only view
/// (`verify`, an export, a backup beside the server) of a quiet server has nothing to
/// derive. 0: never on idleness.
pub const INDEX_FLUSH_IDLE_MS_DEFAULT: u64 = 2_000;
/// Default: seconds unflushed index entries may wait, however busy the server, before it
/// flushes them: under a steady trickle of invoices (never idle, the memtable filling
/// for hours) this bounds what a crash or a read-only view derives. 0: never on age.
pub const INDEX_FLUSH_AGE_SECONDS_DEFAULT: u64 = 600;
/// Fewest unflushed invoice-index entries (invoices and watermarks) an idle flush is
/// worth: fewer take microseconds to derive.
pub const IDLE_FLUSH_ENTRIES_MIN: u64 = 1_024;
/// Longest pause between two looks at the invoice index's memtables.
pub const INDEX_FLUSH_CHECK_MS_MAX: u64 = 1_000;
/// Shortest pause between two looks (a tiny `index_flush_idle_ms` in tests).
pub const INDEX_FLUSH_CHECK_MS_MIN: u64 = 10;
/// After a failed flush of the invoice index the next attempt waits
/// [`INDEX_FLUSH_RETRY_MS_MIN`], then twice as long after each further failure, up to
/// this: a full or failing disk is not asked again twice a second, nor is the log filled
/// with one warning per look.
pub const INDEX_FLUSH_RETRY_MS_MAX: u64 = 60_000;
/// The first wait after a failed flush of the invoice index.
pub const INDEX_FLUSH_RETRY_MS_MIN: u64 = 1_000;

// ------------------------------------------------------------------- reconciliation

/// Largest file a reconciliation imports, in bytes: a year of a large center's invoices
/// (200,000 rows of about 100 bytes) with room to spare. Larger: refused with its size.
pub const RECONCILIATION_FILE_BYTES_MAX: usize = 32 << 20;
/// Most data rows a reconciliation imports (the header not counted); the report holds
/// at most about this many lines. More: refused.
pub const RECONCILIATION_ROWS_MAX: usize = 200_000;
/// Columns of a spreadsheet a reconciliation reads; cells further right are not read (the
/// import needs at most six columns), so a sheet naming a far cell cannot make the reader
/// allocate a huge dense range.
pub const RECONCILIATION_COLUMNS_MAX: usize = 256;
/// Most ledger invoices one center reconciliation scans (every year of the center; the
/// period is a filter on issue dates, not an index). More: refused, not truncated.
pub const RECONCILIATION_LEDGER_INVOICES_MAX: usize = 2_000_000;
/// Longest file name recorded with a reconciliation, in bytes.
pub const RECONCILIATION_FILE_NAME_MAX_BYTES: usize = 255;
/// Largest request message of the two Reconcile calls: the largest file and its fields.
pub const RECONCILE_MESSAGE_BYTES: usize = RECONCILIATION_FILE_BYTES_MAX + (64 << 10);
/// Largest answer the CLI accepts from a Reconcile call: every row's report line with
/// both sides' values (a few hundred bytes each).
pub const RECONCILE_REPLY_BYTES_MAX: usize = 256 << 20;

// --------------------------------------------------------------------------- the API

/// Most events one `ReadEvents` call may ask for.
pub const READ_EVENTS_LIMIT: u32 = 10_000;
/// Events one `ReadEvents` call returns when the caller names no limit.
pub const READ_EVENTS_DEFAULT: u32 = 1_000;
/// Events buffered per subscriber; a slower subscriber is paced, never buffered further.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// A subscriber that accepts nothing for this long is disconnected.
pub const SUBSCRIBER_STALL_LIMIT: Duration = Duration::from_secs(60);
/// Checkpoints one `ListCheckpoints` page returns when the caller names no limit.
pub const CHECKPOINT_LIST_DEFAULT: u32 = 100;
/// Most checkpoints one `ListCheckpoints` page returns.
pub const CHECKPOINT_LIST_LIMIT: u32 = 1_000;
/// Page size of List calls when the caller names none.
pub const LIST_PAGE_DEFAULT: u32 = 100;
/// Largest page size of List calls.
pub const LIST_PAGE_LIMIT: u32 = 1_000;
/// Default: most bytes of events in one `ReadEvents` page. A page ends at `limit` events
/// or at this many bytes, whichever comes first (never below one event), and says where
/// the next page starts, so a client with gRPC's default 4 MiB limit reads every page.
pub const READ_EVENTS_PAGE_BYTES_DEFAULT: usize = 1 << 20;
/// Largest configurable `ReadEvents` page: room under a default client's 4 MiB for the
/// reply's other fields.
pub const READ_EVENTS_PAGE_BYTES_MAX: usize = (4 << 20) - (64 << 10);
/// Smallest configurable `ReadEvents` page.
pub const READ_EVENTS_PAGE_BYTES_MIN: usize = 64 << 10;
/// Default: largest `PostInvoices` request message (a full batch of the longest invoices
/// fits, see below). Larger: RESOURCE_EXHAUSTED before it is read.
pub const POST_INVOICES_MESSAGE_BYTES_DEFAULT: usize = 4 << 20;
/// Default: largest request message of every other authenticated call.
pub const MESSAGE_BYTES_DEFAULT: usize = 64 << 10;
/// Default: largest request message of health and reflection, served without a token.
pub const PUBLIC_MESSAGE_BYTES_DEFAULT: usize = 4 << 10;
/// Longest status message sent to a client (`grpc-message`); a longer one is cut with
/// "...". Without it a bad 3.9 MB policy line came back as a 16.9 MB header. A protocol
/// constant rather than a setting: statuses are built where no config is at hand.
pub const STATUS_MESSAGE_MAX_BYTES: usize = 1_024;
/// Largest `grpc-status-details-bin` sent; larger details are dropped (the code and the
/// message remain).
pub const STATUS_DETAILS_MAX_BYTES: usize = 4_096;
/// The longest `Invoice` message the API accepts, encoded: every field at its longest
/// (USCC 18, UUID 36, amount 24 with room to spare, date 10, a proof of payment), with
/// tags and lengths.
pub const INVOICE_MESSAGE_MAX_BYTES: usize = 3
    + 7 * 3
    + 18
    + 36
    + INVOICE_NUMBER_MAX_BYTES
    + 24
    + 10
    + DELIVERY_PROOF_MAX_BYTES
    + PAYMENT_PROOF_MAX_BYTES;

// ------------------------------------------------------------------------ the exports

/// Most rows one exported table holds (statements, invoices of a period, receivables).
/// An export is built in memory before it is sent or written (its size and hash lead the
/// download), and an XLSX row costs rust_xlsxwriter a few hundred bytes, so this bounds
/// one export to tens of megabytes; a larger one is refused with a message that says to
/// narrow it (one center, a shorter period). Below Excel's 1,048,576 rows per sheet.
pub const EXPORT_ROWS_MAX: usize = 200_000;
/// Rows an export reads under the state's read lock at a time: the writer never waits
/// for a whole export, only for one page.
pub const EXPORT_PAGE_ROWS: usize = 1_000;
/// Largest chunk of a streamed file download (gRPC `ExportService`): well under a
/// client's default 4 MiB message limit, and small enough to pace a slow reader.
pub const EXPORT_CHUNK_BYTES: usize = 64 << 10;
/// Exports the server builds at the same time (each holds its file in memory, at most
/// [`EXPORT_ROWS_MAX`] rows); further calls wait for a slot.
pub const EXPORTS_CONCURRENT_MAX: usize = 2;
/// Widest XLSX column, in characters: a long legal name or reason wraps past it rather
/// than making the sheet unreadable.
pub const XLSX_COLUMN_WIDTH_MAX: usize = 60;
/// Largest amount, in fen, written as an XLSX number cell: 10^15 fen (10^13 yuan), the
/// ledger's largest single amount. Up to it an amount has at most 15 significant digits
/// and survives the trip through an IEEE double exactly (see
/// `export::table::money_as_xlsx_number`); a larger total is refused in XLSX.
pub const XLSX_MONEY_EXACT_MAX_FEN: i64 = 1_000_000_000_000_000;

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
/// Default: connections the kernel queues for `accept` while `max_connections` are open
/// (the listen backlog; Linux caps it at `net.core.somaxconn`). Beyond it, new
/// connections are dropped by the kernel until the queue drains.
pub const LISTEN_BACKLOG_DEFAULT: u32 = 1_024;
/// Default: most concurrent calls (streams) on one HTTP/2 connection
/// (SETTINGS_MAX_CONCURRENT_STREAMS; RFC 9113 recommends no fewer than 100).
pub const MAX_CONCURRENT_STREAMS_DEFAULT: u32 = 100;
/// Default: largest header block of one request (SETTINGS_MAX_HEADER_LIST_SIZE).
pub const MAX_HEADER_LIST_BYTES_DEFAULT: u32 = 16 << 10;
/// Default: the bytes of one call's request a client may send before the server has read
/// any (HTTP/2's SETTINGS_INITIAL_WINDOW_SIZE; the server then grants more as it reads).
/// 4 MiB, the size of the `PostInvoices` message limit: a batch's request fits in one
/// window (at the very limit, all but gRPC's 5-byte message header). hyper's default,
/// 1 MiB, made a batch of 8,189 (~1.2 MB) wait for a WINDOW_UPDATE (issue 12,
/// thirty-eighth round).
pub const STREAM_WINDOW_BYTES_DEFAULT: u32 = 4 << 20;
/// Default: the same for all of a connection's calls together (its connection window).
pub const CONNECTION_WINDOW_BYTES_DEFAULT: u32 = 4 << 20;
/// Default: the largest HTTP/2 frame a client may send (SETTINGS_MAX_FRAME_SIZE). 256 KiB:
/// a batch of 8,189 in 5 frames rather than 75 of HTTP/2's 16 KiB; with the windows above
/// it reached the server 0.4-0.5 ms sooner of a ~20 ms round trip (issue 12,
/// thirty-eighth round). The server holds at most one partial frame a connection while
/// it reads.
pub const MAX_FRAME_BYTES_DEFAULT: u32 = 256 << 10;
/// HTTP/2's own bounds (RFC 9113, section 6.5.2): a frame of 16 KiB to 16 MiB - 1, a
/// window of 64 KiB - 1 to 2 GiB - 1.
pub const HTTP2_FRAME_BYTES_MIN: u32 = 16_384;
pub const HTTP2_FRAME_BYTES_MAX: u32 = (1 << 24) - 1;
pub const HTTP2_WINDOW_BYTES_MIN: u32 = 65_535;
pub const HTTP2_WINDOW_BYTES_MAX: u32 = (1 << 31) - 1;
/// Default: milliseconds a new connection has to start its first call, TLS and HTTP/2
/// handshakes included. A socket that sends nothing, or only the preface, is closed then
/// and its `max_connections` permit freed.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default: milliseconds a connection with no call in progress stays open.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 120_000;
/// Default: milliseconds without a frame from a client before the server pings it
/// (HTTP/2 keepalive), so a vanished peer with a call open is noticed.
pub const KEEPALIVE_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default: milliseconds a client has to answer a keepalive ping before its connection
/// is closed.
pub const KEEPALIVE_TIMEOUT_MS_DEFAULT: u64 = 20_000;
/// Default: bytes of request headers and messages that authenticated calls may hold in
/// memory together, counted from each message's declared length before it is read; a
/// call that would go over is answered RESOURCE_EXHAUSTED without reading it.
pub const REQUEST_MEMORY_BYTES_DEFAULT: usize = 128 << 20;
/// Default: the same for health and reflection calls, which need no token.
pub const PUBLIC_REQUEST_MEMORY_BYTES_DEFAULT: usize = 16 << 20;
/// Default: milliseconds a call's request may take to arrive in full after its headers;
/// a half-sent request is then answered DEADLINE_EXCEEDED and its memory freed.
pub const REQUEST_BODY_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default: milliseconds a subscriber may accept nothing before its stream is ended.
pub const SUBSCRIBER_STALL_MS_DEFAULT: u64 = SUBSCRIBER_STALL_LIMIT.as_millis() as u64;

// ------------------------------------------------- the bureau's report and its page

/// Enterprises in the report's "top enterprises" chart and table.
pub const REPORT_TOP_ENTERPRISES: usize = 20;
/// Centers drawn in the report's "due and paid by center" chart (the most money
/// first); the table below it lists every center. Keeps the chart readable and its
/// height bounded with up to `CENTERS_MAX` centers.
pub const REPORT_CHART_CENTERS_MAX: usize = 50;
/// Most points of the pool-use series: a log spanning more days keeps every n-th day
/// (weekly for a few years), so the chart stays small whatever the log's age.
pub const REPORT_SERIES_POINTS_MAX: usize = 400;
/// Invoices the report's replay of the log keeps before it empties its cache (as
/// `verify` does): memory does not grow with the invoices.
pub const REPORT_REPLAY_CACHE_LIMIT: usize = 65_536;
/// Default address of the report's HTTP page (`--http`, `server.http`); empty: off.
pub const HTTP_ADDRESS_DEFAULT: &str = "127.0.0.1:8080";
/// Most open connections to the HTTP page; further ones wait in the listen backlog.
pub const HTTP_MAX_CONNECTIONS: usize = 256;
/// A client must send a request's headers within this, or its connection is closed
/// (against clients that open a connection and trickle bytes).
pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time one HTTP request may take to be answered (the report of a long log is
/// rendered from a replay); then it is answered 503.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest life of one HTTP connection, however busy: a browser simply reconnects.
pub const HTTP_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// TLS handshake of a new HTTP connection (when `[tls]` is configured).
pub const HTTP_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest sign-in form body (a token and where to go next); larger: 413.
pub const HTTP_SIGNIN_BODY_BYTES: usize = 4_096;
/// Most sessions held at once; a new sign-in past it drops the oldest session.
pub const HTTP_SESSIONS_MAX: usize = 1_024;
/// How long a session lasts after sign-in.
pub const HTTP_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3_600);

// A full batch of the longest invoices fits one PostInvoices message.
const _: () =
    assert!(SUBMIT_BATCH_LIMIT * INVOICE_MESSAGE_MAX_BYTES <= POST_INVOICES_MESSAGE_BYTES_DEFAULT);
// One message of any call fits the shared request memory.
const _: () = assert!(MESSAGE_BYTES_DEFAULT <= POST_INVOICES_MESSAGE_BYTES_DEFAULT);
const _: () = assert!(
    POST_INVOICES_MESSAGE_BYTES_DEFAULT + MAX_HEADER_LIST_BYTES_DEFAULT as usize
        <= REQUEST_MEMORY_BYTES_DEFAULT
);
// The default windows are as large as the PostInvoices message limit, and keep HTTP/2's bounds.
const _: () = assert!(STREAM_WINDOW_BYTES_DEFAULT as usize >= POST_INVOICES_MESSAGE_BYTES_DEFAULT);
const _: () = assert!(STREAM_WINDOW_BYTES_DEFAULT <= CONNECTION_WINDOW_BYTES_DEFAULT);
const _: () = assert!(CONNECTION_WINDOW_BYTES_DEFAULT <= HTTP2_WINDOW_BYTES_MAX);
const _: () = assert!(
    HTTP2_FRAME_BYTES_MIN <= MAX_FRAME_BYTES_DEFAULT
        && MAX_FRAME_BYTES_DEFAULT <= HTTP2_FRAME_BYTES_MAX
);
const _: () = assert!(
    PUBLIC_MESSAGE_BYTES_DEFAULT + MAX_HEADER_LIST_BYTES_DEFAULT as usize
        <= PUBLIC_REQUEST_MEMORY_BYTES_DEFAULT
);
// A Reconcile call's file fits the shared request memory.
const _: () = assert!(
    RECONCILE_MESSAGE_BYTES + MAX_HEADER_LIST_BYTES_DEFAULT as usize
        <= REQUEST_MEMORY_BYTES_DEFAULT
);
const _: () = assert!(READ_EVENTS_PAGE_BYTES_MIN <= READ_EVENTS_PAGE_BYTES_DEFAULT);
const _: () = assert!(READ_EVENTS_PAGE_BYTES_DEFAULT <= READ_EVENTS_PAGE_BYTES_MAX);

// ------------------------------------------------------- relations the code relies on

// An exported table (plus its header row) fits one Excel sheet.
const _: () = assert!(EXPORT_ROWS_MAX < 1_048_576);
// Every single amount fits an XLSX money cell exactly, and the fen count itself is an
// exact f64 (below 2^53).
const _: () = assert!(MONEY_MAX_FEN <= XLSX_MONEY_EXACT_MAX_FEN);
const _: () = assert!(XLSX_MONEY_EXACT_MAX_FEN < (1i64 << 53));
const _: () = assert!(EXPORT_PAGE_ROWS <= EXPORT_ROWS_MAX);

const _: () = assert!(EXPIRY_BATCH_LIMIT <= SUBMIT_BATCH_LIMIT);
const _: () = assert!(READ_EVENTS_DEFAULT <= READ_EVENTS_LIMIT);
const _: () = assert!(CHECKPOINT_LIST_DEFAULT <= CHECKPOINT_LIST_LIMIT);
const _: () = assert!(LIST_PAGE_DEFAULT <= LIST_PAGE_LIMIT);
// A whole batch of new invoices fits the cache, so the prefetch of one batch is never
// evicted before the batch is decided.
const _: () = assert!(SUBMIT_BATCH_LIMIT <= INVOICE_CACHE_DEFAULT);
// A queue must hold at least one full batch or `PostInvoices` could never be accepted.
const _: () = assert!(SUBMIT_BATCH_LIMIT <= QUEUE_COMMANDS_DEFAULT);
// i64 fen: the sum of 2^13 maximal amounts must not overflow (a batch's totals).
const _: () = assert!((MONEY_MAX_FEN as i128) * (SUBMIT_BATCH_LIMIT as i128) < i64::MAX as i128);
// A default sign-in form (a token of a few hundred bytes) fits the body limit.
const _: () = assert!(HTTP_SIGNIN_BODY_BYTES >= 1_024);
const _: () = assert!(REPORT_SERIES_POINTS_MAX >= 2);
