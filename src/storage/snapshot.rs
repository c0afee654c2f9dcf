//! Snapshots: the projections at a sequence number, so a restart replays only the tail.
//!
//! Frame (every version):
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VLSN"
//!      4     2  format version   4 (little-endian)
//!      6     2  reserved         0
//!      8     8  sequence         of the last event the image includes
//!     16    32  chain hash       of that event
//!     48     8  image length     N
//!     56     N  image            (below)
//!   56+N    32  SM3 of bytes 0..56+N
//! ```
//!
//! Image, version 4: the fields of [`StateImage`] written one by one with
//! `storage::codec`, in the order of [`encode_image`]; every amount as i128 fen, since
//! running totals may outgrow i64; last, the recorded reconciliations (sequence, time,
//! and the event's payload layout, see `payload_v2`); then two optional sections, each
//! written only when it holds anything: the programme extension (tag 3) and the
//! stacked-funding section (tag 4). Older images (v1: bincode of the
//! domain's own structs; v2: before settlement statements; v3: before reconciliations)
//! are not read: a snapshot is only a shortcut, so an older one is skipped and the log is
//! replayed instead.

use super::codec::{CodecError, Reader, Writer};
use super::payload_v2::{
    center_status_byte, center_status_from, decode_approval_terms, decode_capacity, decode_policy,
    decode_reconciliation, decode_rules, decode_voucher_terms, encode_approval_terms,
    encode_capacity, encode_policy, encode_reconciliation, encode_rules, encode_voucher_terms,
    listing_byte, listing_from, tier_byte, tier_from, PROGRAMME_EXTENSION_TAG,
};
use super::record::{sm3_digest, ChainHash};
use crate::domain::state::CapOverride;
use crate::domain::FundingSource;
use crate::domain::{
    BankReference, BankUse, CenterAccount, CenterYear, EnterpriseAccount, PaymentRecord,
    ReceivableItem, ReconciliationRecord, SettlementRun, StateImage, Statement, StatementId,
    StatementState, Usage, Voucher, VoucherShare, VoucherStatus, YearBook,
};

pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VLSN";
pub const SNAPSHOT_FORMAT_VERSION: u16 = 4;
/// The tag of the image's stacked-funding section (after the programme extension's 3).
const STACKED_SECTION_TAG: u8 = 4;
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

fn voucher_status_byte(status: VoucherStatus) -> u8 {
    match status {
        VoucherStatus::Active => 0,
        VoucherStatus::Expired => 1,
        VoucherStatus::Cancelled => 2,
        VoucherStatus::Withdrawn => 3,
    }
}

fn voucher_status_from(byte: u8) -> Result<VoucherStatus, CodecError> {
    match byte {
        0 => Ok(VoucherStatus::Active),
        1 => Ok(VoucherStatus::Expired),
        2 => Ok(VoucherStatus::Cancelled),
        3 => Ok(VoucherStatus::Withdrawn),
        other => Err(unknown("voucher status", other)),
    }
}

fn statement_state_byte(state: StatementState) -> u8 {
    match state {
        StatementState::Open => 0,
        StatementState::Paid => 1,
        StatementState::Returned => 2,
    }
}

fn statement_state_from(byte: u8) -> Result<StatementState, CodecError> {
    match byte {
        0 => Ok(StatementState::Open),
        1 => Ok(StatementState::Paid),
        2 => Ok(StatementState::Returned),
        other => Err(unknown("statement state", other)),
    }
}

fn unknown(what: &str, byte: u8) -> CodecError {
    CodecError {
        reason: format!("{byte} is not a known {what}"),
    }
}

/// Reads `count` items with `item`, collecting them.
fn items<T, C: FromIterator<T>>(
    reader: &mut Reader<'_>,
    min_item_bytes: usize,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, CodecError>,
) -> Result<C, CodecError> {
    let count = reader.length(min_item_bytes)?;
    (0..count).map(|_| item(reader)).collect()
}

