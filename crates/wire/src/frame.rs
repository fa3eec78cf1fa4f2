//! Framing: `len u32 | type u8 | payload`, one message per frame.
//!
//! `len` counts the type byte and the payload, so it is at least 1 and at most
//! [`MAX_FRAME_LEN`]. It is checked as soon as its 4 bytes are in, before
//! anything is buffered for the frame.

use bytes::buf::Limit;
use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Reader;
use crate::error::DecodeError;
use crate::message::{Message, MessageType};
use crate::{FRAME_HEADER_LEN, MAX_FRAME_LEN};

impl Message {
    /// Appends this message as one frame to `out`.
    ///
    /// ```
    /// use wire::{Message, Ping};
    /// let mut out = Vec::new();
    /// Message::Ping(Ping { nonce: 1 }).encode(&mut out);
    /// assert_eq!(out, [0, 0, 0, 9, 0x09, 0, 0, 0, 0, 0, 0, 0, 1]);
    /// assert_eq!(wire::decode(&out), Ok((Message::Ping(Ping { nonce: 1 }), 13)));
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        out.push(self.message_type().to_u8());
        self.put_payload(out);
        // The field types bound every message below MAX_FRAME_LEN.
        let len = out.len().saturating_sub(start + FRAME_HEADER_LEN);
        let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        if let Some(slot) = out.get_mut(start..start + FRAME_HEADER_LEN) {
            slot.copy_from_slice(&len);
        }
    }

    /// [`encode`](Self::encode), but a block's bytes are not copied: the frame
    /// is what is appended to `head` followed by the returned bytes, if any
    /// (a Response with a block). A writer that gathers (vectored writes) so
    /// sends each block's bytes without copying them first.
    pub fn encode_split<'a>(&'a self, head: &mut Vec<u8>) -> Option<&'a [u8]> {
        let Self::Response(crate::Response {
            request_id,
            result: Ok(block),
        }) = self
        else {
            self.encode(head);
            return None;
        };
        let data: &[u8] = block;
        // type, request_id, status, data length: as `Response::put` writes them.
        let len = 1 + 4 + 1 + 4 + data.len();
        head.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        head.push(self.message_type().to_u8());
        head.extend_from_slice(&request_id.to_be_bytes());
        head.push(0);
        head.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        Some(data)
    }

    /// This message as one frame.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes the frame at the start of `buf`: the message and the bytes it
    /// took. See [`decode`].
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        decode(buf)
    }
}

/// Decodes the frame at the start of `buf`: the message and the number of
/// bytes the frame took (bytes after it are left alone).
///
/// [`DecodeError::Truncated`] asks for more input. An unknown type reports the
/// frame's length, so the caller can skip it. Every other error is a fault of
/// the sender. Byte strings are copied out of `buf`; [`FrameDecoder`] avoids
/// copying large ones.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let frame_len = frame_len(buf)?;
    let body = buf
        .get(FRAME_HEADER_LEN..frame_len)
        .ok_or(DecodeError::Truncated {
            needed: frame_len.saturating_sub(buf.len()),
        })?;
    let (&ty, payload) = body.split_first().ok_or(DecodeError::EmptyFrame)?;
    let message = decode_payload(ty, frame_len, Reader::new(payload))?;
    Ok((message, frame_len))
}

/// The length of the whole frame at the start of `buf`, header included,
/// once all of it is in `buf`.
fn frame_len(buf: &[u8]) -> Result<usize, DecodeError> {
    let Some((prefix, _)) = buf.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(DecodeError::Truncated {
            needed: FRAME_HEADER_LEN - buf.len(),
        });
    };
    let total = whole_len(*prefix)?;
    match total.checked_sub(buf.len()) {
        Some(needed) if needed > 0 => Err(DecodeError::Truncated { needed }),
        _ => Ok(total),
    }
}

/// The length of the whole frame, header included, that `prefix` announces,
/// checked against [`MAX_FRAME_LEN`].
fn whole_len(prefix: [u8; FRAME_HEADER_LEN]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(prefix);
    match usize::try_from(len) {
        Ok(0) => Err(DecodeError::EmptyFrame),
        Ok(len) if len <= MAX_FRAME_LEN => Ok(FRAME_HEADER_LEN + len),
        _ => Err(DecodeError::TooLong {
            field: "frame length",
            len: u64::from(len),
            max: MAX_FRAME_LEN as u64,
        }),
    }
}

fn decode_payload(ty: u8, frame_len: usize, mut r: Reader<'_>) -> Result<Message, DecodeError> {
    let known = MessageType::from_u8(ty).ok_or(DecodeError::UnknownType { ty, frame_len })?;
    let message = Message::read_payload(known, &mut r)?;
    r.finish(ty)?;
    Ok(message)
}

/// Byte strings at least this long are sliced out of the frame buffer rather
/// than copied (see [`FrameDecoder`]).
pub const ZERO_COPY_MIN_LEN: usize = 64 * 1024;

