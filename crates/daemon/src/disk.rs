//! Carrying out the engine's plan on disk: temporaries, atomic replacement,
//! the archive, and reading blocks back.
//!
//! A received file is written to a temporary in `.sync/tmp/`
//! (`.sync-tmp-<hash>-<name>`), fsynced, then renamed over the target, and the
//! directory fsynced: a crash leaves the old file or the new one, never a torn
//! one. `.sync/` is not watched, so writing a temporary there costs no file
//! system events (with temporaries beside their targets, the watcher's thread
//! and the kernel's wake-ups for our own writes were a tenth of a small-file
//! receiver's CPU); only the rename into place is seen. A target in a directory
//! on another file system than `.sync/` (a mount inside the folder) has its
//! temporary beside it instead, so the rename stays atomic. A temporary is created by its first write (not before: most
//! files of a new folder have no block held locally), and stays open from its
//! first write until [`Disk::prepare`] sets its time and mode, so a small file is
//! opened once ([`OPEN_TEMPS`] at most are kept open). Leftover temporaries are removed at start
//! ([`remove_stale_temporaries`]). Whatever a change replaces or deletes is first
//! moved to `.sync/Archive/`, keeping its relative path, with the time appended
//! to its name (`report~20261201-130500.pdf`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use index::LocalStat;
use record::{FileRecord, RelPath, STATE_DIR, TEMP_PREFIX, Timestamp};

/// The archive directory inside the folder's `.sync/`.
pub const ARCHIVE_DIR: &str = "Archive";
/// The directory of temporaries inside the folder's `.sync/`.
pub(crate) const TEMP_DIR: &str = "tmp";

/// Temporaries kept open between writes at most (the scheduler works on 64
/// files at once; a temporary closed early is simply opened again).
pub(crate) const OPEN_TEMPS: usize = 128;

/// Names a temporary: the file and the version (file hash) it collects.
type TempKey = (RelPath, [u8; 32]);

/// Temporaries open for writing, oldest first.
#[derive(Debug, Default)]
struct OpenTemps {
    files: HashMap<TempKey, File>,
    order: VecDeque<TempKey>,
}

impl OpenTemps {
    fn insert(&mut self, key: TempKey, file: File) {
        while self.files.len() >= OPEN_TEMPS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.files.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.files.insert(key, file);
    }

    fn take(&mut self, key: &TempKey) -> Option<File> {
        let file = self.files.remove(key)?;
        self.order.retain(|k| k != key);
        Some(file)
    }
}

/// Files kept open for reading blocks to serve.
const SERVED_FILES: usize = 8;

/// Files recently read for serving, most recent first: a peer fetching a file
/// asks for its blocks one after another, and opening it for each (the path's
/// checks, `open`, `close`) cost more than reading the block. A descriptor
/// kept is never trusted for more than it is: every read checks what it reads
/// by the descriptor's own `fstat` (or by hash), so one whose path was
/// replaced meanwhile serves only blocks that are still right. Files removed
/// here are closed at once, so their space is freed.
#[derive(Debug, Default)]
struct ServedFiles(VecDeque<(RelPath, File)>);

impl ServedFiles {
    fn take(&mut self, rel: &RelPath) -> Option<File> {
        let at = self.0.iter().position(|(path, _)| path == rel)?;
        self.0.remove(at).map(|(_, file)| file)
    }

    fn keep(&mut self, rel: &RelPath, file: File) {
        self.0.truncate(SERVED_FILES - 1);
        self.0.push_front((rel.clone(), file));
    }
}

/// A folder on disk.
#[derive(Debug)]
pub(crate) struct Disk {
    root: PathBuf,
    /// Temporaries written to and not yet prepared (only the folder thread
    /// writes, so no lock).
    open: RefCell<OpenTemps>,
    /// Directories [`path`](Self::path) found to be directories, not links,
    /// since [`forget_checked_dirs`](Self::forget_checked_dirs): each is looked
    /// at once per batch of events rather than for every path below it (those
    /// `lstat`s were 5 % of a small-file receiver). Cleared by everything here
    /// that removes or replaces what is at a path, so a directory this thread
    /// removed and a peer's symlink put in its place is never trusted. With
    /// the device each is on.
    checked_dirs: RefCell<HashMap<PathBuf, u64>>,
    /// The device of the root, and `.sync/tmp` with its device (none when it
    /// could not be made: temporaries then go beside their targets).
    root_dev: Option<u64>,
    temp_dir: Option<(PathBuf, u64)>,
    /// See [`ServedFiles`].
    served: RefCell<ServedFiles>,
}

/// Directories remembered as checked at most.
const CHECKED_DIRS: usize = 4096;

