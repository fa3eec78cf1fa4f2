//! The manager's task: the only owner of its state.

use std::collections::{HashMap, HashSet};
use std::future::{Future, pending};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use channel::{ChannelConfig, ChannelError, FolderCredentials, SecureStream};
use keys::{Access, FolderId, PeerId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    CandidateStatus, Command, Connection, ConnectionId, ConnectionStatus, FailureKind, NetEvent,
    NetManager, NetStatus, Rank,
};
use crate::backoff::{jitter, jittered_delay};
use crate::carrier::{Carrier, CarrierKind};
use crate::config::NetConfig;
use crate::discovery::tracker::PUNCH_SOURCE;
use crate::discovery::{Candidate, Discovery};
use crate::tcp;

/// Dials in flight at once, over all folders.
const MAX_DIALS: usize = 32;
/// Candidate records kept; new addresses past this are ignored.
const MAX_CANDIDATES: usize = 4096;
/// A new candidate whose announced peer id is lower than ours waits this long
/// before its first dial: that peer dials us too, and its channel would win
/// (see `Rank`), so ours would only cost a second handshake.
const DEFER_TO_LOWER: Duration = Duration::from_secs(2);
/// A failing candidate that no source has mentioned for this long is dropped.
const CANDIDATE_TTL: Duration = Duration::from_secs(15 * 60);
/// A channel that ends sooner than this counts as a failure of its peer, so a
/// peer that accepts and then drops us is not redialed every second.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long we try to send an authenticated close on a duplicate channel.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// A dial not connected by then is reported stalled (see
/// [`Discovery::dial_failed`]): time enough for a direct path on any sane
/// link, soon enough that a hole punch overlaps the dial.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// Slack over connect + handshake timeouts before a dial task is abandoned.
const DIAL_SLACK: Duration = Duration::from_secs(2);

type Stream = SecureStream<Carrier>;

/// TCP's head start when dialing: QUIC is tried too only if TCP has not
/// connected by then (or failed). TCP is preferred where both work: it is
/// cheaper per byte here; QUIC wins where only UDP gets through (NATs).
const QUIC_HEAD_START: Duration = Duration::from_millis(300);

/// Results of the actor's own tasks.
enum Internal {
    Dialed {
        folder: FolderId,
        addr: SocketAddr,
        result: Result<Box<Stream>, DialError>,
    },
    Accepted {
        remote: SocketAddr,
        result: Result<Box<Stream>, ChannelError>,
    },
    /// A dial has not connected within [`STALL_AFTER`] (it goes on).
    DialStalled { folder: FolderId, addr: SocketAddr },
    /// A relay listed these peers of `folder` as registered there.
    RelayPeers {
        folder: FolderId,
        relay: SocketAddr,
        peers: Vec<PeerId>,
    },
    /// A channel through a relay, to `peer` (we dialed) or from it.
    Relayed {
        folder: FolderId,
        peer: PeerId,
        relay: SocketAddr,
        dialed: bool,
        result: Result<Box<Stream>, String>,
    },
}

#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("TCP connect failed: {0}")]
    Connect(std::io::Error),
    #[error("TCP connect failed: {tcp}; QUIC connect failed: {quic}")]
    ConnectBoth {
        tcp: std::io::Error,
        quic: std::io::Error,
    },
    #[error("{0}")]
    Channel(ChannelError),
    #[error("dial timed out")]
    Timeout,
}

impl DialError {
    fn kind(&self) -> FailureKind {
        match self {
            Self::Connect(_) | Self::ConnectBoth { .. } | Self::Timeout => FailureKind::Unreachable,
            Self::Channel(ChannelError::ConnectedToSelf) => FailureKind::ConnectedToSelf,
            Self::Channel(ChannelError::Io(_) | ChannelError::Timeout) => FailureKind::Unreachable,
            // Wrong key, other folder, failed proofs, aborts, cut handshakes.
            Self::Channel(_) => FailureKind::Rejected,
        }
    }
}

