//! Index and IndexUpdate: batches of signed file records.

use bytes::Bytes;
use keys::{SIGNATURE_LEN, Signature};

use crate::codec::{Put, Reader};
use crate::error::{DecodeError, LimitError, PushError};
use crate::message::Payload;
use crate::{MAX_FRAME_LEN, MAX_INDEX_ENTRIES, MAX_RECORD_LEN};

/// A file record exactly as its signer produced it: the body bytes and the
/// folder key's Ed25519 signature over them. Opaque here: crate `record`
/// defines, signs and verifies the body; read-only peers forward it unchanged.
///
/// Layout: `body_len u32 | body | signature [64]`; the body is at most
/// [`MAX_RECORD_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedRecord {
    body: Bytes,
    signature: Signature,
}

impl SignedRecord {
    /// Size on the wire of a record with an empty body.
    pub const MIN_WIRE_LEN: usize = 4 + SIGNATURE_LEN;

    /// A record, if `body` is at most [`MAX_RECORD_LEN`] bytes.
    pub fn new(body: impl Into<Bytes>, signature: Signature) -> Result<Self, LimitError> {
        let body = body.into();
        if body.len() > MAX_RECORD_LEN {
            return Err(LimitError {
                what: "record body",
                len: body.len(),
                max: MAX_RECORD_LEN,
            });
        }
        Ok(Self { body, signature })
    }

    /// The signed bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The signature over [`body`](Self::body).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The body and the signature.
    pub fn into_parts(self) -> (Bytes, Signature) {
        (self.body, self.signature)
    }

    /// Bytes this record takes on the wire.
    pub fn wire_len(&self) -> usize {
        Self::MIN_WIRE_LEN + self.body.len()
    }

    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        out.put_prefixed(&self.body);
        out.extend_from_slice(self.signature.as_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let body = r.bytes("record.body", MAX_RECORD_LEN)?;
        let signature = Signature(r.array::<SIGNATURE_LEN>("record.signature")?);
        Ok(Self { body, signature })
    }
}

/// One record of the sender's index with its sequence number.
///
/// Layout: `sequence u64 | record`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// Where this record sits in the sender's index: the sender's counter,
    /// raised by one for each change it stores. At least 1.
    pub sequence: u64,
    /// The record.
    pub record: SignedRecord,
}

impl IndexEntry {
    /// Size on the wire of an entry with an empty record body.
    pub const MIN_WIRE_LEN: usize = 8 + SignedRecord::MIN_WIRE_LEN;

    /// Bytes this entry takes on the wire.
    pub fn wire_len(&self) -> usize {
        8 + self.record.wire_len()
    }
}

/// The payload of both [`Index`](crate::Message::Index) and
/// [`IndexUpdate`](crate::Message::IndexUpdate): up to
/// [`MAX_INDEX_ENTRIES`] entries of one index, sequences strictly rising,
/// in one frame of at most [`MAX_FRAME_LEN`].
///
/// Layout: `index_id u64 | count u32 | entry × count`.
///
/// Build it with [`push`](Self::push) until it reports
/// [`PushError::Full`], send it, and push the refused entry to a new batch.
/// [`with_limit`](Self::with_limit) makes batches smaller than a frame, so
/// that a Pong or a Response is not held up behind 16 MiB of index.
///
/// ```
/// use wire::{IndexBatch, IndexEntry, PushError, SignedRecord};
/// let record = SignedRecord::new(vec![0u8; 100], keys::Signature([0; 64])).unwrap();
/// let mut batches = vec![IndexBatch::with_limit(7, 1000)];
/// for sequence in 1..=20 {
///     let entry = IndexEntry { sequence, record: record.clone() };
///     if let Err(PushError::Full(entry)) = batches.last_mut().unwrap().push(entry) {
///         let mut next = IndexBatch::with_limit(7, 1000);
///         next.push(entry).unwrap();
///         batches.push(next);
///     }
/// }
/// assert_eq!(batches.len(), 4); // 176 bytes an entry, 5 to a 1000-byte batch
/// ```
#[derive(Debug, Clone)]
pub struct IndexBatch {
    index_id: u64,
    entries: Vec<IndexEntry>,
    /// Bytes of payload so far.
    payload_len: usize,
    /// Most bytes of payload this batch takes.
    limit: usize,
}

/// Payload bytes before the entries.
const HEADER_LEN: usize = 8 + 4;
/// The most payload one frame holds (the frame length covers the type byte).
const MAX_PAYLOAD_LEN: usize = MAX_FRAME_LEN - 1;

impl IndexBatch {
    /// An empty batch of index `index_id` that fills up to one full frame.
    pub fn new(index_id: u64) -> Self {
        Self::with_limit(index_id, MAX_FRAME_LEN)
    }

