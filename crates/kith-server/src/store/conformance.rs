//! What every storage backend must do. Each check takes a fresh, empty
//! backend; a backend's tests call every one of them (see
//! `sqlite::tests`). The scenario uses every kind of [`Write`], which
//! [`every_kind_of_write_is_in_the_scenario`] holds to.

use kith_core::permissions::{OverrideTarget, Permissions};
use kith_core::request::{Anchor, AuditQuery, Chosen, HistoryQuery, TokenHash};
use kith_core::store::{
    AttachmentMeta, Load, Loaded, MessageRow, NewMessage, StoredAudit, StoredBan, StoredChannel,
    StoredCommunity, StoredDirect, StoredInvite, StoredMember, StoredMessageMeta, StoredOverride, StoredRole,
    StoredState, StoredToken, StoredUser, Write,
};
use kith_core::text::Username;
use kith_core::{AuditId, ChannelId, CommunityId, MessageId, RoleId, Timestamp, TokenId, UserId};
use kith_proto::v1::AuditAction;

use super::{Backend, Batch, Reader, Writer};

const ANN: UserId = UserId(1);
const BOB: UserId = UserId(2);
const CAT: UserId = UserId(3);
/// Deb's account is deleted: a tombstone stays.
const DEB: UserId = UserId(4);
const FAMILY: CommunityId = CommunityId(20);
const MODS: RoleId = RoleId(21);
const TEMP: RoleId = RoleId(22);
const GENERAL: ChannelId = ChannelId(30);
const LOUNGE: ChannelId = ChannelId(31);
const OLD: ChannelId = ChannelId(32);
const DM: ChannelId = ChannelId(70);
const TRIP: ChannelId = ChannelId(71);
const EMPTIED: ChannelId = ChannelId(72);
/// The highest id the scenario leaves in the store (a message in the DM).
const HIGHEST_LIVE_ID: u64 = 73;

fn user(id: UserId, name: &str) -> StoredUser {
    StoredUser {
        id,
        username: name.to_owned(),
        fold: name.to_owned(),
        skeleton: name.to_owned(),
        display_name: name.to_owned(),
        status_text: String::new(),
        server_owner: id == ANN,
        presence: Chosen::Online,
        // Cat is a bot.
        bot: id == CAT,
        deleted: false,
    }
}

fn create_user(id: UserId, name: &str) -> Write {
    Write::CreateUser {
        user: user(id, name),
        password_hash: format!("hash-{name}"),
        created_at: Timestamp(100),
    }
}

fn channel(id: ChannelId, name: &str, voice: bool) -> StoredChannel {
    StoredChannel { id, community: FAMILY, name: name.to_owned(), topic: String::new(), voice }
}

fn role(id: RoleId, name: &str, permissions: Permissions, rank: u32) -> StoredRole {
    StoredRole { id, community: FAMILY, name: name.to_owned(), permissions, rank }
}

fn audit(id: u64, action: AuditAction, target: u64, reason: &str) -> StoredAudit {
    StoredAudit {
        id: AuditId(id),
        community: FAMILY,
        actor: ANN,
        action,
        target: Some(target),
        reason: reason.to_owned(),
        detail: format!("detail {id}"),
    }
}

fn message(id: u64, channel: ChannelId, author: UserId) -> NewMessage {
    NewMessage {
        id: MessageId(id),
        channel,
        author,
        body: format!("message {id}"),
        nonce: None,
        reply_to: None,
        mentions: Vec::new(),
        mention_everyone: false,
        created_at: Timestamp(1000 + id),
        attachments: Vec::new(),
    }
}

/// A file named `name` whose hash is made from `seed`.
fn file(name: &str, seed: u8) -> AttachmentMeta {
    AttachmentMeta {
        name: name.into(),
        size: 1000 + u64::from(seed),
        content_type: "image/png".into(),
        blake3: [seed; 32],
        width: 640,
        height: 480 + u32::from(seed),
    }
}

fn insert(message: NewMessage) -> Write {
    Write::InsertMessage { message }
}

