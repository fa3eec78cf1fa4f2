//! Responses, tracker to client: `action u32 | transaction_id u32 | body`
//! (`docs/protocol/tracker.md` §3–§5), and the punch notify the tracker sends
//! unasked.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::codec::{Reader, endpoint_len, put_compact, put_endpoint};
use crate::error::ProtoError;
use crate::{
    ACTION_ADDRESS, ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_PUNCH,
    ACTION_PUNCH_NOTIFY, ACTION_SCRAPE, Family, InfoHash, MAX_ERROR_MESSAGE, MAX_PARSED_PEERS,
    MAX_SCRAPE_HASHES,
};

/// Bytes of the header every response starts with.
pub const RESPONSE_HEADER_LEN: usize = 8;
/// Bytes of an announce response before its peers.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Punch status: the target was notified.
pub const PUNCH_NOTIFIED: u8 = 0;
/// Punch status: no such peer announced that swarm recently.
pub const PUNCH_UNKNOWN_TARGET: u8 = 1;

/// Peers of an announce response, all of the family the request came over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerList {
    /// 6 bytes each on the wire.
    V4(Vec<SocketAddrV4>),
    /// 18 bytes each on the wire.
    V6(Vec<SocketAddrV6>),
}

impl PeerList {
    /// An empty list of `family`.
    pub fn empty(family: Family) -> Self {
        match family {
            Family::V4 => Self::V4(Vec::new()),
            Family::V6 => Self::V6(Vec::new()),
        }
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        match self {
            Self::V4(v) => v.len(),
            Self::V6(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The peers as plain socket addresses.
    pub fn to_vec(&self) -> Vec<SocketAddr> {
        match self {
            Self::V4(v) => v.iter().copied().map(SocketAddr::V4).collect(),
            Self::V6(v) => v.iter().copied().map(SocketAddr::V6).collect(),
        }
    }

    fn item_len(&self) -> usize {
        match self {
            Self::V4(_) => 6,
            Self::V6(_) => 18,
        }
    }
}

/// BEP 15 announce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// From the request.
    pub transaction_id: u32,
    /// Seconds until the client should announce again.
    pub interval: u32,
    /// Peers in the swarm still downloading.
    pub leechers: u32,
    /// Peers in the swarm with everything (`left == 0`).
    pub seeders: u32,
    /// Other peers of the swarm.
    pub peers: PeerList,
}

/// One swarm's counts in a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Peers with `left == 0`.
    pub seeders: u32,
    /// Announces with event `completed` the tracker has seen since it started.
    pub completed: u32,
    /// Peers with `left > 0`.
    pub leechers: u32,
}

/// What a punch request achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchResult {
    /// The target was sent a punch notify at this endpoint (its UDP source as
    /// the tracker saw it, which may differ from the listed port).
    Notified(SocketAddr),
    /// No peer announced the swarm from that endpoint recently (or it is of
    /// another address family than the requester).
    UnknownTarget,
}

/// Any datagram a tracker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// BEP 15 connect response.
    Connect {
        /// From the request.
        transaction_id: u32,
        /// To put in the next requests, valid about two minutes.
        connection_id: u64,
    },
    /// BEP 15 announce response.
    Announce(AnnounceResponse),
    /// BEP 15 scrape response, one entry per requested hash, in order.
    Scrape {
        /// From the request.
        transaction_id: u32,
        /// Counts, in the order of the request.
        stats: Vec<ScrapeStats>,
    },
    /// BEP 15 error response.
    Error {
        /// From the request.
        transaction_id: u32,
        /// Human-readable reason (at most [`MAX_ERROR_MESSAGE`] bytes read).
        message: String,
    },
    /// swarmsync: the requester's public endpoint.
    Address {
        /// From the request.
        transaction_id: u32,
        /// The source IP and port the tracker saw.
        address: SocketAddr,
    },
    /// swarmsync: the answer to a punch request.
    Punch {
        /// From the request.
        transaction_id: u32,
        /// Whether the target was notified.
        result: PunchResult,
    },
    /// swarmsync: sent unasked to a punch target: "peer `peer` of swarm
    /// `info_hash` is sending to you now; send to it".
    PunchNotify {
        /// Always 0 (the target asked nothing); ignored on receipt.
        transaction_id: u32,
        /// The swarm.
        info_hash: InfoHash,
        /// The requester's public endpoint as the tracker saw it.
        peer: SocketAddr,
    },
}

