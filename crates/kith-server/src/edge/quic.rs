//! The QUIC edge: accepts connections, turns frames into hub inputs, and
//! writes each session's outbox back out. Per connection a handshake task
//! starts the session's: one task reads and one writes; neither shares state
//! with another connection.

use std::sync::Arc;
use std::time::Duration;

use kith_proto::v1::CloseCode;

use super::Edge;
use super::stream::{self, Chunk, Shared, Source, StreamSink};
use crate::actor::{Abort, Terms};
use crate::admission::{Refused, Slot};
use crate::voice::{self, Datagrams, VoiceLink};

/// How long a client has to open its control stream after the handshake.
const CONTROL_STREAM_DEADLINE: Duration = Duration::from_secs(10);
/// How long one frame may take to arrive once its first byte has (Q2).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes read from the transport per call: bounds the decoder's buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Quinn's transport settings, tuned for many mostly idle chat connections.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // One control stream and three transfer streams (a file each).
    t.max_concurrent_bidi_streams(4u32.into());
    // HTTP/3 (browsers' WebTransport) opens three unidirectional streams at
    // once — its control stream and QPACK's two — and browsers refuse a
    // server that does not allow them in its first transport parameters,
    // before ALPN says which protocol a connection speaks. Native
    // connections are given the same credit; streams they open are refused.
    t.max_concurrent_uni_streams(3u32.into());
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
        tokio::spawn(handshake(incoming, edge.clone()));
    }
}

/// Completes one handshake and starts the connection's session task. The
/// session gets a task of its own rather than continuing in this one: a
/// task's memory is the largest state its future can be in, and a session
/// lasting hours should not carry the handshake's (some 400 bytes) nor the
/// other protocol's (a WebTransport session's is twice a native one's).
async fn handshake(incoming: quinn::Incoming, edge: Arc<Edge>) {
    let remote = incoming.remote_address();
    let admitted = edge.admission.connect(remote.ip());
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => return tracing::debug!(%remote, error = %e, "handshake failed"),
    };
    match admitted {
        // One UDP port, two protocols: browsers ask for HTTP/3
        // (WebTransport), native clients for kith's own.
        Ok(slot) if alpn(&conn).as_deref() == Some(super::webtransport::ALPN) => {
            tokio::spawn(super::webtransport::serve(conn, edge, slot));
        }
        Ok(slot) => {
            tokio::spawn(serve(conn, edge, slot));
        }
        Err(refused) => refuse(conn, refused),
    }
}

/// The protocol the handshake settled on.
fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let data = conn.handshake_data()?;
    data.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?.protocol
}

/// Closes a connection the admission rules turned away, saying when to retry.
fn refuse(conn: quinn::Connection, refused: Refused) {
    tracing::debug!(remote = %conn.remote_address(), %refused, "connection refused");
    conn.close((CloseCode::RateLimited as u32).into(), refused.to_string().as_bytes());
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
    let (voice, route) = VoiceLink::new(Datagrams::Quic(conn.clone()));
    // Voice rides on QUIC datagrams (RFC 9221); a peer that did not offer
    // them has no voice link, and its `join_voice` is refused saying why.
    let voice = conn.max_datagram_size().is_some().then_some(voice);
    let abort_conn = conn.clone();
    let abort: Abort =
        Arc::new(move |code, reason| abort_conn.close((code as u32).into(), reason.as_bytes()));
    let sink = Arc::new(Shared::new(StreamSink::new(send, abort.clone())));
    let direct: Arc<dyn stream::Direct> = sink.clone();
    // The hub closes the session if it is still unauthenticated by then.
    let terms = Terms { auth_within: edge.admission.auth_deadline, resumable: true };
    let opened = edge.open(session, "quic", abort, voice, Some(direct), terms);
    let Some(opened) = opened.await else { return };
    let voice = tokio::spawn(voice::receive(Datagrams::Quic(conn.clone()), route, edge.metrics.clone()));
    let extra = tokio::spawn(transfers(conn.clone(), edge.clone(), session));
    let source = QuicSource(recv);
    stream::run(&edge, session, ip, opened, source, sink, |code, reason| {
        conn.close((code as u32).into(), reason.as_bytes())
    })
    .await;
    voice.abort();
    extra.abort();
}

impl stream::ByteStream for quinn::SendStream {
    async fn write<'a>(&'a mut self, chunk: &'a mut bytes::Bytes) -> Result<(), ()> {
        self.write_chunks(std::slice::from_mut(chunk)).await.map(drop).map_err(drop)
    }

    fn finish(&mut self) {
        let _ = quinn::SendStream::finish(self);
    }

    async fn stopped(&mut self) {
        let _ = quinn::SendStream::stopped(self).await;
    }
}

/// A session's control stream, read.
struct QuicSource(quinn::RecvStream);

impl Source for QuicSource {
    async fn next_chunk(&mut self) -> Chunk {
        match self.0.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => Chunk::Data(chunk.bytes),
            Ok(None) => Chunk::Eof,
            // A client that closed the connection itself with code 0 left
            // on purpose, like one that finished its stream (the FIN and
            // the close often arrive together).
            Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(c)))
                if c.error_code == quinn::VarInt::from_u32(0) =>
            {
                Chunk::Eof
            }
            Err(_) => Chunk::Lost,
        }
    }
}

/// The QUIC error code a unidirectional stream is stopped with: this
/// protocol version uses none (proto/README.md, "Streams").
pub const STREAM_UNSUPPORTED: u32 = 1;

/// Serves every bidirectional stream after the control stream as a
/// transfer stream (at most three at once: the transport's stream credit),
/// and stops every unidirectional one at once instead of leaving it open
/// and silent.
async fn transfers(conn: quinn::Connection, edge: Arc<Edge>, session: kith_core::SessionId) {
    let code = quinn::VarInt::from_u32(STREAM_UNSUPPORTED);
    let mut running = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    let edge = edge.clone();
                    running.spawn(async move {
                        let files = edge.files.clone();
                        super::transfer::serve(&edge, &files, session, recv, send).await
                    });
                }
                Err(_) => return,
            },
            Some(_) = running.join_next() => {}
            uni = conn.accept_uni() => match uni {
                Ok(mut recv) => {
                    let _ = recv.stop(code);
                }
                Err(_) => return,
            },
        }
    }
}
