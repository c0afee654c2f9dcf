//! The gRPC API against the real server on 127.0.0.1:0: a full programme cycle, the
//! event subscription, authorization per role, and a table of hostile requests.

mod support;

use std::time::Duration;

use support::*;
use tonic::Code;
use voucher_ledger::api::proto::{self, *};

/// Policy, centers 1 (domestic) and 2 (other), enterprises 1 and 2, one voucher
/// (enterprise 1 at center 1, fee 100,000.00, face 30,000.00). Returns the voucher id.
async fn seed(server: &TestServer) -> String {
    server
        .programme()
        .publish_policy(authed(BUREAU, standard_policy_request()))
        .await
        .expect("policy");
    for (index, tier) in [(1, FacilityTier::Domestic), (2, FacilityTier::Other)] {
        register_center(&server.channel, index, &format!("Center {index}"), tier).await;
    }
    register_enterprises(&server.channel, [1, 2]).await;
    let voucher = server
        .vouchers()
        .approve_voucher(authed(
            BUREAU,
            approve_request(1, 1, "C-1", "100000.00", "999999.00"),
        ))
        .await
        .expect("voucher")
        .into_inner()
        .voucher
        .expect("voucher body");
    assert_eq!(voucher.face_value, "30000.00");
    voucher.voucher_id
}

fn approve_request(
    enterprise: usize,
    center: usize,
    contract: &str,
    fee: &str,
    requested: &str,
) -> ApproveVoucherRequest {
    ApproveVoucherRequest {
        voucher_id: String::new(),
        year: 2026,
        enterprise: enterprise_code(enterprise),
        center: center_code(center),
        contract_number: contract.to_string(),
        contract_fee: fee.to_string(),
        term_start: "2026-01-01".into(),
        term_end: "2026-12-31".into(),
        requested: requested.to_string(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_programme_cycle_over_grpc() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;

    // An auditor subscribes from the first event and must see every one, in order.
    let mut stream = server
        .ledger()
        .subscribe_events(authed(AUDITOR, SubscribeEventsRequest { from_sequence: 1 }))
        .await
        .expect("subscribe")
        .into_inner();

    // Single invoice: 30% of 1,000.07 rounds down to 300.02.
    let single = server
        .redemption()
        .post_invoice(authed(
            CENTER_1,
            center_invoice(1, &voucher_id, "INV-1", "1000.07"),
        ))
        .await
        .expect("post")
        .into_inner();
    assert_eq!(
        (single.subsidy.as_str(), single.duplicate),
        ("300.02", false)
    );
    // The same invoice again: the original outcome, nothing new.
    let again = server
        .redemption()
        .post_invoice(authed(
            CENTER_1,
            center_invoice(1, &voucher_id, "INV-1", "1000.07"),
        ))
        .await
        .expect("repost")
        .into_inner();
    assert_eq!(
        (again.subsidy.as_str(), again.sequence, again.duplicate),
        ("300.02", single.sequence, true)
    );
    // Same number, other content: a conflicting duplicate.
    let conflict = server
        .redemption()
        .post_invoice(authed(
            CENTER_1,
            center_invoice(1, &voucher_id, "INV-1", "1000.08"),
        ))
        .await
        .expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists);

    // A batch of 100, one of them over the contract fee.
    let mut invoices: Vec<Invoice> = (0..99)
        .map(|n| center_invoice(1, &voucher_id, &format!("B-{n}"), "100.00"))
        .collect();
    invoices.push(center_invoice(1, &voucher_id, "B-over", "99999.00"));
    let batch = server
        .redemption()
        .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices }))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.results.len(), 100);
    let accepted = batch
        .results
        .iter()
        .filter(|result| matches!(result.result, Some(invoice_result::Result::Accepted(_))))
        .count();
    assert_eq!(accepted, 99);
    match &batch.results[99].result {
        Some(invoice_result::Result::Rejected(rejection)) => {
            assert_eq!(rejection.name, "CONTRACT_FEE_EXCEEDED")
        }
        other => panic!("{other:?}"),
    }

    // Reversal: the subsidy goes back to the voucher.
    let reversed = server
        .redemption()
        .reverse_invoice(authed(
            CENTER_1,
            ReverseInvoiceRequest {
                center: center_code(1),
                invoice_number: "B-0".into(),
                reason: "credit note".into(),
            },
        ))
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(
        (
            reversed.subsidy.as_str(),
            reversed.returned_to_voucher,
            reversed.clawback
        ),
        ("30.00", true, false)
    );
    let fetched = server
        .redemption()
        .get_invoice(authed(
            CENTER_1,
            GetInvoiceRequest {
                center: center_code(1),
                invoice_number: "B-0".into(),
            },
        ))
        .await
        .expect("get invoice")
        .into_inner();
    assert!(fetched.reversed && !fetched.settled);

    // Usage: 300.02 + 98 x 30.00 = 3,240.02 redeemed; the rest of 30,000.00 held.
    let usage = server
        .ledger()
        .get_enterprise_usage(authed(
            ENTERPRISE_1,
            GetEnterpriseUsageRequest {
                enterprise: enterprise_code(1),
                year: 2026,
            },
        ))
        .await
        .expect("usage")
        .into_inner();
    assert_eq!(
        (
            usage.cap.as_str(),
            usage.redeemed.as_str(),
            usage.held.as_str(),
            usage.free.as_str()
        ),
        ("8000000.00", "3240.02", "26759.98", "7970000.00")
    );
    let programme = server
        .programme()
        .get_programme(authed(AUDITOR, GetProgrammeRequest { year: 2026 }))
        .await
        .expect("programme")
        .into_inner();
    assert_eq!(programme.years[0].redeemed, "3240.02");
    assert_eq!(programme.years[0].free, "249970000.00");
    let center = server
        .registry()
        .get_center(authed(
            CENTER_1,
            GetCenterRequest {
                uscc: center_code(1),
            },
        ))
        .await
        .expect("center")
        .into_inner();
    // Not yet in a statement: unsettled (amount_due counts statements not yet paid).
    assert_eq!(center.center.expect("center").unsettled, "3240.02");

    // Registry and voucher reads and writes.
    let enterprise = server
        .registry()
        .grant_cap_override(authed(
            BUREAU,
            GrantCapOverrideRequest {
                uscc: enterprise_code(2),
                year: 2026,
                cap: "12000000.00".into(),
                reason: "multimodal foundation model".into(),
            },
        ))
        .await
        .expect("override")
        .into_inner();
    assert_eq!(
        enterprise.enterprise.expect("enterprise").cap_overrides[0].cap,
        "12000000.00"
    );
    server
        .registry()
        .declare_related_party(authed(
            BUREAU,
            DeclareRelatedPartyRequest {
                enterprise: enterprise_code(2),
                center: center_code(2),
                reason: "same owner".into(),
            },
        ))
        .await
        .expect("related");
    let related = server
        .vouchers()
        .approve_voucher(authed(
            BUREAU,
            approve_request(2, 2, "C-R", "1000.00", "100.00"),
        ))
        .await
        .expect_err("related party");
    assert_eq!(related.code(), Code::FailedPrecondition);
    let details = tonic_types::StatusExt::get_error_details(&related);
    assert_eq!(
        details.error_info().expect("error info").reason,
        "RELATED_PARTY"
    );
    for contract in 0..5 {
        server
            .vouchers()
            .approve_voucher(authed(
                BUREAU,
                approve_request(2, 1, &format!("C-2-{contract}"), "1000.00", "100.00"),
            ))
            .await
            .expect("approve");
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .vouchers()
            .list_vouchers(authed(
                ENTERPRISE_2,
                ListVouchersRequest {
                    owner: Some(list_vouchers_request::Owner::Enterprise(enterprise_code(2))),
                    page_size: 2,
                    page_token: token,
                },
            ))
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.vouchers.into_iter().map(|voucher| voucher.voucher_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 5);
    let cancelled = server
        .vouchers()
        .cancel_voucher(authed(
            BUREAU,
            CancelVoucherRequest {
                voucher_id: seen[0].clone(),
                reason: "terminated".into(),
            },
        ))
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(
        cancelled.voucher.expect("voucher").status,
        VoucherStatus::Cancelled as i32
    );
    let fetched = server
        .vouchers()
        .get_voucher(authed(
            CENTER_1,
            GetVoucherRequest {
                voucher_id: voucher_id.clone(),
            },
        ))
        .await
        .expect("get voucher")
        .into_inner();
    assert_eq!(fetched.voucher.expect("voucher").redeemed, "3240.02");
    server
        .registry()
        .get_enterprise(authed(
            ENTERPRISE_1,
            GetEnterpriseRequest {
                uscc: enterprise_code(1),
            },
        ))
        .await
        .expect("get enterprise");
    let centers = server
        .registry()
        .list_centers(authed(ENTERPRISE_1, ListCentersRequest {}))
        .await
        .expect("list centers")
        .into_inner();
    assert_eq!(centers.centers.len(), 2);
    assert!(
        centers.centers[0].amount_due.is_empty(),
        "amounts owed are not public"
    );
    let status = server
        .registry()
        .set_center_status(authed(
            BUREAU,
            SetCenterStatusRequest {
                uscc: center_code(2),
                status: CenterStatus::Suspended as i32,
                reason: "inspection".into(),
            },
        ))
        .await
        .expect("status")
        .into_inner();
    let last_sequence = status.sequence;

    // Range read and the subscription both hold every event, densely.
    let read = server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: 1,
                limit: 10_000,
            },
        ))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read.events.len() as u64, last_sequence);
    assert!(read
        .events
        .iter()
        .enumerate()
        .all(|(index, event)| event.sequence == index as u64 + 1));
    assert_eq!(read.events[0].r#type, "PolicyPublished");
    let mut streamed = Vec::new();
    while streamed.len() < last_sequence as usize {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("event in time")
            .expect("stream")
            .expect("open");
        streamed.push(event);
    }
    assert_eq!(
        streamed, read.events,
        "the subscription caught every event, in order"
    );
    assert!(matches!(
        streamed[5].event,
        Some(event_record::Event::VoucherApproved(_))
    ));

    let directory = server.stop().await;
    let report = voucher_ledger::audit::verify(directory.path()).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
}

