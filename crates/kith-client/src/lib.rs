//! kith-client: an async client for kith servers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kith_client::Error> {
//! use kith_client::{Client, Trust};
//! let (client, _seen) = Client::connect("127.0.0.1:7443", Trust::FirstUse).await?;
//! let ready = client.login("alice", "correct horse battery").await?;
//! println!("{} communities", ready.communities.len());
//! # Ok(()) }
//! ```
//!
//! One QUIC connection carries one control stream. Requests are matched to
//! replies by id, so any number may be in flight from any task; pushed events
//! arrive on [`Client::next_event`].

mod bots;
mod files;
mod session;
mod trust;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_proto::v1::{self, client_message::Request, reply::Result as ReplyResult, server_message::Kind};
use kith_proto::{FrameDecoder, MAX_SERVER_FRAME, encode_frame};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

pub use kith_proto::fingerprint;
pub use kith_proto::v1 as proto;
pub use session::{Backoff, IdentityChange, Session, Update};
pub use trust::{Seen, Trust};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The server presented another identity than the pinned one: an
    /// impostor, or a replaced key. Never retried.
    #[error(
        "the server at {addr} presented a different identity than the one pinned for it\n  \
         pinned:    {pinned}\n  presented: {presented}\n\
         An impostor would look like this; so would a server whose key was replaced. \
         Ask whoever runs it which fingerprint is right before trusting the new one"
    )]
    IdentityChanged { addr: String, pinned: String, presented: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// Nothing answered in time: the server is down, or the address wrong.
    #[error(
        "no answer from {addr} within {} s: is the address right and the server running?",
        after.as_secs_f32().ceil()
    )]
    Unreachable { addr: String, after: Duration },
    /// The server did not answer a request in time.
    #[error("the server did not answer within {} s", after.as_secs_f32().ceil())]
    Timeout { after: Duration },
    /// The server refused the request.
    #[error("{reason}")]
    Server {
        code: v1::ErrorCode,
        reason: String,
        /// For RATE_LIMITED: how long to wait before trying again.
        retry_after: Option<std::time::Duration>,
    },
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("the server sent an unexpected answer")]
    Unexpected,
    /// A local file could not be read or written.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

impl Error {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<v1::ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// How long the server asked to wait before retrying, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<ReplyResult, Error>>>>>;

/// The answer to a request written with [`Client::submit`].
#[derive(Debug)]
pub struct Answer {
    rx: oneshot::Receiver<Result<ReplyResult, Error>>,
    conn: quinn::Connection,
}

impl Answer {
    /// Waits for the server's reply (or refusal).
    pub async fn answer(self) -> Result<ReplyResult, Error> {
        // The reader fails what is pending when the stream ends; a request
        // written after that (while the server is closing) is failed by the close.
        tokio::select! {
            biased;
            answer = self.rx => answer.unwrap_or_else(|_| Err(closed_error(&self.conn))),
            _ = self.conn.closed() => Err(closed_error(&self.conn)),
        }
    }
}

fn closed_error(conn: &quinn::Connection) -> Error {
    Error::Closed(conn.close_reason().map_or_else(|| "connection lost".into(), |e| describe_close(&e)))
}
type ConnectionError = Arc<Mutex<Option<(v1::ErrorCode, String)>>>;

/// Events buffered for the application before further ones are dropped (the
/// gap then shows in `Event.seq`).
const EVENT_BUFFER: usize = 16 * 1024;

/// A connection to a kith server.
#[derive(Debug)]
pub struct Client {
    conn: quinn::Connection,
    /// Held only to write one whole frame; a tokio mutex because writing awaits.
    send: tokio::sync::Mutex<quinn::SendStream>,
    pending: Pending,
    next_id: AtomicU64,
    events: tokio::sync::Mutex<mpsc::Receiver<v1::Event>>,
    connection_error: ConnectionError,
    endpoint: quinn::Endpoint,
    /// The endpoint serves this connection alone (not a shared `Connector`'s).
    own_endpoint: bool,
}

/// The QUIC close code of [`Client::abort`]: a drop, not a goodbye.
const DROPPED: u32 = 1;

/// How often a quiet connection proves it is alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A connection that has heard nothing for this long is given up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long connecting waits for an answer, unless told otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Connects to `addr` (`host:port`) and opens the control stream. Returns
    /// what the handshake showed of the server's identity, for pinning.
    pub async fn connect(addr: &str, trust: Trust) -> Result<(Client, Seen), Error> {
        Self::connect_within(addr, trust, CONNECT_TIMEOUT).await
    }

