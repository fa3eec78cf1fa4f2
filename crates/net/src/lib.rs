//! Networking of swarmsync: carriers, discovery and connection management.
//!
//! # Brief overview
//!
//! ```text
//! Discovery sources ──Candidate──▶ NetManager (actor) ──dial──▶ TCP ──▶ channel::establish
//!  (KnownHosts, LanDiscovery,            │   ▲                               │
//!   later trackers, DHT, PEX)            │   └──── accept ◀── TCP listener ◀─┘
//!                                        ▼
//!                       NetEvent::Connected(Connection) ──▶ daemon
//! ```
//!
//! * [`tcp`]: the TCP carrier (`TCP_NODELAY`, keepalive, `SO_REUSEADDR`).
//! * [`discovery`]: the [`Discovery`] trait, [`KnownHosts`] and
//!   [`discovery::lan::LanDiscovery`] (broadcast/multicast announcements whose
//!   datagram is [`discovery::lan::packet::Announcement`]).
//! * [`NetManager`]: one channel per (folder, peer), deterministic choice when
//!   both peers dial at once, jittered exponential backoff, health records.
//!
//! ```no_run
//! # async fn demo(peer: keys::PeerId, creds: channel::FolderCredentials) -> Result<(), net::NetError> {
//! let manager = net::NetManager::bind(net::NetConfig::default(), peer)?;
//! let (handle, mut events) = manager.start(vec![creds]);
//! while let Some(net::NetEvent::Connected(conn)) = events.recv().await {
//!     // run the wire protocol on conn.stream; when it ends:
//!     handle.disconnected(conn.id).await;
//! }
//! # Ok(()) }
//! ```
//!
//! The LAN datagram and the manager's rules are specified in
//! `docs/protocol/discovery.md`.
#![forbid(unsafe_code)]

mod backoff;
pub mod carrier;
mod config;
pub mod discovery;
mod manager;
pub mod portmap;
pub mod quic;
pub mod relay;
pub mod tcp;

#[cfg(test)]
mod tests;

pub use carrier::{Carrier, CarrierKind};
pub use channel::{FolderCredentials, SecureStream};
pub use config::{
    DEFAULT_DHT_PORT, DEFAULT_LAN_INTERVAL, DEFAULT_PORT, DEFAULT_TRACKERS, LAN_GROUP_V6, LAN_PORT,
    NetConfig, NetError,
};
pub use discovery::pex::{Pex, PexDiscovery};
pub use discovery::{Candidate, Candidates, Discovery, KnownHost, KnownHostError, KnownHosts};
pub use manager::{
    CandidateStatus, Connection, ConnectionId, ConnectionStatus, FailureKind, NetEvent, NetEvents,
    NetHandle, NetManager, NetStatus, Rank,
};
