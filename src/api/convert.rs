//! Conversions between proto messages and domain types. Parsing goes through the domain
//! constructors, so a request that converts is valid; errors name the proto field.

use tonic::Status;

use super::errors::{invalid, invalid_field};
use super::proto;
use crate::domain::programme::{
    CapacityEligibility, CapacityRequirement, CenterCapacity, Declaration, Declarations,
    EnterpriseClass, FundingSource, Payee, ProgrammeRules, RateBasis, SecondSource,
    SmallEnterpriseRate,
};
use crate::domain::state::{CenterAccount, EnterpriseAccount};
use crate::domain::{
    BankReference, CenterStatus, ContractNumber, Date, DeliveryProof, Event, FacilityTier,
    InvoiceNumber, LedgerState, LegalName, ListingBasis, Money, PaymentProof, PostInvoice,
    ProgrammePolicy, ProgrammeYear, Rate, Reason, SequencedEvent, SettlementRunId, Statement,
    StatementId, StatementState, Uscc, ValidationError, Voucher, VoucherId, VoucherStatus,
};

fn renamed(field: &'static str, mut error: ValidationError) -> Status {
    error.field = field;
    invalid(error)
}

pub fn uscc(field: &'static str, text: &str) -> Result<Uscc, Status> {
    Uscc::parse(field, text).map_err(invalid)
}

pub fn money(field: &'static str, text: &str) -> Result<Money, Status> {
    Money::parse(field, text).map_err(invalid)
}

/// An amount that must be above zero (fees, invoice amounts, caps).
pub fn positive_money(field: &'static str, text: &str) -> Result<Money, Status> {
    let amount = money(field, text)?;
    if amount.is_zero() {
        return Err(invalid(ValidationError::new(
            field,
            text,
            "must be above zero",
        )));
    }
    Ok(amount)
}

pub fn date(field: &'static str, text: &str) -> Result<Date, Status> {
    Date::parse(field, text).map_err(invalid)
}

pub fn year(field: &'static str, value: u32) -> Result<ProgrammeYear, Status> {
    ProgrammeYear::new(value).map_err(|error| renamed(field, error))
}

pub fn voucher_id(field: &'static str, text: &str) -> Result<VoucherId, Status> {
    VoucherId::parse(text).map_err(|error| renamed(field, error))
}

pub fn reason(field: &'static str, text: &str) -> Result<Reason, Status> {
    Reason::parse(text).map_err(|error| renamed(field, error))
}

pub fn legal_name(field: &'static str, text: &str) -> Result<LegalName, Status> {
    LegalName::parse(text).map_err(|error| renamed(field, error))
}

pub fn contract_number(field: &'static str, text: &str) -> Result<ContractNumber, Status> {
    ContractNumber::parse(text).map_err(|error| renamed(field, error))
}

pub fn invoice_number(field: &'static str, text: &str) -> Result<InvoiceNumber, Status> {
    InvoiceNumber::parse(text).map_err(|error| renamed(field, error))
}

pub fn bank_reference(field: &'static str, text: &str) -> Result<BankReference, Status> {
    BankReference::parse(text).map_err(|error| renamed(field, error))
}

pub fn run_id(field: &'static str, text: &str) -> Result<SettlementRunId, Status> {
    SettlementRunId::parse(text).map_err(|error| renamed(field, error))
}

pub fn statement_id(field: &'static str, value: u64) -> Result<StatementId, Status> {
    if value == 0 {
        return Err(invalid_field(
            field,
            "must name a statement (its id is above 0)",
        ));
    }
    Ok(StatementId(value))
}

pub fn statement_state(field: &'static str, value: i32) -> Result<Option<StatementState>, Status> {
    match proto::StatementState::try_from(value) {
        Ok(proto::StatementState::Unspecified) => Ok(None),
        Ok(proto::StatementState::Open) => Ok(Some(StatementState::Open)),
        Ok(proto::StatementState::Paid) => Ok(Some(StatementState::Paid)),
        Ok(proto::StatementState::Returned) => Ok(Some(StatementState::Returned)),
        Err(_) => Err(invalid_field(
            field,
            format!("{value} is not a statement state (1 open, 2 paid, 3 returned)"),
        )),
    }
}

