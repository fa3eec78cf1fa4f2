//! Everything that can go wrong on a channel, split by whose fault it is.

use std::io;

use keys::{Access, FolderId};

/// Why a channel failed.
///
/// [`ChannelError::Peer`] is the peer's fault (it broke the protocol, or someone between
/// us altered the bytes); [`ChannelError::Io`], [`ChannelError::Random`] and
/// [`ChannelError::Crypto`] are local; the rest are outcomes of the handshake that
/// blame no one in particular (a wrong secret, a misdirected connection, a timeout).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The peer (or someone between us) broke the protocol.
    #[error("peer violated the channel protocol: {0}")]
    Peer(#[from] Violation),
    /// The SRP proofs did not match: the peer does not hold this folder's secret, or
    /// someone tampered with the handshake. Both sides see this error; it never says
    /// which secret either side holds.
    #[error(
        "authentication failed: the peer does not hold this folder's secret, \
         or the handshake was tampered with"
    )]
    AuthFailed,
    /// The version ranges in the two hellos do not overlap.
    #[error(
        "no common protocol version: we speak {}..={}, the peer speaks {}..={}",
        ours.0, ours.1, theirs.0, theirs.1
    )]
    UnsupportedVersion {
        /// Our (min, max) version.
        ours: (u16, u16),
        /// The peer's (min, max) version.
        theirs: (u16, u16),
    },
    /// The peer's hello names another folder than the one we dialed for.
    #[error("the peer is in folder {theirs}, not {ours}")]
    FolderMismatch {
        /// The folder we connected for.
        ours: FolderId,
        /// The folder the peer's hello names.
        theirs: FolderId,
    },
    /// The peer asks for a folder we do not serve.
    #[error("the peer asks for folder {0}, which we do not serve")]
    UnknownFolder(FolderId),
    /// The peer's hello carries our own peer id.
    #[error("connected to self (the peer's hello carries our own peer id)")]
    ConnectedToSelf,
    /// The peer told us it gave up, with this reason.
    #[error("the peer aborted the channel: {0}")]
    PeerAborted(AbortCode),
    /// The stream ended without an authenticated close: cut by the network or by an
    /// attacker, so the data may be incomplete.
    #[error("the stream ended without an authenticated close (truncated)")]
    Truncated,
    /// The handshake did not finish in time.
    #[error("the handshake timed out")]
    Timeout,
    /// The random source failed.
    #[error("the random source failed: {0}")]
    Random(String),
    /// A cryptographic primitive failed where it cannot (a bug, not an attack).
    #[error("internal cryptographic failure in {0}")]
    Crypto(&'static str),
    /// Local misuse: sending after [`crate::Session::close`].
    #[error("the channel is closed for sending")]
    Closed,
    /// The channel failed earlier; it accepts and releases nothing any more.
    #[error("the channel already failed")]
    Failed,
    /// The configuration cannot work.
    #[error("invalid channel configuration: {0}")]
    Config(&'static str),
    /// Reading or writing the underlying stream failed (tokio adapter only).
    #[error("i/o error on the underlying stream: {0}")]
    Io(#[from] io::Error),
}

impl ChannelError {
    /// Whether the peer (or someone between us) is to blame.
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Self::Peer(_))
    }

    /// The `io::ErrorKind` the tokio adapter reports this error as.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::Io(e) => e.kind(),
            Self::Truncated => io::ErrorKind::UnexpectedEof,
            Self::Timeout => io::ErrorKind::TimedOut,
            Self::Closed | Self::Failed => io::ErrorKind::BrokenPipe,
            Self::AuthFailed => io::ErrorKind::PermissionDenied,
            Self::PeerAborted(_) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        }
    }
}

impl From<ChannelError> for io::Error {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Io(e) => e,
            other => io::Error::new(other.io_kind(), other),
        }
    }
}

