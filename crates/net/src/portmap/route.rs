//! Where the gateway is and which of our addresses faces it.
//!
//! NAT-PMP and PCP talk to the default gateway directly, so it comes from the
//! kernel's IPv4 routing table (`/proc/net/route`, per network namespace).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;
/// `RTF_GATEWAY`: the route goes through a gateway (not on-link).
const RTF_GATEWAY: u32 = 0x2;

/// The IPv4 default route with the lowest metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefaultRoute {
    /// The interface it leaves by.
    pub(crate) iface: String,
    /// The next hop.
    pub(crate) gateway: Ipv4Addr,
    /// Its metric; lower wins.
    pub(crate) metric: u32,
}

/// The default route of a `/proc/net/route` table: the up, gatewayed route
/// with destination and mask 0 and the lowest metric. Lines that do not parse
/// are skipped (the header among them).
pub(crate) fn default_route(table: &str) -> Option<DefaultRoute> {
    table
        .lines()
        .filter_map(parse_line)
        .filter(|r| r.is_default)
        .map(|r| r.route)
        .min_by_key(|r| r.metric)
}

struct Line {
    route: DefaultRoute,
    is_default: bool,
}

/// One row: `Iface Destination Gateway Flags RefCnt Use Metric Mask …`, the
/// addresses and flags in hex.
fn parse_line(line: &str) -> Option<Line> {
    let mut fields = line.split_whitespace();
    let iface = fields.next()?;
    let dest = hex(fields.next()?)?;
    let gateway = hex(fields.next()?)?;
    let flags = hex(fields.next()?)?;
    let _refcnt = fields.next()?;
    let _use = fields.next()?;
    let metric = fields.next()?.parse::<u32>().ok()?;
    let mask = hex(fields.next()?)?;
    let up_via_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
    Some(Line {
        is_default: dest == 0 && mask == 0 && up_via_gateway && gateway != 0,
        route: DefaultRoute {
            iface: iface.to_owned(),
            // The kernel prints the network-order word as a host-order
            // number, so the host's own byte order gives the octets back.
            gateway: Ipv4Addr::from(gateway.to_ne_bytes()),
            metric,
        },
    })
}

fn hex(field: &str) -> Option<u32> {
    u32::from_str_radix(field, 16).ok()
}

/// The default gateway of this network namespace.
pub(crate) fn default_gateway() -> io::Result<Option<Ipv4Addr>> {
    let table = std::fs::read_to_string("/proc/net/route")?;
    Ok(default_route(&table).map(|r| r.gateway))
}

/// Our address on the path to `gateway`: the source the kernel picks for a
/// UDP socket connected there. Connecting a UDP socket sends nothing.
pub(crate) fn local_ip_towards(gateway: IpAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = match gateway {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect((gateway, crab_nat::GATEWAY_PORT))?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    #[cfg(target_endian = "little")]
    fn finds_the_default_route() {
        let table = format!(
            "{HEADER}\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
        );
        let route = default_route(&table).unwrap();
        assert_eq!(route.gateway, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(route.iface, "eth0");
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn lowest_metric_wins_and_down_routes_do_not_count() {
        let table = format!(
            "{HEADER}\
             wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             tun0\t00000000\t01010A0A\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"
        );
        let route = default_route(&table).unwrap();
        assert_eq!(route.iface, "eth0");
        assert_eq!(route.metric, 100);
    }

    #[test]
    fn no_default_route_is_none() {
        // Only an on-link subnet route, as in a namespace without a default.
        let table = format!("{HEADER}eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        assert_eq!(default_route(&table), None);
        assert_eq!(default_route(""), None);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let table = "eth0 zz 0101A8C0 0003 0 0 1 00000000\n\
                     eth0 00000000 0101A8C0 0003\n\
                     \u{0}\u{ff}\n";
        assert_eq!(default_route(table), None);
    }

    #[test]
    fn local_ip_towards_loopback_is_loopback() {
        let ip = local_ip_towards(Ipv4Addr::LOCALHOST.into()).unwrap();
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