pub fn tier(field: &'static str, value: i32) -> Result<FacilityTier, Status> {
    match proto::FacilityTier::try_from(value) {
        Ok(proto::FacilityTier::Domestic) => Ok(FacilityTier::Domestic),
        Ok(proto::FacilityTier::MaasMultimodal) => Ok(FacilityTier::MaasMultimodal),
        Ok(proto::FacilityTier::Other) => Ok(FacilityTier::Other),
        _ => Err(invalid_field(
            field,
            format!("{value} is not a facility tier (1 domestic, 2 maas_multimodal, 3 other)"),
        )),
    }
}

pub fn listing_basis(field: &'static str, value: i32) -> Result<ListingBasis, Status> {
    match proto::ListingBasis::try_from(value) {
        Ok(proto::ListingBasis::PlanningLayout) => Ok(ListingBasis::PlanningLayout),
        Ok(proto::ListingBasis::MatchmakingPartner) => Ok(ListingBasis::MatchmakingPartner),
        _ => Err(invalid_field(
            field,
            format!("{value} is not a listing basis (1 planning_layout, 2 matchmaking_partner)"),
        )),
    }
}

pub fn center_status(field: &'static str, value: i32) -> Result<CenterStatus, Status> {
    match proto::CenterStatus::try_from(value) {
        Ok(proto::CenterStatus::Active) => Ok(CenterStatus::Active),
        Ok(proto::CenterStatus::Suspended) => Ok(CenterStatus::Suspended),
        Ok(proto::CenterStatus::Delisted) => Ok(CenterStatus::Delisted),
        _ => Err(invalid_field(
            field,
            format!("{value} is not a center status (1 active, 2 suspended, 3 delisted)"),
        )),
    }
}

/// An invoice's fields as text, borrowed from wherever the request was decoded: a
/// generated `proto::Invoice` (unary `PostInvoice`) or the batch fast path's slices of the
/// request body (`api::batch_wire`). Both parse through [`invoice_of_center`] (the unary
/// call by way of [`invoice_from_text`], the batch with its center parsed once).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct InvoiceText<'a> {
    pub center: &'a str,
    pub voucher_id: &'a str,
    pub invoice_number: &'a str,
    pub amount: &'a str,
    pub issue_date: &'a str,
    pub delivery_proof: &'a str,
    pub invoice_code: &'a str,
    pub payment_proof: &'a str,
}

