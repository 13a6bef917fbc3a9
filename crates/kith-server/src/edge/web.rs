//! The web edge: HTTPS on TCP, on the same port number as QUIC. It serves the
//! browser client (built into the binary), tells the page how to reach the
//! WebTransport endpoint on the UDP port (and which certificate hash to
//! accept there), and carries sessions over a WebSocket for networks that
//! block UDP: the same framed byte stream as every other transport, in
//! binary messages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kith_core::Outgoing;
use kith_proto::v1::CloseCode;
use tokio::net::TcpListener;

use super::Edge;
use super::stream::{self, Chunk, Sink, Source};
use crate::actor::{Abort, Terms};
use crate::webcert::Resolver;

/// How long a browser has for the TLS handshake, and for each request's headers.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// A WebSocket message holds at most one frame's worth of the byte stream.
const MAX_WS_MESSAGE: usize = kith_proto::MAX_CLIENT_FRAME + 16;

/// What the page needs from the server beside its own files.
#[derive(Debug)]
pub struct Site {
    /// `sha256:<hex>` of the identity the HTTPS page is served with: the
    /// page shows it, to compare with the one the owner was told.
    pub fingerprint: String,
    pub certs: Arc<Resolver>,
}

/// Each connection's view: the shared edge, the site, and who is asking.
#[derive(Clone)]
pub(super) struct Conn {
    pub(super) edge: Arc<Edge>,
    site: Arc<Site>,
    pub(super) ip: IpAddr,
}

/// One file of the browser client, built into the binary (`web/`, see
/// ARCHITECTURE.md), and its gzip encoding, made on first demand.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    gzip: std::sync::OnceLock<Bytes>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset { body, content_type, gzip: std::sync::OnceLock::new() }
    }

    fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write as _;
                let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                out.write_all(self.body.as_bytes()).expect("writing to memory");
                out.finish().expect("writing to memory").into()
            })
            .clone()
    }

    /// The file, gzipped if the browser takes that.
    fn respond(&self, request: &HeaderMap) -> Response {
        let gzip = request
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
        let headers = [
            (header::CONTENT_TYPE, self.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "accept-encoding"),
        ];
        match gzip {
            true => (headers, [(header::CONTENT_ENCODING, "gzip")], self.gzip()).into_response(),
            false => (headers, self.body).into_response(),
        }
    }
}

static INDEX: Asset = Asset::new(include_str!("../../../../web/dist/index.html"), "text/html; charset=utf-8");
static APP_JS: Asset =
    Asset::new(include_str!("../../../../web/dist/app.js"), "text/javascript; charset=utf-8");
static APP_CSS: Asset = Asset::new(include_str!("../../../../web/dist/app.css"), "text/css; charset=utf-8");
static WORKLET: Asset =
    Asset::new(include_str!("../../../../web/dist/worklet.js"), "text/javascript; charset=utf-8");
static FAVICON: Asset = Asset::new(include_str!("../../../../web/dist/favicon.svg"), "image/svg+xml");

/// Accepts HTTPS connections until the listener fails or the task is aborted.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    edge: Arc<Edge>,
    site: Arc<Site>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router();
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "accepting an HTTPS connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The same per-address and total caps as native connections.
        let Ok(slot) = edge.admission.connect(remote.ip()) else { continue };
        let conn = Conn { edge: edge.clone(), site: site.clone(), ip: remote.ip() };
        let app = app.clone().with_state(conn);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve(tcp, remote, acceptor, app).await;
        });
    }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => return,
    };
    let service = hyper_util::service::TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_DEADLINE)
        .max_buf_size(16 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%remote, error = %e, "HTTPS connection ended with an error");
    }
}

fn router() -> Router<Conn> {
    Router::new()
        .route("/", get(index))
        .route("/invite/{code}", get(index))
        .route("/reset/{user}/{code}", get(index))
        .route("/app.js", get(|h: HeaderMap| async move { APP_JS.respond(&h) }))
        .route("/app.css", get(|h: HeaderMap| async move { APP_CSS.respond(&h) }))
        .route("/worklet.js", get(|h: HeaderMap| async move { WORKLET.respond(&h) }))
        .route("/favicon.svg", get(|h: HeaderMap| async move { FAVICON.respond(&h) }))
        .route("/api/webtransport", get(webtransport))
        .route("/ws", get(websocket))
        .route("/files/{key}/{index}", get(super::web_files::file))
        .route("/uploads/{key}", get(super::web_files::upload_status).post(super::web_files::upload))
        // For a load balancer or a monitor: no figures here (those are on
        // the metrics listener), only whether the server takes writes.
        .route("/health", get(health))
        .route(
            "/hooks/{channel}/{token}",
            axum::routing::post(super::webhooks::post)
                .layer(axum::extract::DefaultBodyLimit::max(super::webhooks::MAX_BODY)),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::map_response_with_state((), security_headers))
}

