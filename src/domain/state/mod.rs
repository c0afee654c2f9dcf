//! The projections: everything the ledger knows, as a fold of the event log.
//!
//! The state is split by job, one file each:
//!
//! - this file: the projected records (accounts, vouchers, usage) and [`LedgerState`];
//! - [`fold`]: `LedgerState::apply`, the fold of one event, which never fails;
//! - [`queries`]: read-only questions the state machine and the API ask;
//! - [`export_queries`]: the paged walks the exports (`crate::export`) ask;
//! - [`invariants`]: `check_invariants`, the promises every state keeps;
//! - [`image`]: [`StateImage`], the projections as sorted plain data (what a snapshot
//!   holds; `storage::snapshot` owns its byte layout);
//! - [`invoice_cache`]: [`InvoiceCache`], the invoices the state machine may consult;
//! - [`usage_by_year`]: [`UsageByYear`], an enterprise's usage per year, held inline;
//! - [`dense_table`]: [`DenseTable`], records dense in a vector, found by key through a
//!   small map: the vouchers and the enterprise accounts (so a batch can prefetch a
//!   coming redemption's voucher and account).
//!
//! Maps that are only looked up use `FxHashMap` (fast, deterministic hashing) or a
//! `DenseTable`; nothing is ever emitted in hash-map or table order: images and listings
//! sort first.

mod dense_table;
mod export_queries;
mod fold;
mod image;
mod invariants;
mod invoice_cache;
mod queries;
mod reconciliation_queries;
mod usage_by_year;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

pub(crate) use dense_table::prefetch_lines;
pub use dense_table::DenseTable;
pub use image::StateImage;
pub use invoice_cache::{InvoiceCache, InvoiceLookup};
pub use usage_by_year::UsageByYear;

use super::command::{CenterStatus, ListingBasis};
use super::event::VoucherApproved;
use super::ids::{
    BankReference, ContractNumber, Date, DeliveryProof, LegalName, ProgrammeYear, Reason,
    SettlementId, SettlementRunId, StatementId, Timestamp, Uscc, VoucherId,
};
use super::money::Money;
use super::policy::{FacilityTier, ProgrammePolicy};
use super::programme::{CenterCapacity, FundingSource};
use super::reconciliation::{FileDigest, ReconciliationRecord, ReconciliationScope};

/// What a year's pool (or an enterprise's cap for a year) is used for: face value held
/// by approved vouchers, subsidy redeemed and standing, and subsidy clawed back from a
/// center but not yet recovered (a receivable still uses the pool).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Usage {
    pub held: Money,
    pub redeemed: Money,
    pub receivable: Money,
}

impl Usage {
    pub fn used(self) -> Money {
        self.held.plus(self.redeemed).plus(self.receivable)
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
    /// Capacity figures as registered (eligibility thresholds are judged on them).
    pub capacity: CenterCapacity,
    pub status: CenterStatus,
    /// Gross subsidy ever redeemed on this center's invoices.
    pub redeemed_total: Money,
    /// Gross subsidy ever reversed.
    pub reversed_total: Money,
    /// Everything the finance bureau has paid this center (net of returned payments).
    pub paid_total: Money,
}

/// A clawback the center owes: the subsidy of a settled invoice it reversed, recovered
/// first-in, first-out by later statements' offsets and by repayments.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReceivableItem {
    /// Sequence of the `InvoiceReversed` event that created it.
    pub reversal: u64,
    pub voucher: VoucherId,
    pub enterprise: Uscc,
    pub outstanding: Money,
    /// True when it keeps its enterprise's cap and the pool used until recovered (every
    /// clawback now). False only for format-v1 clawbacks on an active voucher, which gave
    /// the subsidy back to the voucher at once and left the center owing it.
    pub holds_pool: bool,
}