fn override_rule(channel: ChannelId, target: OverrideTarget, allow: Permissions) -> StoredOverride {
    StoredOverride { channel, target, allow, deny: Permissions::empty() }
}

fn direct(id: ChannelId, group: bool, name: &str, owner: Option<UserId>, members: &[UserId]) -> Write {
    Write::PutDirect {
        direct: StoredDirect { id, group, name: name.to_owned(), owner, members: members.to_vec() },
    }
}

/// A small server's life, as the hub would write it, in three batches.
fn scenario() -> Vec<Batch> {
    let accounts = vec![
        create_user(ANN, "ann"),
        create_user(BOB, "bob"),
        create_user(CAT, "cat"),
        create_user(DEB, "deb"),
        Write::SetResetCode { user: DEB, hash: TokenHash([9; 32]), expires_at: Timestamp(800) },
        Write::Suspend { user: DEB, reason: "gone".into(), at: Timestamp(700) },
        Write::DeleteAccount { user: DEB, name: Username::deleted(DEB.0), at: Timestamp(900) },
        Write::CreateToken {
            token: StoredToken { id: TokenId(10), user: ANN, hash: TokenHash([1; 32]) },
            created_at: Timestamp(100),
        },
        Write::CreateToken {
            token: StoredToken { id: TokenId(11), user: BOB, hash: TokenHash([2; 32]) },
            created_at: Timestamp(100),
        },
        Write::RevokeToken { id: TokenId(11) },
        // A reset code standing; another used up by a new password.
        Write::SetResetCode { user: ANN, hash: TokenHash([7; 32]), expires_at: Timestamp(500) },
        Write::SetResetCode { user: BOB, hash: TokenHash([8; 32]), expires_at: Timestamp(600) },
        Write::SetPassword { user: BOB, password_hash: "hash-bob-2".into() },
        // A suspension standing; another lifted.
        Write::Suspend { user: CAT, reason: "spam".into(), at: Timestamp(700) },
        Write::Suspend { user: BOB, reason: String::new(), at: Timestamp(700) },
        Write::Unsuspend { user: BOB },
        Write::UpdateUser { id: BOB, display_name: "Bobby".into(), status_text: "gone fishing".into() },
        Write::SetPresence { user: BOB, status: Chosen::Dnd },
        // A bot's commands, replaced; another's, withdrawn.
        Write::PutCommands { bot: CAT, commands: vec![1, 2, 3] },
        Write::PutCommands { bot: CAT, commands: vec![4, 5] },
        Write::PutCommands { bot: ANN, commands: vec![9] },
        Write::PutCommands { bot: ANN, commands: Vec::new() },
    ];
    let community = vec![
        Write::CreateCommunity {
            community: StoredCommunity { id: FAMILY, name: "Family".into(), owner: ANN },
            created_at: Timestamp(200),
        },
        Write::PutRole { role: role(RoleId(FAMILY.0), "@everyone", Permissions::DEFAULT_EVERYONE, 0) },
        Write::AddMember { community: FAMILY, user: ANN, joined_at: Timestamp(201) },
        Write::AddMember { community: FAMILY, user: BOB, joined_at: Timestamp(202) },
        Write::AddMember { community: FAMILY, user: CAT, joined_at: Timestamp(203) },
        Write::UpdateMember {
            community: FAMILY,
            user: BOB,
            nickname: Some("B".into()),
            timeout_until: Some(Timestamp(5000)),
        },
        Write::PutRole { role: role(MODS, "mods", Permissions::KICK_MEMBERS, 1) },
        // Replaced whole.
        Write::PutRole {
            role: role(MODS, "moderators", Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS, 2),
        },
        Write::PutRole { role: role(TEMP, "temp", Permissions::empty(), 1) },
        Write::AddMemberRole { community: FAMILY, user: BOB, role: MODS },
        Write::AddMemberRole { community: FAMILY, user: BOB, role: TEMP },
        Write::AddMemberRole { community: FAMILY, user: CAT, role: MODS },
        Write::AddMemberRole { community: FAMILY, user: ANN, role: MODS },
        Write::RemoveMemberRole { community: FAMILY, user: ANN, role: MODS },
        Write::CreateChannel { channel: channel(GENERAL, "general", false), created_at: Timestamp(210) },
        Write::CreateChannel { channel: channel(LOUNGE, "lounge", true), created_at: Timestamp(211) },
        Write::CreateChannel { channel: channel(OLD, "old", false), created_at: Timestamp(212) },
        Write::UpdateChannel {
            channel: StoredChannel { topic: "hello".into(), ..channel(GENERAL, "general", false) },
        },
        Write::SetOverride {
            rule: StoredOverride {
                deny: Permissions::SEND_MESSAGES,
                ..override_rule(GENERAL, OverrideTarget::Role(MODS), Permissions::MANAGE_MESSAGES)
            },
        },
        Write::SetOverride {
            rule: override_rule(GENERAL, OverrideTarget::Role(TEMP), Permissions::SEND_MESSAGES),
        },
        Write::SetOverride {
            rule: override_rule(GENERAL, OverrideTarget::Member(BOB), Permissions::SEND_MESSAGES),
        },
        Write::SetOverride {
            rule: override_rule(GENERAL, OverrideTarget::Member(CAT), Permissions::SEND_MESSAGES),
        },
        // No bits: the override goes.
        Write::SetOverride {
            rule: override_rule(GENERAL, OverrideTarget::Member(CAT), Permissions::empty()),
        },
        // Takes its assignment and its override with it.
        Write::DeleteRole { id: TEMP },
        Write::Ban {
            ban: StoredBan {
                community: FAMILY,
                user: CAT,
                by: ANN,
                reason: "spam".into(),
                at: Timestamp(300),
            },
        },
        // Takes cat's roles with the membership.
        Write::RemoveMember { community: FAMILY, user: CAT },
        Write::Ban {
            ban: StoredBan {
                community: FAMILY,
                user: BOB,
                by: ANN,
                reason: "oops".into(),
                at: Timestamp(301),
            },
        },
        Write::Unban { community: FAMILY, user: BOB },
        Write::Audit { entry: audit(40, AuditAction::Ban, CAT.0, "spam") },
        Write::Audit { entry: audit(41, AuditAction::ChannelCreate, GENERAL.0, "") },
        Write::Audit { entry: audit(42, AuditAction::RoleCreate, MODS.0, "") },
        Write::CreateInvite {
            invite: StoredInvite {
                code: "ABCD".into(),
                community: FAMILY,
                creator: ANN,
                max_uses: Some(5),
                uses: 0,
                expires_at: Some(Timestamp(9000)),
            },
            created_at: Timestamp(400),
        },
        Write::CreateInvite {
            invite: StoredInvite {
                code: "EFGH".into(),
                community: FAMILY,
                creator: BOB,
                max_uses: None,
                uses: 0,
                expires_at: None,
            },
            created_at: Timestamp(401),
        },
        Write::UseInvite { code: "ABCD".into() },
        Write::UseInvite { code: "ABCD".into() },
        Write::CreateInvite {
            invite: StoredInvite {
                code: "GONE".into(),
                community: FAMILY,
                creator: BOB,
                max_uses: None,
                uses: 0,
                expires_at: None,
            },
            created_at: Timestamp(402),
        },
        Write::RevokeInvite { code: "GONE".into() },
    ];
    let messages = vec![
        insert(NewMessage { nonce: Some("n-50".into()), ..message(50, GENERAL, ANN) }),
        insert(NewMessage {
            reply_to: Some(MessageId(50)),
            mentions: vec![BOB],
            ..message(51, GENERAL, BOB)
        }),
        insert(NewMessage { mention_everyone: true, ..message(52, GENERAL, ANN) }),
        insert(NewMessage { attachments: vec![file("gone.png", 3)], ..message(53, GENERAL, BOB) }),
        insert(NewMessage {
            attachments: vec![file("a.png", 1), file("b.png", 2)],
            ..message(54, GENERAL, ANN)
        }),
        insert(message(55, GENERAL, BOB)),
        Write::EditMessage {
            id: MessageId(51),
            body: "edited".into(),
            mentions: vec![ANN],
            mention_everyone: false,
            edited_at: Timestamp(2000),
        },
        Write::DeleteMessage { id: MessageId(53) },
        insert(NewMessage { attachments: vec![file("old.png", 4)], ..message(60, OLD, ANN) }),
        Write::SetReadState { user: ANN, channel: OLD, last_read: Some(MessageId(60)) },
        Write::SetOverride {
            rule: override_rule(OLD, OverrideTarget::Member(BOB), Permissions::SEND_MESSAGES),
        },
        // Takes its messages, read marks and overrides with it.
        Write::DeleteChannel { id: OLD },
        Write::SetReadState { user: ANN, channel: GENERAL, last_read: Some(MessageId(52)) },
        Write::SetReadState { user: BOB, channel: GENERAL, last_read: Some(MessageId(51)) },
        Write::SetReadState { user: BOB, channel: GENERAL, last_read: None },
        direct(DM, false, "", None, &[ANN, BOB]),
        direct(TRIP, true, "Trip", Some(ANN), &[ANN, BOB, CAT]),
        // Replaced: members keep the order given.
        direct(TRIP, true, "Trip!", Some(CAT), &[CAT, ANN]),
        direct(EMPTIED, true, "Gone", Some(BOB), &[BOB]),
        // No one left: the conversation goes.
        direct(EMPTIED, true, "Gone", Some(BOB), &[]),
        insert(message(HIGHEST_LIVE_ID, DM, BOB)),
    ];
    vec![(1, accounts), (2, community), (3, messages)]
}

