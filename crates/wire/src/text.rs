//! Bounded UTF-8 strings.

use std::fmt;
use std::ops::Deref;

use crate::error::LimitError;

/// A UTF-8 string of at most `MAX` bytes: the type of every string field, so
/// that each value of a message type encodes within its limits.
///
/// On the wire: `u32` byte length, then the bytes (no terminator).
///
/// ```
/// use wire::Text;
/// let name = Text::<8>::new("laptop").unwrap();
/// assert_eq!(&*name, "laptop");
/// assert!(Text::<4>::new("laptop").is_err());
/// assert_eq!(&*Text::<4>::truncated("añb"), "añb");
/// assert_eq!(&*Text::<3>::truncated("añb"), "añ");
/// assert_eq!(&*Text::<2>::truncated("añb"), "a"); // never cuts a character
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// The limit in bytes.
    pub const MAX: usize = MAX;

    /// `s`, if it is at most `MAX` bytes.
    pub fn new(s: impl Into<String>) -> Result<Self, LimitError> {
        let s = s.into();
        if s.len() > MAX {
            return Err(LimitError {
                what: "text",
                len: s.len(),
                max: MAX,
            });
        }
        Ok(Self(s))
    }

    /// The longest prefix of `s` that fits, cut at a character boundary. For
    /// informational text (close reasons, version strings) where losing the
    /// tail is better than failing.
    pub fn truncated(s: &str) -> Self {
        let mut end = s.len().min(MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Self(s.get(..end).unwrap_or_default().to_owned())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MAX: usize> Deref for Text<MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> AsRef<str> for Text<MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = LimitError;
    fn try_from(s: String) -> Result<Self, LimitError> {
        Self::new(s)
    }
}

impl<const MAX: usize> TryFrom<&str> for Text<MAX> {
    type Error = LimitError;
    fn try_from(s: &str) -> Result<Self, LimitError> {
        Self::new(s)
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> fmt::Debug for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
