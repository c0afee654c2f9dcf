//! Shared fixtures for the integration tests: valid codes, a standard programme, and a
//! given/when/then harness over the pure state machine.
#![allow(dead_code)]

use voucher_ledger::domain::*;
use voucher_ledger::tooling::population::{
    center_uscc, enterprise_uscc, policy_with_pool, CenterEntry, Population, Style,
};

pub fn money(text: &str) -> Money {
    Money::parse("amount", text).expect("test amount")
}

pub fn date(text: &str) -> Date {
    Date::parse("date", text).expect("test date")
}

/// The start (00:00 UTC) of a day, as a command's time.
pub fn at_date(text: &str) -> Timestamp {
    Timestamp(i64::from(date(text).days_since_epoch()) * 86_400_000)
}

pub fn year() -> ProgrammeYear {
    ProgrammeYear::new(2026).expect("year")
}

pub fn center(index: usize) -> Uscc {
    center_uscc(index).expect("center uscc")
}

pub fn enterprise(index: usize) -> Uscc {
    enterprise_uscc(index).expect("enterprise uscc")
}

pub fn voucher_id(number: u128) -> VoucherId {
    VoucherId::from_u128(number)
}

pub fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("reason")
}

pub fn name(text: &str) -> LegalName {
    LegalName::parse(text).expect("name")
}

pub fn invoice_number(text: &str) -> InvoiceNumber {
    InvoiceNumber::parse(text).expect("invoice number")
}

pub fn policy_published(pool: &str) -> Event {
    Event::PolicyPublished {
        policy: Box::new(policy_with_pool(year(), money(pool)).expect("policy")),
    }
}

/// "Center {index}" in the planning layout, of `tier`.
pub fn center_registered(index: usize, tier: FacilityTier) -> Event {
    CenterEntry {
        tier,
        ..Style::Plain.center(index).expect("center")
    }
    .registered()
}

/// "Enterprise {index}".
pub fn enterprise_registered(index: usize) -> Event {
    Style::Plain
        .enterprise(index)
        .expect("enterprise")
        .registered()
}

/// Policy (pool 250,000,000.00), center 1 domestic (30%), center 2 other (20%),
/// enterprises 1 and 2.
pub fn programme() -> Vec<Event> {
    vec![
        policy_published("250000000.00"),
        center_registered(1, FacilityTier::Domestic),
        center_registered(2, FacilityTier::Other),
        enterprise_registered(1),
        enterprise_registered(2),
    ]
}

/// The standard programme as commands: the 2026 policy, center 1 (domestic, planning
/// layout), center 2 (other, matchmaking partner) and enterprise 1.
pub fn registration_commands() -> Vec<Command> {
    let plain = |index| Style::Plain.center(index).expect("center");
    Population {
        policy: ProgrammePolicy::hangzhou_defaults(year()),
        centers: vec![
            plain(1),
            CenterEntry {
                tier: FacilityTier::Other,
                listing_basis: ListingBasis::MatchmakingPartner,
                ..plain(2)
            },
        ],
        enterprises: vec![Style::Plain.enterprise(1).expect("enterprise")],
        vouchers: Vec::new(),
    }
    .registration_commands()
}

pub fn approve(
    voucher: u128,
    enterprise_index: usize,
    center_index: usize,
    fee: &str,
    requested: &str,
) -> Command {
    Command::ApproveVoucher(ApproveVoucher {
        voucher: voucher_id(voucher),
        year: year(),
        enterprise: enterprise(enterprise_index),
        center: center(center_index),
        contract_number: ContractNumber::parse(&format!("C-{voucher}")).expect("contract"),
        contract_fee: money(fee),
        term_start: date("2026-01-01"),
        term_end: date("2026-12-31"),
        requested: money(requested),
        enterprise_class: Default::default(),
        declarations: Default::default(),
    })
}

pub fn post(center_index: usize, voucher: u128, number: &str, amount: &str) -> Command {
    Command::PostInvoice(PostInvoice {
        center: center(center_index),
        voucher: voucher_id(voucher),
        invoice_number: invoice_number(number),
        amount: money(amount),
        issue_date: date("2026-06-30"),
        delivery_proof: DeliveryProof::parse("acceptance/2026/06").expect("proof"),
        payment_proof: None,
    })
}

pub fn reverse(center_index: usize, number: &str) -> Command {
    Command::ReverseInvoice {
        center: center(center_index),
        invoice_number: invoice_number(number),
        reason: reason("credit note"),
    }
}

/// A given/when/then scenario over the pure state machine.
pub struct Scenario {
    pub state: LedgerState,
    clock: i64,
}

pub fn given(events: Vec<Event>) -> Scenario {
    let mut state = LedgerState::new();
    let mut clock = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    for event in &events {
        clock += 1;
        let sequence = state.last_sequence() + 1;
        state.apply(sequence, Timestamp(clock), event);
    }
    Scenario { state, clock }
}