/// What the scenario leaves, in a canonical order.
fn expected() -> StoredState {
    let meta = |id: u64, channel: ChannelId, author: UserId| StoredMessageMeta {
        id: MessageId(id),
        channel,
        author,
        reply_to: None,
        nonce: None,
        deleted: false,
        mentions: Vec::new(),
        mention_everyone: false,
        attachments: Vec::new(),
    };
    let member = |user: UserId, joined: u64| StoredMember {
        community: FAMILY,
        user,
        joined_at: Timestamp(joined),
        nickname: None,
        timeout_until: None,
    };
    StoredState {
        users: vec![
            user(ANN, "ann"),
            StoredUser {
                display_name: "Bobby".into(),
                status_text: "gone fishing".into(),
                presence: Chosen::Dnd,
                ..user(BOB, "bob")
            },
            user(CAT, "cat"),
            StoredUser {
                username: "deleted-4".into(),
                fold: "deleted-4".into(),
                skeleton: Username::deleted(DEB.0).skeleton,
                display_name: "Deleted user".into(),
                deleted: true,
                ..user(DEB, "deb")
            },
        ],
        tokens: vec![StoredToken { id: TokenId(10), user: ANN, hash: TokenHash([1; 32]) }],
        communities: vec![StoredCommunity { id: FAMILY, name: "Family".into(), owner: ANN }],
        members: vec![
            member(ANN, 201),
            StoredMember {
                nickname: Some("B".into()),
                timeout_until: Some(Timestamp(5000)),
                ..member(BOB, 202)
            },
        ],
        roles: vec![
            role(RoleId(FAMILY.0), "@everyone", Permissions::DEFAULT_EVERYONE, 0),
            role(MODS, "moderators", Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS, 2),
        ],
        member_roles: vec![(FAMILY, BOB, MODS)],
        channels: vec![
            StoredChannel { topic: "hello".into(), ..channel(GENERAL, "general", false) },
            channel(LOUNGE, "lounge", true),
        ],
        overrides: vec![
            StoredOverride {
                deny: Permissions::SEND_MESSAGES,
                ..override_rule(GENERAL, OverrideTarget::Role(MODS), Permissions::MANAGE_MESSAGES)
            },
            override_rule(GENERAL, OverrideTarget::Member(BOB), Permissions::SEND_MESSAGES),
        ],
        bans: vec![StoredBan {
            community: FAMILY,
            user: CAT,
            by: ANN,
            reason: "spam".into(),
            at: Timestamp(300),
        }],
        invites: vec![
            StoredInvite {
                code: "ABCD".into(),
                community: FAMILY,
                creator: ANN,
                max_uses: Some(5),
                uses: 2,
                expires_at: Some(Timestamp(9000)),
            },
            StoredInvite {
                code: "EFGH".into(),
                community: FAMILY,
                creator: BOB,
                max_uses: None,
                uses: 0,
                expires_at: None,
            },
        ],
        messages: vec![
            StoredMessageMeta { nonce: Some("n-50".into()), ..meta(50, GENERAL, ANN) },
            StoredMessageMeta {
                reply_to: Some(MessageId(50)),
                mentions: vec![ANN],
                ..meta(51, GENERAL, BOB)
            },
            StoredMessageMeta { mention_everyone: true, ..meta(52, GENERAL, ANN) },
            StoredMessageMeta { deleted: true, ..meta(53, GENERAL, BOB) },
            StoredMessageMeta {
                attachments: vec![file("a.png", 1), file("b.png", 2)],
                ..meta(54, GENERAL, ANN)
            },
            meta(55, GENERAL, BOB),
            meta(HIGHEST_LIVE_ID, DM, BOB),
        ],
        directs: vec![
            StoredDirect { id: DM, group: false, name: String::new(), owner: None, members: vec![ANN, BOB] },
            StoredDirect {
                id: TRIP,
                group: true,
                name: "Trip!".into(),
                owner: Some(CAT),
                members: vec![CAT, ANN],
            },
        ],
        read_states: vec![(ANN, GENERAL, MessageId(52))],
        // Every message fits: nothing older stays on disk only.
        floors: Vec::new(),
        usage: vec![(ANN, GENERAL, 2003)],
        authored: vec![ANN, BOB],
        commands: vec![(CAT, vec![4, 5])],
        reset_codes: vec![(ANN, TokenHash([7; 32]), Timestamp(500))],
        suspended: vec![(CAT, "spam".into())],
        max_id: HIGHEST_LIVE_ID,
    }
}

