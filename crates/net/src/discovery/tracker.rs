//! UDP tracker (BEP 15) discovery: each folder is announced to each tracker
//! under its folder id as info hash, with our TCP listen port; the peers the
//! tracker lists become candidates. Our own tracker also answers the
//! `address` extension (our public endpoint, `docs/protocol/tracker.md` §4).
//!
//! Each tracker gets a UDP socket bound to the QUIC carrier's port (with
//! `SO_REUSEPORT`) and *connected* to the tracker, so the kernel hands it the
//! tracker's datagrams while QUIC keeps everything else, and the tracker sees
//! the same NAT mapping as QUIC's: what it lists, and where it sends a punch
//! notify, is where our QUIC endpoint can be reached. Without a QUIC port (or
//! where that bind fails) one ephemeral socket per family serves all
//! trackers. A receive task per socket hands each answer to the request
//! waiting for its transaction id (from the tracker's address only, so nobody
//! else can answer for it).
//!
//! Hole punching (`docs/protocol/tracker.md` §5): when a dial to an address a
//! tracker listed fails, we ask that tracker to introduce us; it tells the
//! peer to dial us and tells us the peer's real endpoint, which both sides
//! then dial at once (source [`PUNCH_SOURCE`], due at once).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keys::FolderId;
use tokio::net::{UdpSocket, lookup_host};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracker_proto::{AnnounceRequest, Event, Family, Request, Response};

use super::{Candidate, Candidates, Discovery, KnownHost};
use crate::config::{DEFAULT_TRACKERS, NetConfig, NetError};

/// The name of this source in candidates and status.
pub const TRACKER_SOURCE: &str = "tracker";
/// The source of candidates from a hole-punch introduction: dialed at once.
pub const PUNCH_SOURCE: &str = "punch";
/// One punch per listed address at most this often.
const PUNCH_EVERY: Duration = Duration::from_secs(30);
/// Sockets on the shared port, one per tracker address; past this, the
/// ephemeral fallback.
const MAX_TRACKER_SOCKETS: usize = 64;
/// Listed addresses remembered for punching, over all folders and trackers.
const MAX_LISTED: usize = 4096;

/// Tries of one request before the round is given up (BEP 15 doubles the
/// wait each time; we start lower than its 15 s, so a lost datagram costs
/// seconds, not minutes).
const TRIES: u32 = 4;
/// The first wait for an answer.
const FIRST_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection id is reused this long (BEP 15: one minute).
const CONNECTION_ID_LIFE: Duration = Duration::from_secs(60);
/// Re-announce bounds, whatever interval a tracker asks for.
const MIN_INTERVAL: Duration = Duration::from_secs(30);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// While a tracker lists nobody else, announce again this soon (the folder's
/// other devices may be starting too).
const ALONE_INTERVAL: Duration = Duration::from_secs(120);
/// After a failed round: first wait, doubled up to `MAX_INTERVAL`.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Peers asked for per announce.
const NUM_WANT: i32 = 50;
/// Largest datagram read (an announce answer with `MAX_PARSED_PEERS` IPv6
/// peers fits).
const MAX_DATAGRAM: usize = 20 + 18 * tracker_proto::MAX_PARSED_PEERS;

/// The tracker source for `config`, or `None` when trackers are off.
/// `shared_udp`: the QUIC carrier holds UDP `listen.port()` with
/// `SO_REUSEPORT`, so trackers are spoken to from that port.
pub(crate) fn start(
    config: &NetConfig,
    listen: SocketAddr,
    shared_udp: bool,
) -> Result<Option<Box<dyn Discovery>>, NetError> {
    if !config.tracker {
        return Ok(None);
    }
    let trackers = if config.trackers.is_empty() {
        DEFAULT_TRACKERS
            .iter()
            .map(|t| t.parse())
            .collect::<Result<Vec<KnownHost>, _>>()
    } else {
        config.trackers.iter().map(|t| t.parse()).collect()
    }
    .map_err(NetError::Tracker)?;
    let udp_port = shared_udp.then_some(listen.port());
    match TrackerDiscovery::start(trackers, listen.port(), udp_port) {
        Ok(source) => Ok(Some(Box::new(source))),
        Err(e) => {
            tracing::warn!(error = %e, "continuing without trackers: no UDP socket");
            Ok(None)
        }
    }
}

/// Announces folders to UDP trackers; see the module docs.
#[derive(Debug)]
pub struct TrackerDiscovery {
    client: Arc<Client>,
    trackers: Arc<[KnownHost]>,
    tcp_port: u16,
}