struct Live {
    id: ConnectionId,
    rank: Rank,
    remote: SocketAddr,
    source: &'static str,
    carrier: CarrierKind,
    access: Access,
    dialed: bool,
    since: SystemTime,
    established: Instant,
}

struct Cand {
    source: &'static str,
    lan: bool,
    peer: Option<PeerId>,
    dialing: bool,
    failures: u32,
    last_error: Option<String>,
    last_failure: Option<FailureKind>,
    backoff: Option<Duration>,
    next_attempt: Instant,
    last_seen: Instant,
}

struct Actor {
    config: NetConfig,
    me: PeerId,
    local_addr: SocketAddr,
    quic: Option<quinn::Endpoint>,
    folders: HashMap<FolderId, FolderCredentials>,
    serving: watch::Sender<Option<ChannelConfig>>,
    discoveries: Vec<Box<dyn Discovery>>,
    live: HashMap<(FolderId, PeerId), Live>,
    /// Channels in a row per peer that ended before [`STABLE_AFTER`].
    short_lived: HashMap<(FolderId, PeerId), u32>,
    cands: HashMap<(FolderId, SocketAddr), Cand>,
    self_addrs: HashSet<SocketAddr>,
    dialing: usize,
    handshaking: Arc<AtomicUsize>,
    serial: u64,
    events: mpsc::UnboundedSender<NetEvent>,
    internal: mpsc::UnboundedSender<Internal>,
    found: mpsc::Sender<Candidate>,
    tasks: JoinSet<()>,
    /// Relays to register at and reach peers through (`--relay`).
    relays: Vec<crate::discovery::KnownHost>,
    /// Relayed dials in flight.
    relay_dialing: HashSet<(FolderId, PeerId)>,
    serving_rx: watch::Receiver<Option<ChannelConfig>>,
}

async fn wake(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => pending().await,
    }
}

enum Event {
    Internal(Internal),
    Command(Command),
    Found(Candidate),
    Tick,
}

