//! The QUIC edge: accepts connections, turns frames into hub inputs, and
//! writes each session's outbox back out. One task reads and one writes per
//! connection; neither shares state with another connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kith_core::{Input, SessionId};
use kith_proto::v1::{ClientMessage, CloseCode, ErrorCode};
use kith_proto::{FrameDecoder, MAX_CLIENT_FRAME};
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::{Edge, FrameHead, Opened, frame_body, submit};
use crate::actor::{Abort, OutItem, SessionHandle, ToHub, error_frame};
use crate::admission::{Refused, Slot};
use crate::voice::{self, PacketBudget, Route, VoiceLink};

/// How long a client has to open its control stream after the handshake.
const CONTROL_STREAM_DEADLINE: Duration = Duration::from_secs(10);
/// How long one frame may take to arrive once its first byte has (Q2).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// Undecodable frames tolerated before the connection is closed (Q8).
const MAX_PROTOCOL_ERRORS: u32 = 3;
/// Bytes read from the transport per call: bounds the decoder's buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Quinn's transport settings, tuned for many mostly idle chat connections.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // One control stream, plus a little room for bulk streams in later versions.
    t.max_concurrent_bidi_streams(4u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    // Chat frames are small; smaller windows bound what a peer can make us buffer.
    t.stream_receive_window((256 * 1024u32).into());
    t.receive_window((512 * 1024u32).into());
    t.send_window(1024 * 1024);
    t.max_idle_timeout(Some(Duration::from_secs(60).try_into().expect("60 s is a valid idle timeout")));
    // Voice: a few hundred 20 ms packets either way. When a peer falls
    // behind, the oldest queued datagrams are dropped: late audio is useless.
    t.datagram_receive_buffer_size(Some(64 * 1024));
    t.datagram_send_buffer_size(64 * 1024);
    t
}

/// Accepts connections until the endpoint is closed.
pub async fn accept_loop(endpoint: quinn::Endpoint, edge: Arc<Edge>) {
    while let Some(incoming) = endpoint.accept().await {
        // Under a handshake flood, make clients prove their address first: a
        // Retry costs us one stateless packet, and spoofed sources never
        // come back with the token.
        if !incoming.remote_address_validated() && edge.admission.under_pressure() {
            let _ = incoming.retry();
            continue;
        }
        let edge = edge.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let admitted = edge.admission.connect(remote.ip());
            match incoming.await {
                Ok(conn) => match admitted {
                    Ok(slot) => serve(conn, edge, slot).await,
                    Err(refused) => refuse(conn, refused),
                },
                Err(e) => tracing::debug!(%remote, error = %e, "handshake failed"),
            }
        });
    }
}

/// Closes a connection the admission rules turned away, saying when to retry.
fn refuse(conn: quinn::Connection, refused: Refused) {
    tracing::debug!(remote = %conn.remote_address(), %refused, "connection refused");
    conn.close((CloseCode::RateLimited as u32).into(), refused.to_string().as_bytes());
}

