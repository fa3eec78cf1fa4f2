//! Flushing a batch of completed temporaries off the folder thread.
//!
//! Completed files are made durable in batches (`FolderTask::flush_finalized`):
//! their data flushed, then renamed into place, then the renames flushed. The
//! first step is most of the wait (a batch of a thousand small files: 40–60
//! ms of `syncfs`, a quarter of a receiver's folder thread in all), and needs
//! nothing of the folder thread: this thread does it while the folder thread
//! goes on writing the next files' blocks, then wakes it with
//! [`FolderEvent::Flushed`]. The renames, which change what the folder shows,
//! stay on the folder thread. One batch is out at a time; the next collects
//! meanwhile.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use tokio::sync::mpsc::WeakSender;

use crate::folder::FolderEvent;

/// The temporaries of one batch, in the order of its records (an error where
/// a record's temporary could not even be named).
pub(crate) type Temps = Vec<io::Result<PathBuf>>;

/// The flushing thread, and the way back from it.
pub(crate) struct Flusher {
    jobs: Option<Sender<Temps>>,
    done: Receiver<Vec<io::Result<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread for the folder at `root`; `wake` tells the folder
    /// thread a batch is done (a weak sender: the folder's queue still closes
    /// when everything else is gone). `None` if the OS refused a thread.
    pub(crate) fn start(root: PathBuf, wake: WeakSender<FolderEvent>) -> Option<Self> {
        let (jobs, job_rx) = mpsc::channel::<Temps>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("swarmsync-flush".into())
            .spawn(move || {
                for temps in job_rx {
                    if done_tx
                        .send(crate::disk::flush_paths(&root, &temps))
                        .is_err()
                    {
                        return;
                    }
                    // Never blocks: a wake-up that finds the queue full is not
                    // needed, the folder looks here after every batch of events.
                    if let Some(wake) = wake.upgrade() {
                        let _ = wake.try_send(FolderEvent::Flushed);
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Self {
                jobs: Some(jobs),
                done,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no flushing thread; batches are flushed on the folder thread");
                None
            }
        }
    }

    /// Hands a batch over; gives it back if the thread is gone.
    pub(crate) fn send(&self, temps: Temps) -> Result<(), Temps> {
        match &self.jobs {
            Some(jobs) => jobs.send(temps).map_err(|e| e.0),
            None => Err(temps),
        }
    }

    /// Whether the batch handed over is done (`wait`: once it is).
    pub(crate) fn done(&self, wait: bool) -> Done {
        let received = if wait {
            self.done
                .recv()
                .map_err(|_| mpsc::TryRecvError::Disconnected)
        } else {
            self.done.try_recv()
        };
        match received {
            Ok(results) => Done::Flushed(results),
            Err(mpsc::TryRecvError::Empty) => Done::Pending,
            Err(mpsc::TryRecvError::Disconnected) => Done::Gone,
        }
    }
}

/// What became of the batch handed to the [`Flusher`].
#[derive(Debug)]
pub(crate) enum Done {
    /// Still being flushed.
    Pending,
    /// Flushed: one result per temporary, in order.
    Flushed(Vec<io::Result<()>>),
    /// The thread is gone, perhaps without flushing it.
    Gone,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_is_flushed_and_the_folder_woken() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let flusher = Flusher::start(tmp.path().to_owned(), tx.downgrade()).unwrap();
        assert!(
            matches!(flusher.done(false), Done::Pending),
            "nothing handed over yet"
        );
        let gone = tmp.path().join("gone");
        let missing = Err(io::Error::new(io::ErrorKind::InvalidInput, "no name"));
        flusher.send(vec![Ok(a), missing, Ok(gone)]).unwrap();
        assert!(matches!(rx.recv().await, Some(FolderEvent::Flushed)));
        let Done::Flushed(results) = flusher.done(true) else {
            panic!("the batch was not flushed");
        };
        assert_eq!(results.len(), 3, "one result per temporary, in order");
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // Two or fewer are fsynced one by one, so a missing one is an error.
        assert_eq!(
            results[2].as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // The weak sender does not keep the folder's queue open.
        drop(tx);
        assert!(rx.recv().await.is_none());
        drop(flusher); // joins the thread
    }
}
