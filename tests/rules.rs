//! Given/when/then tests for every business rule and every rejection code, over the pure
//! state machine (no storage). `every_rejection_code_has_a_scenario` fails if a code is
//! added without a scenario that triggers it.

mod common;

use std::collections::BTreeSet;

use common::*;
use voucher_ledger::domain::*;
use voucher_ledger::limits::EXPIRY_BATCH_LIMIT;

fn voucher_approved(scenario: &Scenario, voucher: u128) -> &Voucher {
    scenario
        .state
        .voucher(&voucher_id(voucher))
        .expect("voucher exists")
}

// ------------------------------------------------------------------- approval rules

#[test]
fn approval_face_value_is_rate_times_fee_rounded_down_and_holds_cap_and_pool() {
    let mut scenario = given(programme());
    // 30% of 100,000.03 is 30,000.009: the face value rounds down to 30,000.00.
    let (_, events) = scenario.when_ok(approve(1, 1, 1, "100000.03", "999999.00"));
    let Event::VoucherApproved(approved) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(approved.face_value, money("30000.00"));
    assert_eq!(approved.rate.to_string(), "0.3");
    assert_eq!(scenario.state.pool_usage(year()).held, money("30000.00"));
    assert_eq!(
        scenario.state.enterprise_usage(&enterprise(1), year()).held,
        money("30000.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn approval_face_value_is_the_requested_amount_when_smaller() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 2, "100000.00", "5000.00"));
    assert_eq!(
        voucher_approved(&scenario, 1).terms.face_value,
        money("5000.00")
    );
    // The other tier's rate is 20%.
    scenario.when_ok(approve(2, 2, 2, "100000.00", "99999.00"));
    assert_eq!(
        voucher_approved(&scenario, 2).terms.face_value,
        money("20000.00")
    );
}

#[test]
fn approval_with_a_zero_face_value_is_refused() {
    let mut scenario = given(programme());
    // 20% of 0.04 is 0.008, which rounds down to 0.00.
    scenario.when_rejected(
        approve(1, 1, 2, "0.04", "1.00"),
        RejectionCode::FaceValueZero,
    );
    scenario.when_rejected(
        approve(1, 1, 1, "1000.00", "0.00"),
        RejectionCode::FaceValueZero,
    );
}

#[test]
fn enterprise_cap_is_8_million_unless_overridden() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "30000000.00", "7000000.00"));
    let rejection = scenario.when_rejected(
        approve(2, 1, 1, "10000000.00", "1000000.01"),
        RejectionCode::EnterpriseCapExceeded,
    );
    assert!(rejection.detail.contains("1000000.00"), "{rejection}");
    scenario.when_ok(Command::GrantCapOverride {
        enterprise: enterprise(1),
        year: year(),
        cap: money("12000000.00"),
        reason: reason("builds a generative multimodal foundation model"),
    });
    scenario.when_ok(approve(2, 1, 1, "10000000.00", "1000000.01"));
    assert_eq!(
        scenario.state.enterprise_cap(&enterprise(1), year()),
        Some(money("12000000.00"))
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn cap_override_below_current_usage_is_refused() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "1000000.00", "300000.00"));
    scenario.when_rejected(
        Command::GrantCapOverride {
            enterprise: enterprise(1),
            year: year(),
            cap: money("299999.99"),
            reason: reason("lowered"),
        },
        RejectionCode::CapOverrideBelowUsage,
    );
}

#[test]
fn pool_exhaustion_refuses_approval_and_says_what_is_left() {
    let mut events = programme();
    events[0] = policy_published("50000.00");
    let mut scenario = given(events);
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    let rejection = scenario.when_rejected(
        approve(2, 2, 1, "100000.00", "20000.01"),
        RejectionCode::PoolExhausted,
    );
    assert!(rejection.detail.contains("20000.00"), "{rejection}");
    scenario.when_ok(approve(3, 2, 1, "100000.00", "20000.00"));
    assert_eq!(scenario.state.pool_usage(year()).held, money("50000.00"));
}