/// Why a connection's read side ended.
enum End {
    Eof,
    Lost,
    Closed(CloseCode, &'static str),
}

async fn serve(conn: quinn::Connection, edge: Arc<Edge>, _slot: Slot) {
    let session = edge.session_id();
    let ip = conn.remote_address().ip();
    let (send, recv) = match tokio::time::timeout(CONTROL_STREAM_DEADLINE, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return,
        Err(_) => {
            conn.close((CloseCode::Timeout as u32).into(), b"no control stream opened");
            return;
        }
    };
    let (voice, route) = VoiceLink::new(conn.clone());
    // Voice rides on QUIC datagrams (RFC 9221); a peer that did not offer
    // them has no voice link, and its `join_voice` is refused saying why.
    let voice = conn.max_datagram_size().is_some().then_some(voice);
    let abort_conn = conn.clone();
    let abort: Abort =
        Arc::new(move |code, reason| abort_conn.close((code as u32).into(), reason.as_bytes()));
    // The hub closes the session if it is still unauthenticated by then.
    let Some(Opened { handle, outbox: outbox_rx }) =
        edge.open(session, abort, voice, edge.admission.auth_deadline).await
    else {
        return;
    };
    let queued = handle.queued.clone();
    let writer = tokio::spawn(write_loop(send, outbox_rx, queued, conn.clone()));
    let voice = tokio::spawn(voice_loop(conn.clone(), route));
    let extra = tokio::spawn(refuse_streams(conn.clone()));
    let end = read_loop(recv, session, ip, &edge, &handle).await;
    voice.abort();
    extra.abort();
    // A client that finished its stream meant to leave: nothing to resume.
    let gone =
        if matches!(end, End::Eof) { Input::Closed { session } } else { Input::Disconnected { session } };
    let _ = edge.hub.send(ToHub::Input(gone)).await;
    match end {
        End::Closed(code, reason) => {
            // Let an explanatory error frame go out first, briefly (the
            // writer ends once the hub's handle and this one are gone).
            drop(handle);
            let _ = tokio::time::timeout(Duration::from_millis(500), writer).await;
            conn.close((code as u32).into(), reason.as_bytes());
        }
        End::Eof => {
            drop(handle);
            let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
            conn.close((CloseCode::Normal as u32).into(), b"bye");
        }
        End::Lost => writer.abort(),
    }
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut outbox: mpsc::UnboundedReceiver<OutItem>,
    queued: Arc<AtomicUsize>,
    conn: quinn::Connection,
) {
    while let Some(item) = outbox.recv().await {
        queued.fetch_sub(item.wire_len(), Ordering::Relaxed);
        let written = match item {
            OutItem::Send(out) => match send.write_all(FrameHead::of(&out).as_bytes()).await {
                Ok(()) => send.write_all(frame_body(&out)).await,
                Err(e) => Err(e),
            },
            OutItem::Close(code, reason) => {
                // Make sure what came before (say, a logout's reply) arrives first.
                let _ = send.finish();
                let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
                conn.close((code as u32).into(), reason.as_bytes());
                return;
            }
        };
        if written.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

/// The QUIC error code a stream beyond the control stream is reset with:
/// this protocol version uses none (proto/README.md, "Streams").
pub const STREAM_UNSUPPORTED: u32 = 1;

/// Answers every stream after the control stream at once — reset and
/// stopped with [`STREAM_UNSUPPORTED`] — instead of leaving it open and
/// silent.
async fn refuse_streams(conn: quinn::Connection) {
    let code = quinn::VarInt::from_u32(STREAM_UNSUPPORTED);
    loop {
        tokio::select! {
            bi = conn.accept_bi() => match bi {
                Ok((mut send, mut recv)) => {
                    let _ = send.reset(code);
                    let _ = recv.stop(code);
                }
                Err(_) => return,
            },
            uni = conn.accept_uni() => match uni {
                Ok(mut recv) => {
                    let _ = recv.stop(code);
                }
                Err(_) => return,
            },
        }
    }
}

/// Forwards the session's voice datagrams by the route the hub last
/// published for it; without one (not in voice, or muted) they are dropped.
async fn voice_loop(conn: quinn::Connection, route: watch::Receiver<Option<Arc<Route>>>) {
    let mut budget = PacketBudget::default();
    while let Ok(datagram) = conn.read_datagram().await {
        if !budget.take(std::time::Instant::now()) {
            continue;
        }
        // Clone the Arc out so the watch's lock is not held while sending.
        let current = route.borrow().clone();
        voice::forward(current.as_deref(), &datagram);
    }
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    session: SessionId,
    ip: IpAddr,
    edge: &Edge,
    me: &SessionHandle,
) -> End {
    let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
    let mut protocol_errors = 0;
    let mut frame_deadline = None;
    loop {
        let read = recv.read_chunk(READ_CHUNK, true);
        let chunk = match frame_deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                Ok(r) => r,
                Err(_) => return End::Closed(CloseCode::Timeout, "a frame took too long to arrive"),
            },
            None => read.await,
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) if decoder.in_frame() => {
                return End::Closed(CloseCode::Protocol, "stream ended inside a frame");
            }
            Ok(None) => return End::Eof,
            // A client that closed the connection itself with code 0 left
            // on purpose, like one that finished its stream (the FIN and
            // the close often arrive together).
            Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(c)))
                if c.error_code == quinn::VarInt::from_u32(0) =>
            {
                return End::Eof;
            }
            Err(_) => return End::Lost,
        };
        decoder.extend(&chunk.bytes);
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
