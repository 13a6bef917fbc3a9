//! What the screen shows, scenario by scenario: the app is driven with
//! inputs, rendered into a ratatui buffer, and the buffer is read back.

use kith_proto::v1::{self, client_message::Request, event::Body, reply::Result as ReplyResult};
use kith_tui::{
    Action, App, Bell, Config, Connection, Input, Key, KeyCode, Probe, SetupAction, SetupInput, SignInWays,
    TalkMode, UploadInput, VoiceAction, VoiceControls, VoiceInput, VoiceSupport,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const ME: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const FAMILY: u64 = 100;
const GENERAL: u64 = 101;
const PHOTOS: u64 = 102;
const DM_BOB: u64 = 200;
/// 2026-11-21 12:00 UTC.
const NOON: u64 = 1_795_262_400_000;
const ALL: u64 = u64::MAX >> 1;

fn config() -> Config {
    Config {
        server: "home.example:7443".into(),
        fingerprint: format!("sha256:{}", "ab".repeat(32)),
        warning: None,
        bell: Bell::MentionsAndDirect,
        utc_offset_secs: 0,
        nonce_prefix: "t".into(),
        names: kith_tui::Names::default(),
        voice: kith_tui::VoiceSupport::Available,
        pictures: None,
    }
}

fn user(id: u64, name: &str) -> v1::User {
    v1::User { id, username: name.into(), ..Default::default() }
}

fn member(id: u64, name: &str) -> v1::Member {
    v1::Member { user: Some(user(id, name)), ..Default::default() }
}

fn channel(id: u64, name: &str) -> v1::Channel {
    v1::Channel { id, community_id: FAMILY, name: name.into(), permissions: ALL, ..Default::default() }
}

fn ready() -> v1::Ready {
    v1::Ready {
        user: Some(user(ME, "alice")),
        communities: vec![v1::Community {
            id: FAMILY,
            name: "Family".into(),
            owner_id: ME,
            channels: vec![
                v1::Channel { topic: "everything else".into(), ..channel(GENERAL, "general") },
                v1::Channel { unread_count: 4, ..channel(PHOTOS, "photos") },
            ],
            members: vec![member(ME, "alice"), member(BOB, "bob"), member(CAROL, "carol")],
            permissions: ALL,
            ..Default::default()
        }],
        direct_channels: vec![v1::Channel {
            id: DM_BOB,
            kind: v1::ChannelKind::Direct as i32,
            recipients: vec![user(ME, "alice"), user(BOB, "bob")],
            permissions: ALL,
            ..Default::default()
        }],
        presences: vec![
            v1::Presence { user_id: ME, status: v1::PresenceStatus::Online as i32 },
            v1::Presence { user_id: BOB, status: v1::PresenceStatus::Online as i32 },
        ],
        ..Default::default()
    }
}

fn msg(id: u64, channel: u64, author: u64, name: &str, body: &str) -> v1::Message {
    v1::Message {
        id,
        channel_id: channel,
        author_id: author,
        author_name: name.into(),
        body: body.into(),
        created_at_ms: NOON + id * 1000,
        ..Default::default()
    }
}

struct Ui {
    app: App,
    now: u64,
    width: u16,
    height: u16,
}

impl Ui {
    fn new(app: App) -> Ui {
        Ui { app, now: NOON, width: 120, height: 30 }
    }

    /// Signed in, #general loaded with `history`.
    fn chatting(history: Vec<v1::Message>) -> Ui {
        let mut ui = Ui::new(App::new(config()));
        ui.input(Input::Ready(Box::new(ready())));
        ui.render();
        let (id, request) = ui.request();
        assert!(matches!(request, Request::History(h) if h.channel_id == GENERAL && h.anchor.is_none()));
        ui.answer(id, ReplyResult::Messages(v1::MessagePage { messages: history }));
        ui.drain();
        ui
    }

    fn input(&mut self, input: Input) {
        self.app.handle(self.now, input);
    }

    fn key(&mut self, key: impl Into<Key>) {
        self.input(Input::Key(key.into()));
    }

    fn typed(&mut self, text: &str) {
        for c in text.chars() {
            self.key(Key::char(c));
        }
    }

    fn event(&mut self, body: Body) {
        self.input(Input::Event(Box::new(v1::Event { seq: 0, body: Some(body) })));
    }

    fn answer(&mut self, id: u64, result: ReplyResult) {
        self.input(Input::Reply { id, result: Ok(result) });
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.app.poll_action()).collect()
    }

    fn drain(&mut self) {
        self.actions();
    }

    /// The one request the app asked for (others drained).
    fn request(&mut self) -> (u64, Request) {
        let requests: Vec<(u64, Request)> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Request { id, request } => Some((id, request)),
                _ => None,
            })
            .filter(|(_, r)| !matches!(r, Request::Ack(_) | Request::Typing(_)))
            .collect();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests.into_iter().next().expect("one")
    }

    fn buffer(&mut self) -> ratatui::buffer::Buffer {
        let mut terminal = Terminal::new(TestBackend::new(self.width, self.height)).expect("test backend");
        terminal.draw(|f| self.app.render(f)).expect("draw");
        terminal.backend().buffer().clone()
    }

    /// The screen as text, one string per row.
    fn render(&mut self) -> Vec<String> {
        let buf = self.buffer();
        (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect()
    }

    fn screen(&mut self) -> String {
        self.render().join("\n")
    }
}

fn shows(screen: &str, what: &str) -> bool {
    screen.contains(what)
}

#[test]
fn first_run_asks_for_the_server_confirms_its_identity_and_signs_up_without_echoing_the_password() {
    let mut ui = Ui::new(App::first_run(config()));
    let s = ui.screen();
    assert!(shows(&s, "Welcome to kith") && shows(&s, "Server address or invite link"), "{s}");

    ui.typed("home.example");
    ui.key(KeyCode::Enter);
    assert_eq!(ui.actions(), [Action::Setup(SetupAction::Probe { address: "home.example".into() })]);
    let fingerprint = format!("sha256:{}", "cd".repeat(32));
    ui.input(Input::Setup(SetupInput::Probed(Ok(Probe {
        server: "home.example:7443".into(),
        fingerprint: fingerprint.clone(),
        vouched: None,
        invite_code: None,
        registration: v1::Registration::Open,
    }))));
    let s = ui.screen();
    assert!(shows(&s, "Trust this server? [y/n]") && shows(&s, "sha256:cdcdcdcd"), "{s}");

    ui.key(Key::char('y'));
    ui.key(Key::char('r'));
    ui.typed("dave");
    ui.key(KeyCode::Enter);
    ui.typed("hunter22");
    let s = ui.screen();
    assert!(shows(&s, "••••••••") && !shows(&s, "hunter22"), "{s}");
    ui.key(KeyCode::Enter);
    ui.typed("hunter22");
    ui.key(KeyCode::Enter);
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    assert!(sign_in.register);
    assert_eq!((sign_in.username.as_str(), sign_in.password.as_str()), ("dave", "hunter22"));
    assert_eq!(sign_in.fingerprint, fingerprint);

    // A refusal goes back to the username with the reason shown.
    ui.input(Input::Setup(SetupInput::Failed("that username is taken".into())));
    let s = ui.screen();
    assert!(shows(&s, "that username is taken") && shows(&s, "Username"), "{s}");

    ui.input(Input::Ready(Box::new(ready())));
    let s = ui.screen();
    assert!(shows(&s, "#general") && shows(&s, "Family"), "{s}");
}

