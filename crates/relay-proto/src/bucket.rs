//! A token bucket for bytes, with time passed in: the relay's per-direction
//! bandwidth cap.

use std::time::{Duration, Instant};

const NANOS: u128 = 1_000_000_000;

/// Allows `rate` bytes per second with a burst of `burst` bytes. Sends may
/// run into debt; [`TokenBucket::take`] says how long to wait before
/// sending, so the average never exceeds the rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Credit in bytes × 10⁹ (so refill needs no floating point); negative
    /// is debt.
    credit: i128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` of 0 means unlimited.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            credit: i128::from(burst).saturating_mul(NANOS as i128),
            last: now,
        }
    }

    /// Takes `bytes` and returns how long to wait before sending them.
    pub fn take(&mut self, now: Instant, bytes: u64) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        let cap = i128::from(self.burst).saturating_mul(NANOS as i128);
        let refill =
            i128::try_from(elapsed.saturating_mul(u128::from(self.rate))).unwrap_or(i128::MAX);
        self.credit = self.credit.saturating_add(refill).min(cap);
        self.credit = self
            .credit
            .saturating_sub(i128::from(bytes).saturating_mul(NANOS as i128));
        if self.credit >= 0 {
            return Duration::ZERO;
        }
        let debt = self.credit.unsigned_abs();
        let rate = u128::from(self.rate);
        let nanos = debt.div_ceil(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_is_free_then_rate_applies() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 1000, t0);
        assert_eq!(b.take(t0, 1000), Duration::ZERO);
        assert_eq!(b.take(t0, 500), Duration::from_millis(500));
        // Waiting out the debt makes the next byte cost only its own time.
        assert_eq!(
            b.take(t0 + Duration::from_millis(500), 1),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0, t0);
        assert_eq!(b.take(t0, u64::MAX), Duration::ZERO);
    }

    proptest! {
        /// A sender that always waits as told never beats rate × time + burst.
        #[test]
        fn average_never_exceeds_rate(
            rate in 1u64..10_000_000,
            chunks in proptest::collection::vec(1u64..200_000, 1..200),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, rate, t0);
            let mut now = t0;
            let mut sent: u128 = 0;
            for c in chunks {
                now += b.take(now, c);
                sent += u128::from(c);
                let allowed = u128::from(rate) * now.duration_since(t0).as_nanos() / NANOS
                    + u128::from(rate) + 1;
                prop_assert!(sent <= allowed, "sent {sent} > allowed {allowed}");
            }
        }
    }
}
