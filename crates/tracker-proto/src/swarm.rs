//! The swarm table: who announced which info hash from where, bounded in
//! every dimension (`docs/protocol/tracker.md` §7). Time is an argument.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{Event, Family, InfoHash, ScrapeStats};

/// The table's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmLimits {
    /// Most swarms.
    pub max_swarms: usize,
    /// Most peers in one swarm.
    pub max_peers_per_swarm: usize,
    /// Most peers in all swarms.
    pub max_peers: usize,
    /// A peer not re-announced for this long is gone.
    pub ttl: Duration,
}

/// A listed endpoint, compact: IPv4 stored IPv4-mapped (18 bytes instead of
/// `SocketAddr`'s 32, and peers are most of the table's memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PeerKey {
    ip: [u8; 16],
    port: u16,
}

impl PeerKey {
    fn new(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Self {
            ip: ip.octets(),
            port: addr.port(),
        }
    }

    fn ip(self) -> IpAddr {
        Ipv6Addr::from(self.ip).to_canonical()
    }

    fn addr(self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    key: PeerKey,
    /// The UDP port its announces come from (punch notifies go there).
    source_port: u16,
    /// Seconds since the table's origin.
    last: u32,
    seeder: bool,
}

/// Peers of one family in a swarm: a vector for random picks and an index
/// for lookups, kept in step by swap-remove.
#[derive(Debug, Default)]
struct PeerSet {
    list: Vec<Peer>,
    index: HashMap<PeerKey, usize>,
}

impl PeerSet {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn get(&self, key: &PeerKey) -> Option<&Peer> {
        self.index.get(key).and_then(|&i| self.list.get(i))
    }

    fn get_mut(&mut self, key: &PeerKey) -> Option<&mut Peer> {
        self.index.get(key).and_then(|&i| self.list.get_mut(i))
    }

    fn insert(&mut self, peer: Peer) {
        self.index.insert(peer.key, self.list.len());
        self.list.push(peer);
    }

    fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let i = self.index.remove(key)?;
        if i >= self.list.len() {
            return None;
        }
        let peer = self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.key, i);
        }
        Some(peer)
    }

    /// Drops peers last seen before `cutoff`; returns (removed, seeders
    /// removed).
    fn expire(&mut self, cutoff: u32) -> (usize, u32) {
        let before = self.list.len();
        let mut seeders = 0u32;
        self.list.retain(|p| {
            let keep = p.last >= cutoff;
            if !keep && p.seeder {
                seeders += 1;
            }
            keep
        });
        if self.list.len() != before {
            self.index.clear();
            self.index
                .extend(self.list.iter().enumerate().map(|(i, p)| (p.key, i)));
            self.list.shrink_to(self.list.len() * 2);
            self.index.shrink_to(self.list.len() * 2);
        }
        (before - self.list.len(), seeders)
    }
}

#[derive(Debug, Default)]
struct Swarm {
    v4: PeerSet,
    v6: PeerSet,
    seeders: u32,
    completed: u32,
}

impl Swarm {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn set(&self, family: Family) -> &PeerSet {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn set_mut(&mut self, family: Family) -> &mut PeerSet {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    fn stats(&self) -> ScrapeStats {
        let total = u32::try_from(self.len()).unwrap_or(u32::MAX);
        ScrapeStats {
            seeders: self.seeders,
            completed: self.completed,
            leechers: total.saturating_sub(self.seeders),
        }
    }
}

/// One announce, as the table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceInput {
    /// The swarm.
    pub info_hash: InfoHash,
    /// Where others should reach the peer: its source IP (canonical, IPv4
    /// not mapped) and the port it announced (or its source port).
    pub listed: SocketAddr,
    /// The UDP source port of the announce.
    pub source_port: u16,
    /// `left == 0`.
    pub seeder: bool,
    /// The event.
    pub event: Event,
    /// Peers wanted, already capped by the caller.
    pub num_want: usize,
}

/// What the table did with an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new peer was stored.
    Added,
    /// A stored peer was refreshed.
    Refreshed,
    /// Event stopped: the peer was removed (or was not there).
    Removed,
    /// A cap was reached: answered but not stored.
    Refused,
}

