//! Mainline DHT (BEP 5) discovery. See `docs/protocol/discovery.md`, "DHT".
//!
//! One [`mainline`] node per process (not per folder), on its own UDP port
//! ([`crate::DEFAULT_DHT_PORT`]), in mainline's adaptive mode: a client that
//! turns server once it has been reachable for a while. For each subscribed
//! folder a task announces our TCP listen port under the folder id (the info
//! hash) and asks for the peers announced there, at once, then every
//! [`ANNOUNCE_INTERVAL`] (every [`RETRY_INTERVAL`] while nobody was found).
//!
//! mainline runs its own actor thread; [`mainline::async_dht::AsyncDht`] talks
//! to it over channels, so nothing here blocks a tokio worker. Building the
//! node (binding, resolving bootstrap names, reading the saved nodes) blocks,
//! so it runs under `spawn_blocking`; subscriptions made meanwhile wait.
//!
//! The routing table is saved to `STATE_DIR/dht-nodes` ([`nodes`]) and used as
//! extra bootstrap nodes at the next start.

mod nodes;

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_lite::StreamExt;
use keys::FolderId;
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Candidate, Candidates, Discovery, KnownHost};
use crate::backoff::jitter;
use crate::config::{DEFAULT_DHT_PORT, NetConfig, NetError};

/// Period between two rounds of a folder that found peers (jittered ±10 %).
pub(crate) const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Period between two rounds while a folder found nobody (jittered ±10 %).
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Period between two saves of the routing table.
pub(crate) const SAVE_INTERVAL: Duration = Duration::from_secs(2 * 60);
/// Period between two snapshots of the routing table kept in memory for the
/// save at drop (at most this old), when shorter than the save interval.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(20);
/// Bound on each announce and each lookup (mainline's own queries end sooner
/// on a healthy network; this only stops a stuck one from stalling a folder).
const QUERY_LIMIT: Duration = Duration::from_secs(60);
/// The source's name.
const NAME: &str = "dht";

/// Settings of the DHT source.
#[derive(Debug, Clone)]
pub(crate) struct DhtConfig {
    /// Bootstrap nodes; empty means mainline's public routers.
    pub(crate) bootstrap: Vec<KnownHost>,
    /// The UDP port; 0 picks any.
    pub(crate) port: u16,
    /// Fall back to any port when `port` is taken (the default port may be
    /// held by a second instance; an explicit one is the user's choice).
    pub(crate) port_fallback: bool,
    /// The IPv4 address to bind (that of the TCP listener, or the wildcard).
    pub(crate) bind: Ipv4Addr,
    /// Our TCP listen port: what we announce.
    pub(crate) tcp_port: u16,
    /// Serve queries from the start (see [`NetConfig::dht_server`]).
    pub(crate) server: bool,
    /// Where the routing table is saved and loaded, if anywhere.
    pub(crate) nodes_file: Option<PathBuf>,
    /// See [`ANNOUNCE_INTERVAL`].
    pub(crate) interval: Duration,
    /// See [`RETRY_INTERVAL`].
    pub(crate) retry_interval: Duration,
    /// See [`SAVE_INTERVAL`].
    pub(crate) save_interval: Duration,
}

impl DhtConfig {
    /// The settings for `config` with TCP listener `listen`, or `None` when
    /// the DHT is off or cannot serve this listener (IPv6 only: mainline
    /// speaks IPv4 only). A malformed bootstrap value is
    /// [`NetError::DhtBootstrap`].
    pub(crate) fn from_net(
        config: &NetConfig,
        listen: SocketAddr,
    ) -> Result<Option<Self>, NetError> {
        if !config.dht {
            return Ok(None);
        }
        let bootstrap = config
            .dht_bootstrap
            .iter()
            .map(|v| v.parse::<KnownHost>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(NetError::DhtBootstrap)?;
        let bind = match listen {
            SocketAddr::V4(v4) => *v4.ip(),
            // Dual stack on the IPv6 wildcard (see tcp::bind).
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => Ipv4Addr::UNSPECIFIED,
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => v4,
                None => {
                    tracing::warn!(%listen, "no DHT: it is IPv4 only and we listen on IPv6 only");
                    return Ok(None);
                }
            },
        };
        Ok(Some(Self {
            bootstrap,
            port: config.dht_port,
            port_fallback: config.dht_port == DEFAULT_DHT_PORT,
            bind,
            tcp_port: listen.port(),
            server: config.dht_server,
            nodes_file: config.state_dir.as_deref().map(nodes::path_in),
            interval: ANNOUNCE_INTERVAL,
            retry_interval: RETRY_INTERVAL,
            save_interval: SAVE_INTERVAL,
        }))
    }
}

