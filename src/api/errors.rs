//! How domain outcomes become gRPC statuses.
//!
//! | what                                   | status                 |
//! |----------------------------------------|------------------------|
//! | malformed field                        | INVALID_ARGUMENT       |
//! | unknown id (`*_NOT_FOUND`)             | NOT_FOUND              |
//! | conflicting duplicate (`*_ALREADY_*`, `INVOICE_CONFLICT`, `CONTRACT_ALREADY_HAS_VOUCHER`) | ALREADY_EXISTS |
//! | any other business rejection           | FAILED_PRECONDITION    |
//! | queue full                             | RESOURCE_EXHAUSTED     |
//! | request message over its method's size limit, or over the request memory (server gate) | RESOURCE_EXHAUSTED |
//! | request bytes that are no protobuf message (server gate) | INVALID_ARGUMENT |
//! | shutting down                          | UNAVAILABLE            |
//!
//! Every rejection carries `google.rpc.ErrorInfo` with the stable name as `reason`,
//! domain `voucher-ledger`, and the numeric code in metadata `code`. No status message is
//! longer than [`STATUS_MESSAGE_MAX_BYTES`]; an invoice against another center's voucher
//! is answered as one against a voucher that does not exist.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Rejection, RejectionCode, ValidationError, VoucherId};
use crate::ledger::engine::EngineError;
use crate::limits::STATUS_MESSAGE_MAX_BYTES;

pub const ERROR_DOMAIN: &str = "voucher-ledger";

pub fn invalid(error: ValidationError) -> Status {
    bad_request(error.field, error.to_string())
}

/// INVALID_ARGUMENT "invalid <field>: <reason>", for a field with no value to show.
pub fn invalid_field(field: &'static str, reason: impl Into<String>) -> Status {
    bad_request(field, format!("invalid {field}: {}", reason.into()))
}

fn bad_request(field: &'static str, message: String) -> Status {
    let message = capped(message);
    let details = ErrorDetails::with_bad_request_violation(field, message.clone());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// `text` cut to [`STATUS_MESSAGE_MAX_BYTES`] (at a character boundary, ending "..."),
/// so that no status echoes a long input back (a policy TOML error quotes its line).
pub fn capped(mut text: String) -> String {
    if text.len() > STATUS_MESSAGE_MAX_BYTES {
        let mut cut = STATUS_MESSAGE_MAX_BYTES - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// What a caller who may not see a voucher is told: exactly what it is told of a voucher
/// that does not exist.
pub fn voucher_not_found(voucher: &VoucherId) -> Status {
    Status::not_found(format!("voucher {voucher} does not exist"))
}

/// A rejection as the caller may see it: an invoice against another center's voucher is
/// refused exactly as one against a voucher that does not exist (VOUCHER_NOT_FOUND), so a
/// center learns nothing of other centers' vouchers, not even that they exist.
pub fn public_rejection(rejection: Rejection) -> Rejection {
    if rejection.code != RejectionCode::VoucherCenterMismatch {
        return rejection;
    }
    // The detail names the voucher first: "voucher <id> belongs to ...".
    let voucher = rejection
        .detail
        .split_whitespace()
        .nth(1)
        .and_then(|word| VoucherId::parse(word.trim_end_matches(',')).ok());
    let detail = match voucher {
        Some(voucher) => format!("voucher {voucher} does not exist"),
        None => "the voucher does not exist".to_string(),
    };
    Rejection::new(RejectionCode::VoucherNotFound, detail)
}

pub fn status_code_for(code: RejectionCode) -> Code {
    use RejectionCode::*;
    match code {
        CenterNotFound | EnterpriseNotFound | VoucherNotFound | InvoiceNotFound
        | StatementNotFound | PaymentNotFound => Code::NotFound,
        // The caller's role may not do this to a settled invoice.
        ReversalNeedsBureau => Code::PermissionDenied,
        PolicyAlreadyPublished
        | CenterAlreadyRegistered
        | EnterpriseAlreadyRegistered
        | RelatedPartyAlreadyDeclared
        | ContractAlreadyHasVoucher
        | VoucherAlreadyExists
        | InvoiceConflict
        | SettlementAlreadyRecorded => Code::AlreadyExists,
        _ => Code::FailedPrecondition,
    }
}

pub fn rejected(rejection: Rejection) -> Status {
    let rejection = public_rejection(rejection);
    let mut metadata = HashMap::new();
    metadata.insert("code".to_string(), rejection.code.code().to_string());
    let details = ErrorDetails::with_error_info(rejection.code.name(), ERROR_DOMAIN, metadata);
    Status::with_error_details(
        status_code_for(rejection.code),
        capped(rejection.to_string()),
        details,
    )
}

pub fn engine(error: EngineError) -> Status {
    match error {
        EngineError::Overloaded { .. } => Status::resource_exhausted(error.to_string()),
        EngineError::ShuttingDown => Status::unavailable(error.to_string()),
        EngineError::BatchTooLarge { .. } => Status::invalid_argument(error.to_string()),
        EngineError::ReadTimeout(_) => Status::unavailable(error.to_string()),
        // The ledger stopped after a failed write (a full disk, a failing device): the
        // call may be retried once an operator has fixed it and restarted the server.
        EngineError::Storage(_) => Status::unavailable(error.to_string()),
    }
}