#[test]
fn one_voucher_per_contract_and_per_id() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "1000.00", "300.00"));
    let Command::ApproveVoucher(mut again) = approve(2, 1, 1, "1000.00", "300.00") else {
        unreachable!()
    };
    again.contract_number = ContractNumber::parse("C-1").expect("contract");
    scenario.when_rejected(
        Command::ApproveVoucher(again),
        RejectionCode::ContractAlreadyHasVoucher,
    );
    scenario.when_rejected(
        approve(1, 2, 1, "1000.00", "300.00"),
        RejectionCode::VoucherAlreadyExists,
    );
}

#[test]
fn contract_term_is_at_most_one_year() {
    let mut scenario = given(programme());
    let Command::ApproveVoucher(mut too_long) = approve(1, 1, 1, "1000.00", "300.00") else {
        unreachable!()
    };
    too_long.term_start = date("2026-03-01");
    too_long.term_end = date("2027-03-01");
    scenario.when_rejected(
        Command::ApproveVoucher(too_long.clone()),
        RejectionCode::ContractTermInvalid,
    );
    too_long.term_end = date("2026-02-28");
    scenario.when_rejected(
        Command::ApproveVoucher(too_long.clone()),
        RejectionCode::ContractTermInvalid,
    );
    too_long.term_end = date("2027-02-28");
    scenario.when_ok(Command::ApproveVoucher(too_long));
}

#[test]
fn only_registered_active_centers_and_registered_enterprises() {
    let mut scenario = given(programme());
    scenario.when_rejected(
        approve(1, 1, 9, "1000.00", "300.00"),
        RejectionCode::CenterNotFound,
    );
    scenario.when_rejected(
        approve(1, 9, 1, "1000.00", "300.00"),
        RejectionCode::EnterpriseNotFound,
    );
    scenario.when_ok(Command::SetCenterStatus {
        center: center(1),
        status: CenterStatus::Suspended,
        reason: reason("inspection"),
    });
    scenario.when_rejected(
        approve(1, 1, 1, "1000.00", "300.00"),
        RejectionCode::CenterNotActive,
    );
}

#[test]
fn related_parties_cannot_have_vouchers_between_them() {
    let mut scenario = given(programme());
    let declare = Command::DeclareRelatedParty {
        enterprise: enterprise(1),
        center: center(1),
        reason: reason("same controlling shareholder"),
    };
    scenario.when_ok(declare.clone());
    scenario.when_rejected(declare, RejectionCode::RelatedPartyAlreadyDeclared);
    scenario.when_rejected(
        approve(1, 1, 1, "1000.00", "300.00"),
        RejectionCode::RelatedParty,
    );
    scenario.when_ok(approve(1, 1, 2, "1000.00", "200.00"));
}

#[test]
fn policy_is_published_once_per_year_and_needed_for_approval() {
    let mut scenario = given(programme());
    scenario.when_rejected(
        Command::PublishPolicy {
            policy: ProgrammePolicy::hangzhou_defaults(year()),
        },
        RejectionCode::PolicyAlreadyPublished,
    );
    let Command::ApproveVoucher(mut next_year) = approve(1, 1, 1, "1000.00", "300.00") else {
        unreachable!()
    };
    next_year.year = ProgrammeYear::new(2027).expect("year");
    scenario.when_rejected(
        Command::ApproveVoucher(next_year),
        RejectionCode::PolicyNotPublished,
    );
}

#[test]
fn registry_refuses_duplicates_and_pointless_status_changes() {
    let mut scenario = given(programme());
    scenario.when_rejected(
        Command::RegisterCenter {
            center: center(1),
            name: name("again"),
            tier: FacilityTier::Other,
            listing_basis: ListingBasis::MatchmakingPartner,
            capacity: Default::default(),
        },
        RejectionCode::CenterAlreadyRegistered,
    );
    scenario.when_rejected(
        Command::RegisterEnterprise {
            enterprise: enterprise(1),
            name: name("again"),
        },
        RejectionCode::EnterpriseAlreadyRegistered,
    );
    let status = |status| Command::SetCenterStatus {
        center: center(2),
        status,
        reason: reason("r"),
    };
    scenario.when_rejected(
        status(CenterStatus::Active),
        RejectionCode::CenterStatusUnchanged,
    );
    scenario.when_ok(status(CenterStatus::Delisted));
    scenario.when_rejected(status(CenterStatus::Active), RejectionCode::CenterDelisted);
}

