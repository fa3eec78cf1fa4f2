//! What a scan did, for logs and the command line.

use std::fmt;

use record::{PathError, RecordError, RelPath, WindowsIssue};

use crate::rules::BadPattern;

/// How many examples of each kind of problem a summary keeps (counts are exact).
pub const MAX_REPORTED: usize = 100;

/// Why an entry was not recorded (or kept at its old record).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The name is not valid UTF-8.
    NonUtf8Name,
    /// A symlink target that is not valid UTF-8.
    NonUtf8Target,
    /// The path breaks a path rule (too long, …).
    BadName(PathError),
    /// Another name in the same directory is identical after Unicode NFC.
    NormalizationCollision(String),
    /// A fifo, socket or device.
    Special(&'static str),
    /// Could not be read; its old record is kept.
    Unreadable(String),
    /// Kept changing while being hashed; retried next scan.
    ChangingTooFast,
    /// The record would break a record rule (e.g. too many blocks).
    InvalidRecord(RecordError),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonUtf8Name => f.write_str("name is not valid UTF-8"),
            Self::NonUtf8Target => f.write_str("symlink target is not valid UTF-8"),
            Self::BadName(e) => write!(f, "{e}"),
            Self::NormalizationCollision(other) => {
                write!(f, "same name as {other:?} after Unicode normalization")
            }
            Self::Special(kind) => write!(f, "{kind}, not synced"),
            Self::Unreadable(e) => write!(f, "unreadable, old record kept: {e}"),
            Self::ChangingTooFast => f.write_str("changed while being hashed; retried next scan"),
            Self::InvalidRecord(e) => write!(f, "cannot be recorded: {e}"),
        }
    }
}

/// One entry the scan did not record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as found (lossily decoded when not UTF-8).
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// What a scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanSummary {
    /// Regular files found.
    pub files: u64,
    /// Directories found.
    pub directories: u64,
    /// Symlinks found.
    pub symlinks: u64,
    /// Total size of the files found.
    pub bytes: u64,
    /// New records for paths that had none (or a tombstone).
    pub added: u64,
    /// New records for paths that changed.
    pub changed: u64,
    /// Tombstones written.
    pub deleted: u64,
    /// Files read and hashed (unchanged files are not).
    pub rehashed_files: u64,
    /// Bytes read and hashed.
    pub rehashed_bytes: u64,
    /// Hash attempts redone because the file changed while being read.
    pub retries: u64,
    /// Entries not recorded: the first [`MAX_REPORTED`].
    pub skipped: Vec<Skipped>,
    /// How many entries were not recorded.
    pub skipped_total: u64,
    /// Lines of `.sync/IgnoreList` that were not valid patterns.
    pub bad_patterns: Vec<BadPattern>,
    /// Paths Windows cannot hold (recorded anyway): the first [`MAX_REPORTED`].
    pub windows_flagged: Vec<(RelPath, WindowsIssue)>,
    /// How many paths were flagged.
    pub windows_flagged_total: u64,
    /// Names in one directory that differ only in case (both recorded): the first
    /// [`MAX_REPORTED`] pairs.
    pub case_collisions: Vec<(RelPath, RelPath)>,
    /// Directories that could not be listed; nothing below them was deleted.
    pub unlistable: Vec<(String, String)>,
}

impl ScanSummary {
    pub(crate) fn skip(&mut self, path: String, reason: SkipReason) {
        tracing::warn!(path, %reason, "skipped");
        self.skipped_total += 1;
        if self.skipped.len() < MAX_REPORTED {
            self.skipped.push(Skipped { path, reason });
        }
    }

    pub(crate) fn flag_windows(&mut self, path: &RelPath, issue: WindowsIssue) {
        tracing::info!(path = %path, %issue, "name cannot be created on Windows");
        self.windows_flagged_total += 1;
        if self.windows_flagged.len() < MAX_REPORTED {
            self.windows_flagged.push((path.clone(), issue));
        }
    }

    pub(crate) fn case_collision(&mut self, a: RelPath, b: RelPath) {
        tracing::warn!(first = %a, second = %b, "names differ only in case; a case-insensitive peer cannot hold both");
        if self.case_collisions.len() < MAX_REPORTED {
            self.case_collisions.push((a, b));
        }
    }

    /// Whether the scan changed the index.
    pub fn changed_anything(&self) -> bool {
        self.added + self.changed + self.deleted > 0
    }
}

/// `1.5 MiB`-style sizes.
pub(crate) struct Bytes(pub(crate) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        let name = UNITS.get(unit).copied().unwrap_or("B");
        if unit == 0 {
            write!(f, "{} {name}", self.0)
        } else {
            write!(f, "{v:.1} {name}")
        }
    }
}

impl fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} files, {} directories, {} symlinks, {}",
            self.files,
            self.directories,
            self.symlinks,
            Bytes(self.bytes)
        )?;
        writeln!(
            f,
            "{} added, {} changed, {} deleted; rehashed {} files ({})",
            self.added,
            self.changed,
            self.deleted,
            self.rehashed_files,
            Bytes(self.rehashed_bytes)
        )?;
        for b in &self.bad_patterns {
            writeln!(f, "warning: {b} (the other rules apply)")?;
        }
        if self.skipped_total > 0 {
            writeln!(f, "skipped {}:", self.skipped_total)?;
            for s in &self.skipped {
                writeln!(f, "  {}: {}", s.path, s.reason)?;
            }
            if self.skipped_total > self.skipped.len() as u64 {
                writeln!(
                    f,
                    "  … and {} more",
                    self.skipped_total - self.skipped.len() as u64
                )?;
            }
        }
        for (dir, e) in &self.unlistable {
            writeln!(
                f,
                "warning: cannot list {dir} ({e}); nothing below it was marked deleted"
            )?;
        }
        if self.windows_flagged_total > 0 {
            writeln!(
                f,
                "{} names cannot be created on Windows:",
                self.windows_flagged_total
            )?;
            for (p, why) in &self.windows_flagged {
                writeln!(f, "  {p}: {why}")?;
            }
        }
        if !self.case_collisions.is_empty() {
            writeln!(
                f,
                "names that differ only in case (a case-insensitive peer cannot hold both):"
            )?;
            for (a, b) in &self.case_collisions {
                writeln!(f, "  {a} / {b}")?;
            }
        }
        Ok(())
    }
}
