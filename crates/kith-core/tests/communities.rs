//! Specs for roles, permissions, moderation and profiles in the hub: no
//! network, no disk, no clock.

mod world;

use kith_core::permissions::{Override, OverrideTarget, Permissions};
use kith_core::text::{Nickname, Reason, RoleName, StatusText};
use kith_core::{RoleId, UserId};
use world::*;

const HOUR: u64 = 3_600_000;

fn user_id(ready_user: &str, c: &v1::Community) -> u64 {
    c.members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .find(|u| u.username == ready_user)
        .map(|u| u.id)
        .unwrap_or_else(|| panic!("{ready_user} is not a member"))
}

fn role(r: R) -> v1::Role {
    match r {
        R::Role(role) => role,
        other => panic!("expected a role, got {other:?}"),
    }
}

impl World {
    fn members(&mut self, owner: SessionId, community: u64) -> v1::Community {
        // The owner sees everything; a fresh invite join answers with the community.
        let code = self.invite(owner, community);
        match self.call(owner, Request::JoinCommunity { code }).unwrap() {
            R::Community(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn create_role(
        &mut self,
        s: SessionId,
        community: u64,
        name: &str,
        p: Permissions,
        rank: u32,
    ) -> Result<v1::Role, (ErrorCode, String)> {
        let req = Request::CreateRole {
            community: CommunityId(community),
            name: RoleName::parse(name).unwrap(),
            permissions: p,
            rank,
        };
        self.call(s, req).map(role)
    }

    fn grant(
        &mut self,
        s: SessionId,
        community: u64,
        user: u64,
        role: u64,
    ) -> Result<R, (ErrorCode, String)> {
        self.call(
            s,
            Request::UpdateMember {
                community: CommunityId(community),
                user: UserId(user),
                nickname: None,
                add_roles: vec![RoleId(role)],
                remove_roles: vec![],
            },
        )
    }

    fn channel(&mut self, s: SessionId, community: u64, name: &str) -> v1::Channel {
        let req = Request::CreateChannel {
            community: CommunityId(community),
            name: ChannelName::parse(name).unwrap(),
            topic: Topic::parse("").unwrap(),
            voice: false,
        };
        match self.call(s, req).unwrap() {
            R::Channel(ch) => ch,
            other => panic!("{other:?}"),
        }
    }

    fn set_override(
        &mut self,
        s: SessionId,
        channel: u64,
        target: OverrideTarget,
        allow: Permissions,
        deny: Permissions,
    ) -> Result<R, (ErrorCode, String)> {
        self.call(
            s,
            Request::SetOverride { channel: ChannelId(channel), target, rule: Override { allow, deny } },
        )
    }

    fn kick(&mut self, s: SessionId, community: u64, user: u64) -> Result<R, (ErrorCode, String)> {
        self.call(
            s,
            Request::Kick {
                community: CommunityId(community),
                user: UserId(user),
                reason: Reason::default(),
            },
        )
    }
}

fn code_of<T: std::fmt::Debug>(r: Result<T, (ErrorCode, String)>) -> ErrorCode {
    r.expect_err("refused").0
}

#[test]
fn members_without_a_permission_are_refused_and_nothing_changes() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let general = c.channels[0].id;
    let said = message(w.say(alice, general, "hello", None).unwrap());
    let full = w.members(owner, c.id);
    let alice_id = user_id("alice", &full);
    for session in [owner, alice, bob] {
        w.events(session);
    }
    let writes_before = w.writes.len();

    let community = CommunityId(c.id);
    let attempts: Vec<(&str, Request)> = vec![
        (
            "create a channel",
            Request::CreateChannel {
                community,
                name: ChannelName::parse("x").unwrap(),
                topic: Topic::parse("").unwrap(),
                voice: false,
            },
        ),
        (
            "rename a channel",
            Request::UpdateChannel {
                channel: ChannelId(general),
                name: Some(ChannelName::parse("y").unwrap()),
                topic: None,
            },
        ),
        ("delete a channel", Request::DeleteChannel { channel: ChannelId(general) }),
        (
            "delete another's message",
            Request::DeleteMessage { channel: ChannelId(general), message: MessageId(said.id) },
        ),
        (
            "create a role",
            Request::CreateRole {
                community,
                name: RoleName::parse("r").unwrap(),
                permissions: Permissions::empty(),
                rank: 1,
            },
        ),
        ("kick", Request::Kick { community, user: UserId(alice_id), reason: Reason::default() }),
        (
            "ban",
            Request::Ban {
                community,
                user: UserId(alice_id),
                reason: Reason::default(),
                delete_message_hours: 0,
            },
        ),
        (
            "time out",
            Request::Timeout {
                community,
                user: UserId(alice_id),
                duration_ms: HOUR,
                reason: Reason::default(),
            },
        ),
        ("list bans", Request::ListBans { community }),
        (
            "read the audit log",
            Request::AuditLog(kith_core::request::AuditQuery { community, before: None, limit: 10 }),
        ),
        (
            "override",
            Request::SetOverride {
                channel: ChannelId(general),
                target: OverrideTarget::Member(UserId(alice_id)),
                rule: Override { allow: Permissions::empty(), deny: Permissions::SEND_MESSAGES },
            },
        ),
        (
            "rename another",
            Request::UpdateMember {
                community,
                user: UserId(alice_id),
                nickname: Some(Nickname::parse("x").unwrap()),
                add_roles: vec![],
                remove_roles: vec![],
            },
        ),
    ];
    for (what, request) in attempts {
        let answer = w.call(bob, request);
        assert_eq!(code_of(answer), ErrorCode::Forbidden, "bob may not {what}");
    }
    assert_eq!(w.writes.len(), writes_before, "a refusal writes nothing");
    assert!(w.reads.is_empty(), "a refusal reads nothing");
    for session in [owner, alice, bob] {
        assert!(w.events(session).is_empty(), "a refusal tells nobody anything");
    }
}

#[test]
fn a_hidden_channel_answers_like_a_missing_one_and_its_events_stay_inside() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let full = w.members(owner, c.id);
    let alice_id = user_id("alice", &full);
    let staff = w.channel(owner, c.id, "staff");
    let mods = w.create_role(owner, c.id, "mods", Permissions::KICK_MEMBERS, 10).unwrap();
    let everyone = OverrideTarget::Role(RoleId(c.id));
    w.set_override(owner, staff.id, everyone, Permissions::empty(), Permissions::VIEW_CHANNEL).unwrap();
    w.set_override(
        owner,
        staff.id,
        OverrideTarget::Role(RoleId(mods.id)),
        Permissions::VIEW_CHANNEL,
        Permissions::empty(),
    )
    .unwrap();

    // Hiding the channel took it out of bob's view, explicitly.
    let updates: Vec<v1::Community> = w
        .events(bob)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::CommunityUpdated(c)) => Some(c),
            _ => None,
        })
        .collect();
    let last = updates.last().expect("bob's view changed");
    assert!(last.channels.iter().all(|ch| ch.id != staff.id), "bob no longer sees #staff");

    // Granting the role shows it to alice.
    w.events(alice);
    w.grant(owner, c.id, alice_id, mods.id).unwrap();
    let alice_sees = w.events(alice).into_iter().any(|e| {
        matches!(e.body, Some(Ev::CommunityUpdated(ref c)) if c.channels.iter().any(|ch| ch.id == staff.id))
    });
    assert!(alice_sees, "alice is sent the community with #staff in it");

    // To bob, #staff and a channel that never existed are the same answer.
    let hidden = w.say(bob, staff.id, "knock knock", None).unwrap_err();
    let missing = w.say(bob, 999_999, "knock knock", None).unwrap_err();
    assert_eq!(hidden, missing);
    let q = |channel| HistoryQuery { channel: ChannelId(channel), anchor: Anchor::Latest, limit: 10 };
    assert_eq!(
        w.call(bob, Request::History(q(staff.id))).unwrap_err(),
        w.call(bob, Request::History(q(999_999))).unwrap_err()
    );

    // What is said there reaches alice and not bob.
    w.events(bob);
    w.events(alice);
    w.say(owner, staff.id, "staff meeting at 5", None).unwrap();
    assert_eq!(w.events(alice).len(), 1);
    assert!(w.events(bob).is_empty());
}

