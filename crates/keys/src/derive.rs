//! One-way derivations: HKDF-SHA256 with a fixed label per purpose.
//!
//! Every derived key is `HKDF-SHA256(salt = none, ikm = parent key bytes, info = label)`,
//! where "salt = none" is RFC 5869's default of 32 zero bytes. The labels are ASCII,
//! fixed forever for protocol version 1, and listed in `docs/PROTOCOL.md`.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The purpose of a derived key; its HKDF `info` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Label {
    /// RW secret → 32-byte Ed25519 seed.
    SigningKey,
    /// RO key → 20-byte encrypted-peer secret.
    EncryptedSecret,
    /// RO key → 32-byte MAC key for read-only access proofs.
    RoMacKey,
    /// RO key → 32-byte content key for encrypted peers.
    ContentKey,
    /// Encrypted-peer secret → 32-byte SRP password.
    SrpPassword,
}

impl Label {
    /// The exact HKDF `info` bytes.
    pub const fn info(self) -> &'static [u8] {
        match self {
            Self::SigningKey => b"swarmsync v1 signing key",
            Self::EncryptedSecret => b"swarmsync v1 encrypted-peer secret",
            Self::RoMacKey => b"swarmsync v1 read-only mac key",
            Self::ContentKey => b"swarmsync v1 content key",
            Self::SrpPassword => b"swarmsync v1 srp password",
        }
    }
}

/// `HKDF-SHA256(salt = none, ikm, info = label)` to `N` bytes.
pub(crate) fn expand<const N: usize>(ikm: &[u8], label: Label) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32, "HKDF-SHA256 yields at most 8160 bytes") };
    let mut okm = Zeroizing::new([0u8; N]);
    // Cannot fail: HKDF only refuses outputs longer than 255 hashes, ruled out above.
    let _ = Hkdf::<Sha256>::new(None, ikm).expand(label.info(), okm.as_mut());
    okm
}

/// `len(context) as u32 big-endian ‖ context ‖ message`: the bytes that signatures
/// and MACs cover, so that no (context, message) pair can pass for another.
pub(crate) fn framed(context: &[u8], message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(context.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + context.len() + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(message);
    out
}

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            pub(crate) fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
                Self(*bytes)
            }

            /// The raw key bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_bytes!(
    /// The SRP-6a password all members of a folder share (32 bytes).
    SrpPassword
);
secret_bytes!(
    /// The key that encrypts names and content for encrypted peers (32 bytes).
    ContentKey
);
secret_bytes!(
    /// The MAC key with which a read-only peer proves its access (32 bytes).
    RoMacKey
);

impl RoMacKey {
    /// `BLAKE3-keyed(key, u32be(len(context)) ‖ context ‖ message)`.
    pub fn mac(&self, context: &[u8], message: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, &framed(context, message)).as_bytes()
    }

    /// Whether `tag` is the MAC of `message` in `context`, compared in constant time.
    pub fn verify(&self, context: &[u8], message: &[u8], tag: &[u8; 32]) -> bool {
        // blake3::Hash compares in constant time.
        blake3::keyed_hash(&self.0, &framed(context, message)) == blake3::Hash::from_bytes(*tag)
    }
}
