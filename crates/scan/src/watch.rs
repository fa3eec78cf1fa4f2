//! Watching the folder: file system events (notify, debounced) trigger scans of
//! just the changed paths; a periodic full scan catches anything events missed.
//! When the OS runs out of watches the watcher says so and falls back to periodic
//! full scans.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use index::Index;
use notify::{ErrorKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use record::{RelPath, STATE_DIR};

use crate::{ScanError, ScanOptions, ScanSummary, scan_once, scan_paths};

/// Watcher timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// How long events for a path are gathered before it is scanned.
    pub debounce: Duration,
    /// Full scans while events work (events can be lost; this is the safety net).
    pub full_rescan: Duration,
    /// Full scans when events are unavailable (watch limit reached, watcher died).
    pub fallback_rescan: Duration,
    /// More changed paths than this in one batch: do a full scan instead.
    pub max_paths: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(500),
            full_rescan: Duration::from_secs(3600),
            fallback_rescan: Duration::from_secs(60),
            max_paths: 1000,
        }
    }
}

/// What to tell a user whose watch limit ran out.
pub fn watch_limit_message(fallback: Duration) -> String {
    format!(
        "the OS limit on watched directories is reached (Linux: fs.inotify.max_user_watches); \
         raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (make it permanent in \
         /etc/sysctl.d/); until then changes are picked up by a full scan every {} s",
        fallback.as_secs()
    )
}

/// Whether a notify error is the watch limit.
pub fn is_watch_limit(e: &notify::Error) -> bool {
    matches!(e.kind, ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, ErrorKind::Io(io) if io.raw_os_error() == Some(28))
}

/// Scans `root` once, then keeps `index` up to date until `stop` receives a
/// message or its sender is dropped. `on_scan` sees the summary of every scan
/// (check [`ScanSummary::changed_anything`]). Blocks the calling thread, which
/// owns the index.
pub fn watch(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    wopts: &WatchOptions,
    stop: &Receiver<()>,
    mut on_scan: impl FnMut(&ScanSummary),
) -> Result<(), ScanError> {
    let root = std::fs::canonicalize(root).map_err(|source| ScanError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let mut report = |s: ScanSummary| {
        if s.changed_anything() {
            tracing::info!(
                added = s.added,
                changed = s.changed,
                deleted = s.deleted,
                "folder changed"
            );
        }
        on_scan(&s);
    };
    let (tx, events) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = match new_debouncer(wopts.debounce, None, tx) {
        Ok(d) => Some(d),
        Err(e) => {
            return Err(ScanError::Watch {
                path: root,
                source: e,
            });
        }
    };
    if let Some(d) = debouncer.as_mut()
        && let Err(e) = d.watch(&root, RecursiveMode::Recursive)
    {
        if is_watch_limit(&e) {
            tracing::warn!("{}", watch_limit_message(wopts.fallback_rescan));
            debouncer = None;
        } else {
            return Err(ScanError::Watch {
                path: root,
                source: e,
            });
        }
    }
    let watcher: Option<Box<dyn std::any::Any>> =
        debouncer.map(|d| Box::new(d) as Box<dyn std::any::Any>);
    run(
        &root,
        index,
        opts,
        wopts,
        stop,
        &events,
        watcher,
        &mut report,
    )
}

/// The watch loop proper, apart from setting up notify (tests feed it events).
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn run(
    root: &Path,
    index: &mut Index,
    opts: &ScanOptions,
    wopts: &WatchOptions,
    stop: &Receiver<()>,
    events: &Receiver<DebounceEventResult>,
    // Held to keep the OS watches alive; `None` once we fell back to polling.
    mut debouncer: Option<Box<dyn std::any::Any>>,
    report: &mut dyn FnMut(ScanSummary),
) -> Result<(), ScanError> {
    // Scan after the watch is set up, so nothing changed in between is missed.
    report(scan_once(root, index, opts)?);
    let mut next_full = Instant::now() + wopts.full_rescan;
    loop {
        if debouncer.is_none() {
            match stop.recv_timeout(wopts.fallback_rescan) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Err(RecvTimeoutError::Timeout) => report(scan_once(root, index, opts)?),
            }
            continue;
        }
        match stop.try_recv() {
            Ok(()) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(batch)) => {
                let mut full = false;
                let mut paths = Vec::new();
                for ev in &batch {
                    full |= ev.need_rescan();
                    for p in &ev.paths {
                        match relative(root, p) {
                            Rel::Path(r) => paths.push(r),
                            Rel::Root => full = true,
                            Rel::Outside => {}
                        }
                    }
                }
                if full || paths.len() > wopts.max_paths {
                    report(scan_once(root, index, opts)?);
                } else if !paths.is_empty() {
                    report(scan_paths(root, index, opts, &paths)?);
                }
            }
            Ok(Err(errors)) => {
                if errors.iter().any(is_watch_limit) {
                    tracing::warn!("{}", watch_limit_message(wopts.fallback_rescan));
                    debouncer = None;
                } else {
                    for e in &errors {
                        tracing::warn!(error = %e, "file watcher error; rescanning");
                    }
                }
                report(scan_once(root, index, opts)?);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                tracing::warn!(
                    "file watcher stopped; falling back to a full scan every {} s",
                    wopts.fallback_rescan.as_secs()
                );
                debouncer = None;
            }
        }
        if Instant::now() >= next_full {
            report(scan_once(root, index, opts)?);
            next_full = Instant::now() + wopts.full_rescan;
        }
    }
}

