//! Connections: at most `max_connections` open at once, and none held by a client that
//! does nothing. Each accepted socket is a [`GuardedStream`] that holds a permit while it
//! is open and closes itself (end of file to the HTTP/2 layer) when
//!
//! - no call has started within `handshake_timeout` of the accept (a socket that sends
//!   nothing, only the HTTP/2 preface, or never finishes its TLS handshake), or
//! - no call has been in progress for `idle_timeout`.
//!
//! Calls are counted by the gate ([`super::gate`]), which finds the connection's
//! [`ConnectionState`] in the request's [`ConnectionInfo`]. A vanished peer with a call
//! open is found by HTTP/2 keepalive pings, which the server builder configures.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a connection may do nothing.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionTimeouts {
    /// From the accept to the first call.
    pub handshake: Duration,
    /// With no call in progress.
    pub idle: Duration,
}

/// What one connection is doing, shared by its stream and the gate that counts its calls.
#[derive(Debug)]
pub struct ConnectionState {
    accepted: Instant,
    started: AtomicBool,
    calls: AtomicUsize,
    /// Milliseconds after `accepted` when the last call ended.
    idle_since_ms: AtomicU64,
}

impl ConnectionState {
    fn new() -> ConnectionState {
        ConnectionState {
            accepted: Instant::now(),
            started: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// A call started on this connection; it counts until [`CallOnConnection`] is dropped.
    pub fn call_started(self: &Arc<Self>) -> CallOnConnection {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.started.store(true, Ordering::SeqCst);
        CallOnConnection(Arc::clone(self))
    }

    /// When the connection is to be closed if nothing changes; `None` while a call is in
    /// progress.
    fn deadline(&self, timeouts: &ConnectionTimeouts) -> Option<Instant> {
        if !self.started.load(Ordering::SeqCst) {
            return Some(self.accepted + timeouts.handshake);
        }
        if self.calls.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle_since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.accepted + idle_since + timeouts.idle)
    }
}

/// One call in progress on a connection; dropping it ends the call.
#[derive(Debug)]
pub struct CallOnConnection(Arc<ConnectionState>);

impl Drop for CallOnConnection {
    fn drop(&mut self) {
        let state = &self.0;
        let elapsed = state.accepted.elapsed().as_millis() as u64;
        state.idle_since_ms.fetch_max(elapsed, Ordering::SeqCst);
        state.calls.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connect info of a [`GuardedStream`], in every request's extensions (inside
/// `TlsConnectInfo` when TLS is on).
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub state: Arc<ConnectionState>,
}

/// A TCP connection that holds one of `max_connections` permits while it is open and
/// ends itself when it has done nothing for too long (see the module comment).
pub struct GuardedStream {
    inner: TcpStream,
    state: Arc<ConnectionState>,
    timeouts: ConnectionTimeouts,
    timer: Pin<Box<Sleep>>,
    closed: bool,
    _permit: OwnedSemaphorePermit,
}

impl GuardedStream {
    /// Whether the connection has been idle past its deadline; arms the timer otherwise.
    fn poll_expired(&mut self, context: &mut Context<'_>) -> bool {
        loop {
            let now = Instant::now();
            let deadline = match self.state.deadline(&self.timeouts) {
                Some(deadline) => deadline,
                // A call is in progress: look again after an idle period at the latest.
                None if self.timer.deadline() > now => self.timer.deadline(),
                None => now + self.timeouts.idle,
            };
            if deadline <= now {
                return true;
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(context).is_pending() {
                return false;
            }
        }
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = ConnectionInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.inner.connect_info(),
            state: Arc::clone(&self.state),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(context, buffer) {
            return Poll::Ready(read);
        }
        if this.poll_expired(context) {
            // End of file: the HTTP/2 (or TLS) layer ends the connection and drops it,
            // which closes the socket and frees the permit.
            this.closed = true;
            let started = this.state.started.load(Ordering::SeqCst);
            tracing::debug!(
                peer = ?this.inner.peer_addr().ok(),
                reason = if started { "idle" } else { "no call started" },
                "closing a connection that does nothing"
            );
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl AsyncWrite for GuardedStream {
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

/// Accepts connections only while fewer than `limit` are open; further ones wait in the
/// listen backlog until one closes.
pub fn guarded_incoming(
    listener: TcpListener,
    limit: usize,
    timeouts: ConnectionTimeouts,
) -> ReceiverStream<std::io::Result<GuardedStream>> {
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
                    let state = Arc::new(ConnectionState::new());
                    let guarded = GuardedStream {
                        inner: stream,
                        timer: Box::pin(tokio::time::sleep_until(
                            state.accepted + timeouts.handshake,
                        )),
                        state,
                        timeouts,
                        closed: false,
                        _permit: permit,
                    };
                    if sender.send(Ok(guarded)).await.is_err() {
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
