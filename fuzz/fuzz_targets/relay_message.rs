//! Any bytes either parse as relay messages or give a typed error, never a
//! panic; whatever parses writes back to exactly the bytes it took; the
//! exact reader never asks for more than one item's bytes and agrees with
//! `decode`. The same bytes, cut into events, drive a sans-IO relay with
//! small caps, whose answers all parse and whose stats never pass the caps.
#![no_main]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use relay_proto::{
    ClientMessage, HEADER_LEN, MAX_BODY_LEN, MessageReader, Output, PREAMBLE, ProtoError, Relay,
    RelayConfig, RelayMessage,
};

fn codec(data: &[u8]) {
    if let Ok((m, n)) = ClientMessage::decode(data) {
        assert_eq!(m.to_bytes(), data[..n]);
    }
    if let Ok((m, n)) = RelayMessage::decode(data) {
        assert_eq!(m.to_bytes(), data[..n]);
    }
    // The exact reader, one byte at a time, over the preamble and the data.
    let mut framed = PREAMBLE.to_vec();
    framed.extend_from_slice(data);
    let mut reader = MessageReader::<ClientMessage>::new();
    let mut pos = 0;
    while pos < framed.len() {
        let room = reader.unfilled();
        assert!(room.len() <= MAX_BODY_LEN.max(HEADER_LEN + 2));
        if room.is_empty() {
            assert!(matches!(reader.commit(0), Some(Err(_))));
            break;
        }
        room[0] = framed[pos];
        pos += 1;
        match reader.commit(1) {
            Some(Err(_)) => break,
            _ => {}
        }
    }
}

fn drive(data: &[u8]) {
    let config = RelayConfig {
        max_controls: 4,
        max_controls_per_source: 3,
        max_per_tag: 3,
        max_pending: 3,
        max_pending_per_source: 2,
        max_pairs: 2,
        max_spliced_per_source: 3,
        max_fresh: 5,
        max_fresh_per_source: 4,
        ..RelayConfig::default()
    };
    let mut now = Instant::now();
    let Ok(mut relay) = Relay::new(config.clone(), [1; 32], 7, now) else {
        return;
    };
    let mut rest = data;
    let mut sessions = Vec::new();
    while let [op, conn, arg, tail @ ..] = rest {
        rest = tail;
        let conn = u64::from(*conn % 16);
        match op % 6 {
            0 => {
                let _ = relay.handle_connection(now, conn, IpAddr::from([10, 0, 0, arg % 4]));
            }
            1 => {
                // A message from the data: small tags and peer ids collide.
                let mut body = [0u8; HEADER_LEN + 128];
                let n = body.len().min(rest.len());
                body[..n].copy_from_slice(&rest[..n]);
                let msg = match ClientMessage::decode(&body[..n]) {
                    Ok((m, used)) => {
                        rest = &rest[used..];
                        m
                    }
                    Err(_) => continue,
                };
                relay.handle_message(now, conn, msg);
            }
            2 => {
                // Accept a session the relay handed out.
                if let Some(&session) = sessions.get(usize::from(*arg) % sessions.len().max(1)) {
                    relay.handle_message(now, conn, ClientMessage::Accept { session });
                }
            }
            3 => relay.handle_malformed(conn, &ProtoError::UnknownType(*arg)),
            4 => relay.handle_closed(conn),
            _ => {
                now += Duration::from_millis(u64::from(*arg) * 100);
                relay.handle_timeout(now);
            }
        }
        while let Some(out) = relay.poll_output() {
            if let Output::Send { message, .. } = out {
                let bytes = message.to_bytes();
                assert_eq!(
                    RelayMessage::decode(&bytes),
                    Ok((message.clone(), bytes.len()))
                );
                if let RelayMessage::Invite { session, .. } = message {
                    sessions.push(session);
                }
            }
        }
        let s = relay.stats();
        assert!(s.fresh <= config.max_fresh);
        assert!(s.controls <= config.max_controls);
        assert!(s.pending <= config.max_pending);
        assert!(s.pairs <= config.max_pairs);
    }
}

fuzz_target!(|data: &[u8]| {
    codec(data);
    drive(data);
});
