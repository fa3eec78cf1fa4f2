//! SRP-6a (RFC 5054 3072-bit group, SHA-256) through the `srp` crate, with the
//! guards that crate lacks.
//!
//! `srp` 0.7.0-rc.3 panics inside crypto-bigint when A or B is longer than the
//! modulus, so every public value from a peer passes [`validate_public`] first:
//! at most 384 bytes, not zero, below N. After it the crate's own `% N == 0` check
//! can never fire. The crate also hashes A and B in their minimal big-endian form
//! (leading zeros stripped) into M1, so we strip them before handing values over.

use std::sync::OnceLock;

use keys::FolderId;
use sha2::{Digest, Sha256};
use srp::Group;
use srp::groups::G3072;
use zeroize::Zeroizing;

use crate::Violation;

/// Bytes in the 3072-bit modulus.
pub const MODULUS_LEN: usize = 384;

/// Bytes of an SRP ephemeral secret (a or b): 384 bits, as the crate's own
/// `EphemeralSecret`.
pub(crate) const EPHEMERAL_LEN: usize = 48;

/// Length of M1, M2 and K (SHA-256).
pub(crate) const PROOF_LEN: usize = 32;

type Client = srp::ClientG3072<Sha256>;
type Server = srp::ServerG3072<Sha256>;
pub(crate) type ClientVerifier = srp::ClientVerifier<Sha256>;
pub(crate) type ServerVerifier = srp::ServerVerifier<Sha256>;

/// N as 384 big-endian bytes.
fn modulus() -> &'static [u8] {
    static N: OnceLock<Vec<u8>> = OnceLock::new();
    N.get_or_init(|| G3072::generator().params().modulus().to_be_bytes().to_vec())
}

/// The SRP identity I: the 20 folder id bytes.
pub(crate) fn identity(folder: &FolderId) -> &[u8] {
    folder.as_bytes()
}

/// The SRP salt s = SHA-256("swarmsync v1 srp salt" ‖ folder id).
pub(crate) fn salt(folder: &FolderId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"swarmsync v1 srp salt");
    h.update(folder.as_bytes());
    h.finalize().into()
}

/// v = g^x, x = H(s ‖ H(I ‖ ":" ‖ P)).
pub(crate) fn verifier(folder: &FolderId, salt: &[u8; 32], password: &[u8]) -> Vec<u8> {
    Client::new().compute_verifier(identity(folder), password, salt)
}

/// Checks a peer's A or B and returns it without leading zeros.
///
/// Rejects (without ever calling into `srp`): more bytes than the modulus, zero,
/// and values not below N.
pub(crate) fn validate_public(value: &[u8]) -> Result<&[u8], Violation> {
    if value.len() > MODULUS_LEN {
        return Err(Violation::SrpPublicTooLong {
            len: value.len(),
            max: MODULUS_LEN,
        });
    }
    let first = value
        .iter()
        .position(|&b| b != 0)
        .ok_or(Violation::SrpPublicZero)?;
    let trimmed = value.get(first..).ok_or(Violation::SrpPublicZero)?;
    let n = modulus();
    let n_trimmed = n
        .get(n.iter().position(|&b| b != 0).unwrap_or(0)..)
        .unwrap_or(n);
    // Both are minimal big-endian: longer is larger, equal lengths compare bytewise.
    if (trimmed.len(), trimmed) >= (n_trimmed.len(), n_trimmed) {
        return Err(Violation::SrpPublicOutOfRange);
    }
    Ok(trimmed)
}

/// A = g^a (minimal big-endian).
pub(crate) fn client_public(a: &[u8; EPHEMERAL_LEN]) -> Vec<u8> {
    memo(a, &[], || Client::new().compute_public_ephemeral(a))
}

/// B = k·v + g^b (minimal big-endian).
pub(crate) fn server_public(b: &[u8; EPHEMERAL_LEN], verifier: &[u8]) -> Vec<u8> {
    memo(b, verifier, || {
        Server::new().compute_public_ephemeral(b, verifier)
    })
}

/// Fuzzing builds remember A and B (pure functions of their inputs), so the
/// fuzzer, whose ephemerals are fixed, spends its time on the parsers.
#[cfg(fuzzing)]
fn memo(x: &[u8], y: &[u8], f: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static MEMO: OnceLock<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = OnceLock::new();
    let key = [x, b"|", y].concat();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(hit) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return hit;
    }
    let value = f();
    if let Ok(mut m) = memo.lock() {
        m.insert(key, value.clone());
    }
    value
}