// ----------------------------------------------------------------- redemption rules

fn with_voucher() -> Scenario {
    let mut scenario = given(programme());
    // Domestic center, fee 100,000.00, face 30,000.00.
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario
}

#[test]
fn redemption_pays_rate_times_invoice_rounded_down() {
    let mut scenario = with_voucher();
    let (reply, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.07"));
    let Reply::InvoiceOutcome(outcome) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(outcome.subsidy, money("300.02"));
    assert!(!outcome.duplicate);
    assert_eq!(events.len(), 1);
    let voucher = voucher_approved(&scenario, 1);
    assert_eq!(voucher.remaining, money("29699.98"));
    let pool = scenario.state.pool_usage(year());
    assert_eq!(
        (pool.held, pool.redeemed),
        (money("29699.98"), money("300.02"))
    );
    assert_eq!(scenario.state.center_unsettled(&center(1)), money("300.02"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn redemption_is_limited_by_the_remaining_face_value() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "1000.00"));
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-1", "3000.00"));
    assert_eq!(
        reply,
        Reply::InvoiceOutcome(InvoiceOutcome {
            subsidy: money("900.00"),
            sequence: 7,
            duplicate: false,
            reversed: false
        })
    );
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-2", "3000.00"));
    let Reply::InvoiceOutcome(outcome) = reply else {
        panic!()
    };
    assert_eq!(outcome.subsidy, money("100.00"));
    scenario.when_rejected(post(1, 1, "INV-3", "1.00"), RejectionCode::VoucherExhausted);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_tiny_invoice_earns_no_subsidy_but_counts_against_the_fee() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 2, "1000.00", "200.00"));
    let (reply, _) = scenario.when_ok(post(2, 1, "INV-1", "0.04"));
    let Reply::InvoiceOutcome(outcome) = reply else {
        panic!()
    };
    assert_eq!(outcome.subsidy, Money::ZERO);
    assert_eq!(voucher_approved(&scenario, 1).invoiced_total, money("0.04"));
}

#[test]
fn posting_the_same_invoice_again_returns_the_original_outcome_and_changes_nothing() {
    let mut scenario = with_voucher();
    let (first, _) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let before = scenario.state.clone();
    let (again, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    assert!(events.is_empty());
    let (Reply::InvoiceOutcome(first), Reply::InvoiceOutcome(again)) = (first, again) else {
        panic!()
    };
    assert_eq!(
        (again.subsidy, again.sequence, again.duplicate),
        (first.subsidy, first.sequence, true)
    );
    assert_eq!(scenario.state, before);
}

#[test]
fn same_invoice_number_with_different_content_is_a_conflict() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    scenario.when_rejected(
        post(1, 1, "INV-1", "1000.01"),
        RejectionCode::InvoiceConflict,
    );
}

#[test]
fn invoice_numbers_are_unique_per_center_not_globally() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    scenario.when_ok(post(2, 2, "INV-1", "1000.00"));
}

#[test]
fn cumulative_invoices_may_not_exceed_the_contract_fee() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "99999.99"));
    scenario.when_rejected(
        post(1, 1, "INV-2", "0.02"),
        RejectionCode::ContractFeeExceeded,
    );
    scenario.when_ok(post(1, 1, "INV-3", "0.01"));
}

/// A `VoucherApproved` fact as a faulty earlier release might have recorded it: a rate of
/// 60% against the 30% ceiling, face 500.00 on a 1,000.00 contract.
fn anomalous_voucher() -> Event {
    Event::VoucherApproved(Box::new(VoucherApproved {
        voucher: voucher_id(1),
        year: year(),
        enterprise: enterprise(1),
        center: center(1),
        contract_number: ContractNumber::parse("C-1").expect("contract"),
        contract_fee: money("1000.00"),
        term_start: date("2026-01-01"),
        term_end: date("2026-12-31"),
        redemption_window_end: date("2027-03-01"),
        tier: FacilityTier::Domestic,
        rate: Rate::parse("rate", "0.60").expect("rate"),
        ceiling: Rate::parse("rate", "0.30").expect("rate"),
        requested: money("500.00"),
        face_value: money("500.00"),
        programme: Default::default(),
    }))
}

