//! File records: reading and writing them (streams are in `stream.rs`, the
//! stored row and its decoding in `row.rs`).

use std::path::Path;

use record::{FileKind, FileRecord, RelPath, SignedRecord, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::db::classify;
use crate::row::{COLS, RawDisk, RawRow, decode_kind, decode_local};
use crate::seen::Seen;
use crate::{Index, IndexError, RowId};

/// What the scanner saw on disk when it last matched a record with its file: if
/// these still hold, the file is unchanged and is not rehashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub modified: Timestamp,
    /// Inode number (0 where the platform has none).
    pub inode: u64,
}

/// One stored record with its local bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record.
    pub record: FileRecord,
    /// Local sequence number of its last change.
    pub sequence: u64,
    /// The signed form, when the record was signed (by us or a peer).
    pub signed: Option<SignedRecord>,
    /// A read-only peer's own change: kept here, never signed nor announced.
    pub local_only: bool,
    /// Disk state when last matched (`None`: not known to be on disk).
    pub local: Option<LocalStat>,
}

/// The few columns of a stored row that tell a scan whether the disk still
/// matches it (see [`Writer::stored_state`]): no block list, version or signature
/// is read or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The row, to mark it seen ([`Writer::mark_seen_row`]).
    pub row: RowId,
    /// File, directory or symlink (with its target).
    pub kind: FileKind,
    /// The record's permission bits.
    pub mode: u32,
    /// A tombstone.
    pub deleted: bool,
    /// See [`Entry::local`].
    pub local: Option<LocalStat>,
}

/// A record to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The record; replaces any record at the same path.
    pub record: FileRecord,
    /// Its signed form, if any. Must encode `record` (checked).
    pub signed: Option<SignedRecord>,
    /// See [`Entry::local_only`].
    pub local_only: bool,
    /// See [`Entry::local`]. Blocks of a live file are indexed as local copies only
    /// when this is `Some`.
    pub local: Option<LocalStat>,
}

/// An [`Update`] that has been checked (the record follows every record rule; a
/// signed body encodes exactly that record) and whose columns are encoded: what
/// [`Writer::put_checked`] stores with no further work. Made by
/// [`Update::check`], on any thread, so that a scan does this work on its
/// hashing threads instead of the one thread that writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUpdate {
    update: Update,
    version: Vec<u8>,
    blocks: Vec<u8>,
}

impl Update {
    /// Checks the record and its signed body (see [`Writer::put`]) and encodes the
    /// columns, ready for [`Writer::put_checked`].
    pub fn check(self) -> Result<CheckedUpdate, IndexError> {
        self.record.validate()?;
        if let Some(s) = &self.signed
            && FileRecord::decode(s.body())? != self.record
        {
            return Err(IndexError::Record(record::RecordError::BadValue {
                field: "signed body",
                reason: "does not encode the record stored with it",
            }));
        }
        let r = &self.record;
        let version: Vec<u8> = r
            .version
            .entries()
            .iter()
            .flat_map(|&(p, c)| p.0.to_be_bytes().into_iter().chain(c.to_be_bytes()))
            .collect();
        let blocks: Vec<u8> = r
            .blocks
            .iter()
            .flat_map(|b| b.size.to_be_bytes().into_iter().chain(b.hash))
            .collect();
        Ok(CheckedUpdate {
            update: self,
            version,
            blocks,
        })
    }
}

impl CheckedUpdate {
    /// The record to be stored.
    pub const fn record(&self) -> &FileRecord {
        &self.update.record
    }

    /// The update, as given to [`Update::check`].
    pub fn into_update(self) -> Update {
        self.update
    }
}

/// Signed bodies at least this long keep the body they replace: below it, a
/// whole record costs about what a delta would.
pub const PREVIOUS_MIN_BODY: usize = 4096;

/// The signed body a record replaced, and the sequence it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// Its sequence number when it was current.
    pub sequence: u64,
    /// Its signed body, verbatim.
    pub body: Vec<u8>,
}

impl Index {
    /// The record at `path`, if any (including tombstones).
    pub fn get(&self, path: &RelPath) -> Result<Option<Entry>, IndexError> {
        get_on(&self.conn, &self.path, "path", &path.as_str())
    }

    /// Kind, mode, tombstone flag and disk state of the record at `path`
    /// (see [`Writer::stored_state`]).
    pub fn stored_state(&self, path: &RelPath) -> Result<Option<StoredState>, IndexError> {
        stored_state_on(&self.conn, &self.path, path)
    }