#[test]
fn an_invite_that_carries_the_fingerprint_skips_the_trust_question() {
    let mut ui = Ui::new(App::first_run(config()));
    ui.typed("kith://home.example:7443/CODE?fp=sha256:00");
    ui.key(KeyCode::Enter);
    ui.drain();
    ui.input(Input::Setup(SetupInput::Probed(Ok(Probe {
        server: "home.example:7443".into(),
        fingerprint: "sha256:00".into(),
        vouched: Some("the invite vouches for it".into()),
        invite_code: Some("CODE".into()),
        registration: v1::Registration::Invite,
    }))));
    let s = ui.screen();
    assert!(shows(&s, "the invite vouches for it") && shows(&s, "[l] log in   [r] create an account"), "{s}");
    ui.key(Key::char('r'));
    ui.typed("erin");
    ui.key(KeyCode::Enter);
    ui.typed("erin's pw");
    ui.key(KeyCode::Enter);
    ui.typed("erin's pw");
    ui.key(KeyCode::Enter);
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    assert_eq!(sign_in.invite_code.as_deref(), Some("CODE"));
}

#[test]
fn someone_with_a_reset_code_from_the_owner_chooses_a_new_password_and_signs_in() {
    let mut ui = Ui::new(App::first_run(config()));
    ui.typed("home.example");
    ui.key(KeyCode::Enter);
    ui.drain();
    ui.input(Input::Setup(SetupInput::Probed(Ok(Probe {
        server: "home.example:7443".into(),
        fingerprint: "sha256:00".into(),
        vouched: Some("pinned earlier".into()),
        invite_code: None,
        registration: v1::Registration::Invite,
    }))));
    let s = ui.screen();
    assert!(shows(&s, "[c] I have a reset code from the server's owner"), "{s}");
    ui.key(Key::char('c'));
    ui.typed("marta");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "Reset code"), "{}", ui.screen());
    ui.typed("ABCD-EFGH-JKMN");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "Choose a new password"), "{}", ui.screen());
    ui.typed("short");
    ui.key(KeyCode::Enter);
    assert!(!shows(&ui.screen(), "Password again"), "the password rules hold: {}", ui.screen());
    ui.typed("marta's new pw");
    ui.key(KeyCode::Enter);
    ui.typed("marta's new pw");
    ui.key(KeyCode::Enter);
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    let Request::RedeemResetCode(r) = sign_in.request() else { panic!("{:?}", sign_in.request()) };
    assert_eq!(
        (r.username.as_str(), r.code.as_str(), r.new_password.as_str()),
        ("marta", "ABCD-EFGH-JKMN", "marta's new pw")
    );

    // A refused code is asked again; the username stays.
    ui.input(Input::Setup(SetupInput::Failed("that code does not match".into())));
    let s = ui.screen();
    assert!(shows(&s, "that code does not match") && shows(&s, "Reset code"), "{s}");
}

#[test]
fn the_gateway_starts_at_sign_in_warns_that_it_is_unencrypted_and_asks_newcomers_for_an_invite() {
    let warning = Some("unencrypted: your password crosses the network in clear".to_owned());
    let mut ui = Ui::new(App::gateway(Config { warning, ..config() }, SignInWays::default()));
    // It asks its own server what registering needs.
    let (info, request) = ui.request();
    assert!(matches!(request, Request::ServerInfo(_)));
    let s = ui.screen();
    assert!(shows(&s, "[l] log in   [r] create an account") && shows(&s, "unencrypted"), "{s}");
    assert!(!shows(&s, "Server address") && !shows(&s, "Identity"), "{s}");
    // Esc cannot leave for another server.
    ui.key(KeyCode::Esc);
    assert!(shows(&ui.screen(), "[l] log in"));

    ui.answer(
        info,
        ReplyResult::ServerInfo(v1::ServerInfo {
            registration: v1::Registration::Invite as i32,
            ..Default::default()
        }),
    );
    // The invite comes first, then the password with its rules told up front.
    ui.key(Key::char('r'));
    let s = ui.screen();
    assert!(shows(&s, "Invite code or link"), "the invite code comes first:\n{s}");
    ui.typed(&format!("kith://home.example:7443/Abc123?fp=sha256:{}", "00".repeat(32)));
    ui.key(KeyCode::Enter);
    ui.typed("frank");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "at least 8 characters"), "{}", ui.screen());
    ui.typed("short");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "too short"), "a weak password is refused before it is typed twice");
    ui.typed("secret-pw");
    ui.key(KeyCode::Enter);
    ui.typed("secret-pw");
    ui.key(KeyCode::Enter);
    let s = ui.screen();
    assert!(!shows(&s, "secret-pw"), "{s}");
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    assert!(sign_in.register);
    assert_eq!(sign_in.invite_code.as_deref(), Some("Abc123"));
    assert_eq!((sign_in.username.as_str(), sign_in.password.as_str()), ("frank", "secret-pw"));

    // Logging in asks for no invite.
    ui.input(Input::Setup(SetupInput::Failed("that username and password do not match".into())));
    ui.key(KeyCode::Esc);
    ui.key(Key::char('l'));
    ui.typed("frank");
    ui.key(KeyCode::Enter);
    ui.typed("secret-pw");
    ui.key(KeyCode::Enter);
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    assert!(!sign_in.register && sign_in.invite_code.is_none());
    // No guests unless the operator says so.
    ui.input(Input::Setup(SetupInput::Failed("that username and password do not match".into())));
    ui.key(KeyCode::Esc);
    ui.key(Key::char('g'));
    assert!(ui.actions().is_empty() && !shows(&ui.screen(), "guest"));
}

#[test]
fn the_gateway_offers_guest_access_where_the_operator_allows_it() {
    let both = SignInWays { passwords: true, guests: true };
    let mut ui = Ui::new(App::gateway(config(), both));
    ui.drain();
    assert!(shows(&ui.screen(), "[l] log in   [r] create an account   [g] come in as a guest"));
    ui.key(Key::char('g'));
    assert_eq!(ui.actions(), [Action::Setup(SetupAction::Guest)]);
    assert!(shows(&ui.screen(), "Connecting"));
    // A refusal returns to the choice, saying why.
    ui.input(Input::Setup(SetupInput::Failed("guest access is not available".into())));
    let s = ui.screen();
    assert!(shows(&s, "guest access is not available") && shows(&s, "[g] come in"), "{s}");

    // Guests only: logging in is not offered, and 'l' does nothing.
    let guests = SignInWays { passwords: false, guests: true };
    let mut ui = Ui::new(App::gateway(config(), guests));
    ui.drain();
    let s = ui.screen();
    assert!(shows(&s, "[g] come in as a guest") && !shows(&s, "[l] log in"), "{s}");
    ui.key(Key::char('l'));
    assert!(!shows(&ui.screen(), "Username"));
    ui.key(Key::char('G'));
    assert_eq!(ui.actions(), [Action::Setup(SetupAction::Guest)]);
}

#[test]
fn the_chat_shows_channels_messages_members_and_the_connection() {
    let mut ui = Ui::chatting(vec![
        msg(1, GENERAL, BOB, "bob", "hello alice"),
        msg(2, GENERAL, ME, "alice", "hi bob"),
    ]);
    let s = ui.screen();
    for expected in [
        "Family",
        "#general",
        "#photos",
        "Direct messages",
        "bob hello alice",
        "alice hi bob",
        "12:00 ",
        "Today",
        "everything else",
        "Online — 2",
        "Offline — 1",
        "● connected",
        "home.example:7443",
        "sha256:abababab…",
    ] {
        assert!(shows(&s, expected), "missing {expected:?}:\n{s}");
    }
    // #photos has 4 unread.
    assert!(s.lines().any(|l| l.contains("#photos") && l.contains(" 4")), "{s}");
}

