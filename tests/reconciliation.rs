//! Reconciliation end to end: the hand-made files under `tests/fixtures/reconcile/` (see
//! its README: every discrepancy kind and every kind of malformed row, in UTF-8 CSV with
//! and without BOM, GBK CSV, XLSX, XLS and camt.053) matched against a real ledger built
//! through the state machine and the store; the report lists each discrepancy exactly
//! once with its file line. Then over gRPC against the real server: the reconciliation is
//! recorded, a re-import is recognised by its SM3 digest, roles are enforced, and the
//! record survives a restart (snapshot and replay agree, `verify` is clean).

mod common;
mod support;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use tonic::Code;
use voucher_ledger::api::proto;
use voucher_ledger::api::proto::reconciliation_service_client::ReconciliationServiceClient;
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::reconcile::{self, ledger_facts, DiscrepancyKind as Kind, ReconcileError};

const C1: &str = "91330100MA0000001F";
const C2: &str = "91330100MA0000002J";

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reconcile")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

// ------------------------------------------------------------------ the ledger

fn post_on(center: usize, voucher: u128, number: &str, amount: &str, issued: &str) -> Command {
    Command::PostInvoice(PostInvoice {
        center: common::center(center),
        voucher: common::voucher_id(voucher),
        invoice_number: common::invoice_number(number),
        amount: common::money(amount),
        issue_date: common::date(issued),
        delivery_proof: DeliveryProof::parse("acceptance/2026").expect("proof"),
        payment_proof: None,
    })
}

fn pay(statement: StatementId, reference: &str, amount: &str, value_date: &str) -> Command {
    Command::ConfirmPayment {
        statement,
        bank_reference: BankReference::parse(reference).expect("reference"),
        amount: common::money(amount),
        value_date: common::date(value_date),
    }
}

fn run(number: u128) -> Command {
    Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(number),
        year: common::year(),
    }
}

/// The fixtures' scenario (see the README): center 1's invoices issued 2026-06-30, one
/// reversed before settlement; three settlement runs of 2026; statements paid, one payment
/// returned and paid again.
fn build_ledger(directory: &Path) -> Ledger {
    let (mut ledger, _) = Ledger::open(
        directory,
        LedgerOptions {
            sync: false,
            ..LedgerOptions::default()
        },
    )
    .expect("open");
    let mut submit = |day: &str, command: Command| -> Reply {
        let name = command.name();
        let envelope = Envelope::new(common::at_date(day), command);
        ledger
            .submit(&[envelope])
            .expect("durable")
            .remove(0)
            .unwrap_or_else(|rejection| panic!("{name} on {day}: {rejection}"))
    };
    for command in common::registration_commands() {
        submit("2026-02-01", command);
    }
    submit(
        "2026-03-01",
        common::approve(1, 1, 1, "1000000.00", "300000.00"),
    );
    submit(
        "2026-03-01",
        common::approve(2, 1, 2, "100000.00", "20000.00"),
    );
    for (number, amount) in [
        ("INV-001", "10000.00"),
        ("INV-002", "20000.00"),
        ("INV-003", "5000.00"),
        ("INV-004", "8000.00"),
        ("INV-005", "1234.50"),
        ("INV-006", "1234.50"),
    ] {
        submit("2026-07-01", post_on(1, 1, number, amount, "2026-06-30"));
    }
    submit(
        "2026-07-01",
        post_on(2, 2, "INV-C2-1", "10000.00", "2026-06-30"),
    );
    submit("2026-07-02", common::reverse(1, "INV-004"));
    let statements = |reply: Reply| match reply {
        Reply::SettlementRunCreated(outcome) => outcome.statements,
        other => panic!("not a run: {other:?}"),
    };
    let first = statements(submit("2026-07-31", run(1)));
    assert_eq!(first.len(), 2, "one statement per center");
    submit(
        "2026-08-01",
        pay(first[0], "BANK-0001", "11240.70", "2026-08-01"),
    );
    submit(
        "2026-08-02",
        pay(first[1], "BANK-RET", "2000.00", "2026-08-02"),
    );
    submit(
        "2026-08-03",
        Command::RecordPaymentReturned {
            statement: first[1],
            bank_reference: BankReference::parse("BANK-RET").expect("reference"),
            reason: common::reason("account closed"),
        },
    );
    submit(
        "2026-08-04",
        pay(first[1], "BANK-0002", "2000.00", "2026-08-04"),
    );
    // Issued after the center list's period (it reconciles up to 2026-06-30).
    submit(
        "2026-10-01",
        post_on(1, 1, "INV-007", "1000.00", "2026-09-30"),
    );
    submit(
        "2026-10-01",
        post_on(2, 2, "INV-C2-2", "1000.00", "2026-09-30"),
    );
    let second = statements(submit("2026-10-31", run(2)));
    submit(
        "2026-11-01",
        pay(second[0], "BANK-0003", "300.00", "2026-11-01"),
    );
    submit(
        "2026-11-01",
        pay(second[1], "BANK-0004", "200.00", "2026-11-01"),
    );
    submit(
        "2026-11-02",
        post_on(1, 1, "INV-008", "2000.00", "2026-09-30"),
    );
    let third = statements(submit("2026-11-03", run(3)));
    submit(
        "2026-11-04",
        pay(third[0], "BANK-0005", "600.00", "2026-11-04"),
    );
    ledger
}

