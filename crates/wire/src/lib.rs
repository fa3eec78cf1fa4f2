//! The swarmsync wire protocol: framing and every message two peers exchange
//! on a folder connection. Pure (sans-IO): no sockets, no tasks, no clock.
//!
//! # Brief overview
//!
//! A connection carries one folder. Below this crate, crate `channel`
//! authenticates both peers with the folder's password and turns any carrier
//! (TCP, UDP, relay) into a secure ordered byte stream; this crate cuts that
//! plaintext stream into frames and frames into [`Message`]s:
//!
//! ```text
//! frame = len u32 (big-endian, = 1 + payload length, 1..=16 MiB)
//!         type u8
//!         payload (layout per type, see docs/protocol/wire.md)
//! ```
//!
//! - [`Message::encode`] appends one frame to a `Vec<u8>`; it cannot fail,
//!   because every limit is enforced when a value is built ([`Text`],
//!   [`Block`], [`SignedRecord`], [`IndexBatch`], [`Bitfield`],
//!   [`PeerExchange`]).
//! - [`decode`] reads one frame from a slice: `(Message, consumed)` or a
//!   [`DecodeError`]; [`DecodeError::Truncated`] means "need more bytes".
//! - [`FrameDecoder`] is the streaming form: [`FrameDecoder::handle_input`]
//!   takes chunks of any size, [`FrameDecoder::poll_message`] yields messages.
//!   It buffers at most one largest frame.
//!
//! Unknown message types are skipped for forward compatibility; a malformed
//! message of a known type is a protocol violation
//! ([`DecodeError::close_code`]).
//!
//! ```
//! use wire::{FrameDecoder, Hello, Message, Text};
//!
//! let hello = Hello::new(
//!     keys::PeerId([7; 32]),
//!     Text::truncated("swarmsync/0.1.0"),
//!     Text::new("laptop").unwrap(),
//! );
//! let mut bytes = Vec::new();
//! Message::Hello(hello.clone()).encode(&mut bytes);
//!
//! let mut decoder = FrameDecoder::new();
//! assert_eq!(decoder.handle_input(&bytes), bytes.len());
//! assert_eq!(decoder.poll_message(), Some(Ok(Message::Hello(hello))));
//! assert_eq!(decoder.poll_message(), None);
//! ```
//!
//! # Why hand-written binary
//!
//! No schema compiler in the build, exact control of every limit before any
//! allocation, one canonical encoding per value, and a layout short enough
//! that a second implementation needs only `docs/protocol/wire.md`.
#![forbid(unsafe_code)]

mod bitfield;
mod codec;
mod error;
mod frame;
mod message;
mod text;
mod version;

#[cfg(test)]
mod tests;

pub use bitfield::Bitfield;
pub use error::{DecodeError, LimitError, PushError};
pub use frame::{FrameDecoder, ZERO_COPY_MIN_LEN, decode};
pub use message::{
    Availability, Block, BlockHint, BlockSums, Capabilities, ChunkSum, Close, CloseCode,
    DeltaError, DeltaOp, DeltaRequest, DeltaResponse, FolderState, Hello, IndexBatch, IndexDelta,
    IndexEntry, MIN_CHUNK_LEN, Message, MessageType, PeerExchange, Pieces, Ping, Pong, Record,
    RecordRequest, Request, Response, ResponseError, STRONG_LEN, SignedRecord, WIRE_ADDR_V4_LEN,
    WIRE_ADDR_V6_LEN, weak_sum,
};
pub use text::Text;
pub use version::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, VersionError, negotiate};

const MIB: usize = 1024 * 1024;

/// Bytes of the frame header: the `u32` length.
pub const FRAME_HEADER_LEN: usize = 4;
/// The largest frame length (type byte plus payload), a hard limit checked
/// before the frame is buffered.
pub const MAX_FRAME_LEN: usize = 16 * MIB;
/// The largest file record body.
pub const MAX_RECORD_LEN: usize = 8 * MIB;
/// The largest block.
pub const MAX_BLOCK_LEN: usize = 8 * MIB;
/// Bytes of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;
/// The longest path, in bytes of UTF-8.
pub const MAX_PATH_LEN: usize = 4096;
/// The longest software version string in a Hello, in bytes.
pub const MAX_SOFTWARE_LEN: usize = 64;
/// The longest device name in a Hello, in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// The longest Close message, in bytes.
pub const MAX_CLOSE_MESSAGE_LEN: usize = 256;
/// The most addresses in each list of a PeerExchange.
pub const MAX_PEX_ADDRS: usize = 50;
/// The most entries in one Index or IndexUpdate.
pub const MAX_INDEX_ENTRIES: usize = 65_536;
/// The most bits in one Availability (a bitmap of 128 KiB).
pub const MAX_AVAILABILITY_BITS: usize = 1 << 20;

// A Response with the largest block, and an Index with the largest record,
// each fit in one frame.
const _: () = assert!(1 + 4 + 1 + 4 + MAX_BLOCK_LEN <= MAX_FRAME_LEN);
const _: () = assert!(1 + 8 + 4 + IndexEntry::MIN_WIRE_LEN + MAX_RECORD_LEN <= MAX_FRAME_LEN);
