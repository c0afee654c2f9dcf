//! The server's HTTP side: the bureau's report served live and read-only, for a person
//! with a browser. gRPC stays the API; this serves pages.
//!
//! - `GET /report/{year}`: the report ([`crate::report`]) as the ledger stands, for the
//!   bureau and auditors: a session cookie, or `authorization: Bearer <token>` (curl).
//!   Without either: 303 to `/signin`. Another role: 403.
//! - `GET /signin`, `POST /signin`: a form that exchanges a bearer token (checked against
//!   the same SM3 token table as gRPC) for an HttpOnly, SameSite=Strict session cookie
//!   (Secure when TLS is on); see [`session`].
//! - `GET|POST /signout`: ends the session.
//! - `GET /`: the newest year's report (or the sign-in).
//!
//! [`router`] gives an `axum::Router` that other pages (metrics) can `merge`;
//! [`serve_http`] serves a router on a listener until shutdown. Everything is bounded:
//! connections, the time to send headers, a request's time and a connection's life, the
//! sign-in form's size, the session table; and one report is computed at a time.

pub mod pages;
pub mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Form, Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::auth::{Authenticator, Role};
use crate::domain::ProgrammeYear;
use crate::ledger::engine::EngineHandle;
use crate::limits::{
    HTTP_CONNECTION_LIFETIME, HTTP_HEADER_READ_TIMEOUT, HTTP_MAX_CONNECTIONS, HTTP_REQUEST_TIMEOUT,
    HTTP_SESSIONS_MAX, HTTP_SESSION_LIFETIME, HTTP_SIGNIN_BODY_BYTES, HTTP_TLS_HANDSHAKE_TIMEOUT,
};
use crate::report::html::{render, CONTENT_SECURITY_POLICY};
use crate::report::series::{pool_series, PoolPoint};
use crate::report::{Page, ReportFigures};
use session::SessionTable;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "voucher_ledger_session";

/// What the pages need: the ledger (read only), the token table, the sessions.
#[derive(Clone)]
pub struct HttpState {
    shared: Arc<Shared>,
}

struct Shared {
    engine: EngineHandle,
    authenticator: Authenticator,
    sessions: SessionTable,
    /// Cookies get the Secure flag (the page is served over TLS).
    secure_cookies: bool,
    /// The last report's data, reused while the ledger has not moved; the lock also
    /// makes reports computed one at a time.
    report_data: tokio::sync::Mutex<Option<Arc<ReportData>>>,
}

/// A year's figures and its pool series, as of one event.
struct ReportData {
    figures: ReportFigures,
    points: Vec<PoolPoint>,
}

impl HttpState {
    pub fn new(engine: EngineHandle, authenticator: Authenticator, secure_cookies: bool) -> Self {
        HttpState {
            shared: Arc::new(Shared {
                engine,
                authenticator,
                sessions: SessionTable::new(HTTP_SESSIONS_MAX, HTTP_SESSION_LIFETIME),
                secure_cookies,
                report_data: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Sessions held now (tests and metrics).
    pub fn sessions_open(&self) -> usize {
        self.shared.sessions.len()
    }
}

/// The report's routes, with their own limits and headers; merge other routers into it.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/signin",
            get(signin_form)
                .post(signin)
                .layer(DefaultBodyLimit::max(HTTP_SIGNIN_BODY_BYTES)),
        )
        .route(
            "/signout",
            get(signout)
                .post(signout)
                .layer(DefaultBodyLimit::max(HTTP_SIGNIN_BODY_BYTES)),
        )
        .route("/report/{year}", get(report))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(guard))
        .with_state(state)
}

/// Bounds every request's time and sets the headers every page needs: nothing may be
/// fetched or framed, nothing cached, no referrer.
async fn guard(request: Request, next: Next) -> Response {
    let mut response = match tokio::time::timeout(HTTP_REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                "超时",
                "Timed out",
                "The page took too long to prepare. Try again later.",
            ),
        ),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// Who is asking: a bearer token in `authorization`, else the session cookie.
enum Caller {
    Known {
        name: String,
        role: Role,
    },
    /// An `authorization` header with an unknown or malformed token.
    BadToken,
    Nobody,
}

impl HttpState {
    fn caller(&self, headers: &HeaderMap) -> Caller {
        if headers.contains_key(header::AUTHORIZATION) {
            return match self.shared.authenticator.authenticate_headers(headers) {
                Ok(principal) => Caller::Known {
                    name: principal.name,
                    role: principal.role,
                },
                Err(_) => Caller::BadToken,
            };
        }
        match session_id(headers).and_then(|id| self.shared.sessions.find(&id, Instant::now())) {
            Some(session) => Caller::Known {
                name: session.principal,
                role: session.role,
            },
            None => Caller::Nobody,
        }
    }

