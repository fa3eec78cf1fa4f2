//! When to renew a mapping and when to look for a gateway again. Pure.

use std::time::Duration;

/// Renewals never come closer together than this, whatever a gateway grants
/// (a gateway granting a lease of 1 s must not make us spin).
pub(crate) const MIN_RENEW: Duration = Duration::from_secs(1);

/// How long after a mapping was made (or renewed) to renew it: half the lease
/// the gateway granted, so one lost renewal still leaves time for another.
/// A permanent lease (`granted` = 0, which some UPnP gateways insist on) is
/// still refreshed at half the lease we asked for, in case the gateway
/// rebooted and forgot it.
pub(crate) fn renew_after(granted: Duration, requested: Duration) -> Duration {
    let lease = if granted.is_zero() {
        requested
    } else {
        granted
    };
    (lease / 2).max(MIN_RENEW)
}

/// What the task does next, from what its last step gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Renew the mapping after this long.
    Renew(Duration),
    /// Look for a gateway again after this long.
    Discover(Duration),
}

/// Mapping attempts and renewals in a row that failed, and what follows.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    retry_min: Duration,
    retry_max: Duration,
    failures: u32,
}

impl Schedule {
    pub(crate) fn new(retry_min: Duration, retry_max: Duration) -> Self {
        Self {
            retry_min,
            retry_max: retry_max.max(retry_min),
            failures: 0,
        }
    }

    /// A mapping was made or renewed with lease `granted`.
    pub(crate) fn mapped(&mut self, granted: Duration, requested: Duration) -> Next {
        self.failures = 0;
        Next::Renew(renew_after(granted, requested))
    }

    /// Discovery or mapping failed: retry with exponential backoff (jittered
    /// so that hosts behind one gateway that rebooted do not come back
    /// together), capped at `retry_max`; networks change, so never give up.
    pub(crate) fn failed(&mut self) -> Next {
        self.failures = self.failures.saturating_add(1);
        Next::Discover(crate::backoff::jittered_delay(
            self.retry_min,
            self.retry_max,
            self.failures,
        ))
    }

    /// A renewal failed: the gateway may have rebooted or been replaced, so
    /// map afresh at once the first time, then back off as for any failure.
    pub(crate) fn renewal_failed(&mut self) -> Next {
        if self.failures == 0 {
            self.failures = 1;
            Next::Discover(Duration::ZERO)
        } else {
            self.failed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn renews_at_half_the_granted_lease() {
        assert_eq!(renew_after(HOUR, 2 * HOUR), HOUR / 2);
        // The gateway cut our request short: its lease counts.
        assert_eq!(
            renew_after(Duration::from_secs(120), HOUR),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn permanent_lease_is_refreshed_at_half_the_requested_one() {
        assert_eq!(renew_after(Duration::ZERO, HOUR), HOUR / 2);
    }

    #[test]
    fn tiny_leases_do_not_spin() {
        assert_eq!(renew_after(Duration::from_millis(10), HOUR), MIN_RENEW);
        assert_eq!(renew_after(Duration::ZERO, Duration::ZERO), MIN_RENEW);
    }

    #[test]
    fn failures_back_off_to_the_cap_and_success_resets() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let mut s = Schedule::new(min, max);
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            let Next::Discover(d) = s.failed() else {
                panic!("a failure schedules discovery");
            };
            assert!(d <= max, "{d:?}");
            last = d;
        }
        // Jitter is ±25 % below the cap, and the cap holds.
        assert!(last >= max.mul_f64(0.75), "{last:?}");
        assert_eq!(s.mapped(HOUR, HOUR), Next::Renew(HOUR / 2));
        let Next::Discover(d) = s.failed() else {
            panic!("a failure schedules discovery");
        };
        assert!(d <= min.mul_f64(1.25), "back to the minimum: {d:?}");
    }

    #[test]
    fn a_lost_renewal_remaps_at_once_then_backs_off() {
        let mut s = Schedule::new(Duration::from_secs(10), Duration::from_secs(300));
        s.mapped(HOUR, HOUR);
        assert_eq!(s.renewal_failed(), Next::Discover(Duration::ZERO));
        let Next::Discover(d) = s.renewal_failed() else {
            panic!("a failure schedules discovery");
        };
        assert!(d >= Duration::from_secs(15), "{d:?}");
    }
}
