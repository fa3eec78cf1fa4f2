//! LAN discovery end to end: two real `swarmsync sync` processes, each in its
//! own network namespace, the two joined by a veth pair and nothing else. No
//! `--known-host`: with LAN discovery on they must find each other and sync;
//! with `--no-lan` on both sides they must not.
//!
//! The only addresses are the private ones this test puts on the two veth ends
//! inside the namespaces, and the namespaces have no route anywhere else, so
//! nothing sent here can leave them. Skipped (with a message, passing) when not
//! root or when `ip` (iproute2) is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{noise, strip_ansi, tree};

/// How long a test waits for something before it fails (a bound, not a
/// measurement).
const SETTLE: Duration = Duration::from_secs(60);

/// Every namespace this file creates starts with this, then our pid.
const PREFIX: &str = "swcli-lan-";

/// Why these tests cannot run here, if they cannot.
fn unsupported() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    // Uid: real, effective, saved, fs. Namespaces need the effective one.
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing".into()),
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes namespaces of this file left by earlier runs whose process is gone
/// (a crash or SIGKILL skips `Drop`). Namespaces of anyone else, and of runs
/// still alive, are left alone.
fn sweep_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Two namespaces `<PREFIX><pid>-<tag>-a` and `…-b`, each with loopback up and
/// one end of a veth pair (`veth0` in both) holding `10.233.<subnet>.1/24` and
/// `.2/24`. Dropping it deletes both namespaces, and with them the pair.
struct Lan {
    names: [String; 2],
    addrs: [String; 2],
}

impl Lan {
    fn create(tag: &str, subnet: u8) -> Self {
        sweep_leftovers();
        let base = format!("{PREFIX}{}-{tag}-", std::process::id());
        let names = [format!("{base}a"), format!("{base}b")];
        for n in &names {
            let _ = ip(&["netns", "del", n]);
        }
        let addrs = [format!("10.233.{subnet}.1"), format!("10.233.{subnet}.2")];
        // The guard exists before the first namespace does, so a failure
        // half-way still cleans up.
        let lan = Self { names, addrs };
        lan.setup()
            .unwrap_or_else(|e| panic!("setting up the namespaces failed: {e}"));
        lan
    }

    fn setup(&self) -> Result<(), String> {
        let [a, b] = &self.names;
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", b])?;
        ip(&[
            "link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth0", "netns", b,
        ])?;
        for (ns, addr) in self.names.iter().zip(&self.addrs) {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "broadcast",
                "+",
                "dev",
                "veth0",
            ])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", "veth0", "up"])?;
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// One `swarmsync sync` running inside a namespace; killed on drop.
struct Peer {
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The TCP port every peer listens on (each namespace has its own ports).
const PORT: u16 = 41_544;

impl Peer {
    /// `ip netns exec NS swarmsync sync DIR --listen 0.0.0.0:PORT` + `extra`.
    fn start(ns: &str, dir: &Path, extra: &[&str]) -> Self {
        let log = dir.with_extension("log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_swarmsync"), "sync"])
            .arg(dir)
            .args(["--listen", &format!("0.0.0.0:{PORT}")])
            .args(["--no-tracker", "--no-dht"])
            .args(extra)
            .env("RUST_LOG", "info,net=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("ip netns exec swarmsync starts");
        // `ip netns exec` execs the program, so this child is swarmsync itself.
        Self {
            dir: dir.to_owned(),
            log,
            child: Some(child),
        }
    }