// ------------------------------------------------------------------------ the image

/// Writes the image, field by field (the order is the format).
pub fn encode_image(image: &StateImage, out: &mut Vec<u8>) {
    let mut writer = Writer::new(out);
    let writer = &mut writer;
    writer.u64(image.last_sequence);
    writer.timestamp(image.last_time);
    writer.length(image.policies.len());
    for policy in &image.policies {
        encode_policy(writer, policy);
    }
    writer.length(image.years.len());
    for (year, book) in &image.years {
        writer.year(*year);
        encode_year_book(writer, book);
    }
    writer.length(image.centers.len());
    for center in &image.centers {
        encode_center(writer, center);
    }
    writer.length(image.center_years.len());
    for ((center, year), books) in &image.center_years {
        writer.uscc(center);
        writer.year(*year);
        encode_center_year(writer, books);
    }
    writer.length(image.enterprises.len());
    for enterprise in &image.enterprises {
        encode_enterprise(writer, enterprise);
    }
    writer.length(image.related_parties.len());
    for (enterprise, center) in &image.related_parties {
        writer.uscc(enterprise);
        writer.uscc(center);
    }
    writer.length(image.vouchers.len());
    for voucher in &image.vouchers {
        encode_voucher(writer, voucher);
    }
    writer.length(image.statements.len());
    for statement in &image.statements {
        encode_statement(writer, statement);
    }
    writer.length(image.runs.len());
    for run in &image.runs {
        writer.settlement_run_id(&run.run);
        writer.year(run.year);
        writer.u64(run.cutoff);
        writer.length(run.statements.len());
        for statement in &run.statements {
            writer.u64(statement.0);
        }
    }
    writer.length(image.bank_references.len());
    for (reference, used) in &image.bank_references {
        writer.text(reference.as_typed());
        match used {
            BankUse::Payment { statement } => {
                writer.u8(0);
                writer.u64(statement.0);
            }
            BankUse::Repayment {
                center,
                year,
                amount,
                value_date,
                sequence,
                // In the stacked section.
                source: _,
            } => {
                writer.u8(1);
                writer.uscc(center);
                writer.year(*year);
                writer.money_total(*amount);
                writer.date(*value_date);
                writer.u64(*sequence);
            }
        }
    }
    writer.u64(image.invoices_redeemed);
    writer.length(image.legacy_settlements.len());
    for settlement in &image.legacy_settlements {
        writer.settlement_id(settlement);
    }
    writer.length(image.reconciliations.len());
    for record in &image.reconciliations {
        writer.u64(record.sequence);
        writer.timestamp(record.at);
        encode_reconciliation(writer, &record.reconciliation);
    }
    encode_programme_extension(writer, image);
    encode_stacked_section(writer, image);
}

/// The programme extension of an image (see `docs/programmes.md`): the rules of policies
/// beyond Hangzhou 2024's, centers' capacities and vouchers' approval terms, each only
/// where it differs from the default; the section is written only when it holds anything,
/// so the image of a Hangzhou-2024-only state is byte for byte what it was.
///
/// ```text
/// extension = tag u8 (3) | count, (year, rules)* | count, (uscc, capacity)*
///             | count, (voucher id, terms)*
/// ```
fn encode_programme_extension(writer: &mut Writer<'_>, image: &StateImage) {
    let policies: Vec<_> = image
        .policies
        .iter()
        .filter(|policy| !policy.rules().is_hangzhou_2024())
        .collect();
    let centers: Vec<_> = image
        .centers
        .iter()
        .filter(|center| !center.capacity.is_unknown())
        .collect();
    let vouchers: Vec<_> = image
        .vouchers
        .iter()
        .filter(|voucher| !voucher.terms.programme.is_default())
        .collect();
    if policies.is_empty() && centers.is_empty() && vouchers.is_empty() {
        return;
    }
    writer.u8(PROGRAMME_EXTENSION_TAG);
    writer.length(policies.len());
    for policy in policies {
        writer.year(policy.year());
        encode_rules(writer, policy.rules());
    }
    writer.length(centers.len());
    for center in centers {
        writer.uscc(&center.center);
        encode_capacity(writer, &center.capacity);
    }
    writer.length(vouchers.len());
    for voucher in vouchers {
        writer.voucher_id(&voucher.terms.voucher);
        encode_approval_terms(writer, &voucher.terms.programme);
    }
}

