//! Programmes as data (issue 13): the presets under `config/programmes/` load and say what
//! they mean; every new rule has a given/when/then test at its boundary (exactly
//! 500,000.00; exactly the capacity threshold; the longest term to the day; a
//! small-enterprise ceiling reached to the fen); a published year's policy stays
//! immutable while a new year's may differ; the invariants hold under random commands for
//! every preset this build runs; and the demo runs a small year of each.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use voucher_ledger::audit::verify;
use voucher_ledger::cli::policy::{describe, load, preset_path};
use voucher_ledger::domain::programme::{read_programme_file, RateBasis};
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::tooling::demo::{run_demo, DemoConfig};

/// Every preset, by name.
const PRESETS: [&str; 6] = [
    "hangzhou-2024",
    "hangzhou-2025",
    "beijing",
    "henan",
    "reimbursement",
    "stacked",
];

fn preset_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(preset_path(name))
}

fn preset(name: &str) -> ProgrammePolicy {
    load(&preset_file(name)).expect("preset loads").policy
}

/// `text` (a programme file for 2026) as a published policy event.
fn policy_from(text: &str) -> ProgrammePolicy {
    read_programme_file(text).expect("programme file").policy
}

fn published(policy: ProgrammePolicy) -> Event {
    Event::PolicyPublished {
        policy: Box::new(policy),
    }
}

fn center_with_capacity(index: usize, pflops: Option<u32>, racks: Option<u32>) -> Event {
    let Event::CenterRegistered {
        center,
        name,
        tier,
        listing_basis,
        ..
    } = center_registered(index, FacilityTier::Domestic)
    else {
        unreachable!("a registration")
    };
    Event::CenterRegistered {
        center,
        name,
        tier,
        listing_basis,
        capacity: CenterCapacity {
            intelligent_pflops: pflops,
            racks,
        },
    }
}

/// An approval of contract `C-{voucher}` for `fee`, requesting all of it, for the whole
/// of 2026, with a class and declarations.
fn apply_for(
    voucher: u128,
    enterprise_index: usize,
    center_index: usize,
    fee: &str,
    class: EnterpriseClass,
    declarations: Declarations,
) -> Command {
    let Command::ApproveVoucher(mut approve) =
        approve(voucher, enterprise_index, center_index, fee, fee)
    else {
        unreachable!("an approval")
    };
    approve.enterprise_class = class;
    approve.declarations = declarations;
    Command::ApproveVoucher(approve)
}

fn small_firm(voucher: u128, enterprise_index: usize, fee: &str) -> Command {
    apply_for(
        voucher,
        enterprise_index,
        1,
        fee,
        EnterpriseClass::SmallOrMedium,
        Declarations::NONE,
    )
}

fn approved_terms(scenario: &Scenario, voucher: u128) -> VoucherApproved {
    scenario
        .state
        .voucher(&voucher_id(voucher))
        .expect("voucher")
        .terms
        .clone()
}

// --------------------------------------------------------------------------- presets

#[test]
fn every_preset_loads_and_hangzhou_2024_is_todays_default() {
    for name in PRESETS {
        let file = load(&preset_file(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(file.name.as_deref(), Some(name));
    }
    let hangzhou = preset("hangzhou-2024");
    assert_eq!(
        hangzhou,
        ProgrammePolicy::hangzhou_defaults(hangzhou.year()),
        "the Hangzhou 2024 preset is exactly what a policy without new rules means"
    );
    assert!(hangzhou.rules().is_hangzhou_2024());
}

#[test]
fn policy_check_says_what_each_preset_means() {
    let expected: [(&str, &[&str]); 6] = [
        (
            "hangzhou-2024",
            &["30%", "20%", "8000000.00", "Rate by facility"],
        ),
        (
            "hangzhou-2025",
            &[
                "中小企业",
                "50%",
                "500000.00",
                "exactly 500000.00 still qualifies",
                "keep their rate",
            ],
        ),
        (
            "beijing",
            &[
                "20% of each invoice",
                "2000000.00",
                "at most 365 days",
                "未享受其他市级算力补贴",
                "无关联关系",
            ],
        ),
        (
            "henan",
            &["≥ 100 PFLOPS", " or ", "≥ 1000 racks", "1000000.00"],
        ),
        (
            "reimbursement",
            &[
                "the enterprise",
                "先支付后补贴",
                "PAYMENT_PROOF_MISSING",
                "one statement per enterprise",
            ],
        ),
        (
            "stacked",
            &["Zhejiang Provincial", "10%", "40%", "second statement"],
        ),
    ];
    for (name, phrases) in expected {
        let words = describe(&load(&preset_file(name)).expect("loads"));
        for phrase in phrases {
            assert!(words.contains(phrase), "{name} lacks {phrase:?}:\n{words}");
        }
    }
}

#[test]
fn a_bad_programme_file_is_refused_naming_file_line_and_field() {
    let directory = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "year = 2025\n[small_enterprise_rate]\nrate = \"0.5\"\ncumulative_contract_limit = \"500,000.00\"\n",
            ":4:",
            "small_enterprise_rate.cumulative_contract_limit",
        ),
        ("year = 2025\npayee = \"bureau\"\n", ":2:", "payee"),
        (
            "year = 2025\n[eligibility]\nmin_pflops = 100\n",
            ":3:",
            "eligibility.min_pflops",
        ),
        (
            "year = 2025\nrequired_declarations = [\"no_other_municipal_subsidy\", \"no_lawsuits\"]\n",
            ":2:",
            "required_declarations",
        ),
        (
            "year = 2025\ncontract_fee_ceiling = \"0.20\"\n[tier_rates]\ndomestic = \"0.2\"\nmaas_multimodal = \"0.2\"\nother = \"0.25\"\n",
            ":6:",
            "tier_rates.other",
        ),
        (
            "year = 2025\ncontract_fee_ceiling = \"0.20\"\n",
            "left out of the file",
            "tier_rates.domestic",
        ),
        (
            "year = 2025\n[second_source]\nname = \"Province\"\nannual_pool = \"1.00\"\nrate = \"0.1\"\ncombined_ceiling = \"0.2\"\n",
            ":6:",
            "second_source.combined_ceiling",
        ),
    ];
    for (index, (text, line, field)) in cases.into_iter().enumerate() {
        let path = directory.path().join(format!("bad-{index}.toml"));
        std::fs::write(&path, text).expect("write");
        let message = load(&path).expect_err("refused").to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(line), "{message}");
        assert!(message.contains(field), "{message}");
    }
}

// ----------------------------------------------------- the small-enterprise rate (Hangzhou 2025)

const HANGZHOU_2025_RULES: &str = "year = 2026\n[tier_rates]\nother = \"0.20\"\n[small_enterprise_rate]\nrate = \"0.50\"\ncumulative_contract_limit = \"500000.00\"\n";

fn hangzhou_2025() -> Scenario {
    given(vec![
        published(policy_from(HANGZHOU_2025_RULES)),
        center_registered(1, FacilityTier::Domestic),
        center_registered(2, FacilityTier::Other),
        enterprise_registered(1),
        enterprise_registered(2),
        enterprise_registered(3),
    ])
}

