//! The hub: every community, channel, member, permission and message ordering
//! decision, as a deterministic state machine with no IO and no clock.
//!
//! # Driving it
//!
//! 1. Call [`Hub::handle`] with the current time and one [`Input`].
//! 2. Drain [`Hub::poll_output`] until it returns `None`, carrying out each
//!    [`Output`] in order.
//! 3. When the store has durably committed the writes of a
//!    [`Output::Persist`], feed [`Input::Committed`] with its ticket (or any
//!    later one: commits are cumulative), and drain again.
//! 4. Ask [`Hub::poll_timeout`] when the hub next needs the time, and feed
//!    [`Input::Tick`] then if nothing else came first. Every deadline the
//!    hub keeps (unauthenticated sessions, detached sessions waiting for a
//!    resume) is its own: no edge runs a timer for it.
//!
//! # Durability ordering
//!
//! Nothing a session is sent can depend on a write that is not on disk: once a
//! `Persist` is issued, every later session-facing output (replies, events,
//! reads, closes) is held back until that ticket is committed, and released in
//! the order it was produced. So an acknowledgement never precedes its commit,
//! other members never see a message that a crash could still lose, and every
//! session sees events in the one order the hub applied them.
//!
//! # Visibility
//!
//! Every request is checked against the caller's permissions
//! ([`crate::permissions`]). What the caller may not see answers exactly like
//! what does not exist, and events only reach sessions that may see them.

mod account;
mod bots;
mod cold;
pub use bots::{CALL_TIMEOUT_MS, MAX_BOTS_PER_COMMUNITY, MAX_CALLS_PER_BOT};
mod community;
mod direct;
mod directory;
mod files;
mod guest;
pub mod limits;
mod memberships;
mod messages;
mod moderation;
mod outbox;
mod outgoing;
mod pipes;
pub use account::RESET_CODE_MS;
pub use files::Grant;
pub use outgoing::{Encoded, Outgoing};
pub use pipes::OFFER_MS;
mod presence;
mod replay;
pub use presence::TYPING_MS;
mod roles;
mod session;
mod timeline;
use crate::ids::IdMap;
use directory::Directory;
use memberships::Memberships;
use session::Sessions;
use timeline::{MessageMeta, Nonces, Timeline};
mod voice;
pub use voice::{DEFAULT_VOICE_ROOM, VoiceRoute};
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kith_proto::v1::{self, CloseCode, ErrorCode, event::Body as EventBody, reply::Result as ReplyResult};

use crate::ids::{ChannelId, CommunityId, IdGen, MessageId, RoleId, SessionId, Timestamp, TokenId, UserId};
use crate::permissions::{Override, OverrideTarget, Permissions};
use crate::rate::{Buckets, RateLimit};
use crate::request::{AuditQuery, HistoryQuery, Request};
use crate::store::{Load, Loaded, StoredInvite, StoredState, Write};

/// The one answer to every failed sign-in: a wrong name, a wrong password,
/// an unknown or revoked token all read the same, so that none can be told
/// apart (decision 4) — and it says what to do.
pub const BAD_CREDENTIALS: &str = "that username and password do not match (or this saved login was signed out): \
     check both and try again; usernames ignore case, passwords do not";

/// Limits that keep one user from growing the hub's memory without bound.
pub const MAX_CHANNELS_PER_COMMUNITY: usize = 500;
pub const MAX_ROLES_PER_COMMUNITY: usize = 250;
pub const MAX_OVERRIDES_PER_CHANNEL: usize = 100;
/// Communities whose snapshots list every member: up to 1 000 (about 36 KB
/// of `Ready`); past it, a sign-in costs what the online members cost.
pub const FULL_MEMBER_LIST: usize = 1000;
/// Communities one account may own.
pub const MAX_COMMUNITIES_OWNED: usize = 100;
/// Usable (unexpired, not used up) invites one community may have.
pub const MAX_INVITES_PER_COMMUNITY: usize = 1000;
/// Group conversations one account may be in. Others add people to groups
/// without asking, and every group is in its members' snapshots: without a
/// cap, a member could bloat a co-member's `Ready` until it no longer loads.
pub const MAX_GROUPS_PER_USER: usize = 100;
/// `ServerInfo` requests per session: a client asks once or twice.
const SERVER_INFO_RATE: RateLimit = RateLimit::new(5, 1000);
/// How long a connected session keeps sent events for replay. Only events
/// still in flight when a connection drops can be missed, and those are
/// seconds old; a detached session keeps collecting for the whole grace window.
pub const REPLAY_WHILE_CONNECTED_MS: u64 = 30_000;

