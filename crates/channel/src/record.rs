//! The record layer: AES-128-GCM records with counter nonces and a key ratchet.
//!
//! ```text
//! record  = length (u32 big-endian) ‖ AES-128-GCM(key, nonce, aad = length, inner) ‖ tag (16)
//! inner   = payload ‖ type (1)
//! length  = len(inner) + 16, between 17 and MAX_RECORD_LEN
//! nonce   = iv XOR (0u32 ‖ seq u64 big-endian)
//! ```
//!
//! `seq` counts records under the current key in one direction, from 0. It lives
//! only in [`Direction`], and the only way to get a nonce is
//! [`Direction::next_nonce`], which increments it: a (key, nonce) pair is never
//! used twice. The sender updates its key after `rekey_after` records, long
//! before [`crate::MAX_RECORDS_PER_KEY`], which the receiver enforces.

use std::collections::VecDeque;

use hkdf::Hkdf;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{AbortCode, ChannelError, MAX_RECORDS_PER_KEY, Violation};

/// Bytes of the record length header.
pub(crate) const HEADER_LEN: usize = 4;
/// Bytes of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Largest payload of one record (64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest value of the length header: payload, type byte and tag.
pub const MAX_RECORD_LEN: usize = MAX_PAYLOAD + 1 + TAG_LEN;
/// Smallest value of the length header: an empty payload.
pub(crate) const MIN_RECORD_LEN: usize = 1 + TAG_LEN;

/// Record types (the last byte of the inner plaintext).
pub(crate) mod kind {
    /// Application bytes for the layer above.
    pub(crate) const DATA: u8 = 0x01;
    /// The sender switches to its next key after this record; empty payload.
    pub(crate) const KEY_UPDATE: u8 = 0x02;
    /// The sender will send nothing more; payload is one byte, 0 for a clean close
    /// or an abort code.
    pub(crate) const CLOSE: u8 = 0x03;
    /// The first record in each direction: the sender's access proof.
    pub(crate) const ACCESS_PROOF: u8 = 0x04;
}

const LABEL_KEY: &[u8] = b"swarmsync v1 record key";
const LABEL_IV: &[u8] = b"swarmsync v1 record iv";
const LABEL_NEXT: &[u8] = b"swarmsync v1 key update";

/// `HKDF-Expand(prk, label, N)`.
pub(crate) fn expand<const N: usize>(
    prk: &[u8; 32],
    label: &[u8],
) -> Result<Zeroizing<[u8; N]>, ChannelError> {
    let mut out = Zeroizing::new([0u8; N]);
    Hkdf::<Sha256>::from_prk(prk)
        .map_err(|_| ChannelError::Crypto("hkdf prk"))?
        .expand(label, out.as_mut())
        .map_err(|_| ChannelError::Crypto("hkdf expand"))?;
    Ok(out)
}

/// The state of one direction: traffic secret, key, iv and record counter.
pub(crate) struct Direction {
    secret: Zeroizing<[u8; 32]>,
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
    epoch: u64,
}

impl Direction {
    pub(crate) fn new(secret: Zeroizing<[u8; 32]>) -> Result<Self, ChannelError> {
        let (key, iv) = Self::keys(&secret)?;
        Ok(Self {
            secret,
            key,
            iv,
            seq: 0,
            epoch: 0,
        })
    }

    fn keys(secret: &[u8; 32]) -> Result<(LessSafeKey, [u8; NONCE_LEN]), ChannelError> {
        let key = expand::<16>(secret, LABEL_KEY)?;
        let iv = expand::<NONCE_LEN>(secret, LABEL_IV)?;
        let key = UnboundKey::new(&AES_128_GCM, key.as_ref())
            .map_err(|_| ChannelError::Crypto("aes key"))?;
        Ok((LessSafeKey::new(key), *iv))
    }

    /// The nonce for the next record; the counter moves on, so it is never reused.
    fn next_nonce(&mut self) -> Option<Nonce> {
        if self.seq >= MAX_RECORDS_PER_KEY {
            return None;
        }
        let mut nonce = self.iv;
        for (n, c) in nonce
            .iter_mut()
            .skip(NONCE_LEN - 8)
            .zip(self.seq.to_be_bytes())
        {
            *n ^= c;
        }
        self.seq += 1;
        Some(Nonce::assume_unique_for_key(nonce))
    }

    /// Moves to the next traffic secret, key and iv; the counter restarts.
    fn ratchet(&mut self) -> Result<(), ChannelError> {
        let next = expand::<32>(&self.secret, LABEL_NEXT)?;
        let (key, iv) = Self::keys(&next)?;
        self.secret = next;
        self.key = key;
        self.iv = iv;
        self.seq = 0;
        self.epoch += 1;
        Ok(())
    }

