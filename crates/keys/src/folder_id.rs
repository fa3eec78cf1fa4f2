//! The folder id: what members announce to find each other.

use std::fmt;
use std::str::FromStr;

use data_encoding::HEXLOWER_PERMISSIVE;
use sha1::{Digest, Sha1};

use crate::{ENCRYPTED_SECRET_LEN, FOLDER_ID_LEN};

/// SHA-1 of the encrypted-peer secret. Public: it is announced to the LAN, trackers
/// and the DHT, and reveals nothing about the keys or content. Shown in lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderId(pub [u8; FOLDER_ID_LEN]);

impl FolderId {
    pub(crate) fn of_encrypted_secret(secret: &[u8; ENCRYPTED_SECRET_LEN]) -> Self {
        Self(Sha1::digest(secret).into())
    }

    /// The 20 id bytes (also the BitTorrent info-hash we announce).
    pub const fn as_bytes(&self) -> &[u8; FOLDER_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderId({self})")
    }
}

/// A folder id that is not 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a folder id is 40 hex digits, got {0:?}")]
pub struct FolderIdError(pub String);

impl FromStr for FolderId {
    type Err = FolderIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FolderIdError(s.chars().take(64).collect());
        let bytes = HEXLOWER_PERMISSIVE
            .decode(s.trim().as_bytes())
            .map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }
}
