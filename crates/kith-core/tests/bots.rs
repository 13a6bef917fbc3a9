//! Specs for bots in the hub: who may make them, how they sign in, the
//! commands they offer, and calls — routed to the bot, answered back to
//! the invoker, bounded and timed out by the hub's own clock.

mod world;

use kith_core::hub::{CALL_TIMEOUT_MS, MAX_CALLS_PER_BOT};
use kith_core::permissions::{Override, OverrideTarget, Permissions};
use kith_core::text::CommandName;
use v1::option_value::Value;
use world::*;

fn make_bot(w: &mut World, s: SessionId, community: u64, name: &str) -> Result<R, (ErrorCode, String)> {
    w.call(
        s,
        Request::CreateBot {
            community: CommunityId(community),
            name: Username::parse(name).unwrap(),
            token: format!("token-{name}"),
            token_hash: TokenHash(*blake(name)),
        },
    )
}

fn option(name: &str, t: v1::OptionType, required: bool) -> v1::CommandOption {
    v1::CommandOption { name: name.into(), description: format!("the {name}"), r#type: t as i32, required }
}

fn commands() -> Vec<v1::Command> {
    let command = |name: &str, options| v1::Command {
        bot_id: 0,
        name: name.into(),
        description: format!("{name}s"),
        options,
    };
    vec![
        command("echo", vec![option("text", v1::OptionType::String, true)]),
        command("count", vec![option("n", v1::OptionType::Integer, true)]),
    ]
}

/// The Family (owner, bob, carol) with a connected bot offering `/echo` and `/count`.
struct Scene {
    w: World,
    owner: SessionId,
    bob: SessionId,
    carol: SessionId,
    bot: SessionId,
    bot_id: u64,
    community: u64,
    general: u64,
}

fn scene(config: HubConfig) -> Scene {
    let mut w = World::new(HubConfig { setup_code: Some(SETUP.into()), ..config });
    let (owner, c, members) = w.family(&["bob", "carol"]);
    let Ok(R::BotToken(t)) = make_bot(&mut w, owner, c.id, "weather") else { panic!() };
    let bot_id = t.bot.unwrap().id;
    w.ids.insert("weather".into(), bot_id);
    let (bot, _) = w.login("weather");
    w.call(bot, Request::RegisterCommands { commands: commands() }).unwrap();
    for s in [owner, members[0], members[1], bot] {
        w.events(s);
    }
    Scene {
        w,
        owner,
        bob: members[0],
        carol: members[1],
        bot,
        bot_id,
        community: c.id,
        general: c.channels[0].id,
    }
}

impl Scene {
    fn invoke(
        &mut self,
        who: SessionId,
        name: &str,
        options: Vec<v1::OptionValue>,
    ) -> Result<R, (ErrorCode, String)> {
        let request = Request::InvokeCommand {
            channel: ChannelId(self.general),
            bot: UserId(self.bot_id),
            name: CommandName::parse("command name", name).unwrap(),
            options,
        };
        self.w.call(who, request)
    }

    fn answer(&mut self, call: u64, text: &str, last: bool, public: bool) -> Result<R, (ErrorCode, String)> {
        let request = Request::AnswerCall { call, text: text.into(), last, public, error: String::new() };
        self.w.call(self.bot, request)
    }
}

fn n(value: i64) -> Vec<v1::OptionValue> {
    vec![v1::OptionValue { name: "n".into(), value: Some(Value::Integer(value)) }]
}

fn updates(w: &mut World, s: SessionId) -> Vec<v1::CallUpdate> {
    w.events(s)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::CallUpdate(u)) => Some(u),
            _ => None,
        })
        .collect()
}

