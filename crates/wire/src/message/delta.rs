//! IndexDelta, RecordRequest and Record: sending a changed record as the
//! difference from the version the receiver most likely holds.
//!
//! A large file's record is mostly its block list (36 bytes a block), and an
//! edit changes a few blocks of it; sending the whole list again for every edit
//! is most of the bytes of a small change to a big file. So a sender may send a
//! record as pieces copied from an older record body (the *base*) and literal
//! bytes. The receiver rebuilds the body and checks the signature over it as
//! for any record: a delta cannot make a record that the folder key did not sign.
//! A receiver that does not hold the base asks for the whole record.

use bytes::Bytes;
use keys::{SIGNATURE_LEN, Signature};

use crate::codec::{Put, Reader};
use crate::error::{DecodeError, LimitError};
use crate::message::Payload;
use crate::message::index::SignedRecord;
use crate::{HASH_LEN, MAX_PATH_LEN, MAX_RECORD_LEN, Text};

/// One piece of a rebuilt record body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeltaOp {
    /// `len` bytes of the base body from `offset`.
    ///
    /// Layout: `0 u8 | offset u32 | len u32`, `len` ≥ 1.
    Copy {
        /// Where in the base body.
        offset: u32,
        /// How many bytes, at least 1.
        len: u32,
    },
    /// These bytes, at least one.
    ///
    /// Layout: `1 u8 | bytes(8 MiB)`, not empty.
    Literal(Bytes),
}

impl DeltaOp {
    /// Bytes this piece adds to the rebuilt body.
    pub fn output_len(&self) -> u64 {
        match self {
            Self::Copy { len, .. } => u64::from(*len),
            Self::Literal(bytes) => bytes.len() as u64,
        }
    }

    /// Bytes it takes on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Copy { .. } => 9,
            Self::Literal(bytes) => 5 + bytes.len(),
        }
    }
}

/// A byte string described as pieces of a base and literal bytes: the body
/// of an [`IndexDelta`] and the block of a
/// [`DeltaResponse`](crate::DeltaResponse).
///
/// Layout: `len u32 | op_count u32 | op × op_count`. Every piece is at least
/// one byte and the pieces add up to exactly `len` (else malformed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pieces {
    ops: Vec<DeltaOp>,
    len: u32,
}

impl Pieces {
    /// Pieces, if none is empty and they add up to at most `max` bytes.
    pub fn new(ops: Vec<DeltaOp>, max: usize) -> Option<Self> {
        let len = checked_len(&ops, max)?;
        Some(Self { ops, len })
    }

    /// The pieces, in order.
    pub fn ops(&self) -> &[DeltaOp] {
        &self.ops
    }

    /// The length of what they make.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when they make nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        8 + self.ops.iter().map(DeltaOp::wire_len).sum::<usize>()
    }

    /// What the pieces make of `base`. The caller checks the result (a
    /// signature, a hash).
    pub fn apply(&self, base: &[u8]) -> Result<Vec<u8>, DeltaError> {
        let mut out = Vec::with_capacity(self.len());
        for op in &self.ops {
            match op {
                DeltaOp::Copy { offset, len } => {
                    let start = *offset as usize;
                    let piece = start
                        .checked_add(*len as usize)
                        .and_then(|end| base.get(start..end))
                        .ok_or(DeltaError::OutOfBase {
                            offset: *offset,
                            len: *len,
                            base_len: base.len(),
                        })?;
                    out.extend_from_slice(piece);
                }
                DeltaOp::Literal(bytes) => out.extend_from_slice(bytes),
            }
        }
        Ok(out)
    }

    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.len);
        out.put_u32(self.ops.len() as u32);
        for op in &self.ops {
            match op {
                DeltaOp::Copy { offset, len } => {
                    out.put_u8(0);
                    out.put_u32(*offset);
                    out.put_u32(*len);
                }
                DeltaOp::Literal(bytes) => {
                    out.put_u8(1);
                    out.put_prefixed(bytes);
                }
            }
        }
    }

    /// Reads pieces that make at most `max` bytes.
    pub(crate) fn read(r: &mut Reader<'_>, max: usize) -> Result<Self, DecodeError> {
        let len = r.u32("pieces.len")?;
        if len as usize > max {
            return Err(DecodeError::TooLong {
                field: "pieces.len",
                len: u64::from(len),
                max: max as u64,
            });
        }
        // Each piece takes at least 5 bytes (a literal of one byte: 6).
        let count = r.count("pieces.op_count", max, 5)?;
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            let op = match r.u8("pieces.op")? {
                0 => DeltaOp::Copy {
                    offset: r.u32("pieces.copy.offset")?,
                    len: r.u32("pieces.copy.len")?,
                },
                1 => DeltaOp::Literal(r.bytes("pieces.literal", max)?),
                _ => {
                    return Err(DecodeError::BadValue {
                        field: "pieces.op",
                        reason: "a piece is 0 (copy) or 1 (literal)",
                    });
                }
            };
            ops.push(op);
        }
        if checked_len(&ops, max) != Some(len) {
            return Err(DecodeError::BadValue {
                field: "pieces.len",
                reason: "the pieces must be non-empty and add up to len",
            });
        }
        Ok(Self { ops, len })
    }
}

