//! Streaming records out of the index in batches, by sequence or by path.

use std::collections::VecDeque;

use record::RelPath;
use rusqlite::params;

use crate::row::{COLS, RawRow};
use crate::{Entry, Index, IndexError};

/// How many rows a streaming query fetches per batch unless told otherwise.
pub const DEFAULT_BATCH: usize = 512;

impl Index {
    /// Every record changed after sequence `after`, in sequence order, fetched
    /// `batch` rows at a time (never all at once). Includes local-only and unsigned
    /// records; see [`announce_since`](Self::announce_since) for what peers may see.
    pub fn changes_since(&self, after: u64, batch: usize) -> Stream<'_> {
        Stream::new(
            self,
            Order::Sequence {
                after,
                announce_only: false,
            },
            batch,
        )
    }

    /// Like [`changes_since`](Self::changes_since), but only signed records that are
    /// not local-only: what may be announced to peers.
    pub fn announce_since(&self, after: u64, batch: usize) -> Stream<'_> {
        Stream::new(
            self,
            Order::Sequence {
                after,
                announce_only: true,
            },
            batch,
        )
    }

    /// Every record at or below `dir` (the whole folder for `None`), in path order,
    /// streamed in batches.
    pub fn under(&self, dir: Option<&RelPath>, batch: usize) -> Stream<'_> {
        Stream::new(
            self,
            Order::Path {
                dir: dir.map(|d| d.as_str().to_owned()),
                after: None,
                unseen: false,
            },
            batch,
        )
    }

    /// Live records at or below `dir` that were not marked with
    /// [`Writer::mark_seen`](crate::Writer::mark_seen) (or its variants) since
    /// [`clear_seen`](Self::clear_seen): what a scan did not find on disk.
    pub fn unseen(&self, dir: Option<&RelPath>, batch: usize) -> Stream<'_> {
        self.unseen_after(dir, None, batch)
    }

    /// Like [`unseen`](Self::unseen), starting after the path `after`: to go on
    /// from the last entry of a batch after writing in between.
    pub fn unseen_after(
        &self,
        dir: Option<&RelPath>,
        after: Option<&RelPath>,
        batch: usize,
    ) -> Stream<'_> {
        Stream::new(
            self,
            Order::Path {
                dir: dir.map(|d| d.as_str().to_owned()),
                after: after.map(|a| a.as_str().to_owned()),
                unseen: true,
            },
            batch,
        )
    }
}

enum Order {
    Sequence {
        after: u64,
        announce_only: bool,
    },
    Path {
        dir: Option<String>,
        after: Option<String>,
        unseen: bool,
    },
}

