//! Early writeback of large temporaries.
//!
//! A received file is made durable (fsync) before it is moved into place. Done
//! only then, the fsync of a 256 MiB file stalls the folder thread for the
//! whole file's trip to disk while the network sits idle. So every
//! [`EVERY`] bytes written to one temporary, a background thread fsyncs it:
//! the disk works while blocks still arrive, and the final fsync finds little
//! left to write. The final fsync is still what makes the file durable; this
//! is only a head start, and skipped whenever the thread is behind.
//!
//! (Linux's `sync_file_range` would only start the writeback, without waiting;
//! it needs `unsafe` or a crate that wraps it, and an fsync on another thread
//! gives the same overlap.)

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use record::RelPath;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Bytes written to one temporary between two early fsyncs.
pub(crate) const EVERY: u64 = 32 << 20;
/// Temporaries tracked at most; more are simply forgotten (small files never
/// reach [`EVERY`], and a forgotten one only misses its head start).
const MAX_TRACKED: usize = 4096;

/// Names a temporary: the file and the version (file hash) it collects.
type Temp = (RelPath, [u8; 32]);

/// The background fsync thread and how much each temporary has gained since
/// its last fsync.
pub(crate) struct Writeback {
    jobs: Option<SyncSender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
    unsynced: HashMap<Temp, u64>,
}

impl Writeback {
    /// Starts the thread; without one (the OS refused) writes are still made
    /// durable at the end, only later.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::sync_channel::<PathBuf>(4);
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for temp in rx {
                    // A temporary already moved into place or discarded is fine:
                    // nothing is left to do for it.
                    if let Ok(file) = open_for_sync(&temp) {
                        let _ = file.sync_data();
                    }
                }
            });
        match thread {
            Ok(thread) => Self {
                jobs: Some(tx),
                thread: Some(thread),
                unsynced: HashMap::new(),
            },
            Err(e) => {
                tracing::debug!(error = %e, "no writeback thread; files are flushed when complete");
                Self {
                    jobs: None,
                    thread: None,
                    unsynced: HashMap::new(),
                }
            }
        }
    }

    /// `bytes` were written to the temporary of version `hash` of `path`;
    /// `locate` gives its place on disk, asked for only when an fsync is due
    /// (finding it checks every parent directory for links).
    pub(crate) fn wrote(
        &mut self,
        path: &RelPath,
        hash: &[u8; 32],
        bytes: u64,
        locate: impl FnOnce() -> Option<PathBuf>,
    ) {
        let Some(jobs) = &self.jobs else {
            return;
        };
        let key = (path.clone(), *hash);
        if !self.unsynced.contains_key(&key) && self.unsynced.len() >= MAX_TRACKED {
            self.unsynced.clear();
        }
        let unsynced = self.unsynced.entry(key).or_insert(0);
        *unsynced += bytes;
        if *unsynced < EVERY {
            return;
        }
        *unsynced = 0;
        let Some(temp) = locate() else {
            return;
        };
        match jobs.try_send(temp) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.jobs = None,
        }
    }

    /// The temporary of version `hash` of `path` is complete (or given up): no
    /// more early fsyncs for it.
    pub(crate) fn forget(&mut self, path: &RelPath, hash: &[u8; 32]) {
        self.unsynced.remove(&(path.clone(), *hash));
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read-only is enough to fsync on Linux; the last component is not followed.
fn open_for_sync(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(crate::disk::no_follow())
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn counts_per_temporary_and_survives_vanished_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, gone) = (tmp.path().join("a"), tmp.path().join("gone"));
        std::fs::write(&a, b"data").unwrap();
        let (ra, rgone, v) = (rel("a"), rel("gone"), [1; 32]);
        let mut wb = Writeback::start();
        let mut located = 0;
        wb.wrote(&ra, &v, EVERY - 1, || {
            located += 1;
            Some(a.clone())
        });
        assert_eq!(located, 0, "located only when an fsync is due");
        assert_eq!(wb.unsynced.get(&(ra.clone(), v)), Some(&(EVERY - 1)));
        wb.wrote(&ra, &v, 1, || {
            located += 1;
            Some(a.clone())
        });
        assert_eq!(located, 1);
        assert_eq!(
            wb.unsynced.get(&(ra.clone(), v)),
            Some(&0),
            "reset once handed over"
        );
        // Another version of the same file is another temporary.
        wb.wrote(&ra, &[2; 32], 1, || None);
        assert_eq!(wb.unsynced.get(&(ra.clone(), v)), Some(&0));
        // A temporary that no longer exists costs nothing but a failed open.
        wb.wrote(&rgone, &v, EVERY, || Some(gone.clone()));
        wb.forget(&ra, &v);
        assert!(!wb.unsynced.contains_key(&(ra, v)));
        drop(wb); // joins the thread
    }

    #[test]
    fn tracking_is_bounded() {
        let mut wb = Writeback::start();
        for i in 0..MAX_TRACKED + 10 {
            wb.wrote(&rel(&format!("f{i}")), &[0; 32], 1, || None);
        }
        assert!(wb.unsynced.len() <= MAX_TRACKED);
    }
}
