//! Any bytes given to `wire::decode` give a message or a typed error, never a
//! panic. A message that decodes re-encodes to the bytes it came from (only a
//! Hello of version 2 or later may drop its extension area) and decodes again
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{DecodeError, Message};

fuzz_target!(|data: &[u8]| {
    match wire::decode(data) {
        Ok((message, used)) => {
            assert!(used <= data.len());
            let bytes = message.to_vec();
            let has_extension = matches!(&message, Message::Hello(h) if h.version >= 2);
            if !has_extension {
                assert_eq!(&bytes[..], &data[..used], "encoding is not canonical");
            }
            assert_eq!(wire::decode(&bytes), Ok((message, bytes.len())));
        }
        Err(DecodeError::Truncated { needed }) => assert!(needed > 0),
        Err(DecodeError::UnknownType { frame_len, .. }) => assert!(frame_len <= data.len()),
        Err(_) => {}
    }
});
