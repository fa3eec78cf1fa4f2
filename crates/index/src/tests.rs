use keys::{PeerId, RwSecret, ShortId};
use record::{Block, FileKind, FileRecord, RelPath, SignedRecord, Timestamp, VersionVector};

use crate::*;

fn file(path: &str, blocks: &[(u32, u8)]) -> FileRecord {
    let blocks: Vec<Block> = blocks
        .iter()
        .map(|&(size, h)| Block {
            size,
            hash: [h; 32],
        })
        .collect();
    FileRecord {
        path: RelPath::new(path).unwrap(),
        kind: FileKind::File,
        size: blocks.iter().map(|b| u64::from(b.size)).sum(),
        modified: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
        mode: 0o644,
        version: VersionVector::new().incremented(ShortId(9)),
        deleted: false,
        hash: if blocks.is_empty() {
            record::EMPTY_HASH
        } else {
            [0xee; 32]
        },
        blocks,
    }
}

fn local() -> Option<LocalStat> {
    Some(LocalStat {
        size: 0,
        modified: Timestamp { secs: 1, nanos: 2 },
        inode: u64::MAX,
    })
}

fn upd(record: FileRecord) -> Update {
    Update {
        record,
        signed: None,
        local_only: false,
        local: local(),
    }
}

#[test]
fn reopen_keeps_id_sequence_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let (id, seq) = {
        let mut ix = Index::open(&db).unwrap();
        assert_eq!(ix.sequence(), 0);
        ix.put(upd(file("a", &[(3, 1)]))).unwrap();
        ix.put(upd(file("b", &[]))).unwrap();
        (ix.index_id(), ix.sequence())
    };
    assert_eq!(seq, 2);
    let ix = Index::open(&db).unwrap();
    assert_eq!(ix.index_id(), id);
    assert_eq!(ix.sequence(), 2);
    let e = ix.get(&RelPath::new("a").unwrap()).unwrap().unwrap();
    assert_eq!(e.record, file("a", &[(3, 1)]));
    assert_eq!(e.local, local());
    assert_eq!(e.sequence, 1);
    assert!(ix.get(&RelPath::new("zzz").unwrap()).unwrap().is_none());
    // A new database gets a new id.
    let other = Index::open(&dir.path().join("other.db")).unwrap();
    assert_ne!(other.index_id(), id);
}

#[test]
fn signed_records_are_kept_verbatim() {
    let rw = RwSecret::from_bytes([5; 20]);
    let r = file("s.txt", &[(10, 2), (20, 3)]);
    let signed = SignedRecord::sign(&r, &rw.signing_key()).unwrap();
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(Update {
        record: r.clone(),
        signed: Some(signed.clone()),
        local_only: false,
        local: None,
    })
    .unwrap();
    let e = ix.get(&r.path).unwrap().unwrap();
    assert_eq!(e.signed.as_ref(), Some(&signed));
    assert_eq!(e.signed.unwrap().verify(&rw.ro_key()).unwrap(), r);
    // A signed body that does not match the record is refused.
    let mut other = r.clone();
    other.mode = 0o600;
    let bad = Update {
        record: other,
        signed: Some(signed),
        local_only: false,
        local: None,
    };
    assert!(matches!(ix.put(bad), Err(IndexError::Record(_))));
    // Invalid records are refused.
    let mut invalid = r;
    invalid.size += 1;
    assert!(matches!(ix.put(upd(invalid)), Err(IndexError::Record(_))));
}

