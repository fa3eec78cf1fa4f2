//! What the server commands (`tracker`, `relay`) share: stopping on a signal
//! and telling a bad limit from a port that cannot be had.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::{Failure, ResultExt};

/// Installs the SIGINT and SIGTERM handlers at once (so a signal right after
/// the "listening" line is a clean stop rather than the default death) and
/// returns what completes on the first of them. Call inside the runtime.
pub(crate) fn stop_signal() -> Result<impl Future<Output = ()>, Failure> {
    let mut term = signal(SignalKind::terminate())
        .context("installing the SIGTERM handler")
        .runtime()?;
    let mut int = signal(SignalKind::interrupt())
        .context("installing the SIGINT handler")
        .runtime()?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping");
    })
}

/// A server's bind failure: invalid limits are bad input (exit 2), anything
/// else (the address is taken, not ours) a runtime failure naming it.
pub(crate) fn bind_failure(what: &str, listen: SocketAddr, e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::InvalidInput {
        Failure::BadInput(anyhow::Error::new(e).context(format!("{what} limits")))
    } else {
        Failure::Runtime(anyhow::Error::new(e).context(format!("binding the {what} to {listen}")))
    }
}
