//! The edge layer: what every transport shares, written once. A transport
//! (QUIC, WebTransport, the WebSocket fallback, the telnet gateway) is IO around it: it accepts a
//! connection, allocates a [`SessionId`], opens the session with
//! [`Edge::open`] (registration with the hub and its authentication
//! deadline), hands every decoded `ClientMessage` to [`submit`] (parsing,
//! password hashing, login throttles — one path for every transport), and
//! writes what arrives in the session's outbox.

pub mod pipes;
pub mod quic;
mod screen;
pub mod stream;
pub mod telnet;
pub(crate) mod terminal;
pub mod transfer;
pub mod web;
mod web_files;
mod webhooks;
pub mod webtransport;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kith_core::request::{AuthRequest, Parsed, Registration, Request, parse};
use kith_core::text::DisplayName;
use kith_core::{Input, Outgoing, SessionId};
use kith_proto::v1::{ClientMessage, ErrorCode};
use tokio::sync::mpsc;

use crate::actor::{Abort, OutItem, SessionHandle, ToHub, error_frame, error_frame_after};
use crate::admission::{Admission, Refused};
use crate::auth;
use crate::store::{ReadFailed, Readers};
use crate::voice::VoiceLink;

/// Bytes queued per session before it counts as a slow consumer: room for a
/// couple of full history pages on top of a burst of events.
pub const OUTBOX_BYTES: usize = 4 * 1024 * 1024;

/// The bytes a stream transport writes before an outgoing message's shared
/// body: the length prefix and, for an event, this recipient's `seq`.
#[derive(Debug, Clone, Copy)]
pub struct FrameHead {
    buf: [u8; 32],
    used: usize,
}

impl FrameHead {
    pub fn of(out: &Outgoing) -> FrameHead {
        match out {
            Outgoing::Message(m) => {
                let mut buf = [0; 32];
                // The hub never makes a message near 4 GiB: MAX_SERVER_FRAME is 16 MiB.
                buf[..4].copy_from_slice(&(m.len() as u32).to_be_bytes());
                FrameHead { buf, used: 4 }
            }
            Outgoing::Event { seq, event } => {
                let (buf, used) = kith_proto::event_frame_header(*seq, event.len());
                FrameHead { buf, used }
            }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.used]
    }
}

/// The body every recipient shares, encoded on first use.
pub fn frame_body(out: &Outgoing) -> &bytes::Bytes {
    match out {
        Outgoing::Message(m) => m.bytes(),
        Outgoing::Event { event, .. } => event.bytes(),
    }
}

