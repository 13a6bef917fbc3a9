//! The seam between the hub and durable storage.
//!
//! The hub describes every change as a [`Write`]; a store applies writes in
//! order and in batches, and at start-up hands the hub a [`StoredState`]. Any
//! backend that can do those two things (SQLite today, PostgreSQL later) fits
//! without touching the hub.
//!
//! Reads the hub delegates come back from the store as rows
//! ([`MessageRow`], [`AuditRow`]); each turns into its wire form here, once.

use kith_proto::v1::{self, AuditAction};

use crate::ids::{AuditId, ChannelId, CommunityId, MessageId, RoleId, Timestamp, TokenId, UserId};
use crate::permissions::{OverrideTarget, Permissions};
use crate::request::{Chosen, TokenHash};

/// One durable change, in the order the hub made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    CreateUser {
        user: StoredUser,
        password_hash: String,
        created_at: Timestamp,
    },
    CreateToken {
        token: StoredToken,
        created_at: Timestamp,
    },
    RevokeToken {
        id: TokenId,
    },
    /// A password reset code for `user` (only its hash), replacing any
    /// earlier one.
    SetResetCode {
        user: UserId,
        hash: TokenHash,
        expires_at: Timestamp,
    },
    /// `user` is suspended server-wide, for `reason`.
    Suspend {
        user: UserId,
        reason: String,
        at: Timestamp,
    },
    Unsuspend {
        user: UserId,
    },
    /// `user`'s account is deleted: it becomes the tombstone `name` (no
    /// password, profile, logins, reset code, suspension or read marks).
    /// Memberships and messages go by their own writes.
    DeleteAccount {
        user: UserId,
        name: crate::text::Username,
        at: Timestamp,
    },
    RevokeInvite {
        code: String,
    },
    /// A new password for `user`; their reset code is used up.
    SetPassword {
        user: UserId,
        password_hash: String,
    },
    UpdateUser {
        id: UserId,
        display_name: String,
        status_text: String,
    },
    CreateCommunity {
        community: StoredCommunity,
        created_at: Timestamp,
    },
    AddMember {
        community: CommunityId,
        user: UserId,
        joined_at: Timestamp,
    },
    /// Removes the membership and the member's roles.
    RemoveMember {
        community: CommunityId,
        user: UserId,
    },
    UpdateMember {
        community: CommunityId,
        user: UserId,
        nickname: Option<String>,
        timeout_until: Option<Timestamp>,
    },
    /// Creates or replaces a role.
    PutRole {
        role: StoredRole,
    },
    /// Deletes a role, its assignments and its overrides.
    DeleteRole {
        id: RoleId,
    },
    AddMemberRole {
        community: CommunityId,
        user: UserId,
        role: RoleId,
    },
    RemoveMemberRole {
        community: CommunityId,
        user: UserId,
        role: RoleId,
    },
    /// Creates or replaces an override; one with no bits is deleted.
    SetOverride {
        rule: StoredOverride,
    },
    Ban {
        ban: StoredBan,
    },
    Unban {
        community: CommunityId,
        user: UserId,
    },
    Audit {
        entry: StoredAudit,
    },
    CreateChannel {
        channel: StoredChannel,
        created_at: Timestamp,
    },
    UpdateChannel {
        channel: StoredChannel,
    },
    /// Deletes the channel, its overrides and all of its messages.
    DeleteChannel {
        id: ChannelId,
    },
    CreateInvite {
        invite: StoredInvite,
        created_at: Timestamp,
    },
    UseInvite {
        code: String,
    },
    InsertMessage {
        message: NewMessage,
    },
    EditMessage {
        id: MessageId,
        body: String,
        mentions: Vec<UserId>,
        mention_everyone: bool,
        edited_at: Timestamp,
    },
    /// Erases the body; the row stays so the nonce keeps deduplicating.
    DeleteMessage {
        id: MessageId,
    },
    /// Creates or replaces a direct conversation or group with its
    /// participants; one with no participants left is deleted (its messages
    /// stay, unreachable).
    PutDirect {
        direct: StoredDirect,
    },
    /// `last_read: None` marks nothing read.
    SetReadState {
        user: UserId,
        channel: ChannelId,
        last_read: Option<MessageId>,
    },
    SetPresence {
        user: UserId,
        status: Chosen,
    },
    /// Replaces the slash commands a bot offers: an encoded
    /// `RegisterCommandsRequest`, as validated (empty: none).
    PutCommands {
        bot: UserId,
        commands: Vec<u8>,
    },
}

