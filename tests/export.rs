//! Tests for issue 10's exports: the CSV and XLSX files read back (with `csv` and
//! `calamine`) equal the ledger's figures to the fen, Chinese names intact; the gRPC
//! download is the same bytes as the library's and the CLI's export and is refused to a
//! center asking for another center's data; the audit package verifies offline, and a
//! tampered one is refused naming the file.
//!
//! One settlement scenario over gRPC (tests/support's real server on 127.0.0.1:0): two
//! centers with Chinese legal names, invoices, two settlement runs, a payment, two
//! clawbacks (one offset by the second run, one partly repaid).

mod support;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use support::*;
use tonic::Code;
use voucher_ledger::api::proto::*;
use voucher_ledger::domain::{Date, ProgrammeYear, Uscc};
use voucher_ledger::export::download::{export_file, ExportRequest};
use voucher_ledger::export::figures::InvoicePeriod;
use voucher_ledger::export::package::{verify_package, write_package, Manifest};
use voucher_ledger::export::FileFormat;
use voucher_ledger::ledger::LedgerReader;

const CENTER_1_NAME: &str = "杭州算力中心有限公司";
const CENTER_2_NAME: &str = "钱塘智算科技有限公司";
const ENTERPRISE_1_NAME: &str = "浙江“未来”人工智能有限公司";
const V1: &str = "5e3c0a10-0000-4000-8000-000000000001";
const V2: &str = "5e3c0a10-0000-4000-8000-000000000002";

/// Whole fen of a plain amount such as `1234.50`.
fn fen(text: &str) -> i64 {
    let (yuan, cents) = text.split_once('.').expect("two decimals");
    assert_eq!(cents.len(), 2, "{text}");
    yuan.parse::<i64>().expect("yuan") * 100 + cents.parse::<i64>().expect("fen")
}

/// What the scenario leaves: the year and the dates it used.
struct Scenario {
    year: u32,
    first_day: Date,
    last_day: Date,
}

/// The issue date `days` before today, but not before 1 January of this year.
fn issued(today: Date, days: i32) -> Date {
    let (year, _, _) = today.year_month_day();
    let first = Date::from_ymd(year, 1, 1).expect("date");
    today.plus_days(-days).max(first)
}

async fn post(
    server: &TestServer,
    token: &str,
    center: usize,
    voucher: &str,
    number: &str,
    amount: &str,
    issue_date: Date,
) {
    server
        .redemption()
        .post_invoice(authed(
            token,
            Invoice {
                center: center_code(center),
                voucher_id: voucher.into(),
                invoice_number: number.into(),
                amount: amount.into(),
                issue_date: issue_date.to_string(),
                delivery_proof: format!("验收单/{number}"),
                invoice_code: String::new(),
                payment_proof: String::new(),
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("invoice {number}: {status:?}"));
}

async fn run(server: &TestServer, run_id: &str, year: u32) -> SettlementRunResponse {
    server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: run_id.into(),
                year,
            },
        ))
        .await
        .expect("settlement run")
        .into_inner()
}

