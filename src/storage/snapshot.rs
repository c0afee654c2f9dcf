//! Snapshots: the projections at a sequence number, so a restart replays only the tail.
//!
//! Frame (every version):
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VLSN"
//!      4     2  format version   2 (little-endian)
//!      6     2  reserved         0
//!      8     8  sequence         of the last event the image includes
//!     16    32  chain hash       of that event
//!     48     8  image length     N
//!     56     N  image            (below)
//!   56+N    32  SM3 of bytes 0..56+N
//! ```
//!
//! Image, version 2: the fields of [`StateImage`] written one by one with
//! `storage::codec`, in the order of [`encode_image`]. Version 1 images (bincode of the
//! domain's own structs) are not read: a snapshot is only a shortcut, so a v1 snapshot is
//! skipped and the log is replayed instead.

use super::codec::{CodecError, Reader, Writer};
use super::record::{sm3_digest, ChainHash};
use crate::domain::state::CapOverride;
use crate::domain::{
    CenterAccount, CenterStatus, EnterpriseAccount, FacilityTier, ListingBasis, ProgrammePolicy,
    StateImage, Usage, Voucher, VoucherApproved, VoucherStatus,
};

pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VLSN";
pub const SNAPSHOT_FORMAT_VERSION: u16 = 2;
const HEADER_LENGTH: usize = 4 + 2 + 2 + 8 + 32 + 8;
const DIGEST_LENGTH: usize = 32;

/// A snapshot as read back and checked: where it stands in the log and its image.
pub struct StoredSnapshot {
    pub sequence: u64,
    pub chain_hash: ChainHash,
    pub image: StateImage,
}

/// Encodes a full snapshot value: frame, image, checksum.
pub fn encode_snapshot(sequence: u64, chain_hash: &ChainHash, image: &StateImage) -> Vec<u8> {
    let mut image_bytes = Vec::with_capacity(64 * 1024);
    encode_image(image, &mut image_bytes);
    let mut value = Vec::with_capacity(image_bytes.len() + HEADER_LENGTH + DIGEST_LENGTH);
    let mut writer = Writer::new(&mut value);
    writer.bytes(&SNAPSHOT_MAGIC);
    writer.u16(SNAPSHOT_FORMAT_VERSION);
    writer.u16(0);
    writer.u64(sequence);
    writer.bytes(&chain_hash.0);
    writer.u64(image_bytes.len() as u64);
    writer.bytes(&image_bytes);
    let digest = sm3_digest(&value);
    value.extend_from_slice(&digest);
    value
}

/// Checks a snapshot value stored under `key_sequence` and decodes its image.
pub fn decode_snapshot(key_sequence: u64, bytes: &[u8]) -> Result<StoredSnapshot, CodecError> {
    let fail = |reason: String| CodecError { reason };
    if bytes.len() < HEADER_LENGTH + DIGEST_LENGTH {
        return Err(fail(format!("{} bytes is too short", bytes.len())));
    }
    let mut reader = Reader::new(bytes);
    if reader.take(4)? != SNAPSHOT_MAGIC {
        return Err(fail("bad magic".into()));
    }
    let version = reader.u16()?;
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(fail(format!(
            "format version {version} is not read by this build (it reads {SNAPSHOT_FORMAT_VERSION}); the log is replayed instead"
        )));
    }
    let body_end = bytes.len() - DIGEST_LENGTH;
    if sm3_digest(&bytes[..body_end])[..] != bytes[body_end..] {
        return Err(fail("checksum mismatch (torn or edited)".into()));
    }
    reader.u16()?;
    let sequence = reader.u64()?;
    if sequence != key_sequence {
        return Err(fail(format!("says it is at sequence {sequence}")));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(reader.take(32)?);
    let length = reader.u64()?;
    if HEADER_LENGTH as u64 + length != body_end as u64 {
        return Err(fail("length mismatch".into()));
    }
    let image = decode_image(&bytes[HEADER_LENGTH..body_end])?;
    if image.last_sequence != sequence {
        return Err(fail(format!(
            "holds state at sequence {}",
            image.last_sequence
        )));
    }
    Ok(StoredSnapshot {
        sequence,
        chain_hash: ChainHash(chain),
        image,
    })
}

// -------------------------------------------------------------- enums as stable bytes

fn tier_byte(tier: FacilityTier) -> u8 {
    match tier {
        FacilityTier::Domestic => 0,
        FacilityTier::MaasMultimodal => 1,
        FacilityTier::Other => 2,
    }
}

fn tier_from(byte: u8) -> Result<FacilityTier, CodecError> {
    match byte {
        0 => Ok(FacilityTier::Domestic),
        1 => Ok(FacilityTier::MaasMultimodal),
        2 => Ok(FacilityTier::Other),
        other => Err(unknown("facility tier", other)),
    }
}

fn listing_byte(basis: ListingBasis) -> u8 {
    match basis {
        ListingBasis::PlanningLayout => 0,
        ListingBasis::MatchmakingPartner => 1,
    }
}

