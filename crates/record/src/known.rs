//! Records already held as valid, remembered by digest, so that a record met
//! again byte for byte is not verified again.
//!
//! Every device announces the records it applied, so each record a device
//! sends comes back from every peer that took it, and a device joining a swarm
//! is sent the same records by every full peer: without this each of those
//! copies cost an Ed25519 verification (about 18 % of a small-file source's
//! CPU during a transfer, in a profile).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use keys::{RoKey, Signature};

use crate::{
    FileRecord, MAX_RECORD_LEN, RECORD_CONTEXT, RecordError, SignedRecord, VerifiedRecord,
};

/// Records remembered at most; the oldest are forgotten first (a forgotten one
/// is only verified again). About 6 MB when full.
pub const MAX_KNOWN_RECORDS: usize = 1 << 17;

/// A 128-bit BLAKE3 digest of the folder key, the body and the signature: to
/// pass for a remembered record, other bytes would need a second preimage.
type Digest = [u8; 16];

/// Digests of records known to be validly signed, shared by the threads that
/// send and receive them.
#[derive(Debug, Default)]
pub struct KnownRecords {
    inner: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    set: HashSet<Digest>,
    order: VecDeque<Digest>,
}

fn digest(key: &RoKey, signed: &SignedRecord) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key("swarmsync 2026-12 known signed record");
    hasher.update(key.as_bytes());
    hasher.update(&(signed.body().len() as u64).to_le_bytes());
    hasher.update(signed.body());
    hasher.update(&signed.signature().0);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

impl KnownRecords {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers `signed` as valid under `key`. Only for records this device
    /// holds as valid: signed by it, or verified (its index holds nothing else).
    pub fn remember(&self, key: &RoKey, signed: &SignedRecord) {
        self.insert(digest(key, signed));
    }

    /// How many records are remembered.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        // The set holds no invariant a panicking holder could break halfway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, d: Digest) {
        let mut known = self.lock();
        if !known.set.insert(d) {
            return;
        }
        known.order.push_back(d);
        if known.order.len() > MAX_KNOWN_RECORDS
            && let Some(oldest) = known.order.pop_front()
        {
            known.set.remove(&oldest);
        }
    }

    fn contains(&self, d: &Digest) -> bool {
        self.lock().set.contains(d)
    }
}

impl SignedRecord {
    /// [`into_verified`](Self::into_verified), skipping the signature check of
    /// a record `known` holds as valid under `key` (its body is still decoded
    /// and validated); a record that passes the check is remembered.
    pub fn into_verified_known(
        self,
        key: &RoKey,
        known: &KnownRecords,
    ) -> Result<VerifiedRecord, RecordError> {
        if self.body().len() > MAX_RECORD_LEN {
            return self.into_verified(key);
        }
        let d = digest(key, &self);
        if known.contains(&d) {
            let record = FileRecord::decode(self.body())?;
            return Ok(VerifiedRecord::checked(self, record, key));
        }
        let verified = self.into_verified(key)?;
        known.insert(d);
        Ok(verified)
    }
}

