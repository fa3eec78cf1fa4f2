//! The scan pipeline: walk → read/chunk/hash/sign → compare and commit.
//!
//! A full scan walks on its own thread; a scan of a few paths walks on the
//! calling thread. The calling thread owns the index, compares each entry with
//! its row and commits. Changed files are hashed (and their records built and
//! signed) on the calling thread while they are a handful of small files, and by
//! a pool of threads, started on first need, once there is more: a scan that
//! finds little to do starts no thread for it.
//!
//! Channels between the stages are bounded, so memory does not grow with the
//! number of files: at most a few chunks of walked entries and two batches per
//! hashing thread are in flight.

use std::path::Path;
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use index::{Entry, Index, LocalStat, Writer};
use record::{FileKind, FileRecord, RelPath};

use crate::hasher::{self, Batch, Batcher, BigSlots, Done, Job, Outcome, Settings};
use crate::prepare::{self, Author, Change, FileResult, NewVersion, base_record, local_stat};
use crate::rules::IgnoreRules;
use crate::summary::{ScanSummary, SkipReason};
use crate::walk::{self, Found, FoundKind, Walked, Walker};
use crate::{ScanError, ScanOptions};

/// Chunks of walked entries (each up to `walk::WALK_CHUNK`) buffered between the
/// walker and the committer.
const WALK_QUEUE: usize = 4;
/// Unseen index entries handled per transaction in the deletion pass.
const DELETE_BATCH: usize = 256;
/// A scan hashes on its own thread until it has hashed this many files or bytes;
/// past that it starts the hashing threads. Starting two threads costs more than
/// hashing a few small files, and a sync destination scans a few files at a time,
/// thousands of times.
pub(crate) const INLINE_FILES: usize = 16;
const INLINE_BYTES: u64 = 1024 * 1024;

/// Scans the whole folder at `root` once and brings `index` up to date.
///
/// Unchanged files (same size, mtime and inode as last time) are not read. Changed
/// files are rehashed and get a new record with this peer's counter bumped, signed
/// when `opts.signer` is set and local-only otherwise; vanished ones become
/// tombstones. Problems with single entries are reported in the summary; only
/// problems with the folder, its ignore file or the index are errors.
pub fn scan_once(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
) -> Result<ScanSummary, ScanError> {
    let rules = IgnoreRules::load(root)?;
    let mut summary = scan_scopes(root, index, opts, &rules, vec![None], false)?;
    summary.bad_patterns = rules.bad_patterns().to_vec();
    Ok(summary)
}

/// Scans only `paths` (each with everything below it), e.g. what a watcher saw
/// change. A path that no longer exists is marked deleted with what was below it.
///
/// One pass for all the paths; the walk runs on the calling thread, and so does
/// the hashing while it is only a few small files.
pub fn scan_paths(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    paths: &[RelPath],
) -> Result<ScanSummary, ScanError> {
    let rules = IgnoreRules::load(root)?;
    let scopes: Vec<Option<RelPath>> = minimal(paths)
        .into_iter()
        .filter(|p| {
            !(rules.is_ignored_with_parents(p, true) || rules.is_ignored_with_parents(p, false))
        })
        .map(Some)
        .collect();
    let mut summary = if scopes.is_empty() {
        ScanSummary::default()
    } else {
        scan_scopes(root, index, opts, &rules, scopes, true)?
    };
    summary.bad_patterns = rules.bad_patterns().to_vec();
    Ok(summary)
}

/// Sorted, deduplicated, without paths below another path in the list.
fn minimal(paths: &[RelPath]) -> Vec<RelPath> {
    let mut v = paths.to_vec();
    v.sort();
    v.dedup();
    let mut out: Vec<RelPath> = Vec::with_capacity(v.len());
    for p in v {
        if !out.iter().any(|q| p.starts_with(q)) {
            out.push(p);
        }
    }
    out
}

