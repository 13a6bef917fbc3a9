//! Arbitrary bytes as a client frame body: protobuf decoding, then wire→domain
//! parsing and validation. Never a panic; anything accepted is valid.
#![no_main]

use kith_core::request::{Parsed, Request, parse};
use kith_core::text::Body;
use kith_proto::v1::ClientMessage;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = ClientMessage::decode(data) else { return };
    let Ok(parsed) = parse(msg.request, |_| "CODE".to_owned()) else { return };
    if let Parsed::Hub(Request::SendMessage { body, .. } | Request::EditMessage { body, .. }) = parsed {
        // Whatever passed validation passes it again (a message of files
        // alone has no words), and mentions parse.
        if !body.0.is_empty() {
            assert_eq!(Body::parse(&body.0).as_ref(), Ok(&body));
        }
        let _ = body.mention_names();
    }
});
