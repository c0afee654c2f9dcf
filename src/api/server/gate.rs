//! The gate every call passes before its service sees it. It runs on the request's
//! headers, before any byte of the body is read, and:
//!
//! - counts the call on its connection, for the idle timeouts of [`super::connection`];
//! - authenticates every call outside health and reflection (bearer token → a
//!   [`Principal`] in the request's extensions) and, for the calls whose request may be
//!   large (`PostInvoices`, `PostInvoicesBrief`), checks the caller's role, so that a
//!   caller who may not make the call never has its body read;
//! - bounds each request message by its method's limit, and what all calls together hold
//!   by a memory budget (one for authenticated calls, one for health and reflection):
//!   a call's headers from its start, and each message from the length it declares in its
//!   5-byte gRPC prefix, before its bytes are read (RESOURCE_EXHAUSTED otherwise);
//! - gives a request body a bounded time to arrive (DEADLINE_EXCEEDED otherwise);
//! - puts the [`CallSettings`] the services read in the request's extensions;
//! - gives every call a request id (the client's `x-request-id`, or a new UUID when it
//!   sent none or an unusable one), echoes it in the response's `x-request-id` header,
//!   runs the call inside a `request` span with the id, the principal and the method, and
//!   logs one line per call with them, the gRPC status and the time taken;
//! - and on the way out gives request-decoding failures their gRPC codes (a message that
//!   is no protobuf: INVALID_ARGUMENT, not INTERNAL; one over the limit:
//!   RESOURCE_EXHAUSTED, not OUT_OF_RANGE) and caps status messages and details.
//!
//! What requests hold in memory is therefore at most `request_memory_bytes` for
//! authenticated calls plus `public_request_memory_bytes` for health and reflection. A
//! unary call's message stays counted until its response is sent (its decoded form lives
//! that long); a streaming request counts its current message only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::body::Body;
use tonic::transport::server::TlsConnectInfo;
use tonic::Status;

use super::connection::{CallOnConnection, ConnectionInfo};
use super::redemption_route::{POST_INVOICES_BRIEF_PATH, POST_INVOICES_PATH};
use crate::api::auth::{Authenticator, Role};
use crate::limits::{STATUS_DETAILS_MAX_BYTES, STATUS_MESSAGE_MAX_BYTES};

/// Server settings the services read, from the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct CallSettings {
    /// How long a subscriber may accept nothing before its stream is ended.
    pub subscriber_stall: Duration,
    /// Most bytes of events in one `ReadEvents` page.
    pub read_events_page_bytes: usize,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            subscriber_stall: Duration::from_millis(crate::limits::SUBSCRIBER_STALL_MS_DEFAULT),
            read_events_page_bytes: crate::limits::READ_EVENTS_PAGE_BYTES_DEFAULT,
        }
    }
}

/// What the gate enforces.
pub struct GateConfig {
    pub authenticator: Authenticator,
    /// Largest request message of an authenticated call other than the batch calls
    /// (`PostInvoices`, `PostInvoicesBrief`).
    pub message_bytes: usize,
    pub post_invoices_message_bytes: usize,
    /// Largest request message of health and reflection.
    pub public_message_bytes: usize,
    /// Bytes of headers and request messages authenticated calls may hold together.
    pub request_memory_bytes: usize,
    /// The same for health and reflection (no token needed).
    pub public_request_memory_bytes: usize,
    pub request_body_timeout: Duration,
    pub call_settings: CallSettings,
}

const RECONCILE_CENTER_INVOICES: &str = "/voucher.v1.ReconciliationService/ReconcileCenterInvoices";
const RECONCILE_BANK_PAYMENTS: &str = "/voucher.v1.ReconciliationService/ReconcileBankPayments";

/// How one method is gated.
struct Rule {
    /// Whether the call needs a token.
    authenticated: bool,
    /// Roles checked on the headers, for calls whose request may be large.
    roles: Option<(&'static [Role], &'static str)>,
    message_bytes: usize,
    /// Whether its request body must arrive within the body timeout (not for the
    /// bidirectional reflection stream, whose requests come when the client asks).
    body_timeout: bool,
}

/// The tower layer over every service.
#[derive(Clone)]
pub struct GateLayer {
    shared: Arc<Shared>,
}

