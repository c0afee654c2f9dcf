//! Record format v2's payloads (v3 keeps them: it changed the chain rule only): who sent
//! the command, then the event, written field by field with `storage::codec` (no serde,
//! no bincode), in the order below. The event type is in the record frame; this layout
//! is per type.
//!
//! ```text
//! origin  = role u8 (0 bureau, 1 center, 2 enterprise, 3 auditor, 4 system)
//!           | principal name (text) | request id (text, empty when none)
//! text    = u32 length + UTF-8;  money = i64 fen;  date = i32 days since 1970-01-01
//! uuid    = 16 bytes;  uscc = 18 ASCII bytes;  year = u16;  rate = u16 basis points
//! ```
//!
//! Every field a type has is written; nothing is optional except where an `u8` flag says
//! so (a release's reason). `tests/fixtures/` pins every type's bytes.
//!
//! **Programme extension** (types 1, 2, 7, 8, 9, 13 and 16; see `docs/programmes.md`):
//! after the fields above, a record may carry the tag byte [`PROGRAMME_EXTENSION_TAG`]
//! and the programme's fields (a policy's rules, a center's capacity, a voucher's
//! approval terms, a redemption's proof of payment and second subsidy, a reversal's second
//! subsidy, the funding source of a statement or a repayment). It is
//! written only when they differ from the default, so a Hangzhou 2024 record is byte for
//! byte what it was, and a payload without it (every v1/v2 record) reads as the default.
//!
//! ```text
//! rules    = option(rate, money limit) small-enterprise rate | u16 max term days (0 none)
//!            | option(option u32 pflops, option u32 racks, u8 require 0 all 1 any)
//!            | u8 declaration bits | u8 payee (0 center, 1 enterprise)
//!            | option(text name, money pool, rate, rate combined ceiling) second source
//! capacity = option u32 PFLOPS | option u32 racks        (option = u8 0/1, then the value)
//! terms    = u8 class (0 standard, 1 small or medium) | u8 declaration bits
//!            | u8 rate basis (0 facility tier, 1 small enterprise)
//!            [| money second face value]      (stacked funding; absent when zero)
//! redeemed = option(text payment proof)        (a reimbursement year's proof of payment)
//!            [| money second subsidy]          (stacked funding; absent when zero)
//! reversed = money second subsidy              (types 9; never zero)
//! source   = u8 1 (the second source)          (types 13 and 16; absent: the programme's)
//! ```
//!
//! A trailing field in brackets is read when the payload has bytes left; a value that
//! would be written by leaving it out (zero, the programme's own source) is refused, so
//! every event has one encoding.

use super::codec::{CodecError, Reader, Writer};
use crate::domain::programme::{
    ApprovalTerms, CapacityEligibility, CapacityRequirement, CenterCapacity, Declarations,
    EnterpriseClass, FundingSource, Payee, ProgrammeRules, RateBasis, SecondSource,
    SmallEnterpriseRate,
};
use crate::domain::{
    BankReference, CenterStatus, DiscrepancyCounts, DiscrepancyKind, Event, FacilityTier,
    FileDigest, FileEncoding, FileFormat, FileName, InvoiceRedeemed, InvoiceReversed, ListingBasis,
    Money, Origin, PaymentProof, Principal, PrincipalRole, ProgrammePolicy, ReconciliationRecorded,
    ReconciliationScope, ReleaseCause, RequestId, StatementId, StatementIssued, VoucherApproved,
};

fn fail(reason: impl Into<String>) -> CodecError {
    CodecError {
        reason: reason.into(),
    }
}

// -------------------------------------------------------------- enums as stable bytes

fn role_byte(role: PrincipalRole) -> u8 {
    match role {
        PrincipalRole::Bureau => 0,
        PrincipalRole::Center => 1,
        PrincipalRole::Enterprise => 2,
        PrincipalRole::Auditor => 3,
        PrincipalRole::System => 4,
    }
}

fn role_from(byte: u8) -> Result<PrincipalRole, CodecError> {
    match byte {
        0 => Ok(PrincipalRole::Bureau),
        1 => Ok(PrincipalRole::Center),
        2 => Ok(PrincipalRole::Enterprise),
        3 => Ok(PrincipalRole::Auditor),
        4 => Ok(PrincipalRole::System),
        other => Err(fail(format!("{other} is not a known principal role"))),
    }
}

