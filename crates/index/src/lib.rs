//! The durable state of one swarmsync folder, in SQLite.
//!
//! # Brief overview
//!
//! - [`Index::open`]: WAL mode, `PRAGMA quick_check` (a damaged file is
//!   [`IndexError::Corrupt`], whose message says how to rebuild), schema migrations
//!   keyed by `user_version`.
//! - Records: [`Index::get`], [`Index::under`] (a directory, path order),
//!   [`Index::changes_since`] / [`Index::announce_since`] (sequence order). Streams
//!   read in batches; nothing loads the whole folder.
//! - Writes: [`Index::write`] opens a transaction ([`Writer`]); every
//!   [`Writer::put`] gives the record a new local sequence number.
//! - Local block copies: [`Index::block_locations`]; peers' progress:
//!   [`Index::peer_state`]; totals: [`Index::summary`].
//!
//! ```
//! use index::{Index, Update};
//! use keys::ShortId;
//! use record::{FileKind, FileRecord, RelPath, Timestamp, VersionVector};
//!
//! let mut index = Index::open_in_memory()?;
//! let record = FileRecord {
//!     path: RelPath::new("photos")?,
//!     kind: FileKind::Directory,
//!     size: 0,
//!     modified: Timestamp::default(),
//!     mode: 0o755,
//!     version: VersionVector::new().incremented(ShortId(1)),
//!     deleted: false,
//!     blocks: vec![],
//!     hash: [0; 32],
//! };
//! let seq = index.put(Update { record, signed: None, local_only: true, local: None })?;
//! let changes: Vec<_> = index.changes_since(0, 100).collect::<Result<_, _>>()?;
//! assert_eq!(changes[0].sequence, seq);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One [`Index`] owns one connection and is the only writer; async callers run it on
//! a dedicated thread or in `spawn_blocking`. The schema and the rebuild procedure
//! are described in `docs/index-and-scan.md`.
#![forbid(unsafe_code)]

mod db;
mod error;
mod files;
mod peers;
mod row;
mod schema;
mod seen;
mod stream;

pub use db::Index;
pub use error::IndexError;
pub use files::{
    CheckedUpdate, Entry, LocalStat, PREVIOUS_MIN_BODY, Previous, StoredState, Update, Writer,
};
pub use peers::{BlockLocation, IndexId, PeerState, Summary};
pub use schema::SCHEMA_VERSION;
pub use seen::RowId;
pub use stream::{DEFAULT_BATCH, Stream};

/// Where a folder's index lives by default, relative to the folder root (the
/// `.sync/` directory must exist; it is never synced).
pub const DEFAULT_PATH: &str = ".sync/index.db";

#[cfg(test)]
mod tests;