struct Shared {
    config: GateConfig,
    /// Request memory of authenticated calls.
    budget: Budget,
    /// Request memory of health and reflection.
    public_budget: Budget,
}

/// Bytes of request memory, as semaphore permits, and the setting that sizes them.
#[derive(Clone)]
struct Budget {
    bytes: Arc<Semaphore>,
    key: &'static str,
}

impl Budget {
    fn take(&self, path: &str, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, Status> {
        if bytes == 0 {
            return Ok(None);
        }
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        match Arc::clone(&self.bytes).try_acquire_many_owned(permits) {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                tracing::warn!(
                    path,
                    bytes,
                    budget = self.key,
                    "request memory in use: call refused"
                );
                Err(Status::resource_exhausted(format!(
                    "{path}: the server holds as many request bytes as it may ({}); retry later",
                    self.key
                )))
            }
        }
    }
}

impl GateLayer {
    pub fn new(config: GateConfig) -> GateLayer {
        let budget = |bytes, key| Budget {
            bytes: Arc::new(Semaphore::new(bytes)),
            key,
        };
        GateLayer {
            shared: Arc::new(Shared {
                budget: budget(config.request_memory_bytes, "request_memory_bytes"),
                public_budget: budget(
                    config.public_request_memory_bytes,
                    "public_request_memory_bytes",
                ),
                config,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl Shared {
    fn rule(&self, path: &str) -> Rule {
        let config = &self.config;
        if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
            return Rule {
                authenticated: false,
                roles: None,
                message_bytes: config.public_message_bytes,
                body_timeout: !path.starts_with("/grpc.reflection."),
            };
        }
        // Both batch calls take the same request, so the same limit and roles.
        if path == POST_INVOICES_PATH || path == POST_INVOICES_BRIEF_PATH {
            return Rule {
                authenticated: true,
                roles: Some((&[Role::Bureau, Role::Center], "post invoices")),
                message_bytes: config.post_invoices_message_bytes,
                body_timeout: true,
            };
        }
        // A file upload: up to the reconciliation file limit, from those who may send one.
        if path == RECONCILE_CENTER_INVOICES || path == RECONCILE_BANK_PAYMENTS {
            let roles: (&'static [Role], &'static str) = if path == RECONCILE_CENTER_INVOICES {
                (
                    &[Role::Bureau, Role::Center],
                    "reconcile a center's invoices",
                )
            } else {
                (&[Role::Bureau], "reconcile bank payments")
            };
            return Rule {
                authenticated: true,
                roles: Some(roles),
                message_bytes: crate::limits::RECONCILE_MESSAGE_BYTES,
                body_timeout: true,
            };
        }
        Rule {
            authenticated: true,
            roles: None,
            message_bytes: config.message_bytes,
            body_timeout: true,
        }
    }
}

/// What one call holds until both its request and its response are done: its place on
/// the connection and its share of the request memory.
struct Call {
    _connection: Option<CallOnConnection>,
    permits: parking_lot::Mutex<Vec<OwnedSemaphorePermit>>,
}

type GateFuture<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Gate<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = GateFuture<S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let started = std::time::Instant::now();
        let request_id = request_id_of(request.headers());
        let shared = &self.shared;
        let extensions = request.extensions();
        let connection = extensions
            .get::<ConnectionInfo>()
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<ConnectionInfo>>()
                    .map(TlsConnectInfo::get_ref)
            })
            .map(|info| info.state.call_started());
        let call = Arc::new(Call {
            _connection: connection,
            permits: parking_lot::Mutex::new(Vec::new()),
        });
        let rule = shared.rule(request.uri().path());
        if rule.authenticated {
            let checked = shared
                .config
                .authenticator
                .authenticate_headers(request.headers())
                .and_then(|principal| match rule.roles {
                    Some((roles, what)) => principal.require_role(roles, what).map(|()| principal),
                    None => Ok(principal),
                });
            match checked {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(status) => {
                    let mut response = finish(status.into_http(), call);
                    let caller = AccessLog {
                        request_id,
                        principal: "-".into(),
                        method: Arc::from(request.uri().path()),
                        started,
                    };
                    caller.respond(&mut response);
                    return Box::pin(std::future::ready(Ok(response)));
                }
            }
        }
        let access = AccessLog {
            principal: request
                .extensions()
                .get::<crate::api::auth::Principal>()
                .map_or_else(
                    || "anonymous".to_string(),
                    |principal| format!("{}:{}", principal.role.name(), principal.name),
                ),
            request_id,
            method: Arc::from(request.uri().path()),
            started,
        };
        let path: Arc<str> = Arc::from(request.uri().path());
        let budget = if rule.authenticated {
            &shared.budget
        } else {
            &shared.public_budget
        };
        // Headers as HTTP/2 counts them: name, value and 32 bytes each.
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum::<usize>()
            + path.len();
        match budget.take(&path, header_bytes) {
            Ok(permit) => call.permits.lock().extend(permit),
            Err(status) => {
                let mut response = finish(status.into_http(), call);
                access.respond(&mut response);
                return Box::pin(std::future::ready(Ok(response)));
            }
        }
        request.extensions_mut().insert(shared.config.call_settings);
        let budget = budget.clone();
        let deadline = rule.body_timeout.then(|| {
            (
                Box::pin(tokio::time::sleep(shared.config.request_body_timeout)),
                shared.config.request_body_timeout,
            )
        });
        let call_for_body = Arc::clone(&call);
        let request = request.map(|body| {
            Body::new(RequestBody {
                inner: body,
                path,
                limit: rule.message_bytes,
                budget,
                current: None,
                call: call_for_body,
                deadline,
                prefix: [0; 5],
                prefix_read: 0,
                remaining: 0,
                failed: false,
            })
        });
        let span = tracing::info_span!(
            "request",
            request_id = %access.request_id,
            principal = %access.principal,
            method = %access.method,
        );
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let response = response.await?;
                let mut response = finish(response, call);
                access.respond(&mut response);
                Ok(response)
            },
            span,
        ))
    }
}

