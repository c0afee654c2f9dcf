//! The projections: everything the ledger knows, as a fold of the event log.
//!
//! `LedgerState::apply` never fails and never reads anything but its arguments. It is used
//! both by the state machine right after deciding (live path) and by replay (recovery,
//! `verify`), which is why a replayed log gives exactly the live state.
//!
//! Maps that are only looked up use `FxHashMap` (fast, deterministic hashing); nothing is
//! ever emitted in hash-map order: snapshots and listings sort first.
//!
//! Invoices are the one unbounded collection (millions a year). `invoices` holds the
//! invoices the state machine may need *now*: all of them for a purely in-memory state
//! (tests, replay by `verify`), or, in the durable ledger, a cache that the ledger fills
//! from the store's invoice index before each batch (prefetch, as TigerBeetle does) and
//! empties when it grows past its limit. The state machine stays pure: it decides only on
//! what is in memory, and the ledger guarantees every invoice a batch names is there.
//! The cache is not part of snapshots or of `same_projections`.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::command::{CenterStatus, ListingBasis};
use super::event::{Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, VoucherApproved};
use super::ids::{
    ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, ProgrammeYear, Reason,
    SettlementId, Timestamp, Uscc, VoucherId,
};
use super::money::Money;
use super::policy::{FacilityTier, ProgrammePolicy};

/// Held (approved, not yet redeemed) and redeemed amounts against a limit.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug, Default)]
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

    fn hold(&mut self, amount: Money) {
        self.held = self.held.plus(amount);
    }

    fn redeem_from_hold(&mut self, amount: Money) {
        self.held = self.held.saturating_minus(amount);
        self.redeemed = self.redeemed.plus(amount);
    }

    fn release_hold(&mut self, amount: Money) {
        self.held = self.held.saturating_minus(amount);
    }

    fn unredeem(&mut self, amount: Money, back_to_hold: bool) {
        self.redeemed = self.redeemed.saturating_minus(amount);
        if back_to_hold {
            self.held = self.held.plus(amount);
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
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

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct CapOverride {
    pub cap: Money,
    pub reason: Reason,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct EnterpriseAccount {
    pub enterprise: Uscc,
    pub name: LegalName,
    pub usage_by_year: BTreeMap<ProgrammeYear, Usage>,
    pub cap_overrides: BTreeMap<ProgrammeYear, CapOverride>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
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

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
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

/// Invoices by (center, invoice number). A hashbrown map so that lookups can borrow the
/// key ([`InvoiceKeyRef`]) instead of building an owned one on the hot path.
pub(super) type InvoiceMap =
    hashbrown::HashMap<(Uscc, InvoiceNumber), InvoiceEntry, rustc_hash::FxBuildHasher>;

/// A borrowed invoice key. It hashes exactly as the owned `(Uscc, InvoiceNumber)` tuple
/// does (field by field, the number as a `str`), which `Equivalent` requires.
pub(super) struct InvoiceKeyRef<'a> {
    pub center: &'a Uscc,
    pub number: &'a str,
}

impl std::hash::Hash for InvoiceKeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.center.hash(state);
        self.number.hash(state);
    }
}

impl hashbrown::Equivalent<(Uscc, InvoiceNumber)> for InvoiceKeyRef<'_> {
    fn equivalent(&self, key: &(Uscc, InvoiceNumber)) -> bool {
        *self.center == key.0 && self.number == key.1.as_str()
    }
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
    pub(super) invoices: InvoiceMap,
    /// Invoices ever redeemed (a count; the entries live in the store's index).
    pub(super) invoices_redeemed: u64,
    pub(super) settlements: BTreeSet<SettlementId>,
}

impl LedgerState {
    pub fn new() -> LedgerState {
        LedgerState::default()
    }