pub(super) async fn run(
    manager: NetManager,
    folders: Vec<FolderCredentials>,
    mut commands: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<NetEvent>,
) {
    let NetManager {
        config,
        peer,
        listener,
        quic,
        local_addr,
        discoveries,
    } = manager;
    let (internal, mut internal_rx) = mpsc::unbounded_channel();
    let (found, mut found_rx) = mpsc::channel(1024);
    let (serving, serving_rx) = watch::channel(None);
    let handshaking = Arc::new(AtomicUsize::new(0));
    let mut actor = Actor {
        config,
        me: peer,
        local_addr,
        quic: quic.clone(),
        folders: HashMap::new(),
        serving,
        discoveries,
        live: HashMap::new(),
        short_lived: HashMap::new(),
        cands: HashMap::new(),
        self_addrs: HashSet::new(),
        dialing: 0,
        handshaking: Arc::clone(&handshaking),
        serial: 0,
        events,
        internal: internal.clone(),
        found,
        tasks: JoinSet::new(),
        relays: Vec::new(),
        relay_dialing: HashSet::new(),
        serving_rx: serving_rx.clone(),
    };
    if actor.config.relay {
        actor.relays = actor
            .config
            .relays
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
    }
    let sem = Arc::new(Semaphore::new(actor.config.max_handshakes.max(1)));
    let hs_timeout = actor.config.handshake_timeout;
    let acceptor = Acceptor {
        results: internal,
        handshaking,
        timeout: hs_timeout,
    };
    if let Some(endpoint) = quic {
        actor.tasks.spawn(listen_quic(
            endpoint,
            serving_rx.clone(),
            Arc::clone(&sem),
            acceptor.clone(),
        ));
    }
    actor
        .tasks
        .spawn(listen(listener, serving_rx, sem, acceptor));
    for folder in folders {
        actor.add_folder(folder);
    }
    tracing::info!(peer = %actor.me, listen = %actor.local_addr, "connection manager started");
    loop {
        let deadline = actor.schedule();
        let event = tokio::select! {
            biased;
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                _ => break,
            },
            Some(m) = internal_rx.recv() => Event::Internal(m),
            cmd = commands.recv() => match cmd {
                Some(cmd) => Event::Command(cmd),
                None => break,
            },
            Some(c) = found_rx.recv() => Event::Found(c),
            () = wake(deadline) => Event::Tick,
            Some(_) = actor.tasks.join_next() => Event::Tick,
        };
        match event {
            Event::Internal(Internal::Dialed {
                folder,
                addr,
                result,
            }) => actor.dialed(folder, addr, result),
            Event::Internal(Internal::Accepted { remote, result }) => match result {
                Ok(stream) => actor.offer(*stream, remote, "incoming", false),
                Err(e) => tracing::info!(%remote, error = %e, "incoming handshake failed"),
            },
            Event::Internal(Internal::DialStalled { folder, addr }) => {
                // A NAT may be in the way: sources that can (a tracker that
                // listed the address) start a hole punch now, while the dial's
                // own packets are still going out.
                for source in &actor.discoveries {
                    source.dial_failed(folder, addr);
                }
            }
            Event::Internal(Internal::RelayPeers {
                folder,
                relay,
                peers,
            }) => actor.relay_peers(folder, relay, &peers),
            Event::Internal(Internal::Relayed {
                folder,
                peer,
                relay,
                dialed,
                result,
            }) => {
                if dialed {
                    actor.relay_dialing.remove(&(folder, peer));
                }
                match result {
                    Ok(stream) => actor.offer(*stream, relay, RELAY_SOURCE, dialed),
                    Err(e) => {
                        tracing::info!(%folder, %peer, %relay, error = %e, "relayed channel failed")
                    }
                }
            }
            Event::Command(Command::Disconnected(id)) => actor.disconnected(id),
            Event::Command(Command::AddFolder(f)) => actor.add_folder(f),
            Event::Command(Command::Status(tx)) => {
                let _ = tx.send(actor.status());
            }
            Event::Found(c) => actor.found(c),
            Event::Tick => {}
        }
    }
    tracing::info!(peer = %actor.me, "connection manager stopped");
    // Dropping the actor aborts its tasks and stops the discovery sources.
}

/// How long an accepted connection may stay silent before its handshake slot
/// is given back.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);

/// What both listeners share: where results go, the count `status` shows,
/// and the handshake bound.
#[derive(Clone)]
struct Acceptor {
    results: mpsc::UnboundedSender<Internal>,
    handshaking: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Acceptor {
    /// Runs the serving handshake on the carrier `carrier` yields (`None`:
    /// it never became one) and reports it, holding `permit` until then.
    fn handshake(
        &self,
        handshakes: &mut JoinSet<()>,
        permit: OwnedSemaphorePermit,
        config: ChannelConfig,
        remote: SocketAddr,
        carrier: impl Future<Output = Option<Carrier>> + Send + 'static,
    ) {
        let this = self.clone();
        this.handshaking.fetch_add(1, Ordering::SeqCst);
        handshakes.spawn(async move {
            let result = match carrier.await {
                Some(carrier) => match tokio::time::timeout(
                    this.timeout + DIAL_SLACK,
                    channel::establish(carrier, &config),
                )
                .await
                {
                    Ok(r) => r.map(Box::new),
                    Err(_) => Err(ChannelError::Timeout),
                },
                None => Err(ChannelError::Timeout),
            };
            // Report first, then count down: a status never shows "no
            // handshake" while a result is still on its way.
            let _ = this.results.send(Internal::Accepted { remote, result });
            this.handshaking.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    }
}

/// Accepts TCP connections and runs the serving handshake on each, at most
/// `sem` at once; a connection arriving before any folder is served is closed.
async fn listen(
    listener: TcpListener,
    serving: watch::Receiver<Option<ChannelConfig>>,
    sem: Arc<Semaphore>,
    acceptor: Acceptor,
) {
    let mut handshakes = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&sem).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = handshakes.join_next() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(config) = serving.borrow().clone() else {
            continue;
        };
        if let Err(e) = tcp::tune(&stream) {
            tracing::debug!(%remote, error = %e, "cannot tune accepted socket");
        }
        // A dialer speaks first, at once; a connection that stays silent
        // gives its handshake slot back quickly, so idle connections cannot
        // keep real peers out.
        let spoke = async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => Some(Carrier::Tcp(stream)),
                _ => None,
            }
        };
        acceptor.handshake(&mut handshakes, permit, config, remote, spoke);
    }
}

