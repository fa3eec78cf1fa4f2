use super::*;
use keys::{FolderSigningKey, RwSecret, ShortId};
use record::{Block, Timestamp, VersionVector};
use std::collections::BTreeMap;

struct Fixture {
    key: FolderSigningKey,
    index: BTreeMap<RelPath, LocalEntry>,
    folder: Folder,
}

fn peer(n: u8) -> PeerId {
    PeerId([n; 32])
}

fn path(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn file(name: &str, version: &[(u64, u64)], content: u8, blocks: usize) -> FileRecord {
    let blocks: Vec<Block> = (0..blocks)
        .map(|i| {
            let mut hash = [content; 32];
            hash[1] = i as u8;
            Block { size: 100, hash }
        })
        .collect();
    let size = 100 * blocks.len() as u64;
    let hash = if blocks.is_empty() {
        record::EMPTY_HASH
    } else {
        [content; 32]
    };
    FileRecord {
        path: path(name),
        kind: FileKind::File,
        size,
        modified: Timestamp {
            secs: i64::from(content),
            nanos: 0,
        },
        mode: 0o644,
        version: VersionVector::from_sorted(
            version.iter().map(|&(p, c)| (ShortId(p), c)).collect(),
        )
        .unwrap(),
        deleted: false,
        blocks,
        hash,
    }
}

impl Fixture {
    fn new() -> Self {
        let key = RwSecret::from_bytes([5; 20]).signing_key();
        let folder = Folder::new(FolderConfig {
            ro_key: key.ro_key(),
            signer: Some(key.clone()),
            schedule: ScheduleConfig::default(),
        });
        Self {
            key,
            index: BTreeMap::new(),
            folder,
        }
    }

    fn sign(&self, record: &FileRecord) -> SignedRecord {
        SignedRecord::sign(record, &self.key).unwrap()
    }

    fn receive(&mut self, from: PeerId, records: &[FileRecord]) -> Vec<Rejected> {
        let signed = records.iter().map(|r| self.sign(r)).collect();
        let index = &self.index;
        self.folder
            .handle_records(from, signed, &|p: &RelPath| index.get(p).cloned())
    }

    fn actions(&mut self) -> Vec<Action> {
        let now = Instant::now();
        std::iter::from_fn(|| self.folder.poll_action(now)).collect()
    }

    fn applied(&mut self, record: &FileRecord) {
        self.index.insert(
            record.path.clone(),
            LocalEntry {
                record: record.clone(),
                local_only: false,
            },
        );
        let index = &self.index;
        self.folder
            .handle_applied(record, &|p: &RelPath| index.get(p).cloned());
    }
}

#[test]
fn forged_records_are_rejected_and_the_rest_applied() {
    let mut fx = Fixture::new();
    let good = file("good", &[(1, 1)], 1, 0);
    let other_key = RwSecret::from_bytes([6; 20]).signing_key();
    let forged = SignedRecord::sign(&file("evil", &[(1, 1)], 2, 0), &other_key).unwrap();
    let signed_good = fx.sign(&good);
    let index = &fx.index;
    let rejected = fx
        .folder
        .handle_records(peer(1), vec![forged, signed_good], &|p: &RelPath| {
            index.get(p).cloned()
        });
    assert_eq!(
        rejected,
        vec![Rejected {
            peer: peer(1),
            reason: RecordError::BadSignature
        }]
    );
    let actions = fx.actions();
    // The empty file needs no block: it is looked up, then finalized at once.
    assert!(matches!(&actions[0], Action::FindLocalBlocks { path, .. } if path.as_str() == "good"));
    assert!(
        matches!(&actions[1], Action::Finalize { record, .. } if record.path.as_str() == "good")
    );
    assert_eq!(actions.len(), 2);
}

#[test]
fn a_record_verified_for_another_folder_proves_nothing_here() {
    let mut fx = Fixture::new();
    let other = RwSecret::from_bytes([6; 20]);
    let elsewhere = SignedRecord::sign(&file("evil", &[(1, 1)], 2, 0), &other.signing_key())
        .unwrap()
        .into_verified(&other.ro_key())
        .unwrap();
    let index = &fx.index;
    let rejected = fx
        .folder
        .handle_verified(peer(1), vec![elsewhere], &|p: &RelPath| {
            index.get(p).cloned()
        });
    assert_eq!(
        rejected,
        vec![Rejected {
            peer: peer(1),
            reason: RecordError::BadSignature
        }]
    );
    assert!(fx.actions().is_empty());
}

#[test]
fn a_new_file_is_looked_up_fetched_and_finalized() {
    let mut fx = Fixture::new();
    fx.folder.peer_connected(peer(1));
    let f = file("a.bin", &[(1, 1)], 3, 3);
    fx.receive(peer(1), std::slice::from_ref(&f));
    let actions = fx.actions();
    assert!(matches!(&actions[0], Action::FindLocalBlocks { .. }));
    let requests: Vec<&Request> = actions
        .iter()
        .filter_map(|a| {
            if let Action::Request(r) = a {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(requests.len(), 3);
    // Block 1 turned out to be local; the others arrive.
    fx.folder.handle_local_blocks(&f.path, f.hash, &[1]);
    let now = Instant::now();
    assert_eq!(
        fx.folder.handle_block(&peer(1), &f.path, f.hash, 0, now),
        Arrival::Accepted
    );
    assert_eq!(
        fx.folder.handle_block(&peer(1), &f.path, f.hash, 2, now),
        Arrival::Accepted
    );
    let actions = fx.actions();
    assert!(matches!(&actions[..], [Action::Finalize { record, .. }] if *record == f));
    fx.applied(&f);
    assert!(fx.folder.is_idle());
}

#[test]
fn rename_copies_from_the_old_file_before_deleting_it() {
    let mut fx = Fixture::new();
    let old = file("old.txt", &[(1, 1)], 4, 2);
    fx.index.insert(
        old.path.clone(),
        LocalEntry {
            record: old.clone(),
            local_only: false,
        },
    );
    let mut gone = old.clone();
    gone.deleted = true;
    gone.blocks.clear();
    gone.size = 0;
    gone.hash = [0; 32];
    gone.version = gone.version.incremented(ShortId(1));
    let mut new = old.clone();
    new.path = path("new.txt");
    fx.receive(peer(1), &[gone.clone(), new.clone()]);
    let actions = fx.actions();
    assert_eq!(
        actions.len(),
        1,
        "the delete waits for the lookup: {actions:?}"
    );
    assert!(
        matches!(&actions[0], Action::FindLocalBlocks { path, .. } if path.as_str() == "new.txt")
    );
    fx.folder.handle_local_blocks(&new.path, new.hash, &[0, 1]);
    let actions = fx.actions();
    assert!(
        matches!(&actions[0], Action::Finalize { record, .. } if record.path.as_str() == "new.txt")
    );
    assert!(
        matches!(&actions[1], Action::Delete { record, .. } if record.path.as_str() == "old.txt")
    );
}

#[test]
fn conflict_moves_the_local_loser_aside_then_takes_the_winner() {
    let mut fx = Fixture::new();
    let ours = file("doc.txt", &[(1, 1), (2, 1)], 1, 1);
    fx.index.insert(
        ours.path.clone(),
        LocalEntry {
            record: ours.clone(),
            local_only: false,
        },
    );
    let theirs = file(
        "doc.txt",
        &[(1, 2), (2, 0)]
            .iter()
            .copied()
            .filter(|e| e.1 > 0)
            .collect::<Vec<_>>(),
        9,
        1,
    );
    fx.folder.peer_connected(peer(3));
    fx.receive(peer(3), std::slice::from_ref(&theirs));
    let actions = fx.actions();
    let [
        Action::MoveAside {
            path,
            to: LoserFate::ConflictCopy(copy),
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(path.as_str(), "doc.txt");
    assert!(copy.as_str().starts_with("doc.sync-conflict-"));
    // The daemon moved it and dropped the index entry.
    fx.index.remove(path);
    let index = &fx.index;
    fx.folder
        .handle_moved_aside(&theirs.path, &|p: &RelPath| index.get(p).cloned());
    let actions = fx.actions();
    // A read-write peer settles the two versions into one that has seen both.
    assert!(matches!(&actions[0], Action::FindLocalBlocks { record, .. } if *record == theirs));
    // Once here, a read-write peer stores it settled: a version that has seen both.
    fx.folder
        .handle_local_blocks(&theirs.path, theirs.hash, &[0]);
    let settled = theirs.version.merge(&ours.version);
    let actions = fx.actions();
    assert!(
        matches!(&actions[..], [Action::Finalize { record, .. }]
        if record.hash == theirs.hash && record.version == settled),
        "{actions:?}"
    );
}

#[test]
fn same_version_from_a_second_peer_adds_a_source() {
    let mut fx = Fixture::new();
    fx.folder.peer_connected(peer(1));
    fx.folder.peer_connected(peer(2));
    let f = file("a", &[(1, 1)], 2, 4);
    fx.receive(peer(1), std::slice::from_ref(&f));
    fx.receive(peer(2), std::slice::from_ref(&f));
    let actions = fx.actions();
    let peers: std::collections::BTreeSet<PeerId> = actions
        .iter()
        .filter_map(|a| {
            if let Action::Request(r) = a {
                Some(r.peer)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(peers.len(), 2, "both peers are asked");
    assert_eq!(
        fx.folder.needed(),
        vec![(f.path.clone(), vec![peer(1), peer(2)])]
    );
}

#[test]
fn metadata_only_change_transfers_nothing() {
    let mut fx = Fixture::new();
    let ours = file("a", &[(1, 1)], 2, 2);
    fx.index.insert(
        ours.path.clone(),
        LocalEntry {
            record: ours.clone(),
            local_only: false,
        },
    );
    let mut chmod = ours.clone();
    chmod.mode = 0o600;
    chmod.version = chmod.version.incremented(ShortId(1));
    fx.receive(peer(1), std::slice::from_ref(&chmod));
    let actions = fx.actions();
    assert!(matches!(&actions[..], [Action::UpdateMetadata { record, .. }] if *record == chmod));
}

#[test]
fn older_and_equal_records_change_nothing() {
    let mut fx = Fixture::new();
    let ours = file("a", &[(1, 2)], 2, 1);
    fx.index.insert(
        ours.path.clone(),
        LocalEntry {
            record: ours.clone(),
            local_only: false,
        },
    );
    fx.receive(peer(1), &[ours.clone(), file("a", &[(1, 1)], 1, 1)]);
    assert!(fx.actions().is_empty());
    assert!(fx.folder.is_idle());
}

#[test]
fn directories_come_before_their_contents() {
    let mut fx = Fixture::new();
    let dir = FileRecord {
        kind: FileKind::Directory,
        blocks: vec![],
        size: 0,
        hash: [0; 32],
        ..file("d", &[(1, 1)], 0, 0)
    };
    let inner = file("d/x", &[(1, 1)], 1, 0);
    fx.receive(peer(1), &[inner, dir]);
    let actions = fx.actions();
    assert!(matches!(&actions[0], Action::CreateDir { record, .. } if record.path.as_str() == "d"));
}

#[test]
fn availability_is_kept_only_for_versions_being_fetched() {
    let mut fx = Fixture::new();
    fx.folder.peer_connected(peer(1));
    fx.folder.peer_connected(peer(2));
    let f = file("a", &[(1, 1)], 4, 2);
    fx.receive(peer(1), std::slice::from_ref(&f));
    // Another file, or another version: ignored.
    fx.folder
        .handle_availability(&peer(2), &path("other"), f.hash, vec![true; 1000]);
    fx.folder
        .handle_availability(&peer(2), &f.path, [9; 32], vec![true, true]);
    assert_eq!(fx.folder.needed(), vec![(f.path.clone(), vec![peer(1)])]);
    // The version being fetched: counted, and cut to its block count.
    fx.folder
        .handle_availability(&peer(2), &f.path, f.hash, vec![false, true, true, true]);
    assert_eq!(
        fx.folder.needed(),
        vec![(f.path.clone(), vec![peer(1), peer(2)])]
    );
    assert_eq!(fx.folder.blocks_needed(&f.path, f.hash), Some(2));
}
