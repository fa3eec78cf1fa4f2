//! Peer exchange: connected peers of a folder tell each other where the
//! folder's other peers listen.
//!
//! [`Pex`] is the shared book the daemon keeps up to date: for each folder,
//! the listen address of every *connected* (so authenticated) peer. The
//! daemon sends each peer the others' addresses as `PeerExchange` messages
//! (wire.md §5.7) and hands the addresses it receives to [`Pex::learned`],
//! which forwards them, bounded, to the connection manager through
//! [`PexDiscovery`]. Rules: `docs/protocol/discovery.md`, "Peer exchange".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use keys::{FolderId, PeerId};
use tokio::sync::{mpsc, watch};

use super::{Candidate, Candidates, Discovery};

/// The name of this source in candidates and status.
pub const PEX_SOURCE: &str = "pex";

/// Addresses taken from one received message; the rest are ignored.
pub const MAX_LEARNED_PER_MESSAGE: usize = 50;

#[derive(Debug, Default)]
struct FolderBook {
    /// Where the connection manager wants this folder's candidates.
    subscriber: Option<mpsc::Sender<Candidate>>,
    /// Listen address of each connected peer, with the connection's
    /// generation (a stale connection's end must not remove a newer one's).
    listening: HashMap<PeerId, (SocketAddr, u64)>,
}

#[derive(Debug, Default)]
struct Book {
    folders: HashMap<FolderId, FolderBook>,
}

/// The peer-exchange book, shared by the daemon's connection tasks. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Pex {
    book: Arc<Mutex<Book>>,
    /// Bumped on every change of a listen address, so sharers wake up.
    changes: Arc<watch::Sender<u64>>,
}

impl Default for Pex {
    fn default() -> Self {
        Self::new()
    }
}