/// A stream of entries read from the index in batches; holds at most one batch.
pub struct Stream<'a> {
    index: &'a Index,
    order: Order,
    batch: usize,
    buf: VecDeque<Entry>,
    done: bool,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("buffered", &self.buf.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<'a> Stream<'a> {
    fn new(index: &'a Index, order: Order, batch: usize) -> Self {
        Self {
            index,
            order,
            batch: batch.max(1),
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn fill(&mut self) -> Result<(), IndexError> {
        let limit = self.batch as i64;
        let rows: Vec<Result<RawRow, rusqlite::Error>> = match &self.order {
            Order::Sequence {
                after,
                announce_only,
            } => {
                let filter = if *announce_only {
                    "AND signature IS NOT NULL AND local_only = 0"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT {COLS} FROM files WHERE sequence > ?1 {filter} ORDER BY sequence LIMIT ?2"
                );
                let mut stmt = self
                    .index
                    .conn
                    .prepare_cached(&sql)
                    .map_err(self.index.err())?;
                stmt.query_map(params![*after as i64, limit], |r| Ok(RawRow::read(r)))
                    .map_err(self.index.err())?
                    .map(|r| r.and_then(|x| x))
                    .collect()
            }
            Order::Path {
                unseen: true,
                dir,
                after,
            } => {
                let (dir, after) = (dir.clone(), after.clone());
                return self.fill_unseen(dir.as_deref(), after);
            }
            Order::Path { dir, after, .. } => {
                let (lo, hi, range) = path_range(dir.as_deref(), after.as_deref());
                let cursor = after.clone().unwrap_or_default();
                let sql = format!("SELECT {COLS} FROM files WHERE {range} ORDER BY path LIMIT ?4");
                let mut stmt = self
                    .index
                    .conn
                    .prepare_cached(&sql)
                    .map_err(self.index.err())?;
                stmt.query_map(params![lo, hi, cursor, limit], |r| Ok(RawRow::read(r)))
                    .map_err(self.index.err())?
                    .map(|r| r.and_then(|x| x))
                    .collect()
            }
        };
        if rows.len() < self.batch {
            self.done = true;
        }
        for raw in rows {
            let entry = raw.map_err(self.index.err())?.decode(&self.index.path)?;
            match &mut self.order {
                Order::Sequence { after, .. } => *after = entry.sequence,
                Order::Path { after, .. } => *after = Some(entry.record.path.as_str().to_owned()),
            }
            self.buf.push_back(entry);
        }
        Ok(())
    }
}

impl Stream<'_> {
    /// Live rows not marked seen, after `after`: walks the ids and paths of the
    /// live rows in path order (cheap: no blob is read) and reads in full only the
    /// unseen ones, up to one batch.
    fn fill_unseen(
        &mut self,
        dir: Option<&str>,
        mut after: Option<String>,
    ) -> Result<(), IndexError> {
        let index = self.index;
        let limit = self.batch.max(1024);
        let err = index.err();
        let full_row = format!("SELECT {COLS} FROM files WHERE id = ?1");
        let exhausted = loop {
            let (lo, hi, range) = path_range(dir, after.as_deref());
            let sql = format!(
                "SELECT id, path FROM files WHERE {range} AND deleted = 0 \
                 ORDER BY path LIMIT ?4"
            );
            let cursor = after.as_deref().unwrap_or_default();
            let rows: Vec<(i64, String)> = index
                .conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params![lo, hi, cursor, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .map_err(&err)?;
            let exhausted = rows.len() < limit;
            for (id, path) in rows {
                after = Some(path);
                if index.seen.contains(id) {
                    continue;
                }
                let raw = index
                    .conn
                    .prepare_cached(&full_row)
                    .and_then(|mut stmt| stmt.query_row([id], |r| Ok(RawRow::read(r))))
                    .and_then(|r| r)
                    .map_err(&err)?;
                self.buf.push_back(raw.decode(&index.path)?);
                if self.buf.len() >= self.batch {
                    break;
                }
            }
            if self.buf.len() >= self.batch {
                break false;
            }
            if exhausted {
                break true;
            }
        };
        if let Order::Path { after: cursor, .. } = &mut self.order {
            *cursor = after;
        }
        self.done = exhausted;
        Ok(())
    }
}

/// Bounds (`?1`, `?2`) and the condition for the rows at or below `dir` after
/// the cursor `?3` (`after`; `None`: from the start).
///
/// Everything under `dir` lies in ['dir', 'dir0') ('0' follows '/' in byte
/// order; SQLite compares TEXT with memcmp). That range also holds 'dir-x' and
/// 'dir.txt', which the last test drops. SQLite uses only one lower bound of a
/// range on the `path` index: given both `path > ?3` and `path >= ?1` it took
/// the cursor's, and with an empty cursor scanned every row before `dir`, once
/// per query (~10 ms at 100 000 rows, for every `scan_paths`). So exactly one
/// lower bound is written, the greater of the two, chosen here (Rust compares
/// strings bytewise, as SQLite's BINARY collation does).
fn path_range(dir: Option<&str>, after: Option<&str>) -> (String, String, String) {
    let lower = |lo: &str| match after {
        Some(a) if a >= lo => "path > ?3",
        _ if lo.is_empty() => "1",
        _ => "path >= ?1",
    };
    match dir {
        Some(d) => (
            d.to_owned(),
            format!("{d}0"),
            format!(
                "{} AND path < ?2 AND (path = ?1 OR path >= ?1 || '/')",
                lower(d)
            ),
        ),
        None => (
            String::new(),
            String::new(),
            format!("{} AND ?1 = ?2", lower("")),
        ),
    }
}

impl Iterator for Stream<'_> {
    type Item = Result<Entry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty()
            && !self.done
            && let Err(e) = self.fill()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.buf.pop_front().map(Ok)
    }
}
