//! Arbitrary bytes from a telnet client, in arbitrary chunks: the parser must
//! never panic, never answer more than it was asked, and never keep more than
//! its subnegotiation cap.
#![no_main]

use kith_telnet::Telnet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk.max(1));
    let mut t = Telnet::new();
    t.take_output();
    let mut answered = 0;
    for piece in bytes.chunks(chunk) {
        t.receive(piece);
        answered += t.take_output().len();
        while t.poll_event().is_some() {}
    }
    // Every reply answers a three-byte command (or is the one terminal-type
    // request, or an AYT answer of 19 bytes per two-byte AYT).
    assert!(answered <= 10 * bytes.len() + 6);
});
