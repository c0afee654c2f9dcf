//! `voucher-ledger serve`: the product. Loads the config, installs the log (text or
//! JSON), binds the listen address, prints one machine-readable "listening on" line for
//! scripts and tests that listen on port 0, binds the HTTP address (the report page and
//! `/metrics`; printed likewise), and runs [`crate::api::server::run_with`] until SIGINT or
//! SIGTERM, which stop it gracefully. SIGHUP reloads the config's tokens.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::api::auth::TokenEntry;
use crate::api::server::{ServeExtras, ServeSettings, ServerConfig};
use crate::cli::CliError;

pub fn run(
    data_dir: PathBuf,
    listen: &str,
    http: Option<&str>,
    config_path: &Path,
    log_format: &str,
    sync: bool,
) -> Result<ExitCode, CliError> {
    init_logging(log_format)?;
    let config = ServerConfig::load(config_path).map_err(CliError::Config)?;
    tracing::info!(config = %config_path.display(), tokens = config.tokens.len(), "configuration loaded");
    // Before the runtime, the store and the ledger fault any memory in.
    if !config.server.transparent_huge_pages {
        if crate::storage::heap::disable_transparent_huge_pages() {
            tracing::info!("transparent huge pages are off for this process");
        } else {
            tracing::warn!(
                "transparent huge pages could not be turned off; the system's policy applies"
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| CliError::Listen {
                address: listen.to_string(),
                source,
            })?;
        let http_listener = bind_http(http, config.server.http.as_deref()).await?;
        // Machine-readable lines for scripts and tests that listen on port 0. The gRPC line
        // comes last: a reader may stop reading (and close the pipe) once it has it, so
        // nothing is printed after it, and a closed pipe is never a reason to fail.
        let mut out = std::io::stdout();
        if let Some(address) = http_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
        {
            let _ = writeln!(out, "voucher-ledger report page on http://{address}/");
        }
        if let Ok(address) = listener.local_addr() {
            let _ = writeln!(out, "{}{address}", crate::tooling::LISTENING_LINE_PREFIX);
        }
        let _ = out.flush();
        let settings = ServeSettings {
            data_dir,
            config,
            sync,
            http_listener,
        };
        let extras = ServeExtras {
            // The one HTTP listener (settings.http_listener) serves /metrics too.
            http_listener: None,
            token_reloads: Some(reload_tokens_on_sighup(config_path.to_path_buf())),
            metrics: None,
        };
        crate::api::server::run_with(listener, settings, extras, shutdown_signal())
            .await
            .map_err(CliError::Server)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Binds the report page's address: `--http`, else the config's `server.http`, else
/// the default. Empty: no page. An address that was asked for must bind; the default
/// may be taken (another server, a test), which leaves the page off with a warning.
async fn bind_http(
    flag: Option<&str>,
    configured: Option<&str>,
) -> Result<Option<tokio::net::TcpListener>, CliError> {
    let (address, asked) = match flag.or(configured) {
        Some(address) => (address, true),
        None => (crate::limits::HTTP_ADDRESS_DEFAULT, false),
    };
    if address.is_empty() {
        return Ok(None);
    }
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(source) if asked => Err(CliError::Listen {
            address: address.to_string(),
            source,
        }),
        Err(error) => {
            tracing::warn!(%address, %error, "the report page is off: its default address is taken (set --http)");
            Ok(None)
        }
    }
}

fn init_logging(format: &str) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or journal gets plain text
    // (escape codes there are noise to grep and cost a little on every access line).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().try_init().map_err(CliError::Logging),
        "text" => builder.try_init().map_err(CliError::Logging),
        other => Err(CliError::LogFormat(other.to_string())),
    }
}

/// On every SIGHUP, reads the config file again and sends its tokens to the server
/// (which keeps its connections and the other settings; those need a restart).
fn reload_tokens_on_sighup(config_path: PathBuf) -> tokio::sync::mpsc::Receiver<Vec<TokenEntry>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Installed before serving starts, so a SIGHUP never finds the default action
        // (which would end the process).
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        match ServerConfig::load(&config_path) {
                            Ok(config) => {
                                tracing::info!(config = %config_path.display(), "SIGHUP: reloading the tokens");
                                if sender.send(config.tokens).await.is_err() {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::error!(%error, "SIGHUP: the config does not load; the tokens stay as they were")
                            }
                        }
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: tokens are not reloadable")
            }
        }
    }
    #[cfg(not(unix))]
    drop((sender, config_path));
    receiver
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
