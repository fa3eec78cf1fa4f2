//! Errors of decoding and validating records.

use keys::ShortId;

use crate::PathError;

/// Why bytes from a peer (or the index) are not a valid record.
///
/// Every variant is the sender's fault: the engine rejects the record, logs this and
/// carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The signature does not verify with the folder key.
    #[error("record signature does not verify with the folder key")]
    BadSignature,
    /// The body ends inside `field`.
    #[error("record is truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The body, or a length inside it, is over its limit.
    #[error("{field} is {len}, at most {max} allowed")]
    TooLong {
        /// What is too long.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The leading format byte names a format this build does not know.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// Bytes after the end of the record.
    #[error("{extra} bytes after the end of the record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field holds a value that is not allowed.
    #[error("bad {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path is unsafe or malformed.
    #[error("bad path: {0}")]
    Path(#[from] PathError),
    /// A version vector entry is a duplicate, out of order or zero.
    #[error("version vector entry for peer {0} is duplicated, out of order or zero")]
    VersionVector(ShortId),
    /// The block sizes do not add up to the file size.
    #[error("blocks add up to {blocks} bytes but the file size is {size}")]
    BlockSizes {
        /// Sum of the block sizes.
        blocks: u64,
        /// The record's size.
        size: u64,
    },
}
