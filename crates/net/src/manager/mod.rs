//! The connection manager: one actor task owns every dial, every accepted
//! connection and the health records; [`NetHandle`] talks to it.
//!
//! Rules (precise version in `docs/protocol/discovery.md`):
//!
//! * At most one channel per (folder, peer). When a second one authenticates
//!   (both peers dialed at once, or one dialed twice), both sides keep the one
//!   with the smaller [`Rank`]: dialed by the lower peer id first, then the
//!   lower transcript hash. Both sides know both values, so they agree without
//!   a message. The other is closed; if it had been handed out already, the
//!   new [`Connection`] says so in [`Connection::replaces`].
//! * Candidates are dialed LAN first; one whose peer is connected is skipped.
//! * Failures back off exponentially (jittered ±25 %, capped); a peer that
//!   rejects us (wrong key, failed authentication) starts from a longer delay.
//!   Our own address ("connected to self") is never dialed again.

// Invariants and flows: STATE.md beside this file.
mod actor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use channel::{FolderCredentials, SecureStream};
use keys::{Access, FolderId, PeerId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::carrier::{Carrier, CarrierKind};
use crate::config::{NetConfig, NetError};
use crate::discovery::lan::{LanConfig, LanDiscovery};
use crate::discovery::{Discovery, KnownHosts};
use crate::tcp;

/// Identifies one handed-out connection; stale ids are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    /// The folder.
    pub folder: FolderId,
    /// The peer.
    pub peer: PeerId,
    /// Counts connections handed out by this manager.
    pub serial: u64,
}

/// The order both sides use to pick one of two channels between them: smaller
/// wins. A direct channel beats a relayed one whatever the rest says, so a
/// peer found directly later moves off the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// The channel runs through a relay.
    pub relayed: bool,
    /// The peer id of the side that dialed.
    pub dialer: PeerId,
    /// The channel's transcript hash (the same on both sides).
    pub transcript: [u8; 32],
}

/// An authenticated channel handed to the daemon.
#[derive(Debug)]
#[non_exhaustive]
pub struct Connection {
    /// Pass it to [`NetHandle::disconnected`] when the channel ends.
    pub id: ConnectionId,
    /// The folder.
    pub folder: FolderId,
    /// The peer.
    pub peer: PeerId,
    /// The peer's verified access level.
    pub access: Access,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The discovery source that found it, or "incoming".
    pub source: &'static str,
    /// What carries it (TCP, QUIC, relay).
    pub carrier: CarrierKind,
    /// We dialed it (else we accepted it).
    pub dialed: bool,
    /// An earlier connection to the same (folder, peer) this one supersedes:
    /// drop that one's stream (do not report it as disconnected).
    pub replaces: Option<ConnectionId>,
    /// The secure stream.
    pub stream: SecureStream<Carrier>,
}

/// What the manager tells the daemon.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A new authenticated channel.
    Connected(Connection),
}

/// The daemon's side of the event stream.
#[derive(Debug)]
pub struct NetEvents(mpsc::UnboundedReceiver<NetEvent>);

impl NetEvents {
    /// The next event; `None` once the manager has stopped.
    pub async fn recv(&mut self) -> Option<NetEvent> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<NetEvent> {
        self.0.try_recv().ok()
    }
}

/// Why the last attempt on a candidate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// TCP connect failed or timed out, or the stream broke.
    Unreachable,
    /// The peer rejected us or failed authentication (other key, other folder).
    Rejected,
    /// The address is our own.
    ConnectedToSelf,
}

/// One live channel, for `swarmsync status`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionStatus {
    /// Its id.
    pub id: ConnectionId,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Who found it.
    pub source: &'static str,
    /// What carries it.
    pub carrier: CarrierKind,
    /// The peer's access level.
    pub access: Access,
    /// We dialed it.
    pub dialed: bool,
    /// Since when.
    pub since: SystemTime,
}