    /// The report data of `year` as of the ledger's durable state now: reused if the
    /// ledger has not moved since the last one, else computed (the pool's series
    /// streams the log, on a blocking thread).
    async fn report_data(&self, year: ProgrammeYear) -> Result<Arc<ReportData>, Response> {
        let unavailable = |what: String| {
            tracing::warn!(%year, problem = %what, "report page not available");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message("暂不可用", "Unavailable", &what),
            )
        };
        let mut cached = self.shared.report_data.lock().await;
        let (figures, _) = self
            .shared
            .engine
            .read(|state| ReportFigures::compute(state, year))
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        let Some(figures) = figures else {
            return Err(page(
                StatusCode::NOT_FOUND,
                pages::message(
                    "无此年度",
                    "No such year",
                    &format!("No policy was published for {year}."),
                ),
            ));
        };
        if let Some(data) = cached.as_ref() {
            if data.figures == figures {
                return Ok(Arc::clone(data));
            }
        }
        let reader = self.shared.engine.reader().clone();
        let until = figures.last_sequence;
        let points = tokio::task::spawn_blocking(move || pool_series(&reader, year, until))
            .await
            .map_err(|error| unavailable(error.to_string()))?
            .map_err(|error| unavailable(error.to_string()))?;
        let data = Arc::new(ReportData { figures, points });
        *cached = Some(Arc::clone(&data));
        Ok(data)
    }
}

/// The session id in the request's cookies, if any.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_string())
}

/// The `Set-Cookie` value that holds a session (or, with `None`, removes it).
fn session_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let mut built = cookie::Cookie::build((SESSION_COOKIE, id.unwrap_or("").to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    built = match id {
        Some(_) => built.max_age(cookie::time::Duration::seconds(
            HTTP_SESSION_LIFETIME.as_secs() as i64,
        )),
        None => built.max_age(cookie::time::Duration::ZERO),
    };
    // The id is hex and the attributes constant, so the value is always a valid header.
    HeaderValue::from_str(&built.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("voucher_ledger_session=; Max-Age=0"))
}

/// Where a sign-in may send the person on: only a report page of this server (never
/// another site), else the home page.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.strip_prefix("/report/").is_some_and(|year| {
                year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit())
            }) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

fn may_read_report(role: Role) -> bool {
    matches!(role, Role::Bureau | Role::Auditor)
}

fn forbidden(name: &str, role: Role) -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message(
            "无权查看",
            "Not allowed",
            &format!(
                "{name} ({}) may not view the bureau's report: only the bureau and auditors may.",
                role.name()
            ),
        ),
    )
}

fn bad_token() -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        pages::message(
            "令牌无效",
            "Unknown token",
            "The authorization header names no known bearer token.",
        ),
    )
}

async fn home(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    match state.caller(&headers) {
        Caller::Known { role, .. } if may_read_report(role) => {
            let (newest, _) = state
                .shared
                .engine
                .reader()
                .read(|ledger| ledger.policies().last().map(|policy| policy.year()));
            match newest {
                Some(year) => Redirect::to(&format!("/report/{year}")).into_response(),
                None => page(
                    StatusCode::NOT_FOUND,
                    pages::message(
                        "尚无年度",
                        "No programme year",
                        "No policy was published yet.",
                    ),
                ),
            }
        }
        Caller::Known { name, role } => forbidden(&name, role),
        Caller::BadToken => bad_token(),
        Caller::Nobody => Redirect::to("/signin").into_response(),
    }
}