impl TrackerDiscovery {
    /// Binds the fallback client sockets (IPv4, and IPv6 where the host has
    /// it) and starts their receive tasks; with `udp_port`, each tracker gets
    /// its own socket on that port when first used. Call inside a tokio
    /// runtime.
    pub fn start(
        trackers: Vec<KnownHost>,
        tcp_port: u16,
        udp_port: Option<u16>,
    ) -> std::io::Result<Self> {
        let v4 = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0));
        let v6 = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0));
        let mut sockets = Vec::new();
        let mut first_error = None;
        for socket in [v4, v6] {
            match socket.and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            }) {
                Ok(s) => sockets.push(Arc::new(s)),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if sockets.is_empty() {
            return Err(first_error.unwrap_or_else(|| std::io::Error::other("no socket")));
        }
        let client = Arc::new(Client {
            sockets: sockets.clone(),
            udp_port,
            per_tracker: Mutex::default(),
            pending: Mutex::default(),
            receivers: Mutex::default(),
            public: Mutex::default(),
            listed: Mutex::default(),
            subscribers: Mutex::default(),
            connections: Mutex::default(),
            punched: Mutex::default(),
        });
        let receivers: Vec<AbortHandle> = sockets
            .into_iter()
            .map(|socket| {
                tokio::spawn(receive_loop(Arc::downgrade(&client), socket)).abort_handle()
            })
            .collect();
        *client
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = receivers;
        Ok(Self {
            client,
            trackers: trackers.into(),
            tcp_port,
        })
    }

    /// Our public endpoint as the last tracker that answers the `address`
    /// extension saw it (the port is the client socket's mapping, not our
    /// TCP port).
    pub fn public_address(&self) -> Option<SocketAddr> {
        *self
            .client
            .public
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TrackerDiscovery {
    fn drop(&mut self) {
        for task in self
            .client
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Discovery for TrackerDiscovery {
    fn name(&self) -> &'static str {
        TRACKER_SOURCE
    }

    fn subscribe(&self, folder: FolderId) -> Candidates {
        let (tx, rx) = Candidates::channel();
        lock(&self.client.subscribers).insert(folder, tx.clone());
        for tracker in self.trackers.iter().cloned() {
            let announcer = Announcer {
                client: Arc::clone(&self.client),
                tracker,
                folder,
                tcp_port: self.tcp_port,
                peer_id: bittorrent_peer_id(),
                key: random_u32(),
                connection: None,
                asks_address: true,
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = announcer.run(&tx) => {}
                    () = tx.closed() => {}
                }
            });
        }
        rx
    }

    fn dial_failed(&self, folder: FolderId, addr: SocketAddr) {
        if lock(&self.client.listed).contains_key(&(folder, addr)) {
            tokio::spawn(Arc::clone(&self.client).punch(folder, addr));
        }
    }
}

/// Requests in flight, by transaction id: where the answer must come from
/// and who waits for it.
type Pending = HashMap<u32, (SocketAddr, oneshot::Sender<Vec<u8>>)>;

#[derive(Debug)]
struct Client {
    /// Ephemeral sockets, one per family: the fallback.
    sockets: Vec<Arc<UdpSocket>>,
    /// The QUIC carrier's port, shared by per-tracker sockets.
    udp_port: Option<u16>,
    per_tracker: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    pending: Mutex<Pending>,
    receivers: Mutex<Vec<AbortHandle>>,
    public: Mutex<Option<SocketAddr>>,
    /// Which tracker listed an address, for punching.
    listed: Mutex<HashMap<(FolderId, SocketAddr), SocketAddr>>,
    /// Where punch candidates of each folder go.
    subscribers: Mutex<HashMap<FolderId, tokio::sync::mpsc::Sender<Candidate>>>,
    /// The latest connection id of each tracker (for punch requests).
    connections: Mutex<HashMap<SocketAddr, (u64, Instant)>>,
    /// When each listed address was last punched.
    punched: Mutex<HashMap<(FolderId, SocketAddr), Instant>>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why one request got no usable answer.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("no answer after {TRIES} tries")]
    Timeout,
    #[error("no socket for this address family")]
    NoSocket,
    #[error("cannot send: {0}")]
    Send(std::io::Error),
    #[error("malformed answer: {0}")]
    Malformed(tracker_proto::ProtoError),
    #[error("the tracker refused: {0}")]
    Refused(String),
    #[error("unexpected answer")]
    Unexpected,
}