/// The health record of one candidate address of a folder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CandidateStatus {
    /// The folder.
    pub folder: FolderId,
    /// The address.
    pub addr: SocketAddr,
    /// The source that found it ("lan" wins over others).
    pub source: &'static str,
    /// Found on the LAN.
    pub lan: bool,
    /// The peer last seen there, if any.
    pub peer: Option<PeerId>,
    /// Its peer is connected.
    pub connected: bool,
    /// A dial is in progress.
    pub dialing: bool,
    /// The address turned out to be our own: never dialed again.
    pub is_self: bool,
    /// Failures in a row.
    pub failures: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// Its kind.
    pub last_failure: Option<FailureKind>,
    /// The delay chosen after the last failure.
    pub backoff: Option<Duration>,
    /// Time until the next attempt is allowed (`None`: now, or never if
    /// `is_self`).
    pub retry_in: Option<Duration>,
}

/// A snapshot of the manager.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetStatus {
    /// Our peer id.
    pub peer: PeerId,
    /// The TCP listen address.
    pub listen: SocketAddr,
    /// Live channels.
    pub connections: Vec<ConnectionStatus>,
    /// Candidate health records.
    pub candidates: Vec<CandidateStatus>,
    /// Dials in progress.
    pub dialing: usize,
    /// Handshakes of accepted connections in progress (or not yet reported).
    pub handshaking: usize,
    /// Names of the active discovery sources ("lan", "known", …).
    pub discovery: Vec<&'static str>,
}

enum Command {
    Disconnected(ConnectionId),
    AddFolder(FolderCredentials),
    Status(oneshot::Sender<NetStatus>),
}

/// A cheap handle on the running manager. When the last one is dropped the
/// manager stops, as with [`NetHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    shutdown: Arc<watch::Sender<bool>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Disconnected(_) => "Disconnected",
            Self::AddFolder(_) => "AddFolder",
            Self::Status(_) => "Status",
        })
    }
}

impl NetHandle {
    /// The TCP address we listen on (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The channel `id` has ended (error, end of stream, or the daemon closed
    /// it): the manager forgets it and reconnects after a short backoff.
    pub async fn disconnected(&self, id: ConnectionId) {
        let _ = self.commands.send(Command::Disconnected(id)).await;
    }

    /// Starts serving and discovering one more folder.
    pub async fn add_folder(&self, folder: FolderCredentials) -> Result<(), NetError> {
        self.commands
            .send(Command::AddFolder(folder))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Health records and live channels.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Stops the manager: the listener, discovery and dials end; channels
    /// already handed out are the daemon's and stay open.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// A bound, not yet running manager: [`NetManager::bind`], optionally
/// [`NetManager::add_discovery`], then [`NetManager::start`].
pub struct NetManager {
    config: NetConfig,
    peer: PeerId,
    listener: TcpListener,
    /// The QUIC endpoint on the same port number, unless UDP could not be had.
    quic: Option<quinn::Endpoint>,
    local_addr: SocketAddr,
    discoveries: Vec<Box<dyn Discovery>>,
}

impl std::fmt::Debug for NetManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.discoveries.iter().map(|d| d.name()).collect();
        f.debug_struct("NetManager")
            .field("peer", &self.peer)
            .field("local_addr", &self.local_addr)
            .field("discoveries", &names)
            .finish_non_exhaustive()
    }
}

