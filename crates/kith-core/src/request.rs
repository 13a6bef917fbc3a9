//! Wire → domain: every `ClientMessage` is turned into a validated request here,
//! at the edge, once. The hub only ever sees these types.

use kith_proto::v1::{self, ErrorCode, client_message::Request as Wire};

use crate::commands::{parse_commands, parse_values};
use crate::ids::{AuditId, ChannelId, CommunityId, MessageId, RoleId, UserId};
use crate::permissions::{Override, OverrideTarget, Permissions};
use crate::text::{
    Body, ChannelName, CommandName, CommunityName, DisplayName, FileName, GroupName, Nickname, Nonce,
    Password, Reason, RoleName, StatusText, TextError, Topic, Username,
};

/// SHA-256 of a login token. Only the hash is kept in memory and on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// A request as the edge receives it, before the edge's own work.
#[derive(Debug)]
pub enum Parsed {
    /// Needs password hashing or verification (slow, so done off the hub).
    Auth(AuthRequest),
    /// Ready for the hub.
    Hub(Request),
}

/// Account requests that need the edge's cryptography before the hub.
#[derive(Debug)]
pub enum AuthRequest {
    Register {
        username: Username,
        password: Password,
        display_name: Option<DisplayName>,
        credential: Credential,
    },
    /// The password is not length-checked here: a wrong length is simply
    /// wrong, answered like any other bad password (after no hashing at all).
    Login {
        username_fold: String,
        password: String,
    },
    Authenticate {
        token: String,
    },
    Resume {
        token: String,
        session_id: String,
        last_seq: u64,
    },
    /// A bot's new token is minted at the edge (the hub has no randomness
    /// to spare on secrets).
    BotToken(BotTokenFor),
    /// The server owner asks for a password reset code: minted, and
    /// hashed, at the edge.
    ResetCode {
        username_fold: String,
    },
    /// A reset code redeemed: the edge checks it against the store before
    /// hashing the new password, so a wrong code costs no hashing.
    Redeem {
        username_fold: String,
        code: String,
        password: Password,
    },
}

/// What a bot token is minted for.
#[derive(Debug)]
pub enum BotTokenFor {
    Create { community: CommunityId, name: Username },
    Rotate { community: CommunityId, bot: UserId },
}

