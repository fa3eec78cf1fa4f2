//! Records signed by the folder key.

use keys::{FolderSigningKey, RoKey, Signature};

use crate::{FileRecord, MAX_RECORD_LEN, RecordError};

/// The signing context of record bodies (see `keys::FolderSigningKey::sign`).
pub const RECORD_CONTEXT: &[u8] = b"record";

/// A record body exactly as signed, with its signature.
///
/// The body bytes are kept verbatim so that read-only and encrypted peers can pass
/// the record on unchanged: nothing is ever re-encoded before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    body: Vec<u8>,
    signature: Signature,
}

impl SignedRecord {
    /// Encodes `record` and signs the body with the folder key.
    pub fn sign(record: &FileRecord, key: &FolderSigningKey) -> Result<Self, RecordError> {
        let body = record.encode()?;
        let signature = key.sign(RECORD_CONTEXT, &body);
        Ok(Self { body, signature })
    }

    /// Wraps bytes received from a peer or read back from the index; nothing is
    /// checked until [`verify`](Self::verify).
    pub const fn from_parts(body: Vec<u8>, signature: Signature) -> Self {
        Self { body, signature }
    }

    /// Checks the signature first, then decodes and validates the body.
    ///
    /// The order matters: bytes nobody with the folder key vouched for are never
    /// parsed further than their length.
    pub fn verify(&self, key: &RoKey) -> Result<FileRecord, RecordError> {
        if self.body.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLong {
                field: "record",
                len: self.body.len(),
                max: MAX_RECORD_LEN,
            });
        }
        key.verify(RECORD_CONTEXT, &self.body, &self.signature)
            .map_err(|_| RecordError::BadSignature)?;
        FileRecord::decode(&self.body)
    }

    /// [`verify`](Self::verify), keeping the record together with its proof, so
    /// that the check can run on one thread and the result be used on another.
    pub fn into_verified(self, key: &RoKey) -> Result<VerifiedRecord, RecordError> {
        let record = self.verify(key)?;
        Ok(VerifiedRecord {
            signed: self,
            record,
            key: *key.as_bytes(),
        })
    }

    /// The signed body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The signature over [`body`](Self::body).
    pub const fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Splits into body and signature.
    pub fn into_parts(self) -> (Vec<u8>, Signature) {
        (self.body, self.signature)
    }
}

/// A [`SignedRecord`] whose signature was checked, with what it decoded to. Only
/// [`SignedRecord::into_verified`] and [`SignedRecord::into_verified_known`]
/// make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    signed: SignedRecord,
    record: FileRecord,
    key: [u8; keys::RO_KEY_LEN],
}

impl VerifiedRecord {
    /// A record whose signature over these bytes was checked under `key`
    /// (here, or earlier and remembered: `KnownRecords`).
    pub(crate) fn checked(signed: SignedRecord, record: FileRecord, key: &RoKey) -> Self {
        Self {
            signed,
            record,
            key: *key.as_bytes(),
        }
    }

    /// Whether it was checked against `key` (a record verified for one folder
    /// proves nothing in another).
    pub fn verified_with(&self, key: &RoKey) -> bool {
        self.key == *key.as_bytes()
    }

    /// The decoded record.
    pub const fn record(&self) -> &FileRecord {
        &self.record
    }

    /// The signed bytes and the decoded record.
    pub fn into_parts(self) -> (SignedRecord, FileRecord) {
        (self.signed, self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileKind, RelPath, Timestamp, VersionVector};
    use keys::{RwSecret, ShortId};

    fn record() -> FileRecord {
        FileRecord {
            path: RelPath::new("d").unwrap(),
            kind: FileKind::Directory,
            size: 0,
            modified: Timestamp::default(),
            mode: 0o755,
            version: VersionVector::new().incremented(ShortId(1)),
            deleted: false,
            blocks: Vec::new(),
            hash: [0; 32],
        }
    }

    #[test]
    fn verifies_and_rejects_tampering() {
        let rw = RwSecret::from_bytes([3; 20]);
        let signed = SignedRecord::sign(&record(), &rw.signing_key()).unwrap();
        assert_eq!(signed.verify(&rw.ro_key()).unwrap(), record());

        let (mut body, sig) = signed.clone().into_parts();
        body[3] = b'e';
        let tampered = SignedRecord::from_parts(body, sig);
        assert_eq!(
            tampered.verify(&rw.ro_key()),
            Err(RecordError::BadSignature)
        );

        let other = RwSecret::from_bytes([4; 20]).ro_key();
        assert_eq!(signed.verify(&other), Err(RecordError::BadSignature));
    }

    #[test]
    fn a_verified_record_knows_its_key() {
        let rw = RwSecret::from_bytes([3; 20]);
        let other = RwSecret::from_bytes([4; 20]).ro_key();
        let signed = SignedRecord::sign(&record(), &rw.signing_key()).unwrap();
        assert_eq!(
            signed.clone().into_verified(&other),
            Err(RecordError::BadSignature)
        );
        let verified = signed.clone().into_verified(&rw.ro_key()).unwrap();
        assert!(verified.verified_with(&rw.ro_key()));
        assert!(!verified.verified_with(&other));
        assert_eq!(verified.record(), &record());
        assert_eq!(verified.into_parts(), (signed, record()));
    }

    #[test]
    fn signature_is_checked_before_decoding() {
        // Garbage with a wrong signature reports the signature, not the garbage.
        let rw = RwSecret::from_bytes([3; 20]);
        let junk = SignedRecord::from_parts(vec![0xff; 10], Signature([0; 64]));
        assert_eq!(junk.verify(&rw.ro_key()), Err(RecordError::BadSignature));
        // Garbage validly signed is then a decode error.
        let sig = rw.signing_key().sign(RECORD_CONTEXT, &[0xff; 10]);
        let signed_junk = SignedRecord::from_parts(vec![0xff; 10], sig);
        assert_eq!(
            signed_junk.verify(&rw.ro_key()),
            Err(RecordError::UnknownFormat(0xff))
        );
    }
}