#[cfg(not(fuzzing))]
fn memo(_: &[u8], _: &[u8], f: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    f()
}

/// The client's side after B: M1 and the means to check M2.
pub(crate) fn client_process(
    a: &[u8; EPHEMERAL_LEN],
    folder: &FolderId,
    password: &[u8],
    salt: &[u8; 32],
    b_pub: &[u8],
) -> Result<ClientVerifier, Violation> {
    let b_pub = validate_public(b_pub)?;
    Client::new()
        .process_reply(a, identity(folder), password, salt, b_pub)
        .map_err(|_| Violation::SrpPublicOutOfRange)
}

/// The server's side after A: the means to check M1 and make M2.
pub(crate) fn server_process(
    b: &[u8; EPHEMERAL_LEN],
    folder: &FolderId,
    salt: &[u8; 32],
    verifier: &[u8],
    a_pub: &[u8],
) -> Result<ServerVerifier, Violation> {
    let a_pub = validate_public(a_pub)?;
    Server::new()
        .process_reply(identity(folder), salt, b, verifier, a_pub)
        .map_err(|_| Violation::SrpPublicOutOfRange)
}

/// K = H(S) if M2 is right.
pub(crate) fn client_finish(v: &ClientVerifier, m2: &[u8]) -> Option<Zeroizing<[u8; PROOF_LEN]>> {
    let k = v.verify_server(m2).ok()?;
    Some(Zeroizing::new(k.try_into().ok()?))
}

/// K = H(S) if M1 is right.
pub(crate) fn server_finish(v: &ServerVerifier, m1: &[u8]) -> Option<Zeroizing<[u8; PROOF_LEN]>> {
    let k = v.verify_client(m1).ok()?;
    Some(Zeroizing::new(k.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_is_rfc5054_3072() {
        let n = modulus();
        assert_eq!(n.len(), MODULUS_LEN);
        assert_eq!(&n[..4], &[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(&n[380..], &[0xFF, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn rejects_bad_publics_without_panicking() {
        assert_eq!(validate_public(&[]), Err(Violation::SrpPublicZero));
        assert_eq!(validate_public(&[0; 384]), Err(Violation::SrpPublicZero));
        assert_eq!(
            validate_public(&[1; 385]),
            Err(Violation::SrpPublicTooLong { len: 385, max: 384 })
        );
        assert_eq!(
            validate_public(modulus()),
            Err(Violation::SrpPublicOutOfRange)
        );
        assert_eq!(
            validate_public(&[0xFF; 384]),
            Err(Violation::SrpPublicOutOfRange)
        );
        let mut below = modulus().to_vec();
        below[383] -= 1;
        assert_eq!(validate_public(&below), Ok(&below[..]));
        assert_eq!(validate_public(&[0, 0, 5]), Ok(&[5u8][..]));
        // Straight into the crate's entry points too: errors, never panics.
        let folder = FolderId([3; 20]);
        let s = salt(&folder);
        let v = verifier(&folder, &s, b"pw");
        for bad in [vec![0u8; 0], vec![0; 384], vec![7; 385], vec![0xFF; 1000]] {
            assert!(client_process(&[1; 48], &folder, b"pw", &s, &bad).is_err());
            assert!(server_process(&[1; 48], &folder, &s, &v, &bad).is_err());
        }
    }

    #[test]
    fn both_sides_agree_on_k() {
        let folder = FolderId([9; 20]);
        let s = salt(&folder);
        let v = verifier(&folder, &s, b"password");
        let a = [0x11; 48];
        let b = [0x22; 48];
        let a_pub = client_public(&a);
        let b_pub = server_public(&b, &v);
        let cv = client_process(&a, &folder, b"password", &s, &b_pub).unwrap();
        let sv = server_process(&b, &folder, &s, &v, &a_pub).unwrap();
        let k_s = server_finish(&sv, cv.proof()).unwrap();
        let k_c = client_finish(&cv, sv.proof()).unwrap();
        assert_eq!(*k_s, *k_c);
        // Wrong password: M1 does not verify.
        let cv = client_process(&a, &folder, b"passworD", &s, &b_pub).unwrap();
        assert!(server_finish(&sv, cv.proof()).is_none());
    }
}