fn calls(w: &mut World, s: SessionId) -> Vec<v1::Call> {
    w.events(s)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::Call(c)) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_who_may_manage_bots_makes_one_that_signs_in_with_its_token_only() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    let (code, why) = make_bot(&mut w, members[0], c.id, "weather").unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "bob lacks MANAGE_BOTS: {why}");
    let Ok(R::BotToken(t)) = make_bot(&mut w, owner, c.id, "weather") else { panic!() };
    assert_eq!(t.token, "token-weather", "the token is shown once, here");
    let bot = t.bot.unwrap();
    assert!(bot.bot, "marked as a bot");
    let joined = w.events(members[0]);
    assert!(
        joined.iter().any(|e| matches!(&e.body, Some(Ev::MemberJoined(j)) if j.member.as_ref().unwrap().user.as_ref().unwrap().bot)),
        "the members see a bot join: {joined:?}"
    );
    // Its name is a username like anyone's: taken names stay taken.
    assert_eq!(make_bot(&mut w, owner, c.id, "bob").unwrap_err().0, ErrorCode::Taken);
    // Every member's snapshot lists the bots' commands: their number is capped.
    for i in 1..kith_core::hub::MAX_BOTS_PER_COMMUNITY {
        w.now = w.now.plus_ms(1000); // within the change rate
        make_bot(&mut w, owner, c.id, &format!("bot{i}")).unwrap();
    }
    let (code, why) = make_bot(&mut w, owner, c.id, "one-too-many").unwrap_err();
    assert_eq!(code, ErrorCode::Invalid);
    assert!(why.contains("most bots"), "{why}");

    w.ids.insert("weather".into(), bot.id);
    let (_, ready) = w.login("weather");
    assert!(ready.user.unwrap().bot);
    assert_eq!(ready.communities[0].id, c.id, "a member of the community it was made in");
    // No password opens it.
    let s = w.connect();
    let login = Request::Login { user: UserId(bot.id), token: "t".into(), token_hash: TokenHash([9; 32]) };
    assert_eq!(w.call(s, login).unwrap_err().0, ErrorCode::BadCredentials);
}

#[test]
fn a_bots_commands_are_offered_in_its_communities_and_only_bots_offer_any() {
    let mut s = scene(HubConfig::default());
    // Everyone in the community heard (the scene drained it); a new
    // session's snapshot carries them.
    let (_, ready) = s.w.login("bob");
    let offered = &ready.communities[0].commands;
    assert_eq!(offered.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["echo", "count"]);
    assert!(offered.iter().all(|c| c.bot_id == s.bot_id));
    assert!(s.w.writes.iter().any(|(_, w)| matches!(w, Write::PutCommands { bot, .. } if bot.0 == s.bot_id)));
    // Withdrawn: everyone is told.
    s.w.call(s.bot, Request::RegisterCommands { commands: Vec::new() }).unwrap();
    let changed = s.w.events(s.carol);
    assert!(
        changed.iter().any(|e| matches!(&e.body, Some(Ev::CommandsChanged(c)) if c.commands.is_empty())),
        "{changed:?}"
    );
    let (code, why) = s.w.call(s.bob, Request::RegisterCommands { commands: commands() }).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{why}");
}

