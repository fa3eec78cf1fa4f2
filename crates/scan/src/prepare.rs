//! Turning what a scan found into the record to store. Pure (no I/O), so it runs
//! on whichever thread has the data: the hashing threads for files they hashed
//! (signing is the costly part, and the thread that writes the index is the
//! scan's bottleneck), the committing thread for directories, symlinks, mode-only
//! changes and tombstones.

use index::{CheckedUpdate, Entry, IndexError, LocalStat, Update};
use keys::{FolderSigningKey, ShortId};
use record::{FileKind, FileRecord, MAX_BLOCKS, RecordError, SignedRecord};

use crate::chunk::Hashed;
use crate::summary::SkipReason;
use crate::walk::Stat;

/// What a new version is, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Changed,
    Deleted,
}

/// A new record for one path, checked and ready to be written.
#[derive(Debug)]
pub(crate) struct NewVersion {
    pub(crate) update: CheckedUpdate,
    pub(crate) change: Change,
}

/// Who records local changes: this peer's id, and the folder key on RW peers.
#[derive(Clone)]
pub(crate) struct Author {
    pub(crate) peer: ShortId,
    pub(crate) signer: Option<FolderSigningKey>,
}

impl std::fmt::Debug for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Author")
            .field("peer", &self.peer)
            .field("signs", &self.signer.is_some())
            .finish()
    }
}

/// What to store for a file just hashed, given the record it had (`prev`).
#[derive(Debug)]
// The big variant is the common one (a new record); boxing it would only add
// an allocation per file.
#[allow(clippy::large_enum_variant)]
pub(crate) enum FileResult {
    /// Same content, mode and mtime as `prev` (a new inode, or a file the engine
    /// wrote): only the stored disk state changes, no new version.
    Same(LocalStat),
    New(NewVersion),
    /// Cannot be recorded; the old record is kept.
    Invalid(SkipReason),
}

/// The record for a file hashed as `hashed` while `stat` held.
pub(crate) fn for_file(
    author: &Author,
    rel: &record::RelPath,
    stat: &Stat,
    hashed: Hashed,
    prev: Option<&Entry>,
) -> FileResult {
    let local = local_stat(stat);
    let same = prev.is_some_and(|p| {
        p.record.is_live_file()
            && p.record.hash == hashed.hash
            && p.record.blocks == hashed.blocks
            && p.record.mode == stat.mode
            && p.record.modified == stat.modified
    });
    if same {
        return FileResult::Same(local);
    }
    if hashed.blocks.len() > MAX_BLOCKS {
        return FileResult::Invalid(SkipReason::InvalidRecord(RecordError::TooLong {
            field: "block list",
            len: hashed.blocks.len(),
            max: MAX_BLOCKS,
        }));
    }
    let mut r = base_record(rel.clone(), FileKind::File, stat);
    r.size = hashed.len;
    r.blocks = hashed.blocks;
    r.hash = hashed.hash;
    match new_version(author, r, prev, Some(local)) {
        Ok(v) => FileResult::New(v),
        Err(reason) => FileResult::Invalid(reason),
    }
}

/// `r` as this peer's new version of its path, after `prev`: this peer's
/// counter bumped on `prev`'s version vector (or a fresh one), signed on RW
/// peers and local-only on RO peers.
pub(crate) fn new_version(
    author: &Author,
    mut r: FileRecord,
    prev: Option<&Entry>,
    local: Option<LocalStat>,
) -> Result<NewVersion, SkipReason> {
    r.version = prev
        .map(|p| p.record.version.clone())
        .unwrap_or_default()
        .incremented(author.peer);
    let signed = match &author.signer {
        Some(key) => Some(SignedRecord::sign(&r, key).map_err(SkipReason::InvalidRecord)?),
        None => None,
    };
    let change = if r.deleted {
        Change::Deleted
    } else if prev.is_none_or(|p| p.record.deleted) {
        Change::Added
    } else {
        Change::Changed
    };
    let local_only = signed.is_none();
    let update = Update {
        record: r,
        signed,
        local_only,
        local,
    }
    .check()
    .map_err(|e| match e {
        IndexError::Record(e) => SkipReason::InvalidRecord(e),
        // `check` fails only on record rules; anything else is still a reason.
        other => SkipReason::Unreadable(other.to_string()),
    })?;
    Ok(NewVersion { update, change })
}

pub(crate) const fn local_stat(s: &Stat) -> LocalStat {
    LocalStat {
        size: s.size,
        modified: s.modified,
        inode: s.inode,
    }
}

