//! The identity of one device (a node), apart from any folder.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

use crate::KeyError;

/// Length in bytes of a peer id.
pub const PEER_ID_LEN: usize = 32;

/// A device's id: 32 random bytes made once and kept in its state directory.
///
/// It tells devices apart in handshakes, version vectors and conflict names; it
/// grants nothing. Shown as 52 Base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub [u8; PEER_ID_LEN]);

/// The first 8 bytes of a peer id as a big-endian number: the key of a peer in
/// version vectors, where the full id would cost 4× the space. Collisions between
/// the handful of devices in a folder have odds of about n²/2⁶⁵.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ShortId(pub u64);

impl PeerId {
    /// A new random id from the OS random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; PEER_ID_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The 32 id bytes.
    pub const fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// The short form used in version vectors.
    pub fn short(&self) -> ShortId {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        ShortId(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
    }
}

impl fmt::Display for ShortId {
    /// 13 Base32 characters, as in conflict file names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0.to_be_bytes()))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// A peer id that is not 52 Base32 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a peer id is 52 Base32 characters (A-Z, 2-7)")]
pub struct PeerIdError;

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bytes = BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| PeerIdError)?;
        Ok(Self(bytes.try_into().map_err(|_| PeerIdError)?))
    }
}