impl Disk {
    pub(crate) fn new(root: PathBuf) -> Self {
        let root_dev = fs::metadata(&root).ok().map(|m| m.dev());
        let dir = root.join(STATE_DIR).join(TEMP_DIR);
        let temp_dir = match fs::create_dir_all(&dir).and_then(|()| fs::symlink_metadata(&dir)) {
            Ok(meta) if meta.is_dir() => Some((dir, meta.dev())),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, dir = %dir.display(), "no directory of temporaries; they go beside their files");
                None
            }
        };
        Self {
            root,
            open: RefCell::default(),
            checked_dirs: RefCell::default(),
            root_dev,
            temp_dir,
            served: RefCell::default(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Directories are looked at again from here on (see `checked_dirs`): the
    /// folder calls it for each batch of events, so what the user changes
    /// meanwhile is seen.
    pub(crate) fn forget_checked_dirs(&self) {
        self.checked_dirs.borrow_mut().clear();
    }

    /// Closes the files kept open for serving (see [`ServedFiles`]), before
    /// something here removes or replaces files.
    fn forget_served(&self) {
        self.served.borrow_mut().0.clear();
    }

    /// The absolute path of `rel`, refusing one that passes through a symlink
    /// or a non-directory: nothing is ever read, written or deleted through a
    /// link, whoever made it (a peer's signed symlink record, or the user's own
    /// link out of the folder). The last component is not followed by the callers
    /// either (`rename`, `symlink_metadata`, `O_NOFOLLOW`).
    pub(crate) fn path(&self, rel: &RelPath) -> io::Result<PathBuf> {
        let mut path = self.root.clone();
        let mut parts = rel.components().peekable();
        let mut checking = true;
        while let Some(part) = parts.next() {
            path.push(part);
            if !checking || parts.peek().is_none() || self.checked_dirs.borrow().contains_key(&path)
            {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{rel} lies below the symlink {}; links are never followed",
                            path.display()
                        ),
                    ));
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!(
                            "{rel} lies below {}, which is not a directory",
                            path.display()
                        ),
                    ));
                }
                Ok(meta) => {
                    let mut checked = self.checked_dirs.borrow_mut();
                    if checked.len() >= CHECKED_DIRS {
                        checked.clear();
                    }
                    checked.insert(path.clone(), meta.dev());
                }
                // Below a missing directory nothing exists to follow.
                Err(e) if e.kind() == io::ErrorKind::NotFound => checking = false,
                Err(e) => return Err(e),
            }
        }
        Ok(path)
    }

    /// The temporary that collects the version `hash` of `rel`.
    pub(crate) fn temp_path(&self, rel: &RelPath, hash: &[u8; 32]) -> io::Result<PathBuf> {
        Ok(self.temp_for(&self.path(rel)?, rel, hash))
    }

    /// [`temp_path`](Self::temp_path) of `rel`, found (links refused) at `target`:
    /// in `.sync/tmp` if the target's directory is on its file system.
    fn temp_for(&self, target: &Path, rel: &RelPath, hash: &[u8; 32]) -> PathBuf {
        match &self.temp_dir {
            Some((dir, dev)) if self.device_of_dir(target) == Some(*dev) => {
                dir.join(temp_name(rel, hash))
            }
            _ => temp_beside(target, rel, hash),
        }
    }

    /// The device of the directory `target` is (or will be) in: that of its
    /// nearest existing ancestor, from what [`path`](Self::path) looked at when
    /// it can.
    fn device_of_dir(&self, target: &Path) -> Option<u64> {
        for dir in target.ancestors().skip(1) {
            if dir == self.root {
                return self.root_dev;
            }
            if let Some(dev) = self.checked_dirs.borrow().get(dir) {
                return Some(*dev);
            }
            match fs::symlink_metadata(dir) {
                Ok(meta) => return Some(meta.dev()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Opens (creating it and its directory) the temporary of a version.
    pub(crate) fn open_temp(&self, rel: &RelPath, hash: &[u8; 32]) -> io::Result<File> {
        let temp = self.temp_path(rel, hash)?;
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(no_follow())
                .open(&temp)
        };
        // The directory is there for all but a directory's first file: make it
        // only when the open says it is missing.
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = temp.parent() {
                    fs::create_dir_all(dir)?;
                }
                open()
            }
            other => other,
        }
    }

    /// Removes the temporary of a version no longer wanted (if any).
    pub(crate) fn discard_temp(&self, rel: &RelPath, hash: &[u8; 32]) {
        self.open.borrow_mut().take(&(rel.clone(), *hash));
        if let Ok(temp) = self.temp_path(rel, hash) {
            let _ = fs::remove_file(temp);
        }
    }

    /// Writes `data` at `offset` of the temporary of a version, creating it if
    /// need be; it stays open for the next write.
    pub(crate) fn write_block(
        &self,
        rel: &RelPath,
        hash: &[u8; 32],
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let key = (rel.clone(), *hash);
        let mut open = self.open.borrow_mut();
        if let Some(file) = open.files.get(&key) {
            return file.write_all_at(data, offset);
        }
        let file = self.open_temp(rel, hash)?;
        file.write_all_at(data, offset)?;
        open.insert(key, file);
        Ok(())
    }

    /// Reads `size` bytes at `offset` of `rel` and returns them if their BLAKE3 is
    /// `hash`: a block found through the index is used only once it is verified.
    pub(crate) fn read_block(
        &self,
        rel: &RelPath,
        offset: u64,
        size: u32,
        hash: &[u8; 32],
    ) -> Option<Vec<u8>> {
        self.read_block_trusting(rel, offset, size, hash, None)
    }

    /// [`read_block`](Self::read_block), but the hash is not checked when the
    /// file is as `hashed` says it was when its blocks were hashed (same size,
    /// modification time and inode): a peer that asks checks every block
    /// anyway, and hashing what we serve was a fifth of a serving peer's CPU.
    pub(crate) fn read_block_trusting(
        &self,
        rel: &RelPath,
        offset: u64,
        size: u32,
        hash: &[u8; 32],
        hashed: Option<LocalStat>,
    ) -> Option<Vec<u8>> {
        let kept = self.served.borrow_mut().take(rel);
        // A kept file that does not give the block (unlinked since, say) is
        // closed, and the path opened again.
        if let Some(file) = kept
            && let Some(data) = read_checked(&file, offset, size, hash, hashed)
        {
            self.served.borrow_mut().keep(rel, file);
            return Some(data);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(no_follow())
            .open(self.path(rel).ok()?)
            .ok()?;
        let data = read_checked(&file, offset, size, hash, hashed)?;
        self.served.borrow_mut().keep(rel, file);
        Some(data)
    }

    /// Readies the complete temporary of `record`: its length, time and mode
    /// (a rename keeps them, so they are durable with the data), through the
    /// descriptor its writes left open, if any. It is closed after.
    pub(crate) fn prepare(&self, record: &FileRecord) -> io::Result<()> {
        let open = self
            .open
            .borrow_mut()
            .take(&(record.path.clone(), record.hash));
        let temp = match open {
            Some(file) => file,
            None => self.open_temp(&record.path, &record.hash)?,
        };
        let meta = temp.metadata()?;
        if meta.len() != record.size {
            temp.set_len(record.size)?;
        }
        if let Some(time) = record.modified.to_system() {
            temp.set_modified(time)?;
        }
        // Most files are created with the mode they should have: no chmod then.
        let mode = record.mode & 0o7777;
        if meta.permissions().mode() & 0o7777 != mode {
            temp.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// Moves prepared temporaries into place, durably: their data is flushed
    /// before any rename (so a crash leaves the old file or the whole new one),
    /// what they replace goes to the archive, and each directory touched is
    /// flushed after the renames. One result per record, in order. (The
    /// folder does it in two steps, [`flush_paths`] on another thread.)
    #[cfg(test)]
    pub(crate) fn commit(&self, records: &[&FileRecord]) -> Vec<io::Result<LocalStat>> {
        let flushed = flush_paths(&self.root, &self.temps_of(records));
        self.commit_flushed(records, flushed)
    }

    /// The temporaries of `records`, in order, for [`flush_paths`].
    pub(crate) fn temps_of(&self, records: &[&FileRecord]) -> Vec<io::Result<PathBuf>> {
        records
            .iter()
            .map(|r| self.temp_path(&r.path, &r.hash))
            .collect()
    }

    /// [`commit`](Self::commit) of temporaries already flushed (`flushed`: one
    /// result per record, from [`flush_paths`]).
    pub(crate) fn commit_flushed(
        &self,
        records: &[&FileRecord],
        flushed: Vec<io::Result<()>>,
    ) -> Vec<io::Result<LocalStat>> {
        // Each target's directories are checked for links once, here (again:
        // the flush took a while).
        let targets: Vec<io::Result<PathBuf>> =
            records.iter().map(|r| self.path(&r.path)).collect();
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut results: Vec<io::Result<LocalStat>> = records
            .iter()
            .zip(&targets)
            .zip(flushed)
            .map(|((record, target), flushed)| {
                flushed?;
                let target = target.as_ref().map_err(copy_err)?;
                let temp = self.temp_for(target, &record.path, &record.hash);
                self.archive_at(target, &record.path)?;
                rename_making_dir(&temp, target)?;
                if let Some(dir) = target.parent()
                    && !dirs.iter().any(|d| d == dir)
                {
                    dirs.push(dir.to_owned());
                }
                local_stat(target)
            })
            .collect();
        // The renames made durable: one `syncfs` when many directories were
        // touched (a batch of small files touches most of a tree's), an fsync
        // of each of a few.
        if dirs.len() > 2 && sync_fs(&self.root) {
            return results;
        }
        for dir in &dirs {
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                // The renames in this directory are not known durable: report them.
                for (target, result) in targets.iter().zip(results.iter_mut()) {
                    let here = target.as_ref().ok().and_then(|t| t.parent());
                    if result.is_ok() && here == Some(dir.as_path()) {
                        *result = Err(copy_err(&e));
                    }
                }
            }
        }
        results
    }

    /// Sets time and mode of what is at `record.path` to the record's.
    pub(crate) fn update_metadata(&self, record: &FileRecord) -> io::Result<Option<LocalStat>> {
        let target = self.path(&record.path)?;
        if record.kind == record::FileKind::File {
            apply_metadata(&target, record)?;
            return local_stat(&target).map(Some);
        }
        if record.kind == record::FileKind::Directory {
            fs::set_permissions(&target, fs::Permissions::from_mode(dir_mode(record.mode)))?;
        }
        Ok(None)
    }

    /// Creates the directory of `record` (and its parents).
    pub(crate) fn create_dir(&self, record: &FileRecord) -> io::Result<()> {
        let target = self.path(&record.path)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
            self.archive_existing(&record.path)?;
        }
        fs::create_dir_all(&target)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(dir_mode(record.mode)))
    }

    /// Creates the symlink of `record`, archiving what was there.
    pub(crate) fn create_symlink(&self, record: &FileRecord, target: &str) -> io::Result<()> {
        self.forget_checked_dirs();
        self.forget_served();
        let link = self.path(&record.path)?;
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir)?;
        }
        self.archive_existing(&record.path)?;
        std::os::unix::fs::symlink(target, &link)?;
        sync_parent(&link)
    }

    /// Deletes what is at `rel`: a file or link goes to the archive, a directory is
    /// removed if empty (a directory with content left in it is an error: nothing
    /// is deleted that the deletion did not cover).
    pub(crate) fn delete(&self, rel: &RelPath) -> io::Result<()> {
        self.forget_checked_dirs();
        self.forget_served();
        let target = self.path(rel)?;
        match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(meta) if meta.is_dir() => {
                // Temporaries of ours do not keep a directory alive.
                for entry in fs::read_dir(&target)? {
                    let entry = entry?;
                    if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                        fs::remove_file(entry.path())?;
                    }
                }
                fs::remove_dir(&target)?;
                sync_parent(&target)
            }
            Ok(_) => {
                self.archive_existing(rel)?;
                sync_parent(&target)
            }
        }
    }

    /// Moves `rel` to `to` within the folder (a conflict copy), never over
    /// anything: if `to` is taken, `rel` goes to the archive instead.
    pub(crate) fn move_aside(&self, rel: &RelPath, to: &RelPath) -> io::Result<bool> {
        self.forget_checked_dirs();
        self.forget_served();
        let from = self.path(rel)?;
        let dest = self.path(to)?;
        if fs::symlink_metadata(&dest).is_ok() {
            self.archive_existing(rel)?;
            return Ok(false);
        }
        fs::rename(&from, &dest)?;
        sync_parent(&dest)?;
        Ok(true)
    }

    /// Moves what is at `rel` (a file or symlink) into the archive. A directory is
    /// left alone. Nothing there: nothing to do.
    pub(crate) fn archive_existing(&self, rel: &RelPath) -> io::Result<()> {
        self.archive_at(&self.path(rel)?, rel)
    }

    /// [`archive_existing`](Self::archive_existing) of `rel`, found (links
    /// refused) at `source`.
    fn archive_at(&self, source: &Path, rel: &RelPath) -> io::Result<()> {
        match fs::symlink_metadata(source) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => {}
        }
        self.forget_checked_dirs();
        self.forget_served();
        let dest = self.archive_path(rel, SystemTime::now());
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        match fs::rename(source, &dest) {
            // On another file system than `.sync/` (a mount inside the folder).
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => move_across(source, &dest),
            other => other,
        }
    }

    /// Where `rel` goes in the archive at `when`: `.sync/Archive/dir/name~YYYYMMDD-HHMMSS.ext`.
    pub(crate) fn archive_path(&self, rel: &RelPath, when: SystemTime) -> PathBuf {
        let time = Timestamp::from_system(when).utc_stamp();
        let name = rel.file_name();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => name.split_at(i),
            _ => (name, ""),
        };
        let mut dir = self.root.join(STATE_DIR).join(ARCHIVE_DIR);
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                dir.push(c);
            }
        }
        let mut candidate = dir.join(format!("{stem}~{time}{ext}"));
        let mut n = 1;
        while candidate.exists() {
            candidate = dir.join(format!("{stem}~{time}-{n}{ext}"));
            n += 1;
        }
        candidate
    }
}

