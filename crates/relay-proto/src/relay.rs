//! The relay without its sockets: registrations by tag, pending invitations
//! with deadlines, spliced pairs, and the caps on all of them
//! (`docs/protocol/relay.md` §4–§6).
//!
//! The shell gives every TCP connection a [`ConnId`] and calls, in any order:
//! [`Relay::handle_connection`] when one opens, [`Relay::handle_message`] for
//! each message read, [`Relay::handle_malformed`] when bytes do not parse,
//! [`Relay::handle_closed`] when one ends, and [`Relay::handle_timeout`] when
//! [`Relay::poll_timeout`] is due. After each call it drains
//! [`Relay::poll_output`] and does what each [`Output`] says, in order.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use keys::PeerId;

use crate::config::{ConfigError, RelayConfig};
use crate::derive::{FolderTag, SessionId};
use crate::error::ProtoError;
use crate::message::{ClientMessage, ErrorCode, MAX_PEERS, RelayMessage};

/// The shell's name for one TCP connection; never reused while the relay
/// knows the connection.
pub type ConnId = u64;

/// How often deadlines are checked (so they fire up to this much late).
pub const SWEEP: Duration = Duration::from_secs(1);

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write `message` on `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// What to write.
        message: RelayMessage,
    },
    /// Close `conn` once what was queued for it is written. The relay has
    /// already forgotten it; [`Relay::handle_closed`] for it is a no-op.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Write [`RelayMessage::Spliced`] on `dialer`, then on `acceptor`, then
    /// copy bytes between them until either ends; then call
    /// [`Relay::handle_closed`] for both.
    Splice {
        /// Q's connection (it sent Connect).
        dialer: ConnId,
        /// P's connection (it sent Accept).
        acceptor: ConnId,
    },
}

/// Counters and table sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections that have not sent their first message.
    pub fresh: usize,
    /// Control connections (registrations).
    pub controls: usize,
    /// Invitations waiting for an Accept.
    pub pending: usize,
    /// Spliced pairs.
    pub pairs: usize,
    /// Sources with at least one connection counted.
    pub sources: usize,
    /// Connections or requests refused for a cap.
    pub refused: u64,
    /// Invitations that expired or whose target went away.
    pub expired: u64,
    /// Pairs spliced so far.
    pub spliced: u64,
    /// Connections closed for malformed or unexpected input.
    pub violations: u64,
}

/// Whom a per-source cap counts: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h, ..] = v6.octets();
                Self::V6([a, b, c, d, e, f, g, h])
            }
        }
    }
}

/// Per-source counts of what the caps limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    fresh: usize,
    controls: usize,
    pending: usize,
    spliced: usize,
}

impl Counts {
    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// What one connection is, by its first message.
#[derive(Debug, Clone, Copy)]
enum Conn {
    Fresh {
        deadline: Instant,
    },
    Control {
        tag: FolderTag,
        peer: PeerId,
        last_heard: Instant,
    },
    Dialer {
        session: SessionId,
    },
    Spliced {
        partner: ConnId,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    source: Source,
    conn: Conn,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    dialer: ConnId,
    target: ConnId,
    deadline: Instant,
}

/// The relay's whole state, sans-IO: see the module doc for how to drive it.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    conns: HashMap<ConnId, Entry>,
    counts: HashMap<Source, Counts>,
    /// Per tag, (peer, control connection), at most `max_per_tag`.
    tags: HashMap<FolderTag, Vec<(PeerId, ConnId)>>,
    pending: HashMap<SessionId, Pending>,
    totals: Counts,
    pairs: usize,
    session_key: [u8; 32],
    session_counter: u64,
    /// xorshift state for lookup starting points (not security relevant).
    rng: u64,
    next_sweep: Instant,
    out: VecDeque<Output>,
    stats: Stats,
}

impl Relay {
    /// A relay with no connections. `session_key` must be secret and random
    /// (session ids are keyed hashes of a counter under it); `seed` varies
    /// lookup answers.
    pub fn new(
        config: RelayConfig,
        session_key: [u8; 32],
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            conns: HashMap::new(),
            counts: HashMap::new(),
            tags: HashMap::new(),
            pending: HashMap::new(),
            totals: Counts::default(),
            pairs: 0,
            session_key,
            session_counter: 0,
            rng: seed | 1,
            next_sweep: now + SWEEP,
            out: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// A new connection from `ip`. `Err` means it is over a cap: write the
    /// preamble and this error, then close it (the relay does not track it).
    pub fn handle_connection(
        &mut self,
        now: Instant,
        conn: ConnId,
        ip: IpAddr,
    ) -> Result<(), ErrorCode> {
        let source = Source::of(ip);
        let counts = self.counts.get(&source).copied().unwrap_or_default();
        let refusal = if self.conns.contains_key(&conn) {
            // A reused id is the shell's bug; refusing keeps the tables sane.
            Some(ErrorCode::Protocol)
        } else if counts.fresh >= self.config.max_fresh_per_source {
            Some(ErrorCode::AddressLimit)
        } else if self.totals.fresh >= self.config.max_fresh {
            Some(ErrorCode::Full)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.stats.refused += 1;
            return Err(code);
        }
        let deadline = now + self.config.first_message_timeout;
        self.conns.insert(
            conn,
            Entry {
                source,
                conn: Conn::Fresh { deadline },
            },
        );
        self.count(source, |c| &mut c.fresh, true);
        Ok(())
    }

    /// A message read from `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, message: ClientMessage) {
        let Some(entry) = self.conns.get(&conn).copied() else {
            return;
        };
        match (entry.conn, message) {
            (Conn::Fresh { .. }, ClientMessage::Register { tag, peer }) => {
                self.register(now, conn, entry.source, tag, peer);
            }
            (Conn::Fresh { .. }, ClientMessage::Lookup { tag }) => {
                let peers = self.lookup(&tag, None);
                self.forget(conn);
                self.send(conn, RelayMessage::Peers(peers));
                self.out.push_back(Output::Close { conn });
            }
            (
                Conn::Fresh { .. },
                ClientMessage::Connect {
                    tag,
                    target,
                    from,
                    token,
                },
            ) => self.connect(now, conn, entry.source, tag, target, from, token),
            (Conn::Fresh { .. }, ClientMessage::Accept { session }) => {
                self.accept(conn, entry.source, session);
            }
            (Conn::Control { .. }, ClientMessage::Ping) => {
                self.heard(conn, now);
                self.send(conn, RelayMessage::Pong);
            }
            (Conn::Control { peer, .. }, ClientMessage::Lookup { tag: asked }) => {
                self.heard(conn, now);
                let peers = self.lookup(&asked, Some(peer));
                self.send(conn, RelayMessage::Peers(peers));
            }
            _ => self.violation(conn, ErrorCode::Protocol),
        }
    }

    /// Bytes from `conn` that are not a preamble or message: it is closed,
    /// after an error answer unless it is no relay client at all.
    pub fn handle_malformed(&mut self, conn: ConnId, error: &ProtoError) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        match error {
            ProtoError::BadMagic(_) => {
                self.stats.violations += 1;
                self.forget(conn);
                self.out.push_back(Output::Close { conn });
            }
            ProtoError::UnsupportedVersion(_) => self.violation(conn, ErrorCode::Version),
            _ => self.violation(conn, ErrorCode::Protocol),
        }
    }

    /// `conn` ended (either side closed it, or the shell gave up on it).
    pub fn handle_closed(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.forget(conn);
        }
    }

    /// Runs the deadlines that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP;
        let control_timeout = self.config.control_timeout;
        let mut dead: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, e)| match e.conn {
                Conn::Fresh { deadline } => now >= deadline,
                Conn::Control { last_heard, .. } => {
                    now.saturating_duration_since(last_heard) >= control_timeout
                }
                Conn::Dialer { .. } | Conn::Spliced { .. } => false,
            })
            .map(|(id, _)| *id)
            .collect();
        dead.sort_unstable();
        for conn in dead {
            self.forget(conn);
            self.out.push_back(Output::Close { conn });
        }
        let mut expired: Vec<(ConnId, SessionId)> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(s, p)| (p.dialer, *s))
            .collect();
        expired.sort_unstable_by_key(|(d, _)| *d);
        for (dialer, _) in expired {
            self.stats.expired += 1;
            self.refuse(dialer, ErrorCode::NotAccepted);
        }
    }

    /// When [`Relay::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Counters and table sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            fresh: self.totals.fresh,
            controls: self.totals.controls,
            pending: self.totals.pending,
            pairs: self.pairs,
            sources: self.counts.len(),
            ..self.stats
        }
    }

    fn register(
        &mut self,
        now: Instant,
        conn: ConnId,
        source: Source,
        tag: FolderTag,
        peer: PeerId,
    ) {
        let counts = self.counts.get(&source).copied().unwrap_or_default();
        let existing = self
            .tags
            .get(&tag)
            .and_then(|v| v.iter().find(|(p, _)| *p == peer).map(|(_, c)| *c));
        let tag_len = self.tags.get(&tag).map_or(0, Vec::len);
        // A replacement frees its old slot (possibly of another source).
        let replaced_same_source = existing
            .and_then(|c| self.conns.get(&c))
            .is_some_and(|e| e.source == source);
        let source_controls = counts
            .controls
            .saturating_sub(usize::from(replaced_same_source));
        let total_controls = self
            .totals
            .controls
            .saturating_sub(usize::from(existing.is_some()));
        let refusal = if source_controls >= self.config.max_controls_per_source {
            Some(ErrorCode::AddressLimit)
        } else if total_controls >= self.config.max_controls
            || (existing.is_none() && tag_len >= self.config.max_per_tag)
        {
            Some(ErrorCode::Full)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.stats.refused += 1;
            self.refuse(conn, code);
            return;
        }
        if let Some(old) = existing {
            self.refuse(old, ErrorCode::Replaced);
        }
        self.count(source, |c| &mut c.fresh, false);
        self.count(source, |c| &mut c.controls, true);
        if let Some(e) = self.conns.get_mut(&conn) {
            e.conn = Conn::Control {
                tag,
                peer,
                last_heard: now,
            };
        }
        self.tags.entry(tag).or_default().push((peer, conn));
        self.send(conn, RelayMessage::Registered);
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        &mut self,
        now: Instant,
        conn: ConnId,
        source: Source,
        tag: FolderTag,
        target: PeerId,
        from: PeerId,
        token: crate::PairingToken,
    ) {
        let Some(control) = self
            .tags
            .get(&tag)
            .and_then(|v| v.iter().find(|(p, _)| *p == target).map(|(_, c)| *c))
        else {
            self.refuse(conn, ErrorCode::UnknownPeer);
            return;
        };
        let counts = self.counts.get(&source).copied().unwrap_or_default();
        let refusal = if counts.pending >= self.config.max_pending_per_source
            || counts.spliced >= self.config.max_spliced_per_source
        {
            Some(ErrorCode::AddressLimit)
        } else if self.totals.pending >= self.config.max_pending
            || self.pairs >= self.config.max_pairs
        {
            Some(ErrorCode::Full)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.stats.refused += 1;
            self.refuse(conn, code);
            return;
        }
        let session = self.next_session();
        self.count(source, |c| &mut c.fresh, false);
        self.count(source, |c| &mut c.pending, true);
        if let Some(e) = self.conns.get_mut(&conn) {
            e.conn = Conn::Dialer { session };
        }
        self.pending.insert(
            session,
            Pending {
                dialer: conn,
                target: control,
                deadline: now + self.config.invite_timeout,
            },
        );
        self.send(
            control,
            RelayMessage::Invite {
                from,
                token,
                session,
            },
        );
    }

    fn accept(&mut self, conn: ConnId, source: Source, session: SessionId) {
        let Some(p) = self.pending.get(&session).copied() else {
            self.refuse(conn, ErrorCode::UnknownSession);
            return;
        };
        let Some(dialer_source) = self.conns.get(&p.dialer).map(|e| e.source) else {
            self.refuse(conn, ErrorCode::UnknownSession);
            return;
        };
        let acceptor_spliced = self.counts.get(&source).map_or(0, |c| c.spliced);
        let dialer_spliced = self.counts.get(&dialer_source).map_or(0, |c| c.spliced);
        // Both connections of a pair from one source count twice.
        let both = usize::from(source == dialer_source);
        let refusal = if acceptor_spliced + both >= self.config.max_spliced_per_source
            || dialer_spliced >= self.config.max_spliced_per_source
        {
            Some(ErrorCode::AddressLimit)
        } else if self.pairs >= self.config.max_pairs {
            Some(ErrorCode::Full)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.stats.refused += 1;
            self.refuse(p.dialer, code);
            self.refuse(conn, code);
            return;
        }
        self.pending.remove(&session);
        self.count(dialer_source, |c| &mut c.pending, false);
        self.count(dialer_source, |c| &mut c.spliced, true);
        self.count(source, |c| &mut c.fresh, false);
        self.count(source, |c| &mut c.spliced, true);
        if let Some(e) = self.conns.get_mut(&p.dialer) {
            e.conn = Conn::Spliced { partner: conn };
        }
        if let Some(e) = self.conns.get_mut(&conn) {
            e.conn = Conn::Spliced { partner: p.dialer };
        }
        self.pairs += 1;
        self.stats.spliced += 1;
        self.out.push_back(Output::Splice {
            dialer: p.dialer,
            acceptor: conn,
        });
    }

    /// Up to [`MAX_PEERS`] ids under `tag`, from a varying start, without
    /// `except`.
    fn lookup(&mut self, tag: &FolderTag, except: Option<PeerId>) -> Vec<PeerId> {
        let start = self.next_random();
        let Some(list) = self.tags.get(tag) else {
            return Vec::new();
        };
        let n = list.len();
        if n == 0 {
            return Vec::new();
        }
        let start = usize::try_from(start % n as u64).unwrap_or(0);
        list.iter()
            .cycle()
            .skip(start)
            .take(n)
            .map(|(p, _)| *p)
            .filter(|p| Some(*p) != except)
            .take(MAX_PEERS)
            .collect()
    }

    /// Sends `code` on `conn` and closes it.
    fn refuse(&mut self, conn: ConnId, code: ErrorCode) {
        self.forget(conn);
        self.send(conn, RelayMessage::Error(code));
        self.out.push_back(Output::Close { conn });
    }

    fn violation(&mut self, conn: ConnId, code: ErrorCode) {
        self.stats.violations += 1;
        // A spliced connection never gets relay messages: its bytes belong
        // to the peers.
        let spliced = matches!(
            self.conns.get(&conn).map(|e| e.conn),
            Some(Conn::Spliced { .. })
        );
        if spliced {
            self.forget(conn);
            self.out.push_back(Output::Close { conn });
        } else {
            self.refuse(conn, code);
        }
    }

    /// Removes `conn` and everything that hangs on it.
    fn forget(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.remove(&conn) else {
            return;
        };
        let source = entry.source;
        match entry.conn {
            Conn::Fresh { .. } => self.count(source, |c| &mut c.fresh, false),
            Conn::Control { tag, .. } => {
                self.count(source, |c| &mut c.controls, false);
                if let Some(list) = self.tags.get_mut(&tag) {
                    list.retain(|(_, c)| *c != conn);
                    if list.is_empty() {
                        self.tags.remove(&tag);
                    }
                }
                // Invitations to it can no longer be accepted.
                let mut orphans: Vec<ConnId> = self
                    .pending
                    .values()
                    .filter(|p| p.target == conn)
                    .map(|p| p.dialer)
                    .collect();
                orphans.sort_unstable();
                for dialer in orphans {
                    self.stats.expired += 1;
                    self.refuse(dialer, ErrorCode::NotAccepted);
                }
            }
            Conn::Dialer { session } => {
                self.count(source, |c| &mut c.pending, false);
                self.pending.remove(&session);
            }
            Conn::Spliced { partner } => {
                self.count(source, |c| &mut c.spliced, false);
                self.pairs = self.pairs.saturating_sub(1);
                if let Some(other) = self.conns.remove(&partner) {
                    self.count(other.source, |c| &mut c.spliced, false);
                }
            }
        }
    }

    fn heard(&mut self, conn: ConnId, now: Instant) {
        if let Some(Entry {
            conn: Conn::Control { last_heard, .. },
            ..
        }) = self.conns.get_mut(&conn)
        {
            *last_heard = now;
        }
    }

    fn send(&mut self, conn: ConnId, message: RelayMessage) {
        self.out.push_back(Output::Send { conn, message });
    }

    /// Adjusts one per-source count and its total; drops empty sources so
    /// the table stays as small as the set of connections.
    fn count(&mut self, source: Source, field: fn(&mut Counts) -> &mut usize, up: bool) {
        let counts = self.counts.entry(source).or_default();
        let f = field(counts);
        let t = field(&mut self.totals);
        if up {
            *f += 1;
            *t += 1;
        } else {
            *f = f.saturating_sub(1);
            *t = t.saturating_sub(1);
        }
        if counts.is_zero() {
            self.counts.remove(&source);
        }
    }

    fn next_session(&mut self) -> SessionId {
        self.session_counter += 1;
        SessionId(
            *blake3::keyed_hash(&self.session_key, &self.session_counter.to_be_bytes()).as_bytes(),
        )
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests;
