//! [`StateImage`]: the projections as sorted plain data, so the same state always gives
//! the same image (and the same snapshot bytes). The invoice cache is left out: the
//! store's invoice index is the durable home of invoices. Derived indexes (contracts,
//! vouchers by owner, active vouchers by window end and by center) are rebuilt from the
//! vouchers, not stored.
//!
//! The image is the domain's side of a snapshot; `storage::snapshot` owns the byte
//! layout, field by field, with its own version.

use super::{BankUse, CenterAccount, CenterYear, EnterpriseAccount, InvoiceCache, LedgerState};
use super::{SettlementRun, Statement, Voucher, VoucherStatus, YearBook};
use crate::domain::ids::{BankReference, ProgrammeYear, SettlementId, Timestamp, Uscc};
use crate::domain::policy::ProgrammePolicy;
use crate::domain::reconciliation::ReconciliationRecord;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateImage {
    pub last_sequence: u64,
    pub last_time: Timestamp,
    /// In year order.
    pub policies: Vec<ProgrammePolicy>,
    /// In year order.
    pub years: Vec<(ProgrammeYear, YearBook)>,
    /// In USCC order.
    pub centers: Vec<CenterAccount>,
    /// In (center, year) order.
    pub center_years: Vec<((Uscc, ProgrammeYear), CenterYear)>,
    /// In USCC order.
    pub enterprises: Vec<EnterpriseAccount>,
    /// (enterprise, center), in order.
    pub related_parties: Vec<(Uscc, Uscc)>,
    /// In voucher id order.
    pub vouchers: Vec<Voucher>,
    /// In id order.
    pub statements: Vec<Statement>,
    /// In run id order.
    pub runs: Vec<SettlementRun>,
    /// In canonical order.
    pub bank_references: Vec<(BankReference, BankUse)>,
    pub invoices_redeemed: u64,
    /// In order.
    pub legacy_settlements: Vec<SettlementId>,
    /// In sequence order.
    pub reconciliations: Vec<ReconciliationRecord>,
    /// A stacked second source's books (empty unless a policy has one): in year order,
    /// and in (payee, year) order.
    pub second_years: Vec<(ProgrammeYear, YearBook)>,
    pub second_center_years: Vec<((Uscc, ProgrammeYear), CenterYear)>,
}

impl LedgerState {
    pub fn to_image(&self) -> StateImage {
        StateImage {
            last_sequence: self.last_sequence,
            last_time: self.last_time,
            policies: self.policies.values().cloned().collect(),
            years: self
                .years
                .iter()
                .map(|(year, book)| (*year, book.clone()))
                .collect(),
            centers: self.centers.values().cloned().collect(),
            center_years: self
                .center_years
                .iter()
                .map(|(key, books)| (*key, books.clone()))
                .collect(),
            enterprises: self.enterprises_sorted().into_iter().cloned().collect(),
            related_parties: self.related_parties.iter().copied().collect(),
            vouchers: self.vouchers_sorted().into_iter().cloned().collect(),
            statements: self.statements.values().cloned().collect(),
            runs: self.runs.values().cloned().collect(),
            bank_references: self
                .bank_references
                .iter()
                .map(|(reference, used)| (reference.clone(), used.clone()))
                .collect(),
            invoices_redeemed: self.invoices_redeemed,
            legacy_settlements: self.legacy_settlements.iter().copied().collect(),
            reconciliations: self.reconciliations.values().cloned().collect(),
            second_years: self
                .second_years
                .iter()
                .map(|(year, book)| (*year, book.clone()))
                .collect(),
            second_center_years: self
                .second_center_years
                .iter()
                .map(|(key, books)| (*key, books.clone()))
                .collect(),
        }
    }

    /// Rebuilds a state from an image. Its invoice cache is bounded (and empty): the
    /// invoices of the log so far are not in the image, so a miss cannot mean "absent".
    pub fn from_image(image: StateImage) -> LedgerState {
        let mut state = LedgerState {
            last_sequence: image.last_sequence,
            last_time: image.last_time,
            invoice_cache: InvoiceCache::bounded(),
            ..LedgerState::default()
        };
        state.policies = image
            .policies
            .into_iter()
            .map(|policy| (policy.year(), policy))
            .collect();
        state.years = image.years.into_iter().collect();
        state.centers = image
            .centers
            .into_iter()
            .map(|account| (account.center, account))
            .collect();
        state.center_years = image.center_years.into_iter().collect();
        state.second_years = image.second_years.into_iter().collect();
        state.second_center_years = image.second_center_years.into_iter().collect();
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
            state
                .vouchers_by_center
                .insert((terms.center, terms.voucher));
            state
                .vouchers_by_enterprise
                .insert((terms.enterprise, terms.voucher));
            if voucher.status == VoucherStatus::Active {
                state
                    .active_by_window_end
                    .insert((terms.redemption_window_end, terms.voucher));
                state.active_by_center.insert((terms.center, terms.voucher));
                *state
                    .active_count_by_center
                    .entry(terms.center)
                    .or_default() += 1;
            }
            state.vouchers.insert(terms.voucher, voucher);
        }
        state.statements = image
            .statements
            .into_iter()
            .map(|statement| (statement.id, statement))
            .collect();
        state.runs = image.runs.into_iter().map(|run| (run.run, run)).collect();
        state.bank_references = image.bank_references.into_iter().collect();
        state.invoices_redeemed = image.invoices_redeemed;
        state.legacy_settlements = image.legacy_settlements.into_iter().collect();
        for record in image.reconciliations {
            let recorded = &record.reconciliation;
            state
                .reconciliation_index
                .entry((recorded.digest, recorded.scope))
                .or_insert(record.sequence);
            state.reconciliations.insert(record.sequence, record);
        }
        state
    }
}
