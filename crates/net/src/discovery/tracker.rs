//! UDP tracker (BEP 15) discovery. Being written in this session.

use std::net::SocketAddr;

use super::Discovery;
use crate::config::{NetConfig, NetError};

/// The tracker source for `config`, or `None` when `config.tracker` is off.
/// `listen` is our TCP listen address (its port is what we announce).
pub(crate) fn start(
    config: &NetConfig,
    listen: SocketAddr,
) -> Result<Option<Box<dyn Discovery>>, NetError> {
    let _ = (config, listen);
    Ok(None)
}
