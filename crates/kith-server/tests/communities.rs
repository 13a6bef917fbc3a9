//! End-to-end specs for roles, permissions and moderation: a real server on
//! 127.0.0.1:0 and real QUIC clients.

mod common;

use common::*;
use kith_client::Client;
use kith_client::proto::{
    self as v1, ErrorCode, client_message::Request, event::Body as Ev, reply::Result as R,
};

const VIEW: u64 = v1::Permission::ViewChannel as u64;
const KICK: u64 = v1::Permission::KickMembers as u64;
const AUDIT: u64 = v1::Permission::ViewAuditLog as u64;

fn user_id(c: &v1::Community, name: &str) -> u64 {
    c.members.iter().filter_map(|m| m.user.as_ref()).find(|u| u.username == name).map(|u| u.id).unwrap()
}

async fn create_role(c: &Client, community_id: u64, name: &str, permissions: u64, rank: u32) -> v1::Role {
    let req = v1::CreateRoleRequest { community_id, name: name.into(), permissions, rank };
    match c.request(Request::CreateRole(req)).await.unwrap() {
        R::Role(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn grant(c: &Client, community_id: u64, user_id: u64, role: u64) {
    let req = v1::UpdateMemberRequest {
        community_id,
        user_id,
        nickname: None,
        add_roles: vec![role],
        remove_roles: vec![],
    };
    c.request(Request::UpdateMember(req)).await.unwrap();
}

async fn hide_from_everyone_but(c: &Client, community: u64, channel: u64, role: u64) {
    use v1::permission_override::Target;
    for (target, allow, deny) in [(Target::RoleId(community), 0, VIEW), (Target::RoleId(role), VIEW, 0)] {
        let req = v1::SetChannelOverrideRequest {
            channel_id: channel,
            permission_override: Some(v1::PermissionOverride { target: Some(target), allow, deny }),
        };
        c.request(Request::SetChannelOverride(req)).await.unwrap();
    }
}

async fn create_channel(c: &Client, community_id: u64, name: &str) -> v1::Channel {
    let req = v1::CreateChannelRequest { community_id, name: name.into(), ..Default::default() };
    match c.request(Request::CreateChannel(req)).await.unwrap() {
        R::Channel(ch) => ch,
        other => panic!("{other:?}"),
    }
}

async fn fresh_view(server: &TestServer, name: &str) -> v1::Community {
    let c = server.client().await;
    let ready = c.login(name, PASSWORD).await.unwrap();
    c.close().await;
    ready.communities.into_iter().next().expect("a community")
}

#[tokio::test]
async fn a_member_without_permission_is_refused_over_the_wire_and_nothing_changes() {
    let server = TestServer::start().await;
    let f = family(&server, &["alice", "bob"]).await;
    let (alice, bob) = (&f.members[0], &f.members[1]);
    let community = fresh_view(&server, "owner").await;
    let alice_id = user_id(&community, "alice");
    let staff = create_channel(&f.owner, f.community.id, "staff").await;
    let mods = create_role(&f.owner, f.community.id, "mods", KICK, 10).await;
    grant(&f.owner, f.community.id, alice_id, mods.id).await;
    hide_from_everyone_but(&f.owner, f.community.id, staff.id, mods.id).await;
    let secret = alice.send_message(staff.id, "the surprise party is on friday", "").await.unwrap();

    // A hidden channel answers exactly like one that does not exist.
    let hidden = bob.send_message(staff.id, "hello?", "").await.unwrap_err();
    let missing = bob.send_message(424242, "hello?", "").await.unwrap_err();
    assert_eq!(hidden.code(), Some(ErrorCode::NotFound));
    assert_eq!(hidden.to_string(), missing.to_string());
    assert_eq!(code_of(bob.history(staff.id, None, 10).await), ErrorCode::NotFound);

    // What bob may see but not do is forbidden.
    let kick = v1::KickRequest { community_id: f.community.id, user_id: alice_id, reason: String::new() };
    assert_eq!(code_of(bob.request(Request::Kick(kick)).await), ErrorCode::Forbidden);
    let channel =
        v1::CreateChannelRequest { community_id: f.community.id, name: "mine".into(), ..Default::default() };
    assert_eq!(code_of(bob.request(Request::CreateChannel(channel)).await), ErrorCode::Forbidden);
    let del = v1::DeleteMessageRequest { channel_id: staff.id, message_id: secret.id };
    assert_eq!(code_of(bob.request(Request::DeleteMessage(del)).await), ErrorCode::NotFound);

    // And nothing changed.
    assert_eq!(alice.history(staff.id, None, 10).await.unwrap(), vec![secret]);
    let after = fresh_view(&server, "owner").await;
    assert_eq!(after.members.len(), 3, "alice is still a member");
    assert_eq!(after.channels.len(), 2, "no channel was created");
    let bobs = fresh_view(&server, "bob").await;
    assert!(bobs.channels.iter().all(|ch| ch.id != staff.id), "bob's snapshot has no #staff");
    canary_still_sings(alice, bob, f.general).await;
}

#[tokio::test]
async fn roles_bans_and_nicknames_survive_a_restart_and_the_audit_log_tells_the_story() {
    let server = TestServer::start().await;
    let f = family(&server, &["alice", "bob"]).await;
    let community = fresh_view(&server, "owner").await;
    let (alice_id, bob_id) = (user_id(&community, "alice"), user_id(&community, "bob"));
    let auditors = create_role(&f.owner, f.community.id, "auditors", AUDIT | KICK, 5).await;
    grant(&f.owner, f.community.id, alice_id, auditors.id).await;
    let nick = v1::UpdateMemberRequest {
        community_id: f.community.id,
        user_id: alice_id,
        nickname: Some("Al".into()),
        add_roles: vec![],
        remove_roles: vec![],
    };
    f.members[0].request(Request::UpdateMember(nick)).await.unwrap();
    let ban = v1::BanRequest {
        community_id: f.community.id,
        user_id: bob_id,
        reason: "spam".into(),
        delete_message_hours: 0,
    };
    f.owner.request(Request::Ban(ban)).await.unwrap();
    // Bob's connection is told he is out.
    loop {
        let e = f.members[1].next_event().await.expect("bob still connected");
        if let Some(Ev::CommunityLeft(l)) = e.body {
            assert_eq!(l.reason(), v1::MemberLeftReason::Banned);
            break;
        }
    }

    let (addr, data) = (server.addr.clone(), server.dir.path().join("data"));
    let TestServer { server: s, dir: _dir, .. } = server;
    drop(f);
    s.shutdown().await.unwrap();
    let restarted = start_retrying(kith_server::Config::new(addr.parse().unwrap(), data)).await;
    let (alice, _) =
        Client::connect(&addr, kith_client::Trust::Pin(restarted.fingerprint().into())).await.unwrap();
    let ready = alice.login("alice", PASSWORD).await.unwrap();
    let c = &ready.communities[0];
    let me = c.members.iter().find(|m| m.user.as_ref().unwrap().id == alice_id).unwrap();
    assert_eq!(me.nickname, "Al");
    assert_eq!(me.roles, vec![auditors.id]);
    assert!(c.roles.iter().any(|r| r.name == "auditors" && r.permissions == AUDIT | KICK && r.rank == 5));
    assert!(c.members.iter().all(|m| m.user.as_ref().unwrap().id != bob_id), "bob stays banned");

    let req = v1::AuditLogRequest { community_id: c.id, before: 0, limit: 10 };
    let R::AuditLog(page) = alice.request(Request::AuditLog(req)).await.unwrap() else { panic!() };
    let actions: Vec<v1::AuditAction> = page.entries.iter().map(|e| e.action()).collect();
    assert_eq!(
        &actions[..4],
        [
            v1::AuditAction::Ban,
            v1::AuditAction::MemberRoles,
            v1::AuditAction::RoleCreate,
            v1::AuditAction::InviteCreate
        ],
        "newest first"
    );
    assert_eq!(page.entries[0].reason, "spam");
    assert_eq!(page.entries[0].target_id, bob_id);
    let older = v1::AuditLogRequest { community_id: c.id, before: page.entries[1].id, limit: 1 };
    let R::AuditLog(next) = alice.request(Request::AuditLog(older)).await.unwrap() else { panic!() };
    assert_eq!(next.entries[0].id, page.entries[2].id, "paging continues where it left off");
    alice.close().await;
    restarted.shutdown().await.unwrap();
}

/// A large community (here, past `[limits] member_list = 2`): signing in
/// lists who is around, the client library pages in everyone else, and a
/// member who comes online is introduced to those already there.
#[tokio::test]
async fn a_large_community_is_listed_by_who_is_around_and_paged_for_the_rest() {
    let server = TestServer::start_with(|c| c.limits.member_list = 2).await;
    let f = family(&server, &["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &f.members[..] else { unreachable!() };
    bob.close().await;
    carol.close().await;

    let dave = server.client().await;
    let mut ready = dave.login("alice", PASSWORD).await.unwrap();
    let listed: Vec<String> = ready.communities[0]
        .members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .map(|u| u.username.clone())
        .collect();
    assert_eq!(ready.communities[0].member_count, 4);
    assert_eq!(listed, ["owner", "alice"], "bob and carol are offline: not listed");

    dave.complete_members(&mut ready).await.unwrap();
    let everyone: Vec<&str> = ready.communities[0]
        .members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .map(|u| u.username.as_str())
        .collect();
    assert_eq!(everyone, ["owner", "alice", "bob", "carol"], "paged in, in id order");

    // Bob comes back: alice's first session hears who he is, then that he is here.
    let back = server.client().await;
    back.login("bob", PASSWORD).await.unwrap();
    let bob_id = user_id(&ready.communities[0], "bob");
    let mut news = Vec::new();
    while news.len() < 2 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), alice.next_event())
            .await
            .expect("alice hears of bob")
            .expect("an event");
        match event.body {
            Some(Ev::MemberUpdated(m))
                if m.member.as_ref().and_then(|m| m.user.as_ref()).is_some_and(|u| u.id == bob_id) =>
            {
                news.push("member")
            }
            Some(Ev::PresenceUpdated(p)) if p.user_id == bob_id => news.push("presence"),
            _ => {}
        }
    }
    assert_eq!(news, ["member", "presence"]);
}
