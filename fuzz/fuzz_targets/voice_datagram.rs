//! Arbitrary bytes as a client's voice datagram: the server's check never
//! panics, and whatever it accepts is forwarded with the stamped sender and
//! the client's bytes intact; a client parsing arbitrary server datagrams
//! never panics either.
#![no_main]

use kith_proto::voice::{CLIENT_HEADER, MAX_OPUS, check_client, forward, parse_forwarded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if check_client(data).is_ok() {
        assert!(data.len() > CLIENT_HEADER && data.len() <= CLIENT_HEADER + MAX_OPUS);
        let out = parse_forwarded(forward(0x0123_4567_89ab_cdef, data)).expect("a forwarded datagram parses");
        assert_eq!(out.sender, 0x0123_4567_89ab_cdef);
        assert_eq!(&out.opus[..], &data[CLIENT_HEADER..]);
    }
    let _ = parse_forwarded(bytes::Bytes::copy_from_slice(data));
});
