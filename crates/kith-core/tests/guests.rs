//! Specs for guests (the telnet gateway's guest access) in the hub: no
//! network, no disk, no clock.

mod world;

use kith_core::UserId;
use kith_core::request::Chosen;
use kith_core::store::StoredUser;
use kith_core::text::GroupName;
use world::*;

impl World {
    fn guest(
        &mut self,
        community: &str,
        can_send: bool,
    ) -> Result<(SessionId, v1::Ready), (ErrorCode, String)> {
        let s = self.connect();
        match self.call(s, Request::Guest { community: community.into(), can_send })? {
            R::Ready(ready) => Ok((s, ready)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn joined(events: &[v1::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::MemberJoined(j)) => Some(j.member.as_ref()?.user.as_ref()?.username.clone()),
            _ => None,
        })
        .collect()
}

fn left(events: &[v1::Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::MemberLeft(l)) => Some(l.user_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_read_only_guest_joins_the_named_community_and_may_only_read() {
    let mut w = World::default();
    let (owner, family, sessions) = w.family(&["bob"]);
    let bob = sessions[0];
    let general = family.channels[0].id;
    w.say(bob, general, "hello from before", None).unwrap();

    // Any case names the community.
    let (guest, ready) = w.guest("FAMILY", false).unwrap();
    let me = ready.user.as_ref().unwrap();
    assert_eq!(me.username, "guest-1");
    assert!(ready.token.is_empty(), "a guest gets nothing to authenticate with later");
    assert_eq!(ready.communities.len(), 1);
    let c = &ready.communities[0];
    assert_eq!(c.permissions, v1::Permission::ViewChannel as u64, "read, nothing else");
    assert_eq!(c.channels[0].permissions, v1::Permission::ViewChannel as u64);
    assert_eq!(joined(&w.events(bob)), ["guest-1"], "members see the guest arrive");

    // Reading works: the history read is authorised and handed to the store.
    let history =
        Request::History(HistoryQuery { channel: ChannelId(general), anchor: Anchor::Latest, limit: 50 });
    w.send(guest, history);
    assert!(matches!(w.reads.as_slice(), [(s, _, Read::History(_))] if *s == guest), "{:?}", w.reads);

    let (code, reason) = w.say(guest, general, "hi", None).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("guests may not send messages"), "{reason}");

    // Nothing beyond reading and writing, whatever @everyone may do.
    let invite = Request::CreateInvite {
        community: CommunityId(family.id),
        max_uses: None,
        expires_in_ms: None,
        code: "g".into(),
    };
    let (code, reason) = w.call(guest, invite).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("create an account"), "{reason}");
    let dm = Request::OpenDirect { users: vec![UserId(w.id("bob"))], name: GroupName::parse("").unwrap() };
    assert_eq!(w.call(guest, dm).unwrap_err().0, ErrorCode::Forbidden);
    let create = Request::CreateCommunity { name: CommunityName::parse("Mine").unwrap() };
    assert_eq!(w.call(guest, create).unwrap_err().0, ErrorCode::Forbidden);

    // Nor can anyone pull a guest into a conversation.
    let dm = Request::OpenDirect { users: vec![UserId(me.id)], name: GroupName::parse("").unwrap() };
    let (code, reason) = w.call(owner, dm).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("guests cannot be in conversations"), "{reason}");
}

#[test]
fn a_guest_who_may_write_is_held_to_the_guest_rate() {
    let mut w = World::default();
    let (_, family, sessions) = w.family(&["bob"]);
    let (bob, general) = (sessions[0], family.channels[0].id);
    let (guest, ready) = w.guest("Family", true).unwrap();
    let perms = ready.communities[0].channels[0].permissions;
    assert_eq!(perms, v1::Permission::ViewChannel as u64 | v1::Permission::SendMessages as u64);

    // The default guest rate: three at once, then one per five seconds.
    for n in 0..3 {
        w.say(guest, general, &format!("hello {n}"), None).unwrap();
    }
    let (code, reason) = w.say(guest, general, "one more", None).unwrap_err();
    assert_eq!(code, ErrorCode::RateLimited, "{reason}");
    let said: Vec<String> = w
        .events(bob)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::MessageCreated(m)) => Some(format!("{}: {}", m.author_name, m.body)),
            _ => None,
        })
        .collect();
    assert_eq!(said, ["guest-1: hello 0", "guest-1: hello 1", "guest-1: hello 2"]);
    // Members are not held to it.
    for n in 0..5 {
        w.say(bob, general, &format!("bob {n}"), None).unwrap();
    }
}

