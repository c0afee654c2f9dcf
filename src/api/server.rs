//! The gRPC server: `run(listener, settings, shutdown)` opens the ledger, starts the
//! engine, serves every service plus `grpc.health.v1` and reflection (`v1` and
//! `v1alpha`), and on `shutdown` stops accepting, ends subscriptions, finishes in-flight
//! calls, drains and syncs the engine and writes a final snapshot. Tests drive it on
//! `127.0.0.1:0`. Given an HTTP listener, it also serves the live report page
//! ([`crate::http`]) until the same shutdown.
//!
//! What a client can hold is bounded: connections ([`connection`]: `max_connections`,
//! handshake and idle timeouts, HTTP/2 keepalive), calls per connection
//! (`max_concurrent_streams`), header and message sizes and the memory of all requests
//! together, checked before a body is read ([`gate`]).

pub mod connection;
pub mod gate;
pub mod redemption_route;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::api::auth::{Authenticator, TokenEntry};
use crate::api::proto::{
    checkpoint_service_server::CheckpointServiceServer, export_service_server::ExportServiceServer,
    ledger_service_server::LedgerServiceServer, programme_service_server::ProgrammeServiceServer,
    reconciliation_service_server::ReconciliationServiceServer,
    redemption_service_server::RedemptionServiceServer,
    registry_service_server::RegistryServiceServer,
    settlement_service_server::SettlementServiceServer,
    voucher_service_server::VoucherServiceServer, FILE_DESCRIPTOR_SET,
};
use crate::api::services::Api;
use crate::ledger::engine::{BatchObserver, CheckpointPolicy, Engine, EngineConfig};
use crate::ledger::priority::Niceness;
use crate::ledger::{Ledger, LedgerOptions};
use crate::ops::metrics::Metrics;
use crate::storage::checkpoint::CheckpointSigner;
use crate::storage::{IndexCompaction, StoreSettings, TableCompression};

/// The gRPC services the server offers, by their health-check names.
const SERVICE_NAMES: [&str; 9] = [
    "voucher.v1.ProgrammeService",
    "voucher.v1.RegistryService",
    "voucher.v1.VoucherService",
    "voucher.v1.RedemptionService",
    "voucher.v1.LedgerService",
    "voucher.v1.SettlementService",
    "voucher.v1.ExportService",
    "voucher.v1.ReconciliationService",
    "voucher.v1.CheckpointService",
];