/// One payee's books for one programme year: the center's (today), or in a reimbursement
/// year (`payee = "enterprise"`) the enterprise's. The year's policy says which, so a
/// (USCC, year) key is never both. The name stays from when only centers were paid.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CenterYear {
    /// Gross subsidy of every redemption, and how many.
    pub granted: Money,
    pub granted_count: u64,
    /// Redemptions reversed before any statement held them.
    pub reversed_unsettled: Money,
    pub reversed_unsettled_count: u64,
    /// Redemptions not yet in a statement (and not reversed).
    pub unsettled: Money,
    pub unsettled_count: u64,
    /// Subsidy that went into statements (gross).
    pub settled: Money,
    pub settled_count: u64,
    /// Each settlement's cutoff sequence, in order, with its statement (`None` for a
    /// format-v1 `CenterSettled`). A redemption at sequence `q` belongs to the first
    /// entry whose cutoff is above `q`; one above the last cutoff is unsettled.
    pub settlements: Vec<(u64, Option<StatementId>)>,
    /// Outstanding clawbacks, oldest first.
    pub receivables: VecDeque<ReceivableItem>,
    /// Clawed back in total; recovered by offset; recovered by repayment.
    pub clawed_back: Money,
    pub offset: Money,
    pub repaid: Money,
    /// Net paid for this year's statements (after returns).
    pub paid: Money,
}

impl CenterYear {
    /// Receivables not yet recovered.
    pub fn outstanding(&self) -> Money {
        self.clawed_back
            .saturating_minus(self.offset)
            .saturating_minus(self.repaid)
    }

    /// The cutoff of the last settlement (0 when none): redemptions before it are settled.
    pub fn last_cutoff(&self) -> u64 {
        self.settlements.last().map_or(0, |(cutoff, _)| *cutoff)
    }

    /// The settlement a redemption at `sequence` belongs to, if it is settled.
    pub fn settlement_of(&self, sequence: u64) -> Option<(u64, Option<StatementId>)> {
        let index = self
            .settlements
            .partition_point(|(cutoff, _)| *cutoff <= sequence);
        self.settlements.get(index).copied()
    }
}

/// The state of a statement.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum StatementState {
    /// Issued, not paid.
    Open,
    /// Payment confirmed, or nothing to pay (net 0.00).
    Paid,
    /// A payment was returned by the bank: open for payment again.
    Returned,
}

impl StatementState {
    pub fn name(self) -> &'static str {
        match self {
            StatementState::Open => "open",
            StatementState::Paid => "paid",
            StatementState::Returned => "returned",
        }
    }
}

/// A payment of a statement, and its return if the bank sent it back.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PaymentRecord {
    pub bank_reference: BankReference,
    pub amount: Money,
    pub value_date: Date,
    /// Sequence of its `PaymentConfirmed` event.
    pub sequence: u64,
    /// The return's reason and the sequence of its `PaymentReturned` event.
    pub returned: Option<(Reason, u64)>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Statement {
    pub id: StatementId,
    pub run: SettlementRunId,
    /// Who pays it: the programme's pool, or a stacked second source.
    pub source: FundingSource,
    /// The payee: the center, or the enterprise in a reimbursement year (see
    /// [`LedgerState::payee_kind`]).
    pub center: Uscc,
    pub year: ProgrammeYear,
    pub issued_at: Timestamp,
    /// Redemptions with a sequence in `previous_cutoff..cutoff` are in it.
    pub previous_cutoff: u64,
    pub cutoff: u64,
    pub invoices: u64,
    pub gross: Money,
    pub clawback_offset: Money,
    pub net: Money,
    pub state: StatementState,
    pub payments: Vec<PaymentRecord>,
    /// Subsidy of its invoices reversed after it was issued (clawbacks).
    pub clawed_back: Money,
}

impl Statement {
    /// The subsidy of its invoices that still stands.
    pub fn standing(&self) -> Money {
        self.gross.saturating_minus(self.clawed_back)
    }