#[test]
fn a_guest_leaves_when_its_session_ends_and_its_account_goes_to_the_next_visitor_if_unused() {
    let mut w = World::default();
    let (owner, _, _) = w.family(&[]);
    let writes_before = w.writes.len();
    let (guest, ready) = w.guest("Family", false).unwrap();
    let id = ready.user.unwrap().id;
    // The account is stored (its name stays taken) with no usable password;
    // the membership is not.
    let written: Vec<&Write> = w.writes[writes_before..].iter().map(|(_, wr)| wr).collect();
    assert!(
        matches!(written.as_slice(), [Write::CreateUser { user, password_hash, .. }]
            if user.username == "guest-1" && password_hash.is_empty()),
        "{written:?}"
    );
    w.events(owner);

    w.input(Input::Disconnected { session: guest });
    assert_eq!(left(&w.events(owner)), [id], "the guest left with its session");
    assert_eq!(w.hub.detached_sessions(), 0, "a guest session cannot be resumed");

    // It wrote nothing, so the next visitor gets that account (a guest that
    // wrote keeps its name: `guests_who_wrote_nothing_leave_no_rows_behind`).
    let before = w.writes.len();
    let (second, ready) = w.guest("Family", false).unwrap();
    assert_eq!(ready.user.unwrap().username, "guest-1");
    assert!(!w.writes[before..].iter().any(|(_, wr)| matches!(wr, Write::CreateUser { .. })), "no new row");
    // Logging out ends the session and leaves, with no token to revoke.
    let before = w.writes.len();
    w.call(second, Request::Logout { everywhere: false }).unwrap();
    assert_eq!(w.closes, [(second, v1::CloseCode::Normal)]);
    assert_eq!(w.writes.len(), before, "nothing to write");
    assert_eq!(left(&w.events(owner)).len(), 1);
}

#[test]
fn guest_numbers_continue_after_a_restart() {
    let stored = |n: u64| StoredUser {
        id: UserId(n),
        username: format!("guest-{n}"),
        fold: format!("guest-{n}"),
        skeleton: Username::guest(n).skeleton,
        display_name: format!("guest-{n}"),
        status_text: String::new(),
        server_owner: false,
        presence: Chosen::Online,
        bot: false,
        deleted: false,
    };
    let state = StoredState { users: vec![stored(3), stored(41)], ..StoredState::default() };
    let config = HubConfig { setup_code: Some(SETUP.into()), ..HubConfig::default() };
    let mut w = World { hub: Hub::new(state, config), ..World::default() };
    w.family(&[]);
    // The stored guests wrote nothing: they are taken first; then numbers
    // continue after the highest.
    let names: Vec<String> =
        (0..3).map(|_| w.guest("Family", false).unwrap().1.user.unwrap().username).collect();
    assert_eq!(names, ["guest-3", "guest-41", "guest-42"]);
}

#[test]
fn guest_access_to_a_missing_community_is_refused_and_writes_nothing() {
    let mut w = World::default();
    w.family(&[]);
    let before = w.writes.len();
    let (code, reason) = w.guest("Lobby", false).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("guest access is not available"), "{reason}");
    assert_eq!(w.writes.len(), before);

    // A signed-in session cannot turn into a guest.
    let (owner, _) = w.login("owner");
    let again = Request::Guest { community: "Family".into(), can_send: true };
    assert_eq!(w.call(owner, again).unwrap_err().0, ErrorCode::AlreadyAuthenticated);
}

