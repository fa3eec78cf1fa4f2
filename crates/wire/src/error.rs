//! Errors of decoding frames and of building bounded values.

use crate::message::{CloseCode, IndexEntry};

/// Why bytes from a peer are not (yet) a message.
///
/// Only [`Truncated`](Self::Truncated) means "wait for more input". Of the
/// rest, [`UnknownType`](Self::UnknownType) may be skipped (the frame length
/// is known, the stream stays in sync; see [`is_skippable`](Self::is_skippable));
/// every other variant is a protocol violation by the peer, and the connection
/// should be closed with [`close_code`](Self::close_code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a frame: at least `needed` more bytes are needed.
    #[error("frame incomplete: at least {needed} more bytes needed")]
    Truncated {
        /// How many more bytes are needed, at least.
        needed: usize,
    },
    /// A length or a count is larger than its limit. For the frame length this
    /// is found before the frame is read, so nothing is buffered for it.
    #[error("{field} is {len}, at most {max} allowed")]
    TooLong {
        /// The length or count that is too large.
        field: &'static str,
        /// What the peer claimed.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A frame whose length is 0, so it has no type byte.
    #[error("frame of length 0 has no message type")]
    EmptyFrame,
    /// A message type this version does not know. The frame was complete and
    /// `frame_len` bytes (header included) can be skipped.
    #[error("unknown message type {ty:#04x} ({frame_len} bytes)")]
    UnknownType {
        /// The type byte.
        ty: u8,
        /// Bytes of the whole frame, the 4-byte length included.
        frame_len: usize,
    },
    /// A known message whose payload ends inside `field`.
    #[error("message ends inside {field}")]
    UnexpectedEnd {
        /// The field that was cut short.
        field: &'static str,
    },
    /// A known message with bytes left after its last field.
    #[error("{extra} bytes after the end of message type {ty:#04x}")]
    TrailingBytes {
        /// The message type.
        ty: u8,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A string field that is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The string field.
        field: &'static str,
    },
    /// A field whose value is not allowed (an unknown enum value, a flag byte
    /// other than 0 or 1, non-zero padding, sequences out of order...).
    #[error("bad {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// True for an unknown message type, which a receiver skips for forward
    /// compatibility. The frame has been consumed; the stream is in sync.
    pub const fn is_skippable(&self) -> bool {
        matches!(self, Self::UnknownType { .. })
    }

    /// True when more input may turn this into a message.
    pub const fn is_truncated(&self) -> bool {
        matches!(self, Self::Truncated { .. })
    }

    /// The code to close the connection with, or `None` when the error is no
    /// fault ([`Truncated`](Self::Truncated), [`UnknownType`](Self::UnknownType)).
    pub const fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Truncated { .. } | Self::UnknownType { .. } => None,
            _ => Some(CloseCode::ProtocolViolation),
        }
    }
}

/// A value given to a constructor exceeds a protocol limit. Checked when the
/// value is built, so every value of a wire type encodes to a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {len}, at most {max} allowed")]
pub struct LimitError {
    /// What is too long.
    pub what: &'static str,
    /// Its length or count.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// An entry that [`IndexBatch::push`](crate::IndexBatch::push) refused; the
/// entry is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The batch has no room for it: send the batch, then push it to a new one.
    #[error("index batch is full")]
    Full(IndexEntry),
    /// Its sequence is not above the last one in the batch (or is 0).
    #[error("sequence {got} is not above {last}")]
    OutOfOrder {
        /// The refused entry.
        entry: IndexEntry,
        /// The last sequence in the batch (0 when empty).
        last: u64,
        /// The entry's sequence.
        got: u64,
    },
}
