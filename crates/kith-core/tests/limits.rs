//! Every request kind has a rate class, and what one account can make
//! others carry is capped (shared/BAD_INPUTS.md, R): hub specs with no
//! network, no disk, no clock.

mod world;

use kith_core::UserId;
use kith_core::hub::{MAX_COMMUNITIES_OWNED, MAX_GROUPS_PER_USER, MAX_INVITES_PER_COMMUNITY};
use kith_core::request::Chosen;
use kith_core::text::GroupName;
use prost::Message as _;
use world::*;

fn rate_limited(r: Result<R, (ErrorCode, String)>) -> bool {
    matches!(r, Err((ErrorCode::RateLimited, _)))
}

/// A hub whose only limit is the one under test.
fn with(tweak: impl FnOnce(&mut HubConfig)) -> World {
    let mut config = HubConfig {
        setup_code: Some(SETUP.into()),
        read_rate: None,
        change_rate: None,
        profile_rate: None,
        group_rate: None,
        voice_rate: None,
        message_rate: None,
        typing_rate: None,
        refusal_rate: None,
        ..HubConfig::default()
    };
    tweak(&mut config);
    World::new(config)
}

/// The n-th request of a flood.
type Flood = Box<dyn Fn(usize) -> Request>;

/// The floods that were measured at 1 600-1 950 a second with no limit at
/// all: community creation, invites, profiles, presence, group creation.
#[test]
fn every_kind_of_write_meets_a_rate_limit() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["bob", "carol"]);
    let (bob, carol) = (w.id("bob"), w.id("carol"));
    let floods: Vec<(&str, Flood)> = vec![
        (
            "profile",
            Box::new(|n| Request::UpdateProfile {
                display_name: Some(DisplayName::parse(&format!("owner {n}")).unwrap()),
                status_text: None,
            }),
        ),
        (
            "presence",
            Box::new(|n| Request::SetPresence {
                status: Some(if n % 2 == 0 { Chosen::Idle } else { Chosen::Online }),
                afk: None,
            }),
        ),
        (
            "group",
            Box::new(move |n| Request::OpenDirect {
                users: vec![UserId(bob), UserId(carol)],
                name: GroupName::parse(&format!("g{n}")).unwrap(),
            }),
        ),
        (
            "invite",
            Box::new(move |n| Request::CreateInvite {
                community: CommunityId(c.id),
                max_uses: None,
                expires_in_ms: None,
                code: format!("CODE{n}"),
            }),
        ),
        (
            "community",
            Box::new(|n| Request::CreateCommunity {
                name: CommunityName::parse(&format!("spam {n}")).unwrap(),
            }),
        ),
    ];
    for (what, request) in floods {
        // 40 in a row: past every burst, within the refusal budget (a
        // session that keeps going past that is cut off, which is tested
        // elsewhere).
        let refused = (0..40).map(|n| w.call(owner, request(n))).filter(|r| rate_limited(r.clone())).count();
        assert!(refused >= 10, "{what}: only {refused} of 40 refused");
        // Waiting as told makes room again.
        w.now = w.now.plus_ms(60_000);
    }
    let _ = s;
}

#[test]
fn one_account_owns_a_bounded_number_of_communities() {
    let mut w = with(|_| {});
    let owner = w.owner();
    for n in 0..MAX_COMMUNITIES_OWNED {
        w.community(owner, &format!("c{n}"));
    }
    let (code, reason) = w
        .call(owner, Request::CreateCommunity { name: CommunityName::parse("one more").unwrap() })
        .unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains(&MAX_COMMUNITIES_OWNED.to_string()), "{reason}");
}

#[test]
fn a_community_has_a_bounded_number_of_working_invites() {
    let mut w = with(|_| {});
    let owner = w.owner();
    let c = w.community(owner, "Family");
    for _ in 0..MAX_INVITES_PER_COMMUNITY {
        w.invite(owner, c.id);
    }
    let req = Request::CreateInvite {
        community: CommunityId(c.id),
        max_uses: None,
        expires_in_ms: None,
        code: "LAST".into(),
    };
    assert_eq!(w.call(owner, req).unwrap_err().0, ErrorCode::Forbidden);
}

/// The regression: 3 500 group creations with long names made co-members'
/// `Ready` larger than the outbox, so they could never log in again.
#[test]
fn others_cannot_grow_a_members_snapshot_without_bound_by_adding_them_to_groups() {
    let mut w = with(|_| {});
    let (_, _, s) = w.family(&["mallory", "victim", "friend"]);
    let mallory = s[0];
    let (victim, friend) = (UserId(w.id("victim")), UserId(w.id("friend")));
    let long = "x".repeat(64);
    let mut refused = None;
    for n in 0..MAX_GROUPS_PER_USER + 50 {
        let open = Request::OpenDirect {
            users: vec![victim, friend],
            name: GroupName::parse(&format!("{n}{}", &long[..60])).unwrap(),
        };
        if let Err(e) = w.call(mallory, open) {
            refused = Some((n, e));
            break;
        }
    }
    let (n, (code, reason)) = refused.expect("the cap is reached");
    assert_eq!((n, code), (MAX_GROUPS_PER_USER, ErrorCode::Forbidden));
    assert!(reason.contains("as many group conversations"), "{reason}");
    // The victim still logs in, to a snapshot of bounded size.
    let (_, ready) = w.login("victim");
    assert_eq!(ready.direct_channels.len(), MAX_GROUPS_PER_USER);
    let bytes = ready.encoded_len();
    assert!(bytes < 1024 * 1024, "the victim's Ready is {bytes} bytes");
}

#[test]
fn a_member_leaves_every_group_at_once_and_the_owner_can_do_it_for_them() {
    let mut w = with(|_| {});
    let (owner, _, s) = w.family(&["mallory", "victim", "friend"]);
    let (mallory, victim_session) = (s[0], s[1]);
    let (victim, friend) = (UserId(w.id("victim")), UserId(w.id("friend")));
    let open = |n: usize| Request::OpenDirect {
        users: vec![victim, friend],
        name: GroupName::parse(&format!("g{n}")).unwrap(),
    };
    for n in 0..20 {
        w.call(mallory, open(n)).unwrap();
    }
    // Nobody but the owner takes someone else out.
    let (code, _) = w.call(mallory, Request::LeaveGroups { user: Some(friend) }).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    w.events(victim_session);
    w.call(owner, Request::LeaveGroups { user: Some(victim) }).unwrap();
    let gone =
        w.events(victim_session).iter().filter(|e| matches!(e.body, Some(Ev::ChannelDeleted(_)))).count();
    assert_eq!(gone, 20, "the victim's screens drop every group");
    let (_, ready) = w.login("victim");
    assert!(ready.direct_channels.is_empty());
    // The groups go on without them.
    let (_, ready) = w.login("friend");
    assert_eq!(ready.direct_channels.len(), 20);
    // And anyone may leave all their own groups.
    let (friend_session, _) = w.login("friend");
    w.call(friend_session, Request::LeaveGroups { user: None }).unwrap();
    let (_, ready) = w.login("friend");
    assert!(ready.direct_channels.is_empty());
}
