//! `kith chat`: the full-screen client. A thin host around `kith-tui`: it
//! turns terminal events and session updates into the app's inputs, carries
//! out the app's requests on the session, and draws after each batch.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_client::{Client, Error as ClientError, Session, Trust, Update};
use kith_tui::{
    Action, App, Bell, Config, Connection, Failure, Input, Key, KeyCode, PictureInput, Probe, SetupAction,
    SetupInput, TalkMode, UploadInput, VoiceAction, VoiceControls, VoiceInput, VoiceSupport,
};
use kith_voice::{Call, VoiceError};
use ratatui::crossterm::event::{self as ct, Event, KeyEventKind, KeyModifiers, MouseEventKind};
use ratatui::crossterm::execute;
use ratatui::{DefaultTerminal, Terminal, backend::CrosstermBackend};
use tokio::sync::mpsc;

use crate::commands::{Ctx, start_session};
use crate::profile::Profile;
use kith_proto::invite::{InviteLink, with_default_port};

#[derive(Debug, Default, clap::Args)]
pub struct ChatArgs {
    /// An invite to join: on the first run it also says which server to use.
    invite: Option<String>,
    /// When to ring the terminal bell.
    #[arg(long, value_enum, default_value = "mentions")]
    bell: BellArg,
    /// Leave the mouse to the terminal (text selection) instead of using the wheel to scroll.
    #[arg(long)]
    no_mouse: bool,
    /// In voice, say this WAV file (once, from joining) instead of using the
    /// microphone: for bots, demos and tests.
    #[arg(long, value_name = "WAV")]
    audio_in: Option<PathBuf>,
    /// In voice, write what you hear to this WAV file instead of the speakers.
    #[arg(long, value_name = "WAV")]
    audio_out: Option<PathBuf>,
    /// Draw photos in the conversation: `auto` where the terminal says by
    /// its environment that it can (kitty, Ghostty, WezTerm, iTerm2, foot),
    /// a protocol by name for others (xterm: `sixel`), or `off` for file
    /// lines only.
    #[arg(long, value_enum, default_value = "auto", env = "KITH_PICTURES")]
    pictures: PicturesArg,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PicturesArg {
    #[default]
    Auto,
    Off,
    Kitty,
    Sixel,
    Iterm2,
}

#[derive(Debug, Default, Clone, Copy, clap::ValueEnum)]
enum BellArg {
    Never,
    /// On mentions and direct messages.
    #[default]
    Mentions,
    Always,
}

/// Requests and their answers travel through one worker, in order: two
/// messages typed quickly must arrive in the order they were typed.
type Job = (u64, Request);

pub async fn run(ctx: Ctx, args: ChatArgs) -> Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("kith chat needs a terminal; for scripts use `kith send` and `kith tail --json`");
    }
    let existing = ctx.dir.profile(&ctx.profile).ok();
    let mut config = Config {
        server: String::new(),
        fingerprint: String::new(),
        warning: None,
        bell: match args.bell {
            BellArg::Never => Bell::Never,
            BellArg::Mentions => Bell::MentionsAndDirect,
            BellArg::Always => Bell::Always,
        },
        utc_offset_secs: chrono::Local::now().offset().local_minus_utc(),
        nonce_prefix: format!("{:016x}", rand::random::<u64>()),
        voice: Sound::support(&args),
        pictures: None,
        names: kith_tui::Names::default(),
    };
    let sound = Sound::new(&args)?;
    // With a saved profile, connect before taking over the screen, so that a
    // wrong address or a changed server identity is an ordinary error.
    let started = match existing {
        Some(_) => {
            let (session, ready, profile) = crate::commands::lasting_session(&ctx).await?;
            config.server = profile.server.clone();
            config.fingerprint = ctx.dir.pinned(&profile.server)?.unwrap_or_default();
            Some((session, ready))
        }
        None => None,
    };
    let mut screen = Screen::take(!args.no_mouse)?;
    config.pictures = pictures_picker(args.pictures);
    let mut app = if started.is_some() { App::new(config) } else { App::first_run(config) };
    let result = drive(&ctx, &mut app, &mut screen.terminal, started, args.invite, sound).await;
    drop(screen);
    result
}

