//! Voice datagrams: the small binary header in front of each Opus packet.
//!
//! Voice does not use protobuf: a datagram carries one 20 ms Opus packet and
//! a few bytes of header, parsed on the server for every packet it forwards.
//! Layouts (all integers big-endian; proto/README.md, "Voice"):
//!
//! ```text
//! client -> server:  kind=1 (u8) | seq (u16) | timestamp (u32) | opus
//! server -> client:  kind=1 (u8) | sender user id (u64) | seq (u16) | timestamp (u32) | opus
//! ```
//!
//! The server never trusts a sender named by a client: it prefixes the id of
//! the account the connection is logged in as, and forwards the rest as sent.

use bytes::{BufMut, Bytes, BytesMut};

/// The first byte of a voice datagram (either direction). Other values are
/// reserved for later media kinds and dropped.
pub const KIND_VOICE: u8 = 1;
/// Bytes before the Opus packet in a client's datagram.
pub const CLIENT_HEADER: usize = 1 + 2 + 4;
/// Bytes before the Opus packet in a forwarded datagram.
pub const SERVER_HEADER: usize = 1 + 8 + 2 + 4;
/// Largest Opus packet the server forwards. One 20 ms frame at 48 kb/s with
/// in-band FEC is about 150 bytes; this leaves room for 128 kb/s music.
pub const MAX_OPUS: usize = 400;

/// What a client sends: its own sequence number and sample clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceHeader {
    /// +1 per packet (wrapping); gaps are losses, not silence.
    pub seq: u16,
    /// The first sample's time in 48 kHz samples (wrapping). It jumps over
    /// silence the encoder did not send (DTX).
    pub timestamp: u32,
}

/// Why a datagram is not a voice packet the server forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("not a voice datagram")]
    Kind,
    #[error("shorter than its header or empty")]
    Short,
    #[error("opus packet larger than {MAX_OPUS} bytes")]
    TooLarge,
}

/// Encodes a client's datagram.
pub fn client_datagram(header: VoiceHeader, opus: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(CLIENT_HEADER + opus.len());
    b.put_u8(KIND_VOICE);
    b.put_u16(header.seq);
    b.put_u32(header.timestamp);
    b.put_slice(opus);
    b.freeze()
}

/// Checks a client's datagram; on success the caller forwards it with
/// [`forward`]. A packet with no Opus bytes is refused: there is nothing to play.
pub fn check_client(datagram: &[u8]) -> Result<(), VoiceError> {
    match datagram.first() {
        Some(&KIND_VOICE) => {}
        Some(_) => return Err(VoiceError::Kind),
        None => return Err(VoiceError::Short),
    }
    let opus = datagram.len().checked_sub(CLIENT_HEADER).filter(|n| *n > 0).ok_or(VoiceError::Short)?;
    if opus > MAX_OPUS {
        return Err(VoiceError::TooLarge);
    }
    Ok(())
}

/// The datagram the server forwards for a checked client datagram: the
/// sender's id put in after the kind byte, everything else as sent.
pub fn forward(sender: u64, datagram: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(datagram.len() + 8);
    b.put_u8(KIND_VOICE);
    b.put_u64(sender);
    b.put_slice(&datagram[1..]);
    b.freeze()
}

/// A forwarded packet as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub sender: u64,
    pub header: VoiceHeader,
    pub opus: Bytes,
}

/// Parses a datagram from the server.
pub fn parse_forwarded(datagram: Bytes) -> Result<Forwarded, VoiceError> {
    if datagram.first() != Some(&KIND_VOICE) {
        return Err(VoiceError::Kind);
    }
    if datagram.len() <= SERVER_HEADER {
        return Err(VoiceError::Short);
    }
    let sender = u64::from_be_bytes(datagram[1..9].try_into().expect("8 bytes"));
    let seq = u16::from_be_bytes([datagram[9], datagram[10]]);
    let timestamp = u32::from_be_bytes(datagram[11..15].try_into().expect("4 bytes"));
    Ok(Forwarded { sender, header: VoiceHeader { seq, timestamp }, opus: datagram.slice(SERVER_HEADER..) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_packet_is_forwarded_with_the_server_stamped_sender() {
        let sent = client_datagram(VoiceHeader { seq: 65535, timestamp: 0xdead_beef }, b"opus!");
        assert_eq!(sent.len(), CLIENT_HEADER + 5);
        check_client(&sent).unwrap();
        let got = parse_forwarded(forward(42, &sent)).unwrap();
        assert_eq!(got.sender, 42);
        assert_eq!(got.header, VoiceHeader { seq: 65535, timestamp: 0xdead_beef });
        assert_eq!(&got.opus[..], b"opus!");
    }

    #[test]
    fn a_forged_sender_is_only_payload() {
        // A client that writes a server-style header naming user 7 ...
        let forged = forward(7, &client_datagram(VoiceHeader { seq: 1, timestamp: 2 }, b"x"));
        check_client(&forged).unwrap();
        // ... is forwarded as itself; 7 is just bytes of its seq, timestamp and payload.
        let got = parse_forwarded(forward(99, &forged)).unwrap();
        assert_eq!(got.sender, 99);
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        assert_eq!(check_client(b""), Err(VoiceError::Short));
        assert_eq!(check_client(&[2, 0, 0, 0, 0, 0, 0, 1]), Err(VoiceError::Kind));
        assert_eq!(check_client(&[KIND_VOICE, 0, 0, 0, 0, 0, 0]), Err(VoiceError::Short));
        let big = client_datagram(VoiceHeader { seq: 0, timestamp: 0 }, &[0; MAX_OPUS + 1]);
        assert_eq!(check_client(&big), Err(VoiceError::TooLarge));
        let max = client_datagram(VoiceHeader { seq: 0, timestamp: 0 }, &[0; MAX_OPUS]);
        assert_eq!(check_client(&max), Ok(()));
        assert_eq!(parse_forwarded(Bytes::from_static(&[KIND_VOICE; SERVER_HEADER])), Err(VoiceError::Short));
        assert_eq!(parse_forwarded(Bytes::new()), Err(VoiceError::Kind));
    }
}
