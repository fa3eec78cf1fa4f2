//! Stateless connection ids: a keyed BLAKE3 MAC of the source endpoint and a
//! time epoch, so the tracker keeps no table of them and a reply to a
//! spoofed source never proves anything (`docs/protocol/tracker.md` §2.2).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Length of one epoch. An id issued in epoch `e` is accepted in `e` and
/// `e + 1`, so it lives between 60 and 120 s; BEP 15 clients reuse an id for
/// at most 60 s.
pub const EPOCH: Duration = Duration::from_secs(60);

/// Issues and checks connection ids. The key is random per server start, so
/// ids from an earlier run are rejected.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 32],
    origin: Instant,
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key would let anyone forge ids.
        f.debug_struct("ConnectionIds")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ConnectionIds {
    /// Ids keyed by `key` (32 random bytes), epochs counted from `origin`.
    pub fn new(key: [u8; 32], origin: Instant) -> Self {
        Self { key, origin }
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / EPOCH.as_secs()
    }

    fn mac(&self, source: SocketAddr, epoch: u64) -> u64 {
        // 16 address bytes (IPv4 as IPv4-mapped IPv6), 2 port, 8 epoch.
        let ip = match source.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let mut input = [0u8; 26];
        let (a, rest) = input.split_at_mut(16);
        a.copy_from_slice(&ip.octets());
        let (p, e) = rest.split_at_mut(2);
        p.copy_from_slice(&source.port().to_be_bytes());
        e.copy_from_slice(&epoch.to_be_bytes());
        let hash = blake3::keyed_hash(&self.key, &input);
        let mut id = [0u8; 8];
        id.copy_from_slice(hash.as_bytes().get(..8).unwrap_or(&[0; 8]));
        u64::from_be_bytes(id)
    }

    /// The id for `source` at `now`.
    pub fn issue(&self, source: SocketAddr, now: Instant) -> u64 {
        self.mac(source, self.epoch(now))
    }

    /// Whether `id` was issued to `source` in this epoch or the previous one.
    pub fn check(&self, id: u64, source: SocketAddr, now: Instant) -> bool {
        let e = self.epoch(now);
        id == self.mac(source, e) || (e > 0 && id == self.mac(source, e - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ConnectionIds, Instant) {
        let t0 = Instant::now();
        (ConnectionIds::new([7; 32], t0), t0)
    }

    #[test]
    fn accepted_for_between_one_and_two_epochs() {
        let (ids, t0) = ids();
        let a: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        let issued = t0 + Duration::from_secs(59);
        let id = ids.issue(a, issued);
        assert!(ids.check(id, a, issued));
        assert!(ids.check(id, a, t0 + Duration::from_secs(119)));
        assert!(!ids.check(id, a, t0 + Duration::from_secs(120)));
    }

    #[test]
    fn bound_to_address_port_and_key() {
        let (ids, t0) = ids();
        let a: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        let id = ids.issue(a, t0);
        assert!(!ids.check(id, "192.0.2.2:6881".parse().unwrap(), t0));
        assert!(!ids.check(id, "192.0.2.1:6882".parse().unwrap(), t0));
        let other = ConnectionIds::new([8; 32], t0);
        assert!(!other.check(id, a, t0));
    }
}
