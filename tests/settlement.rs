//! Given/when/then tests for the rules of issue 8 (settlement and the money model), over
//! the pure state machine. The first group are regression tests for the money paths that
//! did not close before it. Each test is named for the rule it proves, and each scenario
//! ends by checking every invariant.

mod common;

use common::*;
use voucher_ledger::domain::*;
use voucher_ledger::limits::EXPIRY_BATCH_LIMIT;

// ------------------------------------------------------------------------- fixtures

fn year_2027() -> ProgrammeYear {
    ProgrammeYear::new(2027).expect("year")
}

fn published(policy: ProgrammePolicy) -> Event {
    Event::PolicyPublished {
        policy: Box::new(policy),
    }
}

/// The standard programme plus a published 2027 policy (Hangzhou defaults).
fn programme_with_2027() -> Vec<Event> {
    let mut events = programme();
    events.push(published(ProgrammePolicy::hangzhou_defaults(year_2027())));
    events
}

/// The standard programme with the 2026 pool set to `pool` (the enterprise cap is
/// lowered to the pool where it would be above it).
fn programme_with_pool(pool: &str) -> Vec<Event> {
    let mut events = programme();
    events[0] = policy_published(pool);
    events
}

/// An `ApproveVoucher` command with another programme year and contract term.
fn with_term(command: Command, programme_year: ProgrammeYear, start: &str, end: &str) -> Command {
    let Command::ApproveVoucher(mut approval) = command else {
        panic!("not an approval: {command:?}")
    };
    approval.year = programme_year;
    approval.term_start = date(start);
    approval.term_end = date(end);
    Command::ApproveVoucher(approval)
}

/// An `ApproveVoucher` command with another contract number.
fn with_contract(command: Command, contract: &str) -> Command {
    let Command::ApproveVoucher(mut approval) = command else {
        panic!("not an approval: {command:?}")
    };
    approval.contract_number = ContractNumber::parse(contract).expect("contract");
    Command::ApproveVoucher(approval)
}

/// A `PostInvoice` command with another issue date.
fn issued_on(command: Command, issue_date: &str) -> Command {
    let Command::PostInvoice(mut invoice) = command else {
        panic!("not an invoice: {command:?}")
    };
    invoice.issue_date = date(issue_date);
    Command::PostInvoice(invoice)
}

/// A `PostInvoice` command with an invoice number built otherwise than by `parse`.
fn numbered(command: Command, number: InvoiceNumber) -> Command {
    let Command::PostInvoice(mut invoice) = command else {
        panic!("not an invoice: {command:?}")
    };
    invoice.invoice_number = number;
    Command::PostInvoice(invoice)
}

fn run_id(number: u128) -> SettlementRunId {
    SettlementRunId::from_u128(number)
}

/// A settlement run of 2026.
fn run(number: u128) -> Command {
    run_for(number, year())
}

fn run_for(number: u128, programme_year: ProgrammeYear) -> Command {
    Command::CreateSettlementRun {
        run: run_id(number),
        year: programme_year,
    }
}

fn bank(reference: &str) -> BankReference {
    BankReference::parse(reference).expect("bank reference")
}

fn pay(statement: StatementId, reference: &str, amount: &str, value_date: &str) -> Command {
    Command::ConfirmPayment {
        statement,
        bank_reference: bank(reference),
        amount: money(amount),
        value_date: date(value_date),
    }
}

fn payment_returned(statement: StatementId, reference: &str) -> Command {
    Command::RecordPaymentReturned {
        statement,
        bank_reference: bank(reference),
        reason: reason("beneficiary account closed"),
    }
}

fn repay(center_index: usize, amount: &str, reference: &str, value_date: &str) -> Command {
    repay_for(center_index, year(), amount, reference, value_date)
}

fn repay_for(
    center_index: usize,
    programme_year: ProgrammeYear,
    amount: &str,
    reference: &str,
    value_date: &str,
) -> Command {
    Command::RecordRepayment {
        center: center(center_index),
        year: programme_year,
        amount: money(amount),
        bank_reference: bank(reference),
        value_date: date(value_date),
    }
}

fn close(programme_year: ProgrammeYear) -> Command {
    Command::CloseProgrammeYear {
        year: programme_year,
    }
}

fn adjust_pool(programme_year: ProgrammeYear, new_pool: &str) -> Command {
    Command::AdjustPool {
        year: programme_year,
        new_pool: money(new_pool),
        reason: reason("budget revised by the municipal finance bureau"),
    }
}

fn set_status(center_index: usize, status: CenterStatus) -> Command {
    Command::SetCenterStatus {
        center: center(center_index),
        status,
        reason: reason("programme inspection"),
    }
}

fn run_outcome(reply: Reply) -> RunOutcome {
    match reply {
        Reply::SettlementRunCreated(outcome) => outcome,
        other => panic!("not a settlement run: {other:?}"),
    }
}

fn invoice_outcome(reply: Reply) -> InvoiceOutcome {
    match reply {
        Reply::InvoiceOutcome(outcome) => outcome,
        other => panic!("not an invoice outcome: {other:?}"),
    }
}

fn reversal_outcome(reply: Reply) -> ReversalOutcome {
    match reply {
        Reply::InvoiceReversed(outcome) => outcome,
        other => panic!("not a reversal: {other:?}"),
    }
}

/// The statements among `events`, in order.
fn statements_issued(events: &[Event]) -> Vec<StatementIssued> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::StatementIssued(issued) => Some((**issued).clone()),
            _ => None,
        })
        .collect()
}

/// Runs a 2026 settlement and returns its only statement.
fn settle_one(scenario: &mut Scenario, number: u128) -> StatementId {
    let (reply, _) = scenario.when_ok(run(number));
    let statements = run_outcome(reply).statements;
    assert_eq!(statements.len(), 1, "{statements:?}");
    statements[0]
}

fn statement(scenario: &Scenario, id: StatementId) -> &Statement {
    scenario.state.statement(&id).expect("statement exists")
}

fn voucher(scenario: &Scenario, number: u128) -> &Voucher {
    scenario
        .state
        .voucher(&voucher_id(number))
        .expect("voucher exists")
}

fn outstanding(scenario: &Scenario, center_index: usize, programme_year: ProgrammeYear) -> Money {
    scenario
        .state
        .center_year(&center(center_index), programme_year)
        .map_or(Money::ZERO, CenterYear::outstanding)
}

/// The statement that holds invoice `number` of center `center_index` (2026), if any.
fn settled_in(scenario: &Scenario, center_index: usize, number: &str) -> Option<StatementId> {
    let entry = scenario
        .state
        .invoice(&center(center_index), &invoice_number(number))
        .expect("invoice exists");
    scenario
        .state
        .invoice_settlement(&center(center_index), year(), entry)
        .map(|statement| statement.expect("a statement, not a format-v1 settlement"))
}

/// Every fen of face value approved for a year is held, redeemed, owed back or released.
fn assert_face_value_accounted(scenario: &Scenario, programme_year: ProgrammeYear) {
    let book = scenario.state.year(programme_year).expect("year books");
    assert_eq!(
        book.approved,
        book.usage
            .held
            .plus(book.usage.redeemed)
            .plus(book.usage.receivable)
            .plus(book.released),
        "{book:?}"
    );
}

/// Domestic center 1, enterprise 1: fee 100,000.00, face 30,000.00.
fn with_voucher() -> Scenario {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario
}

// ============================================ regressions: the first list of issue 8

// ---- reversing a settled invoice frees pool and cap only when it is recovered

