//! The secure channel of swarmsync: what every connection runs, over any ordered
//! byte stream (TCP now; QUIC streams and relays later).
//!
//! # Brief overview
//!
//! ```text
//! both:   hello (cleartext: magic, versions, folder id, peer id, nonce)
//! client: A            server: B                 (roles: lower peer id is the SRP client)
//! client: M1           server: M2 ‖ [access proof]        (SRP-6a, RFC 5054 3072-bit, SHA-256)
//! client: [access proof]                                  ([..] = AES-128-GCM record)
//! both:   [data]* … [key update] … [data]* [close]
//! ```
//!
//! The core is sans-IO (quinn/rustls style): [`Handshake`] and [`Session`] own no
//! socket, clock or RNG; time and randomness are arguments. [`establish`] is the
//! thin tokio adapter that drives them over an `AsyncRead + AsyncWrite` and gives a
//! [`SecureStream`]. The layer above (`wire`) sees a plaintext byte stream.
//!
//! ```
//! use std::time::Instant;
//! use channel::{ChannelConfig, FolderCredentials, Handshake, OsRandom};
//! use keys::{FolderKey, PeerId, RwSecret};
//!
//! let key = FolderKey::ReadWrite(RwSecret::generate().unwrap());
//! let ro = FolderKey::ReadOnly(key.ro_key().unwrap());
//! let a = ChannelConfig::new(PeerId([1; 32]), FolderCredentials::new(&key));
//! let b = ChannelConfig::new(PeerId([2; 32]), FolderCredentials::new(&ro));
//! let now = Instant::now();
//! let mut x = Handshake::new(&a, now, &mut OsRandom).unwrap();
//! let mut y = Handshake::new(&b, now, &mut OsRandom).unwrap();
//! while !(x.is_established() && y.is_established()) {
//!     if let Some(bytes) = x.poll_output() { y.handle_input(&bytes).unwrap(); }
//!     if let Some(bytes) = y.poll_output() { x.handle_input(&bytes).unwrap(); }
//! }
//! let (mut x, mut y) = (x.take_session().unwrap(), y.take_session().unwrap());
//! assert_eq!(x.peer_access(), keys::Access::ReadOnly);
//! assert_eq!(y.peer_access(), keys::Access::ReadWrite);
//! x.encrypt(b"hello").unwrap();
//! y.handle_input(&x.poll_output().unwrap()).unwrap();
//! assert_eq!(y.poll_plaintext().unwrap(), b"hello");
//! ```
//!
//! The bytes on the wire are specified in `docs/protocol/channel.md`.
#![forbid(unsafe_code)]

mod adapter;
mod config;
mod error;
mod handshake;
mod proof;
mod record;
mod rng;
mod session;
mod srp;

#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(any(test, fuzzing))]
mod testkit;
#[cfg(test)]
mod tests;

pub use adapter::{SecureStream, establish};
pub use config::{
    ChannelConfig, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_REKEY_AFTER, FolderCredentials,
};
pub use error::{AbortCode, ChannelError, Violation};
pub use handshake::{Handshake, Role, SUPPORTED_VERSIONS};
pub use proof::PeerAccess;
pub use record::{MAX_PAYLOAD, MAX_RECORD_LEN};
pub use rng::{OsRandom, RandomSource};
pub use session::{Session, SessionInfo};
pub use srp::MODULUS_LEN;

/// Hard limit of records under one key in one direction (2^32, well inside
/// AES-GCM's bounds). A receiver fails a peer that goes past it; senders update
/// their key long before (see [`ChannelConfig::with_rekey_after`]).
pub const MAX_RECORDS_PER_KEY: u64 = 1 << 32;