/// Deletes archived versions older than `keep` (by the time in their name) and
/// archive directories left empty. Returns how many files went.
pub(crate) fn prune_archive(root: &Path, keep: std::time::Duration, now: SystemTime) -> usize {
    let Some(cutoff) = now.checked_sub(keep) else {
        return 0;
    };
    let cutoff = Timestamp::from_system(cutoff);
    let archive = root.join(STATE_DIR).join(ARCHIVE_DIR);
    let mut removed = 0;
    let mut dirs = vec![archive.clone()];
    let mut seen_dirs = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        seen_dirs.push(dir);
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let stamp = archived_at(&name.to_string_lossy());
            if stamp.is_some_and(|t| t < cutoff) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    // Deepest first; remove_dir fails (harmlessly) on directories still in use.
    for dir in seen_dirs.iter().rev().filter(|d| **d != archive) {
        let _ = fs::remove_dir(dir);
    }
    removed
}

/// The time in an archived name `stem~YYYYMMDD-HHMMSS[-n][.ext]`.
fn archived_at(name: &str) -> Option<Timestamp> {
    let (_, tail) = name.rsplit_once('~')?;
    Timestamp::from_utc_stamp(tail.get(..15)?)
}

/// Removes temporaries left by an earlier run (a crash or a kill): those in
/// `.sync/tmp`, and those beside their targets anywhere in the folder but
/// `.sync/`. Returns how many.
pub(crate) fn remove_stale_temporaries(root: &Path) -> usize {
    let mut removed = 0;
    if let Ok(entries) = fs::read_dir(root.join(STATE_DIR).join(TEMP_DIR)) {
        for entry in entries.flatten() {
            let not_dir = entry.file_type().is_ok_and(|t| !t.is_dir());
            if not_dir
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if dir == root && name == STATE_DIR {
                    continue;
                }
                stack.push(entry.path());
            } else if name.to_string_lossy().starts_with(TEMP_PREFIX)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// What a rename across file systems would do: a copy at `to` (a link as a
/// link; a file with its mode and time, flushed), then `from` removed.
fn move_across(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        let mut source = OpenOptions::new()
            .read(true)
            .custom_flags(no_follow())
            .open(from)?;
        let mut copy = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(no_follow())
            .mode(meta.permissions().mode() & 0o7777)
            .open(to)?;
        io::copy(&mut source, &mut copy)?;
        copy.set_modified(meta.modified()?)?;
        copy.sync_all()?;
    }
    sync_parent(to)?;
    fs::remove_file(from)
}

/// Makes the data of temporaries durable: one `syncfs` of the file system of
/// `root` for a batch, an fsync each for one or two files. One result per
/// temporary, in order (an error where it had no name).
pub(crate) fn flush_paths(root: &Path, temps: &[io::Result<PathBuf>]) -> Vec<io::Result<()>> {
    if temps.iter().filter(|t| t.is_ok()).count() > 2 && sync_fs(root) {
        return temps
            .iter()
            .map(|t| t.as_ref().map(|_| ()).map_err(copy_err))
            .collect();
    }
    temps
        .iter()
        .map(|t| match t {
            Ok(t) => File::open(t).and_then(|f| f.sync_all()),
            Err(e) => Err(copy_err(e)),
        })
        .collect()
}

/// Flushes the file system `root` is on (`syncfs`); false if that failed.
fn sync_fs(root: &Path) -> bool {
    File::open(root).is_ok_and(|root| rustix::fs::syncfs(&root).is_ok())
}

/// Renames `from` to `to`, making `to`'s directory first if it is missing (a
/// temporary in `.sync/tmp` does not make it, as one beside its target did).
fn rename_making_dir(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && from.exists() => {
            if let Some(dir) = to.parent() {
                fs::create_dir_all(dir)?;
                sync_parent(dir)?;
            }
            fs::rename(from, to)
        }
        other => other,
    }
}

