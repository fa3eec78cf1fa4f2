//! The public key API: formats, derivations, parsing and its errors.

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use keys::{Access, EncryptedSecret, FolderKey, KeyError, PeerId, RoKey, RwSecret, Signature};
use proptest::prelude::*;

/// The fixed vector of `docs/PROTOCOL.md`, computed independently of this crate
/// (Python's hmac/hashlib and the `cryptography` package).
mod vector {
    pub(super) const RW: &str = "AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT";
    pub(super) const RO: &str = "B7ILRNSNXB6HUYLVG4YPM3OF7N4O5SL3PA32SCFLEAFKCFHAHMSNA";
    pub(super) const ENCRYPTED: &str = "DCHDXIAQHU64WRUVULGMZOEY2NWHUMLXA";
    pub(super) const FOLDER_ID: &str = "f5182f2ffc72a58a32d60365d4bcaa53574d477a";
    pub(super) const SRP_PASSWORD: &str =
        "7b40aee76905a12880f85657b7bf1125852fb6cbf7c547b7ce09824a2535f2b2";
    pub(super) const RO_MAC_KEY: &str =
        "cbe9e0b8a736023c2e905a066ee4b2499756882a9365eab6bdd560743c323155";
    pub(super) const CONTENT_KEY: &str =
        "831747c43a6104c0fdabb8f14c44ae181de44a07c4d314c028a217f5711ceebe";
    /// Signature over context `record`, message `hello`.
    pub(super) const SIGNATURE: &str = "f2ddf63f873b20d691261248b52a8951acdf6de33fb7e676cf755e194c6228d556df254dfcc60492c91afebd5f55c8bd4350fab749ac4825312f195540c1380f";
}

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

#[test]
fn rfc4648_base32_vectors() {
    // RFC 4648 §10, without the padding our keys leave out.
    let cases = [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];
    for (plain, encoded) in cases {
        assert_eq!(BASE32_NOPAD.encode(plain.as_bytes()), encoded);
        assert_eq!(
            BASE32_NOPAD.decode(encoded.as_bytes()).unwrap(),
            plain.as_bytes()
        );
    }
}

#[test]
fn fixed_derivation_vector() {
    let rw = RwSecret::from_bytes(core::array::from_fn(|i| i as u8));
    assert_eq!(rw.to_string(), vector::RW);
    let ro = rw.ro_key();
    assert_eq!(ro.to_string(), vector::RO);
    let enc = ro.encrypted_secret();
    assert_eq!(enc.to_string(), vector::ENCRYPTED);
    assert_eq!(enc.folder_id().to_string(), vector::FOLDER_ID);
    assert_eq!(hex(enc.srp_password().as_bytes()), vector::SRP_PASSWORD);
    assert_eq!(hex(ro.ro_mac_key().as_bytes()), vector::RO_MAC_KEY);
    assert_eq!(hex(ro.content_key().as_bytes()), vector::CONTENT_KEY);
    let signature = rw.signing_key().sign(b"record", b"hello");
    assert_eq!(hex(signature.as_bytes()), vector::SIGNATURE);
}

#[test]
fn every_level_derives_the_same_lower_keys() {
    let rw: FolderKey = vector::RW.parse().unwrap();
    let ro: FolderKey = vector::RO.parse().unwrap();
    let enc: FolderKey = vector::ENCRYPTED.parse().unwrap();
    assert_eq!(rw.access(), Access::ReadWrite);
    assert_eq!(ro.access(), Access::ReadOnly);
    assert_eq!(enc.access(), Access::Encrypted);
    for key in [&rw, &ro, &enc] {
        assert_eq!(key.folder_id().to_string(), vector::FOLDER_ID);
        assert_eq!(key.encrypted_secret().to_string(), vector::ENCRYPTED);
    }
    assert_eq!(rw.ro_key(), ro.ro_key());
    assert!(rw.signing_key().is_some());
    assert!(ro.signing_key().is_none() && enc.signing_key().is_none());
    assert!(enc.ro_key().is_none());
}

#[test]
fn ro_mac_binds_context_and_message() {
    let ro: FolderKey = vector::RO.parse().unwrap();
    let mac_key = ro.ro_key().unwrap().ro_mac_key();
    let tag = mac_key.mac(b"access-proof", b"transcript");
    assert!(mac_key.verify(b"access-proof", b"transcript", &tag));
    assert!(!mac_key.verify(b"access-proof", b"transcripT", &tag));
    assert!(!mac_key.verify(b"record", b"transcript", &tag));
    let mut bad = tag;
    bad[0] ^= 0x80;
    assert!(!mac_key.verify(b"access-proof", b"transcript", &bad));
}

#[test]
fn generated_secrets_differ_and_round_trip() {
    let a = RwSecret::generate().unwrap();
    let b = RwSecret::generate().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.to_string().len(), 33);
    assert_eq!(a.ro_key().to_string().len(), 53);
    assert_eq!(a.ro_key().encrypted_secret().to_string().len(), 33);
    let parsed: FolderKey = a.to_string().parse().unwrap();
    assert_eq!(parsed, FolderKey::ReadWrite(a));
}

#[test]
fn accepts_any_case_spaces_and_dashes() {
    let messy = "  aaaa-qeay eaud-aoca jbif-qydi ob4i-bceq t\n";
    let key: FolderKey = messy.parse().unwrap();
    assert_eq!(key.to_string(), vector::RW);
}

