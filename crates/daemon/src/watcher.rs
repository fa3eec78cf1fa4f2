//! File system events into the folder task's queue, as
//! `FolderEvent::LocalChange(paths)` or `FolderEvent::Rescan`; the periodic
//! full scan of `run` is the safety net.
//!
//! notify's callback (its own thread) maps each event to folder paths and a
//! [`debounce::Change`], dropping what never needs a scan: reads and opens
//! (ours, when serving blocks and hashing), `.sync/` (not even watched, where
//! the backend allows: our temporaries are there), other temporaries of ours. A
//! thread of ours feeds them to a [`debounce::Debouncer`], which decides when
//! each path is due (the rule is in its docs). On Linux, where inotify reports
//! close-after-write: a file closed after writing, renamed or removed goes
//! after a 30 ms gather (a burst is one batch; at most 100 ms while other files
//! keep changing); a file still open for writing, or rewritten right after it
//! went, once it has been quiet for 1 s, and at the latest 10 s after its first
//! event (a log appended to forever). Without close events (macOS, Windows)
//! the quiet is 300 ms, the debounce this watcher always had.
//!
//! Memory is bounded: the callback's queue to our thread holds
//! [`QUEUE`] events (when full, events are dropped for a rescan), and the
//! debouncer tracks at most [`debounce::Config::max_paths`] paths (more make
//! a rescan).

mod debounce;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use record::{RelPath, STATE_DIR};
use tokio::sync::mpsc;

use crate::folder::FolderEvent;
use debounce::{Change, Config, Debouncer, Due};

/// Events queued between notify's callback and our thread; as many as Linux
/// queues by default (`fs.inotify.max_queued_events`), so a full queue means a
/// storm the kernel would have dropped too.
const QUEUE: usize = 16_384;

/// The running watcher; dropping it stops it.
pub(crate) struct Watcher {
    // Dropping it drops notify's callback, whose sender ending stops our
    // thread.
    _notify: RecommendedWatcher,
    stopping: Arc<AtomicBool>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// What notify's callback hands our thread.
#[derive(Debug)]
enum Input {
    Change(Instant, RelPath, Change),
    Rescan(Instant),
}

/// Watches `root`, sending changed paths (or a rescan) to `events`. `None` when
/// the OS refuses (e.g. out of inotify watches): the caller falls back to
/// periodic full scans, and the user is told how to fix it.
pub(crate) fn start(
    root: &Path,
    events: mpsc::Sender<FolderEvent>,
    fallback: Duration,
) -> Option<Watcher> {
    let (tx, inputs) = queue();
    let overflow = Arc::new(AtomicBool::new(false));
    let handler = callback(root.to_path_buf(), tx, Arc::clone(&overflow), fallback);
    let cannot = |e: &dyn fmt::Display| {
        tracing::warn!(error = %e, "cannot watch the folder; scanning it every {} s", fallback.as_secs());
    };
    let mut notify = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            cannot(&e);
            return None;
        }
    };
    if let Err(e) = notify.watch(root, RecursiveMode::Recursive) {
        if scan::is_watch_limit(&e) {
            tracing::warn!("{}", scan::watch_limit_message(fallback));
        } else {
            cannot(&e);
        }
        return None;
    }
    // Nothing under `.sync/` is ever reported (see `relative`), and the index's
    // writes and every received file's temporary are there: unwatched, they cost
    // the kernel and notify's thread nothing. (Where a backend watches a tree as
    // one, there is no watch to remove; its events are dropped as before.)
    let _ = notify.unwatch(&root.join(STATE_DIR));
    let stopping = Arc::new(AtomicBool::new(false));
    let thread_stopping = Arc::clone(&stopping);
    let spawned = std::thread::Builder::new()
        .name("swarmsync-watch".into())
        .spawn(move || {
            let debouncer = Debouncer::new(Config::for_platform());
            pump(debouncer, &inputs, &overflow, &events, &thread_stopping);
        });
    if let Err(e) = spawned {
        cannot(&e);
        return None;
    }
    Some(Watcher {
        _notify: notify,
        stopping,
    })
}

/// A queue of at most [`QUEUE`] inputs from notify's callback to our thread.
/// Unlike a `sync_channel`, which allocates and touches every slot up front
/// (~0.9 MB in every peer, idle or not), it holds memory only for what is queued.
fn queue() -> (Queue, Inputs) {
    let (tx, rx) = std::sync::mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let inputs = Inputs {
        rx,
        queued: Arc::clone(&queued),
    };
    (Queue { tx, queued }, inputs)
}

/// The callback's end of [`queue`].
struct Queue {
    tx: Sender<Input>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    /// False when the queue is full or our thread is gone.
    fn try_send(&self, input: Input) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.tx.send(input).is_ok()
    }
}

