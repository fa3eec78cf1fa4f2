//! A bounded bit set over a run of blocks.

use crate::MAX_AVAILABILITY_BITS;
use crate::error::LimitError;

/// `len` bits, bit `i` meaning "block `i` is held".
///
/// On the wire: `u32` bit count `len`, then `ceil(len / 8)` bytes. Bit `i` is
/// in byte `i / 8` under mask `0x80 >> (i % 8)` (most significant bit first, as
/// in BitTorrent). Padding bits after `len` are zero; a decoder rejects a
/// bitfield whose padding is not, so every bitfield has one encoding.
///
/// ```
/// use wire::Bitfield;
/// let mut bits = Bitfield::new(10).unwrap();
/// assert!(bits.set(0, true) && bits.set(9, true));
/// assert!(!bits.set(10, true)); // out of range: nothing changes
/// assert_eq!(bits.as_bytes(), &[0x80, 0x40]);
/// assert_eq!(bits.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    len: usize,
    bytes: Vec<u8>,
}

impl Bitfield {
    /// `len` clear bits; `len` is at most [`MAX_AVAILABILITY_BITS`].
    pub fn new(len: usize) -> Result<Self, LimitError> {
        check_len(len)?;
        Ok(Self {
            len,
            bytes: vec![0; len.div_ceil(8)],
        })
    }

    /// `len` set bits: every block held.
    pub fn full(len: usize) -> Result<Self, LimitError> {
        let mut bits = Self::new(len)?;
        bits.bytes.fill(0xff);
        bits.clear_padding();
        Ok(bits)
    }

    /// The bits of `iter`, in order.
    pub fn from_bools(iter: impl IntoIterator<Item = bool>) -> Result<Self, LimitError> {
        let mut bytes = Vec::new();
        let mut len = 0usize;
        for bit in iter {
            check_len(len + 1)?;
            if len.is_multiple_of(8) {
                bytes.push(0);
            }
            if bit && let Some(byte) = bytes.last_mut() {
                *byte |= mask(len);
            }
            len += 1;
        }
        Ok(Self { len, bytes })
    }

    /// From the wire form; `None` if the bytes do not match `len` or padding
    /// bits are set.
    pub(crate) fn from_wire(len: usize, bytes: &[u8]) -> Option<Self> {
        if len > MAX_AVAILABILITY_BITS || bytes.len() != len.div_ceil(8) {
            return None;
        }
        let bits = Self {
            len,
            bytes: bytes.to_vec(),
        };
        let mut canonical = bits.clone();
        canonical.clear_padding();
        (canonical == bits).then_some(bits)
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `index`; false when out of range.
    pub fn get(&self, index: usize) -> bool {
        index < self.len
            && self
                .bytes
                .get(index / 8)
                .is_some_and(|b| b & mask(index) != 0)
    }

    /// Sets bit `index` to `value`. Returns false, changing nothing, when
    /// `index` is out of range.
    pub fn set(&mut self, index: usize, value: bool) -> bool {
        if index >= self.len {
            return false;
        }
        match self.bytes.get_mut(index / 8) {
            Some(byte) if value => *byte |= mask(index),
            Some(byte) => *byte &= !mask(index),
            None => return false,
        }
        true
    }

    /// How many bits are set.
    pub fn count_ones(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// True when every bit is set.
    pub fn is_full(&self) -> bool {
        self.count_ones() == self.len
    }

    /// The indices of set bits, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// The packed bytes, as on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn clear_padding(&mut self) {
        let used = self.len % 8;
        if used != 0
            && let Some(last) = self.bytes.last_mut()
        {
            *last &= !(0xff >> used);
        }
    }
}

const fn mask(index: usize) -> u8 {
    0x80 >> (index % 8)
}

fn check_len(len: usize) -> Result<(), LimitError> {
    if len > MAX_AVAILABILITY_BITS {
        return Err(LimitError {
            what: "bitfield",
            len,
            max: MAX_AVAILABILITY_BITS,
        });
    }
    Ok(())
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{} set)", self.count_ones(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_must_be_zero() {
        assert!(Bitfield::from_wire(3, &[0xe0]).is_some());
        assert!(Bitfield::from_wire(3, &[0xf0]).is_none());
        assert!(Bitfield::from_wire(3, &[0xe0, 0]).is_none());
        assert!(Bitfield::from_wire(0, &[]).is_some());
    }

    #[test]
    fn full_clears_padding() {
        let bits = Bitfield::full(11).unwrap();
        assert_eq!(bits.as_bytes(), &[0xff, 0xe0]);
        assert!(bits.is_full());
        assert_eq!(bits.count_ones(), 11);
    }

    #[test]
    fn limit_is_enforced() {
        assert!(Bitfield::new(MAX_AVAILABILITY_BITS).is_ok());
        assert!(Bitfield::new(MAX_AVAILABILITY_BITS + 1).is_err());
    }
}
