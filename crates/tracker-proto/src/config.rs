//! The tracker's limits (`docs/protocol/tracker.md` §7–§8).

use std::time::Duration;

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Bucket size (requests allowed in a burst).
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: u32,
}

/// Everything a [`crate::Tracker`] can be told. Defaults fit about 100 MB at
/// worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// The announce interval handed out; peers expire after twice this.
    pub interval: Duration,
    /// How often expired peers are swept out.
    pub expiry_period: Duration,
    /// Most swarms stored.
    pub max_swarms: usize,
    /// Most peers stored in one swarm (both families).
    pub max_peers_per_swarm: usize,
    /// Most peers stored in all swarms together.
    pub max_peers: usize,
    /// Peers answered when num_want is negative.
    pub default_num_want: usize,
    /// Most peers in one IPv4 announce response.
    pub max_num_want_v4: usize,
    /// Most peers in one IPv6 announce response (66 keeps it within the IPv6
    /// minimum MTU).
    pub max_num_want_v6: usize,
    /// Budget of every request per source.
    pub requests: RateConfig,
    /// Budget of punch requests per source.
    pub punches: RateConfig,
    /// Most rate-limit buckets kept (one per IPv4 address or IPv6 /64).
    pub max_rate_buckets: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1800),
            expiry_period: Duration::from_secs(60),
            max_swarms: 50_000,
            max_peers_per_swarm: 50_000,
            max_peers: 500_000,
            default_num_want: 50,
            max_num_want_v4: 200,
            max_num_want_v6: 66,
            requests: RateConfig {
                burst: 100,
                per_second: 20,
            },
            punches: RateConfig {
                burst: 5,
                per_second: 1,
            },
            max_rate_buckets: 65_536,
        }
    }
}

/// A configuration the tracker refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The interval is outside 1 s ..= 7 days.
    #[error("announce interval {0:?} is outside 1 s ..= 7 days")]
    Interval(Duration),
    /// The expiry period is zero.
    #[error("expiry period must not be zero")]
    ExpiryPeriod,
    /// A rate with a zero burst or refill.
    #[error("{0} rate limit needs a burst and a refill of at least 1")]
    Rate(&'static str),
    /// More peers per response than fit one datagram.
    #[error("num_want limit {got} exceeds {max} for {family}")]
    NumWant {
        /// The family.
        family: &'static str,
        /// Configured.
        got: usize,
        /// Largest allowed.
        max: usize,
    },
}

impl TrackerConfig {
    /// Checks the values a tracker cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(7 * 86_400)
        {
            return Err(ConfigError::Interval(self.interval));
        }
        if self.expiry_period.is_zero() {
            return Err(ConfigError::ExpiryPeriod);
        }
        for (name, rate) in [("request", self.requests), ("punch", self.punches)] {
            if rate.burst == 0 || rate.per_second == 0 {
                return Err(ConfigError::Rate(name));
            }
        }
        // Announce responses must fit an unfragmented UDP datagram on
        // Ethernet (1472 bytes of payload over IPv4, 1452 over IPv6).
        if self.max_num_want_v4 > 242 {
            return Err(ConfigError::NumWant {
                family: "IPv4",
                got: self.max_num_want_v4,
                max: 242,
            });
        }
        if self.max_num_want_v6 > 79 {
            return Err(ConfigError::NumWant {
                family: "IPv6",
                got: self.max_num_want_v6,
                max: 79,
            });
        }
        Ok(())
    }
}
