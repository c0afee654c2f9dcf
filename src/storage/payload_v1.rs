//! Record format v1's event payloads (read only; format v3 is written now): bincode
//! (standard configuration) through serde, of the shapes below. These shapes are frozen: they are storage's own mirror of what the
//! domain's events looked like when v1 was written, so the domain's types can change
//! without changing (or losing the ability to read) a v1 byte.
//!
//! Field order, variant order and the primitive each value travels as are the format:
//! USCC and text as strings, money as i64 fen, rates as u16 basis points, dates as i32
//! days since 1970-01-01, years as u16, UUIDs as 16 bytes. The committed fixture
//! `tests/fixtures/log-v1.records` pins them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::codec::CodecError;
use crate::domain::{
    CenterStatus, ContractNumber, Date, DeliveryProof, Event, FacilityTier, InvoiceNumber,
    InvoiceRedeemed, InvoiceReversed, LegalName, ListingBasis, Money, ProgrammePolicy,
    ProgrammeYear, Rate, Reason, ReleaseCause, SettlementId, Uscc, VoucherApproved, VoucherId,
};

#[derive(Serialize, Deserialize)]
enum TierV1 {
    Domestic,
    MaasMultimodal,
    Other,
}

#[derive(Serialize, Deserialize)]
enum ListingBasisV1 {
    PlanningLayout,
    MatchmakingPartner,
}

#[derive(Serialize, Deserialize)]
enum CenterStatusV1 {
    Active,
    Suspended,
    Delisted,
}

#[derive(Serialize, Deserialize)]
enum ReleaseCauseV1 {
    Expired,
    Cancelled,
}

#[derive(Serialize, Deserialize)]
struct PolicyV1 {
    year: u16,
    annual_pool: i64,
    default_enterprise_cap: i64,
    contract_fee_ceiling: u16,
    tier_rates: [u16; 3],
}

#[derive(Serialize, Deserialize)]
struct VoucherApprovedV1<'a> {
    voucher: uuid::Uuid,
    year: u16,
    #[serde(borrow)]
    enterprise: Cow<'a, str>,
    #[serde(borrow)]
    center: Cow<'a, str>,
    #[serde(borrow)]
    contract_number: Cow<'a, str>,
    contract_fee: i64,
    term_start: i32,
    term_end: i32,
    tier: TierV1,
    rate: u16,
    ceiling: u16,
    requested: i64,
    face_value: i64,
}

#[derive(Serialize, Deserialize)]
struct InvoiceRedeemedV1<'a> {
    voucher: uuid::Uuid,
    #[serde(borrow)]
    center: Cow<'a, str>,
    #[serde(borrow)]
    invoice_number: Cow<'a, str>,
    amount: i64,
    issue_date: i32,
    #[serde(borrow)]
    delivery_proof: Cow<'a, str>,
    subsidy: i64,
}

#[derive(Serialize, Deserialize)]
struct InvoiceReversedV1<'a> {
    voucher: uuid::Uuid,
    #[serde(borrow)]
    center: Cow<'a, str>,
    #[serde(borrow)]
    invoice_number: Cow<'a, str>,
    amount: i64,
    subsidy: i64,
    clawback: bool,
    returned_to_voucher: bool,
    #[serde(borrow)]
    reason: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
