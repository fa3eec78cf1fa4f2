//! The three key levels and their textual form.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::VerifyingKey;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::derive::{self, ContentKey, Label, RoMacKey, SrpPassword};
use crate::sign::{FolderSigningKey, Signature, SignatureError};
use crate::{ENCRYPTED_SECRET_LEN, FolderId, KeyError, RO_KEY_LEN, RW_SECRET_LEN};

/// The access a key grants, from least to most: `Encrypted < ReadOnly < ReadWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Stores and serves ciphertext; can read nothing.
    Encrypted,
    /// Reads everything and verifies changes; cannot make one.
    ReadOnly,
    /// Reads, and signs changes.
    ReadWrite,
}

impl Access {
    /// The letter that starts a key of this kind.
    pub const fn prefix(self) -> char {
        match self {
            Self::ReadWrite => 'A',
            Self::ReadOnly => 'B',
            Self::Encrypted => 'D',
        }
    }

    /// The kind whose keys start with `prefix` (either case).
    pub fn from_prefix(prefix: char) -> Option<Self> {
        match prefix.to_ascii_uppercase() {
            'A' => Some(Self::ReadWrite),
            'B' => Some(Self::ReadOnly),
            'D' => Some(Self::Encrypted),
            _ => None,
        }
    }

    /// Bytes of key material behind the prefix.
    pub const fn byte_len(self) -> usize {
        match self {
            Self::ReadWrite => RW_SECRET_LEN,
            Self::ReadOnly => RO_KEY_LEN,
            Self::Encrypted => ENCRYPTED_SECRET_LEN,
        }
    }

    /// Characters of the whole key, prefix included.
    pub const fn text_len(self) -> usize {
        1 + (self.byte_len() * 8).div_ceil(5)
    }

    /// A stable lower-case name (`read-write`, `read-only`, `encrypted`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Encrypted => "encrypted",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn write_key(f: &mut fmt::Formatter<'_>, access: Access, bytes: &[u8]) -> fmt::Result {
    let body = Zeroizing::new(BASE32_NOPAD.encode(bytes));
    write!(f, "{}{}", access.prefix(), body.as_str())
}

/// A read-write secret: 20 random bytes, shown as `A` + Base32.
///
/// It derives everything else. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RwSecret([u8; RW_SECRET_LEN]);

impl RwSecret {
    /// A new secret from the OS random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; RW_SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The secret with these bytes.
    pub const fn from_bytes(bytes: [u8; RW_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    pub const fn as_bytes(&self) -> &[u8; RW_SECRET_LEN] {
        &self.0
    }

    /// The folder's Ed25519 signing key.
    pub fn signing_key(&self) -> FolderSigningKey {
        let seed: Zeroizing<[u8; 32]> = derive::expand(&self.0, Label::SigningKey);
        FolderSigningKey::from_seed(&seed)
    }

    /// The read-only key: the public half of [`Self::signing_key`].
    pub fn ro_key(&self) -> RoKey {
        self.signing_key().ro_key()
    }
}

impl fmt::Display for RwSecret {
    /// The key as the user sees it: `A` followed by 32 Base32 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key(f, Access::ReadWrite, &self.0)
    }
}

impl fmt::Debug for RwSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RwSecret(<redacted>)")
    }
}

/// A read-only key: the folder's Ed25519 public key, shown as `B` + Base32.
///
/// It verifies signed changes and derives the content and MAC keys. Though a
/// public key to the cryptography, it is a secret to the folder: it grants read
/// access, so `Debug` does not show it either.
#[derive(Clone, PartialEq, Eq)]
pub struct RoKey(VerifyingKey);