/// The tag of the next trailing section, `None` at the image's end.
fn next_section(reader: &mut Reader<'_>) -> Result<Option<u8>, CodecError> {
    if reader.at_end() {
        return Ok(None);
    }
    Ok(Some(reader.u8()?))
}

fn missing_entry(section: &str, what: &str, key: String) -> CodecError {
    CodecError {
        reason: format!("the {section} names {what} {key}, which the image does not hold"),
    }
}

/// The stacked-funding section of an image: a second source's books, each voucher's
/// second share, and which statements and repayments are the second source's. Written
/// only when a policy has a second source, so every other image is byte for byte what
/// it was.
///
/// ```text
/// stacked = tag u8 (4) | count, (year, year book)* | count, (uscc, year, payee books)*
///           | count, (voucher id, money second face value, remaining, subsidy,
///                     released, clawbacks outstanding)*          (non-zero shares only)
///           | count, statement id*          (the second source's statements)
///           | count, bank reference (text)* (repayments to the second source)
/// ```
fn encode_stacked_section(writer: &mut Writer<'_>, image: &StateImage) {
    if image.second_years.is_empty() && image.second_center_years.is_empty() {
        return;
    }
    writer.u8(STACKED_SECTION_TAG);
    writer.length(image.second_years.len());
    for (year, book) in &image.second_years {
        writer.year(*year);
        encode_year_book(writer, book);
    }
    writer.length(image.second_center_years.len());
    for ((payee, year), books) in &image.second_center_years {
        writer.uscc(payee);
        writer.year(*year);
        encode_center_year(writer, books);
    }
    let shares: Vec<&Voucher> = image
        .vouchers
        .iter()
        .filter(|voucher| {
            !voucher.terms.programme.second_face_value.is_zero() || !voucher.second.is_zero()
        })
        .collect();
    writer.length(shares.len());
    for voucher in shares {
        writer.voucher_id(&voucher.terms.voucher);
        writer.money_total(voucher.terms.programme.second_face_value);
        writer.money_total(voucher.second.remaining);
        writer.money_total(voucher.second.subsidy_total);
        writer.money_total(voucher.second.released);
        writer.money_total(voucher.second.clawback_outstanding);
    }
    let statements: Vec<StatementId> = image
        .statements
        .iter()
        .filter(|statement| statement.source == FundingSource::Second)
        .map(|statement| statement.id)
        .collect();
    writer.length(statements.len());
    for id in statements {
        writer.u64(id.0);
    }
    let repayments: Vec<&BankReference> = image
        .bank_references
        .iter()
        .filter(|(_, used)| {
            matches!(used, BankUse::Repayment { source, .. } if *source == FundingSource::Second)
        })
        .map(|(reference, _)| reference)
        .collect();
    writer.length(repayments.len());
    for reference in repayments {
        writer.text(reference.as_typed());
    }
}

