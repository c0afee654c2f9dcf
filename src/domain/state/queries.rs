//! Read-only questions about the state, asked by the state machine, the API and reports.
//! Listings come back in a stable order (never hash-map order), and the paged ones cost
//! O(page): they walk an ordered index from a cursor.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{
    CenterAccount, CenterYear, EnterpriseAccount, InvoiceEntry, LedgerState, SettlementRun,
    Statement, Usage, Voucher, YearBook,
};
use crate::domain::event::VoucherApproved;
use crate::domain::ids::{
    BankReference, ContractNumber, InvoiceNumber, ProgrammeYear, SettlementId, SettlementRunId,
    StatementId, Timestamp, Uscc, VoucherId,
};
use crate::domain::money::Money;
use crate::domain::policy::ProgrammePolicy;
use crate::domain::programme::{FundingSource, Payee};
use crate::domain::state::BankUse;

impl LedgerState {
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    pub fn last_time(&self) -> Timestamp {
        self.last_time
    }

    pub fn policy(&self, year: ProgrammeYear) -> Option<&ProgrammePolicy> {
        self.policies.get(&year)
    }

    /// Policies in year order.
    pub fn policies(&self) -> impl Iterator<Item = &ProgrammePolicy> {
        self.policies.values()
    }

    /// A year's books (pool, usage, settlement buckets), if its policy is published.
    pub fn year(&self, year: ProgrammeYear) -> Option<&YearBook> {
        self.years.get(&year)
    }

    /// Years with books, in order.
    pub fn years(&self) -> impl Iterator<Item = (&ProgrammeYear, &YearBook)> {
        self.years.iter()
    }

    /// The pool in force for `year` (the policy's, or the last adjustment).
    pub fn pool(&self, year: ProgrammeYear) -> Option<Money> {
        self.policies.get(&year)?;
        Some(self.years.get(&year).map_or(Money::ZERO, |book| book.pool))
    }

    pub fn pool_usage(&self, year: ProgrammeYear) -> Usage {
        self.years
            .get(&year)
            .map(|book| book.usage)
            .unwrap_or_default()
    }

    pub fn year_closed(&self, year: ProgrammeYear) -> bool {
        self.years
            .get(&year)
            .is_some_and(|book| book.closed.is_some())
    }

    pub fn center(&self, center: &Uscc) -> Option<&CenterAccount> {
        self.centers.get(center)
    }

    /// Centers in USCC order.
    pub fn centers(&self) -> impl Iterator<Item = &CenterAccount> {
        self.centers.values()
    }

    /// Who the bureau pays for `year`'s redemptions: the center (today's programmes, and
    /// a year without a policy) or the enterprise (reimbursement).
    pub fn payee_kind(&self, year: ProgrammeYear) -> Payee {
        LedgerState::payee_kind_in(&self.policies, year)
    }

    /// [`LedgerState::payee_kind`] from the policies alone.
    fn payee_kind_in(
        policies: &BTreeMap<ProgrammeYear, ProgrammePolicy>,
        year: ProgrammeYear,
    ) -> Payee {
        policies
            .get(&year)
            .map_or(Payee::Center, |policy| policy.rules().payee)
    }

    /// True when some year's policy pays the enterprise (a reimbursement year). When none
    /// does, every redemption's payee is its center, and a caller answering thousands of
    /// invoices need not look up each one's voucher to say so.
    pub fn any_enterprise_payee(&self) -> bool {
        self.policies
            .values()
            .any(|policy| policy.rules().payee == Payee::Enterprise)
    }

    /// The payee of a voucher's redemptions: whose books ([`CenterYear`]), statements and
    /// receivables they go into.
    pub fn payee_of(&self, terms: &VoucherApproved) -> Uscc {
        LedgerState::payee_of_in(&self.policies, terms)
    }

    /// [`LedgerState::payee_of`] from the policies alone, for the fold, which holds a
    /// voucher mutably at the same time.
    pub(super) fn payee_of_in(
        policies: &BTreeMap<ProgrammeYear, ProgrammePolicy>,
        terms: &VoucherApproved,
    ) -> Uscc {
        match LedgerState::payee_kind_in(policies, terms.year) {
            Payee::Center => terms.center,
            Payee::Enterprise => terms.enterprise,
        }
    }

    /// A payee's books for a year (a center's, or an enterprise's in a reimbursement year).
    pub fn payee_year(&self, payee: &Uscc, year: ProgrammeYear) -> Option<&CenterYear> {
        self.center_years.get(&(*payee, year))
    }

    /// A funding source's books of a payee for a year: [`LedgerState::payee_year`] for the
    /// programme's own, the stacked second source's otherwise.
    pub fn source_payee_year(
        &self,
        source: FundingSource,
        payee: &Uscc,
        year: ProgrammeYear,
    ) -> Option<&CenterYear> {
        match source {
            FundingSource::Primary => self.center_years.get(&(*payee, year)),
            FundingSource::Second => self.second_center_years.get(&(*payee, year)),
        }
    }

    /// A stacked second source's year books (its pool and where every fen of it is), if
    /// the year's policy has one.
    pub fn second_year(&self, year: ProgrammeYear) -> Option<&YearBook> {
        self.second_years.get(&year)
    }