/// The terminal in raw mode on the alternate screen, restored on drop (and
/// on panic, by ratatui's hook).
struct Screen {
    terminal: DefaultTerminal,
    mouse: bool,
}

impl Screen {
    fn take(mouse: bool) -> Result<Screen> {
        let terminal = ratatui::try_init().context("cannot set up the terminal")?;
        let mut out = std::io::stdout();
        execute!(out, ct::EnableBracketedPaste)?;
        if mouse {
            execute!(out, ct::EnableMouseCapture)?;
        }
        Ok(Screen { terminal, mouse })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        if self.mouse {
            let _ = execute!(out, ct::DisableMouseCapture);
        }
        let _ = execute!(out, ct::DisableBracketedPaste);
        ratatui::restore();
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").field("mouse", &self.mouse).finish()
    }
}

/// How the terminal draws pictures, if it does: the protocol asked for, or
/// for `auto` the one its environment names. The terminal is not queried:
/// a terminal that leaves a query unanswered (tmux does) would leave the
/// reader of its answer blocked on stdin, taking the keys typed after.
/// Inside tmux, `auto` draws nothing (tmux passes pictures through only
/// when configured to). Character-cell "half blocks" are not worth a
/// photo's room: without a protocol, photos stay file lines.
fn pictures_picker(choice: PicturesArg) -> Option<kith_tui::Picker> {
    use kith_tui::ProtocolType as P;
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    let protocol = match choice {
        PicturesArg::Off => return None,
        PicturesArg::Kitty => P::Kitty,
        PicturesArg::Sixel => P::Sixel,
        PicturesArg::Iterm2 => P::Iterm2,
        PicturesArg::Auto if !env("TMUX").is_empty() => return None,
        PicturesArg::Auto => {
            let (term, program) = (env("TERM"), env("TERM_PROGRAM"));
            if !env("KITTY_WINDOW_ID").is_empty() || term == "xterm-kitty" || term == "xterm-ghostty" {
                P::Kitty
            } else if program == "iTerm.app" || program == "WezTerm" || !env("WEZTERM_EXECUTABLE").is_empty()
            {
                P::Iterm2
            } else if term.starts_with("foot") || term.starts_with("mlterm") {
                P::Sixel
            } else {
                return None;
            }
        }
    };
    // The cell's size in pixels, from the terminal's window size (an
    // ioctl, no query); a common size when the terminal does not say.
    let font = match ratatui::crossterm::terminal::window_size() {
        Ok(w) if w.width > 0 && w.columns > 0 && w.rows > 0 => (w.width / w.columns, w.height / w.rows),
        _ => (10, 20),
    };
    // Deprecated in favour of the query this avoids (see above).
    #[allow(deprecated)]
    let mut picker = kith_tui::Picker::from_fontsize(font.into());
    picker.set_protocol_type(protocol);
    Some(picker)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Terminal events, read on a thread of their own (crossterm's reader blocks).
fn terminal_events() -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        while let Ok(event) = ct::read() {
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
    rx
}

fn key(event: ct::KeyEvent) -> Option<Key> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let code = match event.code {
        ct::KeyCode::Char(c) => KeyCode::Char(c),
        ct::KeyCode::Enter => KeyCode::Enter,
        ct::KeyCode::Tab => KeyCode::Tab,
        ct::KeyCode::BackTab => KeyCode::BackTab,
        ct::KeyCode::Backspace => KeyCode::Backspace,
        ct::KeyCode::Delete => KeyCode::Delete,
        ct::KeyCode::Esc => KeyCode::Esc,
        ct::KeyCode::Up => KeyCode::Up,
        ct::KeyCode::Down => KeyCode::Down,
        ct::KeyCode::Left => KeyCode::Left,
        ct::KeyCode::Right => KeyCode::Right,
        ct::KeyCode::Home => KeyCode::Home,
        ct::KeyCode::End => KeyCode::End,
        ct::KeyCode::PageUp => KeyCode::PageUp,
        ct::KeyCode::PageDown => KeyCode::PageDown,
        ct::KeyCode::F(n) => KeyCode::F(n),
        _ => return None,
    };
    let m = event.modifiers;
    Some(Key {
        code,
        ctrl: m.contains(KeyModifiers::CONTROL),
        alt: m.contains(KeyModifiers::ALT),
        shift: m.contains(KeyModifiers::SHIFT),
    })
}

fn to_input(event: Event) -> Option<Input> {
    match event {
        Event::Key(k) => key(k).map(Input::Key),
        Event::Paste(text) => Some(pasted(text)),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Input::Scroll(3)),
            MouseEventKind::ScrollDown => Some(Input::Scroll(-3)),
            _ => None,
        },
        // A resize needs only the redraw that follows every batch.
        Event::Resize(..) => Some(Input::Tick),
        _ => None,
    }
}

