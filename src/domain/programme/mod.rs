//! Programmes as data: the rules a city's voucher programme may add to Hangzhou 2024's,
//! the file the bureau writes them in, and what they mean in words.
//!
//! - [`rules`]: the rule types and what an approval records ([`ApprovalTerms`]);
//! - [`file`]: the TOML file, with line, column and field in its errors;
//! - [`explain`]: the sentences `voucher-ledger policy check` prints.
//!
//! The state machine applies the rules in `state_machine/programme.rs`.

pub mod explain;
pub mod file;
pub mod rules;

pub use explain::explain;
pub use file::{read_programme_file, PolicyFileError, ProgrammeFile};
pub use rules::{
    ApprovalTerms, CapacityEligibility, CapacityRequirement, CenterCapacity, Declaration,
    Declarations, EnterpriseClass, FundingSource, Payee, ProgrammeRules, RateBasis, SecondSource,
    SmallEnterpriseRate,
};