#[test]
fn a_kicked_or_banned_guest_is_handled_like_a_member() {
    let mut w = World::default();
    let (owner, family, _) = w.family(&[]);
    let (guest, ready) = w.guest("Family", true).unwrap();
    let id = UserId(ready.user.unwrap().id);
    let ban = Request::Ban {
        community: CommunityId(family.id),
        user: id,
        reason: kith_core::text::Reason("spam".into()),
        delete_message_hours: 0,
    };
    w.call(owner, ban).unwrap();
    assert!(w.say(guest, family.channels[0].id, "still here?", None).is_err());
    // Its session ending afterwards changes nothing more.
    w.input(Input::Disconnected { session: guest });
    assert!(w.closes.is_empty() || w.closes.iter().all(|(s, _)| *s == guest));
}

/// The regression: every guest sign-in stored a new account row for ever
/// (162 rows from seconds of sign-ins). A guest that wrote nothing hands its
/// account to the next visitor; one that wrote keeps its name for good.
#[test]
fn guests_who_wrote_nothing_leave_no_rows_behind() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let created =
        |w: &World| w.writes.iter().filter(|(_, wr)| matches!(wr, Write::CreateUser { .. })).count();
    let before = created(&w);
    let mut names = Vec::new();
    for _ in 0..50 {
        let (s, ready) = w.guest("Family", true).unwrap();
        names.push(ready.user.unwrap().username);
        w.input(Input::Closed { session: s });
    }
    assert_eq!(created(&w) - before, 1, "one row for fifty visits");
    assert!(names.iter().all(|n| n == "guest-1"), "{names:?}");

    // A guest who writes keeps the name: the next one is someone else.
    let (s, ready) = w.guest("Family", true).unwrap();
    let writer = ready.user.unwrap().username;
    w.say(s, general, "hello from a visitor", None).unwrap();
    w.input(Input::Closed { session: s });
    let (_, next) = w.guest("Family", true).unwrap();
    assert_ne!(next.user.unwrap().username, writer, "nobody takes over a visitor's words");
    let _ = owner;
}

/// After a restart the same holds: idle guest accounts are found again.
#[test]
fn idle_guest_accounts_are_recycled_after_a_restart_too() {
    use kith_core::permissions::Permissions;
    use kith_core::store::{StoredChannel, StoredCommunity, StoredRole};
    use kith_core::{RoleId, Timestamp};
    let user = |id: u64, name: &str, owner: bool| StoredUser {
        id: UserId(id),
        username: name.into(),
        fold: name.into(),
        skeleton: name.into(),
        display_name: name.into(),
        status_text: String::new(),
        server_owner: owner,
        presence: Chosen::Online,
        bot: false,
        deleted: false,
    };
    let state = StoredState {
        users: vec![user(1, "owner", true), user(2, "guest-4", false)],
        communities: vec![StoredCommunity { id: CommunityId(10), name: "Family".into(), owner: UserId(1) }],
        roles: vec![StoredRole {
            id: RoleId(10),
            community: CommunityId(10),
            name: "@everyone".into(),
            permissions: Permissions::DEFAULT_EVERYONE,
            rank: 0,
        }],
        channels: vec![StoredChannel {
            id: ChannelId(11),
            community: CommunityId(10),
            name: "general".into(),
            topic: String::new(),
            voice: false,
        }],
        members: vec![kith_core::store::StoredMember {
            community: CommunityId(10),
            user: UserId(1),
            joined_at: Timestamp(0),
            nickname: None,
            timeout_until: None,
        }],
        max_id: 11,
        ..StoredState::default()
    };
    let mut w = World::new(HubConfig::default());
    w.hub = Hub::new(state, HubConfig::default());
    let (_, ready) = w.guest("Family", false).unwrap();
    assert_eq!(ready.user.unwrap().username, "guest-4");
}
