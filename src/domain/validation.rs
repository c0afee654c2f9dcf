//! Input validation errors: what was wrong, in which field, with which value.
//!
//! These are raised by constructors before a command exists, so a malformed request never
//! reaches the state machine. Business rejections are a different type
//! ([`crate::domain::Rejection`]) with stable codes.

use std::fmt;

/// A value that failed a constructor's precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field that was wrong, as the client names it (`contract_fee`, `center`, ...).
    pub field: &'static str,
    /// The offending value, shortened if very long.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut value = value.into();
        if value.len() > 80 {
            let mut cut = 77;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push_str("...");
        }
        ValidationError {
            field,
            value,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "invalid {}: {:?} {}",
            self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for ValidationError {}
