//! The gRPC server: `run(listener, settings, shutdown)` opens the ledger, starts the
//! engine, serves every service plus `grpc.health.v1` and reflection, and on `shutdown`
//! stops accepting, ends subscriptions, finishes in-flight calls, drains and syncs the
//! engine and writes a final snapshot. Tests drive it on `127.0.0.1:0`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::api::auth::{Authenticator, TokenEntry};
use crate::api::proto::{
    ledger_service_server::LedgerServiceServer, programme_service_server::ProgrammeServiceServer,
    redemption_service_server::RedemptionServiceServer,
    registry_service_server::RegistryServiceServer,
    settlement_service_server::SettlementServiceServer,
    voucher_service_server::VoucherServiceServer, FILE_DESCRIPTOR_SET,
};
use crate::api::services::Api;
use crate::ledger::engine::{Engine, EngineConfig};
use crate::ledger::{Ledger, LedgerOptions};

/// The gRPC services the server offers, by their health-check names.
const SERVICE_NAMES: [&str; 6] = [
    "voucher.v1.ProgrammeService",
    "voucher.v1.RegistryService",
    "voucher.v1.VoucherService",
    "voucher.v1.RedemptionService",
    "voucher.v1.LedgerService",
    "voucher.v1.SettlementService",
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Most open client connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Most commands waiting for the writer; beyond it calls get RESOURCE_EXHAUSTED.
    pub queue_commands: usize,
    /// Events between snapshots.
    pub snapshot_interval: u64,
    /// Seconds between expiry sweeps (vouchers whose term ended are released).
    pub expiry_sweep_seconds: u64,
    /// After SIGTERM, how long in-flight calls and streams may take before the remaining
    /// connections are closed (the writer is drained and synced either way).
    pub shutdown_grace_seconds: u64,
    /// The expiry sweep stops (and raises an alarm) when the clock is ahead of the last
    /// event, or of its previous sweep, by more than this many hours.
    pub expiry_clock_jump_limit_hours: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            max_connections: crate::limits::MAX_CONNECTIONS_DEFAULT,
            queue_commands: crate::limits::QUEUE_COMMANDS_DEFAULT,
            snapshot_interval: crate::limits::SNAPSHOT_INTERVAL_DEFAULT,
            expiry_sweep_seconds: crate::limits::EXPIRY_SWEEP_SECONDS_DEFAULT,
            shutdown_grace_seconds: crate::limits::SHUTDOWN_GRACE_SECONDS_DEFAULT,
            expiry_clock_jump_limit_hours: crate::limits::EXPIRY_CLOCK_JUMP_LIMIT_HOURS_DEFAULT,
        }
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
        // Relative TLS paths are relative to the config file.
        if let (Some(tls), Some(base)) = (config.tls.as_mut(), path.parent()) {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        Ok(config)
    }
}

pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub config: ServerConfig,
    /// fsync every commit; false only for tests.
    pub sync: bool,
}

/// Serves until `shutdown` completes, then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let config = settings.config;
    let authenticator = Authenticator::new(&config.tokens)?;
    if config.tokens.is_empty() {
        tracing::warn!("no tokens configured: every call will be UNAUTHENTICATED");
    }
    if !settings.sync {
        tracing::warn!("--no-sync: commits are NOT fsynced; acknowledged work can be lost on a crash. For tests only.");
    }
    let options = LedgerOptions {
        sync: settings.sync,
        snapshot_interval: config.server.snapshot_interval,
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
        "ledger opened"
    );
    for skipped in &report.snapshots_skipped {
        tracing::warn!(%skipped, "snapshot skipped");
    }
    let engine = Engine::start(
        ledger,
        EngineConfig {
            queue_commands: config.server.queue_commands,
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
    );

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
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| error.to_string())?;

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let cert = std::fs::read(&tls.cert)
            .map_err(|error| format!("tls cert {}: {error}", tls.cert.display()))?;
        let key = std::fs::read(&tls.key)
            .map_err(|error| format!("tls key {}: {error}", tls.key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|error| format!("tls: {error}"))?;
        tracing::info!("TLS enabled");
    }
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let incoming = limited_incoming(listener, config.server.max_connections.max(1));
    let sweeper = tokio::spawn(crate::api::sweeper::run(
        handle.clone(),
        api.clock_guard(),
        Duration::from_secs(config.server.expiry_sweep_seconds.max(1)),
        stopping.clone(),
    ));
    let health_keeper = tokio::spawn(crate::api::health::keep_health_true(
        handle.clone(),
        health_reporter.clone(),
        SERVICE_NAMES.to_vec(),
        api.clock_guard().alarm_watch(),
    ));
    tracing::info!(%address, "serving gRPC");

    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ProgrammeServiceServer::with_interceptor(
            api.clone(),
            authenticator.clone(),
        ))
        .add_service(RegistryServiceServer::with_interceptor(
            api.clone(),
            authenticator.clone(),
        ))
        .add_service(VoucherServiceServer::with_interceptor(
            api.clone(),
            authenticator.clone(),
        ))
        .add_service(RedemptionServiceServer::with_interceptor(
            api.clone(),
            authenticator.clone(),
        ))
        .add_service(LedgerServiceServer::with_interceptor(
            api.clone(),
            authenticator.clone(),
        ))
        .add_service(SettlementServiceServer::with_interceptor(
            api,
            authenticator,
        ));
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
    sweeper.abort();
    health_keeper.abort();
    tracing::info!("draining the writer and writing a final snapshot");
    engine.shutdown().await;
    tracing::info!("stopped");
    served.map_err(|error| error.to_string())
}

/// A TCP connection that holds one of `max_connections` permits while it is open.
pub struct LimitedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, buffer)
    }
    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }
    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections only while fewer than `limit` are open.
fn limited_incoming(
    listener: TcpListener,
    limit: usize,
) -> ReceiverStream<std::io::Result<LimitedStream>> {
    let semaphore = Arc::new(Semaphore::new(limit));
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = sender.closed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if sender
                        .send(Ok(LimitedStream {
                            inner: stream,
                            _permit: permit,
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    ReceiverStream::new(receiver)
}