/// Our thread's end of [`queue`].
struct Inputs {
    rx: Receiver<Input>,
    queued: Arc<AtomicUsize>,
}

impl Inputs {
    /// The next input, waiting until `until` (or for ever).
    fn recv(&self, until: Option<Instant>) -> Result<Input, RecvTimeoutError> {
        let got = match until {
            Some(at) => self
                .rx
                .recv_timeout(at.saturating_duration_since(Instant::now())),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        if got.is_ok() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        got
    }

    /// The next input already queued, if any.
    fn try_recv(&self) -> Option<Input> {
        let input = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Some(input)
    }
}

/// notify's callback: events to [`Input`]s, without blocking notify's thread.
fn callback(
    root: PathBuf,
    tx: Queue,
    overflow: Arc<AtomicBool>,
    fallback: Duration,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    let mut limit_told = false;
    move |result| {
        let now = Instant::now();
        let send = |input| {
            // Full: what is dropped is covered by a rescan. Disconnected: we stop.
            if !tx.try_send(input) {
                overflow.store(true, Ordering::Relaxed);
            }
        };
        let event = match result {
            Ok(event) => event,
            Err(e) => {
                if !scan::is_watch_limit(&e) {
                    tracing::warn!(error = %e, "file watcher error; rescanning");
                } else if !limit_told {
                    limit_told = true;
                    tracing::warn!("{}", scan::watch_limit_message(fallback));
                }
                send(Input::Rescan(now));
                return;
            }
        };
        if event.need_rescan() {
            send(Input::Rescan(now));
        }
        let Some(change) = classify(&event.kind) else {
            return;
        };
        for path in &event.paths {
            match relative(&root, path) {
                // Our own temporaries come and go with every transfer.
                Some(Some(rel)) if record::is_temp_name(rel.file_name()) => {}
                Some(Some(rel)) => send(Input::Change(now, rel, change)),
                Some(None) => send(Input::Rescan(now)),
                None => {}
            }
        }
    }
}

/// Our thread: inputs into the debouncer, due batches to the folder task,
/// until notify's callback or the folder task's queue is gone.
fn pump(
    mut debouncer: Debouncer,
    inputs: &Inputs,
    overflow: &AtomicBool,
    events: &mpsc::Sender<FolderEvent>,
    stopping: &AtomicBool,
) {
    loop {
        while let Some(due) = debouncer.poll_due(Instant::now()) {
            let event = match due {
                Due::Paths(paths) => FolderEvent::LocalChange(paths),
                Due::Rescan => FolderEvent::Rescan,
            };
            // Blocks while the folder task is busy; meanwhile the queue above
            // fills and, past QUEUE, turns into a rescan.
            if events.blocking_send(event).is_err() {
                return;
            }
        }
        let received = inputs.recv(debouncer.poll_timeout());
        match received {
            Ok(first) => {
                let rest = std::iter::from_fn(|| inputs.try_recv());
                for input in std::iter::once(first).chain(rest) {
                    match input {
                        Input::Change(at, path, change) => {
                            debouncer.handle_change(at, path, change)
                        }
                        Input::Rescan(at) => debouncer.handle_rescan(at),
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if !stopping.load(Ordering::Relaxed) {
                    tracing::warn!(
                        "file watcher stopped; changes are picked up by the periodic full scan"
                    );
                }
                return;
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            debouncer.handle_rescan(Instant::now());
        }
    }
}

/// What an event says about its paths; `None` for what changes nothing (reads,
/// opens, closes without writing).
fn classify(kind: &EventKind) -> Option<Change> {
    Some(match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Change::Finished,
        EventKind::Access(_) => return None,
        EventKind::Create(CreateKind::Folder) => Change::Finished,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Change::Finished,
        EventKind::Modify(ModifyKind::Metadata(_)) => Change::Metadata,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            Change::Writing
        }
    })
}

/// `Some(Some(path))` for a path in the folder, `Some(None)` when the whole folder
/// should be scanned (the root itself, or a name we cannot record), `None` for
/// what we ignore (`.sync/`, outside the folder).
fn relative(root: &Path, path: &Path) -> Option<Option<RelPath>> {
    let rest = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for c in rest.components() {
        match c.as_os_str().to_str() {
            Some(name) => parts.push(name.to_owned()),
            // A name we cannot record: a scan reports it.
            None => return Some(None),
        }
    }
    if parts
        .first()
        .is_some_and(|f| f.eq_ignore_ascii_case(STATE_DIR))
    {
        return None;
    }
    if parts.is_empty() {
        return Some(None);
    }
    Some(RelPath::new_normalized(&parts.join("/")).ok())
}

#[cfg(test)]
mod tests;