/// One pass over `scopes` (`None`: the whole folder; never overlapping), then
/// the deletions in each.
fn scan_scopes(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    rules: &IgnoreRules,
    scopes: Vec<Option<RelPath>>,
    walk_here: bool,
) -> Result<ScanSummary, ScanError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ScanError::Root {
                path: root.to_path_buf(),
                source: std::io::Error::other("not a directory"),
            });
        }
        Err(source) => {
            return Err(ScanError::Root {
                path: root.to_path_buf(),
                source,
            });
        }
    }
    index.clear_seen()?;
    let author = Author {
        peer: opts.peer,
        signer: opts.signer.clone(),
    };
    let mut run = Run {
        opts,
        author: author.clone(),
        summary: ScanSummary::default(),
        protected: Vec::new(),
        ops: 0,
    };
    let settings = Settings {
        author,
        chunking: opts.chunking,
        retries: opts.retries,
        #[cfg(test)]
        hook: opts.hook.clone(),
        #[cfg(not(test))]
        hook: None,
    };
    std::thread::scope(|s| -> Result<(), ScanError> {
        let mut hashers = Hashers::new(s, &settings, opts);
        if walk_here {
            let mut walker = Walker::new(root, scopes.clone(), rules);
            return run.pipeline(
                index,
                std::iter::from_fn(|| walker.next_chunk()),
                &mut hashers,
            );
        }
        let (walk_tx, walk_rx) = mpsc::sync_channel::<Vec<Walked>>(WALK_QUEUE);
        let scopes_w = scopes.clone();
        let walker = s.spawn(move || walk::walk(root, &scopes_w, rules, &walk_tx));
        // The receiver is dropped when the pipeline returns, early or not, which
        // stops the walker; dropping `hashers` stops the hashing threads.
        let result = run.pipeline(index, walk_rx.into_iter(), &mut hashers);
        drop(hashers);
        if walker.join().is_err() {
            return Err(ScanError::Thread("walker panicked"));
        }
        result
    })?;
    for scope in &scopes {
        run.deletions(index, rules, scope.as_ref())?;
    }
    Ok(run.summary)
}

/// Where hash jobs go: the calling thread while the work is small, then a pool
/// of threads (started on first need), in batches.
struct Hashers<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    settings: &'env Settings,
    threads: usize,
    /// Big files hashed at once (see `hasher::BigSlots`).
    big_slots: usize,
    pool: Option<Pool>,
    /// Hashed on the calling thread so far.
    inline_files: usize,
    inline_bytes: u64,
    /// Chunk window for hashing on the calling thread.
    buf: Vec<u8>,
    /// The batch being filled.
    batcher: Batcher,
}

/// The hashing threads' channels.
struct Pool {
    jobs: mpsc::SyncSender<Batch>,
    done: mpsc::Receiver<Vec<Done>>,
    /// Batches sent whose results have not come back.
    in_flight: usize,
    /// The threads beyond one per core, started with the first batch of small
    /// files: a scan of big files only does not need them.
    rest: Option<Rest>,
}

/// What starting the remaining hashing threads takes.
struct Rest {
    n: usize,
    jobs: Arc<Mutex<mpsc::Receiver<Batch>>>,
    done: mpsc::Sender<Vec<Done>>,
    big: Arc<BigSlots>,
}

impl<'scope, 'env> Hashers<'scope, 'env> {
    fn new(
        scope: &'scope Scope<'scope, 'env>,
        settings: &'env Settings,
        opts: &ScanOptions,
    ) -> Self {
        Self {
            scope,
            settings,
            threads: opts.threads(),
            big_slots: opts.cores().min(opts.threads()),
            pool: None,
            inline_files: 0,
            inline_bytes: 0,
            buf: Vec::new(),
            batcher: Batcher::default(),
        }
    }

    fn pool(&mut self) -> &mut Pool {
        let (scope, settings, threads, big_slots) =
            (self.scope, self.settings, self.threads, self.big_slots);
        self.pool.get_or_insert_with(|| {
            // One batch queued per thread besides the one each is hashing: at
            // most `2 × threads` batches of at most `BATCH_FILES` files (or one
            // big file) are in flight, plus their results.
            let (job_tx, job_rx) = mpsc::sync_channel::<Batch>(threads);
            let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let big = Arc::new(BigSlots::new(big_slots));
            // One thread per big-file slot first (`big_slots` is 1 to `threads`).
            for _ in 0..big_slots {
                let (jobs, done, big) = (Arc::clone(&job_rx), done_tx.clone(), Arc::clone(&big));
                scope.spawn(move || hasher::work(&jobs, &done, settings, &big));
            }
            let rest = (threads > big_slots).then(|| Rest {
                n: threads - big_slots,
                jobs: job_rx,
                done: done_tx,
                big,
            });
            Pool {
                jobs: job_tx,
                done: done_rx,
                in_flight: 0,
                rest,
            }
        })
    }

