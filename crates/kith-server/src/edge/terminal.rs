//! The terminal host: a [`kith_tui::App`] — the interface of `kith chat` —
//! run on the server for someone whose terminal is at the other end of a
//! byte stream, and drawn as ANSI. Telnet is its one transport today; SSH
//! would be another [`Wire`] (its protocol: what bytes mean, how screen
//! bytes are framed) over the same host.
//!
//! Each connection is one task hosting an app. Bytes from the socket go
//! through the wire's protocol and the key decoder ([`kith_tui::ansi`]) into
//! the app; the app's requests are protocol requests, which take the same
//! path into the hub as a QUIC client's ([`super::submit`]: the same
//! parsing, password hashing, login throttles and permissions); what the hub
//! sends back is read as the structs it made (never encoded) and fed to the
//! app. The screen is redrawn at most [`RENDER_EVERY`], and only the cells
//! that changed are sent.
//!
//! Isolation: a session's memory is bounded (the app keeps a window of
//! history, the decoders cap their buffers, output in flight is capped), a
//! reader too slow to take its screen updates is disconnected, and a panic
//! ends only its own task ([`supervise`] tells the hub the session is gone).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kith_core::request::Request as HubRequest;
use kith_core::{Input as HubInput, SessionId};
use kith_proto::v1::{self, ClientMessage, ErrorCode, client_message::Request, server_message::Kind};
use kith_tui::{Action, App, Bell, Config, Failure, Input, SetupAction, SetupInput, SignInWays};
use ratatui::layout::Rect;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::screen::{self, Shown};
use super::{Edge, Opened, submit};
use crate::actor::{Abort, OutItem, SessionHandle, Terms, ToHub};
use crate::admission::Slot;

/// How often a changing screen is redrawn at most.
pub const RENDER_EVERY: Duration = Duration::from_millis(33);
/// How long a lone ESC waits for the rest of a key sequence.
const ESC_WAIT: Duration = Duration::from_millis(40);
/// Bytes read from the socket at a time: what a person types comes a few
/// bytes at a time, and a paste takes a few reads. Every session keeps
/// this buffer for its lifetime (4 KiB was 4 % of a session).
const READ_CHUNK: usize = 1024;
/// Bytes one may type without an Enter; past it the session is closed.
pub const MAX_LINE: usize = 64 * 1024;
/// Screen updates handed to the writer and not yet written.
const OUT_CHUNKS: usize = 4;
/// Bytes of screen updates kept while the writer is backed up; past it the
/// reader is too slow and the session is closed.
const MAX_BACKLOG: usize = 64 * 1024;
/// The largest screen drawn, whatever size a client reports.
pub const MAX_WIDTH: u16 = 300;
pub const MAX_HEIGHT: u16 = 120;
/// The request id of the sign-in (login, registration or guest).
const SIGN_IN: u64 = u64::MAX;
/// The alternate screen, with bracketed paste, cleared.
const ENTER_SCREEN: &[u8] = b"\x1b[?1049h\x1b[?2004h\x1b[H\x1b[2J";
/// Back to the user's own screen, as it was.
const LEAVE_SCREEN: &[u8] = b"\x1b[?2004l\x1b[?25h\x1b[?1049l";

/// Guest access: anyone may come in without an account, as `guest-N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAccess {
    /// The community guests join (by name; the oldest of that name).
    pub community: String,
    /// Guests may write (at the guest message rate), not only read.
    pub can_send: bool,
}

/// What a terminal transport offers, and how it treats its users.
#[derive(Debug, Clone)]
pub(crate) struct Doors {
    /// What the transport is called where the user reads it ("telnet").
    pub transport: &'static str,
    /// `sha256:<hex>` of the server's TLS identity, for the status bar (and
    /// for users who later set up `kith chat`).
    pub fingerprint: String,
    /// Shown in the status bar (e.g. that the connection is unencrypted).
    pub warning: Option<String>,
    /// Logging in and creating accounts with a password is offered.
    pub passwords: bool,
    /// Guest access, if offered.
    pub guests: Option<GuestAccess>,
    /// A connection that has not signed in by then is closed.
    pub sign_in_deadline: Duration,
    /// A screen update the client does not take within this marks a reader
    /// too slow to keep up.
    pub write_deadline: Duration,
    /// Timestamps are shown in this offset from UTC.
    pub utc_offset_secs: i32,
    /// Users' names, kept once for all of this door's sessions.
    pub names: kith_tui::Names,
}

