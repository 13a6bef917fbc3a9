//! What a newcomer and a new operator meet first: setup codes, invites,
//! who may create communities, where reading starts, and the words a
//! refusal uses.

mod world;

use kith_core::CommunityCreation;
use kith_core::text::Reason;
use world::*;

#[test]
fn a_setup_code_works_whatever_its_case_and_dashes() {
    let mut w = World::default();
    let (_, ready) = w.register("owner", Credential::SetupCode("setup code".into())).unwrap_or_else(|e| {
        panic!("{e:?}");
    });
    assert!(ready.server_owner);
}

#[test]
fn a_wrong_setup_code_says_so_rather_than_that_the_server_has_no_owner() {
    let mut w = World::default();
    let s = w.connect();
    let reg = Registration {
        username: Username::parse("mallory").unwrap(),
        display_name: DisplayName::parse("mallory").unwrap(),
        password_hash: "$argon2id$test".into(),
        token: "t".into(),
        token_hash: TokenHash(*blake("mallory")),
        credential: Credential::SetupCode("GUESS-GUESS".into()),
    };
    let (code, reason) = w.call(s, Request::Register(Box::new(reg))).unwrap_err();
    assert_eq!(code, ErrorCode::RegistrationClosed);
    assert!(reason.contains("setup code is not this server's"), "{reason}");
}

#[test]
fn an_invite_code_typed_in_lower_case_still_works() {
    let mut w = World::default();
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let req = Request::CreateInvite {
        community: CommunityId(c.id),
        max_uses: Some(1),
        expires_in_ms: None,
        code: "K7QXM2PD".into(),
    };
    w.call(owner, req).unwrap();
    let (_, ready) = w.register("bob", Credential::Invite("k7qx-m2pd".into())).unwrap();
    assert_eq!(ready.communities.len(), 1);
    // The use was counted on the invite itself: it is now used up.
    assert_eq!(w.register("carol", Credential::Invite("K7QX-M2PD".into())), Err(ErrorCode::InviteInvalid));
}

#[test]
fn invites_carry_a_link_with_the_servers_public_address_and_identity() {
    let fp = format!("sha256:{}", "ab".repeat(32));
    let mut w = World::new(HubConfig {
        setup_code: Some(SETUP.into()),
        public_address: Some("chat.example.org".into()),
        fingerprint: Some(fp.clone()),
        ..HubConfig::default()
    });
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let req = Request::CreateInvite {
        community: CommunityId(c.id),
        max_uses: None,
        expires_in_ms: None,
        code: "ABCD".into(),
    };
    let R::Invite(invite) = w.call(owner, req).unwrap() else { panic!("an invite") };
    assert_eq!(invite.link, format!("kith://chat.example.org:7443/ABCD?fp={fp}"));
    assert_eq!(invite.community_name, "Family");
}

#[test]
fn the_operator_can_keep_community_creation_to_the_owner() {
    let mut w = World::new(HubConfig {
        setup_code: Some(SETUP.into()),
        community_creation: CommunityCreation::Owner,
        ..HubConfig::default()
    });
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let code = w.invite(owner, c.id);
    let (bob, _) = w.register("bob", Credential::Invite(code)).unwrap();
    let (code, reason) =
        w.call(bob, Request::CreateCommunity { name: CommunityName::parse("Mine").unwrap() }).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("only its owner creates communities"), "{reason}");
}

#[test]
fn a_new_member_starts_reading_at_their_join() {
    let mut w = World::default();
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let general = c.channels[0].id;
    for n in 0..15 {
        w.say(owner, general, &format!("before {n}"), None).unwrap();
    }
    let code = w.invite(owner, c.id);
    let (bob, ready) = w.register("bob", Credential::Invite(code)).unwrap();
    let ch = &ready.communities[0].channels[0];
    assert_eq!((ch.unread_count, ch.mention_count), (0, 0), "what came before is history, not unread");
    w.say(owner, general, "welcome @bob", None).unwrap();
    let (_, again) = w.login("bob");
    let ch = &again.communities[0].channels[0];
    assert_eq!((ch.unread_count, ch.mention_count), (1, 1), "what comes after is unread");
    let _ = bob;
}

