//! The projections: everything the ledger knows, as a fold of the event log.
//!
//! The state is split by job, one file each:
//!
//! - this file: the projected records (accounts, vouchers, usage) and [`LedgerState`];
//! - [`fold`]: `LedgerState::apply`, the fold of one event, which never fails;
//! - [`queries`]: read-only questions the state machine and the API ask;
//! - [`invariants`]: `check_invariants`, the promises every state keeps;
//! - [`image`]: [`StateImage`], the projections as sorted plain data (what a snapshot
//!   holds; `storage::snapshot` owns its byte layout);
//! - [`invoice_cache`]: [`InvoiceCache`], the invoices the state machine may consult.
//!
//! Maps that are only looked up use `FxHashMap` (fast, deterministic hashing); nothing is
//! ever emitted in hash-map order: images and listings sort first.

mod fold;
mod image;
mod invariants;
mod invoice_cache;
mod queries;

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

pub use image::StateImage;
pub use invoice_cache::{InvoiceCache, InvoiceLookup};

use super::command::{CenterStatus, ListingBasis};
use super::event::VoucherApproved;
use super::ids::{
    ContractNumber, Date, DeliveryProof, LegalName, ProgrammeYear, Reason, SettlementId, Timestamp,
    Uscc, VoucherId,
};
use super::money::Money;
use super::policy::{FacilityTier, ProgrammePolicy};

/// Held (approved, not yet redeemed) and redeemed amounts against a limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Usage {
    pub held: Money,
    pub redeemed: Money,
}

impl Usage {
    pub fn used(self) -> Money {
        self.held.plus(self.redeemed)
    }

    /// What is left under `limit`; zero if the limit was lowered below use.
    pub fn free_under(self, limit: Money) -> Money {
        limit.saturating_minus(self.used())
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CenterAccount {
    pub center: Uscc,
    pub name: LegalName,
    pub tier: FacilityTier,
    pub listing_basis: ListingBasis,
    pub status: CenterStatus,
    /// Gross subsidy ever redeemed on this center's invoices.
    pub redeemed_total: Money,
    /// Gross subsidy ever reversed.
    pub reversed_total: Money,
    /// Subsidy redeemed (net of reversals) since the last settlement: what is due.
    pub unsettled: Money,
    /// Subsidy of settled invoices later reversed, not yet offset: what the center owes.
    pub clawback_owed: Money,
    /// Everything the finance bureau has paid this center.
    pub paid_total: Money,
    /// Number of settlements so far; an invoice redeemed at epoch `e` is settled once
    /// `settlement_epoch > e`.
    pub settlement_epoch: u32,
}

impl CenterAccount {
    /// Net amount due now: unsettled subsidy minus clawbacks (zero if clawbacks exceed).
    pub fn amount_due(&self) -> Money {
        self.unsettled.saturating_minus(self.clawback_owed)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CapOverride {
    pub cap: Money,
    pub reason: Reason,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EnterpriseAccount {
    pub enterprise: Uscc,
    pub name: LegalName,
    pub usage_by_year: BTreeMap<ProgrammeYear, Usage>,
    pub cap_overrides: BTreeMap<ProgrammeYear, CapOverride>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VoucherStatus {
    Active,
    Expired,
    Cancelled,
}

impl VoucherStatus {
    pub fn name(self) -> &'static str {
        match self {
            VoucherStatus::Active => "active",
            VoucherStatus::Expired => "expired",
            VoucherStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Voucher {
    pub terms: VoucherApproved,
    pub status: VoucherStatus,
    /// Face value still available for redemption (zero once released).
    pub remaining: Money,
    /// Net subsidy redeemed on this contract (after reversals).
    pub subsidy_total: Money,
    /// Net amount invoiced on this contract (after reversals).
    pub invoiced_total: Money,
    /// Face value given back to cap and pool when the voucher closed.
    pub released: Money,
    pub invoice_count: u32,
}

/// What the ledger keeps per posted invoice: enough to answer a retry with the original
/// outcome, to detect a conflicting repost, and to reverse it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceEntry {
    pub voucher: VoucherId,
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: DeliveryProof,
    pub subsidy: Money,
    /// Sequence number of the `InvoiceRedeemed` event.
    pub sequence: u64,
    pub settlement_epoch: u32,
    pub reversed: bool,
}

/// The whole in-memory state. Private fields; read through the query methods.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LedgerState {
    pub(super) last_sequence: u64,
    pub(super) last_time: Timestamp,
    pub(super) policies: BTreeMap<ProgrammeYear, ProgrammePolicy>,
    pub(super) pools: BTreeMap<ProgrammeYear, Usage>,
    pub(super) centers: BTreeMap<Uscc, CenterAccount>,
    pub(super) enterprises: FxHashMap<Uscc, EnterpriseAccount>,
    pub(super) related_parties: BTreeSet<(Uscc, Uscc)>,
    pub(super) vouchers: FxHashMap<VoucherId, Voucher>,
    pub(super) contracts: FxHashMap<(Uscc, ContractNumber), VoucherId>,
    /// Active vouchers by the last day of their term, for expiry in a stable order.
    pub(super) active_by_term_end: BTreeSet<(Date, VoucherId)>,
    /// The invoices the state machine may consult now. Not a projection: it is left out
    /// of images and of [`LedgerState::same_projections`].
    pub(super) invoice_cache: InvoiceCache,
    /// Invoices ever redeemed (a count; the entries live in the store's index).
    pub(super) invoices_redeemed: u64,
    pub(super) settlements: BTreeSet<SettlementId>,
}

impl LedgerState {
    /// An empty state whose invoice cache is complete: it keeps every invoice it sees, so
    /// it needs no store behind it (tests, benchmarks of the pure state machine).
    pub fn new() -> LedgerState {
        LedgerState::default()
    }

    /// An empty state whose invoice cache is bounded: the durable ledger fills it from
    /// the store's invoice index before each batch (see [`InvoiceCache`]).
    pub fn with_bounded_invoice_cache() -> LedgerState {
        LedgerState {
            invoice_cache: InvoiceCache::bounded(),
            ..LedgerState::default()
        }
    }

    /// The invoice cache, for the ledger's prefetch and eviction.
    pub fn invoice_cache_mut(&mut self) -> &mut InvoiceCache {
        &mut self.invoice_cache
    }

    pub fn invoice_cache(&self) -> &InvoiceCache {
        &self.invoice_cache
    }

    /// True when everything but the invoice cache is equal: what a snapshot holds.
    pub fn same_projections(&self, other: &LedgerState) -> bool {
        self.to_image() == other.to_image()
    }
}