impl RoKey {
    /// The read-only key with these bytes, if they are an Ed25519 public key.
    pub fn from_bytes(bytes: &[u8; RO_KEY_LEN]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::NotAPublicKey)
    }

    pub(crate) const fn from_verifying_key(key: VerifyingKey) -> Self {
        Self(key)
    }

    /// The 32 bytes of the public key.
    pub fn as_bytes(&self) -> &[u8; RO_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The encrypted-peer secret, one way from this key.
    pub fn encrypted_secret(&self) -> EncryptedSecret {
        let bytes: Zeroizing<[u8; ENCRYPTED_SECRET_LEN]> =
            derive::expand(self.as_bytes(), Label::EncryptedSecret);
        EncryptedSecret(*bytes)
    }

    /// The key read-only (and read-write) peers prove their access with.
    pub fn ro_mac_key(&self) -> RoMacKey {
        RoMacKey::new(derive::expand(self.as_bytes(), Label::RoMacKey))
    }

    /// The key that encrypts content for encrypted peers.
    pub fn content_key(&self) -> ContentKey {
        ContentKey::new(derive::expand(self.as_bytes(), Label::ContentKey))
    }

    /// Checks `signature` over `message` signed in `context` by the folder key.
    pub fn verify(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        crate::sign::verify(&self.0, context, message, signature)
    }

    /// Checks many signatures, each over its message in `context`, at once:
    /// `Ok` if every one holds. Much faster than one by one for a batch of
    /// records; on `Err`, check them one by one to find the bad ones.
    pub fn verify_all(
        &self,
        context: &[u8],
        items: &[(&[u8], &Signature)],
    ) -> Result<(), SignatureError> {
        crate::sign::verify_all(&self.0, context, items)
    }
}

impl fmt::Display for RoKey {
    /// `B` followed by 52 Base32 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key(f, Access::ReadOnly, self.as_bytes())
    }
}

impl fmt::Debug for RoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoKey(<redacted>)")
    }
}

/// The encrypted-peer secret, shown as `D` + Base32.
///
/// Every member knows it: it gives the folder id and the SRP password, and nothing
/// that reads content.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct EncryptedSecret([u8; ENCRYPTED_SECRET_LEN]);

impl EncryptedSecret {
    /// The secret with these bytes.
    pub const fn from_bytes(bytes: [u8; ENCRYPTED_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    pub const fn as_bytes(&self) -> &[u8; ENCRYPTED_SECRET_LEN] {
        &self.0
    }

    /// The folder id: SHA-1 of the secret bytes.
    pub fn folder_id(&self) -> FolderId {
        FolderId::of_encrypted_secret(&self.0)
    }

    /// The password every member uses in the SRP handshake.
    pub fn srp_password(&self) -> SrpPassword {
        SrpPassword::new(derive::expand(&self.0, Label::SrpPassword))
    }
}

impl fmt::Display for EncryptedSecret {
    /// `D` followed by 32 Base32 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key(f, Access::Encrypted, &self.0)
    }
}

impl fmt::Debug for EncryptedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptedSecret(<redacted>)")
    }
}

/// Any folder key, as a user gives it.
#[derive(Clone, PartialEq, Eq)]
pub enum FolderKey {
    /// An `A…` key.
    ReadWrite(RwSecret),
    /// A `B…` key.
    ReadOnly(RoKey),
    /// A `D…` key.
    Encrypted(EncryptedSecret),
}

impl FolderKey {
    /// The access this key grants.
    pub const fn access(&self) -> Access {
        match self {
            Self::ReadWrite(_) => Access::ReadWrite,
            Self::ReadOnly(_) => Access::ReadOnly,
            Self::Encrypted(_) => Access::Encrypted,
        }
    }

    /// The signing key, for a read-write key only.
    pub fn signing_key(&self) -> Option<FolderSigningKey> {
        match self {
            Self::ReadWrite(rw) => Some(rw.signing_key()),
            _ => None,
        }
    }

    /// The read-only key, for a read-write or read-only key.
    pub fn ro_key(&self) -> Option<RoKey> {
        match self {
            Self::ReadWrite(rw) => Some(rw.ro_key()),
            Self::ReadOnly(ro) => Some(ro.clone()),
            Self::Encrypted(_) => None,
        }
    }

    /// The encrypted-peer secret, which every key derives.
    pub fn encrypted_secret(&self) -> EncryptedSecret {
        match self {
            Self::ReadWrite(rw) => rw.ro_key().encrypted_secret(),
            Self::ReadOnly(ro) => ro.encrypted_secret(),
            Self::Encrypted(enc) => enc.clone(),
        }
    }

    /// The folder id, which every key derives.
    pub fn folder_id(&self) -> FolderId {
        self.encrypted_secret().folder_id()
    }
}

impl FromStr for FolderKey {
    type Err = KeyError;

    /// Parses a key in any case, with or without spaces and dashes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse::parse(s)
    }
}

impl fmt::Display for FolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadWrite(k) => k.fmt(f),
            Self::ReadOnly(k) => k.fmt(f),
            Self::Encrypted(k) => k.fmt(f),
        }
    }
}

impl fmt::Debug for FolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadWrite(k) => k.fmt(f),
            Self::ReadOnly(k) => k.fmt(f),
            Self::Encrypted(k) => k.fmt(f),
        }
    }
}