fn center_scope() -> ReconciliationScope {
    ReconciliationScope::CenterInvoices {
        center: common::center(1),
        from: common::date("2026-01-01"),
        to: common::date("2026-06-30"),
    }
}

fn bank_scope() -> ReconciliationScope {
    ReconciliationScope::BankPayments {
        year: common::year(),
    }
}

// ------------------------------------------------------------- expectations

/// The line of the `index`-th data row (from 0): the header is line 1 of a CSV or a sheet;
/// in camt.053 it is the line of the `index`-th `<TxDtls>`.
fn data_line(bytes: &[u8], format: FileFormat, index: usize) -> u32 {
    match format {
        FileFormat::Camt053 => {
            let text = std::str::from_utf8(bytes).expect("UTF-8");
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, line)| line.trim_start().starts_with("<TxDtls>"))
                .nth(index)
                .unwrap_or_else(|| panic!("no TxDtls {index}"))
                .0;
            line as u32 + 1
        }
        _ => index as u32 + 2,
    }
}

/// (kind, reference, data row index or None for ledger-only lines), in report order.
type Expected = Vec<(Kind, &'static str, Option<usize>)>;

fn expected_invoice_lines() -> Expected {
    vec![
        (Kind::Matched, "INV-001", Some(0)),
        (Kind::AmountMismatch, "INV-002", Some(1)),
        (Kind::SubsidyMismatch, "INV-003", Some(2)),
        (Kind::ReversedButClaimed, "INV-004", Some(3)),
        (Kind::Matched, "INV-006", Some(4)),
        (Kind::InFileNotInLedger, "INV-999", Some(5)),
        (Kind::DuplicateInFile, "INV-001", Some(6)),
        (Kind::InLedgerNotInFile, "INV-005", None),
    ]
}

fn expected_payment_lines() -> Expected {
    vec![
        (Kind::Matched, "BANK-0001", Some(0)),
        (Kind::Matched, "BANK-0002", Some(1)),
        (Kind::AmountMismatch, "BANK-0003", Some(2)),
        (Kind::PayeeMismatch, "BANK-0004", Some(3)),
        (Kind::ReturnedButPaid, "BANK-RET", Some(4)),
        (Kind::StatementPaidTwice, "BANK-X1", Some(5)),
        (Kind::PaymentWithoutStatement, "BANK-X2", Some(6)),
        (Kind::DuplicateInFile, "BANK-0001", Some(7)),
        (Kind::StatementNotPaid, "BANK-0005", None),
    ]
}

/// Checks a report against the expected lines and malformed rows (data row index and
/// column), each exactly once.
#[track_caller]
fn assert_report(
    name: &str,
    bytes: &[u8],
    report: &reconcile::Report,
    expected: &Expected,
    bad_rows: &[(usize, &str)],
) {
    let got: Vec<(Kind, String, Option<u32>)> = report
        .lines
        .iter()
        .map(|line| {
            (
                line.kind,
                line.reference.clone(),
                line.file.as_ref().and_then(|file| file.line),
            )
        })
        .collect();
    let want: Vec<(Kind, String, Option<u32>)> = expected
        .iter()
        .map(|(kind, reference, index)| {
            (
                *kind,
                (*reference).to_owned(),
                index.map(|index| data_line(bytes, report.format, index)),
            )
        })
        .collect();
    assert_eq!(got, want, "{name}: the report's lines");
    let errors: Vec<(u32, &str)> = report
        .row_errors
        .iter()
        .map(|error| (error.line, error.column))
        .collect();
    let want_errors: Vec<(u32, &str)> = bad_rows
        .iter()
        .map(|(index, column)| (data_line(bytes, report.format, *index), *column))
        .collect();
    assert_eq!(errors, want_errors, "{name}: the malformed rows");
    assert_eq!(
        report.rows as usize,
        expected.iter().filter(|line| line.2.is_some()).count() + bad_rows.len(),
        "{name}: rows read"
    );
}

// ------------------------------------------------------------------ the tests

#[test]
fn center_invoice_lists_in_every_format_list_each_discrepancy_once_with_its_line() {
    // Given the ledger of the scenario,
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = build_ledger(directory.path());
    let reader = ledger.reader();
    let years = ledger_facts::center_years(&ledger.state(), &common::center(1));
    let facts = ledger_facts::center_invoices(
        &reader,
        &common::center(1),
        &years,
        common::date("2026-01-01"),
        common::date("2026-06-30"),
    )
    .expect("facts");
    assert_eq!(facts.len(), 6, "center 1's invoices issued in the period");
    let malformed_csv = [
        (7, "issue_date"),
        (8, "amount"),
        (9, "subsidy"),
        (10, "row"),
    ];
    for (name, format, encoding, malformed) in [
        (
            "center-invoices-utf8.csv",
            FileFormat::Csv,
            FileEncoding::Utf8,
            &malformed_csv[..],
        ),
        (
            "center-invoices-utf8-bom.csv",
            FileFormat::Csv,
            FileEncoding::Utf8Bom,
            &malformed_csv[..],
        ),
        (
            "center-invoices-gbk.csv",
            FileFormat::Csv,
            FileEncoding::Gb18030,
            &malformed_csv[..],
        ),
        (
            "center-invoices.xlsx",
            FileFormat::Xlsx,
            FileEncoding::Binary,
            &malformed_csv[..3],
        ),
        (
            "center-invoices.xls",
            FileFormat::Xls,
            FileEncoding::Binary,
            &malformed_csv[..3],
        ),
    ] {
        // when the center's own list is matched with it,
        let bytes = fixture(name);
        let file = reconcile::prepare(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        let report = reconcile::reconcile_center_invoices(&file, center_scope(), &facts)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        // then the format and encoding are told from the bytes, and every discrepancy
        // and every malformed row is listed once, with its line.
        assert_eq!(
            (report.format, report.encoding),
            (format, encoding),
            "{name}"
        );
        assert_report(name, &bytes, &report, &expected_invoice_lines(), malformed);
        // Both sides' values are shown.
        let subsidy = report
            .lines
            .iter()
            .find(|line| line.kind == Kind::SubsidyMismatch)
            .expect("subsidy mismatch");
        assert_eq!(
            (
                subsidy.file.as_ref().and_then(|file| file.subsidy),
                subsidy.ledger.as_ref().and_then(|ledger| ledger.subsidy)
            ),
            (
                Some(common::money("1600.00")),
                Some(common::money("1500.00"))
            ),
            "{name}"
        );
        let csv = reconcile::report_csv::report_to_csv(&report).expect("csv");
        assert!(csv.starts_with(b"\xEF\xBB\xBF"), "the CSV report has a BOM");
        assert!(String::from_utf8(csv)
            .expect("UTF-8")
            .contains("SUBSIDY_MISMATCH,INV-003"));
        // The XLSX report has typed money cells: read back, the ledger's subsidy is 1500.
        let xlsx = reconcile::report_csv::report_to_xlsx(&report, Timestamp(0)).expect("xlsx");
        let mut book: calamine::Xlsx<_> =
            calamine::Reader::new(std::io::Cursor::new(xlsx)).expect("readable XLSX");
        let range = calamine::Reader::worksheet_range_at(&mut book, 0)
            .expect("a sheet")
            .expect("reads");
        let subsidy_row = range
            .rows()
            .find(|row| row[0] == calamine::Data::String("SUBSIDY_MISMATCH".into()))
            .expect("the subsidy line");
        assert_eq!(subsidy_row[9], calamine::Data::Float(1500.0), "{name}");
    }
    ledger.close().expect("close");
}

#[test]
fn bank_payment_files_in_every_format_list_each_discrepancy_once_with_its_line() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = build_ledger(directory.path());
    let statements = ledger_facts::year_statements(&ledger.state(), common::year());
    assert_eq!(
        statements.len(),
        5,
        "three runs: two, two and one statements"
    );
    let malformed = [
        (8, "payee_uscc"),
        (9, "value_date"),
        (10, "amount"),
        (11, "payee_name"),
    ];
    let with = |last: (usize, &'static str)| {
        let mut rows = malformed.to_vec();
        rows.push(last);
        rows
    };
    for (name, format, encoding, malformed) in [
        (
            "bank-payments-utf8.csv",
            FileFormat::Csv,
            FileEncoding::Utf8,
            with((12, "row")),
        ),
        (
            "bank-payments-gbk.csv",
            FileFormat::Csv,
            FileEncoding::Gb18030,
            with((12, "row")),
        ),
        (
            "bank-payments.xlsx",
            FileFormat::Xlsx,
            FileEncoding::Binary,
            malformed.to_vec(),
        ),
        (
            "bank-payments.xls",
            FileFormat::Xls,
            FileEncoding::Binary,
            malformed.to_vec(),
        ),
        (
            "bank-payments-camt053.xml",
            FileFormat::Camt053,
            FileEncoding::Utf8,
            with((12, "credit_debit")),
        ),
    ] {
        let bytes = fixture(name);
        let file = reconcile::prepare(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        let report = reconcile::reconcile_bank_payments(&file, bank_scope(), &statements)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            (report.format, report.encoding),
            (format, encoding),
            "{name}"
        );
        assert_report(name, &bytes, &report, &expected_payment_lines(), &malformed);
        let twice = report
            .lines
            .iter()
            .find(|line| line.kind == Kind::StatementPaidTwice)
            .expect("paid twice");
        assert_eq!(
            twice.ledger.as_ref().and_then(|ledger| ledger.statement),
            Some(statements[0].id),
            "{name}: names the statement paid before"
        );
        let payee = report
            .lines
            .iter()
            .find(|line| line.kind == Kind::PayeeMismatch)
            .expect("payee mismatch");
        assert_eq!(
            (
                payee.file.as_ref().and_then(|file| file.payee),
                payee.ledger.as_ref().and_then(|ledger| ledger.payee)
            ),
            (Some(common::center(1)), Some(common::center(2))),
            "{name}"
        );
    }
    ledger.close().expect("close");
}

#[test]
fn a_file_of_only_malformed_rows_is_refused_and_so_is_one_over_the_limits() {
    let bytes = fixture("only-bad-rows.csv");
    let file = reconcile::prepare(&bytes).expect("reads");
    assert!(matches!(
        reconcile::reconcile_center_invoices(&file, center_scope(), &[]),
        Err(ReconcileError::OnlyBadRows { row_errors: 2, .. })
    ));
    let big = fixture("center-invoices-utf8.csv");
    assert!(matches!(
        reconcile::prepare_with_limits(&big, 100, 1_000),
        Err(ReconcileError::TooLarge { limit: 100, .. })
    ));
    assert!(matches!(
        reconcile::prepare_with_limits(&big, 1 << 20, 5),
        Err(ReconcileError::TooManyRows { limit: 5 })
    ));
}

#[test]
fn a_sheet_naming_its_last_cell_is_read_cell_by_cell_not_as_a_dense_range() {
    // Given an XLSX with one invoice row and a value in cell XFD1048576,
    let bytes = fixture("far-cell.xlsx");
    // when it is read, only the cells it holds are (a dense range would be 17 billion),
    let file = reconcile::prepare(&bytes).expect("reads");
    let (rows, errors) = reconcile::rows::invoice_rows(&file.table).expect("rows");
    // then the invoice row is there, and the far cell is in no column the import reads.
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].invoice_number.as_str(), "INV-001");
    assert!(errors.is_empty(), "{errors:?}");
}