/// A paste, or files dropped on the terminal: every pasted word an
/// absolute path (as a drop gives; a word that merely names a file here is
/// text) of a file on this machine, and no more than a message carries.
fn pasted(text: String) -> Input {
    let paths = if text.len() <= 16 * 1024 { kith_tui::dropped_paths(&text) } else { Vec::new() };
    let files = !paths.is_empty()
        && paths.len() <= kith_proto::limits::MAX_ATTACHMENTS
        && paths.iter().all(|p| p.starts_with('/') && std::path::Path::new(p).is_file());
    if files { Input::PasteFiles(paths) } else { Input::Paste(text) }
}

/// The first run's connection, kept from the probe to the sign-in.
struct Probed {
    client: Client,
    server: String,
}

async fn drive(
    ctx: &Ctx,
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    started: Option<(Session, v1::Ready)>,
    invite: Option<String>,
    sound: Sound,
) -> Result<()> {
    let mut call: Option<Call> = None;
    let mut events = terminal_events();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<(u64, Result<R, Failure>)>();
    let (uploads_tx, mut uploads) = mpsc::unbounded_channel::<UploadInput>();
    let (wanted_tx, wanted_rx) = mpsc::unbounded_channel::<Wanted>();
    let (pictures_tx, mut pictures) = mpsc::unbounded_channel::<PictureInput>();
    let mut wanted_rx = Some(wanted_rx);
    let mut session: Option<std::sync::Arc<Session>> = None;
    let mut jobs_rx = Some(jobs_rx);
    let mut probed: Option<Probed> = None;
    let cancelled = Cancelled::default();

    let mut begin = |s: Session, ready: v1::Ready, app: &mut App| {
        let s = std::sync::Arc::new(s);
        if let Some(rx) = jobs_rx.take() {
            // Ends with the session (its job queue closes when we return).
            tokio::spawn(requests(s.clone(), rx, answers_tx.clone(), cancelled.clone()));
        }
        if let Some(rx) = wanted_rx.take() {
            tokio::spawn(previews(s.clone(), rx, pictures_tx.clone()));
        }
        app.handle(now_ms(), Input::Ready(Box::new(ready)));
        s
    };
    match started {
        Some((s, ready)) => {
            session = Some(begin(s, ready, app));
            if let Some(invite) = &invite {
                let code = InviteLink::parse(invite)?.code;
                let _ = jobs_tx.send((0, Request::JoinCommunity(v1::JoinCommunityRequest { code })));
            }
        }
        None => {
            if let Some(invite) = &invite {
                app.handle(now_ms(), Input::Paste(invite.clone()));
                app.handle(now_ms(), Input::Key(Key::plain(KeyCode::Enter)));
            }
        }
    }

    loop {
        // Carry out what the app asked for.
        while let Some(action) = app.poll_action() {
            match action {
                Action::Quit => {
                    if let Some(c) = call.take() {
                        // Finishes the recording of --audio-out.
                        let _ = c.stop().await;
                    }
                    if let Some(s) = &session {
                        s.client().close().await;
                    }
                    return Ok(());
                }
                Action::Voice(VoiceAction::Start(controls)) => {
                    if let Some(c) = call.take() {
                        let _ = c.stop().await;
                    }
                    let Some(s) = &session else { continue };
                    match sound.open() {
                        Ok((capture, playback)) => {
                            let config = kith_voice::VoiceConfig::default();
                            call =
                                Some(Call::start(s.client(), capture, playback, config, to_call(controls)));
                        }
                        Err(e) => app.handle(now_ms(), Input::Voice(VoiceInput::Ended(format!("{e:#}")))),
                    }
                }
                Action::Voice(VoiceAction::Set(controls)) => {
                    if let Some(c) = &call {
                        c.set(to_call(controls));
                    }
                }
                Action::Voice(VoiceAction::Stop) => {
                    if let Some(c) = call.take() {
                        let _ = c.stop().await;
                    }
                }
                Action::Bell => {
                    // Our own byte, never user content.
                    let _ = terminal.backend_mut().write_all(b"\x07");
                }
                Action::Copy(text) => {
                    let _ = terminal.backend_mut().write_all(kith_tui::clipboard_sequence(&text).as_bytes());
                }
                Action::Request { id, request } => {
                    let _ = jobs_tx.send((id, request));
                }
                Action::Cancel { id } => {
                    cancelled.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                }
                Action::Pictures { channel, message, indexes } => {
                    let _ = wanted_tx.send((channel, message, indexes));
                }
                Action::Upload { id, channel, paths } => {
                    let Some(s) = &session else { continue };
                    tokio::spawn(upload(s.client(), id, channel, paths, uploads_tx.clone()));
                }
                Action::Setup(SetupAction::Probe { address }) => {
                    terminal.draw(|f| app.render(f))?; // "Connecting…" while we wait
                    let result = probe(ctx, &address).await;
                    let input = match result {
                        Ok((p, client)) => {
                            probed = Some(Probed { client, server: p.server.clone() });
                            Ok(p)
                        }
                        Err(e) => Err(format!("{e:#}")),
                    };
                    app.handle(now_ms(), Input::Setup(SetupInput::Probed(input)));
                }
                Action::Setup(SetupAction::Guest) => {
                    unreachable!("only a gateway's sign-in offers guest access")
                }
                Action::Setup(SetupAction::SignIn(sign_in)) => {
                    terminal.draw(|f| app.render(f))?;
                    match sign_in_and_start(ctx, probed.take(), &sign_in).await {
                        Ok((s, ready)) => {
                            app.set_server(&sign_in.server, &sign_in.fingerprint);
                            session = Some(begin(s, ready, app));
                        }
                        Err(e) => app.handle(now_ms(), Input::Setup(SetupInput::Failed(format!("{e:#}")))),
                    }
                }
            }
        }
        terminal.draw(|f| app.render(f))?;
        if app.has_actions() {
            // The frame showed pictures not fetched yet.
            continue;
        }

        let input = tokio::select! {
            Some(event) = events.recv() => match to_input(event) {
                Some(i) => i,
                None => continue,
            },
            _ = ticks.tick() => Input::Tick,
            Some((id, result)) = answers.recv() => Input::Reply { id, result },
            Some(u) = uploads.recv() => Input::Upload(u),
            Some(p) = pictures.recv() => Input::Picture(p),
            update = next_update(session.as_deref()) => match update {
                Some(u) => update_input(&ctx.dir, u),
                None => Input::Connection(Connection::Ended("the session ended".into())),
            },
            heard = next_activity(call.as_mut()) => match heard {
                Some(a) => Input::Voice(VoiceInput::Activity {
                    speaking: a.speaking.into_iter().collect(),
                    talking: a.talking,
                }),
                // The call ended by itself. A closed connection is the
                // session's to report (and voice rejoins with it); anything
                // else, a failed sound card, is the call's.
                None => match call.take().expect("a call ended").stop().await {
                    Err(VoiceError::Closed) | Ok(_) => continue,
                    Err(e) => Input::Voice(VoiceInput::Ended(e.to_string())),
                },
            },
        };
        app.handle(now_ms(), input);
        // Take whatever else is already waiting before drawing again, so
        // that a burst (a paste, a flood of messages) costs one frame.
        for _ in 0..256 {
            let next = if let Ok(e) = events.try_recv() {
                to_input(e)
            } else if let Ok((id, result)) = answers.try_recv() {
                Some(Input::Reply { id, result })
            } else {
                None
            };
            match next {
                Some(i) => app.handle(now_ms(), i),
                None => break,
            }
        }
    }
}