enum EventV1<'a> {
    PolicyPublished {
        policy: PolicyV1,
    },
    CenterRegistered {
        #[serde(borrow)]
        center: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
        tier: TierV1,
        listing_basis: ListingBasisV1,
    },
    CenterStatusChanged {
        #[serde(borrow)]
        center: Cow<'a, str>,
        from: CenterStatusV1,
        to: CenterStatusV1,
        #[serde(borrow)]
        reason: Cow<'a, str>,
    },
    EnterpriseRegistered {
        #[serde(borrow)]
        enterprise: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
    },
    CapOverrideGranted {
        #[serde(borrow)]
        enterprise: Cow<'a, str>,
        year: u16,
        cap: i64,
        #[serde(borrow)]
        reason: Cow<'a, str>,
    },
    RelatedPartyDeclared {
        #[serde(borrow)]
        enterprise: Cow<'a, str>,
        #[serde(borrow)]
        center: Cow<'a, str>,
        #[serde(borrow)]
        reason: Cow<'a, str>,
    },
    VoucherApproved(#[serde(borrow)] VoucherApprovedV1<'a>),
    InvoiceRedeemed(#[serde(borrow)] InvoiceRedeemedV1<'a>),
    InvoiceReversed(#[serde(borrow)] InvoiceReversedV1<'a>),
    VoucherReleased {
        voucher: uuid::Uuid,
        cause: ReleaseCauseV1,
        released: i64,
        #[serde(borrow)]
        reason: Option<Cow<'a, str>>,
    },
    CenterSettled {
        #[serde(borrow)]
        center: Cow<'a, str>,
        settlement_id: uuid::Uuid,
        redeemed: i64,
        clawback_offset: i64,
        paid: i64,
    },
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

// ------------------------------------------------------------------------- decoding

fn tier(tier: TierV1) -> FacilityTier {
    match tier {
        TierV1::Domestic => FacilityTier::Domestic,
        TierV1::MaasMultimodal => FacilityTier::MaasMultimodal,
        TierV1::Other => FacilityTier::Other,
    }
}

fn status(status: CenterStatusV1) -> CenterStatus {
    match status {
        CenterStatusV1::Active => CenterStatus::Active,
        CenterStatusV1::Suspended => CenterStatus::Suspended,
        CenterStatusV1::Delisted => CenterStatus::Delisted,
    }
}

fn uscc(text: &str) -> Result<Uscc, CodecError> {
    Ok(Uscc::parse("uscc", text)?)
}

fn money(fen: i64) -> Result<Money, CodecError> {
    Ok(Money::from_total_fen(fen)?)
}

fn rate(basis_points: u16) -> Result<Rate, CodecError> {
    Ok(Rate::from_basis_points(basis_points)?)
}

fn year(year: u16) -> Result<ProgrammeYear, CodecError> {
    Ok(ProgrammeYear::new(u32::from(year))?)
}

fn voucher_id(uuid: uuid::Uuid) -> Result<VoucherId, CodecError> {
    Ok(VoucherId::from_uuid(uuid)?)
}

fn from_v1(event: EventV1<'_>) -> Result<Event, CodecError> {
    Ok(match event {
        EventV1::PolicyPublished { policy } => Event::PolicyPublished {
            policy: Box::new(
                ProgrammePolicy::new(
                    year(policy.year)?,
                    money(policy.annual_pool)?,
                    money(policy.default_enterprise_cap)?,
                    rate(policy.contract_fee_ceiling)?,
                    [
                        rate(policy.tier_rates[0])?,
                        rate(policy.tier_rates[1])?,
                        rate(policy.tier_rates[2])?,
                    ],
                )?
                // Format v1 had no grace days.
                .with_redemption_grace_days(0)?,
            ),
        },
        EventV1::CenterRegistered {
            center,
            name,
            tier: center_tier,
            listing_basis,
        } => Event::CenterRegistered {
            center: uscc(&center)?,
            name: LegalName::from_stored(&name)?,
            tier: tier(center_tier),
            listing_basis: match listing_basis {
                ListingBasisV1::PlanningLayout => ListingBasis::PlanningLayout,
                ListingBasisV1::MatchmakingPartner => ListingBasis::MatchmakingPartner,
            },
            capacity: Default::default(),
        },
        EventV1::CenterStatusChanged {
            center,
            from,
            to,
            reason,
        } => Event::CenterStatusChanged {
            center: uscc(&center)?,
            from: status(from),
            to: status(to),
            reason: Reason::from_stored(&reason)?,
        },
        EventV1::EnterpriseRegistered { enterprise, name } => Event::EnterpriseRegistered {
            enterprise: uscc(&enterprise)?,
            name: LegalName::from_stored(&name)?,
        },
        EventV1::CapOverrideGranted {
            enterprise,
            year: cap_year,
            cap,
            reason,
        } => Event::CapOverrideGranted {
            enterprise: uscc(&enterprise)?,
            year: year(cap_year)?,
            cap: money(cap)?,
            reason: Reason::from_stored(&reason)?,
        },
        EventV1::RelatedPartyDeclared {
            enterprise,
            center,
            reason,
        } => Event::RelatedPartyDeclared {
            enterprise: uscc(&enterprise)?,
            center: uscc(&center)?,
            reason: Reason::from_stored(&reason)?,
        },
        EventV1::VoucherApproved(approved) => Event::VoucherApproved(Box::new(VoucherApproved {
            voucher: voucher_id(approved.voucher)?,
            year: year(approved.year)?,
            enterprise: uscc(&approved.enterprise)?,
            center: uscc(&approved.center)?,
            contract_number: ContractNumber::from_stored(&approved.contract_number)?,
            contract_fee: money(approved.contract_fee)?,
            term_start: Date::from_days_since_epoch(approved.term_start),
            term_end: Date::from_days_since_epoch(approved.term_end),
            // Format v1 had no grace: a voucher expired the day after its term.
            redemption_window_end: Date::from_days_since_epoch(approved.term_end),
            tier: tier(approved.tier),
            rate: rate(approved.rate)?,
            ceiling: rate(approved.ceiling)?,
            requested: money(approved.requested)?,
            face_value: money(approved.face_value)?,
            programme: Default::default(),
        })),
        EventV1::InvoiceRedeemed(redeemed) => Event::InvoiceRedeemed(InvoiceRedeemed {
            voucher: voucher_id(redeemed.voucher)?,
            center: uscc(&redeemed.center)?,
            invoice_number: InvoiceNumber::from_stored(&redeemed.invoice_number)?,
            amount: money(redeemed.amount)?,
            issue_date: Date::from_days_since_epoch(redeemed.issue_date),
            delivery_proof: DeliveryProof::from_stored(&redeemed.delivery_proof)?,
            subsidy: money(redeemed.subsidy)?,
            payment_proof: None,
            second_subsidy: Money::ZERO,
        }),
        EventV1::InvoiceReversed(reversed) => Event::InvoiceReversed(InvoiceReversed {
            voucher: voucher_id(reversed.voucher)?,
            center: uscc(&reversed.center)?,
            invoice_number: InvoiceNumber::from_stored(&reversed.invoice_number)?,
            // Format v1 did not record which redemption a reversal undid.
            redeemed_sequence: 0,
            amount: money(reversed.amount)?,
            subsidy: money(reversed.subsidy)?,
            clawback: reversed.clawback,
            returned_to_voucher: reversed.returned_to_voucher,
            reason: Reason::from_stored(&reversed.reason)?,
            second_subsidy: Money::ZERO,
        }),
        EventV1::VoucherReleased {
            voucher,
            cause,
            released,
            reason,
        } => Event::VoucherReleased {
            voucher: voucher_id(voucher)?,
            cause: match cause {
                ReleaseCauseV1::Expired => ReleaseCause::Expired,
                ReleaseCauseV1::Cancelled => ReleaseCause::Cancelled,
            },
            released: money(released)?,
            reason: reason
                .map(|reason| Reason::from_stored(&reason))
                .transpose()?,
        },
        EventV1::CenterSettled {
            center,
            settlement_id,
            redeemed,
            clawback_offset,
            paid,
        } => Event::CenterSettled {
            center: uscc(&center)?,
            settlement_id: SettlementId::from_uuid(settlement_id)?,
            redeemed: money(redeemed)?,
            clawback_offset: money(clawback_offset)?,
            paid: money(paid)?,
        },
    })
}

/// Decodes a whole v1 payload, refusing trailing bytes.
pub fn decode(payload: &[u8]) -> Result<Event, CodecError> {
    let (event, used): (EventV1<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(payload, bincode_config()).map_err(|error| {
            CodecError {
                reason: error.to_string(),
            }
        })?;
    if used != payload.len() {
        return Err(CodecError {
            reason: format!("{} trailing bytes", payload.len() - used),
        });
    }
    from_v1(event)
}

// ------------------------------------------------------------- v1 invoice index entry

/// The v1 invoice index entry (after the `VLIX` magic and version).
#[derive(Serialize, Deserialize)]
pub(super) struct IndexEntryV1<'a> {
    voucher: uuid::Uuid,
    amount: i64,
    issue_date: i32,
    #[serde(borrow)]
    delivery_proof: Cow<'a, str>,
    subsidy: i64,
    sequence: u64,
    settlement_epoch: u32,
    reversed: bool,
}

/// Decodes a v1 index entry body into the domain's entry.
pub(super) fn decode_index_entry(bytes: &[u8]) -> Result<crate::domain::InvoiceEntry, CodecError> {
    let (entry, used): (IndexEntryV1<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(bytes, bincode_config()).map_err(|error| {
            CodecError {
                reason: error.to_string(),
            }
        })?;
    if used != bytes.len() {
        return Err(CodecError {
            reason: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(crate::domain::InvoiceEntry {
        voucher: voucher_id(entry.voucher)?,
        amount: money(entry.amount)?,
        issue_date: Date::from_days_since_epoch(entry.issue_date),
        delivery_proof: DeliveryProof::from_stored(&entry.delivery_proof)?,
        subsidy: money(entry.subsidy)?,
        second_subsidy: Money::ZERO,
        sequence: entry.sequence,
        // Format v1 kept only whether it was reversed, not when.
        reversed_at: entry.reversed.then_some(0),
    })
}