/// `state` in the canonical order: a backend may load rows in any order.
fn canonical(mut state: StoredState) -> StoredState {
    state.users.sort_by_key(|u| u.id);
    state.commands.sort();
    state.tokens.sort_by_key(|t| t.id);
    state.communities.sort_by_key(|c| c.id);
    state.members.sort_by_key(|m| (m.community, m.user));
    state.roles.sort_by_key(|r| r.id);
    state.member_roles.sort();
    state.channels.sort_by_key(|c| c.id);
    state.overrides.sort_by_key(|o| (o.channel, o.target));
    state.bans.sort_by_key(|b| (b.community, b.user));
    state.invites.sort_by(|a, b| a.code.cmp(&b.code));
    state.messages.sort_by_key(|m| m.id);
    state.directs.sort_by_key(|d| d.id);
    state.read_states.sort();
    state.reset_codes.sort_by_key(|(user, _, _)| *user);
    state.suspended.sort();
    state.floors.sort();
    state.usage.sort();
    state.authored.sort();
    state
}

/// Messages per channel the hub holds, in these tests: all of them.
const RECENT: usize = 100;

/// Writes the scenario — two commits, the first of two batches — and
/// closes the writer.
fn write_scenario(store: &impl Backend) {
    let (mut writer, state) = store.open_writer(RECENT).expect("a fresh store opens");
    assert_eq!(state, StoredState::default(), "a fresh store is empty");
    let batches = scenario();
    writer.commit(&batches[..2]).expect("the first commit");
    writer.commit(&batches[2..]).expect("the second commit");
}