/// The protocol under the terminal: what the bytes from the socket mean,
/// and how screen bytes go back.
pub(crate) trait Wire: Send {
    /// What goes out before the first screen (e.g. option negotiation).
    fn greeting(&mut self) -> Vec<u8>;
    /// Bytes from the socket: what the user typed and did goes to `host`,
    /// protocol replies to `out` (already framed).
    fn received(&mut self, bytes: &[u8], host: &mut Host, out: &mut Vec<u8>) -> Result<(), End>;
    /// Appends `screen` (terminal bytes) to `out`, framed for the socket.
    fn frame(&self, screen: &[u8], out: &mut Vec<u8>);
}

/// Why a session ended, as told to its user.
#[derive(Debug)]
pub(crate) enum End {
    /// The user left (/quit, Ctrl+C) or the socket closed.
    Left,
    /// Closed with this explanation.
    Closed(String),
}

/// The wall clock, in Unix milliseconds (the app is told the time).
fn now_ms() -> u64 {
    crate::actor::now().0
}

/// Waits for one session's task and cleans up after it however it ends: a
/// panic closes this connection only, and the hub always hears that the
/// session is gone. The caller spawns the session: handed its future
/// instead, this task would keep room for all of it (some 6 KiB) while the
/// session runs elsewhere.
pub(crate) async fn supervise(
    task: tokio::task::JoinHandle<()>,
    remote: SocketAddr,
    slot: Slot,
    edge: Arc<Edge>,
    session: SessionId,
) {
    if let Err(e) = task.await
        && e.is_panic()
    {
        tracing::error!(%remote, "a terminal session panicked; it alone was closed");
    }
    let _ = edge.hub.send(ToHub::Input(HubInput::Disconnected { session })).await;
    drop(slot);
}

/// Runs one terminal session over `reader` and `writer` until it ends.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    mut reader: impl AsyncRead + Unpin,
    writer: impl AsyncWrite + Unpin + Send + 'static,
    mut wire: impl Wire,
    local: String,
    remote: SocketAddr,
    session: SessionId,
    edge: Arc<Edge>,
    doors: Arc<Doors>,
) {
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(OUT_CHUNKS);
    let write_task = tokio::spawn(write_loop(writer, out_rx, doors.write_deadline));

    // futures' channel, like the outbox's: tokio's would allocate 32 slots
    // up front for what is at most a reason or two.
    let (abort_tx, mut aborts) = futures_channel::mpsc::unbounded::<String>();
    let abort: Abort = Arc::new(move |_code, reason| {
        let _ = abort_tx.unbounded_send(reason.to_owned());
    });
    // A person signs in at this prompt: the hub gives them the transport's
    // (longer) deadline. No voice: a terminal connection carries no sound.
    // Nothing comes back to a terminal session once its connection is gone.
    let terms = Terms { auth_within: doors.sign_in_deadline, resumable: false };
    let Some(Opened { handle, outbox: mut from_hub }) =
        edge.open(session, doors.transport, abort, None, None, terms).await
    else {
        return;
    };
    let queued = handle.queued.clone();

    let mut s = Host::new(&doors, local, remote.ip(), session);
    let mut backlog = wire.greeting();
    wire.frame(ENTER_SCREEN, &mut backlog);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let end = loop {
        let render_at = if s.dirty && backlog.is_empty() { s.last_render + RENDER_EVERY } else { far };
        let esc_at = s.esc_since.map_or(far, |t| t + ESC_WAIT);
        let step = tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => Err(End::Left),
                Ok(n) => wire.received(&buf[..n], &mut s, &mut backlog),
            },
            item = from_hub.recv() => match item {
                Ok(item) => {
                    queued.fetch_sub(item.wire_len(), Ordering::Relaxed);
                    s.hub_sent(item)
                }
                Err(_) => Err(End::Closed("the server is shutting down".into())),
            },
            Ok(reason) = aborts.recv() => Err(End::Closed(reason)),
            _ = tokio::time::sleep_until(render_at) => {
                s.render();
                Ok(())
            }
            _ = tokio::time::sleep_until(esc_at) => {
                s.esc_timeout();
                Ok(())
            }
            _ = tick.tick() => {
                // Only a screen that looks different is redrawn: a thousand
                // idle sessions cost next to nothing.
                s.dirty |= s.app.tick(now_ms());
                Ok(())
            }
            permit = out_tx.reserve(), if !backlog.is_empty() => match permit {
                Ok(permit) => {
                    permit.send(std::mem::take(&mut backlog));
                    Ok(())
                }
                Err(_) => Err(End::Left),
            },
            _ = out_tx.closed() => Err(End::Left),
        };
        let step = match step {
            Ok(()) => s.act(&edge, &doors, &handle).await,
            Err(end) => Err(end),
        };
        wire.frame(&std::mem::take(&mut s.screen), &mut backlog);
        if let Err(end) = step {
            break end;
        }
        // Hand what is ready to the writer; if it is backed up, keep it.
        if !backlog.is_empty()
            && let Ok(permit) = out_tx.try_reserve()
        {
            permit.send(std::mem::take(&mut backlog));
        }
        if backlog.len() > MAX_BACKLOG {
            break End::Closed("your connection is too slow to keep up".into());
        }
    };
    tracing::debug!(%remote, ?end, transport = doors.transport, "terminal session ended");
    if s.signed_in {
        // Terminal sessions are not resumed: revoke this session's token so
        // sign-ins do not pile up, and so presence changes at once.
        let logout = Request::Logout(v1::LogoutRequest { everywhere: false });
        let msg = ClientMessage { request_id: 0, request: Some(logout) };
        submit(msg, session, remote.ip(), &edge, &handle).await;
    }
    let mut goodbye = LEAVE_SCREEN.to_vec();
    if let End::Closed(reason) = &end {
        let reason = kith_tui::text::clean_line(reason);
        goodbye.extend_from_slice(format!("kith: {reason}\n").as_bytes());
    }
    wire.frame(&goodbye, &mut backlog);
    let last = std::mem::take(&mut backlog);
    if tokio::time::timeout(Duration::from_secs(1), out_tx.send(last)).await.is_ok() {
        drop(out_tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), write_task).await;
    }
}

