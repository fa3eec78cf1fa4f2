//! Peers behind NATs: two home networks, each behind its own masquerading
//! gateway (endpoint-independent mapping, conntrack filtering), and a tracker
//! on the internet between them. Neither peer can be dialed; the tracker
//! introduces them and they punch a hole for the UDP carrier; behind
//! symmetric NATs (a random port per flow) punching fails and the relay
//! carries the channel. Skipped
//! (passing, with a message) when not root or without `ip` or `nft`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};

use common::netns::{self, Host, Internet, Mapping};
use common::{Node, bin, noise, printed_secret, wait_same, wait_until};
use daemon::status::FolderStatus;

const TRACKER_PORT: u16 = 6969;

fn skip(test: &str) -> bool {
    if let Some(why) = netns::unsupported() {
        eprintln!("skipping {test}: {why}");
        return true;
    }
    if std::process::Command::new("nft")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("skipping {test}: nft (nftables) is missing");
        return true;
    }
    false
}

/// `(address, found_by, carrier)` of each connected peer.
fn peers(node: &Node) -> Vec<(String, String, String)> {
    FolderStatus::read(&node.dir.join(".sync"))
        .map(|s| {
            s.peers
                .into_iter()
                .map(|p| (p.address, p.found_by, p.carrier))
                .collect()
        })
        .unwrap_or_default()
}

/// A server started with [`serve`], killed on drop.
struct Killed(Child);

