//! The transfer streams' frames (proto/README.md, "Attachments"): the one
//! `TransferRequest` a peer writes first on a transfer stream and the
//! `TransferStatus` frames a server answers, read with the transfer limit.
//! Never a panic, never more buffered than the limit, and whatever decodes
//! survives a re-encoding unchanged.
#![no_main]

use kith_proto::v1::{TransferRequest, TransferStatus};
use kith_proto::{FrameDecoder, MAX_TRANSFER_FRAME, encode_frame};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(m) = M::decode(body) {
        let again = encode_frame(&m);
        let back = M::decode(&again[4..]).expect("what was encoded decodes");
        assert_eq!(back, m);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut frames = FrameDecoder::new(MAX_TRANSFER_FRAME);
    // Fed in pieces, as a stream arrives.
    for piece in data.chunks(7) {
        frames.extend(piece);
        loop {
            match frames.next_frame() {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX_TRANSFER_FRAME);
                    roundtrip::<TransferRequest>(&body);
                    roundtrip::<TransferStatus>(&body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
