//! Records sent as deltas (wire `IndexDelta`): choosing to send one, rebuilding
//! a received one, and asking for the whole record when its base is not here.
//!
//! A sender sends a large record as a delta from the record it replaced only
//! when the peer was sent that one already (its sequence is at or below what
//! the peer holds of our index): then the peer most likely holds it still. The
//! receiver looks the base up by path and hash; when it holds something else
//! (it changed the file meanwhile, or has a newer version from a third peer) it
//! asks for the whole record with `RecordRequest`, and stores no progress of
//! that peer's index until the answer came, so a lost answer only means the
//! record is sent again on the next connection.

use std::collections::HashSet;

use bytes::Bytes;
use record::RelPath;
use wire::{DeltaOp, IndexDelta, Message, Record, RecordRequest, Text};

use super::{FolderTask, MAX_QUEUED_BYTES};
use crate::peer::PeerLink;

/// Deltas whose base was missing, waiting for the whole record, per peer. More
/// than this and further ones are left for the next connection (progress is
/// not stored meanwhile, so nothing is skipped).
const MAX_UNRESOLVED: usize = 4096;

/// What the folder knows of a peer's deltas.
#[derive(Debug, Default)]
pub(super) struct DeltaState {
    /// Both Hellos set [`wire::Capabilities::RECORD_DELTA`].
    pub(super) records: bool,
    /// Both Hellos set [`wire::Capabilities::BLOCK_DELTA`].
    pub(super) blocks: bool,
    /// Sequences of the peer's index asked for with RecordRequest.
    pub(super) unresolved: HashSet<u64>,
}

/// The delta of `body` from `base`, if it is valid and saves at least half.
pub(super) fn make_delta(
    index_id: u64,
    sequence: u64,
    path: &RelPath,
    base: &[u8],
    signed: &record::SignedRecord,
) -> Option<IndexDelta> {
    let body = signed.body();
    let pieces = record::delta::diff(base, body).ok()?;
    let ops = pieces
        .into_iter()
        .map(|piece| match piece {
            record::delta::Piece::Copy { offset, len } => Some(DeltaOp::Copy {
                offset: u32::try_from(offset).ok()?,
                len: u32::try_from(len).ok()?,
            }),
            record::delta::Piece::Literal { offset, len } => Some(DeltaOp::Literal(
                Bytes::copy_from_slice(body.get(offset..offset + len)?),
            )),
        })
        .collect::<Option<Vec<_>>>()?;
    let delta = IndexDelta::new(
        index_id,
        sequence,
        Text::new(path.as_str()).ok()?,
        *blake3::hash(base).as_bytes(),
        *blake3::hash(body).as_bytes(),
        ops,
        *signed.signature(),
    )
    .ok()?;
    (delta.payload_len() < body.len() / 2).then_some(delta)
}

impl FolderTask {
    /// A record a peer sent as a delta: rebuilt from the record held for its
    /// path, or asked for whole.
    pub(super) fn receive_delta(&mut self, peer: keys::PeerId, delta: IndexDelta) {
        let (index_id, sequence) = (delta.index_id, delta.sequence);
        let Ok(path) = RelPath::new(delta.path.as_str()) else {
            let reason = record::RecordError::BadValue {
                field: "delta.path",
                reason: "not a valid path",
            };
            self.handle_verified(peer, index_id, Some(sequence), Vec::new(), vec![reason]);
            return;
        };
        let held = match self.index.get(&path) {
            Ok(entry) => entry.and_then(|e| e.signed),
            Err(e) => {
                tracing::error!(%path, error = %e, "index read failed");
                None
            }
        };
        if let Some(held) = held {
            let hash = blake3::hash(held.body());
            if *hash.as_bytes() == delta.new_hash {
                // Ours already: a record coming back from a peer it went to.
                self.handle_verified(peer, index_id, Some(sequence), Vec::new(), Vec::new());
                return;
            }
            if *hash.as_bytes() == delta.base_hash {
                let rebuilt = delta
                    .apply(held.body())
                    .map_err(|_| record::RecordError::BadValue {
                        field: "delta",
                        reason: "copies past the end of its base",
                    })
                    .and_then(|body| {
                        record::SignedRecord::from_parts(body, delta.signature)
                            .into_verified_known(&self.ro_key, &self.known)
                    })
                    .and_then(|v| {
                        if v.record().path == path {
                            Ok(v)
                        } else {
                            Err(record::RecordError::BadValue {
                                field: "delta.path",
                                reason: "the rebuilt record is of another path",
                            })
                        }
                    });
                let (good, bad) = match rebuilt {
                    Ok(v) => {
                        tracing::debug!(peer = %peer, %path, "record rebuilt from a delta");
                        (vec![v], Vec::new())
                    }
                    Err(e) => (Vec::new(), vec![e]),
                };
                self.handle_verified(peer, index_id, Some(sequence), good, bad);
                return;
            }
        }
        // The base is not here: ask for the whole record.
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.deltas.unresolved.len() < MAX_UNRESOLVED {
            tracing::debug!(peer = %peer, %path, sequence, "a delta's base is not here; asking for the whole record");
            p.deltas.unresolved.insert(sequence);
            p.link
                .send(Message::RecordRequest(RecordRequest { index_id, sequence }));
        } else {
            // Left for the next connection: any entry of `unresolved` keeps
            // this peer's progress from being stored.
            tracing::debug!(peer = %peer, sequence, "too many records asked for; left for later");
        }
        p.received = Some((index_id, sequence));
    }

    /// The whole record a peer sends for a delta we could not rebuild.
    pub(super) fn receive_record(&mut self, peer: keys::PeerId, reply: Record) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.deltas.unresolved.remove(&reply.sequence) {
            tracing::debug!(peer = %peer, sequence = reply.sequence, "a record nobody asked for; ignored");
            return;
        }
        // `None`: the path changed since; its newer record has a later sequence.
        let Some(record) = reply.record else { return };
        let (body, signature) = record.into_parts();
        let (good, bad) = match record::SignedRecord::from_parts(body.to_vec(), signature)
            .into_verified_known(&self.ro_key, &self.known)
        {
            Ok(v) => (vec![v], Vec::new()),
            Err(e) => (Vec::new(), vec![e]),
        };
        // Progress stays where the index stream is (`None`).
        self.handle_verified(peer, reply.index_id, None, good, bad);
    }

    /// Answers a peer's RecordRequest from our index.
    pub(super) fn answer_record_request(&self, link: &PeerLink, request: RecordRequest) {
        if link.queued_bytes() > MAX_QUEUED_BYTES {
            // It asks faster than it reads; its next connection gets the record.
            tracing::debug!(remote = %link.remote, "record request dropped: too much queued");
            return;
        }
        let record = if request.index_id == self.index.index_id().0 {
            match self.index.get_by_sequence(request.sequence) {
                Ok(entry) => entry
                    .filter(|e| !e.local_only)
                    .and_then(|e| e.signed)
                    .and_then(|s| {
                        let (body, signature) = s.into_parts();
                        wire::SignedRecord::new(body, signature).ok()
                    }),
                Err(e) => {
                    tracing::error!(error = %e, "index read failed");
                    return;
                }
            }
        } else {
            None
        };
        link.send(Message::Record(Record {
            index_id: request.index_id,
            sequence: request.sequence,
            record,
        }));
    }
}
