//! kith-tui: kith's chat interface as a pure model / update / view.
//!
//! No terminal IO, no sockets, no clock. A host feeds [`Input`]s to
//! [`App::handle`] (with the time), performs the [`Action`]s it drains from
//! [`App::poll_action`], and draws [`App::render`] into a ratatui frame. Two
//! hosts drive it: `kith chat` (crossterm and the client library) and the
//! telnet gateway (server-side, into an ANSI diff). Requests are protocol
//! requests and answers are protocol replies, so a host is a thin pipe.

pub mod ansi;
mod commands;
mod editor;
mod files;
mod keys;
mod model;
mod pictures;
mod setup;
pub mod text;
mod view;
mod voice;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

use kith_proto::invite::InviteLink;
use kith_proto::v1::{self, client_message::Request, reply::Result as ReplyResult};

pub use files::{UploadInput, dropped_paths};
pub use keys::{Key, KeyCode};
pub use pictures::{MAX_PREVIEW_BYTES, Picker, PictureInput, ProtocolType};
pub use setup::{Probe, SetupAction, SetupInput, SignIn, SignInWays};
pub use voice::{TalkMode, VoiceAction, VoiceControls, VoiceInput, VoiceSupport};

use editor::Editor;
pub use model::Names;
use model::{Model, Older, Sending};
use setup::Setup;

/// How the app behaves where hosts differ.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port`, shown in the status bar and in invites.
    pub server: String,
    /// `sha256:<hex>`, shown in the status bar and put in invites.
    pub fingerprint: String,
    /// Shown in red in the status bar (e.g. "unencrypted" over telnet).
    pub warning: Option<String>,
    pub bell: Bell,
    /// The viewer's offset from UTC, for timestamps and day separators.
    pub utc_offset_secs: i32,
    /// Makes message nonces unique across this app's runs (random, from the host).
    pub nonce_prefix: String,
    /// Whether the host can make sound (voice channels).
    pub voice: VoiceSupport,
    /// How the terminal draws pictures, if it can and the user wants them;
    /// `None` shows every photo as its file line.
    pub pictures: Option<Picker>,
    /// Where users' names are kept: one per app, or one shared by every
    /// session a server hosts (see [`Names`]).
    pub names: Names,
}

/// When to ring the terminal bell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    Never,
    /// On mentions and on messages in direct and group conversations (not while DND).
    MentionsAndDirect,
    /// On every message from someone else (not while DND).
    Always,
}

/// The state of the host's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected,
    Reconnecting {
        attempt: u32,
        reason: String,
    },
    /// Over for good (logged out elsewhere, token revoked).
    Ended(String),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<v1::ErrorCode>,
    pub reason: String,
}

/// What happened, for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(Key),
    Paste(String),
    /// Files dropped on the terminal (a paste the host found to be the
    /// paths of files on this machine; see [`files::dropped_paths`]).
    PasteFiles(Vec<String>),
    /// Mouse wheel: positive scrolls back (up), negative forward.
    Scroll(i32),
    /// The session's snapshot: first after signing in, and again after a
    /// resume the server refused (then every held history is refetched).
    Ready(Box<v1::Ready>),
    Event(Box<v1::Event>),
    Connection(Connection),
    /// The answer to [`Action::Request`] `id`.
    Reply {
        id: u64,
        result: Result<ReplyResult, Failure>,
    },
    Setup(SetupInput),
    /// How the call's sound is going ([`Action::Voice`]).
    Voice(VoiceInput),
    /// How an [`Action::Upload`] is going.
    Upload(UploadInput),
    /// A preview [`Action::Pictures`] asked for.
    Picture(PictureInput),
    /// Time passes (the host sends one every second or so): typing
    /// indicators lapse, pending read marks go out.
    Tick,
}

/// What the host should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this request and report the answer as [`Input::Reply`].
    Request {
        id: u64,
        request: Request,
    },
    /// Ring the terminal bell.
    Bell,
    /// Put this text on the user's clipboard, where the terminal allows it
    /// (OSC 52): an invite link, say, which mouse capture keeps from being
    /// selected.
    Copy(String),
    Setup(SetupAction),
    /// Start, adjust or stop the call's sound.
    Voice(VoiceAction),
    /// Upload these files (paths on the user's machine) to attach in
    /// `channel`, reporting as [`Input::Upload`] with this `id`.
    Upload {
        id: u64,
        channel: u64,
        paths: Vec<String>,
    },
    /// Fetch the previews of these pictures of `message` (attachment
    /// indexes), reporting each as [`Input::Picture`]. Asked once per
    /// picture; a host that cannot (telnet) never gets a [`Picker`].
    Pictures {
        channel: u64,
        message: u64,
        indexes: Vec<u32>,
    },
    /// Drop the request with this id if it has not gone out yet (a
    /// message queued during an outage that the user took back); it needs
    /// no answer.
    Cancel {
        id: u64,
    },
    /// The user asked to leave.
    Quit,
}

