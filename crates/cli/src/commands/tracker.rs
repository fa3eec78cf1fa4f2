//! `swarmsync tracker --listen ADDR`: the UDP tracker (BEP 15 plus swarmsync's
//! extensions, `docs/protocol/tracker.md`). Stops cleanly on SIGINT/SIGTERM.
//!
//! Limits come from the environment (seconds or counts):
//! `SWARMSYNC_TRACKER_INTERVAL`, `SWARMSYNC_TRACKER_MAX_SWARMS`,
//! `SWARMSYNC_TRACKER_MAX_PEERS_PER_SWARM`, `SWARMSYNC_TRACKER_MAX_PEERS`.

use std::time::Duration;

use anyhow::Context;
use tracker::{Server, ServerConfig};

use crate::args::TrackerArgs;
use crate::exit::{Failure, ResultExt};

pub(crate) fn run(args: &TrackerArgs) -> Result<(), Failure> {
    let config = config_from_env(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .runtime()?;
    runtime.block_on(async {
        let stop = super::serve::stop_signal()?;
        let server = Server::bind(config)
            .await
            .map_err(|e| super::serve::bind_failure("tracker", args.listen, e))?;
        let local = server.local_addr().context("local address").runtime()?;
        eprintln!("tracker listening on {local}");
        server
            .run(stop)
            .await
            .with_context(|| format!("serving on {local}"))
            .runtime()
    })
}

fn config_from_env(args: &TrackerArgs) -> Result<ServerConfig, Failure> {
    let mut config = ServerConfig::new(args.listen);
    let t = &mut config.tracker;
    if let Some(secs) = env_number("SWARMSYNC_TRACKER_INTERVAL")? {
        t.interval = Duration::from_secs(secs);
    }
    if let Some(n) = env_number("SWARMSYNC_TRACKER_MAX_SWARMS")? {
        t.max_swarms = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = env_number("SWARMSYNC_TRACKER_MAX_PEERS_PER_SWARM")? {
        t.max_peers_per_swarm = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = env_number("SWARMSYNC_TRACKER_MAX_PEERS")? {
        t.max_peers = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(config)
}

fn env_number(name: &str) -> Result<Option<u64>, Failure> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("{name}={value:?} is not a whole number"))
            .bad_input(),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(Failure::BadInput(
            anyhow::Error::new(e).context(name.to_owned()),
        )),
    }
}