/// The name in `.sync/tmp` of the temporary of the version `hash` of `rel`: a
/// digest of both (the same content at two paths is two temporaries), and the
/// start of the file's name for whoever looks.
fn temp_name(rel: &RelPath, hash: &[u8; 32]) -> String {
    let mut digest = blake3::Hasher::new();
    digest.update(rel.as_str().as_bytes());
    digest.update(&[0]);
    digest.update(hash);
    let tag =
        data_encoding::HEXLOWER.encode(digest.finalize().as_bytes().get(..16).unwrap_or_default());
    format!("{TEMP_PREFIX}{tag}-{}", name_start(rel.file_name(), 100))
}

/// `name` cut to at most `max` bytes, on a character boundary.
fn name_start(name: &str, max: usize) -> &str {
    let mut cut = name.len().min(max);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.get(..cut).unwrap_or_default()
}

/// The temporary of the version `hash` of `rel`, whose place is `target`, when
/// it cannot be in `.sync/tmp`.
fn temp_beside(target: &Path, rel: &RelPath, hash: &[u8; 32]) -> PathBuf {
    let tag = data_encoding::HEXLOWER.encode(hash.get(..8).unwrap_or_default());
    // Keep the whole name within the usual 255-byte limit: cut the original
    // name at 200 bytes (names may be multi-byte).
    let name = name_start(rel.file_name(), 200);
    target.with_file_name(format!("{TEMP_PREFIX}{tag}-{name}"))
}

