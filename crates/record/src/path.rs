//! Relative paths inside a folder, as records carry them.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc;

/// Longest path, in bytes of UTF-8 (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single component, in bytes of UTF-8 (`NAME_MAX` on Linux and macOS).
pub const MAX_COMPONENT_LEN: usize = 255;
/// The folder's own state directory; never synced, so no record may name it.
pub const STATE_DIR: &str = ".sync";

/// Prefix of the temporary names files are received under before the rename into
/// place (`.sync-tmp-<anything>`, beside the target). Scanners never record them.
pub const TEMP_PREFIX: &str = ".sync-tmp-";

/// Whether `name` (one component) is a swarmsync temporary.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Why a string is not a valid relative path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is the empty string.
    #[error("path is empty")]
    Empty,
    /// The path starts with `/`.
    #[error("path is absolute")]
    Absolute,
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty component")]
    EmptyComponent,
    /// A `.` component.
    #[error("path has a `.` component")]
    Dot,
    /// A `..` component: the path could escape the folder.
    #[error("path has a `..` component")]
    DotDot,
    /// A NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// A backslash, a separator on Windows.
    #[error("path contains a backslash")]
    Backslash,
    /// The first component is `.sync` (in any case), the state directory.
    #[error("path is inside the .sync state directory")]
    StateDir,
    /// The path is longer than [`MAX_PATH_LEN`].
    #[error("path is {len} bytes, at most {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A component is longer than [`MAX_COMPONENT_LEN`].
    #[error("path component is {len} bytes, at most {max} allowed")]
    ComponentTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path is not in Unicode normalization form C.
    #[error("path is not in Unicode NFC")]
    NotNfc,
}

/// Why a valid path cannot be created as is on Windows.
///
/// Such paths are *flagged*, not rejected: they are legal on Linux and macOS, and a
/// folder shared between those must still sync them. A Windows peer skips them
/// with a note instead of writing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowsIssue {
    /// A component is a reserved device name (`CON`, `NUL`, `COM1`, …), with or
    /// without an extension.
    ReservedName,
    /// A character Windows forbids in names: `< > : " | ? *` or a control character.
    ForbiddenChar(char),
    /// A component ends in a dot or a space, which Windows strips.
    TrailingDotOrSpace,
}

impl fmt::Display for WindowsIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedName => f.write_str("a component is a reserved Windows device name"),
            Self::ForbiddenChar(c) => write!(f, "contains {c:?}, which Windows forbids"),
            Self::TrailingDotOrSpace => f.write_str("a component ends in a dot or space"),
        }
    }
}

/// A validated path relative to the folder root: NFC UTF-8, components joined by
/// `/`, no `.`/`..`/empty components, no NUL or backslash, not under `.sync/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `path`; it must already be NFC.
    pub fn new(path: impl Into<String>) -> Result<Self, PathError> {
        let path = path.into();
        validate(&path)?;
        Ok(Self(path))
    }

    /// Normalizes `path` to NFC, then validates it. For names read from a local
    /// file system (macOS stores NFD).
    pub fn new_normalized(path: &str) -> Result<Self, PathError> {
        if is_nfc(path) {
            Self::new(path)
        } else {
            Self::new(path.nfc().collect::<String>())
        }
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent directory, `None` for a top-level entry.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rsplit_once('/').map(|(p, _)| Self(p.to_owned()))
    }

    /// `self/name`, validated.
    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        Self::new(format!("{}/{name}", self.0))
    }

    /// Whether `self` is `dir` or lies below it.
    pub fn starts_with(&self, dir: &RelPath) -> bool {
        self.0
            .strip_prefix(dir.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The first reason Windows could not hold this path, if any.
    pub fn windows_issue(&self) -> Option<WindowsIssue> {
        self.components().find_map(windows_component_issue)
    }

    /// The path lowercased for case-collision checks (simple Unicode lowercase;
    /// good enough to warn, not a file system's exact folding).
    pub fn case_fold(&self) -> String {
        self.0.to_lowercase()
    }

    /// The path as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.0)
    }
}

impl AsRef<str> for RelPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RelPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong {
            len: path.len(),
            max: MAX_PATH_LEN,
        });
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    for (i, c) in path.split('/').enumerate() {
        match c {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::Dot),
            ".." => return Err(PathError::DotDot),
            _ if i == 0 && c.eq_ignore_ascii_case(STATE_DIR) => return Err(PathError::StateDir),
            _ if c.len() > MAX_COMPONENT_LEN => {
                return Err(PathError::ComponentTooLong {
                    len: c.len(),
                    max: MAX_COMPONENT_LEN,
                });
            }
            _ => {}
        }
    }
    if !is_nfc(path) {
        return Err(PathError::NotNfc);
    }
    Ok(())
}

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Why Windows could not hold a single name, if any.
pub fn windows_component_issue(name: &str) -> Option<WindowsIssue> {
    if let Some(c) = name
        .chars()
        .find(|&c| matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') || u32::from(c) < 32)
    {
        return Some(WindowsIssue::ForbiddenChar(c));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some(WindowsIssue::TrailingDotOrSpace);
    }
    // "CON", "con.txt", "COM1 .tar.gz": the part before the first dot, trailing
    // spaces trimmed, is what Windows compares.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    // Windows also treats the superscript digits as COM/LPT numbers.
    let stem = stem.replace(['¹', '²', '³'], "1");
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&stem)) {
        return Some(WindowsIssue::ReservedName);
    }
    None
}

#[cfg(test)]
mod tests;
