//! Specs for attachments in the hub: who may upload, when a message may
//! name an upload, and who may fetch a message's files.

mod world;

use kith_core::Grant;
use kith_core::permissions::{Override, OverrideTarget, Permissions};
use kith_core::text::FileName;
use world::*;

const KEY: &str = "ABCDEFGHJKMNPQRSTUVWXYZ234";

fn create_upload(
    w: &mut World,
    s: SessionId,
    channel: u64,
    size: u64,
    key: &str,
) -> Result<R, (ErrorCode, String)> {
    create_upload_for(w, s, channel, (size, 0), key)
}

/// An upload for a message whose files come to `message_bytes` (0: not said).
fn create_upload_for(
    w: &mut World,
    s: SessionId,
    channel: u64,
    (size, message_bytes): (u64, u64),
    key: &str,
) -> Result<R, (ErrorCode, String)> {
    w.call(
        s,
        Request::CreateUpload {
            channel: ChannelId(channel),
            name: FileName::clean("../../etc/\u{202E}gpj.exe"),
            size,
            blake3: [5; 32],
            message_bytes,
            key: key.into(),
        },
    )
}

fn send_with(w: &mut World, s: SessionId, channel: u64, uploads: &[&str]) -> Result<R, (ErrorCode, String)> {
    w.call(
        s,
        Request::SendMessage {
            channel: ChannelId(channel),
            body: Body(String::new()),
            nonce: None,
            reply_to: None,
            uploads: uploads.iter().map(|k| k.to_string()).collect(),
        },
    )
}

fn stored(w: &mut World, key: &str) {
    w.input(Input::UploadStored {
        key: key.into(),
        content_type: "image/png".into(),
        blake3: [6; 32],
        size: 1200,
        width: 4032,
        height: 3024,
    });
}

#[test]
fn a_message_names_an_upload_only_once_its_bytes_are_stored() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let Ok(R::Upload(upload)) = create_upload(&mut w, owner, general, 1234, KEY) else { panic!() };
    assert_eq!(upload.key, KEY);
    assert!(
        matches!(&w.grants[..], [Grant::Upload { key, size: 1234, blake3: [5, ..], .. }] if key == KEY),
        "the edge is told to accept the key: {:?}",
        w.grants
    );
    let (code, why) = send_with(&mut w, owner, general, &[KEY]).unwrap_err();
    assert_eq!(code, ErrorCode::Invalid);
    assert!(why.contains("not complete"), "{why}");

    stored(&mut w, KEY);
    let m = message(send_with(&mut w, owner, general, &[KEY]).unwrap());
    let a = &m.attachments[..];
    assert_eq!(a.len(), 1);
    // The name is shown, never used as a path: no directories, no bidi.
    // What the edge kept (a photo without its metadata), not what was declared.
    assert_eq!((a[0].name.as_str(), a[0].size, a[0].content_type.as_str()), ("gpj.exe", 1200, "image/png"));
    assert_eq!((a[0].blake3.as_slice(), a[0].width, a[0].height), (&[6; 32][..], 4032, 3024));
    assert!(
        matches!(&w.writes.last(), Some((_, Write::InsertMessage { message })) if message.attachments.len() == 1)
    );
    let seen = w.events(members[0]);
    assert!(seen.iter().any(|e| matches!(&e.body, Some(Ev::MessageCreated(m)) if m.attachments.len() == 1)));
    // Used up: a second message cannot name it.
    let (code, _) = send_with(&mut w, owner, general, &[KEY]).unwrap_err();
    assert_eq!(code, ErrorCode::NotFound);
}

