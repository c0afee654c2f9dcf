//! Issue 8 end to end over gRPC, against the real server on 127.0.0.1:0: a quarter's
//! invoices, a settlement run, payments confirmed, a bounced payment, a clawback
//! recovered by offset and one by repayment, the pool adjusted and the year closed; then
//! the data directory verifies clean. Also the retry rules (approvals, reversed invoices,
//! canonical contract and invoice numbers) over the wire.
//!
//! The server's clock is the real clock, so the year that is closed is last year (the
//! year of today minus one): its policy gets a redemption grace long enough that a
//! fourth-quarter voucher is still redeemable today (every invoice of the quarter is a
//! late one, posted after the term within the grace), while a first-quarter voucher's
//! window is already over (it cannot even be approved any more). The close needs every
//! voucher of the year past its window, so the quarter's vouchers are cancelled first
//! (their contracts end early).

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;

use support::*;
use tonic::{Code, Response, Status};
use voucher_ledger::api::proto::*;
use voucher_ledger::domain::Date;

// ------------------------------------------------------------------------ helpers

/// "1234.56" as fen.
fn fen(text: &str) -> i64 {
    let (whole, cents) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("{text:?} has no decimals"));
    assert_eq!(cents.len(), 2, "{text:?} has two decimals");
    let whole: i64 = whole.parse().expect("yuan");
    let cents: i64 = cents.parse().expect("fen");
    whole * 100 + cents
}

/// Fen as "1234.56".
fn yuan(fen: i64) -> String {
    assert!(fen >= 0, "{fen}");
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn date(year: i32, month: u32, day: u32) -> Date {
    Date::from_ymd(year, month, day).expect("date")
}

/// A business rejection: the status code and the stable reason in ErrorInfo.
#[track_caller]
fn refused<T: Debug>(result: Result<Response<T>, Status>, code: Code, reason: &str) -> Status {
    let status = result.expect_err(reason);
    assert_eq!(status.code(), code, "{reason}: {status:?}");
    assert_eq!(
        error_reason(&status).as_deref(),
        Some(reason),
        "ErrorInfo reason: {status:?}"
    );
    status
}

/// A malformed request: INVALID_ARGUMENT naming the field.
#[track_caller]
fn invalid<T: Debug>(result: Result<Response<T>, Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        status.message().starts_with(&format!("invalid {field}:")),
        "the message names {field}: {}",
        status.message()
    );
}

#[track_caller]
fn code_of<T: Debug>(result: Result<Response<T>, Status>, code: Code, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
}

const CENTER_NAMES: [&str; 3] = [
    "West Lake Compute",
    "Qiantang AI Center",
    "Yuhang MaaS Park",
];

/// Subsidy rate per center, in percent: 1 domestic, 2 other, 3 MaaS multimodal.
fn rate_percent(center: usize) -> i64 {
    match center {
        1 | 3 => 30,
        2 => 20,
        _ => unreachable!(),
    }
}

fn invoice(center: usize, voucher: &str, number: &str, amount: &str, issued: Date) -> Invoice {
    Invoice {
        center: center_code(center),
        voucher_id: voucher.to_string(),
        invoice_number: number.to_string(),
        amount: amount.to_string(),
        issue_date: issued.to_string(),
        delivery_proof: format!("acceptance/{number}"),
        invoice_code: String::new(),
        payment_proof: String::new(),
    }
}

/// One accepted invoice of the closed year, as the test expects the ledger to hold it.
#[derive(Clone, Debug)]
struct Posted {
    center: usize,
    number: String,
    voucher: String,
    amount: i64,
    subsidy: i64,
    sequence: u64,
    /// Reversed before it was in a statement: never settled.
    reversed_unsettled: bool,
    /// Reversed after it was in a statement: a clawback.
    clawed_back: bool,
    statement: u64,
}

#[derive(Default)]
struct Book {
    posted: Vec<Posted>,
}

impl Book {
    /// Checks an accepted invoice's answer (subsidy = rate x amount rounded down, and
    /// subsidy + enterprise_pays = amount) and records it.
    #[track_caller]
    fn accept(&mut self, item: &Invoice, center: usize, answer: &PostInvoiceResponse) {
        let amount = fen(&item.amount);
        let subsidy = amount * rate_percent(center) / 100;
        assert!(!answer.duplicate && !answer.reversed, "{answer:?}");
        assert_eq!(answer.subsidy, yuan(subsidy), "{item:?}");
        assert_eq!(
            fen(&answer.subsidy) + fen(&answer.enterprise_pays),
            amount,
            "subsidy + enterprise_pays = amount: {answer:?}"
        );
        let number = if item.invoice_code.is_empty() {
            item.invoice_number.clone()
        } else {
            format!("{}-{}", item.invoice_code, item.invoice_number)
        };
        self.posted.push(Posted {
            center,
            number,
            voucher: item.voucher_id.clone(),
            amount,
            subsidy,
            sequence: answer.sequence,
            reversed_unsettled: false,
            clawed_back: false,
            statement: 0,
        });
    }

    fn get(&mut self, center: usize, number: &str) -> &mut Posted {
        self.posted
            .iter_mut()
            .find(|posted| posted.center == center && posted.number == number)
            .unwrap_or_else(|| panic!("no invoice {number} of center {center}"))
    }

    fn unsettled(&self, center: usize) -> impl Iterator<Item = &Posted> {
        self.posted.iter().filter(move |posted| {
            posted.center == center && posted.statement == 0 && !posted.reversed_unsettled
        })
    }

    /// (count, gross subsidy) of what a run would settle for `center` now.
    fn to_settle(&self, center: usize) -> (u64, i64) {
        self.unsettled(center)
            .fold((0, 0), |(count, gross), posted| {
                (count + 1, gross + posted.subsidy)
            })
    }

    fn settle(&mut self, center: usize, statement: u64) {
        for posted in self.posted.iter_mut() {
            if posted.center == center && posted.statement == 0 && !posted.reversed_unsettled {
                posted.statement = statement;
            }
        }
    }

    /// Subsidy that stands for `center` (0 = every center): granted, less reversals.
    fn standing(&self, center: usize) -> i64 {
        self.posted
            .iter()
            .filter(|posted| center == 0 || posted.center == center)
            .filter(|posted| !posted.reversed_unsettled && !posted.clawed_back)
            .map(|posted| posted.subsidy)
            .sum()
    }
}

async fn post_one(server: &TestServer, token: &str, item: Invoice) -> PostInvoiceResponse {
    server
        .redemption()
        .post_invoice(authed(token, item))
        .await
        .expect("post invoice")
        .into_inner()
}

async fn statement(server: &TestServer, token: &str, id: u64) -> Statement {
    server
        .settlement()
        .get_statement(authed(token, GetStatementRequest { statement_id: id }))
        .await
        .expect("get statement")
        .into_inner()
        .statement
        .expect("statement")
}

/// Every statement the request selects, following page tokens to the end.
async fn all_statements(
    server: &TestServer,
    token: &str,
    request: ListStatementsRequest,
) -> Vec<Statement> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = server
            .settlement()
            .list_statements(authed(
                token,
                ListStatementsRequest {
                    page_token: page_token.clone(),
                    ..request.clone()
                },
            ))
            .await
            .expect("list statements")
            .into_inner();
        assert!(
            request.page_size == 0 || page.statements.len() <= request.page_size as usize,
            "a page holds at most page_size statements"
        );
        found.extend(page.statements);
        if page.next_page_token.is_empty() {
            return found;
        }
        page_token = page.next_page_token;
    }
    panic!("ListStatements never reached the end");
}

fn ids(statements: &[Statement]) -> Vec<u64> {
    statements
        .iter()
        .map(|statement| statement.statement_id)
        .collect()
}

/// Every invoice the request selects, following page tokens to the end.
async fn all_invoices(
    server: &TestServer,
    token: &str,
    request: ListInvoicesRequest,
) -> Vec<InvoiceSummary> {
    let mut found: Vec<InvoiceSummary> = Vec::new();
    let mut page_token = String::new();
    for _ in 0..1_000 {
        let page = server
            .settlement()
            .list_invoices(authed(
                token,
                ListInvoicesRequest {
                    page_token: page_token.clone(),
                    ..request.clone()
                },
            ))
            .await
            .expect("list invoices")
            .into_inner();
        assert!(
            request.page_size == 0 || page.invoices.len() <= request.page_size as usize,
            "a page holds at most page_size invoices"
        );
        found.extend(page.invoices);
        if page.next_page_token.is_empty() {
            let sequences: Vec<u64> = found.iter().map(|invoice| invoice.sequence).collect();
            assert!(
                sequences.windows(2).all(|pair| pair[0] < pair[1]),
                "in sequence order, each once: {sequences:?}"
            );
            return found;
        }
        page_token = page.next_page_token;
    }
    panic!("ListInvoices never reached the end");
}

fn invoices_request(center: usize, year: u32, settled: SettledFilter) -> ListInvoicesRequest {
    ListInvoicesRequest {
        center: center_code(center),
        voucher_id: String::new(),
        year,
        settled: settled as i32,
        page_size: 4,
        page_token: String::new(),
    }
}

async fn receivables(
    server: &TestServer,
    token: &str,
    center: Option<usize>,
    year: u32,
) -> Vec<Receivable> {
    server
        .settlement()
        .list_receivables(authed(
            token,
            ListReceivablesRequest {
                center: center.map(center_code).unwrap_or_default(),
                year,
            },
        ))
        .await
        .expect("list receivables")
        .into_inner()
        .receivables
}

async fn voucher(server: &TestServer, id: &str) -> Voucher {
    server
        .vouchers()
        .get_voucher(authed(
            BUREAU,
            GetVoucherRequest {
                voucher_id: id.to_string(),
            },
        ))
        .await
        .expect("get voucher")
        .into_inner()
        .voucher
        .expect("voucher")
}

async fn center_account(server: &TestServer, index: usize) -> Center {
    server
        .registry()
        .get_center(authed(
            BUREAU,
            GetCenterRequest {
                uscc: center_code(index),
            },
        ))
        .await
        .expect("get center")
        .into_inner()
        .center
        .expect("center")
}

