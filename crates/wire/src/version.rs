//! The protocol version and how two peers agree on one.

/// The protocol version this crate speaks, the highest it knows.
pub const PROTOCOL_VERSION: u16 = 1;

/// The lowest protocol version this crate still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The peer's Hello names a version we cannot speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "peer speaks protocol version {theirs}, we speak {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}"
)]
pub struct VersionError {
    /// The version in the peer's Hello.
    pub theirs: u16,
}

/// The version a connection uses, given the one in the peer's
/// [`Hello`](crate::Hello): the lower of the two peers' highest versions.
/// Each side computes it alike, and both then send only messages and fields
/// of that version. An error is answered with
/// [`CloseCode::UnsupportedVersion`](crate::CloseCode::UnsupportedVersion).
///
/// ```
/// assert_eq!(wire::negotiate(1), Ok(1));
/// assert_eq!(wire::negotiate(7), Ok(wire::PROTOCOL_VERSION));
/// assert!(wire::negotiate(0).is_err());
/// ```
pub const fn negotiate(theirs: u16) -> Result<u16, VersionError> {
    let common = if theirs < PROTOCOL_VERSION {
        theirs
    } else {
        PROTOCOL_VERSION
    };
    if common < MIN_PROTOCOL_VERSION {
        return Err(VersionError { theirs });
    }
    Ok(common)
}