    /// [`Client::connect`], giving up after `timeout` with [`Error::Unreachable`].
    pub async fn connect_within(
        addr: &str,
        trust: Trust,
        timeout: Duration,
    ) -> Result<(Client, Seen), Error> {
        let remote = resolve(addr).await?;
        let mut connector = Connector::new(trust, remote.is_ipv6())?;
        connector.set_connect_timeout(timeout);
        let (mut client, seen) = connector.connect(addr).await?;
        client.own_endpoint = true;
        Ok((client, seen))
    }

    /// Sends one voice datagram (see `kith_proto::voice`). Unreliable by
    /// design: it may be lost, and is dropped if the connection's datagram
    /// queue is full.
    pub fn send_datagram(&self, datagram: bytes::Bytes) -> Result<(), Error> {
        self.conn.send_datagram(datagram).map_err(|e| Error::Closed(e.to_string()))
    }

    /// What the transport has sent and received so far: packets, frames by
    /// kind (acknowledgements among them), losses, the path's RTT.
    pub fn transport_stats(&self) -> quinn::ConnectionStats {
        self.conn.stats()
    }

    /// The next datagram from the server, or `None` once the connection is gone.
    pub async fn read_datagram(&self) -> Option<bytes::Bytes> {
        self.conn.read_datagram().await.ok()
    }

    /// Sends one request and waits for its answer.
    pub async fn request(&self, request: Request) -> Result<ReplyResult, Error> {
        self.submit(request).await?.answer().await
    }

