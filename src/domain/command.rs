//! Commands: what clients ask the ledger to do, in the imperative. Every field is already
//! validated (the types' constructors did it), so the state machine only applies rules.

use super::ids::{
    BankReference, ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, PaymentProof,
    ProgrammeYear, Reason, SettlementRunId, StatementId, Timestamp, Uscc, VoucherId,
};
use super::money::Money;
use super::origin::Origin;
use super::policy::{FacilityTier, ProgrammePolicy};
use super::programme::{CenterCapacity, Declarations, EnterpriseClass};
use super::reconciliation::ReconciliationRecorded;

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
        /// Capacity figures, for programmes with eligibility thresholds (default: none).
        capacity: CenterCapacity,
    },
    /// Suspend, reinstate or delist a center. Delisting is final and releases the
    /// unredeemed face value of the center's active vouchers at once.
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
    /// Release every active voucher whose redemption window (term end + the policy's
    /// grace days) ended before the command's date (from its envelope).
    ExpireVouchers,
    PostInvoice(PostInvoice),
    ReverseInvoice {
        center: Uscc,
        invoice_number: InvoiceNumber,
        reason: Reason,
    },
    /// Cut off a programme year's redemptions at this command's place in the log and
    /// issue one statement per center with anything to settle.
    CreateSettlementRun {
        run: SettlementRunId,
        year: ProgrammeYear,
    },
    /// Record that the bank paid a statement's net amount.
    ConfirmPayment {
        statement: StatementId,
        bank_reference: BankReference,
        amount: Money,
        value_date: Date,
    },
    /// The bank returned a payment: the statement is open for payment again.
    RecordPaymentReturned {
        statement: StatementId,
        bank_reference: BankReference,
        reason: Reason,
    },
    /// A center repaid (part of) what it owes for a year's clawbacks.
    RecordRepayment {
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        bank_reference: BankReference,
        value_date: Date,
    },
    /// Record a payee's repayment of receivables owed to a year's stacked second source
    /// (clawbacks of the second subsidy), recovered first-in, first-out like
    /// `RecordRepayment`'s.
    RecordSecondSourceRepayment {
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        bank_reference: BankReference,
        value_date: Date,
    },
    /// Close a programme year once every voucher is past its redemption window.
    CloseProgrammeYear {
        year: ProgrammeYear,
    },
    /// Raise or lower a year's pool (never below what is held, redeemed and owed).
    AdjustPool {
        year: ProgrammeYear,
        new_pool: Money,
        reason: Reason,
    },
    /// An operator confirms the clock after the expiry sweep stopped on a time jump.
    ConfirmClock {
        reason: Reason,
    },
    /// Record a reconciliation's outcome. The same file (digest) with the same scope is
    /// recorded once: a repeat is answered with the original record.
    RecordReconciliation(Box<ReconciliationRecorded>),
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
    /// How the bureau classes the enterprise for this application (small-enterprise rate).
    pub enterprise_class: EnterpriseClass,
    /// What the enterprise declared on its application (the programme may require some).
    pub declarations: Declarations,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PostInvoice {
    pub center: Uscc,
    pub voucher: VoucherId,
    pub invoice_number: InvoiceNumber,
    /// The gross invoiced amount, before the voucher: the enterprise pays the center
    /// this minus the subsidy, and the bureau pays the center the subsidy (in a
    /// reimbursement year the enterprise pays all of it and the bureau pays it the subsidy).
    pub amount: Money,
    pub issue_date: Date,
    pub delivery_proof: DeliveryProof,
    /// The enterprise's proof that it paid the invoice in full: required when the year's
    /// payee is the enterprise (reimbursement), recorded on the redemption when given.
    pub payment_proof: Option<PaymentProof>,
}

/// A command with the time it was accepted for processing and who sent it. Time comes
/// in here, from outside the state machine, so replaying the same envelopes gives the
/// same events.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    pub at: Timestamp,
    pub origin: Origin,
    pub command: Command,
}

impl Envelope {
    /// A command from an operator's tool (demo, tests, benchmarks), stamped with `at`.
    pub fn new(at: Timestamp, command: Command) -> Envelope {
        Envelope {
            at,
            origin: Origin::system("operator tool"),
            command,
        }
    }

    /// A command from `origin`, stamped with `at`.
    pub fn from_origin(at: Timestamp, origin: Origin, command: Command) -> Envelope {
        Envelope {
            at,
            origin,
            command,
        }
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
            Command::ExpireVouchers => "ExpireVouchers",
            Command::PostInvoice(_) => "PostInvoice",
            Command::ReverseInvoice { .. } => "ReverseInvoice",
            Command::CreateSettlementRun { .. } => "CreateSettlementRun",
            Command::ConfirmPayment { .. } => "ConfirmPayment",
            Command::RecordPaymentReturned { .. } => "RecordPaymentReturned",
            Command::RecordRepayment { .. } => "RecordRepayment",
            Command::RecordSecondSourceRepayment { .. } => "RecordSecondSourceRepayment",
            Command::CloseProgrammeYear { .. } => "CloseProgrammeYear",
            Command::AdjustPool { .. } => "AdjustPool",
            Command::ConfirmClock { .. } => "ConfirmClock",
            Command::RecordReconciliation(_) => "RecordReconciliation",
        }
    }
}
