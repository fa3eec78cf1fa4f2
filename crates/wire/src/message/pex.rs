//! PeerExchange: addresses of other peers of the folder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::MAX_PEX_ADDRS;
use crate::codec::{Put, Reader};
use crate::error::{DecodeError, LimitError};
use crate::message::Payload;

/// Bytes of an IPv4 address on the wire: `4 u8 | ip [4] | port u16`.
pub const WIRE_ADDR_V4_LEN: usize = 1 + 4 + 2;
/// Bytes of an IPv6 address on the wire: `6 u8 | ip [16] | port u16`.
pub const WIRE_ADDR_V6_LEN: usize = 1 + 16 + 2;

/// Addresses at which the sender knows other peers of this folder, added
/// since its last PeerExchange and dropped since then; at most
/// [`MAX_PEX_ADDRS`] of each. They are candidates to try, not facts.
///
/// Layout: `added_count u32 | addr × added_count | dropped_count u32 |
/// addr × dropped_count`, each address as `family u8 (4 or 6) | ip | port
/// u16`. IPv6 flow info and scope id are not sent (a scope id means nothing
/// on another host): [`new`](Self::new) sets them to 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PeerExchange {
    added: Vec<SocketAddr>,
    dropped: Vec<SocketAddr>,
}

impl PeerExchange {
    /// A PeerExchange, if each list has at most [`MAX_PEX_ADDRS`] addresses.
    pub fn new(added: Vec<SocketAddr>, dropped: Vec<SocketAddr>) -> Result<Self, LimitError> {
        for (what, list) in [("pex added", &added), ("pex dropped", &dropped)] {
            if list.len() > MAX_PEX_ADDRS {
                return Err(LimitError {
                    what,
                    len: list.len(),
                    max: MAX_PEX_ADDRS,
                });
            }
        }
        let strip = |list: Vec<SocketAddr>| list.into_iter().map(strip_v6_extras).collect();
        Ok(Self {
            added: strip(added),
            dropped: strip(dropped),
        })
    }

    /// Newly known addresses.
    pub fn added(&self) -> &[SocketAddr] {
        &self.added
    }

    /// Addresses no longer worth trying.
    pub fn dropped(&self) -> &[SocketAddr] {
        &self.dropped
    }
}

fn strip_v6_extras(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
    }
}

fn put_addrs(out: &mut Vec<u8>, list: &[SocketAddr]) {
    out.put_len(list.len());
    for addr in list {
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.put_u8(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.put_u8(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.put_u16(addr.port());
    }
}

fn read_addrs(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<SocketAddr>, DecodeError> {
    let count = r.count(field, MAX_PEX_ADDRS, WIRE_ADDR_V4_LEN)?;
    let mut list = Vec::with_capacity(count);
    for _ in 0..count {
        let ip = match r.u8("pex.family")? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("pex.ip")?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("pex.ip")?)),
            _ => {
                return Err(DecodeError::BadValue {
                    field: "pex.family",
                    reason: "must be 4 (IPv4) or 6 (IPv6)",
                });
            }
        };
        let port = r.u16("pex.port")?;
        list.push(SocketAddr::new(ip, port));
    }
    Ok(list)
}

impl Payload for PeerExchange {
    fn put(&self, out: &mut Vec<u8>) {
        put_addrs(out, &self.added);
        put_addrs(out, &self.dropped);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let added = read_addrs(r, "pex.added_count")?;
        let dropped = read_addrs(r, "pex.dropped_count")?;
        Ok(Self { added, dropped })
    }
}
