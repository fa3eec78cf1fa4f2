//! Any datagram either decodes into a LAN announcement or gives a typed error,
//! never a panic; an announcement that decodes re-encodes to a prefix of the
//! datagram (the rest is the ignored extension area; unknown flag bits are
//! ignored, so they are not written back) and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net::discovery::lan::packet::{Announcement, FLAG_QUERY, MAX_FOLDERS, MAX_PACKET};

fuzz_target!(|data: &[u8]| {
    match Announcement::decode(data) {
        Ok(a) => {
            assert!(data.len() <= MAX_PACKET);
            assert!(a.folders.len() <= MAX_FOLDERS);
            assert_ne!(a.port, 0);
            let bytes = a.encode().expect("a decoded announcement encodes");
            let mut expected = data[..bytes.len()].to_vec();
            expected[5] &= FLAG_QUERY;
            assert_eq!(expected, bytes);
            assert_eq!(Announcement::decode(&bytes), Ok(a));
        }
        Err(e) => {
            // Errors render without panicking too.
            let _ = e.to_string();
        }
    }
});
