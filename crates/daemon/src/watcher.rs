//! File system events into the folder task's queue: changed paths are scanned
//! within about a second; the periodic full scan of `run` is the safety net.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use record::{RelPath, STATE_DIR};
use tokio::sync::mpsc;

use crate::folder::FolderEvent;

/// How long events for a path are gathered before it is scanned.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The running watcher; dropping it stops it.
pub(crate) type Watcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Watches `root`, sending changed paths (or a rescan) to `events`. `None` when
/// the OS refuses (e.g. out of inotify watches): the caller falls back to
/// periodic full scans, and the user is told how to fix it.
pub(crate) fn start(
    root: &Path,
    events: mpsc::Sender<FolderEvent>,
    fallback: Duration,
) -> Option<Watcher> {
    let root_owned: PathBuf = root.to_path_buf();
    let handler = move |result: DebounceEventResult| {
        let event = match result {
            Ok(batch) => {
                let mut paths = Vec::new();
                let mut rescan = false;
                // Reads (ours, when serving blocks) change nothing.
                for ev in batch.iter().filter(|ev| !ev.kind.is_access()) {
                    rescan |= ev.need_rescan();
                    for p in &ev.paths {
                        match relative(&root_owned, p) {
                            // Our own temporaries come and go with every transfer.
                            Some(Some(rel)) if record::is_temp_name(rel.file_name()) => {}
                            Some(Some(rel)) => paths.push(rel),
                            Some(None) => rescan = true,
                            None => {}
                        }
                    }
                }
                if rescan {
                    FolderEvent::Rescan
                } else if paths.is_empty() {
                    return;
                } else {
                    paths.sort();
                    paths.dedup();
                    FolderEvent::LocalChange(paths)
                }
            }
            Err(errors) => {
                for e in &errors {
                    tracing::warn!(error = %e, "file watcher error; rescanning");
                }
                FolderEvent::Rescan
            }
        };
        let _ = events.blocking_send(event);
    };
    let mut debouncer = match new_debouncer(DEBOUNCE, None, handler) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the folder; scanning it every {} s", fallback.as_secs());
            return None;
        }
    };
    if let Err(e) = debouncer.watch(root, RecursiveMode::Recursive) {
        if scan::is_watch_limit(&e) {
            tracing::warn!("{}", scan::watch_limit_message(fallback));
        } else {
            tracing::warn!(error = %e, "cannot watch the folder; scanning it every {} s", fallback.as_secs());
        }
        return None;
    }
    Some(debouncer)
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
