//! The relay's caps and timeouts (`docs/protocol/relay.md` §6).

use std::time::Duration;

/// Limits of the relay's state. Every table is bounded by one of these,
/// whatever arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Control connections (registrations) in total.
    pub max_controls: usize,
    /// Control connections per source (IPv4 address or IPv6 /64).
    pub max_controls_per_source: usize,
    /// Registrations under one folder tag.
    pub max_per_tag: usize,
    /// Invitations waiting for an Accept, in total.
    pub max_pending: usize,
    /// Waiting invitations per dialer source.
    pub max_pending_per_source: usize,
    /// Spliced pairs in total.
    pub max_pairs: usize,
    /// Spliced connections per source.
    pub max_spliced_per_source: usize,
    /// Connections that have not sent their first message yet, in total.
    pub max_fresh: usize,
    /// Such connections per source.
    pub max_fresh_per_source: usize,
    /// How long a new connection may take to send its first message.
    pub first_message_timeout: Duration,
    /// How long a control connection may stay silent.
    pub control_timeout: Duration,
    /// How long an invitation waits for its Accept.
    pub invite_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_controls: 4096,
            max_controls_per_source: 64,
            max_per_tag: 256,
            max_pending: 1024,
            max_pending_per_source: 32,
            max_pairs: 256,
            max_spliced_per_source: 32,
            max_fresh: 512,
            max_fresh_per_source: 32,
            first_message_timeout: Duration::from_secs(10),
            control_timeout: Duration::from_secs(90),
            invite_timeout: Duration::from_secs(10),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timeout of zero would drop every connection at once.
    #[error("{0} must be longer than zero")]
    ZeroTimeout(&'static str),
}

impl RelayConfig {
    /// Checks that the configuration can work (caps of 0 are allowed: they
    /// switch a service off).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, t) in [
            ("first_message_timeout", self.first_message_timeout),
            ("control_timeout", self.control_timeout),
            ("invite_timeout", self.invite_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}
