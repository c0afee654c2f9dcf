//! The on-disk formats, pinned by committed fixtures (as fjall pins its own): a record log
//! holding every event type, invoice index entries, a snapshot, corrupt variants of each,
//! and data directories built from them that must open and verify.
//!
//! | fixture (under `tests/fixtures/`)          | format                  | holds                       |
//! |--------------------------------------------|-------------------------|-----------------------------|
//! | `log-v1-all-types.records`                 | records `VLEV` v1       | [`all_types_events`]        |
//! | `log-v1-all-types-{torn-tail,flipped-byte,bad-magic,unknown-version}.records` | records `VLEV` v1 | the same, one record damaged |
//! | `index-v1-entry.vlix`                      | index entry `VLIX` v1   | [`v1_index_entry`]          |
//! | `index-v1-entry-absurd-length.vlix`        | index entry `VLIX` v1   | a length of 2^40 bytes      |
//! | `index-v2-entry.vlix`                      | index entry `VLIX` v2   | [`v2_index_entry`]          |
//! | `index-v2-entry-{torn-tail,flipped-byte,bad-magic,unknown-version,absurd-length}.vlix` | `VLIX` v2 | the same, damaged |
//! | `snapshot-v2-all-types.vlsn`               | snapshot `VLSN` v2      | the state after the log     |
//!
//! Provenance: `log-v1-all-types.records` is byte for byte what the writer before the
//! storage restructure (commit 8eeeefa) produces for the same events, and
//! [`index_entry_v1_bytes`] reproduces every index value that writer's `demo` stores; the
//! events are exactly what the state machine decides from the matching commands.
//!
//! A `.records` file is a sequence of `sequence u64 LE | length u32 LE | record` (the
//! record exactly as the `events` column family stores it under that sequence); a `.vlix`
//! or `.vlsn` file is one stored value.
//!
//! The rules these tests enforce:
//!
//! - Fixtures of a version are written once, while it is the current version
//!   (`UPDATE_FIXTURES=1 cargo test --release --test format`), and never again:
//!   [`FROZEN_FIXTURES`] pins every file by its SM3 digest.
//! - The current version of each format must encode its fixture byte for byte, so a
//!   changed encoding without a version bump fails; after a bump the test asks for the new
//!   version's fixture and the old one stays.
//! - Every fixture of every version this build reads decodes to the values written here by
//!   hand, forever; v1 logs (and v1 index entries) keep opening and verifying.
//! - Damaged bytes are refused with an error naming the record's sequence or the index
//!   entry's key, never a panic, and corrupt lengths never allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sm3::{Digest, Sm3};
use voucher_ledger::audit::verify;
use voucher_ledger::domain::*;
use voucher_ledger::ledger::{Ledger, LedgerOptions};
use voucher_ledger::storage::index::{
    decode_index_entry, encode_index_entry, invoice_key, INDEX_FORMAT_VERSION, INDEX_MAGIC,
};
use voucher_ledger::storage::record::{
    check_record, encode_record, genesis_chain_hash, ChainHash, RecordError, RECORD_FORMAT_VERSION,
    RECORD_HEADER_LENGTH, RECORD_MAGIC,
};
use voucher_ledger::storage::snapshot::{
    decode_snapshot, encode_snapshot, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC,
};
use voucher_ledger::storage::{CommitBatch, EventStore};

// ------------------------------------------------------------- allocation tracking

/// The system allocator, noting the largest single request made on each thread, so a
/// test can show that decoding a corrupt length did not try to allocate it.
struct LargestRequest;

thread_local! {
    static LARGEST_REQUEST: Cell<usize> = const { Cell::new(0) };
}