    /// Every year with a second source's books, in order.
    pub fn second_years(&self) -> impl Iterator<Item = (&ProgrammeYear, &YearBook)> {
        self.second_years.iter()
    }

    /// The second source's books per payee and year, in (payee, year) order.
    pub fn second_center_years(
        &self,
    ) -> impl Iterator<Item = (&(Uscc, ProgrammeYear), &CenterYear)> {
        self.second_center_years.iter()
    }

    /// A center's books for a year (`None` for a reimbursement year: the enterprise is paid).
    pub fn center_year(&self, center: &Uscc, year: ProgrammeYear) -> Option<&CenterYear> {
        if self.payee_kind(year) != Payee::Center {
            return None;
        }
        self.center_years.get(&(*center, year))
    }

    /// Every payee-year's books, in (payee, year) order; the payee is a center unless
    /// the year is a reimbursement year ([`LedgerState::payee_kind`]).
    pub fn center_years(&self) -> impl Iterator<Item = (&(Uscc, ProgrammeYear), &CenterYear)> {
        self.center_years.iter()
    }

    /// A center's books of every year, in year order (reimbursement years, whose books
    /// are the enterprises', left out).
    pub fn center_years_of(
        &self,
        center: &Uscc,
    ) -> impl Iterator<Item = (ProgrammeYear, &CenterYear)> {
        self.center_years
            .range((*center, ProgrammeYear::MIN)..=(*center, ProgrammeYear::MAX))
            .filter(|((_, year), _)| self.payee_kind(*year) == Payee::Center)
            .map(|((_, year), books)| (*year, books))
    }

    /// Subsidy of a center not yet in a statement, over every year.
    pub fn center_unsettled(&self, center: &Uscc) -> Money {
        self.center_years_of(center)
            .fold(Money::ZERO, |sum, (_, books)| sum.plus(books.unsettled))
    }

    /// Receivables a center owes, over every year.
    pub fn center_outstanding(&self, center: &Uscc) -> Money {
        self.center_years_of(center)
            .fold(Money::ZERO, |sum, (_, books)| sum.plus(books.outstanding()))
    }

    /// What the bureau owes a center now: the net of its statements not yet paid.
    pub fn center_amount_due(&self, center: &Uscc) -> Money {
        self.statements
            .values()
            .filter(|statement| {
                statement.center == *center
                    && statement.state != super::StatementState::Paid
                    && statement.source == FundingSource::Primary
                    && self.payee_kind(statement.year) == Payee::Center
            })
            .fold(Money::ZERO, |sum, statement| sum.plus(statement.net))
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

    /// Declared related parties as (enterprise, center), in order.
    pub fn related_parties(&self) -> impl Iterator<Item = &(Uscc, Uscc)> {
        self.related_parties.iter()
    }

    pub fn voucher(&self, voucher: &VoucherId) -> Option<&Voucher> {
        self.vouchers.get(voucher)
    }

    /// Asks the CPU for the voucher's record without waiting for it (see
    /// [`super::DenseTable::prefetch`]); changes nothing.
    #[inline]
    pub(crate) fn prefetch_voucher(&self, voucher: &VoucherId) {
        self.vouchers.prefetch(voucher);
    }

    /// Asks the CPU for where the search for voucher `voucher`'s position starts,
    /// without waiting for it; changes nothing. Call it a while before
    /// `prefetch_voucher` for the same voucher.
    #[inline]
    pub(crate) fn prefetch_voucher_position(&self, voucher: &VoucherId) {
        self.vouchers.prefetch_position(voucher);
    }

    /// Asks the CPU for the account of the enterprise whose voucher `voucher` is,
    /// without waiting for it; changes nothing. It reads the voucher, so call it once
    /// the voucher was prefetched (`prefetch_voucher`) a while before.
    #[inline]
    pub(crate) fn prefetch_enterprise_of(&self, voucher: &VoucherId) {
        if let Some(voucher) = self.vouchers.get(voucher) {
            self.enterprises.prefetch(&voucher.terms.enterprise);
        }
    }

    /// Vouchers in id order (sorted here: the table holds them in approval order, and a
    /// state restored from an image inserted them in id order). O(n log n):
    /// for reports and checks, never for a request path (use the paged listings).
    pub fn vouchers_sorted(&self) -> Vec<&Voucher> {
        let mut vouchers: Vec<&Voucher> = self.vouchers.values().collect();
        vouchers.sort_unstable_by_key(|voucher| voucher.terms.voucher);
        vouchers
    }

    /// Up to `limit` vouchers of a center, in id order, after `after`. O(limit).
    pub fn vouchers_of_center(
        &self,
        center: &Uscc,
        after: Option<VoucherId>,
        limit: usize,
    ) -> Vec<&Voucher> {
        page_of(
            &self.vouchers_by_center,
            &self.vouchers,
            center,
            after,
            limit,
        )
    }

    /// Up to `limit` vouchers of an enterprise, in id order, after `after`. O(limit).
    pub fn vouchers_of_enterprise(
        &self,
        enterprise: &Uscc,
        after: Option<VoucherId>,
        limit: usize,
    ) -> Vec<&Voucher> {
        page_of(
            &self.vouchers_by_enterprise,
            &self.vouchers,
            enterprise,
            after,
            limit,
        )
    }

    /// Active vouchers of a center, in id order.
    pub fn active_vouchers_of_center(&self, center: &Uscc) -> impl Iterator<Item = VoucherId> + '_ {
        self.active_by_center
            .range((*center, VoucherId::MIN)..=(*center, VoucherId::MAX))
            .map(|(_, voucher)| *voucher)
    }

