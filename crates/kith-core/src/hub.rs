//! The hub: every community, channel, member and message ordering decision,
//! as a deterministic state machine with no IO and no clock.
//!
//! # Driving it
//!
//! 1. Call [`Hub::handle`] with the current time and one [`Input`].
//! 2. Drain [`Hub::poll_output`] until it returns `None`, carrying out each
//!    [`Output`] in order.
//! 3. When the store has durably committed the writes of a
//!    [`Output::Persist`], feed [`Input::Committed`] with its ticket (or any
//!    later one: commits are cumulative), and drain again.
//!
//! # Durability ordering
//!
//! Nothing a session is sent can depend on a write that is not on disk: once a
//! `Persist` is issued, every later session-facing output (replies, events,
//! reads, closes) is held back until that ticket is committed, and released in
//! the order it was produced. So an acknowledgement never precedes its commit,
//! other members never see a message that a crash could still lose, and every
//! session sees events in the one order the hub applied them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use kith_proto::v1::{self, CloseCode, ErrorCode, event::Body as EventBody, reply::Result as ReplyResult};
use kith_proto::{encode_frame, event_body};

use crate::ids::{ChannelId, CommunityId, IdGen, MessageId, SessionId, Timestamp, TokenId, UserId};
use crate::request::{Credential, HistoryQuery, Registration, Request, TokenHash};
use crate::store::{
    NewMessage, StoredChannel, StoredCommunity, StoredInvite, StoredState, StoredToken, StoredUser, Write,
};
use crate::text::{Body, ChannelName, Nonce, Topic};

/// Limits that keep one user from growing the hub's memory without bound.
pub const MAX_CHANNELS_PER_COMMUNITY: usize = 500;

/// Operator choices the hub enforces.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    /// Anyone may register without an invite (once an owner exists).
    pub open_registration: bool,
    /// The one-time code that makes its registrant the server owner. Only
    /// meaningful while the server has no owner.
    pub setup_code: Option<String>,
}

/// Something that happened at an edge.
#[derive(Debug)]
pub enum Input {
    /// A connection was accepted and may now send requests.
    Connected { session: SessionId },
    /// The connection is gone; nothing more is sent to it.
    Disconnected { session: SessionId },
    /// A validated request from a session.
    Request { session: SessionId, request_id: u64, request: Request },
    /// Every `Persist` up to and including `ticket` is durable.
    Committed { ticket: u64 },
}

/// Something for the edges to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Make these writes durable, in order, then report `Committed(ticket)`.
    Persist { ticket: u64, writes: Vec<Write> },
    /// Queue a frame on a session's outbox.
    Send { to: SessionId, frame: Frame },
    /// Read from the store and answer `request_id` on `to` (a history page, or
    /// an earlier message re-sent by nonce). Authorisation was done here.
    Read { to: SessionId, request_id: u64, read: Read },
    /// Close the session's connection with this code and reason.
    Close { session: SessionId, code: CloseCode, reason: String },
}

/// An encoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A whole frame, length prefix included.
    Whole(Bytes),
    /// An event: the edge writes `event_frame_header(seq, body.len())` then
    /// `body`, which is shared by every recipient of the event.
    Event { seq: u64, body: Bytes },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    History(HistoryQuery),
    /// Answer with this message as a `Reply.message`.
    Message(MessageId),
}