#[test]
fn cumulative_subsidy_may_not_exceed_the_ceiling_even_for_an_anomalous_voucher() {
    let mut events = programme();
    events.push(anomalous_voucher());
    let mut scenario = given(events);
    scenario.when_ok(post(1, 1, "INV-1", "400.00")); // 240.00 of a 300.00 ceiling
    scenario.when_rejected(
        post(1, 1, "INV-2", "200.00"),
        RejectionCode::ContractCeilingExceeded,
    );
    scenario.when_ok(post(1, 1, "INV-3", "100.00")); // exactly 300.00
}

#[test]
fn invoices_need_an_active_center_its_own_voucher_and_a_date_in_the_term() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_rejected(post(9, 1, "INV-1", "10.00"), RejectionCode::CenterNotFound);
    scenario.when_rejected(post(1, 7, "INV-1", "10.00"), RejectionCode::VoucherNotFound);
    scenario.when_rejected(
        post(2, 1, "INV-1", "10.00"),
        RejectionCode::VoucherCenterMismatch,
    );
    let Command::PostInvoice(mut late) = post(1, 1, "INV-1", "10.00") else {
        unreachable!()
    };
    late.issue_date = date("2027-01-01");
    scenario.when_rejected(
        Command::PostInvoice(late),
        RejectionCode::InvoiceDateOutsideTerm,
    );
    scenario.when_ok(Command::SetCenterStatus {
        center: center(1),
        status: CenterStatus::Suspended,
        reason: reason("audit"),
    });
    scenario.when_rejected(post(1, 1, "INV-1", "10.00"), RejectionCode::CenterNotActive);
}

#[test]
fn a_retry_after_suspension_still_gets_the_original_outcome() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "10.00"));
    scenario.when_ok(Command::SetCenterStatus {
        center: center(1),
        status: CenterStatus::Suspended,
        reason: reason("audit"),
    });
    let (reply, events) = scenario.when_ok(post(1, 1, "INV-1", "10.00"));
    assert!(events.is_empty());
    assert!(matches!(
        reply,
        Reply::InvoiceOutcome(InvoiceOutcome {
            duplicate: true,
            ..
        })
    ));
}

// ------------------------------------------------------------- reversal and release