#[test]
fn reversing_a_settled_invoice_keeps_the_pool_used_until_the_clawback_is_recovered() {
    // A drained pool: 50,000.00, all of it held by two vouchers.
    let mut scenario = given(programme_with_pool("50000.00"));
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(approve(2, 2, 1, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "100000.00")); // subsidy 30,000.00
    let statement = settle_one(&mut scenario, 1);
    scenario.when_ok(pay(statement, "BANK-1", "30000.00", "2026-01-01"));

    let (reply, events) = scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    assert_eq!(
        reversal_outcome(reply),
        ReversalOutcome {
            subsidy: money("30000.00"),
            clawback: true,
            returned_to_voucher: false,
            sequence: events[0].sequence,
        }
    );
    let pool = scenario.state.pool_usage(year());
    assert_eq!(
        (pool.held, pool.redeemed, pool.receivable),
        (money("20000.00"), Money::ZERO, money("30000.00"))
    );
    assert_eq!(pool.used(), money("50000.00"), "the pool is still drained");
    assert_eq!(
        voucher(&scenario, 1).clawback_outstanding,
        money("30000.00")
    );
    // The bureau cannot pay more than the pool: money still out is not approvable.
    scenario.when_rejected(
        approve(3, 2, 2, "1000.00", "0.01"),
        RejectionCode::PoolExhausted,
    );

    let (reply, _) = scenario.when_ok(repay(1, "10000.00", "REPAY-1", "2026-01-01"));
    assert!(
        matches!(reply, Reply::RepaymentRecorded { outstanding, duplicate: false, .. } if outstanding == money("20000.00")),
        "{reply:?}"
    );
    assert_eq!(
        scenario.state.pool_usage(year()).receivable,
        money("20000.00")
    );
    // Exactly what was repaid is free again, not a fen more.
    scenario.when_rejected(
        approve(3, 2, 2, "100000.00", "10000.01"),
        RejectionCode::PoolExhausted,
    );
    scenario.when_ok(approve(3, 2, 2, "100000.00", "10000.00"));
    assert_eq!(scenario.state.pool_usage(year()).used(), money("50000.00"));
    assert_face_value_accounted(&scenario, year());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_clawback_keeps_the_enterprise_cap_used_until_a_later_statement_offsets_it() {
    let mut scenario = given(programme());
    scenario.when_ok(Command::GrantCapOverride {
        enterprise: enterprise(1),
        year: year(),
        cap: money("30000.00"),
        reason: reason("cap set by the programme office"),
    });
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "100000.00")); // 30,000.00
    settle_one(&mut scenario, 1);
    scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    let usage = scenario.state.enterprise_usage(&enterprise(1), year());
    assert_eq!(
        (usage.held, usage.redeemed, usage.receivable),
        (Money::ZERO, Money::ZERO, money("30000.00"))
    );
    let rejection = scenario.when_rejected(
        approve(2, 1, 2, "1000.00", "0.01"),
        RejectionCode::EnterpriseCapExceeded,
    );
    assert!(rejection.detail.contains("30000.00"), "{rejection}");

    // Another enterprise's invoice at the same center: its statement offsets 12,000.00
    // of the center's receivable, which frees that much of enterprise 1's cap.
    scenario.when_ok(approve(3, 2, 1, "100000.00", "30000.00"));
    scenario.when_ok(post(1, 3, "INV-2", "40000.00")); // 12,000.00
    let (reply, events) = scenario.when_ok(run(2));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued[0].gross, issued[0].clawback_offset, issued[0].net),
        (money("12000.00"), money("12000.00"), Money::ZERO)
    );
    let statement_id = run_outcome(reply).statements[0];
    assert_eq!(
        statement(&scenario, statement_id).state,
        StatementState::Paid,
        "nothing to pay: paid at once"
    );
    assert_eq!(outstanding(&scenario, 1, year()), money("18000.00"));
    assert_eq!(
        scenario
            .state
            .enterprise_usage(&enterprise(1), year())
            .receivable,
        money("18000.00")
    );
    scenario.when_rejected(
        approve(2, 1, 2, "100000.00", "12000.01"),
        RejectionCode::EnterpriseCapExceeded,
    );
    scenario.when_ok(approve(2, 1, 2, "100000.00", "12000.00"));
    assert_face_value_accounted(&scenario, year());
    scenario.then_no_invariant_is_broken();
}

// ---- late invoices: term end + grace, decided from the command's time

#[test]
fn an_invoice_issued_on_the_last_day_of_the_term_may_be_posted_until_the_grace_ends() {
    let mut scenario = given(programme());
    let (_, events) = scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    let Event::VoucherApproved(approved) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(approved.term_end, date("2026-12-31"));
    assert_eq!(approved.redemption_window_end, date("2027-03-01"));
    let last_day = |number| issued_on(post(1, 1, number, "1000.00"), "2026-12-31");

    scenario.advance_to(at_date("2027-01-02"));
    let (reply, _) = scenario.when_ok(last_day("INV-1"));
    assert_eq!(invoice_outcome(reply).subsidy, money("300.00"));
    scenario.advance_to(at_date("2027-03-01"));
    scenario.when_ok(last_day("INV-2")); // the last day of the grace, inclusive
    scenario.advance_to(at_date("2027-03-02"));
    let rejection =
        scenario.when_rejected(last_day("INV-3"), RejectionCode::RedemptionWindowClosed);
    assert!(rejection.detail.contains("2027-03-01"), "{rejection}");
    assert_eq!(voucher(&scenario, 1).status, VoucherStatus::Active);
    scenario.then_no_invariant_is_broken();
}

/// Posts three invoices issued on the last day of the term, on 2027-01-02, 2027-03-01
/// and 2027-03-02, optionally running the expiry sweep before each; returns each post's
/// subsidy, or the code it was refused with.
fn late_postings(sweep_before_each: bool) -> Vec<Result<Money, RejectionCode>> {
    let mut scenario = with_voucher();
    let mut outcomes = Vec::new();
    for (day, number) in [
        ("2027-01-02", "INV-1"),
        ("2027-03-01", "INV-2"),
        ("2027-03-02", "INV-3"),
    ] {
        scenario.advance_to(at_date(day));
        if sweep_before_each {
            scenario.when_ok(Command::ExpireVouchers);
        }
        let command = issued_on(post(1, 1, number, "1000.00"), "2026-12-31");
        outcomes.push(
            scenario
                .when(command)
                .map(|(reply, _)| invoice_outcome(reply).subsidy)
                .map_err(|rejection| rejection.code),
        );
    }
    scenario.then_no_invariant_is_broken();
    outcomes
}

#[test]
fn whether_a_late_invoice_is_accepted_does_not_depend_on_when_the_sweep_ran() {
    let without_sweep = late_postings(false);
    let with_sweep = late_postings(true);
    let accepted = Ok(money("300.00"));
    assert_eq!(&without_sweep[..2], &[accepted, accepted]);
    assert_eq!(&with_sweep[..2], &[accepted, accepted]);
    // After the grace both are refused: by the window, or because the sweep released it.
    assert_eq!(without_sweep[2], Err(RejectionCode::RedemptionWindowClosed));
    assert_eq!(with_sweep[2], Err(RejectionCode::VoucherNotActive));
}

#[test]
fn the_expiry_sweep_releases_nothing_inside_the_grace() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    for day in ["2027-01-01", "2027-02-15", "2027-03-01"] {
        scenario.advance_to(at_date(day));
        let (reply, events) = scenario.when_ok(Command::ExpireVouchers);
        assert!(events.is_empty(), "{day}: {events:?}");
        assert!(
            matches!(
                reply,
                Reply::VouchersExpired {
                    released_vouchers: 0,
                    ..
                }
            ),
            "{reply:?}"
        );
    }
    assert_eq!(
        scenario.state.pool_usage(year()).held,
        money("29700.00"),
        "the hold stays for late invoices"
    );
    scenario.advance_to(at_date("2027-03-02"));
    let (reply, events) = scenario.when_ok(Command::ExpireVouchers);
    assert_eq!(
        events,
        vec![Event::VoucherReleased {
            voucher: voucher_id(1),
            cause: ReleaseCause::Expired,
            released: money("29700.00"),
            reason: None,
        }]
    );
    assert!(matches!(
        reply,
        Reply::VouchersExpired {
            released_vouchers: 1,
            ..
        }
    ));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn the_redemption_grace_comes_from_the_policy() {
    assert_eq!(
        ProgrammePolicy::hangzhou_defaults(year()).redemption_grace_days(),
        60
    );
    let error = ProgrammePolicy::hangzhou_defaults(year())
        .with_redemption_grace_days(367)
        .expect_err("more than a year of grace");
    assert_eq!(error.field, "redemption_grace_days");

    for (grace, window_end, last_accepted, first_refused) in [
        (10, "2027-01-10", "2027-01-10", "2027-01-11"),
        (0, "2026-12-31", "2026-12-31", "2027-01-01"),
    ] {
        let policy = ProgrammePolicy::hangzhou_defaults(year())
            .with_redemption_grace_days(grace)
            .expect("grace");
        let mut events = programme();
        events[0] = published(policy);
        let mut scenario = given(events);
        let (_, events) = scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
        let Event::VoucherApproved(approved) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(approved.redemption_window_end, date(window_end), "{grace}");
        scenario.advance_to(at_date(last_accepted));
        scenario.when_ok(issued_on(post(1, 1, "INV-1", "100.00"), "2026-12-31"));
        scenario.advance_to(at_date(first_refused));
        scenario.when_rejected(
            issued_on(post(1, 1, "INV-2", "100.00"), "2026-12-31"),
            RejectionCode::RedemptionWindowClosed,
        );
        scenario.then_no_invariant_is_broken();
    }
}

// ---- programme year: the year the term starts in; a closed year is closed

