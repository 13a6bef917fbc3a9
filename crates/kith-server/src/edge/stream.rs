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
use std::task::Poll;

use bytes::Bytes;
use futures_channel::mpsc;
use kith_core::{Outgoing, SessionId};
use kith_proto::v1::{ClientMessage, CloseCode, ErrorCode};
use kith_proto::{FrameDecoder, MAX_CLIENT_FRAME};
use prost::Message;

use super::{Edge, FrameHead, frame_body, submit};
use crate::actor::{Abort, OutItem, SessionHandle, error_frame};

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
    /// Writes `frames` now, if the transport can take them without waiting
    /// — so the hub's turn can write them, with no task woken in between. A
    /// transport that cannot says [`Tried::Full`] (the default), and the
    /// frames go through the session's writer.
    fn try_send(&mut self, _frames: &[Outgoing]) -> Tried {
        Tried::Full
    }
    /// Ends the session with a code after everything written so far.
    fn close(&mut self, code: CloseCode, reason: &str) -> impl Future<Output = ()> + Send;
    /// The outbox ended: finish the stream cleanly.
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
}

/// What [`Sink::try_send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tried {
    Wrote,
    /// The transport took the first part of the frames; it holds these many
    /// bytes of the rest, which its next `send` writes before anything else.
    Partly(usize),
    /// Nothing was written: the transport would have to wait.
    Full,
    /// The transport is gone.
    Gone,
}

/// A session transport's write half, shared by its writer task and the hub.
pub type Shared<S> = tokio::sync::Mutex<S>;

/// A write half the hub's turn may write to directly.
pub trait Direct: Send + Sync {
    /// Writes `frames` at once if nothing is queued before them and the
    /// transport has room for them; false if they must be queued.
    fn try_send(&self, frames: &[Outgoing], me: &SessionHandle) -> bool;
}

impl<S: Sink> Direct for Shared<S> {
    fn try_send(&self, frames: &[Outgoing], me: &SessionHandle) -> bool {
        // The writer holds the lock while it writes: what it writes was
        // queued first, so these frames go after it.
        let Ok(mut sink) = self.try_lock() else { return false };
        // Bytes leave the count only once written (`write_frames`): zero
        // here, under the lock, means nothing pushed before is still unwritten.
        if me.queued.load(Ordering::Acquire) != 0 {
            return false;
        }
        match sink.try_send(frames) {
            // A gone transport drops what it is given, as a closed outbox does.
            Tried::Wrote | Tried::Gone => true,
            Tried::Partly(rest) => {
                // Still under the lock: the rest is written before anything
                // pushed after this, and the writer is woken to write it.
                me.enqueue(OutItem::Flush(rest));
                true
            }
            Tried::Full => false,
        }
    }
}

