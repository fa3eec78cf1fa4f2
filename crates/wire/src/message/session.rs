//! Messages that manage the connection: Hello, FolderState, Ping, Pong, Close.

use keys::{Access, PEER_ID_LEN, PeerId};

use crate::codec::{Put, Reader};
use crate::error::DecodeError;
use crate::message::Payload;
use crate::{MAX_CLOSE_MESSAGE_LEN, MAX_DEVICE_NAME_LEN, MAX_SOFTWARE_LEN, PROTOCOL_VERSION, Text};

/// Optional features a peer supports, as a bit set. Version 1 defines no bit;
/// a receiver ignores bits it does not know, and a feature is used only when
/// both Hellos set its bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No optional feature.
    pub const NONE: Self = Self(0);

    /// Bit 0: the sender understands [`IndexDelta`](crate::IndexDelta),
    /// [`RecordRequest`](crate::RecordRequest) and [`Record`](crate::Record).
    /// A peer sends IndexDelta only when both Hellos set it.
    pub const RECORD_DELTA: Self = Self(1);

    /// Bit 1: the sender understands [`DeltaRequest`](crate::DeltaRequest)
    /// and [`DeltaResponse`](crate::DeltaResponse). A peer sends DeltaRequest
    /// only when both Hellos set it.
    pub const BLOCK_DELTA: Self = Self(2);

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The features both sides support.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// The first message each side sends, once the channel is up.
///
/// Layout: `version u16 | peer_id [32] | capabilities u64 | software str(64) |
/// device_name str(64) | extension...`. The extension area is empty in
/// version 1; a decoder ignores whatever follows the version-1 fields when
/// `version >= 2` (later versions may append fields there and a v1 peer must
/// still read their Hello), and rejects it as trailing bytes when `version`
/// is 0 or 1. Because of that, a decoded Hello with `version >= 2` may
/// re-encode shorter than it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The highest protocol version the sender speaks (see
    /// [`negotiate`](crate::negotiate)). Any value decodes; judging it is the
    /// session's job.
    pub version: u16,
    /// The sender's device id. Must equal the id the channel authenticated.
    pub peer_id: PeerId,
    /// Optional features the sender supports.
    pub capabilities: Capabilities,
    /// Free-form software name and version, e.g. `swarmsync/0.1.0`.
    pub software: Text<MAX_SOFTWARE_LEN>,
    /// A human name of the device, shown in status; may be empty.
    pub device_name: Text<MAX_DEVICE_NAME_LEN>,
}

impl Hello {
    /// A Hello for this protocol version with no capabilities.
    pub fn new(
        peer_id: PeerId,
        software: Text<MAX_SOFTWARE_LEN>,
        device_name: Text<MAX_DEVICE_NAME_LEN>,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            peer_id,
            capabilities: Capabilities::NONE,
            software,
            device_name,
        }
    }
}

impl Payload for Hello {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u16(self.version);
        out.extend_from_slice(self.peer_id.as_bytes());
        out.put_u64(self.capabilities.0);
        out.put_prefixed(self.software.as_bytes());
        out.put_prefixed(self.device_name.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u16("hello.version")?;
        let peer_id = PeerId(r.array::<PEER_ID_LEN>("hello.peer_id")?);
        let capabilities = Capabilities(r.u64("hello.capabilities")?);
        let software = r.text("hello.software")?;
        let device_name = r.text("hello.device_name")?;
        if version >= 2 {
            r.skip_rest();
        }
        Ok(Self {
            version,
            peer_id,
            capabilities,
            software,
            device_name,
        })
    }
}

/// The sender's index of the folder. Sent after Hello, and again whenever its
/// index id changes.
///
/// Layout: `index_id u64 | max_sequence u64 | access u8 | held_index_id u64 |
/// held_sequence u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    /// Random, fixed for the life of the sender's index database; a new value
    /// means the index was rebuilt and the receiver must forget what it holds
    /// of it (an [`Index`](crate::Message::Index) follows).
    pub index_id: u64,
    /// The highest sequence number in the sender's index; 0 when empty. The
    /// receiver is up to date once it holds records up to here.
    pub max_sequence: u64,
    /// The sender's access level. It must equal the level the channel proved;
    /// it is stated so a mismatch is caught, it grants nothing.
    pub access: Access,
    /// What the sender already holds of the *receiver's* index: the receiver's
    /// index id as the sender last saw it (0: nothing held) …
    pub held_index_id: u64,
    /// … and the receiver's sequence up to which the sender holds (and has
    /// applied) every record. If `held_index_id` is the receiver's current index
    /// id, the receiver sends only records after `held_sequence`; otherwise
    /// everything.
    pub held_sequence: u64,
}