    /// Folds one event into the projections. Never fails: the event is a fact. Amounts
    /// that would go below zero (only possible with a log that breaks the invariants)
    /// clamp at zero, and `check_invariants` reports them.
    pub fn apply(&mut self, sequence: u64, at: Timestamp, event: &Event) {
        debug_assert_eq!(
            sequence,
            self.last_sequence + 1,
            "sequence numbers are dense"
        );
        self.last_sequence = sequence;
        self.last_time = self.last_time.max(at);
        match event {
            Event::PolicyPublished { policy } => {
                self.policies.insert(policy.year(), (**policy).clone());
                self.pools.entry(policy.year()).or_default();
            }
            Event::CenterRegistered {
                center,
                name,
                tier,
                listing_basis,
            } => {
                self.centers.insert(
                    *center,
                    CenterAccount {
                        center: *center,
                        name: name.clone(),
                        tier: *tier,
                        listing_basis: *listing_basis,
                        status: CenterStatus::Active,
                        redeemed_total: Money::ZERO,
                        reversed_total: Money::ZERO,
                        unsettled: Money::ZERO,
                        clawback_owed: Money::ZERO,
                        paid_total: Money::ZERO,
                        settlement_epoch: 0,
                    },
                );
            }
            Event::CenterStatusChanged { center, to, .. } => {
                if let Some(account) = self.centers.get_mut(center) {
                    account.status = *to;
                }
            }
            Event::EnterpriseRegistered { enterprise, name } => {
                self.enterprises.insert(
                    *enterprise,
                    EnterpriseAccount {
                        enterprise: *enterprise,
                        name: name.clone(),
                        usage_by_year: BTreeMap::new(),
                        cap_overrides: BTreeMap::new(),
                    },
                );
            }
            Event::CapOverrideGranted {
                enterprise,
                year,
                cap,
                reason,
            } => {
                if let Some(account) = self.enterprises.get_mut(enterprise) {
                    account.cap_overrides.insert(
                        *year,
                        CapOverride {
                            cap: *cap,
                            reason: reason.clone(),
                        },
                    );
                }
            }
            Event::RelatedPartyDeclared {
                enterprise, center, ..
            } => {
                self.related_parties.insert((*enterprise, *center));
            }
            Event::VoucherApproved(approved) => self.apply_voucher_approved(approved),
            Event::InvoiceRedeemed(redeemed) => self.apply_invoice_redeemed(sequence, redeemed),
            Event::InvoiceReversed(reversed) => self.apply_invoice_reversed(reversed),
            Event::VoucherReleased {
                voucher,
                cause,
                released,
                ..
            } => self.apply_voucher_released(*voucher, *cause, *released),
            Event::CenterSettled {
                center,
                settlement_id,
                redeemed,
                clawback_offset,
                paid,
            } => {
                self.settlements.insert(*settlement_id);
                if let Some(account) = self.centers.get_mut(center) {
                    account.unsettled = account.unsettled.saturating_minus(*redeemed);
                    account.clawback_owed =
                        account.clawback_owed.saturating_minus(*clawback_offset);
                    account.paid_total = account.paid_total.plus(*paid);
                    account.settlement_epoch += 1;
                }
            }
        }
    }

    fn apply_voucher_approved(&mut self, approved: &VoucherApproved) {
        let face = approved.face_value;
        self.pools.entry(approved.year).or_default().hold(face);
        if let Some(account) = self.enterprises.get_mut(&approved.enterprise) {
            account
                .usage_by_year
                .entry(approved.year)
                .or_default()
                .hold(face);
        }
        self.contracts.insert(
            (approved.center, approved.contract_number.clone()),
            approved.voucher,
        );
        self.active_by_term_end
            .insert((approved.term_end, approved.voucher));
        self.vouchers.insert(
            approved.voucher,
            Voucher {
                terms: approved.clone(),
                status: VoucherStatus::Active,
                remaining: face,
                subsidy_total: Money::ZERO,
                invoiced_total: Money::ZERO,
                released: Money::ZERO,
                invoice_count: 0,
            },
        );
    }