/// Reads the stacked section into `image`. Every entry must name a voucher, statement
/// or repayment the image holds.
fn decode_stacked_section(
    reader: &mut Reader<'_>,
    image: &mut StateImage,
) -> Result<(), CodecError> {
    const SECTION: &str = "stacked-funding section";
    image.second_years = items(reader, 2, |reader| {
        Ok((reader.year()?, decode_year_book(reader)?))
    })?;
    image.second_center_years = items(reader, 20, |reader| {
        Ok((
            (reader.uscc()?, reader.year()?),
            decode_center_year(reader)?,
        ))
    })?;
    let positions: std::collections::BTreeMap<_, usize> = image
        .vouchers
        .iter()
        .enumerate()
        .map(|(position, voucher)| (voucher.terms.voucher, position))
        .collect();
    let count = reader.length(16)?;
    for _ in 0..count {
        let voucher_id = reader.voucher_id()?;
        let position = *positions
            .get(&voucher_id)
            .ok_or_else(|| missing_entry(SECTION, "voucher", voucher_id.to_string()))?;
        let voucher = &mut image.vouchers[position];
        voucher.terms.programme.second_face_value = reader.money_total()?;
        voucher.second = VoucherShare {
            remaining: reader.money_total()?,
            subsidy_total: reader.money_total()?,
            released: reader.money_total()?,
            clawback_outstanding: reader.money_total()?,
        };
    }
    let count = reader.length(8)?;
    for _ in 0..count {
        let id = StatementId(reader.u64()?);
        let position = image
            .statements
            .binary_search_by_key(&id, |statement| statement.id)
            .map_err(|_| missing_entry(SECTION, "statement", id.to_string()))?;
        image.statements[position].source = FundingSource::Second;
    }
    let count = reader.length(4)?;
    for _ in 0..count {
        let reference = BankReference::from_stored(reader.text()?)?;
        let used = image
            .bank_references
            .binary_search_by(|(stored, _)| stored.cmp(&reference))
            .ok()
            .map(|position| &mut image.bank_references[position].1);
        match used {
            Some(BankUse::Repayment { source, .. }) => *source = FundingSource::Second,
            _ => {
                return Err(missing_entry(
                    SECTION,
                    "the repayment with bank reference",
                    reference.to_string(),
                ))
            }
        }
    }
    Ok(())
}

/// Reads the programme extension (its tag already read) into `image`. Every entry must
/// name a policy, center or voucher the image holds.
fn decode_programme_extension(
    reader: &mut Reader<'_>,
    image: &mut StateImage,
) -> Result<(), CodecError> {
    let missing = |what: &str, key: String| missing_entry("programme extension", what, key);
    let count = reader.length(3)?;
    for _ in 0..count {
        let year = reader.year()?;
        let rules = decode_rules(reader)?;
        let policy = image
            .policies
            .iter_mut()
            .find(|policy| policy.year() == year)
            .ok_or_else(|| missing("the policy of", year.to_string()))?;
        *policy = policy.clone().with_rules(rules)?;
    }
    let count = reader.length(20)?;
    for _ in 0..count {
        let center = reader.uscc()?;
        let capacity = decode_capacity(reader)?;
        let account = image
            .centers
            .iter_mut()
            .find(|account| account.center == center)
            .ok_or_else(|| missing("center", center.to_string()))?;
        account.capacity = capacity;
    }
    let count = reader.length(19)?;
    // An image may hold millions of vouchers: find them by id, not by a scan each.
    let positions: std::collections::BTreeMap<_, usize> = image
        .vouchers
        .iter()
        .enumerate()
        .map(|(position, voucher)| (voucher.terms.voucher, position))
        .collect();
    for _ in 0..count {
        let voucher_id = reader.voucher_id()?;
        let terms = decode_approval_terms(reader)?;
        let position = *positions
            .get(&voucher_id)
            .ok_or_else(|| missing("voucher", voucher_id.to_string()))?;
        image.vouchers[position].terms.programme = terms;
    }
    Ok(())
}