impl Client {
    /// Whether a socket of `to`'s family exists.
    fn has_family(&self, to: SocketAddr) -> bool {
        self.fallback_for(to).is_some()
    }

    fn fallback_for(&self, to: SocketAddr) -> Option<Arc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|s| {
                s.local_addr()
                    .is_ok_and(|local| local.is_ipv4() == to.is_ipv4())
            })
            .cloned()
    }

    /// The socket to talk to tracker `to` from: its own one on the shared
    /// port (made on first use), else the fallback.
    fn socket_for(self: &Arc<Self>, to: SocketAddr) -> Option<Arc<UdpSocket>> {
        let Some(port) = self.udp_port else {
            return self.fallback_for(to);
        };
        {
            let sockets = lock(&self.per_tracker);
            if let Some(socket) = sockets.get(&to) {
                return Some(Arc::clone(socket));
            }
            // A tracker name that resolves to ever new addresses must not
            // cost a socket and a task each.
            if sockets.len() >= MAX_TRACKER_SOCKETS {
                return self.fallback_for(to);
            }
        }
        match shared_port_socket(port, to) {
            Ok(socket) => {
                let socket = Arc::new(socket);
                let task = tokio::spawn(receive_loop(Arc::downgrade(self), Arc::clone(&socket)));
                lock(&self.receivers).push(task.abort_handle());
                lock(&self.per_tracker).insert(to, Arc::clone(&socket));
                Some(socket)
            }
            Err(e) => {
                tracing::debug!(tracker = %to, port, error = %e, "no socket on the shared port; using an ephemeral one");
                self.fallback_for(to)
            }
        }
    }

    /// Sends `request` (its transaction id replaced by a fresh one) to `to`
    /// and waits for the matching answer, retrying with doubling timeouts.
    async fn request(
        self: &Arc<Self>,
        to: SocketAddr,
        request: Request,
    ) -> Result<Response, RequestError> {
        let socket = self.socket_for(to).ok_or(RequestError::NoSocket)?;
        let mut timeout = FIRST_TIMEOUT;
        for _ in 0..TRIES {
            let transaction_id = random_u32();
            let request = with_transaction_id(&request, transaction_id);
            let (tx, rx) = oneshot::channel();
            self.lock_pending().insert(transaction_id, (to, tx));
            let mut datagram = Vec::with_capacity(request.encoded_len());
            request.write(&mut datagram);
            if let Err(e) = socket.send_to(&datagram, to).await {
                self.lock_pending().remove(&transaction_id);
                return Err(RequestError::Send(e));
            }
            let answer = tokio::time::timeout(timeout, rx).await;
            self.lock_pending().remove(&transaction_id);
            if let Ok(Ok(bytes)) = answer {
                let response =
                    Response::parse(&bytes, Family::of(to)).map_err(RequestError::Malformed)?;
                return match response {
                    Response::Error { message, .. } => Err(RequestError::Refused(message)),
                    other => Ok(other),
                };
            }
            timeout *= 2;
        }
        Err(RequestError::Timeout)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    /// Hands a candidate to `folder`'s subscription, if it still has one.
    fn offer(&self, folder: FolderId, addr: SocketAddr, source: &'static str) {
        let tx = lock(&self.subscribers).get(&folder).cloned();
        if let Some(tx) = tx {
            let candidate = Candidate {
                folder,
                addr,
                peer: None,
                source,
                lan: false,
            };
            let _ = tx.try_send(candidate);
        }
    }

    /// Remembers that `tracker` listed `peer` for `folder` (bounded).
    fn note_listed(&self, folder: FolderId, peer: SocketAddr, tracker: SocketAddr) {
        let mut listed = lock(&self.listed);
        if listed.len() >= MAX_LISTED && !listed.contains_key(&(folder, peer)) {
            listed.clear();
        }
        listed.insert((folder, peer), tracker);
    }

    /// Asks the tracker that listed `target` to introduce us, and offers the
    /// endpoint it answers as a punch candidate.
    async fn punch(self: Arc<Self>, folder: FolderId, target: SocketAddr) {
        let Some(tracker) = lock(&self.listed).get(&(folder, target)).copied() else {
            return;
        };
        {
            let mut punched = lock(&self.punched);
            if punched
                .get(&(folder, target))
                .is_some_and(|at| at.elapsed() < PUNCH_EVERY)
            {
                return;
            }
            if punched.len() >= MAX_LISTED {
                punched.retain(|_, at| at.elapsed() < PUNCH_EVERY);
            }
            punched.insert((folder, target), Instant::now());
        }
        let fresh = lock(&self.connections)
            .get(&tracker)
            .filter(|(_, at)| at.elapsed() < CONNECTION_ID_LIFE)
            .map(|(id, _)| *id);
        let connection_id = match fresh {
            Some(id) => id,
            None => match self
                .request(tracker, Request::Connect { transaction_id: 0 })
                .await
            {
                Ok(Response::Connect { connection_id, .. }) => {
                    lock(&self.connections).insert(tracker, (connection_id, Instant::now()));
                    connection_id
                }
                _ => return,
            },
        };
        let request = Request::Punch(tracker_proto::PunchRequest {
            connection_id,
            transaction_id: 0,
            info_hash: *folder.as_bytes(),
            target,
        });
        match self.request(tracker, request).await {
            Ok(Response::Punch {
                result: tracker_proto::PunchResult::Notified(endpoint),
                ..
            }) => {
                tracing::debug!(%folder, %target, %endpoint, "tracker introduced us; punching");
                self.offer(folder, endpoint, PUNCH_SOURCE);
            }
            Ok(other) => tracing::debug!(%folder, %target, answer = ?other, "no punch"),
            Err(e) => tracing::debug!(%folder, %target, error = %e, "punch request failed"),
        }
    }

    /// A punch notify from a tracker we talk to: dial the peer it names.
    fn notified(&self, from: SocketAddr, datagram: &[u8]) {
        if !lock(&self.connections).contains_key(&from) {
            return;
        }
        if let Ok(Response::PunchNotify {
            info_hash, peer, ..
        }) = Response::parse(datagram, Family::of(from))
        {
            let folder = FolderId(info_hash);
            tracing::debug!(%folder, %peer, tracker = %from, "asked to punch");
            self.offer(folder, peer, PUNCH_SOURCE);
        }
    }
}

