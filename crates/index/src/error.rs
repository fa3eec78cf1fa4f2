//! Errors of the index.

use std::path::PathBuf;

/// What went wrong with the index database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The database file is damaged (torn write, disk error, not a database).
    ///
    /// The index holds nothing that cannot be rebuilt: stop swarmsync, delete the
    /// file with its `-wal` and `-shm` companions, and start again; the folder is
    /// rescanned and peers resend what they have.
    #[error(
        "index database {} is corrupt ({detail}); to rebuild it, stop swarmsync, delete {} \
         and its -wal and -shm files, and start again: the folder is rescanned",
        path.display(), path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The database was written by a newer swarmsync with a schema this build does
    /// not know.
    #[error(
        "index database {} has schema version {found}, this build knows up to {supported}; \
         use a newer swarmsync",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest schema this build can use.
        supported: i64,
    },
    /// A stored row does not decode (a damaged or hand-edited database).
    #[error("index database {}: bad row for {what}: {reason}", path.display())]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// Which row (usually a file path).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record given to the index breaks a record rule.
    #[error("refusing to store an invalid record: {0}")]
    Record(#[from] record::RecordError),
    /// The OS random number generator failed while creating the index id.
    #[error("no randomness for the index id: {0}")]
    Random(String),
    /// Any other SQLite failure (disk full, permission denied, busy …).
    #[error("index database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
}