#[test]
fn a_voucher_belongs_to_the_programme_year_its_term_starts_in() {
    let mut scenario = given(programme_with_2027());
    let approval = || approve(1, 1, 1, "100000.00", "30000.00");
    let rejection = scenario.when_rejected(
        with_term(approval(), year(), "2025-12-15", "2026-06-30"),
        RejectionCode::VoucherYearMismatch,
    );
    assert!(rejection.detail.contains("2025"), "{rejection}");
    scenario.when_rejected(
        with_term(approval(), year(), "2027-01-01", "2027-06-30"),
        RejectionCode::VoucherYearMismatch,
    );
    // The same year's compute may not take the next year's cap as well.
    scenario.when_rejected(
        with_term(approval(), year_2027(), "2026-03-01", "2027-02-28"),
        RejectionCode::VoucherYearMismatch,
    );

    // A term that starts on the last day of 2026 belongs to 2026, and so do its invoices.
    scenario.when_ok(with_term(approval(), year(), "2026-12-31", "2027-12-30"));
    scenario.when_ok(issued_on(post(1, 1, "INV-1", "1000.00"), "2027-06-30"));
    assert_eq!(scenario.state.pool_usage(year()).redeemed, money("300.00"));
    assert_eq!(scenario.state.pool_usage(year_2027()).used(), Money::ZERO);
    assert_eq!(
        scenario
            .state
            .center_year(&center(1), year())
            .expect("2026 books")
            .unsettled,
        money("300.00")
    );
    scenario.when_ok(with_term(
        approve(2, 1, 1, "100000.00", "30000.00"),
        year_2027(),
        "2027-01-01",
        "2027-12-31",
    ));
    assert_eq!(
        scenario.state.pool_usage(year_2027()).held,
        money("30000.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_closed_year_refuses_approvals_invoices_and_reversals() {
    let mut scenario = given(programme_with_2027());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    settle_one(&mut scenario, 1);
    scenario.when_ok(post(1, 1, "INV-2", "1000.00")); // not settled
    scenario.advance_to(at_date("2027-03-02"));
    let (_, events) = scenario.when_ok(close(year()));
    assert_eq!(
        events,
        vec![
            Event::VoucherReleased {
                voucher: voucher_id(1),
                cause: ReleaseCause::Expired,
                released: money("29400.00"),
                reason: None,
            },
            Event::ProgrammeYearClosed { year: year() },
        ]
    );
    assert!(scenario.state.year_closed(year()));

    scenario.when_rejected(
        approve(2, 2, 1, "1000.00", "300.00"),
        RejectionCode::YearClosed,
    );
    scenario.when_rejected(
        issued_on(post(1, 1, "INV-3", "10.00"), "2026-12-31"),
        RejectionCode::YearClosed,
    );
    scenario.when_rejected_as(bureau(), reverse(1, "INV-1"), RejectionCode::YearClosed);
    scenario.when_rejected_as(bureau(), reverse(1, "INV-2"), RejectionCode::YearClosed);
    scenario.when_rejected(
        Command::CancelVoucher {
            voucher: voucher_id(1),
            reason: reason("late"),
        },
        RejectionCode::YearClosed,
    );
    scenario.when_rejected(
        Command::GrantCapOverride {
            enterprise: enterprise(1),
            year: year(),
            cap: money("9000000.00"),
            reason: reason("late"),
        },
        RejectionCode::YearClosed,
    );
    scenario.when_rejected(
        adjust_pool(year(), "300000000.00"),
        RejectionCode::YearClosed,
    );

    // Retries still get their original answers; they change nothing.
    let (reply, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    assert!(events.is_empty());
    assert!(invoice_outcome(reply).duplicate);
    let (reply, events) = scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    assert!(events.is_empty());
    assert!(matches!(
        reply,
        Reply::VoucherApproved {
            duplicate: true,
            ..
        }
    ));

    // The next year is open.
    scenario.when_ok(with_term(
        approve(3, 1, 1, "100000.00", "30000.00"),
        year_2027(),
        "2027-03-02",
        "2028-03-01",
    ));
    scenario.then_no_invariant_is_broken();
}

// ---- a retry of a reversed invoice

#[test]
fn a_retry_of_a_reversed_invoice_answers_reversed_with_no_subsidy_standing() {
    let mut scenario = with_voucher();
    let (first, _) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let first = invoice_outcome(first);
    scenario.when_ok(reverse(1, "INV-1"));
    let before = scenario.state.clone();
    let (again, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    assert!(events.is_empty());
    assert_eq!(
        invoice_outcome(again),
        InvoiceOutcome {
            subsidy: Money::ZERO,
            sequence: first.sequence,
            duplicate: true,
            reversed: true,
        }
    );
    assert_eq!(scenario.state, before);
    scenario.when_rejected(
        post(1, 1, "INV-1", "999.00"),
        RejectionCode::InvoiceConflict,
    );

    // The same after a clawback.
    let (first, _) = scenario.when_ok(post(1, 1, "INV-2", "2000.00"));
    let first = invoice_outcome(first);
    settle_one(&mut scenario, 1);
    scenario.when_ok_as(bureau(), reverse(1, "INV-2"));
    let (again, events) = scenario.when_ok(post(1, 1, "INV-2", "2000.00"));
    assert!(events.is_empty());
    assert_eq!(
        invoice_outcome(again),
        InvoiceOutcome {
            subsidy: Money::ZERO,
            sequence: first.sequence,
            duplicate: true,
            reversed: true,
        }
    );
    scenario.then_no_invariant_is_broken();
}

// ---- identifiers in canonical form

#[test]
fn contract_numbers_are_one_contract_in_every_spelling() {
    let mut scenario = given(programme());
    let contract = |voucher, center_index, number| {
        with_contract(
            approve(voucher, 1, center_index, "1000.00", "200.00"),
            number,
        )
    };
    scenario.when_ok(contract(1, 1, "HT-001"));
    for (voucher, spelling) in [(2, "ht-001"), (3, "ＨＴ－００１"), (4, "Ｈｔ-００1")] {
        let rejection = scenario.when_rejected(
            contract(voucher, 1, spelling),
            RejectionCode::ContractAlreadyHasVoucher,
        );
        assert!(
            rejection.detail.contains(&voucher_id(1).to_string()),
            "{rejection}"
        );
    }
    let lookup = ContractNumber::parse("hT-001").expect("contract");
    assert_eq!(
        scenario.state.voucher_for_contract(&center(1), &lookup),
        Some(voucher_id(1))
    );
    assert_eq!(
        voucher(&scenario, 1).terms.contract_number.as_typed(),
        "HT-001"
    );
    // Unique per center: another center may have its own HT-001. As typed is kept.
    scenario.when_ok(contract(5, 2, "ＨＴ－００１"));
    let number = &voucher(&scenario, 5).terms.contract_number;
    assert_eq!(
        (
            number.as_typed(),
            number.as_str(),
            number.to_string().as_str()
        ),
        ("ＨＴ－００１", "HT-001", "ＨＴ－００１")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn invoice_numbers_are_one_invoice_in_every_spelling() {
    let mut scenario = with_voucher();
    let (first, events) = scenario.when_ok(post(1, 1, "inv-777", "1000.00"));
    let first = invoice_outcome(first);
    let Event::InvoiceRedeemed(redeemed) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            redeemed.invoice_number.as_typed(),
            redeemed.invoice_number.as_str()
        ),
        ("inv-777", "INV-777")
    );
    for spelling in ["INV-777", "ｉｎｖ－７７７", "Inv-777"] {
        let (again, events) = scenario.when_ok(post(1, 1, spelling, "1000.00"));
        assert!(events.is_empty(), "{spelling}");
        let again = invoice_outcome(again);
        assert!(again.duplicate, "{spelling}");
        assert_eq!(again.sequence, first.sequence, "{spelling}");
    }
    scenario.when_rejected(
        post(1, 1, "ＩＮＶ－７７７", "2000.00"),
        RejectionCode::InvoiceConflict,
    );
    assert_eq!(voucher(&scenario, 1).invoice_count, 1);
    scenario.when_ok(reverse(1, "ｉｎｖ－７７７"));
    assert!(scenario
        .state
        .invoice(&center(1), &invoice_number("INV-777"))
        .expect("invoice")
        .is_reversed());
    scenario.when_rejected(reverse(1, "Inv-777"), RejectionCode::InvoiceAlreadyReversed);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn invisible_format_and_bidi_characters_are_refused_at_parse() {
    for text in [
        "HT-001\u{200B}",
        "HT\u{200D}-001",
        "\u{FEFF}HT-001",
        "HT-001\u{2060}",
        "HT-\u{202E}100",
        "HT-\u{2066}001\u{2069}",
        "HT-001\u{00AD}",
    ] {
        let contract = ContractNumber::parse(text).expect_err(text);
        assert_eq!(contract.field, "contract_number", "{text:?}");
        assert!(contract.reason.contains("U+"), "{contract}");
        let invoice = InvoiceNumber::parse(text).expect_err(text);
        assert_eq!(invoice.field, "invoice_number", "{text:?}");
        let reference = BankReference::parse(text).expect_err(text);
        assert_eq!(reference.field, "bank_reference", "{text:?}");
    }
    for text in [" HT-001", "HT-001 ", "ＨＴ－００１\u{3000}"] {
        assert!(ContractNumber::parse(text).is_err(), "{text:?}");
        assert!(InvoiceNumber::parse(text).is_err(), "{text:?}");
    }
}

// ---- delisting releases holds at once; suspension keeps them

#[test]
fn delisting_releases_every_hold_of_the_center_at_once_one_event_each() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(approve(2, 2, 1, "10000.00", "3000.00"));
    scenario.when_ok(approve(3, 1, 1, "10000.00", "3000.00"));
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(3),
        reason: reason("contract terminated"),
    });
    scenario.when_ok(approve(4, 2, 2, "10000.00", "2000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00")); // 300.00
    scenario.when_ok(set_status(1, CenterStatus::Suspended));

    let (reply, events) = scenario.when_ok(set_status(1, CenterStatus::Delisted));
    assert_eq!(
        events,
        vec![
            Event::CenterStatusChanged {
                center: center(1),
                from: CenterStatus::Suspended,
                to: CenterStatus::Delisted,
                reason: reason("programme inspection"),
            },
            Event::VoucherReleased {
                voucher: voucher_id(1),
                cause: ReleaseCause::Delisted,
                released: money("29700.00"),
                reason: Some(reason("programme inspection")),
            },
            Event::VoucherReleased {
                voucher: voucher_id(2),
                cause: ReleaseCause::Delisted,
                released: money("3000.00"),
                reason: Some(reason("programme inspection")),
            },
        ]
    );
    assert_eq!(
        reply,
        Reply::CenterStatusChanged {
            released_vouchers: 2,
            released: money("32700.00"),
            sequence: scenario.state.last_sequence(),
        }
    );
    let pool = scenario.state.pool_usage(year());
    assert_eq!(
        (pool.held, pool.redeemed),
        (money("2000.00"), money("300.00")),
        "only center 2's voucher still holds"
    );
    assert_eq!(
        scenario
            .state
            .enterprise_usage(&enterprise(1), year())
            .used(),
        money("300.00")
    );
    assert_eq!(voucher(&scenario, 1).status, VoucherStatus::Withdrawn);
    assert_eq!(voucher(&scenario, 2).status, VoucherStatus::Withdrawn);
    assert_eq!(voucher(&scenario, 3).status, VoucherStatus::Cancelled);
    assert_eq!(voucher(&scenario, 4).status, VoucherStatus::Active);

    // What the center invoiced before it was delisted is still settled and paid.
    scenario.when_rejected(post(1, 1, "INV-2", "10.00"), RejectionCode::CenterNotActive);
    let (reply, events) = scenario.when_ok(run(1));
    let issued = statements_issued(&events);
    assert_eq!(issued.len(), 1);
    assert_eq!(
        (issued[0].center, issued[0].invoices, issued[0].net),
        (center(1), 1, money("300.00"))
    );
    let statement_id = run_outcome(reply).statements[0];
    scenario.when_ok(pay(statement_id, "BANK-1", "300.00", "2026-01-01"));
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        money("300.00")
    );
    assert_face_value_accounted(&scenario, year());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn suspension_keeps_the_holds_and_invoices_before_it_are_still_settled() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let (reply, events) = scenario.when_ok(set_status(1, CenterStatus::Suspended));
    assert_eq!(events.len(), 1, "no release: {events:?}");
    assert!(matches!(
        reply,
        Reply::CenterStatusChanged {
            released_vouchers: 0,
            ..
        }
    ));
    assert_eq!(scenario.state.pool_usage(year()).held, money("29700.00"));
    assert_eq!(voucher(&scenario, 1).status, VoucherStatus::Active);
    scenario.when_rejected(post(1, 1, "INV-2", "10.00"), RejectionCode::CenterNotActive);

    let (_, events) = scenario.when_ok(run(1));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued.len(), issued[0].center, issued[0].net),
        (1, center(1), money("300.00"))
    );
    // Reinstated, it redeems against the hold it kept.
    scenario.when_ok(set_status(1, CenterStatus::Active));
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-2", "10.00"));
    assert_eq!(invoice_outcome(reply).subsidy, money("3.00"));
    scenario.then_no_invariant_is_broken();
}

