//! The preamble and the messages (`docs/protocol/relay.md` §3), with a cursor
//! so no decoder indexes a slice or reads past its end.
//!
//! A reader of a stream reads [`PREAMBLE_LEN`] bytes for [`check_preamble`],
//! then per message [`HEADER_LEN`] bytes for [`Header::parse`], which checks
//! the length against the type before any body is read, then exactly
//! `header.len` bytes for [`ClientMessage::parse`] or
//! [`RelayMessage::parse`]. [`ClientMessage::decode`] and
//! [`RelayMessage::decode`] do the same over a buffer.

use keys::{PEER_ID_LEN, PeerId};

use crate::error::ProtoError;
use crate::{FolderTag, PairingToken, SessionId};

/// The magic every connection starts with, both ways.
pub const MAGIC: [u8; 4] = *b"SWRL";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes of the preamble: magic and version.
pub const PREAMBLE_LEN: usize = 5;
/// The preamble this side sends.
pub const PREAMBLE: [u8; PREAMBLE_LEN] = [b'S', b'W', b'R', b'L', VERSION];
/// Bytes of a message header: type and body length.
pub const HEADER_LEN: usize = 3;
/// Longest body of any message (a full Peers list).
pub const MAX_BODY_LEN: usize = MAX_PEERS * PEER_ID_LEN;
/// Most peer ids in one Peers answer.
pub const MAX_PEERS: usize = 32;

const REGISTER: u8 = 0x01;
const LOOKUP: u8 = 0x02;
const CONNECT: u8 = 0x03;
const ACCEPT: u8 = 0x04;
const PING: u8 = 0x05;
const REGISTERED: u8 = 0x81;
const PEERS: u8 = 0x82;
const INVITE: u8 = 0x83;
const SPLICED: u8 = 0x84;
const PONG: u8 = 0x85;
const ERROR: u8 = 0x86;

/// Checks the other side's preamble.
pub fn check_preamble(bytes: &[u8; PREAMBLE_LEN]) -> Result<(), ProtoError> {
    let [m0, m1, m2, m3, version] = *bytes;
    let magic = [m0, m1, m2, m3];
    if magic != MAGIC {
        return Err(ProtoError::BadMagic(magic));
    }
    if version != VERSION {
        return Err(ProtoError::UnsupportedVersion(version));
    }
    Ok(())
}

/// A message header whose length is allowed for its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: u8,
    /// The body length, at most [`MAX_BODY_LEN`].
    pub len: usize,
}

impl Header {
    /// Parses a header and checks its length against its type, so the body
    /// can be read into a fixed [`MAX_BODY_LEN`] buffer.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, ProtoError> {
        let [kind, hi, lo] = *bytes;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let ok = match kind {
            REGISTER => len == 64,
            LOOKUP | ACCEPT => len == 32,
            CONNECT => len == 128,
            PING | REGISTERED | SPLICED | PONG => len == 0,
            PEERS => len % PEER_ID_LEN == 0 && len <= MAX_BODY_LEN,
            INVITE => len == 96,
            ERROR => len == 1,
            other => return Err(ProtoError::UnknownType(other)),
        };
        if ok {
            Ok(Self { kind, len })
        } else {
            Err(ProtoError::BadLength { kind, len })
        }
    }
}

/// A message from a client (a peer) to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// Be reachable: store `peer` under `tag` on this (control) connection.
    Register {
        /// The folder's tag.
        tag: FolderTag,
        /// The registering device.
        peer: PeerId,
    },
    /// Which peers are registered under `tag`?
    Lookup {
        /// The folder's tag.
        tag: FolderTag,
    },
    /// Splice this (data) connection with `target`'s.
    Connect {
        /// The folder's tag: which of `target`'s registrations to invite.
        tag: FolderTag,
        /// The peer to reach.
        target: PeerId,
        /// The sender's own id, passed on in the invitation.
        from: PeerId,
        /// The pairing token, passed on in the invitation.
        token: PairingToken,
    },
    /// Take the invitation `session` on this (data) connection.
    Accept {
        /// The session id from the Invite.
        session: SessionId,
    },
    /// Keep a control connection alive.
    Ping,
}

/// Why the relay refused or ended something (`docs/protocol/relay.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A relay-wide cap is reached.
    Full,
    /// A per-source-address cap is reached.
    AddressLimit,
    /// The target is not registered under that tag.
    UnknownPeer,
    /// The invitation was not accepted in time.
    NotAccepted,
    /// Accept for no pending invitation.
    UnknownSession,
    /// A malformed or unexpected message.
    Protocol,
    /// The relay does not speak the client's version.
    Version,
    /// A newer registration of the same (tag, peer) took over.
    Replaced,
    /// A code this version does not know.
    Other(u8),
}

impl ErrorCode {
    /// The code byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Full => 1,
            Self::AddressLimit => 2,
            Self::UnknownPeer => 3,
            Self::NotAccepted => 4,
            Self::UnknownSession => 5,
            Self::Protocol => 6,
            Self::Version => 7,
            Self::Replaced => 8,
            Self::Other(b) => b,
        }
    }

    /// The code a byte names.
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Full,
            2 => Self::AddressLimit,
            3 => Self::UnknownPeer,
            4 => Self::NotAccepted,
            5 => Self::UnknownSession,
            6 => Self::Protocol,
            7 => Self::Version,
            8 => Self::Replaced,
            other => Self::Other(other),
        }
    }
}

