//! The LAN announcement datagram: a bounded, hand-written binary layout read
//! through a cursor. Specified byte by byte in `docs/protocol/discovery.md`.
//!
//! ```text
//! 0   magic "SWSY"          4
//! 4   version = 1           1
//! 5   flags (bit 0 QUERY)   1
//! 6   peer id               32
//! 38  TCP port (BE, ≠ 0)    2
//! 40  folder count n ≤ 32   1
//! 41  n × folder id         20 each
//! ..  extension bytes, ignored (whole datagram ≤ 1024 bytes)
//! ```

use keys::{FOLDER_ID_LEN, FolderId, PEER_ID_LEN, PeerId};

/// The first four bytes of every announcement.
pub const MAGIC: [u8; 4] = *b"SWSY";
/// The announcement format version this implementation writes and reads.
pub const VERSION: u8 = 1;
/// Most folder ids in one announcement; more folders go in several datagrams.
pub const MAX_FOLDERS: usize = 32;
/// Largest datagram accepted (fits the IPv6 minimum MTU with room to spare).
pub const MAX_PACKET: usize = 1024;
/// Bytes before the folder ids.
pub const HEADER_LEN: usize = 41;
/// Flag bit: the sender has just started and asks peers sharing a folder to
/// answer at once (unicast) instead of at their next periodic announcement.
pub const FLAG_QUERY: u8 = 0x01;

/// One LAN announcement: who we are, where our TCP listener is, which folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The sender asks for immediate answers ([`FLAG_QUERY`]).
    pub query: bool,
    /// The sender's peer id.
    pub peer: PeerId,
    /// The sender's TCP listen port (never 0).
    pub port: u16,
    /// Folder ids the sender serves (at most [`MAX_FOLDERS`]).
    pub folders: Vec<FolderId>,
}

/// Why a datagram is not an announcement. Every datagram from the network
/// either decodes or gives one of these; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LanDecodeError {
    /// The datagram ended inside a field.
    #[error("announcement truncated in {field}: {needed} more bytes needed")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// Not a swarmsync announcement.
    #[error("not a swarmsync LAN announcement (bad magic)")]
    BadMagic,
    /// A version this implementation does not read.
    #[error("unsupported LAN announcement version {0}")]
    UnsupportedVersion(u8),
    /// A TCP port of 0.
    #[error("announcement carries TCP port 0")]
    ZeroPort,
    /// More folder ids than allowed.
    #[error("announcement lists {count} folders, at most {max} allowed")]
    TooManyFolders {
        /// Count found.
        count: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A datagram longer than any announcement may be.
    #[error("datagram of {len} bytes exceeds {max}")]
    TooLong {
        /// Datagram length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
}

/// Why an announcement cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LanEncodeError {
    /// More folder ids than fit one datagram.
    #[error("{count} folders do not fit one announcement (at most {max})")]
    TooManyFolders {
        /// Count given.
        count: usize,
        /// Largest allowed.
        max: usize,
    },
    /// Port 0 is not a listener.
    #[error("cannot announce TCP port 0")]
    ZeroPort,
}

/// A read cursor that never indexes out of bounds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], LanDecodeError> {
        if self.rest.len() < n {
            return Err(LanDecodeError::Truncated {
                field,
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], LanDecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, LanDecodeError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }
}

