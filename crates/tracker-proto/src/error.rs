//! Why a datagram is not a message.

/// Why bytes are not a tracker message. Every datagram either parses or
/// gives one of these; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The datagram ended inside a field.
    #[error("datagram truncated in {field}: {needed} more bytes needed")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// Longer than any request may be.
    #[error("datagram of {len} bytes exceeds {max}")]
    TooLong {
        /// Datagram length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A connect request without BEP 15's protocol id: not a tracker client.
    #[error("connect request with protocol id {0:#x}, expected 0x41727101980")]
    BadProtocolId(u64),
    /// An action this implementation does not know.
    #[error("unknown action {0:#x}")]
    UnknownAction(u32),
    /// An announce event other than 0..=3.
    #[error("unknown announce event {0}")]
    BadEvent(u32),
    /// A scrape naming no info hash or more than [`crate::MAX_SCRAPE_HASHES`].
    #[error("scrape of {0} info hashes (1..=74 allowed)")]
    BadScrapeCount(usize),
    /// A body that is not a whole number of fixed-size items.
    #[error("{what} of {len} bytes is not a whole number of {item}-byte items")]
    RaggedList {
        /// The list.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// Size of one item.
        item: usize,
    },
    /// An endpoint family byte other than 4 or 6.
    #[error("endpoint family {0}, expected 4 or 6")]
    BadFamily(u8),
    /// A punch status other than 0 or 1.
    #[error("unknown punch status {0}")]
    BadPunchStatus(u8),
}

impl ProtoError {
    /// Whether the datagram is well framed (a full header naming a request)
    /// but has bad content, so a server may answer it with an error
    /// response (§6 of the spec) instead of dropping it.
    pub fn deserves_error_reply(&self) -> bool {
        matches!(
            self,
            Self::UnknownAction(_)
                | Self::BadEvent(_)
                | Self::BadScrapeCount(_)
                | Self::BadFamily(_)
        )
    }
}