    /// Writes one request now and returns a handle to its answer, to await
    /// later: requests submitted one after another reach the server in
    /// that order, with no wait for each reply (and its disk commit) in
    /// between — what a bot or a benchmark sending in bulk wants.
    ///
    /// ```no_run
    /// # async fn demo(client: &kith_client::Client, channel_id: u64) -> Result<(), kith_client::Error> {
    /// use kith_client::proto::{SendMessageRequest, client_message::Request};
    /// let mut answers = Vec::new();
    /// for n in 0..100 {
    ///     let send = SendMessageRequest { channel_id, body: format!("line {n}"), nonce: format!("n{n}"), reply_to: 0, uploads: Vec::new() };
    ///     answers.push(client.submit(Request::SendMessage(send)).await?);
    /// }
    /// for answer in answers {
    ///     answer.answer().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn submit(&self, request: Request) -> Result<Answer, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let frame = encode_frame(&v1::ClientMessage { request_id: id, request: Some(request) });
        let written = self.send.lock().await.write_all(&frame).await;
        if written.is_err() {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Err(self.closed_error());
        }
        Ok(Answer { rx, conn: self.conn.clone() })
    }

    /// [`Client::request`], failing with [`Error::Timeout`] if no answer
    /// comes within `timeout` (the request may still have been carried out:
    /// retry sends with the same nonce).
    pub async fn request_within(&self, request: Request, timeout: Duration) -> Result<ReplyResult, Error> {
        tokio::time::timeout(timeout, self.request(request))
            .await
            .unwrap_or(Err(Error::Timeout { after: timeout }))
    }

    /// Writes raw bytes on the control stream. For tests of hostile input.
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), Error> {
        self.send.lock().await.write_all(bytes).await.map_err(|_| self.closed_error())
    }

    /// Ends the control stream from this side (the server then closes).
    pub async fn finish(&self) {
        let _ = self.send.lock().await.finish();
    }

    /// The next pushed event, or `None` once the connection is closed.
    pub async fn next_event(&self) -> Option<v1::Event> {
        self.events.lock().await.recv().await
    }

    /// Every event already received and not yet taken, without waiting.
    pub async fn drain_events(&self) -> Vec<v1::Event> {
        let mut events = self.events.lock().await;
        std::iter::from_fn(|| events.try_recv().ok()).collect()
    }

    /// Waits until the connection closes, and says why.
    pub async fn closed(&self) -> String {
        describe_close(&self.conn.closed().await)
    }

    /// The last connection-level error the server reported (one that answers
    /// no request, such as an undecodable frame), if any.
    pub fn connection_error(&self) -> Option<(v1::ErrorCode, String)> {
        self.connection_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<String> {
        self.conn.close_reason().map(|e| describe_close(&e))
    }

    /// The server's close code, if the server closed the connection.
    pub fn close_code(&self) -> Option<v1::CloseCode> {
        match self.conn.close_reason()? {
            quinn::ConnectionError::ApplicationClosed(close) => close_code(&close),
            _ => None,
        }
    }

    /// Drops the connection at once, as a network failure would (the server
    /// keeps the session resumable). Pending requests fail.
    pub fn abort(&self) {
        // Not code 0, which says "I am leaving" (the server then ends the
        // session at once): this one the server treats like a lost network.
        self.conn.close(DROPPED.into(), b"connection dropped");
    }

    fn closed_error(&self) -> Error {
        closed_error(&self.conn)
    }

    /// Closes the connection politely and waits briefly for the server to hear it.
    pub async fn close(&self) {
        let _ = self.send.lock().await.finish();
        self.conn.close(0u32.into(), b"bye");
        if self.own_endpoint {
            // Lets the close go out before a short-lived program exits.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        } else {
            // A shared endpoint stays busy with other connections: waiting
            // for it to go idle would wait for all of them. The close is
            // queued; one turn of the endpoint's driver sends it.
            tokio::task::yield_now().await;
        }
    }

    // ----- typed helpers --------------------------------------------------------

    pub async fn register(
        &self,
        username: &str,
        password: &str,
        credential: Option<v1::register_request::Credential>,
    ) -> Result<v1::Ready, Error> {
        let r = v1::RegisterRequest {
            username: username.into(),
            password: password.into(),
            display_name: String::new(),
            credential,
        };
        expect_ready(self.request(Request::Register(r)).await?)
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<v1::Ready, Error> {
        let r = v1::LoginRequest { username: username.into(), password: password.into() };
        expect_ready(self.request(Request::Login(r)).await?)
    }

    /// Sets a new password with a reset code from the server owner, and
    /// signs in (every other login of the account ends).
    pub async fn redeem_reset_code(
        &self,
        username: &str,
        code: &str,
        password: &str,
    ) -> Result<v1::Ready, Error> {
        let r = v1::RedeemResetCodeRequest {
            username: username.into(),
            code: code.into(),
            new_password: password.into(),
        };
        expect_ready(self.request(Request::RedeemResetCode(r)).await?)
    }

    pub async fn authenticate(&self, token: &str) -> Result<v1::Ready, Error> {
        expect_ready(
            self.request(Request::Authenticate(v1::AuthenticateRequest { token: token.into() })).await?,
        )
    }

    pub async fn send_message(&self, channel_id: u64, body: &str, nonce: &str) -> Result<v1::Message, Error> {
        let r = v1::SendMessageRequest {
            channel_id,
            body: body.into(),
            nonce: nonce.into(),
            reply_to: 0,
            uploads: Vec::new(),
        };
        match self.request(Request::SendMessage(r)).await? {
            ReplyResult::Message(m) => Ok(m),
            _ => Err(Error::Unexpected),
        }
    }

    /// Every member of a community, in id order, page by page (a large
    /// community's snapshot lists only who is around). Waits out rate-limit
    /// refusals as the server asks: a very large community takes more
    /// pages than the read burst allows.
    pub async fn all_members(&self, community_id: u64) -> Result<Vec<v1::Member>, Error> {
        let mut members = Vec::new();
        let mut after_user_id = 0;
        loop {
            let r = v1::ListMembersRequest { community_id, after_user_id, limit: 0 };
            let page = match self.request(Request::ListMembers(r)).await {
                Ok(ReplyResult::MemberPage(p)) => p,
                Ok(_) => return Err(Error::Unexpected),
                Err(e) if e.code() == Some(v1::ErrorCode::RateLimited) => {
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(100))).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            members.extend(page.members);
            if page.next_after_user_id == 0 {
                return Ok(members);
            }
            after_user_id = page.next_after_user_id;
        }
    }

    /// Fills in the member lists of a snapshot's large communities (see
    /// [`Client::all_members`]), for callers that look people up in it.
    pub async fn complete_members(&self, ready: &mut v1::Ready) -> Result<(), Error> {
        for c in &mut ready.communities {
            if c.members.len() < c.member_count as usize {
                c.members = self.all_members(c.id).await?;
            }
        }
        Ok(())
    }

    /// Creates a community (with a `general` channel); the caller owns it.
    pub async fn create_community(&self, name: &str) -> Result<v1::Community, Error> {
        match self.request(Request::CreateCommunity(v1::CreateCommunityRequest { name: name.into() })).await?
        {
            ReplyResult::Community(c) => Ok(c),
            _ => Err(Error::Unexpected),
        }
    }

    /// Creates a text or voice channel in a community.
    pub async fn create_channel(
        &self,
        community_id: u64,
        name: &str,
        kind: v1::ChannelKind,
    ) -> Result<v1::Channel, Error> {
        let r = v1::CreateChannelRequest {
            community_id,
            name: name.into(),
            topic: String::new(),
            kind: kind as i32,
        };
        match self.request(Request::CreateChannel(r)).await? {
            ReplyResult::Channel(c) => Ok(c),
            _ => Err(Error::Unexpected),
        }
    }

    /// Creates an invite (`max_uses` 0: unlimited; `expires_in` `None`: never).
    pub async fn create_invite(
        &self,
        community_id: u64,
        max_uses: u32,
        expires_in: Option<Duration>,
    ) -> Result<v1::Invite, Error> {
        let expires_in_ms = expires_in.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let r = v1::CreateInviteRequest { community_id, max_uses, expires_in_ms };
        match self.request(Request::CreateInvite(r)).await? {
            ReplyResult::Invite(i) => Ok(i),
            _ => Err(Error::Unexpected),
        }
    }

    /// Joins the community an invite code leads to.
    pub async fn join(&self, code: &str) -> Result<v1::Community, Error> {
        match self.request(Request::JoinCommunity(v1::JoinCommunityRequest { code: code.into() })).await? {
            ReplyResult::Community(c) => Ok(c),
            _ => Err(Error::Unexpected),
        }
    }

    pub async fn history(
        &self,
        channel_id: u64,
        anchor: Option<v1::history_request::Anchor>,
        limit: u32,
    ) -> Result<Vec<v1::Message>, Error> {
        let r = v1::HistoryRequest { channel_id, anchor, limit };
        match self.request(Request::History(r)).await? {
            ReplyResult::Messages(page) => Ok(page.messages),
            _ => Err(Error::Unexpected),
        }
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|_| Error::Resolve(addr.into()))?
        .next()
        .ok_or_else(|| Error::Resolve(addr.into()))
}

/// Makes many connections from one UDP socket with one trust policy: what a
/// bot, a bridge or a benchmark with many sessions wants.
#[derive(Debug)]
pub struct Connector {
    endpoint: quinn::Endpoint,
    trust: Trust,
    seen: Arc<Mutex<Seen>>,
    connect_timeout: Duration,
}

/// How a [`Connector`] sets up its UDP socket and connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorOptions {
    /// Bind here instead of an ephemeral port on every interface.
    pub bind: Option<SocketAddr>,
    /// Kernel receive and send buffer sizes, in bytes (`None`: the OS default).
    pub recv_buffer: Option<usize>,
    pub send_buffer: Option<usize>,
    /// Offer QUIC datagrams, which voice needs (on by default; a program
    /// that never joins voice saves their buffers).
    pub datagrams: bool,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        ConnectorOptions { bind: None, recv_buffer: None, send_buffer: None, datagrams: true }
    }
}

