//! The command line, exactly as DESIGN.md §7 names it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Peer-to-peer folder sync: anyone with a folder's key gets the folder.
#[derive(Debug, Parser)]
#[command(name = "swarmsync", version, about, long_about = None)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make and inspect folder keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Keep DIR in sync, in the foreground, until SIGINT/SIGTERM.
    Sync(SyncArgs),
    /// What DIR holds, its peers, and what is still needed.
    Status(StatusArgs),
    /// Index DIR once (rehashing only what changed) and print a summary.
    Scan(ScanArgs),
    /// Run the tracker server (also a standard BEP 15 UDP tracker).
    Tracker(TrackerArgs),
    /// Run a relay: splices the TCP connections of peers that cannot reach each other.
    Relay(RelayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TrackerArgs {
    /// UDP address to serve on, e.g. 0.0.0.0:6969 or [::]:6969.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// TCP address to serve on, e.g. 0.0.0.0:22067 or [::]:22067.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// Most spliced pairs at once.
    #[arg(long, value_name = "N")]
    pub(crate) max_pairs: Option<usize>,
    /// Most control connections (registered peers) at once.
    #[arg(long, value_name = "N")]
    pub(crate) max_controls: Option<usize>,
    /// Most invitations waiting for their peer at once.
    #[arg(long, value_name = "N")]
    pub(crate) max_pending: Option<usize>,
    /// Bytes per second per direction of each spliced pair (0: unlimited).
    #[arg(long, value_name = "BYTES", default_value_t = relay::DEFAULT_RATE_LIMIT)]
    pub(crate) rate_limit: u64,
    /// Seconds without a byte after which a spliced pair is closed.
    #[arg(long, value_name = "SECS", default_value_t = relay::DEFAULT_IDLE_TIMEOUT.as_secs())]
    pub(crate) idle_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The synced folder.
    pub(crate) dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Where the folder's state lives (default DIR/.sync/).
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// The folder to scan (must exist).
    pub(crate) dir: PathBuf,
    /// Where the index, secret and node identity live (default DIR/.sync/).
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Print a new read-write secret and the keys it derives.
    New {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the kind of KEY, the lower keys it derives and the folder id.
    Info {
        /// A folder key (A…, B… or D…); case, spaces and dashes do not matter.
        key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The folder to keep in sync (created if missing).
    pub(crate) dir: PathBuf,
    /// Join with this key (read-write, read-only or encrypted); needed once only.
    #[arg(long, value_name = "KEY")]
    pub(crate) secret: Option<String>,
    /// TCP and UDP on the same port.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// A peer to connect to directly (repeatable).
    #[arg(long = "known-host", value_name = "HOST:PORT")]
    pub(crate) known_hosts: Vec<String>,
    /// A tracker to announce to (repeatable).
    #[arg(long = "tracker", value_name = "HOST:PORT")]
    pub(crate) trackers: Vec<String>,
    /// A DHT bootstrap node (repeatable).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub(crate) dht_bootstrap: Vec<String>,
    /// Answer DHT queries from the start: for a node with a public address,
    /// e.g. the bootstrap node of a private DHT.
    #[arg(long)]
    pub(crate) dht_server: bool,
    /// A relay to fall back on (repeatable).
    #[arg(long = "relay", value_name = "HOST:PORT")]
    pub(crate) relays: Vec<String>,
    /// Do not look for peers on the local network.
    #[arg(long)]
    pub(crate) no_lan: bool,
    /// Do not use the Mainline DHT.
    #[arg(long)]
    pub(crate) no_dht: bool,
    /// Do not use trackers.
    #[arg(long)]
    pub(crate) no_tracker: bool,
    /// Do not exchange peer addresses with connected peers.
    #[arg(long)]
    pub(crate) no_pex: bool,
    /// Never route traffic through a relay.
    #[arg(long)]
    pub(crate) no_relay: bool,
    /// Do not map ports with UPnP or NAT-PMP.
    #[arg(long)]
    pub(crate) no_upnp: bool,
    /// Where the index, secret and node identity live (default DIR/.sync/).
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// Days replaced and deleted files stay in DIR/.sync/Archive/.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub(crate) archive_days: u32,
}
