//! `storage::heap::release_freed_heap` (issue 12, the memory serving 10 M events after a
//! crash): memory freed in the middle of glibc's heap stays resident until it is handed
//! back, and the call hands it back. A binary of its own, with one test, so no other
//! test's allocations move the resident size it reads.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use voucher_ledger::storage::heap::release_freed_heap;

/// Chunks below glibc's mmap threshold (128 KiB), so they come from a heap, as RocksDB's
/// memtable blocks do once the threshold has grown.
const CHUNK_BYTES: usize = 32 * 1024;
const CHUNKS: usize = 2_048; // 64 MiB
const MIB: u64 = 1 << 20;

/// The process's resident bytes (`/proc/self/statm`, field 2, in pages).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm reads");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

#[test]
fn memory_freed_inside_the_heap_goes_back_to_the_system_only_when_released() {
    // Given 64 MiB of small blocks, written to, and one block after them that stays, so
    // what is freed lies inside the heap, not at its top (glibc trims its top by itself).
    let before = resident_bytes();
    let chunks: Vec<*mut u8> = (0..CHUNKS)
        .map(|_| {
            // SAFETY: malloc of a non-zero size; the result is checked before use.
            let chunk = unsafe { libc::malloc(CHUNK_BYTES) }.cast::<u8>();
            assert!(!chunk.is_null(), "malloc gave a chunk");
            // SAFETY: the chunk is CHUNK_BYTES long and ours.
            unsafe { std::ptr::write_bytes(chunk, 0x5a, CHUNK_BYTES) };
            chunk
        })
        .collect();
    // SAFETY: as above.
    let pin = unsafe { libc::malloc(64) };
    assert!(!pin.is_null(), "malloc gave the pinning block");
    let allocated = resident_bytes();
    assert!(
        allocated >= before + 60 * MIB,
        "64 MiB written should be resident: {before} -> {allocated} bytes"
    );

    // When the blocks are freed, glibc keeps them (the control: without it the check
    // below would prove nothing).
    for chunk in chunks {
        // SAFETY: each chunk came from malloc above and is freed once.
        unsafe { libc::free(chunk.cast()) };
    }
    let freed = resident_bytes();
    assert!(
        freed + 16 * MIB > allocated,
        "glibc returned the freed blocks by itself ({allocated} -> {freed} bytes): the test no longer shows the retention it is about"
    );

    // Then releasing hands nearly all of it back.
    release_freed_heap();
    let released = resident_bytes();
    assert!(
        released + 48 * MIB <= freed,
        "release_freed_heap gave back only {} of 64 MiB ({freed} -> {released} bytes)",
        freed.saturating_sub(released)
    );
    // SAFETY: the pinning block came from malloc above and is freed once.
    unsafe { libc::free(pin) };
}
