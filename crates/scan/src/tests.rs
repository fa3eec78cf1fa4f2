use std::fs;
use std::path::Path;
use std::sync::Arc;

use index::{Entry, Index};
use keys::{RwSecret, ShortId};
use record::{EMPTY_HASH, FileKind, RelPath, Timestamp, VersionVector};

use crate::*;

const ME: ShortId = ShortId(0xabc);

fn rw() -> RwSecret {
    RwSecret::from_bytes([9; 20])
}

fn opts() -> ScanOptions {
    let mut o = ScanOptions::new(ME, Some(rw().signing_key()));
    o.chunking = Chunking::Fixed(ChunkParams {
        min: 256,
        avg: 1024,
        max: 4096,
    });
    o.hash_threads = 2;
    o
}

struct Folder {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    index: Index,
}

impl Folder {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("folder");
        fs::create_dir_all(root.join(".sync")).unwrap();
        let index = Index::open(&root.join(".sync/index.db")).unwrap();
        Self {
            _dir: dir,
            root,
            index,
        }
    }
    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    fn scan(&mut self) -> ScanSummary {
        scan_once(&self.root, &mut self.index, &opts()).unwrap()
    }
    fn scan_with(&mut self, o: &ScanOptions) -> ScanSummary {
        scan_once(&self.root, &mut self.index, o).unwrap()
    }
    fn get(&self, rel: &str) -> Option<Entry> {
        self.index.get(&RelPath::new(rel).unwrap()).unwrap()
    }
    fn set_mtime(&self, rel: &str, secs: u64) {
        let f = fs::File::options()
            .write(true)
            .open(self.root.join(rel))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn vv(n: u64) -> VersionVector {
    VersionVector::from_sorted(vec![(ME, n)]).unwrap()
}

#[test]
fn create_records_files_dirs_symlinks_and_empty_files() {
    let mut f = Folder::new();
    let content = data(20_000, 1);
    f.write("docs/report.bin", &content);
    f.write("empty", b"");
    std::os::unix::fs::symlink("docs/report.bin", f.root.join("link")).unwrap();
    let s = f.scan();
    assert_eq!((s.files, s.directories, s.symlinks), (2, 1, 1), "{s}");
    assert_eq!(s.added, 4);
    assert_eq!(s.rehashed_files, 2);
    assert_eq!(s.rehashed_bytes, 20_000);

    let e = f.get("docs/report.bin").unwrap();
    assert_eq!(e.record.kind, FileKind::File);
    assert_eq!(e.record.size, 20_000);
    assert_eq!(e.record.hash, *blake3::hash(&content).as_bytes());
    assert!(e.record.blocks.len() > 3);
    assert_eq!(e.record.version, vv(1));
    assert!(!e.local_only);
    assert_eq!(e.signed.unwrap().verify(&rw().ro_key()).unwrap(), e.record);

    let empty = f.get("empty").unwrap().record;
    assert_eq!(
        (empty.size, empty.hash, empty.blocks.len()),
        (0, EMPTY_HASH, 0)
    );
    assert_eq!(f.get("docs").unwrap().record.kind, FileKind::Directory);
    assert_eq!(
        f.get("link").unwrap().record.kind,
        FileKind::Symlink {
            target: "docs/report.bin".into()
        }
    );
    // The state directory is never recorded.
    assert!(
        f.index
            .under(None, 100)
            .all(|e| !e.unwrap().record.path.as_str().starts_with(".sync"))
    );
    // Blocks are findable for reuse.
    let b = e.record.blocks[1];
    let loc = f.index.block_locations(&b.hash, 4).unwrap();
    assert_eq!(loc[0].path.as_str(), "docs/report.bin");
    assert_eq!(loc[0].offset, u64::from(e.record.blocks[0].size));
}

#[test]
fn unchanged_rescan_rehashes_nothing() {
    let mut f = Folder::new();
    for i in 0..30 {
        f.write(&format!("d{}/f{i}", i % 4), &data(3000, i));
    }
    f.scan();
    let seq = f.index.sequence();
    let s = f.scan();
    assert_eq!(s.rehashed_files, 0, "{s}");
    assert_eq!(s.rehashed_bytes, 0);
    assert!(!s.changed_anything());
    assert_eq!(s.files, 30);
    assert_eq!(f.index.sequence(), seq);
}

#[test]
fn modify_bumps_version_and_rehashes() {
    let mut f = Folder::new();
    f.write("a", &data(5000, 1));
    f.scan();
    let new = data(7000, 2);
    f.write("a", &new);
    let s = f.scan();
    assert_eq!((s.changed, s.added, s.rehashed_files), (1, 0, 1), "{s}");
    let e = f.get("a").unwrap();
    assert_eq!(e.record.version, vv(2));
    assert_eq!(e.record.hash, *blake3::hash(&new).as_bytes());
    assert_eq!(e.record.size, 7000);
}

#[test]
fn rename_is_a_tombstone_and_an_add_with_the_same_blocks() {
    let mut f = Folder::new();
    let content = data(9000, 3);
    f.write("old.txt", &content);
    f.scan();
    fs::rename(f.root.join("old.txt"), f.root.join("new.txt")).unwrap();
    let s = f.scan();
    assert_eq!((s.added, s.deleted), (1, 1), "{s}");
    let old = f.get("old.txt").unwrap().record;
    assert!(old.deleted && old.blocks.is_empty());
    assert_eq!(old.version, vv(2));
    let new = f.get("new.txt").unwrap().record;
    assert_eq!(new.hash, *blake3::hash(&content).as_bytes());
    let loc = f.index.block_locations(&new.blocks[0].hash, 4).unwrap();
    assert_eq!(loc.len(), 1);
    assert_eq!(loc[0].path.as_str(), "new.txt");
}

#[test]
fn delete_makes_tombstones_for_a_whole_tree() {
    let mut f = Folder::new();
    f.write("keep", b"k");
    f.write("tree/a", b"a");
    f.write("tree/sub/b", b"b");
    f.scan();
    fs::remove_dir_all(f.root.join("tree")).unwrap();
    let s = f.scan();
    assert_eq!(s.deleted, 4, "{s}");
    for p in ["tree", "tree/a", "tree/sub", "tree/sub/b"] {
        let e = f.get(p).unwrap();
        assert!(e.record.deleted, "{p}");
        assert_eq!(e.record.version, vv(2));
        assert!(e.signed.is_some());
    }
    assert!(!f.get("keep").unwrap().record.deleted);
    // Tombstones stay tombstones on the next scan; re-creating counts as added.
    assert!(!f.scan().changed_anything());
    f.write("tree/a", b"again");
    let s = f.scan();
    assert_eq!(s.added, 2);
    assert_eq!(f.get("tree/a").unwrap().record.version, vv(3));
}

#[test]
fn permission_change_needs_no_rehash() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Folder::new();
    f.write("script", b"#!/bin/sh\n");
    f.scan();
    fs::set_permissions(f.root.join("script"), fs::Permissions::from_mode(0o755)).unwrap();
    let s = f.scan();
    assert_eq!((s.changed, s.rehashed_files), (1, 0), "{s}");
    let e = f.get("script").unwrap().record;
    assert_eq!(e.mode, 0o755);
    assert_eq!(e.version, vv(2));
}