impl Scenario {
    /// Runs a command that must be accepted; returns the events it appended.
    pub fn when_ok(&mut self, command: Command) -> (Reply, Vec<Event>) {
        match self.when(command) {
            Ok(result) => result,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    /// Runs a command that must be rejected with `code`; checks nothing changed.
    pub fn when_rejected(&mut self, command: Command, code: RejectionCode) -> Rejection {
        let before = self.state.clone();
        match self.when(command) {
            Ok((_, events)) => panic!("expected {}, got events {events:?}", code.name()),
            Err(rejection) => {
                assert_eq!(rejection.code, code, "{rejection}");
                assert_eq!(self.state, before, "a rejected command changed the state");
                rejection
            }
        }
    }

    pub fn when(&mut self, command: Command) -> Result<(Reply, Vec<Event>), Rejection> {
        self.clock += 1_000;
        self.when_at(Timestamp(self.clock), command)
    }

    pub fn when_at(
        &mut self,
        at: Timestamp,
        command: Command,
    ) -> Result<(Reply, Vec<Event>), Rejection> {
        let mut sink = Vec::new();
        let reply = self.state.execute(&Envelope::new(at, command), &mut sink)?;
        Ok((
            reply,
            sink.into_iter().map(|sequenced| sequenced.event).collect(),
        ))
    }

    pub fn then_no_invariant_is_broken(&self) {
        let violations = self.state.check_invariants();
        assert!(violations.is_empty(), "{violations:#?}");
    }
}

// ------------------------------------------- settlement-era helpers (issue 8)

/// The origin of a command sent by a principal of `role` named `principal`, with the
/// client's request id if `request_id` is given.
pub fn origin(role: PrincipalRole, principal: &str, request_id: Option<&str>) -> Origin {
    Origin::new(
        Principal::new(role, principal).expect("principal"),
        request_id.map(|id| RequestId::parse(id).expect("request id")),
    )
}

/// The finance bureau, without a request id.
pub fn bureau() -> Origin {
    origin(PrincipalRole::Bureau, "finance-bureau", None)
}

/// Center `index` acting for itself (a center principal), without a request id.
pub fn center_principal(index: usize) -> Origin {
    origin(PrincipalRole::Center, &format!("center-{index}"), None)
}

impl Scenario {
    /// Moves the scenario's clock forward to `at`: the next `when*` command is stamped
    /// one second after it (on the same day).
    pub fn advance_to(&mut self, at: Timestamp) {
        assert!(
            at.0 >= self.clock,
            "the scenario's clock only moves forward"
        );
        self.clock = at.0;
    }

    /// The time the last command was (or the given events were) stamped with.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.clock)
    }

    /// Runs a command sent by `origin`; returns the reply and the events it appended,
    /// with their sequences, times and origins.
    pub fn when_as(
        &mut self,
        origin: Origin,
        command: Command,
    ) -> Result<(Reply, Vec<SequencedEvent>), Rejection> {
        self.clock += 1_000;
        let envelope = Envelope::from_origin(Timestamp(self.clock), origin, command);
        let mut sink = Vec::new();
        let reply = self.state.execute(&envelope, &mut sink)?;
        Ok((reply, sink))
    }

    /// Runs a command sent by `origin` that must be accepted.
    pub fn when_ok_as(&mut self, origin: Origin, command: Command) -> (Reply, Vec<SequencedEvent>) {
        match self.when_as(origin, command) {
            Ok(result) => result,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    /// Runs a command sent by `origin` that must be rejected with `code`; checks nothing
    /// changed.
    pub fn when_rejected_as(
        &mut self,
        origin: Origin,
        command: Command,
        code: RejectionCode,
    ) -> Rejection {
        let before = self.state.clone();
        match self.when_as(origin, command) {
            Ok((_, events)) => panic!("expected {}, got events {events:?}", code.name()),
            Err(rejection) => {
                assert_eq!(rejection.code, code, "{rejection}");
                assert_eq!(self.state, before, "a rejected command changed the state");
                rejection
            }
        }
    }
}

/// A `VoucherApproved` fact for fixtures that need many vouchers: voucher `voucher`
/// (contract `C-{voucher}`) of enterprise `enterprise_index` at center `center_index`
/// (domestic, 30%), fee 10.00, face 1.00, term 2026, redemption window to 2027-03-01.
pub fn small_voucher_approved(
    voucher: u128,
    enterprise_index: usize,
    center_index: usize,
) -> Event {
    let rate = Rate::parse("rate", "0.30").expect("rate");
    Event::VoucherApproved(Box::new(VoucherApproved {
        voucher: voucher_id(voucher),
        year: year(),
        enterprise: enterprise(enterprise_index),
        center: center(center_index),
        contract_number: ContractNumber::parse(&format!("C-{voucher}")).expect("contract"),
        contract_fee: money("10.00"),
        term_start: date("2026-01-01"),
        term_end: date("2026-12-31"),
        redemption_window_end: date("2027-03-01"),
        tier: FacilityTier::Domestic,
        rate,
        ceiling: rate,
        requested: money("1.00"),
        face_value: money("1.00"),
        programme: Default::default(),
    }))
}
