//! Commands: what clients ask the ledger to do, in the imperative. Every field is already
//! validated (the types' constructors did it), so the state machine only applies rules.

use super::ids::{
    ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, ProgrammeYear, Reason,
    SettlementId, Timestamp, Uscc, VoucherId,
};
use super::money::Money;
use super::policy::{FacilityTier, ProgrammePolicy};

/// Why a center is listed, and so allowed to redeem at all.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ListingBasis {
    /// In the city's computing-power planning layout.
    PlanningLayout,
    /// On the matchmaking (供需对接) partner list.
    MatchmakingPartner,
}

impl ListingBasis {
    pub fn name(self) -> &'static str {
        match self {
            ListingBasis::PlanningLayout => "planning_layout",
            ListingBasis::MatchmakingPartner => "matchmaking_partner",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CenterStatus {
    Active,
    Suspended,
    /// Final: a delisted center never redeems again.
    Delisted,
}

impl CenterStatus {
    pub fn name(self) -> &'static str {
        match self {
            CenterStatus::Active => "active",
            CenterStatus::Suspended => "suspended",
            CenterStatus::Delisted => "delisted",
        }
    }
}

/// Everything the ledger can be asked to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    PublishPolicy {
        policy: ProgrammePolicy,
    },
    RegisterCenter {
        center: Uscc,
        name: LegalName,
        tier: FacilityTier,
        listing_basis: ListingBasis,
    },
    SetCenterStatus {
        center: Uscc,
        status: CenterStatus,
        reason: Reason,
    },
    RegisterEnterprise {
        enterprise: Uscc,
        name: LegalName,
    },
    /// Raise (or set) an enterprise's cap for one year, e.g. for a firm building a
    /// generative multimodal foundation model.
    GrantCapOverride {
        enterprise: Uscc,
        year: ProgrammeYear,
        cap: Money,
        reason: Reason,
    },
    DeclareRelatedParty {
        enterprise: Uscc,
        center: Uscc,
        reason: Reason,
    },
    /// Approve a voucher for one signed contract: a hold on the enterprise's cap and on
    /// the year's pool.
    ApproveVoucher(ApproveVoucher),
    CancelVoucher {
        voucher: VoucherId,
        reason: Reason,
    },
    /// Release every active voucher whose contract term ended before `as_of`.
    ExpireVouchers {
        as_of: Date,
    },
    PostInvoice(PostInvoice),
    ReverseInvoice {
        center: Uscc,
        invoice_number: InvoiceNumber,
        reason: Reason,
    },
    /// Record that the finance bureau paid the center what it is owed, net of clawbacks.
    SettleCenter {
        center: Uscc,
        settlement_id: SettlementId,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApproveVoucher {
    pub voucher: VoucherId,
    pub year: ProgrammeYear,
    pub enterprise: Uscc,
    pub center: Uscc,
    pub contract_number: ContractNumber,
    pub contract_fee: Money,
    pub term_start: Date,
    pub term_end: Date,
    /// The subsidy the enterprise asks for; the face value is the smaller of this and
    /// rate × contract fee.
    pub requested: Money,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PostInvoice {
    pub center: Uscc,
    pub voucher: VoucherId,
    pub invoice_number: InvoiceNumber,
    /// What the enterprise paid on this invoice.
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: DeliveryProof,
}

/// A command with the time it was accepted for processing. Time comes in here, from
/// outside the state machine, so replaying the same envelopes gives the same events.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    pub at: Timestamp,
    pub command: Command,
}

impl Envelope {
    /// A command stamped with the time it is accepted for processing.
    pub fn new(at: Timestamp, command: Command) -> Envelope {
        Envelope { at, command }
    }
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::PublishPolicy { .. } => "PublishPolicy",
            Command::RegisterCenter { .. } => "RegisterCenter",
            Command::SetCenterStatus { .. } => "SetCenterStatus",
            Command::RegisterEnterprise { .. } => "RegisterEnterprise",
            Command::GrantCapOverride { .. } => "GrantCapOverride",
            Command::DeclareRelatedParty { .. } => "DeclareRelatedParty",
            Command::ApproveVoucher(_) => "ApproveVoucher",
            Command::CancelVoucher { .. } => "CancelVoucher",
            Command::ExpireVouchers { .. } => "ExpireVouchers",
            Command::PostInvoice(_) => "PostInvoice",
            Command::ReverseInvoice { .. } => "ReverseInvoice",
            Command::SettleCenter { .. } => "SettleCenter",
        }
    }
}
