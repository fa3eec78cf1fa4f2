//! The swarmsync file record: what a folder knows about one path, and the exact
//! bytes the folder key signs.
//!
//! # Brief overview
//!
//! - [`FileRecord`]: path ([`RelPath`]), kind, size, mtime, mode, [`VersionVector`],
//!   tombstone flag, [`Block`] list and whole-file BLAKE3 hash.
//! - [`FileRecord::encode`] / [`FileRecord::decode`]: the canonical body (format 1,
//!   big-endian, explicit lengths; `docs/protocol/records.md`). Decoding takes peer
//!   input: it bounds every length before allocating and never panics.
//! - [`SignedRecord`]: body bytes verbatim plus the folder signature;
//!   [`SignedRecord::verify`] checks the signature first, then decodes.
//! - [`conflict_name`] / [`is_conflict_name`]: names of conflict copies.
//!
//! ```
//! use keys::{RwSecret, ShortId};
//! use record::{FileKind, FileRecord, RelPath, SignedRecord, Timestamp, VersionVector, EMPTY_HASH};
//!
//! let rw = RwSecret::from_bytes([1; 20]);
//! let rec = FileRecord {
//!     path: RelPath::new("notes/empty.txt")?,
//!     kind: FileKind::File,
//!     size: 0,
//!     modified: Timestamp { secs: 1_700_000_000, nanos: 0 },
//!     mode: 0o644,
//!     version: VersionVector::new().incremented(ShortId(42)),
//!     deleted: false,
//!     blocks: vec![],
//!     hash: EMPTY_HASH,
//! };
//! let signed = SignedRecord::sign(&rec, &rw.signing_key())?;
//! assert_eq!(signed.verify(&rw.ro_key())?, rec);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing here does I/O.
#![forbid(unsafe_code)]

mod codec;
mod conflict;
pub mod delta;
mod error;
mod file;
mod known;
mod path;
mod signed;
mod version;

pub use codec::{FORMAT_V1, MAX_BLOCKS, MAX_RECORD_LEN};
pub use conflict::{conflict_name, conflict_path, is_conflict_name};
pub use error::RecordError;
pub use file::{
    Block, EMPTY_HASH, FileKind, FileRecord, MAX_BLOCK_SIZE, MAX_SYMLINK_TARGET_LEN,
    MAX_VERSION_ENTRIES, MODE_MASK, Timestamp,
};
pub use known::{KnownRecords, MAX_KNOWN_RECORDS, verify_records};
pub use path::{
    MAX_COMPONENT_LEN, MAX_PATH_LEN, PathError, RelPath, STATE_DIR, TEMP_PREFIX, WindowsIssue,
    is_temp_name, windows_component_issue,
};
pub use signed::{RECORD_CONTEXT, SignedRecord, VerifiedRecord};
pub use version::{VersionOrdering, VersionVector};