/// How many bytes `out` takes on a stream, without encoding it.
pub fn framed_len(out: &Outgoing) -> usize {
    let body = match out {
        Outgoing::Message(m) => m.len(),
        Outgoing::Event { event, .. } => event.len(),
    };
    FrameHead::of(out).used + body
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Edge {
    pub hub: mpsc::Sender<ToHub>,
    pub readers: Arc<Readers>,
    /// argon2 needs 19 MiB and tens of milliseconds a hash: a fixed pool
    /// bounds how many run at once and how much memory they ever hold.
    pub hashers: auth::Hashers,
    pub next_session: AtomicU64,
    pub outbox_bytes: usize,
    pub admission: Admission,
    /// How long a frame may take from its first byte ([`quic::FRAME_DEADLINE`]).
    pub frame_deadline: Duration,
    /// Attachments' bytes, and the keys that move them.
    pub files: Arc<crate::files::Files>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Pipe ends waiting for their other half.
    pub pipes: pipes::Pipes,
}

/// A session the hub knows about, and what its transport reads from it.
#[derive(Debug)]
pub struct Opened {
    pub handle: SessionHandle,
    /// What the hub (and the edge itself) sends the session, in order.
    pub outbox: futures_channel::mpsc::UnboundedReceiver<OutItem>,
}

impl Edge {
    /// A fresh session id.
    pub fn session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers `session` with the hub: its outbox (bounded by
    /// `outbox_bytes`), how to close its connection at once, its voice link
    /// if the transport carries voice, its transport if the hub may write
    /// to it directly ([`stream::Direct`]), and its [`Terms`](crate::actor::Terms)
    /// (how long it has to authenticate, whether it can be resumed). `None`
    /// if the hub is gone.
    /// `transport` names it in the metrics (`quic`, `webtransport`,
    /// `websocket`, `telnet`).
    pub async fn open(
        &self,
        session: SessionId,
        transport: &str,
        abort: Abort,
        voice: Option<VoiceLink>,
        direct: Option<Arc<dyn stream::Direct>>,
        terms: crate::actor::Terms,
    ) -> Option<Opened> {
        self.metrics.connected(transport);
        let (tx, outbox) = futures_channel::mpsc::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        self.metrics.track_outbox(&queued);
        let handle = SessionHandle {
            outbox: tx,
            queued,
            limit: self.outbox_bytes,
            abort,
            direct,
            voice,
            reads: Arc::default(),
            slow: self.metrics.slow_consumers.clone(),
        };
        let open = ToHub::Open { session, handle: handle.clone(), terms };
        self.hub.send(open).await.ok()?;
        Some(Opened { handle, outbox })
    }
}

/// Parses one request, does the edge's part (cryptography), and hands it to
/// the hub; refusals are answered on `me`. Returns false if the hub is gone.
/// Every edge's requests take this one path (the telnet gateway's too).
pub(crate) async fn submit(
    msg: ClientMessage,
    session: SessionId,
    ip: IpAddr,
    edge: &Edge,
    me: &SessionHandle,
) -> bool {
    let rid = msg.request_id;
    if rid == 0 {
        // 0 names the connection in errors: a request numbered 0 could
        // never be told apart from a connection-level error, so none runs.
        let reason = "request_id 0 is reserved for connection-level errors; number requests from 1";
        me.push(OutItem::Send(error_frame(0, ErrorCode::Invalid, reason)));
        return true;
    }
    if matches!(msg.request, Some(kith_proto::v1::client_message::Request::JoinVoice(_)))
        && me.voice.is_none()
    {
        let reason =
            "voice needs QUIC datagrams (RFC 9221) or WebTransport's, which this connection does not carry";
        me.push(OutItem::Send(error_frame(rid, ErrorCode::Unsupported, reason)));
        return true;
    }
    let request = match parse(msg.request, auth::random_code) {
        Ok(Parsed::Hub(request)) => request,
        // Boxed: a session signs in once, and its reader's future would
        // otherwise keep room for authentication's state for its lifetime.
        Ok(Parsed::Auth(auth)) => match Box::pin(authenticate(auth, ip, edge)).await {
            Ok(request) => request,
            Err(Failed::Refused(refused)) => {
                let reason = refused.to_string();
                me.push(OutItem::Send(error_frame_after(rid, reason, refused.retry_after_ms)));
                return true;
            }
            Err(Failed::Error((code, reason))) => {
                me.push(OutItem::Send(error_frame(rid, code, reason)));
                return true;
            }
        },
        Err(e) => {
            me.push(OutItem::Send(error_frame(rid, e.code, e.reason)));
            return true;
        }
    };
    match edge.hub.try_send(ToHub::Input(Input::Request { session, request_id: rid, request })) {
        Ok(()) => true,
        // The hub is behind: wait for room (backpressure on this peer). Boxed
        // like authentication: the wait is rare, its future some 450 bytes.
        Err(mpsc::error::TrySendError::Full(input)) => Box::pin(edge.hub.send(input)).await.is_ok(),
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Why the edge's part of authentication failed.
enum Failed {
    Refused(Refused),
    Error((ErrorCode, String)),
}

impl From<(ErrorCode, String)> for Failed {
    fn from(e: (ErrorCode, String)) -> Self {
        Failed::Error(e)
    }
}

async fn authenticate(request: AuthRequest, ip: IpAddr, edge: &Edge) -> Result<Request, Failed> {
    let bad_credentials = || (ErrorCode::BadCredentials, kith_core::hub::BAD_CREDENTIALS.to_owned());
    let busy =
        || (ErrorCode::RateLimited, "the server is busy signing people in; try again in a moment".to_owned());
    match &request {
        AuthRequest::Register { .. } => edge.admission.login(ip, None).map_err(Failed::Refused)?,
        AuthRequest::Login { username_fold, .. } | AuthRequest::Redeem { username_fold, .. } => {
            edge.admission.login(ip, Some(username_fold)).map_err(Failed::Refused)?
        }
        // An authenticated member's request; the hub's rate limits apply.
        AuthRequest::Authenticate { .. }
        | AuthRequest::Resume { .. }
        | AuthRequest::BotToken(_)
        | AuthRequest::ResetCode { .. } => {}
    }
    let store_failed = |e: ReadFailed| match e {
        ReadFailed::Busy => (ErrorCode::RateLimited, e.to_string()),
        ReadFailed::Store(e) => {
            tracing::error!(error = %e, "reading credentials failed");
            (ErrorCode::Internal, "the server could not read its store; try again".to_owned())
        }
    };
    match request {
        AuthRequest::ResetCode { username_fold } => {
            let code = auth::grouped_code();
            let code_hash = auth::token_hash(&kith_core::request::code_key(&code));
            Ok(Request::IssueResetCode { username_fold, code, code_hash })
        }
        AuthRequest::Redeem { username_fold, code, password } => {
            // The code is checked before any hashing: a wrong one costs nothing.
            let code_hash = auth::token_hash(&kith_core::request::code_key(&code));
            let found =
                edge.readers.run(move |db| db.reset_code(&username_fold)).await.map_err(store_failed)?;
            let now = crate::actor::now();
            let Some((user, _, _)) = found.filter(|(_, hash, until)| *hash == code_hash && now < *until)
            else {
                return Err(bad_credentials().into());
            };
            let password_hash = edge.hashers.hash(password.0).await.map_err(|_| busy())?;
            let (token, token_hash) = auth::new_token();
            Ok(Request::RedeemResetCode { user, code_hash, password_hash, token, token_hash })
        }
        AuthRequest::BotToken(wanted) => {
            let (token, token_hash) = auth::new_token();
            Ok(wanted.with(token, token_hash))
        }
        AuthRequest::Authenticate { token } => {
            if token.len() > 128 {
                return Err(bad_credentials().into());
            }
            Ok(Request::Authenticate { token_hash: auth::token_hash(&token) })
        }
        AuthRequest::Resume { token, session_id, last_seq } => {
            if token.len() > 128 {
                return Err(bad_credentials().into());
            }
            Ok(Request::Resume { token_hash: auth::token_hash(&token), resume_key: session_id, last_seq })
        }
        AuthRequest::Register { username, password, display_name, credential } => {
            let password_hash = edge.hashers.hash(password.0).await.map_err(|_| busy())?;
            let (token, token_hash) = auth::new_token();
            let display_name = match display_name {
                Some(d) => d,
                None => DisplayName(username.name.clone()),
            };
            Ok(Request::Register(Box::new(Registration {
                username,
                display_name,
                password_hash,
                token,
                token_hash,
                credential,
            })))
        }
        AuthRequest::Login { username_fold, password } => {
            // A password of impossible length is wrong without any hashing (A3).
            if password.len() > kith_core::text::Password::MAX_BYTES {
                return Err(bad_credentials().into());
            }
            let found =
                edge.readers.run(move |db| db.credentials(&username_fold)).await.map_err(store_failed)?;

            let (user, phc) = match found {
                Some((user, phc)) => (Some(user), Some(phc)),
                None => (None, None),
            };
            let ok = edge.hashers.verify(password, phc).await.map_err(|_| busy())?;
            let Some(user) = user.filter(|_| ok) else { return Err(bad_credentials().into()) };
            let (token, token_hash) = auth::new_token();
            Ok(Request::Login { user, token, token_hash })
        }
    }
}