/// Accepts QUIC connections and runs the serving handshake on each, under the
/// same limits as TCP's.
async fn listen_quic(
    endpoint: quinn::Endpoint,
    serving: watch::Receiver<Option<ChannelConfig>>,
    sem: Arc<Semaphore>,
    acceptor: Acceptor,
) {
    let mut handshakes = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&sem).acquire_owned().await else {
            return;
        };
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            Some(_) = handshakes.join_next() => continue,
        };
        // `None`: the endpoint was closed.
        let Some(incoming) = incoming else {
            return;
        };
        let remote = incoming.remote_address();
        let Some(config) = serving.borrow().clone() else {
            incoming.refuse();
            continue;
        };
        let stream = async move {
            crate::quic::accept(incoming, FIRST_BYTE_TIMEOUT)
                .await
                .ok()
                .map(Carrier::Quic)
        };
        acceptor.handshake(&mut handshakes, permit, config, remote, stream);
    }
}

/// The relay source's name (status shows it as how a peer was found).
const RELAY_SOURCE: &str = "relay";
/// How long after registering a relay is first asked who is there: direct
/// paths get that long to work first.
const RELAY_GRACE: Duration = Duration::from_secs(10);
/// How often a relay is asked who is there.
const RELAY_LOOKUP_EVERY: Duration = Duration::from_secs(30);
/// Bound of one relayed connect (the relay waits 10 s for the invitee).
const RELAY_CONNECT: Duration = Duration::from_secs(15);

/// Keeps `folder` registered at `relay`, takes in the peers that reach us
/// through it, and reports who else is registered, until the actor stops.
async fn relay_loop(
    relay: crate::discovery::KnownHost,
    folder: FolderId,
    me: PeerId,
    serving: watch::Receiver<Option<ChannelConfig>>,
    results: mpsc::UnboundedSender<Internal>,
    handshake_timeout: Duration,
) {
    let mut failures = 0u32;
    loop {
        let addr = match tokio::net::lookup_host((relay.host(), relay.port())).await {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                tracing::info!(%relay, error = %e, "cannot resolve relay");
                None
            }
        };
        if let Some(addr) = addr {
            match crate::relay::register(addr, folder, me).await {
                Ok(mut registration) => {
                    tracing::info!(%relay, %folder, "registered at the relay");
                    failures = 0;
                    let mut handshakes = JoinSet::new();
                    let mut lookup =
                        tokio::time::interval_at(Instant::now() + RELAY_GRACE, RELAY_LOOKUP_EVERY);
                    loop {
                        tokio::select! {
                            next = registration.next() => {
                                let Some((stream, peer)) = next else { break };
                                let Some(config) = serving.borrow().clone() else { continue };
                                let results = results.clone();
                                handshakes.spawn(async move {
                                    let result = match tokio::time::timeout(
                                        handshake_timeout + DIAL_SLACK,
                                        channel::establish(Carrier::Relay(stream), &config),
                                    )
                                    .await
                                    {
                                        Ok(r) => r.map(Box::new).map_err(|e| e.to_string()),
                                        Err(_) => Err("timed out".to_owned()),
                                    };
                                    let _ = results.send(Internal::Relayed {
                                        folder,
                                        peer,
                                        relay: addr,
                                        dialed: false,
                                        result,
                                    });
                                });
                            }
                            _ = lookup.tick() => {
                                match crate::relay::lookup(addr, folder).await {
                                    Ok(peers) => {
                                        let _ = results.send(Internal::RelayPeers { folder, relay: addr, peers });
                                    }
                                    Err(e) => tracing::debug!(%relay, error = %e, "relay lookup failed"),
                                }
                            }
                            Some(_) = handshakes.join_next() => {}
                        }
                    }
                    let why = registration.take_error();
                    tracing::info!(%relay, error = ?why, "relay registration ended");
                }
                Err(e) => tracing::info!(%relay, error = %e, "cannot register at the relay"),
            }
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(jittered_delay(
            Duration::from_secs(5),
            Duration::from_secs(300),
            failures,
        ))
        .await;
    }
}