#[test]
fn nobody_acts_on_someone_ranked_at_or_above_them() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "carol", "bob"]);
    let (alice, bob) = (s[0], s[2]);
    let full = w.members(owner, c.id);
    let [alice_id, carol_id, bob_id, owner_id] =
        ["alice", "carol", "bob", "owner"].map(|n| user_id(n, &full));
    let mods = w
        .create_role(owner, c.id, "mods", Permissions::KICK_MEMBERS | Permissions::MANAGE_ROLES, 10)
        .unwrap();
    w.grant(owner, c.id, alice_id, mods.id).unwrap();
    w.grant(owner, c.id, carol_id, mods.id).unwrap();

    assert_eq!(code_of(w.kick(alice, c.id, carol_id)), ErrorCode::Forbidden, "equal rank");
    assert_eq!(code_of(w.kick(alice, c.id, owner_id)), ErrorCode::Forbidden, "the owner outranks all");
    assert_eq!(code_of(w.create_role(alice, c.id, "peers", Permissions::empty(), 10)), ErrorCode::Forbidden);
    assert_eq!(
        code_of(w.create_role(alice, c.id, "bouncers", Permissions::BAN_MEMBERS, 5)),
        ErrorCode::Forbidden,
        "cannot grant what one lacks"
    );
    let helpers = w.create_role(alice, c.id, "helpers", Permissions::KICK_MEMBERS, 5).unwrap();
    assert_eq!(
        code_of(w.grant(alice, c.id, carol_id, helpers.id)),
        ErrorCode::Forbidden,
        "carol is alice's equal"
    );
    assert_eq!(
        code_of(w.grant(alice, c.id, bob_id, mods.id)),
        ErrorCode::Forbidden,
        "mods rank at alice's level"
    );
    w.grant(alice, c.id, bob_id, helpers.id).unwrap();

    for session in [owner, bob] {
        w.events(session);
    }
    w.kick(alice, c.id, bob_id).unwrap();
    let bob_events = w.events(bob);
    assert!(
        matches!(&bob_events[..], [v1::Event { body: Some(Ev::CommunityLeft(l)), .. }] if l.reason() == v1::MemberLeftReason::Kicked),
        "{bob_events:?}"
    );
    let owner_events = w.events(owner);
    assert!(owner_events.iter().any(|e| matches!(&e.body, Some(Ev::MemberLeft(l)) if l.user_id == bob_id && l.reason() == v1::MemberLeftReason::Kicked)));
    assert_eq!(code_of(w.say(bob, c.channels[0].id, "let me in", None)), ErrorCode::NotFound);
}

