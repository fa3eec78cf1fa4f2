//! Peer exchange on one connection: what we tell the peer, and what we take
//! from what it tells us (rules: `docs/protocol/discovery.md`, "Peer
//! exchange").
//!
//! The first `PeerExchange` on a connection carries, besides the other peers,
//! one entry with the unspecified address and our TCP listen port: "me, at
//! the address you see me from". That is how the acceptor of a connection
//! learns the dialer's listen port, which its source port does not tell.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use keys::{FolderId, PeerId};
use net::Pex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::{MAX_PEX_ADDRS, Message, PeerExchange};

/// Shortest time between two `PeerExchange` messages we send on a connection.
pub(crate) const SHARE_EVERY: Duration = Duration::from_secs(10);

/// Messages a peer may send in a burst before we ignore some; one more is
/// allowed every [`SHARE_EVERY`].
const RECEIVE_BURST: u32 = 4;

/// One connection's view of peer exchange.
#[derive(Debug)]
pub(crate) struct PexPeer {
    pub(crate) pex: Pex,
    pub(crate) folder: FolderId,
    pub(crate) peer: PeerId,
    /// Where the peer's connection comes from.
    pub(crate) remote: SocketAddr,
    /// The connection goes straight to the peer (not through a relay, whose
    /// address says nothing of where the peer listens).
    pub(crate) direct: bool,
    pub(crate) generation: u64,
}

impl PexPeer {
    /// Shares the other peers' addresses with this peer until the connection
    /// ends (never returns: run it beside the connection and drop it).
    pub(crate) async fn share(&self, our_port: u16, tx: mpsc::UnboundedSender<Message>) {
        let mut changes = self.pex.changes();
        let mut sent: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut first = true;
        loop {
            let now: BTreeSet<SocketAddr> = self
                .pex
                .shareable(self.folder, self.peer, self.remote)
                .into_iter()
                .collect();
            let mut added: Vec<SocketAddr> = now.difference(&sent).copied().collect();
            let dropped: Vec<SocketAddr> =
                sent.difference(&now).copied().take(MAX_PEX_ADDRS).collect();
            if first {
                added.insert(0, self_entry(self.remote, our_port));
            }
            added.truncate(MAX_PEX_ADDRS);
            if !added.is_empty() || !dropped.is_empty() {
                for addr in added.iter().filter(|a| !a.ip().is_unspecified()) {
                    sent.insert(*addr);
                }
                for addr in &dropped {
                    sent.remove(addr);
                }
                let Ok(message) = PeerExchange::new(added, dropped) else {
                    return std::future::pending().await;
                };
                if tx.send(Message::PeerExchange(message)).is_err() {
                    return std::future::pending().await;
                }
            }
            first = false;
            // At most one message per SHARE_EVERY, and only after a change
            // (or with what did not fit last time).
            let next = Instant::now() + SHARE_EVERY;
            if sent == now && changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

/// "Me, at the address you see me from, on `port`."
fn self_entry(remote: SocketAddr, port: u16) -> SocketAddr {
    let ip = match remote.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, port)
}

/// The receiving side of one connection: a token bucket against floods and
/// the listen address the peer told us.
#[derive(Debug)]
pub(crate) struct PexInbound {
    pub(crate) peer: PexPeer,
    tokens: u32,
    refilled: Instant,
}

impl PexInbound {
    pub(crate) fn new(peer: PexPeer) -> Self {
        Self {
            peer,
            tokens: RECEIVE_BURST,
            refilled: Instant::now(),
        }
    }

    /// Takes in one message from the peer. Too many too fast are ignored
    /// (not a violation: a clock or a reconnect can bunch them up).
    pub(crate) fn receive(&mut self, message: &PeerExchange) {
        let gained = self.refilled.elapsed().as_secs() / SHARE_EVERY.as_secs();
        if gained > 0 {
            self.tokens = self
                .tokens
                .saturating_add(u32::try_from(gained).unwrap_or(u32::MAX))
                .min(RECEIVE_BURST);
            self.refilled = Instant::now();
        }
        if self.tokens == 0 {
            tracing::debug!(peer = %self.peer.peer, "ignored a peer exchange: too many too fast");
            return;
        }
        self.tokens -= 1;
        let p = &self.peer;
        let mut others = Vec::with_capacity(message.added().len());
        for addr in message.added() {
            if addr.ip().is_unspecified() {
                if addr.port() != 0 && p.direct {
                    let listen = SocketAddr::new(p.remote.ip(), addr.port());
                    p.pex.connected(p.folder, p.peer, listen, p.generation);
                }
            } else {
                others.push(*addr);
            }
        }
        p.pex.learned(p.folder, p.peer, &others);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use net::Discovery;

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn first_message_names_our_port_then_changes_follow() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        pex.connected(folder, b, addr("10.0.0.2:41544"), 1);
        let to_a = PexPeer {
            pex: pex.clone(),
            folder,
            peer: a,
            remote: addr("10.0.0.1:50000"),
            direct: true,
            generation: 2,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sharing = tokio::spawn(async move { to_a.share(41544, tx).await });
        let Some(Message::PeerExchange(first)) = rx.recv().await else {
            panic!("no first message")
        };
        assert_eq!(
            first.added(),
            [addr("0.0.0.0:41544"), addr("10.0.0.2:41544")]
        );
        pex.disconnected(folder, b, 1);
        let Some(Message::PeerExchange(next)) = rx.recv().await else {
            panic!("no second message")
        };
        assert!(next.added().is_empty());
        assert_eq!(next.dropped(), [addr("10.0.0.2:41544")]);
        sharing.abort();
    }

    #[test]
    fn a_relayed_peers_self_entry_is_not_its_address() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let mut from_b = PexInbound::new(PexPeer {
            pex: pex.clone(),
            folder,
            peer: b,
            // The relay's address, not B's.
            remote: addr("10.0.0.9:22067"),
            direct: false,
            generation: 1,
        });
        from_b.receive(&PeerExchange::new(vec![addr("0.0.0.0:41544")], vec![]).unwrap());
        assert!(pex.shareable(folder, a, addr("10.0.0.1:1")).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_self_entry_gives_the_listen_address_and_floods_are_cut() {
        let pex = Pex::new();
        let folder = FolderId([1; 20]);
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let mut candidates = pex.discovery().subscribe(folder);
        let mut from_b = PexInbound::new(PexPeer {
            pex: pex.clone(),
            folder,
            peer: b,
            remote: addr("10.0.0.2:50123"),
            direct: true,
            generation: 1,
        });
        let message =
            PeerExchange::new(vec![addr("0.0.0.0:41544"), addr("10.0.0.3:41544")], vec![]).unwrap();
        from_b.receive(&message);
        assert_eq!(
            pex.shareable(folder, a, addr("10.0.0.1:1")),
            [addr("10.0.0.2:41544")]
        );
        assert_eq!(
            candidates.next().await.unwrap().addr,
            addr("10.0.0.3:41544")
        );
        for _ in 0..10 {
            from_b.receive(&message);
        }
        let mut forwarded = 0;
        while tokio::time::timeout(Duration::from_millis(1), candidates.next())
            .await
            .is_ok()
        {
            forwarded += 1;
        }
        assert_eq!(
            forwarded,
            RECEIVE_BURST as usize - 1,
            "the burst, then nothing"
        );
    }
}
