//! Walking the folder: one directory at a time, never following symlinks, never
//! entering `.sync/` or an ignored directory. Sends what it finds down a bounded
//! channel, so memory stays flat whatever the tree size.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use record::{RelPath, STATE_DIR, Timestamp};

use crate::rules::IgnoreRules;
use crate::summary::SkipReason;

/// What `stat` says about an entry, as far as change detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) modified: Timestamp,
    pub(crate) mode: u32,
    pub(crate) inode: u64,
}

impl Stat {
    pub(crate) fn of(meta: &Metadata) -> Self {
        let modified = meta
            .modified()
            .map(Timestamp::from_system)
            .unwrap_or_default();
        Self {
            size: meta.len(),
            modified,
            mode: mode_of(meta),
            inode: inode_of(meta),
        }
    }

    /// Whether content may differ (mode changes are handled apart).
    pub(crate) fn same_content_stat(&self, other: &Self) -> bool {
        self.size == other.size && self.modified == other.modified && self.inode == other.inode
    }
}

#[cfg(unix)]
fn mode_of(meta: &Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.mode() & record::MODE_MASK
}
#[cfg(not(unix))]
fn mode_of(meta: &Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}
#[cfg(unix)]
fn inode_of(meta: &Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}
#[cfg(not(unix))]
fn inode_of(_: &Metadata) -> u64 {
    0
}

/// The kind of a found entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FoundKind {
    File,
    Directory,
    Symlink(String),
}

/// One entry on disk.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) rel: RelPath,
    pub(crate) abs: PathBuf,
    pub(crate) kind: FoundKind,
    pub(crate) stat: Stat,
}

/// What the walker reports.
#[derive(Debug)]
pub(crate) enum Walked {
    Found(Found),
    /// Not recorded; `keep` names an index entry to leave alone (not tombstone).
    Skipped {
        path: String,
        reason: SkipReason,
        keep: Option<RelPath>,
    },
    /// A directory that could not be listed: nothing below it may be tombstoned.
    Unlistable {
        dir: Option<RelPath>,
        path: String,
        error: String,
    },
    CaseCollision(RelPath, RelPath),
}

/// Walked entries per message to the committer: one channel hand-off (and the
/// wake-up of a sleeping thread) per chunk, not per entry.
pub(crate) const WALK_CHUNK: usize = 128;

/// Walks each of `scopes` under `root` in turn (`None`: the whole folder), sending
/// what it finds in chunks, in walk order. Returns when done or when the receiver
/// hangs up.
pub(crate) fn walk(
    root: &Path,
    scopes: &[Option<RelPath>],
    rules: &IgnoreRules,
    tx: &SyncSender<Vec<Walked>>,
) {
    let mut walker = Walker::new(root, scopes.to_vec(), rules);
    while let Some(chunk) = walker.next_chunk() {
        if tx.send(chunk).is_err() {
            return;
        }
    }
}