/// TLS for the server's HTTPS side (the web client, and its WebSocket),
/// checking the server's identity as `trust` says, as native connections do.
pub fn https_config(trust: Trust) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(trust::Verifier::new(trust, &provider));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

impl Connector {
    pub fn new(trust: Trust, ipv6: bool) -> Result<Connector, Error> {
        Self::with_options(trust, ipv6, ConnectorOptions::default())
    }

    /// How long [`Connector::connect`] waits for the server's answer.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }

    /// A connector set up as `options` say: a fixed address, larger buffers
    /// for a program with many connections, no datagrams.
    pub fn with_options(trust: Trust, ipv6: bool, options: ConnectorOptions) -> Result<Connector, Error> {
        let setup = |reason: String| Error::Connect { addr: "(local)".into(), reason };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(trust::Verifier::new(trust.clone(), &provider));
        let seen = verifier.seen.clone();
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        tls.alpn_protocols = vec![kith_proto::ALPN.to_vec()];
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| setup(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // A server that died without a word (power cut, SIGKILL) is noticed
        // within the idle timeout; keep-alives every 5 s keep a live but
        // quiet connection from reaching it. (The idle timeout in force is
        // the smaller of both sides'.)
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("valid timeout")));
        if !options.datagrams {
            transport.datagram_receive_buffer_size(None);
        }
        config.transport_config(Arc::new(transport));
        let any: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("valid");
        let udp = bind_udp(options.bind.unwrap_or(any), options.recv_buffer, options.send_buffer)
            .map_err(|e| setup(e.to_string()))?;
        let runtime = quinn::default_runtime().ok_or_else(|| setup("no async runtime".into()))?;
        let mut endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, udp, runtime)
            .map_err(|e| setup(e.to_string()))?;
        endpoint.set_default_client_config(config);
        Ok(Connector { endpoint, trust, seen, connect_timeout: CONNECT_TIMEOUT })
    }

    /// Connects to `addr` (`host:port`) and opens the control stream.
    pub async fn connect(&self, addr: &str) -> Result<(Client, Seen), Error> {
        let (conn, send, recv) = self.connect_raw(addr).await?;
        let pending: Pending = Arc::default();
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let connection_error = ConnectionError::default();
        tokio::spawn(read_loop(recv, conn.clone(), pending.clone(), events_tx, connection_error.clone()));
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let client = Client {
            conn,
            send: tokio::sync::Mutex::new(send),
            pending,
            next_id: AtomicU64::new(1),
            events: tokio::sync::Mutex::new(events_rx),
            connection_error,
            endpoint: self.endpoint.clone(),
            own_endpoint: false,
        };
        Ok((client, seen))
    }
}

