//! Arbitrary bytes, split into arbitrary chunks, through the frame decoder:
//! never a panic, never a frame over the limit, never more buffered than the
//! limit allows.
#![no_main]

use kith_proto::{FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let chunk = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new(MAX);
    for piece in rest.chunks(chunk) {
        decoder.extend(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() <= MAX),
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    assert!(len > max as u64);
                    return;
                }
            }
        }
    }
});
