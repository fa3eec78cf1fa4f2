//! LAN discovery for real: two nodes in two network namespaces joined by a
//! veth pair, no known host. Each node is this test binary re-executed under
//! `ip netns exec` (the ignored `lan_child` test, driven by environment
//! variables). The addresses exist only inside the two namespaces.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keys::{FolderKey, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::{Connection, NetConfig, NetEvent, NetManager};

const CHILD_ENV: &str = "SWARMSYNC_NET_LAN_CHILD";

/// Why these tests cannot run here, if they cannot.
fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing".into()),
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Two namespaces `<prefix>a` and `<prefix>b` with `veth0` in each, joined, and
/// 10.231.<n>.1/.2 on them. Dropping it deletes both (and so the veth pair).
struct Netns {
    names: [String; 2],
}

impl Netns {
    fn create(prefix: &str, subnet: u8) -> Result<Self, String> {
        let names = [format!("{prefix}a"), format!("{prefix}b")];
        // Leftovers of an earlier run of this same test (same pid is unlikely,
        // but a crash could leave them): ours alone, by exact name.
        for n in &names {
            let _ = ip(&["netns", "del", n]);
        }
        let guard = Self { names };
        let [a, b] = &guard.names;
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", b])?;
        ip(&[
            "link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth0", "netns", b,
        ])?;
        for (i, n) in guard.names.iter().enumerate() {
            let addr = format!("10.231.{subnet}.{}/24", i + 1);
            ip(&[
                "-n",
                n,
                "addr",
                "add",
                &addr,
                "broadcast",
                "+",
                "dev",
                "veth0",
            ])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "link", "set", "veth0", "up"])?;
        }
        Ok(guard)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// Kills the child if the test fails before it exits.
struct Reaped(Option<Child>);

impl Reaped {
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let rounds = limit.as_millis() / 50;
        for _ in 0..rounds {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "child did not finish in {limit:?}; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_child(ns: &str, family: &str, secret: &str, me: PeerId, other: PeerId) -> Reaped {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args([
            "tests::netns::lan_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{family} {secret} {me} {other}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Reaped(Some(child))
}

/// The line a child prints once connected: `LAN-CONNECTED <source> <hash>`.
fn connected_line(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("LAN-CONNECTED "))
        .unwrap_or_else(|| panic!("child printed no connection; stdout:\n{text}"));
    line.1.split_whitespace().map(str::to_owned).collect()
}

