//! The framed byte stream every session transport carries — a QUIC stream, a
//! WebTransport stream, the binary messages of a WebSocket — read into
//! requests and written from the session's outbox, written once. A
//! transport supplies chunks of bytes in ([`Source`]) and a way to write
//! frames out ([`Sink`]); the frame decoder, its deadline, the tolerance for
//! undecodable frames and the ordering of a close after what came before
//! are the same for all of them.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kith_core::{Outgoing, SessionId};
use kith_proto::v1::{ClientMessage, CloseCode, ErrorCode};
use kith_proto::{FrameDecoder, MAX_CLIENT_FRAME};
use prost::Message;
use tokio::sync::mpsc;

use super::{Edge, FrameHead, frame_body, submit};
use crate::actor::{OutItem, SessionHandle, error_frame};

/// Undecodable frames tolerated before the connection is closed (Q8).
const MAX_PROTOCOL_ERRORS: u32 = 3;

/// One read from a transport.
#[derive(Debug)]
pub enum Chunk {
    Data(Bytes),
    /// The peer finished its side on purpose: it left.
    Eof,
    /// The connection broke: the session may be resumed.
    Lost,
    /// The peer broke the transport's own rules (a WebSocket text message).
    Invalid(&'static str),
}

/// The read half of a session transport.
pub trait Source {
    fn next_chunk(&mut self) -> impl Future<Output = Chunk> + Send;
}

/// The write half of a session transport.
pub trait Sink: Send {
    /// Writes these frames, in order, each whole: its head, then the body
    /// every recipient shares. False if the transport is gone.
    fn send(&mut self, frames: &[Outgoing]) -> impl Future<Output = bool> + Send;
    /// Ends the session with a code after everything written so far.
    fn close(self, code: CloseCode, reason: &str) -> impl Future<Output = ()> + Send;
    /// The outbox ended: finish the stream cleanly.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Why a connection's read side ended.
#[derive(Debug, Clone, Copy)]
pub enum End {
    Eof,
    Lost,
    Closed(CloseCode, &'static str),
}

/// Bytes of frames written in one go, at most (unless one frame is larger).
const BATCH_BYTES: usize = 64 * 1024;

/// Writes the session's outbox to `sink` until the outbox ends, the hub
/// closes the session, or the transport fails. What has queued up by the
/// time the writer runs goes out in one write: one wake of the transport
/// for a burst, not one per frame.
pub async fn write_frames<S: Sink>(
    mut sink: S,
    mut outbox: mpsc::UnboundedReceiver<OutItem>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::new();
    while let Some(first) = outbox.recv().await {
        let mut item = Some(first);
        let mut bytes = 0;
        while let Some(next) = item.take() {
            let len = next.wire_len();
            queued.fetch_sub(len, Ordering::Relaxed);
            match next {
                OutItem::Send(out) => batch.push(out),
                OutItem::Close(code, reason) => {
                    if sink.send(&batch).await {
                        sink.close(code, &reason).await;
                    }
                    return;
                }
            }
            bytes += len;
            if bytes < BATCH_BYTES {
                item = outbox.try_recv().ok();
            }
        }
        if !sink.send(&batch).await {
            return;
        }
        batch.clear();
    }
    sink.finish().await;
}

/// Frames laid end to end, as a stream carries them.
pub fn concatenated(frames: &[Outgoing]) -> Bytes {
    let len = frames.iter().map(super::framed_len).sum();
    let mut out = bytes::BytesMut::with_capacity(len);
    for frame in frames {
        out.extend_from_slice(FrameHead::of(frame).as_bytes());
        out.extend_from_slice(frame_body(frame));
    }
    out.freeze()
}

/// Reads frames from `source`, decodes them and submits each request, until
/// the peer leaves, the connection breaks, or the peer breaks the protocol.
pub async fn read_frames(
    source: &mut impl Source,
    session: SessionId,
    ip: IpAddr,
    edge: &Edge,
    me: &SessionHandle,
) -> End {
    let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
    let mut protocol_errors = 0;
    let mut frame_deadline = None;
    loop {
        let read = source.next_chunk();
        let chunk = match frame_deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                Ok(r) => r,
                Err(_) => return End::Closed(CloseCode::Timeout, "a frame took too long to arrive"),
            },
            None => read.await,
        };
        let bytes = match chunk {
            Chunk::Data(bytes) => bytes,
            Chunk::Eof if decoder.in_frame() => {
                return End::Closed(CloseCode::Protocol, "stream ended inside a frame");
            }
            Chunk::Eof => return End::Eof,
            Chunk::Lost => return End::Lost,
            Chunk::Invalid(why) => return End::Closed(CloseCode::Protocol, why),
        };
        decoder.extend(&bytes);
        let mut completed = false;
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => {
                    completed = true;
                    frame
                }
                Ok(None) => break,
                Err(e) => {
                    me.push(OutItem::Send(error_frame(0, ErrorCode::Protocol, e.to_string())));
                    return End::Closed(CloseCode::FrameTooLarge, "frame too large");
                }
            };
            match ClientMessage::decode(frame) {
                Ok(msg) => {
                    if !submit(msg, session, ip, edge, me).await {
                        return End::Lost;
                    }
                }
                Err(e) => {
                    protocol_errors += 1;
                    let reason = format!("undecodable frame: {e}");
                    me.push(OutItem::Send(error_frame(0, ErrorCode::Protocol, reason)));
                    if protocol_errors >= MAX_PROTOCOL_ERRORS {
                        return End::Closed(CloseCode::Protocol, "too many undecodable frames");
                    }
                }
            }
        }
        // The deadline runs from a frame's first byte (Q2): a frame trickled
        // a byte at a time does not restart it. A frame that began in this
        // chunk, after another ended, gets its own.
        frame_deadline = match (decoder.in_frame(), frame_deadline) {
            (false, _) => None,
            (true, Some(deadline)) if !completed => Some(deadline),
            (true, _) => Some(tokio::time::Instant::now() + edge.frame_deadline),
        };
    }
}