/// The server's TOML config (see `config/server.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    pub server: ServerSection,
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// The `[server]` section. Every limit a client can run into is here, with its default
/// from [`crate::limits`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Most open client connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections the kernel queues while `max_connections` are open.
    pub listen_backlog: u32,
    /// Most commands waiting for the writer; beyond it calls get RESOURCE_EXHAUSTED.
    pub queue_commands: usize,
    /// Events between snapshots.
    pub snapshot_interval: u64,
    /// Invoices the writer keeps in memory between batches (found and known absent)
    /// before it empties its cache; older ones are read back from the invoice index.
    /// At least one batch (8,192): every invoice of a batch is held while it is decided.
    pub invoice_cache: usize,
    /// How RocksDB's table files of the log, the invoice index and the invoice order are
    /// compressed: `"none"` (the default: less CPU, more disk) or `"lz4"`. Either reads
    /// a directory written with the other.
    pub table_compression: TableCompression,
    /// How RocksDB compacts the invoice index: `"universal"` (the default: each entry
    /// rewritten fewer times) or `"leveled"` (what earlier builds did). Either opens a
    /// directory compacted the other way.
    pub invoice_index_compaction: IndexCompaction,
    /// Bytes of RocksDB's one block cache (every column family reads through it).
    pub block_cache_bytes: usize,
    /// Whether `serve` leaves transparent huge pages to the system's policy (`true`) or
    /// turns them off for the process (`false`, the default: see
    /// [`crate::storage::heap::disable_transparent_huge_pages`]).
    pub transparent_huge_pages: bool,
    /// The nice value of the ledger's writer and record encoder, the threads every batch
    /// passes through in turn (`crate::ledger::priority`): -10 by default, so on a busy
    /// machine they get most of a contended core, ahead of the rest of the process and of
    /// other processes.
    /// Below 0 needs CAP_SYS_NICE or a matching RLIMIT_NICE; without it the threads keep
    /// the process's priority and a warning says so. 0 leaves them alone.
    pub commit_thread_niceness: Niceness,
    /// Seconds between expiry sweeps (vouchers whose term ended are released).
    pub expiry_sweep_seconds: u64,
    /// Milliseconds without a committed batch after which the server flushes the invoice
    /// index's memtables (when at least 1,024 entries wait), so a crash or a read-only
    /// view of a quiet server derives nothing from the log (`api::index_flusher`). 0: off.
    pub index_flush_idle_ms: u64,
    /// Seconds unflushed invoice-index entries may wait, however busy the server, before
    /// it flushes them. 0: off.
    pub index_flush_age_seconds: u64,
    /// After SIGTERM, how long in-flight calls and streams may take before the remaining
    /// connections are closed (the writer is drained and synced either way).
    pub shutdown_grace_seconds: u64,
    /// The expiry sweep stops (and raises an alarm) when the clock is ahead of the last
    /// event, or of its previous sweep, by more than this many hours.
    pub expiry_clock_jump_limit_hours: u64,
    /// Most concurrent calls (HTTP/2 streams) on one connection.
    pub max_concurrent_streams: u32,
    /// Largest header block of one request.
    pub max_header_list_bytes: u32,
    /// Bytes of one call's request a client may send before the server has read any
    /// (HTTP/2's initial stream window).
    pub stream_window_bytes: u32,
    /// The same for all calls of one connection together (its connection window).
    pub connection_window_bytes: u32,
    /// Largest HTTP/2 frame a client may send.
    pub max_frame_bytes: u32,
    /// Milliseconds a new connection has to start its first call (TLS and HTTP/2
    /// handshakes included); then it is closed.
    pub handshake_timeout_ms: u64,
    /// Milliseconds a connection with no call in progress stays open.
    pub idle_timeout_ms: u64,
    /// Milliseconds without a frame from a client before the server pings it.
    pub keepalive_interval_ms: u64,
    /// Milliseconds a client has to answer a ping before its connection is closed.
    pub keepalive_timeout_ms: u64,
    /// Largest request message of an authenticated call other than the batch calls
    /// (`PostInvoices`, `PostInvoicesBrief`).
    pub message_bytes: usize,
    /// Largest `PostInvoices` (and `PostInvoicesBrief`) request message.
    pub post_invoices_message_bytes: usize,
    /// Largest request message of health and reflection (served without a token).
    pub public_message_bytes: usize,
    /// Bytes of headers and request messages that authenticated calls may hold together.
    pub request_memory_bytes: usize,
    /// The same for health and reflection calls (no token needed).
    pub public_request_memory_bytes: usize,
    /// Milliseconds a request may take to arrive in full after its headers.
    pub request_body_timeout_ms: u64,
    /// Milliseconds a subscriber may accept nothing before its stream is ended.
    pub subscriber_stall_ms: u64,
    /// Most bytes of events in one `ReadEvents` page.
    pub read_events_page_bytes: usize,
    /// Events between signed checkpoints (when `checkpoint_key` is set).
    pub checkpoint_interval: u64,
    /// The bureau's SM2 private key (PKCS#8 PEM, `voucher-ledger keygen`) that signs
    /// checkpoints; none: no checkpoints. Relative to the config file.
    pub checkpoint_key: Option<PathBuf>,
    /// The directory the `Backup` call writes backups under; none: it is refused.
    /// Relative to the config file.
    pub backup_dir: Option<PathBuf>,
    /// Address of the live report page (HTTP); empty: off. Unset: 127.0.0.1:8080, and
    /// if that address is taken the page is off with a warning. `serve --http` wins.
    /// `serve` binds it; [`run`] serves the listener it is given.
    pub http: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        use crate::limits::*;
        ServerSection {
            max_connections: MAX_CONNECTIONS_DEFAULT,
            listen_backlog: LISTEN_BACKLOG_DEFAULT,
            queue_commands: QUEUE_COMMANDS_DEFAULT,
            snapshot_interval: SNAPSHOT_INTERVAL_DEFAULT,
            invoice_cache: INVOICE_CACHE_DEFAULT,
            table_compression: TableCompression::default(),
            invoice_index_compaction: IndexCompaction::default(),
            block_cache_bytes: BLOCK_CACHE_BYTES_DEFAULT,
            transparent_huge_pages: false,
            commit_thread_niceness: Niceness::COMMIT_PATH_DEFAULT,
            expiry_sweep_seconds: EXPIRY_SWEEP_SECONDS_DEFAULT,
            shutdown_grace_seconds: SHUTDOWN_GRACE_SECONDS_DEFAULT,
            index_flush_idle_ms: INDEX_FLUSH_IDLE_MS_DEFAULT,
            index_flush_age_seconds: INDEX_FLUSH_AGE_SECONDS_DEFAULT,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS_DEFAULT,
            max_header_list_bytes: MAX_HEADER_LIST_BYTES_DEFAULT,
            stream_window_bytes: STREAM_WINDOW_BYTES_DEFAULT,
            connection_window_bytes: CONNECTION_WINDOW_BYTES_DEFAULT,
            max_frame_bytes: MAX_FRAME_BYTES_DEFAULT,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            keepalive_interval_ms: KEEPALIVE_INTERVAL_MS_DEFAULT,
            keepalive_timeout_ms: KEEPALIVE_TIMEOUT_MS_DEFAULT,
            message_bytes: MESSAGE_BYTES_DEFAULT,
            post_invoices_message_bytes: POST_INVOICES_MESSAGE_BYTES_DEFAULT,
            public_message_bytes: PUBLIC_MESSAGE_BYTES_DEFAULT,
            request_memory_bytes: REQUEST_MEMORY_BYTES_DEFAULT,
            public_request_memory_bytes: PUBLIC_REQUEST_MEMORY_BYTES_DEFAULT,
            request_body_timeout_ms: REQUEST_BODY_TIMEOUT_MS_DEFAULT,
            subscriber_stall_ms: SUBSCRIBER_STALL_MS_DEFAULT,
            read_events_page_bytes: READ_EVENTS_PAGE_BYTES_DEFAULT,
            expiry_clock_jump_limit_hours: EXPIRY_CLOCK_JUMP_LIMIT_HOURS_DEFAULT,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            checkpoint_key: None,
            backup_dir: None,
            http: None,
        }
    }
}