impl BotTokenFor {
    /// The hub's request, with the token the edge minted.
    pub fn with(self, token: String, token_hash: TokenHash) -> Request {
        match self {
            BotTokenFor::Create { community, name } => {
                Request::CreateBot { community, name, token, token_hash }
            }
            BotTokenFor::Rotate { community, bot } => {
                Request::RotateBotToken { community, bot, token, token_hash }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    SetupCode(String),
    Invite(String),
}

/// What the hub handles, all fields validated.
#[derive(Debug)]
pub enum Request {
    /// The edge hashed the password and minted the token.
    Register(Box<Registration>),
    /// The edge verified the password of `user` and minted the token.
    Login {
        user: UserId,
        token: String,
        token_hash: TokenHash,
    },
    Authenticate {
        token_hash: TokenHash,
    },
    /// The edge checked `code_hash` against the store and hashed the new
    /// password; the hub uses the code up (if it still stands), sets the
    /// password, revokes the account's logins and signs in with `token`.
    RedeemResetCode {
        user: UserId,
        code_hash: TokenHash,
        password_hash: String,
        token: String,
        token_hash: TokenHash,
    },
    /// The server owner's: a reset code for the account `username_fold`
    /// (the edge minted `code`; the hub keeps only `code_hash`).
    IssueResetCode {
        username_fold: String,
        code: String,
        code_hash: TokenHash,
    },
    /// Sign in as a new guest of the community named `community` (see
    /// `hub::guest`). Never parsed from the wire: only a gateway whose
    /// operator allows guests makes it.
    Guest {
        community: String,
        can_send: bool,
    },
    /// Continue the session named by `resume_key` after event `last_seq`.
    Resume {
        token_hash: TokenHash,
        resume_key: String,
        last_seq: u64,
    },
    Logout {
        everywhere: bool,
    },
    /// How to join this server; allowed before logging in.
    ServerInfo,
    CreateCommunity {
        name: CommunityName,
    },
    CreateBot {
        community: CommunityId,
        name: Username,
        token: String,
        token_hash: TokenHash,
    },
    RotateBotToken {
        community: CommunityId,
        bot: UserId,
        token: String,
        token_hash: TokenHash,
    },
    /// From a bot: its commands, validated ([`crate::commands`]).
    RegisterCommands {
        commands: Vec<v1::Command>,
    },
    InvokeCommand {
        channel: ChannelId,
        bot: UserId,
        name: CommandName,
        options: Vec<v1::OptionValue>,
    },
    OpenPipe {
        to: UserId,
        name: FileName,
        size: u64,
        /// Fresh from the edge: what the sender presents on its transfer stream.
        key: String,
    },
    AcceptPipe {
        pipe: u64,
        /// Fresh from the edge: what the receiver presents.
        key: String,
    },
    AnswerCall {
        call: u64,
        /// Empty, or a valid message body.
        text: String,
        last: bool,
        public: bool,
        error: String,
    },
    CreateInvite {
        community: CommunityId,
        max_uses: Option<u32>,
        expires_in_ms: Option<u64>,
        code: String,
    },
    JoinCommunity {
        code: String,
    },
    ListInvites {
        community: CommunityId,
    },
    RevokeInvite {
        code: String,
    },
    /// The server owner's: suspend (or lift a suspension of) an account.
    SuspendUser {
        username_fold: String,
        suspended: bool,
        reason: Reason,
    },
    /// The server owner's: delete an account, leaving a tombstone; with
    /// `remove_messages`, everything it wrote goes too.
    DeleteAccount {
        username_fold: String,
        remove_messages: bool,
    },
    LeaveCommunity {
        community: CommunityId,
    },
    CreateChannel {
        community: CommunityId,
        name: ChannelName,
        topic: Topic,
        /// A voice channel rather than a text one.
        voice: bool,
    },
    UpdateChannel {
        channel: ChannelId,
        name: Option<ChannelName>,
        topic: Option<Topic>,
    },
    DeleteChannel {
        channel: ChannelId,
    },
    SendMessage {
        channel: ChannelId,
        body: Body,
        nonce: Option<Nonce>,
        reply_to: Option<MessageId>,
        /// Completed uploads to attach, in order (at most
        /// [`MAX_ATTACHMENTS`]).
        uploads: Vec<String>,
    },
    CreateUpload {
        channel: ChannelId,
        name: FileName,
        size: u64,
        blake3: [u8; 32],
        /// What all of the message's files come to, if the client said (0 if not).
        message_bytes: u64,
        /// Fresh from the edge: what the client presents on the transfer stream.
        key: String,
    },
    OpenAttachments {
        channel: ChannelId,
        message: MessageId,
        /// Fresh from the edge: what the client presents to download.
        key: String,
    },
    EditMessage {
        channel: ChannelId,
        message: MessageId,
        body: Body,
    },
    DeleteMessage {
        channel: ChannelId,
        message: MessageId,
    },
    History(HistoryQuery),
    CreateRole {
        community: CommunityId,
        name: RoleName,
        permissions: Permissions,
        rank: u32,
    },
    UpdateRole {
        community: CommunityId,
        role: RoleId,
        name: Option<RoleName>,
        permissions: Option<Permissions>,
        rank: Option<u32>,
    },
    DeleteRole {
        community: CommunityId,
        role: RoleId,
    },
    UpdateMember {
        community: CommunityId,
        user: UserId,
        nickname: Option<Nickname>,
        add_roles: Vec<RoleId>,
        remove_roles: Vec<RoleId>,
    },
    SetOverride {
        channel: ChannelId,
        target: OverrideTarget,
        rule: Override,
    },
    Kick {
        community: CommunityId,
        user: UserId,
        reason: Reason,
    },
    Ban {
        community: CommunityId,
        user: UserId,
        reason: Reason,
        delete_message_hours: u32,
    },
    Unban {
        community: CommunityId,
        user: UserId,
    },
    SetPresence {
        status: Option<Chosen>,
        afk: Option<bool>,
    },
    /// One other user: their direct conversation; more: a new group.
    OpenDirect {
        users: Vec<UserId>,
        name: GroupName,
    },
    UpdateGroup {
        channel: ChannelId,
        name: Option<GroupName>,
        add: Vec<UserId>,
        remove: Vec<UserId>,
    },
    /// `None`: the caller.
    LeaveGroups {
        user: Option<UserId>,
    },
    Typing {
        channel: ChannelId,
    },
    /// `message` None marks nothing read.
    Ack {
        channel: ChannelId,
        message: Option<MessageId>,
    },
    /// `duration_ms` 0 lifts the timeout.
    Timeout {
        community: CommunityId,
        user: UserId,
        duration_ms: u64,
        reason: Reason,
    },
    ListBans {
        community: CommunityId,
    },
    /// A page of members after `after` (in id order), at most `limit`
    /// (1..=[`MAX_MEMBER_PAGE`]).
    ListMembers {
        community: CommunityId,
        after: UserId,
        limit: usize,
    },
    AuditLog(AuditQuery),
    UpdateProfile {
        display_name: Option<DisplayName>,
        status_text: Option<StatusText>,
    },
    JoinVoice {
        channel: ChannelId,
        self_mute: bool,
        self_deaf: bool,
    },
    LeaveVoice,
    UpdateVoiceState {
        self_mute: Option<bool>,
        self_deaf: Option<bool>,
    },
    /// `move_to`: `Some(None)` disconnects the member from voice.
    ModerateVoice {
        community: CommunityId,
        user: UserId,
        mute: Option<bool>,
        move_to: Option<Option<ChannelId>>,
    },
}

/// Limits on moderation requests.
pub const MAX_ROLE_RANK: u32 = 1_000_000;
pub const MAX_BAN_DELETE_HOURS: u32 = 7 * 24;
pub const MAX_TIMEOUT_MS: u64 = 28 * 24 * 3600 * 1000;
/// Roles added or removed by one request.
pub const MAX_ROLE_CHANGES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    pub community: CommunityId,
    pub before: Option<AuditId>,
    pub limit: u32,
}

#[derive(Debug)]
pub struct Registration {
    pub username: Username,
    pub display_name: DisplayName,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// Returned to the client once; only the hash is kept.
    pub token: String,
    pub token_hash: TokenHash,
    pub credential: Credential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub channel: ChannelId,
    pub anchor: Anchor,
    /// 1..=[`HistoryQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl HistoryQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 100;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Latest,
    Before(MessageId),
    After(MessageId),
    Around(MessageId),
}

/// A request that failed validation at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub code: ErrorCode,
    pub reason: String,
}

impl From<TextError> for ParseError {
    fn from(e: TextError) -> Self {
        Self { code: ErrorCode::Invalid, reason: e.to_string() }
    }
}

/// Distinct ids, at most `max` of them (`field` names them in the refusal).
fn id_set<T: Ord>(raw: Vec<u64>, max: usize, field: &str, id: fn(u64) -> T) -> Result<Vec<T>, ParseError> {
    if raw.len() > max {
        return Err(invalid(format!("{field}: at most {max} ids")));
    }
    let mut ids: Vec<T> = raw.into_iter().map(id).collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn role_ids(raw: Vec<u64>, field: &str) -> Result<Vec<RoleId>, ParseError> {
    id_set(raw, MAX_ROLE_CHANGES, field, RoleId)
}

/// The most participants a group conversation may have.
pub const MAX_GROUP: usize = 10;
/// Members in one `ListMembers` page at most.
pub const MAX_MEMBER_PAGE: usize = 1000;

/// Distinct, non-zero user ids, at most a group's worth.
fn user_ids(raw: Vec<u64>, field: &str) -> Result<Vec<UserId>, ParseError> {
    if raw.contains(&0) {
        return Err(invalid(format!("{field}: user ids must be non-zero")));
    }
    id_set(raw, MAX_GROUP, field, UserId)
}

/// A presence a user may choose (offline is not a choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Online,
    Idle,
    Dnd,
    Invisible,
}

impl Chosen {
    fn parse(raw: i32) -> Result<Self, ParseError> {
        match v1::PresenceStatus::try_from(raw) {
            Ok(v1::PresenceStatus::Online) => Ok(Chosen::Online),
            Ok(v1::PresenceStatus::Idle) => Ok(Chosen::Idle),
            Ok(v1::PresenceStatus::Dnd) => Ok(Chosen::Dnd),
            Ok(v1::PresenceStatus::Invisible) => Ok(Chosen::Invisible),
            _ => Err(invalid("status must be online, idle, dnd or invisible")),
        }
    }

