//! The whole tracker without its socket: datagrams in, datagrams out
//! (`docs/protocol/tracker.md` §5–§8).
//!
//! Poll order, after each input: [`Tracker::handle_datagram`] or
//! [`Tracker::handle_timeout`], then [`Tracker::poll_transmit`] until `None`,
//! then [`Tracker::poll_timeout`] for the next wake-up.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::{ConfigError, TrackerConfig};
use crate::conn_id::ConnectionIds;
use crate::limit::RateLimiter;
use crate::request::{AnnounceRequest, PunchRequest, Request, RequestHeader};
use crate::swarm::{AnnounceInput, Stored, SwarmLimits, SwarmTable};
use crate::{
    ACTION_CONNECT, AnnounceResponse, Family, MAX_REQUEST_LEN, PeerList, ProtoError, PunchResult,
    Response,
};

/// Most datagrams queued for sending; one input makes at most two.
const MAX_QUEUED: usize = 64;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to. IPv4 addresses are plain IPv4 even when the request came
    /// IPv4-mapped over a dual-stack socket; such a socket must send to the
    /// mapped form.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Counters since start, and the table's size now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Dropped: malformed, too long or with a bad connection id.
    pub dropped: u64,
    /// Dropped: over a rate limit.
    pub rate_limited: u64,
    /// Connect requests answered.
    pub connects: u64,
    /// Announce requests answered.
    pub announces: u64,
    /// Announces answered but not stored because a cap was reached.
    pub refused: u64,
    /// Scrape requests answered.
    pub scrapes: u64,
    /// Address requests answered.
    pub addresses: u64,
    /// Punch requests answered.
    pub punches: u64,
    /// Punch notifies sent.
    pub notifies: u64,
    /// Error responses sent.
    pub errors: u64,
    /// Swarms stored now.
    pub swarms: usize,
    /// Peers stored now.
    pub peers: usize,
}

/// The tracker's state. Owns no socket, clock or RNG.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    ids: ConnectionIds,
    swarms: SwarmTable,
    requests: RateLimiter,
    punches: RateLimiter,
    out: VecDeque<Transmit>,
    stats: Stats,
    next_expiry: Instant,
}

impl Tracker {
    /// A tracker with `config`; `key` (32 random bytes) signs connection ids,
    /// `seed` drives which peers answers list.
    pub fn new(
        config: TrackerConfig,
        key: [u8; 32],
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = SwarmLimits {
            max_swarms: config.max_swarms,
            max_peers_per_swarm: config.max_peers_per_swarm,
            max_peers: config.max_peers,
            ttl: config.interval.saturating_mul(2),
        };
        Ok(Self {
            ids: ConnectionIds::new(key, now),
            swarms: SwarmTable::new(limits, seed, now),
            requests: RateLimiter::new(config.requests, config.max_rate_buckets, now),
            punches: RateLimiter::new(config.punches, config.max_rate_buckets, now),
            out: VecDeque::new(),
            stats: Stats::default(),
            next_expiry: now + config.expiry_period,
            config,
        })
    }

