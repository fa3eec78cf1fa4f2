//! Mainline DHT (BEP 5) discovery. Being written in this session.

use std::net::SocketAddr;

use super::Discovery;
use crate::config::{NetConfig, NetError};

/// The DHT source for `config`, or `None` when `config.dht` is off.
/// `listen` is our TCP listen address (its port is what we announce).
pub(crate) fn start(
    config: &NetConfig,
    listen: SocketAddr,
) -> Result<Option<Box<dyn Discovery>>, NetError> {
    let _ = (config, listen);
    Ok(None)
}