async fn programme_year(server: &TestServer, year: u32) -> ProgrammeYear {
    server
        .programme()
        .get_programme(authed(AUDITOR, GetProgrammeRequest { year }))
        .await
        .expect("programme")
        .into_inner()
        .years
        .remove(0)
}

async fn year_figures(server: &TestServer, year: u32) -> YearFiguresResponse {
    server
        .settlement()
        .get_year_figures(authed(AUDITOR, GetYearFiguresRequest { year }))
        .await
        .expect("year figures")
        .into_inner()
}

async fn pay(
    server: &TestServer,
    statement_id: u64,
    bank_reference: &str,
    amount: &str,
    value_date: Date,
) -> Result<Response<StatementResponse>, Status> {
    server
        .settlement()
        .confirm_payment(authed_with_id(
            BUREAU,
            &format!("pay-{statement_id}"),
            ConfirmPaymentRequest {
                statement_id,
                bank_reference: bank_reference.to_string(),
                amount: amount.to_string(),
                value_date: value_date.to_string(),
            },
        ))
        .await
}

fn approve(
    voucher_id: &str,
    year: i32,
    (enterprise, center): (usize, usize),
    contract: &str,
    (fee, requested): (&str, &str),
    (term_start, term_end): (Date, Date),
) -> ApproveVoucherRequest {
    ApproveVoucherRequest {
        voucher_id: voucher_id.to_string(),
        year: year as u32,
        enterprise: enterprise_code(enterprise),
        center: center_code(center),
        contract_number: contract.to_string(),
        contract_fee: fee.to_string(),
        term_start: term_start.to_string(),
        term_end: term_end.to_string(),
        requested: requested.to_string(),
        ..Default::default()
    }
}

