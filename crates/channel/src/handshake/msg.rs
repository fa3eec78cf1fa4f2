//! The cleartext handshake messages: the hello, then `type ‖ u16 length ‖ body`
//! frames. Decoders read through slices, never index, and never panic.

use keys::{FOLDER_ID_LEN, FolderId, PEER_ID_LEN, PeerId};

use crate::Violation;

/// The 8 bytes every swarmsync channel starts with.
pub(crate) const MAGIC: [u8; 8] = *b"SWSYNC\r\n";

/// Bytes of a hello without its extension block.
pub(crate) const HELLO_FIXED_LEN: usize = 8 + 2 + 2 + FOLDER_ID_LEN + PEER_ID_LEN + NONCE_LEN + 2;

/// Bytes of the hello nonce.
pub(crate) const NONCE_LEN: usize = 32;

/// Largest hello extension block (ignored by version 1, but hashed).
pub(crate) const MAX_HELLO_EXTENSIONS: usize = 1024;

/// Largest body of a framed handshake message.
pub(crate) const MAX_MESSAGE_BODY: usize = 1024;

/// Frame header: type (1) and body length (u16 big-endian).
pub(crate) const FRAME_HEADER_LEN: usize = 3;

/// Handshake message types.
pub(crate) mod kind {
    /// The SRP client's public value A.
    pub(crate) const SRP_A: u8 = 0x01;
    /// The SRP server's public value B.
    pub(crate) const SRP_B: u8 = 0x02;
    /// The SRP client's proof M1.
    pub(crate) const CLIENT_PROOF: u8 = 0x03;
    /// The SRP server's proof M2.
    pub(crate) const SERVER_PROOF: u8 = 0x04;
    /// A cleartext alert: one byte, an abort code.
    pub(crate) const ALERT: u8 = 0x10;
}

/// A parsed hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// Lowest protocol version the sender speaks.
    pub(crate) min_version: u16,
    /// Highest protocol version the sender speaks.
    pub(crate) max_version: u16,
    /// The folder the sender connects for.
    pub(crate) folder_id: FolderId,
    /// The sender's peer id.
    pub(crate) peer_id: PeerId,
    /// A fresh random nonce.
    pub(crate) nonce: [u8; NONCE_LEN],
}

impl Hello {
    /// The wire bytes (with an empty extension block).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HELLO_FIXED_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.min_version.to_be_bytes());
        out.extend_from_slice(&self.max_version.to_be_bytes());
        out.extend_from_slice(self.folder_id.as_bytes());
        out.extend_from_slice(self.peer_id.as_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&0u16.to_be_bytes());
        out
    }

    /// Parses a hello from the start of `buf`: `Ok(None)` if more bytes are
    /// needed, else the hello and the number of bytes it took.
    pub(crate) fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, Violation> {
        let mut r = Reader(buf);
        // Check the magic as soon as its bytes are in, to fail fast on a stranger.
        let have = buf.len().min(MAGIC.len());
        if buf.get(..have) != MAGIC.get(..have) {
            return Err(Violation::BadMagic);
        }
        let Some(fixed) = r.take::<HELLO_FIXED_LEN>() else {
            return Ok(None);
        };
        let mut f = Reader(fixed);
        let _magic: [u8; 8] = f.array().ok_or(Violation::BadMagic)?;
        let min_version = u16::from_be_bytes(f.array().ok_or(Violation::BadMagic)?);
        let max_version = u16::from_be_bytes(f.array().ok_or(Violation::BadMagic)?);
        let folder_id = FolderId(f.array().ok_or(Violation::BadMagic)?);
        let peer_id = PeerId(f.array().ok_or(Violation::BadMagic)?);
        let nonce = f.array().ok_or(Violation::BadMagic)?;
        let ext_len = usize::from(u16::from_be_bytes(f.array().ok_or(Violation::BadMagic)?));
        if ext_len > MAX_HELLO_EXTENSIONS {
            return Err(Violation::HelloExtensionTooLong {
                len: ext_len,
                max: MAX_HELLO_EXTENSIONS,
            });
        }
        if r.0.len() < ext_len {
            return Ok(None);
        }
        let hello = Self {
            min_version,
            max_version,
            folder_id,
            peer_id,
            nonce,
        };
        Ok(Some((hello, HELLO_FIXED_LEN + ext_len)))
    }
}

/// A framed message: (type, body, bytes taken from the input).
pub(crate) type Frame<'a> = (u8, &'a [u8], usize);

/// Frames a handshake message.
pub(crate) fn encode_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.push(kind);
    // Bodies we send are at most 384 bytes.
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Parses a framed message from the start of `buf`: `Ok(None)` if more bytes are
/// needed, else `(type, body, bytes taken)`.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, Violation> {
    let mut r = Reader(buf);
    let Some([kind, hi, lo]) = r.array::<3>() else {
        return Ok(None);
    };
    if !matches!(
        kind,
        kind::SRP_A | kind::SRP_B | kind::CLIENT_PROOF | kind::SERVER_PROOF | kind::ALERT
    ) {
        return Err(Violation::UnknownMessageType(kind));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_MESSAGE_BODY {
        return Err(Violation::MessageTooLong {
            len,
            max: MAX_MESSAGE_BODY,
        });
    }
    match r.0.get(..len) {
        Some(body) => Ok(Some((kind, body, FRAME_HEADER_LEN + len))),
        None => Ok(None),
    }
}

/// A cursor over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(head.as_slice())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            min_version: 1,
            max_version: 3,
            folder_id: FolderId([1; 20]),
            peer_id: PeerId([2; 32]),
            nonce: [3; 32],
        }
    }

    #[test]
    fn hello_round_trips_and_needs_all_bytes() {
        let bytes = hello().encode();
        assert_eq!(bytes.len(), HELLO_FIXED_LEN);
        assert_eq!(Hello::decode(&bytes), Ok(Some((hello(), HELLO_FIXED_LEN))));
        for cut in 0..bytes.len() {
            assert_eq!(Hello::decode(&bytes[..cut]), Ok(None));
        }
        let mut ext = bytes.clone();
        ext[96..98].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(Hello::decode(&ext), Ok(None));
        ext.extend_from_slice(b"abc");
        assert_eq!(
            Hello::decode(&ext),
            Ok(Some((hello(), HELLO_FIXED_LEN + 3)))
        );
        ext[96..98].copy_from_slice(&1025u16.to_be_bytes());
        assert!(matches!(
            Hello::decode(&ext),
            Err(Violation::HelloExtensionTooLong { .. })
        ));
    }

    #[test]
    fn bad_magic_fails_early() {
        assert_eq!(Hello::decode(b"GET / HT"), Err(Violation::BadMagic));
        assert_eq!(Hello::decode(b"SWX"), Err(Violation::BadMagic));
        assert_eq!(Hello::decode(b"SWS"), Ok(None));
    }

    #[test]
    fn frames() {
        let f = encode_frame(kind::SRP_A, &[9; 5]);
        assert_eq!(decode_frame(&f), Ok(Some((kind::SRP_A, &[9u8; 5][..], 8))));
        assert_eq!(decode_frame(&f[..7]), Ok(None));
        assert_eq!(
            decode_frame(&[0x77, 0, 0]),
            Err(Violation::UnknownMessageType(0x77))
        );
        assert!(matches!(
            decode_frame(&[kind::SRP_B, 0x04, 0x01]),
            Err(Violation::MessageTooLong { len: 1025, .. })
        ));
    }
}