/// Which kind of write this is, numbered; the match has no wildcard, so a
/// new kind of write cannot compile until it is numbered here, and the
/// check below fails until the scenario uses it.
fn kind(write: &Write) -> usize {
    match write {
        Write::CreateUser { .. } => 0,
        Write::CreateToken { .. } => 1,
        Write::RevokeToken { .. } => 2,
        Write::UpdateUser { .. } => 3,
        Write::CreateCommunity { .. } => 4,
        Write::AddMember { .. } => 5,
        Write::RemoveMember { .. } => 6,
        Write::UpdateMember { .. } => 7,
        Write::PutRole { .. } => 8,
        Write::DeleteRole { .. } => 9,
        Write::AddMemberRole { .. } => 10,
        Write::RemoveMemberRole { .. } => 11,
        Write::SetOverride { .. } => 12,
        Write::Ban { .. } => 13,
        Write::Unban { .. } => 14,
        Write::Audit { .. } => 15,
        Write::CreateChannel { .. } => 16,
        Write::UpdateChannel { .. } => 17,
        Write::DeleteChannel { .. } => 18,
        Write::CreateInvite { .. } => 19,
        Write::UseInvite { .. } => 20,
        Write::InsertMessage { .. } => 21,
        Write::EditMessage { .. } => 22,
        Write::DeleteMessage { .. } => 23,
        Write::PutDirect { .. } => 24,
        Write::SetReadState { .. } => 25,
        Write::SetPresence { .. } => 26,
        Write::PutCommands { .. } => 27,
        Write::SetResetCode { .. } => 28,
        Write::SetPassword { .. } => 29,
        Write::Suspend { .. } => 30,
        Write::Unsuspend { .. } => 31,
        Write::RevokeInvite { .. } => 32,
        Write::DeleteAccount { .. } => 33,
    }
}
const KINDS: usize = 34;

