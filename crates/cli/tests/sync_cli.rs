//! `swarmsync sync DIR` as a real binary: the first run makes a secret, later
//! runs reuse it, another folder's secret is refused.

use std::process::{Command, Output};

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
    let dir_arg = dir.as_os_str();
    let first = swarmsync(&["sync".as_ref(), dir_arg]);
    let stdout = String::from_utf8(first.stdout).unwrap();
    let rw = stdout
        .lines()
        .find_map(|l| l.strip_prefix("read-write:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the new secret is printed")
        .to_owned();
    assert!(rw.starts_with('A') && rw.len() == 33, "{stdout}");
    let stored = std::fs::read_to_string(dir.join(".sync/secret")).unwrap();
    assert_eq!(stored.trim(), rw);

    let again = swarmsync(&["sync".as_ref(), dir_arg]);
    assert!(!String::from_utf8(again.stdout).unwrap().contains("Created"));
    let same = swarmsync(&["sync".as_ref(), dir_arg, "--secret".as_ref(), rw.as_ref()]);
    assert_ne!(same.status.code(), Some(2));

    let other = "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
    let refused = swarmsync(&[
        "sync".as_ref(),
        dir_arg,
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
fn bad_secret_and_file_as_dir_exit_2() {
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
}