/// Reads an image written by [`encode_image`].
pub fn decode_image(bytes: &[u8]) -> Result<StateImage, CodecError> {
    let mut reader = Reader::new(bytes);
    let reader = &mut reader;
    let last_sequence = reader.u64()?;
    let last_time = reader.timestamp()?;
    let image = StateImage {
        last_sequence,
        last_time,
        policies: items(reader, 22, decode_policy)?,
        years: items(reader, 2, |reader| {
            Ok((reader.year()?, decode_year_book(reader)?))
        })?,
        centers: items(reader, 18, decode_center)?,
        center_years: items(reader, 20, |reader| {
            Ok((
                (reader.uscc()?, reader.year()?),
                decode_center_year(reader)?,
            ))
        })?,
        enterprises: items(reader, 18, decode_enterprise)?,
        related_parties: items(reader, 36, |reader| Ok((reader.uscc()?, reader.uscc()?)))?,
        vouchers: items(reader, 100, decode_voucher)?,
        statements: items(reader, 60, decode_statement)?,
        runs: items(reader, 30, |reader| {
            Ok(SettlementRun {
                run: reader.settlement_run_id()?,
                year: reader.year()?,
                cutoff: reader.u64()?,
                statements: items(reader, 8, |reader| Ok(StatementId(reader.u64()?)))?,
            })
        })?,
        bank_references: items(reader, 5, |reader| {
            let reference = BankReference::from_stored(reader.text()?)?;
            let used = match reader.u8()? {
                0 => BankUse::Payment {
                    statement: StatementId(reader.u64()?),
                },
                1 => BankUse::Repayment {
                    center: reader.uscc()?,
                    year: reader.year()?,
                    amount: reader.money_total()?,
                    value_date: reader.date()?,
                    sequence: reader.u64()?,
                    // Filled from the stacked section, if any.
                    source: FundingSource::Primary,
                },
                other => return Err(unknown("bank reference use", other)),
            };
            Ok((reference, used))
        })?,
        invoices_redeemed: reader.u64()?,
        legacy_settlements: items(reader, 16, |reader| reader.settlement_id())?,
        reconciliations: items(reader, 60, |reader| {
            Ok(ReconciliationRecord {
                sequence: reader.u64()?,
                at: reader.timestamp()?,
                reconciliation: decode_reconciliation(reader)?,
            })
        })?,
        second_years: Vec::new(),
        second_center_years: Vec::new(),
    };
    let mut image = image;
    // The optional trailing sections, each at most once and in this order.
    let mut tag = next_section(reader)?;
    if tag == Some(PROGRAMME_EXTENSION_TAG) {
        decode_programme_extension(reader, &mut image)?;
        tag = next_section(reader)?;
    }
    if tag == Some(STACKED_SECTION_TAG) {
        decode_stacked_section(reader, &mut image)?;
        tag = next_section(reader)?;
    }
    if let Some(tag) = tag {
        return Err(unknown("image section", tag));
    }
    reader.finish()?;
    Ok(image)
}

fn encode_usage(writer: &mut Writer<'_>, usage: &Usage) {
    writer.money_total(usage.held);
    writer.money_total(usage.redeemed);
    writer.money_total(usage.receivable);
}

fn decode_usage(reader: &mut Reader<'_>) -> Result<Usage, CodecError> {
    Ok(Usage {
        held: reader.money_total()?,
        redeemed: reader.money_total()?,
        receivable: reader.money_total()?,
    })
}

fn encode_year_book(writer: &mut Writer<'_>, book: &YearBook) {
    writer.money_total(book.pool);
    encode_usage(writer, &book.usage);
    writer.u64(book.closed.unwrap_or(0));
    for amount in [
        book.approved,
        book.released,
        book.granted,
        book.reversed_unsettled,
        book.unsettled,
        book.standing_open,
        book.standing_paid,
        book.settled,
        book.clawed_back,
        book.offset,
        book.repaid,
        book.paid,
    ] {
        writer.money_total(amount);
    }
}

fn decode_year_book(reader: &mut Reader<'_>) -> Result<YearBook, CodecError> {
    Ok(YearBook {
        pool: reader.money_total()?,
        usage: decode_usage(reader)?,
        closed: Some(reader.u64()?).filter(|sequence| *sequence != 0),
        approved: reader.money_total()?,
        released: reader.money_total()?,
        granted: reader.money_total()?,
        reversed_unsettled: reader.money_total()?,
        unsettled: reader.money_total()?,
        standing_open: reader.money_total()?,
        standing_paid: reader.money_total()?,
        settled: reader.money_total()?,
        clawed_back: reader.money_total()?,
        offset: reader.money_total()?,
        repaid: reader.money_total()?,
        paid: reader.money_total()?,
    })
}