#[test]
fn directory_owner_bits_are_not_a_change() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Folder::new();
    fs::create_dir(f.root.join("d")).unwrap();
    fs::set_permissions(f.root.join("d"), fs::Permissions::from_mode(0o555)).unwrap();
    f.scan();
    // What a receiver does to a read-only directory it creates.
    fs::set_permissions(f.root.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!f.scan().changed_anything());
    fs::set_permissions(f.root.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let s = f.scan();
    assert_eq!(s.changed, 1, "{s}");
    assert_eq!(f.get("d").unwrap().record.mode, 0o700);
}

#[test]
fn mtime_only_change_keeps_content_and_updates_mtime() {
    let mut f = Folder::new();
    f.write("a", &data(3000, 4));
    f.set_mtime("a", 1_600_000_000);
    f.scan();
    let before = f.get("a").unwrap().record;
    f.set_mtime("a", 1_700_000_000);
    let s = f.scan();
    assert_eq!((s.changed, s.rehashed_files), (1, 1), "{s}");
    let after = f.get("a").unwrap().record;
    assert_eq!(
        after.modified,
        Timestamp {
            secs: 1_700_000_000,
            nanos: 0
        }
    );
    assert_eq!((after.hash, &after.blocks), (before.hash, &before.blocks));
    assert_eq!(after.version, vv(2));
}