pub(super) fn tier_byte(tier: FacilityTier) -> u8 {
    match tier {
        FacilityTier::Domestic => 0,
        FacilityTier::MaasMultimodal => 1,
        FacilityTier::Other => 2,
    }
}

pub(super) fn tier_from(byte: u8) -> Result<FacilityTier, CodecError> {
    match byte {
        0 => Ok(FacilityTier::Domestic),
        1 => Ok(FacilityTier::MaasMultimodal),
        2 => Ok(FacilityTier::Other),
        other => Err(fail(format!("{other} is not a known facility tier"))),
    }
}

pub(super) fn listing_byte(basis: ListingBasis) -> u8 {
    match basis {
        ListingBasis::PlanningLayout => 0,
        ListingBasis::MatchmakingPartner => 1,
    }
}

pub(super) fn listing_from(byte: u8) -> Result<ListingBasis, CodecError> {
    match byte {
        0 => Ok(ListingBasis::PlanningLayout),
        1 => Ok(ListingBasis::MatchmakingPartner),
        other => Err(fail(format!("{other} is not a known listing basis"))),
    }
}

pub(super) fn center_status_byte(status: CenterStatus) -> u8 {
    match status {
        CenterStatus::Active => 0,
        CenterStatus::Suspended => 1,
        CenterStatus::Delisted => 2,
    }
}

pub(super) fn center_status_from(byte: u8) -> Result<CenterStatus, CodecError> {
    match byte {
        0 => Ok(CenterStatus::Active),
        1 => Ok(CenterStatus::Suspended),
        2 => Ok(CenterStatus::Delisted),
        other => Err(fail(format!("{other} is not a known center status"))),
    }
}

fn cause_byte(cause: ReleaseCause) -> u8 {
    match cause {
        ReleaseCause::Expired => 0,
        ReleaseCause::Cancelled => 1,
        ReleaseCause::Delisted => 2,
    }
}

fn cause_from(byte: u8) -> Result<ReleaseCause, CodecError> {
    match byte {
        0 => Ok(ReleaseCause::Expired),
        1 => Ok(ReleaseCause::Cancelled),
        2 => Ok(ReleaseCause::Delisted),
        other => Err(fail(format!("{other} is not a known release cause"))),
    }
}

// ------------------------------------------------------------- shared compound values

pub(super) fn encode_policy(writer: &mut Writer<'_>, policy: &ProgrammePolicy) {
    writer.year(policy.year());
    writer.money(policy.annual_pool());
    writer.money(policy.default_enterprise_cap());
    writer.rate(policy.contract_fee_ceiling());
    for tier in FacilityTier::ALL {
        writer.rate(policy.rate_for(tier));
    }
    writer.u16(policy.redemption_grace_days());
}

pub(super) fn decode_policy(reader: &mut Reader<'_>) -> Result<ProgrammePolicy, CodecError> {
    Ok(ProgrammePolicy::new(
        reader.year()?,
        reader.money()?,
        reader.money()?,
        reader.rate()?,
        [reader.rate()?, reader.rate()?, reader.rate()?],
    )?
    .with_redemption_grace_days(reader.u16()?)?)
}

// ---------------------------------------------------------------- programme extension

/// Marks the programme extension after a record's v2 fields.
pub const PROGRAMME_EXTENSION_TAG: u8 = 3;

fn option_u32(writer: &mut Writer<'_>, value: Option<u32>) {
    match value {
        None => writer.u8(0),
        Some(value) => {
            writer.u8(1);
            writer.u32(value);
        }
    }
}

fn read_option_u32(reader: &mut Reader<'_>) -> Result<Option<u32>, CodecError> {
    match reader.u8()? {
        0 => Ok(None),
        1 => Ok(Some(reader.u32()?)),
        other => Err(fail(format!("{other} is not an option flag"))),
    }
}

fn read_flag(reader: &mut Reader<'_>) -> Result<bool, CodecError> {
    match reader.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(fail(format!("{other} is not an option flag"))),
    }
}