    /// The log, without the colour codes the logger writes even to a file.
    fn log_text(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        tree(&self.dir)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    /// Fails the test if the process has exited.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{} exited ({status}):\n{}",
                self.dir.display(),
                self.log_text()
            );
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Everything the peers logged, for failure messages.
fn logs(peers: &[&Peer]) -> String {
    peers
        .iter()
        .map(|p| format!("\n--- {}\n{}", p.log.display(), p.log_text()))
        .collect()
}

/// Waits until `done` holds; fails after [`SETTLE`] (a bound, not a
/// measurement), or at once if a peer exits.
fn wait_until(what: &str, peers: &mut [&mut Peer], mut done: impl FnMut(&[&mut Peer]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        for p in peers.iter_mut() {
            p.assert_running();
        }
        if done(peers) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let all: Vec<&Peer> = peers.iter().map(|p| &**p).collect();
    panic!("timed out waiting for: {what}{}", logs(&all));
}

/// A short description of a tree: names and sizes.
fn describe(tree: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    tree.iter()
        .map(|(k, v)| format!("{k} ({} bytes)", v.len()))
        .collect()
}

fn wait_same(what: &str, a: &mut Peer, b: &mut Peer) {
    let mut last = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        a.assert_running();
        b.assert_running();
        let (ta, tb) = (a.tree(), b.tree());
        if ta == tb {
            return;
        }
        last = (describe(&ta), describe(&tb));
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for identical trees ({what}):\na: {:#?}\nb: {:#?}{}",
        last.0,
        last.1,
        logs(&[a, b])
    );
}

/// The read-write key a first run printed (`read-write:  A…`).
fn printed_secret(peer: &mut Peer) -> String {
    let mut key = None;
    wait_until("the printed secret", &mut [peer], |p| {
        key = p[0]
            .log_text()
            .lines()
            .find_map(|l| l.strip_prefix("read-write:"))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned);
        key.is_some()
    });
    key.unwrap()
}

/// Waits until the daemon is listening (it logs "syncing DIR" then).
fn wait_started(peer: &mut Peer) {
    wait_until("the daemon to start", &mut [peer], |p| {
        p[0].log_text().contains("syncing ")
    });
}

/// A's folder: small and multi-MiB files, deterministic bytes, some nested.
fn fill(dir: &Path) {
    let files: [(&str, usize, u64); 5] = [
        ("hello.txt", 5, 0),
        ("small/notes.bin", 3 * 1024 + 7, 11),
        ("small/other.bin", 8 * 1024, 12),
        ("big.bin", 3 << 20, 13),
        ("deep/er/large.bin", (5 << 20) + 12_345, 14),
    ];
    for (rel, len, seed) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data = if seed == 0 {
            b"hello".to_vec()
        } else {
            noise(len, seed)
        };
        fs::write(path, data).unwrap();
    }
}

#[test]
fn lan_discovery_alone_connects_two_processes_and_they_sync() {
    let test = "lan_discovery_alone_connects_two_processes_and_they_sync";
    if let Some(why) = unsupported() {
        println!("SKIPPED {test}: {why}");
        return;
    }
    let lan = Lan::create("sync", 41);
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fill(&a_dir);
    let want = tree(&a_dir);

    let mut a = Peer::start(&lan.names[0], &a_dir, &[]);
    let secret = printed_secret(&mut a);
    let mut b = Peer::start(&lan.names[1], &b_dir, &["--secret", &secret]);

    wait_same("A's files reach B", &mut a, &mut b);
    assert_eq!(b.tree(), want, "B holds exactly what A started with");
    assert_eq!(b.tree()["deep/er/large.bin"].len(), (5 << 20) + 12_345);

    // They met on the veth addresses, and the side that dialed found the
    // other by LAN discovery (the accepting side reports "incoming").
    let (la, lb) = (a.log_text(), b.log_text());
    let via_lan = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" connected "))
            .any(|l| l.contains("source=\"lan\"") || l.contains("source=lan "))
    };
    assert!(
        via_lan(&la) || via_lan(&lb),
        "a channel found by LAN discovery:{}",
        logs(&[&a, &b])
    );
    assert!(
        lb.lines()
            .any(|l| l.contains("peer connected") && l.contains(&lan.addrs[0])),
        "B met A at {}:{}",
        lan.addrs[0],
        logs(&[&a, &b])
    );
    assert!(
        la.lines()
            .any(|l| l.contains("peer connected") && l.contains(&lan.addrs[1])),
        "A met B at {}:{}",
        lan.addrs[1],
        logs(&[&a, &b])
    );

    // An edit and a new file on B reach A.
    b.write("small/notes.bin", b"edited on b");
    b.write("from-b/new.bin", &noise(20_000, 21));
    wait_same("B's edit reaches A", &mut a, &mut b);
    let got = a.tree();
    assert_eq!(got["small/notes.bin"], b"edited on b");
    assert_eq!(got["from-b/new.bin"], noise(20_000, 21));
    assert_eq!(got["big.bin"], want["big.bin"]);

    drop((a, b));
    drop(lan);
}

#[test]
fn without_lan_discovery_and_known_hosts_nothing_connects() {
    let test = "without_lan_discovery_and_known_hosts_nothing_connects";
    if let Some(why) = unsupported() {
        println!("SKIPPED {test}: {why}");
        return;
    }
    let lan = Lan::create("nolan", 42);
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fill(&a_dir);

    let mut a = Peer::start(&lan.names[0], &a_dir, &["--no-lan"]);
    let secret = printed_secret(&mut a);
    wait_started(&mut a);
    let mut b = Peer::start(&lan.names[1], &b_dir, &["--no-lan", "--secret", &secret]);
    wait_started(&mut b);

    // With LAN discovery on, the same setup connects at once (the test
    // above); here nothing may arrive in a few seconds.
    std::thread::sleep(Duration::from_secs(5));
    a.assert_running();
    b.assert_running();
    assert!(
        b.tree().is_empty(),
        "B got files with no way to find A: {:?}{}",
        describe(&b.tree()),
        logs(&[&a, &b])
    );
    for p in [&a, &b] {
        assert!(
            !p.log_text().contains("peer connected"),
            "a connection with discovery off:{}",
            logs(&[&a, &b])
        );
    }

    drop((a, b));
    drop(lan);
}