#[test]
fn same_content_new_inode_is_not_a_change() {
    let mut f = Folder::new();
    f.write("a", b"same");
    f.set_mtime("a", 1_600_000_000);
    f.scan();
    // A copy renamed over the original: same bytes and mtime, a new inode.
    f.write("a.copy", b"same");
    f.set_mtime("a.copy", 1_600_000_000);
    fs::rename(f.root.join("a.copy"), f.root.join("a")).unwrap();
    let s = f.scan();
    assert_eq!(s.rehashed_files, 1);
    assert!(!s.changed_anything(), "{s}");
    assert_eq!(f.get("a").unwrap().record.version, vv(1));
}

#[test]
fn ignore_rules_apply_and_a_bad_pattern_is_reported() {
    let mut f = Folder::new();
    f.write(".sync/IgnoreList", b"*.log\n[z-a]\n/build/\n");
    f.write("a.log", b"x");
    f.write("sub/b.log", b"x");
    f.write("build/out", b"x");
    f.write("src/build/keep", b"x");
    f.write("keep.txt", b"x");
    f.write(".DS_Store", b"x");
    f.write("d/Thumbs.db", b"x");
    f.write("d/.sync-tmp-123", b"x");
    let s = f.scan();
    assert_eq!(s.bad_patterns.len(), 1);
    assert_eq!(s.bad_patterns[0].line, 2);
    assert!(s.to_string().contains("line 2"), "{s}");
    let paths: Vec<String> = f
        .index
        .under(None, 100)
        .map(|e| e.unwrap().record.path.into_string())
        .collect();
    assert_eq!(
        paths,
        ["d", "keep.txt", "src", "src/build", "src/build/keep", "sub"]
    );
    // A file that becomes ignored is left alone, not deleted for everyone.
    f.write(".sync/IgnoreList", b"*.log\n/build/\nkeep.txt\n");
    let s = f.scan();
    assert_eq!(s.deleted, 0, "{s}");
    assert!(!f.get("keep.txt").unwrap().record.deleted);
}

#[test]
fn a_file_rewritten_during_hashing_is_retried() {
    let mut f = Folder::new();
    f.write("busy", &data(20_000, 5));
    let final_content = data(30_000, 6);
    let path = f.root.join("busy");
    let fc = final_content.clone();
    let mut o = opts();
    o.hook = Some(Arc::new(move |rel: &RelPath, attempt, blocks| {
        if rel.as_str() == "busy" && attempt == 0 && blocks == 2 {
            fs::write(&path, &fc).unwrap();
        }
    }));
    let s = f.scan_with(&o);
    assert!(s.retries >= 1, "{s}");
    assert_eq!(s.skipped_total, 0);
    let e = f.get("busy").unwrap().record;
    assert_eq!(e.hash, *blake3::hash(&final_content).as_bytes());
    assert_eq!(e.size, 30_000);
}

#[test]
fn a_file_that_never_settles_is_skipped_and_kept() {
    let mut f = Folder::new();
    f.write("busy", &data(20_000, 5));
    f.scan();
    f.write("busy", &data(20_001, 6));
    let path = f.root.join("busy");
    let mut o = opts();
    o.retries = 2;
    o.hook = Some(Arc::new(move |_: &RelPath, attempt, blocks| {
        if blocks == 1 {
            fs::write(&path, data(20_000 + attempt as usize * 7 + 3, 7)).unwrap();
        }
    }));
    let s = f.scan_with(&o);
    assert_eq!(s.skipped[0].reason, SkipReason::ChangingTooFast, "{s}");
    let e = f.get("busy").unwrap().record;
    assert!(!e.deleted);
    assert_eq!(e.version, vv(1));
}

#[test]
fn deep_nesting() {
    let mut f = Folder::new();
    let deep: Vec<String> = (0..60).map(|i| format!("d{i}")).collect();
    let rel = deep.join("/") + "/leaf";
    f.write(&rel, b"deep");
    let s = f.scan();
    assert_eq!((s.directories, s.files), (60, 1));
    assert_eq!(f.get(&rel).unwrap().record.size, 4);
}