#[test]
fn changes_stream_in_sequence_order_and_batches() {
    let mut ix = Index::open_in_memory().unwrap();
    let rw = RwSecret::from_bytes([5; 20]);
    for i in 0..10 {
        let r = file(&format!("f{i}"), &[(1, i)]);
        let signed = (i % 2 == 0).then(|| SignedRecord::sign(&r, &rw.signing_key()).unwrap());
        ix.put(Update {
            record: r,
            signed,
            local_only: i == 4,
            local: None,
        })
        .unwrap();
    }
    // Re-writing f0 moves it to the end.
    let mut w = ix.write().unwrap();
    w.put(upd(file("f0", &[(2, 0)]))).unwrap();
    w.commit().unwrap();
    let all: Vec<Entry> = ix.changes_since(0, 3).collect::<Result<_, _>>().unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.record.path.as_str()).collect();
    assert_eq!(
        names,
        ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f0"]
    );
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));
    let later: Vec<Entry> = ix.changes_since(8, 1).collect::<Result<_, _>>().unwrap();
    assert_eq!(later.len(), 3);
    // Only signed, non-local-only records are announced (f0 is now unsigned).
    let ann: Vec<String> = ix
        .announce_since(0, 2)
        .map(|e| e.unwrap().record.path.into_string())
        .collect();
    assert_eq!(ann, ["f2", "f6", "f8"]);
}

#[test]
fn dropped_writer_rolls_back() {
    let mut ix = Index::open_in_memory().unwrap();
    {
        let mut w = ix.write().unwrap();
        w.put(upd(file("x", &[]))).unwrap();
    }
    assert_eq!(ix.sequence(), 0);
    assert!(ix.get(&RelPath::new("x").unwrap()).unwrap().is_none());
    assert_eq!(ix.put(upd(file("x", &[]))).unwrap(), 1);
}

#[test]
fn under_a_directory() {
    let mut ix = Index::open_in_memory().unwrap();
    for p in ["a", "a/b", "a/c/d", "ab", "a-b", "a0", "b", "a/z"] {
        ix.put(upd(file(p, &[]))).unwrap();
    }
    let under = |d: Option<&str>, batch| -> Vec<String> {
        let d = d.map(|d| RelPath::new(d).unwrap());
        ix.under(d.as_ref(), batch)
            .map(|e| e.unwrap().record.path.into_string())
            .collect()
    };
    assert_eq!(under(Some("a"), 1), ["a", "a/b", "a/c/d", "a/z"]);
    assert_eq!(under(Some("a/c"), 10), ["a/c/d"]);
    assert_eq!(under(None, 3).len(), 8);
}

#[test]
fn unseen_finds_what_a_scan_missed() {
    let mut ix = Index::open_in_memory().unwrap();
    for p in ["a", "b", "c", "d/e"] {
        ix.put(upd(file(p, &[]))).unwrap();
    }
    let mut gone = file("gone", &[]);
    gone.deleted = true;
    gone.hash = [0; 32];
    ix.put(upd(gone)).unwrap();
    ix.clear_seen().unwrap();
    let mut w = ix.write().unwrap();
    w.mark_seen(&RelPath::new("a").unwrap()).unwrap();
    w.mark_seen(&RelPath::new("c").unwrap()).unwrap();
    w.commit().unwrap();
    let unseen: Vec<String> = ix
        .unseen(None, 1)
        .map(|e| e.unwrap().record.path.into_string())
        .collect();
    assert_eq!(unseen, ["b", "d/e"]);
    ix.clear_seen().unwrap();
    assert_eq!(ix.unseen(None, 10).count(), 4);
}

#[test]
fn block_locations_follow_local_files() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("one", &[(10, 1), (20, 2), (30, 1)])))
        .unwrap();
    ix.put(Update {
        local: None,
        ..upd(file("remote-only", &[(5, 1)]))
    })
    .unwrap();
    let locs = ix.block_locations(&[1; 32], 10).unwrap();
    let mut offsets: Vec<(String, u64, u32)> = locs
        .into_iter()
        .map(|l| (l.path.into_string(), l.offset, l.size))
        .collect();
    offsets.sort();
    assert_eq!(offsets, [("one".into(), 0, 10), ("one".into(), 30, 30)]);
    assert_eq!(ix.block_locations(&[1; 32], 1).unwrap().len(), 1);
    // Replacing the file by a tombstone forgets its blocks.
    let mut t = file("one", &[]);
    t.deleted = true;
    t.hash = [0; 32];
    ix.put(upd(t)).unwrap();
    assert!(ix.block_locations(&[1; 32], 10).unwrap().is_empty());
}