/// Uploads `paths` (a leading `~/` is the home directory) one after
/// another, reporting progress at most every percent, then the keys.
async fn upload(
    client: std::sync::Arc<Client>,
    id: u64,
    channel: u64,
    paths: Vec<String>,
    report: mpsc::UnboundedSender<UploadInput>,
) {
    let mut keys = Vec::with_capacity(paths.len());
    let paths: Vec<PathBuf> = paths
        .iter()
        .map(|path| match path.strip_prefix("~/").zip(std::env::var_os("HOME")) {
            Some((rest, home)) => std::path::Path::new(&home).join(rest),
            None => PathBuf::from(path),
        })
        .collect();
    let message_bytes: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut shown = u64::MAX;
        let sent = client
            .upload(channel, &path, message_bytes, |sent, total| {
                let pct = (sent * 100).checked_div(total).unwrap_or(100);
                if pct != shown {
                    shown = pct;
                    let _ = report.send(UploadInput::Progress { id, name: name.clone(), sent, total });
                }
            })
            .await;
        match sent {
            Ok(key) => keys.push(key),
            Err(e) => {
                let _ = report.send(UploadInput::Failed { id, reason: format!("{e}") });
                return;
            }
        }
    }
    let _ = report.send(UploadInput::Done { id, keys });
}