    /// The payment that pays it now, if it is paid by one.
    pub fn current_payment(&self) -> Option<&PaymentRecord> {
        self.payments
            .last()
            .filter(|payment| payment.returned.is_none() && self.state == StatementState::Paid)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SettlementRun {
    pub run: SettlementRunId,
    pub year: ProgrammeYear,
    /// The sequence of its `SettlementRunCreated` event.
    pub cutoff: u64,
    pub statements: Vec<StatementId>,
}

/// What a bank reference was used for (each is used once).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BankUse {
    Payment {
        statement: StatementId,
    },
    Repayment {
        /// The payee that repaid (a center, or an enterprise in a reimbursement year).
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        value_date: Date,
        sequence: u64,
        source: FundingSource,
    },
}

/// A programme year's books: its pool and where every fen of it is.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct YearBook {
    /// The pool in force: the policy's, or the last adjustment.
    pub pool: Money,
    pub usage: Usage,
    /// Sequence of its `ProgrammeYearClosed` event, once closed.
    pub closed: Option<u64>,
    /// Face value ever approved.
    pub approved: Money,
    /// Face value returned to the pool: released vouchers, and recovered clawbacks.
    pub released: Money,
    /// Subsidy: granted by redemptions; reversed before settlement; unsettled; in
    /// statements still open or returned, and paid (standing, after clawbacks); clawed back.
    pub granted: Money,
    pub reversed_unsettled: Money,
    pub unsettled: Money,
    pub standing_open: Money,
    pub standing_paid: Money,
    pub settled: Money,
    pub clawed_back: Money,
    pub offset: Money,
    pub repaid: Money,
    /// Net paid to centers (after returns).
    pub paid: Money,
}