#[test]
fn a_large_communitys_roster_counts_everyone_and_takes_in_who_comes_online() {
    const DAN: u64 = 40;
    let mut ui = Ui::new(App::new(config()));
    let mut ready = ready();
    // 1 500 members, of whom the snapshot lists the three around.
    ready.communities[0].member_count = 1500;
    ui.input(Input::Ready(Box::new(ready)));
    ui.drain();
    ui.render();
    let s = ui.screen();
    assert!(shows(&s, "Online — 2") && shows(&s, "Offline — 1498"), "{s}");

    // Dan, not listed, comes online: introduced, then present.
    ui.event(Body::MemberUpdated(v1::MemberUpdated {
        community_id: FAMILY,
        member: Some(member(DAN, "dan")),
    }));
    ui.event(Body::PresenceUpdated(v1::Presence { user_id: DAN, status: v1::PresenceStatus::Online as i32 }));
    let s = ui.screen();
    assert!(shows(&s, "Online — 3") && shows(&s, "Offline — 1497") && shows(&s, "dan"), "{s}");
}

#[test]
fn switching_channels_loads_their_history_and_clears_their_unread_badge() {
    let mut ui = Ui::chatting(vec![msg(1, GENERAL, BOB, "bob", "in general")]);
    ui.key(Key::alt(KeyCode::Down));
    let actions = ui.actions();
    let (id, history) = actions
        .iter()
        .find_map(|a| match a {
            Action::Request { id, request: Request::History(h) } => Some((*id, *h)),
            _ => None,
        })
        .expect("history for #photos");
    assert_eq!(history.channel_id, PHOTOS);
    ui.answer(
        id,
        ReplyResult::Messages(v1::MessagePage {
            messages: vec![msg(5, PHOTOS, CAROL, "carol", "look at this")],
        }),
    );
    ui.input(Input::Tick);
    let acks: Vec<_> = ui
        .actions()
        .into_iter()
        .filter(|a| matches!(a, Action::Request { request: Request::Ack(a), .. } if a.channel_id == PHOTOS && a.message_id == 5))
        .collect();
    assert_eq!(acks.len(), 1, "viewing a channel marks it read");
    let s = ui.screen();
    assert!(shows(&s, "carol look at this") && !shows(&s, "in general"), "{s}");
    assert!(s.lines().any(|l| l.contains("#photos") && !l.contains(" 4")), "{s}");

    // A message elsewhere shows as unread there; a mention as @1.
    ui.event(Body::MessageCreated(v1::Message {
        mentions: vec![ME],
        ..msg(6, GENERAL, BOB, "bob", "@alice dinner?")
    }));
    let s = ui.screen();
    assert!(s.lines().any(|l| l.contains("#general") && l.contains("@1")), "{s}");

    // Ctrl+K finds a channel by typing.
    ui.key(Key::ctrl('k'));
    ui.typed("gen");
    let s = ui.screen();
    assert!(shows(&s, "Switch to"), "{s}");
    ui.key(KeyCode::Enter);
    let s = ui.screen();
    assert!(shows(&s, "in general") && !shows(&s, "Switch to"), "{s}");
}

#[test]
fn scrolling_back_fetches_older_pages_until_the_beginning() {
    let page = |from: u64| {
        (from..from + 100).map(|i| msg(i, GENERAL, BOB, "bob", &format!("message {i}"))).collect()
    };
    let mut ui = Ui::chatting(page(1001));
    let s = ui.screen();
    assert!(shows(&s, "message 1100") && !shows(&s, "message 1001"), "{s}");

    // Page up until the top of what is held: then the next page is asked for.
    let mut asked = None;
    for _ in 0..20 {
        ui.key(KeyCode::PageUp);
        ui.render();
        if let Some((id, Request::History(h))) = ui.actions().into_iter().find_map(|a| match a {
            Action::Request { id, request } => Some((id, request)),
            _ => None,
        }) {
            asked = Some((id, h));
            break;
        }
    }
    let (id, h) = asked.expect("an older page was requested");
    assert_eq!(h.anchor, Some(v1::history_request::Anchor::Before(1001)));
    let s = ui.screen();
    assert!(shows(&s, "message 1001") && shows(&s, "loading older messages"), "{s}");

    // A short page is the beginning of the channel.
    let older: Vec<_> = (990..1001).map(|i| msg(i, GENERAL, BOB, "bob", &format!("message {i}"))).collect();
    ui.answer(id, ReplyResult::Messages(v1::MessagePage { messages: older }));
    for _ in 0..3 {
        ui.key(KeyCode::PageUp);
    }
    let s = ui.screen();
    assert!(shows(&s, "the beginning of #general") && shows(&s, "message 990"), "{s}");
    assert!(shows(&s, "more below"), "{s}");

    // Esc jumps back to the newest.
    ui.key(KeyCode::Esc);
    let s = ui.screen();
    assert!(shows(&s, "message 1100") && !shows(&s, "more below"), "{s}");
}

#[test]
fn replies_show_what_they_answer_and_are_sent_with_it() {
    let mut ui = Ui::chatting(vec![
        msg(1, GENERAL, BOB, "bob", "who wants pizza?"),
        v1::Message { reply_to: 1, edited_at_ms: NOON + 9000, ..msg(2, GENERAL, CAROL, "carol", "me!") },
    ]);
    let s = ui.screen();
    assert!(shows(&s, "↳ bob: who wants pizza?") && shows(&s, "carol me! (edited)"), "{s}");

    // Ctrl+↑ picks the newest message, ↑ the one before; r replies to it.
    ui.key(Key { ctrl: true, ..Key::plain(KeyCode::Up) });
    ui.key(KeyCode::Up);
    ui.key(Key::char('r'));
    let s = ui.screen();
    assert!(shows(&s, "replying to bob: who wants pizza?"), "{s}");
    ui.typed("me too");
    ui.drain();
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    let Request::SendMessage(send) = request else { panic!("not a send: {request:?}") };
    assert_eq!((send.body.as_str(), send.reply_to), ("me too", 1));
    // Until the server confirms it, the message shows as being sent.
    let s = ui.screen();
    assert!(shows(&s, "…     me too"), "{s}");
}

#[test]
fn up_on_an_empty_input_edits_your_last_message() {
    let mut ui = Ui::chatting(vec![msg(1, GENERAL, ME, "alice", "helo"), msg(2, GENERAL, BOB, "bob", "hi")]);
    ui.key(KeyCode::Up);
    assert!(shows(&ui.screen(), "editing your message"));
    ui.key(KeyCode::Backspace);
    ui.key(KeyCode::Backspace);
    ui.typed("llo");
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    let Request::EditMessage(edit) = request else { panic!("not an edit: {request:?}") };
    assert_eq!((edit.message_id, edit.body.as_str()), (1, "hello"));
}

#[test]
fn hostile_message_content_never_reaches_the_terminal_raw() {
    let hostile = [
        "\u{1b}]0;new title\u{7} \u{1b}]52;c;cm0gLXJmIH4=\u{7}",
        "\u{1b}P+q544e\u{1b}\\ \u{1b}[6n \u{9b}31m red \u{90}dcs",
        "Alice: hi\rBob: send money\u{8}\u{8}\u{8}",
        "abc\u{202e}txt.exe\u{2066}x\u{200b}",
        &format!("z{}", "\u{301}".repeat(10_000)),
        &"👍".repeat(5000),
        &"\u{7}".repeat(1000),
        "\u{1b}[2J\u{1b}[H wiped",
    ];
    let history: Vec<_> = hostile
        .iter()
        .enumerate()
        .map(|(i, b)| msg(i as u64 + 1, GENERAL, BOB, "b\u{1b}[31mob\u{202e}", b))
        .collect();
    let mut ui = Ui::chatting(history);
    for (w, h) in [(120, 30), (200, 60), (40, 12)] {
        ui.width = w;
        ui.height = h;
        let buf = ui.buffer();
        for cell in buf.content() {
            let s = cell.symbol();
            assert!(!s.chars().any(|c| c.is_control()), "raw control in a cell: {s:?}");
            assert!(
                !s.chars().any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
                "{s:?}"
            );
            assert!(
                s.chars().count() <= kith_tui::text::MAX_GRAPHEME_CHARS,
                "a cell of {} chars",
                s.chars().count()
            );
        }
    }
    ui.width = 120;
    let s = ui.screen();
    assert!(shows(&s, "␛[2J"), "escapes are shown, not obeyed:\n{s}");
}