#[test]
fn a_small_firm_whose_year_totals_exactly_500000_gets_50_percent() {
    let mut scenario = hangzhou_2025();
    // Given 300,000.00 approved, when a contract of 200,000.00 brings the total to
    // exactly 500,000.00, then both get 50% (the line is inclusive).
    scenario.when_ok(small_firm(1, 1, "300000.00"));
    scenario.when_ok(small_firm(2, 1, "200000.00"));
    for (voucher, face) in [(1, "150000.00"), (2, "100000.00")] {
        let terms = approved_terms(&scenario, voucher);
        assert_eq!(terms.rate.to_string(), "0.5");
        assert_eq!(terms.ceiling.to_string(), "0.5");
        assert_eq!(terms.programme.rate_basis, RateBasis::SmallEnterprise);
        assert_eq!(terms.face_value, money(face));
    }
    assert_eq!(
        scenario
            .state
            .enterprise_contract_total(&enterprise(1), year()),
        money("500000.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn the_contract_that_crosses_the_line_by_a_fen_gets_the_facility_rate_and_earlier_vouchers_keep_theirs(
) {
    let mut scenario = hangzhou_2025();
    scenario.when_ok(small_firm(1, 1, "300000.00"));
    // 300,000.00 + 200,000.01 = 500,000.01: over the line.
    scenario.when_ok(small_firm(2, 1, "200000.01"));
    let crossing = approved_terms(&scenario, 2);
    assert_eq!(
        crossing.rate.to_string(),
        "0.3",
        "center 1 is domestic: 30%"
    );
    assert_eq!(crossing.ceiling.to_string(), "0.3");
    assert_eq!(crossing.programme.rate_basis, RateBasis::FacilityTier);
    assert_eq!(crossing.face_value, money("60000.00"));
    let earlier = approved_terms(&scenario, 1);
    assert_eq!(
        earlier.rate.to_string(),
        "0.5",
        "approved before the line: kept"
    );
    // And every later contract of the year stays above the line, however small.
    scenario.when_ok(small_firm(3, 1, "0.10"));
    assert_eq!(approved_terms(&scenario, 3).rate.to_string(), "0.3");
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_single_contract_above_the_line_gets_the_facility_rate() {
    let mut scenario = hangzhou_2025();
    scenario.when_ok(small_firm(1, 1, "500000.01"));
    assert_eq!(approved_terms(&scenario, 1).rate.to_string(), "0.3");
}

#[test]
fn cancelled_contracts_still_count_towards_the_line() {
    let mut scenario = hangzhou_2025();
    scenario.when_ok(small_firm(1, 1, "400000.00"));
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(1),
        reason: reason("withdrawn by the enterprise"),
    });
    scenario.when_ok(small_firm(2, 1, "100000.01"));
    assert_eq!(approved_terms(&scenario, 2).rate.to_string(), "0.3");
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_standard_firm_and_another_year_are_not_counted_for_the_line() {
    let mut scenario = hangzhou_2025();
    // A standard firm gets the facility rate, whatever its total.
    scenario.when_ok(apply_for(
        1,
        2,
        2,
        "1000.00",
        EnterpriseClass::Standard,
        Declarations::NONE,
    ));
    let terms = approved_terms(&scenario, 1);
    assert_eq!(terms.rate.to_string(), "0.2");
    assert_eq!(terms.programme.enterprise_class, EnterpriseClass::Standard);
    // Enterprise 3's total is its own: enterprise 1's contracts do not count for it.
    scenario.when_ok(small_firm(2, 1, "500000.00"));
    scenario.when_ok(small_firm(3, 3, "500000.00"));
    assert_eq!(approved_terms(&scenario, 3).rate.to_string(), "0.5");
}

#[test]
fn a_small_firm_voucher_redeems_up_to_its_50_percent_ceiling_to_the_fen() {
    let mut scenario = hangzhou_2025();
    scenario.when_ok(small_firm(1, 1, "1000.01"));
    // Face value ⌊0.5 × 1,000.01⌋ = 500.00; invoices of the whole fee redeem it all.
    assert_eq!(approved_terms(&scenario, 1).face_value, money("500.00"));
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-1", "999.99"));
    let Reply::InvoiceOutcome(first) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(first.subsidy, money("499.99"));
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-2", "0.02"));
    let Reply::InvoiceOutcome(second) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        second.subsidy,
        money("0.01"),
        "the last fen of the face value"
    );
    let voucher = scenario.state.voucher(&voucher_id(1)).expect("voucher");
    assert_eq!(voucher.subsidy_total, money("500.00"));
    assert_eq!(voucher.remaining, Money::ZERO);
    scenario.when_rejected(
        post(1, 1, "INV-3", "0.01"),
        RejectionCode::ContractFeeExceeded,
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_retried_approval_must_repeat_its_class_and_declarations() {
    let mut scenario = hangzhou_2025();
    scenario.when_ok(small_firm(1, 1, "1000.00"));
    let (reply, events) = scenario.when_ok(small_firm(1, 1, "1000.00"));
    assert!(events.is_empty());
    assert!(matches!(
        reply,
        Reply::VoucherApproved {
            duplicate: true,
            ..
        }
    ));
    scenario.when_rejected(
        apply_for(
            1,
            1,
            1,
            "1000.00",
            EnterpriseClass::Standard,
            Declarations::NONE,
        ),
        RejectionCode::VoucherAlreadyExists,
    );
}

// ------------------------------------------------------------------ term (Beijing)

#[test]
fn the_longest_term_is_allowed_to_the_day_and_one_day_more_is_refused() {
    let mut scenario = given(vec![
        published(policy_from("year = 2026\nmax_term_days = 181\n")),
        center_registered(1, FacilityTier::Domestic),
        enterprise_registered(1),
    ]);
    let with_end = |voucher: u128, end: &str| {
        let Command::ApproveVoucher(mut approve) = approve(voucher, 1, 1, "1000.00", "1000.00")
        else {
            unreachable!("an approval")
        };
        approve.term_end = date(end);
        Command::ApproveVoucher(approve)
    };
    // 2026-01-01 ..= 2026-06-30 is 181 days.
    scenario.when_ok(with_end(1, "2026-06-30"));
    let rejection = scenario.when_rejected(
        with_end(2, "2026-07-01"),
        RejectionCode::ContractTermInvalid,
    );
    assert!(rejection.detail.contains("182 days"), "{rejection}");
}

// ------------------------------------------------------- declarations (Beijing)

#[test]
fn an_approval_without_a_required_declaration_is_refused_and_a_declared_one_records_them() {
    let beijing = "year = 2026\nrequired_declarations = [\"no_other_municipal_subsidy\", \"suppliers_not_affiliated\"]\n";
    let mut scenario = given(vec![
        published(policy_from(beijing)),
        center_registered(1, FacilityTier::Domestic),
        enterprise_registered(1),
    ]);
    let only_one = Declarations::NONE.with(Declaration::NoOtherMunicipalSubsidy);
    let rejection = scenario.when_rejected(
        apply_for(1, 1, 1, "1000.00", EnterpriseClass::Standard, only_one),
        RejectionCode::DeclarationMissing,
    );
    assert!(
        rejection.detail.contains("suppliers_not_affiliated"),
        "{rejection}"
    );
    let both = Declarations::of(&Declaration::ALL);
    scenario.when_ok(apply_for(
        1,
        1,
        1,
        "1000.00",
        EnterpriseClass::Standard,
        both,
    ));
    assert_eq!(approved_terms(&scenario, 1).programme.declarations, both);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn declarations_beyond_what_is_required_are_recorded_too() {
    let mut scenario = given(programme());
    let both = Declarations::of(&Declaration::ALL);
    scenario.when_ok(apply_for(
        1,
        1,
        1,
        "1000.00",
        EnterpriseClass::Standard,
        both,
    ));
    assert_eq!(approved_terms(&scenario, 1).programme.declarations, both);
}

// ---------------------------------------------------- capacity thresholds (Henan)

fn henan(require: &str) -> Scenario {
    given(vec![
        published(policy_from(&format!(
            "year = 2026\n[eligibility]\nmin_intelligent_pflops = 100\nmin_racks = 1000\nrequire = \"{require}\"\n"
        ))),
        center_with_capacity(1, Some(100), None),
        center_with_capacity(2, Some(99), Some(999)),
        center_with_capacity(3, None, Some(1_000)),
        center_with_capacity(4, None, None),
        center_with_capacity(5, Some(100), Some(1_000)),
        enterprise_registered(1),
    ])
}

fn at_center(voucher: u128, center_index: usize) -> Command {
    approve(voucher, 1, center_index, "1000.00", "1000.00")
}

#[test]
fn exactly_the_capacity_threshold_is_eligible_and_one_below_is_not() {
    let mut scenario = henan("any");
    scenario.when_ok(at_center(1, 1));
    scenario.when_ok(at_center(3, 3));
    let rejection = scenario.when_rejected(at_center(2, 2), RejectionCode::CenterNotEligible);
    assert!(rejection.detail.contains("99 PFLOPS"), "{rejection}");
    scenario.when_rejected(at_center(4, 4), RejectionCode::CenterNotEligible);
    scenario.then_no_invariant_is_broken();
}

#[test]
fn all_thresholds_required_means_every_figure_must_meet_its_threshold() {
    let mut scenario = henan("all");
    scenario.when_rejected(at_center(1, 1), RejectionCode::CenterNotEligible);
    scenario.when_rejected(at_center(3, 3), RejectionCode::CenterNotEligible);
    scenario.when_ok(at_center(5, 5));
}

#[test]
fn a_center_registers_with_its_capacity() {
    let mut scenario = given(vec![policy_published("250000000.00")]);
    let (_, events) = scenario.when_ok(Command::RegisterCenter {
        center: center(9),
        name: name("Zhengzhou AI Computing Center"),
        tier: FacilityTier::Other,
        listing_basis: ListingBasis::PlanningLayout,
        capacity: CenterCapacity {
            intelligent_pflops: Some(300),
            racks: Some(2_000),
        },
    });
    assert!(
        matches!(&events[0], Event::CenterRegistered { capacity, .. } if capacity.racks == Some(2_000))
    );
    assert_eq!(
        scenario
            .state
            .center(&center(9))
            .expect("center")
            .capacity
            .intelligent_pflops,
        Some(300)
    );
}

// ------------------------------------------- the enterprise as payee (reimbursement)

const REIMBURSEMENT_RULES: &str = "year = 2026\npayee = \"enterprise\"\n";

/// A reimbursement year: centers 1 (domestic, 30%) and 2 (other, 20%), enterprises 1 and
/// 2; enterprise 1 holds vouchers 1 (center 1) and 2 (center 2), enterprise 2 voucher 3
/// (center 1), each for a contract of 10,000.00.
fn reimbursement() -> Scenario {
    let mut scenario = given(vec![
        published(policy_from(REIMBURSEMENT_RULES)),
        center_registered(1, FacilityTier::Domestic),
        center_registered(2, FacilityTier::Other),
        enterprise_registered(1),
        enterprise_registered(2),
    ]);
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    scenario.when_ok(approve(2, 1, 2, "10000.00", "10000.00"));
    scenario.when_ok(approve(3, 2, 1, "10000.00", "10000.00"));
    scenario
}

/// `post` with the enterprise's proof of payment.
fn paid_post(center_index: usize, voucher: u128, number: &str, amount: &str) -> Command {
    let Command::PostInvoice(mut invoice) = post(center_index, voucher, number, amount) else {
        unreachable!("an invoice")
    };
    invoice.payment_proof = Some(PaymentProof::parse(&format!("PAID-{number}")).expect("proof"));
    Command::PostInvoice(invoice)
}

fn run_of(scenario: &mut Scenario, run: u128) -> Vec<Statement> {
    let (reply, _) = scenario.when_ok_as(
        bureau(),
        Command::CreateSettlementRun {
            run: SettlementRunId::from_u128(run),
            year: year(),
        },
    );
    let Reply::SettlementRunCreated(outcome) = reply else {
        panic!("{reply:?}")
    };
    outcome
        .statements
        .iter()
        .map(|id| scenario.state.statement(id).expect("statement").clone())
        .collect()
}

#[test]
fn an_invoice_of_a_reimbursement_year_without_proof_of_payment_is_refused() {
    let mut scenario = reimbursement();
    // Given a reimbursement year, when a center posts an invoice without the enterprise's
    // proof of payment, then it is refused with PAYMENT_PROOF_MISSING (51), naming it.
    let rejection = scenario.when_rejected(
        post(1, 1, "INV-1", "1000.00"),
        RejectionCode::PaymentProofMissing,
    );
    assert_eq!(RejectionCode::PaymentProofMissing.code(), 51);
    assert!(rejection.detail.contains("INV-1"), "{rejection}");
    assert!(
        rejection.detail.contains(&enterprise(1).to_string()),
        "{rejection}"
    );
    // With the proof it is redeemed, and the proof is recorded on the redemption.
    let (reply, events) = scenario.when_ok(paid_post(1, 1, "INV-1", "1000.00"));
    let Reply::InvoiceOutcome(outcome) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(outcome.subsidy, money("300.00"));
    let [Event::InvoiceRedeemed(redeemed)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        redeemed
            .payment_proof
            .as_ref()
            .map(|proof| proof.to_string()),
        Some("PAID-INV-1".to_string())
    );
    // A retry is recognised by the invoice's content, whatever proof it carries.
    let (reply, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.00"));
    assert!(events.is_empty());
    assert!(matches!(
        reply,
        Reply::InvoiceOutcome(InvoiceOutcome {
            duplicate: true,
            ..
        })
    ));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_center_payee_year_takes_an_invoice_with_or_without_a_proof() {
    let mut scenario = given(programme());
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    let (_, events) = scenario.when_ok(post(1, 1, "INV-1", "100.00"));
    assert!(
        matches!(&events[0], Event::InvoiceRedeemed(redeemed) if redeemed.payment_proof.is_none())
    );
    scenario.when_ok(paid_post(1, 1, "INV-2", "100.00"));
    assert_eq!(scenario.state.payee_kind(year()), Payee::Center);
    // No year pays an enterprise: answers may name the center without looking up vouchers.
    assert!(!scenario.state.any_enterprise_payee());
}

#[test]
fn a_reimbursement_year_is_known_to_pay_an_enterprise() {
    // Given only a reimbursement year's policy, the state says some year pays the
    // enterprise, so the answers to its invoices look up each voucher's year.
    let scenario = reimbursement();
    assert!(scenario.state.any_enterprise_payee());
    assert_eq!(scenario.state.payee_kind(year()), Payee::Enterprise);
}

#[test]
fn a_reimbursement_year_settles_one_statement_per_enterprise_and_pays_it() {
    let mut scenario = reimbursement();
    // Given invoices of enterprise 1 at two centers and of enterprise 2 at one,
    scenario.when_ok(paid_post(1, 1, "A-1", "1000.00")); // 300.00
    scenario.when_ok(paid_post(2, 2, "B-1", "1000.01")); // 200.00 (⌊200.002⌋)
    scenario.when_ok(paid_post(1, 3, "A-2", "500.00")); // 150.00
                                                        // when the bureau runs the settlement,
    let statements = run_of(&mut scenario, 1);
    // then there is one statement per enterprise, whatever centers it bought from.
    let by_payee: Vec<(Uscc, Money, u64)> = statements
        .iter()
        .map(|statement| (statement.center, statement.gross, statement.invoices))
        .collect();
    assert_eq!(
        by_payee,
        vec![
            (enterprise(1), money("500.00"), 2),
            (enterprise(2), money("150.00"), 1),
        ]
    );
    assert_eq!(scenario.state.payee_kind(year()), Payee::Enterprise);
    assert!(
        scenario.state.center_year(&center(1), year()).is_none(),
        "no center is owed anything in a reimbursement year"
    );
    let books = scenario
        .state
        .payee_year(&enterprise(1), year())
        .expect("books");
    assert_eq!(books.settled, money("500.00"));
    assert_eq!(books.unsettled, Money::ZERO);
    // And paying enterprise 1's statement pays the enterprise, not a center.
    let first = &statements[0];
    scenario.when_ok_as(
        bureau(),
        Command::ConfirmPayment {
            statement: first.id,
            bank_reference: BankReference::parse("BUREAU-PAY-1").expect("reference"),
            amount: money("500.00"),
            value_date: scenario.now().date(),
        },
    );
    let paid = scenario.state.statement(&first.id).expect("statement");
    assert_eq!(paid.state, StatementState::Paid);
    assert_eq!(
        scenario
            .state
            .payee_year(&enterprise(1), year())
            .expect("books")
            .paid,
        money("500.00")
    );
    assert_eq!(
        scenario.state.year(year()).expect("book").paid,
        money("500.00")
    );
    for index in [1, 2] {
        assert_eq!(
            scenario
                .state
                .center(&center(index))
                .expect("center")
                .paid_total,
            Money::ZERO
        );
    }
    // An invoice settled for the enterprise is settled, at whichever center it was posted.
    let entry = scenario
        .state
        .invoice(&center(2), &invoice_number("B-1"))
        .expect("invoice")
        .clone();
    assert_eq!(
        scenario
            .state
            .invoice_settlement(&center(2), year(), &entry),
        Some(Some(first.id))
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_clawback_in_a_reimbursement_year_is_owed_by_the_enterprise() {
    let mut scenario = reimbursement();
    scenario.when_ok(paid_post(1, 1, "A-1", "1000.00")); // 300.00
    scenario.when_ok(paid_post(2, 2, "B-1", "1000.00")); // 200.00
    let statements = run_of(&mut scenario, 1);
    assert_eq!(statements.len(), 1);
    // Given a settled invoice, when the bureau reverses it,
    let (reply, _) = scenario.when_ok_as(bureau(), reverse(2, "B-1"));
    let Reply::InvoiceReversed(reversed) = reply else {
        panic!("{reply:?}")
    };
    assert!(reversed.clawback);
    // then enterprise 1 owes the subsidy back; pool and cap stay used until recovered.
    let books = scenario
        .state
        .payee_year(&enterprise(1), year())
        .expect("books");
    assert_eq!(books.outstanding(), money("200.00"));
    assert_eq!(books.receivables[0].enterprise, enterprise(1));
    assert_eq!(
        scenario.state.pool_usage(year()).receivable,
        money("200.00")
    );
    assert_eq!(scenario.state.center_outstanding(&center(2)), Money::ZERO);
    scenario.then_no_invariant_is_broken();
    // A center cannot repay what an enterprise owes.
    scenario.when_rejected(
        Command::RecordRepayment {
            center: center(2),
            year: year(),
            amount: money("50.00"),
            bank_reference: BankReference::parse("REPAY-C").expect("reference"),
            value_date: date("2026-01-01"),
        },
        RejectionCode::EnterpriseNotFound,
    );
    // The next statement of enterprise 1 offsets part of it,
    scenario.when_ok(paid_post(1, 1, "A-2", "500.00")); // 150.00
    let statements = run_of(&mut scenario, 2);
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].center, enterprise(1));
    assert_eq!(statements[0].clawback_offset, money("150.00"));
    assert_eq!(statements[0].net, Money::ZERO);
    // and the enterprise repays the rest.
    scenario.when_ok_as(
        bureau(),
        Command::RecordRepayment {
            center: enterprise(1),
            year: year(),
            amount: money("50.00"),
            bank_reference: BankReference::parse("REPAY-E1").expect("reference"),
            value_date: scenario.now().date(),
        },
    );
    let books = scenario
        .state
        .payee_year(&enterprise(1), year())
        .expect("books");
    assert_eq!(books.outstanding(), Money::ZERO);
    assert_eq!(books.offset, money("150.00"));
    assert_eq!(books.repaid, money("50.00"));
    assert_eq!(scenario.state.pool_usage(year()).receivable, Money::ZERO);
    let voucher = scenario.state.voucher(&voucher_id(2)).expect("voucher");
    assert_eq!(voucher.released, money("200.00"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn every_preset_is_published() {
    for name in PRESETS {
        let mut scenario = given(Vec::new());
        scenario.when_ok(Command::PublishPolicy {
            policy: preset(name),
        });
        scenario.then_no_invariant_is_broken();
    }
}

// ------------------------------------------------------------------ years

#[test]
fn a_published_years_policy_stays_immutable_and_a_new_year_may_differ() {
    let mut scenario = given(Vec::new());
    scenario.when_ok(Command::PublishPolicy {
        policy: preset("hangzhou-2024"),
    });
    // The same year again, now with Hangzhou 2025's rules: refused.
    let changed = read_programme_file(
        &std::fs::read_to_string(preset_file("hangzhou-2025"))
            .expect("read")
            .replace("year = 2025", "year = 2024"),
    )
    .expect("file")
    .policy;
    scenario.when_rejected(
        Command::PublishPolicy { policy: changed },
        RejectionCode::PolicyAlreadyPublished,
    );
    // The next year's policy may differ from the last.
    scenario.when_ok(Command::PublishPolicy {
        policy: preset("hangzhou-2025"),
    });
    let years: Vec<_> = scenario
        .state
        .policies()
        .map(|policy| policy.year().get())
        .collect();
    assert_eq!(years, vec![2024, 2025]);
    assert!(scenario
        .state
        .policy(ProgrammeYear::new(2025).expect("year"))
        .expect("2025")
        .rules()
        .small_enterprise_rate
        .is_some());
    assert!(scenario
        .state
        .policy(ProgrammeYear::new(2024).expect("year"))
        .expect("2024")
        .rules()
        .is_hangzhou_2024());
}

// ------------------------------------------------------------------ properties

/// One random step of a programme year.
#[derive(Clone, Debug)]
enum Step {
    Approve {
        enterprise: usize,
        center: usize,
        fee_fen: i64,
        small: bool,
        declared: bool,
        days: i32,
    },
    Post {
        pick: usize,
        share: i64,
    },
    Reverse {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Settle,
    /// Pay the oldest statement with something due.
    Pay,
    /// Repay a share of the first receivable outstanding.
    Repay {
        share: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..4, 0usize..4, 1i64..80_000_000, any::<bool>(), prop::bool::weighted(0.9), 0i32..366)
            .prop_map(|(enterprise, center, fee_fen, small, declared, days)| Step::Approve {
                enterprise, center, fee_fen, small, declared, days
            }),
        6 => (any::<usize>(), 1i64..120).prop_map(|(pick, share)| Step::Post { pick, share }),
        1 => any::<usize>().prop_map(|pick| Step::Reverse { pick }),
        1 => any::<usize>().prop_map(|pick| Step::Cancel { pick }),
        1 => Just(Step::Settle),
        1 => Just(Step::Pay),
        1 => (1i64..=100).prop_map(|share| Step::Repay { share }),
    ]
}

/// Runs `steps` under `policy` over the pure state machine, checking the invariants
/// after every command; returns how many commands were accepted.
fn run_steps(policy: &ProgrammePolicy, steps: &[Step]) -> Result<usize, TestCaseError> {
    let year = policy.year();
    let first_day = Date::from_ymd(year.get() as i32, 1, 1).expect("date");
    let mut state = LedgerState::new();
    let mut clock = i64::from(first_day.days_since_epoch()) * 86_400_000;
    let mut sink = Vec::new();
    let mut accepted = 0;
    let mut vouchers: Vec<(VoucherId, Uscc, Date)> = Vec::new();
    let mut invoices: Vec<(Uscc, InvoiceNumber)> = Vec::new();
    let mut commands = vec![Command::PublishPolicy {
        policy: policy.clone(),
    }];
    for index in 0..4usize {
        commands.push(Command::RegisterCenter {
            center: center(index),
            name: name(&format!("Center {index}")),
            tier: FacilityTier::ALL[index % 3],
            listing_basis: ListingBasis::PlanningLayout,
            capacity: CenterCapacity {
                intelligent_pflops: Some([150, 100, 99, 20][index]),
                racks: Some([2_000, 10, 1_000, 999][index]),
            },
        });
        commands.push(Command::RegisterEnterprise {
            enterprise: enterprise(index),
            name: name(&format!("Enterprise {index}")),
        });
    }
    let mut run = |state: &mut LedgerState, command: Command, clock: &mut i64| {
        *clock += 60_000;
        sink.clear();
        let result = state.execute(&Envelope::new(Timestamp(*clock), command), &mut sink);
        let violations = state.check_invariants();
        (result, violations)
    };
    for command in commands {
        let (result, violations) = run(&mut state, command, &mut clock);
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
    }
    for (number, step) in steps.iter().enumerate() {
        let command = match step {
            Step::Approve {
                enterprise: enterprise_index,
                center: center_index,
                fee_fen,
                small,
                declared,
                days,
            } => {
                let voucher = VoucherId::from_u128(number as u128 + 1);
                let fee = Money::from_fen(*fee_fen).expect("fee");
                let center_code = center(*center_index);
                let term_end = first_day.plus_days(*days);
                vouchers.push((voucher, center_code, term_end));
                Command::ApproveVoucher(ApproveVoucher {
                    voucher,
                    year,
                    enterprise: enterprise(*enterprise_index),
                    center: center_code,
                    contract_number: ContractNumber::parse(&format!("P-{number}"))
                        .expect("contract"),
                    contract_fee: fee,
                    term_start: first_day,
                    term_end,
                    requested: fee,
                    enterprise_class: if *small {
                        EnterpriseClass::SmallOrMedium
                    } else {
                        EnterpriseClass::Standard
                    },
                    declarations: if *declared {
                        Declarations::of(&Declaration::ALL)
                    } else {
                        Declarations::NONE
                    },
                })
            }
            Step::Post { pick, share } if !vouchers.is_empty() => {
                let (voucher, center_code, _) = vouchers[pick % vouchers.len()];
                let proof = PaymentProof::parse(&format!("PV-{number}")).expect("proof");
                let number = InvoiceNumber::parse(&format!("N{number}")).expect("number");
                invoices.push((center_code, number.clone()));
                Command::PostInvoice(PostInvoice {
                    center: center_code,
                    voucher,
                    invoice_number: number,
                    amount: Money::from_fen(share * 100_000).expect("amount"),
                    issue_date: first_day,
                    delivery_proof: DeliveryProof::parse("acceptance").expect("proof"),
                    // Mostly with a proof of payment: a reimbursement year refuses the
                    // others (PAYMENT_PROOF_MISSING), a center-payee year records it.
                    payment_proof: (share % 7 != 0).then_some(proof),
                })
            }
            Step::Reverse { pick } if !invoices.is_empty() => {
                let (center_code, number) = invoices[pick % invoices.len()].clone();
                Command::ReverseInvoice {
                    center: center_code,
                    invoice_number: number,
                    reason: reason("credit note"),
                }
            }
            Step::Cancel { pick } if !vouchers.is_empty() => Command::CancelVoucher {
                voucher: vouchers[pick % vouchers.len()].0,
                reason: reason("terminated"),
            },
            Step::Settle => Command::CreateSettlementRun {
                run: SettlementRunId::from_u128(number as u128 + 1),
                year,
            },
            Step::Pay => {
                let (due, _) = state.statements_page(None, 1, usize::MAX, |statement| {
                    statement.state != StatementState::Paid && !statement.net.is_zero()
                });
                let Some(statement) = due.first() else {
                    continue;
                };
                Command::ConfirmPayment {
                    statement: statement.id,
                    bank_reference: BankReference::parse(&format!("PAY-{number}"))
                        .expect("reference"),
                    amount: statement.net,
                    value_date: Timestamp(clock).date(),
                }
            }
            Step::Repay { share } => {
                // The payee that owes: a center, or an enterprise in a reimbursement year;
                // on odd shares, what it owes a stacked second source.
                let to_second = share % 2 == 1;
                let owing = if to_second {
                    state
                        .second_center_years()
                        .find(|(_, books)| !books.outstanding().is_zero())
                        .map(|((payee, _), books)| (*payee, books.outstanding()))
                } else {
                    state
                        .center_years()
                        .find(|(_, books)| !books.outstanding().is_zero())
                        .map(|((payee, _), books)| (*payee, books.outstanding()))
                };
                let Some((payee, outstanding)) = owing else {
                    continue;
                };
                let amount =
                    Money::from_fen((outstanding.to_fen().expect("fen") * share / 100).max(1))
                        .expect("amount");
                let bank_reference =
                    BankReference::parse(&format!("REPAY-{number}")).expect("reference");
                let value_date = Timestamp(clock).date();
                if to_second {
                    Command::RecordSecondSourceRepayment {
                        center: payee,
                        year,
                        amount,
                        bank_reference,
                        value_date,
                    }
                } else {
                    Command::RecordRepayment {
                        center: payee,
                        year,
                        amount,
                        bank_reference,
                        value_date,
                    }
                }
            }
            _ => continue,
        };
        let (result, violations) = run(&mut state, command, &mut clock);
        prop_assert!(
            violations.is_empty(),
            "after step {}: {:#?}",
            number,
            violations
        );
        if result.is_ok() {
            accepted += 1;
        }
    }
    Ok(accepted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_invariants_hold_under_every_preset_this_build_runs(
        steps in prop::collection::vec(step(), 1..120)
    ) {
        for name in PRESETS {
            run_steps(&preset(name), &steps)?;
        }
    }
}

#[test]
fn each_rule_is_exercised_by_the_random_programmes() {
    // Not a property: a fixed walk that shows the generator reaches the new rules.
    let steps: Vec<Step> = (0..40)
        .map(|index| Step::Approve {
            enterprise: index % 4,
            center: index % 4,
            fee_fen: 10_000_000 + index as i64,
            small: index % 2 == 0,
            declared: index % 5 != 0,
            days: 364,
        })
        .collect();
    for name in PRESETS {
        let accepted = run_steps(&preset(name), &steps).expect("invariants hold");
        assert!(accepted > 0, "{name} accepted nothing");
    }
}

// ------------------------------------------------------------------------ the demo

/// The bureau's HTML report of a demo year: a reimbursement year has the enterprises'
/// table (one row per payee, totals equal to the books), a stacked year the second
/// source's section (its figures equal to its book); other years have neither.
fn report_shows_payees_and_second_source(ledger: &Ledger, policy: &ProgrammePolicy, name: &str) {
    use voucher_ledger::report::{html::Page, report_html};
    let year = policy.year();
    let page = report_html(&ledger.reader(), year, Page::File).expect("report");
    let fen_of = |id: &str| -> Option<String> {
        let at = page.find(&format!("id=\"{id}\""))?;
        let rest = &page[at..];
        let start = rest.find("data-fen=\"")? + "data-fen=\"".len();
        Some(rest[start..start + rest[start..].find('"')?].to_string())
    };
    let state = ledger.state();
    let rules = policy.rules();
    assert_eq!(
        page.contains("id=\"payee-table\""),
        rules.payee == Payee::Enterprise,
        "{name}"
    );
    if rules.payee == Payee::Enterprise {
        let payees = state
            .center_years()
            .filter(|((_, books_year), _)| *books_year == year)
            .count();
        let table = &page[page.find("id=\"payee-table\"").expect("table")..];
        let table = &table[..table.find("</table>").expect("table end")];
        assert_eq!(table.matches("<tr data-uscc=").count(), payees, "{name}");
        let paid = state.year(year).expect("book").paid;
        assert_eq!(
            fen_of("payees-total-paid"),
            Some(paid.to_fen_wide().to_string()),
            "{name}"
        );
    }
    assert_eq!(
        page.contains("id=\"second-source\""),
        rules.second_source.is_some(),
        "{name}"
    );
    if let Some(book) = state.second_year(year) {
        assert_eq!(
            fen_of("second-paid"),
            Some(book.paid.to_fen_wide().to_string())
        );
        assert_eq!(
            fen_of("second-redeemed"),
            Some(book.usage.redeemed.to_fen_wide().to_string())
        );
    }
}

fn small_demo(policy: Option<ProgrammePolicy>) -> DemoConfig {
    DemoConfig {
        seed: 13,
        year: policy.as_ref().map_or(2026, |policy| policy.year().get()),
        centers: 8,
        enterprises: 80,
        contracts: 300,
        invoices: 3_000,
        policy,
    }
}

#[test]
fn the_demo_runs_a_small_year_of_every_preset() {
    for name in PRESETS {
        let directory = tempfile::tempdir().expect("tempdir");
        let (mut ledger, _) =
            Ledger::open(directory.path(), LedgerOptions::default()).expect("open");
        let policy = preset(name);
        let result = run_demo(&mut ledger, &small_demo(Some(policy.clone())), |_, _| {});
        let tally = result.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(tally.invoices_posted > 0, "{name}");
        let state = ledger.state();
        assert!(state.year_closed(policy.year()), "{name}: the year closes");
        let rules = policy.rules();
        let rejected = |code| tally.rejections.get(&code).copied().unwrap_or(0);
        if rules.eligibility.is_some() {
            assert!(rejected(RejectionCode::CenterNotEligible) > 0, "{name}");
        }
        if !rules.required_declarations.is_empty() {
            assert!(rejected(RejectionCode::DeclarationMissing) > 0, "{name}");
        }
        if rules.payee == Payee::Enterprise {
            // Reimbursement: invoices without a proof are refused, and every statement
            // pays an enterprise; the first quarters' are paid.
            assert!(rejected(RejectionCode::PaymentProofMissing) > 0, "{name}");
            let (statements, _) =
                state.statements_page(None, usize::MAX, usize::MAX, |statement| {
                    statement.year == policy.year()
                });
            assert!(!statements.is_empty(), "{name}");
            assert!(statements
                .iter()
                .all(|statement| state.enterprise(&statement.center).is_some()
                    && state.center(&statement.center).is_none()));
            assert!(statements.iter().any(|statement| {
                statement.state == StatementState::Paid && !statement.net.is_zero()
            }));
            let book = state.year(policy.year()).expect("book");
            assert!(!book.paid.is_zero(), "{name}: enterprises were paid");
        }
        if rules.small_enterprise_rate.is_some() {
            let small_rate = state
                .vouchers_sorted()
                .into_iter()
                .filter(|voucher| voucher.terms.programme.rate_basis == RateBasis::SmallEnterprise)
                .count();
            assert!(small_rate > 0, "{name}: some small firms got the 50% rate");
        }
        if rules.second_source.is_some() {
            // Stacked funding: vouchers hold second shares, runs issue the second
            // source's statements beside the programme's, and the province paid some.
            assert!(state
                .vouchers_sorted()
                .iter()
                .any(|voucher| !voucher.second.subsidy_total.is_zero()));
            let (statements, _) =
                state.statements_page(None, usize::MAX, usize::MAX, |statement| {
                    statement.source == FundingSource::Second
                });
            assert!(!statements.is_empty(), "{name}: second statements");
            let second = state.second_year(policy.year()).expect("second book");
            assert!(!second.paid.is_zero(), "{name}: the second source paid");
            // Clawbacks of second subsidies were owed to it and recovered (offset by its
            // later statements, or repaid).
            assert!(!second.clawed_back.is_zero(), "{name}: {second:?}");
            assert!(
                !second.offset.plus(second.repaid).is_zero(),
                "{name}: {second:?}"
            );
            // A snapshot's image of a stacked year reads back as the same state.
            let image = state.to_image();
            let mut bytes = Vec::new();
            voucher_ledger::storage::snapshot::encode_image(&image, &mut bytes);
            let read = voucher_ledger::storage::snapshot::decode_image(&bytes).expect("image");
            assert_eq!(read, image, "{name}: the image round-trips");
        }
        drop(state);
        report_shows_payees_and_second_source(&ledger, &policy, name);
        let image = ledger.state().to_image();
        ledger.close().expect("close");
        // Reopened from the snapshot the close wrote: the same projections.
        let (reopened, _) =
            Ledger::open(directory.path(), LedgerOptions::default()).expect("reopen");
        assert_eq!(reopened.state().to_image(), image, "{name}: reopened");
        reopened.close().expect("close");
        let report = verify(directory.path()).expect("verify");
        assert!(report.is_clean(), "{name}: {:?}", report.problems);
    }
}

// ------------------------------------------------------ stacked funding (second source)

/// A 2026 programme stacking a provincial voucher: 10% from a pool of `second_pool`,
/// both together at most `combined` of a contract's fee; city tier rates 30/30/20%.
fn stacked_rules(second_pool: &str, combined: &str) -> String {
    format!(
        "year = 2026\n[second_source]\nname = \"Provincial Voucher\"\nannual_pool = \"{second_pool}\"\nrate = \"0.10\"\ncombined_ceiling = \"{combined}\"\n"
    )
}

/// A stacked year: centers 1 (domestic, 30%) and 2 (other, 20%), enterprises 1 and 2.
fn stacked(second_pool: &str, combined: &str) -> Scenario {
    given(vec![
        published(policy_from(&stacked_rules(second_pool, combined))),
        center_registered(1, FacilityTier::Domestic),
        center_registered(2, FacilityTier::Other),
        enterprise_registered(1),
        enterprise_registered(2),
    ])
}

fn second_share(scenario: &Scenario, voucher: u128) -> (Money, VoucherShare) {
    let found = scenario
        .state
        .voucher(&voucher_id(voucher))
        .expect("voucher");
    (found.terms.programme.second_face_value, found.second)
}

fn second_pool_usage(scenario: &Scenario) -> Usage {
    scenario
        .state
        .second_year(year())
        .expect("second book")
        .usage
}

/// Posts an invoice; returns (subsidy, second subsidy) of its answer.
fn post_both(scenario: &mut Scenario, command: Command) -> (Money, Money) {
    let (reply, _) = scenario.when_ok(command);
    let (outcome, second) = reply.invoice_outcome().expect("an invoice outcome");
    (outcome.subsidy, second)
}

#[test]
fn a_stacked_voucher_holds_a_second_share_and_an_invoice_earns_both_subsidies() {
    let mut scenario = stacked("50000000.00", "0.40");
    assert_eq!(
        scenario
            .state
            .second_year(year())
            .expect("second book")
            .pool,
        money("50000000.00")
    );
    // Given a stacked year, when a voucher is approved for a 10,000.00 contract,
    let (reply, events) = scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    let Reply::VoucherApproved { face_value, .. } = reply else {
        panic!("{reply:?}")
    };
    // then it holds 3,000.00 on the city's pool and the enterprise's cap, and 1,000.00
    // (10%) on the second pool, recorded on the approval.
    assert_eq!(face_value, money("3000.00"));
    let [Event::VoucherApproved(approved)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(approved.programme.second_face_value, money("1000.00"));
    assert_eq!(second_pool_usage(&scenario).held, money("1000.00"));
    assert_eq!(
        scenario.state.enterprise_usage(&enterprise(1), year()).held,
        money("3000.00")
    );
    // When an invoice of 1,000.01 is posted, it earns ⌊30%⌋ = 300.00 and ⌊10%⌋ = 100.00,
    // both recorded on the redemption.
    let (reply, events) = scenario.when_ok(post(1, 1, "INV-1", "1000.01"));
    assert_eq!(
        reply,
        Reply::StackedInvoiceOutcome {
            outcome: InvoiceOutcome {
                subsidy: money("300.00"),
                sequence: scenario.state.last_sequence(),
                duplicate: false,
                reversed: false,
            },
            second_subsidy: money("100.00"),
        }
    );
    let [Event::InvoiceRedeemed(redeemed)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (redeemed.subsidy, redeemed.second_subsidy),
        (money("300.00"), money("100.00"))
    );
    let (face, share) = second_share(&scenario, 1);
    assert_eq!(face, money("1000.00"));
    assert_eq!(share.remaining, money("900.00"));
    assert_eq!(share.subsidy_total, money("100.00"));
    assert_eq!(second_pool_usage(&scenario).redeemed, money("100.00"));
    // A retry answers both subsidies again and changes nothing.
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-1", "1000.01")),
        (money("300.00"), money("100.00"))
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn the_combined_ceiling_is_reached_to_the_fen_and_the_second_share_is_the_one_cut() {
    // Combined ceiling 35% < 30% + 10%: the second share is cut to 5% of the fee.
    let mut scenario = stacked("50000000.00", "0.35");
    scenario.when_ok(approve(1, 1, 1, "1000000.01", "1000000.01"));
    let (face, share) = second_share(&scenario, 1);
    let voucher = scenario.state.voucher(&voucher_id(1)).expect("voucher");
    // ⌊30% × 1,000,000.01⌋ = 300,000.00; ⌊35% × fee⌋ = 350,000.00; so 50,000.00 is left
    // for the second source, not ⌊10% × fee⌋ = 100,000.00.
    assert_eq!(voucher.terms.face_value, money("300000.00"));
    assert_eq!(face, money("50000.00"));
    assert_eq!(share.remaining, money("50000.00"));
    // The first invoice uses the whole second share (its 10% is exactly 50,000.00),
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-1", "500000.00")),
        (money("150000.00"), money("50000.00"))
    );
    // the second earns only the city's subsidy, and the fee is invoiced in full:
    let (reply, _) = scenario.when_ok(post(1, 1, "INV-2", "500000.01"));
    assert!(matches!(reply, Reply::InvoiceOutcome(_)), "{reply:?}");
    assert_eq!(
        reply.invoice_outcome().map(|(outcome, _)| outcome.subsidy),
        Some(money("150000.00"))
    );
    // both sources together: exactly ⌊35% × 1,000,000.01⌋ = 350,000.00, to the fen.
    let voucher = scenario.state.voucher(&voucher_id(1)).expect("voucher");
    assert_eq!(voucher.combined_subsidy(), money("350000.00"));
    assert_eq!(voucher.invoiced_total, money("1000000.01"));
    // Nothing is left of either share: a further invoice is refused as exhausted... the
    // fee is used up first.
    scenario.when_rejected(
        post(1, 1, "INV-3", "0.01"),
        RejectionCode::ContractFeeExceeded,
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_voucher_is_exhausted_only_when_both_shares_are() {
    let mut scenario = stacked("50000000.00", "0.40");
    // A voucher requesting 100.00 of the city: its second share is still 10% of the fee.
    scenario.when_ok(approve(1, 1, 1, "10000.00", "100.00"));
    assert_eq!(second_share(&scenario, 1).0, money("1000.00"));
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-1", "1000.00")),
        (money("100.00"), money("100.00"))
    );
    // The city's share is used up; the second source still pays its 10%.
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-2", "1000.00")),
        (Money::ZERO, money("100.00"))
    );
    scenario.then_no_invariant_is_broken();
    // With both shares used up before the fee is, the voucher is exhausted: combined
    // ceiling 30%, a city voucher of 2,500.00 on a 10,000.00 contract leaves 500.00 for
    // the second source.
    let mut scenario = stacked("50000000.00", "0.30");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "2500.00"));
    assert_eq!(second_share(&scenario, 1).0, money("500.00"));
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-1", "5000.00")),
        (money("1500.00"), money("500.00"))
    );
    assert_eq!(
        post_both(&mut scenario, post(1, 1, "INV-2", "3500.00")),
        (money("1000.00"), Money::ZERO)
    );
    // 8,500.00 of 10,000.00 invoiced, nothing left of either share: refused.
    scenario.when_rejected(post(1, 1, "INV-3", "1.00"), RejectionCode::VoucherExhausted);
    let voucher = scenario.state.voucher(&voucher_id(1)).expect("voucher");
    assert_eq!(voucher.combined_subsidy(), money("3000.00"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn an_unsettled_reversal_on_a_cancelled_voucher_frees_both_pools() {
    let mut scenario = stacked("50000000.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    post_both(&mut scenario, post(1, 1, "A-1", "1000.00")); // 300.00 + 100.00
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(1),
        reason: reason("contract terminated"),
    });
    // Given a cancelled voucher, when its unsettled invoice is reversed, then neither
    // subsidy goes back to the voucher: both are released to their pools.
    let (reply, _) = scenario.when_ok(reverse(1, "A-1"));
    let (outcome, second) = reply.reversal_outcome().expect("a reversal");
    assert!(!outcome.returned_to_voucher && !outcome.clawback);
    assert_eq!(second, money("100.00"));
    let (_, share) = second_share(&scenario, 1);
    assert_eq!(share.remaining, Money::ZERO);
    assert_eq!(share.released, money("1000.00"));
    let book = scenario.state.second_year(year()).expect("book");
    assert_eq!(book.usage.used(), Money::ZERO);
    assert_eq!(book.released, money("1000.00"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_returned_payment_of_the_second_sources_statement_reopens_only_it() {
    let mut scenario = stacked("50000000.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    post_both(&mut scenario, post(1, 1, "A-1", "1000.00"));
    let statements = run_of(&mut scenario, 1);
    let second = statements
        .iter()
        .find(|statement| statement.source == FundingSource::Second)
        .expect("the second source's statement");
    let reference = BankReference::parse("PROV-PAY-1").expect("reference");
    scenario.when_ok_as(
        bureau(),
        Command::ConfirmPayment {
            statement: second.id,
            bank_reference: reference.clone(),
            amount: money("100.00"),
            value_date: scenario.now().date(),
        },
    );
    assert_eq!(
        scenario.state.second_year(year()).expect("book").paid,
        money("100.00")
    );
    scenario.when_ok_as(
        bureau(),
        Command::RecordPaymentReturned {
            statement: second.id,
            bank_reference: reference,
            reason: reason("account closed"),
        },
    );
    let book = scenario.state.second_year(year()).expect("book");
    assert_eq!(book.paid, Money::ZERO);
    assert_eq!(book.standing_open, money("100.00"));
    assert_eq!(
        scenario
            .state
            .statement(&second.id)
            .expect("statement")
            .state,
        StatementState::Returned
    );
    // The programme's statement and books are untouched.
    assert_eq!(scenario.state.year(year()).expect("book").paid, Money::ZERO);
    assert_eq!(
        scenario
            .state
            .statement(&statements[0].id)
            .expect("statement")
            .state,
        StatementState::Open
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_second_pool_that_runs_dry_lowers_the_top_up_never_the_city_voucher() {
    // The second pool holds 1,500.00: enough for one and a half 1,000.00 shares.
    let mut scenario = stacked("1500.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    scenario.when_ok(approve(2, 1, 1, "10000.00", "10000.00"));
    scenario.when_ok(approve(3, 2, 1, "10000.00", "10000.00"));
    assert_eq!(second_share(&scenario, 1).0, money("1000.00"));
    assert_eq!(second_share(&scenario, 2).0, money("500.00"));
    assert_eq!(second_share(&scenario, 3).0, Money::ZERO);
    // The city's vouchers are whole.
    for voucher in 1..=3 {
        assert_eq!(
            scenario
                .state
                .voucher(&voucher_id(voucher))
                .expect("voucher")
                .terms
                .face_value,
            money("3000.00")
        );
    }
    assert_eq!(second_pool_usage(&scenario).held, money("1500.00"));
    // An invoice on the voucher without a second share is answered as in any year.
    let (reply, _) = scenario.when_ok(post(1, 3, "INV-3", "1000.00"));
    assert!(matches!(reply, Reply::InvoiceOutcome(_)), "{reply:?}");
    // Cancelling voucher 1 gives its second share back to the second pool.
    scenario.when_ok(Command::CancelVoucher {
        voucher: voucher_id(1),
        reason: reason("withdrawn"),
    });
    assert_eq!(second_share(&scenario, 1).1.released, money("1000.00"));
    assert_eq!(second_pool_usage(&scenario).held, money("500.00"));
    scenario.when_ok(approve(4, 2, 1, "10000.00", "10000.00"));
    assert_eq!(second_share(&scenario, 4).0, money("1000.00"));
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_run_issues_each_payee_a_second_statement_and_each_funder_pays_its_own() {
    let mut scenario = stacked("50000000.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    scenario.when_ok(approve(2, 2, 2, "10000.00", "10000.00"));
    post_both(&mut scenario, post(1, 1, "A-1", "1000.00")); // 300.00 + 100.00
    post_both(&mut scenario, post(1, 1, "A-2", "2000.00")); // 600.00 + 200.00
    post_both(&mut scenario, post(2, 2, "B-1", "1000.00")); // 200.00 + 100.00
                                                            // Given three redemptions at two centers, when a run is created,
    let statements = run_of(&mut scenario, 1);
    // then each center gets the programme's statement and the second source's, at the
    // same cutoff.
    let summary: Vec<_> = statements
        .iter()
        .map(|statement| {
            (
                statement.center,
                statement.source,
                statement.invoices,
                statement.gross,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (center(1), FundingSource::Primary, 2, money("900.00")),
            (center(1), FundingSource::Second, 2, money("300.00")),
            (center(2), FundingSource::Primary, 1, money("200.00")),
            (center(2), FundingSource::Second, 1, money("100.00")),
        ]
    );
    assert!(statements
        .iter()
        .all(|statement| statement.cutoff == statements[0].cutoff));
    // Each statement is paid by its own funder, with its own bank reference.
    for (index, statement) in statements.iter().enumerate() {
        scenario.when_ok_as(
            bureau(),
            Command::ConfirmPayment {
                statement: statement.id,
                bank_reference: BankReference::parse(&format!("PAY-{index}")).expect("ref"),
                amount: statement.net,
                value_date: scenario.now().date(),
            },
        );
    }
    assert_eq!(
        scenario.state.year(year()).expect("book").paid,
        money("1100.00")
    );
    assert_eq!(
        scenario.state.second_year(year()).expect("book").paid,
        money("400.00")
    );
    // A center's account counts what the bureau paid it; the province paid the rest.
    assert_eq!(
        scenario
            .state
            .center(&center(1))
            .expect("center")
            .paid_total,
        money("900.00")
    );
    assert_eq!(
        scenario
            .state
            .source_payee_year(FundingSource::Second, &center(1), year())
            .expect("books")
            .paid,
        money("300.00")
    );
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_reversal_takes_back_both_subsidies_and_a_clawback_is_owed_to_each_source() {
    let mut scenario = stacked("50000000.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    post_both(&mut scenario, post(1, 1, "A-1", "1000.00")); // 300.00 + 100.00
    post_both(&mut scenario, post(1, 1, "A-2", "1000.00")); // 300.00 + 100.00
                                                            // Unsettled: both subsidies go back to their shares of the active voucher.
    let (reply, events) = scenario.when_ok(reverse(1, "A-2"));
    let (outcome, second) = reply.reversal_outcome().expect("a reversal");
    assert_eq!(
        (outcome.subsidy, second),
        (money("300.00"), money("100.00"))
    );
    assert!(!outcome.clawback && outcome.returned_to_voucher);
    let [Event::InvoiceReversed(reversed)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(reversed.second_subsidy, money("100.00"));
    assert_eq!(second_share(&scenario, 1).1.remaining, money("900.00"));
    // Settled, then reversed by the bureau: a clawback owed to each source.
    let statements = run_of(&mut scenario, 1);
    assert_eq!(statements.len(), 2);
    let (reply, _) = scenario.when_ok_as(bureau(), reverse(1, "A-1"));
    let (outcome, second) = reply.reversal_outcome().expect("a reversal");
    assert!(outcome.clawback);
    assert_eq!(
        (outcome.subsidy, second),
        (money("300.00"), money("100.00"))
    );
    let owed = |scenario: &Scenario, source| {
        scenario
            .state
            .source_payee_year(source, &center(1), year())
            .expect("books")
            .outstanding()
    };
    assert_eq!(owed(&scenario, FundingSource::Primary), money("300.00"));
    assert_eq!(owed(&scenario, FundingSource::Second), money("100.00"));
    for statement in &statements {
        let now = scenario.state.statement(&statement.id).expect("statement");
        let expected = match statement.source {
            FundingSource::Primary => money("300.00"),
            FundingSource::Second => money("100.00"),
        };
        assert_eq!(now.clawed_back, expected);
    }
    assert_eq!(second_pool_usage(&scenario).receivable, money("100.00"));
    assert_eq!(
        second_share(&scenario, 1).1.clawback_outstanding,
        money("100.00")
    );
    scenario.then_no_invariant_is_broken();
    // The next run offsets each source's receivable against that source's statement.
    post_both(&mut scenario, post(1, 1, "A-3", "500.00")); // 150.00 + 50.00
    let statements = run_of(&mut scenario, 2);
    let offsets: Vec<_> = statements
        .iter()
        .map(|statement| (statement.source, statement.clawback_offset, statement.net))
        .collect();
    assert_eq!(
        offsets,
        vec![
            (FundingSource::Primary, money("150.00"), Money::ZERO),
            (FundingSource::Second, money("50.00"), Money::ZERO),
        ]
    );
    // The center repays the second source the rest; not more than it owes it.
    let repay = |amount: &str, reference: &str| Command::RecordSecondSourceRepayment {
        center: center(1),
        year: year(),
        amount: money(amount),
        bank_reference: BankReference::parse(reference).expect("reference"),
        value_date: date("2026-01-01"),
    };
    scenario.when_rejected_as(
        bureau(),
        repay("50.01", "PROV-REPAY-1"),
        RejectionCode::RepaymentExceedsReceivable,
    );
    scenario.when_ok_as(bureau(), repay("50.00", "PROV-REPAY-1"));
    assert_eq!(owed(&scenario, FundingSource::Second), Money::ZERO);
    assert_eq!(owed(&scenario, FundingSource::Primary), money("150.00"));
    let (_, share) = second_share(&scenario, 1);
    assert_eq!(share.clawback_outstanding, Money::ZERO);
    assert_eq!(second_pool_usage(&scenario).receivable, Money::ZERO);
    // The same bank reference again is the same repayment (answered, nothing appended).
    let (_, events) = scenario.when_ok_as(bureau(), repay("50.00", "PROV-REPAY-1"));
    assert!(events.is_empty());
    scenario.then_no_invariant_is_broken();
}

#[test]
fn a_second_source_repayment_in_a_year_without_one_is_refused() {
    let mut scenario = given(programme());
    let rejection = scenario.when_rejected_as(
        bureau(),
        Command::RecordSecondSourceRepayment {
            center: center(1),
            year: year(),
            amount: money("1.00"),
            bank_reference: BankReference::parse("PROV-1").expect("reference"),
            value_date: date("2026-01-01"),
        },
        RejectionCode::RepaymentExceedsReceivable,
    );
    assert!(
        rejection.detail.contains("no second funding source"),
        "{rejection}"
    );
}

#[test]
fn closing_a_stacked_year_releases_both_shares() {
    let mut scenario = stacked("50000000.00", "0.40");
    scenario.when_ok(approve(1, 1, 1, "10000.00", "10000.00"));
    post_both(&mut scenario, post(1, 1, "A-1", "1000.00"));
    scenario.advance_to(at_date("2027-03-02"));
    scenario.when_ok_as(bureau(), Command::CloseProgrammeYear { year: year() });
    let (_, share) = second_share(&scenario, 1);
    assert_eq!(share.remaining, Money::ZERO);
    assert_eq!(share.released, money("900.00"));
    let book = scenario.state.second_year(year()).expect("book");
    assert_eq!(book.usage.held, Money::ZERO);
    assert_eq!(book.usage.redeemed, money("100.00"));
    assert_eq!(book.released, money("900.00"));
    scenario.then_no_invariant_is_broken();
}
