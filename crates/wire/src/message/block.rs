//! Request and Response: moving one block.

use std::ops::Deref;

use bytes::Bytes;

use crate::codec::{Put, Reader};
use crate::error::{DecodeError, LimitError};
use crate::message::Payload;
use crate::{HASH_LEN, MAX_BLOCK_LEN, MAX_PATH_LEN, Text};

/// Where the requester expects the block: a file of the folder and a byte
/// offset in it. A hint only; the responder may look anywhere, and must check
/// the hash whatever it finds. Layout: `path str(4096) | offset u64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockHint {
    /// The file's path in the folder, `/`-separated, as in its record.
    pub path: Text<MAX_PATH_LEN>,
    /// Byte offset of the block in that file.
    pub offset: u64,
}

/// Asks for the block whose BLAKE3 hash is `hash`.
///
/// Layout: `request_id u32 | hash [32] | size u32 | has_hint u8 (0 or 1) |
/// hint (if has_hint = 1)`.
///
/// `size` is the block's length as its record states it. A responder answers
/// a `size` above [`MAX_BLOCK_LEN`], or one that does not match the block it
/// holds, with [`ResponseError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// Chosen by the requester, unique among its outstanding requests on this
    /// connection; echoed by the [`Response`].
    pub request_id: u32,
    /// BLAKE3 of the block's content.
    pub hash: [u8; HASH_LEN],
    /// The block's length in bytes.
    pub size: u32,
    /// Where the block is expected, if the requester knows.
    pub hint: Option<BlockHint>,
}

impl Payload for Request {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.request_id);
        out.extend_from_slice(&self.hash);
        out.put_u32(self.size);
        match &self.hint {
            None => out.put_u8(0),
            Some(hint) => {
                out.put_u8(1);
                out.put_prefixed(hint.path.as_bytes());
                out.put_u64(hint.offset);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u32("request.request_id")?;
        let hash = r.array("request.hash")?;
        let size = r.u32("request.size")?;
        let hint = if r.bool("request.has_hint")? {
            let path = r.text("request.hint.path")?;
            let offset = r.u64("request.hint.offset")?;
            Some(BlockHint { path, offset })
        } else {
            None
        };
        Ok(Self {
            request_id,
            hash,
            size,
            hint,
        })
    }
}

/// The content of one block: at most [`MAX_BLOCK_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Block(Bytes);

impl Block {
    /// A block, if `data` is at most [`MAX_BLOCK_LEN`] bytes.
    pub fn new(data: impl Into<Bytes>) -> Result<Self, LimitError> {
        let data = data.into();
        if data.len() > MAX_BLOCK_LEN {
            return Err(LimitError {
                what: "block",
                len: data.len(),
                max: MAX_BLOCK_LEN,
            });
        }
        Ok(Self(data))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({} bytes)", self.0.len())
    }
}

/// Why a block is not sent. On the wire the status byte of a [`Response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseError {
    /// 1: the responder does not hold a block with this hash.
    NotFound,
    /// 2: the responder is overloaded; ask again later or ask another peer.
    Busy,
    /// 3: the request makes no sense (size too large or not the block's size).
    Invalid,
    /// 4: the responder failed reading its own storage.
    Internal,
}

impl ResponseError {
    /// The status byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::NotFound => 1,
            Self::Busy => 2,
            Self::Invalid => 3,
            Self::Internal => 4,
        }
    }

    /// The error of a status byte other than 0, if assigned.
    pub const fn from_u8(status: u8) -> Option<Self> {
        match status {
            1 => Some(Self::NotFound),
            2 => Some(Self::Busy),
            3 => Some(Self::Invalid),
            4 => Some(Self::Internal),
            _ => None,
        }
    }
}

/// Answers the [`Request`] with the same id, exactly once.
///
/// Layout: `request_id u32 | status u8`, then when status is 0 (success)
/// `data_len u32 | data`; other status values are a [`ResponseError`] and
/// nothing follows. The receiver must check the data against the hash it asked
/// for: a Response proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Response {
    /// The id of the request answered.
    pub request_id: u32,
    /// The block, or why not.
    pub result: Result<Block, ResponseError>,
}

impl Payload for Response {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.request_id);
        match &self.result {
            Ok(block) => {
                out.put_u8(0);
                out.put_prefixed(block.as_bytes());
            }
            Err(e) => out.put_u8(e.to_u8()),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u32("response.request_id")?;
        let result = match r.u8("response.status")? {
            0 => Ok(Block(r.bytes_of_frame("response.data", MAX_BLOCK_LEN)?)),
            status => Err(ResponseError::from_u8(status).ok_or(DecodeError::BadValue {
                field: "response.status",
                reason: "must be 0 (ok) or 1..=4",
            })?),
        };
        Ok(Self { request_id, result })
    }
}
