//! Ignore rules: `.sync/IgnoreList` in gitignore syntax, plus names that are never
//! synced.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use record::{RelPath, is_temp_name};

use crate::ScanError;

/// Where the user's ignore rules live, relative to the folder root.
pub const IGNORE_FILE: &str = ".sync/IgnoreList";

/// Names ignored wherever they appear, whatever the rules say: OS litter.
const ALWAYS_IGNORED: [&str; 2] = [".DS_Store", "Thumbs.db"];

/// A line of the ignore file that is not a valid pattern; the other lines apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    /// 1-based line number in `.sync/IgnoreList`.
    pub line: usize,
    /// The line as written.
    pub pattern: String,
    /// Why it does not parse.
    pub reason: String,
}

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{IGNORE_FILE} line {}: bad pattern {:?}: {}",
            self.line, self.pattern, self.reason
        )
    }
}

/// The compiled ignore rules of a folder.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    matcher: Gitignore,
    bad: Vec<BadPattern>,
}

impl IgnoreRules {
    /// Reads `root/.sync/IgnoreList` (a missing file means no rules). A bad line is
    /// reported in [`bad_patterns`](Self::bad_patterns) and skipped; an unreadable
    /// file is an error, since scanning without the user's rules could sync what
    /// they meant to keep private.
    pub fn load(root: &Path) -> Result<Self, ScanError> {
        let file = root.join(IGNORE_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Self::parse(root, &text, Some(file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::parse(root, "", None)),
            Err(source) => Err(ScanError::IgnoreFile { path: file, source }),
        }
    }

    /// Compiles rules from text (gitignore syntax, `/` anchors at the folder root).
    pub fn parse(root: &Path, text: &str, from: Option<PathBuf>) -> Self {
        let mut builder = GitignoreBuilder::new(root);
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Err(e) = builder.add_line(from.clone(), line) {
                let b = BadPattern {
                    line: i + 1,
                    pattern: line.to_owned(),
                    reason: e.to_string(),
                };
                tracing::warn!("{b}; the other rules still apply");
                bad.push(b);
            }
        }
        let matcher = builder.build().unwrap_or_else(|e| {
            // Each line compiled alone; a failure here is unexpected. Ignore
            // nothing rather than guess, and say so.
            tracing::warn!("{IGNORE_FILE}: rules do not compile together ({e}); none applied");
            Gitignore::empty()
        });
        Self { matcher, bad }
    }

    /// The lines that were skipped.
    pub fn bad_patterns(&self) -> &[BadPattern] {
        &self.bad
    }

    /// Whether the entry `path` is ignored (its ancestors are not consulted: the
    /// walker never enters an ignored directory).
    pub fn is_ignored(&self, path: &RelPath, is_dir: bool) -> bool {
        let name = path.file_name();
        if is_always_ignored(name) {
            return true;
        }
        self.matcher
            .matched(Path::new(path.as_str()), is_dir)
            .is_ignore()
    }

    /// Whether `path` or any directory above it is ignored (for scans that start
    /// below the root, and for deciding whether a vanished path was deleted).
    pub fn is_ignored_with_parents(&self, path: &RelPath, is_dir: bool) -> bool {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.components().collect();
        for (i, part) in parts.iter().enumerate() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let last = i + 1 == parts.len();
            let Ok(p) = RelPath::new(prefix.clone()) else {
                return true;
            };
            if self.is_ignored(&p, if last { is_dir } else { true }) {
                return true;
            }
        }
        false
    }
}

/// Names never synced wherever they appear: our temporaries and OS litter. (The
/// `.sync` state directory at the root is never walked at all.)
pub fn is_always_ignored(name: &str) -> bool {
    is_temp_name(name) || ALWAYS_IGNORED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn patterns_apply_and_bad_lines_are_reported() {
        let root = Path::new("/folder");
        let text = "# comment\n*.log\n/build/\nsrc/**/gen\n[z-a]\n!keep.log\n";
        let r = IgnoreRules::parse(root, text, None);
        assert_eq!(r.bad_patterns().len(), 1);
        assert_eq!(r.bad_patterns()[0].line, 5);
        assert!(r.bad_patterns()[0].to_string().contains("line 5"));
        assert!(r.is_ignored(&p("a/b/x.log"), false));
        assert!(!r.is_ignored(&p("keep.log"), false));
        assert!(r.is_ignored(&p("build"), true));
        assert!(!r.is_ignored(&p("build"), false));
        assert!(!r.is_ignored(&p("a/build"), true));
        assert!(r.is_ignored(&p("src/x/y/gen"), true));
        assert!(r.is_ignored(&p("x/.DS_Store"), false));
        assert!(r.is_ignored(&p("thumbs.db"), false));
        assert!(r.is_ignored(&p("d/.sync-tmp-123"), false));
        assert!(!r.is_ignored(&p("notes.txt"), false));
        assert!(r.is_ignored_with_parents(&p("build/deep/file.c"), false));
        assert!(!r.is_ignored_with_parents(&p("src/deep/file.c"), false));
    }
}
