//! Events: facts the ledger has accepted, in the past tense. The log is a sequence of
//! these; every projection is a fold of `LedgerState::apply` over them.
//!
//! Event type numbers are written into each log record's frame. Never renumber a type or
//! change a payload's shape without bumping the record format version.

use super::command::{CenterStatus, ListingBasis};
use super::ids::{
    ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, ProgrammeYear, Reason,
    SettlementId, Uscc, VoucherId,
};
use super::money::{Money, Rate};
use super::policy::{FacilityTier, ProgrammePolicy};

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    PolicyPublished {
        policy: Box<ProgrammePolicy>,
    },
    CenterRegistered {
        center: Uscc,
        name: LegalName,
        tier: FacilityTier,
        listing_basis: ListingBasis,
    },
    CenterStatusChanged {
        center: Uscc,
        from: CenterStatus,
        to: CenterStatus,
        reason: Reason,
    },
    EnterpriseRegistered {
        enterprise: Uscc,
        name: LegalName,
    },
    CapOverrideGranted {
        enterprise: Uscc,
        year: ProgrammeYear,
        cap: Money,
        reason: Reason,
    },
    RelatedPartyDeclared {
        enterprise: Uscc,
        center: Uscc,
        reason: Reason,
    },
    /// Boxed: the largest variant and a rare one, so every other event stays small.
    VoucherApproved(Box<VoucherApproved>),
    InvoiceRedeemed(InvoiceRedeemed),
    InvoiceReversed(InvoiceReversed),
    /// The unredeemed face value went back to the enterprise's cap and the pool.
    VoucherReleased {
        voucher: VoucherId,
        cause: ReleaseCause,
        released: Money,
        /// The bureau's reason for a cancellation; `None` for an expiry.
        reason: Option<Reason>,
    },
    CenterSettled {
        center: Uscc,
        settlement_id: SettlementId,
        /// Subsidy redeemed since the last settlement.
        redeemed: Money,
        /// Clawbacks (reversals of settled invoices) offset against it.
        clawback_offset: Money,
        /// `redeemed - clawback_offset`, or zero when clawbacks exceed it.
        paid: Money,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VoucherApproved {
    pub voucher: VoucherId,
    pub year: ProgrammeYear,
    pub enterprise: Uscc,
    pub center: Uscc,
    pub contract_number: ContractNumber,
    pub contract_fee: Money,
    pub term_start: Date,
    pub term_end: Date,
    pub tier: FacilityTier,
    pub rate: Rate,
    pub ceiling: Rate,
    pub requested: Money,
    pub face_value: Money,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceRedeemed {
    pub voucher: VoucherId,
    pub center: Uscc,
    pub invoice_number: InvoiceNumber,
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: DeliveryProof,
    pub subsidy: Money,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceReversed {
    pub voucher: VoucherId,
    pub center: Uscc,
    pub invoice_number: InvoiceNumber,
    pub amount: Money,
    pub subsidy: Money,
    /// True when the subsidy had been settled: the center now owes it back.
    pub clawback: bool,
    /// True when the voucher was still active and took the subsidy back as face value;
    /// false when it was already released, so the subsidy went back to cap and pool.
    pub returned_to_voucher: bool,
    pub reason: Reason,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReleaseCause {
    Expired,
    Cancelled,
}

impl Event {
    /// The type number written in the record frame (stable, see module doc).
    pub fn type_number(&self) -> u16 {
        match self {
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

    pub fn name(&self) -> &'static str {
        match self {
            Event::PolicyPublished { .. } => "PolicyPublished",
            Event::CenterRegistered { .. } => "CenterRegistered",
            Event::CenterStatusChanged { .. } => "CenterStatusChanged",
            Event::EnterpriseRegistered { .. } => "EnterpriseRegistered",
            Event::CapOverrideGranted { .. } => "CapOverrideGranted",
            Event::RelatedPartyDeclared { .. } => "RelatedPartyDeclared",
            Event::VoucherApproved(_) => "VoucherApproved",
            Event::InvoiceRedeemed(_) => "InvoiceRedeemed",
            Event::InvoiceReversed(_) => "InvoiceReversed",
            Event::VoucherReleased { .. } => "VoucherReleased",
            Event::CenterSettled { .. } => "CenterSettled",
        }
    }
}