pub(super) fn encode_rules(writer: &mut Writer<'_>, rules: &ProgrammeRules) {
    match &rules.small_enterprise_rate {
        None => writer.u8(0),
        Some(small) => {
            writer.u8(1);
            writer.rate(small.rate);
            writer.money(small.cumulative_contract_limit);
        }
    }
    writer.u16(rules.max_term_days.unwrap_or(0));
    match &rules.eligibility {
        None => writer.u8(0),
        Some(eligibility) => {
            writer.u8(1);
            option_u32(writer, eligibility.min_intelligent_pflops);
            option_u32(writer, eligibility.min_racks);
            writer.u8(match eligibility.require {
                CapacityRequirement::All => 0,
                CapacityRequirement::Any => 1,
            });
        }
    }
    writer.u8(rules.required_declarations.bits());
    writer.u8(match rules.payee {
        Payee::Center => 0,
        Payee::Enterprise => 1,
    });
    match &rules.second_source {
        None => writer.u8(0),
        Some(second) => {
            writer.u8(1);
            writer.text(second.name.as_str());
            writer.money(second.annual_pool);
            writer.rate(second.rate);
            writer.rate(second.combined_ceiling);
        }
    }
}

pub(super) fn decode_rules(reader: &mut Reader<'_>) -> Result<ProgrammeRules, CodecError> {
    let small_enterprise_rate = if read_flag(reader)? {
        Some(SmallEnterpriseRate {
            rate: reader.rate()?,
            cumulative_contract_limit: reader.money()?,
        })
    } else {
        None
    };
    let max_term_days = match reader.u16()? {
        0 => None,
        days => Some(days),
    };
    let eligibility = if read_flag(reader)? {
        Some(CapacityEligibility {
            min_intelligent_pflops: read_option_u32(reader)?,
            min_racks: read_option_u32(reader)?,
            require: match reader.u8()? {
                0 => CapacityRequirement::All,
                1 => CapacityRequirement::Any,
                other => return Err(fail(format!("{other} is not a capacity requirement"))),
            },
        })
    } else {
        None
    };
    let required_declarations = Declarations::from_bits(reader.u8()?)?;
    let payee = match reader.u8()? {
        0 => Payee::Center,
        1 => Payee::Enterprise,
        other => return Err(fail(format!("{other} is not a payee"))),
    };
    let second_source = if read_flag(reader)? {
        Some(SecondSource {
            name: reader.legal_name()?,
            annual_pool: reader.money()?,
            rate: reader.rate()?,
            combined_ceiling: reader.rate()?,
        })
    } else {
        None
    };
    Ok(ProgrammeRules {
        small_enterprise_rate,
        max_term_days,
        eligibility,
        required_declarations,
        payee,
        second_source,
    })
}

pub(super) fn encode_capacity(writer: &mut Writer<'_>, capacity: &CenterCapacity) {
    option_u32(writer, capacity.intelligent_pflops);
    option_u32(writer, capacity.racks);
}

pub(super) fn decode_capacity(reader: &mut Reader<'_>) -> Result<CenterCapacity, CodecError> {
    Ok(CenterCapacity {
        intelligent_pflops: read_option_u32(reader)?,
        racks: read_option_u32(reader)?,
    })
}

pub(super) fn encode_approval_terms(writer: &mut Writer<'_>, terms: &ApprovalTerms) {
    writer.u8(match terms.enterprise_class {
        EnterpriseClass::Standard => 0,
        EnterpriseClass::SmallOrMedium => 1,
    });
    writer.u8(terms.declarations.bits());
    writer.u8(match terms.rate_basis {
        RateBasis::FacilityTier => 0,
        RateBasis::SmallEnterprise => 1,
    });
}

pub(super) fn decode_approval_terms(reader: &mut Reader<'_>) -> Result<ApprovalTerms, CodecError> {
    Ok(ApprovalTerms {
        enterprise_class: match reader.u8()? {
            0 => EnterpriseClass::Standard,
            1 => EnterpriseClass::SmallOrMedium,
            other => return Err(fail(format!("{other} is not an enterprise class"))),
        },
        declarations: Declarations::from_bits(reader.u8()?)?,
        rate_basis: match reader.u8()? {
            0 => RateBasis::FacilityTier,
            1 => RateBasis::SmallEnterprise,
            other => return Err(fail(format!("{other} is not a rate basis"))),
        },
        // Not part of these three bytes: a record's trailing field, an image's stacked
        // section.
        second_face_value: Money::ZERO,
    })
}

