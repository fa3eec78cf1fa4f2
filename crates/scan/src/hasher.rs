//! The read → chunk → hash stage, run on worker threads.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use index::Entry;
use record::RelPath;

use crate::chunk::{self, Chunking, hash_stream};
use crate::prepare::{self, Author, FileResult};
use crate::walk::Stat;

/// Called after each block read: (path, attempt, blocks so far). Tests use it to
/// rewrite a file while it is being hashed.
pub(crate) type Hook = Arc<dyn Fn(&RelPath, u32, usize) + Send + Sync>;

/// A file to hash, with the record it had (its new record is built from it).
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) rel: RelPath,
    pub(crate) abs: PathBuf,
    pub(crate) stat: Stat,
    pub(crate) prev: Option<Entry>,
}

/// How hashing a file ended.
#[derive(Debug)]
// The big variant is the common one (a new record); boxing it would only add
// an allocation per file.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// Hashed (`len` bytes) while its `stat` held from start to end; what to
    /// store is already decided (and signed).
    Hashed {
        len: u64,
        retries: u32,
        result: FileResult,
    },
    /// No longer a regular file (deleted, replaced by a directory …).
    Vanished,
    /// Kept changing through every attempt.
    Changing { retries: u32 },
    /// Could not be read.
    Failed(String),
}

#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) rel: RelPath,
    pub(crate) outcome: Outcome,
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) chunking: Chunking,
    pub(crate) retries: u32,
    pub(crate) author: Author,
    pub(crate) hook: Option<Hook>,
}

/// Files handed to a worker at once: one channel crossing (and one wake-up of a
/// sleeping thread) per batch instead of per file, which dominated small files.
pub(crate) type Batch = Vec<Job>;

/// At most this many files in one batch.
pub(crate) const BATCH_FILES: usize = 64;
/// A batch is sent once its files add up to this many bytes; a file this large
/// goes alone, so small files are not held up behind it.
pub(crate) const BATCH_BYTES: u64 = 512 * 1024;

/// Whether `batch` is one big file (at least [`BATCH_BYTES`]), which goes alone
/// and is hashed in a [`BigSlots`] slot.
pub(crate) fn is_big(batch: &[Job]) -> bool {
    matches!(batch, [job] if job.stat.size >= BATCH_BYTES)
}

/// Groups jobs into batches as they come: small files until [`BATCH_FILES`] or
/// [`BATCH_BYTES`], a big file ([`is_big`]) alone, after what was pending.
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    pending: Batch,
    bytes: u64,
}

impl Batcher {
    /// Adds `job`; returns the batches now ready (with their bytes), in order.
    pub(crate) fn push(&mut self, job: Job) -> [Option<(Batch, u64)>; 2] {
        if job.stat.size >= BATCH_BYTES {
            let bytes = job.stat.size;
            return [self.take(), Some((vec![job], bytes))];
        }
        self.bytes += job.stat.size;
        self.pending.push(job);
        let full = self.pending.len() >= BATCH_FILES || self.bytes >= BATCH_BYTES;
        [full.then(|| self.take()).flatten(), None]
    }

    /// The pending batch, if any.
    pub(crate) fn take(&mut self) -> Option<(Batch, u64)> {
        (!self.pending.is_empty()).then(|| {
            (
                std::mem::take(&mut self.pending),
                std::mem::take(&mut self.bytes),
            )
        })
    }
}

/// How many big files (a batch of their own) may be hashed at once: one per core,
/// each with a chunk window (up to 8 MiB) that belongs to the slot, not to the
/// thread. There are more hashing threads than cores, so that more reads of small
/// files wait on the disk at once; a big file keeps a core busy on its own, and a
/// window per thread would grow peak memory with the thread count.
#[derive(Debug)]
pub(crate) struct BigSlots {
    /// The windows of the free slots.
    free: Mutex<Vec<Vec<u8>>>,
    freed: Condvar,
}

impl BigSlots {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(vec![Vec::new(); n.max(1)]),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot; `None` only if the lock is poisoned (a hasher
    /// panicked), in which case the caller goes on without one.
    fn take(&self) -> Option<BigSlot<'_>> {
        let mut free = self.free.lock().ok()?;
        loop {
            if let Some(buf) = free.pop() {
                return Some(BigSlot { slots: self, buf });
            }
            free = self.freed.wait(free).ok()?;
        }
    }
}

struct BigSlot<'a> {
    slots: &'a BigSlots,
    buf: Vec<u8>,
}

impl Drop for BigSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut free) = self.slots.free.lock() {
            free.push(std::mem::take(&mut self.buf));
            self.slots.freed.notify_one();
        }
    }
}

/// Worker loop: takes batches until the channel closes and answers each with one
/// message of results, in the batch's order.
pub(crate) fn work(
    jobs: &Mutex<Receiver<Batch>>,
    done: &Sender<Vec<Done>>,
    settings: &Settings,
    big: &BigSlots,
) {
    // Chunk window, reused for every file this worker hashes.
    let mut buf = Vec::new();
    loop {
        let batch = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(batch) => batch,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let results = if is_big(&batch) {
            match big.take() {
                Some(mut slot) => hash_batch(batch, settings, &mut slot.buf),
                None => hash_batch(batch, settings, &mut Vec::new()),
            }
        } else {
            hash_batch(batch, settings, &mut buf)
        };
        if done.send(results).is_err() {
            return;
        }
    }
}

