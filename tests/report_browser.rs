//! The bureau's report (issue 10) as a person sees it: rendered by headless Chromium
//! (Debian's `/usr/bin/chromium`, installed by scripts/prerequisites.sh), driven by
//! `playwright-core` from npm (installed once into the target directory, as
//! tests/interop.rs installs grpcio; it downloads no browser) running
//! `tests/browser/report.mjs`, which reports what it saw as JSON.
//!
//! - The file written by `voucher-ledger report`: every chart is there, the key totals
//!   read from the DOM equal the ledger's (computed here from `LedgerState`, not through
//!   the report's code), a legal name full of markup is shown as text, no request is
//!   made, and a screenshot is written.
//! - The live page of `serve`: no session redirects to the sign-in; a center's token is
//!   refused; the bureau's token gives an HttpOnly, SameSite=Strict cookie and the same
//!   report; signing out ends the session; every request goes to the test's own server.
//! - Without a browser: who gets which status, and the sign-in form's size limit.
//!
//! Every wait is bounded: the driver's own timeouts, and a deadline on the process.

mod support;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use voucher_ledger::api::server::{run, ServeSettings, ServerSection};
use voucher_ledger::domain::{
    Command as LedgerCommand, Envelope, FacilityTier, LedgerState, LegalName, ListingBasis, Money,
    ProgrammeYear, StatementState, Timestamp,
};
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::tooling::demo::{run_demo, DemoConfig};
use voucher_ledger::tooling::population::center_uscc;

const PLAYWRIGHT_VERSION: &str = "1.65.1";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest the driver may take for one page's whole story.
const DRIVER_DEADLINE: Duration = Duration::from_secs(90);
/// A legal name that is also markup: it must show as text and load nothing.
const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>&\"'算力<b>";

/// The charts every report has (reconciliation joins them once one is recorded).
const CHARTS: [&str; 6] = [
    "chart-pool-use",
    "chart-subsidy-by-tier",
    "chart-top-enterprises",
    "chart-centers-due-paid",
    "chart-settlement-status",
    "chart-receivables",
];

fn year() -> ProgrammeYear {
    ProgrammeYear::new(2026).expect("year")
}

/// playwright-core in the target directory, installed once (npm registry) and reused.
fn playwright() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser-playwright");
    let package = directory.join("node_modules/playwright-core");
    let ready = directory.join(format!(".ready-{PLAYWRIGHT_VERSION}"));
    if !ready.exists() {
        std::fs::create_dir_all(&directory).expect("playwright directory");
        let output = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&directory)
            .arg(format!("playwright-core@{PLAYWRIGHT_VERSION}"))
            .output()
            .expect("npm is installed");
        assert!(
            output.status.success(),
            "npm install playwright-core failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&ready, b"ok").expect("marker");
    }
    package
}