/// A redemption's extension: the proof of payment, then the second source's subsidy
/// when there is one. Written only when either is there, so a redemption of a
/// center-payee year without a second source is byte for byte what it was.
pub(super) fn encode_redemption_extension(
    writer: &mut Writer<'_>,
    proof: Option<&PaymentProof>,
    second_subsidy: Money,
) {
    match proof {
        Some(proof) => {
            writer.u8(1);
            writer.text(proof.as_typed());
        }
        None => writer.u8(0),
    }
    if !second_subsidy.is_zero() {
        writer.money(second_subsidy);
    }
}

pub(super) fn decode_redemption_extension(
    reader: &mut Reader<'_>,
) -> Result<(Option<PaymentProof>, Money), CodecError> {
    let proof = if read_flag(reader)? {
        Some(PaymentProof::from_stored(reader.text()?)?)
    } else {
        None
    };
    Ok((proof, trailing_second_amount(reader)?))
}

/// A stacked second source's amount at the payload's end: zero when absent; a written
/// zero is refused (it is written by leaving it out).
fn trailing_second_amount(reader: &mut Reader<'_>) -> Result<Money, CodecError> {
    if reader.at_end() {
        return Ok(Money::ZERO);
    }
    nonzero_second_amount(reader)
}

fn nonzero_second_amount(reader: &mut Reader<'_>) -> Result<Money, CodecError> {
    let amount = reader.money()?;
    if amount.is_zero() {
        return Err(fail(
            "a second source's amount of 0.00 is written by leaving it out",
        ));
    }
    Ok(amount)
}

/// The funding source of a statement or repayment in its extension: only the second
/// source is written (the programme's own is the record without the extension).
fn decode_second_source(reader: &mut Reader<'_>) -> Result<FundingSource, CodecError> {
    match reader.u8()? {
        1 => Ok(FundingSource::Second),
        other => Err(fail(format!(
            "{other} is not a funding source byte (1: the second source; the programme's own is written by leaving the extension out)"
        ))),
    }
}

/// Writes the extension naming the second source, if `source` is it.
fn encode_source_extension(writer: &mut Writer<'_>, source: FundingSource) {
    if source == FundingSource::Second {
        writer.u8(PROGRAMME_EXTENSION_TAG);
        writer.u8(1);
    }
}