impl<'a> InvoiceText<'a> {
    pub fn of(invoice: &'a proto::Invoice) -> InvoiceText<'a> {
        InvoiceText {
            center: &invoice.center,
            voucher_id: &invoice.voucher_id,
            invoice_number: &invoice.invoice_number,
            amount: &invoice.amount,
            issue_date: &invoice.issue_date,
            delivery_proof: &invoice.delivery_proof,
            invoice_code: &invoice.invoice_code,
            payment_proof: &invoice.payment_proof,
        }
    }
}

/// Parses one invoice; `Err` carries the message of the first bad field.
pub fn invoice(invoice: &proto::Invoice) -> Result<PostInvoice, Status> {
    invoice_from_text(InvoiceText::of(invoice))
}

/// Parses one invoice from its text fields; `Err` carries the message of the first bad
/// field.
pub fn invoice_from_text(invoice: InvoiceText<'_>) -> Result<PostInvoice, Status> {
    let center = uscc("center", invoice.center)?;
    invoice_of_center(center, invoice)
}

/// [`invoice_from_text`] of an invoice whose center (its first field) is parsed already:
/// `center` is what `invoice.center` reads as.
pub fn invoice_of_center(center: Uscc, invoice: InvoiceText<'_>) -> Result<PostInvoice, Status> {
    Ok(PostInvoice {
        center,
        voucher: voucher_id("voucher_id", invoice.voucher_id)?,
        invoice_number: if invoice.invoice_code.is_empty() {
            invoice_number("invoice_number", invoice.invoice_number)?
        } else {
            InvoiceNumber::from_code_and_number(invoice.invoice_code, invoice.invoice_number)
                .map_err(invalid)?
        },
        amount: positive_money("amount", invoice.amount)?,
        issue_date: date("issue_date", invoice.issue_date)?,
        delivery_proof: DeliveryProof::parse(invoice.delivery_proof)
            .map_err(|error| renamed("delivery_proof", error))?,
        payment_proof: if invoice.payment_proof.is_empty() {
            None
        } else {
            Some(
                PaymentProof::parse(invoice.payment_proof)
                    .map_err(|error| renamed("payment_proof", error))?,
            )
        },
    })
}

/// What the enterprise pays the center for an invoice: the amount minus the subsidy
/// (discount at the point of sale), or all of it in a reimbursement year (the bureau
/// pays the enterprise the subsidy); nothing once the invoice is reversed (void).
pub fn enterprise_pays(payee: Payee, amount: Money, subsidy: Money, reversed: bool) -> Money {
    match (reversed, payee) {
        (true, _) => Money::ZERO,
        (false, Payee::Center) => amount.saturating_minus(subsidy),
        (false, Payee::Enterprise) => amount,
    }
}

/// The proto form of a funding source.
pub fn funding_source_to_proto(source: FundingSource) -> i32 {
    match source {
        FundingSource::Primary => proto::FundingSource::Primary as i32,
        FundingSource::Second => proto::FundingSource::Second as i32,
    }
}

/// A request's funding source: unspecified is the programme's own.
pub fn funding_source(field: &'static str, value: i32) -> Result<FundingSource, Status> {
    match proto::FundingSource::try_from(value) {
        Ok(proto::FundingSource::Unspecified | proto::FundingSource::Primary) => {
            Ok(FundingSource::Primary)
        }
        Ok(proto::FundingSource::Second) => Ok(FundingSource::Second),
        Err(_) => Err(Status::invalid_argument(format!(
            "{field}: {value} is not a funding source (1 primary, 2 second)"
        ))),
    }
}

/// The proto form of who a year's statements pay.
pub fn payee_to_proto(payee: Payee) -> i32 {
    match payee {
        Payee::Center => proto::Payee::Center as i32,
        Payee::Enterprise => proto::Payee::Enterprise as i32,
    }
}

pub fn policy_from_proto(policy: &proto::Policy) -> Result<ProgrammePolicy, Status> {
    let programme_year = year("policy.year", policy.year)?;
    let defaults = ProgrammePolicy::hangzhou_defaults(programme_year);
    let amount = |field: &'static str, text: &str, default: Money| {
        if text.is_empty() {
            Ok(default)
        } else {
            positive_money(field, text)
        }
    };
    let rate = |field: &'static str, text: &str, default: Rate| {
        if text.is_empty() {
            Ok(default)
        } else {
            Rate::parse(field, text).map_err(invalid)
        }
    };
    ProgrammePolicy::new(
        programme_year,
        amount(
            "policy.annual_pool",
            &policy.annual_pool,
            defaults.annual_pool(),
        )?,
        amount(
            "policy.default_enterprise_cap",
            &policy.default_enterprise_cap,
            defaults.default_enterprise_cap(),
        )?,
        rate(
            "policy.contract_fee_ceiling",
            &policy.contract_fee_ceiling,
            defaults.contract_fee_ceiling(),
        )?,
        [
            rate(
                "policy.rate_domestic",
                &policy.rate_domestic,
                defaults.rate_for(FacilityTier::Domestic),
            )?,
            rate(
                "policy.rate_maas_multimodal",
                &policy.rate_maas_multimodal,
                defaults.rate_for(FacilityTier::MaasMultimodal),
            )?,
            rate(
                "policy.rate_other",
                &policy.rate_other,
                defaults.rate_for(FacilityTier::Other),
            )?,
        ],
    )
    .and_then(|built| match policy.redemption_grace_days {
        None => Ok(built),
        Some(days) => built.with_redemption_grace_days(u16::try_from(days).unwrap_or(u16::MAX)),
    })
    .map_err(invalid)?
    .with_rules(rules_from_proto(policy)?)
    .map_err(invalid)
}

// ------------------------------------------------------------------ domain to proto

pub fn policy_to_proto(policy: &ProgrammePolicy) -> proto::Policy {
    proto::Policy {
        year: policy.year().get(),
        annual_pool: policy.annual_pool().to_string(),
        default_enterprise_cap: policy.default_enterprise_cap().to_string(),
        contract_fee_ceiling: policy.contract_fee_ceiling().to_string(),
        rate_domestic: policy.rate_for(FacilityTier::Domestic).to_string(),
        rate_maas_multimodal: policy.rate_for(FacilityTier::MaasMultimodal).to_string(),
        rate_other: policy.rate_for(FacilityTier::Other).to_string(),
        redemption_grace_days: Some(u32::from(policy.redemption_grace_days())),
        ..rules_to_proto(policy.rules())
    }
}

