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
//! No or unknown token: UNAUTHENTICATED. Known token, not allowed: PERMISSION_DENIED,
//! except for a voucher the caller may not see, which is NOT_FOUND exactly as a voucher
//! that does not exist. Tokens are checked, and the role for `PostInvoices` and
//! `PostInvoicesBrief`, by the server's gate on the request headers, before any request
//! body is read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use tonic::{Request, Status};

use crate::domain::{Uscc, VoucherId};
use crate::storage::record::sm3_digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Bureau,
    Center,
    Enterprise,
    Auditor,
}

impl Role {
    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Bureau => "bureau",
            Role::Center => "center",
            Role::Enterprise => "enterprise",
            Role::Auditor => "auditor",
        }
    }
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
    /// PERMISSION_DENIED: "<name> (<role>) may not <what>", and who may, if anyone but
    /// the bureau.
    fn denied(&self, what: &str, who_may: Option<String>) -> Status {
        let who_may = who_may.map_or(String::new(), |who| format!(": only {who} may"));
        Status::permission_denied(format!(
            "{} ({}) may not {what}{who_may}",
            self.name,
            self.role.name()
        ))
    }

    pub fn require_bureau(&self, what: &str) -> Result<(), Status> {
        self.require_role(&[Role::Bureau], what)
    }

    /// One of `roles`, whatever the subject; checked before a request body is read.
    pub fn require_role(&self, roles: &[Role], what: &str) -> Result<(), Status> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(self.denied(what, None))
        }
    }

    /// Bureau and auditor: everything readable.
    pub fn require_reader_of_everything(&self, what: &str) -> Result<(), Status> {
        self.require_role(&[Role::Bureau, Role::Auditor], what)
    }

    pub fn require_center_writer(&self, center: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau => Ok(()),
            Role::Center if self.subject.as_ref() == Some(center) => Ok(()),
            _ => Err(self.denied(what, Some(format!("center {center} and the bureau")))),
        }
    }

    pub fn require_center_reader(&self, center: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau | Role::Auditor => Ok(()),
            Role::Center if self.subject.as_ref() == Some(center) => Ok(()),
            _ => Err(self.denied(
                what,
                Some(format!("center {center}, the bureau and auditors")),
            )),
        }
    }

    pub fn require_enterprise_reader(&self, enterprise: &Uscc, what: &str) -> Result<(), Status> {
        match self.role {
            Role::Bureau | Role::Auditor => Ok(()),
            Role::Enterprise if self.subject.as_ref() == Some(enterprise) => Ok(()),
            _ => Err(self.denied(
                what,
                Some(format!("enterprise {enterprise}, the bureau and auditors")),
            )),
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

    /// A voucher the caller may not see is answered exactly as one that does not exist
    /// (NOT_FOUND), so that its existence, center and enterprise stay hidden.
    pub fn require_voucher_reader(
        &self,
        voucher: &VoucherId,
        center: &Uscc,
        enterprise: &Uscc,
    ) -> Result<(), Status> {
        if self.may_read_voucher(center, enterprise) {
            Ok(())
        } else {
            Err(crate::api::errors::voucher_not_found(voucher))
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

/// Turns `authorization: Bearer <token>` into a [`Principal`]: in the server's gate
/// (before a request body is read), or as a tonic interceptor. Its clones share one token
/// table, which [`Authenticator::replace`] swaps (SIGHUP reloads the config's tokens
/// without dropping a connection; a removed token is refused from the next call on).
#[derive(Clone)]
pub struct Authenticator {
    by_hash: Arc<parking_lot::RwLock<Arc<HashMap<String, Principal>>>>,
}

impl Authenticator {
    pub fn new(entries: &[TokenEntry]) -> Result<Authenticator, String> {
        Ok(Authenticator {
            by_hash: Arc::new(parking_lot::RwLock::new(Arc::new(Self::table(entries)?))),
        })
    }

    /// Switches every clone to the tokens of `entries`, or, if one is invalid, keeps
    /// the current ones and says why. Returns how many tokens are in force.
    pub fn replace(&self, entries: &[TokenEntry]) -> Result<usize, String> {
        let table = Self::table(entries)?;
        let count = table.len();
        *self.by_hash.write() = Arc::new(table);
        Ok(count)
    }

    fn table(entries: &[TokenEntry]) -> Result<HashMap<String, Principal>, String> {
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
        Ok(by_hash)
    }

    pub fn authenticate(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.authenticate_headers(request.metadata().as_ref())?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }

    /// The caller named by `authorization: Bearer <token>` in `headers`.
    pub fn authenticate_headers(&self, headers: &http::HeaderMap) -> Result<Principal, Status> {
        let header = headers
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let text = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        self.principal_for_token(token)
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }

    /// The caller a bearer token names, if it is known (also the report page's sign-in).
    pub fn principal_for_token(&self, token: &str) -> Option<Principal> {
        let table = Arc::clone(&self.by_hash.read());
        table.get(&token_hash(token.trim())).cloned()
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.authenticate(request)
    }
}