impl Announcement {
    /// The datagram for this announcement.
    pub fn encode(&self) -> Result<Vec<u8>, LanEncodeError> {
        if self.folders.len() > MAX_FOLDERS {
            return Err(LanEncodeError::TooManyFolders {
                count: self.folders.len(),
                max: MAX_FOLDERS,
            });
        }
        if self.port == 0 {
            return Err(LanEncodeError::ZeroPort);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + self.folders.len() * FOLDER_ID_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(if self.query { FLAG_QUERY } else { 0 });
        out.extend_from_slice(self.peer.as_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        // Checked above: the count fits a byte.
        out.push(u8::try_from(self.folders.len()).unwrap_or(u8::MAX));
        for folder in &self.folders {
            out.extend_from_slice(folder.as_bytes());
        }
        Ok(out)
    }

    /// Reads a datagram. Bytes after the folder ids are an extension area that
    /// version 1 ignores.
    pub fn decode(datagram: &[u8]) -> Result<Self, LanDecodeError> {
        if datagram.len() > MAX_PACKET {
            return Err(LanDecodeError::TooLong {
                len: datagram.len(),
                max: MAX_PACKET,
            });
        }
        let mut r = Reader { rest: datagram };
        if r.array::<4>("magic")? != MAGIC {
            return Err(LanDecodeError::BadMagic);
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(LanDecodeError::UnsupportedVersion(version));
        }
        let flags = r.u8("flags")?;
        let peer = PeerId(r.array::<PEER_ID_LEN>("peer id")?);
        let port = u16::from_be_bytes(r.array::<2>("port")?);
        if port == 0 {
            return Err(LanDecodeError::ZeroPort);
        }
        let count = usize::from(r.u8("folder count")?);
        if count > MAX_FOLDERS {
            return Err(LanDecodeError::TooManyFolders {
                count,
                max: MAX_FOLDERS,
            });
        }
        // Bound checked before allocating: the whole list must be present.
        let list = r.take(count * FOLDER_ID_LEN, "folder ids")?;
        let folders = list
            .chunks_exact(FOLDER_ID_LEN)
            .map(|c| {
                let mut id = [0u8; FOLDER_ID_LEN];
                id.copy_from_slice(c);
                FolderId(id)
            })
            .collect();
        Ok(Self {
            query: flags & FLAG_QUERY != 0,
            peer,
            port,
            folders,
        })
    }

    /// Announcements for `folders`, split into datagrams of at most
    /// [`MAX_FOLDERS`] folder ids each.
    pub fn split(query: bool, peer: PeerId, port: u16, folders: &[FolderId]) -> Vec<Self> {
        folders
            .chunks(MAX_FOLDERS)
            .map(|chunk| Self {
                query,
                peer,
                port,
                folders: chunk.to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announcement() -> impl Strategy<Value = Announcement> {
        (
            any::<bool>(),
            any::<[u8; 32]>(),
            1u16..,
            proptest::collection::vec(any::<[u8; 20]>(), 0..=MAX_FOLDERS),
        )
            .prop_map(|(query, peer, port, folders)| Announcement {
                query,
                peer: PeerId(peer),
                port,
                folders: folders.into_iter().map(FolderId).collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trips(a in announcement(), ext in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = a.encode().unwrap();
            prop_assert!(bytes.len() <= MAX_PACKET);
            prop_assert_eq!(Announcement::decode(&bytes), Ok(a.clone()));
            // Extension bytes are ignored.
            bytes.extend_from_slice(&ext);
            prop_assert_eq!(Announcement::decode(&bytes), Ok(a));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = Announcement::decode(&bytes);
        }

        #[test]
        fn valid_prefix_with_random_rest_decodes_consistently(
            head in any::<[u8; 36]>(),
            rest in proptest::collection::vec(any::<u8>(), 0..900),
        ) {
            // Magic and version right, everything else random: reaches the deeper checks.
            let mut bytes = b"SWSY\x01".to_vec();
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(&rest);
            if let Ok(a) = Announcement::decode(&bytes) {
                let again = a.encode().unwrap();
                let mut expected = bytes[..again.len()].to_vec();
                expected[5] &= FLAG_QUERY; // unknown flags are ignored
                prop_assert_eq!(expected, again);
            }
        }

        #[test]
        fn mutated_announcements_never_panic(a in announcement(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = a.encode().unwrap();
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = Announcement::decode(&bytes);
            let _ = Announcement::decode(&bytes[..i]);
        }
    }

    #[test]
    fn fixed_layout() {
        let a = Announcement {
            query: true,
            peer: PeerId([7; 32]),
            port: 0x1234,
            folders: vec![FolderId([9; 20])],
        };
        let bytes = a.encode().unwrap();
        assert_eq!(&bytes[..6], b"SWSY\x01\x01");
        assert_eq!(&bytes[6..38], &[7; 32]);
        assert_eq!(&bytes[38..41], &[0x12, 0x34, 1]);
        assert_eq!(&bytes[41..], &[9; 20]);
    }

    #[test]
    fn typed_errors() {
        let good = Announcement {
            query: false,
            peer: PeerId([1; 32]),
            port: 1,
            folders: vec![],
        }
        .encode()
        .unwrap();
        assert_eq!(
            Announcement::decode(b""),
            Err(LanDecodeError::Truncated {
                field: "magic",
                needed: 4
            })
        );
        assert_eq!(
            Announcement::decode(b"XXXX\x01"),
            Err(LanDecodeError::BadMagic)
        );
        // Unknown flag bits are ignored (found by the fuzzer as a bad
        // invariant of the target, kept as a regression test).
        let mut v = good.clone();
        v[5] = 0xe9;
        assert!(Announcement::decode(&v).unwrap().query);
        v[5] = 0xc8;
        assert!(!Announcement::decode(&v).unwrap().query);
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(
            Announcement::decode(&v),
            Err(LanDecodeError::UnsupportedVersion(2))
        );
        let mut v = good.clone();
        v[38] = 0;
        v[39] = 0;
        assert_eq!(Announcement::decode(&v), Err(LanDecodeError::ZeroPort));
        let mut v = good.clone();
        v[40] = 33;
        assert_eq!(
            Announcement::decode(&v),
            Err(LanDecodeError::TooManyFolders { count: 33, max: 32 })
        );
        let mut v = good.clone();
        v[40] = 2;
        assert_eq!(
            Announcement::decode(&v),
            Err(LanDecodeError::Truncated {
                field: "folder ids",
                needed: 40
            })
        );
        assert!(matches!(
            Announcement::decode(&[0; 1025]),
            Err(LanDecodeError::TooLong { .. })
        ));
        let many: Vec<_> = (0..70u8).map(|i| FolderId([i; 20])).collect();
        let parts = Announcement::split(false, PeerId([1; 32]), 5, &many);
        assert_eq!(
            parts.iter().map(|p| p.folders.len()).collect::<Vec<_>>(),
            vec![32, 32, 6]
        );
    }
}