/// Hashes every file of `batch`; one file's failure is its own outcome and does
/// not stop the others.
pub(crate) fn hash_batch(batch: Batch, settings: &Settings, buf: &mut Vec<u8>) -> Vec<Done> {
    batch
        .into_iter()
        .map(|job| {
            let outcome = match hash_file(&job, settings, buf) {
                Hashed::Stable {
                    stat,
                    hashed,
                    retries,
                } => Outcome::Hashed {
                    len: hashed.len,
                    retries,
                    result: prepare::for_file(
                        &settings.author,
                        &job.rel,
                        &stat,
                        hashed,
                        job.prev.as_ref(),
                    ),
                },
                Hashed::Vanished => Outcome::Vanished,
                Hashed::Changing { retries } => Outcome::Changing { retries },
                Hashed::Failed(e) => Outcome::Failed(e),
            };
            Done {
                rel: job.rel,
                outcome,
            }
        })
        .collect()
}

fn lstat(path: &std::path::Path) -> Option<(Stat, bool)> {
    fs::symlink_metadata(path)
        .ok()
        .map(|m| (Stat::of(&m), m.is_file()))
}

/// How reading a file ended (before deciding its record).
enum Hashed {
    Stable {
        stat: Stat,
        hashed: chunk::Hashed,
        retries: u32,
    },
    Vanished,
    Changing {
        retries: u32,
    },
    Failed(String),
}

fn hash_file(job: &Job, settings: &Settings, buf: &mut Vec<u8>) -> Hashed {
    let mut before = job.stat;
    let mut retries = 0;
    for attempt in 0..=settings.retries {
        if attempt > 0 {
            // Start over from what is there now.
            match lstat(&job.abs) {
                Some((s, true)) => before = s,
                _ => return Hashed::Vanished,
            }
        }
        let file = match File::open(&job.abs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Hashed::Vanished,
            Err(e) => return Hashed::Failed(e.to_string()),
        };
        // The file we opened must be the one we stat'ed (not a swapped-in link).
        let opened = match file.metadata() {
            Ok(m) if m.is_file() => Stat::of(&m),
            Ok(_) => return Hashed::Vanished,
            Err(e) => return Hashed::Failed(e.to_string()),
        };
        if !opened.same_content_stat(&before) {
            retries += 1;
            continue;
        }
        let params = settings.chunking.params_for(before.size);
        let hook = settings.hook.clone();
        let hashed = match hash_stream(&file, params, buf, |n| {
            if let Some(h) = &hook {
                h(&job.rel, attempt, n);
            }
        }) {
            Ok(h) => h,
            Err(e) => return Hashed::Failed(e.to_string()),
        };
        let after_fd = file.metadata().map(|m| Stat::of(&m)).ok();
        let after_path = lstat(&job.abs).map(|(s, _)| s);
        let stable = hashed.len == before.size
            && after_fd.is_some_and(|s| s.same_content_stat(&before))
            && after_path.is_some_and(|s| s.same_content_stat(&before));
        if stable {
            // Mode may have changed meanwhile; take the latest.
            let stat = after_path.unwrap_or(before);
            return Hashed::Stable {
                stat,
                hashed,
                retries,
            };
        }
        tracing::debug!(path = %job.rel, attempt, "file changed while being hashed; retrying");
        retries += 1;
    }
    Hashed::Changing { retries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn batches_hold_small_files_up_to_a_limit_and_a_big_file_alone() {
        let job = |i: usize, size: u64| Job {
            rel: RelPath::new(format!("f{i}")).unwrap(),
            abs: PathBuf::from(format!("/nowhere/f{i}")),
            stat: Stat {
                size,
                modified: record::Timestamp::default(),
                mode: 0o644,
                inode: 0,
            },
            prev: None,
        };
        let sizes = |b: &Batch| b.iter().map(|j| j.stat.size).collect::<Vec<_>>();
        let mut b = Batcher::default();
        let mut out = Vec::new();
        // Full by count, then by bytes, then a big file after two small ones.
        let mut jobs: Vec<u64> = vec![10; BATCH_FILES];
        jobs.extend([BATCH_BYTES / 2, BATCH_BYTES / 2, 7, 8, BATCH_BYTES, 9]);
        for (i, size) in jobs.into_iter().enumerate() {
            for (batch, bytes) in b.push(job(i, size)).into_iter().flatten() {
                assert_eq!(bytes, sizes(&batch).iter().sum::<u64>());
                out.push(sizes(&batch));
            }
        }
        out.extend(b.take().map(|(batch, _)| sizes(&batch)));
        assert!(b.take().is_none());
        assert_eq!(
            out,
            [
                vec![10; BATCH_FILES],
                vec![BATCH_BYTES / 2, BATCH_BYTES / 2],
                vec![7, 8],
                vec![BATCH_BYTES],
                vec![9],
            ]
        );
        assert!(is_big(&[job(0, BATCH_BYTES)]) && !is_big(&[job(0, BATCH_BYTES - 1)]));
    }

    #[test]
    fn big_slots_bound_how_many_hold_one_at_once() {
        let slots = BigSlots::new(2);
        let (now, max) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let slot = slots.take();
                        assert!(slot.is_some());
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        now.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                });
            }
        });
        assert_eq!(max.load(Ordering::SeqCst), 2);
        assert_eq!(slots.free.lock().unwrap().len(), 2, "every slot came back");
    }
}