    /// Handles one received datagram from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams += 1;
        // A dual-stack socket shows IPv4 clients as IPv4-mapped; they are
        // IPv4 clients and get IPv4 peers.
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        if datagram.len() > MAX_REQUEST_LEN {
            self.stats.dropped += 1;
            return;
        }
        match Request::parse(datagram) {
            Ok(request) => self.handle_request(now, source, request),
            Err(e) if e.deserves_error_reply() => self.handle_bad_content(now, source, datagram, e),
            Err(_) => self.stats.dropped += 1,
        }
    }

    fn handle_request(&mut self, now: Instant, source: SocketAddr, request: Request) {
        if !self.requests.allow(now, source.ip()) {
            self.stats.rate_limited += 1;
            return;
        }
        if let Request::Connect { transaction_id } = request {
            self.stats.connects += 1;
            let connection_id = self.ids.issue(source, now);
            self.send(
                source,
                &Response::Connect {
                    transaction_id,
                    connection_id,
                },
            );
            return;
        }
        if !self.ids.check(request.connection_id(), source, now) {
            // A spoofed or stale source: answering would reflect.
            self.stats.dropped += 1;
            return;
        }
        match request {
            Request::Connect { .. } => {}
            Request::Announce(a) => self.announce(now, source, &a),
            Request::Scrape(s) => {
                self.stats.scrapes += 1;
                let stats = s
                    .info_hashes
                    .iter()
                    .map(|h| self.swarms.scrape(h))
                    .collect();
                self.send(
                    source,
                    &Response::Scrape {
                        transaction_id: s.transaction_id,
                        stats,
                    },
                );
            }
            Request::Address { transaction_id, .. } => {
                self.stats.addresses += 1;
                self.send(
                    source,
                    &Response::Address {
                        transaction_id,
                        address: source,
                    },
                );
            }
            Request::Punch(p) => self.punch(now, source, &p),
        }
    }

    fn announce(&mut self, now: Instant, source: SocketAddr, a: &AnnounceRequest) {
        self.stats.announces += 1;
        let family = Family::of(source);
        let cap = match family {
            Family::V4 => self.config.max_num_want_v4,
            Family::V6 => self.config.max_num_want_v6,
        };
        let num_want = usize::try_from(a.num_want)
            .unwrap_or(self.config.default_num_want)
            .min(cap);
        // Port 0 lists the UDP source port; the `ip` field is never trusted.
        let port = if a.port == 0 { source.port() } else { a.port };
        let outcome = self.swarms.announce(
            now,
            &AnnounceInput {
                info_hash: a.info_hash,
                listed: SocketAddr::new(source.ip(), port),
                source_port: source.port(),
                seeder: a.left == 0,
                event: a.event,
                num_want,
            },
        );
        if outcome.stored == Stored::Refused {
            self.stats.refused += 1;
        }
        let peers = match family {
            Family::V4 => PeerList::V4(
                outcome
                    .peers
                    .iter()
                    .filter_map(|p| match p {
                        SocketAddr::V4(v4) => Some(*v4),
                        SocketAddr::V6(_) => None,
                    })
                    .collect(),
            ),
            Family::V6 => PeerList::V6(
                outcome
                    .peers
                    .iter()
                    .filter_map(|p| match p {
                        SocketAddr::V6(v6) => Some(*v6),
                        SocketAddr::V4(_) => None,
                    })
                    .collect(),
            ),
        };
        let interval = u32::try_from(self.config.interval.as_secs()).unwrap_or(u32::MAX);
        self.send(
            source,
            &Response::Announce(AnnounceResponse {
                transaction_id: a.transaction_id,
                interval,
                leechers: outcome.stats.leechers,
                seeders: outcome.stats.seeders,
                peers,
            }),
        );
    }

    fn punch(&mut self, now: Instant, source: SocketAddr, p: &PunchRequest) {
        if !self.punches.allow(now, source.ip()) {
            self.stats.rate_limited += 1;
            return;
        }
        self.stats.punches += 1;
        let target = SocketAddr::new(p.target.ip().to_canonical(), p.target.port());
        // Same family only: then the notify (the request minus 8 bytes)
        // is never larger than the request.
        let found = (Family::of(target) == Family::of(source))
            .then(|| self.swarms.punch_target(now, &p.info_hash, target))
            .flatten();
        let result = match found {
            Some(at) => {
                self.stats.notifies += 1;
                self.send(
                    at,
                    &Response::PunchNotify {
                        transaction_id: 0,
                        info_hash: p.info_hash,
                        peer: source,
                    },
                );
                PunchResult::Notified(at)
            }
            None => PunchResult::UnknownTarget,
        };
        self.send(
            source,
            &Response::Punch {
                transaction_id: p.transaction_id,
                result,
            },
        );
    }

    /// A whole header with bad content: an error reply, but only to a
    /// source that proved its address, and within its rate.
    fn handle_bad_content(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        error: ProtoError,
    ) {
        let Ok(header) = RequestHeader::peek(datagram) else {
            self.stats.dropped += 1;
            return;
        };
        if header.action == ACTION_CONNECT || !self.ids.check(header.connection_id, source, now) {
            self.stats.dropped += 1;
            return;
        }
        if !self.requests.allow(now, source.ip()) {
            self.stats.rate_limited += 1;
            return;
        }
        let message = match error {
            ProtoError::UnknownAction(_) => "unknown action",
            ProtoError::BadEvent(_) => "unknown event",
            ProtoError::BadScrapeCount(_) => "scrape needs 1 to 74 info hashes",
            ProtoError::BadFamily(_) => "endpoint family must be 4 or 6",
            _ => "bad request",
        };
        self.stats.errors += 1;
        self.send(
            source,
            &Response::Error {
                transaction_id: header.transaction_id,
                message: message.to_owned(),
            },
        );
    }

    fn send(&mut self, destination: SocketAddr, response: &Response) {
        if self.out.len() >= MAX_QUEUED {
            // The caller is not draining; dropping is what UDP does anyway.
            return;
        }
        let mut payload = Vec::with_capacity(response.encoded_len());
        response.write(&mut payload);
        self.out.push_back(Transmit {
            destination,
            payload,
        });
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Runs the periodic sweep (expired peers, idle rate buckets) when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_expiry {
            return;
        }
        self.swarms.expire(now);
        self.requests.purge(now);
        self.punches.purge(now);
        self.next_expiry = now + self.config.expiry_period;
    }

    /// When [`Tracker::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_expiry
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            swarms: self.swarms.swarm_count(),
            peers: self.swarms.peer_count(),
            ..self.stats
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Checks the swarm table's bookkeeping (tests and fuzzing).
    #[cfg(any(test, fuzzing))]
    pub fn check_invariants(&self) {
        self.swarms.check_invariants();
    }
}

#[cfg(test)]
mod tests;