/// Operator choices the hub enforces.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Anyone may register without an invite (once an owner exists).
    pub open_registration: bool,
    /// The one-time code that makes its registrant the server owner. Only
    /// meaningful while the server has no owner.
    pub setup_code: Option<String>,
    /// How long a session whose connection dropped stays resumable.
    pub resume_grace_ms: u64,
    /// Events kept per session for resuming; a session that missed more gets
    /// a fresh snapshot instead.
    pub replay_events: usize,
    /// Messages sent, edited or deleted, per account. `None`: unlimited.
    pub message_rate: Option<RateLimit>,
    /// The same, for each guest (on top of `message_rate`).
    pub guest_message_rate: Option<RateLimit>,
    /// Typing notices per account. `None`: unlimited.
    pub typing_rate: Option<RateLimit>,
    /// The other rate classes ([`limits::RateClass`]), per account.
    pub read_rate: Option<RateLimit>,
    pub change_rate: Option<RateLimit>,
    pub profile_rate: Option<RateLimit>,
    pub group_rate: Option<RateLimit>,
    pub voice_rate: Option<RateLimit>,
    /// Bots' answers to calls, per bot.
    pub answer_rate: Option<RateLimit>,
    /// Rate-limit refusals a session may collect; one that keeps sending
    /// past them (ignoring `retry_after_ms`) is disconnected. `None`: never.
    pub refusal_rate: Option<RateLimit>,
    /// People in one voice channel at most.
    pub voice_room: usize,
    /// Snapshots list every member of a community up to this many; a larger
    /// one lists who is around and the rest is paged (`ListMembers`).
    pub full_member_list: usize,
    /// Messages per channel the hub holds in memory (the newest); older
    /// ones are loaded from the store when a request needs one.
    pub recent_messages: usize,
    /// The `host:port` invites name: where people elsewhere reach this
    /// server. `None`: invites carry no link (clients build one).
    pub public_address: Option<String>,
    /// The server identity invites vouch for (`sha256:<hex>`).
    pub fingerprint: Option<String>,
    /// Who may create communities.
    pub community_creation: CommunityCreation,
    /// The server serves the browser client: invites carry a web link too.
    pub web: bool,
    /// The largest file one upload may be.
    pub max_attachment_bytes: u64,
    /// The most one message's files may come to.
    pub max_message_attachment_bytes: u64,
    /// Bytes of files one account's messages may carry; `None`: no limit.
    pub user_files_quota: Option<u64>,
    /// Bytes of files one community's messages may carry; `None`: no limit.
    pub community_files_quota: Option<u64>,
}

/// The default largest upload: 100 MiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 100 << 20;
/// The default most one message's files may come to: 250 MiB (a few
/// phone videos, not the ten largest files at once).
pub const DEFAULT_MAX_MESSAGE_ATTACHMENT_BYTES: u64 = 250 << 20;
/// The default quotas: 10 GiB of files per account, 100 GiB per community.
pub const DEFAULT_USER_FILES_QUOTA: u64 = 10 << 30;
pub const DEFAULT_COMMUNITY_FILES_QUOTA: u64 = 100 << 30;

/// The default of [`HubConfig::recent_messages`]: 8 192 per channel, about
/// 700 KiB at most for the busiest channel, and four times the unread
/// messages a client is ever told of.
pub const RECENT_MESSAGES: usize = 8192;

/// Who may create communities on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommunityCreation {
    /// Every member (the default: friends set up their own groups).
    #[default]
    Everyone,
    /// Only the server owner.
    Owner,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            open_registration: false,
            setup_code: None,
            resume_grace_ms: 120_000,
            replay_events: 4096,
            // Conversation pace with room for a pasted burst; a bot piping
            // lines in is slowed to 5 a second, not cut off.
            message_rate: Some(RateLimit::new(20, 200)),
            // A stranger may say hello, not hold the floor.
            guest_message_rate: Some(RateLimit::new(3, 5000)),
            typing_rate: Some(RateLimit::new(10, 1000)),
            read_rate: Some(limits::READ_RATE),
            change_rate: Some(limits::CHANGE_RATE),
            profile_rate: Some(limits::PROFILE_RATE),
            group_rate: Some(limits::GROUP_RATE),
            voice_rate: Some(limits::VOICE_RATE),
            answer_rate: Some(limits::ANSWER_RATE),
            // A client honouring retry_after_ms collects one refusal per wait.
            refusal_rate: Some(RateLimit::new(50, 1000)),
            voice_room: DEFAULT_VOICE_ROOM,
            full_member_list: FULL_MEMBER_LIST,
            recent_messages: RECENT_MESSAGES,
            public_address: None,
            fingerprint: None,
            community_creation: CommunityCreation::Everyone,
            web: false,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            max_message_attachment_bytes: DEFAULT_MAX_MESSAGE_ATTACHMENT_BYTES,
            user_files_quota: Some(DEFAULT_USER_FILES_QUOTA),
            community_files_quota: Some(DEFAULT_COMMUNITY_FILES_QUOTA),
        }
    }
}

/// Something that happened at an edge.
#[derive(Debug)]
pub enum Input {
    /// A connection was accepted and may now send requests. `resume_key` is
    /// fresh randomness from the edge (the hub has none): the secret
    /// `session_id` a client later resumes with; `None` if the transport
    /// never comes back to a session (a terminal), which then keeps nothing
    /// for a resume. A session that has not
    /// authenticated `auth_within_ms` later is closed (the transport says
    /// how long: a person typing at a telnet prompt needs longer than a
    /// program).
    Connected { session: SessionId, resume_key: Option<String>, auth_within_ms: u64 },
    /// Time passed with nothing else happening: the hub's deadlines
    /// ([`Hub::poll_timeout`]) up to `now` are carried out.
    Tick,
    /// The connection is gone; nothing more is sent to it. An
    /// authenticated session stays resumable for the grace window.
    Disconnected { session: SessionId },
    /// The client ended the connection on purpose (it finished its control
    /// stream): the session ends now, with nothing kept for a resume.
    Closed { session: SessionId },
    /// A validated request from a session.
    Request { session: SessionId, request_id: u64, request: Request },
    /// Every `Persist` up to and including `ticket` is durable.
    Committed { ticket: u64 },
    /// The store's answer to `Output::Load { id }`; `None`: it could not
    /// answer now (its readers were busy, or it failed).
    Loaded { id: u64, loaded: Option<Loaded> },
    /// The bytes of the upload granted with `key` are stored durably and
    /// matched its hash; `content_type` is what the edge found in them, and
    /// `blake3` and `size` are those of what was kept (a photo's metadata
    /// taken out changes both).
    UploadStored { key: String, content_type: String, blake3: [u8; 32], size: u64, width: u32, height: u32 },
}