impl Pex {
    /// An empty book.
    pub fn new() -> Self {
        Self {
            book: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Book) -> T) -> T {
        // The book holds no invariant a panicking holder could break halfway.
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut book)
    }

    /// The discovery source that yields what [`Pex::learned`] is given.
    pub fn discovery(&self) -> PexDiscovery {
        PexDiscovery(self.clone())
    }

    /// Wakes whenever a listen address in the book changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// `peer` of `folder` is connected (connection `generation`) and listens
    /// at `listen`.
    pub fn connected(&self, folder: FolderId, peer: PeerId, listen: SocketAddr, generation: u64) {
        let changed = self.with(|book| {
            let entry = book.folders.entry(folder).or_default();
            entry.listening.insert(peer, (listen, generation)) != Some((listen, generation))
        });
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Connection `generation` to `peer` has ended.
    pub fn disconnected(&self, folder: FolderId, peer: PeerId, generation: u64) {
        let changed = self.with(|book| {
            let Some(entry) = book.folders.get_mut(&folder) else {
                return false;
            };
            if entry
                .listening
                .get(&peer)
                .is_some_and(|(_, g)| *g == generation)
            {
                entry.listening.remove(&peer);
                true
            } else {
                false
            }
        });
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The listen addresses of `folder`'s connected peers other than `to`,
    /// fit to be sent to `to`, which we reach at `remote`: never its own
    /// address, loopback only to a loopback peer, never an address that
    /// means nothing on another host.
    pub fn shareable(&self, folder: FolderId, to: PeerId, remote: SocketAddr) -> Vec<SocketAddr> {
        self.with(|book| {
            let Some(entry) = book.folders.get(&folder) else {
                return Vec::new();
            };
            let own = entry.listening.get(&to).map(|(a, _)| *a);
            let mut out: Vec<SocketAddr> = entry
                .listening
                .iter()
                .filter(|(peer, (addr, _))| {
                    **peer != to && Some(*addr) != own && fit_to_share(*addr, remote)
                })
                .map(|(_, (addr, _))| *addr)
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        })
    }

    /// Addresses `from` (connected for `folder`) says other peers of the
    /// folder listen at: forwarded to the connection manager as candidates,
    /// at most [`MAX_LEARNED_PER_MESSAGE`], dropped when its queue is full.
    /// Returns how many were forwarded.
    pub fn learned(&self, folder: FolderId, from: PeerId, addrs: &[SocketAddr]) -> usize {
        let Some(tx) =
            self.with(|book| book.folders.get(&folder).and_then(|f| f.subscriber.clone()))
        else {
            return 0;
        };
        let mut sent = 0;
        for addr in addrs
            .iter()
            .filter(|a| dialable(**a))
            .take(MAX_LEARNED_PER_MESSAGE)
        {
            let candidate = Candidate {
                folder,
                addr: *addr,
                peer: None,
                source: PEX_SOURCE,
                lan: false,
            };
            if tx.try_send(candidate).is_ok() {
                sent += 1;
            }
        }
        tracing::debug!(%folder, peer = %from, got = addrs.len(), forwarded = sent, "peer exchange");
        sent
    }
}

/// An address another host could dial: a unicast IP and a port.
fn dialable(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !is_broadcast(ip)
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// Whether `addr` means something to a peer we reach at `remote`.
fn fit_to_share(addr: SocketAddr, remote: SocketAddr) -> bool {
    if !dialable(addr) {
        return false;
    }
    if addr.ip().is_loopback() {
        return remote.ip().is_loopback();
    }
    // Link-local IPv6 needs a scope id, which is not sent.
    !matches!(addr.ip(), IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// The [`Discovery`] side of [`Pex`]: one subscriber per folder.
#[derive(Debug, Clone)]
pub struct PexDiscovery(Pex);

impl Discovery for PexDiscovery {
    fn name(&self) -> &'static str {
        PEX_SOURCE
    }

    fn subscribe(&self, folder: FolderId) -> Candidates {
        let (tx, rx) = Candidates::channel();
        self.0.with(|book| {
            book.folders.entry(folder).or_default().subscriber = Some(tx);
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn shares_the_others_but_never_the_receiver_itself() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let (a, b, c) = (PeerId([1; 32]), PeerId([2; 32]), PeerId([3; 32]));
        pex.connected(folder, a, addr("10.0.0.1:41544"), 1);
        pex.connected(folder, b, addr("10.0.0.2:41544"), 2);
        pex.connected(folder, c, addr("127.0.0.1:5000"), 3);
        let to_a = pex.shareable(folder, a, addr("10.0.0.1:41544"));
        assert_eq!(
            to_a,
            vec![addr("10.0.0.2:41544")],
            "no loopback to a LAN peer"
        );
        let to_c = pex.shareable(folder, c, addr("127.0.0.1:5000"));
        assert_eq!(to_c, vec![addr("10.0.0.1:41544"), addr("10.0.0.2:41544")]);
        assert!(
            pex.shareable(FolderId([9; 20]), a, addr("10.0.0.1:1"))
                .is_empty()
        );
    }

    #[test]
    fn a_stale_connection_end_keeps_the_newer_one() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        pex.connected(folder, b, addr("10.0.0.2:41544"), 7);
        pex.disconnected(folder, b, 6);
        assert_eq!(pex.shareable(folder, a, addr("10.0.0.1:1")).len(), 1);
        pex.disconnected(folder, b, 7);
        assert!(pex.shareable(folder, a, addr("10.0.0.1:1")).is_empty());
    }

    #[tokio::test]
    async fn learned_addresses_become_bounded_candidates() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let from = PeerId([5; 32]);
        assert_eq!(
            pex.learned(folder, from, &[addr("10.0.0.3:1")]),
            0,
            "no subscriber yet"
        );
        let mut candidates = pex.discovery().subscribe(folder);
        let mut many: Vec<SocketAddr> = (1..=200u16)
            .map(|p| SocketAddr::new("10.0.0.3".parse().unwrap(), p))
            .collect();
        many.insert(0, addr("0.0.0.0:41544"));
        many.insert(1, addr("224.0.0.1:41544"));
        assert_eq!(pex.learned(folder, from, &many), MAX_LEARNED_PER_MESSAGE);
        let first = candidates.next().await.unwrap();
        assert_eq!(first.addr, addr("10.0.0.3:1"));
        assert_eq!(first.source, PEX_SOURCE);
        assert!(!first.lan);
    }
}
