//! Progress of a running `sync`: a live line on a terminal, plain log lines
//! otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daemon::StatusHandle;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::status::human_bytes;

/// Shows progress until dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(status: StatusHandle) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let terminal = std::io::stderr().is_terminal();
        let thread = std::thread::Builder::new()
            .name("swarmsync-progress".into())
            .spawn(move || show(&status, &flag, terminal))
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn show(status: &StatusHandle, stop: &AtomicBool, terminal: bool) {
    let bar = terminal.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut last_log = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let s = status.get();
        let down: f64 = s.peers.iter().map(|p| p.receive_rate).sum();
        let up: f64 = s.peers.iter().map(|p| p.send_rate).sum();
        let line = if s.to_fetch_files > 0 {
            format!(
                "{} files, {} to go at {}/s from {} peers (up {}/s)",
                s.to_fetch_files,
                human_bytes(s.to_fetch_bytes),
                human_bytes(down as u64),
                s.peers.len(),
                human_bytes(up as u64)
            )
        } else {
            format!(
                "in sync: {} files, {}; {} peers connected (up {}/s)",
                s.files,
                human_bytes(s.bytes),
                s.peers.len(),
                human_bytes(up as u64)
            )
        };
        match &bar {
            Some(bar) => {
                bar.set_message(line);
                bar.tick();
            }
            None if s.to_fetch_files > 0 && last_log.elapsed() >= Duration::from_secs(10) => {
                last_log = Instant::now();
                tracing::info!("{line}");
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
