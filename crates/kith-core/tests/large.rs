//! Specs for large communities: a snapshot lists who is around and the rest
//! is paged, so signing in costs what the online members cost, not the
//! community's size. No network, no disk, no clock.

mod world;

use kith_core::request::Chosen;
use world::*;

/// Communities past three members list only part of them here.
fn world() -> World {
    World::new(HubConfig { setup_code: Some(SETUP.into()), full_member_list: 3, ..HubConfig::default() })
}

fn listed(c: &v1::Community) -> Vec<u64> {
    c.members.iter().filter_map(|m| m.user.as_ref()).map(|u| u.id).collect()
}

fn page(w: &mut World, s: SessionId, community: u64, after: u64, limit: usize) -> v1::MemberPage {
    let request = Request::ListMembers { community: CommunityId(community), after: UserId(after), limit };
    match w.call(s, request).unwrap() {
        R::MemberPage(p) => p,
        other => panic!("{other:?}"),
    }
}

/// The order of member and presence events about `user` among `events`.
fn news_of(user: u64, events: &[v1::Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::MemberUpdated(m)) if m.member.as_ref()?.user.as_ref()?.id == user => Some("member"),
            Some(Ev::PresenceUpdated(p)) if p.user_id == user => Some("presence"),
            _ => None,
        })
        .collect()
}

#[test]
fn a_large_communitys_snapshot_lists_who_is_around_and_the_rest_comes_in_pages() {
    let mut w = world();
    let (_owner, c, sessions) = w.family(&["ann", "bob", "cat", "dan", "eve"]);
    let [ann, bob, cat, dan, _eve] = sessions[..] else { unreachable!() };
    for s in [bob, cat, dan] {
        w.input(Input::Closed { session: s });
    }
    w.input(Input::Closed { session: ann });

    let (ann, ready) = w.login("ann");
    let family = &ready.communities[0];
    assert_eq!(family.member_count, 6, "the count is the whole community");
    let mut around = vec![w.id("owner"), w.id("ann"), w.id("eve")];
    around.sort();
    assert_eq!(listed(family), around, "herself, the owner, and who is online: not bob, cat or dan");

    // Paging, in id order, gives everyone exactly once.
    let mut everyone = Vec::new();
    let mut after = 0;
    loop {
        let p = page(&mut w, ann, c.id, after, 2);
        assert!(p.members.len() <= 2);
        everyone.extend(p.members.iter().filter_map(|m| m.user.as_ref()).map(|u| u.id));
        if p.next_after_user_id == 0 {
            break;
        }
        after = p.next_after_user_id;
    }
    let mut all: Vec<u64> = ["owner", "ann", "bob", "cat", "dan", "eve"].iter().map(|n| w.id(n)).collect();
    all.sort();
    assert_eq!(everyone, all);
    let whole = page(&mut w, ann, c.id, 0, 1000);
    assert_eq!((whole.members.len(), whole.next_after_user_id), (6, 0), "one page holds it all");
}

#[test]
fn who_comes_online_in_a_large_community_is_introduced_before_their_presence() {
    let mut w = world();
    let (_owner, _c, sessions) = w.family(&["ann", "bob", "cat", "dan"]);
    let [ann, bob, cat, _dan] = sessions[..] else { unreachable!() };
    // Cat goes invisible: coming back must not give her away.
    w.call(cat, Request::SetPresence { status: Some(Chosen::Invisible), afk: None }).unwrap();
    w.input(Input::Closed { session: bob });
    w.input(Input::Closed { session: cat });
    w.events(ann);

    w.login("bob");
    assert_eq!(news_of(w.id("bob"), &w.events(ann)), ["member", "presence"]);

    let (_cat, _) = w.login("cat");
    assert_eq!(news_of(w.id("cat"), &w.events(ann)), Vec::<&str>::new(), "invisible is offline to others");
    let (_ann2, ready) = w.login("ann");
    assert!(
        !listed(&ready.communities[0]).contains(&w.id("cat")),
        "and absent from the list of who is around"
    );
    assert!(listed(&ready.communities[0]).contains(&w.id("bob")));
}

#[test]
fn a_small_community_lists_everyone_and_pages_are_for_members_only() {
    let mut w = world();
    let (owner, family, sessions) = w.family(&["ann", "bob"]);
    w.input(Input::Closed { session: sessions[1] });
    let (_ann, ready) = w.login("ann");
    assert_eq!(ready.communities[0].member_count, 3);
    assert_eq!(ready.communities[0].members.len(), 3, "three is not past the limit: bob is listed offline");

    let other = w.community(owner, "Other");
    let code = w.invite(owner, other.id);
    let (zed, _) = w.register("zed", Credential::Invite(code)).unwrap();
    let request = Request::ListMembers { community: CommunityId(family.id), after: UserId(0), limit: 10 };
    assert_eq!(w.call(zed, request).unwrap_err().0, ErrorCode::NotFound, "as if it did not exist");
}