/// Pictures of a message the app wants drawn: (channel, message, indexes).
type Wanted = (u64, u64, Vec<u32>);

/// Fetches previews one message at a time, as the screen shows them: a
/// channel full of photos must not be a burst of requests the server's
/// rate limit answers with refusals (each is waited out instead).
async fn previews(
    session: std::sync::Arc<Session>,
    mut wanted: mpsc::UnboundedReceiver<Wanted>,
    report: mpsc::UnboundedSender<PictureInput>,
) {
    while let Some((channel, message, indexes)) = wanted.recv().await {
        let client = session.client();
        let access = loop {
            match client.open_attachments(channel, message).await {
                Err(e) if e.code() == Some(v1::ErrorCode::RateLimited) => {
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_secs(1))).await;
                }
                other => break other,
            }
        };
        for index in indexes {
            let result = match &access {
                Ok(access) => client
                    .preview(access, index, kith_tui::MAX_PREVIEW_BYTES)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if report.send(PictureInput { channel, message, index, result }).is_err() {
                return;
            }
        }
    }
}

/// The call's next change of who is heard; `None` once it has ended.
async fn next_activity(call: Option<&mut Call>) -> Option<kith_voice::Activity> {
    let Some(call) = call else { return std::future::pending().await };
    let activity = call.activity();
    match activity.changed().await {
        Ok(()) => Some(activity.borrow_and_update().clone()),
        Err(_) => None,
    }
}

