//! Folder keys of swarmsync.
//!
//! # Brief overview
//!
//! A folder is known by a secret, and the secret is all a device needs to join.
//! There are three levels, each derived one way from the level above:
//!
//! ```text
//! RwSecret  "A…" 20 random bytes          read-write: may sign changes
//!    │ HKDF → Ed25519 seed → public key
//! RoKey     "B…" 32-byte Ed25519 key      read-only: verifies changes, reads content
//!    │ HKDF
//! EncryptedSecret "D…" 20 bytes           encrypted peer: stores ciphertext only
//!    │ SHA-1
//! FolderId  20 bytes, shown in hex        announced on the LAN, tracker and DHT
//! ```
//!
//! Beside the chain each level derives the keys its holders need: the SRP password
//! (every member), the read-only MAC key and the content key (read-only and up), the
//! signing key (read-write only). The exact labels are in [`derive`] and in
//! `docs/PROTOCOL.md`.
//!
//! ```
//! use keys::{Access, FolderKey, RwSecret};
//!
//! let rw = RwSecret::generate().expect("the OS has randomness");
//! let text = rw.to_string();                      // "A" + 32 Base32 characters
//! let parsed: FolderKey = text.to_lowercase().parse().unwrap();
//! assert_eq!(parsed.access(), Access::ReadWrite);
//!
//! let ro = rw.ro_key();
//! let signature = rw.signing_key().sign(b"record", b"hello");
//! ro.verify(b"record", b"hello", &signature).unwrap();
//! assert_eq!(parsed.folder_id(), ro.encrypted_secret().folder_id());
//! ```
//!
//! Nothing here does I/O except [`RwSecret::generate`], which asks the OS for
//! randomness. Secret material is zeroized on drop and `Debug` never prints it;
//! `Display` does, on purpose, because showing a key to its owner is its job.
#![forbid(unsafe_code)]

mod derive;
mod error;
mod folder_id;
mod parse;
mod peer_id;
mod secret;
mod sign;

pub use derive::{ContentKey, Label, RoMacKey, SrpPassword};
pub use error::KeyError;
pub use folder_id::{FolderId, FolderIdError};
pub use peer_id::{PEER_ID_LEN, PeerId, PeerIdError, ShortId};
pub use secret::{Access, EncryptedSecret, FolderKey, RoKey, RwSecret};
pub use sign::{FolderSigningKey, SIGNATURE_LEN, Signature, SignatureError};

/// Length in bytes of a read-write secret.
pub const RW_SECRET_LEN: usize = 20;
/// Length in bytes of a read-only key (an Ed25519 public key).
pub const RO_KEY_LEN: usize = 32;
/// Length in bytes of an encrypted-peer secret.
pub const ENCRYPTED_SECRET_LEN: usize = 20;
/// Length in bytes of a folder id (a SHA-1 digest).
pub const FOLDER_ID_LEN: usize = 20;
