//! A harness for tests that run real `swarmsync sync` processes on loopback.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod netns;
pub mod server;

/// How long a test waits for peers to agree before it fails (a bound, not a
/// measurement).
pub const SETTLE: Duration = Duration::from_secs(60);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swarmsync")
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One running `swarmsync sync`.
pub struct Node {
    pub dir: PathBuf,
    /// The address others dial (127.0.0.1, or the namespaced host's).
    pub ip: String,
    pub port: u16,
    pub log: PathBuf,
    /// The namespace it runs in, if any.
    netns: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    /// Starts `sync` on `dir` with `--listen 127.0.0.1:port --no-lan --no-tracker
    /// --no-dht` and the
    /// extra arguments.
    pub fn start(dir: &Path, extra: &[String]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// [`Node::start`] with extra environment variables (e.g. another
    /// `RUST_LOG`, which then replaces the default `info`).
    pub fn start_with_env(dir: &Path, extra: &[String], env: &[(&str, &str)]) -> Self {
        fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut args = vec![
            "sync".to_owned(),
            dir.display().to_string(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            // Nothing but loopback: no LAN, no public trackers or DHT routers.
            "--no-lan".to_owned(),
            "--no-tracker".to_owned(),
            "--no-dht".to_owned(),
        ];
        args.extend(extra.iter().cloned());
        Self::launch(dir, "127.0.0.1".into(), port, None, args, env)
    }

    /// Starts `sync` on `dir` inside the namespaced `host`, listening on
    /// `0.0.0.0:41544`, with only the extra arguments (no discovery source is
    /// turned off: the namespaces have no route out).
    pub fn start_in(host: &netns::Host, dir: &Path, extra: &[&str]) -> Self {
        fs::create_dir_all(dir).unwrap();
        let port = 41_544;
        let mut args = vec![
            "sync".to_owned(),
            dir.display().to_string(),
            "--listen".to_owned(),
            format!("0.0.0.0:{port}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let env = [("RUST_LOG", "info,net=debug")];
        Self::launch(
            dir,
            host.addr.to_string(),
            port,
            Some(host.ns.clone()),
            args,
            &env,
        )
    }

    fn launch(
        dir: &Path,
        ip: String,
        port: u16,
        netns: Option<String>,
        args: Vec<String>,
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.with_extension("log");
        // A new node starts a new log; a restart appends to it.
        let _ = fs::remove_file(&log);
        let mut node = Self {
            dir: dir.to_owned(),
            ip,
            port,
            log,
            netns,
            args,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        node.spawn();
        node
    }

    /// `--known-host` for this node.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                // `ip netns exec` execs swarmsync, so the child is swarmsync.
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let child = command
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("swarmsync starts");
        self.child = Some(child);
    }

    /// Stops it the hard way (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same arguments (the secret is stored by now).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (false once it exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// The log without terminal colour codes.
    pub fn plain_log(&self) -> String {
        strip_ansi(&self.log_text())
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    /// Writes `rel` the way editors save: the whole content to a temporary
    /// outside the folder, then renamed over it, so the node can never scan
    /// a half-written (or just truncated) file, however slow the machine.
    pub fn save(&self, rel: &str, data: &[u8]) {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let temp = self.dir.with_extension("saving");
        fs::write(&temp, data).unwrap();
        fs::rename(&temp, path).unwrap();
    }

    pub fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        tree(&self.dir)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Files in `.sync/Archive/`, by content.
    pub fn archived(&self) -> Vec<Vec<u8>> {
        tree(&self.dir.join(".sync/Archive"))
            .into_values()
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The read-write key a first run printed.
pub fn printed_secret(node: &Node) -> String {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if let Some(key) = node
            .log_text()
            .lines()
            .find_map(|l| l.strip_prefix("read-write:"))
            .and_then(|l| l.split_whitespace().next())
        {
            return key.to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no secret printed:\n{}", node.log_text());
}

/// Every file and directory below `root` except `.sync/`, by relative path
/// (directories end in `/`). The daemon may rename or remove files while we
/// walk; whatever vanishes under us is left out (the callers poll again).
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn gone<T>(r: std::io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading the tree: {e}"),
        }
    }
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Some(entries) = gone(fs::read_dir(&dir)) else {
            continue;
        };
        for entry in entries {
            let Some(entry) = gone(entry) else { continue };
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".sync" {
                continue;
            }
            let Some(kind) = gone(entry.file_type()) else {
                continue;
            };
            if kind.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else if kind.is_symlink() {
                if let Some(target) = gone(fs::read_link(&path)) {
                    let target = target.to_string_lossy().as_bytes().to_vec();
                    out.insert(format!("{rel} ->"), target);
                }
            } else if let Some(data) = gone(fs::read(&path)) {
                out.insert(rel, data);
            }
        }
    }
    out
}

/// Waits until `done` holds, or fails the test after [`SETTLE`] with `what`.
pub fn wait_until(what: &str, nodes: &[&Node], mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: String = nodes
        .iter()
        .map(|n| format!("\n--- {}\n{}", n.dir.display(), n.log_text()))
        .collect();
    panic!("timed out waiting for: {what}{logs}");
}

/// Waits until every node holds the same tree, byte for byte.
pub fn wait_same(nodes: &[&Node]) {
    let describe = || {
        nodes
            .iter()
            .map(|n| {
                let files: Vec<String> = n
                    .tree()
                    .into_iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} ({} bytes: {:?})",
                            v.len(),
                            String::from_utf8_lossy(&v[..v.len().min(40)])
                        )
                    })
                    .collect();
                format!("\n{}: {files:#?}", n.dir.display())
            })
            .collect::<String>()
    };
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        let first = nodes[0].tree();
        if nodes.iter().all(|n| n.tree() == first) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let trees = describe();
    wait_until(&format!("identical trees{trees}"), nodes, || false);
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
