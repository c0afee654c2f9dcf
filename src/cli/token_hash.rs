//! `voucher-ledger token-hash TOKEN`: prints the SM3 hash of a bearer token, the value
//! an operator puts in a `token_sm3` field of the server's config (the config never holds
//! a token itself).

use std::process::ExitCode;

pub fn run(token: &str) -> ExitCode {
    println!("{}", crate::api::auth::token_hash(token));
    ExitCode::SUCCESS
}