pub fn tier_to_proto(tier: FacilityTier) -> i32 {
    match tier {
        FacilityTier::Domestic => proto::FacilityTier::Domestic as i32,
        FacilityTier::MaasMultimodal => proto::FacilityTier::MaasMultimodal as i32,
        FacilityTier::Other => proto::FacilityTier::Other as i32,
    }
}

pub fn listing_basis_to_proto(basis: ListingBasis) -> i32 {
    match basis {
        ListingBasis::PlanningLayout => proto::ListingBasis::PlanningLayout as i32,
        ListingBasis::MatchmakingPartner => proto::ListingBasis::MatchmakingPartner as i32,
    }
}

pub fn center_status_to_proto(status: CenterStatus) -> i32 {
    match status {
        CenterStatus::Active => proto::CenterStatus::Active as i32,
        CenterStatus::Suspended => proto::CenterStatus::Suspended as i32,
        CenterStatus::Delisted => proto::CenterStatus::Delisted as i32,
    }
}

/// A center with its amounts, which come from its books in `state`.
pub fn center_to_proto(state: &LedgerState, account: &CenterAccount) -> proto::Center {
    proto::Center {
        uscc: account.center.to_string(),
        name: account.name.to_string(),
        tier: tier_to_proto(account.tier),
        listing_basis: listing_basis_to_proto(account.listing_basis),
        status: center_status_to_proto(account.status),
        redeemed_total: account.redeemed_total.to_string(),
        reversed_total: account.reversed_total.to_string(),
        amount_due: state.center_amount_due(&account.center).to_string(),
        clawback_owed: state.center_outstanding(&account.center).to_string(),
        paid_total: account.paid_total.to_string(),
        unsettled: state.center_unsettled(&account.center).to_string(),
        intelligent_pflops: account.capacity.intelligent_pflops,
        racks: account.capacity.racks,
    }
}

pub fn enterprise_to_proto(account: &EnterpriseAccount) -> proto::Enterprise {
    proto::Enterprise {
        uscc: account.enterprise.to_string(),
        name: account.name.to_string(),
        cap_overrides: account
            .cap_overrides
            .iter()
            .map(|(year, granted)| proto::CapOverride {
                year: year.get(),
                cap: granted.cap.to_string(),
                reason: granted.reason.to_string(),
            })
            .collect(),
    }
}

pub fn voucher_to_proto(voucher: &Voucher) -> proto::Voucher {
    let terms = &voucher.terms;
    proto::Voucher {
        voucher_id: terms.voucher.to_string(),
        year: terms.year.get(),
        enterprise: terms.enterprise.to_string(),
        center: terms.center.to_string(),
        contract_number: terms.contract_number.to_string(),
        contract_fee: terms.contract_fee.to_string(),
        term_start: terms.term_start.to_string(),
        term_end: terms.term_end.to_string(),
        tier: tier_to_proto(terms.tier),
        rate: terms.rate.to_string(),
        requested: terms.requested.to_string(),
        face_value: terms.face_value.to_string(),
        remaining: voucher.remaining.to_string(),
        redeemed: voucher.subsidy_total.to_string(),
        invoiced: voucher.invoiced_total.to_string(),
        released: voucher.released.to_string(),
        status: match voucher.status {
            VoucherStatus::Active => proto::VoucherStatus::Active as i32,
            VoucherStatus::Expired => proto::VoucherStatus::Expired as i32,
            VoucherStatus::Cancelled => proto::VoucherStatus::Cancelled as i32,
            VoucherStatus::Withdrawn => proto::VoucherStatus::Withdrawn as i32,
        },
        invoice_count: voucher.invoice_count,
        redemption_window_end: terms.redemption_window_end.to_string(),
        clawback_outstanding: voucher.clawback_outstanding.to_string(),
        enterprise_class: enterprise_class_to_proto(terms.programme.enterprise_class),
        declarations: declarations_to_proto(terms.programme.declarations),
        rate_basis: rate_basis_to_proto(terms.programme.rate_basis),
        second_face_value: terms.programme.second_face_value.to_string(),
        second_remaining: voucher.second.remaining.to_string(),
        second_redeemed: voucher.second.subsidy_total.to_string(),
        ceiling: terms.ceiling.to_string(),
    }
}