    /// Starts the hashing threads beyond one per core, once.
    fn start_rest(&mut self) {
        let (scope, settings) = (self.scope, self.settings);
        if let Some(Rest { n, jobs, done, big }) = self.pool.as_mut().and_then(|p| p.rest.take()) {
            for _ in 0..n {
                let (jobs, done, big) = (Arc::clone(&jobs), done.clone(), Arc::clone(&big));
                scope.spawn(move || hasher::work(&jobs, &done, settings, &big));
            }
        }
    }
}

struct Run<'o> {
    opts: &'o ScanOptions,
    author: Author,
    summary: ScanSummary,
    /// Directories that could not be listed: nothing below is deleted.
    protected: Vec<Option<RelPath>>,
    ops: usize,
}

impl Run<'_> {
    fn pipeline(
        &mut self,
        index: &mut Index,
        walked: impl Iterator<Item = Vec<Walked>>,
        h: &mut Hashers<'_, '_>,
    ) -> Result<(), ScanError> {
        let mut w = index.write()?;
        for chunk in walked {
            for item in chunk {
                if let Some(job) = self.on_walked(&mut w, item)? {
                    self.queue(&mut w, h, job)?;
                }
            }
            // End of a walked chunk: hand over what is pending rather than keep
            // the hashers idle while the walker lists the next directory.
            self.flush(&mut w, h)?;
            if let Some(pool) = &mut h.pool {
                while let Ok(d) = pool.done.try_recv() {
                    pool.in_flight -= 1;
                    self.on_results(&mut w, d)?;
                }
            }
            if self.ops >= self.opts.batch {
                w.commit()?;
                w = index.write()?;
                self.ops = 0;
            }
        }
        if let Some(Pool {
            jobs,
            done,
            mut in_flight,
            rest,
        }) = h.pool.take()
        {
            // No sender of results but the threads: if they all stop, `recv`
            // says so instead of waiting forever.
            drop(rest);
            drop(jobs);
            while in_flight > 0 {
                let d = done
                    .recv()
                    .map_err(|_| ScanError::Thread("hasher stopped"))?;
                in_flight -= 1;
                self.on_results(&mut w, d)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Adds `job` to the pending batch, sending the batch when it is full. A big
    /// file goes in a batch of its own.
    fn queue(
        &mut self,
        w: &mut Writer<'_>,
        h: &mut Hashers<'_, '_>,
        job: Job,
    ) -> Result<(), ScanError> {
        for (batch, bytes) in h.batcher.push(job).into_iter().flatten() {
            self.dispatch(w, h, batch, bytes)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut Writer<'_>, h: &mut Hashers<'_, '_>) -> Result<(), ScanError> {
        match h.batcher.take() {
            Some((batch, bytes)) => self.dispatch(w, h, batch, bytes),
            None => Ok(()),
        }
    }

    /// Hashes `batch` here while the scan's work so far is small, else sends it to
    /// the hashing threads.
    fn dispatch(
        &mut self,
        w: &mut Writer<'_>,
        h: &mut Hashers<'_, '_>,
        batch: Batch,
        bytes: u64,
    ) -> Result<(), ScanError> {
        if h.pool.is_none()
            && h.inline_files + batch.len() <= INLINE_FILES
            && h.inline_bytes + bytes <= INLINE_BYTES
        {
            h.inline_files += batch.len();
            h.inline_bytes += bytes;
            let results = hasher::hash_batch(batch, h.settings, &mut h.buf);
            return self.on_results(w, results);
        }
        h.pool();
        if !hasher::is_big(&batch) {
            h.start_rest();
        }
        let Some(pool) = h.pool.as_mut() else {
            return Err(ScanError::Thread("hashing threads not started"));
        };
        let mut batch = batch;
        loop {
            match pool.jobs.try_send(batch) {
                Ok(()) => {
                    pool.in_flight += 1;
                    return Ok(());
                }
                Err(TrySendError::Full(b)) => {
                    // Workers are busy: commit results while we wait.
                    batch = b;
                    let d = pool
                        .done
                        .recv()
                        .map_err(|_| ScanError::Thread("hasher stopped"))?;
                    pool.in_flight -= 1;
                    self.on_results(w, d)?;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(ScanError::Thread("hasher stopped"));
                }
            }
        }
    }

    fn on_results(&mut self, w: &mut Writer<'_>, results: Vec<Done>) -> Result<(), ScanError> {
        for d in results {
            self.on_done(w, d)?;
        }
        Ok(())
    }

    fn on_walked(&mut self, w: &mut Writer<'_>, item: Walked) -> Result<Option<Job>, ScanError> {
        match item {
            Walked::Found(f) => self.on_found(w, f),
            Walked::Skipped { path, reason, keep } => {
                self.summary.skip(path, reason);
                if let Some(k) = keep {
                    self.seen(w, &k)?;
                }
                Ok(None)
            }
            Walked::Unlistable { dir, path, error } => {
                tracing::warn!(
                    dir = path,
                    error,
                    "cannot list directory; nothing below it is marked deleted"
                );
                self.summary.unlistable.push((path, error));
                self.protected.push(dir);
                Ok(None)
            }
            Walked::CaseCollision(a, b) => {
                self.summary.case_collision(a, b);
                Ok(None)
            }
        }
    }

    fn on_found(&mut self, w: &mut Writer<'_>, f: Found) -> Result<Option<Job>, ScanError> {
        if let Some(issue) = f.rel.windows_issue() {
            self.summary.flag_windows(&f.rel, issue);
        }
        // Only the columns compared with `lstat`; the whole record is read only for
        // what changed (most entries of a rescan are unchanged).
        let stored = w.stored_state(&f.rel)?;
        let live = stored.as_ref().filter(|s| !s.deleted);
        let local = Some(local_stat(&f.stat));
        match &f.kind {
            FoundKind::File => {
                self.summary.files += 1;
                self.summary.bytes += f.stat.size;
                if live.is_some_and(|s| s.kind == FileKind::File && s.local == local) {
                    if let Some(s) = live.filter(|s| s.mode == f.stat.mode) {
                        w.mark_seen_row(s.row);
                        return Ok(None);
                    }
                    // Only the permissions changed: no need to read the file.
                    let prev = w.get(&f.rel)?;
                    if let Some(p) = prev.as_ref().filter(|p| p.record.is_live_file()) {
                        let mut r = p.record.clone();
                        r.mode = f.stat.mode;
                        self.commit_new(w, r, prev.as_ref(), local)?;
                        return Ok(None);
                    }
                }
                // A path with no row (every file of a first scan) needs no
                // second lookup.
                let prev = match stored {
                    Some(_) => w.get(&f.rel)?,
                    None => None,
                };
                Ok(Some(Job {
                    prev,
                    rel: f.rel,
                    abs: f.abs,
                    stat: f.stat,
                }))
            }
            FoundKind::Directory => {
                self.summary.directories += 1;
                // Owner rwx on directories is not significant: receivers force it
                // on so they can always enter what they create (daemon `dir_mode`).
                let same_mode = |m: u32| m | 0o700 == f.stat.mode | 0o700;
                if let Some(s) = live.filter(|s| s.kind == FileKind::Directory && same_mode(s.mode))
                {
                    // A directory's mtime moves with every entry in it; not a change.
                    w.mark_seen_row(s.row);
                    return Ok(None);
                }
                let prev = w.get(&f.rel)?;
                let r = base_record(f.rel.clone(), FileKind::Directory, &f.stat);
                self.commit_new(w, r, prev.as_ref(), local)?;
                Ok(None)
            }
            FoundKind::Symlink(target) => {
                self.summary.symlinks += 1;
                let kind = FileKind::Symlink {
                    target: target.clone(),
                };
                if let Some(s) = live.filter(|s| s.kind == kind) {
                    w.mark_seen_row(s.row);
                    return Ok(None);
                }
                let prev = w.get(&f.rel)?;
                let mut r = base_record(f.rel.clone(), kind, &f.stat);
                r.mode = 0;
                self.commit_new(w, r, prev.as_ref(), local)?;
                Ok(None)
            }
        }
    }

    fn on_done(&mut self, w: &mut Writer<'_>, d: Done) -> Result<(), ScanError> {
        let Done { rel, outcome } = d;
        match outcome {
            Outcome::Hashed {
                len,
                retries,
                result,
            } => {
                self.summary.rehashed_files += 1;
                self.summary.rehashed_bytes += len;
                self.summary.retries += u64::from(retries);
                match result {
                    FileResult::Same(local) => {
                        w.set_local(&rel, Some(local))?;
                        self.ops += 1;
                        self.seen(w, &rel)
                    }
                    FileResult::New(v) => self.write_new(w, v),
                    FileResult::Invalid(reason) => {
                        self.summary.skip(rel.to_string(), reason);
                        self.seen(w, &rel)
                    }
                }
            }
            Outcome::Vanished => Ok(()),
            Outcome::Changing { retries } => {
                self.summary.retries += u64::from(retries);
                self.summary
                    .skip(rel.to_string(), SkipReason::ChangingTooFast);
                self.seen(w, &rel)
            }
            Outcome::Failed(e) => {
                self.summary
                    .skip(rel.to_string(), SkipReason::Unreadable(e));
                self.seen(w, &rel)
            }
        }
    }

    fn seen(&mut self, w: &mut Writer<'_>, rel: &RelPath) -> Result<(), ScanError> {
        w.mark_seen(rel)?;
        Ok(())
    }

    /// Writes `r` as this peer's new version of its path, after `prev`.
    fn commit_new(
        &mut self,
        w: &mut Writer<'_>,
        r: FileRecord,
        prev: Option<&Entry>,
        local: Option<LocalStat>,
    ) -> Result<(), ScanError> {
        let path = r.path.clone();
        match prepare::new_version(&self.author, r, prev, local) {
            Ok(v) => self.write_new(w, v),
            Err(reason) => {
                self.summary.skip(path.to_string(), reason);
                self.seen(w, &path)
            }
        }
    }

    /// Writes a new version built here or on a hashing thread.
    fn write_new(&mut self, w: &mut Writer<'_>, v: NewVersion) -> Result<(), ScanError> {
        match v.change {
            Change::Added => self.summary.added += 1,
            Change::Changed => self.summary.changed += 1,
            Change::Deleted => self.summary.deleted += 1,
        }
        tracing::debug!(path = %v.update.record().path, deleted = v.update.record().deleted, "recording local change");
        w.put_seen_checked(v.update)?;
        self.ops += 1;
        Ok(())
    }

    /// Tombstones for what the index has (and had on disk) but the walk did not find.
    fn deletions(
        &mut self,
        index: &mut Index,
        rules: &IgnoreRules,
        scope: Option<&RelPath>,
    ) -> Result<(), ScanError> {
        let mut after: Option<RelPath> = None;
        loop {
            let batch: Vec<Entry> = index
                .unseen_after(scope, after.as_ref(), DELETE_BATCH)
                .take(DELETE_BATCH)
                .collect::<Result<_, _>>()?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = Some(last.record.path.clone());
            let mut w = index.write()?;
            for e in batch {
                let path = &e.record.path;
                let protected = self
                    .protected
                    .iter()
                    .any(|d| d.as_ref().is_none_or(|d| path.starts_with(d)));
                // Never on disk here (a remote record not yet fetched), newly
                // ignored, or below a directory we could not read: not a deletion.
                if e.local.is_none()
                    || protected
                    || rules.is_ignored_with_parents(path, e.record.kind == FileKind::Directory)
                {
                    w.mark_seen(path)?;
                    continue;
                }
                let mut r = e.record.clone();
                r.deleted = true;
                r.size = 0;
                r.blocks = Vec::new();
                r.hash = [0; 32];
                self.commit_new(&mut w, r, Some(&e), None)?;
            }
            w.commit()?;
        }
    }
}