/// The bytes that ask a terminal to put `text` on the clipboard (OSC 52,
/// which xterm, kitty, iTerm2, WezTerm, Windows Terminal and tmux with
/// `set-clipboard on` honour; others ignore it). Base64 keeps whatever the
/// text holds from being read as a control sequence.
pub fn clipboard_sequence(text: &str) -> String {
    use base64::Engine as _;
    format!("\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(text))
}

#[derive(Debug)]
enum Screen {
    Setup(Box<Setup>),
    Chat,
}

#[derive(Debug)]
enum Overlay {
    None,
    /// F1: every key and command, scrolled this many rows down.
    Help {
        scroll: usize,
    },
    /// /list: every channel and conversation.
    List,
    /// Ctrl+K: type to filter channels and conversations.
    Switcher {
        query: Editor,
        selected: usize,
    },
}

/// What an answer is for.
#[derive(Debug)]
enum Pending {
    History {
        channel: u64,
        anchor: Anchor,
    },
    Send {
        channel: u64,
        nonce: String,
    },
    OpenDirect {
        then_send: Option<String>,
    },
    Invite,
    /// Joining or creating a community: show it.
    Community {
        verb: &'static str,
    },
    /// Creating a channel: show it.
    Channel,
    /// Joining a voice channel: start the sound.
    VoiceJoin {
        channel: u64,
    },
    /// Mute or deafen: the state others now see.
    VoiceState,
    /// Invoking a bot's command: its answers come as events.
    Call {
        name: String,
    },
    /// A password reset code the server owner asked for: show it.
    ResetCode,
    /// Anything else: say `done` on success.
    Done(String),
    /// How to join the server hosting the sign-in screen.
    ServerInfo,
    /// Typing notices and read marks: nobody needs to hear how they went
    /// (they fail during a reconnect, and are redone after it).
    Quiet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Newest,
    Before,
    After,
}

/// A line above the input: an error, or the answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notice {
    text: String,
    error: bool,
}

/// Where the message pane was last drawn; scrolling needs its size.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    width: u16,
    height: u16,
}

#[derive(Debug)]
struct Completion {
    candidates: Vec<String>,
    index: usize,
}

/// Typing notices go out at most this often while the user types.
const TYPING_EVERY_MS: u64 = 5_000;

/// The chat application.
#[derive(Debug)]
pub struct App {
    config: Config,
    model: Model,
    screen: Screen,
    overlay: Overlay,
    connection: Connection,
    active: Option<u64>,
    editor: Editor,
    completion: Option<Completion>,
    /// Replying to / editing this message of the active channel.
    reply_to: Option<u64>,
    editing: Option<u64>,
    /// A message picked with Ctrl+↑ (r reply, e edit, d delete).
    selected: Option<u64>,
    notice: Option<Notice>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    nonces: u64,
    actions: VecDeque<Action>,
    now_ms: u64,
    last_typing: Option<(u64, u64)>,
    ack_due: bool,
    geometry: Cell<Geometry>,
    /// How far the help screen can scroll, as last drawn.
    help_last: Cell<usize>,
    /// The member list as last drawn, kept until its inputs change.
    roster: std::cell::RefCell<Option<view::Roster>>,
    voice: voice::VoiceUi,
    /// `/upload` under way.
    uploading: Option<files::Uploading>,
    pictures: pictures::Pictures,
    /// Bot commands this app invoked, by call id, until their final answer.
    calls: HashMap<u64, String>,
}

impl App {
    /// An app for a signed-in user; it shows the chat once [`Input::Ready`] arrives.
    pub fn new(config: Config) -> App {
        App {
            pictures: pictures::Pictures::new(config.pictures.clone()),
            model: Model::new(config.names.clone()),
            calls: HashMap::new(),
            config,
            screen: Screen::Chat,
            overlay: Overlay::None,
            connection: Connection::Connecting,
            active: None,
            editor: Editor::default(),
            completion: None,
            reply_to: None,
            editing: None,
            selected: None,
            notice: None,
            pending: HashMap::new(),
            next_request: 1,
            nonces: 0,
            actions: VecDeque::new(),
            now_ms: 0,
            last_typing: None,
            ack_due: false,
            geometry: Cell::new(Geometry { width: 80, height: 20 }),
            help_last: Cell::new(0),
            roster: std::cell::RefCell::new(None),
            voice: voice::VoiceUi::default(),
            uploading: None,
        }
    }

    /// An app that starts with the first-run setup (server, trust, sign in).
    pub fn first_run(config: Config) -> App {
        App { screen: Screen::Setup(Box::default()), ..App::new(config) }
    }

    /// An app hosted by the server it talks to (the telnet gateway): sign-in
    /// starts at the choice between the `ways` it offers, with
    /// `config.warning` shown.
    pub fn gateway(config: Config, ways: SignInWays) -> App {
        let warning = config
            .warning
            .as_ref()
            .map(|w| format!("{w}: what you type here, passwords too, crosses the network in clear"));
        let setup = Setup::fixed(config.server.clone(), warning, ways);
        let mut app = App { screen: Screen::Setup(Box::new(setup)), ..App::new(config) };
        // What registering needs, so the code is asked for before the password.
        app.request(Request::ServerInfo(v1::ServerInfoRequest {}), Pending::ServerInfo);
        app
    }