#[test]
fn narrow_terminals_drop_the_side_panels_but_keep_the_conversation() {
    let mut ui =
        Ui::chatting(vec![msg(1, GENERAL, BOB, "bob", "a message that needs wrapping on a narrow screen")]);
    ui.width = 40;
    ui.height = 12;
    let s = ui.screen();
    assert!(!shows(&s, "Direct messages") && !shows(&s, "Online —"), "{s}");
    assert!(shows(&s, "#general") && shows(&s, "bob a message") && shows(&s, "> Message #general"), "{s}");
    // Nothing panics at any size, however small.
    for w in 0..50 {
        for h in 0..14 {
            ui.width = w;
            ui.height = h;
            ui.buffer();
        }
    }
}

#[test]
fn typing_indicators_appear_and_lapse() {
    let mut ui = Ui::chatting(vec![]);
    ui.event(Body::TypingStarted(v1::TypingStarted {
        channel_id: GENERAL,
        user_id: BOB,
        until_ms: NOON + 8000,
    }));
    assert!(shows(&ui.screen(), "bob is typing…"));
    ui.now += 9000;
    ui.input(Input::Tick);
    assert!(!shows(&ui.screen(), "typing"));
}

#[test]
fn a_tick_says_whether_the_screen_changed() {
    let mut ui = Ui::chatting(vec![msg(1, GENERAL, BOB, "bob", "hi")]);
    // The first tick after the snapshot marks the channel read.
    assert!(ui.app.tick(NOON + 500));
    assert!(ui.actions().iter().any(|a| matches!(a, Action::Request { request: Request::Ack(_), .. })));
    let before = ui.screen();
    assert!(!ui.app.tick(NOON + 1000), "nothing lapsed: no redraw needed");
    assert_eq!(ui.screen(), before);
    ui.event(Body::TypingStarted(v1::TypingStarted {
        channel_id: GENERAL,
        user_id: BOB,
        until_ms: NOON + 8000,
    }));
    assert!(!ui.app.tick(NOON + 2000));
    assert!(ui.app.tick(NOON + 9000), "the typing notice lapsed");
    assert!(!ui.app.tick(NOON + 10_000));
    // Midnight turns "Today" into "Yesterday".
    assert!(ui.app.tick(NOON + 13 * 3600 * 1000));
    let s = ui.screen();
    assert!(shows(&s, "Yesterday") && !shows(&s, "Today"), "{s}");
}

#[test]
fn mentions_and_direct_messages_ring_the_bell_but_not_in_dnd() {
    let mut ui = Ui::chatting(vec![]);
    ui.event(Body::MessageCreated(msg(7, GENERAL, BOB, "bob", "plain")));
    assert!(!ui.actions().contains(&Action::Bell));
    ui.event(Body::MessageCreated(msg(8, DM_BOB, BOB, "bob", "psst")));
    assert!(ui.actions().contains(&Action::Bell));
    ui.event(Body::PresenceUpdated(v1::Presence { user_id: ME, status: v1::PresenceStatus::Dnd as i32 }));
    ui.event(Body::MessageCreated(msg(9, DM_BOB, BOB, "bob", "psst again")));
    assert!(!ui.actions().contains(&Action::Bell));
}

#[test]
fn tab_completes_names_channels_and_commands() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/jo");
    ui.key(KeyCode::Tab);
    ui.typed("x");
    assert!(shows(&ui.screen(), "> /join x"));
    ui.key(Key::ctrl('u'));
    ui.typed("hey @ca");
    ui.key(KeyCode::Tab);
    ui.typed("see #ph");
    ui.key(KeyCode::Tab);
    assert!(shows(&ui.screen(), "> hey @carol see #photos"), "{}", ui.screen());
}

#[test]
fn a_community_and_its_channels_can_be_made_from_the_chat() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/community");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "usage: /community <name>"));
    ui.typed("/community Book Club");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    assert!(matches!(&request, Request::CreateCommunity(c) if c.name == "Book Club"), "{request:?}");
    let club = v1::Community {
        id: 900,
        name: "Book Club".into(),
        owner_id: ME,
        channels: vec![v1::Channel { community_id: 900, ..channel(901, "general") }],
        members: vec![member(ME, "alice")],
        permissions: ALL,
        ..Default::default()
    };
    ui.answer(id, ReplyResult::Community(club));
    let s = ui.screen();
    assert!(shows(&s, "created Book Club") && shows(&s, "#general  Book Club"), "{s}");
    ui.drain(); // its history is asked for

    ui.typed("/channel #reading-list what we read next");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    let Request::CreateChannel(c) = request else { panic!("{request:?}") };
    assert_eq!(
        (c.community_id, c.name.as_str(), c.topic.as_str()),
        (900, "reading-list", "what we read next")
    );
    let made = v1::Channel { community_id: 900, topic: c.topic.clone(), ..channel(902, "reading-list") };
    ui.answer(id, ReplyResult::Channel(made));
    let s = ui.screen();
    assert!(shows(&s, "created #reading-list") && shows(&s, "#reading-list  Book Club"), "{s}");
    ui.drain();

    // A refusal is shown as the server words it.
    ui.typed("/channel bad name!");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    ui.input(Input::Reply {
        id,
        result: Err(kith_tui::Failure { code: None, reason: "channel name: lowercase letters".into() }),
    });
    assert!(shows(&ui.screen(), "channel name: lowercase letters"));
}

#[test]
fn the_owner_resets_suspends_and_deletes_accounts_from_the_chat() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/admin reset @marta");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    assert!(matches!(&request, Request::ResetPassword(r) if r.username == "marta"), "{request:?}");
    let user = v1::User { username: "marta".into(), ..Default::default() };
    let code = v1::ResetCode { user: Some(user), code: "ABCD-EFGH".into(), ..Default::default() };
    ui.answer(id, ReplyResult::ResetCode(code));
    let s = ui.screen();
    assert!(shows(&s, "reset code for marta") && shows(&s, "ABCD-EFGH"), "{s}");

    ui.typed("/admin suspend bob spamming the family");
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    assert!(
        matches!(&request, Request::SuspendUser(r) if r.username == "bob" && r.suspended
            && r.reason == "spamming the family"),
        "{request:?}"
    );

    // Deleting asks to be sure before anything is sent.
    ui.typed("/admin delete bob --remove-messages");
    ui.key(KeyCode::Enter);
    let sent = ui
        .actions()
        .into_iter()
        .any(|a| matches!(a, Action::Request { request: Request::DeleteAccount(_), .. }));
    assert!(!sent, "nothing sent without --yes");
    let s = ui.screen();
    assert!(shows(&s, "this deletes bob's account for good") && shows(&s, "--remove-messages --yes"), "{s}");
    ui.typed("/admin delete bob --remove-messages --yes");
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    assert!(matches!(&request, Request::DeleteAccount(r) if r.username == "bob" && r.remove_messages));
}

