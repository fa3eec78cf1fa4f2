//! Scan settings.

use std::fmt;

use keys::{FolderSigningKey, ShortId};

use crate::chunk::Chunking;

/// How to scan, and who the changes are by.
#[derive(Clone)]
#[non_exhaustive]
pub struct ScanOptions {
    /// This peer's id in version vectors: local changes bump its counter.
    pub peer: ShortId,
    /// The folder signing key on read-write peers: new records are signed. `None` on
    /// read-only peers: changes are recorded local-only and never signed.
    pub signer: Option<FolderSigningKey>,
    /// Block size policy.
    pub chunking: Chunking,
    /// Hashing threads; 0 means two per core (at most 8), of which at most one
    /// per core hashes a big file at a time.
    pub hash_threads: usize,
    /// How many times a file that changes while being hashed is re-read before it
    /// is left for the next scan.
    pub retries: u32,
    /// Records written per index transaction. Larger transactions write each
    /// touched page to the WAL fewer times; a crash loses at most one (the next
    /// scan redoes it).
    pub batch: usize,
    #[cfg(test)]
    pub(crate) hook: Option<crate::hasher::Hook>,
}

impl ScanOptions {
    /// Defaults for `peer`, signing with `signer` when given.
    pub fn new(peer: ShortId, signer: Option<FolderSigningKey>) -> Self {
        Self {
            peer,
            signer,
            chunking: Chunking::Auto,
            hash_threads: 0,
            retries: 3,
            batch: 4000,
            #[cfg(test)]
            hook: None,
        }
    }

    /// Hashing threads: two per core by default. Reading a small file that is not
    /// in the page cache mostly waits on the disk, so more threads keep more reads
    /// in flight (cold scan of 100 000 small files: 15.6-17.8 s with one per core,
    /// 10.7-14.3 s with two); big files are still hashed one per core at a time.
    pub(crate) fn threads(&self) -> usize {
        if self.hash_threads > 0 {
            self.hash_threads
        } else {
            self.cores().saturating_mul(2).clamp(2, 8)
        }
    }

    pub(crate) fn cores(&self) -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
    }
}

impl fmt::Debug for ScanOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanOptions")
            .field("peer", &self.peer)
            .field("signer", &self.signer)
            .field("chunking", &self.chunking)
            .field("hash_threads", &self.hash_threads)
            .field("retries", &self.retries)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}
