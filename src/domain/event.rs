//! Events: facts the ledger has accepted, in the past tense. The log is a sequence of
//! these; every projection is a fold of `LedgerState::apply` over them.
//!
//! Event type numbers are written into each log record's frame. Never renumber a type or
//! change a payload's shape without bumping the record format version.

use super::command::{CenterStatus, ListingBasis};
use super::ids::{
    BankReference, ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, PaymentProof,
    ProgrammeYear, Reason, SettlementId, SettlementRunId, StatementId, Uscc, VoucherId,
};
use super::money::{Money, Rate};
use super::policy::{FacilityTier, ProgrammePolicy};
use super::programme::{ApprovalTerms, CenterCapacity, FundingSource};
use super::reconciliation::ReconciliationRecorded;

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
        /// Capacity figures (none in records written before programmes were data).
        capacity: CenterCapacity,
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
    /// Format v1 only (read back, never written now): a center was settled and paid in
    /// one step. Replayed as a statement of every year with anything unsettled, paid at
    /// once.
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
    /// A settlement run cut off `year`'s redemptions: every one before this event, not
    /// yet in a statement and not reversed, goes into one of the statements that follow.
    SettlementRunCreated {
        run: SettlementRunId,
        year: ProgrammeYear,
    },
    /// Boxed: rare, and larger than the events on the hot path.
    StatementIssued(Box<StatementIssued>),
    PaymentConfirmed {
        statement: StatementId,
        bank_reference: BankReference,
        amount: Money,
        value_date: Date,
    },
    /// The bank returned a payment; the statement is open for payment again.
    PaymentReturned {
        statement: StatementId,
        bank_reference: BankReference,
        amount: Money,
        reason: Reason,
    },
    /// A payee repaid receivables of a year; recovered first-in, first-out. `center` is
    /// the payee (the enterprise in a reimbursement year, as on statements).
    RepaymentRecorded {
        center: Uscc,
        year: ProgrammeYear,
        amount: Money,
        bank_reference: BankReference,
        value_date: Date,
        /// Whose receivables it repays: the programme's own (every record before stacked
        /// funding) or the second source's.
        source: FundingSource,
    },
    ProgrammeYearClosed {
        year: ProgrammeYear,
    },
    PoolAdjusted {
        year: ProgrammeYear,
        previous_pool: Money,
        new_pool: Money,
        reason: Reason,
    },
    /// An operator confirmed the clock (this event's time) after a suspected jump.
    ClockConfirmed {
        reason: Reason,
    },
    /// A file was reconciled with the ledger (who and when: this record's origin and
    /// time). Boxed: rare, and larger than the events on the hot path.
    ReconciliationRecorded(Box<ReconciliationRecorded>),
}

/// One payee's statement in a settlement run. Its id is this event's own sequence.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StatementIssued {
    pub run: SettlementRunId,
    /// The payee: the center, or in a reimbursement year (`payee = "enterprise"`) the
    /// enterprise. Which of the two follows from the year's policy; the field keeps its
    /// name and its bytes (a USCC) so older records read unchanged.
    pub center: Uscc,
    pub year: ProgrammeYear,
    /// The run's event: the statement holds the center's redemptions of `year` with a
    /// smaller sequence that no earlier statement holds and that were not reversed.
    pub cutoff: u64,
    /// How many redemptions it holds.
    pub invoices: u64,
    /// Their subsidy.
    pub gross: Money,
    /// Receivables of the center for `year` recovered by this statement, oldest first.
    pub clawback_offset: Money,
    /// `gross - clawback_offset`: what the bureau pays.
    pub net: Money,
    /// Who pays it: the programme's own pool, or (stacked funding) the second source,
    /// whose statement holds the same redemptions' second subsidy. A run issues both to
    /// a payee at the same cutoff.
    pub source: FundingSource,
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
    /// The last day an invoice issued in the term may be posted: term end + the policy's
    /// grace days. The voucher is released (expires) after it.
    pub redemption_window_end: Date,
    pub tier: FacilityTier,
    pub rate: Rate,
    pub ceiling: Rate,
    pub requested: Money,
    pub face_value: Money,
    /// Class, declarations and the rule that set the rate (the default in records written
    /// before programmes were data: the tier rate, no declarations).
    pub programme: ApprovalTerms,
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
    /// The enterprise's proof of payment (always present in a reimbursement year; `None`
    /// in records written before it existed and when none was given).
    pub payment_proof: Option<PaymentProof>,
    /// The second source's subsidy on the same invoice (stacked funding): ⌊rate₂ ×
    /// amount⌋, at most what is left of the voucher's second share. Zero without one.
    pub second_subsidy: Money,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceReversed {
    pub voucher: VoucherId,
    pub center: Uscc,
    pub invoice_number: InvoiceNumber,
    /// Sequence of the invoice's `InvoiceRedeemed` event (0 in format v1, which did not
    /// record it), so the statement that holds a settled invoice is found without it.
    pub redeemed_sequence: u64,
    pub amount: Money,
    pub subsidy: Money,
    /// True when the subsidy had been settled: the center now owes it back (a
    /// receivable), and cap and pool are freed only once it is recovered.
    pub clawback: bool,
    /// True when the subsidy was unsettled and the voucher still active: it took the
    /// subsidy back as face value. False otherwise (an unsettled subsidy then goes back
    /// to cap and pool; a clawback waits for recovery).
    pub returned_to_voucher: bool,
    pub reason: Reason,
    /// The second source's subsidy taken back with it (stacked funding), the same way:
    /// a clawback owed to the second source, or back to the voucher's second share, or
    /// to the second pool. Zero without one.
    pub second_subsidy: Money,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReleaseCause {
    /// Its redemption window ended (or its year was closed).
    Expired,
    Cancelled,
    /// Its center was delisted.
    Delisted,
}

impl ReleaseCause {
    pub fn name(self) -> &'static str {
        match self {
            ReleaseCause::Expired => "expired",
            ReleaseCause::Cancelled => "cancelled",
            ReleaseCause::Delisted => "delisted",
        }
    }
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
            Event::SettlementRunCreated { .. } => 12,
            Event::StatementIssued(_) => 13,
            Event::PaymentConfirmed { .. } => 14,
            Event::PaymentReturned { .. } => 15,
            Event::RepaymentRecorded { .. } => 16,
            Event::ProgrammeYearClosed { .. } => 17,
            Event::PoolAdjusted { .. } => 18,
            Event::ClockConfirmed { .. } => 19,
            Event::ReconciliationRecorded(_) => 20,
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
            Event::SettlementRunCreated { .. } => "SettlementRunCreated",
            Event::StatementIssued(_) => "StatementIssued",
            Event::PaymentConfirmed { .. } => "PaymentConfirmed",
            Event::PaymentReturned { .. } => "PaymentReturned",
            Event::RepaymentRecorded { .. } => "RepaymentRecorded",
            Event::ProgrammeYearClosed { .. } => "ProgrammeYearClosed",
            Event::PoolAdjusted { .. } => "PoolAdjusted",
            Event::ClockConfirmed { .. } => "ClockConfirmed",
            Event::ReconciliationRecorded(_) => "ReconciliationRecorded",
        }
    }
}