/// The access byte: `0` encrypted, `1` read-only, `2` read-write.
pub(crate) const fn access_to_u8(access: Access) -> u8 {
    match access {
        Access::Encrypted => 0,
        Access::ReadOnly => 1,
        Access::ReadWrite => 2,
    }
}

fn access_from_u8(byte: u8) -> Option<Access> {
    match byte {
        0 => Some(Access::Encrypted),
        1 => Some(Access::ReadOnly),
        2 => Some(Access::ReadWrite),
        _ => None,
    }
}

impl Payload for FolderState {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.index_id);
        out.put_u64(self.max_sequence);
        out.put_u8(access_to_u8(self.access));
        out.put_u64(self.held_index_id);
        out.put_u64(self.held_sequence);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index_id = r.u64("folder_state.index_id")?;
        let max_sequence = r.u64("folder_state.max_sequence")?;
        let access = access_from_u8(r.u8("folder_state.access")?).ok_or(DecodeError::BadValue {
            field: "folder_state.access",
            reason: "must be 0 (encrypted), 1 (read-only) or 2 (read-write)",
        })?;
        let held_index_id = r.u64("folder_state.held_index_id")?;
        let held_sequence = r.u64("folder_state.held_sequence")?;
        Ok(Self {
            index_id,
            max_sequence,
            access,
            held_index_id,
            held_sequence,
        })
    }
}

/// Asks for a [`Pong`] carrying the same nonce. Layout: `nonce u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ping {
    /// Opaque; echoed in the Pong.
    pub nonce: u64,
}

/// Answers a [`Ping`]. Layout: `nonce u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pong {
    /// The nonce of the Ping answered.
    pub nonce: u64,
}

impl Payload for Ping {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.nonce);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            nonce: r.u64("ping.nonce")?,
        })
    }
}

impl Payload for Pong {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.nonce);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            nonce: r.u64("pong.nonce")?,
        })
    }
}

/// Why a connection is closed. On the wire a `u16`. Unassigned values decode
/// as [`Other`](Self::Other), so a newer peer's reason is never an error;
/// equality compares the numbers, so `Other(0) == Normal`.
#[derive(Debug, Clone, Copy, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// 0: done, nothing wrong.
    Normal,
    /// 1: the sender is shutting down or leaving the folder.
    GoingAway,
    /// 2: the receiver broke the protocol (a malformed frame, a message out
    /// of order).
    ProtocolViolation,
    /// 3: no protocol version in common.
    UnsupportedVersion,
    /// 4: the receiver sent a file record that failed verification.
    BadRecord,
    /// 5: another connection to the same peer for this folder is kept.
    Duplicate,
    /// 6: the receiver was silent for too long.
    Timeout,
    /// 7: the sender failed on its own side.
    Internal,
    /// A value this version does not assign.
    Other(u16),
}

impl CloseCode {
    /// The number on the wire.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 0,
            Self::GoingAway => 1,
            Self::ProtocolViolation => 2,
            Self::UnsupportedVersion => 3,
            Self::BadRecord => 4,
            Self::Duplicate => 5,
            Self::Timeout => 6,
            Self::Internal => 7,
            Self::Other(code) => code,
        }
    }

    /// The code of a number; unassigned numbers give [`Other`](Self::Other).
    pub const fn from_u16(code: u16) -> Self {
        match code {
            0 => Self::Normal,
            1 => Self::GoingAway,
            2 => Self::ProtocolViolation,
            3 => Self::UnsupportedVersion,
            4 => Self::BadRecord,
            5 => Self::Duplicate,
            6 => Self::Timeout,
            7 => Self::Internal,
            other => Self::Other(other),
        }
    }
}

impl PartialEq for CloseCode {
    fn eq(&self, other: &Self) -> bool {
        self.to_u16() == other.to_u16()
    }
}

impl std::hash::Hash for CloseCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_u16().hash(state);
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self::from_u16(code)
    }
}

/// The last message on a connection. Layout: `code u16 | message str(256)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Why.
    pub code: CloseCode,
    /// Detail for logs; may be empty.
    pub message: Text<MAX_CLOSE_MESSAGE_LEN>,
}

impl Close {
    /// A Close with `message` cut to fit.
    pub fn new(code: CloseCode, message: &str) -> Self {
        Self {
            code,
            message: Text::truncated(message),
        }
    }
}

impl Payload for Close {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u16(self.code.to_u16());
        out.put_prefixed(self.message.as_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = CloseCode::from_u16(r.u16("close.code")?);
        let message = r.text("close.message")?;
        Ok(Self { code, message })
    }
}
