//! The messages and their payload layouts.
//!
//! Each message type is a struct with a `put` (encode the payload) and a `read`
//! (decode the payload from a [`Reader`]) behind the crate-private [`Payload`]
//! trait; [`Message`] ties them to their type byte. Framing is in
//! [`crate::frame`].

mod availability;
mod block;
mod block_delta;
mod delta;
mod index;
mod pex;
mod session;

pub use availability::Availability;
pub use block::{Block, BlockHint, Request, Response, ResponseError};
pub use block_delta::{
    BlockSums, ChunkSum, DeltaRequest, DeltaResponse, MIN_CHUNK_LEN, STRONG_LEN, weak_sum,
};
pub use delta::{DeltaError, DeltaOp, IndexDelta, Pieces, Record, RecordRequest};
pub use index::{IndexBatch, IndexEntry, SignedRecord};
pub use pex::{PeerExchange, WIRE_ADDR_V4_LEN, WIRE_ADDR_V6_LEN};
pub use session::{Capabilities, Close, CloseCode, FolderState, Hello, Ping, Pong};

use crate::codec::Reader;
use crate::error::DecodeError;

/// The type byte of each message. Values not listed are unknown: a receiver
/// skips them (see [`DecodeError::UnknownType`]). `0x00` is never assigned;
/// `0x80..=0xff` are kept for experiments and will never be assigned either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageType {
    /// [`Hello`]
    Hello = 0x01,
    /// [`FolderState`]
    FolderState = 0x02,
    /// [`Message::Index`]
    Index = 0x03,
    /// [`Message::IndexUpdate`]
    IndexUpdate = 0x04,
    /// [`Request`]
    Request = 0x05,
    /// [`Response`]
    Response = 0x06,
    /// [`Availability`]
    Availability = 0x07,
    /// [`PeerExchange`]
    PeerExchange = 0x08,
    /// [`Ping`]
    Ping = 0x09,
    /// [`Pong`]
    Pong = 0x0a,
    /// [`Close`]
    Close = 0x0b,
    /// [`IndexDelta`]
    IndexDelta = 0x0c,
    /// [`RecordRequest`]
    RecordRequest = 0x0d,
    /// [`Record`]
    Record = 0x0e,
    /// [`DeltaRequest`]
    DeltaRequest = 0x0f,
    /// [`DeltaResponse`]
    DeltaResponse = 0x10,
}

impl MessageType {
    /// Every type, in type-byte order.
    pub const ALL: [Self; 16] = [
        Self::Hello,
        Self::FolderState,
        Self::Index,
        Self::IndexUpdate,
        Self::Request,
        Self::Response,
        Self::Availability,
        Self::PeerExchange,
        Self::Ping,
        Self::Pong,
        Self::Close,
        Self::IndexDelta,
        Self::RecordRequest,
        Self::Record,
        Self::DeltaRequest,
        Self::DeltaResponse,
    ];

    /// The type byte.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The type of a type byte, if this version knows it.
    pub const fn from_u8(ty: u8) -> Option<Self> {
        Some(match ty {
            0x01 => Self::Hello,
            0x02 => Self::FolderState,
            0x03 => Self::Index,
            0x04 => Self::IndexUpdate,
            0x05 => Self::Request,
            0x06 => Self::Response,
            0x07 => Self::Availability,
            0x08 => Self::PeerExchange,
            0x09 => Self::Ping,
            0x0a => Self::Pong,
            0x0b => Self::Close,
            0x0c => Self::IndexDelta,
            0x0d => Self::RecordRequest,
            0x0e => Self::Record,
            0x0f => Self::DeltaRequest,
            0x10 => Self::DeltaResponse,
            _ => return None,
        })
    }
}

/// One protocol message: everything a peer can say on a folder connection.
///
/// Every value encodes to a valid frame: the limits are enforced by the field
/// types ([`Text`](crate::Text), [`Block`], [`SignedRecord`], [`IndexBatch`],
/// [`Bitfield`](crate::Bitfield), [`PeerExchange`]), so
/// [`encode`](Self::encode) cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// The first message in each direction: who we are, what we speak.
    Hello(Hello),
    /// Our index of the folder: its id, its last sequence, our access.
    FolderState(FolderState),
    /// The first batch of a full index: the receiver forgets what it holds of
    /// the sender's index and starts over from these records.
    Index(IndexBatch),
    /// More records of the sender's index, added to what the receiver holds.
    IndexUpdate(IndexBatch),
    /// Asks for one block.
    Request(Request),
    /// Answers one [`Request`].
    Response(Response),
    /// Which blocks of one file version the sender holds.
    Availability(Availability),
    /// Addresses of other peers of this folder.
    PeerExchange(PeerExchange),
    /// Asks for a [`Pong`] with the same nonce.
    Ping(Ping),
    /// Answers a [`Ping`].
    Pong(Pong),
    /// The last message: why the sender closes the connection.
    Close(Close),
    /// A record of the sender's index sent as the difference from an older
    /// record of the same path (only to a peer whose Hello set
    /// [`Capabilities::RECORD_DELTA`]).
    IndexDelta(IndexDelta),
    /// Asks for a whole record, after an [`IndexDelta`] whose base the asker
    /// does not hold.
    RecordRequest(RecordRequest),
    /// Answers a [`RecordRequest`].
    Record(Record),
    /// Asks for one block, offering checksums of an old block to send it as
    /// the difference from (only to a peer whose Hello set
    /// [`Capabilities::BLOCK_DELTA`]).
    DeltaRequest(DeltaRequest),
    /// Answers a [`DeltaRequest`] with the block as a difference.
    DeltaResponse(DeltaResponse),
}

