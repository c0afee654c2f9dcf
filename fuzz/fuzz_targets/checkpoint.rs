//! Signed checkpoint values and the export file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voucher_ledger::storage::checkpoint::{parse_export, Checkpoint};

fuzz_target!(|input: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::decode(input) {
        assert_eq!(checkpoint.encode(), input);
    }
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = parse_export(text);
    }
});