/// Writes screen updates in order; gives up on a client that stops reading.
async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    mut chunks: mpsc::Receiver<Vec<u8>>,
    deadline: Duration,
) {
    while let Some(chunk) = chunks.recv().await {
        match tokio::time::timeout(deadline, writer.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("terminal client stopped reading; closing");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}

/// One terminal session's app and screen, apart from its sockets.
pub(crate) struct Host {
    keys: kith_tui::ansi::Decoder,
    app: App,
    /// The screen as last drawn, kept (encoded) for drawing only what
    /// changed — once signed in. The sign-in screen is drawn whole each time
    /// (a few keystrokes' worth).
    shown: Shown,
    /// The size the client last reported, applied at the next draw.
    size: (u16, u16),
    dirty: bool,
    last_render: Instant,
    /// When a lone ESC arrived, if one is waiting.
    esc_since: Option<Instant>,
    /// Typed bytes since the last Enter.
    line: usize,
    /// Terminal bytes for the user (drawn cells, a bell), not yet framed
    /// by the wire.
    screen: Vec<u8>,
    signed_in: bool,
    session: SessionId,
    ip: IpAddr,
    inputs: Vec<Input>,
}

impl Host {
    fn new(doors: &Doors, server: String, ip: IpAddr, session: SessionId) -> Host {
        let config = Config {
            server,
            fingerprint: doors.fingerprint.clone(),
            warning: doors.warning.clone(),
            bell: Bell::MentionsAndDirect,
            utc_offset_secs: doors.utc_offset_secs,
            nonce_prefix: format!("{}-{:016x}", doors.transport, rand::random::<u64>()),
            voice: kith_tui::VoiceSupport::Unavailable(format!(
                "voice needs the kith app (kith chat): a {} connection carries no sound",
                doors.transport
            )),
            // Photos stay file lines: the user's terminal is not asked what
            // it can draw, and pictures would cost the host their bytes.
            pictures: None,
            names: doors.names.clone(),
        };
        Host {
            keys: kith_tui::ansi::Decoder::new(),
            app: App::gateway(
                config,
                SignInWays { passwords: doors.passwords, guests: doors.guests.is_some() },
            ),
            shown: Shown::default(),
            size: (80, 24),
            dirty: true,
            last_render: Instant::now(),
            esc_since: None,
            line: 0,
            screen: Vec::new(),
            signed_in: false,
            session,
            ip,
            inputs: Vec::new(),
        }
    }

    /// Whether the user has signed in (the sign-in screen is behind them).
    pub(crate) fn signed_in(&self) -> bool {
        self.signed_in
    }

    /// A warning for the sign-in screen (e.g. that what is typed shows).
    pub(crate) fn warn_at_sign_in(&mut self, warning: String) {
        self.app.warn_at_sign_in(warning);
        self.dirty = true;
    }

    /// What the user typed (terminal bytes: keys, escape sequences, pastes).
    pub(crate) fn typed(&mut self, data: &[u8]) -> Result<(), End> {
        for b in data {
            let pasting = self.keys.in_paste();
            self.keys.feed(std::slice::from_ref(b), &mut self.inputs);
            // A paste is capped by the decoder; only typing without an
            // Enter counts towards the line cap.
            if !pasting && !self.keys.in_paste() {
                self.line = if *b == b'\r' { 0 } else { self.line + 1 };
            }
        }
        if self.line > MAX_LINE {
            return Err(End::Closed("line too long".into()));
        }
        Ok(())
    }

    /// The user's terminal has a new size (0 means unknown to some clients:
    /// what we had is kept).
    pub(crate) fn resized(&mut self, width: u16, height: u16) {
        if width > 0 && height > 0 {
            let size = (width.min(MAX_WIDTH), height.min(MAX_HEIGHT));
            // Redraw at the new size now, not at the next key (a storm of
            // sizes still costs one draw: draws are spaced out, and the
            // last size wins).
            self.dirty |= size != self.size;
            self.size = size;
        }
    }

    /// The user interrupted (Ctrl+C by protocol, not by key).
    pub(crate) fn interrupted(&mut self) {
        self.inputs.push(Input::Key(kith_tui::Key::ctrl('c')));
    }

    /// What the wire delivered is in: the keys go to the app.
    pub(crate) fn received_done(&mut self) {
        self.esc_since = self.keys.pending().then(Instant::now);
        self.feed_inputs();
    }

    pub(crate) fn esc_timeout(&mut self) {
        self.esc_since = None;
        self.keys.flush(&mut self.inputs);
        self.feed_inputs();
    }

    fn feed_inputs(&mut self) {
        if self.inputs.is_empty() {
            return;
        }
        let now = now_ms();
        for input in std::mem::take(&mut self.inputs) {
            self.app.handle(now, input);
        }
        self.dirty = true;
    }

    /// Something the hub sent this session.
    pub(crate) fn hub_sent(&mut self, item: OutItem) -> Result<(), End> {
        // In process: the message as the hub made it, never encoded.
        let message = match item {
            OutItem::Send(out) => out.into_server_message().kind,
            OutItem::Close(_, reason) => return Err(End::Closed(reason)),
            // Only a transport the hub writes to directly is sent these.
            OutItem::Flush(_) => return Ok(()),
        };
        let input = match message {
            Some(Kind::Reply(v1::Reply {
                request_id: SIGN_IN,
                result: Some(v1::reply::Result::Ready(r)),
            })) => {
                self.signed_in = true;
                Input::Ready(Box::new(r))
            }
            Some(Kind::Reply(v1::Reply { request_id, result: Some(result) })) => {
                Input::Reply { id: request_id, result: Ok(result) }
            }
            Some(Kind::Error(e)) if e.request_id == SIGN_IN => Input::Setup(SetupInput::Failed(e.reason)),
            Some(Kind::Error(e)) if e.request_id != 0 => Input::Reply {
                id: e.request_id,
                result: Err(Failure { code: ErrorCode::try_from(e.code).ok(), reason: e.reason }),
            },
            Some(Kind::Event(event)) => Input::Event(Box::new(event)),
            // Connection-level errors name a request we did not make; the
            // hub closes the session itself if it must.
            _ => return Ok(()),
        };
        self.app.handle(now_ms(), input);
        self.dirty = true;
        Ok(())
    }

    /// Carries out what the app asked for.
    async fn act(&mut self, edge: &Edge, doors: &Doors, me: &SessionHandle) -> Result<(), End> {
        while let Some(action) = self.app.poll_action() {
            let (request_id, request) = match action {
                Action::Request { id, request } => (id, request),
                // The app offers only what the operator allows; this is the
                // lock behind that door.
                Action::Setup(SetupAction::SignIn(_)) if !doors.passwords => continue,
                Action::Setup(SetupAction::SignIn(sign_in)) => (SIGN_IN, sign_in.request()),
                Action::Setup(SetupAction::Guest) => {
                    let Some(guests) = &doors.guests else { continue };
                    // A guest costs an account row: throttled like registering.
                    if let Err(refused) = edge.admission.login(self.ip, None) {
                        let reason = format!(
                            "{}; try again in {} s",
                            refused.reason,
                            refused.retry_after_ms.div_ceil(1000)
                        );
                        self.app.handle(now_ms(), Input::Setup(SetupInput::Failed(reason)));
                        self.dirty = true;
                        continue;
                    }
                    let request =
                        HubRequest::Guest { community: guests.community.clone(), can_send: guests.can_send };
                    let input = HubInput::Request { session: self.session, request_id: SIGN_IN, request };
                    if edge.hub.send(ToHub::Input(input)).await.is_err() {
                        return Err(End::Closed("the server is shutting down".into()));
                    }
                    continue;
                }
                // The gateway's app has no address to ask for.
                Action::Setup(SetupAction::Probe { .. }) => continue,
                Action::Bell => {
                    self.screen.push(0x07);
                    continue;
                }
                // The user's own terminal: it may put the text on their
                // clipboard.
                Action::Copy(text) => {
                    self.screen.extend_from_slice(kith_tui::clipboard_sequence(&text).as_bytes());
                    continue;
                }
                // Its config says voice is unavailable, so the app never
                // starts sound here.
                Action::Voice(_) => continue,
                // Requests go straight to the hub here: nothing waits to be taken back.
                Action::Cancel { .. } => continue,
                // No picker in its config: the app never asks.
                Action::Pictures { .. } => continue,
                // The host runs on the server: the user's files are on
                // their own machine, out of its reach.
                Action::Upload { id, .. } => {
                    let reason = format!(
                        "{} cannot reach the files on your computer: attach them with `kith chat` \
                         or `kith send --file`",
                        doors.transport
                    );
                    self.app.handle(now_ms(), Input::Upload(kith_tui::UploadInput::Failed { id, reason }));
                    self.dirty = true;
                    continue;
                }
                Action::Quit => return Err(End::Left),
            };
            let msg = ClientMessage { request_id, request: Some(request) };
            if !submit(msg, self.session, self.ip, edge, me).await {
                return Err(End::Closed("the server is shutting down".into()));
            }
        }
        Ok(())
    }

    /// Draws the screen and queues the cells that changed.
    pub(crate) fn render(&mut self) {
        let full = Rect::new(0, 0, self.size.0, self.size.1);
        let area = if self.signed_in {
            full
        } else {
            // The sign-in box, centred, at most 80×24.
            let (w, h) = (self.size.0.min(80), self.size.1.min(24));
            Rect::new((self.size.0 - w) / 2, (self.size.1 - h) / 2, w, h)
        };
        if !self.signed_in || !self.shown.is(full) {
            // The sign-in screen, the first screen after it, and a resize
            // (NAWS storms land here at most once per draw) are drawn whole
            // on a cleared screen.
            self.screen.extend_from_slice(b"\x1b[H\x1b[2J");
            self.shown.forget();
        }
        let app = &self.app;
        screen::paint(area, &mut self.shown, |f| app.render(f), &mut self.screen);
        if !self.signed_in {
            self.shown.forget();
        }
        self.dirty = false;
        self.last_render = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::admission::Admission;

    /// A session task that panics (whatever the cause) closes only its own
    /// connection: the hub hears the session is gone, and its slot is free.
    #[tokio::test]
    async fn a_panicking_session_is_reported_gone_and_frees_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, mut heard) = mpsc::channel(8);
        let limits = Limits { connections_per_ip: 1, ..Limits::unlimited() };
        let edge = Arc::new(Edge {
            hub,
            readers: Arc::new(
                crate::store::Readers::start(
                    Arc::new(crate::store::sqlite::Sqlite {
                        path: dir.path().join("db"),
                        sync: crate::Sync::Normal,
                    }),
                    1,
                    1,
                )
                .unwrap(),
            ),
            hashers: crate::auth::Hashers::start(1, 1, crate::auth::Hashers::RELEASE_AFTER).unwrap(),
            next_session: std::sync::atomic::AtomicU64::new(1),
            outbox_bytes: super::super::OUTBOX_BYTES,
            admission: Admission::new(&limits, Default::default()),
            frame_deadline: Duration::from_secs(10),
            files: Arc::new(crate::files::Files::open(dir.path(), 0, false).unwrap()),
            metrics: Arc::default(),
            pipes: Default::default(),
        });
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let slot = edge.admission.connect(remote.ip()).unwrap();
        assert!(edge.admission.connect(remote.ip()).is_err(), "the cap is one");
        let task = tokio::spawn(async { panic!("a bug in one session") });
        supervise(task, remote, slot, edge.clone(), SessionId(7)).await;
        assert!(matches!(
            heard.recv().await,
            Some(ToHub::Input(HubInput::Disconnected { session: SessionId(7) }))
        ));
        assert!(edge.admission.connect(remote.ip()).is_ok(), "its slot is free again");
    }
}
