//! `swarmsync sync DIR` as a real binary: the first run makes a secret, later
//! runs reuse it, another folder's secret is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::{Command, Output};

use common::{Node, printed_secret};

fn swarmsync(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[test]
fn first_run_creates_and_prints_a_secret_later_runs_reuse_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Sync");
    let mut node = Node::start(&dir, &[]);
    let rw = printed_secret(&node);
    assert!(rw.starts_with('A') && rw.len() == 33, "{rw}");
    let stored = std::fs::read_to_string(dir.join(".sync/secret")).unwrap();
    assert_eq!(stored.trim(), rw);
    node.kill();

    // A second run makes no new secret; the same one given again is fine.
    let mut again = Node::start(&dir, &["--secret".to_owned(), rw.clone()]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    again.kill();
    assert!(!again.log_text().contains("Created"));
    assert_eq!(
        std::fs::read_to_string(dir.join(".sync/secret"))
            .unwrap()
            .trim(),
        rw
    );

    let other = "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
    let refused = swarmsync(&[
        "sync".as_ref(),
        dir.as_os_str(),
        "--secret".as_ref(),
        other.as_ref(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8(refused.stderr)
            .unwrap()
            .contains("another secret")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".sync/secret"))
            .unwrap()
            .trim(),
        rw
    );
}

#[test]
fn bad_secret_bad_host_and_file_as_dir_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = swarmsync(&[
        "sync".as_ref(),
        tmp.path().as_os_str(),
        "--secret".as_ref(),
        "Bnope".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !tmp.path().join(".sync").exists(),
        "nothing written for a bad key"
    );
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    assert_eq!(
        swarmsync(&["sync".as_ref(), file.as_os_str()])
            .status
            .code(),
        Some(2)
    );
    let dir = tmp.path().join("d");
    let out = swarmsync(&[
        "sync".as_ref(),
        dir.as_os_str(),
        "--no-lan".as_ref(),
        "--no-tracker".as_ref(),
        "--no-dht".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--known-host".as_ref(),
        "no port here".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