/// The DHT source for `config`, or `None` when `config.dht` is off.
/// `listen` is our TCP listen address (its port is what we announce).
/// Call inside a tokio runtime.
pub(crate) fn start(
    config: &NetConfig,
    listen: SocketAddr,
) -> Result<Option<Box<dyn Discovery>>, NetError> {
    let Some(dht) = DhtConfig::from_net(config, listen)? else {
        return Ok(None);
    };
    // This crate's own tests must never reach the public routers: a test
    // that wants the DHT names its (private) bootstrap nodes.
    if cfg!(test) && dht.bootstrap.is_empty() {
        tracing::debug!("no DHT in tests without --dht-bootstrap");
        return Ok(None);
    }
    Ok(Some(Box::new(DhtDiscovery::start(dht))))
}

type Subscribe = (FolderId, mpsc::Sender<Candidate>);

/// What the actor and `Drop` share: the last routing-table snapshot and what
/// the file holds, so that the final save needs no round trip to the node.
#[derive(Debug, Default)]
struct Saved {
    snapshot: Vec<SocketAddrV4>,
    written: Vec<SocketAddrV4>,
}

#[derive(Debug)]
struct Store {
    path: PathBuf,
    saved: Mutex<Saved>,
}

impl Store {
    /// Writes the snapshot if it changed. Blocking (a few KiB); the lock
    /// orders the actor's saves and the one in `Drop`.
    fn flush(&self) {
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        // An empty table (offline for a while) keeps the last good file.
        if saved.snapshot.is_empty() || saved.snapshot == saved.written {
            return;
        }
        match nodes::store(&self.path, &saved.snapshot) {
            Ok(()) => {
                tracing::debug!(nodes = saved.snapshot.len(), path = %self.path.display(), "saved DHT nodes");
                saved.written = saved.snapshot.clone();
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot save DHT nodes");
            }
        }
    }
}

/// The DHT source. Dropping it stops every folder's task and the node, after
/// a last save of the routing table.
#[derive(Debug)]
pub(crate) struct DhtDiscovery {
    subscribe: mpsc::UnboundedSender<Subscribe>,
    store: Option<Arc<Store>>,
}

impl DhtDiscovery {
    /// Starts building the node in the background (inside a tokio runtime).
    /// If it cannot be built (the explicit port is taken), that is logged and
    /// every subscription simply yields nothing.
    pub(crate) fn start(config: DhtConfig) -> Self {
        let store = config.nodes_file.clone().map(|path| {
            Arc::new(Store {
                path,
                saved: Mutex::default(),
            })
        });
        let (subscribe, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(config, rx, store.clone()));
        Self { subscribe, store }
    }
}

impl Drop for DhtDiscovery {
    fn drop(&mut self) {
        // Synchronous on purpose: at process exit the runtime may not run the
        // actor again, and the file is tiny.
        if let Some(store) = &self.store {
            store.flush();
        }
    }
}

impl Discovery for DhtDiscovery {
    fn name(&self) -> &'static str {
        NAME
    }

    fn subscribe(&self, folder: FolderId) -> Candidates {
        let (tx, rx) = Candidates::channel();
        // If the actor has stopped, the stream simply ends.
        let _ = self.subscribe.send((folder, tx));
        rx
    }
}

/// Resolves `hosts` to IPv4 addresses (mainline speaks IPv4 only); names that
/// do not resolve are logged. Blocking.
fn resolve(hosts: &[KnownHost]) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for host in hosts {
        match (host.host(), host.port()).to_socket_addrs() {
            Ok(addrs) => {
                let before = out.len();
                out.extend(addrs.filter_map(|a| match a {
                    SocketAddr::V4(v4) => Some(v4),
                    SocketAddr::V6(_) => None,
                }));
                if out.len() == before {
                    tracing::warn!(%host, "DHT bootstrap node has no IPv4 address");
                }
            }
            Err(e) => tracing::warn!(%host, error = %e, "cannot resolve DHT bootstrap node"),
        }
    }
    out
}

/// Builds the node: bootstrap list, saved nodes, port. Blocking.
fn build(config: &DhtConfig) -> io::Result<AsyncDht> {
    let mut bootstrap = if config.bootstrap.is_empty() {
        let defaults: Vec<KnownHost> = mainline::DEFAULT_BOOTSTRAP_NODES
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        resolve(&defaults)
    } else {
        resolve(&config.bootstrap)
    };
    if let Some(path) = &config.nodes_file {
        let saved = nodes::load(path);
        tracing::debug!(saved = saved.len(), "saved DHT nodes loaded");
        for node in saved {
            if !bootstrap.contains(&node) {
                bootstrap.push(node);
            }
        }
    }
    if bootstrap.is_empty() {
        tracing::warn!("no DHT bootstrap node; waiting to be contacted");
    }
    let mut port = config.port;
    // mainline's builder panics on some bind-failure races, so the port is
    // checked here first; the fallback is decided here too.
    if port != 0
        && let Err(e) = UdpSocket::bind((config.bind, port))
    {
        if !config.port_fallback {
            return Err(e);
        }
        tracing::info!(port, error = %e, "DHT port taken, using any free port");
        port = 0;
    }
    let mut builder = Dht::builder();
    builder
        .bind_address(config.bind)
        .port(port)
        .bootstrap(&bootstrap);
    if config.server {
        builder.server_mode();
    }
    Ok(builder.build()?.as_async())
}