impl ServerSection {
    /// Refuses settings the server cannot keep its promises with.
    pub fn validate(&self) -> Result<(), String> {
        let at_least = |key: &str, value: u64, least: u64| {
            if value < least {
                Err(format!("server.{key} = {value}: must be at least {least}"))
            } else {
                Ok(())
            }
        };
        let at_most = |key: &str, value: u64, most: u64| {
            if value > most {
                Err(format!("server.{key} = {value}: must be at most {most}"))
            } else {
                Ok(())
            }
        };
        at_least("max_connections", self.max_connections as u64, 1)?;
        at_least("checkpoint_interval", self.checkpoint_interval, 1)?;
        at_least(
            "invoice_cache",
            self.invoice_cache as u64,
            crate::ledger::SUBMIT_BATCH_LIMIT as u64,
        )?;
        at_most(
            "invoice_cache",
            self.invoice_cache as u64,
            crate::limits::INVOICE_CACHE_MAX as u64,
        )?;
        at_least(
            "block_cache_bytes",
            self.block_cache_bytes as u64,
            crate::limits::BLOCK_CACHE_BYTES_MIN as u64,
        )?;
        at_most(
            "block_cache_bytes",
            self.block_cache_bytes as u64,
            crate::limits::BLOCK_CACHE_BYTES_MAX as u64,
        )?;
        at_least("listen_backlog", u64::from(self.listen_backlog), 1)?;
        if self.listen_backlog > i32::MAX as u32 {
            return Err("server.listen_backlog: too large".into());
        }
        at_least(
            "max_concurrent_streams",
            u64::from(self.max_concurrent_streams),
            1,
        )?;
        at_least(
            "max_header_list_bytes",
            u64::from(self.max_header_list_bytes),
            1_024,
        )?;
        // HTTP/2's own bounds; a call's window within its connection's.
        use crate::limits::{
            HTTP2_FRAME_BYTES_MAX, HTTP2_FRAME_BYTES_MIN, HTTP2_WINDOW_BYTES_MAX,
            HTTP2_WINDOW_BYTES_MIN,
        };
        for (key, value, least, most) in [
            (
                "stream_window_bytes",
                self.stream_window_bytes,
                HTTP2_WINDOW_BYTES_MIN,
                HTTP2_WINDOW_BYTES_MAX,
            ),
            (
                "connection_window_bytes",
                self.connection_window_bytes,
                self.stream_window_bytes.max(HTTP2_WINDOW_BYTES_MIN),
                HTTP2_WINDOW_BYTES_MAX,
            ),
            (
                "max_frame_bytes",
                self.max_frame_bytes,
                HTTP2_FRAME_BYTES_MIN,
                HTTP2_FRAME_BYTES_MAX,
            ),
        ] {
            at_least(key, u64::from(value), u64::from(least))?;
            at_most(key, u64::from(value), u64::from(most))?;
        }
        for (key, value) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("request_body_timeout_ms", self.request_body_timeout_ms),
            ("subscriber_stall_ms", self.subscriber_stall_ms),
        ] {
            at_least(key, value, 1)?;
        }
        at_least("message_bytes", self.message_bytes as u64, 1_024)?;
        at_least(
            "public_message_bytes",
            self.public_message_bytes as u64,
            256,
        )?;
        at_least(
            "post_invoices_message_bytes",
            self.post_invoices_message_bytes as u64,
            self.message_bytes as u64,
        )?;
        // One call of each kind, headers and message at their largest, fits its memory.
        let headers = u64::from(self.max_header_list_bytes);
        at_least(
            "request_memory_bytes",
            self.request_memory_bytes as u64,
            self.post_invoices_message_bytes as u64 + headers,
        )?;
        at_least(
            "public_request_memory_bytes",
            self.public_request_memory_bytes as u64,
            self.public_message_bytes as u64 + headers,
        )?;
        for (key, value) in [
            (
                "post_invoices_message_bytes",
                self.post_invoices_message_bytes,
            ),
            ("public_message_bytes", self.public_message_bytes),
        ] {
            if value > u32::MAX as usize {
                return Err(format!("server.{key}: must fit gRPC's 32-bit length"));
            }
        }
        for (key, value) in [
            ("request_memory_bytes", self.request_memory_bytes),
            (
                "public_request_memory_bytes",
                self.public_request_memory_bytes,
            ),
        ] {
            if value > tokio::sync::Semaphore::MAX_PERMITS {
                return Err(format!("server.{key}: too large"));
            }
        }
        let (least, most) = (
            crate::limits::READ_EVENTS_PAGE_BYTES_MIN,
            crate::limits::READ_EVENTS_PAGE_BYTES_MAX,
        );
        if !(least..=most).contains(&self.read_events_page_bytes) {
            return Err(format!(
                "server.read_events_page_bytes = {}: must be {least}..={most}",
                self.read_events_page_bytes
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("config {}: {error}", path.display()))?;
        let mut config: ServerConfig =
            toml::from_str(&text).map_err(|error| format!("config {}: {error}", path.display()))?;
        // Relative TLS, key and backup paths are relative to the config file.
        if let Some(base) = path.parent() {
            if let Some(tls) = config.tls.as_mut() {
                tls.cert = base.join(&tls.cert);
                tls.key = base.join(&tls.key);
            }
            let section = &mut config.server;
            for relative in [&mut section.checkpoint_key, &mut section.backup_dir]
                .into_iter()
                .flatten()
            {
                *relative = base.join(&*relative);
            }
        }
        Ok(config)
    }
}

pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub config: ServerConfig,
    /// fsync every commit; false only for tests.
    pub sync: bool,
    /// Where to serve the live report page ([`crate::http`]), already bound; `None`: no
    /// page.
    pub http_listener: Option<TcpListener>,
}

