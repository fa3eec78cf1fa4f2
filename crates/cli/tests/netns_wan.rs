//! Peers on different namespaced hosts, as across the internet (each host on
//! its own subnet behind one router, so no LAN discovery crosses): they find
//! each other through peer exchange and trackers. Skipped (passing, with a
//! message) when not root or without `ip`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use common::netns::{self, Internet};
use common::{Node, noise, printed_secret, wait_same, wait_until};
use daemon::status::FolderStatus;

/// Whether to skip, saying why.
fn skip(test: &str) -> bool {
    if let Some(why) = netns::unsupported() {
        eprintln!("skipping {test}: {why}");
        return true;
    }
    false
}

/// The addresses of the peers `node` is connected to, with the source that
/// found each.
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

fn is_connected_to(node: &Node, ip: &str) -> bool {
    connected(node)
        .iter()
        .any(|(addr, _)| addr.starts_with(&format!("{ip}:")))
}

fn fill(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello").unwrap();
    std::fs::write(dir.join("sub/big.bin"), noise(3 << 20, 7)).unwrap();
}

const OFF: [&str; 3] = ["--no-lan", "--no-tracker", "--no-dht"];

#[test]
fn peer_exchange_introduces_a_peer_known_only_to_a_neighbour() {
    let test = "peer_exchange_introduces_a_peer_known_only_to_a_neighbour";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("pex");
    let (ha, hb, hc) = (net.add_host("a"), net.add_host("b"), net.add_host("c"));
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    std::fs::create_dir_all(&c_dir).unwrap();
    fill(&c_dir);

    // C makes the folder; B knows C; A knows only B.
    let c = Node::start_in(&hc, &c_dir, &OFF);
    let secret = printed_secret(&c);
    let c_addr = c.addr();
    let b_known = ["--secret", &secret, "--known-host", &c_addr];
    let b = Node::start_in(&hb, &b_dir, &[&OFF[..], &b_known[..]].concat());
    wait_until("B connected to C", &[&b, &c], || {
        is_connected_to(&b, &hc.addr.to_string())
    });
    let b_addr = b.addr();
    let a_known = ["--secret", &secret, "--known-host", &b_addr];
    let a = Node::start_in(&ha, &a_dir, &[&OFF[..], &a_known[..]].concat());

    // Either side may dial first: C hears of A from B as A hears of C. The
    // channel that stays is the one with the smaller rank, so it is "pex" on
    // the side that dialed it and "incoming" on the other.
    let a_addr = a.addr();
    wait_until(
        "A and C connected through peer exchange",
        &[&a, &b, &c],
        || {
            connected(&a)
                .iter()
                .any(|(addr, by)| addr == &c_addr && by == "pex")
                || connected(&c)
                    .iter()
                    .any(|(addr, by)| addr == &a_addr && by == "pex")
        },
    );
    wait_same(&[&a, &b, &c]);
}

#[test]
fn without_peer_exchange_a_stays_with_its_known_host() {
    let test = "without_peer_exchange_a_stays_with_its_known_host";
    if skip(test) {
        return;
    }
    let mut net = Internet::create("nopex");
    let (ha, hb, hc) = (net.add_host("a"), net.add_host("b"), net.add_host("c"));
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    std::fs::create_dir_all(&c_dir).unwrap();
    fill(&c_dir);
    let c = Node::start_in(&hc, &c_dir, &OFF);
    let secret = printed_secret(&c);
    let c_addr = c.addr();
    let b = Node::start_in(
        &hb,
        &b_dir,
        &[&OFF[..], &["--secret", &secret, "--known-host", &c_addr]].concat(),
    );
    let b_addr = b.addr();
    let a = Node::start_in(
        &ha,
        &a_dir,
        &[
            &OFF[..],
            &["--no-pex", "--secret", &secret, "--known-host", &b_addr],
        ]
        .concat(),
    );
    // A still gets everything, through B.
    wait_same(&[&a, &b, &c]);
    // B has shared C's address by now; A, with exchange off, ignored it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        !is_connected_to(&a, &hc.addr.to_string()),
        "A connected to C with --no-pex: {:?}",
        connected(&a)
    );
}

fn carriers(node: &Node) -> Vec<String> {
    FolderStatus::read(&node.dir.join(".sync"))
        .map(|s| s.peers.into_iter().map(|p| p.carrier).collect())
        .unwrap_or_default()
}

#[test]
fn the_udp_carrier_syncs_where_tcp_is_blocked_and_tcp_is_kept_where_both_work() {
    let test = "the_udp_carrier_syncs_where_tcp_is_blocked_and_tcp_is_kept_where_both_work";
    if skip(test) {
        return;
    }
    if std::process::Command::new("nft")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("skipping {test}: nft (nftables) is missing");
        return;
    }
    let mut net = Internet::create("quic");
    let (ha, hb, hc) = (net.add_host("a"), net.add_host("b"), net.add_host("c"));
    // The router forwards no TCP between A and B; C reaches A both ways.
    let rules = format!(
        "table inet block {{\n chain forward {{\n  type filter hook forward priority 0;\n  \
         ip saddr {b} ip daddr {a} meta l4proto tcp drop\n  \
         ip saddr {a} ip daddr {b} meta l4proto tcp drop\n }}\n}}\n",
        a = ha.addr,
        b = hb.addr
    );
    let tmp = tempfile::tempdir().unwrap();
    let rules_file = tmp.path().join("block.nft");
    std::fs::write(&rules_file, rules).unwrap();
    net.router_exec("nft", &["-f", rules_file.to_str().unwrap()])
        .unwrap();
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    std::fs::create_dir_all(&a_dir).unwrap();
    fill(&a_dir);
    let no_pex = ["--no-lan", "--no-tracker", "--no-dht", "--no-pex"];
    let a = Node::start_in(&ha, &a_dir, &no_pex);
    let secret = printed_secret(&a);
    let a_addr = a.addr();
    let joining = [&no_pex[..], &["--secret", &secret, "--known-host", &a_addr]].concat();
    let b = Node::start_in(&hb, &b_dir, &joining);
    let c = Node::start_in(&hc, &c_dir, &joining);
    wait_same(&[&a, &b, &c]);
    wait_until("B on QUIC, C on TCP", &[&a, &b, &c], || {
        carriers(&b) == ["quic"] && carriers(&c) == ["tcp"]
    });
}