pub fn event_to_proto(event: &SequencedEvent, chain_hash: &str) -> proto::EventRecord {
    use proto::event_record::Event as Payload;
    let payload = match &event.event {
        Event::PolicyPublished { policy } => Payload::PolicyPublished(proto::PolicyPublished {
            policy: Some(policy_to_proto(policy)),
        }),
        Event::CenterRegistered {
            center,
            name,
            tier,
            listing_basis,
            capacity,
        } => Payload::CenterRegistered(proto::CenterRegistered {
            center: center.to_string(),
            name: name.to_string(),
            tier: tier_to_proto(*tier),
            listing_basis: listing_basis_to_proto(*listing_basis),
            intelligent_pflops: capacity.intelligent_pflops,
            racks: capacity.racks,
        }),
        Event::CenterStatusChanged {
            center,
            from,
            to,
            reason,
        } => Payload::CenterStatusChanged(proto::CenterStatusChanged {
            center: center.to_string(),
            from: center_status_to_proto(*from),
            to: center_status_to_proto(*to),
            reason: reason.to_string(),
        }),
        Event::EnterpriseRegistered { enterprise, name } => {
            Payload::EnterpriseRegistered(proto::EnterpriseRegistered {
                enterprise: enterprise.to_string(),
                name: name.to_string(),
            })
        }
        Event::CapOverrideGranted {
            enterprise,
            year,
            cap,
            reason,
        } => Payload::CapOverrideGranted(proto::CapOverrideGranted {
            enterprise: enterprise.to_string(),
            year: year.get(),
            cap: cap.to_string(),
            reason: reason.to_string(),
        }),
        Event::RelatedPartyDeclared {
            enterprise,
            center,
            reason,
        } => Payload::RelatedPartyDeclared(proto::RelatedPartyDeclared {
            enterprise: enterprise.to_string(),
            center: center.to_string(),
            reason: reason.to_string(),
        }),
        Event::VoucherApproved(approved) => Payload::VoucherApproved(proto::VoucherApproved {
            voucher_id: approved.voucher.to_string(),
            year: approved.year.get(),
            enterprise: approved.enterprise.to_string(),
            center: approved.center.to_string(),
            contract_number: approved.contract_number.to_string(),
            contract_fee: approved.contract_fee.to_string(),
            term_start: approved.term_start.to_string(),
            term_end: approved.term_end.to_string(),
            tier: tier_to_proto(approved.tier),
            rate: approved.rate.to_string(),
            ceiling: approved.ceiling.to_string(),
            requested: approved.requested.to_string(),
            face_value: approved.face_value.to_string(),
            redemption_window_end: approved.redemption_window_end.to_string(),
            enterprise_class: enterprise_class_to_proto(approved.programme.enterprise_class),
            declarations: declarations_to_proto(approved.programme.declarations),
            rate_basis: rate_basis_to_proto(approved.programme.rate_basis),
            second_face_value: approved.programme.second_face_value.to_string(),
        }),
        Event::InvoiceRedeemed(redeemed) => Payload::InvoiceRedeemed(proto::InvoiceRedeemed {
            voucher_id: redeemed.voucher.to_string(),
            center: redeemed.center.to_string(),
            invoice_number: redeemed.invoice_number.to_string(),
            amount: redeemed.amount.to_string(),
            issue_date: redeemed.issue_date.to_string(),
            delivery_proof: redeemed.delivery_proof.to_string(),
            subsidy: redeemed.subsidy.to_string(),
            payment_proof: redeemed
                .payment_proof
                .as_ref()
                .map(|proof| proof.to_string())
                .unwrap_or_default(),
            second_subsidy: redeemed.second_subsidy.to_string(),
        }),
        Event::InvoiceReversed(reversed) => Payload::InvoiceReversed(proto::InvoiceReversed {
            voucher_id: reversed.voucher.to_string(),
            center: reversed.center.to_string(),
            invoice_number: reversed.invoice_number.to_string(),
            amount: reversed.amount.to_string(),
            subsidy: reversed.subsidy.to_string(),
            clawback: reversed.clawback,
            returned_to_voucher: reversed.returned_to_voucher,
            reason: reversed.reason.to_string(),
            redeemed_sequence: reversed.redeemed_sequence,
            second_subsidy: reversed.second_subsidy.to_string(),
        }),
        Event::VoucherReleased {
            voucher,
            cause,
            released,
            reason,
        } => Payload::VoucherReleased(proto::VoucherReleased {
            voucher_id: voucher.to_string(),
            cause: cause.name().into(),
            released: released.to_string(),
            reason: reason.as_ref().map(ToString::to_string).unwrap_or_default(),
        }),
        Event::CenterSettled {
            center,
            settlement_id,
            redeemed,
            clawback_offset,
            paid,
        } => Payload::CenterSettled(proto::CenterSettled {
            center: center.to_string(),
            settlement_id: settlement_id.to_string(),
            redeemed: redeemed.to_string(),
            clawback_offset: clawback_offset.to_string(),
            paid: paid.to_string(),
        }),
        Event::SettlementRunCreated { run, year } => {
            Payload::SettlementRunCreated(proto::SettlementRunCreated {
                run_id: run.to_string(),
                year: year.get(),
            })
        }
        Event::StatementIssued(issued) => Payload::StatementIssued(proto::StatementIssued {
            statement_id: event.sequence,
            run_id: issued.run.to_string(),
            center: issued.center.to_string(),
            year: issued.year.get(),
            cutoff_sequence: issued.cutoff,
            invoices: issued.invoices,
            gross_subsidy: issued.gross.to_string(),
            clawback_offset: issued.clawback_offset.to_string(),
            net_due: issued.net.to_string(),
            funding_source: funding_source_to_proto(issued.source),
        }),
        Event::PaymentConfirmed {
            statement,
            bank_reference,
            amount,
            value_date,
        } => Payload::PaymentConfirmed(proto::PaymentConfirmed {
            statement_id: statement.0,
            bank_reference: bank_reference.to_string(),
            amount: amount.to_string(),
            value_date: value_date.to_string(),
        }),
        Event::PaymentReturned {
            statement,
            bank_reference,
            amount,
            reason,
        } => Payload::PaymentReturned(proto::PaymentReturned {
            statement_id: statement.0,
            bank_reference: bank_reference.to_string(),
            amount: amount.to_string(),
            reason: reason.to_string(),
        }),
        Event::RepaymentRecorded {
            center,
            year,
            amount,
            bank_reference,
            value_date,
            source,
        } => Payload::RepaymentRecorded(proto::RepaymentRecorded {
            center: center.to_string(),
            year: year.get(),
            amount: amount.to_string(),
            bank_reference: bank_reference.to_string(),
            value_date: value_date.to_string(),
            funding_source: funding_source_to_proto(*source),
        }),
        Event::ProgrammeYearClosed { year } => {
            Payload::ProgrammeYearClosed(proto::ProgrammeYearClosed { year: year.get() })
        }
        Event::PoolAdjusted {
            year,
            previous_pool,
            new_pool,
            reason,
        } => Payload::PoolAdjusted(proto::PoolAdjusted {
            year: year.get(),
            previous_pool: previous_pool.to_string(),
            new_pool: new_pool.to_string(),
            reason: reason.to_string(),
        }),
        Event::ClockConfirmed { reason } => Payload::ClockConfirmed(proto::ClockConfirmed {
            reason: reason.to_string(),
        }),
        Event::ReconciliationRecorded(recorded) => Payload::ReconciliationRecorded(
            crate::api::convert_reconciliation::reconciliation_recorded_to_proto(recorded),
        ),
    };
    proto::EventRecord {
        sequence: event.sequence,
        time_unix_ms: event.at.0,
        r#type: event.event.name().to_string(),
        chain_hash: chain_hash.to_string(),
        principal_role: event.origin.principal.role.name().to_string(),
        principal_name: event.origin.principal.name().to_string(),
        request_id: event
            .origin
            .request_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        event: Some(payload),
    }
}