impl YearBook {
    pub fn outstanding(&self) -> Money {
        self.clawed_back
            .saturating_minus(self.offset)
            .saturating_minus(self.repaid)
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
    /// Its use of its cap per year, inline (see [`UsageByYear`]).
    pub usage_by_year: UsageByYear,
    pub cap_overrides: BTreeMap<ProgrammeYear, CapOverride>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VoucherStatus {
    Active,
    Expired,
    Cancelled,
    /// Its center was delisted.
    Withdrawn,
}

impl VoucherStatus {
    pub fn name(self) -> &'static str {
        match self {
            VoucherStatus::Active => "active",
            VoucherStatus::Expired => "expired",
            VoucherStatus::Cancelled => "cancelled",
            VoucherStatus::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Voucher {
    pub terms: VoucherApproved,
    /// Sequence of its `VoucherApproved` event (a retried approval is answered with it).
    pub approved_sequence: u64,
    pub status: VoucherStatus,
    /// Face value still available for redemption (zero once released).
    pub remaining: Money,
    /// Subsidy redeemed on this contract that stands (after reversals).
    pub subsidy_total: Money,
    /// Net amount invoiced on this contract (after reversals).
    pub invoiced_total: Money,
    /// Face value given back to cap and pool (release, recovered clawbacks).
    pub released: Money,
    /// Subsidy of its settled invoices reversed and not yet recovered from the center.
    pub clawback_outstanding: Money,
    pub invoice_count: u32,
    /// The second source's share (stacked funding; all zero without one). Its face value
    /// is `terms.programme.second_face_value`.
    pub second: VoucherShare,
}

impl Voucher {
    /// face value = remaining + subsidy standing + clawbacks outstanding + released.
    pub fn accounted(&self) -> Money {
        self.remaining
            .plus(self.subsidy_total)
            .plus(self.clawback_outstanding)
            .plus(self.released)
    }

    /// The combined subsidy of both sources that stands on this contract.
    pub fn combined_subsidy(&self) -> Money {
        self.subsidy_total.plus(self.second.subsidy_total)
    }
}

/// A voucher's share from a stacked second source, kept in the same four places as its
/// own face value: second face value = remaining + subsidy standing + clawbacks
/// outstanding + released.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VoucherShare {
    pub remaining: Money,
    pub subsidy_total: Money,
    pub released: Money,
    pub clawback_outstanding: Money,
}

impl VoucherShare {
    pub fn accounted(&self) -> Money {
        self.remaining
            .plus(self.subsidy_total)
            .plus(self.clawback_outstanding)
            .plus(self.released)
    }

    pub fn is_zero(&self) -> bool {
        *self == VoucherShare::default()
    }
}

/// What the ledger keeps per posted invoice: enough to answer a retry with the original
/// outcome, to detect a conflicting repost, and to reverse it. Whether it is settled
/// follows from its sequence and its center's settlements (see [`CenterYear`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceEntry {
    pub voucher: VoucherId,
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: DeliveryProof,
    pub subsidy: Money,
    /// The second source's subsidy (stacked funding; zero without one).
    pub second_subsidy: Money,
    /// Sequence number of the `InvoiceRedeemed` event.
    pub sequence: u64,
    /// Sequence number of the `InvoiceReversed` event, once reversed (0 when an older
    /// format recorded only that it was reversed).
    pub reversed_at: Option<u64>,
}

impl InvoiceEntry {
    pub fn is_reversed(&self) -> bool {
        self.reversed_at.is_some()
    }
}

/// The whole in-memory state. Private fields; read through the query methods.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LedgerState {
    pub(super) last_sequence: u64,
    pub(super) last_time: Timestamp,
    pub(super) policies: BTreeMap<ProgrammeYear, ProgrammePolicy>,
    pub(super) years: BTreeMap<ProgrammeYear, YearBook>,
    pub(super) centers: BTreeMap<Uscc, CenterAccount>,
    /// Books per payee and year (see [`CenterYear`]).
    pub(super) center_years: BTreeMap<(Uscc, ProgrammeYear), CenterYear>,
    /// A stacked second source's books (stacked funding): its pool per year and its
    /// books per payee and year, the same records as the programme's own. Empty unless a
    /// year's policy has a second source.
    pub(super) second_years: BTreeMap<ProgrammeYear, YearBook>,
    pub(super) second_center_years: BTreeMap<(Uscc, ProgrammeYear), CenterYear>,
    pub(super) enterprises: DenseTable<Uscc, EnterpriseAccount>,
    pub(super) related_parties: BTreeSet<(Uscc, Uscc)>,
    pub(super) vouchers: DenseTable<VoucherId, Voucher>,
    pub(super) contracts: FxHashMap<(Uscc, ContractNumber), VoucherId>,
    /// Active vouchers by the last day of their redemption window, for expiry in a
    /// stable order.
    pub(super) active_by_window_end: BTreeSet<(Date, VoucherId)>,
    /// Active vouchers by center, for delisting, and how many each center holds.
    pub(super) active_by_center: BTreeSet<(Uscc, VoucherId)>,
    pub(super) active_count_by_center: FxHashMap<Uscc, usize>,
    /// Every voucher by center and by enterprise, for paged listings.
    pub(super) vouchers_by_center: BTreeSet<(Uscc, VoucherId)>,
    pub(super) vouchers_by_enterprise: BTreeSet<(Uscc, VoucherId)>,
    pub(super) statements: BTreeMap<StatementId, Statement>,
    pub(super) runs: BTreeMap<SettlementRunId, SettlementRun>,
    pub(super) bank_references: BTreeMap<BankReference, BankUse>,
    /// The invoices the state machine may consult now. Not a projection: it is left out
    /// of images and of [`LedgerState::same_projections`].
    pub(super) invoice_cache: InvoiceCache,
    /// Invoices ever redeemed (a count; the entries live in the store's index).
    pub(super) invoices_redeemed: u64,
    /// Settlements recorded by format v1's `CenterSettled`.
    pub(super) legacy_settlements: BTreeSet<SettlementId>,
    /// Recorded reconciliations by the sequence of their event, and the index that
    /// recognises a re-import (derived: rebuilt from the records, not imaged).
    pub(super) reconciliations: BTreeMap<u64, ReconciliationRecord>,
    pub(super) reconciliation_index: BTreeMap<(FileDigest, ReconciliationScope), u64>,
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

    /// The events a command may append are bounded; this one is for the sizes of the
    /// registry (see `limits`).
    pub fn centers_registered(&self) -> usize {
        self.centers.len()
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