impl Message {
    /// The message's type.
    pub const fn message_type(&self) -> MessageType {
        match self {
            Self::Hello(_) => MessageType::Hello,
            Self::FolderState(_) => MessageType::FolderState,
            Self::Index(_) => MessageType::Index,
            Self::IndexUpdate(_) => MessageType::IndexUpdate,
            Self::Request(_) => MessageType::Request,
            Self::Response(_) => MessageType::Response,
            Self::Availability(_) => MessageType::Availability,
            Self::PeerExchange(_) => MessageType::PeerExchange,
            Self::Ping(_) => MessageType::Ping,
            Self::Pong(_) => MessageType::Pong,
            Self::Close(_) => MessageType::Close,
            Self::IndexDelta(_) => MessageType::IndexDelta,
            Self::RecordRequest(_) => MessageType::RecordRequest,
            Self::Record(_) => MessageType::Record,
            Self::DeltaRequest(_) => MessageType::DeltaRequest,
            Self::DeltaResponse(_) => MessageType::DeltaResponse,
        }
    }

    /// Appends the payload (no frame header).
    pub(crate) fn put_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello(m) => m.put(out),
            Self::FolderState(m) => m.put(out),
            Self::Index(m) | Self::IndexUpdate(m) => m.put(out),
            Self::Request(m) => m.put(out),
            Self::Response(m) => m.put(out),
            Self::Availability(m) => m.put(out),
            Self::PeerExchange(m) => m.put(out),
            Self::Ping(m) => m.put(out),
            Self::Pong(m) => m.put(out),
            Self::Close(m) => m.put(out),
            Self::IndexDelta(m) => m.put(out),
            Self::RecordRequest(m) => m.put(out),
            Self::Record(m) => m.put(out),
            Self::DeltaRequest(m) => m.put(out),
            Self::DeltaResponse(m) => m.put(out),
        }
    }

    /// Decodes the payload of a known type; `r` covers exactly the payload.
    pub(crate) fn read_payload(ty: MessageType, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match ty {
            MessageType::Hello => Self::Hello(Hello::read(r)?),
            MessageType::FolderState => Self::FolderState(FolderState::read(r)?),
            MessageType::Index => Self::Index(IndexBatch::read(r)?),
            MessageType::IndexUpdate => Self::IndexUpdate(IndexBatch::read(r)?),
            MessageType::Request => Self::Request(Request::read(r)?),
            MessageType::Response => Self::Response(Response::read(r)?),
            MessageType::Availability => Self::Availability(Availability::read(r)?),
            MessageType::PeerExchange => Self::PeerExchange(PeerExchange::read(r)?),
            MessageType::Ping => Self::Ping(Ping::read(r)?),
            MessageType::Pong => Self::Pong(Pong::read(r)?),
            MessageType::Close => Self::Close(Close::read(r)?),
            MessageType::IndexDelta => Self::IndexDelta(IndexDelta::read(r)?),
            MessageType::RecordRequest => Self::RecordRequest(RecordRequest::read(r)?),
            MessageType::Record => Self::Record(Record::read(r)?),
            MessageType::DeltaRequest => Self::DeltaRequest(DeltaRequest::read(r)?),
            MessageType::DeltaResponse => Self::DeltaResponse(DeltaResponse::read(r)?),
        })
    }
}

macro_rules! impl_from {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Message {
            fn from(m: $variant) -> Self {
                Self::$variant(m)
            }
        }
    )*};
}
impl_from!(
    Hello,
    FolderState,
    Request,
    Response,
    Availability,
    PeerExchange,
    Ping,
    Pong,
    Close,
    IndexDelta,
    RecordRequest,
    Record,
    DeltaRequest,
    DeltaResponse
);

/// A message payload: how it is written and read.
pub(crate) trait Payload: Sized {
    /// Appends the payload.
    fn put(&self, out: &mut Vec<u8>);
    /// Reads the payload. The caller then checks that nothing is left, so a
    /// reader that accepts an extension area must consume it.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}