#[test]
fn a_call_reaches_the_bot_and_its_answers_stream_back_to_the_invoker_alone() {
    let mut s = scene(HubConfig::default());
    let Ok(R::CallStarted(started)) = s.invoke(s.bob, "count", n(3)) else { panic!() };
    let [call] = &calls(&mut s.w, s.bot)[..] else { panic!("one call") };
    assert_eq!((call.call_id, call.name.as_str(), call.channel_id), (started.call_id, "count", s.general));
    assert_eq!(call.user.as_ref().unwrap().username, "bob");
    assert_eq!(call.options, n(3));
    // Only the bot it was given to may answer it.
    let forged = Request::AnswerCall {
        call: call.call_id,
        text: "0".into(),
        last: true,
        public: false,
        error: String::new(),
    };
    assert_eq!(s.w.call(s.carol, forged).unwrap_err().0, ErrorCode::NotFound);
    let never = Request::AnswerCall {
        call: 424242,
        text: "?".into(),
        last: true,
        public: false,
        error: String::new(),
    };
    assert_eq!(s.w.call(s.bot, never).unwrap_err().0, ErrorCode::NotFound, "a call never given");
    for i in 1..=3 {
        s.answer(call.call_id, &i.to_string(), false, false).unwrap();
    }
    s.answer(call.call_id, "counted to 3", true, false).unwrap();
    let got = updates(&mut s.w, s.bob);
    let texts: Vec<(&str, bool)> = got.iter().map(|u| (u.text.as_str(), u.r#final)).collect();
    assert_eq!(texts, [("1", false), ("2", false), ("3", false), ("counted to 3", true)], "in order");
    assert!(updates(&mut s.w, s.carol).is_empty(), "only the invoker sees an ephemeral answer");
    // Over: more answers are refused.
    let (code, _) = s.answer(call.call_id, "4", false, false).unwrap_err();
    assert_eq!(code, ErrorCode::NotFound);
}

#[test]
fn a_public_answer_is_the_bots_message_in_the_channel() {
    let mut s = scene(HubConfig::default());
    s.invoke(
        s.bob,
        "echo",
        vec![v1::OptionValue { name: "text".into(), value: Some(Value::String("hi".into())) }],
    )
    .unwrap();
    let call = calls(&mut s.w, s.bot).remove(0);
    let posted = message(s.answer(call.call_id, "hi", true, true).unwrap());
    assert_eq!((posted.author_id, posted.body.as_str()), (s.bot_id, "hi"));
    let seen = s.w.events(s.carol);
    assert!(seen.iter().any(|e| matches!(&e.body, Some(Ev::MessageCreated(m)) if m.id == posted.id)));
    let done = updates(&mut s.w, s.bob);
    assert_eq!((done[0].message_id, done[0].r#final), (posted.id, true));

    // A bot that may not send in the channel cannot answer there in public.
    s.invoke(
        s.bob,
        "echo",
        vec![v1::OptionValue { name: "text".into(), value: Some(Value::String("x".into())) }],
    )
    .unwrap();
    let call = calls(&mut s.w, s.bot).remove(0);
    let rule = Override { allow: Permissions::empty(), deny: Permissions::SEND_MESSAGES };
    let target = OverrideTarget::Member(UserId(s.bot_id));
    s.w.call(s.owner, Request::SetOverride { channel: ChannelId(s.general), target, rule }).unwrap();
    assert_eq!(s.answer(call.call_id, "x", true, true).unwrap_err().0, ErrorCode::Forbidden);
    // It still may answer the invoker alone.
    s.answer(call.call_id, "x", true, false).unwrap();
}

#[test]
fn a_call_the_bot_leaves_unanswered_times_out_and_a_late_answer_is_refused() {
    let mut s = scene(HubConfig::default());
    s.invoke(s.bob, "count", n(1)).unwrap();
    let call = calls(&mut s.w, s.bot).remove(0);
    assert_eq!(s.w.hub.poll_timeout(), Some(Timestamp(call.deadline_ms)), "the hub asks for the time");
    s.answer(call.call_id, "working", false, false).unwrap();
    // Each answer moves the deadline on.
    let moved = s.w.hub.poll_timeout().unwrap();
    assert!(moved.0 > call.deadline_ms);
    s.w.now = moved;
    s.w.input(Input::Tick);
    let got = updates(&mut s.w, s.bob);
    let last = got.last().unwrap();
    assert!(last.r#final && last.error.contains("did not answer /count within 10 s"), "{got:?}");
    assert_eq!(s.answer(call.call_id, "late", true, false).unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(CALL_TIMEOUT_MS, 10_000);
}

#[test]
fn a_bot_that_goes_away_fails_its_calls_and_one_not_connected_is_said_to_be() {
    let mut s = scene(HubConfig::default());
    s.invoke(s.bob, "count", n(1)).unwrap();
    s.w.input(Input::Closed { session: s.bot });
    let got = updates(&mut s.w, s.bob);
    assert!(got[0].r#final && got[0].error.contains("@weather went away"), "{got:?}");
    let (code, why) = s.invoke(s.bob, "count", n(1)).unwrap_err();
    assert_eq!(code, ErrorCode::Invalid);
    assert!(why.contains("@weather is not connected"), "{why}");
}

#[test]
fn calls_in_flight_to_one_bot_are_bounded_and_none_is_lost() {
    let mut s = scene(HubConfig { message_rate: None, ..HubConfig::default() });
    for _ in 0..MAX_CALLS_PER_BOT {
        s.invoke(s.bob, "count", n(1)).unwrap();
    }
    let (code, _) = s.invoke(s.carol, "count", n(1)).unwrap_err();
    assert_eq!(code, ErrorCode::RateLimited, "the bot is busy: wait");
    // The bot's being busy is not carol flooding: many such answers do not
    // cut her off (her own rate limits still would).
    for _ in 0..200 {
        assert_eq!(s.invoke(s.carol, "count", n(1)).unwrap_err().0, ErrorCode::RateLimited);
    }
    assert!(!s.w.closes.iter().any(|(who, _)| *who == s.carol), "{:?}", s.w.closes);
    let given = calls(&mut s.w, s.bot);
    assert_eq!(given.len(), MAX_CALLS_PER_BOT);
    for c in &given {
        s.answer(c.call_id, "done", true, false).unwrap();
    }
    assert_eq!(updates(&mut s.w, s.bob).len(), MAX_CALLS_PER_BOT, "every call answered once");
    s.invoke(s.carol, "count", n(1)).unwrap();
}

#[test]
fn an_invocation_must_fit_the_command_and_be_allowed_where_it_is_made() {
    let mut s = scene(HubConfig::default());
    let (code, why) = s.invoke(s.bob, "count", Vec::new()).unwrap_err();
    assert_eq!(code, ErrorCode::Invalid);
    assert!(why.contains("/count needs n (usage: /count n:integer)"), "{why}");
    let text = vec![v1::OptionValue { name: "n".into(), value: Some(Value::String("three".into())) }];
    assert!(s.invoke(s.bob, "count", text).unwrap_err().1.contains("must be integer"));
    assert_eq!(s.invoke(s.bob, "nope", Vec::new()).unwrap_err().0, ErrorCode::NotFound);

    let channel = ChannelId(s.general);
    let deny = |p| Override { allow: Permissions::empty(), deny: p };
    let bob = OverrideTarget::Member(UserId(s.w.id("bob")));
    s.w.call(s.owner, Request::SetOverride { channel, target: bob, rule: deny(Permissions::USE_COMMANDS) })
        .unwrap();
    let (code, why) = s.invoke(s.bob, "count", n(1)).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(why.contains("use commands"), "{why}");
    let bot = OverrideTarget::Member(UserId(s.bot_id));
    s.w.call(s.owner, Request::SetOverride { channel, target: bot, rule: deny(Permissions::VIEW_CHANNEL) })
        .unwrap();
    let (code, why) = s.invoke(s.carol, "count", n(1)).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(why.contains("@weather cannot see this channel"), "{why}");
    assert!(calls(&mut s.w, s.bot).is_empty(), "nothing reached the bot");
}

#[test]
fn a_new_token_closes_the_bots_connections_and_the_old_one_stops_working() {
    let mut s = scene(HubConfig::default());
    let rotate = Request::RotateBotToken {
        community: CommunityId(s.community),
        bot: UserId(s.bot_id),
        token: "fresh".into(),
        token_hash: TokenHash([7; 32]),
    };
    assert_eq!(s.w.call(s.bob, rotate_clone(&rotate)).unwrap_err().0, ErrorCode::Forbidden);
    let Ok(R::BotToken(t)) = s.w.call(s.owner, rotate) else { panic!() };
    assert_eq!(t.token, "fresh");
    assert!(s.w.closes.contains(&(s.bot, v1::CloseCode::TokenRevoked)));
    let old = s.w.connect();
    let again = Request::Authenticate { token_hash: TokenHash(*blake("weather")) };
    assert_eq!(s.w.call(old, again).unwrap_err().0, ErrorCode::BadCredentials);
    let new = s.w.connect();
    assert!(matches!(
        s.w.call(new, Request::Authenticate { token_hash: TokenHash([7; 32]) }),
        Ok(R::Ready(_))
    ));
}

fn rotate_clone(r: &Request) -> Request {
    let Request::RotateBotToken { community, bot, token, token_hash } = r else { unreachable!() };
    Request::RotateBotToken {
        community: *community,
        bot: *bot,
        token: token.clone(),
        token_hash: *token_hash,
    }
}