fn listing_from(byte: u8) -> Result<ListingBasis, CodecError> {
    match byte {
        0 => Ok(ListingBasis::PlanningLayout),
        1 => Ok(ListingBasis::MatchmakingPartner),
        other => Err(unknown("listing basis", other)),
    }
}

fn center_status_byte(status: CenterStatus) -> u8 {
    match status {
        CenterStatus::Active => 0,
        CenterStatus::Suspended => 1,
        CenterStatus::Delisted => 2,
    }
}

fn center_status_from(byte: u8) -> Result<CenterStatus, CodecError> {
    match byte {
        0 => Ok(CenterStatus::Active),
        1 => Ok(CenterStatus::Suspended),
        2 => Ok(CenterStatus::Delisted),
        other => Err(unknown("center status", other)),
    }
}

fn voucher_status_byte(status: VoucherStatus) -> u8 {
    match status {
        VoucherStatus::Active => 0,
        VoucherStatus::Expired => 1,
        VoucherStatus::Cancelled => 2,
    }
}

fn voucher_status_from(byte: u8) -> Result<VoucherStatus, CodecError> {
    match byte {
        0 => Ok(VoucherStatus::Active),
        1 => Ok(VoucherStatus::Expired),
        2 => Ok(VoucherStatus::Cancelled),
        other => Err(unknown("voucher status", other)),
    }
}

fn unknown(what: &str, byte: u8) -> CodecError {
    CodecError {
        reason: format!("{byte} is not a known {what}"),
    }
}

// ------------------------------------------------------------------------ the image

/// Writes the image, field by field (the order is the format).
pub fn encode_image(image: &StateImage, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    writer.u64(image.last_sequence);
    writer.timestamp(image.last_time);
    writer.length(image.policies.len());
    for policy in &image.policies {
        encode_policy(&mut writer, policy);
    }
    writer.length(image.pools.len());
    for (year, usage) in &image.pools {
        writer.year(*year);
        encode_usage(&mut writer, usage);
    }
    writer.length(image.centers.len());
    for center in &image.centers {
        encode_center(&mut writer, center);
    }
    writer.length(image.enterprises.len());
    for enterprise in &image.enterprises {
        encode_enterprise(&mut writer, enterprise);
    }
    writer.length(image.related_parties.len());
    for (enterprise, center) in &image.related_parties {
        writer.uscc(enterprise);
        writer.uscc(center);
    }
    writer.length(image.vouchers.len());
    for voucher in &image.vouchers {
        encode_voucher(&mut writer, voucher);
    }
    writer.u64(image.invoices_redeemed);
    writer.length(image.settlements.len());
    for settlement in &image.settlements {
        writer.settlement_id(settlement);
    }
}

/// Reads an image written by [`encode_image`].
pub fn decode_image(bytes: &[u8]) -> Result<StateImage, CodecError> {
    let mut reader = Reader::new(bytes);
    let last_sequence = reader.u64()?;
    let last_time = reader.timestamp()?;
    let policies = (0..reader.length(20)?)
        .map(|_| decode_policy(&mut reader))
        .collect::<Result<_, _>>()?;
    let pools = (0..reader.length(18)?)
        .map(|_| Ok((reader.year()?, decode_usage(&mut reader)?)))
        .collect::<Result<_, CodecError>>()?;
    let centers = (0..reader.length(18)?)
        .map(|_| decode_center(&mut reader))
        .collect::<Result<_, _>>()?;
    let enterprises = (0..reader.length(18)?)
        .map(|_| decode_enterprise(&mut reader))
        .collect::<Result<_, _>>()?;
    let related_parties = (0..reader.length(36)?)
        .map(|_| Ok((reader.uscc()?, reader.uscc()?)))
        .collect::<Result<_, CodecError>>()?;
    let vouchers = (0..reader.length(100)?)
        .map(|_| decode_voucher(&mut reader))
        .collect::<Result<_, _>>()?;
    let invoices_redeemed = reader.u64()?;
    let settlements = (0..reader.length(16)?)
        .map(|_| reader.settlement_id())
        .collect::<Result<_, _>>()?;
    reader.finish()?;
    Ok(StateImage {
        last_sequence,
        last_time,
        policies,
        pools,
        centers,
        enterprises,
        related_parties,
        vouchers,
        invoices_redeemed,
        settlements,
    })
}

fn encode_policy(writer: &mut Writer<'_>, policy: &ProgrammePolicy) {
    writer.year(policy.year());
    writer.money(policy.annual_pool());
    writer.money(policy.default_enterprise_cap());
    writer.rate(policy.contract_fee_ceiling());
    for tier in FacilityTier::ALL {
        writer.rate(policy.rate_for(tier));
    }
}