/// The table's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Other peers of the requester's family.
    pub peers: Vec<SocketAddr>,
    /// Counts of the swarm after the announce.
    pub stats: ScrapeStats,
    /// What happened to the requester's entry.
    pub stored: Stored,
}

/// All swarms. Every operation is bounded by the caps in [`SwarmLimits`].
#[derive(Debug)]
pub struct SwarmTable {
    limits: SwarmLimits,
    swarms: HashMap<InfoHash, Swarm>,
    peers: usize,
    origin: Instant,
    rng: u64,
}

impl SwarmTable {
    /// An empty table; `seed` drives which peers are picked for answers.
    pub fn new(limits: SwarmLimits, seed: u64, now: Instant) -> Self {
        Self {
            limits,
            swarms: HashMap::new(),
            peers: 0,
            origin: now,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    fn secs(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.origin).as_secs()).unwrap_or(u32::MAX)
    }

    fn ttl_secs(&self) -> u32 {
        u32::try_from(self.limits.ttl.as_secs()).unwrap_or(u32::MAX)
    }

    fn fresh(&self, peer: &Peer, now_secs: u32) -> bool {
        now_secs.saturating_sub(peer.last) < self.ttl_secs()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: the picks need to be spread, not unpredictable.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Adds, refreshes or (event stopped) removes the announcing peer and
    /// picks up to `num_want` other live peers of its family.
    pub fn announce(&mut self, now: Instant, a: &AnnounceInput) -> AnnounceOutcome {
        let family = Family::of(a.listed);
        let key = PeerKey::new(a.listed);
        let now_secs = self.secs(now);
        if a.event == Event::Stopped {
            let mut stats = ScrapeStats::default();
            if let Some(swarm) = self.swarms.get_mut(&a.info_hash) {
                if let Some(gone) = swarm.set_mut(family).remove(&key) {
                    self.peers = self.peers.saturating_sub(1);
                    if gone.seeder {
                        swarm.seeders = swarm.seeders.saturating_sub(1);
                    }
                }
                stats = swarm.stats();
                if swarm.len() == 0 {
                    self.swarms.remove(&a.info_hash);
                }
            }
            return AnnounceOutcome {
                peers: Vec::new(),
                stats,
                stored: Stored::Removed,
            };
        }

        let room_for_peer = self.peers < self.limits.max_peers;
        let room_for_swarm = self.swarms.len() < self.limits.max_swarms;
        let swarm = match self.swarms.entry(a.info_hash) {
            MapEntry::Occupied(o) => o.into_mut(),
            // A swarm is only created for a peer that will be stored in it.
            MapEntry::Vacant(v)
                if room_for_peer && room_for_swarm && self.limits.max_peers_per_swarm > 0 =>
            {
                v.insert(Swarm::default())
            }
            MapEntry::Vacant(_) => {
                return AnnounceOutcome {
                    peers: Vec::new(),
                    stats: ScrapeStats::default(),
                    stored: Stored::Refused,
                };
            }
        };
        let stored = if let Some(peer) = swarm.set_mut(family).get_mut(&key) {
            let was_seeder = peer.seeder;
            peer.last = now_secs;
            peer.source_port = a.source_port;
            peer.seeder = a.seeder;
            match (was_seeder, a.seeder) {
                (false, true) => swarm.seeders = swarm.seeders.saturating_add(1),
                (true, false) => swarm.seeders = swarm.seeders.saturating_sub(1),
                _ => {}
            }
            Stored::Refreshed
        } else if room_for_peer && swarm.len() < self.limits.max_peers_per_swarm {
            swarm.set_mut(family).insert(Peer {
                key,
                source_port: a.source_port,
                last: now_secs,
                seeder: a.seeder,
            });
            if a.seeder {
                swarm.seeders = swarm.seeders.saturating_add(1);
            }
            self.peers += 1;
            Stored::Added
        } else {
            Stored::Refused
        };
        if a.event == Event::Completed && stored != Stored::Refused {
            swarm.completed = swarm.completed.saturating_add(1);
        }
        let stats = swarm.stats();
        let peers = self.pick(now_secs, &a.info_hash, family, key, a.num_want);
        AnnounceOutcome {
            peers,
            stats,
            stored,
        }
    }

    /// Up to `want` live peers of `family` in the swarm other than `me`,
    /// consecutive from a random start.
    fn pick(
        &mut self,
        now_secs: u32,
        info_hash: &InfoHash,
        family: Family,
        me: PeerKey,
        want: usize,
    ) -> Vec<SocketAddr> {
        let r = self.next_random();
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let set = swarm.set(family);
        let len = set.len();
        if len == 0 || want == 0 {
            return Vec::new();
        }
        let start = usize::try_from(r % len as u64).unwrap_or(0);
        let mut out = Vec::with_capacity(want.min(len));
        let (tail, head) = set.list.split_at(start.min(len));
        for peer in head.iter().chain(tail) {
            if out.len() >= want {
                break;
            }
            if peer.key != me && self.fresh(peer, now_secs) {
                out.push(peer.key.addr());
            }
        }
        out
    }

    /// Where a punch notify for the peer listed at `listed` in `info_hash`
    /// goes: its IP and UDP source port, if it announced recently.
    pub fn punch_target(
        &self,
        now: Instant,
        info_hash: &InfoHash,
        listed: SocketAddr,
    ) -> Option<SocketAddr> {
        let swarm = self.swarms.get(info_hash)?;
        let peer = swarm.set(Family::of(listed)).get(&PeerKey::new(listed))?;
        self.fresh(peer, self.secs(now))
            .then(|| SocketAddr::new(peer.key.ip(), peer.source_port))
    }

    /// The counts of a swarm (zeros when unknown).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// Forgets peers not re-announced within the ttl and swarms left empty;
    /// returns how many peers went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let cutoff = self
            .secs(now)
            .saturating_sub(self.ttl_secs().saturating_sub(1));
        let mut removed = 0;
        self.swarms.retain(|_, swarm| {
            for family in [Family::V4, Family::V6] {
                let (n, seeders) = swarm.set_mut(family).expire(cutoff);
                removed += n;
                swarm.seeders = swarm.seeders.saturating_sub(seeders);
            }
            swarm.len() > 0
        });
        self.peers = self.peers.saturating_sub(removed);
        removed
    }

    /// Swarms stored.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers stored, all swarms together.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    /// The caps.
    pub fn limits(&self) -> SwarmLimits {
        self.limits
    }

    /// Checks the internal bookkeeping (tests and fuzzing).
    #[cfg(any(test, fuzzing))]
    pub fn check_invariants(&self) {
        assert!(self.swarms.len() <= self.limits.max_swarms);
        assert!(self.peers <= self.limits.max_peers);
        let mut total = 0;
        for swarm in self.swarms.values() {
            assert!(swarm.len() > 0, "empty swarm kept");
            assert!(swarm.len() <= self.limits.max_peers_per_swarm);
            let mut seeders = 0;
            for (family, set) in [(Family::V4, &swarm.v4), (Family::V6, &swarm.v6)] {
                assert_eq!(set.list.len(), set.index.len());
                for (i, p) in set.list.iter().enumerate() {
                    assert_eq!(set.index.get(&p.key), Some(&i));
                    assert_eq!(Family::of(p.key.addr()), family);
                    seeders += u32::from(p.seeder);
                }
            }
            assert_eq!(seeders, swarm.seeders);
            total += swarm.len();
        }
        assert_eq!(total, self.peers);
    }
}

#[cfg(test)]
mod tests;