async fn dial(
    addr: SocketAddr,
    config: ChannelConfig,
    connect_timeout: Duration,
    quic: Option<quinn::Endpoint>,
) -> Result<Stream, DialError> {
    let carrier = connect(addr, connect_timeout, quic).await?;
    channel::establish(carrier, &config)
        .await
        .map_err(DialError::Channel)
}

/// A carrier to `addr`: TCP, raced against QUIC after [`QUIC_HEAD_START`] or
/// at once when TCP fails. Only the transports race, never two channel
/// handshakes (the peer would have to pick between two channels).
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    quic: Option<quinn::Endpoint>,
) -> Result<Carrier, DialError> {
    let tcp = tcp::dial(addr, timeout);
    let Some(endpoint) = quic else {
        return tcp.await.map(Carrier::Tcp).map_err(DialError::Connect);
    };
    tokio::pin!(tcp);
    let tcp_failed = tokio::select! {
        r = &mut tcp => match r {
            Ok(s) => return Ok(Carrier::Tcp(s)),
            Err(e) => Some(e),
        },
        () = tokio::time::sleep(QUIC_HEAD_START) => None,
    };
    let quic = crate::quic::dial(&endpoint, addr, timeout);
    tokio::pin!(quic);
    let both = |tcp, quic| DialError::ConnectBoth { tcp, quic };
    if let Some(tcp_error) = tcp_failed {
        return quic
            .await
            .map(Carrier::Quic)
            .map_err(|q| both(tcp_error, q));
    }
    tokio::select! {
        r = &mut tcp => match r {
            Ok(s) => Ok(Carrier::Tcp(s)),
            Err(t) => quic.await.map(Carrier::Quic).map_err(|q| both(t, q)),
        },
        r = &mut quic => match r {
            Ok(s) => Ok(Carrier::Quic(s)),
            Err(q) => tcp.await.map(Carrier::Tcp).map_err(|t| both(t, q)),
        },
    }
}

impl Actor {
    /// Peers a relay has registered: dial the ones with no direct channel
    /// through it (only the side with the lower peer id dials, so the two
    /// do not cross).
    fn relay_peers(&mut self, folder: FolderId, relay: SocketAddr, peers: &[PeerId]) {
        let Some(creds) = self.folders.get(&folder) else {
            return;
        };
        for &peer in peers {
            if peer <= self.me
                || self.live.contains_key(&(folder, peer))
                || self.relay_dialing.contains(&(folder, peer))
            {
                continue;
            }
            self.relay_dialing.insert((folder, peer));
            let config = ChannelConfig::new(self.me, creds.clone())
                .with_handshake_timeout(self.config.handshake_timeout);
            let (me, results) = (self.me, self.internal.clone());
            let limit = RELAY_CONNECT + self.config.handshake_timeout + DIAL_SLACK;
            tracing::debug!(%folder, %peer, %relay, "dialing through the relay");
            self.tasks.spawn(async move {
                let attempt = async {
                    let stream = crate::relay::connect(relay, folder, me, peer, RELAY_CONNECT)
                        .await
                        .map_err(|e| e.to_string())?;
                    channel::establish(Carrier::Relay(stream), &config)
                        .await
                        .map_err(|e| e.to_string())
                };
                let result = match tokio::time::timeout(limit, attempt).await {
                    Ok(r) => r.map(Box::new),
                    Err(_) => Err("timed out".to_owned()),
                };
                let _ = results.send(Internal::Relayed {
                    folder,
                    peer,
                    relay,
                    dialed: true,
                    result,
                });
            });
        }
    }