#[test]
fn slash_commands_become_requests() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/invite");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    assert!(matches!(request, Request::CreateInvite(i) if i.community_id == FAMILY));
    ui.answer(
        id,
        ReplyResult::Invite(v1::Invite {
            code: "XYZ".into(),
            community_name: "Family".into(),
            ..Default::default()
        }),
    );
    assert!(shows(&ui.screen(), "kith://home.example:7443/XYZ?fp=sha256:abab"));

    ui.typed("/me waves");
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    assert!(matches!(request, Request::SendMessage(s) if s.body == "_waves_"));
    ui.event(Body::MessageCreated(msg(3, GENERAL, BOB, "bob", "_waves back_")));
    assert!(shows(&ui.screen(), "* bob waves back"));

    ui.typed("/dm carol see you");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    assert!(matches!(&request, Request::OpenDirect(o) if o.user_ids == [CAROL]), "{request:?}");
    let conversation = v1::Channel {
        id: 300,
        kind: v1::ChannelKind::Direct as i32,
        recipients: vec![user(ME, "alice"), user(CAROL, "carol")],
        permissions: ALL,
        ..Default::default()
    };
    ui.answer(id, ReplyResult::Channel(conversation));
    let sent: Vec<_> = ui
        .actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Request { request: Request::SendMessage(s), .. } => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].channel_id, sent[0].body.as_str()), (300, "see you"));

    ui.typed("/frobnicate");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "unknown command /frobnicate"));

    ui.key(KeyCode::F(1));
    let s = ui.screen();
    assert!(shows(&s, "Keys and commands") && shows(&s, "Ctrl+K"), "{s}");
    ui.key(KeyCode::End);
    assert!(shows(&ui.screen(), "/topic"), "the commands are further down");
}

#[test]
fn a_refused_send_gives_the_text_back() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("too fast");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    ui.input(Input::Reply {
        id,
        result: Err(kith_tui::Failure {
            code: Some(v1::ErrorCode::RateLimited),
            reason: "slow down; retry in 2 s".into(),
        }),
    });
    let s = ui.screen();
    assert!(shows(&s, "not sent: slow down") && shows(&s, "> too fast"), "{s}");
}

#[test]
fn the_connection_state_shows_in_the_status_bar() {
    let mut ui = Ui::chatting(vec![]);
    ui.input(Input::Connection(kith_tui::Connection::Reconnecting {
        attempt: 1,
        reason: "timed out".into(),
    }));
    let s = ui.screen();
    assert!(shows(&s, "○ reconnecting (attempt 2)") && shows(&s, "connection lost: timed out"), "{s}");
    ui.input(Input::Connection(kith_tui::Connection::Connected));
    assert!(shows(&ui.screen(), "● connected"));
}

#[test]
fn a_busy_channel_keeps_only_a_window_of_history_in_memory() {
    let mut ui = Ui::chatting((1..=100).map(|i| msg(i, GENERAL, BOB, "bob", "early")).collect());
    for i in 101..=10_000 {
        ui.event(Body::MessageCreated(msg(i, GENERAL, BOB, "bob", &format!("message {i}"))));
    }
    assert!(ui.app.held_messages() <= 1000, "{} held", ui.app.held_messages());
    assert!(shows(&ui.screen(), "message 10000"));
}

#[test]
fn the_conversation_in_front_of_you_does_not_ring() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/dm bob");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    let dm = ready().direct_channels[0].clone();
    ui.answer(id, ReplyResult::Channel(dm));
    ui.drain();
    ui.event(Body::MessageCreated(msg(8, DM_BOB, BOB, "bob", "you there?")));
    assert!(!ui.actions().contains(&Action::Bell));
    assert!(shows(&ui.screen(), "bob you there?"));
}

const LOUNGE: u64 = 103;
const ATTIC: u64 = 104;

fn voice_channel(id: u64, name: &str) -> v1::Channel {
    v1::Channel { kind: v1::ChannelKind::Voice as i32, ..channel(id, name) }
}

fn in_voice(user: u64, channel: u64) -> v1::VoiceState {
    v1::VoiceState { user_id: user, channel_id: channel, community_id: FAMILY, ..Default::default() }
}

/// Signed in to a Family with two voice channels; bob is talking in the
/// lounge and carol sits in it muted.
fn with_voice(config: Config) -> Ui {
    let mut r = ready();
    let family = &mut r.communities[0];
    family.channels.push(voice_channel(LOUNGE, "lounge"));
    family.channels.push(voice_channel(ATTIC, "attic"));
    family.voice_states =
        vec![in_voice(BOB, LOUNGE), v1::VoiceState { self_mute: true, ..in_voice(CAROL, LOUNGE) }];
    let mut ui = Ui::new(App::new(config));
    ui.input(Input::Ready(Box::new(r)));
    ui.drain();
    ui
}

fn voice_actions(ui: &mut Ui) -> Vec<VoiceAction> {
    ui.actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Voice(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// `/voice join lounge`, answered: alice is in the lounge, sound started.
fn join_lounge(ui: &mut Ui) {
    ui.typed("/voice join lounge");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    let Request::JoinVoice(j) = request else { panic!("{request:?}") };
    assert_eq!((j.channel_id, j.self_mute, j.self_deaf), (LOUNGE, false, false));
    ui.answer(id, ReplyResult::VoiceState(in_voice(ME, LOUNGE)));
    assert_eq!(voice_actions(ui), vec![VoiceAction::Start(VoiceControls::default())]);
}

#[test]
fn voice_channels_show_who_is_in_them_and_who_is_speaking() {
    let mut ui = with_voice(config());
    let s = ui.screen();
    assert!(shows(&s, " ♪lounge") && shows(&s, " ♪attic"), "{s}");
    assert!(shows(&s, "◌ bob") && shows(&s, "◌ carol muted"), "{s}");
    assert!(shows(&s, "bob ♪"), "the member list marks who is in voice: {s}");

    join_lounge(&mut ui);
    let s = ui.screen();
    assert!(shows(&s, "in ♪ lounge · voice activity"), "the status bar says where: {s}");
    assert!(shows(&s, "◌ alice"), "{s}");

    // The host hears bob, and alice's own voice is going out.
    ui.input(Input::Voice(VoiceInput::Activity { speaking: vec![BOB], talking: true }));
    let s = ui.screen();
    assert!(shows(&s, "◉ alice") && shows(&s, "◉ bob") && shows(&s, "◌ carol"), "{s}");
    ui.input(Input::Voice(VoiceInput::Activity { speaking: vec![], talking: false }));
    assert!(shows(&ui.screen(), "◌ bob"));

    // Alt+M mutes: the sound is told at once, the server too.
    ui.key(Key::alt(KeyCode::Char('m')));
    let actions = ui.actions();
    let muted = VoiceControls { mute: true, ..VoiceControls::default() };
    assert!(actions.contains(&Action::Voice(VoiceAction::Set(muted))), "{actions:?}");
    let update = actions.iter().find_map(|a| match a {
        Action::Request { id, request: Request::UpdateVoiceState(u) } => Some((*id, *u)),
        _ => None,
    });
    let (id, u) = update.expect("the server is told");
    assert_eq!((u.self_mute, u.self_deaf), (Some(true), Some(false)));
    ui.answer(id, ReplyResult::VoiceState(v1::VoiceState { self_mute: true, ..in_voice(ME, LOUNGE) }));
    let s = ui.screen();
    assert!(shows(&s, "◌ alice muted") && shows(&s, "in ♪ lounge · muted"), "{s}");

    // Bob leaves.
    ui.event(Body::VoiceStateUpdated(v1::VoiceState { channel_id: 0, ..in_voice(BOB, 0) }));
    assert!(!shows(&ui.screen(), "bob ♪") && !shows(&ui.screen(), "◌ bob"));

    ui.typed("/voice leave");
    ui.key(KeyCode::Enter);
    let actions = ui.actions();
    assert!(actions.contains(&Action::Voice(VoiceAction::Stop)), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::Request { request: Request::LeaveVoice(_), .. })));
    let s = ui.screen();
    assert!(!shows(&s, "alice muted") && !shows(&s, "in ♪ lounge"), "{s}");
}

#[test]
fn a_voice_channel_in_view_shows_its_people_and_enter_joins_it() {
    let mut ui = with_voice(config());
    ui.typed("/voice");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "which one? /voice join <channel>"), "two voice channels here");
    // Into the lounge: no history to load, people instead.
    ui.key(Key::ctrl('k'));
    ui.typed("lounge");
    ui.key(KeyCode::Enter);
    assert!(ui.actions().iter().all(|a| !matches!(a, Action::Request { request: Request::History(_), .. })));
    let s = ui.screen();
    assert!(shows(&s, "In voice — 2") && shows(&s, "Enter joins this voice channel"), "{s}");
    ui.key(KeyCode::Enter);
    let (_, request) = ui.request();
    assert!(matches!(request, Request::JoinVoice(j) if j.channel_id == LOUNGE), "{request:?}");
}