/// A UDP socket on `port` beside the QUIC endpoint (`SO_REUSEPORT`),
/// connected to `tracker` so that the tracker's datagrams come here.
fn shared_port_socket(port: u16, tracker: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(tracker),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    let local: SocketAddr = if tracker.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, port).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, port).into()
    };
    socket.bind(&local.into())?;
    socket.connect(&tracker.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

fn with_transaction_id(request: &Request, transaction_id: u32) -> Request {
    let mut request = request.clone();
    match &mut request {
        Request::Connect { transaction_id: t }
        | Request::Address {
            transaction_id: t, ..
        } => {
            *t = transaction_id;
        }
        Request::Announce(a) => a.transaction_id = transaction_id,
        Request::Scrape(s) => s.transaction_id = transaction_id,
        Request::Punch(p) => p.transaction_id = transaction_id,
    }
    request
}

/// Hands each datagram to the request waiting for its transaction id, if it
/// came from the address that request went to. Ends when the client is gone.
async fn receive_loop(client: std::sync::Weak<Client>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors surface here on some systems; the request times out.
            continue;
        };
        let Some(client) = client.upgrade() else {
            return;
        };
        let datagram = buf.get(..len).unwrap_or_default();
        if datagram.get(..4) == Some(&tracker_proto::ACTION_PUNCH_NOTIFY.to_be_bytes()[..]) {
            client.notified(from, datagram);
            continue;
        }
        let Some(id) = buf
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            continue;
        };
        let mut pending = client.lock_pending();
        if pending.get(&id).is_some_and(|(to, _)| *to == from)
            && let Some((_, waiter)) = pending.remove(&id)
        {
            let _ = waiter.send(buf.get(..len).unwrap_or_default().to_vec());
        }
    }
}

/// One folder's announcements to one tracker.
struct Announcer {
    client: Arc<Client>,
    tracker: KnownHost,
    folder: FolderId,
    tcp_port: u16,
    peer_id: [u8; 20],
    key: u32,
    /// The tracker's address and a connection id with the time it was issued.
    connection: Option<(SocketAddr, u64, Instant)>,
    /// Cleared once the tracker shows it does not speak the extension.
    asks_address: bool,
}