#[test]
fn every_kind_of_write_is_in_the_scenario() {
    let mut seen = [false; KINDS];
    for (_, writes) in scenario() {
        for write in &writes {
            let k = kind(write);
            assert!(k < KINDS, "{write:?} is numbered {k}: raise KINDS and use it in the scenario");
            seen[k] = true;
        }
    }
    let missing: Vec<usize> = (0..KINDS).filter(|k| !seen[*k]).collect();
    assert!(missing.is_empty(), "the scenario never writes kinds {missing:?}");
}

/// Everything written comes back after the store is closed and reopened,
/// as the hub's start-up state.
pub fn every_write_survives_a_reopen(store: &impl Backend) {
    write_scenario(store);
    let (_writer, state) = store.open_writer(RECENT).expect("the store reopens");
    let state = canonical(state);
    assert!(state.max_id >= HIGHEST_LIVE_ID, "max_id {} is below a live id", state.max_id);
    let expected = expected();
    // Compared table by table so that a failure names its table.
    assert_eq!(state.users, expected.users, "users");
    assert_eq!(state.tokens, expected.tokens, "tokens");
    assert_eq!(state.communities, expected.communities, "communities");
    assert_eq!(state.members, expected.members, "members");
    assert_eq!(state.roles, expected.roles, "roles");
    assert_eq!(state.member_roles, expected.member_roles, "member roles");
    assert_eq!(state.channels, expected.channels, "channels");
    assert_eq!(state.overrides, expected.overrides, "overrides");
    assert_eq!(state.bans, expected.bans, "bans");
    assert_eq!(state.invites, expected.invites, "invites");
    assert_eq!(state.messages, expected.messages, "messages");
    assert_eq!(state.directs, expected.directs, "directs");
    assert_eq!(state.read_states, expected.read_states, "read states");
    assert_eq!(state.floors, expected.floors, "floors");
    assert_eq!(state.usage, expected.usage, "usage");
    assert_eq!(state.authored, expected.authored, "authored");
}

