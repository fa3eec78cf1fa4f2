//! `swarmsync tracker --listen ADDR`: the UDP tracker (BEP 15 plus swarmsync's
//! extensions, `docs/protocol/tracker.md`). Stops cleanly on SIGINT/SIGTERM.
//!
//! Limits come from the environment (seconds or counts):
//! `SWARMSYNC_TRACKER_INTERVAL`, `SWARMSYNC_TRACKER_MAX_SWARMS`,
//! `SWARMSYNC_TRACKER_MAX_PEERS_PER_SWARM`, `SWARMSYNC_TRACKER_MAX_PEERS`.

use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
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
        // Handlers first, so a signal right after the "listening" line is a
        // clean stop rather than the default death.
        let mut term = signal(SignalKind::terminate())
            .context("installing the SIGTERM handler")
            .runtime()?;
        let mut int = signal(SignalKind::interrupt())
            .context("installing the SIGINT handler")
            .runtime()?;
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(Failure::BadInput(
                    anyhow::Error::new(e).context("tracker limits"),
                ));
            }
            Err(e) => {
                return Err(Failure::Runtime(
                    anyhow::Error::new(e)
                        .context(format!("binding the tracker to {}", args.listen)),
                ));
            }
        };
        let local = server.local_addr().context("local address").runtime()?;
        eprintln!("tracker listening on {local}");
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping");
        };
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