/// A live record of `kind` with no content yet; the version is set by
/// [`new_version`].
pub(crate) fn base_record(path: record::RelPath, kind: FileKind, stat: &Stat) -> FileRecord {
    let is_file = kind == FileKind::File;
    FileRecord {
        path,
        kind,
        size: 0,
        modified: stat.modified,
        mode: stat.mode,
        version: record::VersionVector::new(),
        deleted: false,
        blocks: Vec::new(),
        hash: if is_file { record::EMPTY_HASH } else { [0; 32] },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::RwSecret;
    use record::{RelPath, Timestamp, VersionVector};

    use crate::chunk::{ChunkParams, hash_bytes};

    const ME: ShortId = ShortId(7);
    const OTHER: ShortId = ShortId(3);

    fn stat(size: u64) -> Stat {
        Stat {
            size,
            modified: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            mode: 0o644,
            inode: 42,
        }
    }

    fn hashed(data: &[u8]) -> Hashed {
        hash_bytes(
            data,
            ChunkParams {
                min: 64,
                avg: 256,
                max: 1024,
            },
        )
    }

    fn prev_entry(rel: &RelPath, data: &[u8], deleted: bool) -> Entry {
        let h = hashed(data);
        let mut r = base_record(rel.clone(), FileKind::File, &stat(data.len() as u64));
        r.size = h.len;
        r.blocks = h.blocks;
        r.hash = h.hash;
        r.deleted = deleted;
        r.version = VersionVector::from_sorted(vec![(OTHER, 4)]).unwrap();
        Entry {
            record: r,
            sequence: 1,
            signed: None,
            local_only: false,
            local: None,
        }
    }

    fn rw_author() -> (Author, keys::RoKey) {
        let secret = RwSecret::from_bytes([1; 20]);
        (
            Author {
                peer: ME,
                signer: Some(secret.signing_key()),
            },
            secret.ro_key(),
        )
    }

    #[test]
    fn same_content_mode_and_mtime_is_only_a_disk_state() {
        let rel = RelPath::new("a").unwrap();
        let data = vec![5u8; 3000];
        let prev = prev_entry(&rel, &data, false);
        let (author, _) = rw_author();
        let st = Stat {
            inode: 99,
            ..stat(3000)
        };
        match for_file(&author, &rel, &st, hashed(&data), Some(&prev)) {
            FileResult::Same(local) => assert_eq!(local, local_stat(&st)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_change_bumps_our_counter_on_the_old_vector_and_is_signed() {
        let rel = RelPath::new("a").unwrap();
        let prev = prev_entry(&rel, &[5u8; 3000], false);
        let (author, ro) = rw_author();
        let data = vec![6u8; 2000];
        let FileResult::New(v) = for_file(&author, &rel, &stat(2000), hashed(&data), Some(&prev))
        else {
            panic!("not a new version");
        };
        assert_eq!(v.change, Change::Changed);
        let u = v.update.into_update();
        assert_eq!(
            u.record.version,
            VersionVector::from_sorted(vec![(OTHER, 4), (ME, 1)]).unwrap()
        );
        assert_eq!(u.record.hash, *blake3::hash(&data).as_bytes());
        assert!(!u.local_only);
        assert_eq!(u.signed.unwrap().verify(&ro).unwrap(), u.record);
        assert_eq!(u.local, Some(local_stat(&stat(2000))));
    }

    #[test]
    fn read_only_peers_record_unsigned_local_only_and_tombstones_give_an_add() {
        let rel = RelPath::new("a").unwrap();
        let prev = prev_entry(&rel, &[5u8; 30], true);
        let author = Author {
            peer: ME,
            signer: None,
        };
        let FileResult::New(v) =
            for_file(&author, &rel, &stat(30), hashed(&[5u8; 30]), Some(&prev))
        else {
            panic!("not a new version");
        };
        assert_eq!(v.change, Change::Added);
        let u = v.update.into_update();
        assert!(u.local_only && u.signed.is_none());
        assert_eq!(u.record.version.get(ME), 1);
    }

    #[test]
    fn empty_file_without_history() {
        let rel = RelPath::new("e").unwrap();
        let (author, _) = rw_author();
        let FileResult::New(v) = for_file(&author, &rel, &stat(0), hashed(&[]), None) else {
            panic!("not a new version");
        };
        assert_eq!(v.change, Change::Added);
        let r = v.update.record();
        assert_eq!((r.size, r.hash, r.blocks.len()), (0, record::EMPTY_HASH, 0));
        assert_eq!(r.version.get(ME), 1);
    }
}
