//! `swarmsync key …` run as a real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};

const RW: &str = "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
const RO: &str = "B7ILRNSNXB6HUYLVG4YPM3OF7N4O5SL3PA32SCFLEAFKCFHAHMSNA";
const ENC: &str = "DCHDXIAQHU64WRUVULGMZOEY2NWHUMLXA";
const FOLDER_ID: &str = "f5182f2ffc72a58a32d60365d4bcaa53574d477a";

fn swarmsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = swarmsync(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn key_new_gives_different_valid_secrets() {
    let a = json(&["key", "new", "--json"]);
    let b = json(&["key", "new", "--json"]);
    assert_ne!(a["read_write"], b["read_write"]);
    for report in [&a, &b] {
        let rw = report["read_write"].as_str().unwrap();
        assert!(rw.starts_with('A') && rw.len() == 33, "{rw}");
        // What `new` printed is what `info` derives from it.
        let info = json(&["key", "info", rw, "--json"]);
        assert_eq!(&info, report);
    }
    let text = swarmsync(&["key", "new"]);
    assert!(text.status.success());
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.contains("read-write:") && stdout.contains("folder id:"),
        "{stdout}"
    );
}

#[test]
fn key_info_shows_exactly_what_each_key_grants() {
    let rw = json(&["key", "info", RW, "--json"]);
    assert_eq!(
        rw,
        serde_json::json!({
            "kind": "read-write", "read_write": RW, "read_only": RO,
            "encrypted": ENC, "folder_id": FOLDER_ID,
        })
    );
    let ro = json(&["key", "info", &RO.to_lowercase(), "--json"]);
    assert_eq!(
        ro,
        serde_json::json!({
            "kind": "read-only", "read_only": RO, "encrypted": ENC, "folder_id": FOLDER_ID,
        })
    );
    let enc = json(&["key", "info", ENC, "--json"]);
    assert_eq!(
        enc,
        serde_json::json!({ "kind": "encrypted", "encrypted": ENC, "folder_id": FOLDER_ID })
    );

    let text = swarmsync(&["key", "info", ENC]);
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.contains("kind:        encrypted"), "{stdout}");
    assert!(
        !stdout.contains("read-only:") && !stdout.contains("read-write:"),
        "{stdout}"
    );
}

#[test]
fn bad_keys_exit_2_with_one_line() {
    for bad in [
        "",
        "XAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT",
        "AAAA",
        "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCE0T",
        "ñ",
    ] {
        let out = swarmsync(&["key", "info", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let out = swarmsync(&["key", "info", "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCE0T"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("'0' at position 32"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(swarmsync(&["key"]).status.code(), Some(2));
    assert_eq!(swarmsync(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(swarmsync(&["--help"]).status.code(), Some(0));
}