#[test]
fn bad_names_and_special_files_are_skipped_with_reasons() {
    use std::os::unix::ffi::OsStrExt;
    let mut f = Folder::new();
    let bad = std::ffi::OsStr::from_bytes(b"bad\xffname");
    fs::write(f.root.join(bad), b"x").unwrap();
    f.write("good", b"x");
    let _sock = std::os::unix::net::UnixListener::bind(f.root.join("sock")).unwrap();
    f.write("aux.c", b"int main;");
    f.write("Readme", b"1");
    f.write("README", b"2");
    let s = f.scan();
    let reasons: Vec<&SkipReason> = s.skipped.iter().map(|k| &k.reason).collect();
    assert!(reasons.contains(&&SkipReason::NonUtf8Name), "{s}");
    assert!(reasons.contains(&&SkipReason::Special("socket")), "{s}");
    assert!(s.skipped.iter().any(|k| k.path == "bad\u{fffd}name"));
    assert!(f.get("good").is_some());
    assert!(f.get("sock").is_none());
    // Flagged, still recorded.
    assert_eq!(s.windows_flagged.len(), 1);
    assert!(f.get("aux.c").is_some());
    assert_eq!(s.case_collisions.len(), 1);
    assert!(f.get("Readme").is_some() && f.get("README").is_some());
    let text = s.to_string();
    assert!(
        text.contains("not valid UTF-8") && text.contains("Windows") && text.contains("case"),
        "{text}"
    );
}

#[test]
fn read_only_peer_records_local_only_unsigned() {
    let mut f = Folder::new();
    f.write("mine", b"local edit");
    let mut o = opts();
    o.signer = None;
    let s = f.scan_with(&o);
    assert_eq!(s.added, 1);
    let e = f.get("mine").unwrap();
    assert!(e.local_only && e.signed.is_none());
    assert_eq!(f.index.announce_since(0, 10).count(), 0);
    assert_eq!(f.index.changes_since(0, 10).count(), 1);
}

#[test]
fn scan_paths_updates_only_what_it_is_given() {
    let mut f = Folder::new();
    f.write("a", b"1");
    f.write("b", b"2");
    f.scan();
    fs::remove_file(f.root.join("a")).unwrap();
    f.write("b", b"22");
    let s = scan_paths(
        &f.root,
        &mut f.index,
        &opts(),
        &[RelPath::new("a").unwrap()],
    )
    .unwrap();
    assert_eq!((s.deleted, s.changed), (1, 0), "{s}");
    assert!(f.get("a").unwrap().record.deleted);
    assert_eq!(f.get("b").unwrap().record.size, 1);
}

#[test]
fn scan_paths_finds_nfd_names_and_never_follows_symlinked_parents() {
    let mut f = Folder::new();
    // Stored decomposed, as macOS would; the record is NFC.
    f.write("cafe\u{301}/menu", b"1");
    fs::create_dir(f.root.join("real")).unwrap();
    f.write("real/x", b"outside");
    std::os::unix::fs::symlink("real", f.root.join("link")).unwrap();
    f.scan();
    assert!(f.get("caf\u{e9}/menu").is_some());
    f.write("cafe\u{301}/menu", b"22");
    let paths = [
        RelPath::new("caf\u{e9}/menu").unwrap(),
        RelPath::new("link/x").unwrap(),
    ];
    let s = scan_paths(&f.root, &mut f.index, &opts(), &paths).unwrap();
    assert_eq!((s.changed, s.deleted, s.added), (1, 0, 0), "{s}");
    assert_eq!(f.get("caf\u{e9}/menu").unwrap().record.size, 2);
    assert!(f.get("link/x").is_none());
}

#[test]
fn missing_root_is_an_error() {
    let mut index = Index::open_in_memory().unwrap();
    let err = scan_once(Path::new("/nonexistent/folder"), &mut index, &opts()).unwrap_err();
    assert!(matches!(err, ScanError::Root { .. }), "{err}");
}

