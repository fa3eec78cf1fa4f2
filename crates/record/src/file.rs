//! The domain file record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{RecordError, RelPath, VersionVector};

/// Largest block a record may list (8 MiB).
pub const MAX_BLOCK_SIZE: u32 = 8 << 20;
/// Longest symlink target, in bytes of UTF-8.
pub const MAX_SYMLINK_TARGET_LEN: usize = 4095;
/// Most peers in one version vector.
pub const MAX_VERSION_ENTRIES: usize = 4096;
/// The permission bits a record may carry (`rwxrwxrwx` plus setuid, setgid, sticky).
pub const MODE_MASK: u32 = 0o7777;
/// The BLAKE3 hash of no bytes: the file hash of every empty file.
pub const EMPTY_HASH: [u8; 32] = [
    0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9, 0x49,
    0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f, 0x32, 0x62,
];

/// What kind of entry a record describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link, never followed; `target` is stored as written.
    Symlink {
        /// The link target, UTF-8, may be relative or absolute.
        target: String,
    },
}

impl FileKind {
    /// Short lowercase name, for logs and the index.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Symlink { .. } => "symlink",
        }
    }
}

/// One content-defined block of a file; its offset is the sum of the sizes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    /// Length in bytes, 1 ..= [`MAX_BLOCK_SIZE`].
    pub size: u32,
    /// BLAKE3 of the block's bytes.
    pub hash: [u8; 32],
}

/// A point in time: seconds since the Unix epoch (may be negative) and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds, `0 ..= 999_999_999`.
    pub nanos: u32,
}

impl Timestamp {
    /// From a `SystemTime`, saturating at the `i64` range.
    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                // Before the epoch: -1.25 s is secs -2, nanos 750_000_000.
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Self {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    Self {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// As a `SystemTime`, if representable.
    pub fn to_system(self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }
}

/// Everything the folder knows about one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRecord {
    /// Where, relative to the folder root.
    pub path: RelPath,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Length in bytes; 0 for directories, symlinks and tombstones.
    pub size: u64,
    /// Last modification time.
    pub modified: Timestamp,
    /// Permission bits (within [`MODE_MASK`]).
    pub mode: u32,
    /// Which peers changed it how often.
    pub version: VersionVector,
    /// A tombstone: the entry was deleted.
    pub deleted: bool,
    /// The content blocks, in order; empty for everything but live files.
    pub blocks: Vec<Block>,
    /// BLAKE3 of the whole content ([`EMPTY_HASH`] for empty files, all zero for
    /// directories, symlinks and tombstones).
    pub hash: [u8; 32],
}

impl FileRecord {
    /// Whether this is a live regular file (one with content).
    pub fn is_live_file(&self) -> bool {
        !self.deleted && self.kind == FileKind::File
    }

    /// Checks every rule a record must follow (see `docs/protocol/records.md`).
    pub fn validate(&self) -> Result<(), RecordError> {
        // The path is valid by construction (RelPath).
        if self.modified.nanos >= 1_000_000_000 {
            return Err(bad("modified", "nanoseconds must be below 10^9"));
        }
        if self.mode & !MODE_MASK != 0 {
            return Err(bad("mode", "only permission bits (0o7777) are allowed"));
        }
        if self.version.is_empty() {
            return Err(bad("version", "a record has at least one change"));
        }
        if self.version.len() > MAX_VERSION_ENTRIES {
            return Err(RecordError::TooLong {
                field: "version vector",
                len: self.version.len(),
                max: MAX_VERSION_ENTRIES,
            });
        }
        if VersionVector::from_sorted(self.version.entries().to_vec()).is_err() {
            // Unreachable through the public API, kept as a guard.
            return Err(bad("version", "not canonical"));
        }
        if let FileKind::Symlink { target } = &self.kind {
            validate_target(target)?;
        }
        if self.is_live_file() {
            let mut sum: u64 = 0;
            for b in &self.blocks {
                if b.size == 0 || b.size > MAX_BLOCK_SIZE {
                    return Err(bad("block size", "must be 1 ..= 8 MiB"));
                }
                sum = sum.saturating_add(u64::from(b.size));
            }
            if sum != self.size {
                return Err(RecordError::BlockSizes {
                    blocks: sum,
                    size: self.size,
                });
            }
            if self.size == 0 && self.hash != EMPTY_HASH {
                return Err(bad("hash", "an empty file has the hash of no bytes"));
            }
        } else {
            if !self.blocks.is_empty() {
                return Err(bad("blocks", "only live files have blocks"));
            }
            if self.size != 0 {
                return Err(bad("size", "only live files have a size"));
            }
            if self.hash != [0; 32] {
                return Err(bad("hash", "only live files have a hash"));
            }
        }
        Ok(())
    }
}

pub(crate) fn validate_target(target: &str) -> Result<(), RecordError> {
    if target.is_empty() {
        return Err(bad("symlink target", "empty"));
    }
    if target.len() > MAX_SYMLINK_TARGET_LEN {
        return Err(RecordError::TooLong {
            field: "symlink target",
            len: target.len(),
            max: MAX_SYMLINK_TARGET_LEN,
        });
    }
    if target.contains('\0') {
        return Err(bad("symlink target", "contains NUL"));
    }
    Ok(())
}

pub(crate) const fn bad(field: &'static str, reason: &'static str) -> RecordError {
    RecordError::BadValue { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hash_is_blake3_of_nothing() {
        // Known BLAKE3 test vector for the empty input.
        let hex: String = EMPTY_HASH.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn timestamps_round_trip_before_and_after_epoch() {
        for (secs, nanos) in [
            (0, 0),
            (1, 5),
            (-1, 0),
            (-2, 750_000_000),
            (1_700_000_000, 999_999_999),
        ] {
            let t = Timestamp { secs, nanos };
            assert_eq!(Timestamp::from_system(t.to_system().unwrap()), t);
        }
    }
}
