//! Blocks fetched as the difference from the old bytes at their place (wire
//! `DeltaRequest`/`DeltaResponse`).
//!
//! When a file we hold changes on a peer, the blocks it shares with our version
//! are copied locally; the few it does not (the blocks around an edit) are
//! asked for with the checksums of our old bytes at the same place — the *basis*
//! — so that the peer sends only what changed inside them. The basis is the old
//! version's blocks that overlap the wanted block's range: for an edit in the
//! middle of a file, the blocks before it are the same, so the old block at that
//! offset holds the same bytes as the new one but for the edit.

use std::collections::HashMap;

use engine::schedule::Request as BlockRequest;
use record::RelPath;
use wire::{BlockSums, DeltaRequest, DeltaResponse, Message};

use super::{FolderTask, MAX_QUEUED_BYTES};
use crate::peer::PeerLink;

/// Blocks smaller than this are asked for whole: the checksums and a chunk of
/// literal bytes would cost about as much.
const MIN_DELTA_BLOCK: u32 = 16 << 10;
/// The most bytes of bases held for requests in flight.
const MAX_BASIS_BYTES: usize = 32 << 20;
/// Delta requests per file version: a file rewritten from scratch shares no
/// bytes with its old version, and its peers should not search every block.
const MAX_DELTAS_PER_VERSION: u32 = 64;
/// Versions counted in [`Bases::tries`] before it is cleared.
const MAX_VERSIONS_TRACKED: usize = 1024;

/// The bases of this folder's requests in flight.
#[derive(Debug, Default)]
pub(super) struct Bases {
    /// By request id.
    by_request: HashMap<u32, Vec<u8>>,
    bytes: usize,
    /// Delta requests made per (path, file hash).
    tries: HashMap<(RelPath, [u8; 32]), u32>,
}

impl Bases {
    /// The basis of request `id`, if it had one.
    pub(super) fn take(&mut self, id: u32) -> Option<Vec<u8>> {
        let basis = self.by_request.remove(&id)?;
        self.bytes -= basis.len();
        Some(basis)
    }

    /// The length of request `id`'s basis (0 without one).
    fn peek_len(&self, id: u32) -> usize {
        self.by_request.get(&id).map_or(0, Vec::len)
    }

    /// Keeps only the bases of requests `keep` says are still in flight.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        let bytes = &mut self.bytes;
        self.by_request.retain(|&id, basis| {
            let kept = keep(id);
            if !kept {
                *bytes -= basis.len();
            }
            kept
        });
    }
}

impl FolderTask {
    /// The message that asks for `request`'s block under `id`: a DeltaRequest
    /// when the peer takes them and our old version of the file has bytes at
    /// that place, else a Request.
    pub(super) fn block_request(
        &mut self,
        id: u32,
        request: &BlockRequest,
        hint: Option<wire::BlockHint>,
        peer_takes_deltas: bool,
    ) -> Message {
        let plain = wire::Request {
            request_id: id,
            hash: request.hash,
            size: request.size,
            hint,
        };
        let basis = if peer_takes_deltas {
            self.basis_for(request)
        } else {
            None
        };
        let Some(basis) = basis else {
            return Message::Request(plain);
        };
        let sums = BlockSums::of(&basis, BlockSums::chunk_len_for(basis.len()));
        self.bases.bytes += basis.len();
        self.bases.by_request.insert(id, basis);
        Message::DeltaRequest(DeltaRequest {
            request: plain,
            sums,
        })
    }

    /// The old bytes at the place of `request`'s block, read back and checked
    /// against our record, if there are any worth offering.
    fn basis_for(&mut self, request: &BlockRequest) -> Option<Vec<u8>> {
        if request.size < MIN_DELTA_BLOCK || self.bases.bytes >= MAX_BASIS_BYTES {
            return None;
        }
        let key = (request.path.clone(), request.file_hash);
        let tries = self.bases.tries.get(&key).copied().unwrap_or(0);
        if tries >= MAX_DELTAS_PER_VERSION {
            return None;
        }
        let held = self.index.get(&request.path).ok()??;
        let old = &held.record;
        if !old.is_live_file() || held.local.is_none() || old.hash == request.file_hash {
            return None;
        }
        let (start, end) = (request.offset, request.offset + u64::from(request.size));
        let mut basis = Vec::new();
        let mut offset = 0u64;
        for block in &old.blocks {
            let block_end = offset + u64::from(block.size);
            if block_end > start && offset < end {
                if basis.len() + block.size as usize > 2 * request.size as usize {
                    break;
                }
                let data = self
                    .disk
                    .read_block(&request.path, offset, block.size, &block.hash)?;
                basis.extend_from_slice(&data);
            }
            if block_end >= end {
                break;
            }
            offset = block_end;
        }
        if basis.is_empty() {
            return None;
        }
        if self.bases.tries.len() >= MAX_VERSIONS_TRACKED {
            self.bases.tries.clear();
        }
        self.bases.tries.insert(key, tries + 1);
        Some(basis)
    }

    /// Answers a DeltaRequest: the block as a delta when that is at most three
    /// quarters of it, else whole (as a Response). Returns the bytes sent.
    pub(super) fn serve_delta(&self, link: &PeerLink, request: DeltaRequest) -> u64 {
        let DeltaRequest { request, sums } = request;
        let (id, size) = (request.request_id, request.size);
        if link.queued_bytes() > MAX_QUEUED_BYTES || size == 0 || size > record::MAX_BLOCK_SIZE {
            return self.serve(link, request);
        }
        let Some(data) = self.find_block(
            super::Serve::Peer,
            request.hint.as_ref(),
            size,
            &request.hash,
        ) else {
            return self.serve(link, request);
        };
        match sums.delta_of(&data, data.len() * 3 / 4) {
            Some(pieces) => {
                let response = DeltaResponse {
                    request_id: id,
                    pieces,
                };
                let sent = response.wire_len() as u64;
                tracing::debug!(remote = %link.remote, block = data.len(), sent, "sent a block as a delta");
                link.send(Message::DeltaResponse(response));
                sent
            }
            None => self.send_block(link, id, data),
        }
    }

    /// A block sent as a delta: rebuilt from the basis kept for its request.
    pub(super) fn receive_delta_block(
        &mut self,
        peer: keys::PeerId,
        response: DeltaResponse,
        now: std::time::Instant,
    ) {
        let id = response.request_id;
        let basis_len = self.bases.peek_len(id);
        let data = match self.bases.take(id) {
            Some(basis) => response.pieces.apply(&basis).ok(),
            None => None,
        };
        if let Some(data) = &data {
            tracing::debug!(peer = %peer, block = data.len(), basis = basis_len, "block rebuilt from a delta");
        }
        let result = match data {
            Some(data) => Ok(super::hashed(data.into())),
            // No basis (we never offered one) or copies past it: the peer's fault.
            None => Err(wire::ResponseError::Invalid),
        };
        self.accept_response(peer, id, result, now);
    }
}
