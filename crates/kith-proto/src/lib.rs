//! The kith wire protocol: protobuf types generated from `proto/kith.proto`,
//! the ALPN, and length-prefixed framing.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of one
//! encoded protobuf message. [`FrameDecoder`] is sans-IO: feed it whatever the
//! transport delivered and take whole frames out; it rejects an oversize
//! length as soon as the 4 length bytes are in, before buffering the body.

pub mod commands;
mod frame;
pub mod invite;
pub mod limits;
pub mod voice;

pub use frame::{FrameDecoder, FrameError, encode_frame, event_frame_header};

/// Generated protobuf types (package `kith.v1`).
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/kith.v1.rs"));
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/kith.v1.serde.rs"));
}

/// The QUIC ALPN protocol id of this protocol version.
pub const ALPN: &[u8] = b"kith/1";

/// Largest frame a client may send. A message body is at most 4000 characters
/// (16000 bytes of UTF-8); 64 KiB leaves room for every other request.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// A server identity as clients pin it: `sha256:<64 lowercase hex>` of the
/// DER-encoded leaf certificate.
pub fn fingerprint(cert_der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(cert_der).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Largest frame the server sends (a `Ready` snapshot of a big server, or a
/// history page of 100 maximum-size messages, fits with room to spare).
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// The largest `TransferRequest` or `TransferStatus` frame on a transfer
/// stream (a key, a file name and a reason fit easily).
pub const MAX_TRANSFER_FRAME: usize = 4 * 1024;

/// A point in time inside human-readable text the server sends (error
/// reasons, audit details): `<t:UNIX_SECONDS>`, as in Discord's markup.
/// Clients show it in the reader's time zone with how far away it is
/// ("14:05, in 9 min"); one that does not still shows a readable number.
pub fn time_token(unix_ms: u64) -> String {
    format!("<t:{}>", unix_ms / 1000)
}
