//! Access-log entry decoding (`schemas::access_log::decode`). Never panics; what it accepts is
//! canonical: the entry validates and encodes back to exactly the input bytes (one entry, one
//! encoding, one leaf hash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::access_log::{MAX_ENCODED_LEN, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = decode(data) {
        assert!(data.len() <= MAX_ENCODED_LEN);
        entry.validate().expect("a decoded entry validates");
        assert_eq!(
            entry.encode().as_deref(),
            Ok(data),
            "decode accepted a non-canonical encoding"
        );
        let mut normalized = entry.clone();
        normalized.normalize();
        assert_eq!(normalized, entry, "a decoded entry is already normalized");
    }
});