#[test]
fn reversal_returns_the_subsidy_to_the_voucher() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let (_, events) = scenario.when_ok(reverse(1, "INV-1"));
    let Event::InvoiceReversed(reversed) = &events[0] else {
        panic!()
    };
    assert!(reversed.returned_to_voucher && !reversed.clawback);
    let voucher = voucher_approved(&scenario, 1);
    assert_eq!(
        (voucher.remaining, voucher.invoiced_total),
        (money("30000.00"), Money::ZERO)
    );
    assert_eq!(scenario.state.pool_usage(year()).redeemed, Money::ZERO);
    assert_eq!(scenario.state.center_unsettled(&center(1)), Money::ZERO);
    scenario.when_rejected(reverse(1, "INV-1"), RejectionCode::InvoiceAlreadyReversed);
    scenario.when_rejected(reverse(1, "INV-404"), RejectionCode::InvoiceNotFound);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn reversing_a_settled_invoice_is_a_clawback_offset_at_the_next_settlement() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let settle = |number| Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(number),
        year: year(),
    };
    let (_, events) = scenario.when_ok(settle(1));
    assert!(matches!(&events[1], Event::StatementIssued(issued) if issued.net == money("300.00")));
    let (again, events) = scenario.when_ok(settle(1));
    assert!(events.is_empty(), "the same run again answers the original");
    assert!(matches!(again, Reply::SettlementRunCreated(outcome) if outcome.duplicate));
    scenario.when_rejected(settle(2), RejectionCode::NothingToSettle);
    let (_, events) = scenario.when_ok(reverse(1, "INV-1"));
    assert!(matches!(&events[0], Event::InvoiceReversed(reversed) if reversed.clawback));
    assert_eq!(
        scenario.state.center_outstanding(&center(1)),
        money("300.00")
    );
    scenario.when_ok(post(1, 1, "INV-2", "2000.00"));
    let (_, events) = scenario.when_ok(settle(3));
    let Event::StatementIssued(issued) = &events[1] else {
        panic!()
    };
    assert_eq!(
        (issued.gross, issued.clawback_offset, issued.net),
        (money("600.00"), money("300.00"), money("300.00"))
    );
    assert_eq!(scenario.state.center_outstanding(&center(1)), Money::ZERO);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn cancellation_releases_the_unredeemed_face_value() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let cancel = Command::CancelVoucher {
        voucher: voucher_id(1),
        reason: reason("contract terminated"),
    };
    let (_, events) = scenario.when_ok(cancel.clone());
    assert!(
        matches!(&events[0], Event::VoucherReleased { released, cause: ReleaseCause::Cancelled, .. } if *released == money("29700.00"))
    );
    let pool = scenario.state.pool_usage(year());
    assert_eq!((pool.held, pool.redeemed), (Money::ZERO, money("300.00")));
    scenario.when_rejected(cancel, RejectionCode::VoucherNotActive);
    scenario.when_rejected(
        post(1, 1, "INV-2", "10.00"),
        RejectionCode::VoucherNotActive,
    );
    // A reversal after release gives the subsidy back to cap and pool, not the voucher.
    let (_, events) = scenario.when_ok(reverse(1, "INV-1"));
    assert!(
        matches!(&events[0], Event::InvoiceReversed(reversed) if !reversed.returned_to_voucher)
    );
    assert_eq!(scenario.state.pool_usage(year()).used(), Money::ZERO);
    assert_eq!(
        scenario
            .state
            .enterprise_usage(&enterprise(1), year())
            .used(),
        Money::ZERO
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn expiry_releases_vouchers_whose_term_ended_in_a_stable_order() {
    let mut scenario = given(programme());
    for voucher in [3, 1, 2] {
        scenario.when_ok(approve(voucher, 1, 1, "1000.00", "300.00"));
    }
    // The term ends on 2026-12-31 inclusive; invoices issued in it may be posted for 60
    // more days, so the face value is released only once 2027-03-01 is over.
    let (_, events) = scenario
        .when_at(at_date("2027-03-01"), Command::ExpireVouchers)
        .expect("sweep");
    assert!(
        events.is_empty(),
        "the redemption window ends on 2027-03-01 inclusive"
    );
    let (_, events) = scenario
        .when_at(at_date("2027-03-02"), Command::ExpireVouchers)
        .expect("sweep");
    let released: Vec<VoucherId> = events
        .iter()
        .map(|event| match event {
            Event::VoucherReleased {
                voucher,
                cause: ReleaseCause::Expired,
                ..
            } => *voucher,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(released, vec![voucher_id(1), voucher_id(2), voucher_id(3)]);
    assert_eq!(scenario.state.pool_usage(year()).used(), Money::ZERO);
    assert_eq!(
        voucher_approved(&scenario, 2).status,
        VoucherStatus::Expired
    );
}

#[test]
fn time_may_not_go_backwards() {
    let mut scenario = given(programme());
    scenario
        .when_at(
            Timestamp(1_780_000_000_000),
            approve(1, 1, 1, "1000.00", "300.00"),
        )
        .expect("accepted");
    let rejection = scenario
        .when_at(
            Timestamp(1_779_999_999_999),
            approve(2, 1, 1, "1000.00", "300.00"),
        )
        .expect_err("backwards");
    assert_eq!(rejection.code, RejectionCode::TimeWentBackwards);
}

#[test]
fn the_same_commands_give_the_same_events_byte_for_byte() {
    let run = || {
        let mut scenario = given(programme());
        let mut all = Vec::new();
        for command in [
            approve(1, 1, 1, "100000.00", "30000.00"),
            post(1, 1, "A", "100.00"),
            post(1, 1, "B", "200.00"),
            reverse(1, "A"),
        ] {
            let (_, events) = scenario.when_ok(command);
            all.extend(events);
        }
        let (_, events) = scenario
            .when_at(at_date("2027-06-01"), Command::ExpireVouchers)
            .expect("sweep");
        all.extend(events);
        format!("{all:?}")
    };
    assert_eq!(run(), run());
}

// ------------------------------------------------------------------- coverage check

/// Runs one scenario per rejection code and returns the codes seen.
fn triggered_codes() -> BTreeSet<RejectionCode> {
    let mut seen = BTreeSet::new();
    let mut record = |result: Result<(Reply, Vec<Event>), Rejection>| {
        if let Err(rejection) = result {
            seen.insert(rejection.code);
        }
    };
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "1.00"));
    let policy = ProgrammePolicy::hangzhou_defaults(year());
    record(scenario.when(Command::PublishPolicy { policy }));
    let Command::ApproveVoucher(mut other_year) = approve(9, 1, 1, "1.00", "1.00") else {
        unreachable!()
    };
    other_year.year = ProgrammeYear::new(2030).expect("year");
    record(scenario.when(Command::ApproveVoucher(other_year)));
    record(scenario.when(Command::RegisterCenter {
        center: center(1),
        name: name("x"),
        tier: FacilityTier::Other,
        listing_basis: ListingBasis::PlanningLayout,
        capacity: Default::default(),
    }));
    record(scenario.when(approve(9, 1, 8, "1.00", "1.00")));
    record(scenario.when(Command::SetCenterStatus {
        center: center(1),
        status: CenterStatus::Active,
        reason: reason("x"),
    }));
    record(scenario.when(Command::RegisterEnterprise {
        enterprise: enterprise(1),
        name: name("x"),
    }));
    record(scenario.when(approve(9, 8, 1, "1.00", "1.00")));
    record(scenario.when(Command::GrantCapOverride {
        enterprise: enterprise(1),
        year: year(),
        cap: money("1.00"),
        reason: reason("x"),
    }));
    record(scenario.when(approve(1, 2, 1, "1.00", "1.00")));
    let Command::ApproveVoucher(mut same_contract) = approve(9, 2, 1, "1000.00", "1.00") else {
        unreachable!()
    };
    same_contract.contract_number = ContractNumber::parse("C-1").expect("contract");
    record(scenario.when(Command::ApproveVoucher(same_contract)));
    let Command::ApproveVoucher(mut backwards) = approve(9, 2, 1, "1000.00", "1.00") else {
        unreachable!()
    };
    backwards.term_end = date("2025-12-31");
    record(scenario.when(Command::ApproveVoucher(backwards)));
    record(scenario.when(approve(9, 2, 1, "1000.00", "0.00")));
    record(scenario.when(approve(9, 1, 1, "100000000.00", "8000000.00")));
    record(scenario.when(post(1, 404, "X", "1.00")));
    record(scenario.when(post(2, 1, "X", "1.00")));
    let Command::PostInvoice(mut late) = post(1, 1, "X", "1.00") else {
        unreachable!()
    };
    late.issue_date = date("2027-01-01");
    record(scenario.when(Command::PostInvoice(late)));
    record(scenario.when(post(1, 1, "X", "100000.01")));
    scenario.when_ok(post(1, 1, "X", "1.00"));
    record(scenario.when(post(1, 1, "X", "2.00")));
    record(scenario.when(reverse(1, "Y")));
    scenario.when_ok(reverse(1, "X"));
    record(scenario.when(reverse(1, "X")));
    scenario.when_ok(post(2, 2, "Z", "100.00"));
    record(scenario.when(post(2, 2, "Z2", "100.00")));
    scenario.when_ok(Command::DeclareRelatedParty {
        enterprise: enterprise(2),
        center: center(1),
        reason: reason("x"),
    });
    record(scenario.when(Command::DeclareRelatedParty {
        enterprise: enterprise(2),
        center: center(1),
        reason: reason("x"),
    }));
    record(scenario.when(approve(9, 2, 1, "1000.00", "1.00")));
    scenario.when_ok(Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(1),
        year: year(),
    });
    record(scenario.when(Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(2),
        year: year(),
    }));
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(2),
        reason: reason("x"),
    });
    record(scenario.when(Command::CancelVoucher {
        voucher: voucher_id(2),
        reason: reason("x"),
    }));
    record(scenario.when_at(Timestamp(0), Command::ExpireVouchers));
    scenario.when_ok(Command::SetCenterStatus {
        center: center(2),
        status: CenterStatus::Delisted,
        reason: reason("x"),
    });
    record(scenario.when(Command::SetCenterStatus {
        center: center(2),
        status: CenterStatus::Active,
        reason: reason("x"),
    }));
    record(scenario.when(approve(9, 1, 2, "1000.00", "1.00")));
    let mut small = programme();
    small[0] = policy_published("10.00");
    let mut small = given(small);
    small.when_ok(approve(1, 1, 1, "1000.00", "6.00"));
    record(small.when(approve(2, 2, 1, "1000.00", "5.00")));
    let mut ceiling = programme();
    ceiling.push(anomalous_voucher());
    let mut ceiling = given(ceiling);
    record(ceiling.when(post(1, 1, "X", "1000.00")));
    seen
}