/// Reopened to hold two messages per channel, the store hands the hub each
/// channel's newest two and says where the rest begin; the rest are
/// loaded one by one, by author, or by weight, as the hub asks.
pub fn a_reopen_holds_each_channels_newest_and_loads_the_rest(store: &impl Backend) {
    write_scenario(store);
    let (_writer, state) = store.open_writer(2).expect("the store reopens");
    let state = canonical(state);
    let held: Vec<(u64, u64)> = state.messages.iter().map(|m| (m.channel.0, m.id.0)).collect();
    assert_eq!(held, [(GENERAL.0, 54), (GENERAL.0, 55), (DM.0, HIGHEST_LIVE_ID)]);
    assert_eq!(state.messages[0].attachments.len(), 2, "a held message has its files");
    assert_eq!(state.floors, [(GENERAL, MessageId(54))], "only #general has older messages");
    assert_eq!(state.usage, [(ANN, GENERAL, 2003)], "usage counts every message");
    assert_eq!(state.authored, [ANN, BOB]);

    let reader = store.open_reader().expect("a reader opens");
    let one = |channel, id| match reader.load(&Load::Message { channel, id: MessageId(id) }).unwrap() {
        Loaded::Message(m) => m,
        other => panic!("{other:?}"),
    };
    let reply = one(GENERAL, 51).expect("an older message loads");
    assert_eq!((reply.author, reply.reply_to, reply.mentions), (BOB, Some(MessageId(50)), vec![ANN]));
    assert!(one(GENERAL, 53).expect("deleted ones load too").deleted);
    assert_eq!(one(DM, 51), None, "only in the channel named");

    let authored =
        Load::Authored { author: ANN, channels: vec![(GENERAL, MessageId(54))], since: MessageId(0) };
    assert_eq!(
        reader.load(&authored).unwrap(),
        Loaded::Authored(vec![(MessageId(50), GENERAL, 0), (MessageId(52), GENERAL, 0)]),
        "ann's live messages below the floor"
    );
    let since =
        Load::Authored { author: ANN, channels: vec![(GENERAL, MessageId(54))], since: MessageId(51) };
    assert_eq!(reader.load(&since).unwrap(), Loaded::Authored(vec![(MessageId(52), GENERAL, 0)]));
    let weights = Load::Weights { channel: GENERAL, floor: MessageId(55) };
    assert_eq!(reader.load(&weights).unwrap(), Loaded::Weights(vec![(ANN, 2003)]));
}

/// A commit that fails applies none of its batches, not even those before
/// the one that failed, and the store still opens with what came before.
pub fn a_failed_commit_applies_nothing(store: &impl Backend) {
    write_scenario(store);
    let (mut writer, before) = store.open_writer(RECENT).expect("the store reopens");
    let dan = UserId(80);
    let failing = [
        (
            4,
            vec![
                create_user(dan, "dan"),
                Write::AddMember { community: FAMILY, user: dan, joined_at: Timestamp(900) },
            ],
        ),
        // The same account twice: no store may take it.
        (5, vec![create_user(ANN, "ann")]),
    ];
    assert!(writer.commit(&failing).is_err(), "creating an existing account must fail");
    drop(writer);
    let (_writer, after) = store.open_writer(RECENT).expect("the store reopens after a failed commit");
    assert_eq!(canonical(after), canonical(before));
    let reader = store.open_reader().expect("a reader opens");
    assert_eq!(reader.credentials("dan").unwrap(), None);
}

fn page(reader: &impl Reader, anchor: Anchor, limit: u32) -> Vec<u64> {
    let rows = reader.history(HistoryQuery { channel: GENERAL, anchor, limit }).expect("history reads");
    rows.iter().map(|m| m.id.0).collect()
}