/// The total length of `ops`, if every piece is non-empty and the total is at
/// most `max`.
fn checked_len(ops: &[DeltaOp], max: usize) -> Option<u32> {
    let mut total: u64 = 0;
    for op in ops {
        let len = op.output_len();
        if len == 0 {
            return None;
        }
        total += len;
        if total > max as u64 {
            return None;
        }
    }
    u32::try_from(total).ok()
}

/// Why a delta could not be applied to a base.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// A copy reaches past the end of the base.
    #[error("a copy of {len} bytes at {offset} reaches past the base's {base_len} bytes")]
    OutOfBase {
        /// The copy.
        offset: u32,
        /// Its length.
        len: u32,
        /// The base's length.
        base_len: usize,
    },
}

/// A record sent as the difference from an older body of the same path.
///
/// Layout: `index_id u64 | sequence u64 | path str(4096) | base_hash [32] |
/// new_hash [32] | body_len u32 | op_count u32 | op × op_count |
/// signature [64]`. The pieces add up to exactly `body_len` ≤
/// [`MAX_RECORD_LEN`] bytes (else the message is malformed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexDelta {
    /// As in [`IndexBatch::index_id`](crate::IndexBatch::index_id).
    pub index_id: u64,
    /// The record's sequence in the sender's index, as in an
    /// [`IndexEntry`](crate::IndexEntry).
    pub sequence: u64,
    /// The path the record is for (the receiver looks its base up by it; the
    /// rebuilt body must be a record of this path).
    pub path: Text<MAX_PATH_LEN>,
    /// BLAKE3 of the base body the pieces copy from.
    pub base_hash: [u8; HASH_LEN],
    /// BLAKE3 of the rebuilt body: a receiver that already holds this body
    /// (the record came back from a peer it was sent to) has nothing to do.
    pub new_hash: [u8; HASH_LEN],
    /// The body, as pieces of the base.
    pieces: Pieces,
    /// The folder key's signature over the rebuilt body.
    pub signature: Signature,
}

/// Bytes of an IndexDelta's payload besides its path and pieces.
const DELTA_FIXED_LEN: usize = 8 + 8 + 4 + 2 * HASH_LEN + SIGNATURE_LEN;

impl IndexDelta {
    /// A delta, if its pieces add up to at most [`MAX_RECORD_LEN`] bytes, none
    /// is empty, and it fits one frame.
    pub fn new(
        index_id: u64,
        sequence: u64,
        path: Text<MAX_PATH_LEN>,
        base_hash: [u8; HASH_LEN],
        new_hash: [u8; HASH_LEN],
        ops: Vec<DeltaOp>,
        signature: Signature,
    ) -> Result<Self, LimitError> {
        let pieces = Pieces::new(ops, MAX_RECORD_LEN).ok_or(LimitError {
            what: "rebuilt record body",
            len: usize::MAX,
            max: MAX_RECORD_LEN,
        })?;
        let delta = Self {
            index_id,
            sequence,
            path,
            base_hash,
            new_hash,
            pieces,
            signature,
        };
        let max = crate::MAX_FRAME_LEN - 1;
        if delta.payload_len() > max {
            return Err(LimitError {
                what: "IndexDelta payload",
                len: delta.payload_len(),
                max,
            });
        }
        Ok(delta)
    }

    /// The pieces.
    pub fn ops(&self) -> &[DeltaOp] {
        self.pieces.ops()
    }

    /// The length of the rebuilt body.
    pub fn body_len(&self) -> usize {
        self.pieces.len()
    }

    /// Bytes of payload on the wire.
    pub fn payload_len(&self) -> usize {
        DELTA_FIXED_LEN + 4 + self.path.len() + self.pieces.wire_len()
    }

    /// Rebuilds the body from `base`. The caller checks that `base` is the
    /// base ([`base_hash`](Self::base_hash)) and the signature over the result.
    pub fn apply(&self, base: &[u8]) -> Result<Vec<u8>, DeltaError> {
        self.pieces.apply(base)
    }
}

impl Payload for IndexDelta {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.index_id);
        out.put_u64(self.sequence);
        out.put_prefixed(self.path.as_bytes());
        out.extend_from_slice(&self.base_hash);
        out.extend_from_slice(&self.new_hash);
        self.pieces.put(out);
        out.extend_from_slice(self.signature.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index_id = r.u64("delta.index_id")?;
        let sequence = r.u64("delta.sequence")?;
        let path = r.text("delta.path")?;
        let base_hash = r.array("delta.base_hash")?;
        let new_hash = r.array("delta.new_hash")?;
        let pieces = Pieces::read(r, MAX_RECORD_LEN)?;
        let signature = Signature(r.array::<SIGNATURE_LEN>("delta.signature")?);
        Ok(Self {
            index_id,
            sequence,
            path,
            base_hash,
            new_hash,
            pieces,
            signature,
        })
    }
}