/// `swarmsync ARGS` inside `host`, logging (at debug) to `log`.
fn serve(host: &Host, args: &[&str], log: &Path) -> Killed {
    let out = fs::File::create(log).unwrap();
    Killed(
        host.command(bin())
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The carrier of each connected peer of `node`.
fn carriers(node: &Node) -> Vec<String> {
    peers(node).into_iter().map(|(_, _, c)| c).collect()
}

/// A tracker and a relay on hosts of their own, and the arguments that make a
/// peer find others only through them.
fn tracker_and_relay(net: &mut Internet, tmp: &Path) -> ([Killed; 2], Vec<String>) {
    let tracker_host = net.add_host("t");
    let relay_host = net.add_host("r");
    let tracker = serve(
        &tracker_host,
        &["tracker", "--listen", &format!("0.0.0.0:{TRACKER_PORT}")],
        &tmp.join("tracker.log"),
    );
    let relay = serve(
        &relay_host,
        &["relay", "--listen", "0.0.0.0:22067"],
        &tmp.join("relay.log"),
    );
    let args = [
        "--no-lan",
        "--no-dht",
        "--no-pex",
        "--no-upnp",
        "--tracker",
        &format!("{}:{TRACKER_PORT}", tracker_host.addr),
        "--relay",
        &format!("{}:22067", relay_host.addr),
    ]
    .map(str::to_owned);
    ([tracker, relay], args.to_vec())
}

/// A in `ha` with the folder `a_dir`, then B in `hb` with A's secret, both with
/// `args`; returns once their trees match, and again after B wrote a file.
fn synced_pair(ha: &Host, hb: &Host, tmp: &Path, args: &[&str]) -> (Node, Node) {
    let a = Node::start_in(ha, &tmp.join("a"), args);
    let secret = printed_secret(&a);
    let b = Node::start_in(hb, &tmp.join("b"), &[args, &["--secret", &secret]].concat());
    wait_same(&[&a, &b]);
    b.write("from-b.txt", b"and back");
    wait_same(&[&a, &b]);
    (a, b)
}

#[test]
fn peers_behind_two_nats_punch_through_with_the_trackers_help() {
    let test = "peers_behind_two_nats_punch_through_with_the_trackers_help";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("nat");
    let tmp = tempfile::tempdir().unwrap();
    // The relay is there too, as a last resort that must not be needed.
    let (_servers, args) = tracker_and_relay(&mut net, tmp.path());
    let (ha, _gw_a) = net.add_nat_site("a");
    let (hb, _gw_b) = net.add_nat_site("b");
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(a_dir.join("sub")).unwrap();
    fs::write(a_dir.join("hello.txt"), b"hello").unwrap();
    fs::write(a_dir.join("sub/big.bin"), noise(2 << 20, 5)).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (a, b) = synced_pair(&ha, &hb, tmp.path(), &args);
    // Directly, over QUIC, through the punched hole.
    wait_until("a QUIC channel found by punching", &[&a, &b], || {
        peers(&a)
            .iter()
            .chain(&peers(&b))
            .any(|(_, by, carrier)| carrier == "quic" && (by == "punch" || by == "incoming"))
    });
    for node in [&a, &b] {
        assert!(
            peers(node).iter().all(|(_, _, carrier)| carrier == "quic"),
            "{:?}",
            peers(node)
        );
        assert!(
            !node.plain_log().contains("source=\"relay\""),
            "a channel went through the relay:\n{}",
            node.plain_log()
        );
    }
}

#[test]
fn with_udp_blocked_behind_both_nats_peers_meet_through_the_relay() {
    let test = "with_udp_blocked_behind_both_nats_peers_meet_through_the_relay";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("relay");
    let relay_host = net.add_host("r");
    let (ha, gw_a) = net.add_nat_site("a");
    let (hb, gw_b) = net.add_nat_site("b");
    // No UDP leaves either home: no QUIC, no punching, no tracker.
    for gw in [&gw_a, &gw_b] {
        gw.exec(
            "nft",
            &[
                "insert", "rule", "inet", "filter", "forward", "meta", "l4proto", "udp", "drop",
            ],
        )
        .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let relay_at = format!("{}:22067", relay_host.addr);
    let _relay = serve(
        &relay_host,
        &["relay", "--listen", "0.0.0.0:22067"],
        &tmp.path().join("relay.log"),
    );
    // The relay is the only way they can learn of each other, too.
    let only_relay = [
        "--no-lan",
        "--no-dht",
        "--no-pex",
        "--no-tracker",
        "--relay",
        &relay_at,
    ];
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(a_dir.join("sub")).unwrap();
    fs::write(a_dir.join("sub/big.bin"), noise(3 << 20, 9)).unwrap();
    let (a, b) = synced_pair(&ha, &hb, tmp.path(), &only_relay);
    wait_until("both on the relay", &[&a, &b], || {
        carriers(&a) == ["relay"] && carriers(&b) == ["relay"]
    });
}

#[test]
fn behind_two_symmetric_nats_punching_fails_and_the_relay_carries() {
    let test = "behind_two_symmetric_nats_punching_fails_and_the_relay_carries";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("symm");
    let tmp = tempfile::tempdir().unwrap();
    let (_servers, args) = tracker_and_relay(&mut net, tmp.path());
    let (ha, _gw_a) = net.add_nat_site_mapped("a", Mapping::Symmetric);
    let (hb, _gw_b) = net.add_nat_site_mapped("b", Mapping::Symmetric);
    let a_dir = tmp.path().join("a");
    fs::create_dir_all(a_dir.join("sub")).unwrap();
    fs::write(a_dir.join("sub/big.bin"), noise(2 << 20, 11)).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (a, b) = synced_pair(&ha, &hb, tmp.path(), &args);
    wait_until("both on the relay", &[&a, &b], || {
        carriers(&a) == ["relay"] && carriers(&b) == ["relay"]
    });
    // The tracker introduced them and they tried to punch first: the relay was
    // the last resort, not the first choice.
    let punched = [&a, &b]
        .iter()
        .any(|n| n.plain_log().contains("tracker introduced us; punching"));
    assert!(
        punched,
        "no punch was tried:\n{}\n{}",
        a.plain_log(),
        b.plain_log()
    );
}

#[test]
fn peers_move_off_the_relay_once_a_direct_path_works() {
    let test = "peers_move_off_the_relay_once_a_direct_path_works";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("moveoff");
    let relay_host = net.add_host("r");
    let (ha, hb) = (net.add_host("a"), net.add_host("b"));
    // At first the router forwards nothing between A and B.
    let block = format!(
        "table inet block {{\n chain forward {{\n  type filter hook forward priority 0;\n  \
         ip saddr {a} ip daddr {b} drop\n  ip saddr {b} ip daddr {a} drop\n }}\n}}\n",
        a = ha.addr,
        b = hb.addr
    );
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("block.nft");
    fs::write(&rules, block).unwrap();
    net.router_exec("nft", &["-f", rules.to_str().unwrap()])
        .unwrap();
    let relay_at = format!("{}:22067", relay_host.addr);
    let _relay = serve(
        &relay_host,
        &["relay", "--listen", "0.0.0.0:22067"],
        &tmp.path().join("relay.log"),
    );
    let off = [
        "--no-lan",
        "--no-dht",
        "--no-pex",
        "--no-tracker",
        "--no-upnp",
    ];
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(&a_dir).unwrap();
    fs::write(a_dir.join("hello.txt"), b"hello").unwrap();
    let a = Node::start_in(&ha, &a_dir, &[&off[..], &["--relay", &relay_at]].concat());
    let secret = printed_secret(&a);
    let a_addr = a.addr();
    let b = Node::start_in(
        &hb,
        &b_dir,
        &[
            &off[..],
            &[
                "--relay",
                &relay_at,
                "--secret",
                &secret,
                "--known-host",
                &a_addr,
            ],
        ]
        .concat(),
    );
    wait_same(&[&a, &b]);
    wait_until("B on the relay", &[&a, &b], || carriers(&b) == ["relay"]);
    // The direct path opens: B's next retry of A's address replaces the
    // relayed channel.
    net.router_exec("nft", &["delete", "table", "inet", "block"])
        .unwrap();
    wait_until("B moved to a direct channel", &[&a, &b], || {
        carriers(&b) == ["tcp"] && carriers(&a) == ["tcp"]
    });
    b.write("after.txt", b"direct now");
    wait_same(&[&a, &b]);
}
