//! Requests, client to tracker: `connection_id u64 | action u32 |
//! transaction_id u32 | body` (`docs/protocol/tracker.md` §3–§5).

use std::net::SocketAddr;

use crate::codec::{Reader, endpoint_len, put_endpoint};
use crate::error::ProtoError;
use crate::{
    ACTION_ADDRESS, ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_PUNCH, ACTION_SCRAPE, InfoHash,
    MAX_REQUEST_LEN, MAX_SCRAPE_HASHES, PROTOCOL_ID, PeerId,
};

/// Bytes of the header every request starts with.
pub const REQUEST_HEADER_LEN: usize = 16;
/// Bytes of an announce request without BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

/// The announce event (BEP 15 numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// 0: a regular re-announce.
    None,
    /// 1: the download completed.
    Completed,
    /// 2: the first announce of a session.
    Started,
    /// 3: the peer leaves the swarm; the tracker forgets it.
    Stopped,
}

impl Event {
    /// The wire number.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The event for a wire number, if it is one.
    pub fn from_u32(n: u32) -> Option<Self> {
        match n {
            0 => Some(Self::None),
            1 => Some(Self::Completed),
            2 => Some(Self::Started),
            3 => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// The first 16 bytes of any request, readable even when the body is bad (a
/// server needs the transaction id to answer with an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The connection id ([`PROTOCOL_ID`] in a connect request).
    pub connection_id: u64,
    /// The action number.
    pub action: u32,
    /// Chosen by the client, echoed in the response.
    pub transaction_id: u32,
}

impl RequestHeader {
    /// Reads the header of `datagram`, ignoring what follows.
    pub fn peek(datagram: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(datagram);
        Ok(Self {
            connection_id: r.u64("connection id")?,
            action: r.u32("action")?,
            transaction_id: r.u32("transaction id")?,
        })
    }
}

/// BEP 15 announce: "I am in swarm `info_hash`, give me peers".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// From the connect response.
    pub connection_id: u64,
    /// Echoed in the response.
    pub transaction_id: u32,
    /// The swarm.
    pub info_hash: InfoHash,
    /// The client's peer id (not used by this tracker, kept for the round trip).
    pub peer_id: PeerId,
    /// Bytes downloaded this session.
    pub downloaded: u64,
    /// Bytes left; 0 makes the peer a seeder.
    pub left: u64,
    /// Bytes uploaded this session.
    pub uploaded: u64,
    /// The event.
    pub event: Event,
    /// IPv4 address the client asks to be listed at; 0 means the source
    /// address. This tracker always lists the source address.
    pub ip: u32,
    /// Client key (unused here).
    pub key: u32,
    /// Peers wanted; negative means the tracker's default.
    pub num_want: i32,
    /// The port to list; 0 asks the tracker to list the UDP source port (a
    /// swarmsync extension, §4.3 of the spec).
    pub port: u16,
}

/// BEP 15 scrape: counts for up to [`MAX_SCRAPE_HASHES`] swarms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// From the connect response.
    pub connection_id: u64,
    /// Echoed in the response.
    pub transaction_id: u32,
    /// The swarms, 1..=74 of them.
    pub info_hashes: Vec<InfoHash>,
}

/// swarmsync punch: "tell the peer at `target` in swarm `info_hash` to send
/// to me".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchRequest {
    /// From the connect response.
    pub connection_id: u64,
    /// Echoed in the response.
    pub transaction_id: u32,
    /// The swarm the target announced.
    pub info_hash: InfoHash,
    /// The target as an announce response listed it.
    pub target: SocketAddr,
}

/// Any request a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// BEP 15 connect: asks for a connection id.
    Connect {
        /// Echoed in the response.
        transaction_id: u32,
    },
    /// BEP 15 announce.
    Announce(AnnounceRequest),
    /// BEP 15 scrape.
    Scrape(ScrapeRequest),
    /// swarmsync: "what is my public address".
    Address {
        /// From the connect response.
        connection_id: u64,
        /// Echoed in the response.
        transaction_id: u32,
    },
    /// swarmsync: hole-punch coordination.
    Punch(PunchRequest),
}

impl Request {
    /// The connection id the request carries ([`PROTOCOL_ID`] for connect).
    pub fn connection_id(&self) -> u64 {
        match self {
            Self::Connect { .. } => PROTOCOL_ID,
            Self::Announce(a) => a.connection_id,
            Self::Scrape(s) => s.connection_id,
            Self::Address { connection_id, .. } => *connection_id,
            Self::Punch(p) => p.connection_id,
        }
    }

