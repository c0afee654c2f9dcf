//! The domain: money, identifiers, policy, commands, events, rejections, projections and
//! the state machine. Free of tokio, RocksDB, prost and bincode by design: it can be
//! tested, replayed and (later) replicated without any I/O.

pub mod command;
pub mod event;
pub mod ids;
pub mod money;
pub mod policy;
pub mod rejection;
pub mod state;
pub mod state_machine;
pub mod validation;

pub use command::{ApproveVoucher, CenterStatus, Command, Envelope, ListingBasis, PostInvoice};
pub use event::{Event, InvoiceRedeemed, InvoiceReversed, ReleaseCause, VoucherApproved};
pub use ids::{
    ContractNumber, Date, DeliveryProof, InvoiceNumber, LegalName, ProgrammeYear, Reason,
    SettlementId, Timestamp, Uscc, VoucherId,
};
pub use money::{Money, Rate};
pub use policy::{FacilityTier, ProgrammePolicy};
pub use rejection::{Rejection, RejectionCode};
pub use state::{
    CenterAccount, EnterpriseAccount, InvoiceCache, InvoiceEntry, InvoiceLookup, LedgerState,
    StateImage, Usage, Voucher, VoucherStatus,
};
pub use state_machine::{
    InvoiceOutcome, Reply, ReversalOutcome, SequencedEvent, SettlementOutcome,
};
pub use validation::ValidationError;