/// Reads the programme extension if the payload has one: `None` at the payload's end (a
/// record without it), the tag and then `decode` otherwise.
fn extension<T>(
    reader: &mut Reader<'_>,
    decode: impl FnOnce(&mut Reader<'_>) -> Result<T, CodecError>,
) -> Result<Option<T>, CodecError> {
    if reader.at_end() {
        return Ok(None);
    }
    match reader.u8()? {
        PROGRAMME_EXTENSION_TAG => Ok(Some(decode(reader)?)),
        other => Err(fail(format!(
            "{other} after the record's fields is not the programme extension tag"
        ))),
    }
}

pub(super) fn encode_voucher_terms(writer: &mut Writer<'_>, terms: &VoucherApproved) {
    writer.voucher_id(&terms.voucher);
    writer.year(terms.year);
    writer.uscc(&terms.enterprise);
    writer.uscc(&terms.center);
    writer.text(terms.contract_number.as_typed());
    writer.money(terms.contract_fee);
    writer.date(terms.term_start);
    writer.date(terms.term_end);
    writer.date(terms.redemption_window_end);
    writer.u8(tier_byte(terms.tier));
    writer.rate(terms.rate);
    writer.rate(terms.ceiling);
    writer.money(terms.requested);
    writer.money(terms.face_value);
}

pub(super) fn decode_voucher_terms(reader: &mut Reader<'_>) -> Result<VoucherApproved, CodecError> {
    Ok(VoucherApproved {
        voucher: reader.voucher_id()?,
        year: reader.year()?,
        enterprise: reader.uscc()?,
        center: reader.uscc()?,
        contract_number: reader.contract_number()?,
        contract_fee: reader.money()?,
        term_start: reader.date()?,
        term_end: reader.date()?,
        redemption_window_end: reader.date()?,
        tier: tier_from(reader.u8()?)?,
        rate: reader.rate()?,
        ceiling: reader.rate()?,
        requested: reader.money()?,
        face_value: reader.money()?,
        programme: ApprovalTerms::default(),
    })
}

fn encode_origin(writer: &mut Writer<'_>, origin: &Origin) {
    writer.u8(role_byte(origin.principal.role));
    writer.text(origin.principal.name());
    writer.text(origin.request_id.as_ref().map_or("", RequestId::as_str));
}

fn decode_origin(reader: &mut Reader<'_>) -> Result<Origin, CodecError> {
    let role = role_from(reader.u8()?)?;
    let principal = Principal::from_stored(role, reader.text()?)?;
    let request_id = match reader.text()? {
        "" => None,
        text => Some(RequestId::parse(text)?),
    };
    Ok(Origin::new(principal, request_id))
}

fn bank_reference(reader: &mut Reader<'_>) -> Result<BankReference, CodecError> {
    Ok(BankReference::from_stored(reader.text()?)?)
}

// ------------------------------------------------------------------------- encoding

/// Appends the v2 payload (origin, then the event's fields) to `out`.
pub fn encode(origin: &Origin, event: &Event, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    encode_origin(&mut writer, origin);
    let writer = &mut writer;
    match event {
        Event::PolicyPublished { policy } => {
            encode_policy(writer, policy);
            if !policy.rules().is_hangzhou_2024() {
                writer.u8(PROGRAMME_EXTENSION_TAG);
                encode_rules(writer, policy.rules());
            }
        }
        Event::CenterRegistered {
            center,
            name,
            tier,
            listing_basis,
            capacity,
        } => {
            writer.uscc(center);
            writer.text(name.as_str());
            writer.u8(tier_byte(*tier));
            writer.u8(listing_byte(*listing_basis));
            if !capacity.is_unknown() {
                writer.u8(PROGRAMME_EXTENSION_TAG);
                encode_capacity(writer, capacity);
            }
        }
        Event::CenterStatusChanged {
            center,
            from,
            to,
            reason,
        } => {
            writer.uscc(center);
            writer.u8(center_status_byte(*from));
            writer.u8(center_status_byte(*to));
            writer.text(reason.as_str());
        }
        Event::EnterpriseRegistered { enterprise, name } => {
            writer.uscc(enterprise);
            writer.text(name.as_str());
        }
        Event::CapOverrideGranted {
            enterprise,
            year,
            cap,
            reason,
        } => {
            writer.uscc(enterprise);
            writer.year(*year);
            writer.money(*cap);
            writer.text(reason.as_str());
        }
        Event::RelatedPartyDeclared {
            enterprise,
            center,
            reason,
        } => {
            writer.uscc(enterprise);
            writer.uscc(center);
            writer.text(reason.as_str());
        }
        Event::VoucherApproved(approved) => {
            encode_voucher_terms(writer, approved);
            if !approved.programme.is_default() {
                writer.u8(PROGRAMME_EXTENSION_TAG);
                encode_approval_terms(writer, &approved.programme);
                if !approved.programme.second_face_value.is_zero() {
                    writer.money(approved.programme.second_face_value);
                }
            }
        }
        Event::InvoiceRedeemed(redeemed) => {
            writer.voucher_id(&redeemed.voucher);
            writer.uscc(&redeemed.center);
            writer.text(redeemed.invoice_number.as_typed());
            writer.money(redeemed.amount);
            writer.date(redeemed.issue_date);
            writer.text(redeemed.delivery_proof.as_str());
            writer.money(redeemed.subsidy);
            if redeemed.payment_proof.is_some() || !redeemed.second_subsidy.is_zero() {
                writer.u8(PROGRAMME_EXTENSION_TAG);
                encode_redemption_extension(
                    writer,
                    redeemed.payment_proof.as_ref(),
                    redeemed.second_subsidy,
                );
            }
        }
        Event::InvoiceReversed(reversed) => {
            writer.voucher_id(&reversed.voucher);
            writer.uscc(&reversed.center);
            writer.text(reversed.invoice_number.as_typed());
            writer.u64(reversed.redeemed_sequence);
            writer.money(reversed.amount);
            writer.money(reversed.subsidy);
            writer.bool(reversed.clawback);
            writer.bool(reversed.returned_to_voucher);
            writer.text(reversed.reason.as_str());
            if !reversed.second_subsidy.is_zero() {
                writer.u8(PROGRAMME_EXTENSION_TAG);
                writer.money(reversed.second_subsidy);
            }
        }
        Event::VoucherReleased {
            voucher,
            cause,
            released,
            reason,
        } => {
            writer.voucher_id(voucher);
            writer.u8(cause_byte(*cause));
            writer.money(*released);
            match reason {
                Some(reason) => {
                    writer.u8(1);
                    writer.text(reason.as_str());
                }
                None => writer.u8(0),
            }
        }
        Event::CenterSettled {
            center,
            settlement_id,
            redeemed,
            clawback_offset,
            paid,
        } => {
            writer.uscc(center);
            writer.settlement_id(settlement_id);
            writer.money(*redeemed);
            writer.money(*clawback_offset);
            writer.money(*paid);
        }
        Event::SettlementRunCreated { run, year } => {
            writer.settlement_run_id(run);
            writer.year(*year);
        }
        Event::StatementIssued(issued) => {
            writer.settlement_run_id(&issued.run);
            writer.uscc(&issued.center);
            writer.year(issued.year);
            writer.u64(issued.cutoff);
            writer.u64(issued.invoices);
            writer.money(issued.gross);
            writer.money(issued.clawback_offset);
            writer.money(issued.net);
            encode_source_extension(writer, issued.source);
        }
        Event::PaymentConfirmed {
            statement,
            bank_reference,
            amount,
            value_date,
        } => {
            writer.u64(statement.0);
            writer.text(bank_reference.as_typed());
            writer.money(*amount);
            writer.date(*value_date);
        }
        Event::PaymentReturned {
            statement,
            bank_reference,
            amount,
            reason,
        } => {
            writer.u64(statement.0);
            writer.text(bank_reference.as_typed());
            writer.money(*amount);
            writer.text(reason.as_str());
        }
        Event::RepaymentRecorded {
            center,
            year,
            amount,
            bank_reference,
            value_date,
            source,
        } => {
            writer.uscc(center);
            writer.year(*year);
            writer.money(*amount);
            writer.text(bank_reference.as_typed());
            writer.date(*value_date);
            encode_source_extension(writer, *source);
        }
        Event::ProgrammeYearClosed { year } => writer.year(*year),
        Event::PoolAdjusted {
            year,
            previous_pool,
            new_pool,
            reason,
        } => {
            writer.year(*year);
            writer.money(*previous_pool);
            writer.money(*new_pool);
            writer.text(reason.as_str());
        }
        Event::ClockConfirmed { reason } => writer.text(reason.as_str()),
        Event::ReconciliationRecorded(recorded) => encode_reconciliation(writer, recorded),
    }
}

// --------------------------------------------------------------- reconciliations

fn file_format_byte(format: FileFormat) -> u8 {
    match format {
        FileFormat::Csv => 0,
        FileFormat::Xlsx => 1,
        FileFormat::Xls => 2,
        FileFormat::Camt053 => 3,
    }
}

fn file_format_from(byte: u8) -> Result<FileFormat, CodecError> {
    match byte {
        0 => Ok(FileFormat::Csv),
        1 => Ok(FileFormat::Xlsx),
        2 => Ok(FileFormat::Xls),
        3 => Ok(FileFormat::Camt053),
        other => Err(fail(format!("{other} is not a known file format"))),
    }
}

fn file_encoding_byte(encoding: FileEncoding) -> u8 {
    match encoding {
        FileEncoding::Utf8 => 0,
        FileEncoding::Utf8Bom => 1,
        FileEncoding::Gb18030 => 2,
        FileEncoding::Binary => 3,
    }
}

fn file_encoding_from(byte: u8) -> Result<FileEncoding, CodecError> {
    match byte {
        0 => Ok(FileEncoding::Utf8),
        1 => Ok(FileEncoding::Utf8Bom),
        2 => Ok(FileEncoding::Gb18030),
        3 => Ok(FileEncoding::Binary),
        other => Err(fail(format!("{other} is not a known file encoding"))),
    }
}

/// ```text
/// digest 32 bytes | file name (text) | format u8 (0 csv, 1 xlsx, 2 xls, 3 camt.053)
/// | encoding u8 (0 UTF-8, 1 UTF-8 with BOM, 2 GB18030, 3 binary)
/// | scope u8: 0 center invoices, then uscc | from date | to date; 1 bank payments, then year
/// | rows u64 | row errors u64 | kinds (u32 count) of: kind u8 | count u64
/// ```
///
/// Kinds are written in increasing order with non-zero counts (the decoder refuses
/// anything else, so every value has one encoding).
pub(super) fn encode_reconciliation(writer: &mut Writer<'_>, recorded: &ReconciliationRecorded) {
    writer.bytes(&recorded.digest.0);
    writer.text(recorded.file_name.as_str());
    writer.u8(file_format_byte(recorded.format));
    writer.u8(file_encoding_byte(recorded.encoding));
    match &recorded.scope {
        ReconciliationScope::CenterInvoices { center, from, to } => {
            writer.u8(0);
            writer.uscc(center);
            writer.date(*from);
            writer.date(*to);
        }
        ReconciliationScope::BankPayments { year } => {
            writer.u8(1);
            writer.year(*year);
        }
    }
    writer.u64(recorded.counts.rows);
    writer.u64(recorded.counts.row_errors);
    writer.length(recorded.counts.by_kind.len());
    for (kind, count) in &recorded.counts.by_kind {
        writer.u8(kind.number());
        writer.u64(*count);
    }
}

pub(super) fn decode_reconciliation(
    reader: &mut Reader<'_>,
) -> Result<ReconciliationRecorded, CodecError> {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(reader.take(32)?);
    let file_name = FileName::parse(reader.text()?).map_err(|error| fail(error.to_string()))?;
    let format = file_format_from(reader.u8()?)?;
    let encoding = file_encoding_from(reader.u8()?)?;
    let scope = match reader.u8()? {
        0 => ReconciliationScope::CenterInvoices {
            center: reader.uscc()?,
            from: reader.date()?,
            to: reader.date()?,
        },
        1 => ReconciliationScope::BankPayments {
            year: reader.year()?,
        },
        other => return Err(fail(format!("{other} is not a known reconciliation scope"))),
    };
    let rows = reader.u64()?;
    let row_errors = reader.u64()?;
    let kinds = reader.length(9)?;
    let mut by_kind: Vec<(DiscrepancyKind, u64)> = Vec::with_capacity(kinds);
    for _ in 0..kinds {
        let number = reader.u8()?;
        let kind = DiscrepancyKind::from_number(number)
            .ok_or_else(|| fail(format!("{number} is not a known discrepancy kind")))?;
        let count = reader.u64()?;
        if count == 0 || by_kind.last().is_some_and(|(last, _)| *last >= kind) {
            return Err(fail(
                "discrepancy counts must be non-zero and in increasing kind order",
            ));
        }
        by_kind.push((kind, count));
    }
    Ok(ReconciliationRecorded {
        digest: FileDigest(digest),
        file_name,
        format,
        encoding,
        scope,
        counts: DiscrepancyCounts {
            by_kind,
            rows,
            row_errors,
        },
    })
}

// ------------------------------------------------------------------------- decoding

/// Decodes a whole v2 payload of event type `event_type`, refusing trailing bytes.
pub fn decode(event_type: u16, payload: &[u8]) -> Result<(Origin, Event), CodecError> {
    let mut reader = Reader::new(payload);
    let origin = decode_origin(&mut reader)?;
    let reader = &mut reader;
    let event = match event_type {
        1 => {
            let policy = decode_policy(reader)?;
            let policy = match extension(reader, decode_rules)? {
                Some(rules) => policy.with_rules(rules)?,
                None => policy,
            };
            Event::PolicyPublished {
                policy: Box::new(policy),
            }
        }
        2 => Event::CenterRegistered {
            center: reader.uscc()?,
            name: reader.legal_name()?,
            tier: tier_from(reader.u8()?)?,
            listing_basis: listing_from(reader.u8()?)?,
            capacity: extension(reader, decode_capacity)?.unwrap_or_default(),
        },
        3 => Event::CenterStatusChanged {
            center: reader.uscc()?,
            from: center_status_from(reader.u8()?)?,
            to: center_status_from(reader.u8()?)?,
            reason: reader.reason()?,
        },
        4 => Event::EnterpriseRegistered {
            enterprise: reader.uscc()?,
            name: reader.legal_name()?,
        },
        5 => Event::CapOverrideGranted {
            enterprise: reader.uscc()?,
            year: reader.year()?,
            cap: reader.money()?,
            reason: reader.reason()?,
        },
        6 => Event::RelatedPartyDeclared {
            enterprise: reader.uscc()?,
            center: reader.uscc()?,
            reason: reader.reason()?,
        },
        7 => {
            let mut approved = decode_voucher_terms(reader)?;
            let terms = extension(reader, |reader| {
                let mut terms = decode_approval_terms(reader)?;
                terms.second_face_value = trailing_second_amount(reader)?;
                Ok(terms)
            })?;
            if let Some(terms) = terms {
                approved.programme = terms;
            }
            Event::VoucherApproved(Box::new(approved))
        }
        8 => {
            let mut redeemed = InvoiceRedeemed {
                voucher: reader.voucher_id()?,
                center: reader.uscc()?,
                invoice_number: reader.invoice_number()?,
                amount: reader.money()?,
                issue_date: reader.date()?,
                delivery_proof: reader.delivery_proof()?,
                subsidy: reader.money()?,
                payment_proof: None,
                second_subsidy: Money::ZERO,
            };
            if let Some((proof, second)) = extension(reader, decode_redemption_extension)? {
                redeemed.payment_proof = proof;
                redeemed.second_subsidy = second;
            }
            Event::InvoiceRedeemed(redeemed)
        }
        9 => Event::InvoiceReversed(InvoiceReversed {
            voucher: reader.voucher_id()?,
            center: reader.uscc()?,
            invoice_number: reader.invoice_number()?,
            redeemed_sequence: reader.u64()?,
            amount: reader.money()?,
            subsidy: reader.money()?,
            clawback: reader.bool()?,
            returned_to_voucher: reader.bool()?,
            reason: reader.reason()?,
            second_subsidy: extension(reader, nonzero_second_amount)?.unwrap_or(Money::ZERO),
        }),
        10 => Event::VoucherReleased {
            voucher: reader.voucher_id()?,
            cause: cause_from(reader.u8()?)?,
            released: reader.money()?,
            reason: match reader.u8()? {
                0 => None,
                1 => Some(reader.reason()?),
                other => return Err(fail(format!("{other} is not an option flag"))),
            },
        },
        11 => Event::CenterSettled {
            center: reader.uscc()?,
            settlement_id: reader.settlement_id()?,
            redeemed: reader.money()?,
            clawback_offset: reader.money()?,
            paid: reader.money()?,
        },
        12 => Event::SettlementRunCreated {
            run: reader.settlement_run_id()?,
            year: reader.year()?,
        },
        13 => Event::StatementIssued(Box::new(StatementIssued {
            run: reader.settlement_run_id()?,
            center: reader.uscc()?,
            year: reader.year()?,
            cutoff: reader.u64()?,
            invoices: reader.u64()?,
            gross: reader.money()?,
            clawback_offset: reader.money()?,
            net: reader.money()?,
            source: extension(reader, decode_second_source)?.unwrap_or_default(),
        })),
        14 => Event::PaymentConfirmed {
            statement: StatementId(reader.u64()?),
            bank_reference: bank_reference(reader)?,
            amount: reader.money()?,
            value_date: reader.date()?,
        },
        15 => Event::PaymentReturned {
            statement: StatementId(reader.u64()?),
            bank_reference: bank_reference(reader)?,
            amount: reader.money()?,
            reason: reader.reason()?,
        },
        16 => Event::RepaymentRecorded {
            center: reader.uscc()?,
            year: reader.year()?,
            amount: reader.money()?,
            bank_reference: bank_reference(reader)?,
            value_date: reader.date()?,
            source: extension(reader, decode_second_source)?.unwrap_or_default(),
        },
        17 => Event::ProgrammeYearClosed {
            year: reader.year()?,
        },
        18 => Event::PoolAdjusted {
            year: reader.year()?,
            previous_pool: reader.money()?,
            new_pool: reader.money()?,
            reason: reader.reason()?,
        },
        19 => Event::ClockConfirmed {
            reason: reader.reason()?,
        },
        20 => Event::ReconciliationRecorded(Box::new(decode_reconciliation(reader)?)),
        other => return Err(fail(format!("{other} is not a known event type"))),
    };
    reader.finish()?;
    if event.type_number() != event_type {
        return Err(fail(format!(
            "decoded a type {} event for frame type {event_type}",
            event.type_number()
        )));
    }
    Ok((origin, event))
}