    /// The client's transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id } | Self::Address { transaction_id, .. } => {
                *transaction_id
            }
            Self::Announce(a) => a.transaction_id,
            Self::Scrape(s) => s.transaction_id,
            Self::Punch(p) => p.transaction_id,
        }
    }

    /// The action number.
    pub fn action(&self) -> u32 {
        match self {
            Self::Connect { .. } => ACTION_CONNECT,
            Self::Announce(_) => ACTION_ANNOUNCE,
            Self::Scrape(_) => ACTION_SCRAPE,
            Self::Address { .. } => ACTION_ADDRESS,
            Self::Punch(_) => ACTION_PUNCH,
        }
    }

    /// Reads one request datagram. Bytes after a request's fixed layout are
    /// ignored (BEP 41 options after an announce; room for extensions after
    /// the others), except in a scrape, whose whole body is info hashes.
    pub fn parse(datagram: &[u8]) -> Result<Self, ProtoError> {
        if datagram.len() > MAX_REQUEST_LEN {
            return Err(ProtoError::TooLong {
                len: datagram.len(),
                max: MAX_REQUEST_LEN,
            });
        }
        let mut r = Reader::new(datagram);
        let connection_id = r.u64("connection id")?;
        let action = r.u32("action")?;
        let transaction_id = r.u32("transaction id")?;
        match action {
            ACTION_CONNECT => {
                if connection_id != PROTOCOL_ID {
                    return Err(ProtoError::BadProtocolId(connection_id));
                }
                Ok(Self::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                let info_hash = r.array("info hash")?;
                let peer_id = r.array("peer id")?;
                let downloaded = r.u64("downloaded")?;
                let left = r.u64("left")?;
                let uploaded = r.u64("uploaded")?;
                let event_n = r.u32("event")?;
                let ip = r.u32("ip")?;
                let key = r.u32("key")?;
                let num_want = r.i32("num_want")?;
                let port = r.u16("port")?;
                // Read everything before judging the event: a truncated
                // datagram is garbage (dropped), a bad event is content.
                let event = Event::from_u32(event_n).ok_or(ProtoError::BadEvent(event_n))?;
                Ok(Self::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash,
                    peer_id,
                    downloaded,
                    left,
                    uploaded,
                    event,
                    ip,
                    key,
                    num_want,
                    port,
                }))
            }
            ACTION_SCRAPE => {
                let body = r.rest();
                if !body.len().is_multiple_of(20) {
                    return Err(ProtoError::RaggedList {
                        what: "scrape request body",
                        len: body.len(),
                        item: 20,
                    });
                }
                let count = body.len() / 20;
                if count == 0 || count > MAX_SCRAPE_HASHES {
                    return Err(ProtoError::BadScrapeCount(count));
                }
                let info_hashes = body
                    .chunks_exact(20)
                    .map(|c| {
                        let mut h = [0u8; 20];
                        h.copy_from_slice(c);
                        h
                    })
                    .collect();
                Ok(Self::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                }))
            }
            ACTION_ADDRESS => Ok(Self::Address {
                connection_id,
                transaction_id,
            }),
            ACTION_PUNCH => {
                let info_hash = r.array("info hash")?;
                let target = r.endpoint()?;
                Ok(Self::Punch(PunchRequest {
                    connection_id,
                    transaction_id,
                    info_hash,
                    target,
                }))
            }
            other => Err(ProtoError::UnknownAction(other)),
        }
    }

    /// Appends the datagram for this request to `out`. A scrape with more
    /// than [`MAX_SCRAPE_HASHES`] hashes is written as given; the tracker
    /// drops it, so split larger scrapes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.connection_id().to_be_bytes());
        out.extend_from_slice(&self.action().to_be_bytes());
        out.extend_from_slice(&self.transaction_id().to_be_bytes());
        match self {
            Self::Connect { .. } | Self::Address { .. } => {}
            Self::Announce(a) => {
                out.extend_from_slice(&a.info_hash);
                out.extend_from_slice(&a.peer_id);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                out.extend_from_slice(&a.event.to_u32().to_be_bytes());
                out.extend_from_slice(&a.ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Self::Scrape(s) => {
                for h in &s.info_hashes {
                    out.extend_from_slice(h);
                }
            }
            Self::Punch(p) => {
                out.extend_from_slice(&p.info_hash);
                put_endpoint(out, p.target);
            }
        }
    }

    /// Bytes [`Request::write`] appends.
    pub fn encoded_len(&self) -> usize {
        REQUEST_HEADER_LEN
            + match self {
                Self::Connect { .. } | Self::Address { .. } => 0,
                Self::Announce(_) => ANNOUNCE_REQUEST_LEN - REQUEST_HEADER_LEN,
                Self::Scrape(s) => 20 * s.info_hashes.len(),
                Self::Punch(p) => 20 + endpoint_len(p.target),
            }
    }
}