async fn report(
    State(state): State<HttpState>,
    Path(year): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(year) = year
        .parse::<u32>()
        .ok()
        .filter(|_| year.len() == 4)
        .and_then(|number| ProgrammeYear::new(number).ok())
    else {
        return not_found().await;
    };
    let name = match state.caller(&headers) {
        Caller::Known { name, role } if may_read_report(role) => name,
        Caller::Known { name, role } => return forbidden(&name, role),
        Caller::BadToken => return bad_token(),
        Caller::Nobody => {
            return Redirect::to(&format!("/signin?next=/report/{year}")).into_response();
        }
    };
    let data = match state.report_data(year).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let signed_in_as = name;
    match render(
        &data.figures,
        &data.points,
        Page::Live {
            signed_in_as: &signed_in_as,
        },
    ) {
        Ok(body) => Html(body).into_response(),
        Err(error) => {
            tracing::error!(%error, "report page could not be drawn");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::message("出错", "Error", &error.to_string()),
            )
        }
    }
}

#[derive(Deserialize)]
struct SigninQuery {
    next: Option<String>,
}

async fn signin_form(Query(query): Query<SigninQuery>) -> Response {
    page(
        StatusCode::OK,
        pages::signin(&safe_next(query.next.as_deref()), None),
    )
}

#[derive(Deserialize)]
struct SigninForm {
    token: String,
    next: Option<String>,
}

async fn signin(State(state): State<HttpState>, Form(form): Form<SigninForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(principal) = state.shared.authenticator.principal_for_token(&form.token) else {
        return page(
            StatusCode::UNAUTHORIZED,
            pages::signin(&next, Some("未知令牌 Unknown token.")),
        );
    };
    if !may_read_report(principal.role) {
        tracing::info!(principal = %principal.name, role = principal.role.name(), "report sign-in refused");
        return forbidden(&principal.name, principal.role);
    }
    let id = state.shared.sessions.open(&principal, Instant::now());
    tracing::info!(principal = %principal.name, role = principal.role.name(), "report sign-in");
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(Some(&id), state.shared.secure_cookies),
    );
    response
}

async fn signout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        state.shared.sessions.close(&id);
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(None, state.shared.secure_cookies),
    );
    response
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::message("未找到", "Not found", "There is no such page."),
    )
}

/// TLS for the page, when the server has `[tls]`: the same certificate and key as gRPC.
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// Serves `router` on `listener` (HTTP/1.1, TLS if `tls`) until `shutdown` completes,
/// then lets requests in progress finish for at most `grace`.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(HTTP_MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit first: past the limit, connections wait in the listen backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.map_err(|error| error.to_string())?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_READ_TIMEOUT);
            let served = async {
                match tls {
                    None => {
                        let connection =
                            builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                        let _ = watcher.watch(connection).await;
                    }
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            HTTP_TLS_HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await;
                        if let Ok(Ok(stream)) = handshake {
                            let connection = builder
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                            let _ = watcher.watch(connection).await;
                        }
                    }
                }
            };
            // However busy, a connection ends; a browser reconnects.
            let _ = tokio::time::timeout(HTTP_CONNECTION_LIFETIME, served).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "http: grace period over, closing the remaining connections"
        );
    }
    Ok(())
}

/// A TLS acceptor for the page from the PEM certificate chain and key the gRPC server
/// uses.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certificates = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("http tls certificate: {error}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| format!("http tls key: {error}"))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| format!("http tls: {error}"))?
    .with_no_client_auth()
    .with_single_cert(certificates, key)
    .map_err(|error| format!("http tls: {error}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