/// The walk as an iterator, for a caller that walks on its own thread (a scan of
/// a few paths) or feeds a channel ([`walk`]). Holds one directory's listing and
/// the directories still to visit, never the tree.
pub(crate) struct Walker<'a> {
    root: &'a Path,
    rules: &'a IgnoreRules,
    /// Scopes not started yet, in order.
    scopes: std::vec::IntoIter<Option<RelPath>>,
    /// Directories of the current scope still to list (depth first).
    stack: Vec<(Option<RelPath>, PathBuf)>,
    /// What is found and not handed out yet.
    ready: std::collections::VecDeque<Walked>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(
        root: &'a Path,
        scopes: Vec<Option<RelPath>>,
        rules: &'a IgnoreRules,
    ) -> Self {
        Self {
            root,
            rules,
            scopes: scopes.into_iter(),
            stack: Vec::new(),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// Up to [`WALK_CHUNK`] entries; `None` when the walk is over.
    pub(crate) fn next_chunk(&mut self) -> Option<Vec<Walked>> {
        let chunk: Vec<Walked> = self.by_ref().take(WALK_CHUNK).collect();
        (!chunk.is_empty()).then_some(chunk)
    }

    fn start(&mut self, scope: Option<RelPath>) {
        let Some(rel) = scope else {
            self.stack.push((None, self.root.to_path_buf()));
            return;
        };
        let (abs, meta) = match resolve(self.root, &rel) {
            Ok(Some(found)) => found,
            // Gone: the caller's unseen pass turns it into a tombstone.
            Ok(None) => return,
            Err(e) => {
                self.ready.push_back(Walked::Unlistable {
                    dir: Some(rel.clone()),
                    path: rel.to_string(),
                    error: e.to_string(),
                });
                return;
            }
        };
        match classify(rel.clone(), abs.clone(), &meta) {
            Ok(found) => {
                if found.kind == FoundKind::Directory {
                    self.stack.push((Some(rel), abs));
                }
                self.ready.push_back(Walked::Found(found));
            }
            Err(w) => self.ready.push_back(w),
        }
    }
}

impl Iterator for Walker<'_> {
    type Item = Walked;

    fn next(&mut self) -> Option<Walked> {
        loop {
            if let Some(w) = self.ready.pop_front() {
                return Some(w);
            }
            if let Some((dir, abs)) = self.stack.pop() {
                let listed = list(&dir, &abs, self.rules);
                let subdirs: Vec<_> = listed
                    .iter()
                    .filter_map(|w| match w {
                        Walked::Found(f) if f.kind == FoundKind::Directory => {
                            Some((Some(f.rel.clone()), f.abs.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                // Depth first, in name order.
                self.stack.extend(subdirs.into_iter().rev());
                self.ready.extend(listed);
                continue;
            }
            let scope = self.scopes.next()?;
            self.start(scope);
        }
    }
}

/// Finds `rel` on disk without following symlinks on the way: every ancestor
/// must be a real directory. A component not found as spelled (records are NFC)
/// is looked up by listing its directory for a name with the same NFC form, as a
/// file system that stores NFD names would hold it. `Ok(None)`: not there.
fn resolve(root: &Path, rel: &RelPath) -> std::io::Result<Option<(PathBuf, Metadata)>> {
    let mut cur = root.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        let direct = cur.join(part);
        let next = match fs::symlink_metadata(&direct) {
            Ok(m) => Some((direct, m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => find_normalized(&cur, part)?,
            Err(e) => return Err(e),
        };
        let Some((path, meta)) = next else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return Ok(Some((path, meta)));
        }
        if !meta.is_dir() {
            // A file or a symlink where a directory should be: `rel` cannot exist.
            return Ok(None);
        }
        cur = path;
    }
    Ok(None)
}

fn find_normalized(dir: &Path, name: &str) -> std::io::Result<Option<(PathBuf, Metadata)>> {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let os = entry.file_name();
        let Some(s) = os.to_str() else { continue };
        if RelPath::new_normalized(s).is_ok_and(|n| n.as_str() == name) {
            return Ok(Some((entry.path(), entry.metadata()?)));
        }
    }
    Ok(None)
}

/// Lists one directory, sorted by name, with ignore rules applied.
fn list(dir: &Option<RelPath>, abs: &Path, rules: &IgnoreRules) -> Vec<Walked> {
    let shown = dir
        .as_ref()
        .map_or_else(|| ".".to_owned(), ToString::to_string);
    let entries = match fs::read_dir(abs) {
        Ok(rd) => rd,
        Err(e) => {
            return vec![Walked::Unlistable {
                dir: dir.clone(),
                path: shown,
                error: e.to_string(),
            }];
        }
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => names.push((e.file_name(), e)),
            Err(e) => {
                // Part of the listing is missing: protect the whole directory.
                out.push(Walked::Unlistable {
                    dir: dir.clone(),
                    path: shown.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    // Case folding → first name seen, to report case-only collisions.
    let mut folded: HashMap<String, RelPath> = HashMap::new();
    let mut normalized: HashMap<String, String> = HashMap::new();
    for (name, entry) in names {
        let shown_name = |n: &std::ffi::OsStr| match dir {
            Some(d) => format!("{d}/{}", n.to_string_lossy()),
            None => n.to_string_lossy().into_owned(),
        };
        let Some(name_str) = name.to_str() else {
            out.push(Walked::Skipped {
                path: shown_name(&name),
                reason: SkipReason::NonUtf8Name,
                keep: None,
            });
            continue;
        };
        if dir.is_none() && name_str.eq_ignore_ascii_case(STATE_DIR) {
            continue;
        }
        if crate::rules::is_always_ignored(name_str) {
            continue;
        }
        let joined = match dir {
            Some(d) => format!("{d}/{name_str}"),
            None => name_str.to_owned(),
        };
        let rel = match RelPath::new_normalized(&joined) {
            Ok(r) => r,
            Err(e) => {
                out.push(Walked::Skipped {
                    path: joined,
                    reason: SkipReason::BadName(e),
                    keep: None,
                });
                continue;
            }
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(Walked::Skipped {
                    path: joined,
                    reason: SkipReason::Unreadable(e.to_string()),
                    keep: Some(rel),
                });
                continue;
            }
        };
        if rules.is_ignored(&rel, meta.is_dir()) {
            continue;
        }
        if let Some(first) = normalized.insert(rel.as_str().to_owned(), joined.clone()) {
            // Two names on disk that are the same after NFC (possible on Linux).
            out.push(Walked::Skipped {
                path: joined,
                reason: SkipReason::NormalizationCollision(first),
                keep: None,
            });
            continue;
        }
        if let Some(first) = folded.get(&rel.case_fold()) {
            out.push(Walked::CaseCollision(first.clone(), rel.clone()));
        } else {
            folded.insert(rel.case_fold(), rel.clone());
        }
        match classify(rel, entry.path(), &meta) {
            Ok(found) => out.push(Walked::Found(found)),
            Err(w) => out.push(w),
        }
    }
    out
}

/// Turns metadata (from `lstat`) into a found entry, or a skip for special files.
fn classify(rel: RelPath, abs: PathBuf, meta: &Metadata) -> Result<Found, Walked> {
    let ft = meta.file_type();
    let stat = Stat::of(meta);
    let kind = if ft.is_file() {
        FoundKind::File
    } else if ft.is_dir() {
        FoundKind::Directory
    } else if ft.is_symlink() {
        match fs::read_link(&abs) {
            Ok(t) => match t.into_os_string().into_string() {
                Ok(t) => FoundKind::Symlink(t),
                Err(_) => {
                    return Err(Walked::Skipped {
                        path: rel.to_string(),
                        reason: SkipReason::NonUtf8Target,
                        keep: None,
                    });
                }
            },
            Err(e) => {
                return Err(Walked::Skipped {
                    path: rel.to_string(),
                    reason: SkipReason::Unreadable(e.to_string()),
                    keep: Some(rel),
                });
            }
        }
    } else {
        return Err(Walked::Skipped {
            path: rel.to_string(),
            reason: SkipReason::Special(special_kind(meta)),
            keep: None,
        });
    };
    Ok(Found {
        rel,
        abs,
        kind,
        stat,
    })
}

#[cfg(unix)]
fn special_kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}
#[cfg(not(unix))]
fn special_kind(_: &Metadata) -> &'static str {
    "special file"
}
