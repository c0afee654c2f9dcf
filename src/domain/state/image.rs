//! [`StateImage`]: the projections as sorted plain data, so the same state always gives
//! the same image (and the same snapshot bytes). The invoice cache is left out: the
//! store's invoice index is the durable home of invoices. Derived indexes (contracts,
//! active vouchers by term end) are rebuilt from the vouchers, not stored.
//!
//! The image is the domain's side of a snapshot; `storage::snapshot` owns the byte
//! layout, field by field, with its own version.

use super::VoucherStatus;
use super::{CenterAccount, EnterpriseAccount, InvoiceCache, LedgerState, Usage, Voucher};
use crate::domain::ids::{ProgrammeYear, SettlementId, Timestamp, Uscc};
use crate::domain::policy::ProgrammePolicy;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateImage {
    pub last_sequence: u64,
    pub last_time: Timestamp,
    /// In year order.
    pub policies: Vec<ProgrammePolicy>,
    /// In year order.
    pub pools: Vec<(ProgrammeYear, Usage)>,
    /// In USCC order.
    pub centers: Vec<CenterAccount>,
    /// In USCC order.
    pub enterprises: Vec<EnterpriseAccount>,
    /// (enterprise, center), in order.
    pub related_parties: Vec<(Uscc, Uscc)>,
    /// In voucher id order.
    pub vouchers: Vec<Voucher>,
    pub invoices_redeemed: u64,
    /// In order.
    pub settlements: Vec<SettlementId>,
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
