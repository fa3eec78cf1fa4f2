//! The names a relay sees (`docs/protocol/relay.md` §2): folder tags,
//! pairing tokens and session ids.

use std::fmt;

use keys::{FolderId, PeerId};

/// BLAKE3 context of [`FolderTag::of`].
pub const FOLDER_TAG_CONTEXT: &str = "swarmsync v1 relay folder tag";
/// BLAKE3 context of [`PairingToken::of`].
pub const PAIRING_CONTEXT: &str = "swarmsync v1 relay pairing";

/// What peers of a folder register under: derived from the folder id, which
/// the relay is not told.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FolderTag(pub [u8; 32]);

impl FolderTag {
    /// The tag of `folder`.
    pub fn of(folder: &FolderId) -> Self {
        Self(blake3::derive_key(FOLDER_TAG_CONTEXT, folder.as_bytes()))
    }
}

impl fmt::Debug for FolderTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderTag({})", hex8(&self.0))
    }
}

/// Proof, passed through the relay, that whoever asks to be spliced to a
/// peer knows the folder id (the relay is not told it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairingToken(pub [u8; 32]);

impl PairingToken {
    /// The token of the pair `a`, `b` in `folder`; the same whichever order.
    pub fn of(folder: &FolderId, a: &PeerId, b: &PeerId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut material = [0u8; 20 + 32 + 32];
        let (f, rest) = material.split_at_mut(20);
        let (l, h) = rest.split_at_mut(32);
        f.copy_from_slice(folder.as_bytes());
        l.copy_from_slice(lo.as_bytes());
        h.copy_from_slice(hi.as_bytes());
        Self(blake3::derive_key(PAIRING_CONTEXT, &material))
    }

    /// Whether `self` is the token of `me` and `from` in `folder`, compared
    /// in constant time (an invited peer checks this before accepting).
    pub fn verify(&self, folder: &FolderId, me: &PeerId, from: &PeerId) -> bool {
        let want = Self::of(folder, me, from);
        let diff = self
            .0
            .iter()
            .zip(want.0.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        diff == 0
    }
}

impl fmt::Debug for PairingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingToken({})", hex8(&self.0))
    }
}

/// The relay's name for one invitation; only the invited peer learns it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 32]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex8(&self.0))
    }
}

/// The first 8 bytes in hex: enough to tell values apart in logs.
fn hex8(bytes: &[u8; 32]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