/// The sending half of a QUIC stream — a native session's control stream,
/// or a WebTransport one (a QUIC stream underneath).
pub trait ByteStream: Send {
    /// Writes from the front of `chunk` what the stream takes, waiting until
    /// it takes some; `chunk` keeps the rest. Err if the stream is gone.
    fn write<'a>(&'a mut self, chunk: &'a mut Bytes) -> impl Future<Output = Result<(), ()>> + Send + 'a;
    /// Ends the stream after what was written.
    fn finish(&mut self);
    /// Resolves once the peer has everything, or stopped reading.
    fn stopped(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// A session written on a [`ByteStream`]; `close` closes its connection
/// (the session's [`Abort`]: after `finish`, nothing is left unsent).
pub struct StreamSink<W> {
    stream: W,
    /// What a [`Tried::Partly`] left of its frame.
    rest: Option<Bytes>,
    close: Abort,
}

impl<W> std::fmt::Debug for StreamSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink")
            .field("rest", &self.rest.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

impl<W: ByteStream> StreamSink<W> {
    pub fn new(stream: W, close: Abort) -> Self {
        StreamSink { stream, rest: None, close }
    }

    async fn write_all(&mut self, mut chunk: Bytes) -> bool {
        while !chunk.is_empty() {
            if self.stream.write(&mut chunk).await.is_err() {
                return false;
            }
        }
        true
    }
}

impl<W: ByteStream> Sink for StreamSink<W> {
    async fn send(&mut self, frames: &[Outgoing]) -> bool {
        if let Some(rest) = self.rest.take()
            && !self.write_all(rest).await
        {
            return false;
        }
        frames.is_empty() || self.write_all(concatenated(frames)).await
    }

    fn try_send(&mut self, frames: &[Outgoing]) -> Tried {
        if self.rest.is_some() {
            return Tried::Full;
        }
        let mut chunk = concatenated(frames);
        // Polled once: a QUIC stream with room takes the bytes at once; one
        // without says so and has written nothing.
        let polled = {
            let write = std::pin::pin!(self.stream.write(&mut chunk));
            write.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        };
        match polled {
            Poll::Pending => Tried::Full,
            Poll::Ready(Err(())) => Tried::Gone,
            Poll::Ready(Ok(())) if chunk.is_empty() => Tried::Wrote,
            Poll::Ready(Ok(())) => {
                let rest = chunk.len();
                self.rest = Some(chunk);
                Tried::Partly(rest)
            }
        }
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        // Make sure what came before (say, a logout's reply) arrives first.
        self.stream.finish();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.stream.stopped()).await;
        (self.close)(code, reason);
    }

    async fn finish(&mut self) {
        self.stream.finish();
    }
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
/// for a burst, not one per frame. The writer holds the sink while it
/// writes, and gives the bytes back to `queued` only once they are
/// written, which is what lets the hub write past an empty outbox
/// ([`Direct`]) without overtaking it.
pub async fn write_frames<S: Sink>(
    sink: Arc<Shared<S>>,
    mut outbox: mpsc::UnboundedReceiver<OutItem>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::new();
    while let Ok(first) = outbox.recv().await {
        let mut sink = sink.lock().await;
        let mut item = Some(first);
        let mut bytes = 0;
        while let Some(next) = item.take() {
            bytes += next.wire_len();
            match next {
                OutItem::Send(out) => batch.push(out),
                // The sink holds the bytes; its `send` writes them first.
                OutItem::Flush(_) => {}
                OutItem::Close(code, reason) => {
                    // Boxed: once per session, and its deadline's timer
                    // would otherwise be room every writer keeps.
                    if sink.send(&batch).await {
                        Box::pin(sink.close(code, &reason)).await;
                    }
                    queued.fetch_sub(bytes, Ordering::Release);
                    return;
                }
            }
            if bytes < BATCH_BYTES {
                item = outbox.try_recv().ok();
            }
        }
        let sent = sink.send(&batch).await;
        queued.fetch_sub(bytes, Ordering::Release);
        if !sent {
            return;
        }
        batch.clear();
    }
    sink.lock().await.finish().await;
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
    sink: Arc<Shared<impl Sink + 'static>>,
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
        async fn close(&mut self, code: CloseCode, _: &str) {
            self.0.lock().unwrap().push(format!("close {code:?}"));
        }
        async fn finish(&mut self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    fn frame(reason: &str) -> OutItem {
        OutItem::Send(error_frame(0, ErrorCode::Invalid, reason))
    }

    #[tokio::test]
    async fn what_queued_up_goes_out_in_one_write_and_a_close_comes_after_it() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let items =
            [frame("one"), frame("two"), frame("three"), OutItem::Close(CloseCode::Normal, "bye".into())];
        let total: usize = items.iter().map(OutItem::wire_len).sum();
        queued.fetch_add(total, Ordering::Relaxed);
        for item in items {
            tx.unbounded_send(item).unwrap();
        }
        write_frames(Arc::new(Shared::new(Recorder(log.clone()))), rx, queued.clone()).await;
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

#[cfg(test)]
mod direct {
    use super::*;
    use kith_proto::v1;
    use std::sync::Mutex;
    use std::task::Waker;

    /// A stream that takes at most `room` bytes until given more, and says
    /// "wait" (remembering who to wake) when it has none.
    #[derive(Default, Clone)]
    struct Window(Arc<Mutex<WindowState>>);

    #[derive(Default)]
    struct WindowState {
        written: Vec<u8>,
        room: usize,
        waiting: Option<Waker>,
    }

    impl Window {
        fn give(&self, room: usize) {
            let mut w = self.0.lock().unwrap();
            w.room = room;
            if let Some(waker) = w.waiting.take() {
                waker.wake();
            }
        }
    }

    impl ByteStream for Window {
        fn write<'a>(&'a mut self, chunk: &'a mut Bytes) -> impl Future<Output = Result<(), ()>> + Send + 'a {
            std::future::poll_fn(move |cx| {
                let mut w = self.0.lock().unwrap();
                if w.room == 0 {
                    w.waiting = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let n = w.room.min(chunk.len());
                w.room -= n;
                let taken = chunk.split_to(n);
                w.written.extend_from_slice(&taken);
                Poll::Ready(Ok(()))
            })
        }
        fn finish(&mut self) {}
        async fn stopped(&mut self) {}
    }

    fn reason(frame: &Outgoing) -> String {
        let Some(v1::server_message::Kind::Error(e)) = frame.clone().into_server_message().kind else {
            panic!()
        };
        e.reason
    }

    #[tokio::test]
    async fn frames_written_by_the_hub_and_frames_queued_arrive_whole_and_in_order() {
        let window = Window::default();
        let sink = Arc::new(Shared::new(StreamSink::new(window.clone(), Arc::new(|_, _| {}))));
        let (tx, outbox) = mpsc::unbounded();
        let me = SessionHandle {
            outbox: tx,
            queued: Arc::new(AtomicUsize::new(0)),
            limit: 1 << 20,
            abort: Arc::new(|_, _| {}),
            direct: Some(sink.clone()),
            voice: None,
            reads: Arc::default(),
            slow: Default::default(),
        };
        let frames: Vec<Outgoing> =
            ["zero", "one", "two", "three", "four"].map(|r| error_frame(0, ErrorCode::Invalid, r)).into();

        // Room: written during the push (the first two in one write), nothing queued.
        window.give(1000);
        let mut two = frames[..2].to_vec();
        me.push_frames(&mut two);
        assert!(two.is_empty());
        assert_eq!(me.queued.load(Ordering::Relaxed), 0);
        // Room for three bytes of the next frame: the rest waits in the sink,
        // counted, and the frame after it queues behind it.
        window.give(3);
        me.push(OutItem::Send(frames[2].clone()));
        let rest = crate::edge::framed_len(&frames[2]) - 3;
        assert_eq!(me.queued.load(Ordering::Relaxed), rest);
        me.push(OutItem::Send(frames[3].clone()));
        // No room at all: queued too.
        me.push_frames(&mut vec![frames[4].clone()]);
        let queued = rest + crate::edge::framed_len(&frames[3]) + crate::edge::framed_len(&frames[4]);
        assert_eq!(me.queued.load(Ordering::Relaxed), queued);

        let queued_count = me.queued.clone();
        let writer = tokio::spawn(write_frames(sink.clone(), outbox, queued_count.clone()));
        window.give(1 << 20);
        drop(me);
        writer.await.unwrap();
        assert_eq!(queued_count.load(Ordering::Relaxed), 0, "every byte counted is given back");

        let mut decoder = kith_proto::FrameDecoder::new(kith_proto::MAX_SERVER_FRAME);
        decoder.extend(&window.0.lock().unwrap().written);
        let mut got = Vec::new();
        while let Some(f) = decoder.next_frame().unwrap() {
            let Some(v1::server_message::Kind::Error(e)) = v1::ServerMessage::decode(f).unwrap().kind else {
                panic!("not an error frame")
            };
            got.push(e.reason);
        }
        assert_eq!(got, frames.iter().map(reason).collect::<Vec<_>>());
    }
}
