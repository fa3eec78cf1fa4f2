//! LAN discovery: UDP broadcast (IPv4) and link-local multicast (IPv6) on a
//! fixed port. See `docs/protocol/discovery.md`.
//!
//! One actor task owns the sockets:
//!
//! * a *shared* socket per family bound to the discovery port with
//!   `SO_REUSEADDR` + `SO_REUSEPORT`, so every instance on a host receives the
//!   broadcasts and multicasts (unicast to a shared port would reach only one);
//! * a *unicast* socket per family on an ephemeral port, from which we send our
//!   announcements and on which peers answer our queries.
//!
//! An announcement naming a folder we subscribed to yields a [`Candidate`]
//! (sender's IP + announced TCP port). Our own announcements (same peer id) are
//! ignored, and so is any datagram from outside the networks of our interfaces.
//! A query is answered by unicast, at most once a second per sender.

mod onlink;
pub mod packet;

use std::collections::HashMap;
use std::future::pending;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use keys::{FolderId, PeerId};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::onlink::LocalNets;
use self::packet::{Announcement, MAX_PACKET};
use super::{Candidate, Candidates, Discovery};
use crate::backoff::jitter;
use crate::config::LAN_GROUP_V6;

/// Delay from a subscription to the query announcement, so that the folders
/// subscribed together at start go out in one datagram.
const SUBSCRIBE_BATCH: Duration = Duration::from_millis(50);
/// Shortest time between two answers to the same sender.
const ANSWER_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between two reads of the interface list prompted by a
/// datagram from an unknown network.
const NETS_REFRESH: Duration = Duration::from_secs(5);
/// Senders remembered for answer rate-limiting before the memory is cleared.
const MAX_ANSWERED: usize = 1024;

/// Settings of LAN discovery.
#[derive(Debug, Clone)]
pub struct LanConfig {
    /// Our peer id (announced; our own packets are recognised by it).
    pub peer: PeerId,
    /// Our TCP listen port (announced).
    pub tcp_port: u16,
    /// The UDP discovery port.
    pub port: u16,
    /// Period between announcements (jittered by ±10 %).
    pub interval: Duration,
    /// Broadcast on IPv4 (our listener accepts IPv4).
    pub ipv4: bool,
    /// Multicast on IPv6 (our listener accepts IPv6).
    pub ipv6: bool,
}

/// The LAN discovery source. Dropping it stops the actor.
#[derive(Debug)]
pub struct LanDiscovery {
    subscribe: mpsc::UnboundedSender<(FolderId, mpsc::Sender<Candidate>)>,
}

impl LanDiscovery {
    /// Binds the sockets and starts the actor (inside a tokio runtime).
    pub fn start(config: LanConfig) -> io::Result<Self> {
        let sockets = Sockets::bind(&config)?;
        let (subscribe, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            config,
            sockets,
            subs: HashMap::new(),
            answered: HashMap::new(),
            next_announce: None,
            query: false,
            nets: LocalNets::read(),
            nets_read: Instant::now(),
        };
        tokio::spawn(actor.run(rx));
        Ok(Self { subscribe })
    }
}

impl Discovery for LanDiscovery {
    fn name(&self) -> &'static str {
        "lan"
    }

    fn subscribe(&self, folder: FolderId) -> Candidates {
        let (tx, rx) = Candidates::channel();
        // If the actor has stopped, the stream simply ends.
        let _ = self.subscribe.send((folder, tx));
        rx
    }
}