#[test]
fn watcher_picks_up_changes() {
    let f = Folder::new();
    let root = f.root.clone();
    let db = root.join(".sync/index.db");
    drop(f.index);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (sum_tx, sum_rx) = std::sync::mpsc::channel::<ScanSummary>();
    let wroot = root.clone();
    let handle = std::thread::spawn(move || {
        let mut index = Index::open(&db).unwrap();
        let wopts = WatchOptions {
            debounce: std::time::Duration::from_millis(100),
            ..WatchOptions::default()
        };
        watch(&wroot, &mut index, &opts(), &wopts, &stop_rx, |s| {
            let _ = sum_tx.send(s.clone());
        })
        .unwrap();
        index
    });
    // The initial scan.
    let first = sum_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    assert!(!first.changed_anything());
    fs::write(root.join("new.txt"), b"hello").unwrap();
    // Bounded wait for the event-driven scan (not a timing assertion).
    let mut added = 0;
    while added == 0 {
        let s = sum_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("watcher saw the change");
        added += s.added;
    }
    stop_tx.send(()).unwrap();
    let index = handle.join().unwrap();
    assert!(
        index
            .get(&RelPath::new("new.txt").unwrap())
            .unwrap()
            .is_some()
    );
}

#[test]
fn many_changes_span_transactions_and_deletion_batches() {
    let mut f = Folder::new();
    for i in 0..600 {
        f.write(&format!("many/{i:03}"), &[i as u8]);
    }
    let mut o = opts();
    o.batch = 64;
    let s = f.scan_with(&o);
    assert_eq!(s.added, 601);
    assert_eq!(f.index.sequence(), 601);
    fs::remove_dir_all(f.root.join("many")).unwrap();
    let s = f.scan_with(&o);
    assert_eq!(s.deleted, 601, "{s}");
    assert_eq!(f.index.summary().unwrap().deleted, 601);
}

#[test]
fn rescan_detects_each_stat_field_changing_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Folder::new();
    for p in ["size", "mtime", "inode", "mode", "kind", "same"] {
        f.write(p, &data(3000, 5));
        f.set_mtime(p, 1_600_000_000);
    }
    std::os::unix::fs::symlink("x", f.root.join("link")).unwrap();
    f.scan();
    // Size alone: the mtime is put back.
    f.write("size", &data(3001, 5));
    f.set_mtime("size", 1_600_000_000);
    // Mtime alone.
    f.set_mtime("mtime", 1_600_000_001);
    // Inode alone, with different bytes of the same size and mtime.
    f.write("inode.new", &data(3000, 6));
    f.set_mtime("inode.new", 1_600_000_000);
    fs::rename(f.root.join("inode.new"), f.root.join("inode")).unwrap();
    // Mode alone.
    fs::set_permissions(f.root.join("mode"), fs::Permissions::from_mode(0o600)).unwrap();
    // A file replaced by a directory; a symlink given a new target.
    fs::remove_file(f.root.join("kind")).unwrap();
    fs::create_dir(f.root.join("kind")).unwrap();
    fs::remove_file(f.root.join("link")).unwrap();
    std::os::unix::fs::symlink("y", f.root.join("link")).unwrap();
    let s = f.scan();
    assert_eq!((s.changed, s.rehashed_files), (6, 3), "{s}");
    assert_eq!(f.get("size").unwrap().record.size, 3001);
    assert_eq!(f.get("mtime").unwrap().record.modified.secs, 1_600_000_001);
    assert_eq!(
        f.get("inode").unwrap().record.hash,
        *blake3::hash(&data(3000, 6)).as_bytes()
    );
    assert_eq!(f.get("mode").unwrap().record.mode, 0o600);
    assert_eq!(f.get("kind").unwrap().record.kind, FileKind::Directory);
    assert_eq!(
        f.get("link").unwrap().record.kind,
        FileKind::Symlink { target: "y".into() }
    );
    for p in ["size", "mtime", "inode", "mode", "kind", "link"] {
        assert_eq!(f.get(p).unwrap().record.version, vv(2), "{p}");
    }
    assert_eq!(f.get("same").unwrap().record.version, vv(1));
}

