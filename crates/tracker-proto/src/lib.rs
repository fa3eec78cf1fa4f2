//! The tracker protocol, sans-IO: BEP 15 (UDP tracker) messages, swarmsync's
//! extensions on the same port, stateless connection ids and the bounded
//! swarm table. The wire format is specified in `docs/protocol/tracker.md`.
//!
//! # Brief overview
//!
//! - [`Request`] (client → tracker) and [`Response`] (tracker → client) are
//!   the datagrams: `parse` reads one, `write` appends one to a buffer. A
//!   response's peer list depends on the address family the request went
//!   over, so [`Response::parse`] takes a [`Family`].
//! - [`ConnectionIds`] issues and checks BEP 15 connection ids without state.
//! - [`SwarmTable`] is the bounded table of swarms and peers, [`RateLimiter`]
//!   the per-source token buckets.
//! - [`Tracker`] is the whole server without its socket: feed it datagrams
//!   with [`Tracker::handle_datagram`], send what [`Tracker::poll_transmit`]
//!   returns, call [`Tracker::handle_timeout`] when [`Tracker::poll_timeout`]
//!   says.
//!
//! Nothing here owns a socket, a clock or a random number generator: time
//! comes in as `now: Instant`, keys and seeds as arguments.
//!
//! # Example: a client's connect and announce
//!
//! ```
//! use tracker_proto::{AnnounceRequest, Event, Family, Request, Response};
//!
//! // Connect: the tracker answers with a connection id.
//! let mut datagram = Vec::new();
//! Request::Connect { transaction_id: 7 }.write(&mut datagram);
//! assert_eq!(datagram.len(), 16);
//!
//! // A tracker's answer, as received from the socket.
//! let answer = [0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8];
//! let Ok(Response::Connect { transaction_id: 7, connection_id }) =
//!     Response::parse(&answer, Family::V4)
//! else {
//!     panic!("not a connect response");
//! };
//!
//! // Announce with it; port 0 would ask the tracker to list our UDP port.
//! let announce = Request::Announce(AnnounceRequest {
//!     connection_id,
//!     transaction_id: 8,
//!     info_hash: [0x11; 20],
//!     peer_id: *b"-SW0001-abcdefghijkl",
//!     downloaded: 0,
//!     left: 0,
//!     uploaded: 0,
//!     event: Event::Started,
//!     ip: 0,
//!     key: 0,
//!     num_want: -1,
//!     port: 41544,
//! });
//! datagram.clear();
//! announce.write(&mut datagram);
//! assert_eq!(Request::parse(&datagram), Ok(announce));
//! ```
#![forbid(unsafe_code)]

mod codec;
mod config;
mod conn_id;
mod error;
mod limit;
mod request;
mod response;
mod swarm;
mod tracker;

pub use config::{ConfigError, RateConfig, TrackerConfig};
pub use conn_id::{ConnectionIds, EPOCH};
pub use error::ProtoError;
pub use limit::RateLimiter;
pub use request::{
    ANNOUNCE_REQUEST_LEN, AnnounceRequest, Event, PunchRequest, REQUEST_HEADER_LEN, Request,
    RequestHeader, ScrapeRequest,
};
pub use response::{
    ANNOUNCE_RESPONSE_HEADER_LEN, AnnounceResponse, PUNCH_NOTIFIED, PUNCH_UNKNOWN_TARGET, PeerList,
    PunchResult, RESPONSE_HEADER_LEN, Response, ScrapeStats,
};
pub use swarm::{AnnounceInput, AnnounceOutcome, Stored, SwarmLimits, SwarmTable};
pub use tracker::{Stats, Tracker, Transmit};

/// A swarm's name: the BitTorrent info hash (swarmsync uses the folder id).
pub type InfoHash = [u8; 20];
/// A BitTorrent peer id (20 bytes, not interpreted by the tracker).
pub type PeerId = [u8; 20];

/// The magic connection id of a BEP 15 connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// BEP 15 connect.
pub const ACTION_CONNECT: u32 = 0;
/// BEP 15 announce.
pub const ACTION_ANNOUNCE: u32 = 1;
/// BEP 15 scrape.
pub const ACTION_SCRAPE: u32 = 2;
/// BEP 15 error (responses only).
pub const ACTION_ERROR: u32 = 3;
/// swarmsync: "what is my public address" (`"SW"` then 1).
pub const ACTION_ADDRESS: u32 = 0x5357_0001;
/// swarmsync: ask the tracker to introduce us to a peer.
pub const ACTION_PUNCH: u32 = 0x5357_0002;
/// swarmsync: the tracker's introduction, sent to the punch target.
pub const ACTION_PUNCH_NOTIFY: u32 = 0x5357_0003;

/// Largest request accepted: a scrape of [`MAX_SCRAPE_HASHES`] hashes.
pub const MAX_REQUEST_LEN: usize = 16 + 20 * MAX_SCRAPE_HASHES;
/// Most info hashes in one scrape (BEP 15).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Most peers [`Response::parse`] reads from one announce response.
pub const MAX_PARSED_PEERS: usize = 512;
/// Most bytes of an error message [`Response::parse`] keeps.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// An address family: which compact peer form a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 6-byte peers.
    V4,
    /// IPv6: 18-byte peers.
    V6,
}

impl Family {
    /// The family of `addr` (an IPv4-mapped IPv6 address counts as IPv6;
    /// canonicalize first when that matters).
    pub fn of(addr: std::net::SocketAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}

#[cfg(test)]
mod tests;