/// The app's wishes in the call's terms (its clock is Unix ms, the call's
/// a monotonic instant).
fn to_call(c: VoiceControls) -> kith_voice::Controls {
    let mode = match c.mode {
        TalkMode::VoiceActivity => kith_voice::Mode::VoiceActivity,
        TalkMode::PushToTalk => kith_voice::Mode::PushToTalk,
        TalkMode::Open => kith_voice::Mode::Open,
    };
    let held_until = c
        .held_until_ms
        .map(|t| tokio::time::Instant::now() + Duration::from_millis(t.saturating_sub(now_ms())));
    kith_voice::Controls { mute: c.mute, deaf: c.deaf, mode, held_until }
}

/// Where a call's sound comes from and goes: WAV files when asked for,
/// else the sound card (in builds with the `audio` feature).
#[derive(Debug)]
struct Sound {
    input: Option<Vec<i16>>,
    output: Option<PathBuf>,
}

impl Sound {
    fn new(args: &ChatArgs) -> Result<Sound> {
        let input = args.audio_in.as_deref().map(kith_voice::read_wav).transpose()?;
        Ok(Sound { input, output: args.audio_out.clone() })
    }

    fn support(args: &ChatArgs) -> VoiceSupport {
        if args.audio_in.is_some() || args.audio_out.is_some() || cfg!(feature = "audio") {
            VoiceSupport::Available
        } else {
            VoiceSupport::Unavailable(
                "this kith was built without sound-card support: build it with --features audio, \
                 or use WAV files (kith chat --audio-in say.wav --audio-out heard.wav)"
                    .into(),
            )
        }
    }

    fn open(&self) -> Result<kith_voice::Ends> {
        if self.input.is_none() && self.output.is_none() {
            return device();
        }
        let capture = Box::new(kith_voice::Samples::new(self.input.clone().unwrap_or_default()));
        let playback: Box<dyn kith_voice::Playback> = match &self.output {
            Some(path) => Box::new(kith_voice::WavOut::create(path)?),
            None => Box::new(kith_voice::Discard),
        };
        Ok((capture, playback))
    }
}

#[cfg(feature = "audio")]
fn device() -> Result<kith_voice::Ends> {
    Ok(kith_voice::device::open()?)
}

#[cfg(not(feature = "audio"))]
fn device() -> Result<kith_voice::Ends> {
    bail!("this kith was built without sound-card support")
}

async fn next_update(session: Option<&Session>) -> Option<Update> {
    match session {
        Some(s) => s.next_update().await,
        None => std::future::pending().await,
    }
}

fn update_input(dir: &crate::profile::ConfigDir, update: Update) -> Input {
    match update {
        Update::Event(e) => Input::Event(Box::new(e)),
        Update::Reconnecting { attempt, reason, .. } => {
            Input::Connection(Connection::Reconnecting { attempt, reason })
        }
        Update::Resumed { .. } => Input::Connection(Connection::Connected),
        Update::Reset(ready) => Input::Ready(ready),
        Update::Ended { reason, identity: Some(change) } => Input::Connection(Connection::Ended(
            crate::commands::identity_advice(dir, &reason, &change.addr, &change.presented),
        )),
        Update::Ended { reason, identity: None } => Input::Connection(Connection::Ended(reason)),
    }
}

/// A request with no answer by then has likely met a dead connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Requests the user took back (`/cancel`) before they went out.
type Cancelled = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u64>>>;

/// Sends requests in order. A message, an edit or a delete waits through
/// an outage of any length (the nonce makes a repeated send harmless) and
/// through rate limits, until it is delivered, the user takes it back, or
/// the session ends for good.
async fn requests(
    session: std::sync::Arc<Session>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    answers: mpsc::UnboundedSender<(u64, Result<R, Failure>)>,
    cancelled: Cancelled,
) {
    let taken_back = |id: u64| cancelled.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    while let Some((id, request)) = jobs.recv().await {
        let retry =
            matches!(request, Request::SendMessage(_) | Request::EditMessage(_) | Request::DeleteMessage(_));
        let result = loop {
            if taken_back(id) {
                break Err(ClientError::Closed("taken back".into()));
            }
            match session.client().request_within(request.clone(), ANSWER_WITHIN).await {
                Err(ClientError::Closed(_)) if retry && !session.ended() => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // No answer: the connection is likely dead without knowing
                // it yet. Reconnect (the session resumes) and send again.
                Err(ClientError::Timeout { .. }) if retry => session.drop_connection(),
                Err(e) if retry && e.code() == Some(v1::ErrorCode::RateLimited) => {
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_secs(1))).await;
                }
                other => break other,
            }
        };
        let result = result.map_err(|e| Failure { code: e.code(), reason: e.to_string() });
        if answers.send((id, result)).is_err() {
            return;
        }
    }
}

