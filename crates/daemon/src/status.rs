//! What a running folder is doing, for `swarmsync status` and the progress line.
//!
//! The folder thread refreshes a [`FolderStatus`] every tick into a shared
//! [`StatusHandle`] and writes it to `.sync/status.json` (atomically), where
//! `swarmsync status` reads it; a snapshot older than a few seconds means the
//! folder is not running.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file `swarmsync sync` keeps current in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// A snapshot of one folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderStatus {
    /// The folder id, hex.
    pub folder_id: String,
    /// Our access level.
    pub access: String,
    /// When this snapshot was taken, milliseconds since the Unix epoch.
    pub updated_unix_ms: u64,
    /// Live files in the index.
    pub files: u64,
    /// Live directories.
    pub directories: u64,
    /// Bytes of live files.
    pub bytes: u64,
    /// Files still to fetch.
    pub to_fetch_files: usize,
    /// Bytes still to fetch.
    pub to_fetch_bytes: u64,
    /// Connected peers.
    pub peers: Vec<PeerStatus>,
    /// Files still needed, and which connected peers could serve them now (an
    /// empty list: waiting for a peer that has it). At most [`MAX_NEEDED`].
    pub needed: Vec<NeededStatus>,
    /// The networking side: listener, discovery sources, port mapping.
    #[serde(default)]
    pub network: NetworkStatus,
}

/// What the networking side reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// The TCP (and QUIC) listen address.
    pub listen: String,
    /// The discovery sources running ("lan", "known", "tracker", "dht", "pex").
    pub discovery: Vec<String>,
    /// The router port mapping, when UPnP / NAT-PMP is on.
    pub port_mapping: Option<PortMappingStatus>,
}

/// A port mapping on the router (UPnP IGD, PCP or NAT-PMP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortMappingStatus {
    /// "upnp", "pcp" or "nat-pmp"; `None` while there is no mapping.
    pub protocol: Option<String>,
    /// The public address of our TCP port.
    pub tcp: Option<String>,
    /// The public address of our UDP (QUIC) port.
    pub udp: Option<String>,
    /// The gateway's address.
    pub gateway: Option<String>,
    /// Lease granted, seconds (0: permanent).
    pub lease_secs: Option<u64>,
    /// Why there is no mapping, or what failed last.
    pub last_error: Option<String>,
}

/// The most needed files a snapshot lists.
pub const MAX_NEEDED: usize = 100;

/// One connected peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its peer id.
    pub peer: String,
    /// Its address.
    pub address: String,
    /// How we found it: the discovery source ("lan", "known", "tracker",
    /// "dht", "pex") or "incoming" when it dialed us.
    #[serde(default)]
    pub found_by: String,
    /// What carries the connection: "tcp", "quic" or "relay".
    #[serde(default)]
    pub carrier: String,
    /// Its verified access level.
    pub access: String,
    /// Block bytes received from it.
    pub received_bytes: u64,
    /// Block bytes sent to it.
    pub sent_bytes: u64,
    /// Recent receive rate, bytes per second.
    pub receive_rate: f64,
    /// Recent send rate, bytes per second.
    pub send_rate: f64,
}

/// A file still needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NeededStatus {
    /// Its path.
    pub path: String,
    /// Peers that could serve some of it now.
    pub sources: Vec<String>,
}

impl FolderStatus {
    /// Whether the snapshot is recent enough that its folder is running.
    pub fn is_fresh(&self, now: SystemTime, within: Duration) -> bool {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        now_ms.saturating_sub(self.updated_unix_ms) <= within.as_millis() as u64
    }

    /// Reads the snapshot a running `sync` keeps in `state_dir`.
    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read(state_dir.join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub(crate) fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let tmp = state_dir.join(format!("{STATUS_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(tmp, state_dir.join(STATUS_FILE))
    }
}

/// The latest snapshot, shared between the folder thread and whoever shows it;
/// the networking side keeps its part current in it.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle {
    folder: Arc<Mutex<FolderStatus>>,
    network: Arc<Mutex<NetworkStatus>>,
}

impl StatusHandle {
    /// The latest snapshot.
    pub fn get(&self) -> FolderStatus {
        self.folder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, status: FolderStatus) {
        *self.folder.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The networking side's part, as last set.
    pub(crate) fn network(&self) -> NetworkStatus {
        self.network
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_network(&self, status: NetworkStatus) {
        *self.network.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
