//! What the networking layer is told at start, and what can go wrong there.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::discovery::KnownHostError;

/// Default TCP listen port (also the future UDP/QUIC port, per DESIGN §7).
pub const DEFAULT_PORT: u16 = 41_544;
/// UDP port of LAN discovery, shared by every instance on a host.
pub const LAN_PORT: u16 = 41_545;
/// The IPv6 link-local multicast group of LAN discovery (ff12::/16: transient,
/// link-local scope; the low bits spell "swsy").
pub const LAN_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0x7377, 0x7379);
/// Default period between two LAN announcements.
pub const DEFAULT_LAN_INTERVAL: Duration = Duration::from_secs(30);

/// Configuration of [`crate::NetManager`]. `Default` is what `swarmsync sync`
/// uses without flags.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// TCP listen address (`--listen`); port 0 picks any free port.
    pub listen: SocketAddr,
    /// `HOST:PORT` strings (`--known-host`), dialed for every folder.
    pub known_hosts: Vec<String>,
    /// LAN discovery on (`--no-lan` turns it off).
    pub lan: bool,
    /// UDP port of LAN discovery (tests only change it).
    pub lan_port: u16,
    /// Period between LAN announcements (jittered by ±10 %).
    pub lan_interval: Duration,
    /// How often known host names are resolved again.
    pub resolve_interval: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Channel handshake timeout (dialed and accepted connections).
    pub handshake_timeout: Duration,
    /// First retry delay after an unreachable candidate or a lost connection.
    pub backoff_min: Duration,
    /// First retry delay after a peer rejected us (wrong key, auth failure).
    pub reject_backoff_min: Duration,
    /// Cap of every retry delay.
    pub backoff_max: Duration,
    /// Handshakes of accepted connections running at once; more wait.
    pub max_handshakes: usize,
    /// The QUIC (UDP) carrier beside TCP, on the same port number.
    pub quic: bool,
    /// Tracker discovery on (`--no-tracker` turns it off).
    pub tracker: bool,
    /// `HOST:PORT` of UDP trackers (`--tracker`); empty means
    /// [`DEFAULT_TRACKERS`].
    pub trackers: Vec<String>,
    /// Mainline DHT discovery on (`--no-dht` turns it off).
    pub dht: bool,
    /// `HOST:PORT` of DHT bootstrap nodes (`--dht-bootstrap`); empty means
    /// the usual public routers.
    pub dht_bootstrap: Vec<String>,
    /// UDP port of our DHT node; 0 picks any free port.
    pub dht_port: u16,
    /// Answer DHT queries from the start (`--dht-server`), for a node with a
    /// public address such as the bootstrap node of a private DHT. Otherwise
    /// the node answers only once it has found itself reachable, as BEP 43
    /// asks of nodes that may be behind a NAT.
    pub dht_server: bool,
    /// Peer exchange on (`--no-pex` turns it off).
    pub pex: bool,
    /// Relays (`--relay HOST:PORT`): registered at for every folder, used to
    /// reach peers with no direct path.
    pub relays: Vec<String>,
    /// Relays on (`--no-relay` turns them off).
    pub relay: bool,
    /// Map our port on the router with UPnP IGD / PCP / NAT-PMP (`--no-upnp`
    /// turns it off).
    pub upnp: bool,
    /// Where the networking layer keeps what should survive a restart (the
    /// DHT routing table); `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
}

/// Public UDP trackers announced to when no `--tracker` is given.
pub const DEFAULT_TRACKERS: [&str; 3] = [
    "tracker.opentrackr.org:1337",
    "open.stealth.si:80",
    "tracker.torrent.eu.org:451",
];

/// Default UDP port of the DHT node (one above LAN discovery's).
pub const DEFAULT_DHT_PORT: u16 = 41_546;

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
            known_hosts: Vec::new(),
            lan: true,
            lan_port: LAN_PORT,
            lan_interval: DEFAULT_LAN_INTERVAL,
            resolve_interval: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: channel::DEFAULT_HANDSHAKE_TIMEOUT,
            backoff_min: Duration::from_secs(1),
            reject_backoff_min: Duration::from_secs(60),
            backoff_max: Duration::from_secs(300),
            max_handshakes: 64,
            quic: true,
            tracker: true,
            trackers: Vec::new(),
            dht: true,
            dht_bootstrap: Vec::new(),
            dht_port: DEFAULT_DHT_PORT,
            dht_server: false,
            pex: true,
            relays: Vec::new(),
            relay: true,
            upnp: true,
            state_dir: None,
        }
    }
}

/// Why the networking layer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A `--known-host` value is malformed (bad input: exit 2).
    #[error("--known-host {0}")]
    KnownHost(#[from] KnownHostError),
    /// A `--tracker` value is malformed (bad input).
    #[error("--tracker {0}")]
    Tracker(#[source] KnownHostError),
    /// A `--relay` value is malformed (bad input).
    #[error("--relay {0}")]
    Relay(#[source] KnownHostError),
    /// A `--dht-bootstrap` value is malformed (bad input).
    #[error("--dht-bootstrap {0}")]
    DhtBootstrap(#[source] KnownHostError),
    /// The TCP listener could not be bound.
    #[error("cannot listen on TCP {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The LAN discovery sockets could not be set up (logged, not returned, by
    /// [`crate::NetManager::bind`]).
    #[error("cannot start LAN discovery on UDP port {port}: {source}")]
    Lan {
        /// The discovery port.
        port: u16,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The manager has stopped.
    #[error("the connection manager has stopped")]
    Stopped,
}

impl NetError {
    /// Whether the user gave bad input (the CLI exits 2) rather than the
    /// system failing (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::KnownHost(_) | Self::Tracker(_) | Self::DhtBootstrap(_) | Self::Relay(_)
        )
    }
}
