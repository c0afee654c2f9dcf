//! `serve` gives the ledger's writer, record encoder and committer, the threads every
//! batch passes through in turn, the nice value of `commit_thread_niceness` (default -10; issue 12,
//! twenty-sixth round), and leaves every other thread at the process's. Read from the
//! child's `/proc/PID/task/*/stat`. A value below 0 needs CAP_SYS_NICE: without it the
//! server still serves, its threads at the process's priority.

#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use support::ServerProcess;
use voucher_ledger::ledger::priority::{
    niceness_of_this_thread, set_niceness_of_this_thread, Niceness,
};

/// This process's nice value, which a child's threads inherit.
fn own_niceness() -> i32 {
    niceness_of_this_thread().expect("/proc/thread-self/stat")
}

/// Whether this process may lower a thread's nice value (root, CAP_SYS_NICE or
/// RLIMIT_NICE), tried on a thread of its own.
fn may_lower_niceness_to(niceness: Niceness) -> bool {
    std::thread::spawn(move || set_niceness_of_this_thread(niceness).is_ok())
        .join()
        .expect("thread")
}

/// Nice values by thread: one entry per thread of that name.
struct CommitThreads {
    writer: Vec<i32>,
    encoder: Vec<i32>,
    committer: Vec<i32>,
    others: Vec<(String, i32)>,
}

/// The server's threads' nice values: the writer's, the encoder's, the committer's and
/// every other thread's by name, once the snapshot writer (which the writer starts, so it would
/// inherit the writer's) is there, the commit threads show `favoured` and every other
/// thread `others` (each thread sets its own as it starts, so the first look may come
/// before that), or as they are after five seconds.
fn threads_niceness(server: &ServerProcess, favoured: i32, others: i32) -> CommitThreads {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut writer, mut encoder, mut committer, mut rest) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (name, nice) in server.niceness_of_threads() {
            match name.as_str() {
                "ledger-writer" => writer.push(nice),
                "ledger-encoder" => encoder.push(nice),
                "ledger-commit" => committer.push(nice),
                _ => rest.push((name, nice)),
            }
        }
        // A thread starts with its creator's name, until it names itself: a second
        // "ledger-writer" for a moment is the snapshot writer starting.
        let settled = writer.len() == 1
            && encoder.len() == 1
            && committer.len() == 1
            && rest
                .iter()
                .any(|(name, _)| name.starts_with("ledger-snapsho"))
            && writer
                .iter()
                .chain(&encoder)
                .chain(&committer)
                .all(|&nice| nice == favoured)
            && rest.iter().all(|&(_, nice)| nice == others);
        if settled || Instant::now() > deadline {
            return CommitThreads {
                writer,
                encoder,
                committer,
                others: rest,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_server_gives_its_commit_threads_the_configured_nice_value_and_no_other_thread() {
    let own = own_niceness();
    // A larger nice value needs no privilege, so this case runs anywhere.
    let asked = (own + 3).min(19);
    let server = ServerProcess::start(&format!("commit_thread_niceness = {asked}"));
    server.wait_serving().await;
    let CommitThreads {
        writer,
        encoder,
        committer,
        others,
    } = threads_niceness(&server, asked, own);
    assert_eq!(writer, vec![asked], "the writer's nice value");
    assert_eq!(encoder, vec![asked], "the record encoder's nice value");
    assert_eq!(committer, vec![asked], "the committer's nice value");
    // The snapshot writer is started by the writer, so it would inherit the writer's.
    assert!(
        others
            .iter()
            .any(|(name, _)| name.starts_with("ledger-snapsho")),
        "the server has a snapshot writer: {others:?}"
    );
    assert!(
        others.iter().all(|&(_, nice)| nice == own),
        "every other thread keeps the process's nice value {own}: {others:?}"
    );
}

#[tokio::test]
async fn by_default_the_commit_threads_are_favoured_when_the_process_may_and_serve_when_not() {
    let own = own_niceness();
    let expected = if may_lower_niceness_to(Niceness::COMMIT_PATH_DEFAULT) {
        Niceness::COMMIT_PATH_DEFAULT.value()
    } else {
        own
    };
    let server = ServerProcess::start("");
    server.wait_serving().await;
    let CommitThreads {
        writer,
        encoder,
        committer,
        others,
    } = threads_niceness(&server, expected, own);
    assert_eq!(writer, vec![expected], "the writer's nice value by default");
    assert_eq!(
        encoder,
        vec![expected],
        "the encoder's nice value by default"
    );
    assert_eq!(
        committer,
        vec![expected],
        "the committer's nice value by default"
    );
    assert!(
        others.iter().all(|&(_, nice)| nice == own),
        "by default every other thread keeps the process's nice value {own}: {others:?}"
    );

    let left_alone = ServerProcess::start("commit_thread_niceness = 0");
    left_alone.wait_serving().await;
    let CommitThreads {
        writer,
        encoder,
        committer,
        ..
    } = threads_niceness(&left_alone, own, own);
    assert_eq!(
        writer,
        vec![own],
        "0 leaves the writer at the process's nice value"
    );
    assert_eq!(
        encoder,
        vec![own],
        "0 leaves the encoder at the process's nice value"
    );
    assert_eq!(
        committer,
        vec![own],
        "0 leaves the committer at the process's nice value"
    );
}

#[test]
fn a_nice_value_outside_minus_20_to_19_is_refused_when_the_config_is_read() {
    let directory = tempfile::tempdir().expect("tempdir");
    for (value, refused) in [("-21", true), ("20", true), ("-20", false), ("19", false)] {
        let path = directory.path().join("server.toml");
        std::fs::write(
            &path,
            format!("[server]\ncommit_thread_niceness = {value}\n"),
        )
        .expect("config");
        let loaded = voucher_ledger::api::server::ServerConfig::load(&path);
        match (loaded, refused) {
            (Err(error), true) => assert!(
                error.contains("nice value") && error.contains(value),
                "the refusal names the setting's value: {error}"
            ),
            (Ok(config), false) => {
                assert_eq!(config.server.commit_thread_niceness.to_string(), value)
            }
            (Ok(_), true) => panic!("commit_thread_niceness = {value} was accepted"),
            (Err(error), false) => panic!("commit_thread_niceness = {value} refused: {error}"),
        }
    }
}
