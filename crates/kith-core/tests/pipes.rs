//! Specs for pipes in the hub: who may offer one to whom, who may take it,
//! and how long an offer lasts. The bytes are the edge's (see the CLI spec).

mod world;

use kith_core::Grant;
use kith_core::hub::OFFER_MS;
use kith_core::text::FileName;
use world::*;

/// `to`: a registered name, or an id as text.
fn open(w: &mut World, s: SessionId, to: &str) -> Result<R, (ErrorCode, String)> {
    let to = w.ids.get(to).copied().unwrap_or_else(|| to.parse().unwrap());
    let request = Request::OpenPipe {
        to: UserId(to),
        name: FileName::clean("photos.tar"),
        size: 42,
        key: "SENDKEY".into(),
    };
    w.call(s, request)
}

fn accept(w: &mut World, s: SessionId, pipe: u64) -> Result<R, (ErrorCode, String)> {
    w.call(s, Request::AcceptPipe { pipe, key: "TAKEKEY".into() })
}

fn offers(w: &mut World, s: SessionId) -> Vec<v1::PipeOffered> {
    w.events(s)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::PipeOffered(o)) => Some(o),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pipe_is_offered_to_someone_one_shares_a_community_with_and_taken_by_them_alone() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob", "carol"]);
    let (bob, carol) = (members[0], members[1]);
    let Ok(R::PipeKey(k)) = open(&mut w, owner, "bob") else { panic!() };
    assert_eq!(k.key, "SENDKEY");
    assert!(
        matches!(&w.grants[..], [Grant::Pipe { key, sending: true, pipe, .. }] if key == "SENDKEY" && *pipe == k.pipe_id),
        "{:?}",
        w.grants
    );
    let [offer] = &offers(&mut w, bob)[..] else { panic!("bob hears of it") };
    assert_eq!((offer.pipe_id, offer.name.as_str(), offer.size), (k.pipe_id, "photos.tar", 42));
    assert_eq!(offer.from.as_ref().unwrap().username, "owner");
    assert!(offers(&mut w, carol).is_empty(), "only bob");
    assert_eq!(accept(&mut w, carol, k.pipe_id).unwrap_err().0, ErrorCode::NotFound, "not carol's to take");
    let Ok(R::PipeKey(taken)) = accept(&mut w, bob, k.pipe_id) else { panic!() };
    assert_eq!(taken.pipe_id, k.pipe_id);
    assert!(matches!(w.grants.last(), Some(Grant::Pipe { sending: false, key, .. }) if key == "TAKEKEY"));
    assert_eq!(accept(&mut w, bob, k.pipe_id).unwrap_err().0, ErrorCode::NotFound, "taken once");
    assert_eq!(open(&mut w, owner, "owner").unwrap_err().0, ErrorCode::Invalid, "not to oneself");
}

#[test]
fn nobody_outside_ones_communities_and_conversations_can_be_piped_to() {
    let mut w = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let (owner, _, _) = w.family(&[]);
    w.register("stranger", Credential::None).unwrap();
    assert_eq!(open(&mut w, owner, "stranger").unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(
        open(&mut w, owner, "999999").unwrap_err().0,
        ErrorCode::NotFound,
        "the same answer as no one"
    );
}

#[test]
fn an_offer_waits_for_the_receiver_to_sign_in_and_lapses_after_a_minute() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob"]);
    w.input(Input::Closed { session: members[0] });
    let Ok(R::PipeKey(k)) = open(&mut w, owner, "bob") else { panic!() };
    let (bob, _) = w.login("bob");
    let [offer] = &offers(&mut w, bob)[..] else { panic!("told after signing in") };
    assert_eq!(offer.pipe_id, k.pipe_id);
    assert_eq!(w.hub.poll_timeout(), Some(Timestamp(offer.expires_at_ms)));
    w.now = w.now.plus_ms(OFFER_MS);
    w.input(Input::Tick);
    assert_eq!(accept(&mut w, bob, k.pipe_id).unwrap_err().0, ErrorCode::NotFound, "lapsed");
}