#[test]
fn debug_never_shows_secrets() {
    let rw: FolderKey = vector::RW.parse().unwrap();
    let ro = rw.ro_key().unwrap();
    let enc = rw.encrypted_secret();
    let printed = format!(
        "{rw:?} {ro:?} {enc:?} {:?} {:?} {:?} {:?} {:?}",
        rw.signing_key().unwrap(),
        ro.ro_mac_key(),
        ro.content_key(),
        enc.srp_password(),
        FolderKey::ReadOnly(ro.clone()),
    );
    for secret in [&vector::RW[1..], &vector::RO[1..], &vector::ENCRYPTED[1..]] {
        assert!(!printed.contains(secret), "{printed}");
        assert!(
            !printed.to_lowercase().contains(&secret.to_lowercase()),
            "{printed}"
        );
    }
    for hex_secret in [
        vector::SRP_PASSWORD,
        vector::RO_MAC_KEY,
        vector::CONTENT_KEY,
    ] {
        assert!(!printed.contains(hex_secret), "{printed}");
    }
    assert!(printed.contains("redacted"));
}

#[test]
fn errors_name_the_problem() {
    let parse = |s: &str| s.parse::<FolderKey>().unwrap_err();
    assert_eq!(parse(""), KeyError::Empty);
    assert_eq!(parse(" - \t"), KeyError::Empty);
    assert_eq!(
        parse("CAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT"),
        KeyError::UnknownPrefix { found: 'C' }
    );
    assert_eq!(
        parse("AAAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQ"),
        KeyError::Length {
            kind: Access::ReadWrite,
            got: 32,
            want: 33
        }
    );
    assert_eq!(
        parse("DCHDXIAQHU64WRUVULGMZOEY2NWHUMLXAA"),
        KeyError::Length {
            kind: Access::Encrypted,
            got: 34,
            want: 33
        }
    );
    // Position counts the user's characters, separators included.
    assert_eq!(
        parse("AAAA-QEA0"),
        KeyError::BadChar {
            kind: Access::ReadWrite,
            ch: '0',
            position: 9
        }
    );
    let message = parse("AAAA-QEA0").to_string();
    assert!(
        message.contains("position 9") && message.contains("did you mean O"),
        "{message}"
    );
    // 32 bytes leave 4 unused bits in the last character; only 'A','Q' … fit.
    let mut ro = vector::RO.to_string();
    ro.pop();
    ro.push('B');
    assert_eq!(
        parse(&ro),
        KeyError::NonCanonical {
            kind: Access::ReadOnly,
            ch: 'B'
        }
    );
}

#[test]
fn mistyped_ro_key_that_is_no_public_key_is_an_error() {
    // Find, deterministically, a 32-byte string that is not an Ed25519 point.
    let not_a_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|bytes| RoKey::from_bytes(bytes).is_err())
        .expect("some constant 32-byte string is not a curve point");
    let text = format!("B{}", BASE32_NOPAD.encode(&not_a_point));
    assert_eq!(
        text.parse::<FolderKey>().unwrap_err(),
        KeyError::NotAPublicKey
    );
}

#[test]
fn folder_id_and_peer_id_text_round_trip() {
    let enc = EncryptedSecret::from_bytes([9; 20]);
    let id = enc.folder_id();
    assert_eq!(id.to_string().parse::<keys::FolderId>().unwrap(), id);
    assert!("xyz".parse::<keys::FolderId>().is_err());
    let peer = PeerId::generate().unwrap();
    assert_eq!(
        peer.to_string().to_lowercase().parse::<PeerId>().unwrap(),
        peer
    );
    assert!("AAAA".parse::<PeerId>().is_err());
    assert_eq!(PeerId([1; 32]).short().0, 0x0101_0101_0101_0101);
}

#[test]
fn signature_round_trips_through_bytes() {
    let rw: FolderKey = vector::RW.parse().unwrap();
    let sig = rw.signing_key().unwrap().sign(b"record", b"x");
    let copy = Signature(*sig.as_bytes());
    rw.ro_key().unwrap().verify(b"record", b"x", &copy).unwrap();
}

fn any_key() -> impl Strategy<Value = FolderKey> {
    prop_oneof![
        any::<[u8; 20]>().prop_map(|b| FolderKey::ReadWrite(RwSecret::from_bytes(b))),
        any::<[u8; 20]>().prop_map(|b| FolderKey::ReadOnly(RwSecret::from_bytes(b).ro_key())),
        any::<[u8; 20]>().prop_map(|b| FolderKey::Encrypted(EncryptedSecret::from_bytes(b))),
    ]
}

proptest! {
    #[test]
    fn display_parses_back(key in any_key()) {
        let text = key.to_string();
        prop_assert_eq!(text.len(), key.access().text_len());
        prop_assert_eq!(text.parse::<FolderKey>().unwrap(), key);
    }

    #[test]
    fn lower_case_and_grouped_input_parses_the_same(key in any_key(), group in 1usize..8) {
        let text = key.to_string().to_lowercase();
        let grouped: String = text
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = if i > 0 && i % group == 0 { Some(if i % 2 == 0 { ' ' } else { '-' }) } else { None };
                sep.into_iter().chain(std::iter::once(c))
            })
            .collect();
        prop_assert_eq!(grouped.parse::<FolderKey>().unwrap(), key);
    }

    #[test]
    fn any_string_parses_or_is_a_typed_error(input in ".{0,80}") {
        if let Ok(key) = input.parse::<FolderKey>() {
            prop_assert_eq!(key.to_string().parse::<FolderKey>().unwrap(), key);
        }
    }

    #[test]
    fn near_keys_parse_or_are_typed_errors(input in "[ABDabd][A-Za-z0-9 \\-]{0,60}") {
        match input.parse::<FolderKey>() {
            Ok(key) => prop_assert!(matches!(key.access(), Access::ReadWrite | Access::ReadOnly | Access::Encrypted)),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
