//! Invoice index entries (v1 to v3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voucher_ledger::storage::index::{decode_index_entry, parse_invoice_key};

fuzz_target!(|input: &[u8]| {
    let _ = decode_index_entry(input);
    let _ = parse_invoice_key(input);
});
