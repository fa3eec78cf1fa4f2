//! Real `swarmsync sync` processes on loopback, trees compared byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::Path;

use common::{Node, noise, printed_secret, wait_same, wait_until};

fn secret_args(secret: &str, known: &[&Node]) -> Vec<String> {
    let mut args = vec!["--secret".to_owned(), secret.to_owned()];
    for node in known {
        args.push("--known-host".to_owned());
        args.push(node.addr());
    }
    args
}

#[test]
fn two_peers_sync_edits_both_ways_renames_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(a_dir.join("docs/deep/er")).unwrap();
    fs::write(a_dir.join("hello.txt"), b"hello").unwrap();
    fs::write(a_dir.join("empty"), b"").unwrap();
    fs::write(a_dir.join("docs/deep/er/big.bin"), noise(5 << 20, 1)).unwrap();
    let a = Node::start(&a_dir, &[]);
    let secret = printed_secret(&a);
    let b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    wait_same(&[&a, &b]);
    assert_eq!(
        b.tree().get("docs/deep/er/big.bin").map(Vec::len),
        Some(5 << 20)
    );
    assert!(b.tree().contains_key("empty"));

    // An edit on B reaches A; the replaced version is archived on A.
    b.write("hello.txt", b"hello, edited on b");
    b.write("new/from-b.txt", b"new file");
    wait_same(&[&a, &b]);
    assert_eq!(a.tree()["hello.txt"], b"hello, edited on b");
    assert!(a.archived().contains(&b"hello".to_vec()));

    // A rename and a delete on A.
    fs::rename(
        a_dir.join("docs/deep/er/big.bin"),
        a_dir.join("big-renamed.bin"),
    )
    .unwrap();
    fs::remove_file(a_dir.join("new/from-b.txt")).unwrap();
    wait_same(&[&a, &b]);
    assert!(b.tree().contains_key("big-renamed.bin"));
    assert!(!b.tree().contains_key("new/from-b.txt"));
    assert!(
        b.archived().contains(&b"new file".to_vec()),
        "deleted files go to the archive"
    );
}

#[test]
fn records_and_blocks_travel_through_a_middle_peer() {
    // A and C never meet: C knows only B, B knows only A.
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(&tmp.path().join("a"), &[]);
    let secret = printed_secret(&a);
    let b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    let c = Node::start(&tmp.path().join("c"), &secret_args(&secret, &[&b]));
    a.write("from-a.bin", &noise(300_000, 2));
    wait_same(&[&a, &b, &c]);
    c.write("from-c.txt", b"made on c");
    wait_same(&[&a, &b, &c]);
    assert_eq!(a.tree()["from-c.txt"], b"made on c");
}

#[test]
fn concurrent_edits_keep_both_versions_as_a_conflict_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(&tmp.path().join("a"), &[]);
    let secret = printed_secret(&a);
    let mut b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    a.write("report.txt", b"base");
    wait_same(&[&a, &b]);
    b.kill();
    a.write("report.txt", b"edited on a");
    b.write("report.txt", b"edited on b while offline");
    b.restart();
    wait_same(&[&a, &b]);
    let tree = a.tree();
    let contents: Vec<&[u8]> = tree.values().map(Vec::as_slice).collect();
    assert!(contents.contains(&&b"edited on a"[..]), "{tree:?}");
    assert!(
        contents.contains(&&b"edited on b while offline"[..]),
        "{tree:?}"
    );
    let copies: Vec<&String> = tree
        .keys()
        .filter(|k| k.starts_with("report.sync-conflict-"))
        .collect();
    assert_eq!(copies.len(), 1, "{tree:?}");
    assert!(copies[0].ends_with(".txt"));
}

#[test]
fn read_only_peer_receives_but_its_edits_stay_local() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(&tmp.path().join("a"), &[]);
    printed_secret(&a);
    let ro_key = a
        .log_text()
        .lines()
        .find_map(|l| l.strip_prefix("read-only:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    a.write("shared.txt", b"from the owner");
    let r = Node::start(&tmp.path().join("r"), &secret_args(&ro_key, &[&a]));
    wait_same(&[&a, &r]);

    // The read-only peer's edit and new file never leave it.
    r.write("shared.txt", b"read-only peer scribbles");
    r.write("mine.txt", b"only here");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(a.tree()["shared.txt"], b"from the owner");
    assert!(!a.tree().contains_key("mine.txt"));

    // A later change by the owner still reaches it; its edit is kept aside.
    a.write("shared.txt", b"owner's second version");
    a.write("more.txt", b"more");
    wait_until(
        "the owner's change reaches the read-only peer",
        &[&a, &r],
        || {
            r.tree().get("shared.txt").map(Vec::as_slice) == Some(b"owner's second version")
                && r.tree().contains_key("more.txt")
        },
    );
    let kept = r.tree().values().any(|v| v == b"read-only peer scribbles")
        || r.archived().contains(&b"read-only peer scribbles".to_vec());
    assert!(kept, "the read-only edit is not lost");
    assert!(!a.tree().contains_key("mine.txt"));
}

#[test]
fn a_peer_with_another_secret_gets_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(&tmp.path().join("a"), &[]);
    printed_secret(&a);
    a.write("private.txt", b"secret stuff");
    let other = "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
    let x = Node::start(&tmp.path().join("x"), &secret_args(other, &[&a]));
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(x.tree().is_empty(), "{:?}", x.tree().keys());
    assert!(!a.tree().is_empty());
}

