//! Any bytes, read as a key, give a key or a typed error; a key that parses
//! prints back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = text.parse::<keys::FolderKey>() {
            let again: keys::FolderKey = key.to_string().parse().expect("display parses");
            assert_eq!(again, key);
        }
    }
});
