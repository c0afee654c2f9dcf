//! Who asked: every command comes in with its [`Origin`] (the principal from the bearer
//! token, and the client's request id if it sent one), and every event it causes records
//! that origin, so an auditor can tell who approved a voucher, raised a cap or reversed
//! an invoice.

use std::fmt;
use std::sync::Arc;

use super::text::check_text;
use super::validation::ValidationError;

/// The role a principal acts in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PrincipalRole {
    /// The finance bureau / programme office: everything.
    Bureau,
    /// A computing center: its own invoices.
    Center,
    /// An enterprise: reads its own usage.
    Enterprise,
    /// An auditor: reads everything.
    Auditor,
    /// The server itself (the expiry sweep) or an operator's tool (demo, benchmarks).
    System,
}

impl PrincipalRole {
    pub const ALL: [PrincipalRole; 5] = [
        PrincipalRole::Bureau,
        PrincipalRole::Center,
        PrincipalRole::Enterprise,
        PrincipalRole::Auditor,
        PrincipalRole::System,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PrincipalRole::Bureau => "bureau",
            PrincipalRole::Center => "center",
            PrincipalRole::Enterprise => "enterprise",
            PrincipalRole::Auditor => "auditor",
            PrincipalRole::System => "system",
        }
    }
}

/// Longest principal name, in bytes.
pub const PRINCIPAL_NAME_MAX_BYTES: usize = 128;
/// Longest request id, in bytes.
pub const REQUEST_ID_MAX_BYTES: usize = 128;

/// A principal: a role and the name its token was issued to.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Principal {
    pub role: PrincipalRole,
    name: Arc<str>,
}

impl Principal {
    pub fn new(role: PrincipalRole, name: &str) -> Result<Principal, ValidationError> {
        if name.is_empty() || name.len() > PRINCIPAL_NAME_MAX_BYTES {
            return Err(ValidationError::new(
                "principal",
                name,
                format!("must be 1..={PRINCIPAL_NAME_MAX_BYTES} bytes"),
            ));
        }
        check_text(name).map_err(|reason| ValidationError::new("principal", name, reason))?;
        Ok(Principal {
            role,
            name: name.into(),
        })
    }

    /// Rebuilds a stored principal (only the length is checked).
    pub fn from_stored(role: PrincipalRole, name: &str) -> Result<Principal, ValidationError> {
        if name.is_empty() || name.len() > PRINCIPAL_NAME_MAX_BYTES {
            return Err(ValidationError::new(
                "principal",
                name,
                format!("stored name must be 1..={PRINCIPAL_NAME_MAX_BYTES} bytes"),
            ));
        }
        Ok(Principal {
            role,
            name: name.into(),
        })
    }

    /// A system principal with a fixed name (the sweep, the demo, tests).
    pub fn system(name: &'static str) -> Principal {
        Principal {
            role: PrincipalRole::System,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.role.name(), self.name)
    }
}

/// A client's request id (`x-request-id`): printable ASCII, at most 128 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn parse(text: &str) -> Result<RequestId, ValidationError> {
        if text.is_empty()
            || text.len() > REQUEST_ID_MAX_BYTES
            || !text.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(ValidationError::new(
                "x-request-id",
                text,
                format!("must be 1..={REQUEST_ID_MAX_BYTES} printable ASCII characters"),
            ));
        }
        Ok(RequestId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Where a command came from. Cheap to clone (reference-counted text).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Origin {
    pub principal: Principal,
    pub request_id: Option<RequestId>,
}

impl Origin {
    pub fn new(principal: Principal, request_id: Option<RequestId>) -> Origin {
        Origin {
            principal,
            request_id,
        }
    }

    /// A command of the system itself, without a request id.
    pub fn system(name: &'static str) -> Origin {
        Origin {
            principal: Principal::system(name),
            request_id: None,
        }
    }

    /// The origin of events read from a record format that did not record one.
    pub fn unrecorded() -> Origin {
        Origin::system("not recorded (log format v1)")
    }
}
