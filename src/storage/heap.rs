//! The process's memory and the operating system: what the allocators keep after a
//! store opens, handed back; transparent huge pages, which `serve` turns off; and room
//! written before it is needed (`write_spare_room`), and the count of a thread's page
//! faults that tests of that room measure with.
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

/// Grows `vector`'s room to at least `room` elements and writes every byte of the spare
/// room (zeros; the length does not change), so the pages are faulted in now and not
/// under the first batch that fills them. A page's first write costs a fault and its
/// zeroing, ~3 µs per 4 KiB page on the machines of issue 12: for the writer's per-batch
/// vectors (~5 MB for a batch of 8,189 invoices) that was ~4 ms of the first batch.
pub fn write_spare_room<T>(vector: &mut Vec<T>, room: usize) {
    vector.reserve(room.saturating_sub(vector.len()));
    for slot in vector.spare_capacity_mut() {
        *slot = std::mem::MaybeUninit::zeroed();
    }
    // Kept from the optimiser, which may drop writes that nothing reads.
    std::hint::black_box(vector.spare_capacity_mut());
}

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

/// [`release_freed_heap`], and mimalloc's free pages too: for the end of the ledger's
/// open, before the server answers.
///
/// mimalloc (the server's allocator, `src/main.rs`) hands a page back to the operating
/// system only when some thread later allocates a fresh page, a second or more after it
/// was freed; a process that has just opened and waits for its first batch allocates
/// none. Serving 10 M events after a crash, that was ~45 MiB of the server's resident
/// memory, ~58 MiB once the invoice index's catch-up ran on a thread of its own (issue
/// 12, thirtieth round). A forced collect purges the calling thread's free pages and
/// every free page of mimalloc's arenas, whoever freed them; it is kept out of
/// [`release_freed_heap`]'s other callers (the invoice filter's scans, which may run
/// beside batches), where purging pages the writer's threads are about to reuse would
/// cost them page faults. Where the process allocates with something else, mimalloc
/// holds nothing and this costs nothing.
pub fn release_freed_heap_after_open() {
    release_freed_heap();
    // SAFETY: `mi_collect` takes no argument but a flag and has no precondition: it
    // collects the calling thread's own heap and purges the arenas' free pages, which
    // mimalloc tracks in atomic bitmaps shared by all threads.
    unsafe {
        libmimalloc_sys::mi_collect(true);
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

/// Field `field` (numbered from 1, as `proc(5)` numbers them; 3 or later) of a task's
/// `/proc/.../stat` line; `None` if the line has no such field.
pub fn field_of_stat_line(stat: &str, field: usize) -> Option<&str> {
    // The name, field 2, is in parentheses and may hold spaces: count after it, from
    // field 3 (the state).
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(field.checked_sub(3)?)
}

/// Field `field` of the calling thread's `/proc/thread-self/stat`, parsed; `None` where
/// there is no such file or field.
pub fn field_of_this_threads_stat<T: std::str::FromStr>(field: usize) -> Option<T> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    field_of_stat_line(&stat, field)?.parse().ok()
}

/// The calling thread's minor page faults so far (`/proc/thread-self/stat`, field 10);
/// `None` where there is no such file. For tests that count the pages a step first
/// touches.
pub fn page_faults_of_this_thread() -> Option<u64> {
    field_of_this_threads_stat(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_the_spare_room_keeps_what_the_vector_holds_and_grows_it_once() {
        let mut vector: Vec<(u64, String)> = vec![(1, "one".into()), (2, "two".into())];
        write_spare_room(&mut vector, 1_000);
        assert_eq!(vector, vec![(1, "one".into()), (2, "two".into())]);
        assert!(vector.capacity() >= 1_000);
        let room = vector.as_ptr();
        vector.extend((3..1_000).map(|number| (number, number.to_string())));
        assert_eq!(vector.as_ptr(), room, "filling the room moved the vector");
        // A room already there is written again, not grown.
        let capacity = vector.capacity();
        vector.truncate(10);
        write_spare_room(&mut vector, 500);
        assert_eq!(vector.capacity(), capacity);
        assert_eq!(vector.len(), 10);
        assert_eq!(vector[9], (10, "10".into()));
    }
}