/// A message from the relay to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMessage {
    /// The registration is stored.
    Registered,
    /// The answer to a Lookup: at most [`MAX_PEERS`] ids.
    Peers(Vec<PeerId>),
    /// Someone wants to reach the registered peer.
    Invite {
        /// Who asks (as it claims).
        from: PeerId,
        /// The pairing token it sent.
        token: PairingToken,
        /// What to Accept.
        session: SessionId,
    },
    /// The data connection is joined with the other side's; raw bytes follow.
    Spliced,
    /// The answer to a Ping.
    Pong,
    /// A refusal; the relay closes the connection after it.
    Error(ErrorCode),
}

impl ClientMessage {
    /// Parses a body whose header [`Header::parse`] accepted.
    pub fn parse(header: Header, body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let msg = match header.kind {
            REGISTER => Self::Register {
                tag: FolderTag(r.array("folder tag")?),
                peer: PeerId(r.array("peer id")?),
            },
            LOOKUP => Self::Lookup {
                tag: FolderTag(r.array("folder tag")?),
            },
            CONNECT => Self::Connect {
                tag: FolderTag(r.array("folder tag")?),
                target: PeerId(r.array("target")?),
                from: PeerId(r.array("from")?),
                token: PairingToken(r.array("token")?),
            },
            ACCEPT => Self::Accept {
                session: SessionId(r.array("session")?),
            },
            PING => Self::Ping,
            other => return Err(ProtoError::UnknownType(other)),
        };
        r.finish(header)?;
        Ok(msg)
    }

    /// Parses one whole message (header and body) from the front of `buf`,
    /// returning it and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), ProtoError> {
        let (header, body) = split(buf)?;
        Ok((Self::parse(header, body)?, HEADER_LEN + header.len))
    }

    /// Appends the message, header included, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Register { tag, peer } => {
                put_header(out, REGISTER, 64);
                out.extend_from_slice(&tag.0);
                out.extend_from_slice(&peer.0);
            }
            Self::Lookup { tag } => {
                put_header(out, LOOKUP, 32);
                out.extend_from_slice(&tag.0);
            }
            Self::Connect {
                tag,
                target,
                from,
                token,
            } => {
                put_header(out, CONNECT, 128);
                out.extend_from_slice(&tag.0);
                out.extend_from_slice(&target.0);
                out.extend_from_slice(&from.0);
                out.extend_from_slice(&token.0);
            }
            Self::Accept { session } => {
                put_header(out, ACCEPT, 32);
                out.extend_from_slice(&session.0);
            }
            Self::Ping => put_header(out, PING, 0),
        }
    }

    /// The message with its header, as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 128);
        self.write(&mut out);
        out
    }
}

impl RelayMessage {
    /// Parses a body whose header [`Header::parse`] accepted.
    pub fn parse(header: Header, body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let msg = match header.kind {
            REGISTERED => Self::Registered,
            PEERS => {
                let n = header.len / PEER_ID_LEN;
                let mut peers = Vec::with_capacity(n.min(MAX_PEERS));
                for _ in 0..n {
                    peers.push(PeerId(r.array("peer id")?));
                }
                Self::Peers(peers)
            }
            INVITE => Self::Invite {
                from: PeerId(r.array("from")?),
                token: PairingToken(r.array("token")?),
                session: SessionId(r.array("session")?),
            },
            SPLICED => Self::Spliced,
            PONG => Self::Pong,
            ERROR => Self::Error(ErrorCode::from_byte(r.u8("error code")?)),
            other => return Err(ProtoError::UnknownType(other)),
        };
        r.finish(header)?;
        Ok(msg)
    }

    /// Parses one whole message (header and body) from the front of `buf`,
    /// returning it and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), ProtoError> {
        let (header, body) = split(buf)?;
        Ok((Self::parse(header, body)?, HEADER_LEN + header.len))
    }

    /// Appends the message, header included, to `out`. A Peers list longer
    /// than [`MAX_PEERS`] is cut to its first [`MAX_PEERS`] ids.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Registered => put_header(out, REGISTERED, 0),
            Self::Peers(peers) => {
                let peers = peers.get(..MAX_PEERS).unwrap_or(peers);
                // At most 1024, so it fits the u16.
                put_header(out, PEERS, peers.len() * PEER_ID_LEN);
                for p in peers {
                    out.extend_from_slice(&p.0);
                }
            }
            Self::Invite {
                from,
                token,
                session,
            } => {
                put_header(out, INVITE, 96);
                out.extend_from_slice(&from.0);
                out.extend_from_slice(&token.0);
                out.extend_from_slice(&session.0);
            }
            Self::Spliced => put_header(out, SPLICED, 0),
            Self::Pong => put_header(out, PONG, 0),
            Self::Error(code) => {
                put_header(out, ERROR, 1);
                out.push(code.to_byte());
            }
        }
    }

    /// The message with its header, as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 96);
        self.write(&mut out);
        out
    }
}

fn put_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
}

/// A checked header and its body from the front of `buf`.
fn split(buf: &[u8]) -> Result<(Header, &[u8]), ProtoError> {
    let mut r = Reader::new(buf);
    let header = Header::parse(&r.array("message header")?)?;
    let body = r.take(header.len, "message body")?;
    Ok((header, body))
}

/// A read cursor over one body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
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

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    /// A body must be used up exactly.
    fn finish(&self, header: Header) -> Result<(), ProtoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::BadLength {
                kind: header.kind,
                len: header.len,
            })
        }
    }
}