/// The code of a refused command, if it was refused.
fn code_of<T>(result: Result<T, Rejection>) -> Option<RejectionCode> {
    result.err().map(|rejection| rejection.code)
}

/// Runs one scenario per rejection code of settlement, the money model and year close
/// (codes 32 and later) and returns the codes seen.
fn triggered_settlement_codes() -> BTreeSet<RejectionCode> {
    let mut seen = BTreeSet::new();
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    let Command::ApproveVoucher(mut last_year) = approve(9, 1, 1, "1000.00", "1.00") else {
        unreachable!()
    };
    last_year.term_start = date("2025-12-01");
    last_year.term_end = date("2026-06-30");
    seen.extend(code_of(scenario.when(Command::ApproveVoucher(last_year))));
    scenario.when_ok(post(1, 1, "A", "1000.00")); // 300.00
    scenario.when_ok(post(2, 2, "B", "1000.00")); // 200.00
    let run = |number, programme_year| Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(number),
        year: programme_year,
    };
    let (reply, _) = scenario.when_ok(run(1, year()));
    let Reply::SettlementRunCreated(outcome) = reply else {
        panic!("{reply:?}")
    };
    let (first, second) = (outcome.statements[0], outcome.statements[1]);
    seen.extend(code_of(
        scenario.when_as(center_principal(1), reverse(1, "A")),
    ));
    seen.extend(code_of(
        scenario.when(run(1, ProgrammeYear::new(2027).expect("year"))),
    ));
    let pay =
        |statement, reference: &str, amount: &str, value_date: &str| Command::ConfirmPayment {
            statement,
            bank_reference: BankReference::parse(reference).expect("reference"),
            amount: money(amount),
            value_date: date(value_date),
        };
    seen.extend(code_of(scenario.when(pay(
        StatementId(999),
        "BANK-1",
        "300.00",
        "2026-01-01",
    ))));
    seen.extend(code_of(scenario.when(pay(
        first,
        "BANK-1",
        "1.00",
        "2026-01-01",
    ))));
    seen.extend(code_of(scenario.when(pay(
        first,
        "BANK-1",
        "300.00",
        "2025-12-31",
    ))));
    scenario.when_ok(pay(first, "BANK-1", "300.00", "2026-01-01"));
    seen.extend(code_of(scenario.when(pay(
        first,
        "BANK-2",
        "300.00",
        "2026-01-01",
    ))));
    seen.extend(code_of(scenario.when(pay(
        second,
        "BANK-1",
        "200.00",
        "2026-01-01",
    ))));
    seen.extend(code_of(scenario.when(Command::RecordPaymentReturned {
        statement: second,
        bank_reference: BankReference::parse("BANK-404").expect("reference"),
        reason: reason("x"),
    })));
    seen.extend(code_of(scenario.when(Command::RecordRepayment {
        center: center(1),
        year: year(),
        amount: money("1.00"),
        bank_reference: BankReference::parse("REPAY-1").expect("reference"),
        value_date: date("2026-01-01"),
    })));
    seen.extend(code_of(scenario.when(Command::AdjustPool {
        year: year(),
        new_pool: money("1.00"),
        reason: reason("x"),
    })));
    let close = Command::CloseProgrammeYear { year: year() };
    seen.extend(code_of(scenario.when(close.clone())));
    scenario.advance_to(at_date("2027-03-02"));
    let Command::PostInvoice(mut late) = post(1, 1, "C", "10.00") else {
        unreachable!()
    };
    late.issue_date = date("2026-12-31");
    seen.extend(code_of(scenario.when(Command::PostInvoice(late))));
    scenario.when_ok(close);
    seen.extend(code_of(scenario.when(approve(9, 1, 1, "1000.00", "1.00"))));

    let mut crowded = programme();
    crowded.extend(
        (1..=EXPIRY_BATCH_LIMIT as u128 + 1).map(|voucher| small_voucher_approved(voucher, 1, 1)),
    );
    let mut crowded = given(crowded);
    crowded.advance_to(at_date("2027-03-02"));
    seen.extend(code_of(
        crowded.when(Command::CloseProgrammeYear { year: year() }),
    ));

    let mut full = programme();
    full.extend((3..=4_096).map(|index| center_registered(index, FacilityTier::Other)));
    let mut full = given(full);
    seen.extend(code_of(full.when(Command::RegisterCenter {
        center: center(4_097),
        name: name("x"),
        tier: FacilityTier::Other,
        listing_basis: ListingBasis::PlanningLayout,
        capacity: Default::default(),
    })));
    seen
}