/// What the index remembers of a file on disk, to know it unchanged later.
pub(crate) fn local_stat(path: &Path) -> io::Result<LocalStat> {
    let meta = fs::symlink_metadata(path)?;
    Ok(LocalStat {
        size: meta.len(),
        modified: Timestamp::from_system(meta.modified()?),
        inode: meta.ino(),
    })
}

fn apply_metadata(path: &Path, record: &FileRecord) -> io::Result<()> {
    // Owners may set times through a read-only descriptor (futimens), so this
    // works on files whose mode forbids writing; a link is never followed.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(no_follow())
        .open(path)?;
    set_metadata(&file, record)
}

/// Sets the record's time and mode on an open file.
fn set_metadata(file: &File, record: &FileRecord) -> io::Result<()> {
    if let Some(time) = record.modified.to_system() {
        file.set_modified(time)?;
    }
    file.set_permissions(fs::Permissions::from_mode(record.mode & 0o7777))
}

/// An error again, for each of the several results it fails (io::Error is not
/// `Clone`).
fn copy_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// `size` bytes of `file` at `offset`, if they hash to `hash`, or if the file is
/// as `hashed` says it was when its blocks were hashed (same size, modification
/// time and inode; then the hash is not computed). Never from a file no longer
/// linked anywhere (replaced or deleted since it was opened).
fn read_checked(
    file: &File,
    offset: u64,
    size: u32,
    hash: &[u8; 32],
    hashed: Option<LocalStat>,
) -> Option<Vec<u8>> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.nlink() == 0 {
        return None;
    }
    let unchanged = hashed.is_some_and(|h| {
        h.size == meta.len()
            && h.inode == meta.ino()
            && meta
                .modified()
                .is_ok_and(|m| Timestamp::from_system(m) == h.modified)
    });
    // Read into spare capacity, at the offset: no zeroing of a buffer about to
    // be overwritten (4 % of a serving peer's CPU), no seek, no read for the end.
    let len = usize::try_from(size).ok()?;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let at = offset.checked_add(data.len() as u64)?;
        let spare = rustix::buffer::spare_capacity(&mut data);
        match rustix::io::pread(file, spare, at) {
            Ok(0) => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    data.truncate(len);
    (data.len() == len && (unchanged || blake3::hash(&data).as_bytes() == hash)).then_some(data)
}