impl Response {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id, .. }
            | Self::Scrape { transaction_id, .. }
            | Self::Error { transaction_id, .. }
            | Self::Address { transaction_id, .. }
            | Self::Punch { transaction_id, .. }
            | Self::PunchNotify { transaction_id, .. } => *transaction_id,
            Self::Announce(a) => a.transaction_id,
        }
    }

    /// The action number.
    pub fn action(&self) -> u32 {
        match self {
            Self::Connect { .. } => ACTION_CONNECT,
            Self::Announce(_) => ACTION_ANNOUNCE,
            Self::Scrape { .. } => ACTION_SCRAPE,
            Self::Error { .. } => ACTION_ERROR,
            Self::Address { .. } => ACTION_ADDRESS,
            Self::Punch { .. } => ACTION_PUNCH,
            Self::PunchNotify { .. } => ACTION_PUNCH_NOTIFY,
        }
    }

    /// Reads one response datagram. `family` is the family of the socket the
    /// request went out on: it decides whether announce peers are 6 or 18
    /// bytes. At most [`MAX_PARSED_PEERS`] peers are read; the rest are
    /// ignored. An error message is read up to [`MAX_ERROR_MESSAGE`] bytes,
    /// invalid UTF-8 replaced.
    pub fn parse(datagram: &[u8], family: Family) -> Result<Self, ProtoError> {
        let mut r = Reader::new(datagram);
        let action = r.u32("action")?;
        let transaction_id = r.u32("transaction id")?;
        match action {
            ACTION_CONNECT => Ok(Self::Connect {
                transaction_id,
                connection_id: r.u64("connection id")?,
            }),
            ACTION_ANNOUNCE => {
                let interval = r.u32("interval")?;
                let leechers = r.u32("leechers")?;
                let seeders = r.u32("seeders")?;
                let body = r.rest();
                let item = match family {
                    Family::V4 => 6,
                    Family::V6 => 18,
                };
                if !body.len().is_multiple_of(item) {
                    return Err(ProtoError::RaggedList {
                        what: "announce response peers",
                        len: body.len(),
                        item,
                    });
                }
                let count = (body.len() / item).min(MAX_PARSED_PEERS);
                let mut peers = Reader::new(body);
                let peers = match family {
                    Family::V4 => {
                        let mut v = Vec::with_capacity(count);
                        for _ in 0..count {
                            if let SocketAddr::V4(a) = peers.compact_v4()? {
                                v.push(a);
                            }
                        }
                        PeerList::V4(v)
                    }
                    Family::V6 => {
                        let mut v = Vec::with_capacity(count);
                        for _ in 0..count {
                            if let SocketAddr::V6(a) = peers.compact_v6()? {
                                v.push(a);
                            }
                        }
                        PeerList::V6(v)
                    }
                };
                Ok(Self::Announce(AnnounceResponse {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }))
            }
            ACTION_SCRAPE => {
                let body = r.rest();
                if !body.len().is_multiple_of(12) {
                    return Err(ProtoError::RaggedList {
                        what: "scrape response body",
                        len: body.len(),
                        item: 12,
                    });
                }
                let count = body.len() / 12;
                if count > MAX_SCRAPE_HASHES {
                    return Err(ProtoError::BadScrapeCount(count));
                }
                let mut s = Reader::new(body);
                let mut stats = Vec::with_capacity(count);
                for _ in 0..count {
                    stats.push(ScrapeStats {
                        seeders: s.u32("seeders")?,
                        completed: s.u32("completed")?,
                        leechers: s.u32("leechers")?,
                    });
                }
                Ok(Self::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => {
                let body = r.rest();
                let body = body.get(..MAX_ERROR_MESSAGE).unwrap_or(body);
                Ok(Self::Error {
                    transaction_id,
                    message: String::from_utf8_lossy(body).into_owned(),
                })
            }
            ACTION_ADDRESS => Ok(Self::Address {
                transaction_id,
                address: r.endpoint()?,
            }),
            ACTION_PUNCH => {
                let result = match r.u8("punch status")? {
                    PUNCH_NOTIFIED => PunchResult::Notified(r.endpoint()?),
                    PUNCH_UNKNOWN_TARGET => PunchResult::UnknownTarget,
                    other => return Err(ProtoError::BadPunchStatus(other)),
                };
                Ok(Self::Punch {
                    transaction_id,
                    result,
                })
            }
            ACTION_PUNCH_NOTIFY => Ok(Self::PunchNotify {
                transaction_id,
                info_hash: r.array("info hash")?,
                peer: r.endpoint()?,
            }),
            other => Err(ProtoError::UnknownAction(other)),
        }
    }

    /// Appends the datagram for this response to `out`. An error message is
    /// written whole; keep it short (the server's are).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.action().to_be_bytes());
        out.extend_from_slice(&self.transaction_id().to_be_bytes());
        match self {
            Self::Connect { connection_id, .. } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Self::Announce(a) => {
                out.extend_from_slice(&a.interval.to_be_bytes());
                out.extend_from_slice(&a.leechers.to_be_bytes());
                out.extend_from_slice(&a.seeders.to_be_bytes());
                match &a.peers {
                    PeerList::V4(v) => {
                        for p in v {
                            put_compact(out, SocketAddr::V4(*p));
                        }
                    }
                    PeerList::V6(v) => {
                        for p in v {
                            put_compact(out, SocketAddr::V6(*p));
                        }
                    }
                }
            }
            Self::Scrape { stats, .. } => {
                for s in stats {
                    out.extend_from_slice(&s.seeders.to_be_bytes());
                    out.extend_from_slice(&s.completed.to_be_bytes());
                    out.extend_from_slice(&s.leechers.to_be_bytes());
                }
            }
            Self::Error { message, .. } => out.extend_from_slice(message.as_bytes()),
            Self::Address { address, .. } => put_endpoint(out, *address),
            Self::Punch { result, .. } => match result {
                PunchResult::Notified(at) => {
                    out.push(PUNCH_NOTIFIED);
                    put_endpoint(out, *at);
                }
                PunchResult::UnknownTarget => out.push(PUNCH_UNKNOWN_TARGET),
            },
            Self::PunchNotify {
                info_hash, peer, ..
            } => {
                out.extend_from_slice(info_hash);
                put_endpoint(out, *peer);
            }
        }
    }

    /// Bytes [`Response::write`] appends.
    pub fn encoded_len(&self) -> usize {
        RESPONSE_HEADER_LEN
            + match self {
                Self::Connect { .. } => 8,
                Self::Announce(a) => 12 + a.peers.len() * a.peers.item_len(),
                Self::Scrape { stats, .. } => 12 * stats.len(),
                Self::Error { message, .. } => message.len(),
                Self::Address { address, .. } => endpoint_len(*address),
                Self::Punch { result, .. } => match result {
                    PunchResult::Notified(at) => 1 + endpoint_len(*at),
                    PunchResult::UnknownTarget => 1,
                },
                Self::PunchNotify { peer, .. } => 20 + endpoint_len(*peer),
            }
    }
}