// ---- ApproveVoucher retries

#[test]
fn an_approval_retried_with_the_same_id_and_content_answers_the_original() {
    // The pool is exactly one voucher: a retry must not be refused as exhausted.
    let mut scenario = given(programme_with_pool("30000.00"));
    let (first, events) = scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    assert_eq!(
        first,
        Reply::VoucherApproved {
            voucher: voucher_id(1),
            face_value: money("30000.00"),
            sequence: scenario.state.last_sequence(),
            duplicate: false,
        }
    );
    assert_eq!(events.len(), 1);
    let before = scenario.state.clone();
    let (again, events) = scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    assert!(events.is_empty());
    let Reply::VoucherApproved { sequence, .. } = first else {
        unreachable!()
    };
    assert_eq!(
        again,
        Reply::VoucherApproved {
            voucher: voucher_id(1),
            face_value: money("30000.00"),
            sequence,
            duplicate: true,
        }
    );
    // From another principal, with a request id: still the original answer.
    let (again, events) = scenario.when_ok_as(
        origin(PrincipalRole::Bureau, "li.na", Some("retry-7")),
        approve(1, 1, 1, "100000.00", "30000.00"),
    );
    assert!(events.is_empty());
    assert!(
        matches!(again, Reply::VoucherApproved { duplicate: true, sequence: s, .. } if s == sequence)
    );
    assert_eq!(scenario.state, before);

    for other in [
        approve(1, 1, 1, "100000.00", "29999.99"),
        approve(1, 2, 1, "100000.00", "30000.00"),
        approve(1, 1, 2, "100000.00", "30000.00"),
        with_term(
            approve(1, 1, 1, "100000.00", "30000.00"),
            year(),
            "2026-02-01",
            "2026-12-31",
        ),
    ] {
        scenario.when_rejected(other, RejectionCode::VoucherAlreadyExists);
    }
    scenario.then_no_invariant_is_broken();
}

// ---- every event records its origin

#[test]
fn every_event_records_the_principal_and_request_id_of_its_command() {
    let mut scenario = given(programme());
    let approver = origin(
        PrincipalRole::Bureau,
        "zhang.wei@finance",
        Some("req-approve-0001"),
    );
    let (reply, events) =
        scenario.when_ok_as(approver.clone(), approve(1, 1, 1, "100000.00", "30000.00"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].origin, approver);
    assert_eq!(events[0].sequence, reply.last_sequence());
    assert_eq!(events[0].at, scenario.now());
    assert!(matches!(events[0].event, Event::VoucherApproved(_)));

    let raiser = origin(PrincipalRole::Bureau, "wang.fang@finance", None);
    let (_, events) = scenario.when_ok_as(
        raiser.clone(),
        Command::GrantCapOverride {
            enterprise: enterprise(1),
            year: year(),
            cap: money("12000000.00"),
            reason: reason("generative multimodal foundation model"),
        },
    );
    assert_eq!(events[0].origin.principal.role, PrincipalRole::Bureau);
    assert_eq!(events[0].origin.principal.name(), "wang.fang@finance");
    assert_eq!(events[0].origin.request_id, None);

    let poster = origin(PrincipalRole::Center, "center-1", Some("inv-batch-9"));
    let (_, events) = scenario.when_ok_as(poster.clone(), post(1, 1, "INV-1", "1000.00"));
    assert_eq!(events[0].origin, poster);

    // Every event of a multi-event command carries the command's origin.
    let settler = origin(PrincipalRole::Bureau, "finance-bureau", Some("run-2026-q1"));
    let (reply, events) = scenario.when_ok_as(settler.clone(), run(1));
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|event| event.origin == settler));
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(
        sequences,
        vec![reply.last_sequence() - 1, reply.last_sequence()]
    );

    let reverser = origin(PrincipalRole::Bureau, "audit.desk", Some("rev-1"));
    let (_, events) = scenario.when_ok_as(reverser.clone(), reverse(1, "INV-1"));
    assert_eq!(events[0].origin, reverser);
    assert_eq!(events[0].origin.principal.to_string(), "bureau:audit.desk");

    // A command from an operator's tool records the system principal.
    let mut sink = Vec::new();
    let at = Timestamp(scenario.now().0 + 1_000);
    scenario
        .state
        .execute(
            &Envelope::new(
                at,
                Command::ConfirmClock {
                    reason: reason("clock checked against NTP"),
                },
            ),
            &mut sink,
        )
        .expect("accepted");
    assert_eq!(sink.len(), 1);
    assert_eq!(sink[0].origin, Origin::system("operator tool"));
    assert_eq!(sink[0].origin.principal.role, PrincipalRole::System);
    assert!(matches!(sink[0].event, Event::ClockConfirmed { .. }));
    scenario.then_no_invariant_is_broken();
}

// ====================================================================== money model