    /// An empty batch that is full at `max_frame_len` bytes of frame (clamped
    /// to [`MAX_FRAME_LEN`]). One entry is always accepted into an empty
    /// batch, however large, so each record can be sent.
    pub fn with_limit(index_id: u64, max_frame_len: usize) -> Self {
        Self {
            index_id,
            entries: Vec::new(),
            payload_len: HEADER_LEN,
            limit: max_frame_len.min(MAX_FRAME_LEN).saturating_sub(1),
        }
    }

    /// Cuts `entries` (sequences strictly rising) into batches of at most
    /// `max_frame_len` bytes of frame each (see [`with_limit`](Self::with_limit)).
    /// The first goes out as [`Index`](crate::Message::Index) for a full
    /// index, the rest as [`IndexUpdate`](crate::Message::IndexUpdate).
    ///
    /// ```
    /// use wire::{IndexBatch, IndexEntry, SignedRecord};
    /// let record = SignedRecord::new(vec![0u8; 100], keys::Signature([0; 64])).unwrap();
    /// let entries = (1..=20).map(|sequence| IndexEntry { sequence, record: record.clone() });
    /// let batches = IndexBatch::split(7, 1000, entries).unwrap();
    /// assert_eq!(batches.iter().map(IndexBatch::len).collect::<Vec<_>>(), [5, 5, 5, 5]);
    /// ```
    pub fn split(
        index_id: u64,
        max_frame_len: usize,
        entries: impl IntoIterator<Item = IndexEntry>,
    ) -> Result<Vec<Self>, PushError> {
        let mut batches = Vec::new();
        let mut current = Self::with_limit(index_id, max_frame_len);
        for entry in entries {
            match current.push(entry) {
                Ok(()) => {}
                Err(PushError::Full(entry)) => {
                    let mut next = Self::with_limit(index_id, max_frame_len);
                    next.push(entry)?;
                    batches.push(std::mem::replace(&mut current, next));
                }
                Err(e) => return Err(e),
            }
        }
        if !current.is_empty() || batches.is_empty() {
            batches.push(current);
        }
        Ok(batches)
    }

    /// Adds `entry`, or hands it back when the batch is full or its sequence
    /// is not above the last one.
    pub fn push(&mut self, entry: IndexEntry) -> Result<(), PushError> {
        let last = self.last_sequence().unwrap_or(0);
        if entry.sequence <= last {
            let got = entry.sequence;
            return Err(PushError::OutOfOrder { entry, last, got });
        }
        let len = self.payload_len + entry.wire_len();
        let over_soft = len > self.limit && !self.entries.is_empty();
        if over_soft || len > MAX_PAYLOAD_LEN || self.entries.len() >= MAX_INDEX_ENTRIES {
            return Err(PushError::Full(entry));
        }
        self.payload_len = len;
        self.entries.push(entry);
        Ok(())
    }

    /// The id of the index these records come from (see
    /// [`FolderState::index_id`](crate::FolderState::index_id)).
    pub fn index_id(&self) -> u64 {
        self.index_id
    }

    /// The entries, sequences ascending.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The entries, owned.
    pub fn into_entries(self) -> Vec<IndexEntry> {
        self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest sequence in the batch.
    pub fn last_sequence(&self) -> Option<u64> {
        self.entries.last().map(|e| e.sequence)
    }

    /// Bytes of the whole frame this batch encodes to, header included.
    pub fn frame_len(&self) -> usize {
        crate::FRAME_HEADER_LEN + 1 + self.payload_len
    }
}

/// Batches are equal when their index id and entries are; the limit they
/// were built with is not part of the message.
impl PartialEq for IndexBatch {
    fn eq(&self, other: &Self) -> bool {
        self.index_id == other.index_id && self.entries == other.entries
    }
}

impl Eq for IndexBatch {}

impl Payload for IndexBatch {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u64(self.index_id);
        out.put_len(self.entries.len());
        for entry in &self.entries {
            out.put_u64(entry.sequence);
            entry.record.put(out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.remaining();
        let index_id = r.u64("index.index_id")?;
        let count = r.count("index.count", MAX_INDEX_ENTRIES, IndexEntry::MIN_WIRE_LEN)?;
        let mut entries = Vec::with_capacity(count);
        let mut last = 0;
        for _ in 0..count {
            let sequence = r.u64("index.sequence")?;
            if sequence <= last {
                return Err(DecodeError::BadValue {
                    field: "index.sequence",
                    reason: "sequences must rise strictly, starting above 0",
                });
            }
            last = sequence;
            let record = SignedRecord::read(r)?;
            entries.push(IndexEntry { sequence, record });
        }
        let payload_len = start - r.remaining();
        Ok(Self {
            index_id,
            entries,
            payload_len,
            limit: MAX_PAYLOAD_LEN,
        })
    }
}