/// Connects to a server (or an invite's) to show the user who it is.
async fn probe(ctx: &Ctx, address: &str) -> Result<(Probe, Client)> {
    let invite = if address.starts_with("kith://") { Some(InviteLink::parse(address)?) } else { None };
    let server = match invite.as_ref().and_then(|i| i.server.clone()) {
        Some(s) => s,
        None => with_default_port(address),
    };
    let pinned = ctx.dir.pinned(&server)?;
    let invite_fp = invite.as_ref().and_then(|i| i.fingerprint.clone());
    if let (Some(pin), Some(fp)) = (&pinned, &invite_fp)
        && pin != fp
    {
        bail!("the invite says {server} is {fp}, but {pin} is pinned for it; refusing");
    }
    let trust = match pinned.clone().or(invite_fp.clone()) {
        Some(fp) => Trust::Pin(fp),
        None => Trust::FirstUse,
    };
    let (client, seen) = Client::connect_within(&server, trust, ctx.timeout).await?;
    let fingerprint = seen.fingerprint.context("the server presented no certificate")?;
    let vouched = if pinned.is_some() {
        Some("the same identity as when you last connected".to_owned())
    } else if invite_fp.is_some() {
        Some("the invite vouches for this identity".to_owned())
    } else if seen.ca_valid {
        Some("a certificate from a public authority".to_owned())
    } else {
        None
    };
    let invite_code = invite.map(|i| i.code);
    // So that a code is asked for before the password (an older server
    // does not know the request: then the sign-in asks less precisely).
    let registration =
        match client.request_within(Request::ServerInfo(v1::ServerInfoRequest {}), ctx.timeout).await {
            Ok(R::ServerInfo(info)) => info.registration(),
            _ => v1::Registration::Unspecified,
        };
    Ok((Probe { server, fingerprint, vouched, invite_code, registration }, client))
}

/// Logs in or registers on the probed connection, pins the server, saves
/// the profile and starts the lasting session.
async fn sign_in_and_start(
    ctx: &Ctx,
    probed: Option<Probed>,
    s: &kith_tui::SignIn,
) -> Result<(Session, v1::Ready)> {
    let client = match probed {
        Some(p) if p.server == s.server && p.client.close_reason().is_none() => p.client,
        _ => Client::connect_within(&s.server, Trust::Pin(s.fingerprint.clone()), ctx.timeout).await?.0,
    };
    let R::Ready(ready) = client.request(s.request()).await? else {
        bail!("the server sent an unexpected answer");
    };
    if let Some(code) = s.invite_code.as_ref().filter(|_| !s.register) {
        // Joining again is harmless: a member stays a member.
        let join = Request::JoinCommunity(v1::JoinCommunityRequest { code: code.clone() });
        client.request(join).await.context("signed in, but the invite did not work")?;
    }
    ctx.dir.pin(&s.server, &s.fingerprint)?;
    let username = ready.user.as_ref().map(|u| u.username.clone()).unwrap_or_else(|| s.username.clone());
    ctx.dir.save_profile(
        &ctx.profile,
        Profile { server: s.server.clone(), username, token: ready.token.clone() },
    )?;
    client.close().await;
    start_session(ctx, &s.server, &s.fingerprint, &ready.token).await
}
