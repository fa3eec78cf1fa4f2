//! Arbitrary bytes fed to a channel handshake as the peer's input.
//!
//! The first byte picks our side (SRP client or server), whether a valid peer
//! hello goes first (so the fuzzer reaches the SRP messages quickly), and how the
//! input is split.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use channel::{ChannelConfig, ChannelError, FolderCredentials, Handshake};
use keys::{FolderKey, PeerId, RwSecret};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    configs: [ChannelConfig; 2],
    hellos: [Vec<u8>; 2],
}

fn fixed(dest: &mut [u8]) -> Result<(), ChannelError> {
    dest.fill(0x5A);
    Ok(())
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rw = RwSecret::from_bytes([7; 20]);
        let creds = FolderCredentials::new(&FolderKey::ReadOnly(rw.ro_key()));
        let configs = [1u8, 2].map(|p| ChannelConfig::new(PeerId([p; 32]), creds.clone()));
        let hellos = [0, 1].map(|i| {
            let mut hs = Handshake::new(&configs[i], Instant::now(), &mut fixed).unwrap();
            hs.poll_output().unwrap()
        });
        Fixture { configs, hellos }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let ours = usize::from(mode & 1);
    let mut hs = Handshake::new(&f.configs[ours], Instant::now(), &mut fixed).unwrap();
    let _ = hs.poll_output();
    let input = if mode & 2 != 0 { [&f.hellos[1 - ours][..], rest].concat() } else { rest.to_vec() };
    let chunk = 1 + usize::from(mode >> 2) * 7;
    for piece in input.chunks(chunk) {
        let failed = hs.handle_input(piece).is_err();
        let _ = hs.poll_output();
        if failed {
            // Dead: everything after is refused, nothing is established.
            assert!(hs.handle_input(b"x").is_err());
            assert!(!hs.is_established());
            return;
        }
    }
    let _ = hs.handle_eof();
});
