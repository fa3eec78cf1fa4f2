//! `swarmsync scan DIR` as a real binary: exact summary numbers, rescans that
//! rehash only what changed, bad input, and a folder locked by a running `sync`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Node, SETTLE, noise};
use serde_json::Value;

fn swarmsync(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

/// `scan DIR --json [extra]`, which must succeed and print only JSON on stdout.
fn scan_json(dir: &Path, extra: &[&std::ffi::OsStr]) -> Value {
    let mut args = vec!["scan".as_ref(), dir.as_os_str(), "--json".as_ref()];
    args.extend_from_slice(extra);
    let out = swarmsync(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// 5 files (one empty) in 3 directories, 2 of them nested: 250,016 bytes.
fn make_tree(dir: &Path) {
    fs::create_dir_all(dir.join("docs/deep/deeper")).unwrap();
    fs::write(dir.join("top.txt"), b"sixteen bytes!!\n").unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::write(dir.join("docs/a.bin"), noise(100_000, 1)).unwrap();
    fs::write(dir.join("docs/deep/b.bin"), noise(150_000, 2)).unwrap();
    fs::write(dir.join("docs/deep/deeper/c"), b"").unwrap();
}

#[test]
fn summary_counts_exactly_and_rescans_rehash_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("folder");
    make_tree(&dir);

    let first = scan_json(&dir, &[]);
    assert_eq!(n(&first, "files"), 5, "{first}");
    assert_eq!(n(&first, "directories"), 3, "{first}");
    assert_eq!(n(&first, "symlinks"), 0, "{first}");
    assert_eq!(n(&first, "bytes"), 250_016, "{first}");
    assert_eq!(n(&first, "hashed_files"), 5, "{first}");
    assert_eq!(n(&first, "hashed_bytes"), 250_016, "{first}");
    assert_eq!(n(&first, "added"), 8, "{first}");
    assert_eq!(n(&first, "records_changed"), 8, "{first}");
    assert_eq!(n(&first, "skipped"), 0, "{first}");
    assert!(first["seconds"].as_f64().unwrap() >= 0.0);
    // The state was made like `sync` makes it.
    assert!(dir.join(".sync/secret").is_file());
    assert!(dir.join(".sync/index.db").is_file());

    let again = scan_json(&dir, &[]);
    assert_eq!(n(&again, "files"), 5, "{again}");
    assert_eq!(n(&again, "bytes"), 250_016, "{again}");
    assert_eq!(n(&again, "hashed_files"), 0, "{again}");
    assert_eq!(n(&again, "hashed_bytes"), 0, "{again}");
    assert_eq!(n(&again, "records_changed"), 0, "{again}");

    // A new size cannot be mistaken for "unchanged", whatever the mtime granularity.
    fs::write(dir.join("docs/a.bin"), noise(100_001, 3)).unwrap();
    let edited = scan_json(&dir, &[]);
    assert_eq!(n(&edited, "hashed_files"), 1, "{edited}");
    assert_eq!(n(&edited, "hashed_bytes"), 100_001, "{edited}");
    assert_eq!(n(&edited, "changed"), 1, "{edited}");
    assert_eq!(n(&edited, "records_changed"), 1, "{edited}");
    assert_eq!(n(&edited, "bytes"), 250_017, "{edited}");

    fs::remove_file(dir.join("top.txt")).unwrap();
    let removed = scan_json(&dir, &[]);
    assert_eq!(n(&removed, "files"), 4, "{removed}");
    assert_eq!(n(&removed, "hashed_files"), 0, "{removed}");
    assert_eq!(n(&removed, "deleted"), 1, "{removed}");
    assert_eq!(n(&removed, "records_changed"), 1, "{removed}");
}

#[test]
fn state_elsewhere_keeps_the_folder_clean_and_text_output_is_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("folder");
    let state = tmp.path().join("state");
    make_tree(&dir);

    let first = scan_json(&dir, &["--state".as_ref(), state.as_os_str()]);
    assert_eq!(n(&first, "hashed_files"), 5, "{first}");
    assert!(!dir.join(".sync").exists());
    assert!(state.join("index.db").is_file());

    let text = swarmsync(&[
        "scan".as_ref(),
        dir.as_os_str(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    assert_eq!(text.status.code(), Some(0));
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.contains("5 files, 3 directories") && stdout.contains("hashed:   0 files"),
        "{stdout}"
    );
}

#[test]
fn bad_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let dir = tmp.path().join("folder");
    fs::create_dir(&dir).unwrap();

    let on_file = swarmsync(&["scan".as_ref(), file.as_os_str()]);
    assert_eq!(on_file.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&on_file.stderr).contains("not a directory"));

    let missing = swarmsync(&["scan".as_ref(), tmp.path().join("nope").as_os_str()]);
    assert_eq!(missing.status.code(), Some(2));

    for json in [false, true] {
        let mut args = vec![
            "scan".as_ref(),
            dir.as_os_str(),
            "--state".as_ref(),
            file.as_os_str(),
        ];
        if json {
            args.push("--json".as_ref());
        }
        let bad_state = swarmsync(&args);
        assert_eq!(bad_state.status.code(), Some(2), "json: {json}");
    }
    assert!(!dir.join(".sync").exists());
}

#[test]
fn folder_held_by_a_running_sync_is_refused_plainly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("folder");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f"), b"content").unwrap();
    let node = Node::start(&dir, &[]);
    // Only once `sync` has scanned does it surely hold the index (scanning first
    // would take the lock from it).
    let start = Instant::now();
    while !node.plain_log().contains("scan:") {
        assert!(
            start.elapsed() < SETTLE,
            "sync never scanned:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = swarmsync(&["scan".as_ref(), dir.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sync` is running"), "{stderr}");
}