pub fn statement_state_to_proto(state: StatementState) -> i32 {
    match state {
        StatementState::Open => proto::StatementState::Open as i32,
        StatementState::Paid => proto::StatementState::Paid as i32,
        StatementState::Returned => proto::StatementState::Returned as i32,
    }
}

/// A statement as the API shows it, with its payee's kind and name from `state`. A
/// reimbursement year's statement pays an enterprise: its center fields stay empty.
pub fn statement_to_proto(state: &LedgerState, statement: &Statement) -> proto::Statement {
    let current = statement.current_payment();
    let payee_kind = state.payee_kind(statement.year);
    let payee_name = match payee_kind {
        Payee::Center => state
            .center(&statement.center)
            .map(|account| account.name.to_string()),
        Payee::Enterprise => state
            .enterprise(&statement.center)
            .map(|account| account.name.to_string()),
    }
    .unwrap_or_default();
    let (center, center_name) = match payee_kind {
        Payee::Center => (statement.center.to_string(), payee_name.clone()),
        Payee::Enterprise => (String::new(), String::new()),
    };
    let funder = match statement.source {
        FundingSource::Primary => String::new(),
        FundingSource::Second => state
            .policy(statement.year)
            .and_then(|policy| policy.rules().second_source.as_ref())
            .map(|second| second.name.to_string())
            .unwrap_or_default(),
    };
    proto::Statement {
        statement_id: statement.id.0,
        run_id: statement.run.to_string(),
        funding_source: funding_source_to_proto(statement.source),
        funder,
        center,
        center_name,
        payee_kind: payee_to_proto(payee_kind),
        payee: statement.center.to_string(),
        payee_name,
        year: statement.year.get(),
        cutoff_sequence: statement.cutoff,
        invoices: statement.invoices,
        gross_subsidy: statement.gross.to_string(),
        clawback_offset: statement.clawback_offset.to_string(),
        net_due: statement.net.to_string(),
        state: statement_state_to_proto(statement.state),
        bank_reference: current
            .map(|payment| payment.bank_reference.to_string())
            .unwrap_or_default(),
        value_date: current
            .map(|payment| payment.value_date.to_string())
            .unwrap_or_default(),
        paid_amount: current
            .map(|payment| payment.amount.to_string())
            .unwrap_or_else(|| Money::ZERO.to_string()),
        clawed_back: statement.clawed_back.to_string(),
        payments: statement
            .payments
            .iter()
            .map(|payment| proto::StatementPayment {
                bank_reference: payment.bank_reference.to_string(),
                amount: payment.amount.to_string(),
                value_date: payment.value_date.to_string(),
                returned: payment.returned.is_some(),
                return_reason: payment
                    .returned
                    .as_ref()
                    .map(|(reason, _)| reason.to_string())
                    .unwrap_or_default(),
                sequence: payment.sequence,
            })
            .collect(),
    }
}