fn encode_center(writer: &mut Writer<'_>, center: &CenterAccount) {
    writer.uscc(&center.center);
    writer.text(center.name.as_str());
    writer.u8(tier_byte(center.tier));
    writer.u8(listing_byte(center.listing_basis));
    writer.u8(center_status_byte(center.status));
    writer.money_total(center.redeemed_total);
    writer.money_total(center.reversed_total);
    writer.money_total(center.paid_total);
}

fn decode_center(reader: &mut Reader<'_>) -> Result<CenterAccount, CodecError> {
    Ok(CenterAccount {
        center: reader.uscc()?,
        name: reader.legal_name()?,
        tier: tier_from(reader.u8()?)?,
        listing_basis: listing_from(reader.u8()?)?,
        // Filled from the programme extension at the image's end, if any.
        capacity: Default::default(),
        status: center_status_from(reader.u8()?)?,
        redeemed_total: reader.money_total()?,
        reversed_total: reader.money_total()?,
        paid_total: reader.money_total()?,
    })
}

fn encode_center_year(writer: &mut Writer<'_>, books: &CenterYear) {
    writer.money_total(books.granted);
    writer.u64(books.granted_count);
    writer.money_total(books.reversed_unsettled);
    writer.u64(books.reversed_unsettled_count);
    writer.money_total(books.unsettled);
    writer.u64(books.unsettled_count);
    writer.money_total(books.settled);
    writer.u64(books.settled_count);
    writer.length(books.settlements.len());
    for (cutoff, statement) in &books.settlements {
        writer.u64(*cutoff);
        // 0 marks a format-v1 settlement: statement ids are sequence numbers, never 0.
        writer.u64(statement.map_or(0, |statement| statement.0));
    }
    writer.length(books.receivables.len());
    for item in &books.receivables {
        writer.u64(item.reversal);
        writer.voucher_id(&item.voucher);
        writer.uscc(&item.enterprise);
        writer.money_total(item.outstanding);
        writer.bool(item.holds_pool);
    }
    writer.money_total(books.clawed_back);
    writer.money_total(books.offset);
    writer.money_total(books.repaid);
    writer.money_total(books.paid);
}

