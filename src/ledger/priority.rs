//! The commit path first: the ledger's writer, its record encoder and the engine's
//! committer, the threads every batch passes through in turn, at a higher scheduling
//! priority (a lower nice value) than the rest of the process and the machine.
//!
//! Why (issue 12): a batch is decided and written by one thread, the writer, with the
//! encoder framing and chaining its records beside it; every other thread (the network
//! workers parsing the next batches, RocksDB's flush, the snapshot writer, the list and
//! read calls, and on the benchmark's machine the load generator) only feeds it or works
//! after it. On two cores, measured in the eighteenth round, the writer waited for a core
//! 27% of a 10 M run: whatever ran instead delayed every batch behind it. The kernel's fair
//! scheduler shares a contended core by weight, and a thread at nice -10 weighs ~9× one at
//! 0: the writer then gets most of a core whenever it can run, and the other threads take
//! what it leaves. It changes nothing when the machine has a core to spare.
//!
//! A nice value below 0 needs CAP_SYS_NICE, or an RLIMIT_NICE that allows it (systemd:
//! `LimitNICE=-10`). Without either the call is refused; the threads then keep the
//! process's priority and a warning says so: a priority is never a reason not to serve.
//! On Linux the nice value is a thread's own (not the process's), so this touches no
//! other thread.

use std::sync::atomic::{AtomicI32, Ordering};

use serde::Deserialize;

/// The nice value the first favoured thread had before (the process's), for the helper
/// threads the commit threads start: a thread inherits its creator's nice value, and a
/// snapshot writer or a filter's scan at the writer's would compete with the writer.
/// `UNSET` until a commit thread was favoured.
static NICENESS_BEFORE_FAVOUR: AtomicI32 = AtomicI32::new(UNSET);
const UNSET: i32 = i32::MIN;

/// A nice value, -20 (most favoured) to 19 (least), as `nice(1)` and `setpriority(2)`
/// take it. Refused outside that range when the config is read, not when it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Niceness(i8);

impl Niceness {
    /// The most favoured nice value.
    pub const HIGHEST: Niceness = Niceness(-20);
    /// The least favoured nice value.
    pub const LOWEST: Niceness = Niceness(19);
    /// What a thread starts with: the scheduler's default.
    pub const NORMAL: Niceness = Niceness(0);
    /// The server's default for the commit path: favoured well above the normal 0 (a
    /// thread at -10 weighs ~9× one at 0 in the kernel's fair scheduler), short of the
    /// extremes an operator may want for something else.
    pub const COMMIT_PATH_DEFAULT: Niceness = Niceness(-10);

    pub fn value(self) -> i32 {
        i32::from(self.0)
    }
}

impl TryFrom<i64> for Niceness {
    type Error = String;

    fn try_from(value: i64) -> Result<Niceness, String> {
        let range = i64::from(Niceness::HIGHEST.0)..=i64::from(Niceness::LOWEST.0);
        match i8::try_from(value) {
            Ok(nice) if range.contains(&value) => Ok(Niceness(nice)),
            _ => Err(format!(
                "a nice value must be {}..={}, got {value}",
                range.start(),
                range.end()
            )),
        }
    }
}