    /// The stored form (the wire value).
    pub fn code(self) -> u8 {
        self.wire() as u8
    }

    pub fn from_code(code: u8) -> Self {
        Chosen::parse(i32::from(code)).unwrap_or(Chosen::Online)
    }

    pub fn wire(self) -> v1::PresenceStatus {
        match self {
            Chosen::Online => v1::PresenceStatus::Online,
            Chosen::Idle => v1::PresenceStatus::Idle,
            Chosen::Dnd => v1::PresenceStatus::Dnd,
            Chosen::Invisible => v1::PresenceStatus::Invisible,
        }
    }
}

fn rank(raw: u32) -> Result<u32, ParseError> {
    if !(1..=MAX_ROLE_RANK).contains(&raw) {
        return Err(invalid(format!("rank must be 1-{MAX_ROLE_RANK}")));
    }
    Ok(raw)
}

fn invalid(reason: impl Into<String>) -> ParseError {
    ParseError { code: ErrorCode::Invalid, reason: reason.into() }
}

fn required(id: u64, field: &str) -> Result<u64, ParseError> {
    if id == 0 { Err(invalid(format!("{field} is required"))) } else { Ok(id) }
}

/// Invite codes and setup codes are short printable ASCII.
fn code(raw: String, field: &str) -> Result<String, ParseError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid(format!(
            "the {field} should be letters and digits (and dashes), as it was given to you"
        )));
    }
    Ok(raw.to_owned())
}

