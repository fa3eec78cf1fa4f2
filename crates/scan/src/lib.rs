//! Scanning and watching a swarmsync folder.
//!
//! # Brief overview
//!
//! - [`scan_once`]: walk the folder, compare each entry with the index by size,
//!   mtime and inode, rehash only what changed (FastCDC v2020 blocks, BLAKE3 per
//!   block and per file), record new versions and tombstones. Returns a
//!   [`ScanSummary`] (`Display` prints it for people).
//! - [`scan_paths`]: the same for a few paths (what a watcher reported).
//! - [`watch`]: scan, then follow file system events; periodic full scans as the
//!   safety net, and as the fallback when the OS watch limit is reached.
//! - [`IgnoreRules`]: `.sync/IgnoreList` in gitignore syntax; `.sync/`, our
//!   temporaries, `.DS_Store` and `Thumbs.db` are always ignored.
//! - [`chunk`]: the block size tiers and the chunker, for the engine and benches.
//!
//! ```no_run
//! use std::path::Path;
//! use keys::ShortId;
//!
//! let mut index = index::Index::open(Path::new("/data/photos/.sync/index.db"))?;
//! let opts = scan::ScanOptions::new(ShortId(42), None); // read-only: local-only records
//! let summary = scan::scan_once(Path::new("/data/photos"), &mut index, &opts)?;
//! println!("{summary}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Threads: a full scan walks on its own thread; hashing (and building and signing
//! the records of hashed files) runs on two threads per core, started only once a
//! scan has more than a few small files to hash, in batches; the caller's thread
//! compares and commits (it owns the [`index::Index`]). [`scan_paths`] walks on
//! the caller's thread. The channels between them are bounded, so memory stays
//! flat whatever the number of files. Design notes (chunk sizes, rebuild, watcher)
//! are in `docs/index-and-scan.md`.
#![forbid(unsafe_code)]

pub mod chunk;
mod error;
mod hasher;
mod options;
mod prepare;
mod rules;
mod scanner;
mod summary;
mod walk;
mod watch;

pub use chunk::{ChunkParams, Chunking};
pub use error::ScanError;
pub use options::ScanOptions;
pub use rules::{BadPattern, IGNORE_FILE, IgnoreRules, is_always_ignored};
pub use scanner::{scan_once, scan_paths};
pub use summary::{MAX_REPORTED, ScanSummary, SkipReason, Skipped};
pub use watch::{WatchOptions, is_watch_limit, watch, watch_limit_message};

#[cfg(test)]
mod tests;
