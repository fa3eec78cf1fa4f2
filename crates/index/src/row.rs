//! A `files` row as SQLite stores it, and its checked decoding into an
//! [`Entry`]: damaged rows are [`IndexError::BadRow`], never a panic.

use std::path::Path;

use keys::{ShortId, Signature};
use record::{Block, FileKind, FileRecord, RelPath, SignedRecord, Timestamp, VersionVector};
use rusqlite::Row;

use crate::{Entry, IndexError, LocalStat};

/// The columns [`RawRow::read`] reads, in its order.
pub(crate) const COLS: &str = "path, kind, target, size, mtime_secs, mtime_nanos, mode, version, \
                               deleted, blocks, hash, sequence, body, signature, local_only, \
                               disk_size, disk_mtime_secs, disk_mtime_nanos, disk_inode";

pub(crate) fn decode_kind(kind: i64, target: Option<String>) -> Option<FileKind> {
    match (kind, target) {
        (0, None) => Some(FileKind::File),
        (1, None) => Some(FileKind::Directory),
        (2, Some(target)) => Some(FileKind::Symlink { target }),
        _ => None,
    }
}

pub(crate) type RawDisk = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

pub(crate) fn decode_local(disk: RawDisk) -> Result<Option<LocalStat>, ()> {
    Ok(match disk {
        (Some(size), Some(secs), Some(nanos), Some(inode)) => Some(LocalStat {
            size: size as u64,
            modified: Timestamp {
                secs,
                nanos: u32::try_from(nanos).map_err(|_| ())?,
            },
            inode: inode as u64,
        }),
        _ => None,
    })
}

/// A row as stored, before it is checked.
pub(crate) struct RawRow {
    path: String,
    kind: i64,
    target: Option<String>,
    size: i64,
    mtime_secs: i64,
    mtime_nanos: i64,
    mode: i64,
    version: Vec<u8>,
    deleted: bool,
    blocks: Vec<u8>,
    hash: Vec<u8>,
    sequence: i64,
    body: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
    local_only: bool,
    disk: RawDisk,
}

impl RawRow {
    pub(crate) fn read(r: &Row<'_>) -> Result<Self, rusqlite::Error> {
        Ok(Self {
            path: r.get(0)?,
            kind: r.get(1)?,
            target: r.get(2)?,
            size: r.get(3)?,
            mtime_secs: r.get(4)?,
            mtime_nanos: r.get(5)?,
            mode: r.get(6)?,
            version: r.get(7)?,
            deleted: r.get(8)?,
            blocks: r.get(9)?,
            hash: r.get(10)?,
            sequence: r.get(11)?,
            body: r.get(12)?,
            signature: r.get(13)?,
            local_only: r.get(14)?,
            disk: (r.get(15)?, r.get(16)?, r.get(17)?, r.get(18)?),
        })
    }

    pub(crate) fn decode(self, db: &Path) -> Result<Entry, IndexError> {
        let bad = |reason: &str| IndexError::BadRow {
            path: db.to_path_buf(),
            what: self.path.clone(),
            reason: reason.to_owned(),
        };
        let path = RelPath::new(self.path.clone()).map_err(|e| bad(&e.to_string()))?;
        let kind = decode_kind(self.kind, self.target.clone()).ok_or_else(|| bad("bad kind"))?;
        let version = self
            .version
            .chunks(16)
            .map(|c| {
                let (p, n) = c
                    .split_at_checked(8)
                    .ok_or_else(|| bad("bad version vector"))?;
                let p = p.try_into().map_err(|_| bad("bad version vector"))?;
                let n = n.try_into().map_err(|_| bad("bad version vector"))?;
                Ok((ShortId(u64::from_be_bytes(p)), u64::from_be_bytes(n)))
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        let version = VersionVector::from_sorted(version).map_err(|_| bad("bad version vector"))?;
        let blocks = self
            .blocks
            .chunks(36)
            .map(|c| {
                let (s, h) = c.split_at_checked(4).ok_or_else(|| bad("bad block list"))?;
                Ok(Block {
                    size: u32::from_be_bytes(s.try_into().map_err(|_| bad("bad block list"))?),
                    hash: h.try_into().map_err(|_| bad("bad block list"))?,
                })
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        let record = FileRecord {
            path,
            kind,
            size: self.size as u64,
            modified: Timestamp {
                secs: self.mtime_secs,
                nanos: u32::try_from(self.mtime_nanos).map_err(|_| bad("bad mtime"))?,
            },
            mode: u32::try_from(self.mode).map_err(|_| bad("bad mode"))?,
            version,
            deleted: self.deleted,
            blocks,
            hash: self
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| bad("bad hash"))?,
        };
        record.validate().map_err(|e| bad(&e.to_string()))?;
        let signed = match (self.body, self.signature) {
            (Some(body), Some(sig)) => {
                let sig: [u8; 64] = sig
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("bad signature length"))?;
                Some(SignedRecord::from_parts(body, Signature(sig)))
            }
            (None, None) => None,
            _ => return Err(bad("body without signature")),
        };
        let local = decode_local(self.disk).map_err(|()| bad("bad disk mtime"))?;
        Ok(Entry {
            record,
            sequence: self.sequence as u64,
            signed,
            local_only: self.local_only,
            local,
        })
    }
}
