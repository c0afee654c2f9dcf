//! Record frames and payloads (v1 and v2): input = sequence (8 bytes LE) + record bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voucher_ledger::storage::record::{check_record, genesis_chain_hash, parse_frame};

fuzz_target!(|input: &[u8]| {
    if input.len() < 8 {
        return;
    }
    let (sequence, bytes) = input.split_at(8);
    let sequence = u64::from_le_bytes(sequence.try_into().unwrap_or([0; 8]));
    if let Ok(frame) = parse_frame(sequence, bytes) {
        let _ = frame.decode_with_origin();
    }
    let _ = check_record(sequence, bytes, &genesis_chain_hash());
});