impl Announcer {
    async fn run(mut self, tx: &tokio::sync::mpsc::Sender<Candidate>) {
        let mut event = Event::Started;
        let mut retry = RETRY_AFTER;
        loop {
            let wait = match self.round(event, tx).await {
                Ok((interval, found)) => {
                    event = Event::None;
                    retry = RETRY_AFTER;
                    let interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
                    if found == 0 {
                        interval.min(ALONE_INTERVAL)
                    } else {
                        interval
                    }
                }
                Err(e) => {
                    tracing::info!(tracker = %self.tracker, folder = %self.folder, error = %e, "tracker announce failed");
                    self.connection = None;
                    let wait = retry;
                    retry = (retry * 2).min(MAX_INTERVAL);
                    wait
                }
            };
            tokio::time::sleep(jitter(wait)).await;
        }
    }

    /// Connects if needed, announces, and forwards the peers listed.
    /// Returns the tracker's interval and how many peers it listed.
    async fn round(
        &mut self,
        event: Event,
        tx: &tokio::sync::mpsc::Sender<Candidate>,
    ) -> Result<(Duration, usize), RequestError> {
        let (addr, connection_id) = self.connect().await?;
        let announce = Request::Announce(AnnounceRequest {
            connection_id,
            transaction_id: 0,
            info_hash: *self.folder.as_bytes(),
            peer_id: self.peer_id,
            downloaded: 0,
            // Not 0: some trackers list no seeders to a seeder, and every
            // device of a folder may need something.
            left: 1,
            uploaded: 0,
            event,
            ip: 0,
            key: self.key,
            num_want: NUM_WANT,
            port: self.tcp_port,
        });
        let Response::Announce(answer) = self.client.request(addr, announce).await? else {
            return Err(RequestError::Unexpected);
        };
        let peers = answer.peers.to_vec();
        let public = *self
            .client
            .public
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut found = 0;
        for peer in peers {
            // Our own announcement, as the tracker saw it.
            if public.is_some_and(|p| p.ip() == peer.ip()) && peer.port() == self.tcp_port {
                continue;
            }
            if peer.port() == 0 || peer.ip().is_unspecified() {
                continue;
            }
            found += 1;
            self.client.note_listed(self.folder, peer, addr);
            let candidate = Candidate {
                folder: self.folder,
                addr: peer,
                peer: None,
                source: TRACKER_SOURCE,
                lan: false,
            };
            if tx.send(candidate).await.is_err() {
                break;
            }
        }
        tracing::debug!(tracker = %self.tracker, folder = %self.folder, found, interval = answer.interval, "tracker announce");
        // After the announce: a plain tracker never answers it, and the
        // candidates must not wait for that timeout.
        if self.asks_address {
            self.ask_address(addr, connection_id).await;
        }
        Ok((Duration::from_secs(u64::from(answer.interval)), found))
    }

    /// The tracker's address and a live connection id, connecting if the
    /// last one is older than a minute.
    async fn connect(&mut self) -> Result<(SocketAddr, u64), RequestError> {
        if let Some((addr, id, at)) = self.connection
            && at.elapsed() < CONNECTION_ID_LIFE
        {
            return Ok((addr, id));
        }
        let addr = self.resolve().await.ok_or(RequestError::NoSocket)?;
        let issued = Instant::now();
        let Response::Connect { connection_id, .. } = self
            .client
            .request(addr, Request::Connect { transaction_id: 0 })
            .await?
        else {
            return Err(RequestError::Unexpected);
        };
        self.connection = Some((addr, connection_id, issued));
        lock(&self.client.connections).insert(addr, (connection_id, issued));
        Ok((addr, connection_id))
    }

    /// The tracker's first address of a family we have a socket for.
    async fn resolve(&self) -> Option<SocketAddr> {
        let addrs = match lookup_host((self.tracker.host(), self.tracker.port())).await {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::info!(tracker = %self.tracker, error = %e, "cannot resolve tracker");
                return None;
            }
        };
        let mut addrs: Vec<SocketAddr> = addrs.collect();
        // IPv4 first: most public trackers and NATs are IPv4.
        addrs.sort_by_key(SocketAddr::is_ipv6);
        addrs.into_iter().find(|a| self.client.has_family(*a))
    }

    /// Asks for our public endpoint; a tracker that does not answer it (a
    /// plain BitTorrent tracker) is not asked again.
    async fn ask_address(&mut self, addr: SocketAddr, connection_id: u64) {
        let request = Request::Address {
            connection_id,
            transaction_id: 0,
        };
        // One try: a plain tracker ignores it, and the announce must not wait.
        let socket_answer = tokio::time::timeout(FIRST_TIMEOUT, self.client.request(addr, request));
        match socket_answer.await {
            Ok(Ok(Response::Address { address, .. })) => {
                let mut public = self
                    .client
                    .public
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if *public != Some(address) {
                    tracing::info!(tracker = %self.tracker, public = %address, "public address");
                }
                *public = Some(address);
            }
            _ => {
                tracing::debug!(tracker = %self.tracker, "tracker does not tell addresses");
                self.asks_address = false;
            }
        }
    }
}

