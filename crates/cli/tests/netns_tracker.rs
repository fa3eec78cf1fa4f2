//! Peers on different namespaced hosts find each other through a UDP tracker
//! only (no LAN, no known host, no DHT): our own `swarmsync tracker`, and the
//! real `opentracker` from Debian's packages (standard BEP 15 interop). Each
//! host is on its own subnet behind one router; nothing has a route out.
//! Skipped (passing, with a message) when not root, without `ip`, or (for
//! that test) without `opentracker`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};

use common::netns::{self, Host, Internet};
use common::{Node, bin, noise, wait_same, wait_until};
use daemon::status::FolderStatus;

const TRACKER_PORT: u16 = 6969;

fn skip(test: &str) -> bool {
    if let Some(why) = netns::unsupported() {
        eprintln!("skipping {test}: {why}");
        return true;
    }
    false
}

/// A new read-write key and its folder id (hex), from `swarmsync key new`.
fn new_key() -> (String, String) {
    let out = std::process::Command::new(bin())
        .args(["key", "new", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        json["read_write"].as_str().unwrap().to_owned(),
        json["folder_id"].as_str().unwrap().to_owned(),
    )
}

/// A child process killed on drop, with its output in a log file.
struct Service {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Service {
    fn start(name: &'static str, mut command: std::process::Command, log: &Path) -> Self {
        let out = fs::File::create(log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Self {
            name,
            child,
            log: log.to_owned(),
        }
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}):\n{}",
                self.name,
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn found_by(node: &Node) -> Vec<String> {
    FolderStatus::read(&node.dir.join(".sync"))
        .map(|s| s.peers.into_iter().map(|p| p.found_by).collect())
        .unwrap_or_default()
}

/// A and B, on their own hosts, each told only of the tracker at `tracker`,
/// sync a tree A has; one of them says the tracker found the other.
fn sync_through(tracker: &Host, service: &mut Service, secret: &str, a: &Host, b: &Host) {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(a_dir.join("sub")).unwrap();
    fs::write(a_dir.join("hello.txt"), b"hello").unwrap();
    fs::write(a_dir.join("sub/big.bin"), noise(2 << 20, 3)).unwrap();
    let at = format!("{}:{TRACKER_PORT}", tracker.addr);
    let args = [
        "--no-lan",
        "--no-dht",
        "--no-pex",
        "--tracker",
        &at,
        "--secret",
        secret,
    ];
    let na = Node::start_in(a, &a_dir, &args);
    // A announces first and hears of nobody; B then hears of A.
    wait_until("A announced", &[&na], || {
        na.log_text()
            .lines()
            .any(|l| l.contains("tracker announce") && !l.contains("failed"))
    });
    let nb = Node::start_in(b, &b_dir, &args);
    wait_same(&[&na, &nb]);
    service.assert_running();
    wait_until("a peer found by the tracker", &[&na, &nb], || {
        found_by(&na)
            .iter()
            .chain(&found_by(&nb))
            .any(|s| s == "tracker")
    });
}

#[test]
fn our_tracker_introduces_peers_on_different_hosts() {
    let test = "our_tracker_introduces_peers_on_different_hosts";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("ours");
    let (ht, ha, hb) = (net.add_host("t"), net.add_host("a"), net.add_host("b"));
    let tmp = tempfile::tempdir().unwrap();
    let mut command = ht.command(bin());
    command
        .args(["tracker", "--listen", &format!("0.0.0.0:{TRACKER_PORT}")])
        .env("RUST_LOG", "debug");
    let mut tracker = Service::start(
        "swarmsync tracker",
        command,
        &tmp.path().join("tracker.log"),
    );
    let (secret, _) = new_key();
    sync_through(&ht, &mut tracker, &secret, &ha, &hb);
}

#[test]
fn opentracker_introduces_peers_on_different_hosts() {
    let test = "opentracker_introduces_peers_on_different_hosts";
    if skip(test) {
        return;
    }
    if std::process::Command::new("opentracker")
        .arg("-h")
        .output()
        .is_err()
    {
        eprintln!("skipping {test}: opentracker is not installed");
        return;
    }
    let mut net = Internet::create("ot");
    let (ht, ha, hb) = (net.add_host("t"), net.add_host("a"), net.add_host("b"));
    let (secret, folder_id) = new_key();
    // Debian builds opentracker whitelist-only, and it drops to `nobody` and
    // chroots: a world-readable directory holding the whitelist.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("opentracker");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("whitelist.txt"), format!("{folder_id}\n")).unwrap();
    for (path, mode) in [(tmp.path(), 0o755), (&root, 0o755)] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(
        root.join("whitelist.txt"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut command = ht.command("opentracker");
    command
        .current_dir(&root)
        .args(["-i", &ht.addr.to_string()])
        .args([
            "-P",
            &TRACKER_PORT.to_string(),
            "-p",
            &TRACKER_PORT.to_string(),
        ])
        .args(["-d", &root.display().to_string(), "-u", "nobody"])
        .args(["-w", "whitelist.txt"]);
    let mut tracker = Service::start("opentracker", command, &tmp.path().join("opentracker.log"));
    sync_through(&ht, &mut tracker, &secret, &ha, &hb);
}
