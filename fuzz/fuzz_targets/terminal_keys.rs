//! Arbitrary bytes as a telnet user's terminal might send them, in arbitrary
//! chunks: the key decoder must never panic, must decode the same whatever
//! the chunking, and never yield more inputs than bytes it was given.
#![no_main]

use kith_tui::ansi::{Decoder, MAX_PASTE};
use kith_tui::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk.max(1));
    let mut whole = Vec::new();
    let mut d = Decoder::new();
    d.feed(bytes, &mut whole);
    d.flush(&mut whole);

    let mut pieces = Vec::new();
    let mut d = Decoder::new();
    for piece in bytes.chunks(chunk) {
        d.feed(piece, &mut pieces);
    }
    d.flush(&mut pieces);
    assert_eq!(whole, pieces);
    assert!(whole.len() <= bytes.len() + 1);
    for input in &whole {
        if let Input::Paste(text) = input {
            assert!(text.len() <= 3 * MAX_PASTE);
        }
    }
});
