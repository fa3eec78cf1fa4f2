use super::*;
use proptest::prelude::*;

fn file_names(net: &SimNet, n: usize) -> Vec<String> {
    net.nodes[n]
        .files
        .keys()
        .map(|p| p.as_str().to_owned())
        .collect()
}

#[test]
fn two_peers_sync_both_ways() {
    let mut net = SimNet::new(2);
    net.write(0, "a.txt", b"hello from zero");
    net.connect(0, 1);
    net.drive();
    assert!(net.converged());
    net.write(1, "dir/b.txt", b"and back from one");
    net.drive();
    assert!(net.converged());
    assert_eq!(file_names(&net, 0), vec!["a.txt", "dir/b.txt"]);
}

#[test]
fn records_travel_through_a_middle_peer() {
    // 0 and 2 never meet; 1 forwards both records and blocks.
    let mut net = SimNet::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.write(0, "x", b"made on zero, read on two");
    net.drive();
    assert!(net.converged());
    assert_eq!(
        net.nodes[2].files.values().next().unwrap(),
        b"made on zero, read on two"
    );
}

#[test]
fn late_joiner_gets_everything_and_delete_archives() {
    let mut net = SimNet::new(3);
    net.connect(0, 1);
    for i in 0..5 {
        net.write(
            0,
            &format!("f{i}"),
            format!("content number {i}").as_bytes(),
        );
    }
    net.drive();
    net.delete(1, "f3");
    net.drive();
    assert!(net.nodes[0].archive.contains(&b"content number 3".to_vec()));
    net.connect(2, 0);
    net.connect(2, 1);
    net.drive();
    assert!(net.converged());
    assert_eq!(file_names(&net, 2), vec!["f0", "f1", "f2", "f4"]);
}

#[test]
fn concurrent_edits_keep_both_versions_everywhere() {
    let mut net = SimNet::new(2);
    net.connect(0, 1);
    net.write(0, "doc.txt", b"base");
    net.drive();
    net.disconnect(0, 1);
    net.write(0, "doc.txt", b"edit on zero");
    net.write(1, "doc.txt", b"edit on one!");
    net.connect(0, 1);
    net.drive();
    assert!(
        net.converged(),
        "{:?} vs {:?}",
        file_names(&net, 0),
        file_names(&net, 1)
    );
    let contents: Vec<&Vec<u8>> = net.nodes[0].files.values().collect();
    assert!(contents.contains(&&b"edit on zero".to_vec()));
    assert!(contents.contains(&&b"edit on one!".to_vec()));
    let names = file_names(&net, 0);
    assert_eq!(names.len(), 2);
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("doc.sync-conflict-") && n.ends_with(".txt")),
        "{names:?}"
    );
}

#[test]
fn edit_beats_concurrent_delete() {
    let mut net = SimNet::new(2);
    net.connect(0, 1);
    net.write(0, "keep.txt", b"v1");
    net.drive();
    net.disconnect(0, 1);
    net.delete(0, "keep.txt");
    net.write(1, "keep.txt", b"v2 edited");
    net.connect(0, 1);
    net.drive();
    assert!(net.converged());
    assert_eq!(
        net.nodes[0]
            .files
            .get(&RelPath::new("keep.txt").unwrap())
            .unwrap(),
        b"v2 edited"
    );
}

