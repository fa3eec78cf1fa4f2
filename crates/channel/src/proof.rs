//! Access proofs: each side shows what its key lets it do, bound to the
//! transcript and to which side is speaking, so a proof cannot be replayed in
//! another session or reflected back at its sender.
//!
//! ```text
//! payload  = claim (1: 0 encrypted, 1 read-only, 2 read-write) ‖ proof
//! message  = sender role (1: 0x01 SRP client, 0x02 SRP server) ‖ claim ‖ transcript hash (32)
//! proof    = empty                                            (encrypted)
//!          | RoMacKey::mac(b"access-proof", message)  32 bytes (read-only)
//!          | FolderSigningKey::sign(b"access-proof", message) 64 bytes (read-write)
//! ```

use keys::{Access, SIGNATURE_LEN, Signature};

use crate::config::FolderCredentials;
use crate::{Role, Violation};

const CONTEXT: &[u8] = b"access-proof";

/// What we learned about the peer's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerAccess {
    /// The level the peer proved to us: what to trust it with.
    pub verified: Access,
    /// The level the peer claimed. Above `verified` only when our own key cannot
    /// check the claim (we are an encrypted peer).
    pub claimed: Access,
}

const fn claim_byte(a: Access) -> u8 {
    match a {
        Access::Encrypted => 0,
        Access::ReadOnly => 1,
        Access::ReadWrite => 2,
    }
}

fn message(sender: Role, claim: Access, transcript: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(34);
    m.push(sender.to_byte());
    m.push(claim_byte(claim));
    m.extend_from_slice(transcript);
    m
}

/// Our proof, sent as `sender`.
pub(crate) fn make(creds: &FolderCredentials, sender: Role, transcript: &[u8; 32]) -> Vec<u8> {
    #[cfg(test)]
    if let Some(claim) = creds.forged_claim() {
        let len = match claim {
            Access::ReadWrite => SIGNATURE_LEN,
            Access::ReadOnly => 32,
            Access::Encrypted => 0,
        };
        let mut out = vec![claim_byte(claim)];
        out.resize(1 + len, 0xEE);
        return out;
    }
    let claim = creds.access();
    let m = message(sender, claim, transcript);
    let mut out = vec![claim_byte(claim)];
    match (claim, creds.signing_key(), creds.ro_keys()) {
        (Access::ReadWrite, Some(sk), _) => out.extend_from_slice(sk.sign(CONTEXT, &m).as_bytes()),
        (Access::ReadOnly, _, Some((_, mac))) => out.extend_from_slice(&mac.mac(CONTEXT, &m)),
        _ => {
            // Encrypted, or (impossibly) a key without its material: claim nothing.
            out = vec![claim_byte(Access::Encrypted)];
        }
    }
    out
}

/// Checks the proof `payload` that the peer sent as `sender`.
pub(crate) fn verify(
    local: &FolderCredentials,
    sender: Role,
    transcript: &[u8; 32],
    payload: &[u8],
) -> Result<PeerAccess, Violation> {
    let (&claim, proof) = payload
        .split_first()
        .ok_or(Violation::MalformedAccessProof)?;
    let claimed = match claim {
        0 => Access::Encrypted,
        1 => Access::ReadOnly,
        2 => Access::ReadWrite,
        _ => return Err(Violation::MalformedAccessProof),
    };
    let m = message(sender, claimed, transcript);
    let verified = match claimed {
        Access::Encrypted => {
            if !proof.is_empty() {
                return Err(Violation::MalformedAccessProof);
            }
            Access::Encrypted
        }
        Access::ReadOnly => {
            let tag: &[u8; 32] = proof
                .try_into()
                .map_err(|_| Violation::MalformedAccessProof)?;
            match local.ro_keys() {
                Some((_, mac)) if mac.verify(CONTEXT, &m, tag) => Access::ReadOnly,
                Some(_) => return Err(Violation::BadAccessProof { claimed }),
                None => Access::Encrypted,
            }
        }
        Access::ReadWrite => {
            let sig: [u8; SIGNATURE_LEN] = proof
                .try_into()
                .map_err(|_| Violation::MalformedAccessProof)?;
            match local.ro_keys() {
                Some((ro, _)) => {
                    ro.verify(CONTEXT, &m, &Signature(sig))
                        .map_err(|_| Violation::BadAccessProof { claimed })?;
                    Access::ReadWrite
                }
                None => Access::Encrypted,
            }
        }
    };
    Ok(PeerAccess { verified, claimed })
}