fn udp(addr: SocketAddr, shared: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_multicast_loop_v6(true)?;
    } else {
        socket.set_broadcast(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

struct Sockets {
    v4: Option<(UdpSocket, UdpSocket)>,
    v6: Option<(UdpSocket, UdpSocket)>,
}

impl Sockets {
    fn bind(config: &LanConfig) -> io::Result<Self> {
        let v4 = if config.ipv4 {
            let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            Some((
                udp(SocketAddr::new(any, config.port), true)?,
                udp(SocketAddr::new(any, 0), false)?,
            ))
        } else {
            None
        };
        let v6 = if config.ipv6 {
            let any = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            match (
                udp(SocketAddr::new(any, config.port), true),
                udp(SocketAddr::new(any, 0), false),
            ) {
                (Ok(shared), Ok(uni)) => Some((shared, uni)),
                (Err(e), _) | (_, Err(e)) if v4.is_some() => {
                    tracing::warn!(error = %e, "no IPv6 LAN discovery");
                    None
                }
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        } else {
            None
        };
        let sockets = Self { v4, v6 };
        sockets.join_groups();
        Ok(sockets)
    }

    /// Joins the IPv6 group on every interface that has IPv6 (again at every
    /// announcement, for interfaces that came up since; "already joined" is fine).
    fn join_groups(&self) {
        if let Some((shared, _)) = &self.v6 {
            for index in v6_interfaces() {
                let _ = SockRef::from(shared).join_multicast_v6(&LAN_GROUP_V6, index);
            }
        }
    }
}

/// Indexes of the interfaces with an IPv6 address.
fn v6_interfaces() -> Vec<u32> {
    let mut out: Vec<u32> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.addr.ip().is_ipv6())
        .filter_map(|i| i.index)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Where IPv4 announcements go: the limited broadcast and each interface's
/// subnet broadcast.
fn v4_targets(port: u16) -> Vec<SocketAddr> {
    let mut out = vec![Ipv4Addr::BROADCAST];
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if let if_addrs::IfAddr::V4(v4) = iface.addr
            && let Some(b) = v4.broadcast
            && !out.contains(&b)
        {
            out.push(b);
        }
    }
    out.into_iter()
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port))
        .collect()
}

type Subscribe = (FolderId, mpsc::Sender<Candidate>);

struct Actor {
    config: LanConfig,
    sockets: Sockets,
    subs: HashMap<FolderId, Vec<mpsc::Sender<Candidate>>>,
    answered: HashMap<SocketAddr, Instant>,
    next_announce: Option<Instant>,
    query: bool,
    nets: LocalNets,
    nets_read: Instant,
}

async fn readable(socket: Option<&UdpSocket>) -> io::Result<()> {
    match socket {
        Some(s) => s.readable().await,
        None => pending().await,
    }
}

async fn wake(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => pending().await,
    }
}

impl Actor {
    async fn run(mut self, mut subscribe: mpsc::UnboundedReceiver<Subscribe>) {
        let mut buf = vec![0u8; MAX_PACKET + 1];
        loop {
            let v4 = self.sockets.v4.as_ref();
            let v6 = self.sockets.v6.as_ref();
            // Not biased: a flood on one socket must not starve the others or
            // the announcement timer.
            let event = tokio::select! {
                sub = subscribe.recv() => match sub {
                    Some(sub) => Event::Subscribe(sub),
                    None => return,
                },
                Ok(()) = readable(v4.map(|s| &s.0)) => Event::Readable(Family::V4, Which::Shared),
                Ok(()) = readable(v4.map(|s| &s.1)) => Event::Readable(Family::V4, Which::Unicast),
                Ok(()) = readable(v6.map(|s| &s.0)) => Event::Readable(Family::V6, Which::Shared),
                Ok(()) = readable(v6.map(|s| &s.1)) => Event::Readable(Family::V6, Which::Unicast),
                () = wake(self.next_announce) => Event::Announce,
            };
            match event {
                Event::Subscribe((folder, tx)) => {
                    self.subs.entry(folder).or_default().push(tx);
                    self.query = true;
                    let soon = Instant::now() + SUBSCRIBE_BATCH;
                    self.next_announce = Some(self.next_announce.map_or(soon, |t| t.min(soon)));
                }
                Event::Readable(family, which) => self.drain(family, which, &mut buf),
                Event::Announce => self.announce().await,
            }
        }
    }

    fn socket(&self, family: Family, which: Which) -> Option<&UdpSocket> {
        let pair = match family {
            Family::V4 => self.sockets.v4.as_ref(),
            Family::V6 => self.sockets.v6.as_ref(),
        }?;
        Some(match which {
            Which::Shared => &pair.0,
            Which::Unicast => &pair.1,
        })
    }