/// Looked up once per block received: its statement must not be compiled
/// again at every call (as SQLite did, planning by the bound values, until the
/// connection asked for a stable plan).
#[test]
fn block_locations_reuse_their_statement() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("one", &[(10, 1), (20, 2)]))).unwrap();
    for (i, limit) in [1, 8, 2, 8, 1].into_iter().enumerate() {
        let hash = [u8::try_from(i % 3).unwrap(); 32];
        ix.block_locations(&hash, limit).unwrap();
    }
    let stmt = ix
        .conn
        .prepare_cached(crate::peers::BLOCK_LOCATIONS_SQL)
        .unwrap();
    assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    assert!(stmt.get_status(rusqlite::StatementStatus::Run) >= 5);
}

#[test]
fn summary_counts() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("a", &[(10, 1)]))).unwrap();
    ix.put(Update {
        local_only: true,
        ..upd(file("b", &[(5, 1)]))
    })
    .unwrap();
    let mut d = file("d", &[]);
    d.kind = FileKind::Directory;
    d.hash = [0; 32];
    ix.put(upd(d.clone())).unwrap();
    let mut l = d.clone();
    l.path = RelPath::new("l").unwrap();
    l.kind = FileKind::Symlink {
        target: "../x".into(),
    };
    ix.put(upd(l)).unwrap();
    d.path = RelPath::new("gone").unwrap();
    d.deleted = true;
    ix.put(upd(d)).unwrap();
    let s = ix.summary().unwrap();
    assert_eq!(
        s,
        Summary {
            files: 2,
            directories: 1,
            symlinks: 1,
            deleted: 1,
            bytes: 15,
            local_only: 1
        }
    );
    let mut w = ix.write().unwrap();
    assert!(w.remove(&RelPath::new("gone").unwrap()).unwrap());
    w.commit().unwrap();
    assert_eq!(ix.summary().unwrap().deleted, 0);
}

#[test]
fn peer_state_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("i.db");
    let peer = PeerId([3; 32]);
    let state = PeerState {
        index_id: IndexId(u64::MAX),
        sequence: 77,
    };
    {
        let mut ix = Index::open(&db).unwrap();
        assert_eq!(ix.peer_state(&peer).unwrap(), None);
        ix.set_peer_state(&peer, state).unwrap();
    }
    let ix = Index::open(&db).unwrap();
    assert_eq!(ix.peer_state(&peer).unwrap(), Some(state));
    assert_eq!(PeerState::resume_from(Some(state), IndexId(u64::MAX)), 77);
    assert_eq!(PeerState::resume_from(Some(state), IndexId(1)), 0);
    assert_eq!(PeerState::resume_from(None, IndexId(1)), 0);
}

#[test]
fn garbage_file_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let err = Index::open(&db).unwrap_err();
    assert!(matches!(err, IndexError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&db.display().to_string()) && msg.contains("delete"),
        "{msg}"
    );
}

#[test]
fn torn_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    {
        let mut ix = Index::open(&db).unwrap();
        let mut w = ix.write().unwrap();
        for i in 0..400 {
            let p = format!("dir/{i:04}-{}", "x".repeat(100));
            w.put(upd(file(&p, &[(7, 1), (9, 2)]))).unwrap();
        }
        w.commit().unwrap();
        ix.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > 8 * page, "{}", bytes.len());
    // Tear pages 3..6 as a crash in the middle of writing them might.
    for b in &mut bytes[3 * page..6 * page] {
        *b = 0xa5;
    }
    std::fs::write(&db, bytes).unwrap();
    let err = Index::open(&db).unwrap_err();
    assert!(matches!(err, IndexError::Corrupt { .. }), "{err:?}");
}