#[test]
fn killed_in_the_middle_of_a_large_file_then_restarted_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(&a_dir).unwrap();
    fs::write(a_dir.join("large.bin"), noise(64 << 20, 3)).unwrap();
    let a = Node::start(&a_dir, &[]);
    let secret = printed_secret(&a);
    let mut b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    // Kill B as soon as its temporary exists.
    wait_until("a temporary on b", &[&a, &b], || {
        temporaries(&b.dir) > 0 || b.tree().contains_key("large.bin")
    });
    b.kill();
    assert!(
        !b.tree().contains_key("large.bin") || b.tree()["large.bin"].len() == 64 << 20,
        "never a torn file"
    );
    b.restart();
    wait_same(&[&a, &b]);
    assert_eq!(temporaries(&b.dir), 0, "temporaries are cleaned up");
}

/// Temporaries in `.sync/tmp` and beside the files at the top of `dir`.
fn temporaries(dir: &Path) -> usize {
    [dir.join(".sync/tmp"), dir.to_owned()]
        .iter()
        .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".sync-tmp-"))
        .count()
}

#[test]
fn ignored_files_stay_local() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(a_dir.join(".sync")).unwrap();
    fs::write(a_dir.join(".sync/IgnoreList"), "*.tmp\nbuild/\n").unwrap();
    fs::write(a_dir.join("keep.txt"), b"keep").unwrap();
    fs::write(a_dir.join("scratch.tmp"), b"ignore me").unwrap();
    fs::create_dir_all(a_dir.join("build")).unwrap();
    fs::write(a_dir.join("build/out.o"), b"object").unwrap();
    let a = Node::start(&a_dir, &[]);
    let secret = printed_secret(&a);
    let b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    wait_until("keep.txt arrives", &[&a, &b], || {
        b.tree().contains_key("keep.txt")
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let tree = b.tree();
    assert!(!tree.contains_key("scratch.tmp"), "{tree:?}");
    assert!(!tree.keys().any(|k| k.starts_with("build")), "{tree:?}");
}

#[test]
fn status_shows_what_the_folder_holds_and_its_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start(&tmp.path().join("a"), &[]);
    let secret = printed_secret(&a);
    a.write("one.txt", b"1");
    a.write("sub/two.txt", b"22");
    let mut b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    wait_same(&[&a, &b]);
    let status = |dir: &std::path::Path| -> serde_json::Value {
        let out = std::process::Command::new(common::bin())
            .args(["status", "--json"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    wait_until("b's status shows the files and a", &[&a, &b], || {
        let s = status(&b.dir);
        s["running"] == true
            && s["files"] == 2
            && s["peers"].as_array().is_some_and(|p| p.len() == 1)
    });
    let s = status(&b.dir);
    assert_eq!(s["to_fetch_files"], 0);
    assert_eq!(s["access"], "read-write");
    assert_eq!(s["peers"][0]["address"], a.addr());
    let text = std::process::Command::new(common::bin())
        .arg("status")
        .arg(&b.dir)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("running:  yes") && text.contains("2 files"),
        "{text}"
    );

    // A folder whose sync is not running still reports what its index holds.
    b.kill();
    wait_until("b's status goes stale", &[&a, &b], || {
        status(&b.dir)["running"] == false
    });
    assert_eq!(status(&b.dir)["files"], 2);
}

/// A tmpfs of `size` at `dir`, unmounted on drop; `None` where mounting is not
/// allowed (not root, no tmpfs).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?
            .success();
        ok.then(|| Self(dir.to_owned()))
    }

    fn grow(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn disk_full_stops_writing_and_resumes_when_there_is_space() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("b"), "3m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(&a_dir).unwrap();
    fs::write(a_dir.join("small.txt"), b"fits").unwrap();
    fs::write(a_dir.join("large.bin"), noise(6 << 20, 9)).unwrap();
    let a = Node::start(&a_dir, &[]);
    let secret = printed_secret(&a);
    let mut b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    wait_until("b says its disk is full", &[&a, &b], || {
        b.log_text().contains("disk full")
    });
    assert!(!b.tree().contains_key("large.bin"), "no torn file");
    disk.grow("64m");
    wait_same(&[&a, &b]);
    b.kill();
}

#[test]
fn reconnecting_peers_send_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(&a_dir).unwrap();
    for i in 0..50 {
        fs::write(a_dir.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let a = Node::start(&a_dir, &[]);
    let secret = printed_secret(&a);
    let mut b = Node::start(&tmp.path().join("b"), &secret_args(&secret, &[&a]));
    wait_same(&[&a, &b]);
    // Give b a moment to record how far it got (it does so once idle).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    b.kill();
    a.write("later.txt", b"written while b was away");
    b.restart();
    wait_same(&[&a, &b]);
    assert!(
        a.log_text().contains("sending only what is newer"),
        "a resumed b's copy of its index instead of resending it"
    );
}
