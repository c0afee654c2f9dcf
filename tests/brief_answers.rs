//! `PostInvoicesBrief` against the real server on 127.0.0.1:0: the same batch as
//! `PostInvoices`, decided the same way, answered with only the items that were not newly
//! accepted and the batch's counts and sums, and gated like `PostInvoices`.

mod support;

use support::*;
use tonic::Code;
use voucher_ledger::api::proto::{invoice_result, *};

/// A voucher at center 1 with room for every invoice below (face 30,000.00, domestic
/// tier: 30% of an invoice).
async fn voucher(server: &TestServer) -> String {
    server
        .programme()
        .publish_policy(authed(BUREAU, standard_policy_request()))
        .await
        .expect("policy");
    register_pair_and_approve(&server.channel, "C-BRIEF", "100000.00", "999999.00").await
}

/// A batch with one item of each kind: new invoices, one that does not parse, one on a
/// voucher that does not exist, and a repeat of the first.
fn mixed_batch(voucher_id: &str) -> Vec<Invoice> {
    vec![
        center_invoice(1, voucher_id, "BRIEF-0", "100.00"),
        center_invoice(1, voucher_id, "BRIEF-1", "1.0.0"),
        center_invoice(
            1,
            "0195f2c8-7a31-7d2e-9a55-5b1f0e8d3c21",
            "BRIEF-2",
            "50.00",
        ),
        center_invoice(1, voucher_id, "BRIEF-3", "33.33"),
        center_invoice(1, voucher_id, "BRIEF-0", "100.00"),
        center_invoice(1, voucher_id, "BRIEF-5", "10.00"),
    ]
}

fn case(result: &NumberedInvoiceResult) -> &invoice_result::Result {
    result
        .result
        .as_ref()
        .and_then(|result| result.result.as_ref())
        .unwrap_or_else(|| panic!("exception {} has no result", result.index))
}