// ------------------------------------------------------------- programme rules (issue 13)

fn declaration_from_proto(field: &'static str, value: i32) -> Result<Declaration, Status> {
    match proto::Declaration::try_from(value) {
        Ok(proto::Declaration::NoOtherMunicipalSubsidy) => Ok(Declaration::NoOtherMunicipalSubsidy),
        Ok(proto::Declaration::SuppliersNotAffiliated) => Ok(Declaration::SuppliersNotAffiliated),
        _ => Err(invalid_field(
            field,
            format!(
                "{value} is not a declaration (1 no other municipal subsidy, 2 suppliers not affiliated)"
            ),
        )),
    }
}

/// A repeated `Declaration` field as a set (a repeat is harmless).
pub fn declarations(field: &'static str, values: &[i32]) -> Result<Declarations, Status> {
    values.iter().try_fold(Declarations::NONE, |set, value| {
        Ok(set.with(declaration_from_proto(field, *value)?))
    })
}

pub fn declarations_to_proto(set: Declarations) -> Vec<i32> {
    set.iter()
        .map(|declaration| match declaration {
            Declaration::NoOtherMunicipalSubsidy => {
                proto::Declaration::NoOtherMunicipalSubsidy as i32
            }
            Declaration::SuppliersNotAffiliated => {
                proto::Declaration::SuppliersNotAffiliated as i32
            }
        })
        .collect()
}

pub fn enterprise_class(field: &'static str, value: i32) -> Result<EnterpriseClass, Status> {
    match proto::EnterpriseClass::try_from(value) {
        Ok(proto::EnterpriseClass::Unspecified | proto::EnterpriseClass::Standard) => {
            Ok(EnterpriseClass::Standard)
        }
        Ok(proto::EnterpriseClass::SmallOrMedium) => Ok(EnterpriseClass::SmallOrMedium),
        Err(_) => Err(invalid_field(
            field,
            format!("{value} is not an enterprise class (1 standard, 2 small or medium)"),
        )),
    }
}

pub fn enterprise_class_to_proto(class: EnterpriseClass) -> i32 {
    match class {
        EnterpriseClass::Standard => proto::EnterpriseClass::Standard as i32,
        EnterpriseClass::SmallOrMedium => proto::EnterpriseClass::SmallOrMedium as i32,
    }
}