#[test]
fn without_sound_joining_voice_explains_why_and_asks_nothing() {
    let mut ui = with_voice(Config {
        voice: VoiceSupport::Unavailable("this kith was built without sound".into()),
        ..config()
    });
    ui.typed("/voice join lounge");
    ui.key(KeyCode::Enter);
    assert!(ui.actions().is_empty());
    assert!(shows(&ui.screen(), "this kith was built without sound"));
    // Who is in voice still shows.
    assert!(shows(&ui.screen(), "◌ bob"));
}

#[test]
fn a_refused_move_to_another_voice_channel_leaves_you_where_you_were() {
    let mut ui = with_voice(config());
    join_lounge(&mut ui);
    ui.typed("/voice join attic");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    assert!(matches!(request, Request::JoinVoice(j) if j.channel_id == ATTIC), "{request:?}");
    ui.input(Input::Reply { id, result: Err(kith_tui::Failure { code: None, reason: "no CONNECT".into() }) });
    let s = ui.screen();
    assert!(shows(&s, "cannot join voice: no CONNECT") && shows(&s, "in ♪ lounge"), "{s}");
    assert!(voice_actions(&mut ui).is_empty(), "the call goes on");
}

#[test]
fn a_moderator_moving_or_disconnecting_you_is_followed() {
    let mut ui = with_voice(config());
    join_lounge(&mut ui);
    ui.event(Body::VoiceStateUpdated(in_voice(ME, ATTIC)));
    let s = ui.screen();
    assert!(shows(&s, "you were moved to ♪ attic") && shows(&s, "in ♪ attic"), "{s}");
    assert!(voice_actions(&mut ui).is_empty(), "the same call goes on: the server reroutes it");
    ui.event(Body::VoiceStateUpdated(v1::VoiceState { channel_id: 0, ..in_voice(ME, 0) }));
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Stop]);
    assert!(shows(&ui.screen(), "you were disconnected from voice"));
}

#[test]
fn voice_goes_with_a_lost_connection_and_comes_back_with_it() {
    let mut ui = with_voice(config());
    join_lounge(&mut ui);
    ui.key(Key::alt(KeyCode::Char('d')));
    ui.drain();
    ui.input(Input::Connection(Connection::Reconnecting { attempt: 0, reason: "gone".into() }));
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Stop]);
    assert!(shows(&ui.screen(), "rejoining ♪ lounge"));
    ui.input(Input::Connection(Connection::Connected));
    let (id, request) = ui.request();
    let Request::JoinVoice(j) = request else { panic!("{request:?}") };
    assert_eq!((j.channel_id, j.self_deaf), (LOUNGE, true), "rejoined as the user left it");
    ui.answer(id, ReplyResult::VoiceState(v1::VoiceState { self_deaf: true, ..in_voice(ME, LOUNGE) }));
    let deaf = VoiceControls { deaf: true, ..VoiceControls::default() };
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Start(deaf)]);
}

#[test]
fn push_to_talk_holds_the_microphone_open_while_the_key_repeats() {
    let mut ui = with_voice(config());
    join_lounge(&mut ui);
    ui.key(Key::alt(KeyCode::Char('t')));
    assert!(shows(&ui.screen(), "push-to-talk is off"));
    ui.typed("/voice ptt");
    ui.key(KeyCode::Enter);
    let ptt = VoiceControls { mode: TalkMode::PushToTalk, ..VoiceControls::default() };
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Set(ptt)]);
    // The first press covers the keyboard's delay before it repeats.
    ui.key(Key::alt(KeyCode::Char('t')));
    let first = VoiceControls { held_until_ms: Some(NOON + 700), ..ptt };
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Set(first)]);
    // Each repeat keeps it open a little longer.
    ui.now += 600;
    ui.key(Key::alt(KeyCode::Char('t')));
    let held = VoiceControls { held_until_ms: Some(NOON + 800), ..ptt };
    assert_eq!(voice_actions(&mut ui), vec![VoiceAction::Set(held)]);
}

#[test]
fn a_voice_channel_can_be_made_from_the_chat() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/channel hangout --voice");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    let Request::CreateChannel(c) = request else { panic!("{request:?}") };
    assert_eq!((c.name.as_str(), c.kind()), ("hangout", v1::ChannelKind::Voice));
    ui.answer(id, ReplyResult::Channel(voice_channel(105, "hangout")));
    let s = ui.screen();
    assert!(shows(&s, "created ♪ hangout") && shows(&s, "In voice — 0"), "{s}");
}