/// [`SignedRecord::into_verified_known`] for each of `records`, in order, but
/// with the signatures not already known checked in one batch (about 2.5×
/// faster than one by one). If the batch fails, they are checked one by one,
/// so a bad record costs its batch the time saved and refuses only itself.
pub fn verify_records(
    records: Vec<SignedRecord>,
    key: &RoKey,
    known: &KnownRecords,
) -> Vec<Result<VerifiedRecord, RecordError>> {
    // None for a body too long to be a record (refused one by one below).
    let digests: Vec<Option<Digest>> = records
        .iter()
        .map(|r| (r.body().len() <= MAX_RECORD_LEN).then(|| digest(key, r)))
        .collect();
    let mut vouched: Vec<bool> = digests
        .iter()
        .map(|d| d.as_ref().is_some_and(|d| known.contains(d)))
        .collect();
    let unchecked: Vec<(&[u8], &Signature)> = records
        .iter()
        .zip(&digests)
        .zip(&vouched)
        .filter(|((_, d), known)| d.is_some() && !**known)
        .map(|((r, _), _)| (r.body(), r.signature()))
        .collect();
    // One alone gains nothing from a batch.
    if unchecked.len() > 1 && key.verify_all(RECORD_CONTEXT, &unchecked).is_ok() {
        for (v, d) in vouched.iter_mut().zip(&digests) {
            *v = d.is_some();
        }
    }
    records
        .into_iter()
        .zip(digests)
        .zip(vouched)
        .map(|((signed, d), vouched)| match d {
            Some(d) if vouched => {
                let record = FileRecord::decode(signed.body())?;
                known.insert(d);
                Ok(VerifiedRecord::checked(signed, record, key))
            }
            // Too long, alone, or in a batch that failed: one by one.
            _ => signed.into_verified_known(key, known),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileKind, RelPath, Timestamp, VersionVector};
    use keys::{RwSecret, ShortId, Signature};

    fn key(seed: u8) -> RwSecret {
        RwSecret::from_bytes([seed; 20])
    }

    fn signed(key: &RwSecret, path: &str) -> SignedRecord {
        let record = FileRecord {
            path: RelPath::new(path).unwrap(),
            kind: FileKind::Directory,
            size: 0,
            modified: Timestamp::default(),
            mode: 0o755,
            version: VersionVector::new().incremented(ShortId(1)),
            deleted: false,
            blocks: Vec::new(),
            hash: [0; 32],
        };
        SignedRecord::sign(&record, &key.signing_key()).unwrap()
    }

    #[test]
    fn a_remembered_record_passes_and_others_are_still_checked() {
        let folder = key(3);
        let ro = folder.ro_key();
        let known = KnownRecords::new();
        let a = signed(&folder, "a");
        known.remember(&ro, &a);
        let got = a.clone().into_verified_known(&ro, &known).unwrap();
        assert_eq!(got.record().path.as_str(), "a");
        assert!(got.verified_with(&ro));

        // The same signature on other bytes, or a bad signature, is refused.
        let b = signed(&folder, "b");
        let (body_b, _) = b.clone().into_parts();
        let forged = SignedRecord::from_parts(body_b, *a.signature());
        assert!(matches!(
            forged.into_verified_known(&ro, &known),
            Err(RecordError::BadSignature)
        ));
        let (body_a, _) = a.clone().into_parts();
        let zeroed = SignedRecord::from_parts(body_a, Signature([0; 64]));
        assert!(matches!(
            zeroed.into_verified_known(&ro, &known),
            Err(RecordError::BadSignature)
        ));
        // One checked once is remembered.
        assert_eq!(known.len(), 1);
        b.into_verified_known(&ro, &known).unwrap();
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn a_record_remembered_in_one_folder_proves_nothing_in_another() {
        let (one, other) = (key(3), key(4));
        let known = KnownRecords::new();
        let a = signed(&one, "a");
        known.remember(&one.ro_key(), &a);
        assert!(matches!(
            a.into_verified_known(&other.ro_key(), &known),
            Err(RecordError::BadSignature)
        ));
    }

    #[test]
    fn the_oldest_are_forgotten_past_the_bound() {
        let folder = key(3);
        let ro = folder.ro_key();
        let known = KnownRecords::new();
        let first = signed(&folder, "first");
        known.remember(&ro, &first);
        let d = digest(&ro, &first);
        for i in 0..MAX_KNOWN_RECORDS as u64 {
            known.insert(
                *blake3::hash(&i.to_le_bytes())
                    .as_bytes()
                    .first_chunk()
                    .unwrap(),
            );
        }
        assert_eq!(known.len(), MAX_KNOWN_RECORDS);
        assert!(!known.contains(&d));
    }

    #[test]
    fn a_batch_of_records_is_checked_at_once_and_a_bad_one_refuses_only_itself() {
        let folder = key(3);
        let ro = folder.ro_key();
        let known = KnownRecords::new();
        let records: Vec<SignedRecord> =
            (0..30).map(|i| signed(&folder, &format!("d{i}"))).collect();
        known.remember(&ro, &records[4]);
        let got = verify_records(records.clone(), &ro, &known);
        assert_eq!(got.len(), 30);
        for (i, got) in got.iter().enumerate() {
            let got = got.as_ref().unwrap();
            assert_eq!(got.record().path.as_str(), format!("d{i}"));
            assert!(got.verified_with(&ro));
        }
        assert_eq!(known.len(), 30);

        // A bad signature, a body too long, a body signed but undecodable, and
        // a record of another folder, among good ones not yet known.
        let known = KnownRecords::new();
        let mut batch = records;
        let (body, _) = batch[7].clone().into_parts();
        batch[7] = SignedRecord::from_parts(body, *batch[8].signature());
        batch[9] = SignedRecord::from_parts(vec![0; MAX_RECORD_LEN + 1], Signature([0; 64]));
        batch[11] = SignedRecord::from_parts(
            b"not a record".to_vec(),
            folder.signing_key().sign(RECORD_CONTEXT, b"not a record"),
        );
        batch[12] = signed(&key(4), "elsewhere");
        let got = verify_records(batch, &ro, &known);
        for (i, got) in got.iter().enumerate() {
            match i {
                7 | 12 => assert!(matches!(got, Err(RecordError::BadSignature)), "{i}"),
                9 => assert!(matches!(got, Err(RecordError::TooLong { .. })), "{i}"),
                11 => assert!(got.is_err() && !matches!(got, Err(RecordError::BadSignature))),
                _ => assert_eq!(
                    got.as_ref().unwrap().record().path.as_str(),
                    format!("d{i}")
                ),
            }
        }
        assert_eq!(known.len(), 26);

        // Every signature good, one body undecodable: refused, and not remembered.
        let known = KnownRecords::new();
        let mut batch: Vec<SignedRecord> =
            (0..5).map(|i| signed(&folder, &format!("e{i}"))).collect();
        batch[2] = SignedRecord::from_parts(
            b"not a record".to_vec(),
            folder.signing_key().sign(RECORD_CONTEXT, b"not a record"),
        );
        let got = verify_records(batch, &ro, &known);
        assert!(got[2].is_err() && !matches!(got[2], Err(RecordError::BadSignature)));
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 4);
        assert_eq!(known.len(), 4);
    }
}
