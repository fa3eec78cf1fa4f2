//! Per-source token buckets with a bounded table (`docs/protocol/tracker.md`
//! §8).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::RateConfig;

/// Whom a bucket belongs to: an IPv4 address or an IPv6 /64, since one host
/// usually owns a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl SourceKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(v6.octets().get(..8).unwrap_or(&[0; 8]));
                Self::V6(prefix)
            }
        }
    }
}

/// Tokens are counted in thousandths, so refill needs no floating point.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    last: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, rate: RateConfig) -> u64 {
        let ms =
            u64::try_from(now.saturating_duration_since(self.last).as_millis()).unwrap_or(u64::MAX);
        let cap = u64::from(rate.burst) * 1000;
        self.milli
            .saturating_add(ms.saturating_mul(u64::from(rate.per_second)))
            .min(cap)
    }
}

/// Token buckets for many sources, at most `max_buckets` of them.
#[derive(Debug)]
pub struct RateLimiter {
    rate: RateConfig,
    max_buckets: usize,
    buckets: HashMap<SourceKey, Bucket>,
    /// Shared by the sources that found the table full.
    overflow: Bucket,
    last_purge: Option<Instant>,
}

impl RateLimiter {
    /// A limiter allowing each source `rate`, keeping at most `max_buckets`
    /// buckets.
    pub fn new(rate: RateConfig, max_buckets: usize, now: Instant) -> Self {
        Self {
            rate,
            max_buckets,
            buckets: HashMap::new(),
            overflow: Bucket {
                milli: u64::from(rate.burst) * 1000,
                last: now,
            },
            last_purge: None,
        }
    }

    /// Takes a token for `ip` if it has one.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let key = SourceKey::of(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_buckets {
            self.purge(now);
        }
        let full = u64::from(self.rate.burst) * 1000;
        let room = self.buckets.len() < self.max_buckets;
        let bucket = match self.buckets.get_mut(&key) {
            Some(b) => b,
            None if room => self.buckets.entry(key).or_insert(Bucket {
                milli: full,
                last: now,
            }),
            None => &mut self.overflow,
        };
        let milli = bucket.refilled(now, self.rate);
        bucket.last = now;
        if milli >= 1000 {
            bucket.milli = milli - 1000;
            true
        } else {
            bucket.milli = milli;
            false
        }
    }

    /// Forgets buckets that have refilled completely (the same as having
    /// none); at most once a second, since it walks the whole table.
    pub fn purge(&mut self, now: Instant) {
        if self
            .last_purge
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_purge = Some(now);
        let rate = self.rate;
        let full = u64::from(rate.burst) * 1000;
        self.buckets.retain(|_, b| b.refilled(now, rate) < full);
    }

    /// Buckets kept.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: RateConfig = RateConfig {
        burst: 3,
        per_second: 2,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RATE, 10, t0);
        assert!((0..3).all(|_| l.allow(t0, ip("10.0.0.1"))));
        assert!(!l.allow(t0, ip("10.0.0.1")));
        // Others are not affected.
        assert!(l.allow(t0, ip("10.0.0.2")));
        // Two tokens a second: one after 500 ms.
        assert!(l.allow(t0 + Duration::from_millis(500), ip("10.0.0.1")));
        assert!(!l.allow(t0 + Duration::from_millis(500), ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RATE, 10, t0);
        for i in 0..3 {
            assert!(l.allow(t0, ip(&format!("2001:db8::{i}"))));
        }
        assert!(!l.allow(t0, ip("2001:db8::ffff:1")));
        assert!(l.allow(t0, ip("2001:db8:0:1::1")));
        // IPv4-mapped is IPv4.
        assert!(l.allow(t0, ip("::ffff:10.0.0.9")));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn table_stays_bounded_and_newcomers_share_overflow() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RATE, 4, t0);
        let mut allowed = 0;
        for i in 0..1000u32 {
            let [a, b, c, d] = i.to_be_bytes();
            if l.allow(t0, IpAddr::from([10, a | b, c, d])) {
                allowed += 1;
            }
            assert!(l.len() <= 4);
        }
        // 4 own buckets of 1 token used each, then the shared burst of 3.
        assert_eq!(allowed, 4 + 3);
        // Once the buckets refill they are purged and sources get their own
        // again.
        let later = t0 + Duration::from_secs(10);
        assert!(l.allow(later, ip("10.9.9.9")));
        assert_eq!(l.len(), 1);
    }
}
