//! The canonical binary encoding of a record body (format 1).
//!
//! Big-endian, explicit lengths, no padding, nothing optional but the symlink
//! target. Decoding accepts only the canonical form, so `encode(decode(b)) == b`
//! for every `b` that decodes: the signed bytes and the decoded record can never
//! disagree. The byte table is in `docs/protocol/records.md`.

use keys::ShortId;

use crate::file::{MAX_SYMLINK_TARGET_LEN, MAX_VERSION_ENTRIES, bad, validate_target};
use crate::{Block, FileKind, FileRecord, RecordError, RelPath, Timestamp, VersionVector};

/// Largest record body, in bytes (8 MiB).
pub const MAX_RECORD_LEN: usize = 8 << 20;
/// The format byte this build writes and the only one it reads.
pub const FORMAT_V1: u8 = 1;

const KIND_FILE: u8 = 0;
const KIND_DIRECTORY: u8 = 1;
const KIND_SYMLINK: u8 = 2;
const FLAG_DELETED: u8 = 0x01;
/// Bytes of one version vector entry: peer u64, counter u64.
const VV_ENTRY_LEN: usize = 16;
/// Bytes of one block entry: size u32, BLAKE3 hash.
const BLOCK_ENTRY_LEN: usize = 36;

/// Most blocks one record can list within [`MAX_RECORD_LEN`] (with a short path).
pub const MAX_BLOCKS: usize = (MAX_RECORD_LEN - 64 * 1024) / BLOCK_ENTRY_LEN;

impl FileRecord {
    /// The canonical body bytes (what is signed). Fails if the record breaks a rule.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        self.validate()?;
        let path = self.path.as_str().as_bytes();
        let target = match &self.kind {
            FileKind::Symlink { target } => Some(target.as_bytes()),
            _ => None,
        };
        let len = 1
            + 2
            + path.len()
            + 1
            + target.map_or(0, |t| 2 + t.len())
            + 1
            + 4
            + 8
            + 8
            + 4
            + 2
            + VV_ENTRY_LEN * self.version.len()
            + 32
            + 4
            + BLOCK_ENTRY_LEN * self.blocks.len();
        if len > MAX_RECORD_LEN {
            return Err(RecordError::TooLong {
                field: "record",
                len,
                max: MAX_RECORD_LEN,
            });
        }
        let mut out = Vec::with_capacity(len);
        out.push(FORMAT_V1);
        put_u16_bytes(&mut out, path, "path")?;
        out.push(match self.kind {
            FileKind::File => KIND_FILE,
            FileKind::Directory => KIND_DIRECTORY,
            FileKind::Symlink { .. } => KIND_SYMLINK,
        });
        if let Some(t) = target {
            put_u16_bytes(&mut out, t, "symlink target")?;
        }
        out.push(if self.deleted { FLAG_DELETED } else { 0 });
        out.extend_from_slice(&self.mode.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.modified.secs.to_be_bytes());
        out.extend_from_slice(&self.modified.nanos.to_be_bytes());
        let n =
            u16::try_from(self.version.len()).map_err(|_| bad("version", "too many entries"))?;
        out.extend_from_slice(&n.to_be_bytes());
        for &(peer, counter) in self.version.entries() {
            out.extend_from_slice(&peer.0.to_be_bytes());
            out.extend_from_slice(&counter.to_be_bytes());
        }
        out.extend_from_slice(&self.hash);
        let n = u32::try_from(self.blocks.len()).map_err(|_| bad("blocks", "too many"))?;
        out.extend_from_slice(&n.to_be_bytes());
        for b in &self.blocks {
            out.extend_from_slice(&b.size.to_be_bytes());
            out.extend_from_slice(&b.hash);
        }
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }

    /// Decodes and validates a canonical body. Does **not** check a signature:
    /// for bytes from a peer use [`SignedRecord::verify`](crate::SignedRecord::verify).
    pub fn decode(body: &[u8]) -> Result<Self, RecordError> {
        if body.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLong {
                field: "record",
                len: body.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let mut r = Reader(body);
        let format = r.u8("format")?;
        if format != FORMAT_V1 {
            return Err(RecordError::UnknownFormat(format));
        }
        let path = r.str16("path", crate::MAX_PATH_LEN)?;
        let path = RelPath::new(path)?;
        let kind = match r.u8("kind")? {
            KIND_FILE => FileKind::File,
            KIND_DIRECTORY => FileKind::Directory,
            KIND_SYMLINK => {
                let target = r.str16("symlink target", MAX_SYMLINK_TARGET_LEN)?;
                validate_target(target)?;
                FileKind::Symlink {
                    target: target.to_owned(),
                }
            }
            _ => return Err(bad("kind", "unknown kind")),
        };
        let flags = r.u8("flags")?;
        if flags & !FLAG_DELETED != 0 {
            return Err(bad("flags", "unknown flag bits set"));
        }
        let mode = r.u32("mode")?;
        let size = r.u64("size")?;
        let secs = i64::from_be_bytes(r.array("modified")?);
        let nanos = r.u32("modified")?;
        let n = usize::from(r.u16("version")?);
        if n > MAX_VERSION_ENTRIES {
            return Err(RecordError::TooLong {
                field: "version vector",
                len: n,
                max: MAX_VERSION_ENTRIES,
            });
        }
        r.need(n, VV_ENTRY_LEN, "version")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push((ShortId(r.u64("version")?), r.u64("version")?));
        }
        let version = VersionVector::from_sorted(entries).map_err(RecordError::VersionVector)?;
        let hash = r.array("hash")?;
        let n = usize::try_from(r.u32("blocks")?).unwrap_or(usize::MAX);
        r.need(n, BLOCK_ENTRY_LEN, "blocks")?;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            blocks.push(Block {
                size: r.u32("blocks")?,
                hash: r.array("blocks")?,
            });
        }
        if !r.0.is_empty() {
            return Err(RecordError::TrailingBytes { extra: r.0.len() });
        }
        let record = FileRecord {
            path,
            kind,
            size,
            modified: Timestamp { secs, nanos },
            mode,
            version,
            deleted: flags & FLAG_DELETED != 0,
            blocks,
            hash,
        };
        record.validate()?;
        Ok(record)
    }
}

fn put_u16_bytes(out: &mut Vec<u8>, bytes: &[u8], field: &'static str) -> Result<(), RecordError> {
    let n = u16::try_from(bytes.len()).map_err(|_| RecordError::TooLong {
        field,
        len: bytes.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A cursor over the body; every read checks the remaining length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(RecordError::Truncated { field })?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let head = self.take(N, field)?;
        head.try_into()
            .map_err(|_| RecordError::Truncated { field })
    }

    /// Fails unless `count` entries of `each` bytes remain (before allocating them).
    fn need(&self, count: usize, each: usize, field: &'static str) -> Result<(), RecordError> {
        match count.checked_mul(each) {
            Some(total) if total <= self.0.len() => Ok(()),
            _ => Err(RecordError::Truncated { field }),
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, RecordError> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, RecordError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn str16(&mut self, field: &'static str, max: usize) -> Result<&'a str, RecordError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(RecordError::TooLong { field, len, max });
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| bad(field, "not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
