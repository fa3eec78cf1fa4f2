use std::time::Instant;

use keys::{Access, FolderKey, PeerId, RwSecret};
use sha2::{Digest, Sha256};

use crate::{ChannelConfig, ChannelError, FolderCredentials, Handshake, Session};

/// A deterministic random source: SHA-256(seed ‖ counter) blocks.
pub(crate) fn det_rng(seed: u64) -> impl FnMut(&mut [u8]) -> Result<(), ChannelError> {
    let mut counter = 0u64;
    move |dest: &mut [u8]| {
        for chunk in dest.chunks_mut(32) {
            let block: [u8; 32] = Sha256::new()
                .chain_update(seed.to_be_bytes())
                .chain_update(counter.to_be_bytes())
                .finalize()
                .into();
            counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

pub(crate) fn rw() -> RwSecret {
    RwSecret::from_bytes([7; 20])
}

pub(crate) fn key(access: Access) -> FolderKey {
    let rw = rw();
    match access {
        Access::ReadWrite => FolderKey::ReadWrite(rw),
        Access::ReadOnly => FolderKey::ReadOnly(rw.ro_key()),
        Access::Encrypted => FolderKey::Encrypted(rw.ro_key().encrypted_secret()),
    }
}

pub(crate) fn creds(access: Access) -> FolderCredentials {
    FolderCredentials::new(&key(access))
}

pub(crate) fn config(peer: u8, access: Access) -> ChannelConfig {
    ChannelConfig::new(PeerId([peer; 32]), creds(access))
}

pub(crate) const ALL: [Access; 3] = [Access::ReadWrite, Access::ReadOnly, Access::Encrypted];

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    AtoB,
    BtoA,
}

/// One side of an in-memory pair.
#[derive(Debug)]
pub(crate) enum End {
    Hs(Box<Handshake>),
    Sess(Box<Session>),
    /// Failed, with what it still had to say (an alert or abort close).
    Err(ChannelError, Option<Vec<u8>>),
}

impl End {
    fn poll_output(&mut self) -> Option<Vec<u8>> {
        match self {
            Self::Hs(h) => h.poll_output(),
            Self::Sess(s) => s.poll_output(),
            Self::Err(_, last) => last.take(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let result = match self {
            Self::Hs(h) => h.handle_input(bytes),
            Self::Sess(s) => s.handle_input(bytes),
            Self::Err(..) => return,
        };
        self.settle(result);
    }

    fn eof(&mut self) {
        let result = match self {
            Self::Hs(h) => h.handle_eof(),
            Self::Sess(s) => s.handle_eof(),
            Self::Err(..) => return,
        };
        self.settle(result);
    }

    fn settle(&mut self, result: Result<(), ChannelError>) {
        match result {
            Err(e) => {
                let last = self.poll_output();
                *self = Self::Err(e, last);
            }
            Ok(()) => {
                if let Self::Hs(h) = self
                    && let Some(s) = h.take_session()
                {
                    // Output still queued moves into the session.
                    *self = Self::Sess(Box::new(s));
                }
            }
        }
    }

    pub(crate) fn is_err(&self) -> bool {
        matches!(self, Self::Err(..))
    }

    pub(crate) fn session(self) -> Session {
        match self {
            Self::Sess(s) => *s,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    pub(crate) fn error(self) -> ChannelError {
        match self {
            Self::Err(e, _) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

/// Runs two handshakes against each other; `mitm` sees (and may rewrite) every
/// transmission, numbered from 0. With `teardown`, the connection is closed at the
/// end, as a real transport would after a stall or failure.
pub(crate) fn run_with(
    ca: &ChannelConfig,
    cb: &ChannelConfig,
    teardown: bool,
    mitm: impl FnMut(Dir, usize, Vec<u8>) -> Vec<Vec<u8>>,
) -> (End, End) {
    run_seeded(ca, cb, (11, 22), teardown, mitm)
}

/// [`run_with`] with the two sides' random seeds.
pub(crate) fn run_seeded(
    ca: &ChannelConfig,
    cb: &ChannelConfig,
    seeds: (u64, u64),
    teardown: bool,
    mut mitm: impl FnMut(Dir, usize, Vec<u8>) -> Vec<Vec<u8>>,
) -> (End, End) {
    let now = Instant::now();
    let mut a = End::Hs(Box::new(
        Handshake::new(ca, now, &mut det_rng(seeds.0)).unwrap(),
    ));
    let mut b = End::Hs(Box::new(
        Handshake::new(cb, now, &mut det_rng(seeds.1)).unwrap(),
    ));
    let mut n = 0;
    for _ in 0..64 {
        let mut progressed = false;
        for dir in [Dir::AtoB, Dir::BtoA] {
            let (from, to) = match dir {
                Dir::AtoB => (&mut a, &mut b),
                Dir::BtoA => (&mut b, &mut a),
            };
            if let Some(bytes) = from.poll_output() {
                progressed = true;
                for piece in mitm(dir, n, bytes) {
                    to.feed(&piece);
                }
                n += 1;
            }
        }
        if !progressed {
            break;
        }
    }
    if teardown {
        a.eof();
        b.eof();
    }
    (a, b)
}

pub(crate) fn run(ca: &ChannelConfig, cb: &ChannelConfig) -> (End, End) {
    run_with(ca, cb, false, |_, _, bytes| vec![bytes])
}

pub(crate) fn established(ca: &ChannelConfig, cb: &ChannelConfig) -> (Session, Session) {
    let (a, b) = run(ca, cb);
    (a.session(), b.session())
}

/// Moves everything `from` has to send into `to`; returns what `to` can read.
pub(crate) fn pump(from: &mut Session, to: &mut Session) -> Result<Vec<u8>, ChannelError> {
    if let Some(bytes) = from.poll_output() {
        to.handle_input(&bytes)?;
    }
    Ok(to.poll_plaintext().unwrap_or_default())
}

pub(crate) fn _assert_send<T: Send>() {}

#[test]
fn handshake_and_session_are_send() {
    _assert_send::<Handshake>();
    _assert_send::<Session>();
}
