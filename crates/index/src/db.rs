//! Opening the database: pragmas, integrity check, migrations, meta values.

use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OptionalExtension};

use crate::schema::{MIGRATIONS, SCHEMA_VERSION};
use crate::seen::Seen;
use crate::{IndexError, IndexId};

/// One folder's index: the single owner of its SQLite connection.
///
/// All writes go through [`Index::write`], one transaction each; the struct is
/// `Send` but not `Sync`, so async code moves it into a dedicated thread (or
/// `spawn_blocking`) and talks to it over a channel.
#[derive(Debug)]
pub struct Index {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) index_id: IndexId,
    pub(crate) sequence: u64,
    /// Rows found by the running scan; per connection, never persisted.
    pub(crate) seen: Seen,
}

impl Index {
    /// Opens (or creates) the index at `path`.
    ///
    /// Sets WAL mode, runs `PRAGMA quick_check` and fails with
    /// [`IndexError::Corrupt`] on a damaged file, then applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path).map_err(|e| classify(path, e))?;
        Self::setup(conn, path.to_path_buf(), true, false)
    }

    /// Opens the index for the one process that owns it (the running `sync`):
    /// SQLite's exclusive locking mode takes the file lock once instead of at
    /// every transaction, which makes the many small reads of a sync several
    /// times cheaper. Other processes cannot open it meanwhile (`status` reads
    /// the daemon's status file instead).
    pub fn open_exclusive(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path).map_err(|e| classify(path, e))?;
        Self::setup(conn, path.to_path_buf(), true, true)
    }

    /// A throwaway index in memory (tests, dry runs).
    pub fn open_in_memory() -> Result<Self, IndexError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| classify(&path, e))?;
        Self::setup(conn, path, false, false)
    }

    fn setup(
        conn: Connection,
        path: PathBuf,
        on_disk: bool,
        exclusive: bool,
    ) -> Result<Self, IndexError> {
        let err = |e| classify(&path, e);
        if exclusive {
            // Before WAL mode is set, so the WAL index lives in heap memory.
            let mode: String = conn
                .pragma_update_and_check(None, "locking_mode", "exclusive", |r| r.get(0))
                .map_err(err)?;
            tracing::debug!(path = %path.display(), mode, "index locking mode");
        }
        // The first statement reads the header: a file that is not a database
        // fails here with NOTADB.
        if on_disk {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
                .map_err(err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %path.display(), mode, "index database is not in WAL mode");
            }
        }
        check_integrity(&conn, &path)?;
        // NORMAL is durable against corruption in WAL mode; a power cut may lose
        // the last transactions, which the next scan redoes.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Off: the one foreign key (blocks → files, ON DELETE CASCADE) made every
        // write to either table check the other and, with it, open and truncate
        // a statement journal per statement. The writer deletes a file's block
        // rows itself, in the same transaction (`Writer::put`, `Writer::remove`).
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(err)?;
        conn.pragma_update(None, "temp_store", "FILE")
            .map_err(err)?;
        // Up to 16 MiB of page cache (default 2 MiB), taken only as used: a scan
        // inserts block rows at random places in the block table, and with the
        // default cache it re-read pages and spilled dirty ones mid-transaction.
        conn.pragma_update(None, "cache_size", -16384)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // Plans that do not depend on the bound values: otherwise SQLite compiles
        // a cached statement again whenever a value it may plan by is bound (a
        // `LIMIT ?`, a join's key), and `block_locations`, looked up for every
        // block received, spent 8 % of a small-file receiver's CPU compiling.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(err)?;
        let mut index = Self {
            conn,
            path,
            index_id: IndexId(0),
            sequence: 0,
            seen: Seen::default(),
        };
        index.migrate()?;
        index.load_meta()?;
        Ok(index)
    }

    fn migrate(&mut self) -> Result<(), IndexError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if found > SCHEMA_VERSION {
            return Err(IndexError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let start = usize::try_from(found).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::info!(path = %self.path.display(), version = i + 1, "index schema migrated");
        }
        Ok(())
    }

    fn load_meta(&mut self) -> Result<(), IndexError> {
        let id = self.meta("index_id")?;
        self.index_id = match id {
            Some(id) => IndexId(id as u64),
            None => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).map_err(|e| IndexError::Random(e.to_string()))?;
                // Zero is reserved for "no index" in peer bookkeeping.
                let id = u64::from_be_bytes(bytes).max(1);
                self.conn
                    .execute(
                        "INSERT INTO meta(key, value) VALUES ('index_id', ?1)",
                        [id as i64],
                    )
                    .map_err(|e| classify(&self.path, e))?;
                IndexId(id)
            }
        };
        self.sequence = self.meta("sequence")?.map_or(0, |s| s as u64);
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, IndexError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| classify(&self.path, e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This index's random id, made when the database was created. A peer that sees
    /// a new id knows the index was rebuilt and asks for everything again.
    pub const fn index_id(&self) -> IndexId {
        self.index_id
    }

    /// The sequence number of the last local change (0: none yet).
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Runs `PRAGMA integrity_check` (slower and more thorough than the
    /// `quick_check` done at open).
    pub fn integrity_check(&self) -> Result<(), IndexError> {
        run_check(&self.conn, &self.path, "integrity_check")
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |e| classify(&self.path, e)
    }
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), IndexError> {
    run_check(conn, path, "quick_check")
}

fn run_check(conn: &Connection, path: &Path, pragma: &str) -> Result<(), IndexError> {
    let mut problems = Vec::new();
    conn.pragma_query(None, pragma, |row| {
        let line: String = row.get(0)?;
        if problems.len() < 5 {
            problems.push(line);
        }
        Ok(())
    })
    .map_err(|e| classify(path, e))?;
    if problems.len() == 1 && problems.first().is_some_and(|p| p == "ok") {
        Ok(())
    } else {
        Err(IndexError::Corrupt {
            path: path.to_path_buf(),
            detail: problems.join("; "),
        })
    }
}

/// Turns SQLite's corruption codes into [`IndexError::Corrupt`].
pub(crate) fn classify(path: &Path, source: rusqlite::Error) -> IndexError {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => IndexError::Corrupt {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        _ => IndexError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
    }
}
