//! Read-only questions about the state, asked by the state machine, the API and reports.
//! Listings come back in a stable order (never hash-map order).

use super::{CenterAccount, EnterpriseAccount, InvoiceEntry, LedgerState, Usage, Voucher};
use crate::domain::ids::{ContractNumber, InvoiceNumber, ProgrammeYear, SettlementId, Timestamp};
use crate::domain::ids::{Uscc, VoucherId};
use crate::domain::money::Money;
use crate::domain::policy::ProgrammePolicy;

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

    /// Declared related parties as (enterprise, center), in order.
    pub fn related_parties(&self) -> impl Iterator<Item = &(Uscc, Uscc)> {
        self.related_parties.iter()
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

    /// The invoice if the invoice cache holds it (see [`super::InvoiceCache`]: in the
    /// durable ledger that is a cache; its durable home is the store's index).
    pub fn invoice(&self, center: &Uscc, invoice_number: &InvoiceNumber) -> Option<&InvoiceEntry> {
        self.invoice_cache.get(center, invoice_number)
    }

    /// Invoices ever redeemed.
    pub fn invoices_redeemed(&self) -> u64 {
        self.invoices_redeemed
    }

    /// Entries the invoice cache holds now.
    pub fn invoices_in_memory(&self) -> usize {
        self.invoice_cache.len()
    }

    pub fn settlement_recorded(&self, settlement: &SettlementId) -> bool {
        self.settlements.contains(settlement)
    }

    /// Settlement ids ever recorded, in order.
    pub fn settlements(&self) -> impl Iterator<Item = &SettlementId> {
        self.settlements.iter()
    }
}