#[test]
fn integrity_check_passes_on_a_healthy_index() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("a", &[(3, 1)]))).unwrap();
    ix.integrity_check().unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    drop(Index::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Index::open(&db).unwrap_err();
    assert!(
        matches!(err, IndexError::TooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn damaged_rows_are_errors_not_panics() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("a", &[(3, 1)]))).unwrap();
    ix.conn
        .execute("UPDATE files SET blocks = x'0102'", [])
        .unwrap();
    assert!(matches!(
        ix.get(&RelPath::new("a").unwrap()),
        Err(IndexError::BadRow { .. })
    ));
    ix.conn
        .execute("UPDATE files SET path = '../a'", [])
        .unwrap();
    let first = ix.changes_since(0, 10).next().unwrap();
    assert!(matches!(first, Err(IndexError::BadRow { .. })));
}

#[test]
fn stored_state_matches_the_full_row() {
    let mut ix = Index::open_in_memory().unwrap();
    let mut link = file("l", &[]);
    link.kind = FileKind::Symlink { target: "t".into() };
    link.mode = 0;
    link.hash = [0; 32];
    let mut gone = file("gone", &[]);
    gone.deleted = true;
    gone.hash = [0; 32];
    let mut w = ix.write().unwrap();
    w.put(upd(file("a", &[(3, 1)]))).unwrap();
    w.put(upd(link)).unwrap();
    w.put(Update {
        local: None,
        ..upd(gone)
    })
    .unwrap();
    for p in ["a", "l", "gone"] {
        let p = RelPath::new(p).unwrap();
        let full = w.get(&p).unwrap().unwrap();
        let state = w.stored_state(&p).unwrap().unwrap();
        assert_eq!(
            state,
            StoredState {
                row: state.row,
                kind: full.record.kind,
                mode: full.record.mode,
                deleted: full.record.deleted,
                local: full.local,
            },
            "{p}"
        );
    }
    assert_eq!(
        w.stored_state(&RelPath::new("none").unwrap()).unwrap(),
        None
    );
    w.commit().unwrap();
}

#[test]
fn damaged_stored_state_is_an_error_not_a_panic() {
    let mut ix = Index::open_in_memory().unwrap();
    ix.put(upd(file("a", &[(3, 1)]))).unwrap();
    let a = RelPath::new("a").unwrap();
    for sql in [
        "UPDATE files SET kind = 7",
        "UPDATE files SET kind = 0, target = 'x'",
        "UPDATE files SET target = NULL, mode = -1",
        "UPDATE files SET mode = 420, disk_mtime_nanos = -1",
    ] {
        ix.conn.execute(sql, []).unwrap();
        let w = ix.write().unwrap();
        assert!(
            matches!(w.stored_state(&a), Err(IndexError::BadRow { .. })),
            "{sql}"
        );
    }
}

#[test]
fn seen_marks_by_row_survive_batches_and_writes() {
    let mut ix = Index::open_in_memory().unwrap();
    let mut w = ix.write().unwrap();
    for i in 0..40 {
        w.put(upd(file(&format!("d/{i:02}"), &[]))).unwrap();
    }
    w.commit().unwrap();
    ix.clear_seen().unwrap();
    let mut w = ix.write().unwrap();
    // Every third row by its row id, one by path, a new row through put_seen.
    for i in (0..40).step_by(3) {
        let state = w
            .stored_state(&RelPath::new(format!("d/{i:02}")).unwrap())
            .unwrap()
            .unwrap();
        w.mark_seen_row(state.row);
    }
    w.mark_seen(&RelPath::new("d/01").unwrap()).unwrap();
    w.mark_seen(&RelPath::new("not/there").unwrap()).unwrap();
    w.put_seen(upd(file("d/new", &[]))).unwrap();
    w.put(upd(file("d/unmarked", &[]))).unwrap();
    w.commit().unwrap();
    let mut want: Vec<String> = (0..40)
        .filter(|i| i % 3 != 0 && *i != 1)
        .map(|i| format!("d/{i:02}"))
        .collect();
    want.push("d/unmarked".into());
    for batch in [1, 2, 7, 1000] {
        let got: Vec<String> = ix
            .unseen(Some(&RelPath::new("d").unwrap()), batch)
            .map(|e| e.unwrap().record.path.into_string())
            .collect();
        assert_eq!(got, want, "batch {batch}");
    }
    // Resuming after a path, as the deletion pass does between its writes.
    let after = RelPath::new("d/20").unwrap();
    let rest: Vec<String> = ix
        .unseen_after(None, Some(&after), 4)
        .map(|e| e.unwrap().record.path.into_string())
        .collect();
    let tail: Vec<String> = want
        .iter()
        .filter(|p| p.as_str() > "d/20")
        .cloned()
        .collect();
    assert_eq!(rest, tail);
}

