//! What the C allocator keeps after a store opens, handed back to the operating system.
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