#[test]
fn a_clawback_is_offset_only_against_a_statement_of_the_same_programme_year() {
    let mut scenario = given(programme_with_2027());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(with_term(
        approve(2, 1, 1, "100000.00", "30000.00"),
        year_2027(),
        "2027-01-01",
        "2027-12-31",
    ));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00")); // 300.00 of 2026
    settle_one(&mut scenario, 1);
    scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    assert_eq!(outstanding(&scenario, 1, year()), money("300.00"));

    scenario.when_ok(issued_on(post(1, 2, "INV-2", "1000.00"), "2027-02-01")); // 2027
    let (_, events) = scenario.when_ok(run_for(2, year_2027()));
    let issued = statements_issued(&events);
    assert_eq!(
        (
            issued[0].year,
            issued[0].gross,
            issued[0].clawback_offset,
            issued[0].net
        ),
        (year_2027(), money("300.00"), Money::ZERO, money("300.00"))
    );
    assert_eq!(outstanding(&scenario, 1, year()), money("300.00"));

    scenario.when_ok(post(1, 1, "INV-3", "2000.00")); // 600.00 of 2026
    let (_, events) = scenario.when_ok(run(3));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued[0].gross, issued[0].clawback_offset, issued[0].net),
        (money("600.00"), money("300.00"), money("300.00"))
    );
    assert_eq!(outstanding(&scenario, 1, year()), Money::ZERO);
    let book = scenario.state.year(year()).expect("books");
    assert_eq!(
        (book.clawed_back, book.offset, book.repaid),
        (money("300.00"), money("300.00"), Money::ZERO)
    );
    assert_eq!(voucher(&scenario, 1).clawback_outstanding, Money::ZERO);
    assert_face_value_accounted(&scenario, year());
    assert_face_value_accounted(&scenario, year_2027());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_negative_net_is_never_paid_but_carried_forward_as_a_receivable() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "10000.00")); // 3,000.00
    let first = settle_one(&mut scenario, 1);
    scenario.when_ok(pay(first, "BANK-1", "3000.00", "2026-01-01"));
    scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    scenario.when_ok(post(1, 1, "INV-2", "2000.00")); // 600.00

    let (reply, events) = scenario.when_ok(run(2));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued[0].gross, issued[0].clawback_offset, issued[0].net),
        (money("600.00"), money("600.00"), Money::ZERO)
    );
    let zero = run_outcome(reply).statements[0];
    assert_eq!(statement(&scenario, zero).state, StatementState::Paid);
    assert!(statement(&scenario, zero).payments.is_empty());
    assert_eq!(outstanding(&scenario, 1, year()), money("2400.00"));
    assert_eq!(scenario.state.center_amount_due(&center(1)), Money::ZERO);
    scenario.when_rejected(
        pay(zero, "BANK-0", "0.00", "2026-01-01"),
        RejectionCode::StatementAlreadyPaid,
    );

    scenario.when_ok(post(1, 1, "INV-3", "10000.00")); // 3,000.00
    let (_, events) = scenario.when_ok(run(3));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued[0].gross, issued[0].clawback_offset, issued[0].net),
        (money("3000.00"), money("2400.00"), money("600.00"))
    );
    assert_eq!(outstanding(&scenario, 1, year()), Money::ZERO);
    assert_eq!(
        scenario.state.center_amount_due(&center(1)),
        money("600.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn repayments_recover_receivables_oldest_first_and_free_cap_and_pool_only_then() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(approve(2, 2, 1, "100000.00", "30000.00"));
    scenario.when_ok(post(1, 1, "INV-A", "1000.00")); // 300.00, enterprise 1
    scenario.when_ok(post(1, 2, "INV-B", "500.00")); // 150.00, enterprise 2
    settle_one(&mut scenario, 1);
    scenario.when_ok_as(bureau(), reverse(1, "INV-A"));
    scenario.when_ok_as(bureau(), reverse(1, "INV-B"));
    let receivable = |scenario: &Scenario, index| {
        scenario
            .state
            .enterprise_usage(&enterprise(index), year())
            .receivable
    };
    assert_eq!(outstanding(&scenario, 1, year()), money("450.00"));
    assert_eq!(
        scenario
            .state
            .enterprise_usage(&enterprise(1), year())
            .used(),
        money("30000.00"),
        "held 29,700.00 + owed back 300.00"
    );

    scenario.when_rejected(
        repay(1, "450.01", "REPAY-X", "2026-01-01"),
        RejectionCode::RepaymentExceedsReceivable,
    );
    scenario.when_rejected(
        repay(1, "0.00", "REPAY-X", "2026-01-01"),
        RejectionCode::RepaymentExceedsReceivable,
    );
    scenario.when_rejected(
        repay(2, "1.00", "REPAY-X", "2026-01-01"),
        RejectionCode::RepaymentExceedsReceivable,
    );
    scenario.when_rejected(
        repay(1, "1.00", "REPAY-X", "2026-01-02"),
        RejectionCode::ValueDateInvalid,
    );

    let (reply, events) = scenario.when_ok(repay(1, "100.00", "REPAY-1", "2026-01-01"));
    let first_sequence = reply.last_sequence();
    assert_eq!(
        events,
        vec![Event::RepaymentRecorded {
            center: center(1),
            year: year(),
            amount: money("100.00"),
            bank_reference: bank("REPAY-1"),
            value_date: date("2026-01-01"),
            source: FundingSource::Primary,
        }]
    );
    assert_eq!(
        (receivable(&scenario, 1), receivable(&scenario, 2)),
        (money("200.00"), money("150.00")),
        "the oldest clawback is recovered first"
    );
    assert_eq!(voucher(&scenario, 1).clawback_outstanding, money("200.00"));
    assert_eq!(voucher(&scenario, 1).released, money("100.00"));
    assert_eq!(
        scenario.state.pool_usage(year()).receivable,
        money("350.00")
    );

    let (reply, _) = scenario.when_ok(repay(1, "250.00", "REPAY-2", "2026-01-01"));
    assert!(
        matches!(reply, Reply::RepaymentRecorded { outstanding, .. } if outstanding == money("100.00")),
        "{reply:?}"
    );
    assert_eq!(
        (receivable(&scenario, 1), receivable(&scenario, 2)),
        (Money::ZERO, money("100.00"))
    );
    let books = scenario
        .state
        .center_year(&center(1), year())
        .expect("books");
    assert_eq!(books.receivables.len(), 1);
    assert_eq!(books.receivables[0].enterprise, enterprise(2));

    // A repayment retried with its bank reference answers the original.
    let before = scenario.state.clone();
    let (reply, events) = scenario.when_ok(repay(1, "100.00", "repay-1", "2026-01-01"));
    assert!(events.is_empty());
    assert!(
        matches!(reply, Reply::RepaymentRecorded { duplicate: true, sequence, .. } if sequence == first_sequence),
        "{reply:?}"
    );
    assert_eq!(scenario.state, before);
    scenario.when_rejected(
        repay(1, "50.00", "REPAY-1", "2026-01-01"),
        RejectionCode::BankReferenceReused,
    );

    scenario.when_ok(repay(1, "100.00", "REPAY-3", "2026-01-01"));
    assert_eq!(outstanding(&scenario, 1, year()), Money::ZERO);
    assert_eq!(receivable(&scenario, 2), Money::ZERO);
    assert_eq!(
        scenario
            .state
            .enterprise_usage(&enterprise(1), year())
            .used(),
        money("29700.00")
    );
    let book = scenario.state.year(year()).expect("books");
    assert_eq!((book.repaid, book.offset), (money("450.00"), Money::ZERO));
    assert_face_value_accounted(&scenario, year());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn outstanding_receivables_are_visible_per_center_and_per_year() {
    let mut scenario = given(programme_with_2027());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(with_term(
        approve(3, 1, 1, "100000.00", "30000.00"),
        year_2027(),
        "2027-01-01",
        "2027-12-31",
    ));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00")); // 300.00, center 1, 2026
    scenario.when_ok(post(2, 2, "INV-2", "1000.00")); // 200.00, center 2, 2026
    scenario.when_ok(issued_on(post(1, 3, "INV-3", "500.00"), "2027-01-15")); // 150.00
    scenario.when_ok(run(1));
    scenario.when_ok(run_for(2, year_2027()));
    for (center_index, number) in [(1, "INV-1"), (2, "INV-2"), (1, "INV-3")] {
        scenario.when_ok_as(bureau(), reverse(center_index, number));
    }
    assert_eq!(outstanding(&scenario, 1, year()), money("300.00"));
    assert_eq!(outstanding(&scenario, 1, year_2027()), money("150.00"));
    assert_eq!(outstanding(&scenario, 2, year()), money("200.00"));
    assert_eq!(outstanding(&scenario, 2, year_2027()), Money::ZERO);
    assert_eq!(
        scenario.state.center_outstanding(&center(1)),
        money("450.00")
    );
    assert_eq!(
        scenario.state.center_outstanding(&center(2)),
        money("200.00")
    );
    let by_year: Vec<(ProgrammeYear, Money)> = scenario
        .state
        .center_years_of(&center(1))
        .map(|(programme_year, books)| (programme_year, books.outstanding()))
        .collect();
    assert_eq!(
        by_year,
        vec![(year(), money("300.00")), (year_2027(), money("150.00"))]
    );
    let year_outstanding = |programme_year| {
        scenario
            .state
            .year(programme_year)
            .expect("books")
            .outstanding()
    };
    assert_eq!(year_outstanding(year()), money("500.00"));
    assert_eq!(year_outstanding(year_2027()), money("150.00"));
    // Repaid per year: a 2027 repayment does not touch 2026.
    scenario.when_ok(repay_for(
        1,
        year_2027(),
        "150.00",
        "REPAY-27",
        "2026-01-01",
    ));
    assert_eq!(outstanding(&scenario, 1, year_2027()), Money::ZERO);
    assert_eq!(outstanding(&scenario, 1, year()), money("300.00"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_fully_digital_number_and_a_code_plus_number_pair_both_validate() {
    let digital = InvoiceNumber::parse("25332000000012345678").expect("20-digit 数电票 number");
    assert_eq!(digital.as_str(), "25332000000012345678");
    let paper =
        InvoiceNumber::from_code_and_number("3300194130", "12345678").expect("10-digit code");
    assert_eq!(paper.as_str(), "3300194130-12345678");
    let electronic =
        InvoiceNumber::from_code_and_number("033001900111", "00012345").expect("12-digit code");
    assert_eq!(electronic.as_str(), "033001900111-00012345");
    for (code, number, field) in [
        ("33001941301", "12345678", "invoice_code"),
        ("330019413", "12345678", "invoice_code"),
        ("33001941AB", "12345678", "invoice_code"),
        ("", "12345678", "invoice_code"),
        ("3300194130", "1234567", "invoice_number"),
        ("3300194130", "123456789", "invoice_number"),
        ("3300194130", "1234567X", "invoice_number"),
    ] {
        let error = InvoiceNumber::from_code_and_number(code, number).expect_err(code);
        assert_eq!(error.field, field, "{code} {number}");
    }

    let mut scenario = with_voucher();
    for number in [digital, paper.clone(), electronic] {
        let (reply, _) = scenario.when_ok(numbered(post(1, 1, "X", "1000.00"), number));
        assert!(!invoice_outcome(reply).duplicate);
    }
    assert_eq!(voucher(&scenario, 1).invoice_count, 3);
    let (reply, events) = scenario.when_ok(numbered(post(1, 1, "X", "1000.00"), paper));
    assert!(events.is_empty());
    assert!(invoice_outcome(reply).duplicate);
    scenario.then_no_invariant_is_broken();
}

// ======================================================================= settlement

#[test]
fn a_settlement_run_cuts_off_at_its_own_event() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    scenario.when_ok(post(1, 1, "INV-2", "2000.00"));
    let before_run = scenario.state.last_sequence();
    let (reply, events) = scenario.when_ok(run(1));
    let first = run_outcome(reply);
    assert_eq!(first.cutoff, before_run + 1);
    assert_eq!(first.statements, vec![StatementId(before_run + 2)]);
    assert_eq!(first.sequence, before_run + 2);
    assert!(!first.duplicate);
    assert_eq!(
        events,
        vec![
            Event::SettlementRunCreated {
                run: run_id(1),
                year: year(),
            },
            Event::StatementIssued(Box::new(StatementIssued {
                run: run_id(1),
                center: center(1),
                year: year(),
                cutoff: first.cutoff,
                invoices: 2,
                gross: money("900.00"),
                clawback_offset: Money::ZERO,
                net: money("900.00"),
                source: FundingSource::Primary,
            })),
        ]
    );
    scenario.when_ok(post(1, 1, "INV-3", "100.00"));
    let (reply, _) = scenario.when_ok(run(2));
    let second = run_outcome(reply);
    let later = statement(&scenario, second.statements[0]);
    assert_eq!(
        (
            later.previous_cutoff,
            later.cutoff,
            later.invoices,
            later.gross
        ),
        (first.cutoff, second.cutoff, 1, money("30.00"))
    );
    scenario.when_ok(post(1, 1, "INV-4", "100.00"));
    assert_eq!(settled_in(&scenario, 1, "INV-1"), Some(first.statements[0]));
    assert_eq!(settled_in(&scenario, 1, "INV-2"), Some(first.statements[0]));
    assert_eq!(
        settled_in(&scenario, 1, "INV-3"),
        Some(second.statements[0])
    );
    assert_eq!(settled_in(&scenario, 1, "INV-4"), None);
    assert_eq!(
        scenario.state.run(&run_id(1)).expect("run").statements,
        first.statements
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_run_issues_one_statement_per_center_with_anything_to_settle() {
    let mut events = programme();
    events.push(center_registered(3, FacilityTier::Other));
    events.push(center_registered(4, FacilityTier::Other));
    let mut scenario = given(events);
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(approve(3, 1, 3, "100000.00", "20000.00"));
    scenario.when_ok(approve(4, 2, 4, "100000.00", "20000.00")); // never invoiced
    scenario.when_ok(post(2, 2, "INV-1", "1000.00")); // 200.00
    scenario.when_ok(post(1, 1, "INV-1", "1000.00")); // 300.00
    scenario.when_ok(post(1, 1, "INV-2", "2000.00")); // 600.00
    scenario.when_ok(post(3, 3, "INV-9", "1000.00"));
    scenario.when_ok(reverse(3, "INV-9")); // nothing left to settle at center 3

    let (reply, events) = scenario.when_ok(run(1));
    let summary: Vec<(Uscc, u64, Money, Money)> = statements_issued(&events)
        .iter()
        .map(|issued| (issued.center, issued.invoices, issued.gross, issued.net))
        .collect();
    assert_eq!(
        summary,
        vec![
            (center(1), 2, money("900.00"), money("900.00")),
            (center(2), 1, money("200.00"), money("200.00")),
        ],
        "in USCC order, none for centers 3 and 4"
    );
    let outcome = run_outcome(reply);
    assert_eq!(outcome.statements.len(), 2);
    assert_eq!(
        scenario.state.center_amount_due(&center(1)),
        money("900.00")
    );
    assert_eq!(scenario.state.center_amount_due(&center(3)), Money::ZERO);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn every_redemption_is_settled_in_exactly_one_statement_across_runs() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "1000000.00", "300000.00"));
    scenario.when_ok(approve(2, 2, 2, "1000000.00", "200000.00"));
    let mut posted: Vec<(usize, String)> = Vec::new();
    let mut next_run = 1;
    for round in 0..6u32 {
        for index in 0..4u32 {
            let number = format!("R{round}-{index}");
            let (center_index, voucher) = if index % 2 == 0 { (1, 1) } else { (2, 2) };
            let amount = format!("{}.{:02}", 100 + round * 10 + index, index * 7);
            scenario.when_ok(post(center_index, voucher, &number, &amount));
            posted.push((center_index, number));
        }
        // Reverse one unsettled invoice and, from round 1 on, one settled one.
        let (center_index, number) = posted[posted.len() - 1].clone();
        scenario.when_ok(reverse(center_index, &number));
        if round > 0 {
            let (center_index, number) = posted[(round as usize - 1) * 4].clone();
            scenario.when_ok_as(bureau(), reverse(center_index, &number));
        }
        if round % 2 == 1 || round == 4 {
            scenario.when_ok(run(next_run));
            next_run += 1;
        }
    }
    let (all, _) = scenario.state.statements_page(None, 1_000, 1_000, |_| true);
    let cutoffs: Vec<u64> = (1..next_run)
        .map(|number| scenario.state.run(&run_id(number)).expect("run").cutoff)
        .collect();
    assert_eq!(cutoffs.len(), 4);
    assert_eq!(all.len(), 8, "two centers in each of four runs");
    let mut held = 0;
    for (center_index, number) in &posted {
        let entry = scenario
            .state
            .invoice(&center(*center_index), &invoice_number(number))
            .expect("invoice");
        let holders: Vec<StatementId> = all
            .iter()
            .filter(|statement| {
                statement.center == center(*center_index)
                    && statement.previous_cutoff < entry.sequence
                    && entry.sequence < statement.cutoff
                    && entry
                        .reversed_at
                        .is_none_or(|reversed| reversed > statement.cutoff)
            })
            .map(|statement| statement.id)
            .collect();
        // It is settled by the first run after it, unless it was reversed before.
        let next_cutoff = cutoffs.iter().find(|cutoff| **cutoff > entry.sequence);
        let settled = next_cutoff
            .is_some_and(|cutoff| entry.reversed_at.is_none_or(|reversed| reversed > *cutoff));
        assert_eq!(holders.len(), usize::from(settled), "{number}: {holders:?}");
        assert_eq!(
            settled_in(&scenario, *center_index, number),
            holders.first().copied(),
            "{number}"
        );
        held += holders.len();
    }
    assert_eq!(held, 16, "of {} invoices", posted.len());
    for center_index in [1, 2] {
        let books = scenario
            .state
            .center_year(&center(center_index), year())
            .expect("books");
        let (count, gross) = all
            .iter()
            .filter(|statement| statement.center == center(center_index))
            .fold((0, Money::ZERO), |(count, gross), statement| {
                (count + statement.invoices, gross.plus(statement.gross))
            });
        assert_eq!((count, gross), (books.settled_count, books.settled));
        assert_eq!(
            books.granted_count,
            books.settled_count + books.unsettled_count + books.reversed_unsettled_count
        );
    }
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_run_id_used_again_answers_the_original_run_and_another_year_conflicts() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let (first, _) = scenario.when_ok(run(1));
    let first = run_outcome(first);
    scenario.when_ok(post(1, 1, "INV-2", "1000.00"));
    let before = scenario.state.clone();
    let (again, events) = scenario.when_ok(run(1));
    assert!(events.is_empty(), "the retry settles nothing new");
    assert_eq!(
        run_outcome(again),
        RunOutcome {
            duplicate: true,
            ..first.clone()
        }
    );
    assert_eq!(scenario.state, before);
    let rejection = scenario.when_rejected(
        run_for(1, year_2027()),
        RejectionCode::SettlementRunConflict,
    );
    assert!(rejection.detail.contains("2026"), "{rejection}");
    scenario.when_ok(run(2));
    scenario.when_rejected(run(3), RejectionCode::NothingToSettle);
    scenario.when_rejected(run_for(4, year_2027()), RejectionCode::PolicyNotPublished);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_payment_must_be_exactly_the_statement_net() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let statement_id = settle_one(&mut scenario, 1);
    assert_eq!(
        scenario.state.center_amount_due(&center(1)),
        money("300.00")
    );
    for wrong in ["299.99", "300.01", "0.00"] {
        let rejection = scenario.when_rejected(
            pay(statement_id, "BANK-1", wrong, "2026-01-01"),
            RejectionCode::PaymentAmountMismatch,
        );
        assert!(rejection.detail.contains("300.00"), "{rejection}");
    }
    scenario.when_rejected(
        pay(StatementId(999), "BANK-1", "300.00", "2026-01-01"),
        RejectionCode::StatementNotFound,
    );
    let (reply, events) = scenario.when_ok(pay(statement_id, "BANK-1", "300.00", "2026-01-01"));
    assert_eq!(
        reply,
        Reply::PaymentConfirmed {
            statement: statement_id,
            sequence: scenario.state.last_sequence(),
            duplicate: false,
        }
    );
    assert_eq!(events.len(), 1);
    let paid = statement(&scenario, statement_id);
    assert_eq!(paid.state, StatementState::Paid);
    assert_eq!(
        paid.current_payment()
            .map(|payment| payment.bank_reference.clone()),
        Some(bank("BANK-1"))
    );
    assert_eq!(scenario.state.center_amount_due(&center(1)), Money::ZERO);
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        money("300.00")
    );
    assert_eq!(
        scenario.state.year(year()).expect("books").paid,
        money("300.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn the_same_bank_reference_for_the_same_statement_answers_the_original_payment() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let statement_id = settle_one(&mut scenario, 1);
    let (first, _) = scenario.when_ok(pay(statement_id, "BANK-1", "300.00", "2026-01-01"));
    let before = scenario.state.clone();
    for reference in ["BANK-1", "bank-1"] {
        let (again, events) =
            scenario.when_ok(pay(statement_id, reference, "300.00", "2026-01-01"));
        assert!(events.is_empty(), "{reference}");
        assert_eq!(
            again,
            Reply::PaymentConfirmed {
                statement: statement_id,
                sequence: first.last_sequence(),
                duplicate: true,
            }
        );
    }
    assert_eq!(scenario.state, before);
    // The same reference with other content is not a retry.
    scenario.when_rejected(
        pay(statement_id, "BANK-1", "300.00", "2025-12-31"),
        RejectionCode::BankReferenceReused,
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_paid_statement_cannot_be_paid_twice() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let statement_id = settle_one(&mut scenario, 1);
    scenario.when_ok(pay(statement_id, "BANK-1", "300.00", "2026-01-01"));
    let rejection = scenario.when_rejected(
        pay(statement_id, "BANK-2", "300.00", "2026-01-01"),
        RejectionCode::StatementAlreadyPaid,
    );
    assert!(rejection.detail.contains("BANK-1"), "{rejection}");
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        money("300.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_bank_reference_is_used_once_across_payments_and_repayments() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00")); // 300.00
    scenario.when_ok(post(2, 2, "INV-2", "1000.00")); // 200.00
    let (reply, _) = scenario.when_ok(run(1));
    let statements = run_outcome(reply).statements;
    let (first, second) = (statements[0], statements[1]);
    scenario.when_ok(pay(first, "BANK-1", "300.00", "2026-01-01"));
    let rejection = scenario.when_rejected(
        pay(second, "BANK-1", "200.00", "2026-01-01"),
        RejectionCode::BankReferenceReused,
    );
    assert!(rejection.detail.contains(&first.to_string()), "{rejection}");

    // A clawback and its repayment: the repayment's reference is used, too.
    scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    scenario.when_rejected(
        repay(1, "300.00", "BANK-1", "2026-01-01"),
        RejectionCode::BankReferenceReused,
    );
    scenario.when_ok(repay(1, "300.00", "REPAY-1", "2026-01-01"));
    scenario.when_rejected(
        pay(second, "REPAY-1", "200.00", "2026-01-01"),
        RejectionCode::BankReferenceReused,
    );
    scenario.when_ok(pay(second, "BANK-2", "200.00", "2026-01-01"));
    assert!(matches!(
        scenario.state.bank_reference(&bank("BANK-2")),
        Some(BankUse::Payment { statement }) if *statement == second
    ));
    assert!(matches!(
        scenario.state.bank_reference(&bank("repay-1")),
        Some(BankUse::Repayment { center: who, .. }) if *who == center(1)
    ));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_payment_value_date_lies_between_the_statement_issue_and_today() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    scenario.when_ok(post(2, 2, "INV-2", "1000.00"));
    scenario.advance_to(at_date("2026-04-10"));
    let (reply, _) = scenario.when_ok(run(1));
    let statements = run_outcome(reply).statements;
    assert_eq!(
        statement(&scenario, statements[0]).issued_at.date(),
        date("2026-04-10")
    );
    scenario.advance_to(at_date("2026-04-15"));
    for too_early_or_late in ["2026-04-09", "2026-04-16", "2027-01-01"] {
        scenario.when_rejected(
            pay(statements[0], "BANK-1", "300.00", too_early_or_late),
            RejectionCode::ValueDateInvalid,
        );
    }
    scenario.when_ok(pay(statements[0], "BANK-1", "300.00", "2026-04-10"));
    scenario.when_ok(pay(statements[1], "BANK-2", "200.00", "2026-04-15"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_returned_payment_reopens_the_statement_and_a_new_payment_pays_it() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    let statement_id = settle_one(&mut scenario, 1);
    scenario.when_ok(pay(statement_id, "BANK-1", "300.00", "2026-01-01"));

    let (reply, events) = scenario.when_ok(payment_returned(statement_id, "BANK-1"));
    let returned_at = scenario.state.last_sequence();
    assert_eq!(
        reply,
        Reply::PaymentReturned {
            statement: statement_id,
            sequence: returned_at,
            duplicate: false,
        }
    );
    assert_eq!(
        events,
        vec![Event::PaymentReturned {
            statement: statement_id,
            bank_reference: bank("BANK-1"),
            amount: money("300.00"),
            reason: reason("beneficiary account closed"),
        }]
    );
    let reopened = statement(&scenario, statement_id);
    assert_eq!(reopened.state, StatementState::Returned);
    assert_eq!(reopened.current_payment(), None);
    assert_eq!(
        reopened.payments[0].returned,
        Some((reason("beneficiary account closed"), returned_at))
    );
    assert_eq!(
        scenario.state.center_amount_due(&center(1)),
        money("300.00")
    );
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        Money::ZERO
    );
    assert_eq!(
        scenario.state.year(year()).expect("books").paid,
        Money::ZERO
    );

    let (again, events) = scenario.when_ok(payment_returned(statement_id, "BANK-1"));
    assert!(events.is_empty());
    assert_eq!(
        again,
        Reply::PaymentReturned {
            statement: statement_id,
            sequence: returned_at,
            duplicate: true,
        }
    );
    scenario.when_rejected(
        payment_returned(statement_id, "BANK-404"),
        RejectionCode::PaymentNotFound,
    );
    scenario.when_rejected(
        payment_returned(StatementId(999), "BANK-1"),
        RejectionCode::StatementNotFound,
    );
    // The bounced transfer's reference is spent; a new transfer pays the statement.
    scenario.when_rejected(
        pay(statement_id, "BANK-1", "300.00", "2026-01-01"),
        RejectionCode::BankReferenceReused,
    );
    scenario.when_ok(pay(statement_id, "BANK-2", "300.00", "2026-01-01"));
    let repaid = statement(&scenario, statement_id);
    assert_eq!(repaid.state, StatementState::Paid);
    assert_eq!(repaid.payments.len(), 2);
    assert_eq!(
        repaid
            .current_payment()
            .map(|payment| payment.bank_reference.clone()),
        Some(bank("BANK-2"))
    );
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        money("300.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_center_may_not_reverse_a_settled_invoice_but_the_bureau_may() {
    let mut scenario = with_voucher();
    scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    scenario.when_ok(post(1, 1, "INV-2", "500.00"));
    scenario.when_ok(post(1, 1, "INV-3", "100.00"));
    // Unsettled: the center may reverse its own invoice.
    let (reply, _) = scenario.when_ok_as(center_principal(1), reverse(1, "INV-2"));
    assert!(!reversal_outcome(reply).clawback);
    settle_one(&mut scenario, 1);
    let rejection = scenario.when_rejected_as(
        center_principal(1),
        reverse(1, "INV-1"),
        RejectionCode::ReversalNeedsBureau,
    );
    assert!(rejection.detail.contains("INV-1"), "{rejection}");
    let (reply, events) = scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    assert!(reversal_outcome(reply).clawback);
    assert_eq!(events[0].origin, bureau());
    scenario.when_ok_as(bureau(), reverse(1, "INV-3"));
    scenario.then_no_invariant_is_broken();
}

// ======================================================================= year close

#[test]
fn a_year_closes_only_once_every_voucher_is_past_its_redemption_window() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00")); // window to 2027-03-01
    scenario.when_ok(with_term(
        approve(2, 2, 1, "100000.00", "30000.00"),
        year(),
        "2026-07-01",
        "2027-06-30",
    )); // window to 2027-08-29
    scenario.when_ok(with_term(
        approve(3, 1, 1, "10000.00", "3000.00"),
        year(),
        "2026-12-01",
        "2027-11-30",
    ));
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(3),
        reason: reason("contract terminated"),
    }); // released: it does not hold the year open
    for day in ["2027-03-01", "2027-03-02", "2027-08-29"] {
        scenario.advance_to(at_date(day));
        let rejection = scenario.when_rejected(close(year()), RejectionCode::YearNotOver);
        assert!(
            rejection.detail.contains("2027-08-29"),
            "{day}: {rejection}"
        );
    }
    scenario.advance_to(at_date("2027-08-30"));
    let (reply, events) = scenario.when_ok(close(year()));
    let released: Vec<VoucherId> = events
        .iter()
        .filter_map(|event| match event {
            Event::VoucherReleased {
                voucher,
                cause: ReleaseCause::Expired,
                ..
            } => Some(*voucher),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![voucher_id(1), voucher_id(2)]);
    assert!(matches!(
        reply,
        Reply::ProgrammeYearClosed {
            released_vouchers: 2,
            duplicate: false,
            ..
        }
    ));
    scenario.when_rejected(close(year_2027()), RejectionCode::PolicyNotPublished);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_year_cannot_close_before_it_has_ended() {
    // Vouchers of 2026 may be approved for any term starting in 2026, so the year is not
    // over while 2026 lasts, even when no voucher of it is active at the moment.
    let mut scenario = given(programme());
    scenario.when_ok(with_term(
        approve(1, 1, 1, "10000.00", "3000.00"),
        year(),
        "2026-01-01",
        "2026-02-28",
    )); // redemption window to 2026-04-29
    for day in ["2026-01-02", "2026-06-01", "2026-12-31"] {
        scenario.advance_to(at_date(day));
        scenario.when_rejected(close(year()), RejectionCode::YearNotOver);
    }
    scenario.advance_to(at_date("2027-01-01"));
    let (reply, _) = scenario.when_ok(close(year()));
    assert!(matches!(
        reply,
        Reply::ProgrammeYearClosed {
            released_vouchers: 1,
            ..
        }
    ));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn closing_a_year_releases_what_is_left_reports_its_figures_and_is_idempotent() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "10000.00")); // 3,000.00
    scenario.when_ok(post(2, 2, "INV-2", "10000.00")); // 2,000.00
    let (reply, _) = scenario.when_ok(run(1));
    let statements = run_outcome(reply).statements;
    scenario.when_ok(pay(statements[0], "BANK-1", "3000.00", "2026-01-01"));
    scenario.when_ok(post(1, 1, "INV-3", "1000.00")); // 300.00, never settled
    scenario.when_ok_as(bureau(), reverse(1, "INV-1")); // a clawback of 3,000.00

    scenario.advance_to(at_date("2027-03-02"));
    let (reply, events) = scenario.when_ok(close(year()));
    let closed_at = scenario.state.last_sequence();
    assert_eq!(
        events,
        vec![
            Event::VoucherReleased {
                voucher: voucher_id(1),
                cause: ReleaseCause::Expired,
                released: money("26700.00"),
                reason: None,
            },
            Event::VoucherReleased {
                voucher: voucher_id(2),
                cause: ReleaseCause::Expired,
                released: money("18000.00"),
                reason: None,
            },
            Event::ProgrammeYearClosed { year: year() },
        ]
    );
    assert_eq!(
        reply,
        Reply::ProgrammeYearClosed {
            year: year(),
            released_vouchers: 2,
            sequence: closed_at,
            duplicate: false,
        }
    );
    // The year's final figures.
    let book = scenario.state.year(year()).expect("books");
    assert_eq!(book.closed, Some(closed_at));
    assert_eq!(book.pool, money("250000000.00"));
    assert_eq!(book.approved, money("50000.00"));
    assert_eq!(book.usage.held, Money::ZERO);
    assert_eq!(book.usage.redeemed, money("2300.00"));
    assert_eq!(book.released, money("44700.00"));
    assert_eq!(book.granted, money("5300.00"));
    assert_eq!(book.settled, money("5000.00"));
    assert_eq!(book.unsettled, money("300.00"));
    assert_eq!(book.paid, money("3000.00"));
    assert_eq!(book.outstanding(), money("3000.00"));
    assert_face_value_accounted(&scenario, year());

    let before = scenario.state.clone();
    let (again, events) = scenario.when_ok(close(year()));
    assert!(events.is_empty());
    assert_eq!(
        again,
        Reply::ProgrammeYearClosed {
            year: year(),
            released_vouchers: 0,
            sequence: closed_at,
            duplicate: true,
        }
    );
    assert_eq!(scenario.state, before);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn settlements_payments_returns_and_repayments_go_on_after_the_close() {
    let mut scenario = with_voucher();
    scenario.when_ok(approve(2, 2, 2, "100000.00", "20000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "10000.00")); // 3,000.00
    scenario.when_ok(post(2, 2, "INV-2", "10000.00")); // 2,000.00
    let (reply, _) = scenario.when_ok(run(1));
    let statements = run_outcome(reply).statements;
    scenario.when_ok(pay(statements[0], "BANK-1", "3000.00", "2026-01-01"));
    scenario.when_ok_as(bureau(), reverse(1, "INV-1"));
    scenario.when_ok(post(1, 1, "INV-3", "1000.00")); // 300.00
    scenario.advance_to(at_date("2027-03-02"));
    scenario.when_ok(close(year()));

    let (_, events) = scenario.when_ok(run(2));
    let issued = statements_issued(&events);
    assert_eq!(
        (issued[0].gross, issued[0].clawback_offset, issued[0].net),
        (money("300.00"), money("300.00"), Money::ZERO)
    );
    scenario.when_ok(pay(statements[1], "BANK-2", "2000.00", "2027-03-02"));
    scenario.when_ok(payment_returned(statements[1], "BANK-2"));
    scenario.when_ok(pay(statements[1], "BANK-3", "2000.00", "2027-03-02"));
    scenario.when_ok(repay(1, "2700.00", "REPAY-1", "2027-03-02"));
    assert_eq!(outstanding(&scenario, 1, year()), Money::ZERO);
    let book = scenario.state.year(year()).expect("books");
    assert_eq!(book.paid, money("5000.00"));
    assert_eq!(book.usage.used(), money("2300.00"));
    assert_face_value_accounted(&scenario, year());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn closing_refuses_more_active_vouchers_than_one_command_may_release() {
    let count = EXPIRY_BATCH_LIMIT as u128 + 1;
    let mut events = programme();
    events.extend((1..=count).map(|voucher| small_voucher_approved(voucher, 1, 1)));
    let mut scenario = given(events);
    scenario.advance_to(at_date("2027-03-02"));
    scenario.when_rejected(close(year()), RejectionCode::TooManyActiveVouchers);
    let (reply, _) = scenario.when_ok(Command::ExpireVouchers);
    assert!(matches!(
        reply,
        Reply::VouchersExpired { released_vouchers, .. } if released_vouchers as usize == EXPIRY_BATCH_LIMIT
    ));
    let (reply, events) = scenario.when_ok(close(year()));
    assert_eq!(events.len(), 2, "the last voucher and the close");
    assert!(matches!(
        reply,
        Reply::ProgrammeYearClosed {
            released_vouchers: 1,
            ..
        }
    ));
    assert_eq!(scenario.state.pool_usage(year()).used(), Money::ZERO);
    scenario.then_no_invariant_is_broken();
}

// ==================================================================== pool and policy

#[test]
fn the_pool_may_be_adjusted_never_below_what_is_held_redeemed_and_owed() {
    let mut scenario = given(programme_with_pool("50000.00"));
    scenario.when_ok(approve(1, 1, 1, "100000.00", "30000.00"));
    scenario.when_ok(post(1, 1, "INV-1", "10000.00")); // 3,000.00
    settle_one(&mut scenario, 1);
    scenario.when_ok_as(bureau(), reverse(1, "INV-1")); // owed back 3,000.00
    scenario.when_ok(post(1, 1, "INV-2", "1000.00")); // 300.00
    let usage = scenario.state.pool_usage(year());
    assert_eq!(
        (usage.held, usage.redeemed, usage.receivable),
        (money("26700.00"), money("300.00"), money("3000.00"))
    );

    let rejection = scenario.when_rejected(
        adjust_pool(year(), "29999.99"),
        RejectionCode::PoolBelowUsage,
    );
    assert!(rejection.detail.contains("30000.00"), "{rejection}");
    let (reply, events) = scenario.when_ok(adjust_pool(year(), "30000.00"));
    assert_eq!(
        reply,
        Reply::PoolAdjusted {
            year: year(),
            previous_pool: money("50000.00"),
            new_pool: money("30000.00"),
            sequence: scenario.state.last_sequence(),
        }
    );
    assert!(matches!(
        &events[0],
        Event::PoolAdjusted { previous_pool, new_pool, .. }
            if *previous_pool == money("50000.00") && *new_pool == money("30000.00")
    ));
    assert_eq!(scenario.state.pool(year()), Some(money("30000.00")));
    scenario.when_rejected(
        approve(2, 2, 2, "1000.00", "0.01"),
        RejectionCode::PoolExhausted,
    );

    let (reply, _) = scenario.when_ok(adjust_pool(year(), "40000.00"));
    assert!(matches!(
        reply,
        Reply::PoolAdjusted { previous_pool, .. } if previous_pool == money("30000.00")
    ));
    scenario.when_rejected(
        approve(2, 2, 2, "100000.00", "10000.01"),
        RejectionCode::PoolExhausted,
    );
    scenario.when_ok(approve(2, 2, 2, "100000.00", "10000.00"));
    scenario.when_rejected(
        adjust_pool(year_2027(), "1.00"),
        RejectionCode::PolicyNotPublished,
    );

    // The published policy itself never changes.
    let policy = scenario.state.policy(year()).expect("policy");
    assert_eq!(policy.annual_pool(), money("50000.00"));
    let rejection = scenario.when_rejected(
        Command::PublishPolicy {
            policy: ProgrammePolicy::hangzhou_defaults(year()),
        },
        RejectionCode::PolicyAlreadyPublished,
    );
    assert!(rejection.detail.contains("AdjustPool"), "{rejection}");
    assert_eq!(scenario.state.pool(year()), Some(money("40000.00")));
    scenario.then_no_invariant_is_broken();
}

// ========================================================================== limits

#[test]
fn the_registry_is_bounded_in_centers_and_in_active_vouchers_per_center() {
    let mut events = programme();
    events.extend((3..=4_096).map(|index| center_registered(index, FacilityTier::Other)));
    let mut scenario = given(events);
    assert_eq!(scenario.state.centers_registered(), 4_096);
    scenario.when_rejected(
        Command::RegisterCenter {
            center: center(4_097),
            name: name("One center too many"),
            tier: FacilityTier::Other,
            listing_basis: ListingBasis::PlanningLayout,
            capacity: Default::default(),
        },
        RejectionCode::RegistryLimitReached,
    );

    let mut events = programme();
    events.extend((1..=65_536).map(|voucher| small_voucher_approved(voucher, 1, 1)));
    let mut scenario = given(events);
    scenario.when_rejected(
        approve(70_000, 2, 1, "1000.00", "1.00"),
        RejectionCode::RegistryLimitReached,
    );
    scenario.when_ok(approve(70_000, 2, 2, "1000.00", "1.00"));
    scenario.then_no_invariant_is_broken();
}