/// Every read answers from what was written: credentials by folded name,
/// history pages in each direction without deleted messages, one message
/// deleted or not, and the audit log newest first with names.
pub fn reads_answer_from_what_was_written(store: &impl Backend) {
    write_scenario(store);
    let reader = store.open_reader().expect("a reader opens");

    assert_eq!(reader.credentials("ann").unwrap(), Some((ANN, "hash-ann".to_owned())));
    assert_eq!(reader.credentials("nobody").unwrap(), None);
    assert_eq!(reader.credentials("bob").unwrap(), Some((BOB, "hash-bob-2".to_owned())), "a new password");
    assert_eq!(reader.reset_code("ann").unwrap(), Some((ANN, TokenHash([7; 32]), Timestamp(500))));
    assert_eq!(reader.reset_code("bob").unwrap(), None, "used up by the new password");
    assert_eq!(reader.credentials("deb").unwrap(), None, "a deleted account's name is free");
    assert_eq!(reader.credentials("deleted-4").unwrap(), Some((DEB, String::new())), "no password");
    assert_eq!(reader.reset_code("deleted-4").unwrap(), None, "its reset code went with it");

    assert_eq!(page(&reader, Anchor::Latest, 10), [50, 51, 52, 54, 55], "53 was deleted");
    assert_eq!(page(&reader, Anchor::Latest, 2), [54, 55]);
    assert_eq!(page(&reader, Anchor::Before(MessageId(54)), 2), [51, 52]);
    assert_eq!(page(&reader, Anchor::After(MessageId(50)), 2), [51, 52]);
    assert_eq!(page(&reader, Anchor::Around(MessageId(52)), 3), [51, 52, 54]);
    let gone = reader.history(HistoryQuery { channel: OLD, anchor: Anchor::Latest, limit: 10 }).unwrap();
    assert!(gone.is_empty(), "a deleted channel's messages go with it");

    let edited = reader.message(MessageId(51)).unwrap().expect("message 51");
    assert_eq!(
        edited,
        MessageRow {
            id: MessageId(51),
            channel: GENERAL,
            author: BOB,
            author_name: "bob".into(),
            author_bot: false,
            body: "edited".into(),
            created_at: Timestamp(1051),
            edited_at: Some(Timestamp(2000)),
            reply_to: Some(MessageId(50)),
            mentions: vec![ANN],
            mention_everyone: false,
            nonce: None,
            deleted: false,
            attachments: Vec::new(),
        }
    );
    // Attachments: in order, with the message and its history rows; a
    // deleted message's and a deleted channel's files are named by nothing.
    let files = vec![file("a.png", 1), file("b.png", 2)];
    assert_eq!(reader.attachments(MessageId(54)).unwrap(), files);
    assert_eq!(reader.message(MessageId(54)).unwrap().unwrap().attachments, files);
    let latest =
        reader.history(HistoryQuery { channel: GENERAL, anchor: Anchor::Latest, limit: 10 }).unwrap();
    assert_eq!(latest.iter().find(|m| m.id == MessageId(54)).unwrap().attachments, files);
    assert!(reader.attachments(MessageId(53)).unwrap().is_empty());
    assert!(reader.names_file(&[1; 32]).unwrap() && reader.names_file(&[2; 32]).unwrap());
    assert!(!reader.names_file(&[3; 32]).unwrap(), "its message was deleted");
    assert!(!reader.names_file(&[4; 32]).unwrap(), "its channel was deleted");
    let first = reader.message(MessageId(50)).unwrap().expect("message 50");
    assert_eq!((first.nonce.as_deref(), first.edited_at), (Some("n-50"), None));
    let deleted = reader.message(MessageId(53)).unwrap().expect("a deleted message is still found");
    assert!(deleted.deleted && deleted.body.is_empty(), "{deleted:?}");
    assert_eq!(reader.message(MessageId(999)).unwrap(), None);

    let log = reader.audit(AuditQuery { community: FAMILY, before: None, limit: 10 }).unwrap();
    let entries: Vec<(u64, &str, &str)> =
        log.iter().map(|a| (a.entry.id.0, a.actor_name.as_str(), a.target_name.as_str())).collect();
    assert_eq!(entries, [(42, "ann", "moderators"), (41, "ann", "#general"), (40, "ann", "cat")]);
    assert_eq!(log[2].entry, audit(40, AuditAction::Ban, CAT.0, "spam"));
    let older = reader.audit(AuditQuery { community: FAMILY, before: Some(AuditId(42)), limit: 1 }).unwrap();
    assert_eq!(older.iter().map(|a| a.entry.id.0).collect::<Vec<_>>(), [41]);
    let elsewhere =
        reader.audit(AuditQuery { community: CommunityId(999), before: None, limit: 10 }).unwrap();
    assert!(elsewhere.is_empty());
}

/// A reader sees each commit once it returns, while the writer stays open.
pub fn readers_see_commits_as_they_land(store: &impl Backend) {
    let (mut writer, _) = store.open_writer(RECENT).expect("a fresh store opens");
    let reader = store.open_reader().expect("a reader opens");
    let batches = scenario();
    writer.commit(&batches[..2]).unwrap();
    assert!(page(&reader, Anchor::Latest, 10).is_empty());
    writer.commit(&batches[2..]).unwrap();
    assert_eq!(page(&reader, Anchor::Latest, 10), [50, 51, 52, 54, 55]);
}
