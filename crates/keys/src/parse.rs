//! Reading a key from what a user typed.

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

use crate::{Access, EncryptedSecret, FolderKey, KeyError, RoKey, RwSecret};

/// Separators people put in keys to read them aloud; skipped.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == '-'
}

pub(crate) fn parse(input: &str) -> Result<FolderKey, KeyError> {
    let mut chars = input
        .chars()
        .enumerate()
        .filter(|(_, c)| !is_separator(*c))
        .map(|(i, c)| (i + 1, c));

    let (_, prefix) = chars.next().ok_or(KeyError::Empty)?;
    let kind = Access::from_prefix(prefix).ok_or(KeyError::UnknownPrefix { found: prefix })?;

    let mut body = Zeroizing::new(String::with_capacity(kind.text_len()));
    let mut count = 0usize;
    for (position, ch) in chars {
        let upper = ch.to_ascii_uppercase();
        if !matches!(upper, 'A'..='Z' | '2'..='7') {
            return Err(KeyError::BadChar { kind, ch, position });
        }
        count += 1;
        // Past the wanted length we only count, so a pasted novel allocates nothing.
        if count < kind.text_len() {
            body.push(upper);
        }
    }
    let got = count + 1;
    if got != kind.text_len() {
        return Err(KeyError::Length {
            kind,
            got,
            want: kind.text_len(),
        });
    }

    let bytes = Zeroizing::new(BASE32_NOPAD.decode(body.as_bytes()).map_err(|_| {
        // Only the unused low bits of the last character can fail here.
        KeyError::NonCanonical {
            kind,
            ch: body.chars().last().unwrap_or('?'),
        }
    })?);
    // The length was checked above; this only keeps the conversion panic-free.
    let length = KeyError::Length {
        kind,
        got,
        want: kind.text_len(),
    };
    match kind {
        Access::ReadWrite => Ok(FolderKey::ReadWrite(RwSecret::from_bytes(
            bytes.as_slice().try_into().map_err(|_| length)?,
        ))),
        Access::ReadOnly => Ok(FolderKey::ReadOnly(RoKey::from_bytes(
            bytes.as_slice().try_into().map_err(|_| length)?,
        )?)),
        Access::Encrypted => Ok(FolderKey::Encrypted(EncryptedSecret::from_bytes(
            bytes.as_slice().try_into().map_err(|_| length)?,
        ))),
    }
}