/// Asks for the whole record at `sequence` of the receiver's index, after an
/// [`IndexDelta`] whose base the asker did not hold.
///
/// Layout: `index_id u64 | sequence u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordRequest {
    /// The index asked about (the receiver's, as in its FolderState).
    pub index_id: u64,
    /// The sequence of the record wanted.
    pub sequence: u64,
}

impl Payload for RecordRequest {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.index_id);
        out.put_u64(self.sequence);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            index_id: r.u64("record_request.index_id")?,
            sequence: r.u64("record_request.sequence")?,
        })
    }
}

/// Answers a [`RecordRequest`]: the whole record, or `None` when the index
/// no longer holds that sequence (the path changed since, and its newer record
/// comes, or came, with a higher sequence).
///
/// Layout: `index_id u64 | sequence u64 | found u8 (0 or 1) | record (if
/// found = 1)`, the record laid out as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// As asked.
    pub index_id: u64,
    /// As asked.
    pub sequence: u64,
    /// The record, if the sequence is still held.
    pub record: Option<SignedRecord>,
}

impl Payload for Record {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.index_id);
        out.put_u64(self.sequence);
        match &self.record {
            None => out.put_u8(0),
            Some(record) => {
                out.put_u8(1);
                record.put(out);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index_id = r.u64("record.index_id")?;
        let sequence = r.u64("record.sequence")?;
        let record = if r.bool("record.found")? {
            Some(SignedRecord::read(r)?)
        } else {
            None
        };
        Ok(Self {
            index_id,
            sequence,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn delta(ops: Vec<DeltaOp>) -> Result<IndexDelta, LimitError> {
        IndexDelta::new(
            7,
            42,
            Text::new("dir/file.bin").unwrap(),
            [1; 32],
            [2; 32],
            ops,
            Signature([3; 64]),
        )
    }

    #[test]
    fn a_delta_rebuilds_the_body_from_its_base() {
        let base = b"0123456789";
        let d = delta(vec![
            DeltaOp::Copy { offset: 0, len: 3 },
            DeltaOp::Literal(Bytes::from_static(b"abc")),
            DeltaOp::Copy { offset: 7, len: 3 },
        ])
        .unwrap();
        assert_eq!(d.body_len(), 9);
        assert_eq!(d.apply(base).unwrap(), b"012abc789");
    }

    #[test]
    fn a_copy_past_the_base_is_refused() {
        let d = delta(vec![DeltaOp::Copy {
            offset: u32::MAX,
            len: 2,
        }])
        .unwrap();
        assert!(matches!(
            d.apply(b"short"),
            Err(DeltaError::OutOfBase { base_len: 5, .. })
        ));
    }

    #[test]
    fn empty_pieces_and_oversized_bodies_are_refused() {
        assert!(delta(vec![DeltaOp::Literal(Bytes::new())]).is_err());
        assert!(delta(vec![DeltaOp::Copy { offset: 0, len: 0 }]).is_err());
        let half = (MAX_RECORD_LEN / 2 + 1) as u32;
        let ops = vec![
            DeltaOp::Copy {
                offset: 0,
                len: half
            };
            2
        ];
        assert!(delta(ops).is_err());
    }

    #[test]
    fn the_three_messages_round_trip() {
        let messages = [
            Message::IndexDelta(
                delta(vec![
                    DeltaOp::Literal(Bytes::from_static(b"head")),
                    DeltaOp::Copy {
                        offset: 100,
                        len: 3600,
                    },
                ])
                .unwrap(),
            ),
            Message::RecordRequest(RecordRequest {
                index_id: 1,
                sequence: 2,
            }),
            Message::Record(Record {
                index_id: 1,
                sequence: 2,
                record: None,
            }),
            Message::Record(Record {
                index_id: 1,
                sequence: 2,
                record: Some(SignedRecord::new(vec![9u8; 40], Signature([4; 64])).unwrap()),
            }),
        ];
        for message in messages {
            let bytes = message.to_vec();
            assert_eq!(crate::decode(&bytes), Ok((message, bytes.len())));
        }
    }

    #[test]
    fn a_body_len_that_does_not_match_the_pieces_is_malformed() {
        let good = Message::IndexDelta(
            delta(vec![DeltaOp::Literal(Bytes::from_static(b"abcd"))]).unwrap(),
        )
        .to_vec();
        // body_len sits after the frame header (5), index_id, sequence, path
        // (4 + 12) and the two hashes.
        let at = 5 + 8 + 8 + 4 + 12 + 64;
        let mut bad = good.clone();
        bad[at + 3] = 5;
        assert!(matches!(
            crate::decode(&bad),
            Err(DecodeError::BadValue {
                field: "pieces.len",
                ..
            })
        ));
    }
}