/// `O_NOFOLLOW`: opening a symlink fails instead of opening what it points to.
pub(crate) fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// A directory must stay enterable by its owner whatever a peer says.
fn dir_mode(mode: u32) -> u32 {
    (mode & 0o7777) | 0o700
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn archive_keeps_paths_and_prunes_by_age() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let rel = RelPath::new("docs/report.pdf").unwrap();
        fs::create_dir_all(tmp.path().join("docs")).unwrap();
        fs::write(disk.path(&rel).unwrap(), b"old version").unwrap();
        disk.archive_existing(&rel).unwrap();
        assert!(!disk.path(&rel).unwrap().exists());
        let archived: Vec<_> = fs::read_dir(tmp.path().join(".sync/Archive/docs"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(archived.len(), 1);
        let name = archived[0].file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("report~") && name.ends_with(".pdf"),
            "{name}"
        );
        assert_eq!(fs::read(archived[0].path()).unwrap(), b"old version");

        // Kept while young, gone once older than the limit; the empty directory too.
        let day = Duration::from_secs(86_400);
        assert_eq!(prune_archive(tmp.path(), 30 * day, SystemTime::now()), 0);
        assert_eq!(
            prune_archive(tmp.path(), 30 * day, SystemTime::now() + 31 * day),
            1
        );
        assert!(!tmp.path().join(".sync/Archive/docs").exists());
        assert!(tmp.path().join(".sync/Archive").exists());
    }

    #[test]
    fn a_second_archive_of_the_same_name_does_not_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let rel = RelPath::new("a.txt").unwrap();
        for content in [b"one", b"two"] {
            fs::write(disk.path(&rel).unwrap(), content).unwrap();
            disk.archive_existing(&rel).unwrap();
        }
        let mut kept: Vec<Vec<u8>> = fs::read_dir(tmp.path().join(".sync/Archive"))
            .unwrap()
            .flatten()
            .map(|e| fs::read(e.path()).unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn stale_temporaries_are_removed_but_nothing_else_in_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/.sync-tmp-abc-file"), b"partial").unwrap();
        fs::create_dir_all(tmp.path().join(".sync/tmp")).unwrap();
        fs::write(tmp.path().join(".sync/.sync-tmp-keep"), b"state").unwrap();
        fs::write(tmp.path().join(".sync/tmp/.sync-tmp-0123-file"), b"partial").unwrap();
        fs::write(tmp.path().join("d/real"), b"real").unwrap();
        assert_eq!(remove_stale_temporaries(tmp.path()), 2);
        assert!(tmp.path().join("d/real").exists());
        assert!(tmp.path().join(".sync/.sync-tmp-keep").exists());
        assert!(!tmp.path().join(".sync/tmp/.sync-tmp-0123-file").exists());
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A record of `content` in blocks of `block` bytes.
    pub(super) fn record(
        path: &str,
        content: &[u8],
        block: usize,
        mode: u32,
        secs: i64,
    ) -> FileRecord {
        FileRecord {
            path: RelPath::new(path).unwrap(),
            kind: record::FileKind::File,
            size: content.len() as u64,
            modified: Timestamp { secs, nanos: 500 },
            mode,
            version: record::VersionVector::default(),
            deleted: false,
            blocks: content
                .chunks(block)
                .map(|c| record::Block {
                    size: c.len() as u32,
                    hash: *blake3::hash(c).as_bytes(),
                })
                .collect(),
            hash: *blake3::hash(content).as_bytes(),
        }
    }

    fn content(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    #[test]
    fn files_written_in_turns_are_placed_whole_with_time_and_mode() {
        // More files in progress at once than temporaries kept open, their blocks
        // arriving in turns, so some are closed early and opened again.
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let n = OPEN_TEMPS + 40;
        let records: Vec<(FileRecord, Vec<u8>)> = (0..n)
            .map(|i| {
                let data = content(i, 3 * 1000 + i);
                let path = format!("d{}/sub/f{i}", i % 3);
                (
                    record(&path, &data, 1000, 0o640, 1_700_000_000 + i as i64),
                    data,
                )
            })
            .collect();
        for round in 0..4 {
            for (r, data) in &records {
                let Some(chunk) = data.chunks(1000).nth(round) else {
                    continue;
                };
                disk.write_block(&r.path, &r.hash, (round * 1000) as u64, chunk)
                    .unwrap();
            }
        }
        assert!(disk.open.borrow().files.len() <= OPEN_TEMPS);
        for (r, _) in &records {
            disk.prepare(r).unwrap();
        }
        assert!(disk.open.borrow().files.is_empty(), "prepared means closed");
        let refs: Vec<&FileRecord> = records.iter().map(|(r, _)| r).collect();
        let stats = disk.commit(&refs);
        for ((r, data), stat) in records.iter().zip(stats) {
            let stat = stat.unwrap();
            let target = tmp.path().join(r.path.as_str());
            assert_eq!(&fs::read(&target).unwrap(), data, "{}", r.path);
            let meta = fs::symlink_metadata(&target).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o640);
            assert_eq!(meta.mtime(), r.modified.secs);
            assert_eq!(meta.mtime_nsec(), 500);
            assert_eq!(stat, local_stat(&target).unwrap());
        }
        assert_eq!(remove_stale_temporaries(tmp.path()), 0, "no temporary left");
    }

    #[test]
    fn temporaries_are_in_the_state_dir_one_per_path_and_version() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let data = content(1, 2500);
        // The same content at two paths with the same name, in directories
        // that do not exist yet.
        let (a, b) = (
            record("x/f", &data, 1000, 0o644, 1),
            record("y/f", &data, 1000, 0o644, 1),
        );
        let (ta, tb) = (
            disk.temp_path(&a.path, &a.hash).unwrap(),
            disk.temp_path(&b.path, &b.hash).unwrap(),
        );
        assert_ne!(ta, tb);
        let other_version = disk.temp_path(&a.path, &[9; 32]).unwrap();
        assert_ne!(
            ta, other_version,
            "another version of x/f is another temporary"
        );
        let dir = tmp.path().join(STATE_DIR).join(TEMP_DIR);
        assert_eq!(ta.parent(), Some(dir.as_path()));
        assert_eq!(tb.parent(), Some(dir.as_path()));
        for r in [&a, &b] {
            disk.write_block(&r.path, &r.hash, 0, &data).unwrap();
            disk.prepare(r).unwrap();
        }
        for stat in disk.commit(&[&a, &b]) {
            stat.unwrap();
        }
        assert_eq!(fs::read(tmp.path().join("x/f")).unwrap(), data);
        assert_eq!(fs::read(tmp.path().join("y/f")).unwrap(), data);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing left in {}",
            dir.display()
        );
    }

    /// Needs root (it mounts a tmpfs inside the folder); passes with a
    /// message otherwise.
    #[test]
    fn a_file_on_another_file_system_has_its_temporary_beside_it_and_is_archived() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&mnt)
            .output();
        if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {mounted:?}");
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(mnt.clone());
        let disk = Disk::new(tmp.path().to_owned());
        let data = content(2, 1500);
        let r = record("mnt/sub/f", &data, 1000, 0o644, 1);
        let temp = disk.temp_path(&r.path, &r.hash).unwrap();
        assert_eq!(
            temp.parent(),
            Some(mnt.join("sub").as_path()),
            "beside, on the tmpfs"
        );
        disk.write_block(&r.path, &r.hash, 0, &data).unwrap();
        disk.prepare(&r).unwrap();
        disk.commit(&[&r]).pop().unwrap().unwrap();
        assert_eq!(fs::read(mnt.join("sub/f")).unwrap(), data);
        // Replaced there, the old version is archived across file systems.
        let newer = content(3, 700);
        let r2 = record("mnt/sub/f", &newer, 1000, 0o600, 2);
        disk.write_block(&r2.path, &r2.hash, 0, &newer).unwrap();
        disk.prepare(&r2).unwrap();
        disk.commit(&[&r2]).pop().unwrap().unwrap();
        assert_eq!(fs::read(mnt.join("sub/f")).unwrap(), newer);
        let archived = fs::read_dir(tmp.path().join(".sync/Archive/mnt/sub"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>();
        assert_eq!(archived.len(), 1, "{archived:?}");
        assert_eq!(fs::read(&archived[0]).unwrap(), data);
        let meta = fs::metadata(&archived[0]).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.mtime()),
            (0o644, 1),
            "mode and time kept"
        );
        assert_eq!(remove_stale_temporaries(tmp.path()), 0, "no temporary left");
    }

    #[test]
    fn a_discarded_temporary_is_closed_and_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let r = record("a/b", b"partial", 4, 0o644, 1);
        disk.write_block(&r.path, &r.hash, 0, b"part").unwrap();
        let temp = disk.temp_path(&r.path, &r.hash).unwrap();
        assert!(temp.exists());
        disk.discard_temp(&r.path, &r.hash);
        assert!(!temp.exists());
        assert!(disk.open.borrow().files.is_empty());
        // Wanted again: it starts over from an empty temporary.
        disk.write_block(&r.path, &r.hash, 4, b"ial").unwrap();
        disk.prepare(&r).unwrap();
        assert_eq!(fs::read(&temp).unwrap(), b"\0\0\0\0ial");
    }

    #[test]
    fn a_file_is_replaced_and_the_old_version_archived() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        fs::write(tmp.path().join("x"), b"old").unwrap();
        let r = record("x", b"new content", 64, 0o600, 2);
        disk.write_block(&r.path, &r.hash, 0, b"new content")
            .unwrap();
        disk.prepare(&r).unwrap();
        disk.commit(&[&r]).pop().unwrap().unwrap();
        assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"new content");
        let archived: Vec<Vec<u8>> = fs::read_dir(tmp.path().join(".sync/Archive"))
            .unwrap()
            .flatten()
            .map(|e| fs::read(e.path()).unwrap())
            .collect();
        assert_eq!(archived, vec![b"old".to_vec()]);
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn temporaries_of_long_multibyte_names_fit_a_file_name() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let long = "ü".repeat(120); // 240 bytes, within the 255-byte limit
        let rel = RelPath::new(long.as_str()).unwrap();
        let temp = disk.temp_path(&rel, &[7; 32]).unwrap();
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{} bytes", name.len());
        disk.open_temp(&rel, &[7; 32]).unwrap();
    }

    #[test]
    fn nothing_goes_through_a_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("folder");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim.txt"), b"not yours").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        fs::write(root.join("plain"), b"x").unwrap();
        let disk = Disk::new(root.clone());
        let below = RelPath::new("link/victim.txt").unwrap();
        assert_eq!(
            disk.path(&below).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(disk.delete(&below).is_err());
        assert!(disk.archive_existing(&below).is_err());
        assert!(disk.open_temp(&below, &[1; 32]).is_err());
        let hash = *blake3::hash(b"not yours").as_bytes();
        assert_eq!(disk.read_block(&below, 0, 9, &hash), None);
        let under_file = RelPath::new("plain/x").unwrap();
        assert_eq!(
            disk.path(&under_file).unwrap_err().kind(),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(fs::read(outside.join("victim.txt")).unwrap(), b"not yours");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);

        // The link itself is an entry like any other: archived, not followed.
        let link = RelPath::new("link").unwrap();
        disk.archive_existing(&link).unwrap();
        assert!(outside.join("victim.txt").exists());
        // And a symlink at the last component is never read through.
        std::os::unix::fs::symlink(outside.join("victim.txt"), root.join("direct")).unwrap();
        let direct = RelPath::new("direct").unwrap();
        assert_eq!(disk.read_block(&direct, 0, 9, &hash), None);
    }
}

