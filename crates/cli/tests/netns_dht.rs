//! Mainline DHT discovery end to end: real `swarmsync sync` processes on
//! namespaced hosts, each on its own subnet behind one router (so no LAN
//! discovery crosses), with LAN discovery, trackers and peer exchange off and
//! no known host. They find each other only through a private DHT whose one
//! bootstrap node runs on a third host:
//!
//! * a tiny BEP 5 node in Python (below), standing in for a public router: our
//!   own nodes run mainline's adaptive mode, a client that answers nobody
//!   until it has been reachable for 15 minutes, so a third `swarmsync` would
//!   not serve the other two in time;
//! * a real libtorrent node (python3-libtorrent), which also checks that what
//!   we announce is what a BitTorrent client reads back under the folder id.
//!
//! Nothing has a route out of the namespaces, so nothing sent here can leave
//! them. Skipped (passing, with a message) when not root, without `ip`, or
//! without python3 (and, for the second test, python3-libtorrent).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Host, Internet};
use common::{Node, SETTLE, bin, noise, printed_secret, wait_same, wait_until};
use daemon::status::FolderStatus;

/// The UDP port of the bootstrap node.
const BOOT_PORT: u16 = 6881;
/// Our TCP listen port in every host (`Node::start_in`).
const TCP_PORT: u16 = 41_544;

/// A minimal BEP 5 node: answers ping, find_node, get_peers, get (BEP 44,
/// which mainline uses to collect announce tokens) and announce_peer, and
/// prints each announcement as `announce HASH IP:PORT`. It knows no other node.
const TINY_NODE: &str = r#"
import hashlib, os, socket, sys

