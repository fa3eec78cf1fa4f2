//! What each remote peer has announced, and summaries.

use keys::PeerId;
use rusqlite::{OptionalExtension, params};

use crate::files::hash_prefix;
use crate::{Index, IndexError};

/// A random 64-bit id given to an index when it is created. A rebuilt index has a
/// new one, which tells peers that sequence numbers started over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexId(pub u64);

/// How far we have received a remote peer's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerState {
    /// The peer's index id when it last announced.
    pub index_id: IndexId,
    /// The highest sequence number of its announcements we have stored.
    pub sequence: u64,
}

impl PeerState {
    /// The sequence to ask `peer` for changes after, given the index id it reports
    /// now: our stored sequence if the id is unchanged, else 0 (everything).
    pub fn resume_from(stored: Option<Self>, current: IndexId) -> u64 {
        match stored {
            Some(s) if s.index_id == current => s.sequence,
            _ => 0,
        }
    }
}

/// Where a copy of a block lives on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocation {
    /// The file.
    pub path: record::RelPath,
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub size: u32,
}

/// Counts and sizes of what the index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Live regular files.
    pub files: u64,
    /// Live directories.
    pub directories: u64,
    /// Live symlinks.
    pub symlinks: u64,
    /// Tombstones.
    pub deleted: u64,
    /// Total size of live files, in bytes.
    pub bytes: u64,
    /// Records that are local-only (a read-only peer's own changes).
    pub local_only: u64,
}

/// Candidates for a block, by its hash prefix (see [`Index::block_locations`]).
pub(crate) const BLOCK_LOCATIONS_SQL: &str = "SELECT f.path, b.offset, b.size FROM blocks b JOIN files f ON f.id = b.file_id \
     WHERE b.hash_prefix = ?1 LIMIT ?2";

impl Index {
    /// What we know of `peer`'s index.
    pub fn peer_state(&self, peer: &PeerId) -> Result<Option<PeerState>, IndexError> {
        self.conn
            .query_row(
                "SELECT index_id, sequence FROM peers WHERE peer_id = ?1",
                [&peer.as_bytes()[..]],
                |r| {
                    Ok(PeerState {
                        index_id: IndexId(r.get::<_, i64>(0)? as u64),
                        sequence: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Records how far we have received `peer`'s index (one transaction).
    pub fn set_peer_state(&mut self, peer: &PeerId, state: PeerState) -> Result<(), IndexError> {
        self.conn
            .execute(
                "INSERT INTO peers (peer_id, index_id, sequence) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(peer_id) DO UPDATE SET index_id = excluded.index_id, sequence = excluded.sequence",
                params![&peer.as_bytes()[..], state.index_id.0 as i64, state.sequence as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Local files that may hold a block with `hash`, at most `limit` of them.
    ///
    /// These are *candidates*: the table is keyed by an 8-byte hash prefix and a
    /// file may have changed since it was scanned, so the caller reads the bytes
    /// and checks their BLAKE3 before using them.
    pub fn block_locations(
        &self,
        hash: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<BlockLocation>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached(BLOCK_LOCATIONS_SQL)
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                params![hash_prefix(hash), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (path, offset, size) = row.map_err(self.err())?;
            let bad = |reason: &str| IndexError::BadRow {
                path: self.path.clone(),
                what: path.clone(),
                reason: reason.to_owned(),
            };
            out.push(BlockLocation {
                path: record::RelPath::new(path.clone()).map_err(|e| bad(&e.to_string()))?,
                offset: u64::try_from(offset).map_err(|_| bad("negative block offset"))?,
                size: u32::try_from(size).map_err(|_| bad("bad block size"))?,
            });
        }
        Ok(out)
    }

    /// Counts and bytes of what the index holds.
    pub fn summary(&self) -> Result<Summary, IndexError> {
        self.conn
            .query_row(
                "SELECT \
                   COALESCE(SUM(deleted = 0 AND kind = 0), 0), \
                   COALESCE(SUM(deleted = 0 AND kind = 1), 0), \
                   COALESCE(SUM(deleted = 0 AND kind = 2), 0), \
                   COALESCE(SUM(deleted), 0), \
                   COALESCE(SUM(CASE WHEN deleted = 0 THEN size ELSE 0 END), 0), \
                   COALESCE(SUM(local_only), 0) \
                 FROM files",
                [],
                |r| {
                    let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok(Summary {
                        files: n(0)?,
                        directories: n(1)?,
                        symlinks: n(2)?,
                        deleted: n(3)?,
                        bytes: n(4)?,
                        local_only: n(5)?,
                    })
                },
            )
            .map_err(self.err())
    }
}