/// The text of the screen's rightmost pane or box, rows joined with spaces,
/// so that text wrapped over several rows can be looked for whole.
fn flowing(ui: &mut Ui) -> String {
    ui.render()
        .iter()
        .filter_map(|row| row.split(['│', '┌', '┐', '└', '┘']).map(str::trim).rfind(|s| !s.is_empty()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn long_notices_and_connection_problems_wrap_instead_of_being_cut() {
    let mut ui = Ui::chatting(vec![]);
    ui.width = 70;
    let why = "no answer from home.example:7443 within 10 s; is the address right and the server running?";
    ui.input(Input::Connection(kith_tui::Connection::Reconnecting { attempt: 0, reason: why.into() }));
    let s = flowing(&mut ui);
    assert!(s.contains(why), "the whole reason is on screen:\n{}", ui.screen());

    // A notice wraps the same way.
    ui.input(Input::Connection(kith_tui::Connection::Connected));
    ui.typed("hi");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    let why =
        "you are timed out in this community until 14:05 (in 9 min) by a moderator for spamming the channel";
    ui.input(Input::Reply { id, result: Err(kith_tui::Failure { code: None, reason: why.into() }) });
    let s = flowing(&mut ui);
    assert!(s.contains(why), "{}", ui.screen());
}

#[test]
fn the_setup_screen_wraps_long_warnings_and_errors() {
    let warning = Some("unencrypted".to_owned());
    let mut ui = Ui::new(App::gateway(Config { warning, ..config() }, SignInWays::default()));
    ui.width = 60;
    let s = flowing(&mut ui);
    assert!(s.contains("what you type here, passwords too, crosses the network in clear"), "{}", ui.screen());
    ui.key(Key::char('l'));
    ui.typed("dave");
    ui.key(KeyCode::Enter);
    ui.typed("pw");
    ui.key(KeyCode::Enter);
    ui.drain();
    let why = "that username and password do not match; check both (usernames ignore case) and try again";
    ui.input(Input::Setup(SetupInput::Failed(why.into())));
    let s = flowing(&mut ui);
    assert!(s.contains(&why[..40]) && s.contains("and try again"), "{}", ui.screen());
    assert!(!ui.screen().contains('…'), "{}", ui.screen());
}

#[test]
fn help_fits_the_terminal_and_scrolls() {
    let mut ui = Ui::chatting(vec![]);
    (ui.width, ui.height) = (64, 16);
    ui.key(KeyCode::F(1));
    let first = ui.screen();
    assert!(first.contains("Keys and commands") && first.contains("scroll"), "{first}");
    assert!(first.lines().all(|l| l.chars().count() <= 64), "{first}");
    // A description too long for the box wraps under its own column.
    let flow = flowing(&mut ui);
    assert!(flow.contains("cancel reply/edit, else mark read and jump to the end"), "{flow}");
    ui.key(KeyCode::Down);
    let down = ui.screen();
    assert_ne!(first, down, "↓ scrolls");
    ui.key(KeyCode::End);
    assert!(ui.screen().contains("/quit"), "the end of the list is reachable:\n{}", ui.screen());
    ui.key(Key::char('x'));
    assert!(!ui.screen().contains("Keys and commands"), "another key closes it");
}

#[test]
fn presence_reads_without_colour() {
    let mut r = ready();
    r.presences = vec![
        v1::Presence { user_id: ME, status: v1::PresenceStatus::Dnd as i32 },
        v1::Presence { user_id: BOB, status: v1::PresenceStatus::Idle as i32 },
    ];
    let mut ui = Ui::new(App::new(config()));
    ui.input(Input::Ready(Box::new(r)));
    let s = ui.screen();
    assert!(s.contains("◐ bob") && s.contains("⊖ alice"), "{s}");
}

#[test]
fn a_fresh_server_asks_for_its_setup_code_before_the_password() {
    let mut ui = Ui::new(App::gateway(config(), SignInWays::default()));
    let (info, _) = ui.request();
    ui.answer(
        info,
        ReplyResult::ServerInfo(v1::ServerInfo {
            registration: v1::Registration::SetupCode as i32,
            ..Default::default()
        }),
    );
    ui.key(Key::char('r'));
    let s = flowing(&mut ui);
    assert!(s.contains("Setup code") && s.contains("no owner yet"), "{}", ui.screen());
    ui.typed("abcd-efgh-jkmn");
    ui.key(KeyCode::Enter);
    ui.typed("olive");
    ui.key(KeyCode::Enter);
    ui.typed("the owner's password");
    ui.key(KeyCode::Enter);
    ui.typed("the owner's password");
    ui.key(KeyCode::Enter);
    let [Action::Setup(SetupAction::SignIn(sign_in))] = &ui.actions()[..] else { panic!("no sign-in") };
    assert_eq!(
        sign_in.credential(),
        Some(v1::register_request::Credential::SetupCode("abcd-efgh-jkmn".into()))
    );
    // A wrong code goes back to the code, saying so.
    ui.input(Input::Setup(SetupInput::Failed("that setup code is not this server's".into())));
    let s = ui.screen();
    assert!(shows(&s, "Setup code") && shows(&s, "not this server's"), "{s}");
}

#[test]
fn a_kicked_member_is_told_by_whom_and_why_not_shown_an_empty_screen() {
    let mut r = ready();
    r.communities[0].members[1].nickname = "Bobby".into();
    let mut ui = Ui::new(App::new(config()));
    ui.input(Input::Ready(Box::new(r)));
    ui.drain();
    ui.event(Body::CommunityLeft(v1::CommunityLeft {
        community_id: FAMILY,
        reason: v1::MemberLeftReason::Kicked as i32,
        by_user_id: BOB,
        moderator_reason: "too many cat pictures".into(),
    }));
    let s = flowing(&mut ui);
    assert!(s.contains("you were kicked from Family by Bobby: too many cat pictures"), "{}", ui.screen());
}

#[test]
fn times_in_refusals_show_in_local_time_with_how_long_is_left() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("hello?");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    let until = (NOON + 9 * 60_000) / 1000;
    let reason = format!("you are timed out in this community until <t:{until}>");
    ui.input(Input::Reply { id, result: Err(kith_tui::Failure { code: None, reason }) });
    let s = flowing(&mut ui);
    assert!(s.contains("timed out in this community until 12:09 (in 9 min)"), "{}", ui.screen());
}

#[test]
fn a_message_typed_during_an_outage_waits_and_can_be_taken_back() {
    let mut ui = Ui::chatting(vec![]);
    ui.input(Input::Connection(kith_tui::Connection::Reconnecting {
        attempt: 3,
        reason: "timed out".into(),
    }));
    ui.typed("are you there?");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    let s = flowing(&mut ui);
    assert!(s.contains("are you there?") && s.contains("1 message waits to be sent"), "{}", ui.screen());
    ui.typed("/cancel");
    ui.key(KeyCode::Enter);
    assert_eq!(ui.actions(), [Action::Cancel { id }], "the host drops it");
    let s = ui.screen();
    assert!(
        s.contains("> are you there?") && s.contains("taken back"),
        "the text is back in the input:\n{s}"
    );
}

#[test]
fn a_messages_files_show_as_lines_with_name_size_and_type_and_hostile_names_inert() {
    let photo = photo_message().attachments.remove(0);
    let hostile = v1::Attachment {
        name: "\u{1b}[2Jevil\u{202E}gpj.exe".into(),
        size: 512,
        content_type: "application/octet-stream".into(),
        blake3: vec![2; 32],
        ..Default::default()
    };
    let mut m = msg(1, GENERAL, BOB, "bob", "from the beach");
    m.attachments = vec![photo, hostile];
    let mut files_only = msg(2, GENERAL, BOB, "bob", "");
    files_only.attachments = vec![v1::Attachment {
        name: "clip.mp4".into(),
        size: 9,
        content_type: "video/mp4".into(),
        ..Default::default()
    }];
    let mut ui = Ui::chatting(vec![m, files_only]);
    let s = ui.screen();
    assert!(shows(&s, "bob from the beach"), "{s}");
    assert!(shows(&s, "📎  beach.jpg · 4032×3024 · 2.4 MB · image/jpeg"), "{s}");
    // The escape and the bidi override show as inert marks, as in bodies.
    assert!(shows(&s, "📎  ␛[2Jevil⁇gpj.exe · 512 B · application/octet-stream"), "{s}");
    assert!(!s.contains('\u{1b}') && !s.contains('\u{202E}'));
    assert!(shows(&s, "📎  clip.mp4 · 9 B · video/mp4"), "{s}");
}

fn photo_message() -> v1::Message {
    let mut m = msg(1, GENERAL, BOB, "bob", "from the beach");
    m.attachments = vec![v1::Attachment {
        name: "beach.jpg".into(),
        size: 2_400_000,
        content_type: "image/jpeg".into(),
        blake3: vec![1; 32],
        width: 4032,
        height: 3024,
    }];
    m
}

/// A preview as the server makes them: a small JPEG.
fn preview_jpeg() -> Vec<u8> {
    let picture = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&picture).unwrap();
    out
}

fn drawing_with(protocol: kith_tui::ProtocolType) -> Ui {
    let mut picker = kith_tui::Picker::halfblocks(); // 10×20-pixel cells
    picker.set_protocol_type(protocol);
    let mut ui = Ui::new(App::new(Config { pictures: Some(picker), ..config() }));
    ui.input(Input::Ready(Box::new(ready())));
    ui.render();
    let (id, _) = ui.request();
    ui.answer(id, ReplyResult::Messages(v1::MessagePage { messages: vec![photo_message()] }));
    ui
}

/// Rows of the screen that contain `what`.
fn rows_with(ui: &mut Ui, what: &str) -> Vec<usize> {
    ui.render().iter().enumerate().filter(|(_, r)| r.contains(what)).map(|(i, _)| i).collect()
}

#[test]
fn photos_are_drawn_in_the_terminals_own_graphics_protocol() {
    for (protocol, start) in [
        (kith_tui::ProtocolType::Kitty, "\x1b_G"),
        (kith_tui::ProtocolType::Sixel, "\x1bP"),
        (kith_tui::ProtocolType::Iterm2, "\x1b]1337;File="),
    ] {
        let mut ui = drawing_with(protocol);
        // The frame that shows the message asks for its preview, once.
        ui.render();
        assert_eq!(
            ui.actions(),
            [Action::Pictures { channel: GENERAL, message: 1, indexes: vec![0] }],
            "{protocol:?}"
        );
        ui.render();
        assert!(ui.actions().is_empty(), "asked once");
        // Its place is kept from the size the server gave (4032×3024 into
        // 48×12 cells of 10×20 pixels: 32×12), under the file line.
        let line = rows_with(&mut ui, "beach.jpg")[0];
        let input = rows_with(&mut ui, ">")[0];
        assert!(input > line + 12, "{protocol:?}: 12 rows below the file line\n{}", ui.screen());

        ui.input(Input::Picture(kith_tui::PictureInput {
            channel: GENERAL,
            message: 1,
            index: 0,
            result: Ok(preview_jpeg()),
        }));
        let buf = ui.buffer();
        let drawn: Vec<(u16, u16)> = (0..buf.area.height)
            .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| buf[(x, y)].symbol().contains(start))
            .collect();
        assert!(!drawn.is_empty(), "{protocol:?}: no {start:?} in the frame");
        let (x, y) = drawn[0];
        assert!(usize::from(y) > line && x >= 6, "{protocol:?}: under the file line, at ({x}, {y})");
        // The text around it is intact.
        assert!(shows(&ui.screen(), "bob from the beach"));
    }
}