/// What the server may serve besides gRPC, and be told while it runs.
#[derive(Default)]
pub struct ServeExtras {
    /// Serves `/metrics` (Prometheus) on this listener: the HTTP address.
    pub http_listener: Option<TcpListener>,
    /// Token lists to switch to while serving (`serve` sends the config's tokens here on
    /// SIGHUP); connections stay open, a removed token is refused from its next call.
    pub token_reloads: Option<tokio::sync::mpsc::Receiver<Vec<TokenEntry>>>,
    /// The metrics to fill (a new set when none is given).
    pub metrics: Option<Arc<Metrics>>,
}

/// Serves until `shutdown` completes, then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    run_with(listener, settings, ServeExtras::default(), shutdown).await
}

/// [`run`], with metrics over HTTP and token reloads.
pub async fn run_with(
    listener: TcpListener,
    settings: ServeSettings,
    extras: ServeExtras,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let config = settings.config;
    config.server.validate()?;
    let authenticator = Authenticator::new(&config.tokens)?;
    let checkpoints = match &config.server.checkpoint_key {
        Some(path) => Some(CheckpointPolicy {
            signer: CheckpointSigner::from_pem_file(path)
                .map_err(|error| format!("checkpoint_key: {error}"))?,
            interval: config.server.checkpoint_interval,
        }),
        None => None,
    };
    let metrics = extras.metrics.unwrap_or_default();
    let http_authenticator = authenticator.clone();
    if config.tokens.is_empty() {
        tracing::warn!("no tokens configured: every call will be UNAUTHENTICATED");
    }
    if !settings.sync {
        tracing::warn!("--no-sync: commits are NOT fsynced; acknowledged work can be lost on a crash. For tests only.");
    }
    let options = LedgerOptions {
        sync: settings.sync,
        snapshot_interval: config.server.snapshot_interval,
        invoice_cache_limit: config.server.invoice_cache,
        store: StoreSettings {
            table_compression: config.server.table_compression,
            invoice_index_compaction: config.server.invoice_index_compaction,
            block_cache_bytes: config.server.block_cache_bytes,
            ..StoreSettings::default()
        },
        prepare_memory_for_batches: true,
        commit_thread_niceness: Some(config.server.commit_thread_niceness)
            .filter(|&niceness| niceness != Niceness::NORMAL),
        ..LedgerOptions::default()
    };
    let data_dir = settings.data_dir.clone();
    let (ledger, report) = tokio::task::spawn_blocking(move || Ledger::open(&data_dir, options))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| format!("opening {}: {error}", settings.data_dir.display()))?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        last_sequence = report.last_sequence,
        snapshot = ?report.snapshot_sequence,
        replayed = report.events_replayed,
        elapsed_ms = report.elapsed.as_millis() as u64,
        store_open_ms = report.store_open.as_millis() as u64,
        index_catch_up_ms = report.index_catch_up.as_millis() as u64,
        snapshot_and_replay_ms = report.snapshot_and_replay.as_millis() as u64,
        "ledger opened"
    );
    for skipped in &report.snapshots_skipped {
        tracing::warn!(%skipped, "snapshot skipped");
    }
    let engine = Engine::start(
        ledger,
        EngineConfig {
            queue_commands: config.server.queue_commands,
            checkpoints,
            observer: Some(Arc::clone(&metrics) as Arc<dyn BatchObserver>),
            ..EngineConfig::default()
        },
    )
    .map_err(|error| error.to_string())?;
    let handle = engine.handle();
    let (stopping_sender, stopping) = watch::channel(false);
    let api = Api::new(
        handle.clone(),
        stopping.clone(),
        crate::api::sweeper::ClockGuard::new(Duration::from_secs(
            config
                .server
                .expiry_clock_jump_limit_hours
                .saturating_mul(3_600),
        )),
    )
    .with_backup_dir(config.server.backup_dir.clone());
    metrics.attach(handle.clone(), api.subscriber_count());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ProgrammeServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<RegistryServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<VoucherServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<RedemptionServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<LedgerServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<SettlementServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<ExportServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<ReconciliationServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<CheckpointServiceServer<Api>>()
        .await;
    // Both reflection versions: grpcurl speaks v1, Python's grpcio and older tools v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let section = &config.server;
    let public_bytes = section.public_message_bytes;
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|error| error.to_string())?
        .max_decoding_message_size(public_bytes);
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|error| error.to_string())?
        .max_decoding_message_size(public_bytes);
    let health_service = health_service.max_decoding_message_size(public_bytes);

    let millis = Duration::from_millis;
    let mut builder = Server::builder()
        .max_concurrent_streams(section.max_concurrent_streams)
        .http2_max_header_list_size(section.max_header_list_bytes)
        .initial_stream_window_size(Some(section.stream_window_bytes))
        .initial_connection_window_size(Some(section.connection_window_bytes))
        .max_frame_size(Some(section.max_frame_bytes))
        .http2_keepalive_interval(Some(millis(section.keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(millis(section.keepalive_timeout_ms)));
    let mut http_tls = None;
    if let Some(tls) = &config.tls {
        let cert = std::fs::read(&tls.cert)
            .map_err(|error| format!("tls cert {}: {error}", tls.cert.display()))?;
        let key = std::fs::read(&tls.key)
            .map_err(|error| format!("tls key {}: {error}", tls.key.display()))?;
        if settings.http_listener.is_some() {
            http_tls = Some(crate::http::tls_acceptor(&cert, &key)?);
        }
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|error| format!("tls: {error}"))?;
        tracing::info!("TLS enabled");
    }
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    // Listening again on a listening socket sets its backlog (tokio binds with 128).
    socket2::SockRef::from(&listener)
        .listen(section.listen_backlog as i32)
        .map_err(|error| format!("listen backlog {}: {error}", section.listen_backlog))?;
    let incoming = connection::guarded_incoming(
        listener,
        section.max_connections,
        connection::ConnectionTimeouts {
            handshake: millis(section.handshake_timeout_ms),
            idle: millis(section.idle_timeout_ms),
        },
    );
    let token_reloader = extras.token_reloads.map(|mut reloads| {
        let authenticator = authenticator.clone();
        tokio::spawn(async move {
            while let Some(tokens) = reloads.recv().await {
                match authenticator.replace(&tokens) {
                    Ok(count) => tracing::info!(tokens = count, "tokens reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "tokens not reloaded: the previous ones stay in force")
                    }
                }
            }
        })
    });
    let gate = gate::GateLayer::new(gate::GateConfig {
        authenticator,
        message_bytes: section.message_bytes,
        post_invoices_message_bytes: section.post_invoices_message_bytes,
        public_message_bytes: section.public_message_bytes,
        request_memory_bytes: section.request_memory_bytes,
        public_request_memory_bytes: section.public_request_memory_bytes,
        request_body_timeout: millis(section.request_body_timeout_ms),
        call_settings: gate::CallSettings {
            subscriber_stall: millis(section.subscriber_stall_ms),
            read_events_page_bytes: section.read_events_page_bytes,
        },
    });
    let sweeper = tokio::spawn(crate::api::sweeper::run(
        handle.clone(),
        api.clock_guard(),
        Duration::from_secs(config.server.expiry_sweep_seconds.max(1)),
        stopping.clone(),
    ));
    let index_flusher = tokio::spawn(crate::api::index_flusher::run(
        handle.clone(),
        crate::api::index_flusher::IndexFlushPolicy::from_settings(
            config.server.index_flush_idle_ms,
            config.server.index_flush_age_seconds,
        ),
        stopping.clone(),
    ));
    let health_keeper = tokio::spawn(crate::api::health::keep_health_true(
        handle.clone(),
        health_reporter.clone(),
        SERVICE_NAMES.to_vec(),
        api.clock_guard().alarm_watch(),
    ));
    tracing::info!(%address, "serving gRPC");

    // The live report page, stopped with the rest and given the same grace.
    let mut grpc_ended: Option<tokio::sync::oneshot::Sender<()>> = None;
    let http_task = match settings.http_listener {
        Some(listener) => {
            let http_address = listener.local_addr().map_err(|error| error.to_string())?;
            let secure = http_tls.is_some();
            let router = crate::http::router(crate::http::HttpState::new(
                handle.clone(),
                http_authenticator,
                secure,
            ))
            .merge(crate::ops::metrics::router(Arc::clone(&metrics)));
            let mut http_stopping = stopping.clone();
            let (ended, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
            grpc_ended = Some(ended);
            // On shutdown, or if gRPC stops serving for any other reason.
            let http_shutdown = async move {
                tokio::select! {
                    _ = http_stopping.wait_for(|stopping| *stopping) => {}
                    _ = grpc_stopped => {}
                }
            };
            tracing::info!(address = %http_address, tls = secure, "serving the report page over HTTP");
            Some(tokio::spawn(crate::http::serve_http(
                listener,
                router,
                http_tls,
                Duration::from_secs(config.server.shutdown_grace_seconds),
                http_shutdown,
            )))
        }
        None => None,
    };

    // The gate authenticates and bounds every call before its body is read; each
    // service's own decoding limit is only a backstop behind the gate's per-method one.
    let (small, large) = (
        section.message_bytes,
        section
            .post_invoices_message_bytes
            .max(section.message_bytes),
    );
    let router = builder
        .layer(gate)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ProgrammeServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(RegistryServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(VoucherServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(redemption_route::RedemptionRoute::new(api.clone(), large))
        .add_service(LedgerServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(SettlementServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(ExportServiceServer::new(api.clone()).max_decoding_message_size(small))
        .add_service(
            ReconciliationServiceServer::new(api.clone())
                .max_decoding_message_size(crate::limits::RECONCILE_MESSAGE_BYTES),
        )
        .add_service(CheckpointServiceServer::new(api).max_decoding_message_size(small));
    let http = match extras.http_listener {
        Some(http_listener) => {
            let http_address = http_listener
                .local_addr()
                .map_err(|error| error.to_string())?;
            tracing::info!(address = %http_address, "serving /metrics over HTTP");
            let mut stopping_for_http = stopping.clone();
            let app = crate::ops::metrics::router(Arc::clone(&metrics));
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopping_for_http.wait_for(|stopping| *stopping).await;
                };
                if let Err(error) = axum::serve(http_listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(%error, "the HTTP server stopped");
                }
            }))
        }
        None => None,
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let mut stopping_for_grace = stopping.clone();
    let stop = async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight calls");
        let _ = stopping_sender.send(true);
    };
    let serve = router.serve_with_incoming_shutdown(incoming, stop);
    let grace_over = async move {
        let _ = stopping_for_grace
            .wait_for(|stopping| *stopping)
            .await
            .map(|_| ());
        tokio::time::sleep(grace).await;
    };
    // A client that never reads its stream would keep graceful shutdown waiting forever;
    // after the grace period its connection is dropped.
    let served = tokio::select! {
        served = serve => served,
        _ = grace_over => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over: closing the remaining connections");
            Ok(())
        }
    };
    drop(grpc_ended);
    if let Some(task) = http_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the report page stopped with an error"),
            Err(error) => tracing::warn!(%error, "the report page's task failed"),
        }
    }
    sweeper.abort();
    index_flusher.abort();
    health_keeper.abort();
    if let Some(reloader) = token_reloader {
        reloader.abort();
    }
    if let Some(http) = http {
        http.abort();
    }
    tracing::info!("draining the writer and writing a final snapshot");
    engine.shutdown().await;
    tracing::info!("stopped");
    served.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_section(toml_text: &str) -> Result<ServerSection, String> {
        toml::from_str::<ServerConfig>(toml_text)
            .map(|config| config.server)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn table_compression_is_none_unless_the_config_chooses_lz4() {
        assert_eq!(
            server_section("")
                .expect("an empty config")
                .table_compression,
            TableCompression::None
        );
        assert_eq!(
            server_section("[server]\ntable_compression = \"lz4\"")
                .expect("lz4 is accepted")
                .table_compression,
            TableCompression::Lz4
        );
        let refused = server_section("[server]\ntable_compression = \"zstd\"")
            .expect_err("zstd is not offered");
        assert!(
            refused.contains("zstd") && refused.contains("lz4"),
            "the error names the value and what is offered: {refused}"
        );
    }

    #[test]
    fn the_invoice_index_is_compacted_universally_unless_the_config_chooses_leveled() {
        assert_eq!(
            server_section("")
                .expect("an empty config")
                .invoice_index_compaction,
            IndexCompaction::Universal
        );
        assert_eq!(
            server_section("[server]\ninvoice_index_compaction = \"leveled\"")
                .expect("leveled is accepted")
                .invoice_index_compaction,
            IndexCompaction::Leveled
        );
        let refused = server_section("[server]\ninvoice_index_compaction = \"fifo\"")
            .expect_err("fifo is not offered");
        assert!(
            refused.contains("fifo") && refused.contains("leveled"),
            "the error names the value and what is offered: {refused}"
        );
    }

    #[test]
    fn the_block_cache_size_is_taken_within_its_bounds() {
        let section = |bytes: usize| {
            server_section(&format!("[server]\nblock_cache_bytes = {bytes}"))
                .expect("the config parses")
        };
        assert_eq!(
            server_section("")
                .expect("an empty config")
                .block_cache_bytes,
            crate::limits::BLOCK_CACHE_BYTES_DEFAULT
        );
        let larger = section(1 << 30);
        assert_eq!(larger.block_cache_bytes, 1 << 30);
        assert_eq!(larger.validate(), Ok(()));
        let too_small = section(1 << 20).validate().expect_err("1 MiB is refused");
        assert!(
            too_small.contains("block_cache_bytes = 1048576") && too_small.contains("at least"),
            "{too_small}"
        );
        let too_large = section(128 << 30)
            .validate()
            .expect_err("128 GiB is refused");
        assert!(too_large.contains("at most"), "{too_large}");
    }

    #[test]
    fn the_http2_windows_and_frame_size_are_taken_within_http2s_bounds() {
        let section = |settings: &str| {
            server_section(&format!("[server]\n{settings}")).expect("the config parses")
        };
        let default = server_section("").expect("an empty config");
        assert_eq!(
            (
                default.stream_window_bytes,
                default.connection_window_bytes,
                default.max_frame_bytes
            ),
            (4 << 20, 4 << 20, 256 << 10)
        );
        assert_eq!(default.validate(), Ok(()));
        let chosen = section(
            "stream_window_bytes = 1048576\nconnection_window_bytes = 8388608\nmax_frame_bytes = 16384",
        );
        assert_eq!(
            (
                chosen.stream_window_bytes,
                chosen.connection_window_bytes,
                chosen.max_frame_bytes
            ),
            (1 << 20, 8 << 20, 16_384)
        );
        assert_eq!(chosen.validate(), Ok(()));
        for (settings, named, bound) in [
            (
                "max_frame_bytes = 16383",
                "max_frame_bytes = 16383",
                "at least 16384",
            ),
            (
                "max_frame_bytes = 16777216",
                "max_frame_bytes = 16777216",
                "at most 16777215",
            ),
            (
                "stream_window_bytes = 65534",
                "stream_window_bytes = 65534",
                "at least 65535",
            ),
            (
                "stream_window_bytes = 2147483648\nconnection_window_bytes = 2147483648",
                "stream_window_bytes = 2147483648",
                "at most 2147483647",
            ),
            (
                "stream_window_bytes = 8388608\nconnection_window_bytes = 4194304",
                "connection_window_bytes = 4194304",
                "at least 8388608",
            ),
        ] {
            let refused = section(settings)
                .validate()
                .expect_err("outside HTTP/2's bounds");
            assert!(
                refused.contains(named) && refused.contains(bound),
                "{settings}: {refused}"
            );
        }
    }
}