#[cfg(test)]
mod checked_dir_tests {
    use super::*;

    #[test]
    fn a_directory_replaced_by_a_link_is_never_trusted_from_before() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("folder");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("dir")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let disk = Disk::new(root.clone());
        let below = RelPath::new("dir/x").unwrap();
        disk.open_temp(&below, &[1; 32]).unwrap();
        disk.discard_temp(&below, &[1; 32]);
        // A peer deletes the directory and puts a link out of the folder in its
        // place, in one batch.
        disk.delete(&RelPath::new("dir").unwrap()).unwrap();
        let mut link = super::write_tests::record("dir", b"", 1, 0o777, 0);
        link.kind = record::FileKind::Symlink {
            target: outside.to_string_lossy().into_owned(),
        };
        disk.create_symlink(&link, &outside.to_string_lossy())
            .unwrap();
        let refused = disk.open_temp(&below, &[2; 32]).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

        // The user does the same behind our back: seen from the next batch on.
        fs::create_dir_all(root.join("mine")).unwrap();
        let mine = RelPath::new("mine/y").unwrap();
        disk.path(&mine).unwrap();
        fs::remove_dir(root.join("mine")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("mine")).unwrap();
        disk.forget_checked_dirs();
        assert_eq!(
            disk.path(&mine).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn a_block_is_checked_unless_the_file_is_as_it_was_hashed() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let rel = RelPath::new("f.bin").unwrap();
        fs::write(tmp.path().join("f.bin"), b"0123456789").unwrap();
        let good = *blake3::hash(b"01234").as_bytes();
        let wrong = [0; 32];
        let hashed = local_stat(&tmp.path().join("f.bin")).unwrap();
        // Unchanged since hashed: read as is.
        assert_eq!(
            disk.read_block_trusting(&rel, 0, 5, &wrong, Some(hashed)),
            Some(b"01234".to_vec())
        );
        // Without that knowledge, or once the file changed, checked.
        assert_eq!(disk.read_block_trusting(&rel, 0, 5, &wrong, None), None);
        assert_eq!(disk.read_block(&rel, 0, 5, &good), Some(b"01234".to_vec()));
        fs::write(tmp.path().join("f.bin"), b"01234567890").unwrap();
        assert_eq!(
            disk.read_block_trusting(&rel, 0, 5, &wrong, Some(hashed)),
            None
        );
        // A short read is never a block.
        assert_eq!(disk.read_block_trusting(&rel, 8, 5, &wrong, None), None);
    }