/// Every answer: nothing but this server's own files may run, load or be
/// connected to, the page may not be framed, and no referrer leaves.
async fn security_headers(State(()): State<()>, mut response: Response) -> Response {
    // A file is served with a stricter policy still (it may run nothing).
    let policy = if response.headers().contains_key(header::CONTENT_DISPOSITION) {
        super::web_files::FILE_POLICY
    } else {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
         media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

async fn index(State(conn): State<Conn>, request: HeaderMap) -> Response {
    let mut response = INDEX.respond(&request);
    // HSTS only for a certificate browsers trust: with a self-signed one it
    // would lock the user out for a year once they had accepted it.
    if conn.site.certs.ca_signed() {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Where the page opens its WebTransport session, and the certificate hash
/// to accept there when the server has no CA-signed certificate.
async fn health(State(conn): State<Conn>) -> Response {
    conn.edge.metrics.health().into_response()
}

async fn webtransport(State(conn): State<Conn>) -> Response {
    let hashes: Vec<String> = conn
        .site
        .certs
        .web_cert()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.hash))
        .into_iter()
        .collect();
    let body = serde_json::json!({
        "path": super::webtransport::PATH,
        "hashes": hashes,
        "fingerprint": conn.site.fingerprint,
    });
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")];
    (headers, body.to_string()).into_response()
}

/// A WebSocket is opened by any page the user visits, with the user's
/// address: only this server's own page may open one here. Non-browser
/// clients send no origin.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    origin.to_str().is_ok_and(|o| o.strip_prefix("https://") == Some(host))
}

async fn websocket(State(conn): State<Conn>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a page from another site may not open a session here")
            .into_response();
    }
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| serve_websocket(socket, conn))
}

async fn serve_websocket(socket: WebSocket, conn: Conn) {
    let Conn { edge, ip, .. } = conn;
    let session = edge.session_id();
    let (sink, source) = socket.split();
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(None);
    let abort: Abort = Arc::new(move |code, reason: &str| {
        abort_tx.send_replace(Some((code, reason.to_owned())));
    });
    // A WebSocket carries no datagrams: its sessions have no voice.
    let terms = Terms { auth_within: edge.admission.auth_deadline, resumable: true };
    let Some(opened) = edge.open(session, "websocket", abort, None, None, terms).await else {
        return;
    };
    // An abort ends the read side at once ([`WsSource`]), and the write
    // side with it.
    let source = WsSource { stream: source, abort: abort_rx };
    let sink = Arc::new(stream::Shared::new(WsSink(sink)));
    stream::run(&edge, session, ip, opened, source, sink, |_, _| {}).await;
}

/// Kith's close codes, in the WebSocket range for applications.
fn ws_close(code: CloseCode, reason: &str) -> Message {
    // A close frame's reason has 123 bytes at most.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: 4000 + code as u16, reason: reason[..end].into() }))
}

struct WsSink(SplitSink<WebSocket, Message>);

impl Sink for WsSink {
    async fn send(&mut self, frames: &[Outgoing]) -> bool {
        // One WebSocket message per frame, as the browser reads them.
        for frame in frames {
            let whole = super::stream::concatenated(std::slice::from_ref(frame));
            if self.0.send(Message::Binary(whole)).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self.0.send(ws_close(code, reason)).await;
    }

    async fn finish(&mut self) {
        let _ = self.0.send(ws_close(CloseCode::Normal, "bye")).await;
    }
}

struct WsSource {
    stream: SplitStream<WebSocket>,
    /// Set when the hub or the edge closes the session at once.
    abort: tokio::sync::watch::Receiver<Option<(CloseCode, String)>>,
}

impl Source for WsSource {
    async fn next_chunk(&mut self) -> Chunk {
        loop {
            let next = tokio::select! {
                next = self.stream.next() => next,
                _ = self.abort.changed() => return Chunk::Lost,
            };
            return match next {
                Some(Ok(Message::Binary(bytes))) => Chunk::Data(bytes),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    Chunk::Invalid("send binary messages; text is not part of the protocol")
                }
                Some(Ok(Message::Close(_))) => Chunk::Eof,
                Some(Err(_)) | None => Chunk::Lost,
            };
        }
    }
}
