//! `swarmsync relay --listen ADDR`: the relay that splices the TCP
//! connections of peers that cannot reach each other
//! (`docs/protocol/relay.md`). It only ever sees channel ciphertext. Stops
//! cleanly on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::Context;
use relay::{Server, ServerConfig};

use crate::args::RelayArgs;
use crate::exit::{Failure, ResultExt};

pub(crate) fn run(args: &RelayArgs) -> Result<(), Failure> {
    let config = config(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
        .runtime()?;
    runtime.block_on(async {
        let stop = super::serve::stop_signal()?;
        let server = Server::bind(config)
            .await
            .map_err(|e| super::serve::bind_failure("relay", args.listen, e))?;
        let local = server.local_addr().context("local address").runtime()?;
        eprintln!("relay listening on {local}");
        server
            .run(stop)
            .await
            .with_context(|| format!("serving on {local}"))
            .runtime()
    })
}

fn config(args: &RelayArgs) -> ServerConfig {
    let mut config = ServerConfig::new(args.listen);
    if let Some(n) = args.max_pairs {
        config.relay.max_pairs = n;
    }
    if let Some(n) = args.max_controls {
        config.relay.max_controls = n;
    }
    if let Some(n) = args.max_pending {
        config.relay.max_pending = n;
    }
    config.rate_limit = args.rate_limit;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config
}
