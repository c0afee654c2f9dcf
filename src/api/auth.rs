//! Who may do what. Bearer tokens come from the server config, stored only as SM3
//! hashes, each bound to a principal and a role:
//!
//! | role         | may                                                              |
//! |--------------|------------------------------------------------------------------|
//! | `bureau`     | everything                                                       |
//! | `center`     | post and reverse invoices of its own center; read its own data   |
//! | `enterprise` | read its own usage, vouchers and record                          |
//! | `auditor`    | read everything, read and subscribe to the log; no writes        |
//!
//! No or unknown token: UNAUTHENTICATED. Known token, not allowed: PERMISSION_DENIED.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use tonic::{Request, Status};

use crate::domain::Uscc;
use crate::storage::record::sm3_digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Bureau,
    Center,
    Enterprise,
    Auditor,
}

/// The authenticated caller, put in the request's extensions by [`Authenticator`].
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The center's or enterprise's USCC for those roles.
    pub subject: Option<Uscc>,
}

impl Principal {
    fn denied(&self, what: &str) -> Status {
        Status::permission_denied(format!("{} ({:?}) may not {what}", self.name, self.role))
    }

    pub fn require_bureau(&self, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau => Ok(()),
            _ => Err(self.denied(what)),
        }
    }

    /// Bureau and auditor: everything readable.
    pub fn require_reader_of_everything(&self, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau | Role::Auditor => Ok(()),
            _ => Err(self.denied(what)),
        }
    }

    pub fn require_center_writer(&self, center: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau => Ok(()),
            Role::Center if self.subject.as_ref() == Some(center) => Ok(()),
            _ => Err(self.denied(&format!("{what} for center {center}"))),
        }
    }

    pub fn require_center_reader(&self, center: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau | Role::Auditor => Ok(()),
            Role::Center if self.subject.as_ref() == Some(center) => Ok(()),
            _ => Err(self.denied(&format!("{what} of center {center}"))),
        }
    }

    pub fn require_enterprise_reader(&self, enterprise: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau | Role::Auditor => Ok(()),
            Role::Enterprise if self.subject.as_ref() == Some(enterprise) => Ok(()),
            _ => Err(self.denied(&format!("{what} of enterprise {enterprise}"))),
        }
    }

    /// A voucher is visible to the bureau, auditors, its center and its enterprise.
    pub fn may_read_voucher(&self, center: &Uscc, enterprise: &Uscc) -> bool {
        match self.role {
            Role::Bureau | Role::Auditor => true,
            Role::Center => self.subject.as_ref() == Some(center),
            Role::Enterprise => self.subject.as_ref() == Some(enterprise),
        }
    }
}

pub fn principal<T>(request: &Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))
}

/// One `[[tokens]]` entry of the server config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who this is: a name for the bureau or an auditor, the USCC for a center or enterprise.
    pub principal: String,
    pub role: Role,
    /// Lower-case hex SM3 of the token; the token itself is never stored.
    pub token_sm3: String,
}

/// Hashes a token the way the config stores it.
pub fn token_hash(token: &str) -> String {
    hex::encode(sm3_digest(token.as_bytes()))
}

/// The interceptor that turns `authorization: Bearer <token>` into a [`Principal`].
#[derive(Clone)]
pub struct Authenticator {
    by_hash: Arc<HashMap<String, Principal>>,
}

impl Authenticator {
    pub fn new(entries: &[TokenEntry]) -> Result<Authenticator, String> {
        let mut by_hash = HashMap::new();
        for entry in entries {
            let subject = match entry.role {
                Role::Center | Role::Enterprise => {
                    Some(Uscc::parse("principal", &entry.principal).map_err(|error| {
                        format!(
                            "token for {}: a {:?} principal must be a USCC: {error}",
                            entry.principal, entry.role
                        )
                    })?)
                }
                Role::Bureau | Role::Auditor => None,
            };
            let hash = entry.token_sm3.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(format!(
                    "token for {}: token_sm3 must be 64 hex digits",
                    entry.principal
                ));
            }
            let principal = Principal {
                name: entry.principal.clone(),
                role: entry.role,
                subject,
            };
            if by_hash.insert(hash, principal).is_some() {
                return Err(format!("token for {} is listed twice", entry.principal));
            }
        }
        Ok(Authenticator {
            by_hash: Arc::new(by_hash),
        })
    }

    pub fn authenticate(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let text = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        let principal = self
            .by_hash
            .get(&token_hash(token.trim()))
            .ok_or_else(|| Status::unauthenticated("unknown token"))?
            .clone();
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.authenticate(request)
    }
}