    /// Reads every datagram waiting on one socket.
    fn drain(&mut self, family: Family, which: Which, buf: &mut [u8]) {
        // Bounded: at most this many datagrams per wake-up, then the others run.
        for _ in 0..64 {
            let Some(socket) = self.socket(family, which) else {
                return;
            };
            match socket.try_recv_from(buf) {
                Ok((n, from)) => {
                    let datagram = buf.get(..n).unwrap_or_default().to_vec();
                    self.handle_datagram(&datagram, from, family);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "LAN discovery receive failed");
                    return;
                }
            }
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, family: Family) {
        let a = match Announcement::decode(datagram) {
            Ok(a) => a,
            Err(e) => {
                tracing::trace!(%from, error = %e, "ignoring LAN datagram");
                return;
            }
        };
        if a.peer == self.config.peer || !self.on_link(from.ip()) {
            return;
        }
        let addr = match from {
            SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), a.port),
            SocketAddr::V6(v6) => {
                SocketAddr::V6(SocketAddrV6::new(*v6.ip(), a.port, 0, v6.scope_id()))
            }
        };
        let mut shared = false;
        for folder in &a.folders {
            if let Some(list) = self.subs.get_mut(folder) {
                shared = true;
                let c = Candidate {
                    folder: *folder,
                    addr,
                    peer: Some(a.peer),
                    source: "lan",
                    lan: true,
                };
                list.retain(|tx| {
                    !matches!(
                        tx.try_send(c.clone()),
                        Err(mpsc::error::TrySendError::Closed(_))
                    )
                });
            }
        }
        if a.query && shared {
            self.answer(from, family);
        }
    }

    /// Whether `ip` is on one of our networks; the interface list is read
    /// again (rate-limited) before saying no, in case an address was added.
    fn on_link(&mut self, ip: IpAddr) -> bool {
        if self.nets.contains(ip) {
            return true;
        }
        if self.nets_read.elapsed() >= NETS_REFRESH {
            self.nets = LocalNets::read();
            self.nets_read = Instant::now();
            return self.nets.contains(ip);
        }
        tracing::trace!(%ip, "ignoring LAN datagram from outside our networks");
        false
    }

    fn answer(&mut self, to: SocketAddr, family: Family) {
        let now = Instant::now();
        if self
            .answered
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < ANSWER_INTERVAL)
        {
            return;
        }
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.clear();
        }
        self.answered.insert(to, now);
        let Some(socket) = self.socket(family, Which::Unicast) else {
            return;
        };
        for datagram in self.datagrams(false) {
            // Best effort; a full send buffer just drops this answer.
            let _ = socket.try_send_to(&datagram, to);
        }
    }

    fn datagrams(&self, query: bool) -> Vec<Vec<u8>> {
        let mut folders: Vec<FolderId> = self.subs.keys().copied().collect();
        folders.sort_unstable();
        Announcement::split(query, self.config.peer, self.config.tcp_port, &folders)
            .iter()
            .filter_map(|a| a.encode().ok())
            .collect()
    }

    async fn announce(&mut self) {
        self.subs.retain(|_, list| {
            list.retain(|tx| !tx.is_closed());
            !list.is_empty()
        });
        let query = std::mem::take(&mut self.query);
        self.next_announce = Some(Instant::now() + jitter(self.config.interval, 0.1));
        let datagrams = self.datagrams(query);
        if datagrams.is_empty() {
            return;
        }
        self.sockets.join_groups();
        self.nets = LocalNets::read();
        self.nets_read = Instant::now();
        if let Some((_, uni)) = &self.sockets.v4 {
            for target in v4_targets(self.config.port) {
                for d in &datagrams {
                    if let Err(e) = uni.send_to(d, target).await {
                        tracing::trace!(%target, error = %e, "LAN broadcast failed");
                    }
                }
            }
        }
        if let Some((_, uni)) = &self.sockets.v6 {
            for index in v6_interfaces() {
                if SockRef::from(uni).set_multicast_if_v6(index).is_err() {
                    continue;
                }
                let target =
                    SocketAddr::V6(SocketAddrV6::new(LAN_GROUP_V6, self.config.port, 0, index));
                for d in &datagrams {
                    if let Err(e) = uni.send_to(d, target).await {
                        tracing::trace!(%target, error = %e, "LAN multicast failed");
                    }
                }
            }
        }
    }
}

enum Event {
    Subscribe(Subscribe),
    Readable(Family, Which),
    Announce,
}

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Shared,
    Unicast,
}
