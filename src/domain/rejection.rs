//! Business rejections: one enum, stable numeric codes, stable names.
//!
//! A rejection means the command was well formed but the rules refuse it; nothing is
//! appended to the log. Codes and names are part of the public contract (they travel in
//! gRPC `ErrorInfo.reason` and in the demo's summary): never renumber, only append.

use std::fmt;

macro_rules! rejections {
    ($($(#[$meta:meta])* $variant:ident = $code:literal, $name:literal;)+) => {
        /// Why the state machine refused a command.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(u16)]
        pub enum RejectionCode {
            $($(#[$meta])* $variant = $code,)+
        }

        impl RejectionCode {
            pub const ALL: &'static [RejectionCode] = &[$(RejectionCode::$variant,)+];

            /// Codes no command can produce any more (their command was replaced); kept
            /// so the numbers are never reused.
            pub const RETIRED: &'static [RejectionCode] = &[
                RejectionCode::SettlementAlreadyRecorded,
                RejectionCode::ProgrammeRuleNotExecutable,
            ];

            /// The stable name, e.g. `ENTERPRISE_CAP_EXCEEDED`.
            pub fn name(self) -> &'static str {
                match self {
                    $(RejectionCode::$variant => $name,)+
                }
            }

            pub fn code(self) -> u16 {
                self as u16
            }

            pub fn from_code(code: u16) -> Option<RejectionCode> {
                match code {
                    $($code => Some(RejectionCode::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

rejections! {
    /// No policy has been published for the programme year named.
    PolicyNotPublished = 1, "POLICY_NOT_PUBLISHED";
    /// A policy for that year exists already; published policies are immutable.
    PolicyAlreadyPublished = 2, "POLICY_ALREADY_PUBLISHED";
    CenterAlreadyRegistered = 3, "CENTER_ALREADY_REGISTERED";
    CenterNotFound = 4, "CENTER_NOT_FOUND";
    /// The center is suspended or delisted.
    CenterNotActive = 5, "CENTER_NOT_ACTIVE";
    /// Delisting is final; a delisted center cannot change status.
    CenterDelisted = 6, "CENTER_DELISTED";
    CenterStatusUnchanged = 7, "CENTER_STATUS_UNCHANGED";
    EnterpriseAlreadyRegistered = 8, "ENTERPRISE_ALREADY_REGISTERED";
    EnterpriseNotFound = 9, "ENTERPRISE_NOT_FOUND";
    /// The enterprise and the center are declared related parties.
    RelatedParty = 10, "RELATED_PARTY";
    RelatedPartyAlreadyDeclared = 11, "RELATED_PARTY_ALREADY_DECLARED";
    /// A cap override below what the enterprise already holds and redeemed that year.
    CapOverrideBelowUsage = 12, "CAP_OVERRIDE_BELOW_USAGE";
    /// The contract already has a voucher.
    ContractAlreadyHasVoucher = 13, "CONTRACT_ALREADY_HAS_VOUCHER";
    VoucherAlreadyExists = 14, "VOUCHER_ALREADY_EXISTS";
    /// The term ends before it starts or lasts more than one year.
    ContractTermInvalid = 15, "CONTRACT_TERM_INVALID";
    /// The face value would be zero (zero requested, or rate × fee below one fen).
    FaceValueZero = 16, "FACE_VALUE_ZERO";
    /// Approval would take the enterprise over its cap for the year.
    EnterpriseCapExceeded = 17, "ENTERPRISE_CAP_EXCEEDED";
    /// Approval would take the year's pool over its total.
    PoolExhausted = 18, "POOL_EXHAUSTED";
    VoucherNotFound = 19, "VOUCHER_NOT_FOUND";
    /// The voucher was cancelled or has expired.
    VoucherNotActive = 20, "VOUCHER_NOT_ACTIVE";
    /// The invoice names a voucher of another center.
    VoucherCenterMismatch = 21, "VOUCHER_CENTER_MISMATCH";
    /// Nothing is left of the voucher's face value.
    VoucherExhausted = 22, "VOUCHER_EXHAUSTED";
    /// The same invoice number was posted before with different content.
    InvoiceConflict = 23, "INVOICE_CONFLICT";
    InvoiceNotFound = 24, "INVOICE_NOT_FOUND";
    InvoiceAlreadyReversed = 25, "INVOICE_ALREADY_REVERSED";
    /// The invoice's issue date is outside the contract term.
    InvoiceDateOutsideTerm = 26, "INVOICE_DATE_OUTSIDE_TERM";
    /// Cumulative invoiced amount would exceed the contract fee.
    ContractFeeExceeded = 27, "CONTRACT_FEE_EXCEEDED";
    /// Cumulative subsidy would exceed ceiling × contract fee.
    ContractCeilingExceeded = 28, "CONTRACT_CEILING_EXCEEDED";
    /// Retired with format v1's `SettleCenter`: settlement runs are idempotent by run id.
    SettlementAlreadyRecorded = 29, "SETTLEMENT_ALREADY_RECORDED";
    /// No center has a redemption of the year that is not yet in a statement.
    NothingToSettle = 30, "NOTHING_TO_SETTLE";
    /// The command's time lies before the last accepted command's time.
    TimeWentBackwards = 31, "TIME_WENT_BACKWARDS";
    /// A voucher belongs to the year its contract term starts in.
    VoucherYearMismatch = 32, "VOUCHER_YEAR_MISMATCH";
    /// The programme year is closed: no approval, invoice or reversal any more.
    YearClosed = 33, "YEAR_CLOSED";
    /// The invoice comes after the voucher's redemption window (term end + grace), or a
    /// voucher is approved whose window is already over.
    RedemptionWindowClosed = 34, "REDEMPTION_WINDOW_CLOSED";
    /// A settled invoice may be reversed only by the bureau.
    ReversalNeedsBureau = 35, "REVERSAL_NEEDS_BUREAU";
    /// The settlement run id was used for another year.
    SettlementRunConflict = 36, "SETTLEMENT_RUN_CONFLICT";
    StatementNotFound = 37, "STATEMENT_NOT_FOUND";
    /// The statement is paid; it can be paid again only after a returned payment.
    StatementAlreadyPaid = 38, "STATEMENT_ALREADY_PAID";
    /// A payment must be exactly the statement's net amount.
    PaymentAmountMismatch = 39, "PAYMENT_AMOUNT_MISMATCH";
    /// The bank reference was recorded for another payment or repayment.
    BankReferenceReused = 40, "BANK_REFERENCE_REUSED";
    /// No confirmed, unreturned payment of the statement has that bank reference.
    PaymentNotFound = 41, "PAYMENT_NOT_FOUND";
    /// A repayment larger than what the center owes for the year.
    RepaymentExceedsReceivable = 42, "REPAYMENT_EXCEEDS_RECEIVABLE";
    /// A voucher of the year is still inside its redemption window.
    YearNotOver = 43, "YEAR_NOT_OVER";
    /// A pool below what is already held, redeemed and owed.
    PoolBelowUsage = 44, "POOL_BELOW_USAGE";
    /// More active vouchers than one command may release; run the expiry sweep first.
    TooManyActiveVouchers = 45, "TOO_MANY_ACTIVE_VOUCHERS";
    /// A value date before the statement was issued.
    ValueDateInvalid = 46, "VALUE_DATE_INVALID";
    /// A limit of the registry (centers, active vouchers per center) is reached.
    RegistryLimitReached = 47, "REGISTRY_LIMIT_REACHED";
    /// The center's registered capacity is below the programme's thresholds.
    CenterNotEligible = 48, "CENTER_NOT_ELIGIBLE";
    /// The approval lacks a declaration the programme requires.
    DeclarationMissing = 49, "DECLARATION_MISSING";
    /// Retired: a policy used a rule the build recorded but could not yet settle (an
    /// enterprise payee, then a second funding source, until issue 13 ran both). Every
    /// rule a programme file can state is executed now.
    ProgrammeRuleNotExecutable = 50, "PROGRAMME_RULE_NOT_EXECUTABLE";
    /// An invoice of a reimbursement year (the enterprise is the payee) without the
    /// enterprise's proof of payment.
    PaymentProofMissing = 51, "PAYMENT_PROOF_MISSING";
}

/// A refused command: the stable code plus a sentence naming the values involved.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejection {
    pub code: RejectionCode,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, detail: impl Into<String>) -> Rejection {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code.name(), self.detail)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        let mut names: Vec<&str> = RejectionCode::ALL.iter().map(|code| code.name()).collect();
        for code in RejectionCode::ALL {
            assert_eq!(RejectionCode::from_code(code.code()), Some(*code));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectionCode::ALL.len());
        // Stable numbering: spot-check codes that clients rely on.
        assert_eq!(RejectionCode::EnterpriseCapExceeded.code(), 17);
        assert_eq!(RejectionCode::PoolExhausted.code(), 18);
        assert_eq!(RejectionCode::ContractCeilingExceeded.code(), 28);
    }
}
