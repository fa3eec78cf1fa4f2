//! `swarmsync sync`: the folder task, the connection manager and the watcher,
//! wired together until a stop signal.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use channel::FolderCredentials;
use net::{ConnectionId, NetConfig, NetEvent, NetManager};
use tokio::sync::mpsc;

use crate::DaemonError;
use crate::folder::{FolderEvent, FolderTask, TICK};
use crate::peer::PeerLink;
use crate::pex::{PexInbound, PexPeer};
use crate::state::StateDir;
use crate::status::{NetworkStatus, PortMappingStatus, StatusHandle};

/// What `sync` runs.
#[derive(Debug)]
pub struct SyncOptions {
    /// The folder.
    pub root: PathBuf,
    /// Networking (listen address, known hosts, LAN discovery).
    pub net: NetConfig,
    /// Full scans, beside the watcher's events.
    pub rescan_interval: Duration,
    /// Watch the folder for changes (else only periodic scans).
    pub watch: bool,
    /// Where the folder task publishes its status.
    pub status: StatusHandle,
    /// How long replaced and deleted versions stay in `.sync/Archive/`.
    pub archive_keep: Duration,
}

impl SyncOptions {
    /// Defaults for `root`: watcher on, a full scan every hour.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            net: NetConfig::default(),
            rescan_interval: Duration::from_secs(3600),
            watch: true,
            status: StatusHandle::default(),
            archive_keep: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Keeps the folder in sync until `stop` completes.
pub fn run(
    options: SyncOptions,
    state: &StateDir,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("swarmsync-net")
        .build()
        .map_err(DaemonError::Runtime)?;
    let key = state.key().clone();
    // Every connection checks index signatures with it (the folder task refuses
    // a key without one, below, before anything connects).
    let ro_key = key.ro_key().ok_or(DaemonError::EncryptedNotSupported)?;
    let me = state.peer_id();
    let task = FolderTask::open(
        options.root.clone(),
        state.path().to_owned(),
        &state.index_path(),
        &key,
        me,
        options.status.clone(),
        options.archive_keep,
    )?;
    let known = task.known_records();
    let (events_tx, events_rx) = mpsc::channel::<FolderEvent>(1024);

    // Watch before the folder task's first scan, so nothing changed in between
    // is missed (events wait in the queue until the scan is done).
    let watcher = options
        .watch
        .then(|| crate::watcher::start(&options.root, events_tx.clone(), options.rescan_interval))
        .flatten();
    let folder = std::thread::Builder::new()
        .name("swarmsync-folder".into())
        .spawn({
            let wake = events_tx.downgrade();
            move || task.run(events_rx, wake)
        })
        .map_err(DaemonError::Runtime)?;

    let net_result: Result<(), DaemonError> = runtime.block_on(async {
        let mut manager = NetManager::bind(options.net.clone(), me)?;
        let our_port = manager.local_addr().port();
        let pex = options.net.pex.then(net::Pex::new);
        if let Some(pex) = &pex {
            manager.add_discovery(Box::new(pex.discovery()));
        }
        tracing::info!(listen = %manager.local_addr(), folder = %key.folder_id(), "syncing {}", options.root.display());
        let listen = manager.local_addr();
        let portmap = if options.net.upnp {
            net::portmap::PortMapConfig::for_listener(listen).map(net::portmap::PortMapper::start)
        } else {
            None
        };
        let (handle, mut net_events) = manager.start(vec![FolderCredentials::new(&key)]);
        tokio::spawn(publish_network(handle.clone(), portmap.as_ref().map(|m| m.watch()), options.status.clone()));

        let ticks = events_tx.clone();
        let rescan_every = if watcher.is_some() { options.rescan_interval } else { Duration::from_secs(60) };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            let mut rescan = tokio::time::interval(rescan_every);
            rescan.tick().await;
            loop {
                let event = tokio::select! {
                    _ = tick.tick() => FolderEvent::Tick,
                    _ = rescan.tick() => FolderEvent::Rescan,
                };
                // A full queue already wakes the folder task; skip this one.
                if ticks.try_send(event).is_err() && ticks.is_closed() {
                    return;
                }
            }
        });

        let mut generation = 0u64;
        let mut tasks: HashMap<ConnectionId, tokio::task::JoinHandle<()>> = HashMap::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                event = net_events.recv() => {
                    let Some(NetEvent::Connected(conn)) = event else { break };
                    // A better channel to the same peer supersedes an older one: stop
                    // the old one's tasks without reporting it (the peer is not gone).
                    if let Some(old) = conn.replaces.and_then(|old| tasks.remove(&old)) {
                        old.abort();
                    }
                    tasks.retain(|_, t| !t.is_finished());
                    let (tx, rx) = mpsc::unbounded_channel();
                    let queue = Arc::new(crate::peer::SendQueue::default());
                    generation += 1;
                    let share_tx = tx.clone();
                    let greeted = Arc::new(tokio::sync::Notify::new());
                    let link = PeerLink { tx, queue: queue.clone(), access: conn.access, remote: conn.remote, source: conn.source, carrier: conn.carrier, generation, greeted: greeted.clone() };
                    if events_tx.send(FolderEvent::PeerUp { peer: conn.peer, link }).await.is_err() {
                        break;
                    }
                    let events = events_tx.clone();
                    let handle = handle.clone();
                    let (id, peer, folder) = (conn.id, conn.peer, conn.folder);
                    let direct = conn.carrier.is_direct();
                    let pex_peer = |pex: &net::Pex| PexPeer { pex: pex.clone(), folder, peer, remote: conn.remote, direct, generation };
                    if let Some(pex) = pex.as_ref().filter(|_| conn.dialed && conn.carrier.is_direct()) {
                        // What we dialed is where it listens (a relay's address is not).
                        pex.connected(folder, peer, conn.remote, generation);
                    }
                    let sharer = pex.as_ref().map(pex_peer);
                    let (verifier, known) = (ro_key.clone(), known.clone());
                    let inbound = pex.as_ref().map(|p| PexInbound::new(pex_peer(p)));
                    let task = tokio::spawn(async move {
                        let share = async {
                            match &sharer {
                                Some(sharer) => {
                                    greeted.notified().await;
                                    sharer.share(our_port, share_tx).await;
                                }
                                None => std::future::pending().await,
                            }
                        };
                        // `share` never ends: the connection decides.
                        tokio::select! {
                            () = crate::peer::run(conn.stream, peer, generation, rx, queue, events, crate::peer::Inbound { pex: inbound, verifier, known }) => {}
                            () = share => {}
                        }
                        if let Some(sharer) = &sharer {
                            sharer.pex.disconnected(folder, peer, generation);
                        }
                        handle.disconnected(id).await;
                    });
                    tasks.insert(id, task);
                }
            }
        }
        if let Some(portmap) = portmap {
            // Bounded: the mappings are removed, or left to expire.
            portmap.shutdown().await;
        }
        Ok(())
    });
    // However the network side ended, the folder task stops too.
    drop(watcher);
    let _ = events_tx.blocking_send(FolderEvent::Shutdown);
    drop(events_tx);
    let folder_result = folder.join().map_err(|_| DaemonError::FolderPanicked)?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    net_result.and(folder_result)
}

/// Keeps the networking part of the status current (every 2 s, and at once
/// when the port mapping changes) until the manager stops.
async fn publish_network(
    handle: net::NetHandle,
    mut portmap: Option<tokio::sync::watch::Receiver<net::portmap::PortMapStatus>>,
    status: StatusHandle,
) {
    loop {
        let Ok(net) = handle.status().await else {
            return;
        };
        let port_mapping = portmap.as_ref().map(|w| {
            let m = w.borrow().clone();
            PortMappingStatus {
                protocol: m.protocol.map(|p| p.to_string()),
                tcp: m.tcp.map(|a| a.to_string()),
                udp: m.udp.map(|a| a.to_string()),
                gateway: m.gateway.map(|a| a.to_string()),
                lease_secs: m.lease.map(|l| l.as_secs()),
                last_error: m.last_error,
            }
        });
        status.set_network(NetworkStatus {
            listen: net.listen.to_string(),
            discovery: net.discovery.iter().map(|d| (*d).to_owned()).collect(),
            port_mapping,
        });
        let changed = async {
            match portmap.as_mut() {
                Some(w) => {
                    if w.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = changed => {}
        }
    }
}