#[test]
fn a_ban_removes_the_member_deletes_recent_messages_and_blocks_return() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let general = c.channels[0].id;
    let full = w.members(owner, c.id);
    let bob_id = user_id("bob", &full);
    let old: Vec<u64> =
        (0..3).map(|i| message(w.say(bob, general, &format!("old {i}"), None).unwrap()).id).collect();
    w.now = w.now.plus_ms(2 * HOUR);
    let recent: Vec<u64> =
        (0..2).map(|i| message(w.say(bob, general, &format!("new {i}"), None).unwrap()).id).collect();
    w.events(alice);

    let ban = Request::Ban {
        community: CommunityId(c.id),
        user: UserId(bob_id),
        reason: Reason::parse("spam").unwrap(),
        delete_message_hours: 1,
    };
    w.call(owner, ban).unwrap();
    let deleted: Vec<u64> = w
        .events(alice)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::MessageDeleted(d)) => Some(d.message_id),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, recent, "only the last hour's messages go");
    assert!(old.iter().all(|id| !deleted.contains(id)));
    let audited = w.writes.iter().any(|(_, wr)| matches!(wr, Write::Audit { entry } if entry.action == v1::AuditAction::Ban && entry.reason == "spam"));
    assert!(audited, "the ban is in the audit log with its reason");

    let code = w.invite(owner, c.id);
    assert_eq!(code_of(w.call(bob, Request::JoinCommunity { code: code.clone() })), ErrorCode::Forbidden);
    let R::Bans(list) = w.call(owner, Request::ListBans { community: CommunityId(c.id) }).unwrap() else {
        panic!()
    };
    assert_eq!(list.bans.len(), 1);
    assert_eq!(list.bans[0].reason, "spam");

    w.call(owner, Request::Unban { community: CommunityId(c.id), user: UserId(bob_id) }).unwrap();
    assert!(w.call(bob, Request::JoinCommunity { code }).is_ok(), "unbanned, bob may return");
}

#[test]
fn a_timeout_leaves_reading_and_stops_sending_until_it_ends() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let general = c.channels[0].id;
    let full = w.members(owner, c.id);
    let bob_id = user_id("bob", &full);
    w.events(alice);
    let timeout = |ms| Request::Timeout {
        community: CommunityId(c.id),
        user: UserId(bob_id),
        duration_ms: ms,
        reason: Reason::default(),
    };
    w.call(owner, timeout(10 * 60_000)).unwrap();
    let told = w.events(alice).into_iter().any(
        |e| matches!(&e.body, Some(Ev::MemberUpdated(m)) if m.member.as_ref().unwrap().timeout_until_ms > 0),
    );
    assert!(told, "the others see the timeout");

    let (code, reason) = w.say(bob, general, "but why", None).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("timed out"), "{reason}");
    let q = HistoryQuery { channel: ChannelId(general), anchor: Anchor::Latest, limit: 10 };
    let rid = w.send(bob, Request::History(q));
    assert!(w.reads.iter().any(|(to, r, _)| *to == bob && *r == rid), "reading still works");

    w.now = w.now.plus_ms(10 * 60_000);
    assert!(w.say(bob, general, "I'm back", None).is_ok(), "the timeout ended by itself");

    // Administrators cannot be timed out.
    let admins = w.create_role(owner, c.id, "admins", Permissions::ADMINISTRATOR, 50).unwrap();
    w.grant(owner, c.id, bob_id, admins.id).unwrap();
    assert_eq!(code_of(w.call(owner, timeout(60_000))), ErrorCode::Forbidden);
}

