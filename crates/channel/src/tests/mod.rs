//! In-crate tests: in-memory pairs (quinn's `Pair` idea), a man in the middle,
//! properties, and real TCP on loopback.

mod handshake;
mod props;
mod records;
mod tcp;
mod util;