pub fn rate_basis_to_proto(basis: RateBasis) -> i32 {
    match basis {
        RateBasis::FacilityTier => proto::RateBasis::FacilityTier as i32,
        RateBasis::SmallEnterprise => proto::RateBasis::SmallEnterprise as i32,
    }
}

/// Capacity figures of a center registration (absent: not given).
pub fn capacity(intelligent_pflops: Option<u32>, racks: Option<u32>) -> CenterCapacity {
    CenterCapacity {
        intelligent_pflops,
        racks,
    }
}

/// The programme rules of a proto policy; absent fields mean no such rule.
fn rules_from_proto(policy: &proto::Policy) -> Result<ProgrammeRules, Status> {
    let small_enterprise_rate = match &policy.small_enterprise_rate {
        None => None,
        Some(small) => Some(SmallEnterpriseRate {
            rate: Rate::parse("policy.small_enterprise_rate.rate", &small.rate).map_err(invalid)?,
            cumulative_contract_limit: positive_money(
                "policy.small_enterprise_rate.cumulative_contract_limit",
                &small.cumulative_contract_limit,
            )?,
        }),
    };
    let max_term_days = match policy.max_term_days {
        None => None,
        Some(days) => Some(u16::try_from(days).map_err(|_| {
            invalid_field(
                "policy.max_term_days",
                format!("{days} is not a number of days"),
            )
        })?),
    };
    let eligibility = policy
        .eligibility
        .as_ref()
        .map(|eligibility| CapacityEligibility {
            min_intelligent_pflops: eligibility.min_intelligent_pflops,
            min_racks: eligibility.min_racks,
            require: if eligibility.require_any {
                CapacityRequirement::Any
            } else {
                CapacityRequirement::All
            },
        });
    let payee = match proto::Payee::try_from(policy.payee) {
        Ok(proto::Payee::Unspecified | proto::Payee::Center) => Payee::Center,
        Ok(proto::Payee::Enterprise) => Payee::Enterprise,
        Err(_) => {
            return Err(invalid_field(
                "policy.payee",
                format!("{} is not a payee (1 center, 2 enterprise)", policy.payee),
            ))
        }
    };
    let second_source = match &policy.second_source {
        None => None,
        Some(second) => Some(SecondSource {
            name: legal_name("policy.second_source.name", &second.name)?,
            annual_pool: positive_money("policy.second_source.annual_pool", &second.annual_pool)?,
            rate: Rate::parse("policy.second_source.rate", &second.rate).map_err(invalid)?,
            combined_ceiling: Rate::parse(
                "policy.second_source.combined_ceiling",
                &second.combined_ceiling,
            )
            .map_err(invalid)?,
        }),
    };
    Ok(ProgrammeRules {
        small_enterprise_rate,
        max_term_days,
        eligibility,
        required_declarations: declarations(
            "policy.required_declarations",
            &policy.required_declarations,
        )?,
        payee,
        second_source,
    })
}

/// The rule fields of a proto policy (the rest of the message from `policy_to_proto`).
fn rules_to_proto(rules: &ProgrammeRules) -> proto::Policy {
    proto::Policy {
        small_enterprise_rate: rules.small_enterprise_rate.map(|small| {
            proto::SmallEnterpriseRate {
                rate: small.rate.to_string(),
                cumulative_contract_limit: small.cumulative_contract_limit.to_string(),
            }
        }),
        max_term_days: rules.max_term_days.map(u32::from),
        eligibility: rules
            .eligibility
            .map(|eligibility| proto::CapacityEligibility {
                min_intelligent_pflops: eligibility.min_intelligent_pflops,
                min_racks: eligibility.min_racks,
                require_any: eligibility.require == CapacityRequirement::Any,
            }),
        required_declarations: declarations_to_proto(rules.required_declarations),
        payee: match rules.payee {
            Payee::Center => proto::Payee::Center as i32,
            Payee::Enterprise => proto::Payee::Enterprise as i32,
        },
        second_source: rules
            .second_source
            .as_ref()
            .map(|second| proto::SecondSource {
                name: second.name.to_string(),
                annual_pool: second.annual_pool.to_string(),
                rate: second.rate.to_string(),
                combined_ceiling: second.combined_ceiling.to_string(),
            }),
        ..proto::Policy::default()
    }
}