impl std::fmt::Display for Niceness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// Sets the calling thread's nice value.
pub fn set_niceness_of_this_thread(niceness: Niceness) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` and `setpriority` take no pointers; on Linux a thread id names
        // exactly the calling thread for PRIO_PROCESS.
        let result = unsafe {
            let thread = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, niceness.value())
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = niceness;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a thread's own nice value is a Linux feature",
        ))
    }
}

/// Where a task's `/proc/.../stat` line holds its nice value.
const NICE_FIELD_OF_STAT: usize = 19;

/// The nice value in a thread's `/proc/.../stat` line; `None` if the text is not one.
pub fn niceness_in_stat(stat: &str) -> Option<i32> {
    crate::storage::heap::field_of_stat_line(stat, NICE_FIELD_OF_STAT)?
        .parse()
        .ok()
}

/// The calling thread's nice value (`/proc/thread-self/stat`); `None` where there is no
/// such file.
pub fn niceness_of_this_thread() -> Option<i32> {
    crate::storage::heap::field_of_this_threads_stat(NICE_FIELD_OF_STAT)
}

/// Gives the calling thread (one of the commit path's, named `thread` in the log) the
/// nice value asked for, if any; a refusal is logged, not returned (see the module's doc).
pub(super) fn favour_this_thread(niceness: Option<Niceness>, thread: &str) {
    let Some(niceness) = niceness else {
        return;
    };
    let before = niceness_of_this_thread();
    match set_niceness_of_this_thread(niceness) {
        Ok(()) => {
            if let Some(before) = before.filter(|&before| before != niceness.value()) {
                // The first favoured thread's is the process's (a later one may have been
                // started by a favoured thread and inherited the favour).
                let _ = NICENESS_BEFORE_FAVOUR.compare_exchange(
                    UNSET,
                    before,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            tracing::debug!(thread, %niceness, "commit thread's nice value set")
        }
        Err(error) => tracing::warn!(
            thread,
            %niceness,
            %error,
            "the commit thread keeps the process's priority: its nice value could not be set \
             (below 0 needs CAP_SYS_NICE or LimitNICE; server.commit_thread_niceness = 0 \
             leaves it alone)"
        ),
    }
}

/// For a thread a commit thread starts (the snapshot writer, the checkpoint signer, a
/// filter's scan): back to the nice value the process had before the commit threads were
/// favoured, if it inherited theirs. Raising a nice value needs no privilege; a failure
/// is logged and the thread runs on.
pub(crate) fn leave_the_favour_to_the_commit_threads(thread: &str) {
    let before = NICENESS_BEFORE_FAVOUR.load(Ordering::Relaxed);
    if before == UNSET || niceness_of_this_thread() == Some(before) {
        return;
    }
    let Ok(niceness) = Niceness::try_from(i64::from(before)) else {
        return;
    };
    if let Err(error) = set_niceness_of_this_thread(niceness) {
        tracing::warn!(thread, %niceness, %error, "a helper thread keeps the commit threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nice_value_is_read_from_a_stat_line_whatever_the_threads_name() {
        let stat = "4242 (ledger (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 \
                    10 -10 7 0 12345 1000000 200 18446744073709551615";
        assert_eq!(niceness_in_stat(stat), Some(-10));
        assert_eq!(niceness_in_stat("4242 (short) S 1"), None);
        assert_eq!(niceness_in_stat("no parentheses"), None);
    }

    #[test]
    fn a_nice_value_is_taken_from_minus_20_to_19_and_refused_past_them() {
        assert_eq!(Niceness::try_from(-20).map(Niceness::value), Ok(-20));
        assert_eq!(Niceness::try_from(19).map(Niceness::value), Ok(19));
        assert_eq!(Niceness::try_from(0), Ok(Niceness::NORMAL));
        for wrong in [-21, 20, 200, -1_000, i64::MAX] {
            let refused = Niceness::try_from(wrong).expect_err("out of range");
            assert!(refused.contains(&wrong.to_string()), "{refused}");
        }
    }

    /// A larger nice value is always allowed, so this runs without privileges; the
    /// thread that sets it is the only one that changes.
    #[cfg(target_os = "linux")]
    #[test]
    fn setting_a_threads_nice_value_changes_that_thread_alone() {
        let before_here = niceness_of_this_thread().expect("/proc/thread-self/stat");
        let niceness = Niceness::try_from(i64::from(before_here.max(0) + 3)).expect("in range");
        let set_there = std::thread::spawn(move || {
            set_niceness_of_this_thread(niceness).expect("raising a nice value is allowed");
            niceness_of_this_thread().expect("/proc/thread-self/stat")
        })
        .join()
        .expect("thread");
        assert_eq!(set_there, niceness.value());
        assert_eq!(niceness_of_this_thread(), Some(before_here));
    }
}