/// Longest request id taken from a client, in bytes (as the log's origins keep it).
const REQUEST_ID_MAX_BYTES: usize = crate::domain::origin::REQUEST_ID_MAX_BYTES;

/// The client's `x-request-id` if it is one the log could record (visible ASCII, at most
/// 128 bytes), else a new UUID.
fn request_id_of(headers: &HeaderMap) -> Arc<str> {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|text| {
            !text.is_empty()
                && text.len() <= REQUEST_ID_MAX_BYTES
                && text.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()), Arc::from)
}

/// One call as the access log sees it.
struct AccessLog {
    request_id: Arc<str>,
    principal: String,
    method: Arc<str>,
    started: std::time::Instant,
}

impl AccessLog {
    /// Echoes the request id in the response and logs the call's line. The status is the
    /// one in the response's headers (a trailers-only answer: every error tonic sends
    /// before a message); a response that streams messages is logged as OK here.
    fn respond(&self, response: &mut http::Response<Body>) {
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        let status = response
            .headers()
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<i32>().ok())
            .map_or(tonic::Code::Ok, tonic::Code::from_i32);
        tracing::info!(
            request_id = %self.request_id,
            principal = %self.principal,
            method = %self.method,
            grpc_status = ?status,
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "call"
        );
    }
}

/// The response as sent: its status normalised, its body holding the call until done.
fn finish(response: http::Response<Body>, call: Arc<Call>) -> http::Response<Body> {
    let (mut parts, body) = response.into_parts();
    normalise_status(&mut parts.headers);
    let body = Body::new(ResponseBody {
        inner: body,
        _call: call,
    });
    http::Response::from_parts(parts, body)
}

/// A request body checked as it is read: each message's declared length against the
/// method's limit and the request memory, and the time it takes to arrive.
struct RequestBody {
    inner: Body,
    path: Arc<str>,
    limit: usize,
    budget: Budget,
    /// The request memory of the message being read (or the last one read).
    current: Option<OwnedSemaphorePermit>,
    call: Arc<Call>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    /// The 5-byte gRPC prefix of the next message, as far as read.
    prefix: [u8; 5],
    prefix_read: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
    failed: bool,
}

impl RequestBody {
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let taken = self.remaining.min(data.len());
                self.remaining -= taken;
                data = &data[taken..];
                continue;
            }
            let taken = (5 - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + taken].copy_from_slice(&data[..taken]);
            self.prefix_read += taken;
            data = &data[taken..];
            if self.prefix_read < 5 {
                break;
            }
            self.prefix_read = 0;
            let [_, a, b, c, d] = self.prefix;
            let length = u32::from_be_bytes([a, b, c, d]) as usize;
            if length > self.limit {
                return Err(Status::resource_exhausted(format!(
                    "{}: a request message of {length} bytes is above the limit of {} bytes",
                    self.path, self.limit
                )));
            }
            // The previous message of a stream has been decoded: it no longer counts.
            self.current = None;
            self.current = self.budget.take(&self.path, length)?;
            self.remaining = length;
        }
        Ok(())
    }
}