#[test]
fn a_photo_that_cannot_be_drawn_gives_its_place_back_and_is_not_asked_again() {
    let mut ui = drawing_with(kith_tui::ProtocolType::Kitty);
    ui.render();
    ui.drain();
    let before = rows_with(&mut ui, "from the beach")[0];
    // What a hostile server might send as a preview: not a picture at all,
    // and a PNG header claiming 100 000 × 100 000 pixels.
    let mut bomb = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    bomb.extend_from_slice(b"IHDR");
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    for bytes in [b"<html>".to_vec(), bomb] {
        let mut ui = drawing_with(kith_tui::ProtocolType::Kitty);
        ui.render();
        ui.drain();
        let result = Ok(bytes);
        ui.input(Input::Picture(kith_tui::PictureInput { channel: GENERAL, message: 1, index: 0, result }));
        let after = rows_with(&mut ui, "from the beach")[0];
        assert!(after > before + 10, "the 12 rows went back to text: {before} → {after}");
        assert!(shows(&ui.screen(), "beach.jpg · 4032×3024"), "the file line stays");
        ui.render();
        assert!(ui.actions().is_empty(), "not asked again");
    }
}

#[test]
fn without_a_graphics_terminal_a_photo_is_its_file_line_and_nothing_is_fetched() {
    let mut ui = Ui::chatting(vec![photo_message()]);
    assert!(shows(&ui.screen(), "📎  beach.jpg · 4032×3024 · 2.4 MB · image/jpeg"));
    ui.render();
    assert!(!ui.actions().iter().any(|a| matches!(a, Action::Pictures { .. })));
}

#[test]
fn a_bots_command_is_completed_invoked_and_its_answers_shown_as_they_come() {
    let mut ready = ready();
    let count = v1::Command {
        bot_id: 9,
        name: "count".into(),
        description: "counts to n".into(),
        options: vec![v1::CommandOption {
            name: "n".into(),
            description: String::new(),
            r#type: v1::OptionType::Integer as i32,
            required: true,
        }],
    };
    ready.communities[0].commands = vec![count];
    ready.communities[0]
        .members
        .push(v1::Member { user: Some(v1::User { bot: true, ..user(9, "weather") }), ..Default::default() });
    let mut ui = Ui::new(App::new(config()));
    ui.input(Input::Ready(Box::new(ready)));
    ui.render();
    let (id, _) = ui.request();
    ui.answer(id, ReplyResult::Messages(v1::MessagePage { messages: Vec::new() }));
    assert!(shows(&ui.screen(), "weather [bot]"), "marked as a bot in the member list");
    ui.typed("/cou");
    ui.key(KeyCode::Tab);
    let s = ui.screen();
    assert!(shows(&s, "> /count "), "{s}");
    assert!(shows(&s, "/count n:integer — counts to n"), "completed with how to call it: {s}");
    ui.typed("five");
    ui.key(KeyCode::Enter);
    assert!(shows(&ui.screen(), "n must be a whole number"), "refused before asking");
    assert!(
        ui.actions().iter().all(|a| !matches!(a, Action::Request { request: Request::InvokeCommand(_), .. }))
    );
    ui.typed("/count 5");
    ui.key(KeyCode::Enter);
    let (id, request) = ui.request();
    let Request::InvokeCommand(invoke) = request else { panic!("{request:?}") };
    assert_eq!((invoke.channel_id, invoke.bot_id, invoke.name.as_str()), (GENERAL, 9, "count"));
    assert_eq!(invoke.options[0].value, Some(v1::option_value::Value::Integer(5)));
    ui.answer(id, ReplyResult::CallStarted(v1::CallStarted { call_id: 77 }));
    let update = |text: &str, last: bool, error: &str| {
        Body::CallUpdate(v1::CallUpdate {
            call_id: 77,
            text: text.into(),
            r#final: last,
            error: error.into(),
            ..Default::default()
        })
    };
    ui.event(update("3", false, ""));
    assert!(shows(&ui.screen(), "/count: 3"));
    ui.event(update("counted to 5", true, ""));
    assert!(shows(&ui.screen(), "/count: counted to 5"));
    // A failed call says why.
    ui.typed("/count 1");
    ui.key(KeyCode::Enter);
    let (id, _) = ui.request();
    ui.answer(id, ReplyResult::CallStarted(v1::CallStarted { call_id: 78 }));
    ui.event(Body::CallUpdate(v1::CallUpdate {
        call_id: 78,
        r#final: true,
        error: "@weather did not answer /count within 10 s".into(),
        ..Default::default()
    }));
    assert!(shows(&ui.screen(), "/count: @weather did not answer /count within 10 s"));
}

#[test]
fn files_dropped_on_the_terminal_become_an_upload_with_what_was_typed_as_its_message() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("from the beach");
    ui.drain(); // the typing notice
    ui.input(Input::PasteFiles(vec!["/home/a/my photo.jpg".into(), "/tmp/clip.mp4".into()]));
    let s = ui.screen();
    assert!(shows(&s, "> /upload \"/home/a/my photo.jpg\" \"/tmp/clip.mp4\" -- from the beach"), "{s}");
    assert!(shows(&s, "Enter sends the 2 files"), "{s}");
    ui.key(KeyCode::Enter);
    let actions = ui.actions();
    let [Action::Upload { paths, .. }] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(paths, &["/home/a/my photo.jpg".to_owned(), "/tmp/clip.mp4".to_owned()]);
}

#[test]
fn upload_asks_the_host_shows_progress_and_sends_the_message_naming_the_files() {
    let mut ui = Ui::chatting(vec![]);
    ui.typed("/upload \"my photo.jpg\" clip.mp4 -- from the beach");
    ui.key(KeyCode::Enter);
    let actions = ui.actions();
    let [Action::Upload { id, channel, paths }] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!(
        (*channel, paths.as_slice()),
        (GENERAL, &["my photo.jpg".to_owned(), "clip.mp4".to_owned()][..])
    );
    let id = *id;
    ui.input(Input::Upload(UploadInput::Progress { id, name: "my photo.jpg".into(), sent: 45, total: 100 }));
    assert!(shows(&ui.screen(), "uploading my photo.jpg 45%"));
    ui.input(Input::Upload(UploadInput::Done { id, keys: vec!["K1".into(), "K2".into()] }));
    let (_, request) = ui.request();
    let Request::SendMessage(send) = request else { panic!("{request:?}") };
    assert_eq!((send.channel_id, send.body.as_str()), (GENERAL, "from the beach"));
    assert_eq!(send.uploads, ["K1", "K2"]);
    assert!(!shows(&ui.screen(), "uploading"));

    // A failure is said, and nothing is sent.
    ui.typed("/upload gone.png");
    ui.key(KeyCode::Enter);
    let actions = ui.actions();
    let [Action::Upload { id, .. }] = &actions[..] else { panic!("{actions:?}") };
    ui.input(Input::Upload(UploadInput::Failed {
        id: *id,
        reason: "gone.png: No such file or directory".into(),
    }));
    assert!(shows(&ui.screen(), "gone.png: No such file or directory"));
    assert!(ui.actions().is_empty());
}