/// Something for the edges to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Make these writes durable, in order, then report `Committed(ticket)`.
    Persist { ticket: u64, writes: Vec<Write> },
    /// Queue this on a session's outbox.
    Send { to: SessionId, message: Outgoing },
    /// Read from the store and answer `request_id` on `to`. Authorisation was
    /// done here.
    Read { to: SessionId, request_id: u64, read: Read },
    /// Read this from the store and answer with `Input::Loaded { id }`:
    /// a request waits for it (messages older than the hub holds). Held
    /// behind the writes issued before it, so the store has them.
    Load { id: u64, load: Load },
    /// Close the session's connection with this code and reason.
    Close { session: SessionId, code: CloseCode, reason: String },
    /// Forward voice in `channel` among exactly these sessions from now on
    /// (none: the room is empty). Sessions not in any room's latest list
    /// have no voice route. Not held behind pending commits.
    VoiceRoom { channel: ChannelId, members: Vec<VoiceRoute> },
    /// Accept this key on transfer streams (see `hub::files`). Not held
    /// behind pending commits; the reply that hands out the key comes after.
    Grant(Grant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    History(HistoryQuery),
    /// Answer with this message as a `Reply.message`.
    Message(MessageId),
    /// A page of a community's audit log as a `Reply.audit_log`.
    Audit(AuditQuery),
}

