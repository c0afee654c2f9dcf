//! Snapshot frames; the SM3 checksum is recomputed so the image decoder is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voucher_ledger::storage::record::sm3_digest;
use voucher_ledger::storage::snapshot::decode_snapshot;

fuzz_target!(|input: &[u8]| {
    let mut bytes = input.to_vec();
    if bytes.len() >= 56 + 32 {
        let body = bytes.len() - 32;
        let length = (body - 56) as u64;
        bytes[48..56].copy_from_slice(&length.to_le_bytes());
        let digest = sm3_digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
    }
    let sequence = bytes
        .get(8..16)
        .and_then(|slice| slice.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let _ = decode_snapshot(sequence, &bytes);
});
