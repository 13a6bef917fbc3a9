//! Metadata removal on hostile bytes, for every kind of file it rewrites:
//! never panics, never loops, and what it writes is already clean
//! (stripping it again changes nothing).
#![no_main]

use std::io::Cursor;

use kith_media::strip::{Stripped, strip};
use libfuzzer_sys::fuzz_target;

const KINDS: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif", "video/mp4", "image/heif"];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the kind, so that each parser sees every input.
    let Some((&pick, data)) = data.split_first() else { return };
    let kind = KINDS[usize::from(pick) % KINDS.len()];
    let mut once = Vec::new();
    if strip(kind, Cursor::new(data), &mut once).is_ok() {
        let mut twice = Vec::new();
        let again = strip(kind, Cursor::new(&once), &mut twice).unwrap();
        assert!(matches!(again, Stripped::Cleaned { .. }), "{kind}: {again:?}");
        assert_eq!(once, twice, "{kind}: stripping is idempotent");
        // Previews only ever see what strip accepted; hostile headers included.
        if kind == "image/png" || kind == "image/jpeg" {
            let _ = kith_media::thumbnail::thumbnail(kind, Cursor::new(&once));
        }
    }
    let _ = kith_media::content_type(data);
});