async fn reverse(server: &TestServer, number: &str) {
    server
        .redemption()
        .reverse_invoice(authed(
            // A settled invoice: only the bureau may reverse it.
            BUREAU,
            ReverseInvoiceRequest {
                center: center_code(1),
                invoice_number: number.into(),
                reason: "开票有误 issued in error".into(),
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("reversal of {number}: {status:?}"));
}

/// The scenario: this year's policy (Hangzhou defaults), two centers and two enterprises
/// with Chinese names, a voucher each, invoices, a run, a payment, a clawback offset by a
/// second run, another clawback partly repaid.
async fn seed(server: &TestServer) -> Scenario {
    let today = today();
    let (this_year, _, _) = today.year_month_day();
    let year = this_year as u32;
    server
        .programme()
        .publish_policy(authed(
            BUREAU,
            PublishPolicyRequest {
                source: Some(publish_policy_request::Source::Policy(Policy {
                    year,
                    ..Default::default()
                })),
            },
        ))
        .await
        .expect("policy");
    for (index, name, tier) in [
        (1, CENTER_1_NAME, FacilityTier::Domestic),
        (2, CENTER_2_NAME, FacilityTier::Other),
    ] {
        server
            .registry()
            .register_center(authed(
                BUREAU,
                RegisterCenterRequest {
                    uscc: center_code(index),
                    name: name.into(),
                    tier: tier as i32,
                    listing_basis: ListingBasis::PlanningLayout as i32,
                    ..Default::default()
                },
            ))
            .await
            .expect("center");
    }
    for (index, name) in [(1, ENTERPRISE_1_NAME), (2, "Enterprise 2")] {
        server
            .registry()
            .register_enterprise(authed(
                BUREAU,
                RegisterEnterpriseRequest {
                    uscc: enterprise_code(index),
                    name: name.into(),
                },
            ))
            .await
            .expect("enterprise");
    }
    let term = (
        Date::from_ymd(this_year, 1, 1).expect("date"),
        Date::from_ymd(this_year, 12, 31).expect("date"),
    );
    for (voucher, enterprise, center, contract, fee, requested) in [
        (V1, 1, 1, "HT-算力-001", "100000.00", "30000.00"),
        (V2, 2, 2, "HT-002", "50000.00", "10000.00"),
    ] {
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                ApproveVoucherRequest {
                    voucher_id: voucher.into(),
                    year,
                    enterprise: enterprise_code(enterprise),
                    center: center_code(center),
                    contract_number: contract.into(),
                    contract_fee: fee.into(),
                    term_start: term.0.to_string(),
                    term_end: term.1.to_string(),
                    requested: requested.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("voucher");
    }
    post(
        server,
        CENTER_1,
        1,
        V1,
        "C1-0001",
        "1000.07",
        issued(today, 9),
    )
    .await;
    post(
        server,
        CENTER_1,
        1,
        V1,
        "C1-0002",
        "2500.00",
        issued(today, 8),
    )
    .await;
    post(
        server,
        CENTER_1,
        1,
        V1,
        "C1-0003",
        "12345.67",
        issued(today, 7),
    )
    .await;
    post(
        server,
        CENTER_2,
        2,
        V2,
        "C2-0001",
        "777.77",
        issued(today, 7),
    )
    .await;
    post(
        server,
        CENTER_2,
        2,
        V2,
        "C2-0002",
        "4000.00",
        issued(today, 6),
    )
    .await;
    let first = run(server, "6a000000-0000-4000-8000-000000000001", year).await;
    assert_eq!(first.statements.len(), 2, "{first:?}");
    let center_1_statement = first
        .statements
        .iter()
        .find(|statement| statement.center == center_code(1))
        .expect("center 1's statement");
    server
        .settlement()
        .confirm_payment(authed(
            BUREAU,
            ConfirmPaymentRequest {
                statement_id: center_1_statement.statement_id,
                bank_reference: "ICBC-2026-0001".into(),
                amount: center_1_statement.net_due.clone(),
                value_date: today.to_string(),
            },
        ))
        .await
        .expect("payment");
    // A settled invoice reversed: a clawback, offset by the next run.
    reverse(server, "C1-0001").await;
    post(
        server,
        CENTER_1,
        1,
        V1,
        "C1-0004",
        "5000.00",
        issued(today, 3),
    )
    .await;
    let second = run(server, "6a000000-0000-4000-8000-000000000002", year).await;
    assert_eq!(second.clawback_offset, "300.02", "{second:?}");
    // Another clawback, partly repaid.
    reverse(server, "C1-0002").await;
    server
        .settlement()
        .record_repayment(authed(
            BUREAU,
            RecordRepaymentRequest {
                center: center_code(1),
                year,
                amount: "250.00".into(),
                bank_reference: "ICBC-2026-0002".into(),
                value_date: today.to_string(),
                ..Default::default()
            },
        ))
        .await
        .expect("repayment");
    Scenario {
        year,
        first_day: issued(today, 9),
        last_day: today,
    }
}

/// Downloads an export over gRPC: the chunks joined, checked against the header's size
/// and SM3. Returns the header and the bytes.
async fn download(
    stream: Result<tonic::Response<tonic::Streaming<FileChunk>>, tonic::Status>,
) -> Result<(FileHeader, Vec<u8>), tonic::Status> {
    let mut stream = stream?.into_inner();
    let mut header = None;
    let mut bytes = Vec::new();
    // Bounded: the server sends a finite file; each message is at most 64 KiB.
    for _ in 0..10_000 {
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("chunk in time")?
        else {
            break;
        };
        assert!(
            chunk.data.len() <= 64 << 10,
            "chunk of {} bytes",
            chunk.data.len()
        );
        if let Some(found) = chunk.header {
            assert!(header.is_none(), "a second header");
            header = Some(found);
        } else {
            assert!(header.is_some(), "the first chunk carries the header");
        }
        bytes.extend_from_slice(&chunk.data);
    }
    let header = header.expect("a header");
    assert_eq!(header.total_bytes, bytes.len() as u64);
    let digest = voucher_ledger::storage::record::sm3_digest(&bytes);
    assert_eq!(header.sm3, hex_of(&digest));
    Ok((header, bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A CSV export's records, after checking the BOM; the header row first.
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a UTF-8 BOM");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[3..]);
    reader
        .records()
        .map(|record| {
            record
                .expect("RFC 4180 record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// An XLSX export's only sheet, as rows of cells; the header row first.
fn xlsx_rows(bytes: &[u8], sheet: &str) -> Vec<Vec<Data>> {
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("xlsx");
    let range = workbook.worksheet_range(sheet).expect("sheet");
    range.rows().map(|row| row.to_vec()).collect()
}

/// A money cell, in fen (XLSX numbers are doubles: rounded to the fen).
fn cell_fen(cell: &Data) -> i64 {
    match cell {
        Data::Float(number) => (number * 100.0).round() as i64,
        Data::Int(number) => number * 100,
        other => panic!("not a money cell: {other:?}"),
    }
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::String(text) => text.clone(),
        Data::Empty => String::new(),
        Data::Float(number) => format!("{number}"),
        Data::Int(number) => number.to_string(),
        other => panic!("not a text cell: {other:?}"),
    }
}

/// The column of `english` in a header row such as `补贴总额 gross_subsidy`.
fn column(header: &[String], english: &str) -> usize {
    header
        .iter()
        .position(|name| name.ends_with(&format!(" {english}")))
        .unwrap_or_else(|| panic!("no column {english} in {header:?}"))
}

async fn statements_over_grpc(server: &TestServer, year: u32) -> Vec<Statement> {
    server
        .settlement()
        .list_statements(authed(
            AUDITOR,
            ListStatementsRequest {
                year,
                page_size: 1_000,
                ..Default::default()
            },
        ))
        .await
        .expect("statements")
        .into_inner()
        .statements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_read_back_equal_the_ledger_and_the_download_is_the_library_export() {
    let server = TestServer::start().await;
    let scenario = seed(&server).await;
    let year = scenario.year;
    let statements = statements_over_grpc(&server, year).await;
    assert_eq!(statements.len(), 3);

    // ----------------------------------------------------------------- statements, CSV
    let (header, statements_csv) = download(
        server
            .export()
            .export_statements(authed(
                BUREAU,
                ExportStatementsRequest {
                    year,
                    center: String::new(),
                    format: ExportFormat::Csv as i32,
                },
            ))
            .await,
    )
    .await
    .expect("statements as CSV");
    assert_eq!(header.file_name, format!("statements-{year}.csv"));
    assert!(header.content_type.starts_with("text/csv"));
    let rows = csv_rows(&statements_csv);
    let head = &rows[0];
    assert_eq!(head[0], "结算单号 statement_id");
    assert_eq!(rows.len(), 1 + statements.len());
    for (row, expected) in rows[1..].iter().zip(&statements) {
        assert_eq!(
            row[column(head, "statement_id")],
            expected.statement_id.to_string()
        );
        assert_eq!(row[column(head, "center_uscc")], expected.center);
        assert_eq!(row[column(head, "center_name")], expected.center_name);
        for (english, value) in [
            ("gross_subsidy", &expected.gross_subsidy),
            ("clawback_offset", &expected.clawback_offset),
            ("net_due", &expected.net_due),
            ("clawed_back", &expected.clawed_back),
        ] {
            // Exactly the ledger's text: plain, two decimals, re-read to the fen.
            assert_eq!(&row[column(head, english)], value, "{english}");
        }
        assert_eq!(
            row[column(head, "payment_reference")],
            expected.bank_reference
        );
    }
    let names: Vec<&str> = rows[1..]
        .iter()
        .map(|row| row[column(head, "center_name")].as_str())
        .collect();
    assert!(
        names.contains(&CENTER_1_NAME) && names.contains(&CENTER_2_NAME),
        "{names:?}"
    );

    // ---------------------------------------------------------------- statements, XLSX
    let (header, statements_xlsx) = download(
        server
            .export()
            .export_statements(authed(
                AUDITOR,
                ExportStatementsRequest {
                    year,
                    center: String::new(),
                    format: ExportFormat::Xlsx as i32,
                },
            ))
            .await,
    )
    .await
    .expect("statements as XLSX");
    assert_eq!(header.file_name, format!("statements-{year}.xlsx"));
    let cells = xlsx_rows(&statements_xlsx, "结算单 statements");
    let head: Vec<String> = cells[0].iter().map(cell_text).collect();
    assert_eq!(cells.len(), 1 + statements.len());
    for (row, expected) in cells[1..].iter().zip(&statements) {
        assert_eq!(
            cell_text(&row[column(&head, "center_name")]),
            expected.center_name
        );
        assert_eq!(
            cell_text(&row[column(&head, "center_uscc")]),
            expected.center
        );
        for (english, value) in [
            ("gross_subsidy", &expected.gross_subsidy),
            ("clawback_offset", &expected.clawback_offset),
            ("net_due", &expected.net_due),
        ] {
            assert_eq!(
                cell_fen(&row[column(&head, english)]),
                fen(value),
                "{english}"
            );
        }
    }
    let gross_total: i64 = cells[1..]
        .iter()
        .map(|row| cell_fen(&row[column(&head, "gross_subsidy")]))
        .sum();
    let expected_total: i64 = statements
        .iter()
        .map(|statement| fen(&statement.gross_subsidy))
        .sum();
    assert_eq!(gross_total, expected_total);

    // ----------------------------------------------------------------- receivables
    let receivables = server
        .settlement()
        .list_receivables(authed(
            BUREAU,
            ListReceivablesRequest {
                center: String::new(),
                year,
            },
        ))
        .await
        .expect("receivables")
        .into_inner()
        .receivables;
    assert_eq!(receivables.len(), 1, "{receivables:?}");
    let (_, receivables_xlsx) = download(
        server
            .export()
            .export_receivables(authed(
                BUREAU,
                ExportReceivablesRequest {
                    year,
                    center: String::new(),
                    format: ExportFormat::Xlsx as i32,
                },
            ))
            .await,
    )
    .await
    .expect("receivables as XLSX");
    let cells = xlsx_rows(&receivables_xlsx, "应收 receivables");
    let head: Vec<String> = cells[0].iter().map(cell_text).collect();
    let row = &cells[1];
    assert_eq!(cell_text(&row[column(&head, "center_name")]), CENTER_1_NAME);
    for (english, value) in [
        ("clawed_back", &receivables[0].clawed_back),
        ("offset", &receivables[0].offset),
        ("repaid", &receivables[0].repaid),
        ("outstanding", &receivables[0].outstanding),
    ] {
        assert_eq!(
            cell_fen(&row[column(&head, english)]),
            fen(value),
            "{english}"
        );
    }
    // 300.02 + 750.00 clawed back, 300.02 offset, 250.00 repaid, 500.00 outstanding.
    assert_eq!(receivables[0].outstanding, "500.00");

    // ------------------------------------------------- a center's invoices of a period
    let period = ExportInvoicesRequest {
        center: String::new(),
        from_date: scenario.first_day.to_string(),
        to_date: scenario.last_day.to_string(),
        format: ExportFormat::Csv as i32,
    };
    let (header, invoices_csv) = download(
        server
            .export()
            .export_invoices(authed(CENTER_1, period.clone()))
            .await,
    )
    .await
    .expect("a center's own invoices");
    assert!(
        header
            .file_name
            .ends_with(&format!("-{}.csv", center_code(1))),
        "{}",
        header.file_name
    );
    let listed = server
        .settlement()
        .list_invoices(authed(
            CENTER_1,
            ListInvoicesRequest {
                center: center_code(1),
                year,
                page_size: 1_000,
                ..Default::default()
            },
        ))
        .await
        .expect("invoices")
        .into_inner()
        .invoices;
    let rows = csv_rows(&invoices_csv);
    let head = &rows[0];
    assert_eq!(rows.len(), 1 + listed.len());
    let by_number: BTreeMap<&str, &InvoiceSummary> = listed
        .iter()
        .map(|invoice| (invoice.invoice_number.as_str(), invoice))
        .collect();
    for row in &rows[1..] {
        let expected = by_number[row[column(head, "invoice_number")].as_str()];
        assert_eq!(row[column(head, "amount")], expected.amount);
        assert_eq!(row[column(head, "subsidy")], expected.subsidy);
        assert_eq!(
            row[column(head, "enterprise_pays")],
            expected.enterprise_pays
        );
        assert_eq!(row[column(head, "issue_date")], expected.issue_date);
        assert_eq!(row[column(head, "center_name")], CENTER_1_NAME);
        assert_eq!(row[column(head, "enterprise_name")], ENTERPRISE_1_NAME);
        assert_eq!(
            row[column(head, "statement_id")],
            match expected.statement_id {
                0 => String::new(),
                id => id.to_string(),
            }
        );
    }

    // ------------------------------------------------------------- who may export what
    for (token, center) in [(CENTER_1, center_code(2)), (CENTER_2, center_code(1))] {
        let refused = server
            .export()
            .export_statements(authed(
                token,
                ExportStatementsRequest {
                    year,
                    center: center.clone(),
                    format: ExportFormat::Csv as i32,
                },
            ))
            .await
            .expect_err("another center's statements");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        let refused = server
            .export()
            .export_invoices(authed(
                token,
                ExportInvoicesRequest {
                    center,
                    ..period.clone()
                },
            ))
            .await
            .expect_err("another center's invoices");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let refused = server
        .export()
        .export_receivables(authed(
            ENTERPRISE_1,
            ExportReceivablesRequest {
                year,
                center: String::new(),
                format: ExportFormat::Csv as i32,
            },
        ))
        .await
        .expect_err("an enterprise exports nothing");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = server
        .export()
        .export_statements(authed(
            BUREAU,
            ExportStatementsRequest {
                year,
                center: String::new(),
                format: ExportFormat::Unspecified as i32,
            },
        ))
        .await
        .expect_err("no format");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // ------------------------------- the same bytes from the library and from the CLI
    let directory = server.stop().await;
    let reader = LedgerReader::open_read_only(directory.path()).expect("read-only reader");
    let programme_year = ProgrammeYear::new(year).expect("year");
    let library = |request: ExportRequest, format| {
        export_file(&reader, &request, format)
            .expect("export")
            .bytes
    };
    assert_eq!(
        library(
            ExportRequest::Statements {
                year: programme_year,
                center: None
            },
            FileFormat::Csv
        ),
        statements_csv
    );
    assert_eq!(
        library(
            ExportRequest::Statements {
                year: programme_year,
                center: None
            },
            FileFormat::Xlsx
        ),
        statements_xlsx
    );
    assert_eq!(
        library(
            ExportRequest::Receivables {
                year: programme_year,
                center: None
            },
            FileFormat::Xlsx
        ),
        receivables_xlsx
    );
    let center_1 = Uscc::parse("center", &center_code(1)).expect("uscc");
    assert_eq!(
        library(
            ExportRequest::Invoices(InvoicePeriod {
                center: Some(center_1),
                from: scenario.first_day,
                to: scenario.last_day,
            }),
            FileFormat::Csv
        ),
        invoices_csv
    );
    drop(reader);
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("statements.xlsx");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args(["export", "statements", "--data-dir"])
        .arg(directory.path())
        .args(["--year", &year.to_string(), "--format", "xlsx", "--out"])
        .arg(&file)
        .status()
        .expect("run the CLI");
    assert!(status.success());
    assert_eq!(
        std::fs::read(&file).expect("the CLI's file"),
        statements_xlsx
    );
}

/// Copies a package directory (flat) so each tampering starts from a clean one.
fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn problems_of(package: &Path) -> Vec<String> {
    verify_package(package).expect("readable package").problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_package_verifies_and_a_tampered_one_is_refused_naming_the_file() {
    let server = TestServer::start().await;
    let scenario = seed(&server).await;
    let statements = statements_over_grpc(&server, scenario.year).await;
    let directory = server.stop().await;
    let year = ProgrammeYear::new(scenario.year).expect("year");
    let work = tempfile::tempdir().expect("tempdir");
    let package = work.path().join("package");

    // Given a package written from the data directory,
    let summary = write_package(directory.path(), year, &package).expect("package");
    let manifest = &summary.manifest;
    assert_eq!(manifest.first_sequence, 1);
    let names: Vec<&str> = manifest
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    for expected in [
        "events.vlpk",
        "chain.csv",
        "statements.csv",
        "statements.xlsx",
        "payments.csv",
        "payments.xlsx",
        "receivables.csv",
        "receivables.xlsx",
        "year_figures.csv",
        "year_figures.xlsx",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // its head is the ledger's, and its statements are the ledger's,
    let reader = LedgerReader::open_read_only(directory.path()).expect("reader");
    let (last_sequence, _) = reader.read(|state| state.last_sequence());
    assert_eq!(manifest.last_sequence, last_sequence);
    drop(reader);
    let rows = csv_rows(&std::fs::read(package.join("statements.csv")).expect("statements.csv"));
    let head = &rows[0];
    assert_eq!(rows.len(), 1 + statements.len());
    for (row, expected) in rows[1..].iter().zip(&statements) {
        assert_eq!(row[column(head, "net_due")], expected.net_due);
        assert_eq!(row[column(head, "center_name")], expected.center_name);
    }
    let payments = csv_rows(&std::fs::read(package.join("payments.csv")).expect("payments.csv"));
    let kinds: Vec<&str> = payments[1..]
        .iter()
        .map(|row| row[column(&payments[0], "kind")].as_str())
        .collect();
    assert_eq!(kinds, ["payment", "repayment"]);
    // then it verifies offline.
    let report = verify_package(&package).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records_checked, last_sequence);

    // When one byte of the events is flipped, the package is refused naming the file.
    let flipped = work.path().join("flipped");
    copy_package(&package, &flipped);
    let events_path = flipped.join("events.vlpk");
    let mut events = std::fs::read(&events_path).expect("events");
    let middle = events.len() / 2;
    events[middle] ^= 0x01;
    std::fs::write(&events_path, &events).expect("write");
    let problems = problems_of(&flipped);
    assert!(!problems.is_empty());
    assert!(
        problems
            .iter()
            .all(|problem| problem.starts_with("events.vlpk")),
        "{problems:?}"
    );

    // When a statement's amount is changed in the CSV, the package is refused naming it,
    let edited = work.path().join("edited");
    copy_package(&package, &edited);
    let csv_path = edited.join("statements.csv");
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    let net = &statements[0].net_due;
    let changed = text.replacen(&format!(",{net},"), ",1.00,", 1);
    assert_ne!(changed, text, "the net {net} is in the CSV");
    std::fs::write(&csv_path, &changed).expect("write");
    let problems = problems_of(&edited);
    assert!(!problems.is_empty());
    assert!(
        problems
            .iter()
            .all(|problem| problem.starts_with("statements.csv")),
        "{problems:?}"
    );
    // and still when the manifest is edited to match it: the replay disagrees.
    let manifest_path = edited.join("manifest.toml");
    let mut manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest")).expect("toml");
    for file in manifest.files.iter_mut() {
        if file.name == "statements.csv" {
            file.bytes = changed.len() as u64;
            file.sm3 = hex_of(&voucher_ledger::storage::record::sm3_digest(
                changed.as_bytes(),
            ));
        }
    }
    std::fs::write(&manifest_path, toml::to_string(&manifest).expect("toml")).expect("write");
    let problems = problems_of(&edited);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("statements.csv: differs from what replaying events.vlpk yields"),
        "{problems:?}"
    );

    // The CLI: export writes the same package; verify exits 0, and 1 on the tampered one.
    let cli = env!("CARGO_BIN_EXE_voucher-ledger");
    let from_cli = work.path().join("from-cli");
    let status = std::process::Command::new(cli)
        .args(["export", "--data-dir"])
        .arg(directory.path())
        .args(["--year", &scenario.year.to_string(), "--out"])
        .arg(&from_cli)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("export");
    assert!(status.success());
    assert_eq!(
        std::fs::read(from_cli.join("manifest.toml")).expect("manifest"),
        std::fs::read(package.join("manifest.toml")).expect("manifest")
    );
    let verify = |path: &Path| {
        std::process::Command::new(cli)
            .args(["verify", "--package"])
            .arg(path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("verify")
            .code()
    };
    assert_eq!(verify(&from_cli), Some(0));
    assert_eq!(verify(&flipped), Some(1));
}