impl Write {
    /// Whether this write may change who may be in a channel or speak there
    /// (permissions, membership, channels, sign-ins). The hub re-derives
    /// voice after any such write, so a new request kind needs no list of
    /// its own; the match has no wildcard, so a new kind of write must say.
    pub fn changes_access(&self) -> bool {
        match self {
            Write::RevokeToken { .. }
            | Write::RemoveMember { .. }
            | Write::UpdateMember { .. }
            | Write::PutRole { .. }
            | Write::DeleteRole { .. }
            | Write::AddMemberRole { .. }
            | Write::RemoveMemberRole { .. }
            | Write::SetOverride { .. }
            | Write::Ban { .. }
            | Write::UpdateChannel { .. }
            | Write::DeleteChannel { .. } => true,
            Write::CreateUser { .. }
            | Write::CreateToken { .. }
            | Write::SetResetCode { .. }
            | Write::SetPassword { .. }
            | Write::Suspend { .. }
            | Write::Unsuspend { .. }
            | Write::DeleteAccount { .. }
            | Write::RevokeInvite { .. }
            | Write::UpdateUser { .. }
            | Write::CreateCommunity { .. }
            | Write::AddMember { .. }
            | Write::Unban { .. }
            | Write::Audit { .. }
            | Write::CreateChannel { .. }
            | Write::CreateInvite { .. }
            | Write::UseInvite { .. }
            | Write::InsertMessage { .. }
            | Write::EditMessage { .. }
            | Write::DeleteMessage { .. }
            | Write::PutDirect { .. }
            | Write::SetReadState { .. }
            | Write::SetPresence { .. }
            | Write::PutCommands { .. } => false,
        }
    }
}

/// Everything the hub needs in memory, as loaded at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    pub users: Vec<StoredUser>,
    pub tokens: Vec<StoredToken>,
    pub communities: Vec<StoredCommunity>,
    pub members: Vec<StoredMember>,
    pub roles: Vec<StoredRole>,
    pub member_roles: Vec<(CommunityId, UserId, RoleId)>,
    pub channels: Vec<StoredChannel>,
    pub overrides: Vec<StoredOverride>,
    pub bans: Vec<StoredBan>,
    pub invites: Vec<StoredInvite>,
    /// Each channel's newest messages, at most `recent` of them
    /// ([`HubConfig::recent_messages`](crate::HubConfig::recent_messages)).
    pub messages: Vec<StoredMessageMeta>,
    /// The channels that hold older messages than those loaded: each with
    /// its oldest loaded message's id (everything below it stays on disk).
    pub floors: Vec<(ChannelId, MessageId)>,
    /// What each author's live messages carry, in bytes of files, per
    /// channel: every message's, not only the loaded ones'.
    pub usage: Vec<(UserId, ChannelId, u64)>,
    /// Everyone who has ever posted a message, deleted or not.
    pub authored: Vec<UserId>,
    pub directs: Vec<StoredDirect>,
    pub read_states: Vec<(UserId, ChannelId, MessageId)>,
    /// Each bot's commands, as `Write::PutCommands` stored them.
    pub commands: Vec<(UserId, Vec<u8>)>,
    /// Accounts suspended server-wide, and why.
    pub suspended: Vec<(UserId, String)>,
    /// Password reset codes not yet used: whose, the code's hash, until when.
    pub reset_codes: Vec<(UserId, TokenHash, Timestamp)>,
    /// The highest id ever issued, so new ids stay unique after a restart.
    pub max_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub id: UserId,
    pub username: String,
    pub fold: String,
    pub skeleton: String,
    pub display_name: String,
    pub status_text: String,
    pub server_owner: bool,
    /// The presence they chose.
    pub presence: Chosen,
    /// A bot account: signs in with a token only.
    pub bot: bool,
    /// What is left of a deleted account.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: TokenId,
    pub user: UserId,
    pub hash: TokenHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommunity {
    pub id: CommunityId,
    pub name: String,
    pub owner: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub community: CommunityId,
    pub user: UserId,
    pub joined_at: Timestamp,
    pub nickname: Option<String>,
    pub timeout_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRole {
    pub id: RoleId,
    pub community: CommunityId,
    pub name: String,
    pub permissions: Permissions,
    pub rank: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOverride {
    pub channel: ChannelId,
    pub target: OverrideTarget,
    pub allow: Permissions,
    pub deny: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBan {
    pub community: CommunityId,
    pub user: UserId,
    pub by: UserId,
    pub reason: String,
    pub at: Timestamp,
}

/// One audit log entry. The hub writes these and never reads them back:
/// reading is a store query it authorises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    pub id: AuditId,
    pub community: CommunityId,
    pub actor: UserId,
    pub action: AuditAction,
    /// The user, channel, role or message acted on.
    pub target: Option<u64>,
    pub reason: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChannel {
    pub id: ChannelId,
    pub community: CommunityId,
    pub name: String,
    pub topic: String,
    /// A voice channel rather than a text one.
    pub voice: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvite {
    pub code: String,
    pub community: CommunityId,
    pub creator: UserId,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub channel: ChannelId,
    pub author: UserId,
    pub body: String,
    pub nonce: Option<String>,
    pub reply_to: Option<MessageId>,
    pub mentions: Vec<UserId>,
    pub mention_everyone: bool,
    pub created_at: Timestamp,
    pub attachments: Vec<AttachmentMeta>,
}

/// A file a message carries: what is shown and how its bytes are found
/// (content-addressed by BLAKE3 in the server's file store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentMeta {
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub blake3: [u8; 32],
    /// A picture's size in pixels; 0 × 0 otherwise.
    pub width: u32,
    pub height: u32,
}

impl AttachmentMeta {
    pub fn to_wire(&self) -> v1::Attachment {
        v1::Attachment {
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            blake3: self.blake3.to_vec(),
            width: self.width,
            height: self.height,
        }
    }
}

/// What the hub keeps of each message: enough to authorise edits, deletes and
/// replies and to deduplicate nonces, not the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessageMeta {
    pub id: MessageId,
    pub channel: ChannelId,
    pub author: UserId,
    pub reply_to: Option<MessageId>,
    pub nonce: Option<String>,
    pub deleted: bool,
    pub mentions: Vec<UserId>,
    pub mention_everyone: bool,
    pub attachments: Vec<AttachmentMeta>,
}

/// What the hub asks the store for about messages it no longer holds
/// (older than its channel's floor): the answer comes back as the
/// matching [`Loaded`], and the request that needed it runs again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// One message, deleted or not, if it is in `channel`.
    Message { channel: ChannelId, id: MessageId },
    /// `author`'s live messages in these channels below each one's floor,
    /// from `since` on.
    Authored { author: UserId, channels: Vec<(ChannelId, MessageId)>, since: MessageId },
    /// What the live messages below `floor` in `channel` carry, in bytes
    /// of files, by author.
    Weights { channel: ChannelId, floor: MessageId },
}

/// The store's answer to a [`Load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Message(Option<StoredMessageMeta>),
    /// (message, its channel, the bytes of files it carries), in id order.
    Authored(Vec<(MessageId, ChannelId, u64)>),
    Weights(Vec<(UserId, u64)>),
}

