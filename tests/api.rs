//! The gRPC API against the real server on 127.0.0.1:0: a full programme cycle, the
//! event subscription, authorization per role, and a table of hostile requests.

mod support;

use std::time::Duration;

use support::*;
use tonic::Code;
use voucher_ledger::api::proto::{self, *};

fn policy_request() -> PublishPolicyRequest {
    PublishPolicyRequest {
        source: Some(publish_policy_request::Source::PolicyToml(
            std::fs::read_to_string("config/policy-2026.toml").expect("policy file"),
        )),
    }
}

fn invoice(center: usize, voucher_id: &str, number: &str, amount: &str) -> Invoice {
    Invoice {
        center: center_code(center),
        voucher_id: voucher_id.to_string(),
        invoice_number: number.to_string(),
        amount: amount.to_string(),
        issue_date: "2026-06-30".into(),
        delivery_proof: format!("acceptance/{number}"),
        invoice_code: String::new(),
    }
}

/// Policy, centers 1 (domestic) and 2 (other), enterprises 1 and 2, one voucher
/// (enterprise 1 at center 1, fee 100,000.00, face 30,000.00). Returns the voucher id.
async fn seed(server: &TestServer) -> String {
    server
        .programme()
        .publish_policy(authed(BUREAU, policy_request()))
        .await
        .expect("policy");
    for (index, tier) in [(1, FacilityTier::Domestic), (2, FacilityTier::Other)] {
        server
            .registry()
            .register_center(authed(
                BUREAU,
                RegisterCenterRequest {
                    uscc: center_code(index),
                    name: format!("Center {index}"),
                    tier: tier as i32,
                    listing_basis: ListingBasis::PlanningLayout as i32,
                },
            ))
            .await
            .expect("center");
    }
    for index in [1, 2] {
        server
            .registry()
            .register_enterprise(authed(
                BUREAU,
                RegisterEnterpriseRequest {
                    uscc: enterprise_code(index),
                    name: format!("Enterprise {index}"),
                },
            ))
            .await
            .expect("enterprise");
    }
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
            invoice(1, &voucher_id, "INV-1", "1000.07"),
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
            invoice(1, &voucher_id, "INV-1", "1000.07"),
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
            invoice(1, &voucher_id, "INV-1", "1000.08"),
        ))
        .await
        .expect_err("conflict");
    assert_eq!(conflict.code(), Code::AlreadyExists);

    // A batch of 100, one of them over the contract fee.
    let mut invoices: Vec<Invoice> = (0..99)
        .map(|n| invoice(1, &voucher_id, &format!("B-{n}"), "100.00"))
        .collect();
    invoices.push(invoice(1, &voucher_id, "B-over", "99999.00"));
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
        .post_invoice(authed(CENTER_1, invoice(1, &voucher_id, "OWN-1", "10.00")))
        .await
        .expect("own invoice");
    denied(
        unit(
            server
                .redemption()
                .post_invoice(authed(
                    CENTER_2,
                    invoice(1, &voucher_id, "FOREIGN-1", "10.00"),
                ))
                .await,
        ),
        "center 2 posting center 1's invoice",
    );
    let mixed = vec![
        invoice(2, &voucher_id, "MINE", "10.00"),
        invoice(1, &voucher_id, "THEIRS", "10.00"),
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
                    invoice(1, &voucher_id, "E-1", "10.00"),
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
                .publish_policy(authed(AUDITOR, policy_request()))
                .await,
        ),
        "an auditor publishing",
    );
    denied(
        unit(
            server
                .redemption()
                .post_invoice(authed(AUDITOR, invoice(1, &voucher_id, "A-1", "10.00")))
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
        .post_invoice(authed(BUREAU, invoice(1, &voucher_id, "BUREAU-1", "10.00")))
        .await
        .expect("bureau posts");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_requests_get_the_right_code_and_change_nothing() {
    let server = TestServer::start().await;
    let voucher_id = seed(&server).await;
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

    let good = invoice(1, &voucher_id, "OK", "10.00");
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
        .map(|n| invoice(1, &voucher_id, &format!("X{n}"), "1.00"))
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
                .publish_policy(authed(BUREAU, policy_request()))
                .await
                .map(|_| ()),
            Code::AlreadyExists,
        ),
        (
            "wrong role",
            server
                .programme()
                .publish_policy(authed(CENTER_1, policy_request()))
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
        .publish_policy(authed(BUREAU, policy_request()))
        .await
        .expect("policy");
    let invoices: Vec<Invoice> = (0..100)
        .map(|n| {
            invoice(
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
            .map(|n| invoice(1, &voucher_id, &format!("S{batch}-{n}"), "1.00"))
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
