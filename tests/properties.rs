//! Property tests over random command sequences: the limits always hold, no balance goes
//! below zero, and replaying the events (or a snapshot image) gives the live state.

mod common;

use common::*;
use proptest::prelude::*;
use voucher_ledger::domain::*;

fn small_programme() -> Vec<Event> {
    let defaults = ProgrammePolicy::hangzhou_defaults(year());
    let policy = ProgrammePolicy::new(
        year(),
        money("100000.00"),
        money("30000.00"),
        defaults.contract_fee_ceiling(),
        [
            defaults.rate_for(FacilityTier::Domestic),
            defaults.rate_for(FacilityTier::MaasMultimodal),
            defaults.rate_for(FacilityTier::Other),
        ],
    )
    .expect("policy");
    vec![
        Event::PolicyPublished {
            policy: Box::new(policy),
        },
        center_registered(1, FacilityTier::Domestic),
        center_registered(2, FacilityTier::Other),
        center_registered(3, FacilityTier::MaasMultimodal),
        enterprise_registered(1),
        enterprise_registered(2),
        enterprise_registered(3),
        enterprise_registered(4),
    ]
}

fn fen_amount(max_fen: i64) -> impl Strategy<Value = Money> {
    (0..=max_fen).prop_map(|fen| Money::from_fen(fen).expect("fen"))
}

fn command_strategy() -> impl Strategy<Value = Command> {
    let approve = (
        1u128..=12,
        1usize..=4,
        1usize..=3,
        fen_amount(20_000_000),
        fen_amount(8_000_000),
        0i32..400,
    )
        .prop_map(
            |(voucher, enterprise_index, center_index, fee, requested, length)| {
                Command::ApproveVoucher(ApproveVoucher {
                    voucher: voucher_id(voucher),
                    year: year(),
                    enterprise: enterprise(enterprise_index),
                    center: center(center_index),
                    contract_number: ContractNumber::parse(&format!("C-{voucher}-{center_index}"))
                        .expect("contract"),
                    contract_fee: fee,
                    term_start: date("2026-02-01"),
                    term_end: date("2026-02-01").plus_days(length),
                    requested,
                })
            },
        );
    let post = (
        1usize..=3,
        1u128..=12,
        0u32..40,
        fen_amount(3_000_000),
        0i32..420,
    )
        .prop_map(|(center_index, voucher, number, amount, day)| {
            Command::PostInvoice(PostInvoice {
                center: center(center_index),
                voucher: voucher_id(voucher),
                invoice_number: invoice_number(&format!("INV-{number}")),
                amount,
                issue_date: date("2026-02-01").plus_days(day),
                delivery_proof: DeliveryProof::parse("proof").expect("proof"),
            })
        });
    let reverse_invoice = (1usize..=3, 0u32..40)
        .prop_map(|(center_index, number)| reverse(center_index, &format!("INV-{number}")));
    let cancel = (1u128..=12).prop_map(|voucher| Command::CancelVoucher {
        voucher: voucher_id(voucher),
        reason: reason("cancel"),
    });
    let expire = Just(Command::ExpireVouchers);
    let settle = (1u128..=8).prop_map(|id| Command::CreateSettlementRun {
        run: SettlementRunId::from_u128(id),
        year: year(),
    });
    let status = (1usize..=3, 0u8..3).prop_map(|(center_index, status)| Command::SetCenterStatus {
        center: center(center_index),
        status: [
            CenterStatus::Active,
            CenterStatus::Suspended,
            CenterStatus::Delisted,
        ][status as usize],
        reason: reason("status"),
    });
    let cap = (1usize..=4, fen_amount(9_000_000)).prop_map(|(enterprise_index, cap)| {
        Command::GrantCapOverride {
            enterprise: enterprise(enterprise_index),
            year: year(),
            cap,
            reason: reason("override"),
        }
    });
    prop_oneof![
        4 => approve,
        8 => post,
        2 => reverse_invoice,
        1 => cancel,
        1 => expire,
        1 => settle,
        1 => status,
        1 => cap,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn limits_hold_and_replay_gives_the_live_state(commands in proptest::collection::vec(command_strategy(), 1..120)) {
        let programme = small_programme();
        let mut live = LedgerState::new();
        let mut log: Vec<SequencedEvent> = Vec::new();
        for (index, event) in programme.iter().enumerate() {
            live.apply(index as u64 + 1, Timestamp(1), event);
            log.push(SequencedEvent { sequence: index as u64 + 1, at: Timestamp(1), origin: Origin::system("test"), event: event.clone() });
        }
        let mut clock = 1_000;
        for command in commands {
            clock += 1_000;
            let before = live.clone();
            let result = live.execute(&Envelope::new(Timestamp(clock), command), &mut log);
            if result.is_err() {
                prop_assert_eq!(&live, &before, "a rejection changed the state");
            }
            let violations = live.check_invariants();
            prop_assert!(violations.is_empty(), "{:#?}", violations);
            // The limits, stated directly as well as through check_invariants.
            let policy = live.policy(year()).expect("policy");
            prop_assert!(live.pool_usage(year()).used() <= policy.annual_pool());
            for index in 1..=4 {
                let usage = live.enterprise_usage(&enterprise(index), year());
                prop_assert!(usage.used() <= live.enterprise_cap(&enterprise(index), year()).expect("cap"));
            }
            for voucher in live.vouchers_sorted() {
                let ceiling = voucher.terms.contract_fee.as_decimal() * voucher.terms.ceiling.as_decimal();
                prop_assert!(voucher.subsidy_total.as_decimal() <= ceiling);
                prop_assert!(voucher.subsidy_total.plus(voucher.released) <= voucher.terms.face_value);
                prop_assert!(voucher.remaining <= voucher.terms.face_value);
            }
        }
        let mut replayed = LedgerState::new();
        for sequenced in &log {
            replayed.apply(sequenced.sequence, sequenced.at, &sequenced.event);
        }
        prop_assert_eq!(&replayed, &live);
        prop_assert!(LedgerState::from_image(live.to_image()).same_projections(&live));
    }
}