impl Drop for RequestBody {
    /// A unary request's message is decoded by now but lives on in its handler: it counts
    /// until the call's response is done.
    fn drop(&mut self) {
        if let Some(permit) = self.current.take() {
            self.call.permits.lock().push(permit);
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = this.scan(data) {
                        this.failed = true;
                        return Poll::Ready(Some(Err(status)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Pending => {
                if let Some((sleep, timeout)) = this.deadline.as_mut() {
                    if sleep.as_mut().poll(context).is_ready() {
                        let timeout = *timeout;
                        this.failed = true;
                        this.deadline = None;
                        return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                            "{}: the request did not arrive within {} ms \
                             (request_body_timeout_ms)",
                            this.path,
                            timeout.as_millis()
                        )))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its call until it is done, and normalises the status in
/// its trailers.
struct ResponseBody {
    inner: Body,
    _call: Arc<Call>,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    normalise_status(&mut trailers);
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Request-decoding failures that tonic reports as INTERNAL but that are the client's:
/// bytes that are no protobuf message, a truncated message, no message at all.
const CLIENT_DECODING_ERRORS: [&str; 3] = [
    "failed to decode Protobuf message",
    "Unexpected EOF decoding stream",
    "Missing request message",
];

/// Gives decoding failures their gRPC codes and caps the message and details.
fn normalise_status(headers: &mut HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<i32>().ok())
    else {
        return;
    };
    if code == tonic::Code::Ok as i32 {
        return;
    }
    let message = headers
        .get("grpc-message")
        .map(|value| percent_decode(value.as_bytes()))
        .unwrap_or_default();
    let remapped = match tonic::Code::from_i32(code) {
        tonic::Code::Internal
            if CLIENT_DECODING_ERRORS
                .iter()
                .any(|prefix| message.starts_with(prefix)) =>
        {
            Some(tonic::Code::InvalidArgument)
        }
        tonic::Code::OutOfRange
            if message.starts_with("Error, decoded message length too large") =>
        {
            Some(tonic::Code::ResourceExhausted)
        }
        _ => None,
    };
    if let Some(code) = remapped {
        headers.insert("grpc-status", HeaderValue::from(code as i32));
    }
    if message.len() > STATUS_MESSAGE_MAX_BYTES {
        let capped = crate::api::errors::capped(message);
        if let Ok(value) = HeaderValue::from_str(&percent_encode(&capped)) {
            headers.insert("grpc-message", value);
        }
    }
    if headers
        .get("grpc-status-details-bin")
        .is_some_and(|details| details.len() > STATUS_DETAILS_MAX_BYTES)
    {
        headers.remove("grpc-status-details-bin");
    }
}

/// `grpc-message` encoding: bytes outside printable ASCII, and '%', as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &[u8]) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        if let (b'%', Some(&high), Some(&low)) =
            (text[index], text.get(index + 1), text.get(index + 2))
        {
            if let (Some(high), Some(low)) = (hex(high), hex(low)) {
                out.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        out.push(text[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        for text in ["plain", "100% sure", "名字 ünïcode\n"] {
            assert_eq!(percent_decode(percent_encode(text).as_bytes()), text);
        }
    }

    #[test]
    fn decoding_failures_get_their_codes_and_long_messages_are_cut() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(13));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("failed to decode Protobuf message: invalid varint"),
        );
        normalise_status(&mut headers);
        assert_eq!(headers["grpc-status"], "3");

        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(13));
        headers.insert(
            "grpc-message",
            HeaderValue::from_str(&"x".repeat(100_000)).expect("header"),
        );
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_str(&"A".repeat(100_000)).expect("header"),
        );
        normalise_status(&mut headers);
        assert_eq!(headers["grpc-status"], "13", "other INTERNAL errors stay");
        assert!(headers["grpc-message"].len() <= STATUS_MESSAGE_MAX_BYTES);
        assert!(headers.get("grpc-status-details-bin").is_none());
    }
}