#[test]
fn walker_chunks_cover_every_entry_across_chunk_boundaries() {
    use crate::walk::{WALK_CHUNK, Walked, walk};
    for n in [
        WALK_CHUNK - 1,
        WALK_CHUNK,
        WALK_CHUNK + 1,
        2 * WALK_CHUNK + 3,
    ] {
        let mut f = Folder::new();
        // `n` entries in all: a directory and n - 1 files in it.
        for i in 0..n - 1 {
            f.write(&format!("d/{i:04}"), b"x");
        }
        let rules = IgnoreRules::load(&f.root).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let root = f.root.clone();
        let walker = std::thread::spawn(move || walk(&root, &[None], &rules, &tx));
        let chunks: Vec<Vec<Walked>> = rx.iter().collect();
        walker.join().unwrap();
        assert!(
            chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= WALK_CHUNK)
        );
        assert_eq!(chunks.len(), n.div_ceil(WALK_CHUNK), "n = {n}");
        let names: Vec<String> = chunks
            .into_iter()
            .flatten()
            .map(|w| match w {
                Walked::Found(found) => found.rel.into_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        let mut want = vec!["d".to_owned()];
        want.extend((0..n - 1).map(|i| format!("d/{i:04}")));
        assert_eq!(names, want, "n = {n}");
        // And the scanner records all of them, then finds nothing changed.
        let s = f.scan();
        assert_eq!(s.added as usize, n, "{s}");
        assert!(!f.scan().changed_anything());
    }
}

#[test]
fn walker_stops_when_the_scan_hangs_up() {
    use crate::walk::{WALK_CHUNK, walk};
    let f = Folder::new();
    for i in 0..4 * WALK_CHUNK {
        f.write(&format!("{i:04}"), b"x");
    }
    let rules = IgnoreRules::load(&f.root).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(0);
    let root = f.root.clone();
    let walker = std::thread::spawn(move || walk(&root, &[None], &rules, &tx));
    assert!(rx.recv().is_ok());
    drop(rx);
    walker.join().unwrap();
}

#[test]
fn one_batch_with_a_rewrite_a_vanished_an_unreadable_and_empty_files() {
    use crate::hasher::BATCH_FILES;
    let mut f = Folder::new();
    // Small files in one directory: they go to the hashers in shared batches.
    let n = BATCH_FILES + 10;
    for i in 0..n {
        let len = if i % 7 == 0 { 0 } else { 1500 + i };
        f.write(&format!("b/{i:03}"), &data(len, i as u8));
    }
    let root = f.root.clone();
    let rewritten = data(2500, 99);
    let rw2 = rewritten.clone();
    let mut o = opts();
    // While "b/001" is hashed, its batch-mates change: "b/002" is rewritten
    // mid-read (retried), "b/003" vanishes, "b/004" becomes a symlink loop (its
    // open fails), before the worker gets to them.
    o.hook = Some(Arc::new(move |rel: &RelPath, attempt, _| {
        match (rel.as_str(), attempt) {
            ("b/001", 0) => {
                fs::remove_file(root.join("b/003")).ok();
                fs::remove_file(root.join("b/004")).ok();
                std::os::unix::fs::symlink("004", root.join("b/004")).ok();
            }
            ("b/002", 0) => fs::write(root.join("b/002"), &rw2).unwrap(),
            _ => {}
        }
    }));
    let s = f.scan_with(&o);
    assert!(s.retries >= 1, "{s}");
    assert_eq!(s.skipped_total, 1, "{s}");
    assert_eq!(s.skipped[0].path, "b/004");
    assert!(
        matches!(s.skipped[0].reason, SkipReason::Unreadable(_)),
        "{s}"
    );
    assert!(f.get("b/003").is_none());
    assert!(f.get("b/004").is_none());
    assert_eq!(
        f.get("b/002").unwrap().record.hash,
        *blake3::hash(&rewritten).as_bytes()
    );
    // Every other file, after the failures in the middle of the batch, is there.
    for i in (0..n).filter(|i| ![2, 3, 4].contains(i)) {
        let e = f.get(&format!("b/{i:03}")).unwrap();
        let len = if i % 7 == 0 { 0 } else { 1500 + i };
        assert_eq!(e.record.hash, *blake3::hash(&data(len, i as u8)).as_bytes());
        assert_eq!(e.record.version, vv(1));
        assert!(e.signed.is_some());
    }
    assert_eq!(s.added as usize, 1 + n - 2, "{s}");
}

/// Options whose hook records which threads hashed.
fn opts_recording_threads() -> (
    ScanOptions,
    Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let mut o = opts();
    o.hook = Some(Arc::new(move |_: &RelPath, _, _| {
        s2.lock().unwrap().push(std::thread::current().id());
    }));
    (o, seen)
}

#[test]
fn scan_paths_does_many_paths_in_one_pass_and_a_few_small_files_on_the_calling_thread() {
    let mut f = Folder::new();
    f.write("gone", b"1");
    f.write("dir/old", b"2");
    f.write("same", b"3");
    f.scan();
    fs::remove_file(f.root.join("gone")).unwrap();
    fs::remove_dir_all(f.root.join("dir")).unwrap();
    f.write("dir/new", &data(3000, 1));
    f.write("new1", &data(5000, 2));
    f.write("new2", b"");
    let paths: Vec<RelPath> = ["gone", "dir", "dir/new", "new1", "new2", "same", "absent"]
        .iter()
        .map(|p| RelPath::new(*p).unwrap())
        .collect();
    let (o, threads) = opts_recording_threads();
    let s = scan_paths(&f.root, &mut f.index, &o, &paths).unwrap();
    assert_eq!((s.added, s.deleted, s.changed), (3, 2, 0), "{s}");
    assert!(f.get("gone").unwrap().record.deleted);
    assert!(f.get("dir/old").unwrap().record.deleted);
    assert_eq!(f.get("dir/new").unwrap().record.size, 3000);
    assert_eq!(f.get("new1").unwrap().record.size, 5000);
    assert_eq!(f.get("new2").unwrap().record.hash, EMPTY_HASH);
    assert_eq!(f.get("same").unwrap().record.version, vv(1));
    let threads = threads.lock().unwrap();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|t| *t == std::thread::current().id()),
        "a few small files are hashed on the calling thread"
    );
}