    /// How many active vouchers a center holds. O(1).
    pub fn active_voucher_count(&self, center: &Uscc) -> usize {
        self.active_count_by_center
            .get(center)
            .copied()
            .unwrap_or(0)
    }

    /// Active vouchers by the end of their redemption window, earliest first.
    pub fn active_vouchers_by_window_end(
        &self,
    ) -> impl Iterator<Item = &(crate::domain::ids::Date, VoucherId)> {
        self.active_by_window_end.iter()
    }

    pub fn voucher_for_contract(
        &self,
        center: &Uscc,
        contract: &ContractNumber,
    ) -> Option<VoucherId> {
        self.contracts.get(&(*center, contract.clone())).copied()
    }

    /// The invoice if the invoice cache holds it (see [`super::InvoiceCache`]: in the
    /// durable ledger that is a cache; its durable home is the store's index).
    pub fn invoice(&self, center: &Uscc, invoice_number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        self.invoice_cache.get(center, invoice_number)
    }

    /// Whether an invoice of `center` on a voucher of `year` is in a statement, and which
    /// (`None` inside `Some` for a format-v1 settlement). It is when a settlement's cutoff
    /// came after its redemption and it was not reversed before that cutoff. The payee's
    /// books decide: the center's, or the voucher's enterprise's in a reimbursement year.
    pub fn invoice_settlement(
        &self,
        center: &Uscc,
        year: ProgrammeYear,
        entry: &InvoiceEntry,
    ) -> Option<Option<StatementId>> {
        let payee = match self.payee_kind(year) {
            Payee::Center => *center,
            Payee::Enterprise => self.vouchers.get(&entry.voucher)?.terms.enterprise,
        };
        let (cutoff, statement) = self
            .center_years
            .get(&(payee, year))?
            .settlement_of(entry.sequence)?;
        match entry.reversed_at {
            Some(reversed_at) if reversed_at < cutoff => None,
            _ => Some(statement),
        }
    }

    /// Invoices ever redeemed.
    pub fn invoices_redeemed(&self) -> u64 {
        self.invoices_redeemed
    }

    /// Entries the invoice cache holds now.
    pub fn invoices_in_memory(&self) -> usize {
        self.invoice_cache.len()
    }

    pub fn statement(&self, statement: &StatementId) -> Option<&Statement> {
        self.statements.get(statement)
    }

    /// Statements after `after`, in id order (the order they were issued), that pass
    /// `keep`; at most `limit`, looking at no more than `scan_limit` statements so a
    /// narrow filter cannot make one page expensive. Returns the page and the id the
    /// next page starts after, if the scan stopped early.
    pub fn statements_page(
        &self,
        after: Option<StatementId>,
        limit: usize,
        scan_limit: usize,
        keep: impl Fn(&Statement) -> bool,
    ) -> (Vec<&Statement>, Option<StatementId>) {
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut page = Vec::new();
        let mut last_seen = None;
        for (scanned, (id, statement)) in
            self.statements.range((start, Bound::Unbounded)).enumerate()
        {
            if page.len() == limit || scanned == scan_limit {
                return (page, last_seen);
            }
            last_seen = Some(*id);
            if keep(statement) {
                page.push(statement);
            }
        }
        (page, None)
    }

    pub fn run(&self, run: &SettlementRunId) -> Option<&SettlementRun> {
        self.runs.get(run)
    }

    /// What a bank reference was used for.
    pub fn bank_reference(&self, reference: &BankReference) -> Option<&BankUse> {
        self.bank_references.get(reference)
    }

    /// Settlements recorded by format v1, in order.
    pub fn legacy_settlements(&self) -> impl Iterator<Item = &SettlementId> {
        self.legacy_settlements.iter()
    }

    pub fn settlement_recorded(&self, settlement: &SettlementId) -> bool {
        self.legacy_settlements.contains(settlement)
    }
}

/// Up to `limit` values of `owner` from an (owner, id) index, after `after`.
fn page_of<'a>(
    index: &std::collections::BTreeSet<(Uscc, VoucherId)>,
    vouchers: &'a super::DenseTable<VoucherId, Voucher>,
    owner: &Uscc,
    after: Option<VoucherId>,
    limit: usize,
) -> Vec<&'a Voucher> {
    let start = match after {
        Some(after) => Bound::Excluded((*owner, after)),
        None => Bound::Included((*owner, VoucherId::MIN)),
    };
    index
        .range((start, Bound::Included((*owner, VoucherId::MAX))))
        .take(limit)
        .filter_map(|(_, voucher)| vouchers.get(voucher))
        .collect()
}
