//! Any bytes, read as a record body, give a record or a typed error, never a
//! panic; a body that decodes is canonical: re-encoding gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = record::FileRecord::decode(data) {
        let again = record.encode().expect("a decoded record is valid");
        assert_eq!(again, data, "decoding accepted a non-canonical body");
        // Helpers the engine runs on every accepted record must not panic either.
        let _ = record.path.windows_issue();
        let _ = record::is_conflict_name(record.path.file_name());
        let _ = record::conflict_path(&record.path, record.modified, keys::ShortId(1));
    }
});
