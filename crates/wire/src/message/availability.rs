//! Availability: the blocks of one file version a peer holds.

use crate::codec::{Put, Reader};
use crate::error::DecodeError;
use crate::message::Payload;
use crate::{Bitfield, HASH_LEN, MAX_AVAILABILITY_BITS, MAX_PATH_LEN, Text};

/// Which blocks of one version of one file the sender holds, so peers can
/// fetch from it while it is still downloading (the swarm).
///
/// The bits cover blocks `first_block .. first_block + bits.len()` of the
/// version's block list (bit `i` is block `first_block + i`); a file with more
/// blocks than [`MAX_AVAILABILITY_BITS`] is described by several messages. For
/// that range the message replaces what the sender announced before; blocks
/// outside it are unchanged. A peer holding a version completely says so in
/// its index and need not send this.
///
/// Layout: `path str(4096) | file_hash [32] | first_block u32 | bitfield`
/// (see [`Bitfield`] for its layout).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Availability {
    /// The file's path in the folder, as in its record.
    pub path: Text<MAX_PATH_LEN>,
    /// The hash that names this version of the file (defined by crate
    /// `record`); availability of another version says nothing about this one.
    pub file_hash: [u8; HASH_LEN],
    /// Index of the block bit 0 stands for.
    pub first_block: u32,
    /// One bit per block.
    pub bits: Bitfield,
}

impl Payload for Availability {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_prefixed(self.path.as_bytes());
        out.extend_from_slice(&self.file_hash);
        out.put_u32(self.first_block);
        out.put_len(self.bits.len());
        out.extend_from_slice(self.bits.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let path = r.text("availability.path")?;
        let file_hash = r.array("availability.file_hash")?;
        let first_block = r.u32("availability.first_block")?;
        // A bit count is bounded like a count whose elements are 1/8 byte.
        let len = r.count("availability.bit_len", MAX_AVAILABILITY_BITS, 0)?;
        let bytes = r.take(len.div_ceil(8), "availability.bits")?;
        let bits = Bitfield::from_wire(len, bytes).ok_or(DecodeError::BadValue {
            field: "availability.bits",
            reason: "padding bits after the last block must be 0",
        })?;
        Ok(Self {
            path,
            file_hash,
            first_block,
            bits,
        })
    }
}