#[test]
fn checked_updates_store_the_same_as_put_and_are_checked_up_front() {
    let rw = RwSecret::from_bytes([5; 20]);
    let r = file("c.txt", &[(10, 2), (20, 3)]);
    let signed = SignedRecord::sign(&r, &rw.signing_key()).unwrap();
    let update = Update {
        record: r.clone(),
        signed: Some(signed.clone()),
        local_only: false,
        local: local(),
    };
    // Checked on one thread, written on another (as the scanner does).
    let checked = std::thread::spawn(move || update.check().unwrap())
        .join()
        .unwrap();
    assert_eq!(checked.record(), &r);
    let mut ix = Index::open_in_memory().unwrap();
    let mut w = ix.write().unwrap();
    let seq = w.put_checked(checked).unwrap();
    w.commit().unwrap();
    let e = ix.get(&r.path).unwrap().unwrap();
    assert_eq!((e.sequence, &e.record, e.local), (seq, &r, local()));
    assert_eq!(e.signed, Some(signed.clone()));
    assert_eq!(ix.block_locations(&r.blocks[0].hash, 10).unwrap().len(), 1);
    // A mismatched body or an invalid record never becomes a CheckedUpdate.
    let mut other = r.clone();
    other.mode = 0o600;
    let bad = Update {
        record: other,
        signed: Some(signed),
        local_only: false,
        local: None,
    };
    assert!(matches!(bad.check(), Err(IndexError::Record(_))));
    let mut invalid = r;
    invalid.size += 1;
    assert!(matches!(upd(invalid).check(), Err(IndexError::Record(_))));
}

#[test]
fn directory_streams_with_a_cursor_before_inside_and_after_the_directory() {
    let mut ix = Index::open_in_memory().unwrap();
    for p in ["a", "m", "m/1", "m/2", "m-x", "m0", "z"] {
        ix.put(upd(file(p, &[]))).unwrap();
    }
    ix.clear_seen().unwrap();
    let m = RelPath::new("m").unwrap();
    let unseen_after = |after: Option<&str>| -> Vec<String> {
        let after = after.map(|a| RelPath::new(a).unwrap());
        ix.unseen_after(Some(&m), after.as_ref(), 1)
            .map(|e| e.unwrap().record.path.into_string())
            .collect()
    };
    assert_eq!(unseen_after(None), ["m", "m/1", "m/2"]);
    // A cursor before the directory must not widen the range to include it.
    assert_eq!(unseen_after(Some("a")), ["m", "m/1", "m/2"]);
    assert_eq!(unseen_after(Some("m")), ["m/1", "m/2"]);
    assert_eq!(unseen_after(Some("m/1")), ["m/2"]);
    assert!(unseen_after(Some("m0")).is_empty());
    let all_after = |after: &str| -> Vec<String> {
        ix.unseen_after(None, Some(&RelPath::new(after).unwrap()), 2)
            .map(|e| e.unwrap().record.path.into_string())
            .collect()
    };
    assert_eq!(all_after("m0"), ["z"]);
    assert_eq!(ix.under(Some(&m), 1).count(), 3);
}