/// Runs two nodes (IPv4 broadcast or IPv6 multicast only) in fresh namespaces
/// and returns what each printed on connecting.
fn run_pair(
    test: &str,
    family: &str,
    subnet: u8,
    same_ns: bool,
) -> Option<(Vec<String>, Vec<String>)> {
    if let Some(why) = unsupported() {
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    let prefix = format!("swn{}{family}{subnet}", std::process::id());
    let ns = Netns::create(&prefix, subnet).unwrap();
    let key = rw_key();
    let (pa, pb) = peer_ids();
    let secret = key.to_string();
    let a = spawn_child(&ns.names[0], family, &secret, pa, pb);
    let b = spawn_child(&ns.names[usize::from(!same_ns)], family, &secret, pb, pa);
    let (oa, ob) = (a.wait(LIMIT * 2), b.wait(LIMIT * 2));
    drop(ns);
    assert!(
        oa.status.success(),
        "node a failed:\n{}",
        String::from_utf8_lossy(&oa.stdout)
    );
    assert!(
        ob.status.success(),
        "node b failed:\n{}",
        String::from_utf8_lossy(&ob.stdout)
    );
    let (la, lb) = (connected_line(&oa), connected_line(&ob));
    eprintln!("{test}: a {la:?}, b {lb:?}");
    // Both kept the same channel, found on the LAN (the acceptor says
    // "incoming").
    assert_eq!(la[1], lb[1], "same channel on both sides");
    assert!(la[0] == "lan" || lb[0] == "lan", "{la:?} {lb:?}");
    Some((la, lb))
}

#[test]
fn lan_broadcast_connects_across_namespaces() {
    if let Some((a, b)) = run_pair("lan_broadcast_connects_across_namespaces", "v4", 7, false) {
        assert!(
            a[2].starts_with("10.231.7.") && b[2].starts_with("10.231.7."),
            "{a:?} {b:?}"
        );
    }
}

#[test]
fn lan_multicast_v6_connects_across_namespaces() {
    if let Some((a, b)) = run_pair(
        "lan_multicast_v6_connects_across_namespaces",
        "v6",
        8,
        false,
    ) {
        assert!(
            a[2].starts_with("[fe80::") && b[2].starts_with("[fe80::"),
            "{a:?} {b:?}"
        );
    }
}

/// Two instances on one host share the discovery port (`SO_REUSEPORT`) and
/// still find each other.
#[test]
fn lan_instances_on_one_host_share_the_port() {
    if let Some((a, b)) = run_pair("lan_instances_on_one_host_share_the_port", "v4", 9, true) {
        assert!(
            a[2].starts_with("10.231.9.1:") && b[2].starts_with("10.231.9.1:"),
            "{a:?} {b:?}"
        );
    }
}

/// One node inside a namespace; does nothing unless started by the test above.
#[tokio::test]
#[ignore = "a node started inside a namespace by the lan_* tests"]
async fn lan_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split_whitespace();
    let family = parts.next().unwrap();
    let key: FolderKey = parts.next().unwrap().parse().unwrap();
    let me: PeerId = parts.next().unwrap().parse().unwrap();
    let other: PeerId = parts.next().unwrap().parse().unwrap();
    let v6 = family == "v6";
    let config = NetConfig {
        listen: if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap(),
        lan: !v6,
        // A quick period so a lost first datagram is repeated soon.
        lan_interval: Duration::from_secs(1),
        ..loopback_config()
    };
    let mut manager = NetManager::bind(config, me).unwrap();
    if v6 {
        // IPv6 multicast alone, to test that path by itself.
        let lan = crate::discovery::lan::LanDiscovery::start(crate::discovery::lan::LanConfig {
            peer: me,
            tcp_port: manager.local_addr().port(),
            port: crate::LAN_PORT,
            interval: Duration::from_secs(1),
            ipv4: false,
            ipv6: true,
        })
        .unwrap();
        manager.add_discovery(Box::new(lan));
    }
    let (handle, mut events) = manager.start(vec![creds(&key)]);
    // Both may dial at once: a channel we hold may be closed by the peer when
    // a better one arrives, so on failure take the next (replacing) one. Only
    // a channel both sides hold can carry the exchange.
    let mut current: Option<Connection> = None;
    for attempt in 0..20 {
        let c = match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(NetEvent::Connected(c))) => c,
            other => panic!("no connection (attempt {attempt}): {other:?}"),
        };
        assert_eq!(c.peer, other);
        let c = current.insert(c);
        if exchange(c, me, other).await.is_ok() {
            let hash: String = c
                .stream
                .session()
                .info()
                .transcript_hash
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!("LAN-CONNECTED {} {hash} {}", c.source, c.remote);
            // Wait for the peer's authenticated close (after its exchange).
            let mut rest = Vec::new();
            tokio::time::timeout(LIMIT, c.stream.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert!(rest.is_empty());
            handle.shutdown();
            return;
        }
    }
    panic!("no channel carried the exchange");
}

/// Hello both ways, then our authenticated close.
async fn exchange(c: &mut Connection, me: PeerId, other: PeerId) -> std::io::Result<()> {
    let msg = format!("hello from {me}");
    c.stream.write_all(msg.as_bytes()).await?;
    c.stream.flush().await?;
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(LIMIT, c.stream.read_exact(&mut got)).await??;
    assert_eq!(got, format!("hello from {other}").into_bytes());
    c.stream.shutdown().await
}
