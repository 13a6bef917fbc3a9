//! The seam between the hub and durable storage.
//!
//! The hub describes every change as a [`Write`]; a store applies writes in
//! order and in batches, and at start-up hands the hub a [`StoredState`]. Any
//! backend that can do those two things (SQLite today, PostgreSQL later) fits
//! without touching the hub.

use crate::ids::{ChannelId, CommunityId, MessageId, Timestamp, TokenId, UserId};
use crate::request::TokenHash;

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
    CreateCommunity {
        community: StoredCommunity,
        created_at: Timestamp,
    },
    AddMember {
        community: CommunityId,
        user: UserId,
        joined_at: Timestamp,
    },
    RemoveMember {
        community: CommunityId,
        user: UserId,
    },
    CreateChannel {
        channel: StoredChannel,
        created_at: Timestamp,
    },
    UpdateChannel {
        channel: StoredChannel,
    },
    /// Deletes the channel and all of its messages.
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
        edited_at: Timestamp,
    },
    /// Erases the body; the row stays so the nonce keeps deduplicating.
    DeleteMessage {
        id: MessageId,
    },
}

/// Everything the hub needs in memory, as loaded at start-up.
#[derive(Debug, Clone, Default)]
pub struct StoredState {
    pub users: Vec<StoredUser>,
    pub tokens: Vec<StoredToken>,
    pub communities: Vec<StoredCommunity>,
    pub members: Vec<(CommunityId, UserId)>,
    pub channels: Vec<StoredChannel>,
    pub invites: Vec<StoredInvite>,
    pub messages: Vec<StoredMessageMeta>,
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
    pub server_owner: bool,
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
pub struct StoredChannel {
    pub id: ChannelId,
    pub community: CommunityId,
    pub name: String,
    pub topic: String,
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
    pub created_at: Timestamp,
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
}