    #[test]
    fn a_file_kept_open_for_serving_never_serves_what_replaced_or_removed_it() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let rel = RelPath::new("f.bin").unwrap();
        let path = tmp.path().join("f.bin");
        fs::write(&path, b"old-content").unwrap();
        let old = *blake3::hash(b"old").as_bytes();
        let new = *blake3::hash(b"new").as_bytes();
        let hashed = local_stat(&path).unwrap();
        assert_eq!(disk.read_block(&rel, 0, 3, &old), Some(b"old".to_vec()));
        // Replaced by a rename, as an editor saves: the new file is read, and
        // the old one's state no longer lets anything through unchecked.
        fs::write(tmp.path().join("f.tmp"), b"new-content").unwrap();
        fs::rename(tmp.path().join("f.tmp"), &path).unwrap();
        assert_eq!(disk.read_block(&rel, 0, 3, &new), Some(b"new".to_vec()));
        assert_eq!(disk.read_block(&rel, 0, 3, &old), None);
        assert_eq!(
            disk.read_block_trusting(&rel, 0, 3, &old, Some(hashed)),
            None
        );
        // Written in place: what is read is what is there now.
        fs::write(&path, b"old-again!!").unwrap();
        assert_eq!(disk.read_block(&rel, 0, 3, &old), Some(b"old".to_vec()));
        // Removed by someone else: nothing is served from the open descriptor.
        fs::remove_file(&path).unwrap();
        assert_eq!(disk.read_block(&rel, 0, 3, &old), None);
        // Removed here: the descriptor is closed at once.
        fs::write(&path, b"old-content").unwrap();
        assert_eq!(disk.read_block(&rel, 0, 3, &old), Some(b"old".to_vec()));
        assert_eq!(disk.served.borrow().0.len(), 1);
        disk.delete(&rel).unwrap();
        assert!(disk.served.borrow().0.is_empty());
        assert_eq!(disk.read_block(&rel, 0, 3, &old), None);
    }

    #[test]
    fn at_most_a_few_files_are_kept_open_for_serving() {
        let tmp = tempfile::tempdir().unwrap();
        let disk = Disk::new(tmp.path().to_owned());
        let hash = *blake3::hash(b"x").as_bytes();
        for i in 0..3 * SERVED_FILES {
            let name = format!("f{i}");
            fs::write(tmp.path().join(&name), b"x").unwrap();
            let rel = RelPath::new(&name).unwrap();
            assert_eq!(disk.read_block(&rel, 0, 1, &hash), Some(b"x".to_vec()));
        }
        let kept: Vec<String> = disk
            .served
            .borrow()
            .0
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        let newest: Vec<String> = (2 * SERVED_FILES..3 * SERVED_FILES)
            .rev()
            .map(|i| format!("f{i}"))
            .collect();
        assert_eq!(kept, newest);
    }
}