    /// The next thing for the host to do.
    /// Whether [`App::poll_action`] has something (a frame just drawn may
    /// have asked for pictures).
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty() || self.pictures.has_wanted()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.take_wanted_pictures();
        self.actions.pop_front()
    }

    /// Replaces the red warning on the sign-in screen (e.g. when the telnet
    /// client turns out to echo what is typed, passwords too).
    pub fn warn_at_sign_in(&mut self, warning: String) {
        if let Screen::Setup(setup) = &mut self.screen {
            setup.warning = Some(warning);
        }
    }

    /// Lets the host update what the status bar shows once it knows the
    /// server (after the first run).
    pub fn set_server(&mut self, server: &str, fingerprint: &str) {
        self.config.server = server.to_owned();
        self.config.fingerprint = fingerprint.to_owned();
    }

    /// How many messages the app holds in memory, across every channel.
    pub fn held_messages(&self) -> usize {
        self.model.channels.values().map(|c| c.msgs.len()).sum()
    }

    /// Handles one input at `now_ms` (Unix milliseconds).
    pub fn handle(&mut self, now_ms: u64, input: Input) {
        self.now_ms = now_ms;
        match input {
            Input::Key(key) => self.key(key),
            Input::Paste(text) => self.paste(&text),
            Input::PasteFiles(paths) if matches!(self.screen, Screen::Chat) => self.paste_files(&paths),
            Input::PasteFiles(paths) => self.paste(&paths.join(" ")),
            Input::Scroll(lines) => self.scroll_by(lines),
            Input::Ready(ready) => self.ready(&ready),
            Input::Event(event) => self.event(&event),
            Input::Connection(c) => {
                if c == Connection::Connected && self.connection != Connection::Connected {
                    self.ack_due = true;
                }
                self.voice_connection(&c);
                self.connection = c;
            }
            Input::Voice(v) => self.voice_input(v),
            Input::Upload(u) => self.upload_input(u),
            Input::Picture(p) => self.picture_input(p),
            Input::Reply { id, result } => self.reply(id, result),
            Input::Setup(s) => {
                if let Screen::Setup(setup) = &mut self.screen {
                    match s {
                        SetupInput::Probed(r) => setup.probed(r),
                        SetupInput::Failed(reason) => {
                            setup.failed(text::times(&reason, now_ms, self.config.utc_offset_secs))
                        }
                    }
                }
            }
            Input::Tick => {
                self.tick_changed();
            }
        }
    }

    /// Time passed with nothing else happening: what [`Input::Tick`] does,
    /// also saying whether the screen may look different for it (a typing
    /// notice lapsed, the day turned, a read mark went out), so that a host
    /// drawing for many sessions redraws only those.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        let new_day = self.day(now_ms) != self.day(self.now_ms);
        self.now_ms = now_ms;
        self.tick_changed() || new_day
    }

    fn request(&mut self, request: Request, pending: Pending) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(id, pending);
        self.actions.push_back(Action::Request { id, request });
    }

    fn say(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: text.into(), error: false });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: text.into(), error: true });
    }

    fn ready(&mut self, ready: &v1::Ready) {
        let first = matches!(self.screen, Screen::Setup(_)) || self.model.me == 0;
        let active = self.active;
        self.model.load(ready);
        self.screen = Screen::Chat;
        self.connection = Connection::Connected;
        // Answers to requests made before the snapshot may not fit it.
        self.pending.retain(|_, p| !matches!(p, Pending::History { .. }));
        if !ready.resume_refused.is_empty() && !first {
            self.say("reconnected; reloading what you were reading");
        }
        let keep = active.filter(|id| self.model.channels.contains_key(id));
        match keep.or_else(|| self.model.nav_order().first().copied()) {
            Some(id) => self.switch_to(id),
            None => self.active = None,
        }
        // A fresh snapshot after a reconnect: voice went with the old connection.
        self.voice_connection(&Connection::Connected);
    }

    fn event(&mut self, event: &v1::Event) {
        let Some(body) = &event.body else { return };
        if let v1::event::Body::CommunityLeft(left) = body {
            self.removed_from(left);
        }
        let effect = self.model.apply(self.now_ms, body);
        if let v1::event::Body::CallUpdate(u) = body {
            self.call_update(u);
        }
        if let v1::event::Body::PipeOffered(p) = body {
            // The bytes go to a file or a program, which a shell chooses.
            let from = p.from.as_ref().map(|u| text::clean_line(&u.username)).unwrap_or_default();
            let what =
                if p.name.is_empty() { String::new() } else { format!(" {}", text::clean_line(&p.name)) };
            self.say(format!(
                "{from} wants to pipe you{what}: take it in a shell with `kith pipe --accept {from} > FILE`"
            ));
        }
        if let v1::event::Body::VoiceStateUpdated(v) = body
            && v.user_id == self.model.me
        {
            self.my_voice_changed();
        }
        if let Some((channel, mentions_me)) = effect.incoming {
            self.incoming(channel, mentions_me);
        }
        if let Some(gone) = effect.removed_channel
            && self.active == Some(gone)
        {
            self.active = None;
            if let Some(next) = self.model.nav_order().first().copied() {
                self.switch_to(next);
            }
        }
        if self.active.is_none()
            && let Some(first) = self.model.nav_order().first().copied()
        {
            self.switch_to(first);
        }
    }

    /// Says why a community went from the sidebar when someone else took
    /// the user out of it (their own leave says "left" already).
    fn removed_from(&mut self, left: &v1::CommunityLeft) {
        let verb = match left.reason() {
            v1::MemberLeftReason::Kicked => "kicked from",
            v1::MemberLeftReason::Banned => "banned from",
            _ => return,
        };
        let Some(community) = self.model.community(left.community_id) else { return };
        let by = Some(left.by_user_id)
            .filter(|&id| community.has_member(id))
            .map(|id| {
                community.nickname(id).or_else(|| self.model.user(id).map(|u| u.label())).unwrap_or("?")
            })
            .unwrap_or("a moderator");
        let mut said = format!("you were {verb} {} by {by}", community.name);
        if !left.moderator_reason.is_empty() {
            said.push_str(&format!(": {}", text::clean_line(&left.moderator_reason)));
        }
        if left.reason() == v1::MemberLeftReason::Kicked {
            said.push_str(" (an invite lets you back in)");
        }
        self.complain(said);
    }

    /// A message from someone else arrived.
    fn incoming(&mut self, channel: u64, mentions_me: bool) {
        let Some(ch) = self.model.channels.get(&channel) else { return };
        let here = self.active == Some(channel);
        // Keep what the reader is looking at still as the new message lands below.
        let lift = if here && ch.scroll > 0 {
            ch.msgs.back().map_or(0, |m| {
                view::message_rows(&self.model, &self.pictures, ch, m, self.geometry.get().width)
            })
        } else {
            0
        };
        let ch = self.model.channels.get_mut(&channel).expect("checked above");
        let watching = here && ch.scroll == 0 && matches!(self.overlay, Overlay::None);
        if watching {
            self.ack_due = true;
        } else {
            ch.unread = ch.unread.saturating_add(1);
            ch.mentions = ch.mentions.saturating_add(u32::from(mentions_me));
            ch.scroll += lift;
        }
        let direct = self.model.channels.get(&channel).is_some_and(|c| c.is_direct());
        let dnd = self.model.status(self.model.me) == v1::PresenceStatus::Dnd;
        let ring = match self.config.bell {
            Bell::Never => false,
            Bell::MentionsAndDirect => mentions_me || direct,
            Bell::Always => true,
        };
        // The conversation in front of the user needs no bell.
        if ring && !dnd && !watching {
            self.actions.push_back(Action::Bell);
        }
    }

    fn tick_changed(&mut self) -> bool {
        let lapsed = self.model.expire_typing(self.now_ms);
        let marked = std::mem::take(&mut self.ack_due) && self.mark_read();
        lapsed || marked
    }

    /// Marks the active channel read up to its newest message; says whether
    /// it did (its unread marks then go).
    fn mark_read(&mut self) -> bool {
        if self.connection != Connection::Connected {
            self.ack_due = true;
            return false;
        }
        let Some(ch) = self.active.and_then(|id| self.model.channels.get_mut(&id)) else { return false };
        let Some(newest) = ch.newest_id() else { return false };
        if ch.newer_missing || (newest <= ch.last_read_id && ch.unread == 0) {
            return false;
        }
        ch.last_read_id = newest.max(ch.last_read_id);
        ch.unread = 0;
        ch.mentions = 0;
        let request = Request::Ack(v1::AckRequest { channel_id: ch.id, message_id: newest });
        self.request(request, Pending::Quiet);
        true
    }

    fn switch_to(&mut self, id: u64) {
        self.active = Some(id);
        self.reply_to = None;
        self.editing = None;
        self.selected = None;
        self.completion = None;
        let Some(ch) = self.model.channels.get_mut(&id) else { return };
        ch.marker = (ch.unread > 0).then_some(ch.last_read_id);
        ch.scroll = 0;
        if ch.kind == v1::ChannelKind::Voice {
            // A voice channel holds people, not messages.
            return;
        }
        if ch.newer_missing {
            ch.msgs.clear();
            ch.loaded = false;
            ch.newer_missing = false;
        }
        if !ch.loaded && !ch.loading {
            ch.loading = true;
            let request =
                Request::History(v1::HistoryRequest { channel_id: id, anchor: None, limit: model::PAGE });
            self.request(request, Pending::History { channel: id, anchor: Anchor::Newest });
        }
        self.ack_due = true;
    }

    fn reply(&mut self, id: u64, result: Result<ReplyResult, Failure>) {
        let Some(pending) = self.pending.remove(&id) else { return };
        // "until <t:…>" in a refusal reads as local time.
        let (now, offset) = (self.now_ms, self.config.utc_offset_secs);
        let result = result.map_err(|f| Failure { reason: text::times(&f.reason, now, offset), ..f });
        match (pending, result) {
            (Pending::History { channel, anchor }, result) => self.history(channel, anchor, result),
            (Pending::Send { channel, nonce }, Ok(ReplyResult::Message(m))) => {
                if let Some(ch) = self.model.channels.get_mut(&channel) {
                    ch.sending.retain(|s| s.nonce != nonce);
                    if ch.loaded && !ch.newer_missing {
                        ch.merge([model::Msg::from_wire(&m, self.model.me)]);
                        ch.trim_front();
                    }
                }
            }
            (Pending::Send { channel, nonce }, Err(f)) => {
                let mut text = String::new();
                if let Some(ch) = self.model.channels.get_mut(&channel)
                    && let Some(i) = ch.sending.iter().position(|s| s.nonce == nonce)
                {
                    text = ch.sending.remove(i).body;
                }
                if self.editor.is_empty() && self.active == Some(channel) {
                    self.editor.set(&text);
                }
                self.complain(format!("not sent: {}", f.reason));
            }
            (Pending::OpenDirect { then_send }, Ok(ReplyResult::Channel(c))) => {
                self.model.apply(self.now_ms, &v1::event::Body::ChannelCreated(c.clone()));
                self.switch_to(c.id);
                if let Some(text) = then_send {
                    self.send(&text);
                }
            }
            (Pending::Invite, Ok(ReplyResult::Invite(i))) => {
                // The server's link names its public address; an older
                // server's invite is built from the address we reached.
                let link = if i.link.is_empty() {
                    let fp =
                        (!self.config.fingerprint.is_empty()).then_some(self.config.fingerprint.as_str());
                    InviteLink::render(&self.config.server, &i.code, fp)
                } else {
                    text::clean_line(&i.link)
                };
                let local = InviteLink::parse(&link).is_ok_and(|l| l.is_local());
                self.actions.push_back(Action::Copy(link.clone()));
                let mut said = format!(
                    "invite to {} (copied to your clipboard where the terminal allows): {link}",
                    text::clean_line(&i.community_name)
                );
                if !i.web_link.is_empty() {
                    said.push_str(&format!(" — or, in a browser: {}", text::clean_line(&i.web_link)));
                }
                if local {
                    said.push_str(
                        " — it names this machine, so it works only here; the server's operator can set \
                         --public-address",
                    );
                }
                self.say(said);
            }
            (Pending::ResetCode, Ok(ReplyResult::ResetCode(r))) => {
                let name = r.user.as_ref().map(|u| text::clean_line(&u.username)).unwrap_or_default();
                let code = text::clean_line(&r.code);
                self.actions.push_back(Action::Copy(code.clone()));
                let mut said = format!(
                    "reset code for {name} (copied where the terminal allows; works once, for a day): {code} — \
                     they choose [c] at sign-in, or run `kith login {name} --code {code}`"
                );
                if !r.web_link.is_empty() {
                    said.push_str(&format!(", or open {}", text::clean_line(&r.web_link)));
                }
                self.say(said);
            }
            (Pending::Community { verb }, Ok(ReplyResult::Community(c))) => {
                self.model.apply(self.now_ms, &v1::event::Body::CommunityJoined(c.clone()));
                if let Some(first) = c.channels.first() {
                    self.switch_to(first.id);
                }
                self.say(format!("{verb} {}", text::clean_line(&c.name)));
            }
            (Pending::Channel, Ok(ReplyResult::Channel(c))) => {
                self.model.apply(self.now_ms, &v1::event::Body::ChannelCreated(c.clone()));
                self.switch_to(c.id);
                let title = self.model.channels.get(&c.id).map(|ch| self.model.title(ch)).unwrap_or_default();
                self.say(format!("created {title}"));
            }
            (Pending::VoiceJoin { channel }, Ok(ReplyResult::VoiceState(v))) => self.voice_joined(channel, v),
            (Pending::VoiceJoin { channel }, Err(f)) => self.voice_join_failed(channel, &f.reason),
            (Pending::VoiceState, Ok(ReplyResult::VoiceState(v))) => self.voice_state_answered(v),
            (Pending::ServerInfo, Ok(ReplyResult::ServerInfo(info))) => {
                if let Screen::Setup(setup) = &mut self.screen {
                    setup.registration_known(info.registration());
                }
            }
            // Without it the sign-in still asks for a code, just less precisely.
            (Pending::ServerInfo, _) => {}
            (Pending::Call { name }, Ok(ReplyResult::CallStarted(c))) => {
                self.say(format!("/{name}: asked…"));
                self.calls.insert(c.call_id, name);
            }
            (Pending::Done(what), Ok(_)) => {
                if !what.is_empty() {
                    self.say(what);
                }
            }
            (Pending::Quiet, _) => {}
            (_, Err(f)) => self.complain(text::clean_line(&f.reason)),
            (_, Ok(_)) => self.complain("the server sent an unexpected answer"),
        }
    }

    fn history(&mut self, channel: u64, anchor: Anchor, result: Result<ReplyResult, Failure>) {
        let me = self.model.me;
        let width = self.geometry.get().width;
        let Some(ch) = self.model.channels.get_mut(&channel) else { return };
        let page = match result {
            Ok(ReplyResult::Messages(page)) => page.messages,
            Ok(_) | Err(_) => {
                ch.loading = false;
                if ch.older == Older::Loading {
                    ch.older = Older::More;
                }
                if let Err(f) = result {
                    self.complain(format!("could not load history: {}", text::clean_line(&f.reason)));
                }
                return;
            }
        };
        let full = page.len() >= model::PAGE as usize;
        let msgs = page.iter().map(|m| model::Msg::from_wire(m, me));
        match anchor {
            Anchor::Newest => {
                ch.loading = false;
                ch.loaded = true;
                ch.merge(msgs);
                ch.older = if full { Older::More } else { Older::None };
                ch.trim_front();
            }
            Anchor::Before => {
                ch.merge(msgs);
                ch.older = if full { Older::More } else { Older::None };
                // Dropping the newest shortens what lies below the view.
                let excess = ch.msgs.len().saturating_sub(model::WINDOW);
                let ch = self.model.channels.get(&channel).expect("present");
                let dropped: usize = ch
                    .msgs
                    .iter()
                    .rev()
                    .take(excess)
                    .map(|m| view::message_rows(&self.model, &self.pictures, ch, m, width))
                    .sum();
                let ch = self.model.channels.get_mut(&channel).expect("present");
                ch.scroll = ch.scroll.saturating_sub(dropped);
                ch.trim_back();
            }
            Anchor::After => {
                ch.loading = false;
                ch.merge(msgs);
                ch.newer_missing = full;
                ch.trim_front();
            }
        }
        if self.active == Some(channel) {
            self.ack_due = true;
            self.fetch_if_needed();
        }
    }

    /// Fetches older history when the view reaches the top of what is
    /// held, and newer when it reaches the bottom of a trimmed window.
    fn fetch_if_needed(&mut self) {
        let Some(id) = self.active else { return };
        let geometry = self.geometry.get();
        let Some(ch) = self.model.channels.get(&id) else { return };
        if !ch.loaded {
            return;
        }
        let total =
            view::total_rows(&self.model, &self.pictures, ch, geometry.width, self.config.utc_offset_secs);
        let at_top = ch.scroll + usize::from(geometry.height) >= total;
        if at_top && ch.older == Older::More {
            let Some(oldest) = ch.msgs.front().map(|m| m.id) else { return };
            let ch = self.model.channels.get_mut(&id).expect("present");
            ch.older = Older::Loading;
            let anchor = Some(v1::history_request::Anchor::Before(oldest));
            let request = Request::History(v1::HistoryRequest { channel_id: id, anchor, limit: model::PAGE });
            self.request(request, Pending::History { channel: id, anchor: Anchor::Before });
        } else if ch.scroll == 0 && ch.newer_missing && !ch.loading {
            let Some(newest) = ch.newest_id() else { return };
            let ch = self.model.channels.get_mut(&id).expect("present");
            ch.loading = true;
            let anchor = Some(v1::history_request::Anchor::After(newest));
            let request = Request::History(v1::HistoryRequest { channel_id: id, anchor, limit: model::PAGE });
            self.request(request, Pending::History { channel: id, anchor: Anchor::After });
        }
    }

    fn scroll_by(&mut self, lines: i32) {
        let Some(id) = self.active else { return };
        let width = self.geometry.get().width;
        let height = usize::from(self.geometry.get().height);
        let Some(ch) = self.model.channels.get(&id) else { return };
        let max = view::total_rows(&self.model, &self.pictures, ch, width, self.config.utc_offset_secs)
            .saturating_sub(height);
        let ch = self.model.channels.get_mut(&id).expect("present");
        let target = if lines >= 0 {
            ch.scroll.saturating_add(lines.unsigned_abs() as usize)
        } else {
            ch.scroll.saturating_sub(lines.unsigned_abs() as usize)
        };
        ch.scroll = target.min(max);
        if ch.scroll == 0 {
            self.ack_due = true;
        }
        self.fetch_if_needed();
    }

    fn page(&self) -> i32 {
        i32::from(self.geometry.get().height.saturating_sub(2).max(1))
    }

    fn paste(&mut self, text: &str) {
        match &mut self.screen {
            Screen::Setup(s) => s.field.insert(text),
            Screen::Chat => match &mut self.overlay {
                Overlay::Switcher { query, .. } => query.insert(text),
                _ => self.editor.insert(text),
            },
        }
    }

    fn key(&mut self, key: Key) {
        if key.ctrl && key.code == KeyCode::Char('c') {
            self.actions.push_back(Action::Quit);
            return;
        }
        if let Screen::Setup(setup) = &mut self.screen {
            setup_key(setup, key, &mut self.actions);
            return;
        }
        if self.notice.as_ref().is_some_and(|n| !n.error) || key.code != KeyCode::Esc {
            self.notice = None;
        }
        match &mut self.overlay {
            Overlay::Help { scroll } => {
                let (page, last) = (usize::from(self.geometry.get().height.max(2)), self.help_last.get());
                match key.code {
                    KeyCode::Up => *scroll = scroll.saturating_sub(1),
                    KeyCode::Down => *scroll = (*scroll + 1).min(last),
                    KeyCode::PageUp => *scroll = scroll.saturating_sub(page),
                    KeyCode::PageDown => *scroll = (*scroll + page).min(last),
                    KeyCode::Home => *scroll = 0,
                    KeyCode::End => *scroll = last,
                    _ => self.overlay = Overlay::None,
                }
                return;
            }
            Overlay::List => {
                self.overlay = Overlay::None;
                return;
            }
            Overlay::Switcher { .. } => {
                self.switcher_key(key);
                return;
            }
            Overlay::None => {}
        }
        if self.selected.is_some() {
            self.selection_key(key);
            return;
        }
        if key.code != KeyCode::Tab && key.code != KeyCode::BackTab {
            self.completion = None;
        }
        match key.code {
            KeyCode::Char('k') if key.ctrl => {
                self.overlay = Overlay::Switcher { query: Editor::default(), selected: 0 };
            }
            KeyCode::F(1) => self.overlay = Overlay::Help { scroll: 0 },
            KeyCode::Char('m') if key.alt => self.toggle_mute(),
            KeyCode::Char('d') if key.alt => self.toggle_deaf(),
            KeyCode::Char('t') if key.alt => self.push_to_talk(),
            KeyCode::Up if key.alt => self.step_channel(-1),
            KeyCode::Down if key.alt => self.step_channel(1),
            KeyCode::Up if key.ctrl => self.select_newest(),
            KeyCode::PageUp => self.scroll_by(self.page()),
            KeyCode::PageDown => self.scroll_by(-self.page()),
            KeyCode::End if key.ctrl => self.scroll_by(i32::MIN + 1),
            KeyCode::Esc => self.escape(),
            KeyCode::Enter if key.alt || key.shift => self.editor.insert("\n"),
            KeyCode::Enter => self.submit(),
            KeyCode::Tab => self.complete(true),
            KeyCode::BackTab => self.complete(false),
            KeyCode::Up if self.editor.is_empty() && self.editing.is_none() => self.edit_last(),
            KeyCode::Up if self.editor.is_multiline() && !self.editor.on_first_line() => self.editor.home(),
            KeyCode::Up => {
                self.editor.history_prev();
            }
            KeyCode::Down if self.editor.is_multiline() && !self.editor.on_last_line() => self.editor.end(),
            KeyCode::Down => {
                self.editor.history_next();
            }
            KeyCode::Left if key.ctrl || key.alt => self.editor.word_left(),
            KeyCode::Right if key.ctrl || key.alt => self.editor.word_right(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Char('a') if key.ctrl => self.editor.home(),
            KeyCode::Char('e') if key.ctrl => self.editor.end(),
            KeyCode::Char('w') if key.ctrl => self.editor.delete_word(),
            KeyCode::Backspace if key.ctrl || key.alt => self.editor.delete_word(),
            KeyCode::Char('u') if key.ctrl => self.editor.delete_to_start(),
            KeyCode::Char('d') if key.ctrl && self.editor.is_empty() => self.actions.push_back(Action::Quit),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Char(c) if !key.ctrl && !key.alt => {
                let mut buf = [0; 4];
                self.editor.insert(c.encode_utf8(&mut buf));
                self.typing();
            }
            _ => {}
        }
    }

    /// Esc: leave reply/edit mode, or else mark the channel read and jump
    /// to the newest message.
    fn escape(&mut self) {
        if self.reply_to.take().is_some() {
            return;
        }
        if self.editing.take().is_some() {
            self.editor.clear();
            return;
        }
        self.notice = None;
        if let Some(ch) = self.active.and_then(|id| self.model.channels.get_mut(&id)) {
            ch.marker = None;
            ch.scroll = 0;
        }
        self.fetch_if_needed();
        self.mark_read();
    }

    fn step_channel(&mut self, by: isize) {
        let order = self.model.nav_order();
        if order.is_empty() {
            return;
        }
        let here = self.active.and_then(|a| order.iter().position(|&c| c == a)).unwrap_or(0);
        let next = (here as isize + by).rem_euclid(order.len() as isize) as usize;
        self.switch_to(order[next]);
    }

    fn switcher_key(&mut self, key: Key) {
        let Overlay::Switcher { query, selected } = &mut self.overlay else { return };
        match key.code {
            KeyCode::Esc => self.overlay = Overlay::None,
            KeyCode::Up => *selected = selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Tab => *selected += 1,
            KeyCode::Enter => {
                let matches = view::switcher_matches(&self.model, query.text());
                let pick = matches.get((*selected).min(matches.len().saturating_sub(1))).map(|(id, _)| *id);
                self.overlay = Overlay::None;
                if let Some(id) = pick {
                    self.switch_to(id);
                }
            }
            KeyCode::Backspace => {
                query.backspace();
                *selected = 0;
            }
            KeyCode::Char('w') if key.ctrl => query.delete_word(),
            KeyCode::Char(c) if !key.ctrl && !key.alt => {
                query.insert(c.encode_utf8(&mut [0; 4]));
                *selected = 0;
            }
            _ => {}
        }
    }

    fn select_newest(&mut self) {
        let Some(ch) = self.active.and_then(|id| self.model.channels.get(&id)) else { return };
        self.selected = ch.msgs.back().map(|m| m.id);
        self.say("↑/↓ pick a message · r reply · e edit · d delete · Esc done");
    }

    fn selection_key(&mut self, key: Key) {
        let Some(ch) = self.active.and_then(|id| self.model.channels.get(&id)) else {
            self.selected = None;
            return;
        };
        let Some(sel) = self.selected else { return };
        let Ok(i) = ch.msgs.binary_search_by_key(&sel, |m| m.id) else {
            self.selected = None;
            return;
        };
        let mine = ch.msgs[i].author_id == self.model.me;
        match key.code {
            KeyCode::Up if i > 0 => self.selected = Some(ch.msgs[i - 1].id),
            KeyCode::Down if i + 1 < ch.msgs.len() => self.selected = Some(ch.msgs[i + 1].id),
            KeyCode::Down | KeyCode::Esc => {
                self.selected = None;
                self.notice = None;
            }
            KeyCode::Char('r') => {
                self.reply_to = Some(sel);
                self.selected = None;
                self.notice = None;
            }
            KeyCode::Char('e') if mine => {
                let body = ch.msgs[i].body.clone();
                self.selected = None;
                self.notice = None;
                self.begin_edit(sel, &body);
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                self.selected = None;
                self.delete(sel);
            }
            _ => {}
        }
        self.keep_selection_visible();
    }

    /// Scrolls so that the picked message is on screen.
    fn keep_selection_visible(&mut self) {
        let (Some(id), Some(sel)) = (self.active, self.selected) else { return };
        let geometry = self.geometry.get();
        let Some(ch) = self.model.channels.get(&id) else { return };
        let below: usize = ch
            .msgs
            .iter()
            .rev()
            .take_while(|m| m.id != sel)
            .map(|m| view::message_rows(&self.model, &self.pictures, ch, m, geometry.width))
            .sum();
        let own = ch
            .find(sel)
            .map_or(1, |m| view::message_rows(&self.model, &self.pictures, ch, m, geometry.width));
        let height = usize::from(geometry.height);
        let ch = self.model.channels.get_mut(&id).expect("present");
        if below < ch.scroll {
            ch.scroll = below;
        } else if below + own > ch.scroll + height {
            ch.scroll = (below + own).saturating_sub(height);
        }
        self.fetch_if_needed();
    }

    /// ↑ on an empty input: edit your newest message here.
    fn edit_last(&mut self) {
        let me = self.model.me;
        let Some(ch) = self.active.and_then(|id| self.model.channels.get(&id)) else { return };
        if let Some(m) = ch.msgs.iter().rev().find(|m| m.author_id == me) {
            let (id, body) = (m.id, m.body.clone());
            self.begin_edit(id, &body);
        }
    }

    fn begin_edit(&mut self, id: u64, body: &str) {
        self.editing = Some(id);
        self.reply_to = None;
        self.editor.set(body);
    }

    fn delete(&mut self, message: u64) {
        let Some(channel) = self.active else { return };
        let request =
            Request::DeleteMessage(v1::DeleteMessageRequest { channel_id: channel, message_id: message });
        self.request(request, Pending::Done("deleted".into()));
    }

    fn typing(&mut self) {
        let Some(channel) = self.active else { return };
        if self.editor.text().starts_with('/') || self.editing.is_some() {
            return;
        }
        if self.model.channels.get(&channel).is_none_or(|c| !c.can_send()) {
            return;
        }
        let due = match self.last_typing {
            Some((c, at)) => c != channel || self.now_ms.saturating_sub(at) >= TYPING_EVERY_MS,
            None => true,
        };
        if due && self.connection == Connection::Connected {
            self.last_typing = Some((channel, self.now_ms));
            self.request(Request::Typing(v1::TypingRequest { channel_id: channel }), Pending::Quiet);
        }
    }

    fn submit(&mut self) {
        let text = self.editor.take();
        if text.trim().is_empty() {
            // Enter in a voice channel joins it.
            if let Some(ch) = self.active.and_then(|id| self.model.channels.get(&id))
                && ch.kind == v1::ChannelKind::Voice
                && !self.in_voice(ch.id)
            {
                self.voice_join(ch.id);
            }
            return;
        }
        if let Some(id) = self.editing.take() {
            let Some(channel) = self.active else { return };
            let request = Request::EditMessage(v1::EditMessageRequest {
                channel_id: channel,
                message_id: id,
                body: text.trim_end().to_owned(),
            });
            self.request(request, Pending::Done(String::new()));
            return;
        }
        if let Some(command) = text.strip_prefix('/')
            && !command.starts_with('/')
        {
            self.command(command.trim());
            return;
        }
        // `//` sends a message that starts with one slash.
        let text = if text.starts_with("//") { &text[1..] } else { &text[..] };
        self.send(text.trim_end());
    }

    fn send(&mut self, text: &str) {
        self.send_with(text, Vec::new());
    }

    /// Sends `text` with these completed uploads to the active channel.
    fn send_with(&mut self, text: &str, uploads: Vec<String>) {
        let Some(channel) = self.active else {
            self.complain("join a community first: /join <invite>");
            return;
        };
        self.nonces += 1;
        let nonce = format!("{}-{}", self.config.nonce_prefix, self.nonces);
        let reply_to = self.reply_to.take().unwrap_or(0);
        if let Some(ch) = self.model.channels.get_mut(&channel) {
            ch.sending.push(Sending { nonce: nonce.clone(), body: text.to_owned() });
            ch.scroll = 0;
        }
        self.last_typing = None;
        let request = Request::SendMessage(v1::SendMessageRequest {
            channel_id: channel,
            body: text.to_owned(),
            nonce: nonce.clone(),
            reply_to,
            uploads,
        });
        self.request(request, Pending::Send { channel, nonce });
    }

    /// `/cancel`: the newest message of this channel still waiting to be
    /// sent comes back to the input, and the host drops its request.
    fn cancel_unsent(&mut self) {
        let Some(channel) = self.active else { return };
        let Some(sending) = self.model.channels.get_mut(&channel).and_then(|ch| ch.sending.pop()) else {
            return self.complain("nothing here is waiting to be sent");
        };
        let id = self.pending.iter().find_map(|(id, p)| match p {
            Pending::Send { nonce, .. } if *nonce == sending.nonce => Some(*id),
            _ => None,
        });
        if let Some(id) = id {
            self.pending.remove(&id);
            self.actions.push_back(Action::Cancel { id });
        }
        if self.editor.is_empty() {
            self.editor.set(&sending.body);
        }
        self.say(
            "taken back before it was sent (had it just gone out, it shows above and /delete removes it)",
        );
    }

    fn complete(&mut self, forward: bool) {
        if let Some(c) = &mut self.completion {
            let n = c.candidates.len();
            c.index = if forward { (c.index + 1) % n } else { (c.index + n - 1) % n };
            let pick = c.candidates[c.index].clone();
            self.editor.replace_current_word(&pick);
            self.show_usage(&pick);
            return;
        }
        let word = self.editor.current_word().to_owned();
        let at_start = self.editor.text()[..self.editor.cursor()].trim_start() == word;
        let candidates = commands::completions(&self.model, self.active, &word, at_start);
        if candidates.is_empty() {
            return;
        }
        let index = if forward { 0 } else { candidates.len() - 1 };
        self.editor.replace_current_word(&candidates[index]);
        self.show_usage(&candidates[index]);
        if candidates.len() > 1 {
            self.completion = Some(Completion { candidates, index });
        }
    }

    /// A bot's command just completed: how to call it, and what it does.
    fn show_usage(&mut self, picked: &str) {
        let Some(name) = picked.trim().strip_prefix('/') else { return };
        let community = self.active.and_then(|id| self.model.channels.get(&id)).map(|c| c.community_id);
        let command = community
            .and_then(|c| self.model.community(c))
            .and_then(|c| c.commands.iter().find(|x| x.name == name))
            .map(|x| (kith_proto::commands::usage(x), x.description.clone()));
        if let Some((usage, description)) = command {
            let what = if description.is_empty() { String::new() } else { format!(" — {description}") };
            self.say(format!("{usage}{what}"));
        }
    }
}

fn setup_key(setup: &mut Setup, key: Key, actions: &mut VecDeque<Action>) {
    use setup::Step;
    match (setup.step, key.code) {
        (_, KeyCode::Esc) => setup.back(),
        (Step::Busy, _) => {}
        (Step::Trust | Step::Choose, KeyCode::Char(c)) => {
            if let Some(a) = setup.answer(c) {
                actions.push_back(Action::Setup(a));
            }
        }
        (_, KeyCode::Enter) => {
            if let Some(a) = setup.submit() {
                actions.push_back(Action::Setup(a));
            }
        }
        (_, KeyCode::Backspace) => setup.field.backspace(),
        (_, KeyCode::Delete) => setup.field.delete(),
        (_, KeyCode::Left) => setup.field.left(),
        (_, KeyCode::Right) => setup.field.right(),
        (_, KeyCode::Home) => setup.field.home(),
        (_, KeyCode::End) => setup.field.end(),
        (_, KeyCode::Char('u')) if key.ctrl => setup.field.delete_to_start(),
        (_, KeyCode::Char(c)) if !key.ctrl && !key.alt => setup.field.insert(c.encode_utf8(&mut [0; 4])),
        _ => {}
    }
}
