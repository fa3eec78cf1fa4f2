//! Ed25519 signatures with the folder key.
//!
//! Every signature covers `u32be(len(context)) ‖ context ‖ message`, where the
//! context names what is signed (`b"record"`, `b"access-proof"`, …), so a signature
//! made for one purpose is never valid for another.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::RoKey;
use crate::derive::framed;

/// Length in bytes of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// The folder's Ed25519 signing key; only read-write peers have it.
///
/// Zeroized on drop (by `ed25519-dalek`); `Debug` never shows it.
#[derive(Clone)]
pub struct FolderSigningKey(SigningKey);

impl FolderSigningKey {
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The matching read-only key.
    pub fn ro_key(&self) -> RoKey {
        RoKey::from_verifying_key(self.0.verifying_key())
    }

    /// Signs `message` for the purpose `context`.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> Signature {
        Signature(self.0.sign(&framed(context, message)).to_bytes())
    }
}

impl fmt::Debug for FolderSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FolderSigningKey(<redacted>)")
    }
}

/// An Ed25519 signature by the folder key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// The 64 signature bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

/// A signature that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify with the folder key")]
pub struct SignatureError;

pub(crate) fn verify(
    key: &VerifyingKey,
    context: &[u8],
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    // Strict: rejects small-order keys and non-canonical signatures, so a signature
    // has one valid encoding and records cannot be malleated.
    key.verify_strict(&framed(context, message), &signature)
        .map_err(|_| SignatureError)
}

/// Checks every `(message, signature)` of `items` at once (one multiscalar
/// multiplication instead of one per signature: less than half the time each,
/// for a few dozen). `Err` says only that at least one fails; which, the caller
/// finds with [`verify`].
///
/// A batch refuses whatever strict verification refuses, except signatures
/// made with the signing key to that end (a torsion component in `R`, a
/// non-canonical `R`), which a batch may accept: they prove as much as any
/// signature, that the key holder signed.
pub(crate) fn verify_all(
    key: &VerifyingKey,
    context: &[u8],
    items: &[(&[u8], &Signature)],
) -> Result<(), SignatureError> {
    // As strict verification does: with a small-order key, anyone could sign.
    if key.is_weak() {
        return Err(SignatureError);
    }
    let framed: Vec<Vec<u8>> = items.iter().map(|(m, _)| framed(context, m)).collect();
    let messages: Vec<&[u8]> = framed.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, s)| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    let keys = vec![*key; items.len()];
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).map_err(|_| SignatureError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::HEXLOWER;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        HEXLOWER.decode(s.as_bytes()).unwrap().try_into().unwrap()
    }

    /// RFC 8032 §7.1, tests 1–3: the primitive under our framing.
    #[test]
    fn rfc8032_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (secret, public, message, signature) in cases {
            let key = FolderSigningKey::from_seed(&hex(secret));
            assert_eq!(key.ro_key().as_bytes(), &hex::<32>(public));
            let message = HEXLOWER.decode(message.as_bytes()).unwrap();
            let raw = key.0.sign(&message).to_bytes();
            assert_eq!(raw, hex::<64>(signature));
            let verifying = VerifyingKey::from_bytes(&hex(public)).unwrap();
            verifying
                .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&raw))
                .unwrap();
        }
    }

    #[test]
    fn signature_is_bound_to_context_and_message() {
        let key = FolderSigningKey::from_seed(&[7; 32]);
        let ro = key.ro_key();
        let sig = key.sign(b"record", b"payload");
        ro.verify(b"record", b"payload", &sig).unwrap();
        assert_eq!(
            ro.verify(b"access-proof", b"payload", &sig),
            Err(SignatureError)
        );
        assert_eq!(ro.verify(b"record", b"payloaD", &sig), Err(SignatureError));
        // Moving bytes between context and message changes the framing.
        assert_eq!(ro.verify(b"recordp", b"ayload", &sig), Err(SignatureError));
        let mut flipped = sig;
        flipped.0[10] ^= 1;
        assert_eq!(
            ro.verify(b"record", b"payload", &flipped),
            Err(SignatureError)
        );
        let other = FolderSigningKey::from_seed(&[8; 32]).ro_key();
        assert_eq!(
            other.verify(b"record", b"payload", &sig),
            Err(SignatureError)
        );
    }

    #[test]
    fn a_batch_holds_when_every_signature_does_and_fails_for_one_bad() {
        let key = FolderSigningKey::from_seed(&[7; 32]);
        let ro = key.ro_key();
        let messages: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i)]).collect();
        let sigs: Vec<Signature> = messages.iter().map(|m| key.sign(b"record", m)).collect();
        let items: Vec<(&[u8], &Signature)> = messages
            .iter()
            .map(Vec::as_slice)
            .zip(sigs.iter())
            .collect();
        assert_eq!(ro.verify_all(b"record", &items), Ok(()));
        assert_eq!(ro.verify_all(b"record", &[]), Ok(()));
        assert_eq!(ro.verify_all(b"access-proof", &items), Err(SignatureError));

        let mut flipped = sigs[17];
        flipped.0[40] ^= 1;
        let mut bad = items.clone();
        bad[17].1 = &flipped;
        assert_eq!(ro.verify_all(b"record", &bad), Err(SignatureError));
        // Two valid signatures swapped between their messages.
        let mut swapped = items.clone();
        swapped[3].1 = items[4].1;
        swapped[4].1 = items[3].1;
        assert_eq!(ro.verify_all(b"record", &swapped), Err(SignatureError));
        // A non-canonical S (S + l) is refused, in a batch as alone.
        let mut high = sigs[5];
        high.0[63] |= 0xe0;
        let mut noncanonical = items.clone();
        noncanonical[5].1 = &high;
        assert_eq!(ro.verify_all(b"record", &noncanonical), Err(SignatureError));

        let other = FolderSigningKey::from_seed(&[8; 32]).ro_key();
        assert_eq!(other.verify_all(b"record", &items), Err(SignatureError));
    }

    #[test]
    fn a_small_order_key_verifies_nothing_in_a_batch() {
        // The identity point: (R = B, S = 1) holds for it over any message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut forged = [0u8; 64];
        // The base point, compressed (RFC 8032 §5.1: y = 4/5).
        forged[0] = 0x58;
        forged[1..32].fill(0x66);
        forged[32] = 1;
        let forged = Signature(forged);
        let items = [(b"payload".as_slice(), &forged)];
        assert_eq!(verify_all(&weak, b"record", &items), Err(SignatureError));
        assert_eq!(
            verify(&weak, b"record", b"payload", &forged),
            Err(SignatureError)
        );
    }
}
