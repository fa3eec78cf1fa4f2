//! The scan pipeline: walk (one thread) → read/chunk/hash (worker threads) →
//! compare and commit (the calling thread, which owns the index).
//!
//! Channels between the stages are bounded, so memory does not grow with the
//! number of files: at most a few hundred walked entries and two jobs per hashing
//! thread are in flight.

use std::path::Path;
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};

use index::{Entry, Index, LocalStat, RowId, Update, Writer};
use record::{FileKind, FileRecord, MAX_BLOCKS, RelPath, SignedRecord};

use crate::hasher::{self, BATCH_BYTES, BATCH_FILES, Batch, Done, Job, Outcome, Settings};
use crate::rules::IgnoreRules;
use crate::summary::{ScanSummary, SkipReason};
use crate::walk::{self, Found, FoundKind, Stat, Walked};
use crate::{ScanError, ScanOptions};

/// Chunks of walked entries (each up to `walk::WALK_CHUNK`) buffered between the
/// walker and the committer.
const WALK_QUEUE: usize = 4;
/// Unseen index entries handled per transaction in the deletion pass.
const DELETE_BATCH: usize = 256;

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
    let mut summary = scan_scope(root, index, opts, &rules, None)?;
    summary.bad_patterns = rules.bad_patterns().to_vec();
    Ok(summary)
}

/// Scans only `paths` (each with everything below it), e.g. what a watcher saw
/// change. A path that no longer exists is marked deleted with what was below it.
pub fn scan_paths(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    paths: &[RelPath],
) -> Result<ScanSummary, ScanError> {
    let rules = IgnoreRules::load(root)?;
    let mut summary = ScanSummary::default();
    for p in minimal(paths) {
        if rules.is_ignored_with_parents(&p, true) || rules.is_ignored_with_parents(&p, false) {
            continue;
        }
        summary.absorb(scan_scope(root, index, opts, &rules, Some(&p))?);
    }
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

fn scan_scope(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    rules: &IgnoreRules,
    scope: Option<&RelPath>,
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
    let mut run = Run {
        opts,
        summary: ScanSummary::default(),
        protected: Vec::new(),
        ops: 0,
    };
    let threads = opts.threads();
    let settings = Settings {
        chunking: opts.chunking,
        retries: opts.retries,
        #[cfg(test)]
        hook: opts.hook.clone(),
        #[cfg(not(test))]
        hook: None,
    };
    std::thread::scope(|s| -> Result<(), ScanError> {
        let (walk_tx, walk_rx) = mpsc::sync_channel::<Vec<Walked>>(WALK_QUEUE);
        // One batch queued per thread besides the one each is hashing: at most
        // `2 × threads` batches of at most `BATCH_FILES` files (or one big file)
        // are in flight, plus their results.
        let (job_tx, job_rx) = mpsc::sync_channel::<Batch>(threads);
        let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let rules_w = rules.clone();
        let scope_w = scope.cloned();
        let walker = s.spawn(move || walk::walk(root, scope_w.as_ref(), &rules_w, &walk_tx));
        for _ in 0..threads {
            let (jobs, done, settings) = (Arc::clone(&job_rx), done_tx.clone(), settings.clone());
            s.spawn(move || hasher::work(&jobs, &done, &settings));
        }
        drop(done_tx);
        // Dropping the channels on any early return stops the other threads.
        let result = run.pipeline(index, &walk_rx, job_tx, &done_rx);
        drop(walk_rx);
        drop(done_rx);
        if walker.join().is_err() {
            return Err(ScanError::Thread("walker panicked"));
        }
        result
    })?;
    run.deletions(index, rules, scope)?;
    Ok(run.summary)
}

/// The job side of the pipeline: batches sent to the hashers, and the batch
/// being filled.
struct Queue<'a> {
    jobs: mpsc::SyncSender<Batch>,
    done: &'a mpsc::Receiver<Vec<Done>>,
    /// Batches sent whose results have not come back.
    in_flight: usize,
    pending: Batch,
    pending_bytes: u64,
}