    /// The record whose sequence is `sequence`, if it is still current (a
    /// later change of its path gives it a new sequence).
    pub fn get_by_sequence(&self, sequence: u64) -> Result<Option<Entry>, IndexError> {
        let Ok(sequence) = i64::try_from(sequence) else {
            return Ok(None);
        };
        get_on(&self.conn, &self.path, "sequence", &sequence)
    }

    /// The signed body that the record at `path` replaced, when that record has
    /// a signed body of at least [`PREVIOUS_MIN_BODY`] bytes and replaced a
    /// signed one. Only the last is kept.
    pub fn previous(&self, path: &RelPath) -> Result<Option<Previous>, IndexError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT prev_sequence, prev_body FROM files \
                 WHERE path = ?1 AND prev_sequence IS NOT NULL AND prev_body IS NOT NULL",
            )
            .and_then(|mut s| {
                s.query_row([path.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| classify(&self.path, e))?;
        Ok(row.and_then(|(sequence, body)| {
            Some(Previous {
                sequence: u64::try_from(sequence).ok()?,
                body,
            })
        }))
    }

    /// Forgets the paths marked seen (start of a scan). The marks live in
    /// memory, one bit per row, and are not part of any transaction: a writer
    /// that is rolled back keeps the marks it made.
    pub fn clear_seen(&mut self) -> Result<(), IndexError> {
        self.seen.clear();
        Ok(())
    }

    /// Opens a write transaction; nothing is visible to readers until
    /// [`Writer::commit`], and dropping it rolls back.
    pub fn write(&mut self) -> Result<Writer<'_>, IndexError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        Ok(Writer {
            tx,
            next: self.sequence,
            sequence: &mut self.sequence,
            seen: &mut self.seen,
            path,
        })
    }

    /// Stores one record in its own transaction; returns its new sequence number.
    pub fn put(&mut self, update: Update) -> Result<u64, IndexError> {
        let mut w = self.write()?;
        let seq = w.put(update)?;
        w.commit()?;
        Ok(seq)
    }
}

/// An open write transaction. Every change in it commits together or not at all.
#[derive(Debug)]
pub struct Writer<'a> {
    tx: Transaction<'a>,
    sequence: &'a mut u64,
    seen: &'a mut Seen,
    next: u64,
    path: std::path::PathBuf,
}