// ------------------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarter_settled_paid_clawed_back_and_the_year_closed_over_grpc() {
    let today = today();
    let (this_year, _, _) = today.year_month_day();
    // The year to close: last year. Its fourth quarter stays redeemable until a month
    // after today; its first quarter's window ended long ago.
    let year = this_year - 1;
    let y = year as u32;
    let quarter_start = date(year, 10, 1);
    let quarter_end = date(year, 12, 31);
    let since_quarter_end = today.days_since_epoch() - quarter_end.days_since_epoch();
    let grace = (since_quarter_end + 30).min(366);
    let window_end = quarter_end.plus_days(grace);
    assert!(window_end >= today);
    let first_quarter = (date(year, 1, 1), date(year, 3, 31));
    assert!(first_quarter.1.plus_days(grace) < today);
    let day = |month: u32, day: u32| date(year, month, day);

    let server = TestServer::start().await;

    // ---------------------------------------------------------------- setup
    let published = server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year: y,
                    annual_pool: "1000000.00".into(),
                    default_enterprise_cap: "200000.00".into(),
                    contract_fee_ceiling: "0.30".into(),
                    rate_domestic: "0.30".into(),
                    rate_maas_multimodal: "0.30".into(),
                    rate_other: "0.20".into(),
                    redemption_grace_days: Some(grace as u32),
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("policy of the closed year")
        .into_inner();
    assert_eq!(
        published.policy.expect("policy").redemption_grace_days,
        Some(grace as u32)
    );
    // This year, with the Hangzhou defaults (grace 60 days).
    server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year: this_year as u32,
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("policy of this year");
    for (index, tier) in [
        (1, FacilityTier::Domestic),
        (2, FacilityTier::Other),
        (3, FacilityTier::MaasMultimodal),
    ] {
        register_center(&server.channel, index, CENTER_NAMES[index - 1], tier).await;
    }
    register_enterprises(&server.channel, [1, 2]).await;

    // ---------------------------------------------------------------- vouchers
    const V1: &str = "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a0001";
    const V2: &str = "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a0002";
    const V3: &str = "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a0003";
    const VA: &str = "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a000a";
    const VC: &str = "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a000c";
    let quarter = (quarter_start, quarter_end);
    let v1_request = approve(
        V1,
        year,
        (1, 1),
        "HT-001",
        ("100000.00", "30000.00"),
        quarter,
    );
    let v1 = server
        .vouchers()
        .approve_voucher(authed_with_id(BUREAU, "approve-v1", v1_request.clone()))
        .await
        .expect("approve V1")
        .into_inner();
    assert!(!v1.duplicate);
    let v1_sequence = v1.sequence;
    let v1 = v1.voucher.expect("voucher");
    assert_eq!(
        (
            v1.voucher_id.as_str(),
            v1.year,
            v1.face_value.as_str(),
            v1.redemption_window_end.clone()
        ),
        (V1, y, "30000.00", window_end.to_string())
    );
    // The same approval again (a retry): the original answer, marked duplicate.
    for retry in [
        v1_request.clone(),
        ApproveVoucherRequest {
            contract_number: "ht-001".into(),
            ..v1_request.clone()
        },
    ] {
        let again = server
            .vouchers()
            .approve_voucher(authed(BUREAU, retry))
            .await
            .expect("retried approval")
            .into_inner();
        assert!(again.duplicate, "{again:?}");
        assert_eq!(again.sequence, v1_sequence);
        assert_eq!(again.voucher.expect("voucher").voucher_id, V1);
    }
    // The same id with other content.
    refused(
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                ApproveVoucherRequest {
                    contract_fee: "100000.01".into(),
                    ..v1_request.clone()
                },
            ))
            .await,
        Code::AlreadyExists,
        "VOUCHER_ALREADY_EXISTS",
    );
    // One voucher per contract: HT-001, ht-001 and ＨＴ－００１ are one contract.
    for (number, id) in [
        ("ht-001", "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a00f1"),
        ("ＨＴ－００１", "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a00f2"),
    ] {
        refused(
            server
                .vouchers()
                .approve_voucher(authed(
                    BUREAU,
                    ApproveVoucherRequest {
                        voucher_id: id.into(),
                        contract_number: number.into(),
                        ..v1_request.clone()
                    },
                ))
                .await,
            Code::AlreadyExists,
            "CONTRACT_ALREADY_HAS_VOUCHER",
        );
    }
    // Surrounding white space is refused rather than trimmed away silently.
    invalid(
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                ApproveVoucherRequest {
                    voucher_id: "7d1f3a52-8c11-4e0b-9a55-0c3d2b1a00f3".into(),
                    contract_number: " HT-001 ".into(),
                    ..v1_request.clone()
                },
            ))
            .await,
        "contract_number",
    );
    // A voucher belongs to the year its term starts in.
    refused(
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                approve(
                    "",
                    year,
                    (2, 1),
                    "HT-NEXT",
                    ("1000.00", "100.00"),
                    (date(this_year, 1, 1), date(this_year, 3, 31)),
                ),
            ))
            .await,
        Code::FailedPrecondition,
        "VOUCHER_YEAR_MISMATCH",
    );
    for request in [
        approve(
            V2,
            year,
            (2, 2),
            "HT-200",
            ("50000.00", "999999.00"),
            quarter,
        ),
        approve(V3, year, (1, 3), "HT-300", ("20000.00", "5000.00"), quarter),
        approve(
            VC,
            this_year,
            (1, 1),
            "HT-C-001",
            ("10000.00", "3000.00"),
            (date(this_year, 1, 1), date(this_year, 12, 31)),
        ),
    ] {
        server
            .vouchers()
            .approve_voucher(authed(BUREAU, request))
            .await
            .expect("approve");
    }
    // A first-quarter contract's window (term end + grace) is over: no voucher for it.
    refused(
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                approve(
                    VA,
                    year,
                    (2, 1),
                    "HT-A",
                    ("10000.00", "1000.00"),
                    first_quarter,
                ),
            ))
            .await,
        Code::FailedPrecondition,
        "REDEMPTION_WINDOW_CLOSED",
    );
    let face_values: BTreeMap<&str, i64> = [(V1, 3_000_000), (V2, 1_000_000), (V3, 500_000)]
        .into_iter()
        .collect();
    for (id, face) in &face_values {
        assert_eq!(voucher(&server, id).await.face_value, yuan(*face), "{id}");
    }

    // ---------------------------------------------------------------- the quarter's invoices
    let mut book = Book::default();
    // Center 1, October and November: one batch, with one malformed and one refused item.
    let batch: Vec<Invoice> = vec![
        invoice(1, V1, "Q4-C1-01", "1000.07", day(10, 3)),
        invoice(1, V1, "Q4-C1-02", "2500.00", day(10, 10)),
        invoice(1, V1, "Q4-C1-03", "333.33", day(10, 17)),
        invoice(1, V1, "Q4-C1-04", "12345.67", day(10, 24)),
        invoice(1, V1, "Q4\u{200B}-C1-XX", "100.00", day(10, 25)),
        invoice(1, V1, "Q4-C1-05", "4000.00", day(10, 31)),
        invoice(1, V1, "Q4-C1-06", "777.77", day(11, 7)),
        invoice(1, V1, "Q4-C1-OUT", "100.00", day(9, 30)),
        invoice(1, V1, "Q4-C1-07", "5000.00", day(11, 14)),
        invoice(1, V1, "Q4-C1-08", "10.03", day(11, 21)),
        invoice(1, V1, "Q4-C1-09", "6000.00", day(11, 28)),
    ];
    let results = server
        .redemption()
        .post_invoices(authed_with_id(
            CENTER_1,
            "q4-batch-center-1",
            PostInvoicesRequest {
                invoices: batch.clone(),
            },
        ))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(results.results.len(), batch.len());
    for (item, result) in batch.iter().zip(&results.results) {
        match (&item.invoice_number[..], &result.result) {
            ("Q4\u{200B}-C1-XX", Some(invoice_result::Result::Invalid(why))) => {
                assert!(why.contains("invoice_number"), "{why}")
            }
            ("Q4-C1-OUT", Some(invoice_result::Result::Rejected(rejection))) => {
                assert_eq!(rejection.name, "INVOICE_DATE_OUTSIDE_TERM")
            }
            (_, Some(invoice_result::Result::Accepted(answer))) => book.accept(item, 1, answer),
            (number, other) => panic!("{number}: {other:?}"),
        }
    }
    // Spot checks of the rounding: 30% of 1,000.07 is 300.02; of 12,345.67, 3,703.70.
    assert_eq!(book.get(1, "Q4-C1-01").subsidy, 30_002);
    assert_eq!(book.get(1, "Q4-C1-04").subsidy, 370_370);
    // Unary: a plain number, a 20-digit 数电票 number, and an older code + number pair.
    let mut unary = vec![
        invoice(1, V1, "Q4-C1-10", "2000.00", day(11, 30)),
        invoice(1, V1, "25332000000012345678", "1500.00", day(11, 30)),
        Invoice {
            invoice_code: "033002400111".into(),
            ..invoice(1, V1, "00012345", "1200.00", day(11, 29))
        },
    ];
    for item in unary.drain(..) {
        let answer = post_one(&server, CENTER_1, item.clone()).await;
        book.accept(&item, 1, &answer);
    }
    let paired = server
        .redemption()
        .get_invoice(authed(
            CENTER_1,
            GetInvoiceRequest {
                center: center_code(1),
                invoice_number: "033002400111-00012345".into(),
            },
        ))
        .await
        .expect("code + number invoice")
        .into_inner();
    assert_eq!(paired.subsidy, "360.00");
    // Invoice numbers are compared in canonical form: these are retries of Q4-C1-01.
    let original = book.get(1, "Q4-C1-01").sequence;
    for number in ["q4-c1-01", "Ｑ４－Ｃ１－０１", "Q4-c1-01"] {
        let item = Invoice {
            delivery_proof: "acceptance/Q4-C1-01".into(),
            ..invoice(1, V1, number, "1000.07", day(10, 3))
        };
        let again = post_one(&server, CENTER_1, item).await;
        assert!(again.duplicate && !again.reversed, "{number}: {again:?}");
        assert_eq!(
            (again.subsidy.as_str(), again.sequence),
            ("300.02", original),
            "{number}"
        );
    }
    // Format and bidi control characters are refused, naming the field.
    for number in ["Q4-C1-\u{200B}11", "Q4-C1-\u{202E}11", "\u{FEFF}Q4-C1-11"] {
        invalid(
            server
                .redemption()
                .post_invoice(authed(
                    CENTER_1,
                    invoice(1, V1, number, "10.00", day(12, 1)),
                ))
                .await,
            "invoice_number",
        );
    }
    invalid(
        server
            .redemption()
            .post_invoice(authed(
                CENTER_1,
                Invoice {
                    invoice_code: "0330".into(),
                    ..invoice(1, V1, "00012346", "10.00", day(12, 1))
                },
            ))
            .await,
        "invoice_code",
    );
    // Center 2 posts its own batch and one more; center 3 has no token: the bureau posts.
    let batch = vec![
        invoice(2, V2, "Q4-C2-01", "10000.00", day(10, 15)),
        invoice(2, V2, "Q4-C2-02", "4567.89", day(11, 15)),
        invoice(2, V2, "Q4-C2-03", "1234.56", day(12, 15)),
    ];
    let results = server
        .redemption()
        .post_invoices(authed(
            CENTER_2,
            PostInvoicesRequest {
                invoices: batch.clone(),
            },
        ))
        .await
        .expect("batch 2")
        .into_inner();
    for (item, result) in batch.iter().zip(&results.results) {
        match &result.result {
            Some(invoice_result::Result::Accepted(answer)) => book.accept(item, 2, answer),
            other => panic!("{other:?}"),
        }
    }
    let item = invoice(2, V2, "Q4-C2-04", "999.99", day(12, 20));
    let answer = post_one(&server, CENTER_2, item.clone()).await;
    book.accept(&item, 2, &answer);
    for item in [
        invoice(3, V3, "Q4-C3-01", "3000.00", day(10, 20)),
        invoice(3, V3, "Q4-C3-02", "1111.11", day(11, 20)),
    ] {
        let answer = post_one(&server, BUREAU, item.clone()).await;
        book.accept(&item, 3, &answer);
    }
    assert_eq!(book.get(2, "Q4-C2-02").subsidy, 91_357);

    // A credit note before settlement: the center reverses its own invoice, the subsidy
    // goes back to the voucher; a retry of the invoice says it was reversed.
    let reversed = server
        .redemption()
        .reverse_invoice(authed(
            CENTER_1,
            ReverseInvoiceRequest {
                center: center_code(1),
                invoice_number: "q4-c1-03".into(),
                reason: "credit note 2025-0193".into(),
            },
        ))
        .await
        .expect("reverse unsettled")
        .into_inner();
    assert_eq!(
        (
            reversed.subsidy.as_str(),
            reversed.clawback,
            reversed.returned_to_voucher
        ),
        ("99.99", false, true)
    );
    book.get(1, "Q4-C1-03").reversed_unsettled = true;
    let retry = post_one(
        &server,
        CENTER_1,
        invoice(1, V1, "Q4-C1-03", "333.33", day(10, 17)),
    )
    .await;
    assert_eq!(
        (
            retry.duplicate,
            retry.reversed,
            retry.subsidy.as_str(),
            retry.enterprise_pays.as_str(),
            retry.sequence
        ),
        (true, true, "0.00", "0.00", book.get(1, "Q4-C1-03").sequence)
    );
    let unsettled = all_invoices(
        &server,
        CENTER_1,
        invoices_request(1, y, SettledFilter::Unsettled),
    )
    .await;
    assert_eq!(unsettled.len() as u64, book.to_settle(1).0);
    assert!(unsettled.iter().all(|invoice| !invoice.settled
        && !invoice.reversed
        && invoice.statement_id == 0
        && invoice.year == y
        && invoice.enterprise == enterprise_code(1)));

    // Vouchers of the year are still redeemable: the year cannot be closed yet.
    refused(
        server
            .settlement()
            .close_programme_year(authed(BUREAU, CloseProgrammeYearRequest { year: y }))
            .await,
        Code::FailedPrecondition,
        "YEAR_NOT_OVER",
    );

    // ---------------------------------------------------------------- the first run
    const RUN_1: &str = "5a0e4c7e-2b6d-4f3a-8e1c-9d2f00000001";
    let run_request = CreateSettlementRunRequest {
        run_id: RUN_1.into(),
        year: y,
    };
    let run = server
        .settlement()
        .create_settlement_run(authed_with_id(BUREAU, "run-1", run_request.clone()))
        .await
        .expect("run 1")
        .into_inner();
    assert!(!run.duplicate);
    assert_eq!((run.run_id.as_str(), run.year), (RUN_1, y));
    assert_eq!(run.statements.len(), 3, "one statement per center");
    let mut statement_of: BTreeMap<usize, u64> = BTreeMap::new();
    let (mut run_gross, mut run_count) = (0, 0);
    for center in 1..=3 {
        let found = run
            .statements
            .iter()
            .find(|statement| statement.center == center_code(center))
            .unwrap_or_else(|| panic!("a statement for center {center}"));
        let (count, gross) = book.to_settle(center);
        assert_eq!(
            (
                found.invoices,
                found.gross_subsidy.clone(),
                found.clawback_offset.as_str(),
                found.net_due.clone(),
                found.state,
                found.year,
                found.run_id.as_str(),
                found.cutoff_sequence,
                found.center_name.as_str(),
            ),
            (
                count,
                yuan(gross),
                "0.00",
                yuan(gross),
                StatementState::Open as i32,
                y,
                RUN_1,
                run.cutoff_sequence,
                CENTER_NAMES[center - 1],
            ),
            "center {center}"
        );
        assert!(found.statement_id > run.cutoff_sequence);
        run_gross += gross;
        run_count += count;
        book.settle(center, found.statement_id);
        statement_of.insert(center, found.statement_id);
    }
    assert_eq!(
        run_count, 17,
        "11 of center 1, 4 of center 2, 2 of center 3"
    );
    assert_eq!(
        (
            run.gross_subsidy.clone(),
            run.clawback_offset.as_str(),
            run.net_due.clone()
        ),
        (yuan(run_gross), "0.00", yuan(run_gross))
    );
    let (s1, s2, s3) = (statement_of[&1], statement_of[&2], statement_of[&3]);
    // The same run id again: the original run, nothing new.
    let events_before = server.log_end().await;
    let again = server
        .settlement()
        .create_settlement_run(authed(BUREAU, run_request.clone()))
        .await
        .expect("run 1 again")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(
        (
            &again.statements,
            again.cutoff_sequence,
            again.sequence,
            &again.net_due
        ),
        (
            &run.statements,
            run.cutoff_sequence,
            run.sequence,
            &run.net_due
        )
    );
    refused(
        server
            .settlement()
            .create_settlement_run(authed(
                BUREAU,
                CreateSettlementRunRequest {
                    run_id: RUN_1.into(),
                    year: this_year as u32,
                },
            ))
            .await,
        Code::FailedPrecondition,
        "SETTLEMENT_RUN_CONFLICT",
    );
    refused(
        server
            .settlement()
            .create_settlement_run(authed(
                BUREAU,
                CreateSettlementRunRequest {
                    run_id: "5a0e4c7e-2b6d-4f3a-8e1c-9d2f000000ff".into(),
                    year: y,
                },
            ))
            .await,
        Code::FailedPrecondition,
        "NOTHING_TO_SETTLE",
    );
    assert_eq!(server.log_end().await, events_before);
    let open = all_statements(
        &server,
        BUREAU,
        ListStatementsRequest {
            state: StatementState::Open as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&open), vec![s1, s2, s3]);
    let settled_invoice = server
        .redemption()
        .get_invoice(authed(
            CENTER_1,
            GetInvoiceRequest {
                center: center_code(1),
                invoice_number: "Q4-C1-01".into(),
            },
        ))
        .await
        .expect("get invoice")
        .into_inner();
    assert_eq!(
        (
            settled_invoice.settled,
            settled_invoice.statement_id,
            settled_invoice.enterprise_pays.as_str()
        ),
        (true, s1, "700.05")
    );
    let reversed_invoice = server
        .redemption()
        .get_invoice(authed(
            CENTER_1,
            GetInvoiceRequest {
                center: center_code(1),
                invoice_number: "Q4-C1-03".into(),
            },
        ))
        .await
        .expect("get invoice")
        .into_inner();
    assert_eq!(
        (
            reversed_invoice.reversed,
            reversed_invoice.settled,
            reversed_invoice.statement_id
        ),
        (true, false, 0)
    );
    assert!(all_invoices(
        &server,
        CENTER_1,
        invoices_request(1, y, SettledFilter::Unsettled)
    )
    .await
    .is_empty());
    let center_1 = center_account(&server, 1).await;
    assert_eq!(
        (center_1.amount_due.clone(), center_1.unsettled.as_str()),
        (statement(&server, CENTER_1, s1).await.net_due, "0.00"),
        "center 1 is owed its statement"
    );

    // ---------------------------------------------------------------- payments
    let net = |statement: &Statement| statement.net_due.clone();
    let s1_net = net(&statement(&server, BUREAU, s1).await);
    refused(
        pay(&server, s1, "CMB-Q4-0001", "1.00", today).await,
        Code::FailedPrecondition,
        "PAYMENT_AMOUNT_MISMATCH",
    );
    refused(
        pay(&server, s1, "CMB-Q4-0001", &s1_net, today.plus_days(1)).await,
        Code::FailedPrecondition,
        "VALUE_DATE_INVALID",
    );
    let paid = pay(&server, s1, "CMB-Q4-0001", &s1_net, today)
        .await
        .expect("pay S1")
        .into_inner();
    assert!(!paid.duplicate);
    let paid_statement = paid.statement.clone().expect("statement");
    assert_eq!(
        (
            paid_statement.state,
            paid_statement.bank_reference.as_str(),
            paid_statement.paid_amount.clone(),
            paid_statement.value_date.clone(),
            paid_statement.payments.len()
        ),
        (
            StatementState::Paid as i32,
            "CMB-Q4-0001",
            s1_net.clone(),
            today.to_string(),
            1
        )
    );
    // The same bank reference (as typed, or in another case) answers the original.
    for reference in ["CMB-Q4-0001", "cmb-q4-0001"] {
        let again = pay(&server, s1, reference, &s1_net, today)
            .await
            .expect("payment retried")
            .into_inner();
        assert!(again.duplicate, "{reference}");
        assert_eq!(again.sequence, paid.sequence);
        assert_eq!(again.statement, paid.statement);
    }
    refused(
        pay(&server, s1, "CMB-Q4-0009", &s1_net, today).await,
        Code::FailedPrecondition,
        "STATEMENT_ALREADY_PAID",
    );
    let s2_net = net(&statement(&server, BUREAU, s2).await);
    refused(
        pay(&server, s2, "CMB-Q4-0001", &s2_net, today).await,
        Code::FailedPrecondition,
        "BANK_REFERENCE_REUSED",
    );
    pay(&server, s2, "CMB-Q4-0002", &s2_net, today)
        .await
        .expect("pay S2");
    // The bank returns S2's payment: the statement is open for payment again.
    let returned = server
        .settlement()
        .record_payment_returned(authed_with_id(
            BUREAU,
            "bounce-s2",
            RecordPaymentReturnedRequest {
                statement_id: s2,
                bank_reference: "CMB-Q4-0002".into(),
                reason: "beneficiary account closed".into(),
            },
        ))
        .await
        .expect("payment returned")
        .into_inner();
    let bounced = returned.statement.clone().expect("statement");
    assert_eq!(
        (
            bounced.state,
            bounced.bank_reference.as_str(),
            bounced.paid_amount.as_str()
        ),
        (StatementState::Returned as i32, "", "0.00")
    );
    assert!(bounced.payments[0].returned);
    assert_eq!(
        bounced.payments[0].return_reason,
        "beneficiary account closed"
    );
    let again = server
        .settlement()
        .record_payment_returned(authed(
            BUREAU,
            RecordPaymentReturnedRequest {
                statement_id: s2,
                bank_reference: "CMB-Q4-0002".into(),
                reason: "beneficiary account closed".into(),
            },
        ))
        .await
        .expect("return retried")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence, returned.sequence);
    let center_2 = center_account(&server, 2).await;
    assert_eq!(
        (center_2.amount_due.clone(), center_2.paid_total.as_str()),
        (s2_net.clone(), "0.00")
    );
    let returned_list = all_statements(
        &server,
        AUDITOR,
        ListStatementsRequest {
            state: StatementState::Returned as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&returned_list), vec![s2]);
    // A returned reference is not used again; a new one pays.
    refused(
        pay(&server, s2, "CMB-Q4-0002", &s2_net, today).await,
        Code::FailedPrecondition,
        "BANK_REFERENCE_REUSED",
    );
    let repaid = pay(&server, s2, "CMB-Q4-0003", &s2_net, today)
        .await
        .expect("pay S2 again")
        .into_inner()
        .statement
        .expect("statement");
    assert_eq!(
        (
            repaid.state,
            repaid.bank_reference.as_str(),
            repaid.payments.len()
        ),
        (StatementState::Paid as i32, "CMB-Q4-0003", 2)
    );
    let s3_net = net(&statement(&server, BUREAU, s3).await);
    pay(&server, s3, "CMB-Q4-0004", &s3_net, today)
        .await
        .expect("pay S3");
    assert_eq!(
        center_account(&server, 2).await.paid_total,
        s2_net,
        "paid once, net of the returned payment"
    );
    let paid_list = all_statements(
        &server,
        BUREAU,
        ListStatementsRequest {
            year: y,
            state: StatementState::Paid as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&paid_list), vec![s1, s2, s3]);

    // ---------------------------------------------------------------- clawback 1: offset
    refused(
        server
            .redemption()
            .reverse_invoice(authed(
                CENTER_1,
                ReverseInvoiceRequest {
                    center: center_code(1),
                    invoice_number: "Q4-C1-07".into(),
                    reason: "service not delivered".into(),
                },
            ))
            .await,
        Code::PermissionDenied,
        "REVERSAL_NEEDS_BUREAU",
    );
    let clawback = server
        .redemption()
        .reverse_invoice(authed_with_id(
            BUREAU,
            "clawback-1",
            ReverseInvoiceRequest {
                center: center_code(1),
                invoice_number: "Q4-C1-07".into(),
                reason: "service not delivered".into(),
            },
        ))
        .await
        .expect("bureau reverses a settled invoice")
        .into_inner();
    assert_eq!(
        (
            clawback.subsidy.as_str(),
            clawback.clawback,
            clawback.returned_to_voucher
        ),
        ("1500.00", true, false)
    );
    book.get(1, "Q4-C1-07").clawed_back = true;
    let owed = receivables(&server, BUREAU, None, 0).await;
    assert_eq!(
        owed,
        vec![Receivable {
            center: center_code(1),
            year: y,
            clawed_back: "1500.00".into(),
            offset: "0.00".into(),
            repaid: "0.00".into(),
            outstanding: "1500.00".into(),
            payee_kind: Payee::Center as i32,
            funding_source: FundingSource::Primary as i32,
        }]
    );
    assert_eq!(receivables(&server, CENTER_1, Some(1), y).await, owed);
    assert_eq!(receivables(&server, AUDITOR, Some(1), 0).await, owed);
    assert!(receivables(&server, CENTER_2, Some(2), 0).await.is_empty());
    code_of(
        server
            .settlement()
            .list_receivables(authed(
                CENTER_1,
                ListReceivablesRequest {
                    center: String::new(),
                    year: 0,
                },
            ))
            .await,
        Code::PermissionDenied,
        "a center listing every center's receivables",
    );
    let clawed_statement = statement(&server, CENTER_1, s1).await;
    assert_eq!(
        (
            clawed_statement.clawed_back.as_str(),
            clawed_statement.state
        ),
        ("1500.00", StatementState::Paid as i32)
    );
    let v1_now = voucher(&server, V1).await;
    assert_eq!(v1_now.clawback_outstanding, "1500.00");
    let programme = programme_year(&server, y).await;
    assert_eq!(programme.receivable, "1500.00");
    assert_eq!(center_account(&server, 1).await.clawback_owed, "1500.00");
    let retry = post_one(
        &server,
        CENTER_1,
        invoice(1, V1, "Q4-C1-07", "5000.00", day(11, 14)),
    )
    .await;
    assert_eq!(
        (retry.duplicate, retry.reversed, retry.subsidy.as_str()),
        (true, true, "0.00")
    );
    // Center 3's clawback is larger than its next statement: that statement nets to
    // nothing (paid at once) and the rest stays owed, carried forward, never paid out.
    let clawback_3 = server
        .redemption()
        .reverse_invoice(authed(
            BUREAU,
            ReverseInvoiceRequest {
                center: center_code(3),
                invoice_number: "Q4-C3-01".into(),
                reason: "model not filed in time".into(),
            },
        ))
        .await
        .expect("third clawback")
        .into_inner();
    assert_eq!(
        (clawback_3.subsidy.as_str(), clawback_3.clawback),
        ("900.00", true)
    );
    book.get(3, "Q4-C3-01").clawed_back = true;
    let item = invoice(3, V3, "Q4-C3-03", "1000.00", day(12, 10));
    let answer = post_one(&server, BUREAU, item.clone()).await;
    book.accept(&item, 3, &answer);
    // December: two more invoices; the next run offsets the receivable.
    for item in [
        invoice(1, V1, "Q4-C1-11", "8000.00", day(12, 5)),
        invoice(1, V1, "Q4-C1-12", "3000.00", day(12, 19)),
    ] {
        let answer = post_one(&server, CENTER_1, item.clone()).await;
        book.accept(&item, 1, &answer);
    }
    let december = all_invoices(
        &server,
        CENTER_1,
        invoices_request(1, y, SettledFilter::Unsettled),
    )
    .await;
    assert_eq!(
        december
            .iter()
            .map(|invoice| invoice.invoice_number.as_str())
            .collect::<Vec<_>>(),
        vec!["Q4-C1-11", "Q4-C1-12"]
    );
    const RUN_2: &str = "5a0e4c7e-2b6d-4f3a-8e1c-9d2f00000002";
    let run_2 = server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: RUN_2.into(),
                year: y,
            },
        ))
        .await
        .expect("run 2")
        .into_inner();
    assert_eq!(
        run_2
            .statements
            .iter()
            .map(|statement| statement.center.clone())
            .collect::<Vec<_>>(),
        vec![center_code(1), center_code(3)],
        "only centers 1 and 3 have anything new"
    );
    let s4_statement = run_2.statements[0].clone();
    let s4 = s4_statement.statement_id;
    let s4c_statement = run_2.statements[1].clone();
    let s4c = s4c_statement.statement_id;
    assert_eq!(
        (
            s4c_statement.invoices,
            s4c_statement.gross_subsidy.as_str(),
            s4c_statement.clawback_offset.as_str(),
            s4c_statement.net_due.as_str(),
            s4c_statement.state
        ),
        (1, "300.00", "300.00", "0.00", StatementState::Paid as i32),
        "a statement with nothing to pay is paid at once"
    );
    assert_eq!(
        (
            run_2.gross_subsidy.as_str(),
            run_2.clawback_offset.as_str(),
            run_2.net_due.as_str()
        ),
        ("3600.00", "1800.00", "1800.00")
    );
    book.settle(3, s4c);
    invalid(
        pay(&server, s4c, "CMB-Q4-0006", "0.00", today).await,
        "amount",
    );
    refused(
        pay(&server, s4c, "CMB-Q4-0006", "300.00", today).await,
        Code::FailedPrecondition,
        "STATEMENT_ALREADY_PAID",
    );
    assert_eq!(
        receivables(&server, AUDITOR, Some(3), y).await,
        vec![Receivable {
            center: center_code(3),
            year: y,
            clawed_back: "900.00".into(),
            offset: "300.00".into(),
            repaid: "0.00".into(),
            outstanding: "600.00".into(),
            payee_kind: Payee::Center as i32,
            funding_source: FundingSource::Primary as i32,
        }]
    );
    assert_eq!(center_account(&server, 3).await.clawback_owed, "600.00");
    assert_eq!(
        (
            s4_statement.center.clone(),
            s4_statement.invoices,
            s4_statement.gross_subsidy.as_str(),
            s4_statement.clawback_offset.as_str(),
            s4_statement.net_due.as_str()
        ),
        (center_code(1), 2, "3300.00", "1500.00", "1800.00")
    );
    book.settle(1, s4);
    pay(&server, s4, "CMB-Q4-0005", "1800.00", today)
        .await
        .expect("pay S4");
    assert_eq!(
        receivables(&server, BUREAU, Some(1), y).await,
        vec![Receivable {
            center: center_code(1),
            year: y,
            clawed_back: "1500.00".into(),
            offset: "1500.00".into(),
            repaid: "0.00".into(),
            outstanding: "0.00".into(),
            payee_kind: Payee::Center as i32,
            funding_source: FundingSource::Primary as i32,
        }]
    );
    let v1_now = voucher(&server, V1).await;
    assert_eq!(
        (
            v1_now.clawback_outstanding.as_str(),
            v1_now.released.as_str()
        ),
        ("0.00", "1500.00"),
        "recovered: the cap and pool are freed"
    );
    assert_eq!(
        programme_year(&server, y).await.receivable,
        "600.00",
        "only center 3's rest is owed"
    );

    // ---------------------------------------------------------------- clawback 2: repayment
    let clawback = server
        .redemption()
        .reverse_invoice(authed(
            BUREAU,
            ReverseInvoiceRequest {
                center: center_code(2),
                invoice_number: "Q4-C2-02".into(),
                reason: "duplicate billing".into(),
            },
        ))
        .await
        .expect("second clawback")
        .into_inner();
    assert_eq!(
        (clawback.subsidy.as_str(), clawback.clawback),
        ("913.57", true)
    );
    book.get(2, "Q4-C2-02").clawed_back = true;
    assert_eq!(statement(&server, CENTER_2, s2).await.clawed_back, "913.57");
    let repay = |amount: &str, reference: &str| RecordRepaymentRequest {
        center: center_code(2),
        year: y,
        amount: amount.into(),
        bank_reference: reference.into(),
        value_date: today.to_string(),
        ..Default::default()
    };
    refused(
        server
            .settlement()
            .record_repayment(authed(BUREAU, repay("913.58", "REPAY-C2-001")))
            .await,
        Code::FailedPrecondition,
        "REPAYMENT_EXCEEDS_RECEIVABLE",
    );
    refused(
        server
            .settlement()
            .record_repayment(authed(BUREAU, repay("100.00", "CMB-Q4-0004")))
            .await,
        Code::FailedPrecondition,
        "BANK_REFERENCE_REUSED",
    );
    let first = server
        .settlement()
        .record_repayment(authed_with_id(
            BUREAU,
            "repay-1",
            repay("100.00", "REPAY-C2-001"),
        ))
        .await
        .expect("repayment")
        .into_inner();
    assert_eq!(
        (
            first.repaid.as_str(),
            first.outstanding.as_str(),
            first.duplicate
        ),
        ("100.00", "813.57", false)
    );
    let again = server
        .settlement()
        .record_repayment(authed(BUREAU, repay("100.00", "REPAY-C2-001")))
        .await
        .expect("repayment retried")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let rest = server
        .settlement()
        .record_repayment(authed(BUREAU, repay("813.57", "REPAY-C2-002")))
        .await
        .expect("repayment of the rest")
        .into_inner();
    assert_eq!(rest.outstanding, "0.00");
    assert_eq!(
        receivables(&server, CENTER_2, Some(2), y).await,
        vec![Receivable {
            center: center_code(2),
            year: y,
            clawed_back: "913.57".into(),
            offset: "0.00".into(),
            repaid: "913.57".into(),
            outstanding: "0.00".into(),
            payee_kind: Payee::Center as i32,
            funding_source: FundingSource::Primary as i32,
        }]
    );
    assert_eq!(voucher(&server, V2).await.released, "913.57");

    // ---------------------------------------------------------------- this year: one open statement
    let item = invoice(1, VC, "C-INV-1", "1000.00", date(this_year, 1, 2));
    post_one(&server, CENTER_1, item).await;
    const RUN_C: &str = "5a0e4c7e-2b6d-4f3a-8e1c-9d2f0000000c";
    let run_c = server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: RUN_C.into(),
                year: this_year as u32,
            },
        ))
        .await
        .expect("run of this year")
        .into_inner();
    let s5 = run_c.statements[0].statement_id;
    assert_eq!(run_c.statements[0].gross_subsidy, "300.00");
    refused(
        server
            .settlement()
            .close_programme_year(authed(
                BUREAU,
                CloseProgrammeYearRequest {
                    year: this_year as u32,
                },
            ))
            .await,
        Code::FailedPrecondition,
        "YEAR_NOT_OVER",
    );

    // ---------------------------------------------------------------- statements: filters, paging, roles
    let every = all_statements(&server, AUDITOR, ListStatementsRequest::default()).await;
    assert_eq!(ids(&every), vec![s1, s2, s3, s4, s4c, s5]);
    let paged = all_statements(
        &server,
        BUREAU,
        ListStatementsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(paged, every, "paging by token gives every statement once");
    let by = |center: usize, year: u32, run: &str, state: StatementState, page_size: u32| {
        ListStatementsRequest {
            center: if center == 0 {
                String::new()
            } else {
                center_code(center)
            },
            year,
            run_id: run.to_string(),
            state: state as i32,
            page_size,
            page_token: String::new(),
            payee: String::new(),
        }
    };
    let unspecified = StatementState::Unspecified;
    for (token, request, expected) in [
        (BUREAU, by(1, 0, "", unspecified, 0), vec![s1, s4, s5]),
        (CENTER_1, by(1, 0, "", unspecified, 1), vec![s1, s4, s5]),
        (CENTER_1, by(1, y, "", unspecified, 0), vec![s1, s4]),
        (
            AUDITOR,
            by(0, y, "", unspecified, 1),
            vec![s1, s2, s3, s4, s4c],
        ),
        (
            AUDITOR,
            by(0, this_year as u32, "", unspecified, 0),
            vec![s5],
        ),
        (BUREAU, by(0, 0, RUN_1, unspecified, 2), vec![s1, s2, s3]),
        (BUREAU, by(0, y, RUN_2, unspecified, 0), vec![s4, s4c]),
        (BUREAU, by(3, 0, RUN_2, unspecified, 0), vec![s4c]),
        (CENTER_2, by(2, 0, RUN_1, unspecified, 0), vec![s2]),
        (BUREAU, by(0, 0, "", StatementState::Open, 1), vec![s5]),
        (
            BUREAU,
            by(0, y, "", StatementState::Paid, 1),
            vec![s1, s2, s3, s4, s4c],
        ),
        (BUREAU, by(0, 0, "", StatementState::Returned, 0), vec![]),
        (BUREAU, by(3, this_year as u32, "", unspecified, 0), vec![]),
    ] {
        assert_eq!(
            ids(&all_statements(&server, token, request.clone()).await),
            expected,
            "{request:?}"
        );
    }
    // A center sees its own statements only: another's is answered as a missing one.
    let own = statement(&server, CENTER_2, s2).await;
    assert_eq!(own.center, center_code(2));
    code_of(
        server
            .settlement()
            .get_statement(authed(CENTER_2, GetStatementRequest { statement_id: s1 }))
            .await,
        Code::NotFound,
        "another center's statement",
    );
    code_of(
        server
            .settlement()
            .get_statement(authed(
                ENTERPRISE_1,
                GetStatementRequest { statement_id: s1 },
            ))
            .await,
        Code::NotFound,
        "an enterprise reading a statement",
    );
    code_of(
        server
            .settlement()
            .list_statements(authed(CENTER_2, by(1, 0, "", unspecified, 0)))
            .await,
        Code::PermissionDenied,
        "another center's statements",
    );
    invalid(
        server
            .settlement()
            .list_statements(authed(CENTER_2, by(0, 0, "", unspecified, 0)))
            .await,
        "center",
    );
    // The auditor reads every statement.
    for id in [s1, s2, s3, s4, s4c, s5] {
        assert_eq!(statement(&server, AUDITOR, id).await.statement_id, id);
    }

    // ---------------------------------------------------------------- invoices: filters, paging, totals
    let statements: BTreeMap<u64, Statement> = every
        .iter()
        .map(|statement| (statement.statement_id, statement.clone()))
        .collect();
    for center in 1..=3 {
        let token = match center {
            1 => CENTER_1,
            2 => CENTER_2,
            _ => AUDITOR,
        };
        let listed = all_invoices(
            &server,
            token,
            invoices_request(center, y, SettledFilter::Any),
        )
        .await;
        let expected: Vec<&Posted> = book
            .posted
            .iter()
            .filter(|posted| posted.center == center)
            .collect();
        assert_eq!(
            listed
                .iter()
                .map(|invoice| (
                    invoice.invoice_number.clone(),
                    invoice.voucher_id.clone(),
                    fen(&invoice.amount),
                    fen(&invoice.subsidy),
                    invoice.sequence,
                    invoice.reversed,
                    invoice.statement_id,
                ))
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|posted| (
                    posted.number.clone(),
                    posted.voucher.clone(),
                    posted.amount,
                    posted.subsidy,
                    posted.sequence,
                    posted.reversed_unsettled || posted.clawed_back,
                    posted.statement,
                ))
                .collect::<Vec<_>>(),
            "center {center}: every invoice of the year, in order"
        );
        for summary in &listed {
            let pays = if summary.reversed {
                0
            } else {
                fen(&summary.amount) - fen(&summary.subsidy)
            };
            assert_eq!(fen(&summary.enterprise_pays), pays, "{summary:?}");
            assert_eq!(summary.settled, summary.statement_id != 0, "{summary:?}");
            assert_eq!(summary.year, y);
        }
        // Settled invoices add up to their statements, invoice for invoice.
        let settled = all_invoices(
            &server,
            token,
            invoices_request(center, y, SettledFilter::Settled),
        )
        .await;
        assert!(settled.iter().all(|invoice| invoice.settled));
        let mut per_statement: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
        for invoice in &settled {
            let totals = per_statement.entry(invoice.statement_id).or_default();
            totals.0 += 1;
            totals.1 += fen(&invoice.subsidy);
        }
        let of_center: BTreeMap<u64, (u64, i64)> = statements
            .values()
            .filter(|statement| statement.center == center_code(center) && statement.year == y)
            .map(|statement| {
                (
                    statement.statement_id,
                    (statement.invoices, fen(&statement.gross_subsidy)),
                )
            })
            .collect();
        assert_eq!(per_statement, of_center, "center {center}");
        assert!(all_invoices(
            &server,
            token,
            invoices_request(center, y, SettledFilter::Unsettled)
        )
        .await
        .is_empty());
    }
    // By voucher: the enterprise may look too; this year's invoices are not in last year's.
    for token in [BUREAU, CENTER_1, ENTERPRISE_1] {
        let by_voucher = all_invoices(
            &server,
            token,
            ListInvoicesRequest {
                voucher_id: V1.into(),
                page_size: 5,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by_voucher.len(), 14, "{token}");
        assert!(by_voucher.iter().all(|invoice| invoice.voucher_id == V1));
    }
    let this_years = all_invoices(
        &server,
        CENTER_1,
        invoices_request(1, this_year as u32, SettledFilter::Any),
    )
    .await;
    assert_eq!(
        this_years
            .iter()
            .map(|invoice| (invoice.invoice_number.as_str(), invoice.statement_id))
            .collect::<Vec<_>>(),
        vec![("C-INV-1", s5)]
    );
    code_of(
        server
            .settlement()
            .list_invoices(authed(
                CENTER_2,
                ListInvoicesRequest {
                    voucher_id: V1.into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
        "another center's voucher",
    );
    code_of(
        server
            .settlement()
            .list_invoices(authed(CENTER_2, invoices_request(1, y, SettledFilter::Any)))
            .await,
        Code::PermissionDenied,
        "another center's invoices",
    );

    // ---------------------------------------------------------------- who did what
    let log = server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: 1,
                limit: 10_000,
            },
        ))
        .await
        .expect("read events")
        .into_inner();
    let origin = |event: &EventRecord| {
        (
            event.principal_role.clone(),
            event.principal_name.clone(),
            event.request_id.clone(),
        )
    };
    let at = |sequence: u64| &log.events[sequence as usize - 1];
    let bureau = |request: &str| {
        (
            "bureau".to_string(),
            "bureau".to_string(),
            request.to_string(),
        )
    };
    assert_eq!(at(v1_sequence).r#type, "VoucherApproved");
    assert_eq!(origin(at(v1_sequence)), bureau("approve-v1"));
    for posted in book.posted.iter() {
        let event = at(posted.sequence);
        assert_eq!(event.r#type, "InvoiceRedeemed");
        let expected = match (posted.center, posted.number.as_str()) {
            (1, number) if number.starts_with("Q4-C1-0") => (
                "center".to_string(),
                center_code(1),
                "q4-batch-center-1".to_string(),
            ),
            (1, _) => ("center".into(), center_code(1), String::new()),
            (2, _) => ("center".into(), center_code(2), String::new()),
            _ => bureau(""),
        };
        assert_eq!(origin(event), expected, "{posted:?}");
    }
    let run_events: Vec<&EventRecord> = log
        .events
        .iter()
        .filter(|event| event.sequence >= run.cutoff_sequence && event.sequence <= run.sequence)
        .collect();
    assert_eq!(
        run_events
            .iter()
            .map(|event| event.r#type.as_str())
            .collect::<Vec<_>>(),
        vec![
            "SettlementRunCreated",
            "StatementIssued",
            "StatementIssued",
            "StatementIssued"
        ]
    );
    assert!(run_events
        .iter()
        .all(|event| origin(event) == bureau("run-1")));
    assert_eq!(origin(at(paid.sequence)), bureau(&format!("pay-{s1}")));
    assert_eq!(at(paid.sequence).r#type, "PaymentConfirmed");
    assert_eq!(origin(at(returned.sequence)), bureau("bounce-s2"));
    assert_eq!(at(returned.sequence).r#type, "PaymentReturned");
    assert_eq!(origin(at(clawback_1_sequence(&log))), bureau("clawback-1"));
    assert_eq!(origin(at(first.sequence)), bureau("repay-1"));
    assert_eq!(at(first.sequence).r#type, "RepaymentRecorded");
    let reversal = at(reversed.sequence);
    assert_eq!(
        origin(reversal),
        ("center".to_string(), center_code(1), String::new())
    );
    match &reversal.event {
        Some(event_record::Event::InvoiceReversed(event)) => {
            assert!(!event.clawback && event.returned_to_voucher)
        }
        other => panic!("{other:?}"),
    }

    // ---------------------------------------------------------------- the pool, the clock
    let figures = server
        .settlement()
        .get_year_figures(authed(AUDITOR, GetYearFiguresRequest { year: y }))
        .await
        .expect("figures")
        .into_inner()
        .figures
        .expect("figures");
    let carried =
        fen(&figures.held) + fen(&figures.redeemed) + fen(&figures.receivables_outstanding);
    refused(
        server
            .settlement()
            .adjust_pool(authed(
                BUREAU,
                AdjustPoolRequest {
                    year: y,
                    new_pool: yuan(carried - 1),
                    reason: "budget cut".into(),
                },
            ))
            .await,
        Code::FailedPrecondition,
        "POOL_BELOW_USAGE",
    );
    let adjusted = server
        .settlement()
        .adjust_pool(authed_with_id(
            BUREAU,
            "pool-raise",
            AdjustPoolRequest {
                year: y,
                new_pool: "1200000.00".into(),
                reason: "supplementary budget".into(),
            },
        ))
        .await
        .expect("adjust pool")
        .into_inner();
    assert_eq!(
        (
            adjusted.year,
            adjusted.pool.as_str(),
            adjusted.previous_pool.as_str()
        ),
        (y, "1200000.00", "1000000.00")
    );
    let programme = programme_year(&server, y).await;
    assert_eq!(programme.pool, "1200000.00");
    assert_eq!(
        programme.policy.expect("policy").annual_pool,
        "1000000.00",
        "the published policy stays as it was"
    );
    let confirmed = server
        .programme()
        .confirm_clock(authed(
            BUREAU,
            ConfirmClockRequest {
                reason: "NTP checked against the bureau's time server".into(),
            },
        ))
        .await
        .expect("confirm clock")
        .into_inner();
    assert!(confirmed.confirmed_time_unix_ms > 0);

    // ---------------------------------------------------------------- the year closed
    refused(
        server
            .settlement()
            .close_programme_year(authed(BUREAU, CloseProgrammeYearRequest { year: y }))
            .await,
        Code::FailedPrecondition,
        "YEAR_NOT_OVER",
    );
    // The quarter's contracts end early: their vouchers are cancelled.
    let mut remaining = 0;
    for id in [V1, V2, V3] {
        let cancelled = server
            .vouchers()
            .cancel_voucher(authed(
                BUREAU,
                CancelVoucherRequest {
                    voucher_id: id.into(),
                    reason: "contract ended early".into(),
                },
            ))
            .await
            .expect("cancel")
            .into_inner()
            .voucher
            .expect("voucher");
        assert_eq!(cancelled.status, VoucherStatus::Cancelled as i32);
        remaining += fen(&cancelled.released);
    }
    assert!(remaining > 0);
    let closed = server
        .settlement()
        .close_programme_year(authed_with_id(
            BUREAU,
            "close",
            CloseProgrammeYearRequest { year: y },
        ))
        .await
        .expect("close the year")
        .into_inner();
    let totals = closed.figures.clone().expect("figures");
    let approved: i64 = face_values.values().sum();
    let redeemed = book.standing(0);
    let of_year: Vec<&Statement> = statements
        .values()
        .filter(|statement| statement.year == y)
        .collect();
    let sum = |field: fn(&Statement) -> &str| -> i64 {
        of_year.iter().map(|statement| fen(field(statement))).sum()
    };
    let settled = sum(|statement| &statement.gross_subsidy);
    let paid_total = sum(|statement| &statement.net_due);
    let offset = sum(|statement| &statement.clawback_offset);
    assert_eq!(
        offset, 180_000,
        "1,500.00 of center 1 and 300.00 of center 3"
    );
    assert_eq!(paid_total, settled - offset);
    // Center 3 still owes 600.00 of its clawback: still carried by the pool.
    let owed = 60_000;
    assert_eq!(
        totals,
        YearFigures {
            year: y,
            closed: true,
            pool: "1200000.00".into(),
            approved: yuan(approved),
            held: "0.00".into(),
            redeemed: yuan(redeemed),
            released: yuan(approved - redeemed - owed),
            settled: yuan(settled),
            paid: yuan(paid_total),
            receivables_outstanding: yuan(owed),
            free: yuan(120_000_000 - redeemed - owed),
        }
    );
    // Per tier: one voucher each.
    let tier = |wanted: FacilityTier| {
        closed
            .tiers
            .iter()
            .find(|tier| tier.tier == wanted as i32)
            .cloned()
            .expect("tier")
    };
    let voucher_redeemed = |id: &str| -> i64 {
        book.posted
            .iter()
            .filter(|posted| {
                posted.voucher == id && !posted.reversed_unsettled && !posted.clawed_back
            })
            .map(|posted| posted.subsidy)
            .sum()
    };
    let voucher_owed = |id: &str| if id == V3 { owed } else { 0 };
    for (wanted, vouchers) in [
        (FacilityTier::Domestic, vec![V1]),
        (FacilityTier::Other, vec![V2]),
        (FacilityTier::MaasMultimodal, vec![V3]),
    ] {
        let face: i64 = vouchers.iter().map(|id| face_values[id]).sum();
        let redeemed: i64 = vouchers.iter().map(|id| voucher_redeemed(id)).sum();
        let owed: i64 = vouchers.iter().map(|id| voucher_owed(id)).sum();
        assert_eq!(
            tier(wanted),
            TierFigures {
                tier: wanted as i32,
                vouchers: vouchers.len() as u64,
                approved: yuan(face),
                redeemed: yuan(redeemed),
                released: yuan(face - redeemed - owed),
            }
        );
    }
    // Per center.
    assert_eq!(closed.centers.len(), 3);
    for center in 1..=3 {
        let found = closed
            .centers
            .iter()
            .find(|figures| figures.center == center_code(center))
            .expect("center figures");
        let of_center: Vec<&Statement> = statements
            .values()
            .filter(|statement| statement.center == center_code(center) && statement.year == y)
            .collect();
        assert_eq!(
            found,
            &CenterFigures {
                center: center_code(center),
                name: CENTER_NAMES[center - 1].into(),
                redeemed: yuan(book.standing(center)),
                settled: yuan(
                    of_center
                        .iter()
                        .map(|statement| fen(&statement.gross_subsidy))
                        .sum()
                ),
                paid: yuan(
                    of_center
                        .iter()
                        .map(|statement| fen(&statement.net_due))
                        .sum()
                ),
                unsettled: "0.00".into(),
                receivables_outstanding: yuan(if center == 3 { owed } else { 0 }),
            }
        );
    }
    // Per enterprise: 1 holds V1 and V3, 2 holds V2.
    assert_eq!(closed.enterprises.len(), 2);
    for (enterprise, vouchers) in [(1, vec![V1, V3]), (2, vec![V2])] {
        let face: i64 = vouchers.iter().map(|id| face_values[id]).sum();
        let redeemed: i64 = vouchers.iter().map(|id| voucher_redeemed(id)).sum();
        let owed: i64 = vouchers.iter().map(|id| voucher_owed(id)).sum();
        let found = closed
            .enterprises
            .iter()
            .find(|figures| figures.enterprise == enterprise_code(enterprise))
            .expect("enterprise figures");
        assert_eq!(
            found,
            &EnterpriseFigures {
                enterprise: enterprise_code(enterprise),
                name: format!("Enterprise {enterprise}"),
                cap: "200000.00".into(),
                approved: yuan(face),
                redeemed: yuan(redeemed),
                released: yuan(face - redeemed - owed),
            }
        );
    }
    // GetYearFigures agrees; closing again answers the same and appends nothing.
    let read_back = server
        .settlement()
        .get_year_figures(authed(AUDITOR, GetYearFiguresRequest { year: y }))
        .await
        .expect("figures")
        .into_inner();
    assert_eq!(read_back, closed);
    let again = server
        .settlement()
        .close_programme_year(authed(BUREAU, CloseProgrammeYearRequest { year: y }))
        .await
        .expect("close again")
        .into_inner();
    assert_eq!(again, closed);
    assert_eq!(server.log_end().await, closed.sequence);
    assert_eq!(
        at_type(&server, closed.sequence).await,
        "ProgrammeYearClosed"
    );
    assert!(programme_year(&server, y).await.closed);

    // After the close: no approval, invoice, reversal or pool change for the year.
    refused(
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                approve("", year, (2, 2), "HT-LATE", ("1000.00", "100.00"), quarter),
            ))
            .await,
        Code::FailedPrecondition,
        "YEAR_CLOSED",
    );
    refused(
        server
            .redemption()
            .post_invoice(authed(
                CENTER_1,
                invoice(1, V1, "Q4-C1-LATE", "100.00", day(12, 30)),
            ))
            .await,
        Code::FailedPrecondition,
        "YEAR_CLOSED",
    );
    refused(
        server
            .redemption()
            .reverse_invoice(authed(
                BUREAU,
                ReverseInvoiceRequest {
                    center: center_code(1),
                    invoice_number: "Q4-C1-01".into(),
                    reason: "too late".into(),
                },
            ))
            .await,
        Code::FailedPrecondition,
        "YEAR_CLOSED",
    );
    refused(
        server
            .settlement()
            .adjust_pool(authed(
                BUREAU,
                AdjustPoolRequest {
                    year: y,
                    new_pool: "1300000.00".into(),
                    reason: "too late".into(),
                },
            ))
            .await,
        Code::FailedPrecondition,
        "YEAR_CLOSED",
    );
    // A retried invoice of the closed year still gets its original answer.
    let retry = post_one(
        &server,
        CENTER_1,
        invoice(1, V1, "Q4-C1-02", "2500.00", day(10, 10)),
    )
    .await;
    assert!(retry.duplicate && retry.subsidy == "750.00");
    let retry = post_one(
        &server,
        CENTER_1,
        invoice(1, V1, "Q4-C1-07", "5000.00", day(11, 14)),
    )
    .await;
    assert_eq!(
        (retry.duplicate, retry.reversed, retry.subsidy.as_str()),
        (true, true, "0.00")
    );
    // So does a retried approval: the original voucher (cancelled since), as a duplicate.
    let again = server
        .vouchers()
        .approve_voucher(authed(BUREAU, v1_request.clone()))
        .await
        .expect("approval retried after the close")
        .into_inner();
    assert_eq!(
        (
            again.duplicate,
            again.sequence,
            again.voucher.expect("voucher").status
        ),
        (true, v1_sequence, VoucherStatus::Cancelled as i32)
    );
    assert_eq!(server.log_end().await, closed.sequence);

    // Repaying goes on after the close: center 3 repays what it still owes, and the
    // year's figures free it.
    let repaid = server
        .settlement()
        .record_repayment(authed(
            BUREAU,
            RecordRepaymentRequest {
                center: center_code(3),
                year: y,
                amount: yuan(owed),
                bank_reference: "REPAY-C3-001".into(),
                value_date: today.to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("repayment after the close")
        .into_inner();
    assert_eq!(repaid.outstanding, "0.00");
    let after = server
        .settlement()
        .get_year_figures(authed(BUREAU, GetYearFiguresRequest { year: y }))
        .await
        .expect("figures")
        .into_inner();
    let after_totals = after.figures.clone().expect("figures");
    assert_eq!(
        after_totals,
        YearFigures {
            released: yuan(approved - redeemed),
            receivables_outstanding: "0.00".into(),
            free: yuan(120_000_000 - redeemed),
            ..totals.clone()
        }
    );
    assert_eq!(voucher(&server, V3).await.clawback_outstanding, "0.00");

    // A year with a policy and nothing else closes at once, with empty figures.
    let empty_year = y - 1;
    server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year: empty_year,
                    annual_pool: "50000000.00".into(),
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("policy of an empty year");
    let empty = server
        .settlement()
        .close_programme_year(authed(
            BUREAU,
            CloseProgrammeYearRequest { year: empty_year },
        ))
        .await
        .expect("close an empty year")
        .into_inner();
    assert_eq!(
        empty.figures.expect("figures"),
        YearFigures {
            year: empty_year,
            closed: true,
            pool: "50000000.00".into(),
            approved: "0.00".into(),
            held: "0.00".into(),
            redeemed: "0.00".into(),
            released: "0.00".into(),
            settled: "0.00".into(),
            paid: "0.00".into(),
            receivables_outstanding: "0.00".into(),
            free: "50000000.00".into(),
        }
    );
    assert!(empty.centers.is_empty() && empty.enterprises.is_empty());

    // What the server shows is what the log replays to: restart on the same directory.
    let shown = (
        all_statements(&server, AUDITOR, ListStatementsRequest::default()).await,
        receivables(&server, AUDITOR, None, 0).await,
        all_invoices(&server, AUDITOR, invoices_request(1, y, SettledFilter::Any)).await,
        year_figures(&server, y).await,
        programme_year(&server, y).await,
    );
    let directory = server.stop().await;
    let server = TestServer::start_in(directory, Default::default()).await;
    let replayed = (
        all_statements(&server, AUDITOR, ListStatementsRequest::default()).await,
        receivables(&server, AUDITOR, None, 0).await,
        all_invoices(&server, AUDITOR, invoices_request(1, y, SettledFilter::Any)).await,
        year_figures(&server, y).await,
        programme_year(&server, y).await,
    );
    assert_eq!(replayed, shown);

    let directory = server.stop().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

fn clawback_1_sequence(log: &ReadEventsResponse) -> u64 {
    log.events
        .iter()
        .find(|event| {
            matches!(&event.event, Some(event_record::Event::InvoiceReversed(reversed))
                if reversed.clawback && reversed.invoice_number == "Q4-C1-07")
        })
        .expect("the first clawback")
        .sequence
}

async fn at_type(server: &TestServer, sequence: u64) -> String {
    server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: sequence,
                limit: 1,
            },
        ))
        .await
        .expect("read")
        .into_inner()
        .events
        .remove(0)
        .r#type
}

// ------------------------------------------------- a reimbursement year (issue 13)

/// A reimbursement year over gRPC: the policy pays the enterprise; an invoice without
/// the enterprise's proof of payment is refused (PAYMENT_PROOF_MISSING); with one, the
/// enterprise pays the center the whole amount; the run issues one statement per
/// enterprise, which shows its payee (kind and USCC) and which the enterprise, not the
/// center, may read; paying it pays the enterprise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reimbursement_year_states_and_pays_its_payee_the_enterprise_over_grpc() {
    let today = today();
    let (this_year, _, _) = today.year_month_day();
    let y = this_year as u32;
    let server = TestServer::start().await;
    server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year: y,
                    payee: Payee::Enterprise as i32,
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("a reimbursement policy is published");
    register_center_and_enterprises(&server.channel, CENTER_NAMES[0], 2).await;
    const R1: &str = "5a0c7e21-3b44-4f9d-8e12-7c6b5a4d0001";
    const R2: &str = "5a0c7e21-3b44-4f9d-8e12-7c6b5a4d0002";
    let term = (today, today.plus_days(30));
    for (voucher, enterprise, contract) in [(R1, 1, "RE-001"), (R2, 2, "RE-002")] {
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                approve(
                    voucher,
                    this_year,
                    (enterprise, 1),
                    contract,
                    ("10000.00", "10000.00"),
                    term,
                ),
            ))
            .await
            .expect("approve");
    }
    // Without a proof of payment: refused, with the stable code.
    let status = refused(
        server
            .redemption()
            .post_invoice(authed(
                CENTER_1,
                invoice(1, R1, "RE-INV-1", "1000.00", today),
            ))
            .await,
        Code::FailedPrecondition,
        "PAYMENT_PROOF_MISSING",
    );
    assert!(status.message().contains("RE-INV-1"), "{status:?}");
    // A proof that is not an identifier is malformed.
    invalid(
        server
            .redemption()
            .post_invoice(authed(
                CENTER_1,
                Invoice {
                    payment_proof: "bank\u{0}ref".into(),
                    ..invoice(1, R1, "RE-INV-1", "1000.00", today)
                },
            ))
            .await,
        "payment_proof",
    );
    let with_proof = |voucher: &str, number: &str, amount: &str| Invoice {
        payment_proof: format!("ICBC-{number}"),
        ..invoice(1, voucher, number, amount, today)
    };
    let answer = post_one(&server, CENTER_1, with_proof(R1, "RE-INV-1", "1000.00")).await;
    assert_eq!(
        (answer.subsidy.as_str(), answer.enterprise_pays.as_str()),
        ("300.00", "1000.00"),
        "reimbursement: the enterprise pays the center in full"
    );
    post_one(&server, CENTER_1, with_proof(R2, "RE-INV-2", "500.00")).await;
    let run = server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: "5a0c7e21-3b44-4f9d-8e12-7c6b5a4d00ff".into(),
                year: y,
            },
        ))
        .await
        .expect("run")
        .into_inner();
    let payees: Vec<(i32, String, String, String, String)> = run
        .statements
        .iter()
        .map(|statement| {
            (
                statement.payee_kind,
                statement.payee.clone(),
                statement.payee_name.clone(),
                statement.center.clone(),
                statement.net_due.clone(),
            )
        })
        .collect();
    assert_eq!(
        payees,
        vec![
            (
                Payee::Enterprise as i32,
                enterprise_code(1),
                "Enterprise 1".to_string(),
                String::new(),
                "300.00".to_string()
            ),
            (
                Payee::Enterprise as i32,
                enterprise_code(2),
                "Enterprise 2".to_string(),
                String::new(),
                "150.00".to_string()
            ),
        ]
    );
    let first = run.statements[0].statement_id;
    // The enterprise reads and lists its own statement; the center and the other
    // enterprise do not see it.
    assert_eq!(
        statement(&server, ENTERPRISE_1, first).await.payee,
        enterprise_code(1)
    );
    for stranger in [CENTER_1, ENTERPRISE_2] {
        code_of(
            server
                .settlement()
                .get_statement(authed(
                    stranger,
                    GetStatementRequest {
                        statement_id: first,
                    },
                ))
                .await,
            Code::NotFound,
            "another payee's statement",
        );
    }
    let own = all_statements(
        &server,
        ENTERPRISE_1,
        ListStatementsRequest {
            payee: enterprise_code(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&own), vec![first]);
    assert!(
        all_statements(
            &server,
            CENTER_1,
            ListStatementsRequest {
                center: center_code(1),
                ..Default::default()
            },
        )
        .await
        .is_empty(),
        "a center is paid nothing in a reimbursement year"
    );
    let paid = pay(&server, first, "BUREAU-RE-1", "300.00", today)
        .await
        .expect("pay")
        .into_inner()
        .statement
        .expect("statement");
    assert_eq!(paid.state, StatementState::Paid as i32);
    assert_eq!(paid.payee, enterprise_code(1));
    let figures = year_figures(&server, y).await.figures.expect("figures");
    assert_eq!(figures.paid, "300.00");
    server.stop().await;
}