/// Why a request was refused; becomes an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    NotAuthenticated,
    AlreadyAuthenticated,
    BadCredentials,
    /// Absent, or present but not visible to the caller: one answer for both.
    NotFound(&'static str),
    Forbidden(String),
    Taken(&'static str),
    RegistrationClosed(&'static str),
    InviteInvalid,
    Invalid(&'static str),
    /// Over a size limit; the reason names it.
    TooLarge(String),
    /// The request does not fit what it names (a command's options); the
    /// reason says how.
    Unfit(String),
    /// Wait this many milliseconds.
    RateLimited(&'static str, u64),
    /// Wait this many milliseconds, for a reason not the caller's own (a
    /// bot with its calls full): said like a rate limit, but not counted
    /// against the caller as ignoring one.
    Busy(&'static str, u64),
}

fn forbidden(why: impl Into<String>) -> Refusal {
    Refusal::Forbidden(why.into())
}

impl Refusal {
    /// The error code, reason, and milliseconds to wait before retrying.
    fn wire(self) -> (ErrorCode, String, u64) {
        if let Refusal::RateLimited(what, ms) = self {
            let reason = format!("slow down: too many {what}; retry in {ms} ms");
            return (ErrorCode::RateLimited, reason, ms);
        }
        if let Refusal::Busy(what, ms) = self {
            return (ErrorCode::RateLimited, format!("{what}; retry in {ms} ms"), ms);
        }
        let (code, reason) = match self {
            Refusal::NotAuthenticated => (ErrorCode::NotAuthenticated, "log in first".into()),
            Refusal::AlreadyAuthenticated => (ErrorCode::AlreadyAuthenticated, "already logged in".into()),
            Refusal::BadCredentials => (ErrorCode::BadCredentials, BAD_CREDENTIALS.into()),
            Refusal::NotFound(what) => (ErrorCode::NotFound, format!("no such {what}")),
            Refusal::Forbidden(why) => (ErrorCode::Forbidden, why),
            Refusal::Taken(what) => (ErrorCode::Taken, format!("that {what} is taken")),
            Refusal::RegistrationClosed(why) => (ErrorCode::RegistrationClosed, why.into()),
            Refusal::InviteInvalid => {
                (ErrorCode::InviteInvalid, "the invite is unknown, expired or used up".into())
            }
            Refusal::Invalid(why) => (ErrorCode::Invalid, why.into()),
            Refusal::TooLarge(why) => (ErrorCode::TooLarge, why),
            Refusal::Unfit(why) => (ErrorCode::Invalid, why),
            Refusal::RateLimited(..) | Refusal::Busy(..) => unreachable!("answered above"),
        };
        (code, reason, 0)
    }
}

type Outcome = Result<(), Refusal>;

#[derive(Debug)]
struct Community {
    name: String,
    owner: UserId,
    members: BTreeMap<UserId, Member>,
    channels: BTreeMap<ChannelId, Channel>,
    /// Every role, `@everyone` (keyed by the community's id) included.
    roles: BTreeMap<RoleId, Role>,
    bans: BTreeMap<UserId, Ban>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    roles: BTreeSet<RoleId>,
    nickname: Option<String>,
    timeout_until: Option<Timestamp>,
    joined_at: Timestamp,
    /// A guest's: never more than these permissions (see `hub::guest`).
    ceiling: Option<Permissions>,
    /// A moderator muted them in voice (kept while they stay a member; not
    /// stored, so a restart lifts it).
    voice_muted: bool,
}

impl Member {
    fn new(joined_at: Timestamp) -> Self {
        Member {
            roles: BTreeSet::new(),
            nickname: None,
            timeout_until: None,
            joined_at,
            ceiling: None,
            voice_muted: false,
        }
    }

    fn timed_out(&self, now: Timestamp) -> bool {
        self.timeout_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug, Clone)]
struct Role {
    name: String,
    permissions: Permissions,
    rank: u32,
}

#[derive(Debug, Clone)]
struct Ban {
    by: UserId,
    reason: String,
    at: Timestamp,
}

#[derive(Debug)]
struct Channel {
    community: CommunityId,
    name: String,
    topic: String,
    overrides: BTreeMap<OverrideTarget, Override>,
    /// A voice channel (see `hub::voice`).
    voice: bool,
}

#[derive(Debug, Clone, Copy)]
struct Auth {
    user: UserId,
    /// The login this session is under; `None` for a guest, which has none.
    token: Option<TokenId>,
}

/// The state machine. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    ids: IdGen,

    /// Accounts, their names and logins.
    directory: Directory,
    communities: BTreeMap<CommunityId, Community>,
    /// Who is in which community and conversation, by user.
    memberships: Memberships,
    /// The community each channel is in (its owner: see `Community`).
    channel_home: IdMap<ChannelId, CommunityId>,
    invites: HashMap<String, StoredInvite>,
    /// Each channel's and conversation's messages and read marks.
    timelines: IdMap<ChannelId, Timeline>,
    nonces: Nonces,
    /// Conversations outside communities.
    directs: direct::Directs,
    /// The presence each user was last shown with, to their own sessions
    /// (others see `Invisible` as offline). Absent: offline.
    shown: IdMap<UserId, v1::PresenceStatus>,
    /// When each user last had a typing notice passed on, per channel.
    typing: IdMap<(UserId, ChannelId), Timestamp>,
    /// Per-account rate classes (see `limits.rs`).
    limits: limits::Limits,
    refusal_limits: Buckets<SessionId>,
    /// Rate-limit refusals so far, by what there were too many of (for
    /// the operator's metrics).
    rate_refusals: BTreeMap<&'static str, u64>,
    /// `ServerInfo` per session: it is answered before login, so no
    /// account's bucket can hold it back.
    info_limits: Buckets<SessionId>,

    /// Who is in voice, where (see `hub::voice`).
    voice: voice::Voice,

    /// Every session, and the indexes that find them.
    sessions: Sessions,
    /// The events recently sent, which sessions' replays point into.
    journal: replay::Journal,
    /// Uploads granted and not yet attached.
    uploads: files::Uploads,
    /// Bytes of files per account and per community, for the quotas.
    usage: files::Usage,
    /// Bots' commands and the calls in flight.
    bots: bots::Bots,
    /// Pipes offered and not yet taken.
    pipes: pipes::Pipes,
    /// The time of the input being handled.
    now: Timestamp,

    outbox: outbox::Outbox,
    /// Requests waiting for the store (messages older than the hub holds).
    waiting: cold::Waiting,
    /// What the request running now loaded, while it runs.
    stash: Option<cold::Stash>,
}

impl Hub {
    /// Takes the settings that may change while the server runs from
    /// `fresh`: who may register and create communities, the per-account
    /// rate limits (their buckets start full again), voice room size,
    /// upload limits and quotas. What only a start decides (the setup code,
    /// the address and identity invites name, the resume window) stays.
    pub fn reconfigure(&mut self, fresh: HubConfig) {
        let kept = HubConfig {
            setup_code: self.config.setup_code.take(),
            public_address: self.config.public_address.take(),
            fingerprint: self.config.fingerprint.take(),
            resume_grace_ms: self.config.resume_grace_ms,
            replay_events: self.config.replay_events,
            refusal_rate: self.config.refusal_rate,
            web: self.config.web,
            ..fresh
        };
        self.config = kept;
        self.limits = limits::Limits::new(&self.config);
    }

    /// Rate-limit refusals so far, by what there were too many of.
    pub fn rate_refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.rate_refusals.iter().map(|(what, n)| (*what, *n))
    }

    /// A hub continuing from what the store holds.
    pub fn new(mut state: StoredState, config: HubConfig) -> Self {
        let refusal_rate = config.refusal_rate;
        let limits = limits::Limits::new(&config);
        let mut hub = Hub {
            config,
            ids: IdGen::after(state.max_id),
            directory: Directory::load(&mut state),
            communities: BTreeMap::new(),
            memberships: Memberships::default(),
            channel_home: IdMap::default(),
            invites: HashMap::new(),
            timelines: IdMap::default(),
            nonces: Nonces::default(),
            directs: direct::Directs::default(),
            shown: IdMap::default(),
            typing: IdMap::default(),
            limits,
            refusal_limits: Buckets::new(refusal_rate),
            rate_refusals: BTreeMap::new(),
            info_limits: Buckets::new(Some(SERVER_INFO_RATE)),
            voice: voice::Voice::default(),
            bots: bots::Bots::default(),
            pipes: pipes::Pipes::default(),
            sessions: Sessions::default(),
            journal: replay::Journal::default(),
            uploads: files::Uploads::default(),
            usage: files::Usage::default(),
            now: Timestamp(0),
            outbox: outbox::Outbox::default(),
            waiting: cold::Waiting::default(),
            stash: None,
        };
        for (bot, commands) in &state.commands {
            hub.bots.load(*bot, commands);
        }
        for c in state.communities {
            hub.memberships.founded(c.owner, c.id);
            hub.communities.insert(
                c.id,
                Community {
                    name: c.name,
                    owner: c.owner,
                    members: BTreeMap::new(),
                    channels: BTreeMap::new(),
                    roles: BTreeMap::new(),
                    bans: BTreeMap::new(),
                },
            );
        }
        for r in state.roles {
            if let Some(c) = hub.communities.get_mut(&r.community) {
                c.roles.insert(r.id, Role { name: r.name, permissions: r.permissions, rank: r.rank });
            }
        }
        for m in state.members {
            if let Some(c) = hub.communities.get_mut(&m.community) {
                let member = Member {
                    nickname: m.nickname,
                    timeout_until: m.timeout_until,
                    ..Member::new(m.joined_at)
                };
                c.members.insert(m.user, member);
                hub.memberships.joined(m.user, m.community);
            }
        }
        for (community, user, role) in state.member_roles {
            if let Some(m) = hub.communities.get_mut(&community).and_then(|c| c.members.get_mut(&user)) {
                m.roles.insert(role);
            }
        }
        for b in state.bans {
            if let Some(c) = hub.communities.get_mut(&b.community) {
                c.bans.insert(b.user, Ban { by: b.by, reason: b.reason, at: b.at });
                hub.memberships.banned(b.user, b.community);
            }
        }
        for ch in state.channels {
            hub.add_channel(ch);
        }
        for o in state.overrides {
            if let Some(ch) = hub.channel_mut(o.channel) {
                ch.overrides.insert(o.target, Override { allow: o.allow, deny: o.deny });
            }
        }
        for i in state.invites {
            hub.invites.insert(i.code.clone(), i);
        }
        for (channel, floor) in state.floors {
            hub.timelines.entry(channel).or_default().set_floor(floor);
        }
        for author in state.authored {
            if let Some(u) = hub.directory.get_mut(author) {
                u.authored = true;
            }
        }
        for (author, channel, bytes) in state.usage {
            hub.usage.add(author, hub.community_of(channel), bytes);
        }
        for m in state.messages {
            let (id, channel) = (m.id, m.channel);
            if let Some(nonce) = &m.nonce {
                hub.nonces.insert(m.author, nonce, channel, id);
            }
            hub.insert_message(channel, id, m.into());
        }
        let idle: Vec<UserId> = hub
            .directory
            .ids()
            .filter(|id| crate::text::Username::guest_number(&hub.directory[id].stored.fold).is_some())
            .filter(|id| hub.recyclable_guest(*id))
            .collect();
        for guest in idle {
            hub.directory.park_guest(guest);
        }
        for d in state.directs {
            hub.add_direct(d);
        }
        for (user, channel, last) in state.read_states {
            hub.timelines.entry(channel).or_default().set_read(user, Some(last));
        }
        if hub.directory.owner().is_some() {
            hub.config.setup_code = None;
        }
        hub
    }

    /// True until an owner has registered; the edge then shows the setup code.
    pub fn needs_owner(&self) -> bool {
        self.directory.owner().is_none()
    }

    /// Applies one input. Drain [`Hub::poll_output`] afterwards.
    pub fn handle(&mut self, now: Timestamp, input: Input) {
        self.now = self.now.max(now);
        self.expire_detached();
        self.expire_unauthenticated();
        self.expire_calls();
        self.expire_pipes();
        match input {
            Input::Tick => {}
            Input::Connected { session, resume_key, auth_within_ms } => {
                self.sessions.connect(session, resume_key, self.now.plus_ms(auth_within_ms));
            }
            Input::Disconnected { session } => self.detach(session),
            Input::Closed { session } => self.drop_session_now(session),
            Input::Committed { ticket } => self.outbox.committed(ticket),
            Input::Loaded { id, loaded } => self.loaded(id, loaded),
            Input::UploadStored { key, content_type, blake3, size, width, height } => {
                let kept = crate::store::AttachmentMeta {
                    name: String::new(),
                    size,
                    content_type,
                    blake3,
                    width,
                    height,
                };
                self.upload_stored(&key, kept)
            }
            Input::Request { session, request_id, request } => {
                if self.sessions.get(session).is_none() {
                    return;
                }
                if let Err(refusal) = self.request(now, session, request_id, request) {
                    self.refused(session, request_id, refusal);
                }
            }
        }
        // Voice is re-derived (a diff: only what changed goes out) after any
        // input that may have changed it, whatever the request was.
        if self.voice.needs_sync(self.outbox.take_access_changed()) {
            self.voice_sync();
        }
        #[cfg(debug_assertions)]
        self.memberships.check(
            self.communities.iter().map(|(id, c)| (*id, c)),
            self.directs.iter().flat_map(|(id, d)| d.members.iter().map(move |u| (*id, *u))),
        );
    }

    /// Answers request `rid` with why it was refused; a session that keeps
    /// sending past rate-limit refusals is cut off.
    fn refused(&mut self, session: SessionId, rid: u64, refusal: Refusal) {
        if let Refusal::RateLimited(what, _) = refusal {
            *self.rate_refusals.entry(what).or_default() += 1;
        }
        let flooding = matches!(refusal, Refusal::RateLimited(..))
            && self.refusal_limits.check(self.now, &session).is_err();
        let (code, reason, retry_after_ms) = refusal.wire();
        self.reply_error(session, rid, code, reason, retry_after_ms);
        if flooding {
            // Sustained abuse: cut it off, without a way to resume.
            self.drop_session_now(session);
            let reason = "disconnected for flooding: requests kept coming after rate-limit refusals";
            self.emit(Output::Close { session, code: CloseCode::RateLimited, reason: reason.into() });
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop()
    }

    /// When the hub next needs to be handed the time ([`Input::Tick`]), if
    /// it has a deadline at all: the first unauthenticated session's time to
    /// sign in, or the first detached session's end of grace.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let sessions = self.sessions.next_deadline(self.config.resume_grace_ms);
        [sessions, self.bots.next_deadline(), self.pipes.next_deadline()].into_iter().flatten().min()
    }

    /// Closes the sessions whose time to authenticate is up.
    fn expire_unauthenticated(&mut self) {
        for session in self.sessions.overdue(self.now) {
            self.drop_session(session);
            let reason = "no successful authentication within the deadline".to_owned();
            self.emit(Output::Close { session, code: CloseCode::Timeout, reason });
        }
    }

    /// Forgets a connected session for good and updates its user's presence.
    fn drop_session_now(&mut self, session: SessionId) {
        let user = self.sessions.auth(session).map(|a| a.user);
        self.drop_session(session);
        if let Some(user) = user {
            self.refresh_presence(user);
        }
    }

    /// Forgets a session for good: it cannot be resumed.
    fn drop_session(&mut self, session: SessionId) {
        self.uploads.forget(session);
        self.forget_parked(session);
        let Some(gone) = self.sessions.remove(session) else { return };
        gone.replay.release(&mut self.journal);
        self.voice.sessions_changed();
        if let Some(user) = gone.last_of
            && self.is_bot(user)
        {
            self.bot_gone(user);
        }
        if let Some(user) = gone.last_of
            && self.is_guest(user)
        {
            self.end_guest(user);
        }
    }

    // ----- output plumbing ---------------------------------------------------

    fn persist(&mut self, writes: Vec<Write>) {
        self.outbox.persist(writes);
    }

    /// Queues a session-facing output behind any uncommitted write.
    fn emit(&mut self, out: Output) {
        self.outbox.emit(out);
    }

    fn reply(&mut self, to: SessionId, request_id: u64, result: ReplyResult) {
        let msg = v1::ServerMessage {
            kind: Some(v1::server_message::Kind::Reply(v1::Reply { request_id, result: Some(result) })),
        };
        self.emit(Output::Send { to, message: Outgoing::message(msg) });
    }

    fn reply_empty(&mut self, to: SessionId, request_id: u64) {
        self.reply(to, request_id, ReplyResult::Empty(v1::Empty {}));
    }

    fn reply_error(
        &mut self,
        to: SessionId,
        request_id: u64,
        code: ErrorCode,
        reason: String,
        retry_after_ms: u64,
    ) {
        let msg = v1::ServerMessage {
            kind: Some(v1::server_message::Kind::Error(v1::Error {
                request_id,
                code: code as i32,
                reason,
                retry_after_ms,
            })),
        };
        self.emit(Output::Send { to, message: Outgoing::message(msg) });
    }

    /// Sends one event to every authenticated session of `users`. The
    /// session whose request caused it is one of them: its reply says the
    /// request succeeded, the event is what changed — one rule for every
    /// change, so no request can forget to show its own effect (and the
    /// user's other devices see the same). The event is encoded once;
    /// recipients share the bytes.
    fn fan_out<'a>(&mut self, users: impl IntoIterator<Item = &'a UserId>, body: EventBody) {
        let event = Outgoing::event(body);
        let targets: Vec<SessionId> = users.into_iter().flat_map(|u| self.sessions.of_user(*u)).collect();
        let entry = self.journal(&event);
        for to in targets {
            self.deliver(to, entry, &event);
        }
        self.journal.settle(entry);
    }

    /// Puts `event` in the journal every session's replay points into, and
    /// says where. The journal keeps what the longest window in use still
    /// reaches: a detached session's grace if there may be one, else a
    /// connected session's.
    fn journal(&mut self, event: &std::sync::Arc<Encoded<v1::Event>>) -> u64 {
        let grace = self.config.resume_grace_ms;
        let window = if self.sessions.any_detached() { grace } else { grace.min(REPLAY_WHILE_CONNECTED_MS) };
        let oldest = Timestamp(self.now.0.saturating_sub(window));
        self.journal.append(self.now, oldest, event.clone())
    }

    /// Sends one session an event (numbered, and kept for a resume) that is
    /// journal `entry`.
    fn deliver(&mut self, to: SessionId, entry: u64, event: &std::sync::Arc<Encoded<v1::Event>>) {
        let (now, keep, grace) = (self.now, self.config.replay_events, self.config.resume_grace_ms);
        let Some(session) = self.sessions.get_mut(to) else { return };
        let keep = if session.resumable() { keep } else { 0 };
        session.seq += 1;
        let seq = session.seq;
        // What a resume could need: recent enough, and not too much of it.
        let window = if session.detached_at.is_some() { grace } else { grace.min(REPLAY_WHILE_CONNECTED_MS) };
        let oldest = Timestamp(now.0.saturating_sub(window));
        session.replay.push(seq, entry, keep, oldest, &mut self.journal);
        if session.detached_at.is_none() {
            self.emit(Output::Send { to, message: Outgoing::Event { seq, event: event.clone() } });
        }
    }

    /// Fans out to every member of a community.
    fn fan_out_community(&mut self, community: CommunityId, body: EventBody) {
        let members = self.reachable_members(community);
        self.fan_out(&members, body);
    }

    /// Sends to each of `users` an event made for them.
    fn fan_out_each(&mut self, users: &[UserId], event: impl Fn(&Self, UserId) -> EventBody) {
        for user in users {
            let body = event(self, *user);
            self.fan_out(&[*user], body);
        }
    }

    /// Fans out to the members who may view a channel.
    fn fan_out_channel(&mut self, channel: ChannelId, body: EventBody) {
        let viewers = self.viewers(channel);
        self.fan_out(&viewers, body);
    }

    /// The members of `community` an event could reach, in id order: all of
    /// them, or — when fewer people are signed in than it has members — the
    /// members among those signed in. So telling a large community costs
    /// what its online members cost, not its size (members without a
    /// session have nowhere to be sent anything).
    fn reachable_members(&self, community: CommunityId) -> Vec<UserId> {
        let Some(c) = self.communities.get(&community) else { return Vec::new() };
        if self.sessions.users_len() >= c.members.len() {
            return c.members.keys().copied().collect();
        }
        let mut online: Vec<UserId> = self.sessions.users().filter(|u| c.members.contains_key(u)).collect();
        online.sort_unstable();
        online
    }

    // ----- requests -------------------------------------------------------------

    fn request(&mut self, now: Timestamp, session: SessionId, rid: u64, request: Request) -> Outcome {
        let auth = self.sessions.auth(session);
        let user = match (&request, auth) {
            (
                Request::Register(_)
                | Request::Login { .. }
                | Request::Authenticate { .. }
                | Request::Guest { .. },
                Some(_),
            ) => {
                return Err(Refusal::AlreadyAuthenticated);
            }
            (Request::Guest { community, can_send }, None) => {
                let (community, can_send) = (community.clone(), *can_send);
                return self.guest_sign_in(now, session, rid, &community, can_send);
            }
            (Request::Register(reg), None) => return self.register(now, session, rid, reg),
            (Request::Login { user, token, token_hash }, None) => {
                let (user, token, token_hash) = (*user, token.clone(), *token_hash);
                return self.login(now, session, rid, user, token, token_hash);
            }
            (Request::RedeemResetCode { .. }, Some(_)) => return Err(Refusal::AlreadyAuthenticated),
            (Request::RedeemResetCode { user, code_hash, password_hash, token, token_hash }, None) => {
                let (user, code_hash, token, token_hash) = (*user, *code_hash, token.clone(), *token_hash);
                let password_hash = password_hash.clone();
                return self.redeem_reset_code(
                    now,
                    session,
                    rid,
                    user,
                    code_hash,
                    password_hash,
                    token,
                    token_hash,
                );
            }
            (Request::Authenticate { token_hash }, None) => {
                let (id, user) = self.directory.token(token_hash).ok_or(Refusal::BadCredentials)?;
                // A bot's token rotated after its suspension.
                self.refuse_suspended(user)?;
                self.bind(session, rid, Auth { user, token: Some(id) }, String::new(), String::new());
                return Ok(());
            }
            (Request::ServerInfo, _) => {
                self.info_limits.check(now, &session).map_err(|ms| Refusal::RateLimited("requests", ms))?;
                let info = self.server_info();
                self.reply(session, rid, ReplyResult::ServerInfo(info));
                return Ok(());
            }
            (Request::Resume { .. }, Some(_)) => return Err(Refusal::AlreadyAuthenticated),
            (Request::Resume { token_hash, resume_key, last_seq }, None) => {
                let (token_hash, resume_key, last_seq) = (*token_hash, resume_key.clone(), *last_seq);
                return self.resume(session, rid, token_hash, resume_key, last_seq);
            }
            (_, None) => return Err(Refusal::NotAuthenticated),
            (_, Some(auth)) => auth,
        };
        let me = user.user;
        let cx = Cx { now, session, rid, me };
        let guest = self.is_guest(me);
        if guest {
            Self::guest_may(&request)?;
        }
        self.limits.check(now, me, guest, &request)?;
        if let Some(load) = self.cold_need(me, now, &request) {
            return self.park(cx, user, request, load);
        }
        self.serve(cx, user, request)
    }

    /// Runs an authenticated request that has what it needs at hand.
    fn serve(&mut self, cx: Cx, user: Auth, request: Request) -> Outcome {
        let Cx { now, session, rid, me } = cx;
        match request {
            Request::Register(_)
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Guest { .. }
            | Request::Resume { .. }
            | Request::RedeemResetCode { .. }
            | Request::ServerInfo => {
                unreachable!("handled above")
            }
            Request::SuspendUser { username_fold, suspended, reason } => {
                self.suspend_user(cx, &username_fold, suspended, reason.0)
            }
            Request::DeleteAccount { username_fold, remove_messages } => {
                self.delete_account(cx, &username_fold, remove_messages)
            }
            Request::ListInvites { community } => self.list_invites(cx, community),
            Request::RevokeInvite { code } => self.revoke_invite(cx, &code),
            Request::IssueResetCode { username_fold, code, code_hash } => {
                self.issue_reset_code(cx, &username_fold, code, code_hash)
            }
            Request::Logout { everywhere } => self.logout(session, rid, user, everywhere),
            Request::UpdateProfile { display_name, status_text } => {
                self.update_profile(cx, display_name, status_text)
            }
            Request::CreateCommunity { name } => self.create_community(cx, name),
            Request::CreateBot { community, name, token, token_hash } => {
                self.create_bot(cx, community, name, token, token_hash)
            }
            Request::RotateBotToken { community, bot, token, token_hash } => {
                self.rotate_bot_token(cx, community, bot, token, token_hash)
            }
            Request::RegisterCommands { commands } => self.register_commands(cx, commands),
            Request::InvokeCommand { channel, bot, name, options } => {
                self.invoke_command(cx, channel, bot, name, options)
            }
            Request::AnswerCall { call, text, last, public, error } => {
                self.answer_call(cx, call, text, last, public, error)
            }
            Request::OpenPipe { to, name, size, key } => self.open_pipe(cx, to, name, size, key),
            Request::AcceptPipe { pipe, key } => self.accept_pipe(cx, pipe, key),
            Request::CreateInvite { community, max_uses, expires_in_ms, code } => {
                self.create_invite(cx, community, max_uses, expires_in_ms, code)
            }
            Request::JoinCommunity { code } => self.join_community(cx, code),
            Request::LeaveCommunity { community } => self.leave_community(cx, community),
            Request::CreateChannel { community, name, topic, voice } => {
                self.create_channel(cx, community, name, topic, voice)
            }
            Request::UpdateChannel { channel, name, topic } => self.update_channel(cx, channel, name, topic),
            Request::DeleteChannel { channel } => self.delete_channel(cx, channel),
            Request::SetOverride { channel, target, rule } => self.set_override(cx, channel, target, rule),
            Request::SendMessage { channel, body, nonce, reply_to, uploads } => {
                self.post_message(cx, channel, body, nonce, reply_to, &uploads).map(|_| ())
            }
            Request::CreateUpload { channel, name, size, blake3, message_bytes, key } => {
                self.create_upload(cx, channel, name, (size, message_bytes), blake3, key)
            }
            Request::OpenAttachments { channel, message, key } => {
                self.open_attachments(cx, channel, message, key)
            }
            Request::EditMessage { channel, message, body } => self.edit_message(cx, channel, message, body),
            Request::DeleteMessage { channel, message } => self.delete_message(cx, channel, message),
            Request::History(query) => {
                self.channel_permissions(query.channel, me, now)?;
                self.emit(Output::Read { to: session, request_id: rid, read: Read::History(query) });
                Ok(())
            }
            Request::CreateRole { community, name, permissions, rank } => {
                self.create_role(cx, community, name, permissions, rank)
            }
            Request::UpdateRole { community, role, name, permissions, rank } => {
                self.update_role(cx, community, role, name, permissions, rank)
            }
            Request::DeleteRole { community, role } => self.delete_role(cx, community, role),
            Request::UpdateMember { community, user, nickname, add_roles, remove_roles } => {
                self.update_member(cx, community, user, nickname, add_roles, remove_roles)
            }
            Request::Kick { community, user, reason } => self.kick(cx, community, user, reason),
            Request::Ban { community, user, reason, delete_message_hours } => {
                self.ban(cx, community, user, reason, delete_message_hours)
            }
            Request::Unban { community, user } => self.unban(cx, community, user),
            Request::Timeout { community, user, duration_ms, reason } => {
                self.timeout(cx, community, user, duration_ms, reason)
            }
            Request::ListBans { community } => self.list_bans(cx, community),
            Request::ListMembers { community, after, limit } => {
                self.list_members(cx, community, after, limit)
            }
            Request::SetPresence { status, afk } => self.set_presence(cx, status, afk),
            Request::OpenDirect { users, name } => self.open_direct(cx, users, name),
            Request::UpdateGroup { channel, name, add, remove } => {
                self.update_group(cx, channel, name, add, remove)
            }
            Request::LeaveGroups { user } => self.leave_groups(cx, user.unwrap_or(me)),
            Request::Typing { channel } => self.typing(cx, channel),
            Request::Ack { channel, message } => self.ack(cx, channel, message),
            Request::AuditLog(query) => {
                self.require(query.community, me, now, Permissions::VIEW_AUDIT_LOG, "view the audit log")?;
                self.emit(Output::Read { to: session, request_id: rid, read: Read::Audit(query) });
                Ok(())
            }
            Request::JoinVoice { channel, self_mute, self_deaf } => {
                self.join_voice(cx, channel, self_mute, self_deaf)
            }
            Request::LeaveVoice => self.leave_voice(cx),
            Request::UpdateVoiceState { self_mute, self_deaf } => {
                self.update_voice_state(cx, self_mute, self_deaf)
            }
            Request::ModerateVoice { community, user, mute, move_to } => {
                self.moderate_voice(cx, community, user, mute, move_to)
            }
        }
    }
}

/// The context of one authenticated request.
#[derive(Debug, Clone, Copy)]
struct Cx {
    now: Timestamp,
    session: SessionId,
    rid: u64,
    me: UserId,
}