/// Runs the driver with `input` (plus where playwright and chromium are) and returns
/// what it reported. Kills it at the deadline.
fn drive(mut input: serde_json::Map<String, Value>) -> Value {
    let package = playwright();
    input.insert("playwright".into(), package.display().to_string().into());
    input.insert("chromium".into(), CHROMIUM.into());
    let mut child = Command::new("node")
        .arg("tests/browser/report.mjs")
        .arg(Value::Object(input).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    // Read both pipes on threads so a chatty driver cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > DRIVER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    );
    let status = status.unwrap_or_else(|| {
        panic!("the browser driver took over {DRIVER_DEADLINE:?}:\n{stdout}\n{stderr}")
    });
    assert!(
        status.success(),
        "the browser driver failed ({status}):\n{stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|error| panic!("driver output {line:?}: {error}"))
}

/// A small demo year (settled quarters, payments and a return, clawbacks, offsets and
/// repayments, expiry, the close) plus one center whose legal name is markup. Returns the
/// data directory and the figures the report must show, computed from the state here.
fn ledger_with_a_year() -> (tempfile::TempDir, Expected) {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
    let config = DemoConfig {
        seed: 7,
        year: 2026,
        centers: 8,
        enterprises: 200,
        contracts: 800,
        invoices: 20_000,
        ..Default::default()
    };
    run_demo(&mut ledger, &config, |_, _| {}).expect("demo");
    let at = Timestamp(ledger.state().last_time().0 + 1_000);
    let replies = ledger
        .submit(&[Envelope::new(
            at,
            LedgerCommand::RegisterCenter {
                center: center_uscc(900).expect("uscc"),
                name: LegalName::parse(HOSTILE_NAME).expect("a name with markup is a valid name"),
                tier: FacilityTier::Other,
                listing_basis: ListingBasis::MatchmakingPartner,
                capacity: Default::default(),
            },
        )])
        .expect("submit");
    assert!(replies[0].is_ok(), "{:?}", replies[0]);
    let expected = Expected::from_state(&ledger.state(), year());
    ledger.close().expect("close");
    (directory, expected)
}

/// The report's key totals (fen) and counts, from the ledger's projections directly.
#[derive(Debug)]
struct Expected {
    totals: BTreeMap<String, String>,
    counts: BTreeMap<String, String>,
    centers: usize,
}

impl Expected {
    fn from_state(state: &LedgerState, year: ProgrammeYear) -> Expected {
        let book = state.year(year).expect("the year has books");
        let usage = state.pool_usage(year);
        let pool = state.pool(year).expect("pool");
        let vouchers: Vec<_> = state
            .vouchers_sorted()
            .into_iter()
            .filter(|voucher| voucher.terms.year == year)
            .collect();
        let released = vouchers
            .iter()
            .fold(Money::ZERO, |sum, voucher| sum.plus(voucher.released));
        assert_eq!(
            released, book.released,
            "the vouchers' released add up to the year's"
        );
        let statements = state
            .statements_page(None, usize::MAX, usize::MAX, |statement| {
                statement.year == year
            })
            .0;
        let due = statements
            .iter()
            .filter(|statement| statement.state != StatementState::Paid)
            .fold(Money::ZERO, |sum, statement| sum.plus(statement.net));
        let payments: usize = statements
            .iter()
            .map(|statement| statement.payments.len())
            .sum();
        let returned = statements
            .iter()
            .flat_map(|statement| &statement.payments)
            .filter(|payment| payment.returned.is_some())
            .count();
        let outstanding = book
            .clawed_back
            .checked_minus(book.offset)
            .and_then(|left| left.checked_minus(book.repaid))
            .expect("clawed back covers what was recovered");
        let used = usage.held.plus(usage.redeemed).plus(usage.receivable);
        let free = pool.checked_minus(used).expect("the pool covers its use");
        let fen = |amount: Money| amount.to_fen_wide().to_string();
        let totals: BTreeMap<String, String> = [
            ("total-pool", pool),
            ("total-approved", book.approved),
            ("total-held", usage.held),
            ("total-redeemed", usage.redeemed),
            ("total-receivable", usage.receivable),
            ("total-free", free),
            ("total-released", released),
            ("total-granted", book.granted),
            ("total-reversed-unsettled", book.reversed_unsettled),
            ("total-unsettled", book.unsettled),
            ("total-in-open-statements", book.standing_open),
            ("total-in-paid-statements", book.standing_paid),
            ("total-clawed-back", book.clawed_back),
            ("total-offset", book.offset),
            ("total-repaid", book.repaid),
            ("total-outstanding", outstanding),
            ("total-due", due),
            ("total-paid", book.paid),
        ]
        .into_iter()
        .map(|(id, amount)| (id.to_string(), fen(amount)))
        .collect();
        let centers = state.centers().count();
        let counts: BTreeMap<String, String> = [
            ("count-vouchers", vouchers.len()),
            ("count-centers", centers),
            ("count-enterprises", state.enterprises_sorted().len()),
            ("count-statements", statements.len()),
            ("count-payments", payments),
            ("count-returned", returned),
        ]
        .into_iter()
        .map(|(id, count)| (id.to_string(), count.to_string()))
        .collect();
        // The demo year must exercise every part of the report, or the test proves little.
        for (what, amount) in [
            ("redeemed", usage.redeemed),
            ("released", released),
            ("clawed back", book.clawed_back),
            ("offset", book.offset),
            ("repaid", book.repaid),
            ("paid", book.paid),
            ("due", due),
        ] {
            assert!(!amount.is_zero(), "the demo year has nothing {what}");
        }
        assert!(returned > 0, "the demo year has a returned payment");
        Expected {
            totals,
            counts,
            centers,
        }
    }
}

/// The checks both pages share: charts, totals, counts, the hostile name, nothing loaded.
fn check_report_page(seen: &Value, expected: &Expected) {
    let charts: Vec<&str> = seen["charts"]
        .as_array()
        .expect("charts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(charts, CHARTS, "every chart, each an inline SVG");
    assert_eq!(seen["svgCount"], CHARTS.len(), "no other SVG in the charts");
    assert_eq!(
        seen["reconciliationNone"], true,
        "no reconciliation is recorded yet, and the page says so"
    );
    let read = |key: &str| -> BTreeMap<String, String> {
        seen[key]
            .as_object()
            .expect(key)
            .iter()
            .map(|(id, value)| (id.clone(), value.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    assert_eq!(
        read("totals"),
        expected.totals,
        "key totals in fen, from the DOM"
    );
    assert_eq!(read("counts"), expected.counts, "counts, from the DOM");
    // One point per day with events (the demo's year runs on a compressed clock).
    assert!(
        seen["poolPoints"].as_u64().unwrap_or(0) >= 2,
        "the pool's use over time: {}",
        seen["poolPoints"]
    );
    assert_eq!(
        seen["loadingElements"], 0,
        "nothing on the page can load anything"
    );
    let names: Vec<&str> = seen["centerNames"]
        .as_array()
        .expect("center names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), expected.centers);
    assert!(
        names.contains(&HOSTILE_NAME),
        "the name with markup is shown as text: {names:?}"
    );
    let title = seen["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("2026") && title.contains("年度报告"),
        "{title}"
    );
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        bytes.len() > 10_000 && bytes.starts_with(&[0x89, b'P', b'N', b'G', b'\r', b'\n'])
    })
}

#[test]
fn the_report_file_renders_in_chromium_with_every_chart_the_ledgers_totals_and_no_request() {
    let (data, expected) = ledger_with_a_year();
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("report.html");
    let written = Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args(["report", "--year", "2026", "--data-dir"])
        .arg(data.path())
        .arg("--out")
        .arg(&report)
        .output()
        .expect("run voucher-ledger report");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let html = std::fs::read_to_string(&report).expect("the report was written");
    assert!(
        !html.contains(HOSTILE_NAME),
        "the name is escaped in the HTML source"
    );
    for forbidden in [
        "http://", "https://", "<script", "<img", "<link", "@import", "url(",
    ] {
        // The SVG namespace is a name, not a request.
        let requests = html
            .replace("http://www.w3.org/2000/svg", "")
            .matches(forbidden)
            .count();
        assert_eq!(requests, 0, "the page holds {forbidden:?}");
    }

    let screenshot = out.path().join("report.png");
    let url = format!("file://{}", report.display());
    let mut input = serde_json::Map::new();
    input.insert("mode".into(), "file".into());
    input.insert("url".into(), url.clone().into());
    input.insert("screenshot".into(), screenshot.display().to_string().into());
    let seen = drive(input);

    let requests: Vec<&str> = seen["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(requests, [url.as_str()], "the page itself and nothing else");
    check_report_page(&seen["page"], &expected);
    assert!(is_png(&screenshot), "a screenshot was written");
}

/// A server on 127.0.0.1:0 (gRPC) with its report page on another 127.0.0.1:0.
struct PageServer {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl PageServer {
    async fn start(data: &Path) -> PageServer {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", http.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = ServeSettings {
            data_dir: data.to_path_buf(),
            config: support::test_config(ServerSection::default()),
            sync: true,
            http_listener: Some(http),
        };
        let task = tokio::spawn(run(grpc, settings, async move {
            let _ = stopped.await;
        }));
        PageServer {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the server stops in time");
        stopped.expect("join").expect("the server ran cleanly");
    }
}

/// One HTTP/1.1 request on a fresh connection: the status and the response's head.
async fn http(base: &str, request: String) -> (u16, String) {
    let address = base.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        // A refused request may be answered before it is all sent.
        let _ = stream.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).to_string();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string();
        (status, head)
    })
    .await
    .expect("request")
}

fn get(path: &str, token: Option<&str>) -> String {
    let authorization = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{authorization}Connection: close\r\n\r\n")
}

fn post_signin(body: &str) -> String {
    format!(
        "POST /signin HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_report_needs_a_bureau_sign_in_refuses_a_center_and_shows_the_ledgers_totals() {
    let (data, expected) = ledger_with_a_year();
    let server = PageServer::start(data.path()).await;
    let shots = tempfile::tempdir().expect("tempdir");
    let screenshot = shots.path().join("live.png");
    let mut input = serde_json::Map::new();
    input.insert("mode".into(), "live".into());
    input.insert("base".into(), server.base.clone().into());
    input.insert("year".into(), 2026.into());
    input.insert("bureauToken".into(), support::BUREAU.into());
    input.insert("centerToken".into(), support::CENTER_1.into());
    input.insert("screenshot".into(), screenshot.display().to_string().into());
    let seen = tokio::task::spawn_blocking(move || drive(input))
        .await
        .expect("driver");
    server.stop().await;
    let base = server_base(&seen);

    let no_session = &seen["noSession"];
    assert_eq!(no_session["redirectStatus"], 303, "{no_session}");
    assert_eq!(
        no_session["url"],
        format!("{base}/signin?next=/report/2026"),
        "no session: to the sign-in, and back after"
    );
    assert_eq!(no_session["form"], true);

    let center = &seen["center"];
    assert_eq!(
        center["status"], 403,
        "a center's token is refused: {center}"
    );
    assert!(center["message"]
        .as_str()
        .unwrap_or_default()
        .contains("Not allowed"));
    assert_eq!(center["cookies"], 0, "and gets no cookie");

    let bureau = &seen["bureau"];
    assert_eq!(bureau["signinStatus"], 303, "{bureau}");
    assert_eq!(bureau["url"], format!("{base}/report/2026"));
    assert_eq!(bureau["status"], 200);
    let cookies = bureau["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "one session cookie: {cookies:?}");
    assert_eq!(cookies[0]["name"], "voucher_ledger_session");
    assert_eq!(cookies[0]["httpOnly"], true);
    assert_eq!(cookies[0]["sameSite"], "Strict");
    assert_eq!(
        cookies[0]["secure"], false,
        "plain HTTP here: no Secure flag"
    );
    assert_eq!(cookies[0]["valueLength"], 64, "a 32-byte random id");
    assert_eq!(bureau["documentCookie"], "", "scripts cannot read it");
    assert!(
        bureau["csp"]
            .as_str()
            .is_some_and(|policy| policy.contains("default-src 'none'")),
        "{}",
        bureau["csp"]
    );
    check_report_page(&bureau["page"], &expected);
    assert!(is_png(&screenshot), "a screenshot was written");

    let signed_out = &seen["signedOut"];
    assert_eq!(
        signed_out["url"],
        format!("{base}/signin?next=/report/2026")
    );
    assert_eq!(signed_out["cookies"], 0, "{signed_out}");

    let requests = seen["requests"].as_array().expect("requests");
    assert!(requests.len() >= 6, "{requests:?}");
    for request in requests {
        let url = request.as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{base}/")),
            "only the test's own server is asked: {url}"
        );
    }
}

/// The base URL the driver used, from its first request.
fn server_base(seen: &Value) -> String {
    let first = seen["requests"][0].as_str().expect("a request");
    let after_scheme = first.find("://").map_or(0, |index| index + 3);
    let end = first[after_scheme..]
        .find('/')
        .map_or(first.len(), |index| after_scheme + index);
    first[..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_answers_each_caller_by_role_and_bounds_the_sign_in_form() {
    let (data, expected) = ledger_with_a_year();
    let server = PageServer::start(data.path()).await;
    let base = server.base.clone();

    // Nobody: to the sign-in. The sign-in form itself is public.
    let (status, head) = http(&base, get("/report/2026", None)).await;
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains("location: /signin?next=/report/2026"),
        "{head}"
    );
    assert_eq!(http(&base, get("/signin", None)).await.0, 200);
    assert_eq!(http(&base, get("/", None)).await.0, 303);

    // A bearer token works as well as a session, for the bureau and auditors only.
    let (status, head) = http(&base, get("/report/2026", Some(support::AUDITOR))).await;
    assert_eq!(status, 200, "{head}");
    for header in [
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
    ] {
        assert!(
            head.to_ascii_lowercase().contains(header),
            "{header}: {head}"
        );
    }
    for token in [support::CENTER_2, support::ENTERPRISE_1] {
        assert_eq!(http(&base, get("/report/2026", Some(token))).await.0, 403);
    }
    assert_eq!(
        http(&base, get("/report/2026", Some("not-a-token")))
            .await
            .0,
        401
    );

    // Years that are not there.
    assert_eq!(
        http(&base, get("/report/2031", Some(support::BUREAU)))
            .await
            .0,
        404
    );
    assert_eq!(
        http(&base, get("/report/20x6", Some(support::BUREAU)))
            .await
            .0,
        404
    );
    assert_eq!(
        http(&base, get("/elsewhere", Some(support::BUREAU)))
            .await
            .0,
        404
    );

    // Sign-in: a wrong token is 401, a center's 403 without a cookie, the bureau's a
    // cookie and a redirect that never leaves the server.
    let (status, head) = http(&base, post_signin("token=wrong&next=%2Freport%2F2026")).await;
    assert_eq!(status, 401, "{head}");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    let (status, head) = http(
        &base,
        post_signin(&format!(
            "token={}&next=%2Freport%2F2026",
            support::CENTER_1
        )),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    let (status, head) = http(
        &base,
        post_signin(&format!(
            "token={}&next=https%3A%2F%2Fevil.example%2F",
            support::BUREAU
        )),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains("location: /\r\n") || head.ends_with("location: /"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    let session = cookie
        .split_once(':')
        .map(|(_, value)| value.trim())
        .and_then(|value| value.split(';').next())
        .expect("name=value")
        .to_string();
    let with_cookie = format!(
        "GET /report/2026 HTTP/1.1\r\nHost: test\r\nCookie: {session}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http(&base, with_cookie.clone()).await.0, 200);
    let signout =
        format!("POST /signout HTTP/1.1\r\nHost: test\r\nCookie: {session}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(http(&base, signout).await.0, 303);
    assert_eq!(http(&base, with_cookie).await.0, 303, "the session is gone");

    // The form's size is bounded before it is read.
    let padding = "x".repeat(8 * 1024);
    let (status, _) = http(&base, post_signin(&format!("token={padding}"))).await;
    assert_eq!(status, 413, "an oversized sign-in form is refused");

    server.stop().await;
    assert!(expected.centers > 0);
}