impl Writer<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |e| classify(&self.path, e)
    }

    /// The id of the row at `path`, if any.
    fn row_id(&self, path: &RelPath) -> Result<Option<i64>, IndexError> {
        self.tx
            .prepare_cached("SELECT id FROM files WHERE path = ?1")
            .and_then(|mut s| s.query_row([path.as_str()], |r| r.get(0)).optional())
            .map_err(self.err())
    }

    /// The record at `path` as this transaction sees it (including its own writes).
    pub fn get(&self, path: &RelPath) -> Result<Option<Entry>, IndexError> {
        get_on(&self.tx, &self.path, "path", &path.as_str())
    }

    /// Kind, mode, tombstone flag and disk state of the record at `path`, as this
    /// transaction sees it: what a scan compares with `lstat`, without the cost of
    /// reading and checking the whole record ([`get`](Self::get)).
    pub fn stored_state(&self, path: &RelPath) -> Result<Option<StoredState>, IndexError> {
        stored_state_on(&self.tx, &self.path, path)
    }

    /// Stores `update.record`, replacing the record at its path, under a new sequence
    /// number (returned). Re-indexes the file's local block locations.
    ///
    /// The record must follow the record rules and a signed form must encode it
    /// ([`Update::check`]); otherwise nothing is written.
    pub fn put(&mut self, update: Update) -> Result<u64, IndexError> {
        self.put_row(update.check()?).map(|(seq, _)| seq)
    }

    /// [`put`](Self::put), and marks the path seen by the running scan.
    pub fn put_seen(&mut self, update: Update) -> Result<u64, IndexError> {
        self.put_seen_checked(update.check()?)
    }

    /// [`put`](Self::put) of an update checked beforehand.
    pub fn put_checked(&mut self, update: CheckedUpdate) -> Result<u64, IndexError> {
        self.put_row(update).map(|(seq, _)| seq)
    }

    /// [`put_seen`](Self::put_seen) of an update checked beforehand.
    pub fn put_seen_checked(&mut self, update: CheckedUpdate) -> Result<u64, IndexError> {
        let (seq, id) = self.put_row(update)?;
        self.seen.insert(id);
        Ok(seq)
    }

    fn put_row(&mut self, checked: CheckedUpdate) -> Result<(u64, i64), IndexError> {
        let CheckedUpdate {
            update:
                Update {
                    record: r,
                    signed,
                    local_only,
                    local,
                },
            version,
            blocks,
        } = checked;
        let seq = self.next + 1;
        let (target, kind) = match &r.kind {
            FileKind::File => (None, 0),
            FileKind::Directory => (None, 1),
            FileKind::Symlink { target } => (Some(target.as_str()), 2),
        };
        let (body, sig) = match &signed {
            Some(s) => (Some(s.body()), Some(&s.signature().0[..])),
            None => (None, None),
        };
        // The row's id if the path has one, then a plain UPDATE by id or a plain
        // INSERT: an upsert with RETURNING (run as a trigger) needed a statement
        // journal on every put, opened and truncated each time.
        let existing = self.row_id(&r.path)?;
        let (disk_size, disk_secs, disk_nanos, disk_inode) = (
            local.map(|l| l.size as i64),
            local.map(|l| l.modified.secs),
            local.map(|l| l.modified.nanos),
            local.map(|l| l.inode as i64),
        );
        let (size, seq_col) = (r.size as i64, seq as i64);
        // A large record keeps the body it replaces (see `Index::previous`).
        let keep_previous = body.is_some_and(|b| b.len() >= PREVIOUS_MIN_BODY);
        let values: [&dyn rusqlite::ToSql; 19] = [
            &r.path.as_str(),
            &kind,
            &target,
            &size,
            &r.modified.secs,
            &r.modified.nanos,
            &r.mode,
            &version,
            &r.deleted,
            &blocks,
            &&r.hash[..],
            &seq_col,
            &body,
            &sig,
            &local_only,
            &disk_size,
            &disk_secs,
            &disk_nanos,
            &disk_inode,
        ];
        let id = match existing {
            Some(id) => {
                self.tx
                    .prepare_cached(
                        "UPDATE files SET kind = ?2, target = ?3, size = ?4, \
                         mtime_secs = ?5, mtime_nanos = ?6, mode = ?7, version = ?8, deleted = ?9, \
                         blocks = ?10, hash = ?11, sequence = ?12, body = ?13, signature = ?14, \
                         local_only = ?15, disk_size = ?16, disk_mtime_secs = ?17, \
                         disk_mtime_nanos = ?18, disk_inode = ?19, \
                         prev_sequence = CASE WHEN ?21 THEN sequence END, \
                         prev_body = CASE WHEN ?21 THEN body END \
                         WHERE id = ?20 AND path = ?1",
                    )
                    .and_then(|mut stmt| {
                        let mut with_id = values.to_vec();
                        with_id.push(&id);
                        with_id.push(&keep_previous);
                        stmt.execute(&*with_id)
                    })
                    .map_err(self.err())?;
                // The old blocks go; the new ones are indexed below. (Done here,
                // not by a cascading foreign key: see `db.rs`.)
                self.tx
                    .prepare_cached("DELETE FROM blocks WHERE file_id = ?1")
                    .and_then(|mut stmt| stmt.execute([id]))
                    .map_err(self.err())?;
                id
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO files (path, kind, target, size, mtime_secs, mtime_nanos, \
                         mode, version, deleted, blocks, hash, sequence, body, signature, \
                         local_only, disk_size, disk_mtime_secs, disk_mtime_nanos, disk_inode) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                         ?15, ?16, ?17, ?18, ?19)",
                    )
                    .and_then(|mut stmt| stmt.execute(&values[..]))
                    .map_err(self.err())?;
                self.tx.last_insert_rowid()
            }
        };
        if local.is_some() && r.is_live_file() {
            let mut stmt = self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO blocks (hash_prefix, file_id, offset, size) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(self.err())?;
            let mut offset: u64 = 0;
            for b in &r.blocks {
                stmt.execute(params![hash_prefix(&b.hash), id, offset as i64, b.size])
                    .map_err(|e| classify(&self.path, e))?;
                offset += u64::from(b.size);
            }
        }
        self.next = seq;
        Ok((seq, id))
    }

    /// Updates only the disk state of the record at `path` (e.g. a new inode after a
    /// copy with identical content); no new sequence number, nothing to announce.
    pub fn set_local(
        &mut self,
        path: &RelPath,
        local: Option<LocalStat>,
    ) -> Result<(), IndexError> {
        self.tx
            .prepare_cached(
                "UPDATE files SET disk_size = ?2, disk_mtime_secs = ?3, disk_mtime_nanos = ?4, disk_inode = ?5 \
                 WHERE path = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    path.as_str(),
                    local.map(|l| l.size as i64),
                    local.map(|l| l.modified.secs),
                    local.map(|l| l.modified.nanos),
                    local.map(|l| l.inode as i64)
                ])
            })
            .map_err(self.err())?;
        Ok(())
    }

    /// Removes the record at `path` entirely (no tombstone; for purging old
    /// tombstones or local-only rows). Returns whether there was one.
    pub fn remove(&mut self, path: &RelPath) -> Result<bool, IndexError> {
        // Its blocks first: there is no cascading foreign key (see `db.rs`).
        self.tx
            .execute(
                "DELETE FROM blocks WHERE file_id IN (SELECT id FROM files WHERE path = ?1)",
                [path.as_str()],
            )
            .map_err(self.err())?;
        let n = self
            .tx
            .execute("DELETE FROM files WHERE path = ?1", [path.as_str()])
            .map_err(self.err())?;
        Ok(n > 0)
    }

    /// Marks `path` as found by the running scan (see [`Index::unseen`]); a path
    /// with no row needs no mark.
    pub fn mark_seen(&mut self, path: &RelPath) -> Result<(), IndexError> {
        if let Some(id) = self.row_id(path)? {
            self.seen.insert(id);
        }
        Ok(())
    }

    /// Marks the row found by [`stored_state`](Self::stored_state) as found by the
    /// running scan, without looking its path up again.
    pub fn mark_seen_row(&mut self, row: RowId) {
        self.seen.insert(row.0);
    }

    /// Commits every change, making the new sequence number durable with them.
    pub fn commit(self) -> Result<(), IndexError> {
        let Self {
            tx,
            sequence,
            next,
            path,
            ..
        } = self;
        if next != *sequence {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('sequence', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [next as i64],
            )
            .map_err(|e| classify(&path, e))?;
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        *sequence = next;
        Ok(())
    }
}

