//! The relay protocol, sans-IO: the messages two peers and a relay exchange
//! to splice two TCP connections, the names the relay sees (folder tags,
//! pairing tokens, session ids) and the relay's bounded state machine. The
//! wire format is specified in `docs/protocol/relay.md`.
//!
//! # Brief overview
//!
//! - Every connection starts with [`PREAMBLE`] both ways
//!   ([`check_preamble`]), then [`ClientMessage`]s one way and
//!   [`RelayMessage`]s the other, each a [`Header`] (checked before its body
//!   is read) and an exact-length body. [`MessageReader`] cuts them from a
//!   stream without reading past a message (after `Spliced` the bytes are
//!   the peers').
//! - [`FolderTag::of`] and [`PairingToken::of`] derive what a peer tells the
//!   relay from the folder id, which the relay is not told.
//! - [`Relay`] is the whole server without sockets: registrations by tag,
//!   invitations with deadlines, spliced pairs, all capped by
//!   [`RelayConfig`]. Feed it with `handle_*`, do what
//!   [`Relay::poll_output`] says.
//! - [`TokenBucket`] paces the bytes of one spliced direction.
//!
//! Nothing here owns a socket, a clock or a random number generator: time
//! comes in as `now: Instant`, keys and seeds as arguments.
//!
//! # Example: an invitation, from Connect to Splice
//!
//! ```
//! use std::time::Instant;
//! use keys::{FolderId, PeerId};
//! use relay_proto::{ClientMessage, FolderTag, Output, PairingToken, Relay, RelayConfig, RelayMessage};
//!
//! let folder = FolderId([7; 20]);
//! let (p, q) = (PeerId([1; 32]), PeerId([2; 32]));
//! let tag = FolderTag::of(&folder);
//! let now = Instant::now();
//! let mut relay = Relay::new(RelayConfig::default(), [9; 32], 1, now).unwrap();
//! let ip = "192.0.2.1".parse().unwrap();
//!
//! // P's control connection (1) registers; Q's data connection (2) connects.
//! relay.handle_connection(now, 1, ip).unwrap();
//! relay.handle_message(now, 1, ClientMessage::Register { tag, peer: p });
//! assert_eq!(relay.poll_output(), Some(Output::Send { conn: 1, message: RelayMessage::Registered }));
//! relay.handle_connection(now, 2, ip).unwrap();
//! let token = PairingToken::of(&folder, &q, &p);
//! relay.handle_message(now, 2, ClientMessage::Connect { tag, target: p, from: q, token });
//! let Some(Output::Send { conn: 1, message: RelayMessage::Invite { from, token, session } }) =
//!     relay.poll_output() else { panic!("no invitation") };
//!
//! // P checks the token and accepts on a new connection (3).
//! assert!(token.verify(&folder, &p, &from));
//! relay.handle_connection(now, 3, ip).unwrap();
//! relay.handle_message(now, 3, ClientMessage::Accept { session });
//! assert_eq!(relay.poll_output(), Some(Output::Splice { dialer: 2, acceptor: 3 }));
//! ```
#![forbid(unsafe_code)]

mod bucket;
mod config;
mod derive;
mod error;
mod message;
mod reader;
mod relay;

pub use bucket::TokenBucket;
pub use config::{ConfigError, RelayConfig};
pub use derive::{FOLDER_TAG_CONTEXT, FolderTag, PAIRING_CONTEXT, PairingToken, SessionId};
pub use error::ProtoError;
pub use message::{
    ClientMessage, ErrorCode, HEADER_LEN, Header, MAGIC, MAX_BODY_LEN, MAX_PEERS, PREAMBLE,
    PREAMBLE_LEN, RelayMessage, VERSION, check_preamble,
};
pub use reader::{Incoming, MessageReader};
pub use relay::{ConnId, Output, Relay, SWEEP, Stats};

#[cfg(test)]
mod tests;
