//! Retry delays: exponential, capped, with jitter so that peers which failed
//! together do not retry together.

use std::time::Duration;

/// A uniform number in `[0, 1)` from the OS random source (rare calls: one per
/// retry or announcement). Falls back to 0.5 if the source fails.
fn unit() -> f64 {
    match getrandom::u64() {
        Ok(x) => (x >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// `d` scaled by a random factor in `[1 - frac, 1 + frac)`.
pub(crate) fn jitter(d: Duration, frac: f64) -> Duration {
    d.mul_f64((1.0 - frac + 2.0 * frac * unit()).max(0.0))
}

/// The delay before attempt `failures + 1` (after `failures` ≥ 1 failures in a
/// row), before jitter: `min · 2^(failures-1)`, capped at `max`.
pub(crate) fn delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << exp).min(max)
}

/// [`delay`] with ±25 % jitter, still capped at `max`.
pub(crate) fn jittered_delay(min: Duration, max: Duration, failures: u32) -> Duration {
    jitter(delay(min, max, failures), 0.25).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let got: Vec<u64> = (1..=12).map(|f| delay(min, max, f).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(delay(min, max, u32::MAX), max);
    }

    #[test]
    fn jitter_stays_in_range() {
        let d = Duration::from_secs(100);
        for _ in 0..200 {
            let j = jitter(d, 0.25);
            assert!(
                j >= Duration::from_secs(75) && j < Duration::from_secs(125),
                "{j:?}"
            );
            assert!(jittered_delay(d, d, 5) <= d);
        }
    }
}