// --------------------------------------------------- a stacked-funding year (issue 13)

/// Stacked funding over gRPC: a policy with a provincial second source (10%, combined
/// 35%) is published; a voucher shows its second share; an invoice's answer carries both
/// subsidies and the enterprise pays the rest; the run issues the second source's
/// statement beside the programme's, each paid on its own; a settled invoice reversed is
/// owed back to each source, and the center repays the province by `funding_source`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stacked_year_pays_both_sources_statements_and_recovers_each_over_grpc() {
    let today = today();
    let (this_year, _, _) = today.year_month_day();
    let y = this_year as u32;
    let server = TestServer::start().await;
    server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year: y,
                    second_source: Some(SecondSource {
                        name: "浙江省算力券".into(),
                        annual_pool: "50000000.00".into(),
                        rate: "0.10".into(),
                        combined_ceiling: "0.35".into(),
                    }),
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("a stacked policy is published");
    register_center_and_enterprises(&server.channel, CENTER_NAMES[0], 1).await;
    const S1: &str = "5a0c7e21-3b44-4f9d-8e12-7c6b5a4d0101";
    let approved = server
        .vouchers()
        .approve_voucher(authed(
            BUREAU,
            approve(
                S1,
                this_year,
                (1, 1),
                "ST-001",
                ("100000.01", "100000.01"),
                (today, today.plus_days(30)),
            ),
        ))
        .await
        .expect("approve")
        .into_inner()
        .voucher
        .expect("voucher");
    // 30% of the fee for the city; the province's 10% cut to 35% - 30% = 5,000.00.
    assert_eq!(approved.face_value, "30000.00");
    assert_eq!(approved.second_face_value, "5000.00");
    let answer = post_one(
        &server,
        CENTER_1,
        invoice(1, S1, "ST-INV-1", "10000.00", today),
    )
    .await;
    assert_eq!(
        (
            answer.subsidy.as_str(),
            answer.second_subsidy.as_str(),
            answer.enterprise_pays.as_str()
        ),
        ("3000.00", "1000.00", "6000.00"),
        "both subsidies, and the enterprise pays the rest"
    );
    post_one(
        &server,
        CENTER_1,
        invoice(1, S1, "ST-INV-2", "5000.00", today),
    )
    .await;
    let run = server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: "7b1d2c3e-4f50-4a61-8b72-9c8d7e6f0101".into(),
                year: y,
            },
        ))
        .await
        .expect("run")
        .into_inner();
    let shown: Vec<(i32, String, String)> = run
        .statements
        .iter()
        .map(|statement| {
            (
                statement.funding_source,
                statement.gross_subsidy.clone(),
                statement.funder.clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                FundingSource::Primary as i32,
                "4500.00".into(),
                String::new()
            ),
            (
                FundingSource::Second as i32,
                "1500.00".into(),
                "浙江省算力券".into()
            ),
        ]
    );
    assert_eq!(
        run.gross_subsidy, "4500.00",
        "the run's totals are the city's"
    );
    for (statement, reference) in run.statements.iter().zip(["CITY-PAY-1", "PROV-PAY-1"]) {
        pay(
            &server,
            statement.statement_id,
            reference,
            &statement.net_due,
            today,
        )
        .await
        .expect("paid by its own funder");
    }
    let figures = year_figures(&server, y).await;
    assert_eq!(figures.figures.expect("figures").paid, "4500.00");
    assert_eq!(figures.second_source_name, "浙江省算力券");
    let second = figures.second_source.expect("second source figures");
    assert_eq!(
        (second.paid.as_str(), second.pool.as_str()),
        ("1500.00", "50000000.00")
    );
    // A settled invoice reversed: owed back to each source.
    let reversed = server
        .redemption()
        .reverse_invoice(authed(
            BUREAU,
            ReverseInvoiceRequest {
                center: center_code(1),
                invoice_number: "ST-INV-2".into(),
                reason: "红字发票".into(),
            },
        ))
        .await
        .expect("reversal")
        .into_inner();
    assert!(reversed.clawback);
    assert_eq!(
        (reversed.subsidy.as_str(), reversed.second_subsidy.as_str()),
        ("1500.00", "500.00")
    );
    let owed: BTreeMap<i32, String> = server
        .settlement()
        .list_receivables(authed(BUREAU, ListReceivablesRequest::default()))
        .await
        .expect("receivables")
        .into_inner()
        .receivables
        .into_iter()
        .map(|receivable| (receivable.funding_source, receivable.outstanding))
        .collect();
    assert_eq!(
        owed,
        BTreeMap::from([
            (FundingSource::Primary as i32, "1500.00".to_string()),
            (FundingSource::Second as i32, "500.00".to_string()),
        ])
    );
    let repaid = server
        .settlement()
        .record_repayment(authed(
            BUREAU,
            RecordRepaymentRequest {
                center: center_code(1),
                year: y,
                amount: "500.00".into(),
                bank_reference: "PROV-REPAY-1".into(),
                value_date: today.to_string(),
                funding_source: FundingSource::Second as i32,
            },
        ))
        .await
        .expect("repaid to the province")
        .into_inner();
    assert_eq!(repaid.outstanding, "0.00");
    let owed_to_city = receivables(&server, BUREAU, Some(1), y).await;
    assert!(owed_to_city
        .iter()
        .any(
            |receivable| receivable.funding_source == FundingSource::Primary as i32
                && receivable.outstanding == "1500.00"
        ));
}