#[test]
fn the_audit_log_records_admin_actions_and_needs_its_permission() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let full = w.members(owner, c.id);
    let alice_id = user_id("alice", &full);
    let auditors = w.create_role(owner, c.id, "auditors", Permissions::VIEW_AUDIT_LOG, 3).unwrap();
    w.channel(owner, c.id, "photos");
    w.grant(owner, c.id, alice_id, auditors.id).unwrap();
    let actions: Vec<v1::AuditAction> = w
        .writes
        .iter()
        .filter_map(|(_, wr)| match wr {
            Write::Audit { entry } => Some(entry.action),
            _ => None,
        })
        .collect();
    for expected in
        [v1::AuditAction::RoleCreate, v1::AuditAction::ChannelCreate, v1::AuditAction::MemberRoles]
    {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let query = Request::AuditLog(kith_core::request::AuditQuery {
        community: CommunityId(c.id),
        before: None,
        limit: 20,
    });
    let rid = w.send(s[0], query);
    assert!(matches!(w.reads.last(), Some((to, r, Read::Audit(_))) if *to == s[0] && *r == rid));
    let query = Request::AuditLog(kith_core::request::AuditQuery {
        community: CommunityId(c.id),
        before: None,
        limit: 20,
    });
    assert_eq!(code_of(w.call(s[1], query)), ErrorCode::Forbidden);
}

#[test]
fn everyone_mentions_need_their_permission() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["bob"]);
    let general = c.channels[0].id;
    assert!(!message(w.say(s[0], general, "@everyone look", None).unwrap()).mention_everyone);
    assert!(message(w.say(owner, general, "@everyone dinner!", None).unwrap()).mention_everyone);
    assert!(Username::parse("Everyone").is_err(), "nobody can be called @everyone");
}

#[test]
fn revoking_view_from_everyone_resyncs_every_member() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice"]);
    w.events(s[0]);
    let update = |p: Permissions| Request::UpdateRole {
        community: CommunityId(c.id),
        role: RoleId(c.id),
        name: None,
        permissions: Some(p),
        rank: None,
    };
    w.call(owner, update(Permissions::DEFAULT_EVERYONE - Permissions::VIEW_CHANNEL)).unwrap();
    let seen: Vec<usize> = w
        .events(s[0])
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::CommunityUpdated(c)) => Some(c.channels.len()),
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![0], "alice sees no channel any more");
    assert_eq!(code_of(w.say(s[0], c.channels[0].id, "hello?", None)), ErrorCode::NotFound);
    w.call(owner, update(Permissions::DEFAULT_EVERYONE)).unwrap();
    assert!(w.say(s[0], c.channels[0].id, "hello!", None).is_ok());
    assert_eq!(
        code_of(w.call(
            owner,
            Request::UpdateRole {
                community: CommunityId(c.id),
                role: RoleId(c.id),
                name: Some(RoleName::parse("all").unwrap()),
                permissions: None,
                rank: None
            }
        )),
        ErrorCode::Invalid,
        "@everyone keeps its name"
    );
}

#[test]
fn nicknames_and_profiles_reach_those_who_share_a_community() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let full = w.members(owner, c.id);
    let [alice_id, bob_id] = ["alice", "bob"].map(|n| user_id(n, &full));
    let stranger_code = {
        let other = w.community(owner, "Work");
        w.invite(owner, other.id)
    };
    let (stranger, _) = w.register("stranger", Credential::Invite(stranger_code)).unwrap();
    for session in [owner, alice, bob, stranger] {
        w.events(session);
    }

    let nick = |user, n: &str| Request::UpdateMember {
        community: CommunityId(c.id),
        user: UserId(user),
        nickname: Some(Nickname::parse(n).unwrap()),
        add_roles: vec![],
        remove_roles: vec![],
    };
    let R::Member(m) = w.call(bob, nick(bob_id, "Bobby")).unwrap() else { panic!() };
    assert_eq!(m.nickname, "Bobby");
    assert!(w.events(alice).iter().any(
        |e| matches!(&e.body, Some(Ev::MemberUpdated(u)) if u.member.as_ref().unwrap().nickname == "Bobby")
    ));
    assert_eq!(code_of(w.call(bob, nick(alice_id, "Al"))), ErrorCode::Forbidden);

    let profile = Request::UpdateProfile {
        display_name: None,
        status_text: Some(StatusText::parse("on holiday").unwrap()),
    };
    let R::User(u) = w.call(bob, profile).unwrap() else { panic!() };
    assert_eq!(u.status_text, "on holiday");
    assert!(
        w.events(alice)
            .iter()
            .any(|e| matches!(&e.body, Some(Ev::UserUpdated(u)) if u.status_text == "on holiday"))
    );
    assert!(w.events(stranger).is_empty(), "someone sharing no community hears nothing");
}