// ------------------------------------------------------------------- over gRPC

fn client(server: &support::TestServer) -> ReconciliationServiceClient<tonic::transport::Channel> {
    ReconciliationServiceClient::new(server.channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn center_request(name: &str) -> proto::ReconcileCenterInvoicesRequest {
    proto::ReconcileCenterInvoicesRequest {
        file: fixture(name),
        file_name: name.to_owned(),
        center: C1.to_owned(),
        from: "2026-01-01".into(),
        to: "2026-06-30".into(),
    }
}

fn count(recorded: &proto::RecordedReconciliation, kind: &str) -> u64 {
    recorded
        .reconciliation
        .as_ref()
        .expect("reconciliation")
        .counts
        .iter()
        .find(|count| count.kind == kind)
        .map_or(0, |count| count.count)
}

async fn list(
    server: &support::TestServer,
    token: &str,
    center: &str,
) -> Vec<proto::RecordedReconciliation> {
    client(server)
        .list_reconciliations(support::authed(
            token,
            proto::ListReconciliationsRequest {
                kind: String::new(),
                center: center.to_owned(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .reconciliations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliations_over_grpc_are_recorded_recognised_on_reimport_and_survive_a_restart() {
    assert_eq!(support::center_code(1), C1);
    assert_eq!(support::center_code(2), C2);
    // Given the scenario's ledger in a data directory, served,
    let directory = tempfile::tempdir().expect("tempdir");
    build_ledger(directory.path()).close().expect("close");
    let server = support::TestServer::start_in(
        directory,
        voucher_ledger::api::server::ServerSection::default(),
    )
    .await;
    // when the bureau reconciles center 1's GBK list,
    let first = client(&server)
        .reconcile_center_invoices(support::authed_with_id(
            support::BUREAU,
            "req-reconcile-1",
            center_request("center-invoices-gbk.csv"),
        ))
        .await
        .expect("reconcile")
        .into_inner();
    // then it is recorded with the file's SM3, its encoding and the counts per kind,
    assert!(!first.reimport);
    let recorded = first.recorded.clone().expect("recorded");
    let reconciliation = recorded.reconciliation.clone().expect("reconciliation");
    assert_eq!(
        reconciliation.file_sm3,
        reconcile::file_digest(&fixture("center-invoices-gbk.csv")).to_hex()
    );
    assert_eq!(
        (
            reconciliation.format.as_str(),
            reconciliation.encoding.as_str()
        ),
        ("csv", "GB18030")
    );
    assert_eq!((reconciliation.rows, reconciliation.row_errors), (11, 4));
    assert_eq!(count(&recorded, "MATCHED"), 2);
    assert_eq!(count(&recorded, "IN_LEDGER_NOT_IN_FILE"), 1);
    assert_eq!(
        (
            recorded.principal_role.as_str(),
            recorded.principal_name.as_str()
        ),
        ("bureau", "bureau")
    );
    assert_eq!(first.lines.len(), 8);
    assert_eq!(first.row_errors.len(), 4);
    let subsidy = first
        .lines
        .iter()
        .find(|line| line.kind == "SUBSIDY_MISMATCH")
        .expect("subsidy mismatch");
    assert_eq!(
        (
            subsidy.file_line,
            subsidy.file_subsidy.as_str(),
            subsidy.ledger_subsidy.as_str()
        ),
        (4, "1600.00", "1500.00")
    );
    // and the same file again is a re-import: the original record, nothing appended.
    let again = client(&server)
        .reconcile_center_invoices(support::authed(
            support::BUREAU,
            center_request("center-invoices-gbk.csv"),
        ))
        .await
        .expect("re-import")
        .into_inner();
    assert!(again.reimport);
    assert_eq!(
        again.recorded.as_ref().map(|record| record.sequence),
        Some(recorded.sequence)
    );
    assert!(
        again.recomputed_counts.is_empty(),
        "the ledger did not change"
    );
    assert_eq!(again.lines, first.lines);
    // A center reconciles its own list only; the auditor reads but does not reconcile.
    let refused = client(&server)
        .reconcile_center_invoices(support::authed(
            support::CENTER_2,
            center_request("center-invoices-utf8.csv"),
        ))
        .await
        .expect_err("another center's list");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let own = client(&server)
        .reconcile_center_invoices(support::authed(
            support::CENTER_1,
            center_request("center-invoices.xlsx"),
        ))
        .await
        .expect("its own list")
        .into_inner();
    assert!(!own.reimport);
    let auditor = client(&server)
        .reconcile_bank_payments(support::authed(
            support::AUDITOR,
            proto::ReconcileBankPaymentsRequest {
                file: fixture("bank-payments-camt053.xml"),
                file_name: "camt.xml".into(),
                year: 2026,
            },
        ))
        .await
        .expect_err("the auditor only reads");
    assert_eq!(auditor.code(), Code::PermissionDenied, "{auditor:?}");
    let bank = client(&server)
        .reconcile_bank_payments(support::authed(
            support::BUREAU,
            proto::ReconcileBankPaymentsRequest {
                file: fixture("bank-payments-camt053.xml"),
                file_name: "camt053-2026-11.xml".into(),
                year: 2026,
            },
        ))
        .await
        .expect("bank payments")
        .into_inner();
    let bank_record = bank.recorded.clone().expect("recorded");
    assert_eq!(count(&bank_record, "STATEMENT_PAID_TWICE"), 1);
    assert_eq!(count(&bank_record, "STATEMENT_NOT_PAID"), 1);
    // A file of malformed rows only is refused and recorded nowhere.
    let bad = client(&server)
        .reconcile_center_invoices(support::authed(
            support::BUREAU,
            center_request("only-bad-rows.csv"),
        ))
        .await
        .expect_err("only bad rows");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("malformed"), "{}", bad.message());
    // The command line does the same and writes the report as CSV with a BOM.
    let out = tempfile::tempdir().expect("tempdir");
    let csv_path = out.path().join("report.csv");
    let arguments = vec![
        "reconcile".to_owned(),
        "--target".to_owned(),
        format!("http://{}", server.address),
        "--token".to_owned(),
        support::BUREAU.to_owned(),
        "--csv".to_owned(),
        csv_path.display().to_string(),
        "center-invoices".to_owned(),
        "--center".to_owned(),
        C1.to_owned(),
        "--from".to_owned(),
        "2026-01-01".to_owned(),
        "--to".to_owned(),
        "2026-06-30".to_owned(),
        fixture_path("center-invoices-utf8.csv")
            .display()
            .to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
            .args(&arguments)
            .env_remove("VOUCHER_LEDGER_TOKEN")
            .output()
            .expect("run the CLI")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Reconciled center-invoices-utf8.csv (csv, UTF-8)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SUBSIDY_MISMATCH INV-003; file line 4"),
        "{stdout}"
    );
    assert!(stdout.contains("line 12: row"), "{stdout}");
    let csv = std::fs::read(&csv_path).expect("the CSV report");
    assert!(csv.starts_with(b"\xEF\xBB\xBF"));
    let csv = String::from_utf8(csv).expect("UTF-8");
    assert!(csv.contains("AMOUNT_MISMATCH,INV-002,3,21000.00"), "{csv}");
    // Listing: the bureau sees all four; center 1 its own three; center 2 none of them.
    let all = list(&server, support::AUDITOR, "").await;
    assert_eq!(all.len(), 4);
    assert_eq!(list(&server, support::CENTER_1, C1).await.len(), 3);
    assert!(list(&server, support::CENTER_2, C2).await.is_empty());
    let get = client(&server)
        .get_reconciliation(support::authed(
            support::CENTER_2,
            proto::GetReconciliationRequest {
                sequence: recorded.sequence,
            },
        ))
        .await
        .expect_err("another center's record");
    assert_eq!(get.code(), Code::NotFound);
    // The record is an event in the log, with its origin.
    let events = server
        .ledger()
        .read_events(support::authed(
            support::AUDITOR,
            proto::ReadEventsRequest {
                from_sequence: recorded.sequence,
                limit: 1,
            },
        ))
        .await
        .expect("read events")
        .into_inner()
        .events;
    assert_eq!(events[0].r#type, "ReconciliationRecorded");
    assert_eq!(events[0].request_id, "req-reconcile-1");

    // After a restart (snapshot on close) the records are there and a re-import is
    // still recognised;
    let directory = server.stop().await;
    let server = support::TestServer::start_in(
        directory,
        voucher_ledger::api::server::ServerSection::default(),
    )
    .await;
    assert_eq!(list(&server, support::BUREAU, "").await, all);
    let after = client(&server)
        .reconcile_center_invoices(support::authed(
            support::BUREAU,
            center_request("center-invoices-gbk.csv"),
        ))
        .await
        .expect("re-import after restart")
        .into_inner();
    assert!(after.reimport);
    assert_eq!(
        after.recorded.map(|record| record.sequence),
        Some(recorded.sequence)
    );
    // and replaying the log from the start gives the same records as the snapshot.
    let directory = server.stop().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    let (ledger, _) = Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
    let mut replayed = LedgerState::new();
    ledger
        .reader()
        .read_events(1, |logged| {
            replayed.apply(logged.sequence, logged.at, &logged.event);
            ControlFlow::Continue(())
        })
        .expect("read the log");
    let from_snapshot: Vec<ReconciliationRecord> =
        ledger.state().reconciliations().cloned().collect();
    let from_log: Vec<ReconciliationRecord> = replayed.reconciliations().cloned().collect();
    assert_eq!(from_snapshot.len(), 4);
    assert_eq!(from_snapshot, from_log);
}

/// A measurement, not a check (run with `--ignored --nocapture`): a file at the row limit
/// (200,000 invoices) read, parsed and matched against as many ledger invoices.
#[test]
#[ignore]
fn measure_a_file_at_the_row_limit() {
    let rows = voucher_ledger::limits::RECONCILIATION_ROWS_MAX;
    let mut text = String::from("发票号码,开票日期,金额,补贴\n");
    let mut facts = Vec::with_capacity(rows);
    for index in 0..rows {
        text.push_str(&format!("INV-{index:08},2026-06-30,\"1,234.50\",370.35\n"));
        facts.push(reconcile::LedgerInvoice {
            invoice_number: common::invoice_number(&format!("INV-{index:08}")),
            issue_date: common::date("2026-06-30"),
            amount: common::money("1234.50"),
            subsidy: common::money(if index % 10 == 0 { "370.34" } else { "370.35" }),
            reversed: false,
        });
    }
    let started = std::time::Instant::now();
    let file = reconcile::prepare(text.as_bytes()).expect("reads");
    let read = started.elapsed();
    let report =
        reconcile::reconcile_center_invoices(&file, center_scope(), &facts).expect("report");
    let total = started.elapsed();
    assert_eq!(report.lines.len(), rows);
    println!(
        "{rows} rows, {} bytes: read {:?}, read + parse + match {:?}",
        text.len(),
        read,
        total
    );
}