    /// (epoch, records sent or received under the current key).
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }

    /// (key, iv) of the current epoch (tests only).
    #[cfg(test)]
    pub(crate) fn key_iv(&self) -> ([u8; 16], [u8; NONCE_LEN]) {
        let key = expand::<16>(&self.secret, LABEL_KEY)
            .map(|k| *k)
            .unwrap_or_default();
        (key, self.iv)
    }

    /// Advances the ratchet (tests only).
    #[cfg(test)]
    pub(crate) fn ratchet_for_tests(&mut self) {
        let _ = self.ratchet();
    }

    /// Moves the counter (tests only).
    #[cfg(test)]
    pub(crate) fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// The nonce bytes the next record will use (tests only).
    #[cfg(test)]
    pub(crate) fn peek_nonce(&self) -> ([u8; 32], [u8; NONCE_LEN]) {
        let mut nonce = self.iv;
        for (n, c) in nonce
            .iter_mut()
            .skip(NONCE_LEN - 8)
            .zip(self.seq.to_be_bytes())
        {
            *n ^= c;
        }
        (*self.secret, nonce)
    }
}

/// The sending half.
pub(crate) struct Sender {
    pub(crate) dir: Direction,
    rekey_after: u64,
    closed: bool,
}

impl Sender {
    pub(crate) fn new(dir: Direction, rekey_after: u64) -> Self {
        Self {
            dir,
            rekey_after: rekey_after.clamp(2, MAX_RECORDS_PER_KEY),
            closed: false,
        }
    }

    /// Appends one record of `kind` to `out`, then a key update if this key has
    /// carried its share.
    fn seal(&mut self, kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        self.seal_with(kind, payload.len(), out, |out| {
            out.extend_from_slice(payload)
        })
    }

    /// [`seal`](Self::seal) of a payload of `len` bytes that `fill` appends.
    fn seal_with(
        &mut self,
        kind: u8,
        len: usize,
        out: &mut Vec<u8>,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        self.seal_one_with(kind, len, out, fill)?;
        // Nothing may follow a close, not even a key update.
        if kind != kind::CLOSE && self.dir.seq >= self.rekey_after - 1 {
            self.seal_one(kind::KEY_UPDATE, &[], out)?;
            self.dir.ratchet()?;
        }
        Ok(())
    }

    fn seal_one(
        &mut self,
        kind: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        self.seal_one_with(kind, payload.len(), out, |out| {
            out.extend_from_slice(payload)
        })
    }