    fn apply_invoice_redeemed(&mut self, sequence: u64, redeemed: &InvoiceRedeemed) {
        let subsidy = redeemed.subsidy;
        let mut settlement_epoch = 0;
        self.invoices_redeemed += 1;
        if let Some(center) = self.centers.get_mut(&redeemed.center) {
            center.redeemed_total = center.redeemed_total.plus(subsidy);
            center.unsettled = center.unsettled.plus(subsidy);
            settlement_epoch = center.settlement_epoch;
        }
        if let Some(voucher) = self.vouchers.get_mut(&redeemed.voucher) {
            voucher.remaining = voucher.remaining.saturating_minus(subsidy);
            voucher.subsidy_total = voucher.subsidy_total.plus(subsidy);
            voucher.invoiced_total = voucher.invoiced_total.plus(redeemed.amount);
            voucher.invoice_count += 1;
            let year = voucher.terms.year;
            self.pools
                .entry(year)
                .or_default()
                .redeem_from_hold(subsidy);
            if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
                account
                    .usage_by_year
                    .entry(year)
                    .or_default()
                    .redeem_from_hold(subsidy);
            }
        }
        self.invoices.insert(
            (redeemed.center, redeemed.invoice_number.clone()),
            InvoiceEntry {
                voucher: redeemed.voucher,
                amount: redeemed.amount,
                issue_date: redeemed.issue_date,
                delivery_proof: redeemed.delivery_proof.clone(),
                subsidy,
                sequence,
                settlement_epoch,
                reversed: false,
            },
        );
    }

    fn apply_invoice_reversed(&mut self, reversed: &InvoiceReversed) {
        let subsidy = reversed.subsidy;
        if let Some(entry) = self.invoices.get_mut(&InvoiceKeyRef {
            center: &reversed.center,
            number: reversed.invoice_number.as_str(),
        }) {
            entry.reversed = true;
        }
        if let Some(center) = self.centers.get_mut(&reversed.center) {
            center.reversed_total = center.reversed_total.plus(subsidy);
            if reversed.clawback {
                center.clawback_owed = center.clawback_owed.plus(subsidy);
            } else {
                center.unsettled = center.unsettled.saturating_minus(subsidy);
            }
        }
        if let Some(voucher) = self.vouchers.get_mut(&reversed.voucher) {
            voucher.subsidy_total = voucher.subsidy_total.saturating_minus(subsidy);
            voucher.invoiced_total = voucher.invoiced_total.saturating_minus(reversed.amount);
            if reversed.returned_to_voucher {
                voucher.remaining = voucher.remaining.plus(subsidy);
            }
            let year = voucher.terms.year;
            self.pools
                .entry(year)
                .or_default()
                .unredeem(subsidy, reversed.returned_to_voucher);
            if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
                account
                    .usage_by_year
                    .entry(year)
                    .or_default()
                    .unredeem(subsidy, reversed.returned_to_voucher);
            }
        }
    }

    fn apply_voucher_released(
        &mut self,
        voucher_id: VoucherId,
        cause: ReleaseCause,
        released: Money,
    ) {
        let Some(voucher) = self.vouchers.get_mut(&voucher_id) else {
            return;
        };
        voucher.status = match cause {
            ReleaseCause::Expired => VoucherStatus::Expired,
            ReleaseCause::Cancelled => VoucherStatus::Cancelled,
        };
        voucher.remaining = voucher.remaining.saturating_minus(released);
        voucher.released = voucher.released.plus(released);
        self.active_by_term_end
            .remove(&(voucher.terms.term_end, voucher_id));
        let year = voucher.terms.year;
        self.pools.entry(year).or_default().release_hold(released);
        if let Some(account) = self.enterprises.get_mut(&voucher.terms.enterprise) {
            account
                .usage_by_year
                .entry(year)
                .or_default()
                .release_hold(released);
        }
    }

    // ------------------------------------------------------------------ queries

    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    pub fn last_time(&self) -> Timestamp {
        self.last_time
    }

    pub fn policy(&self, year: ProgrammeYear) -> Option<&ProgrammePolicy> {
        self.policies.get(&year)
    }

    pub fn policies(&self) -> impl Iterator<Item = &ProgrammePolicy> {
        self.policies.values()
    }

    pub fn pool_usage(&self, year: ProgrammeYear) -> Usage {
        self.pools.get(&year).copied().unwrap_or_default()
    }

    pub fn center(&self, center: &Uscc) -> Option<&CenterAccount> {
        self.centers.get(center)
    }

    /// Centers in USCC order.
    pub fn centers(&self) -> impl Iterator<Item = &CenterAccount> {
        self.centers.values()
    }

    pub fn enterprise(&self, enterprise: &Uscc) -> Option<&EnterpriseAccount> {
        self.enterprises.get(enterprise)
    }

    /// Enterprises in USCC order (sorted here because the map is a hash map).
    pub fn enterprises_sorted(&self) -> Vec<&EnterpriseAccount> {
        let mut accounts: Vec<&EnterpriseAccount> = self.enterprises.values().collect();
        accounts.sort_unstable_by_key(|account| account.enterprise);
        accounts
    }

    /// The cap that applies to `enterprise` in `year`: the override if granted, else the
    /// policy's default; `None` if the year has no policy.
    pub fn enterprise_cap(&self, enterprise: &Uscc, year: ProgrammeYear) -> Option<Money> {
        let default = self.policies.get(&year)?.default_enterprise_cap();
        let override_cap = self
            .enterprises
            .get(enterprise)
            .and_then(|account| account.cap_overrides.get(&year))
            .map(|granted| granted.cap);
        Some(override_cap.unwrap_or(default))
    }

    pub fn enterprise_usage(&self, enterprise: &Uscc, year: ProgrammeYear) -> Usage {
        self.enterprises
            .get(enterprise)
            .and_then(|account| account.usage_by_year.get(&year))
            .copied()
            .unwrap_or_default()
    }

    pub fn are_related(&self, enterprise: &Uscc, center: &Uscc) -> bool {
        self.related_parties.contains(&(*enterprise, *center))
    }

    pub fn voucher(&self, voucher: &VoucherId) -> Option<&Voucher> {
        self.vouchers.get(voucher)
    }

    /// Vouchers in id order (sorted here because the map is a hash map).
    pub fn vouchers_sorted(&self) -> Vec<&Voucher> {
        let mut vouchers: Vec<&Voucher> = self.vouchers.values().collect();
        vouchers.sort_unstable_by_key(|voucher| voucher.terms.voucher);
        vouchers
    }

    pub fn voucher_for_contract(
        &self,
        center: &Uscc,
        contract: &ContractNumber,
    ) -> Option<VoucherId> {
        self.contracts.get(&(*center, contract.clone())).copied()
    }

    pub fn invoice(&self, center: &Uscc, invoice_number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        self.invoices.get(&InvoiceKeyRef {
            center,
            number: invoice_number.as_str(),
        })
    }

    /// Invoices ever redeemed.
    pub fn invoices_redeemed(&self) -> u64 {
        self.invoices_redeemed
    }

    /// Invoices held in memory (all of them, or the ledger's cache).
    pub fn invoices_in_memory(&self) -> usize {
        self.invoices.len()
    }

    /// Puts an invoice read from the store's index into memory, unless already there.
    pub fn cache_invoice(
        &mut self,
        center: Uscc,
        invoice_number: InvoiceNumber,
        entry: InvoiceEntry,
    ) {
        self.invoices
            .entry((center, invoice_number))
            .or_insert(entry);
    }

    /// Forgets the in-memory invoices (the durable ledger's cache eviction).
    pub fn evict_invoices(&mut self, keep_capacity: usize) {
        self.invoices.clear();
        self.invoices.shrink_to(keep_capacity);
    }

    /// True when everything but the invoice cache is equal: what a snapshot holds.
    pub fn same_projections(&self, other: &LedgerState) -> bool {
        self.to_image() == other.to_image()
    }

    pub fn settlement_recorded(&self, settlement: &SettlementId) -> bool {
        self.settlements.contains(settlement)
    }

    /// Checks every invariant the rules promise, returning a sentence per violation.
    /// Run after replay, by `verify`, and by the property tests.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut violations = Vec::new();
        for (year, usage) in &self.pools {
            match self.policies.get(year) {
                Some(policy) if usage.used() > policy.annual_pool() => violations.push(format!(
                    "pool {year}: held {} + redeemed {} exceeds pool {}",
                    usage.held,
                    usage.redeemed,
                    policy.annual_pool()
                )),
                Some(_) => {}
                None if usage.used().is_zero() => {}
                None => violations.push(format!("pool {year}: usage without a policy")),
            }
        }
        let mut expected_pools: BTreeMap<ProgrammeYear, Usage> = BTreeMap::new();
        for account in self.enterprises_sorted() {
            for (year, usage) in &account.usage_by_year {
                let expected = expected_pools.entry(*year).or_default();
                expected.held = expected.held.plus(usage.held);
                expected.redeemed = expected.redeemed.plus(usage.redeemed);
                if let Some(cap) = self.enterprise_cap(&account.enterprise, *year) {
                    if usage.used() > cap {
                        violations.push(format!(
                            "enterprise {} {year}: held {} + redeemed {} exceeds cap {cap}",
                            account.enterprise, usage.held, usage.redeemed
                        ));
                    }
                }
            }
        }
        for (year, expected) in &expected_pools {
            if self.pool_usage(*year) != *expected {
                violations.push(format!(
                    "pool {year}: {:?} differs from the sum over enterprises {:?}",
                    self.pool_usage(*year),
                    expected
                ));
            }
        }
        for voucher in self.vouchers_sorted() {
            let terms = &voucher.terms;
            let ceiling = terms.contract_fee.as_decimal() * terms.ceiling.as_decimal();
            if voucher.subsidy_total.as_decimal() > ceiling {
                violations.push(format!(
                    "voucher {}: subsidy {} exceeds ceiling {} x fee {}",
                    terms.voucher, voucher.subsidy_total, terms.ceiling, terms.contract_fee
                ));
            }
            if voucher.invoiced_total > terms.contract_fee {
                violations.push(format!(
                    "voucher {}: invoiced {} exceeds contract fee {}",
                    terms.voucher, voucher.invoiced_total, terms.contract_fee
                ));
            }
            let accounted = voucher
                .remaining
                .plus(voucher.subsidy_total)
                .plus(voucher.released);
            if voucher.status == VoucherStatus::Active && accounted != terms.face_value {
                violations.push(format!(
                    "voucher {}: remaining {} + redeemed {} differs from face {}",
                    terms.voucher, voucher.remaining, voucher.subsidy_total, terms.face_value
                ));
            }
            if voucher.subsidy_total.plus(voucher.released) > terms.face_value
                && voucher.status == VoucherStatus::Active
            {
                violations.push(format!("voucher {}: balance below zero", terms.voucher));
            }
        }
        violations
    }
}