/// The row whose `column` (unique: `path` or `sequence`) is `key`.
fn get_on(
    conn: &rusqlite::Connection,
    db: &Path,
    column: &str,
    key: &dyn rusqlite::ToSql,
) -> Result<Option<Entry>, IndexError> {
    let sql = format!("SELECT {COLS} FROM files WHERE {column} = ?1");
    let err = |e| classify(db, e);
    let row = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([key], |r| Ok(RawRow::read(r))))
        .optional()
        .map_err(err)?;
    row.transpose()
        .map_err(err)?
        .map(|raw| raw.decode(db))
        .transpose()
}

fn stored_state_on(
    conn: &rusqlite::Connection,
    db: &Path,
    path: &RelPath,
) -> Result<Option<StoredState>, IndexError> {
    type Raw = (i64, i64, Option<String>, i64, bool, RawDisk);
    let err = |e| classify(db, e);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT id, kind, target, mode, deleted, disk_size, disk_mtime_secs, \
             disk_mtime_nanos, disk_inode FROM files WHERE path = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([path.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                ))
            })
        })
        .optional()
        .map_err(err)?;
    let Some((id, kind, target, mode, deleted, disk)) = raw else {
        return Ok(None);
    };
    let bad = |reason: &str| IndexError::BadRow {
        path: db.to_path_buf(),
        what: path.as_str().to_owned(),
        reason: reason.to_owned(),
    };
    Ok(Some(StoredState {
        row: RowId(id),
        kind: decode_kind(kind, target).ok_or_else(|| bad("bad kind"))?,
        mode: u32::try_from(mode).map_err(|_| bad("bad mode"))?,
        deleted,
        local: decode_local(disk).map_err(|()| bad("bad disk mtime"))?,
    }))
}

/// The first 8 bytes of a block hash as the stored key.
pub(crate) fn hash_prefix(hash: &[u8; 32]) -> i64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash;
    i64::from_be_bytes([a, b, c, d, e, f, g, h])
}
