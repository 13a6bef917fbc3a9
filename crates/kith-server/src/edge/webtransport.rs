//! The WebTransport edge: browsers reach the hub over HTTP/3 on the same UDP
//! port (and the same quinn endpoint) as native clients, chosen by ALPN.
//! After the HTTP/3 handshake and the CONNECT to [`PATH`], a session is the
//! same as a native one: a bidirectional stream carrying kith's frames, and
//! datagrams carrying voice in the same packet format.

use std::sync::Arc;
use std::time::Duration;

use kith_proto::v1::CloseCode;
use web_transport_quinn::http::StatusCode;

use super::Edge;
use super::stream::{self, Chunk, Shared, Source, StreamSink};
use crate::actor::{Abort, Terms};
use crate::admission::Slot;
use crate::voice::{self, Datagrams, VoiceLink};

/// The ALPN of HTTP/3, which WebTransport runs over.
pub const ALPN: &[u8] = b"h3";
/// Where the page opens its WebTransport session.
pub const PATH: &str = "/kith";
/// How long a browser has for the HTTP/3 handshake, the CONNECT and
/// opening its stream.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes read from the transport per call: bounds the decoder's buffer.
const READ_CHUNK: usize = 16 * 1024;

pub(super) async fn serve(conn: quinn::Connection, edge: Arc<Edge>, _slot: Slot) {
    let ip = conn.remote_address().ip();
    let session = match tokio::time::timeout(HANDSHAKE_DEADLINE, accept(conn.clone())).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            // Give the refusal time to arrive before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            return;
        }
        Err(_) => {
            conn.close((CloseCode::Timeout as u32).into(), b"no WebTransport session opened");
            return;
        }
    };
    let (send, recv) = match tokio::time::timeout(HANDSHAKE_DEADLINE, session.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return,
        Err(_) => {
            session.close(CloseCode::Timeout as u32, b"no control stream opened");
            return;
        }
    };
    let id = edge.session_id();
    let (voice, route) = VoiceLink::new(Datagrams::Web(Box::new(session.clone())));
    let abort_session = session.clone();
    let abort: Abort = Arc::new(move |code, reason| abort_session.close(code as u32, reason.as_bytes()));
    let sink = Arc::new(Shared::new(StreamSink::new(send, abort.clone())));
    let direct: Arc<dyn stream::Direct> = sink.clone();
    let terms = Terms { auth_within: edge.admission.auth_deadline, resumable: true };
    let opened = edge.open(id, "webtransport", abort, Some(voice), Some(direct), terms);
    let Some(opened) = opened.await else { return };
    let voice =
        tokio::spawn(voice::receive(Datagrams::Web(Box::new(session.clone())), route, edge.metrics.clone()));
    let extra = tokio::spawn(refuse_streams(session.clone()));
    stream::run(&edge, id, ip, opened, WebSource(recv), sink, |code, reason| {
        session.close(code as u32, reason.as_bytes())
    })
    .await;
    voice.abort();
    extra.abort();
}

/// The HTTP/3 handshake and the CONNECT request, answered: 404 for any
/// other path, 403 for a page of another origin.
async fn accept(conn: quinn::Connection) -> Option<web_transport_quinn::Session> {
    let request = match web_transport_quinn::Request::accept(conn).await {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(error = %e, "WebTransport handshake failed");
            return None;
        }
    };
    let refusal = if request.url.path() != PATH {
        Some(StatusCode::NOT_FOUND)
    } else if !same_origin(&request) {
        Some(StatusCode::FORBIDDEN)
    } else {
        None
    };
    match refusal {
        Some(status) => {
            let _ = request.reject(status).await;
            None
        }
        None => request.ok().await.ok(),
    }
}

/// A browser names the page that opened the session; only this server's
/// own page may (another site's script would act with the user's address).
/// Native tools send no origin.
fn same_origin(request: &web_transport_quinn::Request) -> bool {
    match request.headers.get("origin") {
        None => true,
        Some(origin) => origin.as_bytes() == request.url.origin().ascii_serialization().as_bytes(),
    }
}

/// Answers every stream after the control stream at once, as the QUIC edge
/// does ([`super::quic::STREAM_UNSUPPORTED`]).
async fn refuse_streams(session: web_transport_quinn::Session) {
    let code = super::quic::STREAM_UNSUPPORTED;
    loop {
        tokio::select! {
            bi = session.accept_bi() => match bi {
                Ok((mut send, mut recv)) => {
                    let _ = send.reset(code);
                    let _ = recv.stop(code);
                }
                Err(_) => return,
            },
            uni = session.accept_uni() => match uni {
                Ok(mut recv) => {
                    let _ = recv.stop(code);
                }
                Err(_) => return,
            },
        }
    }
}

impl stream::ByteStream for web_transport_quinn::SendStream {
    async fn write<'a>(&'a mut self, chunk: &'a mut bytes::Bytes) -> Result<(), ()> {
        self.write_chunks(std::slice::from_mut(chunk)).await.map(drop).map_err(drop)
    }

    fn finish(&mut self) {
        let _ = web_transport_quinn::SendStream::finish(self);
    }

    async fn stopped(&mut self) {
        let _ = web_transport_quinn::SendStream::stopped(self).await;
    }
}

struct WebSource(web_transport_quinn::RecvStream);

impl Source for WebSource {
    async fn next_chunk(&mut self) -> Chunk {
        match self.0.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => Chunk::Data(chunk.bytes),
            Ok(None) => Chunk::Eof,
            Err(_) => Chunk::Lost,
        }
    }
}
