//! The server process itself: how it sets up its memory, and what its log
//! looks like where nobody reads it in a terminal.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Transparent huge pages stay off for the server (its allocator's regions
/// would be resident 2 MiB at a time: two to three times the memory).
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let s = Server::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("the kernel reports THP_enabled");
    assert_eq!(thp.trim(), "0", "{status}");
}

/// A log read from a pipe (a file, the journal) is plain text: no colour
/// codes around its fields.
#[test]
fn logs_to_a_pipe_are_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--statsd", "off"])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("MINUTELY_PUSH_KEY", PUSH_KEY)
        .env("MINUTELY_ADMIN_KEY", ADMIN_KEY)
        .env("MINUTELY_LOG", "debug")
        .env_remove("MINUTELY_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if line.starts_with("minutely listening on ") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(!log.is_empty(), "the server logged nothing at debug level");
    for line in &log {
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    }
}
