//! Photo metadata removal on hostile bytes: never panics, never loops, and
//! what it writes is already clean (stripping it again changes nothing).
#![no_main]

use kith_media::strip::{Stripped, strip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in ["image/jpeg", "image/png"] {
        let mut once = Vec::new();
        if strip(kind, data, &mut once).is_ok() {
            let mut twice = Vec::new();
            let again = strip(kind, &once[..], &mut twice).unwrap();
            assert!(matches!(again, Stripped::Cleaned { .. }), "{kind}: {again:?}");
            assert_eq!(once, twice, "{kind}: stripping is idempotent");
        }
    }
    let _ = kith_media::content_type(data);
    // Previews only ever see what strip accepted; hostile headers included.
    let mut clean = Vec::new();
    if strip("image/png", data, &mut clean).is_ok() {
        let _ = kith_media::thumbnail::thumbnail("image/png", std::io::Cursor::new(&clean));
    }
});