#[test]
fn rename_costs_no_transfer() {
    let mut net = SimNet::new(2);
    net.connect(0, 1);
    let content = b"a rename should copy these blocks locally";
    net.write(0, "old", content);
    net.drive();
    let fetched = net.block_requests;
    assert!(fetched > 0, "the first copy is fetched");
    net.rename(0, "old", "new");
    net.drive();
    assert!(net.converged());
    assert_eq!(file_names(&net, 1), vec!["new"]);
    assert_eq!(
        net.block_requests, fetched,
        "the renamed file's blocks came from the old one"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Write { node: usize, file: usize, tag: u16 },
    Delete { node: usize, file: usize },
    Rename { node: usize, from: usize, to: usize },
    Cut { a: usize, b: usize },
    Join { a: usize, b: usize },
    Steps(u8),
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..nodes, 0..4usize, any::<u16>()).prop_map(|(node, file, tag)| Op::Write { node, file, tag }),
        1 => (0..nodes, 0..4usize).prop_map(|(node, file)| Op::Delete { node, file }),
        1 => (0..nodes, 0..4usize, 0..4usize).prop_map(|(node, from, to)| Op::Rename { node, from, to }),
        1 => (0..nodes, 0..nodes).prop_map(|(a, b)| Op::Cut { a, b }),
        1 => (0..nodes, 0..nodes).prop_map(|(a, b)| Op::Join { a, b }),
        2 => (1u8..20).prop_map(Op::Steps),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any interleaving of edits, deletes and partitions on three peers converges
    /// once everyone is connected, and no version a user saved is lost.
    #[test]
    fn any_interleaving_converges_and_loses_nothing(ops in proptest::collection::vec(op(3), 1..40)) {
        let net = run_ops(ops);
        prop_assert!(net.converged(), "trees differ: {}", describe(&net));
        let lost = net.lost();
        prop_assert!(lost.is_empty(), "lost: {:?}", lost.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>());
    }
}

/// Runs `ops` on three peers, then connects everyone and lets it settle.
fn run_ops(ops: Vec<Op>) -> SimNet {
    run_ops_on(SimNet::new(3), ops)
}

fn run_ops_on(mut net: SimNet, ops: Vec<Op>) -> SimNet {
    let names = ["a.txt", "b.txt", "d/c.txt", "d/e/f"];
    let mut counter = 0u32;
    for op in ops {
        match op {
            Op::Write { node, file, tag } => {
                counter += 1;
                let content = format!("{}#{counter}:{tag}", names[file]);
                net.write(node, names[file], content.as_bytes());
            }
            Op::Delete { node, file } => net.delete(node, names[file]),
            Op::Rename { node, from, to } if from != to => net.rename(node, names[from], names[to]),
            Op::Rename { .. } => {}
            Op::Cut { a, b } => net.disconnect(a, b),
            Op::Join { a, b } => net.connect(a, b),
            Op::Steps(n) => {
                for _ in 0..n {
                    net.step();
                }
            }
        }
    }
    for a in 0..3 {
        for b in 0..3 {
            net.connect(a, b);
        }
    }
    net.drive();
    net
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same with slow links that lose a fifth of block requests and answers:
    /// timeouts ask again, and everything still converges.
    #[test]
    fn lossy_slow_links_still_converge(ops in proptest::collection::vec(op(3), 1..30)) {
        let net = run_ops_on(SimNet::new(3).latency(3).loss(200), ops);
        prop_assert!(net.converged(), "trees differ: {}", describe(&net));
        prop_assert!(net.lost().is_empty());
    }
}

#[test]
fn a_large_file_arrives_over_a_lossy_link() {
    let mut net = SimNet::new(2).latency(5).loss(300);
    let content: Vec<u8> = (0..250u32).flat_map(|i| i.to_be_bytes()).collect();
    net.write(0, "big.bin", &content);
    net.connect(0, 1);
    net.drive();
    assert!(net.converged());
    assert_eq!(net.nodes[1].files.values().next().unwrap(), &content);
}

fn describe(net: &SimNet) -> String {
    net.nodes
        .iter()
        .map(|n| {
            let files: Vec<String> = n
                .files
                .iter()
                .map(|(p, c)| format!("{p}={}", String::from_utf8_lossy(c)))
                .collect();
            let archive: Vec<String> = n
                .archive
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            format!(
                "\n  files {files:?}\n  archive {archive:?} idle {}",
                n.folder.is_idle()
            )
        })
        .collect()
}
