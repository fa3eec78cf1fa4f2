//! The discovery seam: every source of peer addresses implements [`Discovery`].
//!
//! A source is asked, once per folder, to [`Discovery::subscribe`]; it answers
//! with a [`Candidates`] stream of addresses where members of that folder may
//! listen. The connection manager merges the streams, dials, and keeps what
//! authenticates. Dropping the [`Candidates`] ends the subscription; dropping
//! the source ends all of its work. Trackers, the DHT and PEX plug in here.

pub(crate) mod dht;
mod known;
pub mod lan;
pub mod pex;
pub mod tracker;

use std::net::SocketAddr;

use keys::{FolderId, PeerId};
use tokio::sync::mpsc;

pub use known::{KnownHost, KnownHostError, KnownHosts};

/// Candidates buffered per subscription before a source waits (or drops).
pub const CANDIDATE_BUFFER: usize = 256;

/// An address where a member of a folder may be listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The folder.
    pub folder: FolderId,
    /// Where to dial.
    pub addr: SocketAddr,
    /// The peer, when the source knows it (LAN announcements do).
    pub peer: Option<PeerId>,
    /// The source's [`Discovery::name`].
    pub source: &'static str,
    /// Found on the local network: dialed before the others.
    pub lan: bool,
}

/// The stream of candidates of one subscription.
#[derive(Debug)]
pub struct Candidates(mpsc::Receiver<Candidate>);

impl Candidates {
    /// A subscription fed by the returned sender.
    pub fn channel() -> (mpsc::Sender<Candidate>, Self) {
        let (tx, rx) = mpsc::channel(CANDIDATE_BUFFER);
        (tx, Self(rx))
    }

    /// The next candidate; `None` once the source has stopped.
    pub async fn next(&mut self) -> Option<Candidate> {
        self.0.recv().await
    }
}

/// A source of candidate addresses (known hosts, LAN, later trackers, DHT, PEX).
///
/// `subscribe` is called inside a tokio runtime and may spawn tasks; those
/// tasks stop when the returned [`Candidates`] is dropped.
pub trait Discovery: Send + Sync + 'static {
    /// The short name shown in status and logs ("known", "lan", …).
    fn name(&self) -> &'static str;

    /// Starts looking for members of `folder`.
    fn subscribe(&self, folder: FolderId) -> Candidates;

    /// A dial to `addr` for `folder` found nobody (TCP and QUIC both failed
    /// to connect). A source that can help (a tracker that listed it can
    /// coordinate a hole punch) may act; the default does nothing.
    fn dial_failed(&self, folder: FolderId, addr: SocketAddr) {
        let _ = (folder, addr);
    }
}