/// `-SW0100-` and 12 random bytes: Azureus-style, so trackers that show
/// clients can tell ours; random so announcements of different runs are not
/// linkable.
fn bittorrent_peer_id() -> [u8; 20] {
    let mut id = *b"-SW0100-000000000000";
    let _ = getrandom::fill(id.get_mut(8..).unwrap_or_default());
    id
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

/// `wait` ± 10 %, so folders and devices started together do not announce in
/// lockstep.
fn jitter(wait: Duration) -> Duration {
    let spread = f64::from(random_u32()) / f64::from(u32::MAX) * 0.2 + 0.9;
    wait.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]

    use super::*;

    #[test]
    fn peer_ids_look_like_ours_and_differ() {
        let (a, b) = (bittorrent_peer_id(), bittorrent_peer_id());
        assert_eq!(&a[..8], b"-SW0100-");
        assert_ne!(a, b);
    }

    /// A tracker on loopback that answers connect, address and announce
    /// (listing `listed`), after ignoring the first `drop_first` datagrams;
    /// it reports each announce it gets.
    async fn fake_tracker(
        listed: Vec<std::net::SocketAddrV4>,
        drop_first: usize,
    ) -> (
        SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<AnnounceRequest>,
    ) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut seen = 0;
            loop {
                let (len, from) = socket.recv_from(&mut buf).await.unwrap();
                seen += 1;
                if seen <= drop_first {
                    continue;
                }
                let answer = match Request::parse(&buf[..len]).unwrap() {
                    Request::Connect { transaction_id } => Response::Connect {
                        transaction_id,
                        connection_id: 42,
                    },
                    Request::Address { transaction_id, .. } => Response::Address {
                        transaction_id,
                        address: from,
                    },
                    Request::Announce(a) => {
                        assert_eq!(a.connection_id, 42);
                        let transaction_id = a.transaction_id;
                        tx.send(a).unwrap();
                        Response::Announce(tracker_proto::AnnounceResponse {
                            transaction_id,
                            interval: 1800,
                            leechers: 1,
                            seeders: 0,
                            peers: tracker_proto::PeerList::V4(listed.clone()),
                        })
                    }
                    other => panic!("unexpected {other:?}"),
                };
                let mut out = Vec::new();
                answer.write(&mut out);
                socket.send_to(&out, from).await.unwrap();
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn announces_the_folder_and_forwards_the_listed_peers() {
        let listed = vec!["127.0.0.5:6000".parse().unwrap()];
        // The first datagram is lost: the client must retry.
        let (addr, mut announces) = fake_tracker(listed, 1).await;
        let source =
            TrackerDiscovery::start(vec![addr.to_string().parse().unwrap()], 41_544, None).unwrap();
        let folder = FolderId([7; 20]);
        let mut candidates = source.subscribe(folder);
        let got = tokio::time::timeout(Duration::from_secs(20), candidates.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.addr, "127.0.0.5:6000".parse::<SocketAddr>().unwrap());
        assert_eq!(
            (got.folder, got.source, got.lan),
            (folder, TRACKER_SOURCE, false)
        );
        let announce = announces.recv().await.unwrap();
        assert_eq!(announce.info_hash, folder.0);
        assert_eq!((announce.port, announce.event), (41_544, Event::Started));
        assert_eq!(&announce.peer_id[..8], b"-SW0100-");
        // Asked right after the announce.
        let mut public = None;
        for _ in 0..100 {
            public = source.public_address();
            if public.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let public = public.expect("the address extension answered");
        assert!(public.ip().is_loopback(), "{public}");
    }

    #[test]
    fn bad_tracker_values_are_bad_input() {
        let config = NetConfig {
            trackers: vec!["no-port".into()],
            ..NetConfig::default()
        };
        let listen: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let Err(e) = start(&config, listen, false) else {
            panic!("accepted a tracker without a port")
        };
        assert!(e.is_bad_input());
        assert!(e.to_string().starts_with("--tracker"), "{e}");
    }
}
