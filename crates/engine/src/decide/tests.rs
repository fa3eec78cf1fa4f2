use super::*;
use keys::ShortId;
use proptest::prelude::*;
use record::{Block, Timestamp, VersionVector};

fn vv(entries: &[(u64, u64)]) -> VersionVector {
    VersionVector::from_sorted(entries.iter().map(|&(p, c)| (ShortId(p), c)).collect()).unwrap()
}

fn file(path: &str, version: VersionVector, secs: i64, content: u8) -> FileRecord {
    FileRecord {
        path: RelPath::new(path).unwrap(),
        kind: FileKind::File,
        size: 1,
        modified: Timestamp { secs, nanos: 0 },
        mode: 0o644,
        version,
        deleted: false,
        blocks: vec![Block {
            size: 1,
            hash: [content; 32],
        }],
        hash: [content; 32],
    }
}

fn tombstone(path: &str, version: VersionVector, secs: i64) -> FileRecord {
    FileRecord {
        kind: FileKind::File,
        size: 0,
        deleted: true,
        blocks: vec![],
        hash: [0; 32],
        ..file(path, version, secs, 0)
    }
}

fn dir(path: &str, version: VersionVector) -> FileRecord {
    FileRecord {
        kind: FileKind::Directory,
        size: 0,
        blocks: vec![],
        hash: [0; 32],
        ..file(path, version, 5, 0)
    }
}

fn local(record: &FileRecord) -> Option<Local<'_>> {
    Some(Local {
        record,
        local_only: false,
    })
}

#[test]
fn newer_dominates_older() {
    let old = file("a.txt", vv(&[(1, 1)]), 10, 1);
    let new = file("a.txt", vv(&[(1, 2)]), 5, 2);
    assert_eq!(decide(local(&old), &new), Decision::Take);
    assert_eq!(decide(local(&new), &old), Decision::Keep);
    assert_eq!(decide(local(&new), &new), Decision::Keep);
    assert_eq!(decide(None, &new), Decision::Take);
}

#[test]
fn concurrent_edits_keep_both_later_mtime_wins() {
    let ours = file("docs/report.pdf", vv(&[(1, 2), (2, 1)]), 100, 1);
    let theirs = file("docs/report.pdf", vv(&[(1, 1), (2, 2)]), 200, 2);
    let Decision::Conflict { winner, loser } = decide(local(&ours), &theirs) else {
        panic!("concurrent edits are a conflict");
    };
    assert_eq!(winner, Side::Remote);
    let LoserFate::ConflictCopy(copy) = loser else {
        panic!("the loser is kept")
    };
    // Our version lost: named for its own time and for peer 1, whose change it was.
    let expected = format!(
        "docs/report.sync-conflict-19700101-000140-{}.pdf",
        ShortId(1)
    );
    assert_eq!(copy.as_str(), expected);
}

#[test]
fn modification_beats_deletion() {
    let edited = file("a", vv(&[(1, 2)]), 1, 1);
    let deleted = tombstone("a", vv(&[(1, 1), (2, 1)]), 99);
    assert_eq!(
        decide(local(&deleted), &edited),
        Decision::Conflict {
            winner: Side::Remote,
            loser: LoserFate::Nothing
        }
    );
    assert_eq!(
        decide(local(&edited), &deleted),
        Decision::Conflict {
            winner: Side::Local,
            loser: LoserFate::Nothing
        }
    );
}

#[test]
fn directory_beats_file_and_the_file_is_kept() {
    let d = dir("x", vv(&[(1, 1)]));
    let f = file("x", vv(&[(2, 1)]), 1_000, 7);
    let Decision::Conflict {
        winner: Side::Local,
        loser: LoserFate::ConflictCopy(p),
    } = decide(local(&d), &f)
    else {
        panic!("the directory wins, the file is kept");
    };
    assert!(p.as_str().starts_with("x.sync-conflict-"), "{p}");
}

#[test]
fn same_content_is_no_conflict() {
    let a = file("a", vv(&[(1, 1)]), 1, 9);
    let b = file("a", vv(&[(2, 1)]), 2, 9);
    let d1 = decide(local(&a), &b);
    let d2 = decide(local(&b), &a);
    assert!(matches!(d1, Decision::Keep | Decision::Take));
    // Both peers settle on the same record.
    assert_eq!(d1 == Decision::Take, d2 == Decision::Keep);
}