impl Connector {
    /// The UDP address its connections share.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// A bare connection and its control stream, for tools and tests that
    /// write and read frames themselves.
    pub async fn connect_raw(
        &self,
        addr: &str,
    ) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream), Error> {
        let remote = resolve(addr).await?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
        let connect_err = |reason: String| Error::Connect { addr: addr.into(), reason };
        let connecting = self.endpoint.connect(remote, host).map_err(|e| connect_err(e.to_string()))?;
        let unreachable = || Error::Unreachable { addr: addr.into(), after: self.connect_timeout };
        let handshake =
            tokio::time::timeout(self.connect_timeout, connecting).await.map_err(|_| unreachable())?;
        let conn = match handshake {
            Ok(conn) => conn,
            Err(e) => {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let (Trust::Pin(pinned), Some(presented)) = (&self.trust, seen.fingerprint)
                    && *pinned != presented
                {
                    return Err(Error::IdentityChanged {
                        addr: addr.into(),
                        pinned: pinned.clone(),
                        presented,
                    });
                }
                return Err(connect_err(e.to_string()));
            }
        };
        let (send, recv) = tokio::time::timeout(self.connect_timeout, conn.open_bi())
            .await
            .map_err(|_| unreachable())?
            .map_err(|e| connect_err(e.to_string()))?;
        Ok((conn, send, recv))
    }
}