    fn add_folder(&mut self, creds: FolderCredentials) {
        let folder = creds.folder_id();
        for relay in self.relays.clone() {
            self.tasks.spawn(relay_loop(
                relay,
                folder,
                self.me,
                self.serving_rx.clone(),
                self.internal.clone(),
                self.config.handshake_timeout,
            ));
        }
        if self.folders.insert(folder, creds).is_some() {
            return;
        }
        let all: Vec<_> = self.folders.values().cloned().collect();
        let serving = ChannelConfig::serving(self.me, all)
            .ok()
            .map(|c| c.with_handshake_timeout(self.config.handshake_timeout));
        self.serving.send_replace(serving);
        for d in &self.discoveries {
            let mut stream = d.subscribe(folder);
            let found = self.found.clone();
            self.tasks.spawn(async move {
                while let Some(c) = stream.next().await {
                    if found.send(c).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    fn found(&mut self, c: Candidate) {
        if !self.folders.contains_key(&c.folder)
            || self.self_addrs.contains(&c.addr)
            || c.peer == Some(self.me)
        {
            return;
        }
        let len = self.cands.len();
        match self.cands.get_mut(&(c.folder, c.addr)) {
            Some(cand) => {
                if c.lan && !cand.lan {
                    cand.lan = true;
                    cand.source = c.source;
                }
                // A hole is being punched for it right now: dial at once.
                if c.source == PUNCH_SOURCE && !cand.dialing {
                    cand.source = c.source;
                    cand.next_attempt = Instant::now();
                }
                if c.peer.is_some() {
                    cand.peer = c.peer;
                }
                cand.last_seen = Instant::now();
            }
            None if len < MAX_CANDIDATES => {
                let first_attempt = if c.peer.is_some_and(|p| p < self.me) {
                    Instant::now() + jitter(DEFER_TO_LOWER, 0.25)
                } else {
                    Instant::now()
                };
                tracing::debug!(folder = %c.folder, addr = %c.addr, source = c.source, "new candidate");
                self.cands.insert(
                    (c.folder, c.addr),
                    Cand {
                        source: c.source,
                        lan: c.lan,
                        peer: c.peer,
                        dialing: false,
                        failures: 0,
                        last_error: None,
                        last_failure: None,
                        backoff: None,
                        next_attempt: first_attempt,
                        last_seen: Instant::now(),
                    },
                );
            }
            None => tracing::debug!(addr = %c.addr, "too many candidates; ignoring"),
        }
    }

    /// Whether `peer` has a *direct* channel: a relayed one does not stop
    /// dialing its direct addresses (a direct channel replaces it).
    fn is_connected(&self, folder: FolderId, peer: Option<PeerId>) -> bool {
        peer.is_some_and(|p| {
            self.live
                .get(&(folder, p))
                .is_some_and(|l| l.carrier.is_direct())
        })
    }

    /// Starts the dials that are due (LAN first) and returns when the next
    /// one will be.
    fn schedule(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Forget addresses that keep failing and that no source repeats (a LAN
        // peer that moved, a flood of made-up announcements).
        let live = &self.live;
        self.cands.retain(|&(folder, _), c| {
            let connected = c.peer.is_some_and(|p| {
                live.get(&(folder, p))
                    .is_some_and(|l| l.carrier.is_direct())
            });
            c.dialing
                || connected
                || c.failures == 0
                || now.duration_since(c.last_seen) < CANDIDATE_TTL
        });
        let mut due: Vec<(bool, Instant, FolderId, SocketAddr)> = Vec::new();
        let mut next: Option<Instant> = None;
        for (&(folder, addr), c) in &self.cands {
            if c.dialing || self.self_addrs.contains(&addr) || self.is_connected(folder, c.peer) {
                continue;
            }
            if c.next_attempt <= now {
                due.push((!c.lan, c.next_attempt, folder, addr));
            } else {
                next = Some(next.map_or(c.next_attempt, |n| n.min(c.next_attempt)));
            }
        }
        due.sort();
        for (_, _, folder, addr) in due {
            if self.dialing >= MAX_DIALS {
                // Retry when a dial finishes (its result wakes us).
                break;
            }
            let peer = self.cands.get(&(folder, addr)).and_then(|c| c.peer);
            // Another address of the same peer may have connected meanwhile.
            if self.is_connected(folder, peer) {
                continue;
            }
            self.start_dial(folder, addr);
        }
        next
    }

    fn start_dial(&mut self, folder: FolderId, addr: SocketAddr) {
        let Some(creds) = self.folders.get(&folder) else {
            return;
        };
        let Some(cand) = self.cands.get_mut(&(folder, addr)) else {
            return;
        };
        cand.dialing = true;
        self.dialing += 1;
        let config = ChannelConfig::new(self.me, creds.clone())
            .with_handshake_timeout(self.config.handshake_timeout);
        let connect = self.config.connect_timeout;
        let limit = connect + self.config.handshake_timeout + DIAL_SLACK;
        let results = self.internal.clone();
        let quic = self.quic.clone();
        tracing::debug!(%folder, %addr, source = cand.source, "dialing");
        self.tasks.spawn(async move {
            let attempt = async {
                let dial = dial(addr, config, connect, quic);
                tokio::pin!(dial);
                tokio::select! {
                    r = &mut dial => return r,
                    () = tokio::time::sleep(STALL_AFTER) => {
                        let _ = results.send(Internal::DialStalled { folder, addr });
                    }
                }
                dial.await
            };
            let result = match tokio::time::timeout(limit, attempt).await {
                Ok(r) => r.map(Box::new),
                Err(_) => Err(DialError::Timeout),
            };
            let _ = results.send(Internal::Dialed {
                folder,
                addr,
                result,
            });
        });
    }

    fn dialed(
        &mut self,
        folder: FolderId,
        addr: SocketAddr,
        result: Result<Box<Stream>, DialError>,
    ) {
        self.dialing = self.dialing.saturating_sub(1);
        let Some(cand) = self.cands.get_mut(&(folder, addr)) else {
            return;
        };
        cand.dialing = false;
        match result {
            Ok(stream) => {
                cand.peer = Some(stream.session().peer_id());
                cand.failures = 0;
                cand.last_error = None;
                cand.last_failure = None;
                cand.backoff = None;
                let source = cand.source;
                self.offer(*stream, addr, source, true);
            }
            Err(e) => {
                let kind = e.kind();
                tracing::debug!(%folder, %addr, error = %e, "dial failed");
                if kind == FailureKind::Unreachable {
                    for source in &self.discoveries {
                        source.dial_failed(folder, addr);
                    }
                }
                cand.last_error = Some(e.to_string());
                cand.last_failure = Some(kind);
                cand.failures = cand.failures.saturating_add(1);
                let min = match kind {
                    FailureKind::ConnectedToSelf => {
                        tracing::info!(%addr, "this address is our own; not dialing it again");
                        cand.backoff = None;
                        self.self_addrs.insert(addr);
                        return;
                    }
                    FailureKind::Rejected => self.config.reject_backoff_min,
                    FailureKind::Unreachable => self.config.backoff_min,
                };
                let delay = jittered_delay(min, self.config.backoff_max.max(min), cand.failures);
                cand.backoff = Some(delay);
                cand.next_attempt = Instant::now() + delay;
            }
        }
    }

    /// Keeps `stream` as the channel of its (folder, peer) unless a better one
    /// is live; hands it to the daemon if kept, closes it if not.
    fn offer(&mut self, stream: Stream, remote: SocketAddr, source: &'static str, dialed: bool) {
        let info = stream.session().info();
        let (folder, peer) = (info.folder_id, info.peer_id);
        if peer == self.me || !self.folders.contains_key(&folder) {
            self.close(stream);
            return;
        }
        let carrier = stream.get_ref().kind();
        let rank = Rank {
            relayed: !carrier.is_direct(),
            dialer: if dialed { self.me } else { peer },
            transcript: info.transcript_hash,
        };
        let replaces = match self.live.get(&(folder, peer)) {
            Some(current) if current.rank < rank => {
                tracing::debug!(%folder, %peer, %remote, "duplicate channel; keeping the existing one");
                self.close(stream);
                return;
            }
            Some(current) => Some(current.id),
            None => None,
        };
        self.serial += 1;
        let id = ConnectionId {
            folder,
            peer,
            serial: self.serial,
        };
        let access = stream.peer_access();
        tracing::info!(%folder, %peer, %remote, source, %carrier, %access, dialed, "connected");
        self.live.insert(
            (folder, peer),
            Live {
                id,
                rank,
                remote,
                source,
                carrier,
                access,
                dialed,
                since: SystemTime::now(),
                established: Instant::now(),
            },
        );
        let conn = Connection {
            id,
            folder,
            peer,
            access,
            remote,
            source,
            carrier,
            dialed,
            replaces,
            stream,
        };
        let _ = self.events.send(NetEvent::Connected(conn));
    }

    fn close(&mut self, mut stream: Stream) {
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
        });
    }

    fn disconnected(&mut self, id: ConnectionId) {
        let key = (id.folder, id.peer);
        if self.live.get(&key).is_none_or(|l| l.id != id) {
            return; // stale: replaced or already reported
        }
        let Some(live) = self.live.remove(&key) else {
            return;
        };
        let flaps = if live.established.elapsed() < STABLE_AFTER {
            let n = self.short_lived.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            self.short_lived.remove(&key);
            0
        };
        tracing::info!(folder = %id.folder, peer = %id.peer, flaps, "disconnected");
        let delay = jittered_delay(
            self.config.backoff_min,
            self.config.backoff_max,
            flaps.saturating_add(1),
        );
        let retry = Instant::now() + delay;
        for ((folder, _), c) in &mut self.cands {
            if *folder == id.folder && c.peer == Some(id.peer) {
                c.next_attempt = c.next_attempt.max(retry);
            }
        }
    }

    fn status(&self) -> NetStatus {
        let now = Instant::now();
        let mut connections: Vec<_> = self
            .live
            .values()
            .map(|l| ConnectionStatus {
                id: l.id,
                remote: l.remote,
                source: l.source,
                carrier: l.carrier,
                access: l.access,
                dialed: l.dialed,
                since: l.since,
            })
            .collect();
        connections.sort_by_key(|c| (c.id.folder, c.id.peer));
        let mut candidates: Vec<_> = self
            .cands
            .iter()
            .map(|(&(folder, addr), c)| CandidateStatus {
                folder,
                addr,
                source: c.source,
                lan: c.lan,
                peer: c.peer,
                connected: self.is_connected(folder, c.peer),
                dialing: c.dialing,
                is_self: self.self_addrs.contains(&addr),
                failures: c.failures,
                last_error: c.last_error.clone(),
                last_failure: c.last_failure,
                backoff: c.backoff,
                retry_in: if self.self_addrs.contains(&addr) {
                    None
                } else {
                    c.next_attempt.checked_duration_since(now)
                },
            })
            .collect();
        candidates.sort_by_key(|c| (c.folder, !c.lan, c.addr));
        NetStatus {
            peer: self.me,
            listen: self.local_addr,
            connections,
            candidates,
            dialing: self.dialing,
            handshaking: self.handshaking.load(Ordering::SeqCst),
            discovery: self.discoveries.iter().map(|d| d.name()).collect(),
        }
    }
}