/// Why a request was refused; becomes an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    NotAuthenticated,
    AlreadyAuthenticated,
    BadCredentials,
    /// Absent, or present but not visible to the caller: one answer for both.
    NotFound(&'static str),
    Forbidden(&'static str),
    Taken(&'static str),
    RegistrationClosed(&'static str),
    InviteInvalid,
    Invalid(&'static str),
}

impl Refusal {
    fn wire(&self) -> (ErrorCode, String) {
        match self {
            Refusal::NotAuthenticated => (ErrorCode::NotAuthenticated, "log in first".into()),
            Refusal::AlreadyAuthenticated => (ErrorCode::AlreadyAuthenticated, "already logged in".into()),
            Refusal::BadCredentials => {
                (ErrorCode::BadCredentials, "wrong username, password or token".into())
            }
            Refusal::NotFound(what) => (ErrorCode::NotFound, format!("no such {what}")),
            Refusal::Forbidden(why) => (ErrorCode::Forbidden, (*why).into()),
            Refusal::Taken(what) => (ErrorCode::Taken, format!("that {what} is taken")),
            Refusal::RegistrationClosed(why) => (ErrorCode::RegistrationClosed, (*why).into()),
            Refusal::InviteInvalid => {
                (ErrorCode::InviteInvalid, "the invite is unknown, expired or used up".into())
            }
            Refusal::Invalid(why) => (ErrorCode::Invalid, (*why).into()),
        }
    }
}

type Outcome = Result<(), Refusal>;

#[derive(Debug)]
struct User {
    stored: StoredUser,
}

#[derive(Debug)]
struct Community {
    name: String,
    owner: UserId,
    members: BTreeSet<UserId>,
    channels: BTreeSet<ChannelId>,
}

#[derive(Debug)]
struct Channel {
    community: CommunityId,
    name: String,
    topic: String,
}

#[derive(Debug)]
struct MessageMeta {
    channel: ChannelId,
    author: UserId,
    reply_to: Option<MessageId>,
    deleted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Auth {
    user: UserId,
    token: TokenId,
}

#[derive(Debug, Default)]
struct Session {
    auth: Option<Auth>,
    /// The seq of the last event sent to this session.
    seq: u64,
}

/// The state machine. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    ids: IdGen,

    users: HashMap<UserId, User>,
    by_fold: HashMap<String, UserId>,
    by_skeleton: HashMap<String, UserId>,
    owner: Option<UserId>,
    tokens: HashMap<TokenHash, (TokenId, UserId)>,
    communities: BTreeMap<CommunityId, Community>,
    channels: HashMap<ChannelId, Channel>,
    invites: HashMap<String, StoredInvite>,
    messages: HashMap<MessageId, MessageMeta>,
    nonces: HashMap<(UserId, Nonce), MessageId>,

    sessions: HashMap<SessionId, Session>,
    /// Authenticated sessions per user. Ordered so fan-out order is deterministic.
    user_sessions: HashMap<UserId, BTreeSet<SessionId>>,

    /// The last `Persist` ticket issued, and the last one known committed.
    issued: u64,
    committed: u64,
    /// Outputs free to go.
    ready: VecDeque<Output>,
    /// Session-facing outputs waiting for a ticket to commit.
    held: VecDeque<(u64, Output)>,
}

impl Hub {
    /// A hub continuing from what the store holds.
    pub fn new(state: StoredState, config: HubConfig) -> Self {
        let mut hub = Hub {
            config,
            ids: IdGen::after(state.max_id),
            users: HashMap::new(),
            by_fold: HashMap::new(),
            by_skeleton: HashMap::new(),
            owner: None,
            tokens: HashMap::new(),
            communities: BTreeMap::new(),
            channels: HashMap::new(),
            invites: HashMap::new(),
            messages: HashMap::new(),
            nonces: HashMap::new(),
            sessions: HashMap::new(),
            user_sessions: HashMap::new(),
            issued: 0,
            committed: 0,
            ready: VecDeque::new(),
            held: VecDeque::new(),
        };
        for u in state.users {
            hub.add_user(u);
        }
        for t in state.tokens {
            hub.tokens.insert(t.hash, (t.id, t.user));
        }
        for c in state.communities {
            hub.communities.insert(
                c.id,
                Community {
                    name: c.name,
                    owner: c.owner,
                    members: BTreeSet::new(),
                    channels: BTreeSet::new(),
                },
            );
        }
        for (community, user) in state.members {
            if let Some(c) = hub.communities.get_mut(&community) {
                c.members.insert(user);
            }
        }
        for ch in state.channels {
            hub.add_channel(ch);
        }
        for i in state.invites {
            hub.invites.insert(i.code.clone(), i);
        }
        for m in state.messages {
            if let Some(nonce) = m.nonce {
                hub.nonces.insert((m.author, Nonce(nonce)), m.id);
            }
            hub.messages.insert(
                m.id,
                MessageMeta {
                    channel: m.channel,
                    author: m.author,
                    reply_to: m.reply_to,
                    deleted: m.deleted,
                },
            );
        }
        if hub.owner.is_some() {
            hub.config.setup_code = None;
        }
        hub
    }

    /// True until an owner has registered; the edge then shows the setup code.
    pub fn needs_owner(&self) -> bool {
        self.owner.is_none()
    }

    /// Applies one input. Drain [`Hub::poll_output`] afterwards.
    pub fn handle(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::Connected { session } => {
                self.sessions.insert(session, Session::default());
            }
            Input::Disconnected { session } => self.disconnect(session),
            Input::Committed { ticket } => self.committed(ticket),
            Input::Request { session, request_id, request } => {
                if !self.sessions.contains_key(&session) {
                    return;
                }
                if let Err(refusal) = self.request(now, session, request_id, request) {
                    let (code, reason) = refusal.wire();
                    self.reply_error(session, request_id, code, reason);
                }
            }
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.ready.pop_front()
    }

    fn committed(&mut self, ticket: u64) {
        self.committed = self.committed.max(ticket);
        while self.held.front().is_some_and(|(t, _)| *t <= self.committed) {
            let (_, out) = self.held.pop_front().expect("front exists");
            self.ready.push_back(out);
        }
    }

    fn disconnect(&mut self, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else { return };
        if let Some(auth) = s.auth
            && let Some(set) = self.user_sessions.get_mut(&auth.user)
        {
            set.remove(&session);
            if set.is_empty() {
                self.user_sessions.remove(&auth.user);
            }
        }
    }

    // ----- output plumbing ---------------------------------------------------

    fn persist(&mut self, writes: Vec<Write>) {
        self.issued += 1;
        self.ready.push_back(Output::Persist { ticket: self.issued, writes });
    }

    /// Queues a session-facing output behind any uncommitted write.
    fn emit(&mut self, out: Output) {
        if self.committed < self.issued {
            self.held.push_back((self.issued, out));
        } else {
            self.ready.push_back(out);
        }
    }

    fn reply(&mut self, to: SessionId, request_id: u64, result: ReplyResult) {
        let msg = v1::ServerMessage {
            kind: Some(v1::server_message::Kind::Reply(v1::Reply { request_id, result: Some(result) })),
        };
        self.emit(Output::Send { to, frame: Frame::Whole(encode_frame(&msg)) });
    }

    fn reply_error(&mut self, to: SessionId, request_id: u64, code: ErrorCode, reason: String) {
        let msg = v1::ServerMessage {
            kind: Some(v1::server_message::Kind::Error(v1::Error {
                request_id,
                code: code as i32,
                reason,
                retry_after_ms: 0,
            })),
        };
        self.emit(Output::Send { to, frame: Frame::Whole(encode_frame(&msg)) });
    }

    /// Sends one event to every authenticated session of `users`, except
    /// `skip` (the session whose request caused it: it gets the reply). The
    /// event is encoded once; recipients share the bytes.
    fn fan_out<'a>(
        &mut self,
        users: impl IntoIterator<Item = &'a UserId>,
        skip: Option<SessionId>,
        body: EventBody,
    ) {
        let body = event_body(body);
        let mut targets = Vec::new();
        for user in users {
            if let Some(set) = self.user_sessions.get(user) {
                targets.extend(set.iter().copied().filter(|s| Some(*s) != skip));
            }
        }
        for to in targets {
            let Some(session) = self.sessions.get_mut(&to) else { continue };
            session.seq += 1;
            let seq = session.seq;
            self.emit(Output::Send { to, frame: Frame::Event { seq, body: body.clone() } });
        }
    }

    /// Fans out to the members of a community, by id.
    fn fan_out_community(&mut self, community: CommunityId, skip: Option<SessionId>, body: EventBody) {
        let members: Vec<UserId> = match self.communities.get(&community) {
            Some(c) => c.members.iter().copied().collect(),
            None => return,
        };
        self.fan_out(&members, skip, body);
    }

    // ----- requests -------------------------------------------------------------

    fn request(&mut self, now: Timestamp, session: SessionId, rid: u64, request: Request) -> Outcome {
        let auth = self.sessions.get(&session).and_then(|s| s.auth);
        let user = match (&request, auth) {
            (Request::Register(_) | Request::Login { .. } | Request::Authenticate { .. }, Some(_)) => {
                return Err(Refusal::AlreadyAuthenticated);
            }
            (Request::Register(reg), None) => return self.register(now, session, rid, reg),
            (Request::Login { user, token, token_hash }, None) => {
                let (user, token, token_hash) = (*user, token.clone(), *token_hash);
                return self.login(now, session, rid, user, token, token_hash);
            }
            (Request::Authenticate { token_hash }, None) => {
                let (id, user) = *self.tokens.get(token_hash).ok_or(Refusal::BadCredentials)?;
                self.bind(session, rid, Auth { user, token: id }, String::new());
                return Ok(());
            }
            (_, None) => return Err(Refusal::NotAuthenticated),
            (_, Some(auth)) => auth,
        };
        match request {
            Request::Register(_) | Request::Login { .. } | Request::Authenticate { .. } => {
                unreachable!("handled above")
            }
            Request::Logout { everywhere } => self.logout(session, rid, user, everywhere),
            Request::CreateCommunity { name } => {
                let community = CommunityId(self.ids.next(now));
                let general = ChannelId(self.ids.next(now));
                let stored = StoredCommunity { id: community, name: name.0, owner: user.user };
                let channel =
                    StoredChannel { id: general, community, name: "general".into(), topic: String::new() };
                self.persist(vec![
                    Write::CreateCommunity { community: stored.clone(), created_at: now },
                    Write::AddMember { community, user: user.user, joined_at: now },
                    Write::CreateChannel { channel: channel.clone(), created_at: now },
                ]);
                self.communities.insert(
                    community,
                    Community {
                        name: stored.name,
                        owner: user.user,
                        members: BTreeSet::from([user.user]),
                        channels: BTreeSet::new(),
                    },
                );
                self.add_channel(channel);
                let wire = self.community_wire(community);
                self.reply(session, rid, ReplyResult::Community(wire.clone()));
                self.fan_out(&[user.user], Some(session), EventBody::CommunityJoined(wire));
                Ok(())
            }
            Request::CreateInvite { community, max_uses, expires_in_ms, code } => {
                let c = self.visible_community(community, user.user)?;
                let community_name = c.name.clone();
                if self.invites.contains_key(&code) {
                    // 2^-60-ish odds with the edge's random codes; refuse rather than overwrite.
                    return Err(Refusal::Taken("invite code"));
                }
                let invite = StoredInvite {
                    code,
                    community,
                    creator: user.user,
                    max_uses,
                    uses: 0,
                    expires_at: expires_in_ms.map(|ms| now.plus_ms(ms)),
                };
                self.persist(vec![Write::CreateInvite { invite: invite.clone(), created_at: now }]);
                let wire = invite_wire(&invite, community_name);
                self.invites.insert(invite.code.clone(), invite);
                self.reply(session, rid, ReplyResult::Invite(wire));
                Ok(())
            }
            Request::JoinCommunity { code } => {
                let community = self.usable_invite(&code, now)?;
                if !self.communities[&community].members.contains(&user.user) {
                    self.add_member(now, community, user.user, Some(code), Some(session));
                }
                self.reply(session, rid, ReplyResult::Community(self.community_wire(community)));
                Ok(())
            }
            Request::LeaveCommunity { community } => {
                let c = self.visible_community(community, user.user)?;
                if c.owner == user.user {
                    return Err(Refusal::Forbidden("the owner cannot leave their community"));
                }
                self.persist(vec![Write::RemoveMember { community, user: user.user }]);
                self.communities.get_mut(&community).expect("visible").members.remove(&user.user);
                self.reply(session, rid, ReplyResult::Empty(v1::Empty {}));
                let community_id = community.0;
                self.fan_out(
                    &[user.user],
                    Some(session),
                    EventBody::CommunityLeft(v1::CommunityLeft { community_id }),
                );
                let left = v1::MemberLeft { community_id, user_id: user.user.0 };
                self.fan_out_community(community, None, EventBody::MemberLeft(left));
                Ok(())
            }
            Request::CreateChannel { community, name, topic } => {
                let c = self.visible_community(community, user.user)?;
                if c.owner != user.user {
                    return Err(Refusal::Forbidden("only the community owner can manage channels"));
                }
                if c.channels.len() >= MAX_CHANNELS_PER_COMMUNITY {
                    return Err(Refusal::Invalid("this community has the maximum number of channels"));
                }
                if self.channel_named(community, &name).is_some() {
                    return Err(Refusal::Taken("channel name"));
                }
                let channel = StoredChannel {
                    id: ChannelId(self.ids.next(now)),
                    community,
                    name: name.0,
                    topic: topic.0,
                };
                self.persist(vec![Write::CreateChannel { channel: channel.clone(), created_at: now }]);
                self.add_channel(channel.clone());
                let wire = channel_wire(&channel);
                self.reply(session, rid, ReplyResult::Channel(wire.clone()));
                self.fan_out_community(community, Some(session), EventBody::ChannelCreated(wire));
                Ok(())
            }
            Request::UpdateChannel { channel, name, topic } => {
                let community = self.managed_channel(channel, user.user)?;
                if let Some(name) = &name
                    && self.channel_named(community, name).is_some_and(|other| other != channel)
                {
                    return Err(Refusal::Taken("channel name"));
                }
                let ch = self.channels.get_mut(&channel).expect("managed");
                if let Some(ChannelName(name)) = name {
                    ch.name = name;
                }
                if let Some(Topic(topic)) = topic {
                    ch.topic = topic;
                }
                let stored =
                    StoredChannel { id: channel, community, name: ch.name.clone(), topic: ch.topic.clone() };
                self.persist(vec![Write::UpdateChannel { channel: stored.clone() }]);
                let wire = channel_wire(&stored);
                self.reply(session, rid, ReplyResult::Channel(wire.clone()));
                self.fan_out_community(community, Some(session), EventBody::ChannelUpdated(wire));
                Ok(())
            }
            Request::DeleteChannel { channel } => {
                let community = self.managed_channel(channel, user.user)?;
                self.persist(vec![Write::DeleteChannel { id: channel }]);
                self.channels.remove(&channel);
                self.communities.get_mut(&community).expect("managed").channels.remove(&channel);
                self.messages.retain(|_, m| m.channel != channel);
                let messages = &self.messages;
                self.nonces.retain(|_, id| messages.contains_key(id));
                self.reply(session, rid, ReplyResult::Empty(v1::Empty {}));
                let deleted = v1::ChannelDeleted { community_id: community.0, channel_id: channel.0 };
                self.fan_out_community(community, Some(session), EventBody::ChannelDeleted(deleted));
                Ok(())
            }
            Request::SendMessage { channel, body, nonce, reply_to } => {
                self.send_message(now, session, rid, user.user, channel, body, nonce, reply_to)
            }
            Request::EditMessage { channel, message, body } => {
                let meta = self.visible_message(channel, message, user.user)?;
                if meta.author != user.user {
                    return Err(Refusal::Forbidden("you can only edit your own messages"));
                }
                let reply_to = meta.reply_to;
                let community = self.channels[&channel].community;
                let mentions = self.resolve_mentions(community, &body);
                let edited_at = now.max(message.timestamp());
                self.persist(vec![Write::EditMessage {
                    id: message,
                    body: body.0.clone(),
                    mentions: mentions.clone(),
                    edited_at,
                }]);
                let mut wire =
                    self.message_wire(message, channel, user.user, body.0, reply_to, &mentions, None);
                wire.edited_at_ms = edited_at.0;
                self.reply(session, rid, ReplyResult::Message(wire.clone()));
                self.fan_out_community(community, Some(session), EventBody::MessageUpdated(wire));
                Ok(())
            }
            Request::DeleteMessage { channel, message } => {
                let meta = self.visible_message(channel, message, user.user)?;
                let community = self.channels[&channel].community;
                if meta.author != user.user && self.communities[&community].owner != user.user {
                    return Err(Refusal::Forbidden("you can only delete your own messages"));
                }
                self.persist(vec![Write::DeleteMessage { id: message }]);
                self.messages.get_mut(&message).expect("visible").deleted = true;
                self.reply(session, rid, ReplyResult::Empty(v1::Empty {}));
                let deleted = v1::MessageDeleted { channel_id: channel.0, message_id: message.0 };
                self.fan_out_community(community, Some(session), EventBody::MessageDeleted(deleted));
                Ok(())
            }
            Request::History(query) => {
                self.visible_channel(query.channel, user.user)?;
                self.emit(Output::Read { to: session, request_id: rid, read: Read::History(query) });
                Ok(())
            }
        }
    }

    fn register(&mut self, now: Timestamp, session: SessionId, rid: u64, reg: &Registration) -> Outcome {
        if self.by_skeleton.contains_key(&reg.username.skeleton)
            || self.by_fold.contains_key(&reg.username.fold)
        {
            return Err(Refusal::Taken("username"));
        }
        if reg.username.is_mixed_script() {
            return Err(Refusal::Invalid("username mixes scripts (e.g. Latin with Cyrillic look-alikes)"));
        }
        let mut join = None;
        let server_owner = match (&reg.credential, self.owner) {
            (Credential::SetupCode(code), None) if Some(code) == self.config.setup_code.as_ref() => true,
            (_, None) => {
                return Err(Refusal::RegistrationClosed(
                    "this server has no owner yet: register with the setup code it printed when it started",
                ));
            }
            (Credential::SetupCode(_), Some(_)) => {
                return Err(Refusal::RegistrationClosed("this server already has an owner"));
            }
            (Credential::Invite(code), Some(_)) => {
                join = Some((self.usable_invite(code, now)?, code.clone()));
                false
            }
            (Credential::None, Some(_)) if self.config.open_registration => false,
            (Credential::None, Some(_)) => {
                return Err(Refusal::RegistrationClosed("registration on this server needs an invite"));
            }
        };

        let user = StoredUser {
            id: UserId(self.ids.next(now)),
            username: reg.username.name.clone(),
            fold: reg.username.fold.clone(),
            skeleton: reg.username.skeleton.clone(),
            display_name: reg.display_name.0.clone(),
            server_owner,
        };
        let token = StoredToken { id: TokenId(self.ids.next(now)), user: user.id, hash: reg.token_hash };
        self.persist(vec![
            Write::CreateUser {
                user: user.clone(),
                password_hash: reg.password_hash.clone(),
                created_at: now,
            },
            Write::CreateToken { token: token.clone(), created_at: now },
        ]);
        let id = user.id;
        self.add_user(user);
        if server_owner {
            self.config.setup_code = None;
        }
        self.tokens.insert(token.hash, (token.id, id));
        if let Some((community, code)) = join {
            self.add_member(now, community, id, Some(code), None);
        }
        self.bind(session, rid, Auth { user: id, token: token.id }, reg.token.clone());
        Ok(())
    }

    fn login(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        user: UserId,
        token: String,
        token_hash: TokenHash,
    ) -> Outcome {
        if !self.users.contains_key(&user) {
            return Err(Refusal::BadCredentials);
        }
        let stored = StoredToken { id: TokenId(self.ids.next(now)), user, hash: token_hash };
        self.persist(vec![Write::CreateToken { token: stored.clone(), created_at: now }]);
        self.tokens.insert(token_hash, (stored.id, user));
        self.bind(session, rid, Auth { user, token: stored.id }, token);
        Ok(())
    }

    /// Marks the session authenticated and answers with the `Ready` snapshot.
    fn bind(&mut self, session: SessionId, rid: u64, auth: Auth, token: String) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.auth = Some(auth);
        self.user_sessions.entry(auth.user).or_default().insert(session);
        let communities = self
            .communities
            .iter()
            .filter(|(_, c)| c.members.contains(&auth.user))
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
            .into_iter()
            .map(|id| self.community_wire(id))
            .collect();
        let ready = v1::Ready {
            user: Some(self.user_wire(auth.user)),
            token,
            server_owner: self.owner == Some(auth.user),
            communities,
        };
        self.reply(session, rid, ReplyResult::Ready(ready));
    }

    fn logout(&mut self, session: SessionId, rid: u64, auth: Auth, everywhere: bool) -> Outcome {
        let revoked: BTreeSet<TokenId> = if everywhere {
            self.tokens.values().filter(|(_, u)| *u == auth.user).map(|(id, _)| *id).collect()
        } else {
            BTreeSet::from([auth.token])
        };
        self.persist(revoked.iter().map(|&id| Write::RevokeToken { id }).collect());
        self.tokens.retain(|_, (id, _)| !revoked.contains(id));
        self.reply(session, rid, ReplyResult::Empty(v1::Empty {}));

        let sessions: Vec<SessionId> =
            self.user_sessions.get(&auth.user).into_iter().flatten().copied().collect();
        for s in sessions {
            let Some(token) = self.sessions.get(&s).and_then(|s| s.auth).map(|a| a.token) else { continue };
            if !revoked.contains(&token) {
                continue;
            }
            let (code, reason) = if s == session {
                (CloseCode::Normal, "logged out")
            } else {
                (CloseCode::TokenRevoked, "this login was revoked")
            };
            // Unbind now so nothing more is sent to it; the edge then closes it.
            self.disconnect(s);
            self.emit(Output::Close { session: s, code, reason: reason.into() });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn send_message(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        author: UserId,
        channel: ChannelId,
        body: Body,
        nonce: Option<Nonce>,
        reply_to: Option<MessageId>,
    ) -> Outcome {
        let community = self.visible_channel(channel, author)?;
        if let Some(nonce) = &nonce
            && let Some(&original) = self.nonces.get(&(author, nonce.clone()))
        {
            // A retry: answer with the original, whatever this request says.
            self.emit(Output::Read { to: session, request_id: rid, read: Read::Message(original) });
            return Ok(());
        }
        if let Some(target) = reply_to {
            match self.messages.get(&target) {
                Some(m) if m.channel == channel && !m.deleted => {}
                _ => return Err(Refusal::NotFound("message to reply to")),
            }
        }
        let mentions = self.resolve_mentions(community, &body);
        let id = MessageId(self.ids.next(now));
        let created_at = id.timestamp();
        self.persist(vec![Write::InsertMessage {
            message: NewMessage {
                id,
                channel,
                author,
                body: body.0.clone(),
                nonce: nonce.as_ref().map(|n| n.0.clone()),
                reply_to,
                mentions: mentions.clone(),
                created_at,
            },
        }]);
        self.messages.insert(id, MessageMeta { channel, author, reply_to, deleted: false });
        if let Some(nonce) = &nonce {
            self.nonces.insert((author, nonce.clone()), id);
        }
        let wire = self.message_wire(id, channel, author, body.0, reply_to, &mentions, nonce.map(|n| n.0));
        self.reply(session, rid, ReplyResult::Message(wire.clone()));
        self.fan_out_community(community, Some(session), EventBody::MessageCreated(wire));
        Ok(())
    }

    // ----- state helpers ----------------------------------------------------------

    fn add_user(&mut self, u: StoredUser) {
        if u.server_owner {
            self.owner = Some(u.id);
        }
        self.by_fold.insert(u.fold.clone(), u.id);
        self.by_skeleton.insert(u.skeleton.clone(), u.id);
        self.users.insert(u.id, User { stored: u });
    }

    fn add_channel(&mut self, ch: StoredChannel) {
        if let Some(c) = self.communities.get_mut(&ch.community) {
            c.channels.insert(ch.id);
        }
        self.channels.insert(ch.id, Channel { community: ch.community, name: ch.name, topic: ch.topic });
    }

    /// Adds a member (consuming an invite use if one is given) and tells the
    /// other members and the new member's other sessions.
    fn add_member(
        &mut self,
        now: Timestamp,
        community: CommunityId,
        user: UserId,
        invite: Option<String>,
        skip: Option<SessionId>,
    ) {
        let mut writes = Vec::new();
        if let Some(code) = invite
            && let Some(i) = self.invites.get_mut(&code)
        {
            i.uses += 1;
            writes.push(Write::UseInvite { code });
        }
        writes.push(Write::AddMember { community, user, joined_at: now });
        self.persist(writes);
        let c = self.communities.get_mut(&community).expect("invite points at a live community");
        let others: Vec<UserId> = c.members.iter().copied().collect();
        c.members.insert(user);
        let joined = v1::MemberJoined { community_id: community.0, user: Some(self.user_wire(user)) };
        self.fan_out(&others, None, EventBody::MemberJoined(joined));
        let wire = self.community_wire(community);
        self.fan_out(&[user], skip, EventBody::CommunityJoined(wire));
    }

    fn usable_invite(&self, code: &str, now: Timestamp) -> Result<CommunityId, Refusal> {
        let i = self.invites.get(code).ok_or(Refusal::InviteInvalid)?;
        let expired = i.expires_at.is_some_and(|t| now >= t);
        let used_up = i.max_uses.is_some_and(|max| i.uses >= max);
        if expired || used_up || !self.communities.contains_key(&i.community) {
            return Err(Refusal::InviteInvalid);
        }
        Ok(i.community)
    }

    fn visible_community(&self, id: CommunityId, user: UserId) -> Result<&Community, Refusal> {
        self.communities.get(&id).filter(|c| c.members.contains(&user)).ok_or(Refusal::NotFound("community"))
    }

    /// The channel's community, if `user` may see the channel.
    fn visible_channel(&self, id: ChannelId, user: UserId) -> Result<CommunityId, Refusal> {
        let ch = self.channels.get(&id).ok_or(Refusal::NotFound("channel"))?;
        self.visible_community(ch.community, user).map_err(|_| Refusal::NotFound("channel"))?;
        Ok(ch.community)
    }

    /// The channel's community, if `user` may manage the channel.
    fn managed_channel(&self, id: ChannelId, user: UserId) -> Result<CommunityId, Refusal> {
        let community = self.visible_channel(id, user)?;
        if self.communities[&community].owner != user {
            return Err(Refusal::Forbidden("only the community owner can manage channels"));
        }
        Ok(community)
    }

    /// A live message in `channel` that `user` may see. A message in another
    /// channel is "not found", exactly like a missing one.
    fn visible_message(
        &self,
        channel: ChannelId,
        id: MessageId,
        user: UserId,
    ) -> Result<&MessageMeta, Refusal> {
        self.visible_channel(channel, user)?;
        self.messages
            .get(&id)
            .filter(|m| m.channel == channel && !m.deleted)
            .ok_or(Refusal::NotFound("message"))
    }

    fn channel_named(&self, community: CommunityId, name: &ChannelName) -> Option<ChannelId> {
        let c = self.communities.get(&community)?;
        c.channels.iter().copied().find(|id| self.channels.get(id).is_some_and(|ch| ch.name == name.0))
    }

    /// `@name` mentions of members of the community, as ids. Names of
    /// non-members are left as text, so mentions reveal nobody.
    fn resolve_mentions(&self, community: CommunityId, body: &Body) -> Vec<UserId> {
        let members = &self.communities[&community].members;
        body.mention_names()
            .iter()
            .filter_map(|name| self.by_fold.get(name))
            .filter(|id| members.contains(id))
            .copied()
            .collect()
    }

    // ----- domain → wire ------------------------------------------------------------

    fn user_wire(&self, id: UserId) -> v1::User {
        let u = &self.users[&id].stored;
        v1::User { id: id.0, username: u.username.clone(), display_name: u.display_name.clone() }
    }

    fn community_wire(&self, id: CommunityId) -> v1::Community {
        let c = &self.communities[&id];
        v1::Community {
            id: id.0,
            name: c.name.clone(),
            owner_id: c.owner.0,
            channels: c
                .channels
                .iter()
                .map(|ch| {
                    let x = &self.channels[ch];
                    v1::Channel { id: ch.0, community_id: id.0, name: x.name.clone(), topic: x.topic.clone() }
                })
                .collect(),
            members: c.members.iter().map(|u| self.user_wire(*u)).collect(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn message_wire(
        &self,
        id: MessageId,
        channel: ChannelId,
        author: UserId,
        body: String,
        reply_to: Option<MessageId>,
        mentions: &[UserId],
        nonce: Option<String>,
    ) -> v1::Message {
        v1::Message {
            id: id.0,
            channel_id: channel.0,
            author_id: author.0,
            author_name: self.users[&author].stored.username.clone(),
            body,
            created_at_ms: id.timestamp().0,
            edited_at_ms: 0,
            reply_to: reply_to.map_or(0, |m| m.0),
            mentions: mentions.iter().map(|u| u.0).collect(),
            nonce: nonce.unwrap_or_default(),
        }
    }
}

fn channel_wire(ch: &StoredChannel) -> v1::Channel {
    v1::Channel { id: ch.id.0, community_id: ch.community.0, name: ch.name.clone(), topic: ch.topic.clone() }
}

fn invite_wire(i: &StoredInvite, community_name: String) -> v1::Invite {
    v1::Invite {
        code: i.code.clone(),
        community_id: i.community.0,
        community_name,
        max_uses: i.max_uses.unwrap_or(0),
        uses: i.uses,
        expires_at_ms: i.expires_at.map_or(0, |t| t.0),
    }
}