/// A UDP socket with the asked-for kernel buffers. A buffer the kernel
/// caps lower is not an error: the socket works, with less slack.
fn bind_udp(
    addr: SocketAddr,
    recv: Option<usize>,
    send: Option<usize>,
) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual-stack where the OS allows, as std's bind to [::] would be.
        let _ = socket.set_only_v6(false);
    }
    if let Some(n) = recv {
        let _ = socket.set_recv_buffer_size(n);
    }
    if let Some(n) = send {
        let _ = socket.set_send_buffer_size(n);
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn expect_ready(result: ReplyResult) -> Result<v1::Ready, Error> {
    match result {
        ReplyResult::Ready(ready) => Ok(ready),
        _ => Err(Error::Unexpected),
    }
}

/// The kith close code an application close carries, if it is one.
fn close_code(close: &quinn::ApplicationClose) -> Option<v1::CloseCode> {
    let code = i32::try_from(close.error_code.into_inner()).ok()?;
    v1::CloseCode::try_from(code).ok()
}

fn describe_close(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let code = close_code(close);
            let reason = String::from_utf8_lossy(&close.reason);
            match code {
                Some(code) => format!("{} ({reason})", code.as_str_name()),
                None => reason.into_owned(),
            }
        }
        other => other.to_string(),
    }
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    conn: quinn::Connection,
    pending: Pending,
    events: mpsc::Sender<v1::Event>,
    connection_error: ConnectionError,
) {
    let mut decoder = FrameDecoder::new(MAX_SERVER_FRAME);
    let mut dropped = 0u64;
    'read: while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        decoder.extend(&chunk.bytes);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the server sent an oversize frame");
                    break 'read;
                }
            };
            let Ok(msg) = v1::ServerMessage::decode(frame) else {
                tracing::warn!("the server sent an undecodable frame");
                continue;
            };
            let (id, answer) = match msg.kind {
                Some(Kind::Reply(r)) => (r.request_id, r.result.ok_or(Error::Unexpected)),
                Some(Kind::Error(e)) if e.request_id != 0 => {
                    let retry_after =
                        (e.retry_after_ms > 0).then(|| std::time::Duration::from_millis(e.retry_after_ms));
                    (e.request_id, Err(Error::Server { code: e.code(), reason: e.reason, retry_after }))
                }
                Some(Kind::Error(e)) => {
                    tracing::warn!(code = ?e.code(), reason = %e.reason, "the server reported a connection error");
                    *connection_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((e.code(), e.reason));
                    continue;
                }
                Some(Kind::Event(event)) => {
                    if events.try_send(event).is_err() {
                        dropped += 1;
                        if dropped == 1 {
                            tracing::warn!(
                                "the application is not reading events; dropping them (seq will show the gap)"
                            );
                        }
                    }
                    continue;
                }
                None => continue,
            };
            if let Some(waiter) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                let _ = waiter.send(answer);
            }
        }
    }
    // Fail whatever is still waiting, with the close reason if there is one.
    let reason = conn.close_reason().map_or_else(|| "connection lost".to_owned(), |e| describe_close(&e));
    for (_, waiter) in pending.lock().unwrap_or_else(|e| e.into_inner()).drain() {
        let _ = waiter.send(Err(Error::Closed(reason.clone())));
    }
}