/// A batch large enough to be parsed in two halves on the server (1,024 invoices or more)
/// is answered as one: in order, each `invalid` answer naming its place in the whole
/// batch, a repeat in the second half answered with the first half's sequence, and a
/// foreign invoice in the second half refusing the whole batch by its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_parsed_in_two_halves_is_answered_as_one() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
    let (unparsable, repeat_of_five) = ([10, 1_200], 1_300);
    let invoices: Vec<Invoice> = (0..1_500)
        .map(|n| {
            let number = if n == repeat_of_five { 5 } else { n };
            let amount = if unparsable.contains(&n) {
                "1.0.0"
            } else {
                "1.00"
            };
            center_invoice(1, &voucher_id, &format!("HALF-{number}"), amount)
        })
        .collect();
    let answer = server
        .redemption()
        .post_invoices(authed(
            CENTER_1,
            PostInvoicesRequest {
                invoices: invoices.clone(),
            },
        ))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(answer.results.len(), 1_500);
    let mut sequences = Vec::new();
    for (n, result) in answer.results.iter().enumerate() {
        match &result.result {
            Some(invoice_result::Result::Invalid(message)) => {
                assert!(unparsable.contains(&n), "invoice {n}: {message}");
                assert!(message.starts_with(&format!("invoices[{n}]:")), "{message}");
            }
            Some(invoice_result::Result::Accepted(accepted)) => {
                assert_eq!(accepted.subsidy, "0.30", "invoice {n}");
                assert_eq!(accepted.duplicate, n == repeat_of_five, "invoice {n}");
                sequences.push((n, accepted.sequence));
            }
            other => panic!("invoice {n}: {other:?}"),
        }
    }
    assert_eq!(sequences.len(), 1_500 - unparsable.len());
    let sequence_of = |wanted: usize| {
        sequences
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(_, sequence)| *sequence)
    };
    assert_eq!(sequence_of(repeat_of_five), sequence_of(5));
    // Every new invoice was recorded in the batch's order.
    let new: Vec<u64> = sequences
        .iter()
        .filter(|(n, _)| *n != repeat_of_five)
        .map(|(_, sequence)| *sequence)
        .collect();
    assert!(new.windows(2).all(|pair| pair[0] < pair[1]), "{new:?}");

    let before = server.log_end().await;
    let mut foreign = invoices;
    for (n, item) in foreign.iter_mut().enumerate() {
        item.invoice_number = format!("OTHER-{n}");
    }
    foreign[1_400].center = center_code(2);
    let refusal = server
        .redemption()
        .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices: foreign }))
        .await
        .expect_err("a foreign invoice refuses the batch");
    assert_eq!(refusal.code(), Code::PermissionDenied);
    assert!(
        refusal.message().starts_with("invoices[1400]:"),
        "{}",
        refusal.message()
    );
    assert_eq!(
        server.log_end().await,
        before,
        "nothing of a refused batch is written"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_only_its_part() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
    let denied = |result: Result<(), tonic::Status>, what: &str| {
        let status = result.expect_err(what);
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    };

    // No token, unknown token.
    let anonymous = server
        .programme()
        .get_programme(tonic::Request::new(GetProgrammeRequest { year: 0 }))
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let unknown = server
        .programme()
        .get_programme(authed("who-knows", GetProgrammeRequest { year: 0 }))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unauthenticated);

    // A center posts for itself, never for another center, even inside a batch.
    server
        .redemption()
        .post_invoice(authed(
            CENTER_1,
            center_invoice(1, &voucher_id, "OWN-1", "10.00"),
        ))
        .await
        .expect("own invoice");
    denied(
        unit(
            server
                .redemption()
                .post_invoice(authed(
                    CENTER_2,
                    center_invoice(1, &voucher_id, "FOREIGN-1", "10.00"),
                ))
                .await,
        ),
        "center 2 posting center 1's invoice",
    );
    let mixed = vec![
        center_invoice(2, &voucher_id, "MINE", "10.00"),
        center_invoice(1, &voucher_id, "THEIRS", "10.00"),
    ];
    denied(
        unit(
            server
                .redemption()
                .post_invoices(authed(CENTER_2, PostInvoicesRequest { invoices: mixed }))
                .await,
        ),
        "a batch with a foreign invoice",
    );
    denied(
        unit(
            server
                .redemption()
                .reverse_invoice(authed(
                    CENTER_2,
                    ReverseInvoiceRequest {
                        center: center_code(1),
                        invoice_number: "OWN-1".into(),
                        reason: "x".into(),
                    },
                ))
                .await,
        ),
        "reversing another center's invoice",
    );
    denied(
        unit(
            server
                .registry()
                .get_center(authed(
                    CENTER_2,
                    GetCenterRequest {
                        uscc: center_code(1),
                    },
                ))
                .await,
        ),
        "reading another center",
    );
    // Another's voucher is answered as a missing one (issue 9): nothing is revealed.
    let hidden = unit(
        server
            .vouchers()
            .get_voucher(authed(
                CENTER_2,
                GetVoucherRequest {
                    voucher_id: voucher_id.clone(),
                },
            ))
            .await,
    )
    .expect_err("reading another center's voucher");
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    denied(
        unit(
            server
                .vouchers()
                .approve_voucher(authed(
                    CENTER_1,
                    approve_request(1, 1, "C-X", "10.00", "1.00"),
                ))
                .await,
        ),
        "a center approving",
    );
    // Enterprises read their own data only, and write nothing.
    server
        .ledger()
        .get_enterprise_usage(authed(
            ENTERPRISE_1,
            GetEnterpriseUsageRequest {
                enterprise: enterprise_code(1),
                year: 2026,
            },
        ))
        .await
        .expect("own usage");
    server
        .vouchers()
        .get_voucher(authed(
            ENTERPRISE_1,
            GetVoucherRequest {
                voucher_id: voucher_id.clone(),
            },
        ))
        .await
        .expect("own voucher");
    denied(
        unit(
            server
                .ledger()
                .get_enterprise_usage(authed(
                    ENTERPRISE_2,
                    GetEnterpriseUsageRequest {
                        enterprise: enterprise_code(1),
                        year: 2026,
                    },
                ))
                .await,
        ),
        "another enterprise's usage",
    );
    denied(
        unit(
            server
                .redemption()
                .post_invoice(authed(
                    ENTERPRISE_1,
                    center_invoice(1, &voucher_id, "E-1", "10.00"),
                ))
                .await,
        ),
        "an enterprise posting",
    );
    denied(
        unit(
            server
                .ledger()
                .read_events(authed(
                    ENTERPRISE_1,
                    ReadEventsRequest {
                        from_sequence: 1,
                        limit: 10,
                    },
                ))
                .await,
        ),
        "an enterprise reading the log",
    );
    denied(
        unit(
            server
                .ledger()
                .read_events(authed(
                    CENTER_1,
                    ReadEventsRequest {
                        from_sequence: 1,
                        limit: 10,
                    },
                ))
                .await,
        ),
        "a center reading the log",
    );
    // Auditors read everything and write nothing.
    server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: 1,
                limit: 10,
            },
        ))
        .await
        .expect("auditor reads the log");
    server
        .registry()
        .get_center(authed(
            AUDITOR,
            GetCenterRequest {
                uscc: center_code(1),
            },
        ))
        .await
        .expect("auditor reads a center");
    server
        .ledger()
        .get_enterprise_usage(authed(
            AUDITOR,
            GetEnterpriseUsageRequest {
                enterprise: enterprise_code(1),
                year: 2026,
            },
        ))
        .await
        .expect("auditor reads usage");
    denied(
        unit(
            server
                .programme()
                .publish_policy(authed(AUDITOR, standard_policy_request()))
                .await,
        ),
        "an auditor publishing",
    );
    denied(
        unit(
            server
                .redemption()
                .post_invoice(authed(
                    AUDITOR,
                    center_invoice(1, &voucher_id, "A-1", "10.00"),
                ))
                .await,
        ),
        "an auditor posting",
    );
    denied(
        unit(
            server
                .registry()
                .register_enterprise(authed(
                    AUDITOR,
                    RegisterEnterpriseRequest {
                        uscc: enterprise_code(3),
                        name: "x".into(),
                    },
                ))
                .await,
        ),
        "an auditor registering",
    );
    // The bureau may do everything, including posting for a center.
    server
        .redemption()
        .post_invoice(authed(
            BUREAU,
            center_invoice(1, &voucher_id, "BUREAU-1", "10.00"),
        ))
        .await
        .expect("bureau posts");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_requests_get_the_right_code_and_change_nothing() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
    let settlement = seed_settlement(&server, &voucher_id).await;
    let before = server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: 1,
                limit: 10_000,
            },
        ))
        .await
        .expect("read")
        .into_inner();

    let good = center_invoice(1, &voucher_id, "OK", "10.00");
    let with = |change: &dyn Fn(&mut Invoice)| {
        let mut item = good.clone();
        change(&mut item);
        item
    };
    let mut post_cases: Vec<(&str, Invoice, Code, &str)> = vec![
        (
            "bad USCC check character",
            with(&|i| i.center = "91330100MA0000001G".into()),
            Code::InvalidArgument,
            "center",
        ),
        (
            "USCC too short",
            with(&|i| i.center = "9133".into()),
            Code::InvalidArgument,
            "center",
        ),
        (
            "USCC with a letter I",
            with(&|i| i.center = "91330100MA000000IF".into()),
            Code::InvalidArgument,
            "center",
        ),
        (
            "empty center",
            with(&|i| i.center = String::new()),
            Code::InvalidArgument,
            "center",
        ),
        (
            "three decimals",
            with(&|i| i.amount = "10.001".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "negative amount",
            with(&|i| i.amount = "-10.00".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "huge amount",
            with(&|i| i.amount = "100000000000000.00".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "zero amount",
            with(&|i| i.amount = "0.00".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "float exponent",
            with(&|i| i.amount = "1e3".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "NaN",
            with(&|i| i.amount = "NaN".into()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "empty amount",
            with(&|i| i.amount = String::new()),
            Code::InvalidArgument,
            "amount",
        ),
        (
            "empty invoice number",
            with(&|i| i.invoice_number = String::new()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "invoice number with a newline",
            with(&|i| i.invoice_number = "A\nB".into()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "invoice number with a zero-width space",
            with(&|i| i.invoice_number = "OK\u{200B}".into()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "invoice number with a bidi override",
            with(&|i| i.invoice_number = "O\u{202E}K".into()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "invoice number with surrounding spaces",
            with(&|i| i.invoice_number = " OK ".into()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "invoice code of 5 digits",
            with(&|i| i.invoice_code = "03300".into()),
            Code::InvalidArgument,
            "invoice_code",
        ),
        (
            "invoice code with a number that is not 8 digits",
            with(&|i| i.invoice_code = "033002400111".into()),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "oversized invoice number",
            with(&|i| i.invoice_number = "9".repeat(65)),
            Code::InvalidArgument,
            "invoice_number",
        ),
        (
            "voucher id not a UUID",
            with(&|i| i.voucher_id = "voucher-1".into()),
            Code::InvalidArgument,
            "voucher_id",
        ),
        (
            "nil voucher id",
            with(&|i| i.voucher_id = "00000000-0000-0000-0000-000000000000".into()),
            Code::InvalidArgument,
            "voucher_id",
        ),
        (
            "impossible date",
            with(&|i| i.issue_date = "2026-02-30".into()),
            Code::InvalidArgument,
            "issue_date",
        ),
        (
            "date in another format",
            with(&|i| i.issue_date = "30/06/2026".into()),
            Code::InvalidArgument,
            "issue_date",
        ),
        (
            "empty delivery proof",
            with(&|i| i.delivery_proof = String::new()),
            Code::InvalidArgument,
            "delivery_proof",
        ),
        (
            "unknown voucher",
            with(&|i| i.voucher_id = "5f0c3a4e-1111-4222-8333-944455556666".into()),
            Code::NotFound,
            "",
        ),
        (
            "date outside the term",
            with(&|i| i.issue_date = "2027-01-15".into()),
            Code::FailedPrecondition,
            "",
        ),
        (
            "over the contract fee",
            with(&|i| i.amount = "100000.01".into()),
            Code::FailedPrecondition,
            "",
        ),
    ];
    for (what, item, code, field) in post_cases.drain(..) {
        let status = server
            .redemption()
            .post_invoice(authed(CENTER_1, item))
            .await
            .expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(
            status.message().contains(field),
            "{what}: the message names {field}: {}",
            status.message()
        );
    }
    let oversized: Vec<Invoice> = (0..8_193)
        .map(|n| center_invoice(1, &voucher_id, &format!("X{n}"), "1.00"))
        .collect();
    let cases: Vec<(&str, Result<(), tonic::Status>, Code)> = vec![
        (
            "oversized batch",
            server
                .redemption()
                .post_invoices(authed(
                    CENTER_1,
                    PostInvoicesRequest {
                        invoices: oversized,
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "empty batch",
            server
                .redemption()
                .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices: vec![] }))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "unknown tier enum",
            server
                .registry()
                .register_center(authed(
                    BUREAU,
                    RegisterCenterRequest {
                        uscc: center_code(9),
                        name: "x".into(),
                        tier: 42,
                        listing_basis: 1,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "unspecified listing basis",
            server
                .registry()
                .register_center(authed(
                    BUREAU,
                    RegisterCenterRequest {
                        uscc: center_code(9),
                        name: "x".into(),
                        tier: 1,
                        listing_basis: 0,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "unknown status enum",
            server
                .registry()
                .set_center_status(authed(
                    BUREAU,
                    SetCenterStatusRequest {
                        uscc: center_code(1),
                        status: 9,
                        reason: "x".into(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "empty name",
            server
                .registry()
                .register_enterprise(authed(
                    BUREAU,
                    RegisterEnterpriseRequest {
                        uscc: enterprise_code(9),
                        name: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "year out of range",
            server
                .vouchers()
                .approve_voucher(authed(
                    BUREAU,
                    ApproveVoucherRequest {
                        year: 1999,
                        ..approve_request(1, 1, "C-Y", "10.00", "1.00")
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "zero contract fee",
            server
                .vouchers()
                .approve_voucher(authed(BUREAU, approve_request(1, 1, "C-Z", "0.00", "1.00")))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "negative requested",
            server
                .vouchers()
                .approve_voucher(authed(
                    BUREAU,
                    approve_request(1, 1, "C-N", "10.00", "-1.00"),
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "three-decimal cap",
            server
                .registry()
                .grant_cap_override(authed(
                    BUREAU,
                    GrantCapOverrideRequest {
                        uscc: enterprise_code(1),
                        year: 2026,
                        cap: "1.001".into(),
                        reason: "x".into(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "empty reason",
            server
                .vouchers()
                .cancel_voucher(authed(
                    BUREAU,
                    CancelVoucherRequest {
                        voucher_id: voucher_id.clone(),
                        reason: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "policy rate above the ceiling",
            server
                .programme()
                .publish_policy(authed(
                    BUREAU,
                    PublishPolicyRequest {
                        source: Some(publish_policy_request::Source::Policy(Policy {
                            year: 2027,
                            rate_other: "0.31".into(),
                            ..Default::default()
                        })),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "policy as malformed TOML",
            server
                .programme()
                .publish_policy(authed(
                    BUREAU,
                    PublishPolicyRequest {
                        source: Some(publish_policy_request::Source::PolicyToml("year = ".into())),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "read limit too high",
            server
                .ledger()
                .read_events(authed(
                    AUDITOR,
                    ReadEventsRequest {
                        from_sequence: 1,
                        limit: 10_001,
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "page size too high",
            server
                .vouchers()
                .list_vouchers(authed(
                    BUREAU,
                    ListVouchersRequest {
                        owner: Some(list_vouchers_request::Owner::Center(center_code(1))),
                        page_size: 5_000,
                        page_token: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "list without an owner",
            server
                .vouchers()
                .list_vouchers(authed(
                    BUREAU,
                    ListVouchersRequest {
                        owner: None,
                        page_size: 10,
                        page_token: String::new(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::InvalidArgument,
        ),
        (
            "unknown center",
            server
                .registry()
                .get_center(authed(
                    BUREAU,
                    GetCenterRequest {
                        uscc: center_code(30),
                    },
                ))
                .await
                .map(|_| ()),
            Code::NotFound,
        ),
        (
            "unknown voucher",
            server
                .vouchers()
                .get_voucher(authed(
                    BUREAU,
                    GetVoucherRequest {
                        voucher_id: "5f0c3a4e-1111-4222-8333-944455556666".into(),
                    },
                ))
                .await
                .map(|_| ()),
            Code::NotFound,
        ),
        (
            "duplicate center",
            server
                .registry()
                .register_center(authed(
                    BUREAU,
                    RegisterCenterRequest {
                        uscc: center_code(1),
                        name: "x".into(),
                        tier: 1,
                        listing_basis: 1,
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ()),
            Code::AlreadyExists,
        ),
        (
            "duplicate policy",
            server
                .programme()
                .publish_policy(authed(BUREAU, standard_policy_request()))
                .await
                .map(|_| ()),
            Code::AlreadyExists,
        ),
        (
            "wrong role",
            server
                .programme()
                .publish_policy(authed(CENTER_1, standard_policy_request()))
                .await
                .map(|_| ()),
            Code::PermissionDenied,
        ),
        (
            "no token",
            server
                .registry()
                .list_centers(tonic::Request::new(ListCentersRequest {}))
                .await
                .map(|_| ()),
            Code::Unauthenticated,
        ),
        (
            "malformed authorization header",
            server
                .registry()
                .list_centers(authed_raw("Basic abc"))
                .await
                .map(|_| ()),
            Code::Unauthenticated,
        ),
    ];
    assert!(cases.len() + 22 >= 30, "at least 30 hostile requests");
    for (what, result, code) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    // Business rejections carry the stable name in ErrorInfo.
    let status = server
        .redemption()
        .post_invoice(authed(
            CENTER_1,
            with(&|i| i.issue_date = "2027-01-15".into()),
        ))
        .await
        .expect_err("outside term");
    let details = tonic_types::StatusExt::get_error_details(&status);
    let info = details.error_info().expect("error info");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("INVOICE_DATE_OUTSIDE_TERM", "voucher-ledger")
    );
    assert_eq!(info.metadata.get("code").map(String::as_str), Some("26"));

    settlement_rows_change_nothing(&server, &voucher_id, settlement).await;

    let after = server
        .ledger()
        .read_events(authed(
            AUDITOR,
            ReadEventsRequest {
                from_sequence: 1,
                limit: 10_000,
            },
        ))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        after.events, before.events,
        "no hostile request changed the ledger"
    );
    server.stop().await;
}

fn unit<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    result.map(|_| ())
}

fn authed_raw(header: &str) -> tonic::Request<ListCentersRequest> {
    let mut request = tonic::Request::new(ListCentersRequest {});
    request
        .metadata_mut()
        .insert("authorization", header.parse().expect("header"));
    request
}

/// The settlement state the settlement rows run against.
#[derive(Clone, Copy)]
struct SettlementSeed {
    /// Center 1's statement (net 30.00), paid with bank reference TABLE-PAY-1.
    paid: u64,
    /// Center 2's statement (net 20.00), open.
    open: u64,
}

const TABLE_RUN: &str = "3c9f6b1e-7a2d-4c55-9e0f-5b8a7d000001";

/// On top of [`seed`]: a voucher of enterprise 1 at center 2, an invoice at each center,
/// one settlement run (a statement per center), center 1's statement paid.
async fn seed_settlement(server: &TestServer, voucher_id: &str) -> SettlementSeed {
    let second = server
        .vouchers()
        .approve_voucher(authed(
            BUREAU,
            approve_request(1, 2, "C-S2", "1000.00", "200.00"),
        ))
        .await
        .expect("voucher at center 2")
        .into_inner()
        .voucher
        .expect("voucher")
        .voucher_id;
    for (token, item) in [
        (
            CENTER_1,
            center_invoice(1, voucher_id, "SETTLE-1", "100.00"),
        ),
        (CENTER_2, center_invoice(2, &second, "SETTLE-2", "100.00")),
    ] {
        server
            .redemption()
            .post_invoice(authed(token, item))
            .await
            .expect("invoice");
    }
    let run = server
        .settlement()
        .create_settlement_run(authed(
            BUREAU,
            CreateSettlementRunRequest {
                run_id: TABLE_RUN.into(),
                year: 2026,
            },
        ))
        .await
        .expect("run")
        .into_inner();
    let of = |center: usize| {
        run.statements
            .iter()
            .find(|statement| statement.center == center_code(center))
            .expect("statement")
            .clone()
    };
    let (paid, open) = (of(1), of(2));
    assert_eq!(
        (paid.net_due.as_str(), open.net_due.as_str()),
        ("30.00", "20.00")
    );
    server
        .settlement()
        .confirm_payment(authed(
            BUREAU,
            ConfirmPaymentRequest {
                statement_id: paid.statement_id,
                bank_reference: "TABLE-PAY-1".into(),
                amount: "30.00".into(),
                value_date: today().to_string(),
            },
        ))
        .await
        .expect("payment");
    SettlementSeed {
        paid: paid.statement_id,
        open: open.statement_id,
    }
}

type Call<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>> + 'a>>;

/// One row's call, run when the table gets to it.
fn call<'a, T: 'a>(
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + 'a,
) -> Call<'a> {
    Box::pin(async move { future.await.map(|_| ()) })
}

/// What a refused row must say besides its code.
enum Expect {
    /// INVALID_ARGUMENT: the message names the field.
    Field(&'static str),
    /// A business rejection: ErrorInfo carries this stable reason.
    Reason(&'static str),
    /// Only the code (NOT_FOUND and PERMISSION_DENIED answered by the API layer).
    Code,
}

/// Malformed, unauthorised and refused requests to every RPC of issue 8 (the
/// SettlementService's eleven and ProgrammeService.ConfirmClock) and to the rules it
/// added to older RPCs: each gets its code (with the field or the stable reason), and
/// nothing is appended for any of them.
async fn settlement_rows_change_nothing(
    server: &TestServer,
    voucher_id: &str,
    seeded: SettlementSeed,
) {
    use Expect::{Code as CodeOnly, Field, Reason};
    let SettlementSeed { paid, open } = seeded;
    let today = today().to_string();
    let run = |token: &'static str, run_id: &str, year: u32| {
        let request = CreateSettlementRunRequest {
            run_id: run_id.into(),
            year,
        };
        call(async move {
            server
                .settlement()
                .create_settlement_run(authed(token, request))
                .await
        })
    };
    let pay =
        |token: &'static str, statement_id: u64, reference: &str, amount: &str, date: &str| {
            let request = ConfirmPaymentRequest {
                statement_id,
                bank_reference: reference.into(),
                amount: amount.into(),
                value_date: date.into(),
            };
            call(async move {
                server
                    .settlement()
                    .confirm_payment(authed(token, request))
                    .await
            })
        };
    let bounce = |token: &'static str, statement_id: u64, reference: &str, reason: &str| {
        let request = RecordPaymentReturnedRequest {
            statement_id,
            bank_reference: reference.into(),
            reason: reason.into(),
        };
        call(async move {
            server
                .settlement()
                .record_payment_returned(authed(token, request))
                .await
        })
    };
    let repay = |token: &'static str,
                 center: &str,
                 year: u32,
                 amount: &str,
                 reference: &str,
                 date: &str| {
        let request = RecordRepaymentRequest {
            center: center.into(),
            year,
            amount: amount.into(),
            bank_reference: reference.into(),
            value_date: date.into(),
            ..Default::default()
        };
        call(async move {
            server
                .settlement()
                .record_repayment(authed(token, request))
                .await
        })
    };
    let get = |token: &'static str, statement_id: u64| {
        call(async move {
            server
                .settlement()
                .get_statement(authed(token, GetStatementRequest { statement_id }))
                .await
        })
    };
    let list = |token: &'static str, request: ListStatementsRequest| {
        call(async move {
            server
                .settlement()
                .list_statements(authed(token, request))
                .await
        })
    };
    let invoices = |token: &'static str, request: ListInvoicesRequest| {
        call(async move {
            server
                .settlement()
                .list_invoices(authed(token, request))
                .await
        })
    };
    let owed = |token: &'static str, center: &str, year: u32| {
        let request = ListReceivablesRequest {
            center: center.into(),
            year,
        };
        call(async move {
            server
                .settlement()
                .list_receivables(authed(token, request))
                .await
        })
    };
    let close = |token: &'static str, year: u32| {
        call(async move {
            server
                .settlement()
                .close_programme_year(authed(token, CloseProgrammeYearRequest { year }))
                .await
        })
    };
    let figures = |token: &'static str, year: u32| {
        call(async move {
            server
                .settlement()
                .get_year_figures(authed(token, GetYearFiguresRequest { year }))
                .await
        })
    };
    let adjust = |token: &'static str, year: u32, pool: &str, reason: &str| {
        let request = AdjustPoolRequest {
            year,
            new_pool: pool.into(),
            reason: reason.into(),
        };
        call(async move {
            server
                .settlement()
                .adjust_pool(authed(token, request))
                .await
        })
    };
    let clock = |token: &'static str, reason: &str| {
        let request = ConfirmClockRequest {
            reason: reason.into(),
        };
        call(async move {
            server
                .programme()
                .confirm_clock(authed(token, request))
                .await
        })
    };
    let clock_with_id = |request_id: &str| {
        let request = authed_with_id(
            BUREAU,
            request_id,
            ConfirmClockRequest {
                reason: "operator check".into(),
            },
        );
        call(async move { server.programme().confirm_clock(request).await })
    };
    // A PostInvoices call's origin (its request id) goes into each command's envelope as
    // the items are parsed, so a malformed id refuses the call whatever its items.
    let post_with_id = |request_id: &str, amount: &str| {
        let request = authed_with_id(
            CENTER_1,
            request_id,
            PostInvoicesRequest {
                invoices: vec![center_invoice(1, voucher_id, "RID-1", amount)],
            },
        );
        call(async move { server.redemption().post_invoices(request).await })
    };
    let c1 = center_code(1);
    let fresh_run = "3c9f6b1e-7a2d-4c55-9e0f-5b8a7d0000ff";
    let unknown_voucher = "5f0c3a4e-1111-4222-8333-944455556666";
    let by_center = |center: &str| ListStatementsRequest {
        center: center.into(),
        ..Default::default()
    };
    let of_center = |center: &str, year: u32| ListInvoicesRequest {
        center: center.into(),
        year,
        ..Default::default()
    };
    let of_voucher = |voucher: &str| ListInvoicesRequest {
        voucher_id: voucher.into(),
        ..Default::default()
    };
    let rows: Vec<(&str, Call, Code, Expect)> = vec![
        // CreateSettlementRun
        (
            "run id not a UUID",
            run(BUREAU, "run-1", 2026),
            Code::InvalidArgument,
            Field("run_id"),
        ),
        (
            "empty run id",
            run(BUREAU, "", 2026),
            Code::InvalidArgument,
            Field("run_id"),
        ),
        (
            "nil run id",
            run(BUREAU, "00000000-0000-0000-0000-000000000000", 2026),
            Code::InvalidArgument,
            Field("run_id"),
        ),
        (
            "run year 0",
            run(BUREAU, fresh_run, 0),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "run year 1999",
            run(BUREAU, fresh_run, 1999),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "a center runs a settlement",
            run(CENTER_1, fresh_run, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor runs a settlement",
            run(AUDITOR, fresh_run, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an enterprise runs a settlement",
            run(ENTERPRISE_1, fresh_run, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "a run of a year without a policy",
            run(BUREAU, fresh_run, 2031),
            Code::FailedPrecondition,
            Reason("POLICY_NOT_PUBLISHED"),
        ),
        (
            "a run id used for another year",
            run(BUREAU, TABLE_RUN, 2027),
            Code::FailedPrecondition,
            Reason("SETTLEMENT_RUN_CONFLICT"),
        ),
        (
            "a run with nothing to settle",
            run(BUREAU, fresh_run, 2026),
            Code::FailedPrecondition,
            Reason("NOTHING_TO_SETTLE"),
        ),
        // ConfirmPayment
        (
            "statement id 0",
            pay(BUREAU, 0, "P-1", "20.00", &today),
            Code::InvalidArgument,
            Field("statement_id"),
        ),
        (
            "empty bank reference",
            pay(BUREAU, open, "", "20.00", &today),
            Code::InvalidArgument,
            Field("bank_reference"),
        ),
        (
            "bank reference with a bidi override",
            pay(BUREAU, open, "P-\u{202E}1", "20.00", &today),
            Code::InvalidArgument,
            Field("bank_reference"),
        ),
        (
            "bank reference of 65 bytes",
            pay(BUREAU, open, &"P".repeat(65), "20.00", &today),
            Code::InvalidArgument,
            Field("bank_reference"),
        ),
        (
            "payment of three decimals",
            pay(BUREAU, open, "P-1", "20.001", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "payment of zero",
            pay(BUREAU, open, "P-1", "0.00", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "negative payment",
            pay(BUREAU, open, "P-1", "-20.00", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "payment as a float",
            pay(BUREAU, open, "P-1", "2e1", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "impossible value date",
            pay(BUREAU, open, "P-1", "20.00", "2026-02-30"),
            Code::InvalidArgument,
            Field("value_date"),
        ),
        (
            "empty value date",
            pay(BUREAU, open, "P-1", "20.00", ""),
            Code::InvalidArgument,
            Field("value_date"),
        ),
        (
            "a center confirms a payment",
            pay(CENTER_2, open, "P-1", "20.00", &today),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor confirms a payment",
            pay(AUDITOR, open, "P-1", "20.00", &today),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "a payment other than the net",
            pay(BUREAU, open, "P-1", "20.01", &today),
            Code::FailedPrecondition,
            Reason("PAYMENT_AMOUNT_MISMATCH"),
        ),
        (
            "a value date in the future",
            pay(BUREAU, open, "P-1", "20.00", "2099-01-01"),
            Code::FailedPrecondition,
            Reason("VALUE_DATE_INVALID"),
        ),
        (
            "a value date before the statement",
            pay(BUREAU, open, "P-1", "20.00", "2020-01-01"),
            Code::FailedPrecondition,
            Reason("VALUE_DATE_INVALID"),
        ),
        (
            "a paid statement paid again",
            pay(BUREAU, paid, "P-2", "30.00", &today),
            Code::FailedPrecondition,
            Reason("STATEMENT_ALREADY_PAID"),
        ),
        (
            "another statement's bank reference",
            pay(BUREAU, open, "TABLE-PAY-1", "20.00", &today),
            Code::FailedPrecondition,
            Reason("BANK_REFERENCE_REUSED"),
        ),
        (
            "the same reference with another value date",
            pay(BUREAU, paid, "TABLE-PAY-1", "30.00", "2026-01-02"),
            Code::FailedPrecondition,
            Reason("BANK_REFERENCE_REUSED"),
        ),
        // RecordPaymentReturned
        (
            "return of statement 0",
            bounce(BUREAU, 0, "TABLE-PAY-1", "bounced"),
            Code::InvalidArgument,
            Field("statement_id"),
        ),
        (
            "return without a reference",
            bounce(BUREAU, paid, "", "bounced"),
            Code::InvalidArgument,
            Field("bank_reference"),
        ),
        (
            "return without a reason",
            bounce(BUREAU, paid, "TABLE-PAY-1", ""),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "return reason with a newline",
            bounce(BUREAU, paid, "TABLE-PAY-1", "a\nb"),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "a center records a return",
            bounce(CENTER_1, paid, "TABLE-PAY-1", "bounced"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor records a return",
            bounce(AUDITOR, paid, "TABLE-PAY-1", "bounced"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        // RecordRepayment
        (
            "repayment by a bad USCC",
            repay(BUREAU, "91330100MA0000001G", 2026, "1.00", "R-1", &today),
            Code::InvalidArgument,
            Field("center"),
        ),
        (
            "repayment for year 0",
            repay(BUREAU, &c1, 0, "1.00", "R-1", &today),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "repayment of NaN",
            repay(BUREAU, &c1, 2026, "NaN", "R-1", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "repayment of zero",
            repay(BUREAU, &c1, 2026, "0.00", "R-1", &today),
            Code::InvalidArgument,
            Field("amount"),
        ),
        (
            "repayment without a reference",
            repay(BUREAU, &c1, 2026, "1.00", "", &today),
            Code::InvalidArgument,
            Field("bank_reference"),
        ),
        (
            "repayment value date in another format",
            repay(BUREAU, &c1, 2026, "1.00", "R-1", "31/12/2026"),
            Code::InvalidArgument,
            Field("value_date"),
        ),
        (
            "a center records its repayment",
            repay(CENTER_1, &c1, 2026, "1.00", "R-1", &today),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "repayment by an unknown center",
            repay(BUREAU, &center_code(30), 2026, "1.00", "R-1", &today),
            Code::NotFound,
            Reason("CENTER_NOT_FOUND"),
        ),
        (
            "repayment of a year without a policy",
            repay(BUREAU, &c1, 2031, "1.00", "R-1", &today),
            Code::FailedPrecondition,
            Reason("POLICY_NOT_PUBLISHED"),
        ),
        (
            "repayment with nothing owed",
            repay(BUREAU, &c1, 2026, "1.00", "R-1", &today),
            Code::FailedPrecondition,
            Reason("REPAYMENT_EXCEEDS_RECEIVABLE"),
        ),
        (
            "repayment with a payment's reference",
            repay(BUREAU, &c1, 2026, "1.00", "TABLE-PAY-1", &today),
            Code::FailedPrecondition,
            Reason("BANK_REFERENCE_REUSED"),
        ),
        // GetStatement
        (
            "statement 0",
            get(BUREAU, 0),
            Code::InvalidArgument,
            Field("statement_id"),
        ),
        (
            "unknown statement",
            get(AUDITOR, 999_999),
            Code::NotFound,
            CodeOnly,
        ),
        (
            "another center's statement",
            get(CENTER_2, paid),
            Code::NotFound,
            CodeOnly,
        ),
        (
            "an enterprise reads a statement",
            get(ENTERPRISE_1, paid),
            Code::NotFound,
            CodeOnly,
        ),
        // ListStatements
        (
            "statements of a bad USCC",
            list(BUREAU, by_center("9133")),
            Code::InvalidArgument,
            Field("center"),
        ),
        (
            "statements page too large",
            list(
                BUREAU,
                ListStatementsRequest {
                    page_size: 5_000,
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            Field("page_size"),
        ),
        (
            "statements page token not ours",
            list(
                BUREAU,
                ListStatementsRequest {
                    page_token: "abc".into(),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            Field("page_token"),
        ),
        (
            "unknown statement state",
            list(
                BUREAU,
                ListStatementsRequest {
                    state: 9,
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            Field("state"),
        ),
        (
            "statements of a run id not a UUID",
            list(
                BUREAU,
                ListStatementsRequest {
                    run_id: "x".into(),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            Field("run_id"),
        ),
        (
            "statements of 1999",
            list(
                BUREAU,
                ListStatementsRequest {
                    year: 1999,
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "a center lists without naming itself",
            list(CENTER_1, by_center("")),
            Code::InvalidArgument,
            Field("center"),
        ),
        (
            "a center lists another's statements",
            list(CENTER_2, by_center(&c1)),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an enterprise lists statements",
            list(ENTERPRISE_1, by_center(&c1)),
            Code::PermissionDenied,
            CodeOnly,
        ),
        // ListInvoices
        (
            "invoices of nobody",
            invoices(BUREAU, ListInvoicesRequest::default()),
            Code::InvalidArgument,
            Field("center"),
        ),
        (
            "invoices of a center without a year",
            invoices(BUREAU, of_center(&c1, 0)),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "invoices of a voucher id not a UUID",
            invoices(BUREAU, of_voucher("v-1")),
            Code::InvalidArgument,
            Field("voucher_id"),
        ),
        (
            "unknown settled filter",
            invoices(
                BUREAU,
                ListInvoicesRequest {
                    settled: 7,
                    ..of_center(&c1, 2026)
                },
            ),
            Code::InvalidArgument,
            Field("settled"),
        ),
        (
            "invoices page too large",
            invoices(
                BUREAU,
                ListInvoicesRequest {
                    page_size: 5_000,
                    ..of_center(&c1, 2026)
                },
            ),
            Code::InvalidArgument,
            Field("page_size"),
        ),
        (
            "invoices page token not ours",
            invoices(
                BUREAU,
                ListInvoicesRequest {
                    page_token: "-1".into(),
                    ..of_center(&c1, 2026)
                },
            ),
            Code::InvalidArgument,
            Field("page_token"),
        ),
        (
            "invoices of an unknown voucher",
            invoices(BUREAU, of_voucher(unknown_voucher)),
            Code::NotFound,
            CodeOnly,
        ),
        (
            "a center lists another's invoices",
            invoices(CENTER_2, of_center(&c1, 2026)),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "a center lists another's voucher",
            invoices(CENTER_2, of_voucher(voucher_id)),
            Code::NotFound,
            CodeOnly,
        ),
        (
            "an enterprise lists another's voucher",
            invoices(ENTERPRISE_2, of_voucher(voucher_id)),
            Code::NotFound,
            CodeOnly,
        ),
        (
            "an enterprise lists a center's invoices",
            invoices(ENTERPRISE_1, of_center(&c1, 2026)),
            Code::PermissionDenied,
            CodeOnly,
        ),
        // ListReceivables
        (
            "receivables of a bad USCC",
            owed(BUREAU, "9133", 0),
            Code::InvalidArgument,
            Field("center"),
        ),
        (
            "receivables of 1999",
            owed(BUREAU, "", 1999),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "a center lists every receivable",
            owed(CENTER_1, "", 0),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "a center lists another's receivables",
            owed(CENTER_2, &c1, 0),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an enterprise lists receivables",
            owed(ENTERPRISE_1, &c1, 0),
            Code::PermissionDenied,
            CodeOnly,
        ),
        // CloseProgrammeYear
        (
            "close year 0",
            close(BUREAU, 0),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "a center closes a year",
            close(CENTER_1, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor closes a year",
            close(AUDITOR, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "close a year still redeemable",
            close(BUREAU, 2026),
            Code::FailedPrecondition,
            Reason("YEAR_NOT_OVER"),
        ),
        (
            "close a year without a policy",
            close(BUREAU, 2031),
            Code::FailedPrecondition,
            Reason("POLICY_NOT_PUBLISHED"),
        ),
        // GetYearFigures
        (
            "figures of year 0",
            figures(BUREAU, 0),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "a center reads the figures",
            figures(CENTER_1, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an enterprise reads the figures",
            figures(ENTERPRISE_1, 2026),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "figures of a year without a policy",
            figures(AUDITOR, 2031),
            Code::NotFound,
            CodeOnly,
        ),
        // AdjustPool
        (
            "pool of year 0",
            adjust(BUREAU, 0, "1.00", "x"),
            Code::InvalidArgument,
            Field("year"),
        ),
        (
            "pool of zero",
            adjust(BUREAU, 2026, "0.00", "x"),
            Code::InvalidArgument,
            Field("new_pool"),
        ),
        (
            "pool of three decimals",
            adjust(BUREAU, 2026, "1.005", "x"),
            Code::InvalidArgument,
            Field("new_pool"),
        ),
        (
            "pool without a reason",
            adjust(BUREAU, 2026, "1.00", ""),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "a center adjusts the pool",
            adjust(CENTER_1, 2026, "1.00", "x"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor adjusts the pool",
            adjust(AUDITOR, 2026, "1.00", "x"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "a pool below what it carries",
            adjust(BUREAU, 2026, "1.00", "budget cut"),
            Code::FailedPrecondition,
            Reason("POOL_BELOW_USAGE"),
        ),
        (
            "a pool of a year without a policy",
            adjust(BUREAU, 2031, "1.00", "x"),
            Code::FailedPrecondition,
            Reason("POLICY_NOT_PUBLISHED"),
        ),
        // ConfirmClock
        (
            "clock without a reason",
            clock(BUREAU, ""),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "clock reason with a zero-width space",
            clock(BUREAU, "ok\u{200B}"),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "clock reason of 501 bytes",
            clock(BUREAU, &"r".repeat(501)),
            Code::InvalidArgument,
            Field("reason"),
        ),
        (
            "a center confirms the clock",
            clock(CENTER_1, "x"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an auditor confirms the clock",
            clock(AUDITOR, "x"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "an enterprise confirms the clock",
            clock(ENTERPRISE_1, "x"),
            Code::PermissionDenied,
            CodeOnly,
        ),
        (
            "x-request-id with a space",
            clock_with_id("a b"),
            Code::InvalidArgument,
            Field("x-request-id"),
        ),
        (
            "x-request-id of 129 bytes",
            clock_with_id(&"r".repeat(129)),
            Code::InvalidArgument,
            Field("x-request-id"),
        ),
        (
            "PostInvoices with an x-request-id with a space",
            post_with_id("a b", "100.00"),
            Code::InvalidArgument,
            Field("x-request-id"),
        ),
        (
            "PostInvoices of only an invalid item, x-request-id of 129 bytes",
            post_with_id(&"r".repeat(129), "1.2.3"),
            Code::InvalidArgument,
            Field("x-request-id"),
        ),
        // Rules issue 8 added to older RPCs.
        (
            "a center reverses a settled invoice",
            call(async move {
                server
                    .redemption()
                    .reverse_invoice(authed(
                        CENTER_1,
                        ReverseInvoiceRequest {
                            center: center_code(1),
                            invoice_number: "settle-1".into(),
                            reason: "credit note".into(),
                        },
                    ))
                    .await
            }),
            Code::PermissionDenied,
            Reason("REVERSAL_NEEDS_BUREAU"),
        ),
        (
            "a voucher under another year than its term's",
            call(async move {
                server
                    .vouchers()
                    .approve_voucher(authed(
                        BUREAU,
                        ApproveVoucherRequest {
                            term_start: "2027-01-01".into(),
                            term_end: "2027-06-30".into(),
                            ..approve_request(2, 1, "C-2027", "1000.00", "100.00")
                        },
                    ))
                    .await
            }),
            Code::FailedPrecondition,
            Reason("VOUCHER_YEAR_MISMATCH"),
        ),
        (
            "a voucher id again with other content",
            call(async move {
                server
                    .vouchers()
                    .approve_voucher(authed(
                        BUREAU,
                        ApproveVoucherRequest {
                            voucher_id: voucher_id.to_string(),
                            ..approve_request(1, 1, "C-1", "100000.00", "1.00")
                        },
                    ))
                    .await
            }),
            Code::AlreadyExists,
            Reason("VOUCHER_ALREADY_EXISTS"),
        ),
        (
            "the same contract in full-width",
            call(async move {
                server
                    .vouchers()
                    .approve_voucher(authed(
                        BUREAU,
                        approve_request(2, 1, "Ｃ－１", "1000.00", "100.00"),
                    ))
                    .await
            }),
            Code::AlreadyExists,
            Reason("CONTRACT_ALREADY_HAS_VOUCHER"),
        ),
    ];
    assert!(rows.len() >= 90, "{} settlement rows", rows.len());
    let mut end = server.log_end().await;
    for (what, row, code, expect) in rows {
        let status = row.await.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        match expect {
            Field(field) => assert!(
                status.message().starts_with(&format!("invalid {field}:")),
                "{what}: the message names {field}: {}",
                status.message()
            ),
            Reason(reason) => assert_eq!(
                error_reason(&status).as_deref(),
                Some(reason),
                "{what}: {status:?}"
            ),
            CodeOnly => {}
        }
        let now = server.log_end().await;
        assert_eq!(
            now, end,
            "{what}: nothing is appended for a refused request"
        );
        end = now;
    }
}

/// `errors.rs` maps every unknown id (`*_NOT_FOUND`) to NOT_FOUND, as GetStatement
/// answers an unknown statement; so do the payment RPCs for an unknown statement or
/// payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_statements_and_payments_are_not_found() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
    let SettlementSeed { paid, .. } = seed_settlement(&server, &voucher_id).await;
    let end = server.log_end().await;
    let today = today().to_string();
    let rows: Vec<(&str, Call, &str)> = vec![
        (
            "payment of an unknown statement",
            call(async {
                server
                    .settlement()
                    .confirm_payment(authed(
                        BUREAU,
                        ConfirmPaymentRequest {
                            statement_id: 999_999,
                            bank_reference: "P-404".into(),
                            amount: "1.00".into(),
                            value_date: today.clone(),
                        },
                    ))
                    .await
            }),
            "STATEMENT_NOT_FOUND",
        ),
        (
            "return of an unknown statement",
            call(async {
                server
                    .settlement()
                    .record_payment_returned(authed(
                        BUREAU,
                        RecordPaymentReturnedRequest {
                            statement_id: 999_999,
                            bank_reference: "TABLE-PAY-1".into(),
                            reason: "bounced".into(),
                        },
                    ))
                    .await
            }),
            "STATEMENT_NOT_FOUND",
        ),
        (
            "return of an unknown payment",
            call(async {
                server
                    .settlement()
                    .record_payment_returned(authed(
                        BUREAU,
                        RecordPaymentReturnedRequest {
                            statement_id: paid,
                            bank_reference: "NEVER-PAID".into(),
                            reason: "bounced".into(),
                        },
                    ))
                    .await
            }),
            "PAYMENT_NOT_FOUND",
        ),
    ];
    for (what, row, reason) in rows {
        let status = row.await.expect_err(what);
        assert_eq!(
            error_reason(&status).as_deref(),
            Some(reason),
            "{what}: {status:?}"
        );
        assert_eq!(server.log_end().await, end, "{what}: nothing appended");
        assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_resource_exhausted() {
    // A queue of 8 commands: a batch of 100 cannot be queued.
    let server = TestServer::start_with(voucher_ledger::api::server::ServerSection {
        queue_commands: 8,
        ..Default::default()
    })
    .await;
    server
        .programme()
        .publish_policy(authed(BUREAU, standard_policy_request()))
        .await
        .expect("policy");
    let invoices: Vec<Invoice> = (0..100)
        .map(|n| {
            center_invoice(
                1,
                "5f0c3a4e-1111-4222-8333-944455556666",
                &format!("Q{n}"),
                "1.00",
            )
        })
        .collect();
    let status = server
        .redemption()
        .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices }))
        .await
        .expect_err("overloaded");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_without_a_token() {
    let server = TestServer::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "voucher.v1.RedemptionService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in [
        "voucher.v1.ProgrammeService",
        "voucher.v1.RegistryService",
        "voucher.v1.VoucherService",
        "voucher.v1.RedemptionService",
        "voucher.v1.LedgerService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
    let _ = proto::FILE_DESCRIPTOR_SET;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_stall_writers() {
    let server = TestServer::start_with(voucher_ledger::api::server::ServerSection {
        shutdown_grace_seconds: 1,
        ..Default::default()
    })
    .await;
    let voucher_id = seed(&server).await;
    // Open a subscription and never read from it.
    let _idle = server
        .ledger()
        .subscribe_events(authed(AUDITOR, SubscribeEventsRequest { from_sequence: 1 }))
        .await
        .expect("subscribe")
        .into_inner();
    let started = std::time::Instant::now();
    for batch in 0..20 {
        let invoices: Vec<Invoice> = (0..500)
            .map(|n| center_invoice(1, &voucher_id, &format!("S{batch}-{n}"), "1.00"))
            .collect();
        let response = tokio::time::timeout(
            Duration::from_secs(20),
            server
                .redemption()
                .post_invoices(authed(CENTER_1, PostInvoicesRequest { invoices })),
        )
        .await
        .expect("writers are not stalled by the idle subscriber")
        .expect("batch");
        assert_eq!(response.into_inner().results.len(), 500);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // A second subscriber still gets everything, from the stored log.
    let mut reader = server
        .ledger()
        .subscribe_events(authed(AUDITOR, SubscribeEventsRequest { from_sequence: 1 }))
        .await
        .expect("subscribe")
        .into_inner();
    let mut last = 0;
    while last < 10_006 {
        let event = tokio::time::timeout(Duration::from_secs(10), reader.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("open");
        assert_eq!(event.sequence, last + 1);
        last = event.sequence;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_the_config_serves_encrypted_and_refuses_plaintext() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| directory.path().join(name);
    let (cert, key) = (path("server.crt"), path("server.key"));
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    // A test CA, and a server certificate for localhost signed by it.
    for arguments in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=voucher-ledger test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    ] {
        let made = std::process::Command::new("openssl")
            .args(&arguments)
            .current_dir(directory.path())
            .output()
            .expect("openssl is installed");
        assert!(
            made.status.success(),
            "openssl {arguments:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = test_config(voucher_ledger::api::server::ServerSection::default());
    config.tls = Some(voucher_ledger::api::server::TlsSection {
        cert: cert.clone(),
        key,
    });
    let data = tempfile::tempdir().expect("tempdir");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = voucher_ledger::api::server::ServeSettings {
        data_dir: data.path().to_path_buf(),
        config,
        sync: true,
        http_listener: None,
    };
    let task = tokio::spawn(voucher_ledger::api::server::run(
        listener,
        settings,
        async move {
            let _ = stopped.await;
        },
    ));

    let pem = std::fs::read(path("ca.crt")).expect("ca cert");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{address}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connect");
    let programme = programme_service_client::ProgrammeServiceClient::new(channel)
        .get_programme(authed(BUREAU, GetProgrammeRequest { year: 0 }))
        .await
        .expect("a call over TLS")
        .into_inner();
    assert!(programme.years.is_empty());
    let plaintext = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let refused = programme_service_client::ProgrammeServiceClient::new(channel)
            .get_programme(authed(BUREAU, GetProgrammeRequest { year: 0 }))
            .await;
        assert!(
            refused.is_err(),
            "a plaintext call must not be served on a TLS port"
        );
    }
    let _ = stop.send(());
    task.await.expect("join").expect("clean shutdown");
}
