//! When a changed path is due for a scan: the watcher's rule, apart from notify
//! and the clock (every input and poll takes `now`), so it is tested without a
//! file system or sleeps.
//!
//! Inputs are [`Debouncer::handle_change`] (a path and what happened to it) and
//! [`Debouncer::handle_rescan`] (the whole folder). After handling what has
//! arrived, poll [`Debouncer::poll_due`] for a batch, then
//! [`Debouncer::poll_timeout`] for when to poll again.
//!
//! The rule, per path, over the events since it was last handed out:
//!
//! - **Finished** (the writer closed it, it was renamed into place or away,
//!   removed, or is a new directory): due once the folder has had no event for
//!   [`Config::gather`], or [`Config::gather_max`] after it finished, so a burst
//!   of files (an unpacked archive, a checkout) is one batch and a steady storm
//!   still flows.
//! - **Open** (written or created, and not finished since) or **busy** (its
//!   previous version was handed out less than [`Config::quiet`] before this one
//!   began: a file closed and reopened again and again, like `>>` in a loop): due
//!   once the path itself has had no event for [`Config::quiet`], and at the
//!   latest [`Config::max_delay`] after its first event, so a log that is
//!   appended to forever is still synced now and then.
//!
//! Whenever a batch goes, every finished path goes with it. A full rescan
//! ([`Debouncer::handle_rescan`], or more than [`Config::max_paths`] paths
//! pending) replaces the pending paths and absorbs new ones until it goes; it
//! is due like an open path standing for the whole folder, so a storm is one
//! rescan after it ends (or every [`Config::max_delay`] while it lasts), not
//! one per overflow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use record::RelPath;

/// What an event says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Content written, or a file created: a writer may still hold it open.
    Writing,
    /// Done: closed after writing, renamed into place or away, removed, or a
    /// directory created.
    Finished,
    /// Mode or times changed: implies no writer either way.
    Metadata,
}

/// What is due for a scan.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// These paths, sorted.
    Paths(Vec<RelPath>),
    /// The whole folder.
    Rescan,
}

/// The watcher's timing and bound; [`Config::for_platform`] has ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// How long the folder must be free of events before finished paths go.
    pub(crate) gather: Duration,
    /// How long a finished path waits for the burst around it at most.
    pub(crate) gather_max: Duration,
    /// How long an open or busy path must be free of events.
    pub(crate) quiet: Duration,
    /// How long after its first event a changing path goes regardless.
    pub(crate) max_delay: Duration,
    /// Paths pending at most; more make a full rescan instead.
    pub(crate) max_paths: usize,
}

impl Config {
    /// Where the OS reports close-after-write (inotify): a path modified and
    /// not closed since is still open, so it can wait a whole second of quiet
    /// (a download waiting for the network, a copy for the disk) without
    /// delaying the ordinary save, which ends with a close or a rename.
    pub(crate) const CLOSE_EVENTS: Self = Self {
        gather: Duration::from_millis(30),
        gather_max: Duration::from_millis(100),
        quiet: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        max_paths: 4096,
    };

    /// Without close events (FSEvents, ReadDirectoryChangesW) quiet is the only
    /// sign that an in-place write is over, so it stays at the 300 ms the
    /// watcher always had; renames and removals still go after the gather.
    pub(crate) const NO_CLOSE_EVENTS: Self = Self {
        quiet: Duration::from_millis(300),
        ..Self::CLOSE_EVENTS
    };

    /// The configuration for this OS's notify backend.
    pub(crate) const fn for_platform() -> Self {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Self::CLOSE_EVENTS
        } else {
            Self::NO_CLOSE_EVENTS
        }
    }
}

/// One path's events since it was last handed out.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
    /// Written, and not finished since.
    open: bool,
    /// Handed out less than `quiet` before `first`.
    busy: bool,
}

impl Pending {
    fn finished(&self) -> bool {
        !self.open && !self.busy
    }

    /// When it is due, given the folder's latest event.
    fn due(&self, config: &Config, last_event: Instant) -> Instant {
        if self.finished() {
            (last_event + config.gather).min(self.last + config.gather_max)
        } else {
            (self.last + config.quiet).min(self.first + config.max_delay)
        }
    }
}

/// Changed paths waiting to be scanned; see the module docs for the rule.
#[derive(Debug)]
pub(crate) struct Debouncer {
    config: Config,
    pending: HashMap<RelPath, Pending>,
    /// Paths handed out less than `quiet` ago (pruned when a batch goes; at
    /// most `max_paths`, and forgetting one only costs a scan).
    recent: HashMap<RelPath, Instant>,
    /// Since when a full rescan is pending; `pending` is empty meanwhile.
    rescan: Option<Instant>,
    /// The folder's latest event.
    last_event: Option<Instant>,
}

impl Debouncer {
    /// Nothing pending.
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            recent: HashMap::new(),
            rescan: None,
            last_event: None,
        }
    }

    /// `path` changed at `now`.
    pub(crate) fn handle_change(&mut self, now: Instant, path: RelPath, change: Change) {
        self.last_event = Some(now);
        if self.rescan.is_some() {
            // The rescan will see it.
            return;
        }
        if let Some(p) = self.pending.get_mut(&path) {
            p.last = now;
            match change {
                Change::Writing => p.open = true,
                Change::Finished => p.open = false,
                Change::Metadata => {}
            }
            return;
        }
        if self.pending.len() >= self.config.max_paths {
            self.handle_rescan(now);
            return;
        }
        let busy = self
            .recent
            .get(&path)
            .is_some_and(|&out| now.saturating_duration_since(out) < self.config.quiet);
        let open = change == Change::Writing;
        let p = Pending {
            first: now,
            last: now,
            open,
            busy,
        };
        self.pending.insert(path, p);
    }

    /// The whole folder needs a scan (the OS dropped events, an event named the
    /// folder itself or a name we cannot record, the watcher failed).
    pub(crate) fn handle_rescan(&mut self, now: Instant) {
        self.last_event = Some(now);
        self.rescan.get_or_insert(now);
        self.pending.clear();
    }

    /// What is due at `now`, if anything; it is no longer pending.
    pub(crate) fn poll_due(&mut self, now: Instant) -> Option<Due> {
        let last_event = self.last_event?;
        if let Some(since) = self.rescan {
            if now < self.rescan_due(since, last_event) {
                return None;
            }
            self.rescan = None;
            return Some(Due::Rescan);
        }
        let config = self.config;
        if !self
            .pending
            .values()
            .any(|p| p.due(&config, last_event) <= now)
        {
            return None;
        }
        let mut paths: Vec<RelPath> = self
            .pending
            .extract_if(|_, p| p.finished() || p.due(&config, last_event) <= now)
            .map(|(path, _)| path)
            .collect();
        paths.sort();
        self.recent
            .retain(|_, out| now.saturating_duration_since(*out) < config.quiet);
        for path in &paths {
            if self.recent.len() >= config.max_paths {
                break;
            }
            self.recent.insert(path.clone(), now);
        }
        Some(Due::Paths(paths))
    }

    /// When [`Debouncer::poll_due`] will next have something; `None` while
    /// nothing is pending.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let last_event = self.last_event?;
        if let Some(since) = self.rescan {
            return Some(self.rescan_due(since, last_event));
        }
        self.pending
            .values()
            .map(|p| p.due(&self.config, last_event))
            .min()
    }

    fn rescan_due(&self, since: Instant, last_event: Instant) -> Instant {
        (last_event + self.config.quiet).min(since + self.config.max_delay)
    }
}

#[cfg(test)]
mod tests;
