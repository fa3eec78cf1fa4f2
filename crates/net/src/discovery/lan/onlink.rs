//! Which source addresses count as "on the LAN": a datagram on the discovery
//! port is only believed if it comes from a network one of our interfaces is
//! on (or from a link-local or loopback address). The shared socket listens on
//! the wildcard address, so on a host with a public address anyone could
//! otherwise make us dial (their own, or a spoofed) address.

use std::net::IpAddr;

/// The networks of our interfaces, as (network, mask).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LocalNets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl LocalNets {
    /// Reads the interfaces now (empty if that fails).
    pub(crate) fn read() -> Self {
        let mut nets = Self::default();
        for iface in if_addrs::get_if_addrs().unwrap_or_default() {
            match iface.addr {
                if_addrs::IfAddr::V4(a) => nets.add_v4(u32::from(a.ip), u32::from(a.netmask)),
                if_addrs::IfAddr::V6(a) => nets.add_v6(u128::from(a.ip), u128::from(a.netmask)),
            }
        }
        nets
    }

    fn add_v4(&mut self, ip: u32, mask: u32) {
        let net = (ip & mask, mask);
        if !self.v4.contains(&net) {
            self.v4.push(net);
        }
    }

    fn add_v6(&mut self, ip: u128, mask: u128) {
        let net = (ip & mask, mask);
        if !self.v6.contains(&net) {
            self.v6.push(net);
        }
    }

    /// Whether `ip` is on one of our links.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let x = u32::from(v4);
                v4.is_loopback() || self.v4.iter().any(|&(net, mask)| x & mask == net)
            }
            IpAddr::V6(v6) => {
                let x = u128::from(v6);
                v6.is_loopback()
                    || v6.is_unicast_link_local()
                    || self.v6.iter().any(|&(net, mask)| x & mask == net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_our_networks() {
        let mut nets = LocalNets::default();
        nets.add_v4(
            u32::from(std::net::Ipv4Addr::new(192, 168, 1, 7)),
            0xffff_ff00,
        );
        nets.add_v6(
            u128::from("fd00:1:2:3::9".parse::<std::net::Ipv6Addr>().unwrap()),
            !0u128 << 64,
        );
        let yes = [
            "192.168.1.1",
            "192.168.1.255",
            "127.0.0.1",
            "fe80::1",
            "fd00:1:2:3::77",
            "::1",
        ];
        let no = [
            "192.168.2.1",
            "8.8.8.8",
            "10.0.0.1",
            "2001:db8::1",
            "fd00:1:2:4::1",
        ];
        for ip in yes {
            assert!(nets.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!nets.contains(ip.parse().unwrap()), "{ip}");
        }
    }
}