/// Sums amounts given as text, in fen.
fn fen_of(amounts: impl IntoIterator<Item = String>) -> i64 {
    amounts
        .into_iter()
        .map(|amount| {
            let (yuan, fen) = amount.split_once('.').expect("an amount with fen");
            yuan.parse::<i64>().expect("yuan") * 100 + fen.parse::<i64>().expect("fen")
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brief_answer_lists_only_the_exceptions_and_sums_the_new_invoices() {
    let server = TestServer::start().await;
    let voucher_id = voucher(&server).await;
    let batch = mixed_batch(&voucher_id);

    // When the batch is posted with the brief answer,
    let brief = server
        .redemption()
        .post_invoices_brief(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: batch.clone(),
            },
        ))
        .await
        .expect("brief batch")
        .into_inner();

    // then only the items that were not newly accepted are listed, by position,
    let listed: Vec<u32> = brief.exceptions.iter().map(|item| item.index).collect();
    assert_eq!(listed, vec![1, 2, 4], "{brief:?}");
    match case(&brief.exceptions[0]) {
        invoice_result::Result::Invalid(message) => {
            assert!(message.starts_with("invoices[1]: "), "{message}")
        }
        other => panic!("item 1: {other:?}"),
    }
    assert!(
        matches!(case(&brief.exceptions[1]), invoice_result::Result::Rejected(rejection) if rejection.code != 0),
        "item 2: {:?}",
        brief.exceptions[1]
    );
    let repeat = match case(&brief.exceptions[2]) {
        invoice_result::Result::Accepted(repeat) => repeat.clone(),
        other => panic!("item 4: {other:?}"),
    };
    assert!(repeat.duplicate && !repeat.reversed, "{repeat:?}");
    assert_eq!(repeat.subsidy, "30.00");
    // and the totals count every item once and sum the three new invoices:
    // 30% of 100.00, 33.33 (9.999, rounded down) and 10.00.
    let totals = brief.totals.clone().expect("totals");
    assert_eq!(
        (
            totals.accepted,
            totals.duplicates,
            totals.rejected,
            totals.invalid
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(totals.subsidy, "42.99");
    assert_eq!(totals.enterprise_pays, "100.34");
    assert_eq!(totals.second_subsidy, "0.00");

    // The same batch through PostInvoices is now all repeats, and each answer carries the
    // figures the brief answer summed: it is the full answer less the plain acceptances.
    let every = server
        .redemption()
        .post_invoices(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: batch.clone(),
            },
        ))
        .await
        .expect("full batch")
        .into_inner();
    assert_eq!(every.results.len(), batch.len());
    let mut new_subsidies = Vec::new();
    let mut new_pays = Vec::new();
    for (index, result) in every.results.iter().enumerate() {
        if listed.contains(&(index as u32)) {
            continue;
        }
        match &result.result {
            Some(invoice_result::Result::Accepted(accepted)) => {
                assert!(accepted.duplicate, "item {index} was posted before");
                new_subsidies.push(accepted.subsidy.clone());
                new_pays.push(accepted.enterprise_pays.clone());
            }
            other => panic!("item {index}: {other:?}"),
        }
    }
    assert_eq!(fen_of(new_subsidies), fen_of([totals.subsidy.clone()]));
    assert_eq!(fen_of(new_pays), fen_of([totals.enterprise_pays.clone()]));
    assert_eq!(every.last_sequence, brief.last_sequence);

    // And the ledger holds what the totals say: each new invoice's subsidy, read back.
    let mut read_back = Vec::new();
    for number in ["BRIEF-0", "BRIEF-3", "BRIEF-5"] {
        let invoice = server
            .redemption()
            .get_invoice(authed(
                CENTER_1,
                GetInvoiceRequest {
                    center: center_code(1),
                    invoice_number: number.into(),
                },
            ))
            .await
            .expect("invoice")
            .into_inner();
        read_back.push(invoice.subsidy);
    }
    assert_eq!(fen_of(read_back), 4_299);

    // Posted a third time, briefly: nothing is new, every parsed item is listed, and the
    // sums are zero in fen.
    let again = server
        .redemption()
        .post_invoices_brief(authed(CENTER_1, PostInvoicesRequest { invoices: batch }))
        .await
        .expect("brief repeat")
        .into_inner();
    assert_eq!(again.exceptions.len(), 6);
    let totals = again.totals.expect("totals");
    assert_eq!(
        (
            totals.accepted,
            totals.duplicates,
            totals.rejected,
            totals.invalid
        ),
        (0, 4, 1, 1)
    );
    assert_eq!(
        (totals.subsidy.as_str(), totals.enterprise_pays.as_str()),
        ("0.00", "0.00")
    );

    let directory = server.stop().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_new_invoices_is_answered_with_its_totals_alone() {
    let server = TestServer::start().await;
    let voucher_id = voucher(&server).await;
    let invoices: Vec<Invoice> = (0..2_000)
        .map(|n| center_invoice(1, &voucher_id, &format!("BULK-{n}"), "1.00"))
        .collect();
    let brief = server
        .redemption()
        .post_invoices_brief(authed(CENTER_1, PostInvoicesRequest { invoices }))
        .await
        .expect("brief batch")
        .into_inner();
    assert!(brief.exceptions.is_empty(), "{:?}", brief.exceptions);
    let totals = brief.totals.expect("totals");
    assert_eq!(totals.accepted, 2_000);
    assert_eq!(totals.subsidy, "600.00");
    assert_eq!(totals.enterprise_pays, "1400.00");
    // The last sequence is the log's end: the batch's events are the last written.
    assert_eq!(brief.last_sequence, server.log_end().await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brief_batch_call_is_gated_as_the_full_one_is() {
    let server = TestServer::start().await;
    let voucher_id = voucher(&server).await;
    let before = server.log_end().await;
    let own = || vec![center_invoice(1, &voucher_id, "GATE-1", "10.00")];

    // An auditor may not post; a center may not post another center's invoice, even
    // one of a batch; an empty batch is refused for its size.
    let auditor = server
        .redemption()
        .post_invoices_brief(authed(AUDITOR, PostInvoicesRequest { invoices: own() }))
        .await
        .expect_err("an auditor posting");
    assert_eq!(auditor.code(), Code::PermissionDenied, "{auditor:?}");
    let foreign = server
        .redemption()
        .post_invoices_brief(authed(CENTER_2, PostInvoicesRequest { invoices: own() }))
        .await
        .expect_err("center 2 posting center 1's invoice");
    assert_eq!(foreign.code(), Code::PermissionDenied, "{foreign:?}");
    assert!(
        foreign.message().starts_with("invoices[0]:"),
        "{}",
        foreign.message()
    );
    let empty = server
        .redemption()
        .post_invoices_brief(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: Vec::new(),
            },
        ))
        .await
        .expect_err("an empty batch");
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    // A body above the batch call's message limit (4 MiB) is refused before it is read.
    let huge = vec![
        Invoice {
            delivery_proof: "x".repeat(4_096),
            ..center_invoice(1, &voucher_id, "HUGE", "1.00")
        };
        1_100
    ];
    let too_large = server
        .redemption()
        .post_invoices_brief(authed(CENTER_1, PostInvoicesRequest { invoices: huge }))
        .await
        .expect_err("a body above the limit");
    assert_eq!(too_large.code(), Code::ResourceExhausted, "{too_large:?}");
    let after = server.log_end().await;
    assert_eq!(after, before, "nothing of a refused call is written");
    server.stop().await;
}
