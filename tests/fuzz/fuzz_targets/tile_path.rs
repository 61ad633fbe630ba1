//! C2SP tile paths and tile contents (`tlog::tile`): `parse_tile_path` accepts only the canonical
//! encoding (what it accepts prints back to the same path), `parse_bundle` splits an entry bundle
//! that `encode_bundle` rebuilds byte for byte, `parse_tile_data` checks the width. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlog::tile::{
    TILE_WIDTH, TilePath, encode_bundle, parse_bundle, parse_tile_data, parse_tile_path,
    tile_at_size,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        match parse_tile_path(path) {
            Ok(TilePath::Hashes(t)) => {
                assert_eq!(t.path(), path);
                assert!((1..=TILE_WIDTH).contains(&u64::from(t.width)));
                let _ = (t.first_entry(), tile_at_size(t.level, t.n, u64::MAX));
                let _ = parse_tile_data(&t, &[]);
            }
            Ok(TilePath::Entries(t)) => {
                assert_eq!(t.entries_path(), path);
                assert_eq!(t.level, 0);
                let _ = t.first_entry();
            }
            Err(_) => {}
        }
    }
    if let Ok(entries) = parse_bundle(data)
        && !entries.is_empty()
    {
        assert!(entries.len() as u64 <= TILE_WIDTH);
        assert_eq!(encode_bundle(&entries).as_deref(), Ok(data));
    }
});