/// A conversation outside communities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirect {
    pub id: ChannelId,
    /// A group (up to 10, named, owned) rather than a conversation of two.
    pub group: bool,
    pub name: String,
    pub owner: Option<UserId>,
    /// In the order they joined.
    pub members: Vec<UserId>,
}

/// A message as the store reads it back, body and author's name included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: MessageId,
    pub channel: ChannelId,
    pub author: UserId,
    /// The author's username now (not when they wrote).
    pub author_name: String,
    /// The author is a bot.
    pub author_bot: bool,
    /// Empty once deleted.
    pub body: String,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub reply_to: Option<MessageId>,
    pub mentions: Vec<UserId>,
    pub mention_everyone: bool,
    pub nonce: Option<String>,
    pub deleted: bool,
    /// None once deleted.
    pub attachments: Vec<AttachmentMeta>,
}

impl MessageRow {
    pub fn into_wire(self) -> v1::Message {
        v1::Message {
            id: self.id.0,
            channel_id: self.channel.0,
            author_id: self.author.0,
            author_name: self.author_name,
            author_bot: self.author_bot,
            body: self.body,
            created_at_ms: self.created_at.0,
            edited_at_ms: self.edited_at.map_or(0, |t| t.0),
            reply_to: self.reply_to.map_or(0, |m| m.0),
            mentions: self.mentions.into_iter().map(|u| u.0).collect(),
            nonce: self.nonce.unwrap_or_default(),
            mention_everyone: self.mention_everyone,
            deleted: self.deleted,
            attachments: self.attachments.iter().map(AttachmentMeta::to_wire).collect(),
        }
    }
}

/// An audit entry as the store reads it back, with names joined in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub entry: StoredAudit,
    /// The actor's username now.
    pub actor_name: String,
    /// The target's name now: a username, `#channel` or role name; empty
    /// when there is no target or it no longer exists.
    pub target_name: String,
}

impl AuditRow {
    pub fn into_wire(self) -> v1::AuditEntry {
        let AuditRow { entry, actor_name, target_name } = self;
        v1::AuditEntry {
            id: entry.id.0,
            community_id: entry.community.0,
            actor_id: entry.actor.0,
            action: entry.action as i32,
            target_id: entry.target.unwrap_or(0),
            reason: entry.reason,
            detail: entry.detail,
            created_at_ms: entry.id.timestamp().0,
            actor_name,
            target_name,
        }
    }
}
