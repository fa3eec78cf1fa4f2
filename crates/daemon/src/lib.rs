//! swarmsync's long-running side.
//!
//! # Brief overview
//!
//! - [`state::StateDir`]: where a folder's secret, this device's peer id and the
//!   index live, and the rules for creating and reusing them.
//! - [`run`]: `swarmsync sync`. One thread per folder owns the index and the
//!   engine and carries out the engine's plan on disk (`folder.rs`, `disk.rs`);
//!   tokio runs the connection manager (crate `net`) and two tasks per peer
//!   connection that turn wire frames into folder events and back (`peer.rs`);
//!   a file watcher feeds changed paths to the folder thread (`watcher.rs`).
//!
//! **Invariant:** only the folder thread touches the index and the folder's files,
//! in the order its events arrive; the network side never blocks on disk. (The
//! one helper, `writeback.rs`, only fsyncs temporaries early; it changes nothing.)
#![forbid(unsafe_code)]

mod disk;
mod flush;
mod folder;
mod peer;
mod pex;
pub mod run;
pub mod state;
pub mod status;
mod watcher;
mod writeback;

pub use disk::ARCHIVE_DIR;
pub use run::{SyncOptions, run};
pub use status::{FolderStatus, StatusHandle};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The folder's index could not be opened or written.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// Scanning the folder failed.
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    /// The network side could not start.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// Threads or the async runtime could not start.
    #[error("cannot start: {0}")]
    Runtime(#[source] std::io::Error),
    /// The folder thread died.
    #[error("the folder task stopped unexpectedly")]
    FolderPanicked,
    /// Encrypted-peer folders are a later feature.
    #[error("this device holds only the encrypted key; encrypted peers are not supported yet")]
    EncryptedNotSupported,
}

impl DaemonError {
    /// Whether the user's input was at fault (the CLI exits 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Net(e) => e.is_bad_input(),
            Self::EncryptedNotSupported => true,
            _ => false,
        }
    }
}