/// A code as people type it and as it is compared: dashes and case do not
/// matter (`abcd-efgh` is `ABCDEFGH`). The edge mints codes from an alphabet
/// without look-alikes (no 0/O, 1/I/L), upper case only, so that one read
/// aloud or copied by hand still works.
pub fn code_key(code: &str) -> String {
    code.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

pub use kith_proto::limits::MAX_ATTACHMENTS;

/// Characters in an upload or download key: 31 letters each, 128 bits.
pub const KEY_CHARS: usize = 26;

/// Validates one request. `new_code(len)` supplies randomness (the hub has
/// none of its own); it is called only for invite creation.
pub fn parse(request: Option<Wire>, new_code: impl FnOnce(usize) -> String) -> Result<Parsed, ParseError> {
    let Some(request) = request else {
        return Err(ParseError {
            code: ErrorCode::Unsupported,
            reason: "unknown or missing request kind".into(),
        });
    };
    let hub = |r: Request| Ok(Parsed::Hub(r));
    match request {
        Wire::Register(r) => {
            let username = Username::parse(&r.username)?;
            let password = Password::parse(r.password)?;
            let display_name = match r.display_name.as_str() {
                "" => None,
                d => Some(DisplayName::parse(d)?),
            };
            let credential = match r.credential {
                None => Credential::None,
                Some(v1::register_request::Credential::SetupCode(c)) => {
                    Credential::SetupCode(code(c, "setup code")?)
                }
                Some(v1::register_request::Credential::InviteCode(c)) => {
                    Credential::Invite(code(c, "invite code")?)
                }
            };
            Ok(Parsed::Auth(AuthRequest::Register { username, password, display_name, credential }))
        }
        Wire::Login(r) => Ok(Parsed::Auth(AuthRequest::Login {
            username_fold: Username::fold(&r.username),
            password: r.password,
        })),
        Wire::Authenticate(r) => Ok(Parsed::Auth(AuthRequest::Authenticate { token: r.token })),
        Wire::RedeemResetCode(r) => Ok(Parsed::Auth(AuthRequest::Redeem {
            username_fold: Username::fold(&r.username),
            code: r.code,
            password: Password::parse(r.new_password)?,
        })),
        Wire::ResetPassword(r) => {
            Ok(Parsed::Auth(AuthRequest::ResetCode { username_fold: Username::parse(&r.username)?.fold }))
        }
        Wire::Resume(r) => {
            if r.session_id.len() > 64 {
                return Err(invalid("session_id is malformed"));
            }
            Ok(Parsed::Auth(AuthRequest::Resume {
                token: r.token,
                session_id: r.session_id,
                last_seq: r.last_seq,
            }))
        }
        Wire::Logout(r) => hub(Request::Logout { everywhere: r.everywhere }),
        Wire::ServerInfo(_) => hub(Request::ServerInfo),
        Wire::CreateCommunity(r) => hub(Request::CreateCommunity { name: CommunityName::parse(&r.name)? }),
        Wire::CreateInvite(r) => hub(Request::CreateInvite {
            community: CommunityId(required(r.community_id, "community_id")?),
            max_uses: (r.max_uses > 0).then_some(r.max_uses),
            expires_in_ms: (r.expires_in_ms > 0).then_some(r.expires_in_ms),
            code: new_code(12),
        }),
        Wire::JoinCommunity(r) => hub(Request::JoinCommunity { code: code(r.code, "invite code")? }),
        Wire::ListInvites(r) => {
            hub(Request::ListInvites { community: CommunityId(required(r.community_id, "community_id")?) })
        }
        Wire::RevokeInvite(r) => hub(Request::RevokeInvite { code: code(r.code, "invite code")? }),
        Wire::SuspendUser(r) => hub(Request::SuspendUser {
            username_fold: Username::parse(&r.username)?.fold,
            suspended: r.suspended,
            reason: Reason::parse(&r.reason)?,
        }),
        Wire::DeleteAccount(r) => hub(Request::DeleteAccount {
            username_fold: Username::parse(&r.username)?.fold,
            remove_messages: r.remove_messages,
        }),
        Wire::LeaveCommunity(r) => {
            hub(Request::LeaveCommunity { community: CommunityId(required(r.community_id, "community_id")?) })
        }
        Wire::CreateChannel(r) => hub(Request::CreateChannel {
            community: CommunityId(required(r.community_id, "community_id")?),
            name: ChannelName::parse(&r.name)?,
            topic: Topic::parse(&r.topic)?,
            voice: match v1::ChannelKind::try_from(r.kind) {
                Ok(v1::ChannelKind::Text) => false,
                Ok(v1::ChannelKind::Voice) => true,
                _ => return Err(invalid("a community channel's kind is TEXT or VOICE")),
            },
        }),
        Wire::UpdateChannel(r) => hub(Request::UpdateChannel {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            name: r.name.as_deref().map(ChannelName::parse).transpose()?,
            topic: r.topic.as_deref().map(Topic::parse).transpose()?,
        }),
        Wire::DeleteChannel(r) => {
            hub(Request::DeleteChannel { channel: ChannelId(required(r.channel_id, "channel_id")?) })
        }
        Wire::SendMessage(r) => {
            if r.uploads.len() > MAX_ATTACHMENTS {
                return Err(invalid(format!("a message carries at most {MAX_ATTACHMENTS} files")));
            }
            if let Some(k) = r.uploads.iter().find(|k| k.len() != KEY_CHARS || !k.is_ascii()) {
                return Err(invalid(format!(
                    "{:?} is not an upload key",
                    k.chars().take(40).collect::<String>()
                )));
            }
            // A message of files alone needs no words.
            let body = if r.body.is_empty() && !r.uploads.is_empty() {
                Body(String::new())
            } else {
                Body::parse(&r.body)?
            };
            hub(Request::SendMessage {
                channel: ChannelId(required(r.channel_id, "channel_id")?),
                body,
                nonce: Nonce::parse(&r.nonce)?,
                reply_to: (r.reply_to != 0).then_some(MessageId(r.reply_to)),
                uploads: r.uploads,
            })
        }
        Wire::CreateUpload(r) => {
            let Ok(blake3) = <[u8; 32]>::try_from(r.blake3.as_slice()) else {
                return Err(invalid("blake3 must be the file's 32-byte BLAKE3 hash"));
            };
            hub(Request::CreateUpload {
                channel: ChannelId(required(r.channel_id, "channel_id")?),
                name: FileName::clean(&r.name),
                size: r.size,
                blake3,
                message_bytes: r.message_bytes,
                key: new_code(KEY_CHARS),
            })
        }
        Wire::CreateBot(r) => Ok(Parsed::Auth(AuthRequest::BotToken(BotTokenFor::Create {
            community: CommunityId(required(r.community_id, "community_id")?),
            name: Username::parse(&r.name)?,
        }))),
        Wire::RotateBotToken(r) => Ok(Parsed::Auth(AuthRequest::BotToken(BotTokenFor::Rotate {
            community: CommunityId(required(r.community_id, "community_id")?),
            bot: UserId(required(r.bot_id, "bot_id")?),
        }))),
        Wire::RegisterCommands(r) => hub(Request::RegisterCommands { commands: parse_commands(r.commands)? }),
        Wire::InvokeCommand(r) => hub(Request::InvokeCommand {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            bot: UserId(required(r.bot_id, "bot_id")?),
            name: CommandName::parse("command name", &r.name)?,
            options: parse_values(r.options)?,
        }),
        Wire::AnswerCall(r) => {
            let text = if r.text.is_empty() { String::new() } else { Body::parse(&r.text)?.0 };
            let error = Reason::parse(&r.error)?.0;
            if r.public && (!r.r#final || text.is_empty()) && error.is_empty() {
                return Err(invalid(
                    "a public answer is a final one with text: it becomes the bot's message",
                ));
            }
            hub(Request::AnswerCall {
                call: required(r.call_id, "call_id")?,
                text,
                last: r.r#final || !error.is_empty(),
                public: r.public,
                error,
            })
        }
        Wire::OpenPipe(r) => hub(Request::OpenPipe {
            to: UserId(required(r.user_id, "user_id")?),
            name: FileName::clean(&r.name),
            size: r.size,
            key: new_code(KEY_CHARS),
        }),
        Wire::AcceptPipe(r) => {
            hub(Request::AcceptPipe { pipe: required(r.pipe_id, "pipe_id")?, key: new_code(KEY_CHARS) })
        }
        Wire::OpenAttachments(r) => hub(Request::OpenAttachments {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            message: MessageId(required(r.message_id, "message_id")?),
            key: new_code(KEY_CHARS),
        }),
        Wire::EditMessage(r) => hub(Request::EditMessage {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            message: MessageId(required(r.message_id, "message_id")?),
            body: Body::parse(&r.body)?,
        }),
        Wire::DeleteMessage(r) => hub(Request::DeleteMessage {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            message: MessageId(required(r.message_id, "message_id")?),
        }),
        Wire::History(r) => {
            use v1::history_request::Anchor as A;
            let anchor = match r.anchor {
                None => Anchor::Latest,
                Some(A::Before(id)) => Anchor::Before(MessageId(id)),
                Some(A::After(id)) => Anchor::After(MessageId(id)),
                Some(A::Around(id)) => Anchor::Around(MessageId(id)),
            };
            let limit = match r.limit {
                0 => HistoryQuery::DEFAULT_LIMIT,
                n => n.min(HistoryQuery::MAX_LIMIT),
            };
            hub(Request::History(HistoryQuery {
                channel: ChannelId(required(r.channel_id, "channel_id")?),
                anchor,
                limit,
            }))
        }
        Wire::CreateRole(r) => hub(Request::CreateRole {
            community: CommunityId(required(r.community_id, "community_id")?),
            name: RoleName::parse(&r.name)?,
            permissions: Permissions::from_wire(r.permissions),
            rank: rank(r.rank)?,
        }),
        Wire::UpdateRole(r) => hub(Request::UpdateRole {
            community: CommunityId(required(r.community_id, "community_id")?),
            role: RoleId(required(r.role_id, "role_id")?),
            name: r.name.as_deref().map(RoleName::parse).transpose()?,
            permissions: r.permissions.map(Permissions::from_wire),
            rank: r.rank.map(rank).transpose()?,
        }),
        Wire::DeleteRole(r) => hub(Request::DeleteRole {
            community: CommunityId(required(r.community_id, "community_id")?),
            role: RoleId(required(r.role_id, "role_id")?),
        }),
        Wire::UpdateMember(r) => hub(Request::UpdateMember {
            community: CommunityId(required(r.community_id, "community_id")?),
            user: UserId(required(r.user_id, "user_id")?),
            nickname: r.nickname.as_deref().map(Nickname::parse).transpose()?,
            add_roles: role_ids(r.add_roles, "add_roles")?,
            remove_roles: role_ids(r.remove_roles, "remove_roles")?,
        }),
        Wire::SetChannelOverride(r) => {
            use v1::permission_override::Target;
            let o = r.permission_override.ok_or_else(|| invalid("permission_override is required"))?;
            let target = match o.target {
                Some(Target::RoleId(id)) => OverrideTarget::Role(RoleId(required(id, "role_id")?)),
                Some(Target::UserId(id)) => OverrideTarget::Member(UserId(required(id, "user_id")?)),
                None => return Err(invalid("an override needs a role_id or a user_id")),
            };
            let (allow, deny) = (Permissions::from_wire(o.allow), Permissions::from_wire(o.deny));
            if allow.intersects(deny) {
                return Err(invalid("a permission cannot be both allowed and denied"));
            }
            hub(Request::SetOverride {
                channel: ChannelId(required(r.channel_id, "channel_id")?),
                target,
                rule: Override { allow, deny },
            })
        }
        Wire::Kick(r) => hub(Request::Kick {
            community: CommunityId(required(r.community_id, "community_id")?),
            user: UserId(required(r.user_id, "user_id")?),
            reason: Reason::parse(&r.reason)?,
        }),
        Wire::Ban(r) => {
            if r.delete_message_hours > MAX_BAN_DELETE_HOURS {
                return Err(invalid(format!("delete_message_hours: at most {MAX_BAN_DELETE_HOURS}")));
            }
            hub(Request::Ban {
                community: CommunityId(required(r.community_id, "community_id")?),
                user: UserId(required(r.user_id, "user_id")?),
                reason: Reason::parse(&r.reason)?,
                delete_message_hours: r.delete_message_hours,
            })
        }
        Wire::Unban(r) => hub(Request::Unban {
            community: CommunityId(required(r.community_id, "community_id")?),
            user: UserId(required(r.user_id, "user_id")?),
        }),
        Wire::Timeout(r) => {
            if r.duration_ms > MAX_TIMEOUT_MS {
                return Err(invalid("a timeout lasts at most 28 days"));
            }
            hub(Request::Timeout {
                community: CommunityId(required(r.community_id, "community_id")?),
                user: UserId(required(r.user_id, "user_id")?),
                duration_ms: r.duration_ms,
                reason: Reason::parse(&r.reason)?,
            })
        }
        Wire::ListMembers(r) => {
            let limit = match r.limit as usize {
                0 => MAX_MEMBER_PAGE,
                n => n.min(MAX_MEMBER_PAGE),
            };
            let community = CommunityId(required(r.community_id, "community_id")?);
            hub(Request::ListMembers { community, after: UserId(r.after_user_id), limit })
        }
        Wire::ListBans(r) => {
            hub(Request::ListBans { community: CommunityId(required(r.community_id, "community_id")?) })
        }
        Wire::AuditLog(r) => hub(Request::AuditLog(AuditQuery {
            community: CommunityId(required(r.community_id, "community_id")?),
            before: (r.before != 0).then_some(AuditId(r.before)),
            limit: match r.limit {
                0 => HistoryQuery::DEFAULT_LIMIT,
                n => n.min(HistoryQuery::MAX_LIMIT),
            },
        })),
        Wire::UpdateProfile(r) => hub(Request::UpdateProfile {
            display_name: r.display_name.as_deref().map(DisplayName::parse).transpose()?,
            status_text: r.status_text.as_deref().map(StatusText::parse).transpose()?,
        }),
        Wire::SetPresence(r) => {
            hub(Request::SetPresence { status: r.status.map(Chosen::parse).transpose()?, afk: r.afk })
        }
        Wire::OpenDirect(r) => {
            let users = user_ids(r.user_ids, "user_ids")?;
            if users.is_empty() || users.len() > MAX_GROUP - 1 {
                return Err(invalid(format!("user_ids must name 1-{} other users", MAX_GROUP - 1)));
            }
            if users.len() == 1 && !r.name.is_empty() {
                return Err(invalid("a direct conversation has no name; name only groups"));
            }
            hub(Request::OpenDirect { users, name: GroupName::parse(&r.name)? })
        }
        Wire::UpdateGroup(r) => hub(Request::UpdateGroup {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            name: r.name.as_deref().map(GroupName::parse).transpose()?,
            add: user_ids(r.add_user_ids, "add_user_ids")?,
            remove: user_ids(r.remove_user_ids, "remove_user_ids")?,
        }),
        Wire::LeaveGroups(r) => {
            hub(Request::LeaveGroups { user: (r.user_id != 0).then_some(UserId(r.user_id)) })
        }
        Wire::Typing(r) => hub(Request::Typing { channel: ChannelId(required(r.channel_id, "channel_id")?) }),
        Wire::Ack(r) => hub(Request::Ack {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            message: (r.message_id != 0).then_some(MessageId(r.message_id)),
        }),
        Wire::JoinVoice(r) => hub(Request::JoinVoice {
            channel: ChannelId(required(r.channel_id, "channel_id")?),
            self_mute: r.self_mute,
            self_deaf: r.self_deaf,
        }),
        Wire::LeaveVoice(_) => hub(Request::LeaveVoice),
        Wire::UpdateVoiceState(r) => {
            hub(Request::UpdateVoiceState { self_mute: r.self_mute, self_deaf: r.self_deaf })
        }
        Wire::ModerateVoice(r) => {
            if r.mute.is_none() && r.move_to_channel_id.is_none() {
                return Err(invalid("say what to do: mute and/or move_to_channel_id"));
            }
            hub(Request::ModerateVoice {
                community: CommunityId(required(r.community_id, "community_id")?),
                user: UserId(required(r.user_id, "user_id")?),
                mute: r.mute,
                move_to: r.move_to_channel_id.map(|c| (c != 0).then_some(ChannelId(c))),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(_: usize) -> String {
        "CODE".into()
    }

    #[test]
    fn an_unknown_request_kind_is_unsupported() {
        let err = parse(None, code).unwrap_err();
        assert_eq!(err.code, ErrorCode::Unsupported);
    }

    #[test]
    fn zero_ids_are_refused_before_the_hub() {
        let req = Wire::SendMessage(v1::SendMessageRequest {
            channel_id: 0,
            body: "hi".into(),
            ..Default::default()
        });
        assert_eq!(parse(Some(req), code).unwrap_err().code, ErrorCode::Invalid);
    }

    #[test]
    fn history_limits_clamp_to_the_server_maximum() {
        let req = Wire::History(v1::HistoryRequest { channel_id: 1, anchor: None, limit: 1_000_000 });
        let Ok(Parsed::Hub(Request::History(q))) = parse(Some(req), code) else { panic!() };
        assert_eq!(q.limit, HistoryQuery::MAX_LIMIT);
    }

    #[test]
    fn invite_codes_come_from_the_edge() {
        let req =
            Wire::CreateInvite(v1::CreateInviteRequest { community_id: 1, max_uses: 0, expires_in_ms: 0 });
        let Ok(Parsed::Hub(Request::CreateInvite { code, max_uses, expires_in_ms, .. })) =
            parse(Some(req), code)
        else {
            panic!()
        };
        assert_eq!((code.as_str(), max_uses, expires_in_ms), ("CODE", None, None));
    }
}