/// A serialisable image of the state, with every hash map turned into a sorted vector so
/// the same state always gives the same snapshot bytes. The invoice cache is left out:
/// the store's invoice index is the durable home of invoices.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct StateImage {
    last_sequence: u64,
    last_time: Timestamp,
    policies: Vec<ProgrammePolicy>,
    pools: Vec<(ProgrammeYear, Usage)>,
    centers: Vec<CenterAccount>,
    enterprises: Vec<EnterpriseAccount>,
    related_parties: Vec<(Uscc, Uscc)>,
    vouchers: Vec<Voucher>,
    invoices_redeemed: u64,
    settlements: Vec<SettlementId>,
}

impl LedgerState {
    pub fn to_image(&self) -> StateImage {
        StateImage {
            last_sequence: self.last_sequence,
            last_time: self.last_time,
            policies: self.policies.values().cloned().collect(),
            pools: self
                .pools
                .iter()
                .map(|(year, usage)| (*year, *usage))
                .collect(),
            centers: self.centers.values().cloned().collect(),
            enterprises: self.enterprises_sorted().into_iter().cloned().collect(),
            related_parties: self.related_parties.iter().copied().collect(),
            vouchers: self.vouchers_sorted().into_iter().cloned().collect(),
            invoices_redeemed: self.invoices_redeemed,
            settlements: self.settlements.iter().copied().collect(),
        }
    }

    pub fn from_image(image: StateImage) -> LedgerState {
        let mut state = LedgerState {
            last_sequence: image.last_sequence,
            last_time: image.last_time,
            ..LedgerState::default()
        };
        state.policies = image
            .policies
            .into_iter()
            .map(|policy| (policy.year(), policy))
            .collect();
        state.pools = image.pools.into_iter().collect();
        state.centers = image
            .centers
            .into_iter()
            .map(|account| (account.center, account))
            .collect();
        state.enterprises = image
            .enterprises
            .into_iter()
            .map(|account| (account.enterprise, account))
            .collect();
        state.related_parties = image.related_parties.into_iter().collect();
        for voucher in image.vouchers {
            let terms = &voucher.terms;
            state
                .contracts
                .insert((terms.center, terms.contract_number.clone()), terms.voucher);
            if voucher.status == VoucherStatus::Active {
                state
                    .active_by_term_end
                    .insert((terms.term_end, terms.voucher));
            }
            state.vouchers.insert(terms.voucher, voucher);
        }
        state.invoices_redeemed = image.invoices_redeemed;
        state.settlements = image.settlements.into_iter().collect();
        state
    }
}
