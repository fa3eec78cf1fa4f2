//! The byte cursor every decoder reads through, and the writers encoders use.
//!
//! Decoders never index a slice: they ask the [`Reader`] for a number of bytes
//! and get either those bytes or [`DecodeError::UnexpectedEnd`] naming the field
//! that ran past the end. Counts and lengths are checked against their limit
//! and against the bytes that remain *before* anything is allocated, so a
//! claimed length can never make us reserve memory the frame does not hold.

use bytes::Bytes;

use crate::Text;
use crate::error::DecodeError;
use crate::frame::ZERO_COPY_MIN_LEN;

/// A cursor over one frame's payload (the rustls `codec::Reader` pattern).
///
/// When the payload lives in a [`Bytes`] (the streaming decoder), byte-string
/// fields are handed out as zero-copy slices of it; otherwise they are copied.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    owner: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    /// A reader over bytes that are copied when a byte string is read.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            owner: None,
        }
    }

    /// A reader over all of `owner`, which byte strings are sliced from.
    pub(crate) fn shared(owner: &'a Bytes) -> Self {
        Self {
            rest: owner.as_ref(),
            owner: Some(owner),
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::UnexpectedEnd { field })?;
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::UnexpectedEnd { field })?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    /// A `u8` that must be 0 (false) or 1 (true).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue {
                field,
                reason: "a flag byte must be 0 or 1",
            }),
        }
    }

    /// A `u32` length, checked against `max` and against what remains, then
    /// that many bytes.
    pub(crate) fn len_prefixed(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)?;
        let len = check_max(field, len, max)?;
        self.take(len, field)
    }

    /// A length-prefixed byte string as [`Bytes`]: a slice of the owner when
    /// there is one, a copy otherwise.
    pub(crate) fn bytes(&mut self, field: &'static str, max: usize) -> Result<Bytes, DecodeError> {
        // Small strings are copied so they do not keep a large buffer alive.
        self.bytes_sliced_from(field, max, ZERO_COPY_MIN_LEN)
    }

    /// [`bytes`](Self::bytes) for a string that is nearly all of its frame
    /// (a block): sliced from the owner whatever its size, since keeping the
    /// frame alive costs next to nothing more than the string itself.
    pub(crate) fn bytes_of_frame(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<Bytes, DecodeError> {
        self.bytes_sliced_from(field, max, 0)
    }

    /// A length-prefixed byte string, sliced from the owner when there is one
    /// and the string has at least `min_sliced` bytes, else copied.
    fn bytes_sliced_from(
        &mut self,
        field: &'static str,
        max: usize,
        min_sliced: usize,
    ) -> Result<Bytes, DecodeError> {
        let slice = self.len_prefixed(field, max)?;
        Ok(match self.owner {
            // `slice` was cut from `owner`, so `slice_ref` cannot fail.
            Some(owner) if slice.len() >= min_sliced => owner.slice_ref(slice),
            _ => Bytes::copy_from_slice(slice),
        })
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let slice = self.len_prefixed(field, max)?;
        std::str::from_utf8(slice).map_err(|_| DecodeError::BadUtf8 { field })
    }

    /// A length-prefixed UTF-8 string as [`Text`], bounded by its type.
    pub(crate) fn text<const MAX: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Text<MAX>, DecodeError> {
        let s = self.str(field, MAX)?;
        Text::new(s).map_err(|e| DecodeError::TooLong {
            field,
            len: e.len as u64,
            max: e.max as u64,
        })
    }

    /// A `u32` element count, checked against `max` and against what remains
    /// (each element takes at least `min_elem_len` bytes), so the caller may
    /// allocate `count` elements.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_elem_len: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(field)?;
        let count = check_max(field, count, max)?;
        if count.saturating_mul(min_elem_len) > self.remaining() {
            return Err(DecodeError::UnexpectedEnd { field });
        }
        Ok(count)
    }

    /// Consumes everything that is left.
    pub(crate) fn skip_rest(&mut self) {
        self.rest = &[];
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything was read.
    pub(crate) fn finish(self, ty: u8) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { ty, extra }),
        }
    }
}

fn check_max(field: &'static str, len: u32, max: usize) -> Result<usize, DecodeError> {
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(DecodeError::TooLong {
            field,
            len: u64::from(len),
            max: max as u64,
        }),
    }
}

/// Big-endian writers for `Vec<u8>`.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    /// A `u32` length or count. Callers only pass values their types bound far
    /// below `u32::MAX`.
    fn put_len(&mut self, len: usize);
    /// A `u32` length, then the bytes.
    fn put_prefixed(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_len(&mut self, len: usize) {
        self.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
    fn put_prefixed(&mut self, bytes: &[u8]) {
        self.put_len(bytes.len());
        self.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_the_field_that_ran_out() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16("a"), Ok(1));
        assert_eq!(r.u16("b"), Err(DecodeError::UnexpectedEnd { field: "b" }));
        // A failed read consumes nothing.
        assert_eq!(r.u8("c"), Ok(2));
        assert_eq!(r.finish(0), Ok(()));
    }

    #[test]
    fn count_is_bounded_before_allocation() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.count("n", 100, 1),
            Err(DecodeError::TooLong {
                len: 0xffff_ffff,
                max: 100,
                ..
            })
        ));
        // Within the limit, but more than the bytes left can hold.
        let mut r = Reader::new(&[0, 0, 0, 10, 1, 2, 3]);
        assert_eq!(
            r.count("n", 100, 1),
            Err(DecodeError::UnexpectedEnd { field: "n" })
        );
    }

    #[test]
    fn shared_reader_slices_without_copying() {
        let len = ZERO_COPY_MIN_LEN;
        let mut buf = (len as u32).to_be_bytes().to_vec();
        buf.resize(4 + len, 7);
        buf.extend_from_slice(&[0, 0, 0, 2, 7, 8]);
        let owner = Bytes::from(buf);
        let mut r = Reader::shared(&owner);
        let big = r.bytes("big", len).unwrap();
        assert_eq!(big.as_ptr(), owner[4..].as_ptr());
        let small = r.bytes("small", 10).unwrap();
        assert_eq!(&small[..], &[7, 8]);
        assert_ne!(small.as_ptr(), owner[len + 8..].as_ptr());
        // A block is sliced whatever its size.
        let mut r = Reader::shared(&owner);
        r.bytes("big", len).unwrap();
        let block = r.bytes_of_frame("block", 10).unwrap();
        assert_eq!(block.as_ptr(), owner[len + 8..].as_ptr());
        // Without an owner there is nothing to slice from.
        let mut r = Reader::new(&owner);
        r.bytes("big", len).unwrap();
        assert_eq!(&r.bytes_of_frame("block", 10).unwrap()[..], &[7, 8]);
    }
}
