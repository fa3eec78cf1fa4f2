//! Reading a connection exactly, message by message, so that nothing past a
//! message is ever taken from the stream: after `Spliced` every byte belongs
//! to the peers, and a relay or client that read ahead would swallow their
//! channel hello.

use crate::error::ProtoError;
use crate::message::{
    ClientMessage, HEADER_LEN, Header, MAX_BODY_LEN, PREAMBLE_LEN, RelayMessage, check_preamble,
};

/// A message one side parses: [`ClientMessage`] on the relay,
/// [`RelayMessage`] on a client.
pub trait Incoming: Sized {
    /// Parses a body whose header [`Header::parse`] accepted.
    fn parse(header: Header, body: &[u8]) -> Result<Self, ProtoError>;
}

impl Incoming for ClientMessage {
    fn parse(header: Header, body: &[u8]) -> Result<Self, ProtoError> {
        Self::parse(header, body)
    }
}

impl Incoming for RelayMessage {
    fn parse(header: Header, body: &[u8]) -> Result<Self, ProtoError> {
        Self::parse(header, body)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Preamble,
    Header,
    Body(Header),
    Failed(ProtoError),
}

/// Cuts the preamble and then messages from a stream, asking for exactly
/// the bytes the current item still lacks. Sans-IO: read into
/// [`MessageReader::unfilled`], then report with [`MessageReader::commit`].
/// The buffer is fixed ([`MAX_BODY_LEN`] bytes); lengths are checked before
/// any body is read.
#[derive(Debug)]
pub struct MessageReader<M> {
    buf: [u8; MAX_BODY_LEN],
    have: usize,
    stage: Stage,
    _incoming: std::marker::PhantomData<fn() -> M>,
}

impl<M: Incoming> Default for MessageReader<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Incoming> MessageReader<M> {
    /// A reader expecting the preamble first.
    pub fn new() -> Self {
        Self {
            buf: [0; MAX_BODY_LEN],
            have: 0,
            stage: Stage::Preamble,
            _incoming: std::marker::PhantomData,
        }
    }

    fn need(&self) -> usize {
        match self.stage {
            Stage::Preamble => PREAMBLE_LEN,
            Stage::Header => HEADER_LEN,
            Stage::Body(h) => h.len,
            Stage::Failed(_) => 0,
        }
    }

    /// Where to read next: exactly the bytes missing from the current item
    /// (empty after a failure). Never empty otherwise, except between a
    /// zero-length body's header and its [`MessageReader::commit`]`(0)`.
    pub fn unfilled(&mut self) -> &mut [u8] {
        let need = self.need();
        self.buf.get_mut(self.have..need).unwrap_or_default()
    }

    /// `n` bytes were read into [`MessageReader::unfilled`]. Returns a
    /// message when one is complete, an error when the bytes are no
    /// preamble or message (the reader then stays failed), and `None` when
    /// more bytes are needed.
    pub fn commit(&mut self, n: usize) -> Option<Result<M, ProtoError>> {
        if let Stage::Failed(e) = self.stage {
            return Some(Err(e));
        }
        self.have = (self.have + n).min(self.need());
        loop {
            let need = self.need();
            if self.have < need {
                return None;
            }
            let bytes = self.buf.get(..need).unwrap_or_default();
            self.have = 0;
            match self.stage {
                Stage::Preamble => {
                    let mut p = [0u8; PREAMBLE_LEN];
                    p.copy_from_slice(bytes);
                    if let Err(e) = check_preamble(&p) {
                        return Some(Err(self.fail(e)));
                    }
                    self.stage = Stage::Header;
                    // The first header is not read yet.
                    return None;
                }
                Stage::Header => {
                    let mut h = [0u8; HEADER_LEN];
                    h.copy_from_slice(bytes);
                    match Header::parse(&h) {
                        Err(e) => return Some(Err(self.fail(e))),
                        Ok(h) if h.len == 0 => {
                            self.stage = Stage::Header;
                            return Some(M::parse(h, &[]).map_err(|e| self.fail(e)));
                        }
                        Ok(h) => self.stage = Stage::Body(h),
                    }
                    // Loop: the body is not read yet, so `have < need`.
                }
                Stage::Body(h) => {
                    let parsed = M::parse(h, bytes);
                    self.stage = Stage::Header;
                    return Some(parsed.map_err(|e| self.fail(e)));
                }
                Stage::Failed(e) => return Some(Err(e)),
            }
        }
    }

    fn fail(&mut self, e: ProtoError) -> ProtoError {
        self.stage = Stage::Failed(e);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PREAMBLE, RelayMessage};

    /// Feeds `bytes` one read at a time of at most `chunk` bytes.
    fn feed(
        r: &mut MessageReader<RelayMessage>,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<Result<RelayMessage, ProtoError>>, usize) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let room = r.unfilled();
            let n = room.len().min(chunk).min(bytes.len() - pos);
            room[..n].copy_from_slice(&bytes[pos..pos + n]);
            pos += n;
            match r.commit(n) {
                Some(Err(e)) => {
                    out.push(Err(e));
                    return (out, pos);
                }
                Some(m) => out.push(m),
                None if n == 0 => return (out, pos),
                None => {}
            }
        }
    }

    #[test]
    fn reads_exactly_up_to_the_splice() {
        let mut bytes = PREAMBLE.to_vec();
        RelayMessage::Pong.write(&mut bytes);
        RelayMessage::Spliced.write(&mut bytes);
        let used = bytes.len();
        bytes.extend_from_slice(b"SWSYNC\r\n peer bytes");
        for chunk in [1, 2, 7, 4096] {
            let mut r = MessageReader::new();
            let mut got = Vec::new();
            let mut pos = 0;
            // Stop as the client does: at Spliced.
            while !got.contains(&Ok(RelayMessage::Spliced)) {
                let room = r.unfilled();
                let n = room.len().min(chunk);
                room[..n].copy_from_slice(&bytes[pos..pos + n]);
                pos += n;
                if let Some(m) = r.commit(n) {
                    got.push(m);
                }
            }
            assert_eq!(pos, used, "read past Spliced with chunk {chunk}");
            assert_eq!(got, [Ok(RelayMessage::Pong), Ok(RelayMessage::Spliced)]);
        }
    }

    #[test]
    fn bad_preamble_and_bad_length_fail_and_stay_failed() {
        let mut r = MessageReader::<RelayMessage>::new();
        let (out, _) = feed(&mut r, b"HTTP/1.1 200 OK", 64);
        assert_eq!(out, [Err(ProtoError::BadMagic(*b"HTTP"))]);
        assert!(r.unfilled().is_empty());
        assert!(matches!(r.commit(0), Some(Err(_))));

        let mut r = MessageReader::<RelayMessage>::new();
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend_from_slice(&[0x84, 0xff, 0xff]);
        let (out, used) = feed(&mut r, &bytes, 64);
        assert_eq!(
            out,
            [Err(ProtoError::BadLength {
                kind: 0x84,
                len: 0xffff
            })]
        );
        assert_eq!(used, bytes.len());
    }

    proptest::proptest! {
        /// Any bytes in any chunking: no panic, never more than the input,
        /// and the same messages whatever the chunk size.
        #[test]
        fn chunking_does_not_matter(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000), chunk in 1usize..64) {
            let mut framed = PREAMBLE.to_vec();
            framed.extend_from_slice(&bytes);
            let (a, _) = feed(&mut MessageReader::new(), &framed, chunk);
            let (b, _) = feed(&mut MessageReader::new(), &framed, 4096);
            proptest::prop_assert_eq!(a, b);
        }
    }
}
