//! The domain: money, identifiers, policy, commands, events, rejections, projections and
//! the state machine. Free of tokio, RocksDB, prost and bincode by design: it can be
//! tested, replayed and (later) replicated without any I/O.

pub mod command;
pub mod event;
pub mod ids;
pub mod money;
pub mod origin;
pub mod policy;
pub mod programme;
pub mod reconciliation;
pub mod rejection;
pub mod state;
pub mod state_machine;
pub mod text;
pub mod validation;

pub use command::{ApproveVoucher, CenterStatus, Command, Envelope, ListingBasis, PostInvoice};
pub use event::{
    Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, StatementIssued, VoucherApproved,
};
pub use ids::{
    BankReference, ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, PaymentProof,
    ProgrammeYear, Reason, SettlementId, SettlementRunId, StatementId, Timestamp, Uscc, VoucherId,
};
pub use money::{Money, Rate};
pub use origin::{Origin, Principal, PrincipalRole, RequestId};
pub use policy::{FacilityTier, ProgrammePolicy};
pub use programme::{
    ApprovalTerms, CenterCapacity, Declaration, Declarations, EnterpriseClass, FundingSource,
    Payee, ProgrammeRules, RateBasis,
};
pub use reconciliation::{
    DiscrepancyCounts, DiscrepancyKind, FileDigest, FileEncoding, FileFormat, FileName,
    ReconciliationRecord, ReconciliationRecorded, ReconciliationScope,
};
pub use rejection::{Rejection, RejectionCode};
pub use state::{
    BankUse, CenterAccount, CenterYear, EnterpriseAccount, InvoiceCache, InvoiceEntry,
    InvoiceLookup, LedgerState, PaymentRecord, ReceivableItem, SettlementRun, StateImage,
    Statement, StatementState, Usage, Voucher, VoucherShare, VoucherStatus, YearBook,
};
pub use state_machine::{InvoiceOutcome, Reply, ReversalOutcome, RunOutcome, SequencedEvent};
pub use validation::ValidationError;
