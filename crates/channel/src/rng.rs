//! Where the handshake's randomness comes from: always the caller's choice.

use crate::ChannelError;

/// A source of random bytes for nonces and SRP ephemerals.
///
/// The state machines never reach for the OS themselves, so tests can be
/// deterministic. Production code uses [`OsRandom`]. Any
/// `FnMut(&mut [u8]) -> Result<(), ChannelError>` closure is a source too.
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), ChannelError>;
}

/// The operating system's random number generator (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), ChannelError> {
        getrandom::fill(dest).map_err(|e| ChannelError::Random(e.to_string()))
    }
}

impl<F> RandomSource for F
where
    F: FnMut(&mut [u8]) -> Result<(), ChannelError>,
{
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), ChannelError> {
        self(dest)
    }
}