fn decode_policy(reader: &mut Reader<'_>) -> Result<ProgrammePolicy, CodecError> {
    Ok(ProgrammePolicy::new(
        reader.year()?,
        reader.money()?,
        reader.money()?,
        reader.rate()?,
        [reader.rate()?, reader.rate()?, reader.rate()?],
    )?)
}

fn encode_usage(writer: &mut Writer<'_>, usage: &Usage) {
    writer.money(usage.held);
    writer.money(usage.redeemed);
}

fn decode_usage(reader: &mut Reader<'_>) -> Result<Usage, CodecError> {
    Ok(Usage {
        held: reader.money()?,
        redeemed: reader.money()?,
    })
}

fn encode_center(writer: &mut Writer<'_>, center: &CenterAccount) {
    writer.uscc(&center.center);
    writer.text(center.name.as_str());
    writer.u8(tier_byte(center.tier));
    writer.u8(listing_byte(center.listing_basis));
    writer.u8(center_status_byte(center.status));
    writer.money(center.redeemed_total);
    writer.money(center.reversed_total);
    writer.money(center.unsettled);
    writer.money(center.clawback_owed);
    writer.money(center.paid_total);
    writer.u32(center.settlement_epoch);
}

fn decode_center(reader: &mut Reader<'_>) -> Result<CenterAccount, CodecError> {
    Ok(CenterAccount {
        center: reader.uscc()?,
        name: reader.legal_name()?,
        tier: tier_from(reader.u8()?)?,
        listing_basis: listing_from(reader.u8()?)?,
        status: center_status_from(reader.u8()?)?,
        redeemed_total: reader.money()?,
        reversed_total: reader.money()?,
        unsettled: reader.money()?,
        clawback_owed: reader.money()?,
        paid_total: reader.money()?,
        settlement_epoch: reader.u32()?,
    })
}

fn encode_enterprise(writer: &mut Writer<'_>, enterprise: &EnterpriseAccount) {
    writer.uscc(&enterprise.enterprise);
    writer.text(enterprise.name.as_str());
    writer.length(enterprise.usage_by_year.len());
    for (year, usage) in &enterprise.usage_by_year {
        writer.year(*year);
        encode_usage(writer, usage);
    }
    writer.length(enterprise.cap_overrides.len());
    for (year, granted) in &enterprise.cap_overrides {
        writer.year(*year);
        writer.money(granted.cap);
        writer.text(granted.reason.as_str());
    }
}

fn decode_enterprise(reader: &mut Reader<'_>) -> Result<EnterpriseAccount, CodecError> {
    let enterprise = reader.uscc()?;
    let name = reader.legal_name()?;
    let usage_by_year = (0..reader.length(18)?)
        .map(|_| Ok((reader.year()?, decode_usage(reader)?)))
        .collect::<Result<_, CodecError>>()?;
    let cap_overrides = (0..reader.length(14)?)
        .map(|_| {
            let year = reader.year()?;
            let cap = reader.money()?;
            let reason = reader.reason()?;
            Ok((year, CapOverride { cap, reason }))
        })
        .collect::<Result<_, CodecError>>()?;
    Ok(EnterpriseAccount {
        enterprise,
        name,
        usage_by_year,
        cap_overrides,
    })
}

fn encode_voucher(writer: &mut Writer<'_>, voucher: &Voucher) {
    let terms = &voucher.terms;
    writer.voucher_id(&terms.voucher);
    writer.year(terms.year);
    writer.uscc(&terms.enterprise);
    writer.uscc(&terms.center);
    writer.text(terms.contract_number.as_str());
    writer.money(terms.contract_fee);
    writer.date(terms.term_start);
    writer.date(terms.term_end);
    writer.u8(tier_byte(terms.tier));
    writer.rate(terms.rate);
    writer.rate(terms.ceiling);
    writer.money(terms.requested);
    writer.money(terms.face_value);
    writer.u8(voucher_status_byte(voucher.status));
    writer.money(voucher.remaining);
    writer.money(voucher.subsidy_total);
    writer.money(voucher.invoiced_total);
    writer.money(voucher.released);
    writer.u32(voucher.invoice_count);
}

fn decode_voucher(reader: &mut Reader<'_>) -> Result<Voucher, CodecError> {
    let terms = VoucherApproved {
        voucher: reader.voucher_id()?,
        year: reader.year()?,
        enterprise: reader.uscc()?,
        center: reader.uscc()?,
        contract_number: reader.contract_number()?,
        contract_fee: reader.money()?,
        term_start: reader.date()?,
        term_end: reader.date()?,
        tier: tier_from(reader.u8()?)?,
        rate: reader.rate()?,
        ceiling: reader.rate()?,
        requested: reader.money()?,
        face_value: reader.money()?,
    };
    Ok(Voucher {
        terms,
        status: voucher_status_from(reader.u8()?)?,
        remaining: reader.money()?,
        subsidy_total: reader.money()?,
        invoiced_total: reader.money()?,
        released: reader.money()?,
        invoice_count: reader.u32()?,
    })
}