/// A protocol violation by the peer (or by someone altering bytes on the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The stream does not start with the swarmsync channel magic.
    #[error("the peer does not speak the swarmsync channel protocol (bad magic)")]
    BadMagic,
    /// The hello's extension block is longer than allowed.
    #[error("hello extension block of {len} bytes exceeds {max}")]
    HelloExtensionTooLong {
        /// Announced length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A handshake message type we do not know.
    #[error("unknown handshake message type {0:#04x}")]
    UnknownMessageType(u8),
    /// A known handshake message at the wrong time.
    #[error("unexpected handshake message type {got:#04x} while {state}")]
    UnexpectedMessage {
        /// The message type received.
        got: u8,
        /// What we were waiting for.
        state: &'static str,
    },
    /// A handshake message longer than any valid one.
    #[error("handshake message of {len} bytes exceeds {max}")]
    MessageTooLong {
        /// Announced length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A fixed-size handshake field with the wrong size.
    #[error("{what} has {len} bytes, expected {want}")]
    BadLength {
        /// The field.
        what: &'static str,
        /// Bytes found.
        len: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An SRP public value (A or B) longer than the 3072-bit modulus.
    #[error("SRP public value of {len} bytes is longer than the {max}-byte modulus")]
    SrpPublicTooLong {
        /// Bytes found.
        len: usize,
        /// The modulus length.
        max: usize,
    },
    /// An SRP public value (A or B) of zero.
    #[error("SRP public value is zero")]
    SrpPublicZero,
    /// An SRP public value (A or B) not below the modulus.
    #[error("SRP public value is not below the modulus")]
    SrpPublicOutOfRange,
    /// A record header announces fewer bytes than a tag and a type byte.
    #[error("record of {len} bytes is shorter than the minimum {min}")]
    RecordTooShort {
        /// Announced length.
        len: usize,
        /// Smallest valid.
        min: usize,
    },
    /// A record header announces more bytes than allowed.
    #[error("record of {len} bytes exceeds the maximum {max}")]
    RecordTooLong {
        /// Announced length.
        len: usize,
        /// Largest valid.
        max: usize,
    },
    /// A record failed authentication.
    #[error("record failed authentication (altered, replayed, reordered or dropped)")]
    BadTag,
    /// An authenticated record of a type we do not know.
    #[error("unknown record type {0:#04x}")]
    UnknownRecordType(u8),
    /// The first record was not the access proof.
    #[error("the first record is not the access proof")]
    MissingAccessProof,
    /// A second access proof.
    #[error("access proof after the first record")]
    UnexpectedAccessProof,
    /// An access proof that cannot be parsed.
    #[error("malformed access proof")]
    MalformedAccessProof,
    /// An access proof that we can check and that is false.
    #[error("the peer claims {claimed} access and its proof does not verify")]
    BadAccessProof {
        /// The access level the peer claimed.
        claimed: Access,
    },
    /// A key-update or close record with a malformed payload.
    #[error("malformed {0} record")]
    MalformedControl(&'static str),
    /// A record after the peer's close.
    #[error("data after the peer's authenticated close")]
    DataAfterClose,
    /// The peer sent more records under one key than it may.
    #[error("the peer exceeded the record limit of one key without a key update")]
    KeyExhausted,
}

/// The reason a peer gives when it aborts (in a cleartext alert during the SRP
/// exchange, or in an encrypted close record afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbortCode {
    /// Its SRP check of our proof failed.
    #[error("authentication failed")]
    AuthFailed,
    /// It saw a protocol violation from us.
    #[error("it saw a protocol violation")]
    ProtocolViolation,
    /// It rejected our access proof.
    #[error("it rejected our access proof")]
    AccessRejected,
    /// A code this version does not know.
    #[error("unknown reason {0}")]
    Unknown(u8),
}

impl AbortCode {
    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::AuthFailed => 1,
            Self::ProtocolViolation => 2,
            Self::AccessRejected => 3,
            Self::Unknown(b) => b,
        }
    }

    /// The code for a wire byte (never 0, which is a clean close).
    pub const fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::AuthFailed,
            2 => Self::ProtocolViolation,
            3 => Self::AccessRejected,
            other => Self::Unknown(other),
        }
    }

    /// What we tell the peer when we fail with `e`, if anything.
    pub(crate) fn for_error(e: &ChannelError) -> Option<Self> {
        match e {
            ChannelError::AuthFailed => Some(Self::AuthFailed),
            ChannelError::Peer(
                Violation::BadAccessProof { .. } | Violation::MalformedAccessProof,
            ) => Some(Self::AccessRejected),
            ChannelError::Peer(_) => Some(Self::ProtocolViolation),
            _ => None,
        }
    }
}