    /// Appends one record whose payload of `payload_len` bytes `fill` appends.
    fn seal_one_with(
        &mut self,
        kind: u8,
        payload_len: usize,
        out: &mut Vec<u8>,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), ChannelError> {
        let nonce = self
            .dir
            .next_nonce()
            .ok_or(ChannelError::Crypto("record counter"))?;
        // payload ≤ MAX_PAYLOAD, so the length fits easily.
        let len = u32::try_from(payload_len + MIN_RECORD_LEN)
            .map_err(|_| ChannelError::Crypto("record length"))?;
        let header = len.to_be_bytes();
        out.reserve(HEADER_LEN + payload_len + MIN_RECORD_LEN);
        out.extend_from_slice(&header);
        let start = out.len();
        fill(out);
        if out.len() != start + payload_len {
            return Err(ChannelError::Crypto("record payload length"));
        }
        out.push(kind);
        let (_, inner) = out.split_at_mut(start);
        let tag = self
            .dir
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), inner)
            .map_err(|_| ChannelError::Crypto("aes-gcm seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Seals any record type, for tests of the receiver.
    #[cfg(test)]
    pub(crate) fn seal_for_tests(
        &mut self,
        kind: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        self.seal_one(kind, payload, out)
    }

    /// Appends data records carrying `plaintext` (none if it is empty).
    pub(crate) fn data(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        for chunk in plaintext.chunks(MAX_PAYLOAD) {
            self.seal(kind::DATA, chunk, out)?;
        }
        Ok(())
    }

    /// [`data`](Self::data) of the concatenation of `parts`: each byte is
    /// copied once, into its record.
    pub(crate) fn data_gathered(
        &mut self,
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        let mut left: usize = parts.iter().map(|p| p.len()).sum();
        let mut parts = parts.iter().copied();
        let mut current: &[u8] = &[];
        while left > 0 {
            let len = left.min(MAX_PAYLOAD);
            self.seal_with(kind::DATA, len, out, |out| {
                let mut want = len;
                while want > 0 {
                    if current.is_empty() {
                        match parts.next() {
                            Some(next) => current = next,
                            None => return,
                        }
                    }
                    let (now, rest) = current.split_at(want.min(current.len()));
                    out.extend_from_slice(now);
                    want -= now.len();
                    current = rest;
                }
            })?;
            left -= len;
        }
        Ok(())
    }

    /// Appends the access-proof record.
    pub(crate) fn access_proof(
        &mut self,
        proof: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        self.seal(kind::ACCESS_PROOF, proof, out)
    }

    /// Appends a close record (code 0 for a clean close); nothing can follow.
    pub(crate) fn close(&mut self, code: u8, out: &mut Vec<u8>) -> Result<(), ChannelError> {
        self.seal(kind::CLOSE, &[code], out)?;
        self.closed = true;
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    ExpectProof,
    Open,
    Closed,
}

/// The receiving half: reassembles records from arbitrary splits, authenticates
/// them in place and keeps the plaintext of data records until it is read.
///
/// All input lives in one buffer, `buf[..end]`: records before `rpos` are
/// decrypted (their payloads listed in `ranges` until read), bytes from `rpos`
/// on are a record still arriving. Callers either copy input in
/// ([`Receiver::handle_input`]) or read straight into the buffer
/// ([`Receiver::input_buffer`] + [`Receiver::commit_input`]), which saves a copy.
pub(crate) struct Receiver {
    pub(crate) dir: Direction,
    state: RecvState,
    buf: Vec<u8>,
    end: usize,
    rpos: usize,
    /// Unread plaintext: (start, len) in `buf`, in order.
    ranges: VecDeque<(usize, usize)>,
    available: usize,
    /// The access proof, once received, until the handshake takes it.
    proof: Option<Vec<u8>>,
    failed: bool,
}

impl Receiver {
    pub(crate) fn new(dir: Direction) -> Self {
        Self {
            dir,
            state: RecvState::ExpectProof,
            buf: Vec::new(),
            end: 0,
            rpos: 0,
            ranges: VecDeque::new(),
            available: 0,
            proof: None,
            failed: false,
        }
    }

    /// Feeds bytes from the peer. On an error the receiver is dead: buffered
    /// plaintext is discarded and nothing is released any more.
    pub(crate) fn handle_input(&mut self, input: &[u8]) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        let mut input = input;
        while !input.is_empty() {
            let spare = self.input_buffer(input.len().min(MAX_RECORD_LEN + HEADER_LEN));
            let n = spare.len().min(input.len());
            let (now, rest) = input.split_at(n);
            if let Some(dst) = spare.get_mut(..n) {
                dst.copy_from_slice(now);
            }
            input = rest;
            self.commit_input(n)?;
        }
        Ok(())
    }

    /// Space for at least `min` more input bytes (at most what is free), to read
    /// into directly; then call [`Receiver::commit_input`].
    pub(crate) fn input_buffer(&mut self, min: usize) -> &mut [u8] {
        if self.failed {
            return &mut [];
        }
        if self.ranges.is_empty() && self.rpos > 0 {
            // Nothing unread before rpos: move the partial record to the front.
            self.buf.copy_within(self.rpos..self.end, 0);
            self.end -= self.rpos;
            self.rpos = 0;
        }
        let need = self.end + min.max(1);
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// The first `n` bytes of [`Receiver::input_buffer`] now hold input.
    pub(crate) fn commit_input(&mut self, n: usize) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        self.end = (self.end + n).min(self.buf.len());
        let result = self.process();
        if result.is_err() {
            self.fail();
        }
        result
    }

    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.buf = Vec::new();
        self.end = 0;
        self.rpos = 0;
        self.ranges.clear();
        self.available = 0;
        self.proof = None;
    }

    /// Authenticates every whole record in `buf[rpos..end]`.
    fn process(&mut self) -> Result<(), ChannelError> {
        while self.rpos < self.end {
            if self.state == RecvState::Closed {
                return Err(Violation::DataAfterClose.into());
            }
            let pending = self.buf.get(self.rpos..self.end).unwrap_or(&[]);
            let Some((header, rest)) = pending.split_first_chunk::<HEADER_LEN>() else {
                return Ok(());
            };
            let header = *header;
            let len = check_len(&header)?;
            if rest.len() < len {
                return Ok(());
            }
            let body_start = self.rpos + HEADER_LEN;
            self.rpos = body_start + len;
            self.open(header, body_start, len)?;
        }
        Ok(())
    }

    /// Authenticates and dispatches the record whose body is `buf[start..start + len]`.
    fn open(
        &mut self,
        header: [u8; HEADER_LEN],
        start: usize,
        len: usize,
    ) -> Result<(), ChannelError> {
        let nonce = self.dir.next_nonce().ok_or(Violation::KeyExhausted)?;
        let body = self
            .buf
            .get_mut(start..start + len)
            .ok_or(Violation::BadTag)?;
        let inner = self
            .dir
            .key
            .open_in_place(nonce, Aad::from(header), body)
            .map_err(|_| Violation::BadTag)?;
        let (&kind, payload) = inner.split_last().ok_or(Violation::BadTag)?;
        let payload_len = payload.len();
        match (self.state, kind) {
            (RecvState::ExpectProof, kind::ACCESS_PROOF) => {
                self.proof = Some(payload.to_vec());
                self.state = RecvState::Open;
            }
            (RecvState::ExpectProof, kind::DATA | kind::KEY_UPDATE | kind::CLOSE) => {
                return Err(Violation::MissingAccessProof.into());
            }
            (RecvState::Open, kind::DATA) => {
                if payload_len > 0 {
                    self.ranges.push_back((start, payload_len));
                    self.available += payload_len;
                }
            }
            (RecvState::Open, kind::KEY_UPDATE) => {
                if payload_len != 0 {
                    return Err(Violation::MalformedControl("key-update").into());
                }
                self.dir.ratchet()?;
            }
            (RecvState::Open, kind::CLOSE) => {
                let code = match payload {
                    [code] => *code,
                    _ => return Err(Violation::MalformedControl("close").into()),
                };
                self.state = RecvState::Closed;
                if code != 0 {
                    return Err(ChannelError::PeerAborted(AbortCode::from_byte(code)));
                }
            }
            (RecvState::Open, kind::ACCESS_PROOF) => {
                return Err(Violation::UnexpectedAccessProof.into());
            }
            (_, other) => return Err(Violation::UnknownRecordType(other).into()),
        }
        Ok(())
    }

    /// A receiver past the access proof, for test pairs without a handshake.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn new_open(dir: Direction) -> Self {
        Self {
            state: RecvState::Open,
            ..Self::new(dir)
        }
    }

    /// Takes the access proof, if it has arrived.
    pub(crate) fn take_proof(&mut self) -> Option<Vec<u8>> {
        self.proof.take()
    }

    /// Whether the peer sent its authenticated close.
    pub(crate) fn is_closed(&self) -> bool {
        self.state == RecvState::Closed
    }

    /// Bytes of plaintext ready to read.
    pub(crate) fn available(&self) -> usize {
        self.available
    }

    /// Copies plaintext into `out`; returns how many bytes.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> usize {
        let mut written = 0;
        loop {
            let chunk = self.plaintext();
            let n = chunk.len().min(out.len() - written);
            if n == 0 {
                return written;
            }
            if let (Some(dst), Some(src)) = (out.get_mut(written..written + n), chunk.get(..n)) {
                dst.copy_from_slice(src);
            }
            written += n;
            self.consume(n);
        }
    }

    /// The next plaintext to read, in place (one record's payload or what is
    /// left of it); empty when there is none.
    pub(crate) fn plaintext(&self) -> &[u8] {
        self.ranges
            .front()
            .and_then(|&(start, len)| self.buf.get(start..start + len))
            .unwrap_or_default()
    }

    /// Marks the first `n` bytes of [`plaintext`](Self::plaintext) read.
    pub(crate) fn consume(&mut self, n: usize) {
        let Some(front) = self.ranges.front_mut() else {
            return;
        };
        let n = n.min(front.1);
        self.available -= n;
        if n == front.1 {
            self.ranges.pop_front();
        } else {
            *front = (front.0 + n, front.1 - n);
        }
    }

    /// Takes all plaintext ready to read.
    pub(crate) fn take(&mut self) -> Option<Vec<u8>> {
        if self.available == 0 {
            return None;
        }
        let mut all = vec![0u8; self.available];
        let n = self.read(&mut all);
        all.truncate(n);
        Some(all)
    }

    /// Whether a record has begun to arrive but not finished.
    pub(crate) fn has_partial(&self) -> bool {
        self.rpos < self.end
    }
}

fn check_len(header: &[u8; HEADER_LEN]) -> Result<usize, Violation> {
    let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
    if len < MIN_RECORD_LEN {
        return Err(Violation::RecordTooShort {
            len,
            min: MIN_RECORD_LEN,
        });
    }
    if len > MAX_RECORD_LEN {
        return Err(Violation::RecordTooLong {
            len,
            max: MAX_RECORD_LEN,
        });
    }
    Ok(len)
}
