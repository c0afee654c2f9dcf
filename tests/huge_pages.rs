//! `serve` turns transparent huge pages off for its process unless its config leaves
//! them to the system (`transparent_huge_pages = true`; issue 12, twenty-third round: a
//! fresh 2 MiB page zeroed for each region an allocator first writes made the first
//! batches after a start 3-5x slower on the machines measured). Read from the child's
//! `/proc/PID/status` (`THP_enabled`), which reports the process's flag.

#![cfg(target_os = "linux")]

mod support;

use support::{transparent_huge_pages_flag_in, ServerProcess};

#[test]
fn a_server_turns_transparent_huge_pages_off_by_default_and_leaves_them_when_told() {
    // The flag is inherited: a child left alone has this test process's.
    let own = transparent_huge_pages_flag_in(
        &std::fs::read_to_string("/proc/self/status").expect("own status"),
    );
    assert_eq!(
        ServerProcess::start("").transparent_huge_pages_flag(),
        0,
        "a server with the default setting turned transparent huge pages off"
    );
    assert_eq!(
        ServerProcess::start("transparent_huge_pages = true").transparent_huge_pages_flag(),
        own,
        "a server told to leave them kept the flag it was started with"
    );
}
