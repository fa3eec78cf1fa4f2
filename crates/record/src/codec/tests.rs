use super::*;
use crate::EMPTY_HASH;
use proptest::prelude::*;

pub(crate) fn arb_record() -> impl Strategy<Value = FileRecord> {
    let path = proptest::collection::vec("[a-zA-Z0-9 ._é-]{1,12}", 1..4)
        .prop_filter_map("valid path", |parts| RelPath::new(parts.join("/")).ok());
    let kind = prop_oneof![
        4 => Just(FileKind::File),
        1 => Just(FileKind::Directory),
        1 => "[a-z/.]{1,20}".prop_map(|target| FileKind::Symlink { target }),
    ];
    let vv = proptest::collection::btree_map(any::<u64>(), 1..u64::MAX, 1..4).prop_map(|m| {
        VersionVector::from_sorted(m.into_iter().map(|(p, c)| (ShortId(p), c)).collect()).unwrap()
    });
    let blocks = proptest::collection::vec((1..=crate::MAX_BLOCK_SIZE, any::<[u8; 32]>()), 0..6);
    (
        path,
        kind,
        any::<i64>(),
        0..1_000_000_000u32,
        0..=0o7777u32,
        vv,
        any::<bool>(),
        blocks,
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(path, kind, secs, nanos, mode, version, deleted, blocks, hash)| {
                let live = !deleted && kind == FileKind::File;
                let blocks: Vec<Block> = if live {
                    blocks
                        .into_iter()
                        .map(|(size, hash)| Block { size, hash })
                        .collect()
                } else {
                    Vec::new()
                };
                let size = blocks.iter().map(|b| u64::from(b.size)).sum();
                let hash = match (live, size) {
                    (false, _) => [0; 32],
                    (true, 0) => EMPTY_HASH,
                    (true, _) => hash,
                };
                FileRecord {
                    path,
                    kind,
                    size,
                    modified: Timestamp { secs, nanos },
                    mode,
                    version,
                    deleted,
                    blocks,
                    hash,
                }
            },
        )
}

fn sample() -> FileRecord {
    FileRecord {
        path: RelPath::new("docs/a.txt").unwrap(),
        kind: FileKind::File,
        size: 5,
        modified: Timestamp {
            secs: 1_700_000_000,
            nanos: 42,
        },
        mode: 0o644,
        version: VersionVector::new().incremented(ShortId(7)),
        deleted: false,
        blocks: vec![Block {
            size: 5,
            hash: [9; 32],
        }],
        hash: [9; 32],
    }
}

#[test]
fn known_encoding() {
    let bytes = sample().encode().unwrap();
    let mut want = vec![1, 0, 10];
    want.extend_from_slice(b"docs/a.txt");
    want.extend_from_slice(&[0, 0, 0, 0, 0x01, 0xa4]);
    want.extend_from_slice(&5u64.to_be_bytes());
    want.extend_from_slice(&1_700_000_000i64.to_be_bytes());
    want.extend_from_slice(&42u32.to_be_bytes());
    want.extend_from_slice(&[0, 1]);
    want.extend_from_slice(&7u64.to_be_bytes());
    want.extend_from_slice(&1u64.to_be_bytes());
    want.extend_from_slice(&[9; 32]);
    want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5]);
    want.extend_from_slice(&[9; 32]);
    assert_eq!(bytes, want);
}

#[test]
fn rejects_bad_bodies() {
    let good = sample().encode().unwrap();
    assert_eq!(
        FileRecord::decode(&[]),
        Err(RecordError::Truncated { field: "format" })
    );
    let mut b = good.clone();
    b[0] = 2;
    assert_eq!(FileRecord::decode(&b), Err(RecordError::UnknownFormat(2)));
    let mut b = good.clone();
    b.push(0);
    assert_eq!(
        FileRecord::decode(&b),
        Err(RecordError::TrailingBytes { extra: 1 })
    );
    for cut in 0..good.len() {
        assert!(
            matches!(
                FileRecord::decode(&good[..cut]),
                Err(RecordError::Truncated { .. })
            ),
            "{cut}"
        );
    }
    // Path "../a.txt" of the same length.
    let mut b = good.clone();
    b[3..13].copy_from_slice(b"../a.txtxx");
    assert!(matches!(FileRecord::decode(&b), Err(RecordError::Path(_))));
    // Block count claiming 2^32-1 blocks must not allocate.
    let mut b = good.clone();
    let at = good.len() - 36 - 4;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        FileRecord::decode(&b),
        Err(RecordError::Truncated { field: "blocks" })
    );
    // Size that the blocks do not add up to.
    let mut r = sample();
    r.size = 6;
    assert_eq!(
        r.encode(),
        Err(RecordError::BlockSizes { blocks: 5, size: 6 })
    );
    // A tombstone with blocks.
    let mut r = sample();
    r.deleted = true;
    assert!(matches!(
        r.encode(),
        Err(RecordError::BadValue {
            field: "blocks",
            ..
        })
    ));
    let big = vec![0u8; MAX_RECORD_LEN + 1];
    assert!(matches!(
        FileRecord::decode(&big),
        Err(RecordError::TooLong { .. })
    ));
}

#[test]
fn rejects_duplicate_peers() {
    let good = sample().encode().unwrap();
    // Splice in a second entry for peer 7.
    let vv_at = 1 + 2 + 10 + 1 + 1 + 4 + 8 + 8 + 4;
    let mut b = good[..vv_at].to_vec();
    b.extend_from_slice(&[0, 2]);
    for _ in 0..2 {
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&1u64.to_be_bytes());
    }
    b.extend_from_slice(&good[vv_at + 2 + 16..]);
    assert_eq!(
        FileRecord::decode(&b),
        Err(RecordError::VersionVector(ShortId(7)))
    );
}

proptest! {
    #[test]
    fn round_trips(r in arb_record()) {
        let bytes = r.encode().unwrap();
        prop_assert_eq!(FileRecord::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(r) = FileRecord::decode(&bytes) {
            prop_assert_eq!(r.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_records_never_panic(r in arb_record(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
        let mut bytes = r.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        if let Ok(d) = FileRecord::decode(&bytes) {
            prop_assert_eq!(d.encode().unwrap(), bytes);
        }
    }
}