#[test]
fn replaced_and_removed_files_leave_no_block_rows_behind() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let mut ix = Index::open(&db).unwrap();
    ix.put(upd(file("a", &[(10, 1), (20, 2)]))).unwrap();
    ix.put(upd(file("b", &[(10, 3)]))).unwrap();
    // New content: the old blocks go, the new ones come.
    ix.put(upd(file("a", &[(10, 4)]))).unwrap();
    assert!(ix.block_locations(&[1; 32], 10).unwrap().is_empty());
    assert!(ix.block_locations(&[2; 32], 10).unwrap().is_empty());
    assert_eq!(ix.block_locations(&[4; 32], 10).unwrap().len(), 1);
    let mut w = ix.write().unwrap();
    assert!(w.remove(&RelPath::new("b").unwrap()).unwrap());
    assert!(!w.remove(&RelPath::new("b").unwrap()).unwrap());
    w.commit().unwrap();
    assert!(ix.block_locations(&[3; 32], 10).unwrap().is_empty());
    let rows: i64 = ix
        .conn
        .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "only a's one block is left");
    // And after a reopen, the same.
    drop(ix);
    let ix = Index::open(&db).unwrap();
    assert_eq!(ix.block_locations(&[4; 32], 10).unwrap().len(), 1);
    ix.integrity_check().unwrap();
}

#[test]
fn a_large_record_keeps_the_body_it_replaced() {
    let rw = RwSecret::from_bytes([5; 20]);
    let signed_put = |ix: &mut Index, r: &FileRecord| {
        let signed = SignedRecord::sign(r, &rw.signing_key()).unwrap();
        let seq = ix
            .put(Update {
                record: r.clone(),
                signed: Some(signed.clone()),
                local_only: false,
                local: None,
            })
            .unwrap();
        (seq, signed)
    };
    let big = |h: u8| {
        let blocks: Vec<(u32, u8)> = (0..200u32).map(|i| (1000, (i as u8) ^ h)).collect();
        file("big.img", &blocks)
    };
    let mut ix = Index::open_in_memory().unwrap();
    let path = RelPath::new("big.img").unwrap();
    let (first_seq, first) = signed_put(&mut ix, &big(0));
    assert!(first.body().len() >= PREVIOUS_MIN_BODY);
    // The first record replaced nothing.
    assert_eq!(ix.previous(&path).unwrap(), None);
    let (second_seq, second) = signed_put(&mut ix, &big(1));
    assert_eq!(
        ix.previous(&path).unwrap(),
        Some(Previous {
            sequence: first_seq,
            body: first.body().to_vec(),
        })
    );
    // Only the current sequence is found by sequence.
    assert!(ix.get_by_sequence(first_seq).unwrap().is_none());
    let current = ix.get_by_sequence(second_seq).unwrap().unwrap();
    assert_eq!(current.signed, Some(second));
    assert!(ix.get_by_sequence(u64::MAX).unwrap().is_none());
    // A small record keeps nothing, nor does an unsigned one.
    signed_put(&mut ix, &file("big.img", &[(10, 1)]));
    assert_eq!(ix.previous(&path).unwrap(), None);
    ix.put(upd(big(2))).unwrap();
    assert_eq!(ix.previous(&path).unwrap(), None);
}

#[test]
fn a_schema_1_index_is_migrated_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    {
        let mut ix = Index::open(&db).unwrap();
        ix.put(upd(file("a", &[(3, 1)]))).unwrap();
    }
    // Back to what a schema-1 build left: no columns of version 2.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "ALTER TABLE files DROP COLUMN prev_sequence; ALTER TABLE files DROP COLUMN prev_body; \
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let ix = Index::open(&db).unwrap();
    let path = RelPath::new("a").unwrap();
    assert_eq!(ix.get(&path).unwrap().unwrap().record, file("a", &[(3, 1)]));
    assert_eq!(ix.previous(&path).unwrap(), None);
    drop(ix);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}
