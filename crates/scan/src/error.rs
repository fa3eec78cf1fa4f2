//! Errors that stop a scan. Problems with single entries are not errors: they are
//! reported in the [`ScanSummary`](crate::ScanSummary) and the scan goes on.

use std::path::PathBuf;

/// Why a scan could not run or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The folder root is missing, not a directory or unreadable.
    #[error("folder {}: {source}", path.display())]
    Root {
        /// The root.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `.sync/IgnoreList` exists but cannot be read. Scanning without the user's
    /// rules could sync what they meant to keep out, so the scan stops.
    #[error("cannot read ignore rules {}: {source}", path.display())]
    IgnoreFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// A scanner thread died.
    #[error("scanner thread failed: {0}")]
    Thread(&'static str),
    /// The file watcher could not start (other than the watch limit, which falls
    /// back to periodic scans).
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The root.
        path: PathBuf,
        /// What notify said.
        #[source]
        source: notify::Error,
    },
}