enum Rel {
    Path(RelPath),
    Root,
    Outside,
}

/// The folder-relative path of an event path; `.sync/` and undecodable names
/// are handled by scanning their parent (or ignored for the state directory).
fn relative(root: &Path, p: &Path) -> Rel {
    let Ok(rest) = p.strip_prefix(root) else {
        return Rel::Outside;
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in rest.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s),
            // A name we cannot record: scan its directory, which reports it.
            None => break,
        }
    }
    if parts
        .first()
        .is_some_and(|f| f.eq_ignore_ascii_case(STATE_DIR))
    {
        return Rel::Outside;
    }
    if parts.is_empty() {
        return Rel::Root;
    }
    match RelPath::new_normalized(&parts.join("/")) {
        Ok(r) => Rel::Path(r),
        Err(_) => match RelPath::new_normalized(
            &parts
                .get(..parts.len().saturating_sub(1))
                .unwrap_or(&[])
                .join("/"),
        ) {
            Ok(r) => Rel::Path(r),
            Err(_) => Rel::Root,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_limit_is_recognised_and_explained() {
        assert!(is_watch_limit(&notify::Error::new(
            ErrorKind::MaxFilesWatch
        )));
        assert!(is_watch_limit(&notify::Error::io(
            std::io::Error::from_raw_os_error(28)
        )));
        assert!(!is_watch_limit(&notify::Error::new(
            ErrorKind::PathNotFound
        )));
        let m = watch_limit_message(Duration::from_secs(60));
        assert!(m.contains("fs.inotify.max_user_watches") && m.contains("60 s"));
    }

    #[test]
    fn watch_limit_at_runtime_falls_back_to_periodic_scans() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let opts = ScanOptions::new(keys::ShortId(1), None);
        let wopts = WatchOptions {
            fallback_rescan: Duration::from_millis(20),
            ..WatchOptions::default()
        };
        let (event_tx, events) = mpsc::channel::<DebounceEventResult>();
        let (stop_tx, stop) = mpsc::channel::<()>();
        let (sum_tx, sums) = mpsc::channel::<ScanSummary>();
        // The OS says the limit is reached while we watch.
        event_tx
            .send(Err(vec![notify::Error::new(ErrorKind::MaxFilesWatch)]))
            .unwrap();
        let r = root.clone();
        let worker = std::thread::spawn(move || {
            let mut index = Index::open_in_memory().unwrap();
            let mut report = |s: ScanSummary| {
                let _ = sum_tx.send(s);
            };
            run(
                &r,
                &mut index,
                &opts,
                &wopts,
                &stop,
                &events,
                Some(Box::new(())),
                &mut report,
            )
            .unwrap();
            index
        });
        // Initial scan, then the full scan the error triggers.
        for _ in 0..2 {
            sums.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        // No events arrive any more; the periodic scan must find this.
        std::fs::write(root.join("late.txt"), b"x").unwrap();
        let mut added = 0;
        while added == 0 {
            added += sums
                .recv_timeout(Duration::from_secs(30))
                .expect("a fallback scan")
                .added;
        }
        stop_tx.send(()).unwrap();
        let index = worker.join().unwrap();
        assert!(
            index
                .get(&RelPath::new("late.txt").unwrap())
                .unwrap()
                .is_some()
        );
        drop(event_tx);
    }

    #[test]
    fn event_paths_map_to_folder_paths() {
        let root = Path::new("/f");
        assert!(matches!(relative(root, Path::new("/f/a/b")), Rel::Path(p) if p.as_str() == "a/b"));
        assert!(matches!(
            relative(root, Path::new("/f/.sync/index.db")),
            Rel::Outside
        ));
        assert!(matches!(relative(root, Path::new("/f")), Rel::Root));
        assert!(matches!(relative(root, Path::new("/g/x")), Rel::Outside));
    }
}