#[test]
fn uploads_are_refused_over_the_limit_and_without_attach_files() {
    let mut w = World::new(HubConfig {
        max_attachment_bytes: 1000,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let (code, why) = create_upload(&mut w, owner, general, 1001, KEY).unwrap_err();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(why.contains("1001") && why.contains("at most 1000 bytes"), "{why}");
    assert!(w.grants.is_empty(), "nothing may be sent");

    let bob = members[0];
    let rule = Override { allow: Permissions::empty(), deny: Permissions::ATTACH_FILES };
    let target = OverrideTarget::Member(UserId(w.id("bob")));
    w.call(owner, Request::SetOverride { channel: ChannelId(general), target, rule }).unwrap();
    let (code, why) = create_upload(&mut w, bob, general, 10, KEY).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(why.contains("attach files"), "{why}");
}

#[test]
fn a_message_may_carry_only_so_many_bytes_of_files_said_up_front_or_checked_at_send() {
    let mut w = World::new(HubConfig {
        max_message_attachment_bytes: 2000,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    // A client that says what the message's files come to hears it before
    // sending a byte.
    let (code, why) = create_upload_for(&mut w, owner, general, (1200, 2400), KEY).unwrap_err();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(why.contains("2400") && why.contains("at most 2000 bytes of files per message"), "{why}");
    assert!(w.grants.is_empty(), "nothing may be sent");
    let Ok(R::Upload(upload)) = create_upload_for(&mut w, owner, general, (1200, 1200), KEY) else {
        panic!()
    };
    assert_eq!(upload.max_message_bytes, 2000, "said for the client's own check");

    // One that does not is refused at send, and loses nothing: both uploads
    // stay usable, one message at a time.
    const OTHER: &str = "BCDEFGHJKMNPQRSTUVWXYZ2345";
    create_upload(&mut w, owner, general, 1200, OTHER).unwrap();
    stored(&mut w, KEY);
    stored(&mut w, OTHER);
    let (code, why) = send_with(&mut w, owner, general, &[KEY, OTHER]).unwrap_err();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(why.contains("2400"), "{why}");
    assert_eq!(message(send_with(&mut w, owner, general, &[KEY]).unwrap()).attachments.len(), 1);
    assert_eq!(message(send_with(&mut w, owner, general, &[OTHER]).unwrap()).attachments.len(), 1);
}

#[test]
fn an_upload_key_belongs_to_the_session_that_asked_for_it() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    create_upload(&mut w, owner, general, 10, KEY).unwrap();
    stored(&mut w, KEY);
    let (other, _) = w.login("owner");
    let (code, _) = send_with(&mut w, other, general, &[KEY]).unwrap_err();
    assert_eq!(code, ErrorCode::NotFound);
    // Its own session still may.
    assert_eq!(message(send_with(&mut w, owner, general, &[KEY]).unwrap()).attachments.len(), 1);
}

#[test]
fn a_messages_files_open_to_those_who_see_the_channel_and_survive_an_edit() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    create_upload(&mut w, owner, general, 10, KEY).unwrap();
    stored(&mut w, KEY);
    let m = message(send_with(&mut w, owner, general, &[KEY]).unwrap());
    let edited = w.call(
        owner,
        Request::EditMessage {
            channel: ChannelId(general),
            message: MessageId(m.id),
            body: Body::parse("now with words").unwrap(),
        },
    );
    assert_eq!(message(edited.unwrap()).attachments.len(), 1, "an edit keeps the files");

    let open = |w: &mut World, s| {
        w.call(
            s,
            Request::OpenAttachments {
                channel: ChannelId(general),
                message: MessageId(m.id),
                key: "K2".into(),
            },
        )
    };
    let Ok(R::AttachmentAccess(access)) = open(&mut w, members[0]) else { panic!() };
    assert_eq!((access.key.as_str(), access.attachments.len()), ("K2", 1));
    assert!(matches!(w.grants.last(), Some(Grant::Download { message, .. }) if message.0 == m.id));

    let hide = Override { allow: Permissions::empty(), deny: Permissions::VIEW_CHANNEL };
    let target = OverrideTarget::Member(UserId(w.id("bob")));
    w.call(owner, Request::SetOverride { channel: ChannelId(general), target, rule: hide }).unwrap();
    let granted = w.grants.len();
    let (code, why) = open(&mut w, members[0]).unwrap_err();
    assert_eq!((code, why.as_str()), (ErrorCode::NotFound, "no such channel"));
    assert_eq!(w.grants.len(), granted, "no key for someone who cannot see it");
}

#[test]
fn quotas_count_what_live_messages_carry_and_deleting_frees_them() {
    let mut w = World::new(HubConfig {
        user_files_quota: Some(3000),
        community_files_quota: Some(4000),
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let keys = ["K1AAAAAAAAAAAAAAAAAAAAAAAA", "K2AAAAAAAAAAAAAAAAAAAAAAAA", "K3AAAAAAAAAAAAAAAAAAAAAAAA"];
    let attach = |w: &mut World, s, key: &str| {
        create_upload(w, s, general, 1200, key)?;
        stored(w, key);
        send_with(w, s, general, &[key]).map(message)
    };
    let first = attach(&mut w, owner, keys[0]).unwrap();
    attach(&mut w, owner, keys[1]).unwrap();
    // 2400 of 3000: a third 1200 would pass the owner's quota, said before any byte.
    let (code, why) = create_upload(&mut w, owner, general, 1200, keys[2]).unwrap_err();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(why.contains("your files already take") && why.contains("quota"), "{why}");
    // bob has his own quota, but the community has 4000 in all.
    attach(&mut w, members[0], keys[2]).unwrap();
    let (code, why) =
        create_upload(&mut w, members[0], general, 1200, "K4AAAAAAAAAAAAAAAAAAAAAAAA").unwrap_err();
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(why.contains("this community's files"), "{why}");
    // Deleting a message gives its bytes back.
    w.call(owner, Request::DeleteMessage { channel: ChannelId(general), message: MessageId(first.id) })
        .unwrap();
    attach(&mut w, members[0], "K4AAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
}
