//! Why bytes are not a relay message.

/// Why bytes are not a relay preamble or message. Every input either parses
/// or gives one of these; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The input ended inside a field.
    #[error("truncated in {field}: {needed} more bytes needed")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// The connection does not start with `"SWRL"`: not a relay peer.
    #[error("bad magic {0:02x?}, expected \"SWRL\" (not a swarmsync relay connection)")]
    BadMagic([u8; 4]),
    /// The other side speaks another protocol version.
    #[error("relay protocol version {0}, this side speaks 1")]
    UnsupportedVersion(u8),
    /// A message type this version does not have (in this direction).
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// A body length the message type does not allow.
    #[error("message type {kind:#04x} with a {len}-byte body")]
    BadLength {
        /// The message type.
        kind: u8,
        /// The length the header claims.
        len: usize,
    },
}