#[test]
fn a_kicked_member_is_told_who_did_it_and_why() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["bob"]);
    let bob = s[0];
    let kick = Request::Kick {
        community: CommunityId(c.id),
        user: UserId(w.id("bob")),
        reason: Reason::parse("rude").unwrap(),
    };
    w.call(owner, kick).unwrap();
    let left = w
        .events(bob)
        .into_iter()
        .find_map(|e| match e.body {
            Some(Ev::CommunityLeft(l)) => Some(l),
            _ => None,
        })
        .expect("bob hears he is out");
    assert_eq!(left.reason(), v1::MemberLeftReason::Kicked);
    assert_eq!((left.by_user_id, left.moderator_reason.as_str()), (w.id("owner"), "rude"));
}

#[test]
fn times_in_refusals_are_tokens_clients_show_in_local_time() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["bob"]);
    let bob = s[0];
    let timeout = Request::Timeout {
        community: CommunityId(c.id),
        user: UserId(w.id("bob")),
        duration_ms: 600_000,
        reason: Reason::default(),
    };
    w.call(owner, timeout).unwrap();
    let (code, reason) = w.say(bob, c.channels[0].id, "hi", None).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    let until = (w.now.0 + 600_000) / 1000;
    assert!(
        reason.contains(&format!("<t:{}>", until)) || reason.contains(&format!("<t:{}>", until - 1)),
        "{reason}"
    );
    assert!(!reason.contains("Unix ms"), "{reason}");
}

#[test]
fn server_info_says_what_registering_needs_before_anyone_logs_in() {
    let mut w = World::default();
    let s = w.connect();
    let info = |w: &mut World, s| match w.call(s, Request::ServerInfo).unwrap() {
        R::ServerInfo(i) => i.registration(),
        other => panic!("{other:?}"),
    };
    assert_eq!(info(&mut w, s), v1::Registration::SetupCode, "a fresh server wants its setup code");
    w.owner();
    assert_eq!(info(&mut w, s), v1::Registration::Invite);
    // It is cheap, but not free: a connection asking in a loop is slowed.
    let refused = (0..10).map(|_| w.call(s, Request::ServerInfo)).filter(Result::is_err).count();
    assert!(refused >= 5, "{refused} of 10 refused");
}

/// The regression: a member could take the nickname and display name
/// "owner" and be shown exactly like the owner; `aIice` (capital i)
/// registered beside `alice`.
#[test]
fn nobody_can_take_a_name_that_passes_for_another_members() {
    use kith_core::text::Nickname;
    let mut w = World::default();
    let (_, c, s) = w.family(&["alice", "mallory"]);
    let mallory = s[1];
    let me = UserId(w.id("mallory"));
    for fake in ["owner", "OWNER", "0wner", "alice", "aIice"] {
        let nick = Request::UpdateMember {
            community: CommunityId(c.id),
            user: me,
            nickname: Some(Nickname::parse(fake).unwrap()),
            add_roles: vec![],
            remove_roles: vec![],
        };
        let (code, reason) = w.call(mallory, nick).unwrap_err();
        assert_eq!(code, ErrorCode::Forbidden, "{fake}");
        assert!(reason.contains("looks like"), "{fake}: {reason}");
        let profile = Request::UpdateProfile {
            display_name: Some(DisplayName::parse(fake).unwrap()),
            status_text: None,
        };
        assert_eq!(w.call(mallory, profile).unwrap_err().0, ErrorCode::Forbidden, "display name {fake}");
    }
    // A name of one's own is fine, and so is one's own username.
    for own in ["Mal", "mallory"] {
        let nick = Request::UpdateMember {
            community: CommunityId(c.id),
            user: me,
            nickname: Some(Nickname::parse(own).unwrap()),
            add_roles: vec![],
            remove_roles: vec![],
        };
        w.call(mallory, nick).unwrap();
    }
    // Capital I as l, at registration.
    let (owner, _) = w.login("owner");
    let code = w.invite(owner, c.id);
    assert_eq!(w.register("aIice", Credential::Invite(code)), Err(ErrorCode::Taken));
}
