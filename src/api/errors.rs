//! How domain outcomes become gRPC statuses.
//!
//! | what                                   | status                 |
//! |----------------------------------------|------------------------|
//! | malformed field                        | INVALID_ARGUMENT       |
//! | unknown id (`*_NOT_FOUND`)             | NOT_FOUND              |
//! | conflicting duplicate (`*_ALREADY_*`, `INVOICE_CONFLICT`, `CONTRACT_ALREADY_HAS_VOUCHER`) | ALREADY_EXISTS |
//! | any other business rejection           | FAILED_PRECONDITION    |
//! | queue full                             | RESOURCE_EXHAUSTED     |
//! | shutting down                          | UNAVAILABLE            |
//!
//! Every rejection carries `google.rpc.ErrorInfo` with the stable name as `reason`,
//! domain `voucher-ledger`, and the numeric code in metadata `code`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Rejection, RejectionCode, ValidationError};
use crate::ledger::engine::EngineError;

pub const ERROR_DOMAIN: &str = "voucher-ledger";

pub fn invalid(error: ValidationError) -> Status {
    let details = ErrorDetails::with_bad_request_violation(error.field, error.to_string());
    Status::with_error_details(Code::InvalidArgument, error.to_string(), details)
}

pub fn invalid_field(field: &'static str, reason: impl Into<String>) -> Status {
    invalid(ValidationError::new(field, "", reason.into()))
}

pub fn status_code_for(code: RejectionCode) -> Code {
    use RejectionCode::*;
    match code {
        CenterNotFound | EnterpriseNotFound | VoucherNotFound | InvoiceNotFound => Code::NotFound,
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
    let mut metadata = HashMap::new();
    metadata.insert("code".to_string(), rejection.code.code().to_string());
    let details = ErrorDetails::with_error_info(rejection.code.name(), ERROR_DOMAIN, metadata);
    Status::with_error_details(
        status_code_for(rejection.code),
        rejection.to_string(),
        details,
    )
}

pub fn engine(error: EngineError) -> Status {
    match error {
        EngineError::Overloaded { .. } => Status::resource_exhausted(error.to_string()),
        EngineError::ShuttingDown => Status::unavailable(error.to_string()),
        EngineError::BatchTooLarge { .. } => Status::invalid_argument(error.to_string()),
        EngineError::ReadTimeout(_) => Status::unavailable(error.to_string()),
        EngineError::Storage(_) => Status::internal(error.to_string()),
    }
}