fn note_request(size: usize) {
    let _ = LARGEST_REQUEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; only a thread-local counter
// (const-initialised, without a destructor, so it never allocates) is updated.
unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_request(new_size);
        unsafe { System.realloc(pointer, layout, new_size) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

/// Runs `work` and returns what it returned with the largest allocation it asked for.
fn largest_allocation<T>(work: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_REQUEST.with(|largest| largest.set(0));
    let result = work();
    (result, LARGEST_REQUEST.with(Cell::get))
}

// ------------------------------------------------------------------------ fixtures

/// Every committed fixture and the SM3 digest of its bytes. A fixture is written once,
/// while its format version is current, and never rewritten: a changed format gets a new
/// version and new files beside the old ones. A new file is added here when its version
/// is released (the test prints the line to add).
const FROZEN_FIXTURES: &[(&str, &str)] = &[
    // Owned by tests/storage.rs: the first v1 log fixture (7 event types) and its torn tail.
    (
        "log-v1.records",
        "c80413853c2601f2c03ae60c742b22ba182c0db8dc64e1177d10e8bc0a17b808",
    ),
    (
        "log-v1-torn-tail.records",
        "555dbe11bbecc7046f10e42ffe64dc23fbe3b459a82ea5a74f74b36c9a76eb10",
    ),
    // Record format v1: every event type, and four damaged copies.
    (
        "log-v1-all-types-bad-magic.records",
        "8addf5ed04589ec2e7c51199fc3cbe6199953b048c61968997f6462e54ecdc6b",
    ),
    (
        "log-v1-all-types-flipped-byte.records",
        "dc02715f0d5ecd70bbffb780524b87b0626354cbc97267f0569fa13471c9d3f9",
    ),
    (
        "log-v1-all-types-torn-tail.records",
        "228d6f548ee868bc235da21b46fb46cfcc227194f1069a098f092477cbb265c0",
    ),
    (
        "log-v1-all-types-unknown-version.records",
        "95a25199a456d34bb561c41cb11ee62f1d9017f602cf1590151e4f2fc6061171",
    ),
    (
        "log-v1-all-types.records",
        "2a5bf0b0506ed7cb4aba521d1e7eb3e8f5a38b53ecf7b732d0d72bf05e40f370",
    ),
    // Invoice index entries v1 (bincode) and v2, and damaged copies.
    (
        "index-v1-entry-absurd-length.vlix",
        "e47c1576769abcfb43e4865a8fc2218be9856f094e6c4ca875179cc71a5c3587",
    ),
    (
        "index-v1-entry.vlix",
        "d379e91802d0dbdc560cf730c87eebd76b82fa99a3a2443f2a0f6047c5362599",
    ),
    (
        "index-v2-entry-absurd-length.vlix",
        "6c773874e59f8a05d072e657214b5e337cb4d6adfdef6a6eb1e12475bc61ec90",
    ),
    (
        "index-v2-entry-bad-magic.vlix",
        "af294518a2e5ebdd71ae10cc549340500c1ec6c2165d362a10f2b1ef999b1572",
    ),
    (
        "index-v2-entry-flipped-byte.vlix",
        "8b0e5e8352859ff02582cce85cc3054cb43016ef896bd1028231726eb3a1395e",
    ),
    (
        "index-v2-entry-torn-tail.vlix",
        "1f35b3541f7f065cd9aa11f166a0503d3abad5b9544a30ac68baed1a9198ec86",
    ),
    (
        "index-v2-entry-unknown-version.vlix",
        "415ba96f5754613667d098ac48ec036fd6353f9e9db7bf0445fa1192ecc04d82",
    ),
    (
        "index-v2-entry.vlix",
        "39683ac68c61dccb354449d9b9ab858dc59e54772336ea654c92b5f70ec627fd",
    ),
    // Snapshot format v2: the state after the v1 all-types log.
    (
        "snapshot-v2-all-types.vlsn",
        "d5cebc9c3dd123b06ac56cfe75685bba6dd32ce5a10ea4601b9360443fb8dbfe",
    ),
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn updating_fixtures() -> bool {
    std::env::var_os("UPDATE_FIXTURES").is_some()
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name))
        .unwrap_or_else(|error| panic!("tests/fixtures/{name} is committed: {error}"))
}

fn try_read_fixture(name: &str) -> Option<Vec<u8>> {
    std::fs::read(fixture_path(name)).ok()
}

fn write_fixture(name: &str, bytes: &[u8]) {
    std::fs::write(fixture_path(name), bytes)
        .unwrap_or_else(|error| panic!("write tests/fixtures/{name}: {error}"));
}

/// For fixtures derived from committed bytes (the damaged variants): written under
/// `UPDATE_FIXTURES`, otherwise the committed file must be exactly the derivation.
fn derived_fixture(name: &str, derived: &[u8]) -> Vec<u8> {
    if updating_fixtures() {
        write_fixture(name, derived);
    }
    let committed = read_fixture(name);
    assert!(
        committed == derived,
        "tests/fixtures/{name} is not what its test derives from the committed fixture"
    );
    committed
}

fn sm3_hex(bytes: &[u8]) -> String {
    hex::encode(Sm3::digest(bytes))
}

// ------------------------------------------------------------------ the values

const CENTER_1: &str = "91330100MA2H00001P";
const CENTER_2: &str = "91330100MA2H00002T";
const CENTER_3: &str = "91330100MA2H00003X";
const ENTERPRISE_1: &str = "91330106MA2K00001K";
const ENTERPRISE_2: &str = "91330106MA2K00002N";
const VOUCHER_1: u128 = 0x1f6c_0a3e_55b2_4c71_9d0e_2b8f_4a10_0001;
const VOUCHER_2: u128 = 0x5d21_77c4_0e9a_4b3f_8c61_d0a2_93e7_0002;
const VOUCHER_3: u128 = 0x0a93_e2f1_6b40_4d8e_a7c5_1e3b_6f29_0003;
const SETTLEMENT_1: u128 = 0x7b1e_4c2a_90d3_4f65_b8a7_3c0e_12d4_0001;
const SETTLEMENT_2: u128 = 0x2c84_f0b9_1a6e_4713_9e52_a4d8_6b31_0002;

fn uscc(text: &str) -> Uscc {
    Uscc::parse("uscc", text).expect("fixture USCC")
}

fn money(text: &str) -> Money {
    Money::parse("amount", text).expect("fixture amount")
}

fn rate(basis_points: u16) -> Rate {
    Rate::from_basis_points(basis_points).expect("fixture rate")
}

fn date(text: &str) -> Date {
    Date::parse("date", text).expect("fixture date")
}

fn year_2026() -> ProgrammeYear {
    ProgrammeYear::new(2026).expect("fixture year")
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("fixture reason")
}

fn legal_name(text: &str) -> LegalName {
    LegalName::parse(text).expect("fixture name")
}

fn invoice_number(text: &str) -> InvoiceNumber {
    InvoiceNumber::parse(text).expect("fixture invoice number")
}

fn proof(text: &str) -> DeliveryProof {
    DeliveryProof::parse(text).expect("fixture delivery proof")
}

/// Milliseconds since the Unix epoch of `day` (YYYY-MM-DD) at `hh:mm` UTC.
fn at(day: &str, hour: i64, minute: i64) -> Timestamp {
    Timestamp(i64::from(date(day).days_since_epoch()) * 86_400_000 + (hour * 60 + minute) * 60_000)
}

#[allow(clippy::too_many_arguments)]
fn approved(
    voucher: u128,
    enterprise: &str,
    center: &str,
    contract: &str,
    fee: &str,
    term: (&str, &str),
    tier: FacilityTier,
    tier_rate: u16,
    requested: &str,
    face_value: &str,
) -> Event {
    Event::VoucherApproved(Box::new(VoucherApproved {
        voucher: VoucherId::from_u128(voucher),
        year: year_2026(),
        enterprise: uscc(enterprise),
        center: uscc(center),
        contract_number: ContractNumber::parse(contract).expect("fixture contract"),
        contract_fee: money(fee),
        term_start: date(term.0),
        term_end: date(term.1),
        tier,
        rate: rate(tier_rate),
        ceiling: rate(3000),
        requested: money(requested),
        face_value: money(face_value),
    }))
}

fn redeemed(
    voucher: u128,
    number: &str,
    amount: &str,
    issued: &str,
    delivery_proof: &str,
    subsidy: &str,
) -> Event {
    Event::InvoiceRedeemed(InvoiceRedeemed {
        voucher: VoucherId::from_u128(voucher),
        center: uscc(CENTER_1),
        invoice_number: invoice_number(number),
        amount: money(amount),
        issue_date: date(issued),
        delivery_proof: proof(delivery_proof),
        subsidy: money(subsidy),
    })
}

fn reversed(
    voucher: u128,
    number: &str,
    amount: &str,
    subsidy: &str,
    clawback: bool,
    returned_to_voucher: bool,
    why: &str,
) -> Event {
    Event::InvoiceReversed(InvoiceReversed {
        voucher: VoucherId::from_u128(voucher),
        center: uscc(CENTER_1),
        invoice_number: invoice_number(number),
        amount: money(amount),
        subsidy: money(subsidy),
        clawback,
        returned_to_voucher,
        reason: reason(why),
    })
}

fn settled(settlement: u128, redeemed: &str, clawback_offset: &str, paid: &str) -> Event {
    Event::CenterSettled {
        center: uscc(CENTER_1),
        settlement_id: SettlementId::from_u128(settlement),
        redeemed: money(redeemed),
        clawback_offset: money(clawback_offset),
        paid: money(paid),
    }
}

/// The log of `log-v1-all-types.records`, written out by hand: every event type, every
/// value of every enum an event carries (tiers, listing bases, center statuses, release
/// causes with and without a reason, reversals with and without clawback), non-ASCII
/// text, and amounts that take each width of bincode's variable-length integers. It is a
/// consistent programme year (replay keeps every invariant, `verify` finds it clean), so
/// it also makes the snapshot and the index entries.
///
/// Frozen: it is what the committed v1 bytes must decode to, forever.
fn all_types_events() -> Vec<SequencedEvent> {
    let policy = ProgrammePolicy::new(
        year_2026(),
        money("50000000.00"),
        money("2000000.00"),
        rate(3000),
        [rate(3000), rate(2500), rate(2000)],
    )
    .expect("fixture policy");
    let events = vec![
        (
            at("2026-01-02", 9, 0),
            Event::PolicyPublished {
                policy: Box::new(policy),
            },
        ),
        (
            at("2026-01-05", 9, 0),
            Event::CenterRegistered {
                center: uscc(CENTER_1),
                name: legal_name("杭州城西算力中心有限公司"),
                tier: FacilityTier::Domestic,
                listing_basis: ListingBasis::PlanningLayout,
            },
        ),
        (
            at("2026-01-05", 9, 1),
            Event::CenterRegistered {
                center: uscc(CENTER_2),
                name: legal_name("Hangzhou MaaS Compute Co., Ltd."),
                tier: FacilityTier::MaasMultimodal,
                listing_basis: ListingBasis::MatchmakingPartner,
            },
        ),
        (
            at("2026-01-05", 9, 2),
            Event::CenterRegistered {
                center: uscc(CENTER_3),
                name: legal_name("Qiantang Compute Ltd."),
                tier: FacilityTier::Other,
                listing_basis: ListingBasis::PlanningLayout,
            },
        ),
        (
            at("2026-01-06", 14, 30),
            Event::CenterStatusChanged {
                center: uscc(CENTER_3),
                from: CenterStatus::Active,
                to: CenterStatus::Suspended,
                reason: reason("资质复核 (licence review)"),
            },
        ),
        (
            at("2026-01-07", 10, 0),
            Event::EnterpriseRegistered {
                enterprise: uscc(ENTERPRISE_1),
                name: legal_name("杭州深度模型科技有限公司"),
            },
        ),
        (
            at("2026-01-07", 10, 5),
            Event::EnterpriseRegistered {
                enterprise: uscc(ENTERPRISE_2),
                name: legal_name("Westlake Vision Ltd."),
            },
        ),
        (
            at("2026-01-08", 11, 0),
            Event::CapOverrideGranted {
                enterprise: uscc(ENTERPRISE_1),
                year: year_2026(),
                cap: money("5000000.00"),
                reason: reason("generative multimodal foundation model"),
            },
        ),
        (
            at("2026-01-08", 11, 30),
            Event::RelatedPartyDeclared {
                enterprise: uscc(ENTERPRISE_2),
                center: uscc(CENTER_2),
                reason: reason("common shareholder"),
            },
        ),
        (
            at("2026-01-10", 15, 0),
            approved(
                VOUCHER_1,
                ENTERPRISE_1,
                CENTER_1,
                "HZ-2026-0001",
                "1000000.00",
                ("2026-01-01", "2026-12-31"),
                FacilityTier::Domestic,
                3000,
                "300000.00",
                "300000.00",
            ),
        ),
        (
            at("2026-01-10", 15, 10),
            approved(
                VOUCHER_2,
                ENTERPRISE_1,
                CENTER_2,
                "HZ-2026-0002",
                "200000.00",
                ("2026-01-15", "2027-01-14"),
                FacilityTier::MaasMultimodal,
                2500,
                "40000.00",
                "40000.00",
            ),
        ),
        (
            at("2026-01-11", 9, 0),
            approved(
                VOUCHER_3,
                ENTERPRISE_2,
                CENTER_1,
                "HZ-2026-0003",
                "100000.00",
                ("2026-01-01", "2026-03-31"),
                FacilityTier::Domestic,
                3000,
                "50000.00",
                "30000.00",
            ),
        ),
        (
            at("2026-02-10", 16, 0),
            redeemed(
                VOUCHER_1,
                "INV-0001",
                "100000.00",
                "2026-02-10",
                "acceptance/2026/02",
                "30000.00",
            ),
        ),
        (
            at("2026-02-20", 16, 0),
            redeemed(
                VOUCHER_3,
                "INV-0002",
                "10000.00",
                "2026-02-20",
                "usage report 2026-02",
                "3000.00",
            ),
        ),
        (
            at("2026-03-01", 10, 0),
            settled(SETTLEMENT_1, "33000.00", "0.00", "33000.00"),
        ),
        (
            at("2026-03-10", 16, 0),
            redeemed(
                VOUCHER_1,
                "INV-0003",
                "33333.33",
                "2026-03-10",
                "验收单 2026-03",
                "9999.99",
            ),
        ),
        (
            at("2026-03-20", 16, 0),
            redeemed(
                VOUCHER_3,
                "INV-0004",
                "5000.00",
                "2026-03-20",
                "usage report 2026-03",
                "1500.00",
            ),
        ),
        (
            at("2026-03-25", 9, 0),
            // Settled (clawback) while the voucher was active (returned to it).
            reversed(
                VOUCHER_3,
                "INV-0002",
                "10000.00",
                "3000.00",
                true,
                true,
                "credit note 红字发票",
            ),
        ),
        (
            at("2026-03-28", 9, 0),
            Event::VoucherReleased {
                voucher: VoucherId::from_u128(VOUCHER_2),
                cause: ReleaseCause::Cancelled,
                released: money("40000.00"),
                reason: Some(reason("contract terminated by both parties")),
            },
        ),
        (
            at("2026-04-02", 0, 5),
            Event::VoucherReleased {
                voucher: VoucherId::from_u128(VOUCHER_3),
                cause: ReleaseCause::Expired,
                released: money("28500.00"),
                reason: None,
            },
        ),
        (
            at("2026-04-03", 9, 0),
            // Unsettled (no clawback) after the voucher expired (not returned to it).
            reversed(
                VOUCHER_3,
                "INV-0004",
                "5000.00",
                "1500.00",
                false,
                false,
                "duplicate billing",
            ),
        ),
        (
            at("2026-04-30", 10, 0),
            settled(SETTLEMENT_2, "9999.99", "3000.00", "6999.99"),
        ),
        (
            at("2026-05-06", 14, 0),
            Event::CenterStatusChanged {
                center: uscc(CENTER_3),
                from: CenterStatus::Suspended,
                to: CenterStatus::Delisted,
                reason: reason("licence revoked"),
            },
        ),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(index, (at, event))| SequencedEvent {
            sequence: index as u64 + 1,
            at,
            event,
        })
        .collect()
}

/// The events of the current record format version's fixture. While the version is 1 this
/// is the v1 log; a new version lists here every event type it writes (so its fixture
/// covers them all), and `all_types_events` stays as v1's.
fn current_version_events() -> Vec<SequencedEvent> {
    all_types_events()
}

/// The event types record format v1 carries.
const V1_EVENT_TYPES: std::ops::RangeInclusive<u16> = 1..=11;
/// How many event types there are; see [`pinned_type_number`].
const EVENT_TYPES: u16 = 11;

/// Every event type with the number its records carry, by an exhaustive match: a new
/// `Event` variant stops this file from compiling until it is given its number here,
/// `EVENT_TYPES` counts it, and the current version's fixture holds a record of it.
fn pinned_type_number(event: &Event) -> u16 {
    match event {
        Event::PolicyPublished { .. } => 1,
        Event::CenterRegistered { .. } => 2,
        Event::CenterStatusChanged { .. } => 3,
        Event::EnterpriseRegistered { .. } => 4,
        Event::CapOverrideGranted { .. } => 5,
        Event::RelatedPartyDeclared { .. } => 6,
        Event::VoucherApproved(_) => 7,
        Event::InvoiceRedeemed(_) => 8,
        Event::InvoiceReversed(_) => 9,
        Event::VoucherReleased { .. } => 10,
        Event::CenterSettled { .. } => 11,
    }
}

/// The v1 index fixture's entry: invoice INV-0002 of center 1 (reversed, before the
/// first settlement).
fn v1_index_entry() -> (Uscc, InvoiceNumber, InvoiceEntry) {
    (
        uscc(CENTER_1),
        invoice_number("INV-0002"),
        InvoiceEntry {
            voucher: VoucherId::from_u128(VOUCHER_3),
            amount: money("10000.00"),
            issue_date: date("2026-02-20"),
            delivery_proof: proof("usage report 2026-02"),
            subsidy: money("3000.00"),
            sequence: 14,
            settlement_epoch: 0,
            reversed: true,
        },
    )
}

/// The v2 index fixture's entry: invoice INV-0003 of center 1 (live, after the first
/// settlement, with a non-ASCII delivery proof).
fn v2_index_entry() -> (Uscc, InvoiceNumber, InvoiceEntry) {
    (
        uscc(CENTER_1),
        invoice_number("INV-0003"),
        InvoiceEntry {
            voucher: VoucherId::from_u128(VOUCHER_1),
            amount: money("33333.33"),
            issue_date: date("2026-03-10"),
            delivery_proof: proof("验收单 2026-03"),
            subsidy: money("9999.99"),
            sequence: 16,
            settlement_epoch: 1,
            reversed: false,
        },
    )
}

/// The entry of the index fixture of each version this build reads.
fn index_fixture_entry(version: u16) -> (Uscc, InvoiceNumber, InvoiceEntry) {
    match version {
        1 => v1_index_entry(),
        _ => v2_index_entry(),
    }
}

// ------------------------------------------------------------- log (de)framing

/// Frames `events` as a chained log in the current record format, in the fixture layout.
fn encode_log(events: &[SequencedEvent]) -> Vec<u8> {
    let mut chain = genesis_chain_hash();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for event in events {
        let mut record = Vec::new();
        chain = encode_record(event, &chain, &mut scratch, &mut record).expect("encode");
        out.extend_from_slice(&event.sequence.to_le_bytes());
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
    out
}

/// The (sequence, record) pairs of a fixture log; a torn last record comes back short.
fn split_log(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 12 {
        let sequence = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let length = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let end = (12 + length).min(rest.len());
        records.push((sequence, &rest[12..end]));
        rest = &rest[end..];
    }
    assert!(rest.is_empty(), "a fixture log ends on a record");
    records
}

/// Checks and decodes every record of a fixture log in order, as the log reader does:
/// the frame, the link to the record before, then the payload.
fn decode_log(bytes: &[u8]) -> Result<Vec<(SequencedEvent, ChainHash)>, RecordError> {
    let mut chain = genesis_chain_hash();
    let mut events = Vec::new();
    for (sequence, record) in split_log(bytes) {
        let checked = check_record(sequence, record, &chain)?;
        let event = checked.decode()?;
        chain = checked.chain_hash;
        events.push((
            SequencedEvent {
                sequence,
                at: checked.at,
                event,
            },
            chain,
        ));
    }
    Ok(events)
}

fn replay(events: &[SequencedEvent]) -> LedgerState {
    let mut state = LedgerState::new();
    for event in events {
        state.apply(event.sequence, event.at, &event.event);
    }
    state
}

/// The index entry of every invoice of `events`, as the log leaves it.
fn index_entries(events: &[SequencedEvent]) -> Vec<(Uscc, InvoiceNumber, InvoiceEntry)> {
    let state = replay(events);
    events
        .iter()
        .filter_map(|event| match &event.event {
            Event::InvoiceRedeemed(redeemed) => Some((
                redeemed.center,
                redeemed.invoice_number.clone(),
                state
                    .invoice(&redeemed.center, &redeemed.invoice_number)
                    .expect("a redeemed invoice is in the complete state")
                    .clone(),
            )),
            _ => None,
        })
        .collect()
}

// ----------------------------------------------------- index entry v1, by hand

/// bincode 2's standard configuration, written out: unsigned integers as variable-length
/// integers (one byte below 251, else a marker and 2, 4 or 8 little-endian bytes).
fn bincode_varint(out: &mut Vec<u8>, value: u64) {
    if value < 251 {
        out.push(value as u8);
    } else if value <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(value as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Signed integers zigzag-encoded, then as [`bincode_varint`].
fn bincode_signed(out: &mut Vec<u8>, value: i64) {
    bincode_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// A v1 invoice index value as the ledger wrote it before index format v2: `VLIX`,
/// version 1, then bincode (standard configuration, through serde) of the frozen v1 shape
/// (`storage::payload_v1::IndexEntryV1`, which the v1 writer's `InvoiceEntry` serialised
/// as): voucher UUID as serde bytes (length 16, then the bytes), amount i64 fen, issue date
/// i32 days, delivery proof as a string (length, UTF-8), subsidy i64 fen, sequence u64,
/// settlement epoch u32, reversed bool. Written by hand, so the fixture does not depend on
/// the code that reads it.
fn index_entry_v1_bytes(entry: &InvoiceEntry) -> Vec<u8> {
    let mut out = INDEX_MAGIC.to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    bincode_varint(&mut out, 16);
    out.extend_from_slice(entry.voucher.as_uuid().as_bytes());
    bincode_signed(&mut out, entry.amount.to_fen());
    bincode_signed(&mut out, i64::from(entry.issue_date.days_since_epoch()));
    let proof = entry.delivery_proof.as_str().as_bytes();
    bincode_varint(&mut out, proof.len() as u64);
    out.extend_from_slice(proof);
    bincode_signed(&mut out, entry.subsidy.to_fen());
    bincode_varint(&mut out, entry.sequence);
    bincode_varint(&mut out, u64::from(entry.settlement_epoch));
    out.push(u8::from(entry.reversed));
    out
}

// ------------------------------------------------------------ data directories

/// What goes into the invoice index of a data directory made from a fixture log.
#[derive(Clone, Copy)]
enum IndexAs {
    /// Encoded by the current build (`put_invoice`).
    Current,
    /// v1 values (bincode), as a data directory written before index format v2 holds.
    V1,
}

/// Values written straight into a column family, bypassing the store's encoders.
struct RawValue {
    family: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Writes the records of a fixture log into a fresh data directory through the store,
/// with the index entries of `events`, then any raw values (older or damaged formats the
/// store's API would not write).
fn make_data_dir(
    directory: &Path,
    records: &[(u64, &[u8])],
    events: &[SequencedEvent],
    index: IndexAs,
    raw: &[RawValue],
) {
    let entries = index_entries(events);
    let mut raw_values: Vec<RawValue> = Vec::new();
    {
        let store = EventStore::open(directory, false).expect("open a fresh store");
        let mut batch = CommitBatch::default();
        for (sequence, record) in records {
            store
                .put_record(&mut batch, *sequence, record)
                .expect("put record");
        }
        for (center, number, entry) in &entries {
            match index {
                IndexAs::Current => store
                    .put_invoice(&mut batch, center, number, entry)
                    .expect("put invoice"),
                IndexAs::V1 => raw_values.push(RawValue {
                    family: "invoices",
                    key: invoice_key(center, number),
                    value: index_entry_v1_bytes(entry),
                }),
            }
        }
        store.commit(batch).expect("commit");
        store.flush().expect("flush");
    }
    raw_values.extend(raw.iter().map(|value| RawValue {
        family: value.family,
        key: value.key.clone(),
        value: value.value.clone(),
    }));
    if raw_values.is_empty() {
        return;
    }
    // The store has no API for writing foreign bytes into the index or the snapshots, so
    // they go in through RocksDB itself (column families as `storage::store` documents).
    let db = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        directory,
        ["events", "invoices", "snapshots"],
    )
    .expect("open the data directory with RocksDB");
    for raw in &raw_values {
        let family = db.cf_handle(raw.family).expect("column family");
        db.put_cf(family, &raw.key, &raw.value).expect("raw put");
    }
    db.flush_wal(true).expect("flush");
}

fn ledger_options() -> LedgerOptions {
    LedgerOptions {
        sync: false,
        ..LedgerOptions::default()
    }
}

// ======================================================================== tests

#[test]
fn every_event_type_keeps_its_number_and_the_fixtures_cover_them_all() {
    let current: BTreeSet<u16> = current_version_events()
        .iter()
        .map(|event| {
            assert_eq!(
                event.event.type_number(),
                pinned_type_number(&event.event),
                "{} was renumbered: type numbers are written in every record and never change",
                event.event.name()
            );
            event.event.type_number()
        })
        .collect();
    assert_eq!(
        current,
        (1..=EVENT_TYPES).collect::<BTreeSet<u16>>(),
        "the current version's fixture must hold a record of every event type"
    );
    let v1: BTreeSet<u16> = all_types_events()
        .iter()
        .map(|event| event.event.type_number())
        .collect();
    assert_eq!(v1, V1_EVENT_TYPES.collect::<BTreeSet<u16>>());
}

#[test]
fn v1_log_fixture_decodes_to_the_expected_event_of_every_type() {
    // The committed v1 bytes, read by whatever the record format has become since.
    let committed = read_fixture("log-v1-all-types.records");
    let decoded = decode_log(&committed).unwrap_or_else(|error| {
        panic!("a v1 record no longer reads (v1 logs must keep opening): {error}")
    });
    let expected = all_types_events();
    assert_eq!(decoded.len(), expected.len());
    for ((got, _), want) in decoded.iter().zip(&expected) {
        assert_eq!(
            got, want,
            "record {} of the v1 fixture decodes to another event",
            want.sequence
        );
    }
    let events: Vec<&Event> = decoded.iter().map(|(event, _)| &event.event).collect();
    assert!(events.iter().any(|event| matches!(
        event,
        Event::VoucherReleased {
            cause: ReleaseCause::Cancelled,
            reason: Some(_),
            ..
        }
    )));
    assert!(events.iter().any(|event| matches!(
        event,
        Event::VoucherReleased {
            cause: ReleaseCause::Expired,
            reason: None,
            ..
        }
    )));
    assert!(events.iter().any(|event| matches!(
        event,
        Event::InvoiceReversed(InvoiceReversed {
            clawback: true,
            returned_to_voucher: true,
            ..
        })
    )));
    assert!(events.iter().any(|event| matches!(
        event,
        Event::InvoiceReversed(InvoiceReversed {
            clawback: false,
            returned_to_voucher: false,
            ..
        })
    )));
    // And the log is a consistent programme year.
    let state = replay(&expected);
    assert_eq!(state.check_invariants(), Vec::<String>::new());
}

#[test]
fn current_record_version_encodes_the_all_types_log_byte_for_byte_as_its_fixture() {
    let name = format!("log-v{RECORD_FORMAT_VERSION}-all-types.records");
    let encoded = encode_log(&current_version_events());
    if updating_fixtures() {
        write_fixture(&name, &encoded);
    }
    let Some(committed) = try_read_fixture(&name) else {
        panic!(
            "record format is v{RECORD_FORMAT_VERSION} and tests/fixtures/{name} is missing: \
             add the new version's fixture and keep the old one \
             (UPDATE_FIXTURES=1 cargo test --release --test format writes it; \
             log-v1-all-types.records stays and must still decode)"
        );
    };
    assert!(
        encoded == committed,
        "the record encoding changed but RECORD_FORMAT_VERSION is still {RECORD_FORMAT_VERSION}: \
         bump it, add the new version's fixture and keep the old one \
         (keep a reader for every version whose fixture is committed)"
    );
    assert_eq!(&committed[12..16], RECORD_MAGIC);
    assert_eq!(committed[16..18], RECORD_FORMAT_VERSION.to_le_bytes());
}

#[test]
fn committed_fixtures_are_frozen_by_their_sm3_digests() {
    let mut problems = Vec::new();
    for (name, digest) in FROZEN_FIXTURES {
        match try_read_fixture(name) {
            Some(bytes) if sm3_hex(&bytes) == *digest => {}
            Some(bytes) => problems.push(format!(
                "{name} was rewritten (SM3 {}, pinned {digest}): a released fixture never \
                 changes; give the changed format a new version, add the new version's \
                 fixture and keep the old one",
                sm3_hex(&bytes)
            )),
            None => problems.push(format!("{name} is pinned but missing: keep it")),
        }
    }
    let pinned: BTreeSet<&str> = FROZEN_FIXTURES.iter().map(|(name, _)| *name).collect();
    let directory = fixture_path("");
    for file in std::fs::read_dir(&directory).expect("tests/fixtures") {
        let file = file.expect("entry");
        let name = file.file_name().to_string_lossy().into_owned();
        if file.path().is_file() && !pinned.contains(name.as_str()) {
            let bytes = std::fs::read(file.path()).expect("read fixture");
            problems.push(format!(
                "{name} is not pinned: add (\"{name}\", \"{}\") to FROZEN_FIXTURES",
                sm3_hex(&bytes)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn index_entry_fixtures_of_every_readable_version_decode_to_their_entries() {
    // v1: bincode, written by hand as the pre-v2 ledger wrote it.
    let (_, _, v1_entry) = v1_index_entry();
    let v1 = index_entry_v1_bytes(&v1_entry);
    if updating_fixtures() {
        write_fixture("index-v1-entry.vlix", &v1);
    }
    let committed_v1 = read_fixture("index-v1-entry.vlix");
    assert_eq!(committed_v1, v1, "the v1 index fixture is frozen");
    // Every committed version up to the current one decodes to the same entry forever.
    for version in 1..=INDEX_FORMAT_VERSION {
        let name = format!("index-v{version}-entry.vlix");
        let Some(bytes) = try_read_fixture(&name) else {
            continue;
        };
        assert_eq!(bytes[..4], INDEX_MAGIC, "{name}");
        assert_eq!(bytes[4..6], version.to_le_bytes(), "{name}");
        let decoded = decode_index_entry(&bytes)
            .unwrap_or_else(|error| panic!("{name} no longer decodes: {}", error.reason));
        assert_eq!(decoded, index_fixture_entry(version).2, "{name}");
    }
    // The entries are the ones the fixture log leaves in the index.
    let from_log = index_entries(&all_types_events());
    for version in [1, 2] {
        let (center, number, entry) = index_fixture_entry(version);
        assert!(
            from_log.contains(&(center, number, entry)),
            "index fixture v{version} is an entry of the fixture log"
        );
    }
}

#[test]
fn current_index_version_encodes_its_entry_byte_for_byte_as_its_fixture() {
    let name = format!("index-v{INDEX_FORMAT_VERSION}-entry.vlix");
    let (_, _, entry) = index_fixture_entry(INDEX_FORMAT_VERSION);
    let mut encoded = Vec::new();
    encode_index_entry(&entry, &mut encoded);
    if updating_fixtures() {
        write_fixture(&name, &encoded);
    }
    let Some(committed) = try_read_fixture(&name) else {
        panic!(
            "index format is v{INDEX_FORMAT_VERSION} and tests/fixtures/{name} is missing: \
             add the new version's fixture and keep the old one (UPDATE_FIXTURES=1 writes it)"
        );
    };
    assert!(
        encoded == committed,
        "the invoice index encoding changed but INDEX_FORMAT_VERSION is still \
         {INDEX_FORMAT_VERSION}: bump it, add the new version's fixture and keep the old one"
    );
    assert_eq!(committed[..4], INDEX_MAGIC);
    assert_eq!(committed[4..6], INDEX_FORMAT_VERSION.to_le_bytes());
}

/// The fixture log's state, its last sequence and chain hash: what the snapshot holds.
fn fixture_snapshot_inputs() -> (u64, ChainHash, StateImage) {
    let decoded = decode_log(&read_fixture("log-v1-all-types.records")).expect("v1 log");
    let (last, chain) = decoded.last().expect("records").clone();
    let events: Vec<SequencedEvent> = decoded.into_iter().map(|(event, _)| event).collect();
    (last.sequence, chain, replay(&events).to_image())
}

#[test]
fn snapshot_fixture_of_the_current_version_decodes_to_the_replayed_image_byte_for_byte() {
    let (sequence, chain, image) = fixture_snapshot_inputs();
    // The image is complete: every kind of thing a snapshot holds is in it.
    assert_eq!(image.policies.len(), 1);
    assert_eq!(image.pools.len(), 1);
    assert_eq!(image.centers.len(), 3);
    let statuses: BTreeSet<&str> = image
        .centers
        .iter()
        .map(|center| center.status.name())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["active", "delisted"]));
    assert!(image
        .centers
        .iter()
        .any(|center| center.settlement_epoch == 2
            && !center.paid_total.is_zero()
            && !center.reversed_total.is_zero()));
    assert_eq!(image.enterprises.len(), 2);
    assert!(image
        .enterprises
        .iter()
        .all(|enterprise| !enterprise.usage_by_year.is_empty()));
    assert!(image
        .enterprises
        .iter()
        .any(|enterprise| !enterprise.cap_overrides.is_empty()));
    assert_eq!(image.related_parties.len(), 1);
    let vouchers: BTreeSet<&str> = image
        .vouchers
        .iter()
        .map(|voucher| voucher.status.name())
        .collect();
    assert_eq!(vouchers, BTreeSet::from(["active", "cancelled", "expired"]));
    assert_eq!(image.invoices_redeemed, 4);
    assert_eq!(image.settlements.len(), 2);

    let name = format!("snapshot-v{SNAPSHOT_FORMAT_VERSION}-all-types.vlsn");
    let encoded = encode_snapshot(sequence, &chain, &image);
    if updating_fixtures() {
        write_fixture(&name, &encoded);
    }
    let Some(committed) = try_read_fixture(&name) else {
        panic!(
            "snapshot format is v{SNAPSHOT_FORMAT_VERSION} and tests/fixtures/{name} is \
             missing: add the new version's fixture and keep the old one \
             (UPDATE_FIXTURES=1 writes it)"
        );
    };
    assert_eq!(committed[..4], SNAPSHOT_MAGIC);
    assert_eq!(committed[4..6], SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    let stored = decode_snapshot(sequence, &committed)
        .unwrap_or_else(|error| panic!("{name} does not decode: {}", error.reason));
    assert_eq!(stored.sequence, sequence);
    assert_eq!(stored.chain_hash, chain);
    assert_eq!(
        stored.image, image,
        "{name} decodes to another state than replaying the fixture log gives"
    );
    assert!(
        encoded == committed,
        "the snapshot encoding changed but SNAPSHOT_FORMAT_VERSION is still \
         {SNAPSHOT_FORMAT_VERSION}: bump it, add the new version's fixture and keep the old one"
    );
}

#[test]
fn snapshots_of_an_older_or_unknown_version_are_refused_so_the_log_is_replayed() {
    let (sequence, _, _) = fixture_snapshot_inputs();
    let current = read_fixture(&format!(
        "snapshot-v{SNAPSHOT_FORMAT_VERSION}-all-types.vlsn"
    ));
    // Every version but the current one: the committed fixtures of older versions, and
    // the current fixture relabelled as v1 (bincode images, never read) and as a version
    // from the future.
    let mut others: Vec<(String, Vec<u8>)> = Vec::new();
    for version in 1..SNAPSHOT_FORMAT_VERSION {
        if let Some(bytes) = try_read_fixture(&format!("snapshot-v{version}-all-types.vlsn")) {
            others.push((format!("committed v{version}"), bytes));
        }
    }
    for version in [1, SNAPSHOT_FORMAT_VERSION + 1, u16::MAX] {
        let mut relabelled = current.clone();
        relabelled[4..6].copy_from_slice(&version.to_le_bytes());
        others.push((format!("relabelled v{version}"), relabelled));
    }
    for (what, bytes) in others {
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let error = decode_snapshot(sequence, &bytes)
            .err()
            .unwrap_or_else(|| panic!("a {what} snapshot was read"));
        assert!(
            error.reason.contains(&format!("format version {version}"))
                && error.reason.contains("the log is replayed instead"),
            "{what}: {}",
            error.reason
        );
    }
    // Damage is refused too: a flipped byte, a torn tail, a wrong sequence.
    let mut flipped = current.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let error = decode_snapshot(sequence, &flipped).err().expect("flipped");
    assert!(
        error.reason.contains("checksum mismatch"),
        "{}",
        error.reason
    );
    let error = decode_snapshot(sequence, &current[..current.len() - 7])
        .err()
        .expect("torn");
    assert!(
        error.reason.contains("checksum mismatch"),
        "{}",
        error.reason
    );
    let error = decode_snapshot(sequence + 1, &current)
        .err()
        .expect("elsewhere");
    assert!(
        error.reason.contains(&format!("at sequence {sequence}")),
        "{}",
        error.reason
    );
}

// ------------------------------------------------------------------ corrupt logs

/// The damaged v1 logs: (fixture, the sequence it is refused at, the damage).
fn corrupt_logs() -> Vec<(&'static str, u64, Vec<u8>)> {
    let committed = read_fixture("log-v1-all-types.records");
    let records = split_log(&committed);
    let damaged = |sequence: u64, damage: &dyn Fn(&mut Vec<u8>)| -> Vec<u8> {
        let mut out = Vec::new();
        for (at, record) in &records {
            let mut bytes = record.to_vec();
            if *at == sequence {
                damage(&mut bytes);
            }
            out.extend_from_slice(&at.to_le_bytes());
            // The container keeps the length it declared: a torn record comes back short.
            out.extend_from_slice(&(record.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    };
    let last = records.len() as u64;
    vec![
        (
            "log-v1-all-types-torn-tail.records",
            last,
            damaged(last, &|record| record.truncate(record.len() - 9)),
        ),
        (
            "log-v1-all-types-flipped-byte.records",
            13,
            damaged(13, &|record| record[RECORD_HEADER_LENGTH + 20] ^= 0x01),
        ),
        (
            "log-v1-all-types-bad-magic.records",
            5,
            damaged(5, &|record| record[0] = b'X'),
        ),
        (
            "log-v1-all-types-unknown-version.records",
            7,
            damaged(7, &|record| {
                record[4..6].copy_from_slice(&u16::MAX.to_le_bytes())
            }),
        ),
    ]
}

#[test]
fn corrupt_log_fixtures_are_refused_naming_the_bad_sequence() {
    for (name, bad, derived) in corrupt_logs() {
        let committed = derived_fixture(name, &derived);
        let error = decode_log(&committed)
            .err()
            .unwrap_or_else(|| panic!("{name} was read without an error"));
        assert_eq!(error.sequence(), bad, "{name}: {error}");
        assert!(
            error.to_string().starts_with(&format!("record {bad}:")),
            "{name}: {error}"
        );
        let expected_kind = match &error {
            RecordError::LengthMismatch { .. } => name.ends_with("torn-tail.records"),
            RecordError::ChainBroken { .. } => name.ends_with("flipped-byte.records"),
            RecordError::BadMagic { found, .. } => {
                name.ends_with("bad-magic.records") && found[0] == b'X'
            }
            RecordError::UnknownVersion { version, .. } => {
                name.ends_with("unknown-version.records") && *version == u16::MAX
            }
            _ => false,
        };
        assert!(expected_kind, "{name}: {error:?}");
        // Every record before the bad one still reads.
        let good = split_log(&committed)
            .into_iter()
            .take_while(|(sequence, _)| *sequence < bad)
            .fold(Vec::new(), |mut out, (sequence, record)| {
                out.extend_from_slice(&sequence.to_le_bytes());
                out.extend_from_slice(&(record.len() as u32).to_le_bytes());
                out.extend_from_slice(record);
                out
            });
        assert_eq!(
            decode_log(&good).expect("before the damage").len() as u64,
            bad - 1
        );
    }
}

#[test]
fn corrupt_log_fixtures_in_a_data_dir_fail_verify_and_open_at_the_bad_sequence() {
    let events = all_types_events();
    for (name, bad, _) in corrupt_logs() {
        let committed = read_fixture(name);
        let directory = tempfile::tempdir().expect("tempdir");
        make_data_dir(
            directory.path(),
            &split_log(&committed),
            &events,
            IndexAs::Current,
            &[],
        );
        let report = verify(directory.path()).expect("verify runs");
        assert_eq!(
            report.first_bad_sequence,
            Some(bad),
            "{name}: {:?}",
            report.problems
        );
        assert!(
            report.problems[0].starts_with(&format!("record {bad}:")),
            "{name}: {:?}",
            report.problems
        );
        let error = Ledger::open(directory.path(), ledger_options())
            .err()
            .unwrap_or_else(|| panic!("{name}: a damaged log opened"));
        assert!(
            error.to_string().starts_with(&format!("record {bad}:")),
            "{name}: {error}"
        );
    }
}

// ------------------------------------------------------------ corrupt index entries

/// The damaged index values: (fixture, the damage).
fn corrupt_index_entries() -> Vec<(&'static str, Vec<u8>)> {
    let v2 = read_fixture("index-v2-entry.vlix");
    let edit = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = v2.clone();
        edit(&mut bytes);
        bytes
    };
    // v2 layout: magic 4 | version 2 | voucher 16 | amount 8 at 22 | date 4 | proof length
    // 4 at 34 | ...
    vec![
        (
            "index-v2-entry-torn-tail.vlix",
            edit(&|bytes| bytes.truncate(bytes.len() - 5)),
        ),
        (
            // Index entries carry no checksum: a flipped bit in an amount decodes; `verify`
            // finds it by comparing the entry with the log.
            "index-v2-entry-flipped-byte.vlix",
            edit(&|bytes| bytes[22 + 3] ^= 0x01),
        ),
        (
            "index-v2-entry-bad-magic.vlix",
            edit(&|bytes| bytes[0] = b'X'),
        ),
        (
            "index-v2-entry-unknown-version.vlix",
            edit(&|bytes| bytes[4..6].copy_from_slice(&u16::MAX.to_le_bytes())),
        ),
        (
            "index-v2-entry-absurd-length.vlix",
            edit(&|bytes| bytes[34..38].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        ("index-v1-entry-absurd-length.vlix", v1_absurd_length()),
    ]
}

/// A v1 entry whose delivery proof claims 2^40 bytes.
fn v1_absurd_length() -> Vec<u8> {
    let (_, _, entry) = v1_index_entry();
    let mut out = INDEX_MAGIC.to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    bincode_varint(&mut out, 16);
    out.extend_from_slice(entry.voucher.as_uuid().as_bytes());
    bincode_signed(&mut out, entry.amount.to_fen());
    bincode_signed(&mut out, i64::from(entry.issue_date.days_since_epoch()));
    bincode_varint(&mut out, 1 << 40);
    out.extend_from_slice(entry.delivery_proof.as_str().as_bytes());
    out
}

#[test]
fn corrupt_index_fixtures_are_refused_naming_the_key() {
    let (center, number, expected) = v2_index_entry();
    let key_text = format!("{center}{number}");
    for (name, derived) in corrupt_index_entries() {
        let committed = derived_fixture(name, &derived);
        // The codec alone: an error, or (no checksum) a different entry.
        if let Ok(entry) = decode_index_entry(&committed) {
            assert_ne!(entry, expected, "{name} decoded as if undamaged");
        }
        // In a data directory: the store names the key, and `verify` refuses it.
        let directory = tempfile::tempdir().expect("tempdir");
        let records = read_fixture("log-v1-all-types.records");
        let raw = [RawValue {
            family: "invoices",
            key: invoice_key(&center, &number),
            value: committed.clone(),
        }];
        make_data_dir(
            directory.path(),
            &split_log(&records),
            &all_types_events(),
            IndexAs::Current,
            &raw,
        );
        {
            let store = EventStore::open_read_only(directory.path()).expect("store");
            match store.invoice(&center, &number) {
                Ok(Some(entry)) => assert_ne!(entry, expected, "{name}"),
                Ok(None) => panic!("{name}: the entry vanished"),
                Err(error) => assert!(
                    error.to_string().contains(&key_text),
                    "{name}: {error} does not name the key {key_text}"
                ),
            }
        }
        let report = verify(directory.path()).expect("verify runs");
        assert!(!report.is_clean(), "{name}: verify found nothing");
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.contains(&key_text)
                    || (problem.contains(number.as_str()) && problem.contains(center.as_str()))),
            "{name}: no problem names the key {key_text}: {:?}",
            report.problems
        );
    }
}

#[test]
fn absurd_length_fields_are_refused_without_allocating() {
    const ALLOWED: usize = 1 << 20;
    // The measurement itself sees a large request.
    let (buffer, seen) = largest_allocation(|| vec![0u8; 4 * ALLOWED]);
    assert!(
        seen >= buffer.len(),
        "the allocation tracker is not counting"
    );
    for name in [
        "index-v2-entry-absurd-length.vlix",
        "index-v1-entry-absurd-length.vlix",
    ] {
        let bytes = read_fixture(name);
        let (decoded, largest) = largest_allocation(|| decode_index_entry(&bytes));
        assert!(decoded.is_err(), "{name} decoded");
        assert!(
            largest < ALLOWED,
            "{name}: decoding asked for {largest} bytes"
        );
    }
    // A snapshot image whose first count (policies) claims u32::MAX items, with a valid
    // checksum, so the count itself is what must be refused.
    let mut snapshot = read_fixture(&format!(
        "snapshot-v{SNAPSHOT_FORMAT_VERSION}-all-types.vlsn"
    ));
    let (sequence, _, _) = fixture_snapshot_inputs();
    let image_start = 56;
    let policies_count = image_start + 8 + 8;
    snapshot[policies_count..policies_count + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let body_end = snapshot.len() - 32;
    let digest = Sm3::digest(&snapshot[..body_end]);
    snapshot[body_end..].copy_from_slice(&digest);
    let (decoded, largest) = largest_allocation(|| decode_snapshot(sequence, &snapshot));
    let error = decoded.err().expect("an absurd count is refused");
    assert!(error.reason.contains("cannot fit"), "{}", error.reason);
    assert!(largest < ALLOWED, "decoding asked for {largest} bytes");
}

// -------------------------------------------------------------- open and verify

#[test]
fn v1_log_with_v1_index_entries_opens_verifies_and_skips_an_older_snapshot() {
    // A data directory as the ledger wrote it before index and snapshot format v2: v1
    // records, v1 index values and a snapshot in an older format, which is passed over.
    let committed = read_fixture("log-v1-all-types.records");
    let records = split_log(&committed);
    let events = all_types_events();
    let (sequence, chain, _) = fixture_snapshot_inputs();
    let mut older = read_fixture(&format!(
        "snapshot-v{SNAPSHOT_FORMAT_VERSION}-all-types.vlsn"
    ));
    older[4..6].copy_from_slice(&1u16.to_le_bytes());
    let directory = tempfile::tempdir().expect("tempdir");
    make_data_dir(
        directory.path(),
        &records,
        &events,
        IndexAs::V1,
        &[RawValue {
            family: "snapshots",
            key: sequence.to_be_bytes().to_vec(),
            value: older,
        }],
    );

    let report = verify(directory.path()).expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records_checked, events.len() as u64);
    assert_eq!(report.chain_head, Some(chain));
    assert_eq!(report.invoice_index_entries, 4);
    assert!(report.snapshots_checked.is_empty());
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("older format v1")),
        "{:?}",
        report.notes
    );

    let (ledger, opened) = Ledger::open(directory.path(), ledger_options()).expect("open");
    assert_eq!(opened.snapshot_sequence, None);
    assert_eq!(
        opened.snapshots_skipped.len(),
        1,
        "{:?}",
        opened.snapshots_skipped
    );
    assert_eq!(opened.events_replayed, events.len() as u64);
    assert_eq!(ledger.chain_head(), chain);
    assert!(ledger.state().same_projections(&replay(&events)));
    // The v1 index values are what the ledger answers retries and reversals from.
    for (center, number, entry) in index_entries(&events) {
        let (found, _) = ledger.reader().invoice(&center, &number).expect("read");
        assert_eq!(found, Some(entry), "{number}");
    }
}

#[test]
fn v1_log_with_current_index_and_snapshot_opens_from_the_snapshot_and_verifies() {
    let committed = read_fixture("log-v1-all-types.records");
    let events = all_types_events();
    let (sequence, chain, _) = fixture_snapshot_inputs();
    let snapshot = read_fixture(&format!(
        "snapshot-v{SNAPSHOT_FORMAT_VERSION}-all-types.vlsn"
    ));
    let directory = tempfile::tempdir().expect("tempdir");
    make_data_dir(
        directory.path(),
        &split_log(&committed),
        &events,
        IndexAs::Current,
        &[RawValue {
            family: "snapshots",
            key: sequence.to_be_bytes().to_vec(),
            value: snapshot,
        }],
    );

    let report = verify(directory.path()).expect("verify runs");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.snapshots_checked, vec![sequence]);
    assert_eq!(report.chain_head, Some(chain));

    let (ledger, opened) = Ledger::open(directory.path(), ledger_options()).expect("open");
    assert_eq!(opened.snapshot_sequence, Some(sequence));
    assert_eq!(opened.events_replayed, 0);
    assert_eq!(ledger.chain_head(), chain);
    assert!(ledger.state().same_projections(&replay(&events)));
    let (center, number, entry) = v2_index_entry();
    let (found, _) = ledger.reader().invoice(&center, &number).expect("read");
    assert_eq!(found, Some(entry));
}

#[test]
fn the_first_v1_log_fixture_opens_and_verifies() {
    // tests/storage.rs's fixture (7 event types), decoded whatever the format has become.
    let committed = read_fixture("log-v1.records");
    let events: Vec<SequencedEvent> = decode_log(&committed)
        .expect("log-v1.records reads")
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    for index in [IndexAs::V1, IndexAs::Current] {
        let directory = tempfile::tempdir().expect("tempdir");
        make_data_dir(
            directory.path(),
            &split_log(&committed),
            &events,
            index,
            &[],
        );
        let report = verify(directory.path()).expect("verify runs");
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.records_checked, events.len() as u64);
        let (ledger, opened) = Ledger::open(directory.path(), ledger_options()).expect("open");
        assert_eq!(opened.last_sequence, events.len() as u64);
        assert!(ledger.state().same_projections(&replay(&events)));
    }
}
