//! The byte cursor and writers every layout goes through, so no decoder
//! indexes a slice or reads past the end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::ProtoError;

/// Endpoint family byte for IPv4 (`docs/protocol/tracker.md` §5).
pub(crate) const FAMILY_V4: u8 = 4;
/// Endpoint family byte for IPv6.
pub(crate) const FAMILY_V6: u8 = 6;

/// A read cursor over one datagram.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(ProtoError::Truncated {
                field,
                needed: n - self.rest.len(),
            }),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtoError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtoError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A compact IPv4 peer: 4 bytes address, 2 bytes port.
    pub(crate) fn compact_v4(&mut self) -> Result<SocketAddr, ProtoError> {
        let ip = Ipv4Addr::from(self.array::<4>("peer address")?);
        let port = self.u16("peer port")?;
        Ok(SocketAddr::new(IpAddr::V4(ip), port))
    }

    /// A compact IPv6 peer: 16 bytes address, 2 bytes port.
    pub(crate) fn compact_v6(&mut self) -> Result<SocketAddr, ProtoError> {
        let ip = Ipv6Addr::from(self.array::<16>("peer address")?);
        let port = self.u16("peer port")?;
        Ok(SocketAddr::new(IpAddr::V6(ip), port))
    }

    /// An endpoint with its family byte (4 or 6) in front.
    pub(crate) fn endpoint(&mut self) -> Result<SocketAddr, ProtoError> {
        match self.u8("endpoint family")? {
            FAMILY_V4 => self.compact_v4(),
            FAMILY_V6 => self.compact_v6(),
            other => Err(ProtoError::BadFamily(other)),
        }
    }
}

/// Writes the compact form (address, port) without a family byte.
pub(crate) fn put_compact(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Writes an endpoint with its family byte.
pub(crate) fn put_endpoint(out: &mut Vec<u8>, addr: SocketAddr) {
    out.push(if addr.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 });
    put_compact(out, addr);
}

/// Bytes an endpoint takes on the wire, family byte included.
pub(crate) fn endpoint_len(addr: SocketAddr) -> usize {
    if addr.is_ipv4() { 7 } else { 19 }
}
