//! What a person reads: the programme-year summary printed by `voucher-ledger summary`
//! and at the end of `demo`.

pub mod summary;