def decode(b, i=0):
    c = b[i:i + 1]
    if c == b'i':
        j = b.index(b'e', i)
        return int(b[i + 1:j]), j + 1
    if c in (b'l', b'd'):
        i, out = i + 1, []
        while b[i:i + 1] != b'e':
            v, i = decode(b, i)
            out.append(v)
        return (out if c == b'l' else dict(zip(out[::2], out[1::2]))), i + 1
    j = b.index(b':', i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n

def encode(v):
    if isinstance(v, int):
        return b'i%de' % v
    if isinstance(v, bytes):
        return b'%d:%s' % (len(v), v)
    if isinstance(v, list):
        return b'l' + b''.join(map(encode, v)) + b'e'
    return b'd' + b''.join(encode(k) + encode(v[k]) for k in sorted(v)) + b'e'

me, secret, peers = os.urandom(20), os.urandom(16), {}
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(('0.0.0.0', int(sys.argv[1])))
print('ready', flush=True)
while True:
    data, (ip, port) = sock.recvfrom(4096)
    try:
        msg = decode(data)[0]
        query, args, tid = msg[b'q'], msg.get(b'a', {}), msg[b't']
    except Exception:
        continue
    token = hashlib.sha1(secret + ip.encode()).digest()[:8]
    r = {b'id': me}
    if query == b'find_node':
        r[b'nodes'] = b''
    elif query in (b'get_peers', b'get'):
        r[b'token'] = token
        values = peers.get(args.get(b'info_hash'), set()) if query == b'get_peers' else set()
        if values:
            r[b'values'] = sorted(values)
        else:
            r[b'nodes'] = b''
    elif query == b'announce_peer':
        if args.get(b'token') != token:
            sock.sendto(encode({b't': tid, b'y': b'e', b'e': [203, b'bad token']}), (ip, port))
            continue
        at = port if args.get(b'implied_port') else args[b'port']
        peers.setdefault(args[b'info_hash'], set()).add(socket.inet_aton(ip) + at.to_bytes(2, 'big'))
        print('announce', args[b'info_hash'].hex(), '%s:%d' % (ip, at), flush=True)
    elif query != b'ping':
        sock.sendto(encode({b't': tid, b'y': b'e', b'e': [204, b'unknown method']}), (ip, port))
        continue
    reply = {b't': tid, b'y': b'r', b'r': r, b'ip': socket.inet_aton(ip) + port.to_bytes(2, 'big')}
    sock.sendto(encode(reply), (ip, port))
"#;

/// A libtorrent DHT node on `PORT` with no bootstrap node of its own (the
/// first node of a new network), private addresses allowed, LSD, UPnP and
/// NAT-PMP off. A second session on `PORT + 1`, bootstrapped from the first,
/// asks for the peers of the info hash the test writes to `QUERY_FILE` every
/// 2 s (a node does not read its own store in a lookup) and prints each
/// answer as `peers HASH IP:PORT…`; announcements the first one receives are
/// printed as `announce HASH IP:PORT`.
const LIBTORRENT_NODE: &str = r#"
import os, sys, time
import libtorrent as lt

port, me, query_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def session(p, bootstrap):
    return lt.session({
        'listen_interfaces': '%s:%d' % (me, p),
        'enable_dht': True,
        'enable_lsd': False,
        'enable_upnp': False,
        'enable_natpmp': False,
        'dht_bootstrap_nodes': bootstrap,
        'dht_restrict_routing_ips': False,
        'dht_restrict_search_ips': False,
        'dht_privacy_lookups': False,
        'dht_ignore_dark_internet': False,
        'alert_mask': lt.alert.category_t.dht_notification
            | lt.alert.category_t.dht_operation_notification,
    })

node = session(port, '')
observer = session(port + 1, '%s:%d' % (me, port))
print('ready', lt.__version__, flush=True)
asked = 0
while True:
    for s in (node, observer):
        for a in s.pop_alerts():
            if isinstance(a, lt.dht_get_peers_reply_alert):
                found = ' '.join('%s:%d' % p for p in a.peers())
                print('peers', str(a.info_hash), found, flush=True)
            elif isinstance(a, lt.dht_announce_alert):
                print('announce', str(a.info_hash), '%s:%d' % (a.ip, a.port), flush=True)
    if time.time() - asked > 2 and os.path.exists(query_file):
        wanted = open(query_file).read().strip()
        if len(wanted) == 40:
            asked = time.time()
            observer.dht_get_peers(lt.sha1_hash(bytes.fromhex(wanted)))
    time.sleep(0.1)
"#;

/// A Python script running inside a host, its output in a file; killed on
/// drop.
struct Script {
    child: Child,
    out: PathBuf,
}

impl Script {
    fn start(host: &Host, python: &str, script: &str, args: &[String], out: PathBuf) -> Self {
        let log = fs::File::create(&out).unwrap();
        let child = host
            .command(python)
            .arg("-u")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 starts");
        Self { child, out }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits (bounded by [`SETTLE`]) until the output has a line for which
    /// `pred` holds; fails early if the script died.
    fn wait_line(&mut self, what: &str, nodes: &[&Node], pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while start.elapsed() < SETTLE {
            if self.output().lines().any(&pred) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the script exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let script = self.output();
        wait_until(&format!("{what}; script output:\n{script}"), nodes, || {
            false
        });
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first Python 3 that can import `module` (pyenv's `python3` may lack
/// the distribution's packages that `/usr/bin/python3` has).
fn python_with(module: &str) -> Option<String> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", &format!("import {module}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

/// The Python to use, or `None` after saying why the test is skipped.
fn setup(test: &str, module: &str) -> Option<String> {
    if let Some(why) = netns::unsupported() {
        eprintln!("skipping {test}: {why}");
        return None;
    }
    let python = python_with(module);
    if python.is_none() {
        eprintln!("skipping {test}: no python3 with the {module} module");
    }
    python
}

fn fill(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("hello.txt"), b"found through the DHT").unwrap();
    fs::write(dir.join("sub/big.bin"), noise(1 << 20, 11)).unwrap();
}

/// The folder id (hex) of `secret`, as `swarmsync key info --json` prints it.
fn folder_id(secret: &str) -> String {
    let out = Command::new(bin())
        .args(["key", "info", secret, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let id = text
        .split("\"folder_id\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or_else(|| panic!("no folder_id in {text}"))
        .to_owned();
    assert_eq!(id.len(), 40, "{text}");
    id
}

/// The peers `node` is connected to: (address, source that found it).
fn connected(node: &Node) -> Vec<(String, String)> {
    FolderStatus::read(&node.dir.join(".sync"))
        .map(|s| {
            s.peers
                .into_iter()
                .map(|p| (p.address, p.found_by))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts A (which makes the folder), waits until its first DHT round is
/// done (its announcement is in), starts B with A's key, and checks that the
/// two sync both ways, B having dialed A because the DHT named it. Returns A,
/// B and the folder id.
fn sync_through_dht(
    net: &mut Internet,
    boot: &Host,
    tmp: &Path,
    script: &mut Script,
) -> (Node, Node, Host, String) {
    let (ha, hb) = (net.add_host("a"), net.add_host("b"));
    let bootstrap = format!("{}:{BOOT_PORT}", boot.addr);
    let only_dht = [
        "--no-lan",
        "--no-tracker",
        "--no-pex",
        "--dht-bootstrap",
        &bootstrap,
    ];
    let (a_dir, b_dir) = (tmp.join("a"), tmp.join("b"));
    fill(&a_dir);
    let a = Node::start_in(&ha, &a_dir, &only_dht);
    let secret = printed_secret(&a);
    let id = folder_id(&secret);
    let a_addr = format!("{}:{TCP_PORT}", ha.addr);
    script.wait_line("A's announcement reaches the bootstrap node", &[&a], |l| {
        l.starts_with("announce ") && l.contains(&id) && l.ends_with(&a_addr)
    });
    let b = Node::start_in(
        &hb,
        &b_dir,
        &[&only_dht[..], &["--secret", &secret]].concat(),
    );
    wait_same(&[&a, &b]);
    b.write("from-b.txt", b"back the same way");
    wait_same(&[&a, &b]);
    assert_eq!(
        a.tree().get("sub/big.bin").map(Vec::len),
        Some(1 << 20),
        "the big file arrived whole"
    );
    // B's lookup ran after A's announcement was stored, so B learns A's
    // address from the DHT (A may have found B too and dialed first: then the
    // connection that stays is A's, and B shows it as incoming; and the sync
    // may be over before B's lookup has answered, so wait for it).
    let b_addr = b.addr();
    let found_a = format!("addr={a_addr} source=\"dht\"");
    wait_until("B's DHT lookup names A", &[&a, &b], || {
        b.plain_log()
            .lines()
            .any(|l| l.contains("new candidate") && l.contains(&found_a))
    });
    wait_until("a status names the DHT", &[&a, &b], || {
        connected(&b).contains(&(a_addr.clone(), "dht".to_owned()))
            || connected(&a).contains(&(b_addr.clone(), "dht".to_owned()))
    });
    for node in [&a, &b] {
        let log = node.plain_log();
        assert!(log.contains("DHT node up"), "{log}");
    }
    (a, b, ha, id)
}

#[test]
fn peers_find_each_other_only_through_a_private_dht() {
    let test = "peers_find_each_other_only_through_a_private_dht";
    let Some(python) = setup(test, "socket") else {
        return;
    };
    let mut net = Internet::create("dht");
    let boot = net.add_host("boot");
    let tmp = tempfile::tempdir().unwrap();
    let mut script = Script::start(
        &boot,
        &python,
        TINY_NODE,
        &[BOOT_PORT.to_string()],
        tmp.path().join("boot.out"),
    );
    script.wait_line("the bootstrap node is ready", &[], |l| l == "ready");
    let (_a, b, _ha, id) = sync_through_dht(&mut net, &boot, tmp.path(), &mut script);
    // B announced as well, its TCP port (not its DHT port) at its address.
    let b_addr = b.addr();
    script.wait_line("B's announcement", &[&b], |l| {
        l == format!("announce {id} {b_addr}")
    });
}

#[test]
fn libtorrent_bootstraps_our_peers_and_reads_our_announcements() {
    let test = "libtorrent_bootstraps_our_peers_and_reads_our_announcements";
    let Some(python) = setup(test, "libtorrent") else {
        return;
    };
    let mut net = Internet::create("lt");
    let boot = net.add_host("boot");
    let tmp = tempfile::tempdir().unwrap();
    let query = tmp.path().join("query");
    let mut script = Script::start(
        &boot,
        &python,
        LIBTORRENT_NODE,
        &[
            BOOT_PORT.to_string(),
            boot.addr.to_string(),
            query.display().to_string(),
        ],
        tmp.path().join("boot.out"),
    );
    script.wait_line("the libtorrent node is ready", &[], |l| {
        l.starts_with("ready")
    });
    let (a, b, ha, id) = sync_through_dht(&mut net, &boot, tmp.path(), &mut script);
    // libtorrent's own lookup under the folder id finds A's TCP address.
    fs::write(&query, &id).unwrap();
    let a_addr = format!("{}:{TCP_PORT}", ha.addr);
    script.wait_line("libtorrent's get_peers returns A", &[&a, &b], |l| {
        l.starts_with(&format!("peers {id} ")) && l.split_whitespace().any(|p| p == a_addr)
    });
}

#[test]
fn malformed_dht_bootstrap_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("sync")
        .arg(tmp.path().join("d"))
        .args([
            "--no-lan",
            "--no-tracker",
            "--listen",
            "127.0.0.1:0",
            "--dht-bootstrap",
            "nonsense",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--dht-bootstrap") && stderr.contains("nonsense"),
        "{stderr}"
    );
}

#[test]
fn a_swarmsync_node_in_server_mode_bootstraps_a_private_dht() {
    let test = "a_swarmsync_node_in_server_mode_bootstraps_a_private_dht";
    if let Some(why) = netns::unsupported() {
        eprintln!("skipping {test}: {why}");
        return;
    }
    let mut net = Internet::create("ours");
    let (boot, ha, hb) = (net.add_host("boot"), net.add_host("a"), net.add_host("b"));
    let tmp = tempfile::tempdir().unwrap();
    // The bootstrap is an ordinary `sync` of some other folder, serving the
    // DHT from the start; its only "bootstrap" is itself.
    // 41546: the default DHT port.
    let boot_at = format!("{}:41546", boot.addr);
    let off = ["--no-lan", "--no-tracker", "--no-pex"];
    let serving = Node::start_in(
        &boot,
        &tmp.path().join("boot"),
        &[&off[..], &["--dht-server", "--dht-bootstrap", &boot_at]].concat(),
    );
    let only_dht = [&off[..], &["--dht-bootstrap", &boot_at]].concat();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fill(&a_dir);
    let a = Node::start_in(&ha, &a_dir, &only_dht);
    let secret = printed_secret(&a);
    wait_until(
        "A's first DHT round stored its announcement",
        &[&a, &serving],
        || {
            a.plain_log()
                .lines()
                .any(|l| l.contains("DHT announce and lookup done"))
        },
    );
    let b = Node::start_in(
        &hb,
        &b_dir,
        &[&only_dht[..], &["--secret", &secret]].concat(),
    );
    wait_same(&[&a, &b]);
    let a_addr = format!("{}:{TCP_PORT}", ha.addr);
    let b_addr = b.addr();
    wait_until("a status names the DHT", &[&a, &b], || {
        connected(&b).contains(&(a_addr.clone(), "dht".to_owned()))
            || connected(&a).contains(&(b_addr.clone(), "dht".to_owned()))
    });
}