#[test]
fn conflict_copy_of_a_conflict_copy_goes_to_the_archive() {
    let name = format!("a.sync-conflict-20260101-000000-{}.txt", ShortId(3));
    let ours = file(&name, vv(&[(1, 1)]), 1, 1);
    let theirs = file(&name, vv(&[(2, 1)]), 2, 2);
    assert_eq!(
        decide(local(&ours), &theirs),
        Decision::Conflict {
            winner: Side::Remote,
            loser: LoserFate::Archive
        }
    );
}

#[test]
fn read_only_local_edit_yields_but_is_kept() {
    let base = vv(&[(1, 1)]);
    let ro_edit = file("a", base.clone().incremented(ShortId(9)), 500, 1);
    let rw_change = file("a", base.clone().incremented(ShortId(1)), 10, 2);
    let ours = Some(Local {
        record: &ro_edit,
        local_only: true,
    });
    let Decision::Conflict {
        winner: Side::Remote,
        loser: LoserFate::ConflictCopy(_),
    } = decide(ours, &rw_change)
    else {
        panic!("the signed change wins, the edit stays beside it");
    };
    // The version the edit was based on changes nothing.
    let original = file("a", base, 1, 0);
    assert_eq!(decide(ours, &original), Decision::Keep);
}

fn arb_record() -> impl Strategy<Value = FileRecord> {
    let version = proptest::collection::btree_map(0u64..4, 1u64..4, 1..4).prop_map(|m| {
        VersionVector::from_sorted(m.into_iter().map(|(p, c)| (ShortId(p), c)).collect()).unwrap()
    });
    (version, 0i64..4, 0u8..3, 0u8..3).prop_map(|(v, secs, content, kind)| match kind {
        0 => file("p/a.txt", v, secs, content),
        1 => tombstone("p/a.txt", v, secs),
        _ => dir("p/a.txt", v),
    })
}

/// What a peer ends with under the name after applying a decision.
fn kept<'a>(local: &'a FileRecord, remote: &'a FileRecord, d: &Decision) -> &'a FileRecord {
    match d {
        Decision::Keep
        | Decision::Conflict {
            winner: Side::Local,
            ..
        } => local,
        Decision::Take
        | Decision::Conflict {
            winner: Side::Remote,
            ..
        } => remote,
    }
}

proptest! {
    /// Two peers holding a and b, each told of the other's, keep the same record and
    /// name the loser the same way: the resolution does not depend on the side.
    #[test]
    fn resolution_is_the_same_on_both_sides(a in arb_record(), b in arb_record()) {
        let on_a = decide(local(&a), &b);
        let on_b = decide(local(&b), &a);
        let kept_a = kept(&a, &b, &on_a);
        let kept_b = kept(&b, &a, &on_b);
        let ordering = a.version.compare(&b.version);
        if ordering == VersionOrdering::Concurrent
            || (ordering == VersionOrdering::Equal && a != b)
        {
            prop_assert_eq!(kept_a, kept_b);
            let fate = |d: &Decision| match d {
                Decision::Conflict { loser, .. } => loser.clone(),
                _ => LoserFate::Nothing,
            };
            prop_assert_eq!(fate(&on_a), fate(&on_b));
        } else if a.version.dominates(&b.version) {
            prop_assert_eq!(kept_a, &a);
            prop_assert_eq!(kept_b, &a);
        } else {
            prop_assert_eq!(kept_a, &b);
            prop_assert_eq!(kept_b, &b);
        }
    }

    /// No decision drops a live file's content: the loser of a conflict with
    /// content always has a copy or an archive entry.
    #[test]
    fn no_content_is_dropped(a in arb_record(), b in arb_record()) {
        if let Decision::Conflict { winner, loser } = decide(local(&a), &b) {
            let lost = if winner == Side::Local { &b } else { &a };
            let has_content = !lost.deleted && lost.kind != FileKind::Directory;
            prop_assert_eq!(has_content, loser != LoserFate::Nothing);
        }
    }
}
