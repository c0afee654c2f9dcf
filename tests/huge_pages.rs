//! `serve` turns transparent huge pages off for its process unless its config leaves
//! them to the system (`transparent_huge_pages = true`; issue 12, twenty-third round: a
//! fresh 2 MiB page zeroed for each region an allocator first writes made the first
//! batches after a start 3-5x slower on the machines measured). Read from the child's
//! `/proc/PID/status` (`THP_enabled`), which reports the process's flag.

#![cfg(target_os = "linux")]

use std::io::BufRead;

/// Starts `serve` with `server_section` under `[server]`, waits until it listens, and
/// returns its `THP_enabled` flag; the server is killed before returning.
fn huge_pages_flag_of_a_server_with(server_section: &str) -> u32 {
    let directory = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\n{server_section}\n[[tokens]]\nprincipal = \"bureau\"\nrole = \"bureau\"\ntoken_sm3 = \"{}\"\n",
        voucher_ledger::api::auth::token_hash("a-bureau-token-for-this-test")
    );
    let config_path = directory.path().join("server.toml");
    std::fs::write(&config_path, config).expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "",
            "--no-sync",
            "--data-dir",
        ])
        .arg(directory.path().join("data"))
        .arg("--config")
        .arg(&config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the server");
    let stdout = child.stdout.take().expect("stdout");
    let listening = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("voucher-ledger listening on "));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the server started");
    thp_flag(&status.expect("the server's /proc status reads"))
}

fn thp_flag(status: &str) -> u32 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("/proc status has THP_enabled (Linux 5.0 and later)")
}

#[test]
fn a_server_turns_transparent_huge_pages_off_by_default_and_leaves_them_when_told() {
    // The flag is inherited: a child left alone has this test process's.
    let own = thp_flag(&std::fs::read_to_string("/proc/self/status").expect("own status"));
    assert_eq!(
        huge_pages_flag_of_a_server_with(""),
        0,
        "a server with the default setting turned transparent huge pages off"
    );
    assert_eq!(
        huge_pages_flag_of_a_server_with("transparent_huge_pages = true"),
        own,
        "a server told to leave them kept the flag it was started with"
    );
}
