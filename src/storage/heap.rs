//! The process's memory and the operating system: what the C allocator keeps after a
//! store opens, handed back; and transparent huge pages, which `serve` turns off.
//!
//! RocksDB's C++ allocates through glibc's `malloc` (the Rust side uses mimalloc, see
//! `src/main.rs`). Opening a store after a crash replays up to `WAL_RETAINED_BYTES_MAX` of
//! write-ahead log into memtables and flushes them; glibc keeps what those memtables freed
//! in its heaps (its mmap threshold grows with the first large block freed, so later blocks
//! come from the heap and stay resident when freed). Serving 10 M events after a crash,
//! that was ~60 MiB of the server's resident memory: 219–233 MiB before, 165–170 MiB
//! after (issue 12). Lowering the threshold for the whole run returns it too, but costs
//! ~14% of the server's CPU on the redemption path (every batch's write buffer is then
//! mapped and unmapped), so the ledger hands the memory back twice: at the end of its
//! open, before the server answers, and after the invoice filter's scan of the index.

/// Hands the heap memory glibc holds free back to the operating system. A no-op where the
/// C library is not glibc.
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only walks glibc's own heaps, under their
    // locks; it may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`), for
/// every page it faults from now on; pages already huge stay so. Returns whether the
/// kernel accepted it (Linux 3.15 and later).
///
/// Why `serve` does this by default (issue 12, twenty-third round): with the system's
/// policy `always`, a first write into an allocator's fresh region faults and zeroes a
/// whole 2 MiB page, however little of it the thread then uses. The first batches after a
/// start write into many fresh regions on several threads; on the machines measured
/// (virtual, where zeroing ran at ~1.3 GB/s) the first batch of 8,189 invoices took
/// 60-100 ms against ~20 afterwards, its decision alone 58-99 ms against 28-30 without
/// huge pages. Off (with the invoice cache's room written at open), `benches/ab.sh`
/// against the build before: 1 M batch p99 0.68x (one connection) and 0.61x (four) at
/// 1.011x and 0.986x the rate, 10 M 1.017x; the writer's CPU per invoice 0-4% higher in
/// most rounds (its tables miss the TLB more). The server's setting
/// `transparent_huge_pages = true` leaves the system's policy in force.
pub fn disable_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only (no pointer) and sets a
        // flag of the calling process's memory descriptor.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        result == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