async fn run(
    config: DhtConfig,
    mut subscribe: mpsc::UnboundedReceiver<Subscribe>,
    store: Option<Arc<Store>>,
) {
    let built = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || build(&config)).await
    };
    let dht = match built {
        Ok(Ok(dht)) => dht,
        Ok(Err(e)) => {
            tracing::warn!(port = config.port, error = %e, "continuing without the DHT: cannot bind its UDP port");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "continuing without the DHT: the node did not start");
            return;
        }
    };
    let local = dht.info().await.local_addr();
    tracing::info!(port = local.port(), addr = %local, "DHT node up");
    let round = Arc::new(Round {
        dht: dht.clone(),
        tcp_port: config.tcp_port,
        bind: config.bind,
    });
    let mut folders = JoinSet::new();
    let snapshot_interval = config.save_interval.min(SNAPSHOT_INTERVAL);
    let mut next_snapshot = Instant::now() + snapshot_interval;
    let mut next_save = Instant::now() + config.save_interval;
    loop {
        tokio::select! {
            sub = subscribe.recv() => match sub {
                Some((folder, tx)) => {
                    folders.spawn(follow(Arc::clone(&round), folder, tx, config.interval, config.retry_interval));
                }
                // The source was dropped (its Drop did the last save).
                // Dropping `folders` aborts the folder tasks, and the last
                // `AsyncDht` going stops mainline's thread.
                None => return,
            },
            Some(_) = folders.join_next(), if !folders.is_empty() => {}
            () = tokio::time::sleep_until(next_snapshot), if store.is_some() => {
                next_snapshot = Instant::now() + snapshot_interval;
                let write = Instant::now() >= next_save;
                if write {
                    next_save = Instant::now() + config.save_interval;
                }
                if let Some(store) = &store {
                    snapshot(&dht, store, write).await;
                }
            }
        }
    }
}

/// Takes a snapshot of the routing table; with `write`, saves it if it
/// changed.
async fn snapshot(dht: &AsyncDht, store: &Arc<Store>, write: bool) {
    let snapshot: Vec<SocketAddrV4> = dht
        .to_bootstrap()
        .await
        .iter()
        .filter_map(|s| s.parse().ok())
        .take(nodes::MAX_NODES)
        .collect();
    store
        .saved
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .snapshot = snapshot;
    if write {
        let store = Arc::clone(store);
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
    }
}

/// What every folder's rounds share.
#[derive(Debug)]
struct Round {
    dht: AsyncDht,
    tcp_port: u16,
    bind: Ipv4Addr,
}

impl Round {
    /// One announce and one lookup for `folder`; the number of other peers
    /// found, or `None` once `tx` is closed.
    async fn run(&self, folder: FolderId, tx: &mpsc::Sender<Candidate>) -> Option<usize> {
        let Ok(id) = Id::from_bytes(folder.as_bytes()) else {
            return Some(0);
        };
        // Explicit port: `None` would mean the DHT socket's port (implied_port).
        let announced =
            tokio::time::timeout(QUERY_LIMIT, self.dht.announce_peer(id, Some(self.tcp_port)))
                .await;
        let announced = match announced {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        // Our own announcement comes back from the lookup: as the network
        // sees us (our public address) or at the address we bound.
        let public = self.dht.info().await.public_address().map(|a| *a.ip());
        let own = |a: &SocketAddrV4| {
            a.port() == self.tcp_port && (Some(*a.ip()) == public || *a.ip() == self.bind)
        };
        let mut seen = HashSet::new();
        let mut peers = self.dht.get_peers(id);
        let deadline = Instant::now() + QUERY_LIMIT;
        while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, peers.next()).await {
            for addr in batch {
                if own(&addr) || !seen.insert(addr) {
                    continue;
                }
                let c = Candidate {
                    folder,
                    addr: SocketAddr::V4(addr),
                    peer: None,
                    source: NAME,
                    lan: false,
                };
                tx.send(c).await.ok()?;
            }
        }
        match announced {
            Ok(()) => tracing::debug!(%folder, found = seen.len(), "DHT announce and lookup done"),
            Err(error) => {
                tracing::debug!(%folder, found = seen.len(), %error, "DHT lookup done, announce failed")
            }
        }
        Some(seen.len())
    }
}

/// The rounds of one folder until its subscription is dropped.
async fn follow(
    round: Arc<Round>,
    folder: FolderId,
    tx: mpsc::Sender<Candidate>,
    interval: Duration,
    retry_interval: Duration,
) {
    loop {
        let found = tokio::select! {
            found = round.run(folder, &tx) => found,
            () = tx.closed() => None,
        };
        let Some(found) = found else { return };
        let wait = if found == 0 { retry_interval } else { interval };
        tokio::select! {
            () = tokio::time::sleep(jitter(wait, 0.1)) => {}
            () = tx.closed() => return,
        }
    }
}