/// Runs one scenario per rejection code of programmes as data (issue 13; codes 48 and
/// later); their given/when/then tests are in `tests/programmes.rs`.
fn triggered_programme_codes() -> BTreeSet<RejectionCode> {
    use voucher_ledger::domain::programme::{
        CapacityEligibility, CapacityRequirement, Declarations, Payee, ProgrammeRules,
    };
    let mut seen = BTreeSet::new();
    let rules = |rules: ProgrammeRules| {
        ProgrammePolicy::hangzhou_defaults(year())
            .with_rules(rules)
            .expect("rules")
    };
    // A reimbursement year: an invoice needs the enterprise's proof of payment.
    let mut events = programme();
    events[0] = Event::PolicyPublished {
        policy: Box::new(rules(ProgrammeRules {
            payee: Payee::Enterprise,
            ..ProgrammeRules::default()
        })),
    };
    let mut reimbursement = given(events);
    reimbursement
        .when(approve(1, 1, 1, "1000.00", "1000.00"))
        .expect("approved");
    seen.extend(code_of(reimbursement.when(post(1, 1, "INV-1", "100.00"))));
    let mut events = programme();
    events[0] = Event::PolicyPublished {
        policy: Box::new(rules(ProgrammeRules {
            eligibility: Some(CapacityEligibility {
                min_intelligent_pflops: Some(100),
                min_racks: None,
                require: CapacityRequirement::All,
            }),
            ..ProgrammeRules::default()
        })),
    };
    seen.extend(code_of(
        given(events.clone()).when(approve(1, 1, 1, "1000.00", "1.00")),
    ));
    events[0] = Event::PolicyPublished {
        policy: Box::new(rules(ProgrammeRules {
            required_declarations: Declarations::of(&[
                voucher_ledger::domain::Declaration::SuppliersNotAffiliated,
            ]),
            ..ProgrammeRules::default()
        })),
    };
    seen.extend(code_of(
        given(events).when(approve(1, 1, 1, "1000.00", "1.00")),
    ));
    seen
}

#[test]
fn every_rejection_code_has_a_scenario() {
    let mut seen = triggered_codes();
    seen.extend(triggered_settlement_codes());
    seen.extend(triggered_programme_codes());
    let missing: Vec<&str> = RejectionCode::ALL
        .iter()
        .filter(|code| !RejectionCode::RETIRED.contains(code) && !seen.contains(code))
        .map(|code| code.name())
        .collect();
    assert!(missing.is_empty(), "no scenario triggers {missing:?}");
    let retired: Vec<&str> = RejectionCode::RETIRED
        .iter()
        .filter(|code| seen.contains(code))
        .map(|code| code.name())
        .collect();
    assert!(
        retired.is_empty(),
        "retired codes are still produced: {retired:?}"
    );
}