/// Runs an opened session over a stream transport to its end: writes its
/// outbox, reads its requests, tells the hub how it ended (a peer that left
/// is gone; a broken connection may resume), lets what is queued go out
/// briefly — ending with the close code, if the peer broke the protocol —
/// then closes the transport with `close`.
pub async fn run(
    edge: &Edge,
    session: SessionId,
    ip: IpAddr,
    opened: super::Opened,
    mut source: impl Source,
    sink: impl Sink + 'static,
    close: impl FnOnce(CloseCode, &str),
) {
    let super::Opened { handle, outbox } = opened;
    let mut writer = tokio::spawn(write_frames(sink, outbox, handle.queued.clone()));
    let end = read_frames(&mut source, session, ip, edge, &handle).await;
    let gone = match end {
        End::Eof => kith_core::Input::Closed { session },
        _ => kith_core::Input::Disconnected { session },
    };
    let _ = edge.hub.send(crate::actor::ToHub::Input(gone)).await;
    if let End::Closed(code, reason) = end {
        // After the explanatory error frame already queued.
        handle.push(OutItem::Close(code, reason.to_owned()));
    }
    // The writer also ends once the hub's handle and this one are gone.
    drop(handle);
    match end {
        End::Closed(code, reason) => {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), &mut writer).await;
            close(code, reason);
        }
        End::Eof => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer).await;
            close(CloseCode::Normal, "bye");
        }
        End::Lost => {}
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_proto::v1;

    /// A transport that records what it was asked to write.
    #[derive(Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl Sink for Recorder {
        async fn send(&mut self, frames: &[Outgoing]) -> bool {
            let bytes = concatenated(frames);
            self.0.lock().unwrap().push(format!("{} frames, {} bytes", frames.len(), bytes.len()));
            true
        }
        async fn close(self, code: CloseCode, _: &str) {
            self.0.lock().unwrap().push(format!("close {code:?}"));
        }
        async fn finish(self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    fn frame(reason: &str) -> OutItem {
        OutItem::Send(error_frame(0, ErrorCode::Invalid, reason))
    }

    #[tokio::test]
    async fn what_queued_up_goes_out_in_one_write_and_a_close_comes_after_it() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let items =
            [frame("one"), frame("two"), frame("three"), OutItem::Close(CloseCode::Normal, "bye".into())];
        let total: usize = items.iter().map(OutItem::wire_len).sum();
        queued.fetch_add(total, Ordering::Relaxed);
        for item in items {
            tx.send(item).unwrap();
        }
        write_frames(Recorder(log.clone()), rx, queued.clone()).await;
        let expected = concatenated(&[
            error_frame(0, ErrorCode::Invalid, "one"),
            error_frame(0, ErrorCode::Invalid, "two"),
            error_frame(0, ErrorCode::Invalid, "three"),
        ]);
        assert_eq!(
            *log.lock().unwrap(),
            [format!("3 frames, {} bytes", expected.len()), "close Normal".into()]
        );
        assert_eq!(queued.load(Ordering::Relaxed), 0, "the outbox's count is given back");
        // The frames are whole and in order, as a reader decodes them.
        let mut decoder = FrameDecoder::new(kith_proto::MAX_SERVER_FRAME);
        decoder.extend(&expected);
        let mut reasons = Vec::new();
        while let Some(f) = decoder.next_frame().unwrap() {
            let Some(v1::server_message::Kind::Error(e)) = v1::ServerMessage::decode(f).unwrap().kind else {
                panic!("not an error frame")
            };
            reasons.push(e.reason);
        }
        assert_eq!(reasons, ["one", "two", "three"]);
    }
}