fn decode_center_year(reader: &mut Reader<'_>) -> Result<CenterYear, CodecError> {
    Ok(CenterYear {
        granted: reader.money_total()?,
        granted_count: reader.u64()?,
        reversed_unsettled: reader.money_total()?,
        reversed_unsettled_count: reader.u64()?,
        unsettled: reader.money_total()?,
        unsettled_count: reader.u64()?,
        settled: reader.money_total()?,
        settled_count: reader.u64()?,
        settlements: items(reader, 16, |reader| {
            let cutoff = reader.u64()?;
            let statement = Some(reader.u64()?).filter(|id| *id != 0).map(StatementId);
            Ok((cutoff, statement))
        })?,
        receivables: items(reader, 50, |reader| {
            Ok(ReceivableItem {
                reversal: reader.u64()?,
                voucher: reader.voucher_id()?,
                enterprise: reader.uscc()?,
                outstanding: reader.money_total()?,
                holds_pool: reader.bool()?,
            })
        })?,
        clawed_back: reader.money_total()?,
        offset: reader.money_total()?,
        repaid: reader.money_total()?,
        paid: reader.money_total()?,
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
        writer.money_total(granted.cap);
        writer.text(granted.reason.as_str());
    }
}

fn decode_enterprise(reader: &mut Reader<'_>) -> Result<EnterpriseAccount, CodecError> {
    let enterprise = reader.uscc()?;
    let name = reader.legal_name()?;
    let usage_by_year = items(reader, 26, |reader| {
        Ok((reader.year()?, decode_usage(reader)?))
    })?;
    let cap_overrides = items(reader, 14, |reader| {
        let year = reader.year()?;
        let cap = reader.money_total()?;
        let reason = reader.reason()?;
        Ok((year, CapOverride { cap, reason }))
    })?;
    Ok(EnterpriseAccount {
        enterprise,
        name,
        usage_by_year,
        cap_overrides,
    })
}

fn encode_voucher(writer: &mut Writer<'_>, voucher: &Voucher) {
    encode_voucher_terms(writer, &voucher.terms);
    writer.u64(voucher.approved_sequence);
    writer.u8(voucher_status_byte(voucher.status));
    writer.money_total(voucher.remaining);
    writer.money_total(voucher.subsidy_total);
    writer.money_total(voucher.invoiced_total);
    writer.money_total(voucher.released);
    writer.money_total(voucher.clawback_outstanding);
    writer.u32(voucher.invoice_count);
}

fn decode_voucher(reader: &mut Reader<'_>) -> Result<Voucher, CodecError> {
    Ok(Voucher {
        terms: decode_voucher_terms(reader)?,
        approved_sequence: reader.u64()?,
        status: voucher_status_from(reader.u8()?)?,
        remaining: reader.money_total()?,
        subsidy_total: reader.money_total()?,
        invoiced_total: reader.money_total()?,
        released: reader.money_total()?,
        clawback_outstanding: reader.money_total()?,
        invoice_count: reader.u32()?,
        // Filled from the stacked section, if any.
        second: VoucherShare::default(),
    })
}

fn encode_statement(writer: &mut Writer<'_>, statement: &Statement) {
    writer.u64(statement.id.0);
    writer.settlement_run_id(&statement.run);
    writer.uscc(&statement.center);
    writer.year(statement.year);
    writer.timestamp(statement.issued_at);
    writer.u64(statement.previous_cutoff);
    writer.u64(statement.cutoff);
    writer.u64(statement.invoices);
    writer.money_total(statement.gross);
    writer.money_total(statement.clawback_offset);
    writer.money_total(statement.net);
    writer.u8(statement_state_byte(statement.state));
    writer.money_total(statement.clawed_back);
    writer.length(statement.payments.len());
    for payment in &statement.payments {
        writer.text(payment.bank_reference.as_typed());
        writer.money_total(payment.amount);
        writer.date(payment.value_date);
        writer.u64(payment.sequence);
        match &payment.returned {
            Some((reason, sequence)) => {
                writer.u8(1);
                writer.text(reason.as_str());
                writer.u64(*sequence);
            }
            None => writer.u8(0),
        }
    }
}

fn decode_statement(reader: &mut Reader<'_>) -> Result<Statement, CodecError> {
    Ok(Statement {
        id: StatementId(reader.u64()?),
        run: reader.settlement_run_id()?,
        // Filled from the stacked section, if any.
        source: FundingSource::Primary,
        center: reader.uscc()?,
        year: reader.year()?,
        issued_at: reader.timestamp()?,
        previous_cutoff: reader.u64()?,
        cutoff: reader.u64()?,
        invoices: reader.u64()?,
        gross: reader.money_total()?,
        clawback_offset: reader.money_total()?,
        net: reader.money_total()?,
        state: statement_state_from(reader.u8()?)?,
        clawed_back: reader.money_total()?,
        payments: items(reader, 30, |reader| {
            Ok(PaymentRecord {
                bank_reference: BankReference::from_stored(reader.text()?)?,
                amount: reader.money_total()?,
                value_date: reader.date()?,
                sequence: reader.u64()?,
                returned: match reader.u8()? {
                    0 => None,
                    1 => Some((reader.reason()?, reader.u64()?)),
                    other => return Err(unknown("option flag", other)),
                },
            })
        })?,
    })
}
