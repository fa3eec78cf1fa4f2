//! A large file's changed record travels as a delta from the version the peer
//! holds (wire `IndexDelta`), and as a whole record when the peer holds another;
//! the changed block travels as a delta from the old block at its place (wire
//! `DeltaRequest`).
//! Real `swarmsync sync` processes on loopback, trees compared byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Node, noise, printed_secret, wait_same};

const LOG: [(&str, &str); 1] = [("RUST_LOG", "info,daemon=debug")];
const REBUILT: &str = "record rebuilt from a delta";
const ASKED: &str = "asking for the whole record";
const BLOCK_REBUILT: &str = "block rebuilt from a delta";
const BLOCK_SENT: &str = "sent a block as a delta";
const MISMATCH: &str = "did not match its hash";

/// A file of about 24 MiB: some 380 blocks, a record of about 14 KB.
const BIG: usize = 24 << 20;

fn start_pair(tmp: &std::path::Path) -> (Node, Node) {
    let a = Node::start_with_env(&tmp.join("a"), &[], &LOG);
    let secret = printed_secret(&a);
    let args = [
        "--secret".to_owned(),
        secret,
        "--known-host".to_owned(),
        a.addr(),
    ];
    let b = Node::start_with_env(&tmp.join("b"), &args, &LOG);
    (a, b)
}

/// `data` with `insert` put in at its middle.
fn inserted(data: &[u8], insert: &[u8]) -> Vec<u8> {
    let mid = data.len() / 2;
    [&data[..mid], insert, &data[mid..]].concat()
}

fn count(node: &Node, needles: &[&str]) -> usize {
    node.plain_log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

#[test]
fn an_edit_of_a_large_file_travels_as_a_delta_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = start_pair(tmp.path());
    let original = noise(BIG, 11);
    a.save("disk.img", &original);
    wait_same(&[&a, &b]);
    assert_eq!(count(&b, &[REBUILT]), 0, "the first version goes whole");

    let edited = inserted(&original, &[0x5a; 100]);
    a.save("disk.img", &edited);
    wait_same(&[&a, &b]);
    assert_eq!(b.tree()["disk.img"], edited);
    assert_eq!(
        count(&b, &[REBUILT, "disk.img"]),
        1,
        "asked whole: a {}, b {}; a's log on the file:\n{}\nb's log:\n{}",
        count(&a, &[ASKED]),
        count(&b, &[ASKED]),
        a.plain_log()
            .lines()
            .filter(|l| l.contains("disk.img"))
            .collect::<Vec<_>>()
            .join("\n"),
        b.plain_log()
    );
    // The block around the insert came as a delta from b's old block there.
    assert!(count(&b, &[BLOCK_REBUILT]) >= 1);
    assert!(count(&a, &[BLOCK_SENT]) >= 1);

    // The other way, and a second edit on top of the first.
    let again = inserted(&edited, b"edited on b");
    b.save("disk.img", &again);
    wait_same(&[&a, &b]);
    assert_eq!(a.tree()["disk.img"], again);
    assert_eq!(count(&a, &[REBUILT, "disk.img"]), 1);
    // Each side held the base of every delta it was sent: nothing was asked
    // for whole (a record coming back to its sender is recognised as its own).
    assert_eq!(count(&a, &[ASKED]) + count(&b, &[ASKED]), 0);
    assert_eq!(count(&a, &[MISMATCH]) + count(&b, &[MISMATCH]), 0);
    // What each side replaced with the other's version is archived.
    assert!(b.archived().contains(&original));
    assert!(a.archived().contains(&edited));
}

#[test]
fn a_delta_whose_base_the_peer_no_longer_holds_is_sent_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, mut b) = start_pair(tmp.path());
    let original = noise(BIG, 12);
    a.save("disk.img", &original);
    wait_same(&[&a, &b]);
    // Let b store how far it holds a's index (it does so once idle), so that a
    // takes b to hold the original still.
    std::thread::sleep(Duration::from_millis(1500));
    b.kill();
    let on_a = inserted(&original, b"edited on a");
    let on_b = inserted(&original, b"edited on b while offline");
    a.save("disk.img", &on_a);
    b.save("disk.img", &on_b);
    b.restart();
    wait_same(&[&a, &b]);

    // Each sent its edit as a delta from the original, which the other had
    // replaced: each asked for the whole record and resolved the conflict.
    assert!(count(&a, &[ASKED, "disk.img"]) + count(&b, &[ASKED, "disk.img"]) >= 1);
    let tree = a.tree();
    let versions: Vec<&Vec<u8>> = tree
        .iter()
        .filter(|(k, _)| k.starts_with("disk"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(versions.len(), 2, "{:?}", tree.keys().collect::<Vec<_>>());
    assert!(versions.contains(&&on_a));
    assert!(versions.contains(&&on_b));
}
