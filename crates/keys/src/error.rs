use crate::Access;

/// What is wrong with a key a user typed or a file held.
///
/// Every variant names the problem precisely enough for the user to fix the key.
/// Positions count characters of the original input from 1, spaces and dashes
/// included, so they point at what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input held nothing but spaces and dashes.
    #[error("the key is empty")]
    Empty,
    /// The first letter is not a key kind we know.
    #[error(
        "unknown key prefix {found:?}: a key starts with A (read-write), B (read-only) \
         or D (encrypted peer)"
    )]
    UnknownPrefix {
        /// The letter found where the prefix belongs.
        found: char,
    },
    /// A character outside the Base32 alphabet (A–Z, 2–7).
    #[error("{} key has an invalid character {ch:?} at position {position}{}", article(*.kind), hint(*.ch))]
    BadChar {
        /// The kind the prefix announced.
        kind: Access,
        /// The offending character.
        ch: char,
        /// Its position in the input, counted from 1.
        position: usize,
    },
    /// Too many or too few characters for the kind.
    #[error(
        "{} key has {got} characters, expected {want} (spaces and dashes not counted)",
        article(*.kind)
    )]
    Length {
        /// The kind the prefix announced.
        kind: Access,
        /// Characters found, prefix included.
        got: usize,
        /// Characters a key of this kind has, prefix included.
        want: usize,
    },
    /// The last character carries bits that no encoder would set: a typo.
    #[error("{} key's last character {ch:?} is not possible for a key of this kind (a typo?)", article(*.kind))]
    NonCanonical {
        /// The kind the prefix announced.
        kind: Access,
        /// The last character.
        ch: char,
    },
    /// The bytes of a read-only key are not an Ed25519 public key: a typo.
    #[error("read-only key is not a valid public key (a typo?)")]
    NotAPublicKey,
    /// The OS random number generator failed.
    #[error("the operating system could not supply random bytes: {0}")]
    Random(String),
}

fn article(kind: Access) -> &'static str {
    match kind {
        Access::ReadWrite => "read-write",
        Access::ReadOnly => "read-only",
        Access::Encrypted => "encrypted-peer",
    }
}

/// Base32 leaves out 0, 1, 8 and 9 because they look like letters.
fn hint(ch: char) -> &'static str {
    match ch {
        '0' => " (Base32 has no 0: did you mean O?)",
        '1' => " (Base32 has no 1: did you mean I or L?)",
        '8' => " (Base32 has no 8: did you mean B?)",
        '9' => " (Base32 has no 9)",
        _ => " (a key has only letters A-Z and digits 2-7)",
    }
}
