use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announced more than the receiver accepts.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: u64, max: usize },
}

/// Encodes one message as a frame: length prefix, then the message.
pub fn encode_frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_u32(len as u32);
    msg.encode(&mut buf).expect("BytesMut grows, so encoding cannot run out of space");
    buf.freeze()
}

/// The per-recipient bytes that precede a shared event body in a frame: the
/// frame length, the `ServerMessage.event` field key and length, and the
/// `Event.seq` field. Returns the buffer and how many of its bytes are used.
///
/// The body is the encoding of an `Event` whose `seq` is 0 (omitted), i.e.
/// just its `body` oneof field, made once for every recipient. Protobuf
/// decoders merge concatenated fields, so prefixing a per-recipient `seq`
/// field yields a valid `Event`.
pub fn event_frame_header(seq: u64, body_len: usize) -> ([u8; 32], usize) {
    // Event.seq = field 1, varint: key 0x08.
    let seq_field_len = 1 + prost::encoding::encoded_len_varint(seq);
    let event_len = seq_field_len + body_len;
    // ServerMessage.event = field 2, length-delimited: key 0x12.
    let message_len = 1 + prost::encoding::encoded_len_varint(event_len as u64) + event_len;

    let mut out = [0u8; 32];
    let mut buf = &mut out[..];
    buf.put_u32(message_len as u32);
    buf.put_u8(0x12);
    prost::encoding::encode_varint(event_len as u64, &mut buf);
    buf.put_u8(0x08);
    prost::encoding::encode_varint(seq, &mut buf);
    let used = 32 - buf.remaining_mut();
    (out, used)
}

/// Splits a byte stream into frames without doing any IO.
///
/// Memory held is bounded by `max` plus whatever a single [`extend`] call adds,
/// so callers should read from the transport in bounded chunks.
///
/// [`extend`]: FrameDecoder::extend
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: BytesMut::new(), max }
    }

    /// Appends bytes received from the transport.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Takes the next whole frame's message bytes, if one is buffered.
    ///
    /// After an error the stream is unusable: framing is lost.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len as usize > self.max {
            return Err(FrameError::TooLarge { len: len.into(), max: self.max });
        }
        let len = len as usize;
        if self.buf.len() < 4 + len {
            // Reserve only up to the (already bounded) announced length.
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// True while part of a frame is buffered: the peer is mid-frame, so a
    /// read deadline applies, and an end of stream here is a truncated frame.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{self, ServerMessage, event, server_message};

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Bytes>, FrameError> {
        let mut dec = FrameDecoder::new(max);
        dec.extend(bytes);
        let mut out = Vec::new();
        while let Some(frame) = dec.next_frame()? {
            out.push(frame);
        }
        Ok(out)
    }

    #[test]
    fn oversize_length_is_rejected_before_the_body_arrives() {
        let err = decode_all(&[0xFF, 0xFF, 0xFF, 0xFF], 1024).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 0xFFFF_FFFF, max: 1024 });
    }

    #[test]
    fn frames_split_across_arbitrary_chunks_reassemble() {
        let a = encode_frame(&v1::Error { request_id: 7, code: 2, reason: "x".into(), retry_after_ms: 0 });
        let b = encode_frame(&v1::Empty {});
        let stream: Vec<u8> = [a.as_ref(), b.as_ref()].concat();
        for split in 0..stream.len() {
            let mut dec = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                dec.extend(chunk);
                while let Some(f) = dec.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 2, "split at {split}");
            assert!(!dec.in_frame());
        }
    }

    #[test]
    fn shared_event_body_with_per_recipient_header_decodes_as_one_event() {
        let deleted = event::Body::MessageDeleted(v1::MessageDeleted { channel_id: 5, message_id: 9 });
        let body = v1::Event { seq: 0, body: Some(deleted) }.encode_to_vec();
        for seq in [1u64, 127, 128, 300, u64::MAX] {
            let (header, used) = event_frame_header(seq, body.len());
            let frame: Vec<u8> = [&header[..used], body.as_ref()].concat();
            let frames = decode_all(&frame, 1024).unwrap();
            assert_eq!(frames.len(), 1);
            let msg = ServerMessage::decode(frames[0].clone()).unwrap();
            let Some(server_message::Kind::Event(ev)) = msg.kind else { panic!("not an event") };
            assert_eq!(ev.seq, seq);
            assert_eq!(
                ev.body,
                Some(event::Body::MessageDeleted(v1::MessageDeleted { channel_id: 5, message_id: 9 }))
            );
        }
    }
}