#[test]
fn more_than_a_few_files_go_to_the_hashing_threads() {
    let mut f = Folder::new();
    let n = super::scanner::INLINE_FILES * 4;
    for i in 0..n {
        f.write(&format!("d/{i:03}"), &data(2000, i as u8));
    }
    let (o, threads) = opts_recording_threads();
    let s = scan_paths(&f.root, &mut f.index, &o, &[RelPath::new("d").unwrap()]).unwrap();
    assert_eq!(s.added as usize, n + 1, "{s}");
    let threads = threads.lock().unwrap();
    let me = std::thread::current().id();
    assert!(threads.iter().filter(|t| **t == me).count() <= super::scanner::INLINE_FILES);
    assert!(threads.iter().any(|t| *t != me));
    for i in 0..n {
        let e = f.get(&format!("d/{i:03}")).unwrap();
        assert_eq!(
            e.record.hash,
            *blake3::hash(&data(2000, i as u8)).as_bytes()
        );
    }
}

#[test]
fn overlapping_and_sibling_paths_are_scanned_once() {
    let mut f = Folder::new();
    f.write("a/x", b"1");
    f.write("a-b/y", b"2");
    let paths: Vec<RelPath> = ["a/x", "a-b", "a", "a/x", "a-b/y"]
        .iter()
        .map(|p| RelPath::new(*p).unwrap())
        .collect();
    let s = scan_paths(&f.root, &mut f.index, &opts(), &paths).unwrap();
    assert_eq!((s.added, s.files, s.directories), (4, 2, 2), "{s}");
}

#[test]
fn big_files_each_in_their_own_batch_among_small_ones() {
    let mut f = Folder::new();
    let big = crate::hasher::BATCH_BYTES as usize + 1000;
    for i in 0..6u8 {
        f.write(&format!("big{i}"), &data(big, i));
        f.write(&format!("small{i}"), &data(100 + usize::from(i), i));
    }
    let mut o = opts();
    o.hash_threads = 4;
    let s = f.scan_with(&o);
    assert_eq!((s.added, s.rehashed_files), (12, 12), "{s}");
    for i in 0..6u8 {
        let e = f.get(&format!("big{i}")).unwrap().record;
        assert_eq!(e.hash, *blake3::hash(&data(big, i)).as_bytes());
        assert_eq!(e.size, big as u64);
    }
    assert!(!f.scan_with(&o).changed_anything());
}