/// Turns a byte stream, in chunks of any size, into messages.
///
/// Sans-IO: feed what the channel decrypted with
/// [`handle_input`](Self::handle_input), or read it straight into
/// [`spare`](Self::spare), then take messages with
/// [`poll_message`](Self::poll_message) until it returns `None`, and repeat.
/// It buffers at most one frame, [`MAX_BUFFERED`](Self::MAX_BUFFERED) bytes
/// for the largest: input is taken up to the end of the frame under way and
/// no further, so polling always makes room.
///
/// Each frame gets a buffer of its own, of its exact length, once its length
/// prefix is in: the messages of one frame never keep the bytes of the next
/// alive, and a frame is never moved to grow its buffer.
///
/// Errors: an unknown type or a malformed known message consumes its frame,
/// and decoding can go on with the next one (the caller decides whether to
/// skip or to close; see [`DecodeError::is_skippable`]). A bad frame length
/// leaves no way to find the next frame: it is returned once, then the
/// decoder is [failed](Self::is_failed), discards input and yields nothing.
///
/// Block and record bytes of at least [`ZERO_COPY_MIN_LEN`], and a block of
/// any size, are not copied: they share their frame's buffer, which stays
/// allocated while they live.
///
/// ```
/// use wire::{FrameDecoder, Message, Ping};
/// let bytes = Message::Ping(Ping { nonce: 7 }).to_vec();
/// let mut decoder = FrameDecoder::new();
/// let mut got = Vec::new();
/// for chunk in bytes.chunks(3) {
///     let mut chunk = chunk;
///     while !chunk.is_empty() {
///         let taken = decoder.handle_input(chunk);
///         chunk = &chunk[taken..];
///         while let Some(message) = decoder.poll_message() {
///             got.push(message.unwrap());
///         }
///     }
/// }
/// assert_eq!(got, [Message::Ping(Ping { nonce: 7 })]);
/// ```
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// The next frame's length prefix, while it comes in.
    prefix: BytesMut,
    /// The frame under way, prefix included; allocated to `frame_len`.
    frame: BytesMut,
    /// The whole length of the frame under way; 0 until its prefix is in.
    frame_len: usize,
    /// A bad length prefix, reported once by `poll_message`.
    bad_length: Option<DecodeError>,
    failed: bool,
}

impl FrameDecoder {
    /// The most bytes the decoder holds: one frame of [`MAX_FRAME_LEN`] and
    /// its header.
    pub const MAX_BUFFERED: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes of the stream, up to the end of the frame under way, and
    /// returns how many it took. Poll, then hand it the rest. A failed
    /// decoder takes and drops everything.
    #[must_use = "bytes not taken must be offered again"]
    pub fn handle_input(&mut self, input: &[u8]) -> usize {
        let mut taken = 0;
        while !self.failed && taken < input.len() {
            let room = self.room();
            if room == 0 {
                break;
            }
            let end = input.len().min(taken + room);
            let part = input.get(taken..end).unwrap_or_default();
            self.filling().extend_from_slice(part);
            taken = end;
            self.start_frame();
        }
        if self.failed { input.len() } else { taken }
    }

    /// Room to read the next bytes of the stream into directly (tokio's
    /// `read_buf`, say), instead of handing them to
    /// [`handle_input`](Self::handle_input): the rest of the next length
    /// prefix, or of the frame under way. It is empty only while a complete
    /// frame waits to be polled, or once the decoder failed: poll until
    /// `None` first, and never take an empty read for the end of the stream.
    pub fn spare(&mut self) -> Limit<&mut BytesMut> {
        self.start_frame();
        let room = if self.failed { 0 } else { self.room() };
        let filling = self.filling();
        filling.reserve(room);
        filling.limit(room)
    }

    /// The next complete message, or `None` when more input is needed.
    pub fn poll_message(&mut self) -> Option<Result<Message, DecodeError>> {
        self.start_frame();
        if let Some(e) = self.bad_length.take() {
            return Some(Err(e));
        }
        if self.failed || self.frame_len == 0 || self.frame.len() < self.frame_len {
            return None;
        }
        let frame_len = std::mem::take(&mut self.frame_len);
        let frame = std::mem::take(&mut self.frame).freeze();
        Some(decode_shared(&frame, frame_len))
    }

    /// Bytes buffered and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.prefix.len() + self.frame.len()
    }

    /// At least how many more bytes the next message needs (0 when one is
    /// ready or the decoder failed).
    pub fn needed(&self) -> usize {
        if self.failed { 0 } else { self.room() }
    }

    /// True after a bad frame length: the stream cannot be followed further.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// How many bytes the buffer being filled still takes.
    fn room(&self) -> usize {
        if self.frame_len == 0 {
            FRAME_HEADER_LEN.saturating_sub(self.prefix.len())
        } else {
            self.frame_len.saturating_sub(self.frame.len())
        }
    }

    /// The buffer that input goes to next.
    fn filling(&mut self) -> &mut BytesMut {
        if self.frame_len == 0 {
            &mut self.prefix
        } else {
            &mut self.frame
        }
    }

    /// Once the length prefix is in: checks it, and gives the frame its
    /// buffer (or fails the decoder).
    fn start_frame(&mut self) {
        if self.frame_len != 0 || self.failed {
            return;
        }
        let Ok(prefix) = <[u8; FRAME_HEADER_LEN]>::try_from(self.prefix.as_ref()) else {
            return;
        };
        match whole_len(prefix) {
            Ok(len) => {
                self.frame = BytesMut::with_capacity(len);
                self.frame.extend_from_slice(&self.prefix);
                self.prefix.clear();
                self.frame_len = len;
            }
            Err(e) => {
                self.failed = true;
                self.bad_length = Some(e);
                self.prefix = BytesMut::new();
            }
        }
    }
}

/// Decodes a whole frame held in `frame`, slicing large byte strings from it.
fn decode_shared(frame: &Bytes, frame_len: usize) -> Result<Message, DecodeError> {
    let Some((&ty, _)) = frame.get(FRAME_HEADER_LEN..).and_then(<[u8]>::split_first) else {
        return Err(DecodeError::EmptyFrame);
    };
    let payload = frame.slice(FRAME_HEADER_LEN + 1..);
    decode_payload(ty, frame_len, Reader::shared(&payload))
}