impl NetManager {
    /// Checks the configuration, binds the TCP listener and (unless
    /// `config.lan` is off) the LAN discovery sockets. Call inside a tokio
    /// runtime. A malformed known host is [`NetError::KnownHost`] (bad input);
    /// a TCP port that cannot be bound is [`NetError::Listen`]. LAN sockets that
    /// cannot be bound only log a warning (see [`NetStatus::discovery`]).
    pub fn bind(config: NetConfig, peer: PeerId) -> Result<Self, NetError> {
        let known = KnownHosts::parse(&config.known_hosts, config.resolve_interval)?;
        for relay in &config.relays {
            relay
                .parse::<crate::discovery::KnownHost>()
                .map_err(NetError::Relay)?;
        }
        let listener = tcp::bind(config.listen).map_err(|source| NetError::Listen {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| NetError::Listen {
            addr: config.listen,
            source,
        })?;
        let quic = if config.quic {
            // Not fatal: TCP alone still works; `status` shows the carriers.
            match bind_quic(local_addr) {
                Ok(endpoint) => Some(endpoint),
                Err(e) => {
                    tracing::warn!(addr = %local_addr, error = %e, "continuing without the QUIC carrier: cannot use UDP");
                    None
                }
            }
        } else {
            None
        };
        let mut discoveries: Vec<Box<dyn Discovery>> = Vec::new();
        if config.lan {
            let (ipv4, ipv6) = match local_addr {
                SocketAddr::V4(_) => (true, false),
                // Dual stack on the IPv6 wildcard (see tcp::bind).
                SocketAddr::V6(v6) => (v6.ip().is_unspecified(), true),
            };
            let lan = LanDiscovery::start(LanConfig {
                peer,
                tcp_port: local_addr.port(),
                port: config.lan_port,
                interval: config.lan_interval,
                ipv4,
                ipv6,
            });
            // Not fatal: another program may hold the port without
            // SO_REUSEPORT; known hosts still work. `status` shows the sources.
            match lan {
                Ok(lan) => discoveries.push(Box::new(lan)),
                Err(source) => {
                    let e = NetError::Lan {
                        port: config.lan_port,
                        source,
                    };
                    tracing::warn!(error = %e, "continuing without LAN discovery");
                }
            }
        }
        if !known.is_empty() {
            discoveries.push(Box::new(known));
        }
        if let Some(tracker) =
            crate::discovery::tracker::start(&config, local_addr, quic.is_some())?
        {
            discoveries.push(tracker);
        }
        if let Some(dht) = crate::discovery::dht::start(&config, local_addr)? {
            discoveries.push(dht);
        }
        Ok(Self {
            config,
            peer,
            listener,
            quic,
            local_addr,
            discoveries,
        })
    }

    /// The TCP address we listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a discovery source (trackers, DHT, tests).
    pub fn add_discovery(&mut self, discovery: Box<dyn Discovery>) {
        self.discoveries.push(discovery);
    }

    /// Starts the actor for `folders` (more can be added with
    /// [`NetHandle::add_folder`]). Call inside a tokio runtime.
    pub fn start(self, folders: Vec<FolderCredentials>) -> (NetHandle, NetEvents) {
        let (commands, commands_rx) = mpsc::channel(64);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let handle = NetHandle {
            commands,
            shutdown: Arc::new(shutdown),
            local_addr: self.local_addr,
        };
        tokio::spawn(actor::run(
            self,
            folders,
            commands_rx,
            shutdown_rx,
            events_tx,
        ));
        (handle, NetEvents(events_rx))
    }
}

/// Socket buffer asked for the QUIC carrier's UDP socket, each direction.
const QUIC_SOCKET_BUFFER: usize = 8 << 20;

/// The QUIC endpoint on UDP `addr` (the TCP listener's address and port; an
/// IPv6 wildcard is dual stack, as for TCP).
fn bind_quic(addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // Tracker sockets share the port (connected to their tracker, they get
    // its datagrams), so trackers see the NAT mapping QUIC uses.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // The default receive buffer (~208 KiB) holds a few ms of a fast link:
    // when the receiving task is off the CPU longer, the kernel drops
    // datagrams and QUIC's congestion control halves its window (measured:
    // 0.71x TCP's rate on a clean 200 Mbit/s link, 0.99x with 8 MiB). The
    // kernel caps the request at net.core.rmem_max; say so when it does.
    let _ = socket.set_recv_buffer_size(QUIC_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(QUIC_SOCKET_BUFFER);
    if let Ok(got) = socket.recv_buffer_size()
        && got < QUIC_SOCKET_BUFFER
    {
        tracing::info!(
            got,
            wanted = QUIC_SOCKET_BUFFER,
            "the UDP receive buffer is small, so QUIC is slower on fast links; raise it with `sysctl -w net.core.rmem_max={QUIC_SOCKET_BUFFER}`"
        );
    }
    socket.bind(&addr.into())?;
    crate::quic::endpoint(socket.into())
}