struct Run<'o> {
    opts: &'o ScanOptions,
    summary: ScanSummary,
    /// Directories that could not be listed: nothing below is deleted.
    protected: Vec<Option<RelPath>>,
    ops: usize,
}

impl Run<'_> {
    fn pipeline(
        &mut self,
        index: &mut Index,
        walked: &mpsc::Receiver<Vec<Walked>>,
        jobs: mpsc::SyncSender<Batch>,
        done: &mpsc::Receiver<Vec<Done>>,
    ) -> Result<(), ScanError> {
        let mut w = index.write()?;
        let mut q = Queue {
            jobs,
            done,
            in_flight: 0,
            pending: Vec::new(),
            pending_bytes: 0,
        };
        for chunk in walked.iter() {
            for item in chunk {
                if let Some(job) = self.on_walked(&mut w, item)? {
                    self.queue(&mut w, &mut q, job)?;
                }
            }
            // End of a walked chunk: hand over what is pending rather than keep
            // the hashers idle while the walker lists the next directory.
            self.flush(&mut w, &mut q)?;
            while let Ok(d) = q.done.try_recv() {
                q.in_flight -= 1;
                self.on_results(&mut w, d)?;
            }
            if self.ops >= self.opts.batch {
                w.commit()?;
                w = index.write()?;
                self.ops = 0;
            }
        }
        let Queue {
            jobs,
            done,
            mut in_flight,
            ..
        } = q;
        drop(jobs);
        while in_flight > 0 {
            let d = done
                .recv()
                .map_err(|_| ScanError::Thread("hasher stopped"))?;
            in_flight -= 1;
            self.on_results(&mut w, d)?;
        }
        w.commit()?;
        Ok(())
    }

    /// Adds `job` to the pending batch, sending the batch when it is full. A big
    /// file goes in a batch of its own.
    fn queue(&mut self, w: &mut Writer<'_>, q: &mut Queue<'_>, job: Job) -> Result<(), ScanError> {
        if job.stat.size >= BATCH_BYTES {
            self.flush(w, q)?;
            return self.send(w, q, vec![job]);
        }
        q.pending_bytes += job.stat.size;
        q.pending.push(job);
        if q.pending.len() >= BATCH_FILES || q.pending_bytes >= BATCH_BYTES {
            self.flush(w, q)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut Writer<'_>, q: &mut Queue<'_>) -> Result<(), ScanError> {
        if q.pending.is_empty() {
            return Ok(());
        }
        q.pending_bytes = 0;
        let batch = std::mem::take(&mut q.pending);
        self.send(w, q, batch)
    }

    fn send(
        &mut self,
        w: &mut Writer<'_>,
        q: &mut Queue<'_>,
        batch: Batch,
    ) -> Result<(), ScanError> {
        let mut batch = batch;
        loop {
            match q.jobs.try_send(batch) {
                Ok(()) => {
                    q.in_flight += 1;
                    return Ok(());
                }
                Err(TrySendError::Full(b)) => {
                    // Workers are busy: commit results while we wait.
                    batch = b;
                    let d = q
                        .done
                        .recv()
                        .map_err(|_| ScanError::Thread("hasher stopped"))?;
                    q.in_flight -= 1;
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
                        self.seen_row(w, s.row);
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
                Ok(Some(Job {
                    prev: w.get(&f.rel)?,
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
                    self.seen_row(w, s.row);
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
                    self.seen_row(w, s.row);
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
        let Done { job, outcome } = d;
        match outcome {
            Outcome::Done {
                stat,
                hashed,
                retries,
            } => {
                self.summary.rehashed_files += 1;
                self.summary.rehashed_bytes += hashed.len;
                self.summary.retries += u64::from(retries);
                let local = Some(local_stat(&stat));
                let same = job.prev.as_ref().is_some_and(|p| {
                    p.record.is_live_file()
                        && p.record.hash == hashed.hash
                        && p.record.blocks == hashed.blocks
                        && p.record.mode == stat.mode
                        && p.record.modified == stat.modified
                });
                if same {
                    // Same content, mode and mtime (a new inode, or a file the engine
                    // wrote): remember the disk state, no new version.
                    w.set_local(&job.rel, local)?;
                    self.ops += 1;
                    return self.seen(w, &job.rel);
                }
                if hashed.blocks.len() > MAX_BLOCKS {
                    self.summary.skip(
                        job.rel.to_string(),
                        SkipReason::InvalidRecord(record::RecordError::TooLong {
                            field: "block list",
                            len: hashed.blocks.len(),
                            max: MAX_BLOCKS,
                        }),
                    );
                    return self.seen(w, &job.rel);
                }
                let mut r = base_record(job.rel.clone(), FileKind::File, &stat);
                r.size = hashed.len;
                r.blocks = hashed.blocks;
                r.hash = hashed.hash;
                self.commit_new(w, r, job.prev.as_ref(), local)
            }
            Outcome::Vanished => Ok(()),
            Outcome::Changing { retries } => {
                self.summary.retries += u64::from(retries);
                self.summary
                    .skip(job.rel.to_string(), SkipReason::ChangingTooFast);
                self.seen(w, &job.rel)
            }
            Outcome::Failed(e) => {
                self.summary
                    .skip(job.rel.to_string(), SkipReason::Unreadable(e));
                self.seen(w, &job.rel)
            }
        }
    }

    fn seen(&mut self, w: &mut Writer<'_>, rel: &RelPath) -> Result<(), ScanError> {
        w.mark_seen(rel)?;
        Ok(())
    }

    /// An unchanged entry: a mark in memory, nothing written.
    fn seen_row(&mut self, w: &mut Writer<'_>, row: RowId) {
        w.mark_seen_row(row);
    }

    /// Writes `r` as this peer's new version of its path, after `prev`.
    fn commit_new(
        &mut self,
        w: &mut Writer<'_>,
        mut r: FileRecord,
        prev: Option<&Entry>,
        local: Option<LocalStat>,
    ) -> Result<(), ScanError> {
        r.version = prev
            .map(|p| p.record.version.clone())
            .unwrap_or_default()
            .incremented(self.opts.peer);
        let signed = match &self.opts.signer {
            Some(key) => match SignedRecord::sign(&r, key) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.summary
                        .skip(r.path.to_string(), SkipReason::InvalidRecord(e));
                    return self.seen(w, &r.path);
                }
            },
            None => {
                if let Err(e) = r.validate() {
                    self.summary
                        .skip(r.path.to_string(), SkipReason::InvalidRecord(e));
                    return self.seen(w, &r.path);
                }
                None
            }
        };
        let is_new = prev.is_none_or(|p| p.record.deleted);
        if r.deleted {
            self.summary.deleted += 1;
        } else if is_new {
            self.summary.added += 1;
        } else {
            self.summary.changed += 1;
        }
        tracing::debug!(path = %r.path, deleted = r.deleted, "recording local change");
        let local_only = signed.is_none();
        w.put_seen(Update {
            record: r,
            signed,
            local_only,
            local,
        })?;
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

fn local_stat(s: &Stat) -> LocalStat {
    LocalStat {
        size: s.size,
        modified: s.modified,
        inode: s.inode,
    }
}

/// A live record of `kind` with no content yet; the version is set on commit.
fn base_record(path: RelPath, kind: FileKind, stat: &Stat) -> FileRecord {
    let is_file = kind == FileKind::File;
    FileRecord {
        path,
        kind,
        size: 0,
        modified: stat.modified,
        mode: stat.mode,
        version: record::VersionVector::new(),
        deleted: false,
        blocks: Vec::new(),
        hash: if is_file { record::EMPTY_HASH } else { [0; 32] },
    }
}
