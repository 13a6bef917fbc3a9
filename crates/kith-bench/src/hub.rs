//! The hub alone: requests through `Hub::handle` and `poll_output`, no
//! network, no disk, no clock but a counter. What one message costs the
//! hub's single task is the ceiling of durable ingest and a share of every
//! delivery; this puts a number on it that does not depend on how noisy
//! the machine's network and disk are.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use kith_core::request::Chosen;
use kith_core::request::{Anchor, Credential, HistoryQuery, Registration, Request, TokenHash};
use kith_core::store::{
    StoredChannel, StoredCommunity, StoredMember, StoredRole, StoredState, StoredToken, StoredUser,
};
use kith_core::text::{Body, CommunityName, DisplayName, Username};
use kith_core::{
    ChannelId, CommunityId, Hub, HubConfig, Input, Output, Permissions, RoleId, SessionId, Timestamp,
    TokenId, UserId,
};
use kith_proto::v1::{reply::Result as R, server_message::Kind};
use serde_json::json;

/// A hub with one community of `members`, each signed in once.
struct Bench {
    hub: Hub,
    now: Timestamp,
    rid: u64,
    issued: u64,
    sessions: Vec<SessionId>,
    general: ChannelId,
    /// Outputs seen since the last count.
    sends: u64,
    reads: u64,
    /// The reply to the latest request, when asked for.
    answer: Option<Result<R, String>>,
    keep: Option<(SessionId, u64)>,
    /// Bytes of messages (not events) sent to the kept session.
    kept_bytes: usize,
    next_session: u64,
}

impl Bench {
    /// A hub that starts from `state`, with no one connected.
    fn empty(state: StoredState) -> Self {
        Bench {
            hub: Hub::new(state, Self::config()),
            now: Timestamp(1_800_000_000_000),
            rid: 0,
            issued: 0,
            sessions: Vec::new(),
            general: ChannelId(0),
            sends: 0,
            reads: 0,
            answer: None,
            keep: None,
            kept_bytes: 0,
            next_session: 0,
        }
    }

    fn config() -> HubConfig {
        HubConfig {
            setup_code: Some("SETUP".into()),
            // Load, not people: no rate limits.
            message_rate: None,
            typing_rate: None,
            read_rate: None,
            change_rate: None,
            profile_rate: None,
            group_rate: None,
            voice_rate: None,
            answer_rate: None,
            refusal_rate: None,
            ..HubConfig::default()
        }
    }

    fn new(members: usize) -> Result<Self> {
        let mut b = Self::empty(StoredState::default());
        let owner = b.register("owner", Credential::SetupCode("SETUP".into()))?;
        let R::Community(c) =
            b.call(owner, Request::CreateCommunity { name: CommunityName::parse("Bench").expect("a name") })?
        else {
            bail!("no community");
        };
        b.general = ChannelId(c.channels.first().context("no #general")?.id);
        let invite = Request::CreateInvite {
            community: CommunityId(c.id),
            max_uses: None,
            expires_in_ms: None,
            code: "BENCHINVITE".into(),
        };
        b.call(owner, invite)?;
        b.sessions.push(owner);
        for i in 1..members {
            let s = b.register(&format!("member{i}"), Credential::Invite("BENCHINVITE".into()))?;
            b.sessions.push(s);
        }
        Ok(b)
    }

    fn input(&mut self, input: Input) {
        self.now = self.now.plus_ms(1);
        self.hub.handle(self.now, input);
        self.drain();
        // The store commits at once: what the hub holds goes out.
        if self.issued > 0 {
            self.hub.handle(self.now, Input::Committed { ticket: self.issued });
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.hub.poll_output() {
            match out {
                Output::Persist { ticket, .. } => self.issued = ticket,
                Output::Send { to, message } => {
                    self.sends += 1;
                    if self.keep.is_some_and(|(s, _)| s == to) {
                        if let kith_core::Outgoing::Message(m) = &message {
                            self.kept_bytes += m.len();
                        }
                        match message.into_server_message().kind {
                            Some(Kind::Reply(r)) if Some(r.request_id) == self.keep.map(|k| k.1) => {
                                self.answer = r.result.map(Ok);
                            }
                            Some(Kind::Error(e)) if Some(e.request_id) == self.keep.map(|k| k.1) => {
                                self.answer = Some(Err(e.reason));
                            }
                            _ => {}
                        }
                    }
                }
                Output::Read { .. } => self.reads += 1,
                _ => {}
            }
        }
    }

    fn send(&mut self, session: SessionId, request: Request) -> u64 {
        self.rid += 1;
        let request_id = self.rid;
        self.input(Input::Request { session, request_id, request });
        request_id
    }

    fn call(&mut self, session: SessionId, request: Request) -> Result<R> {
        self.keep = Some((session, self.rid + 1));
        self.answer = None;
        self.send(session, request);
        self.keep = None;
        match self.answer.take() {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => bail!("refused: {e}"),
            None => bail!("no answer"),
        }
    }

    fn register(&mut self, name: &str, credential: Credential) -> Result<SessionId> {
        self.next_session += 1;
        let session = SessionId(self.next_session);
        let auth_within_ms = 60_000;
        self.input(Input::Connected { session, resume_key: Some(format!("resume-{name}")), auth_within_ms });
        let registration = Registration {
            username: Username::parse(name)?,
            display_name: DisplayName::parse(name)?,
            password_hash: "$argon2id$bench".into(),
            token: format!("token-{name}"),
            token_hash: token_of(name),
            credential,
        };
        self.call(session, Request::Register(Box::new(registration)))?;
        Ok(session)
    }
}

fn token_of(name: &str) -> TokenHash {
    TokenHash(*blake3::hash(name.as_bytes()).as_bytes())
}

/// A stored server of one community with `members` (user ids 1..=members,
/// user 1 its owner), each with one login: as a hub finds it at start, made
/// directly because joining one by one checks every newcomer's name against
/// every member's (each join costs O(members)).
fn community_of(members: usize) -> StoredState {
    let (community, general) = (CommunityId(1 << 40), ChannelId((1 << 40) + 1));
    let name = |i: usize| if i == 1 { "owner".to_owned() } else { format!("member{i}") };
    let users = (1..=members)
        .map(|i| {
            let username = Username::parse(&name(i)).expect("a valid name");
            StoredUser {
                id: UserId(i as u64),
                display_name: username.name.clone(),
                username: username.name,
                fold: username.fold,
                skeleton: username.skeleton,
                status_text: String::new(),
                server_owner: i == 1,
                presence: Chosen::Online,
                bot: false,
                deleted: false,
            }
        })
        .collect();
    let tokens = (1..=members)
        .map(|i| StoredToken {
            id: TokenId((1 << 41) + i as u64),
            user: UserId(i as u64),
            hash: token_of(&name(i)),
        })
        .collect();
    let members_rows = (1..=members)
        .map(|i| StoredMember {
            community,
            user: UserId(i as u64),
            joined_at: Timestamp(1_800_000_000_000),
            nickname: None,
            timeout_until: None,
        })
        .collect();
    StoredState {
        users,
        tokens,
        communities: vec![StoredCommunity { id: community, name: "Bench".into(), owner: UserId(1) }],
        members: members_rows,
        roles: vec![StoredRole {
            id: RoleId(community.0),
            community,
            name: "@everyone".into(),
            permissions: Permissions::DEFAULT_EVERYONE,
            rank: 0,
        }],
        channels: vec![StoredChannel {
            id: general,
            community,
            name: "general".into(),
            topic: String::new(),
            voice: false,
        }],
        max_id: 1 << 42,
        ..StoredState::default()
    }
}

/// What signing in costs in a community of `members`, all offline: the
/// `Ready` snapshot's size and the hub's time to make it (median of five).
pub fn connect(members_list: &[usize], json_out: bool) -> Result<()> {
    if !json_out {
        println!("{:>8} {:>14} {:>12}", "members", "Ready bytes", "connect µs");
    }
    for &members in members_list {
        if members < 2 {
            bail!("--connect sizes must be at least 2");
        }
        let mut b = Bench::empty(community_of(members));
        let mut times = Vec::new();
        let mut bytes = 0;
        for trial in 0..5 {
            b.next_session += 1;
            let session = SessionId(b.next_session);
            let resume_key = Some(format!("resume-trial-{trial}"));
            b.input(Input::Connected { session, resume_key, auth_within_ms: 60_000 });
            b.kept_bytes = 0;
            let started = Instant::now();
            let token_hash = token_of(&format!("member{}", 2 + trial % (members - 1)));
            let R::Ready(_) = b.call(session, Request::Authenticate { token_hash })? else {
                bail!("no Ready")
            };
            times.push(started.elapsed().as_secs_f64() * 1e6);
            bytes = b.kept_bytes;
            b.input(Input::Closed { session });
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if json_out {
            println!(
                "{}",
                json!({"bench": "hub-connect", "members": members, "ready_bytes": bytes, "connect_us": median})
            );
        } else {
            println!("{members:>8} {bytes:>14} {median:>12.0}");
        }
    }
    Ok(())
}

/// Sends `messages` into a channel of `members` (from ten of them in turn),
/// then asks for history as many times; prints what each costs the hub.
pub fn run(members_list: &[usize], messages: u64, json_out: bool) -> Result<()> {
    if !json_out {
        println!(
            "{:>8} {:>10} {:>12} {:>14} {:>12} {:>14}",
            "members", "messages", "msg/s", "ns/message", "ns/delivery", "history ns"
        );
    }
    for &members in members_list {
        if members < 2 {
            bail!("--members must be at least 2");
        }
        let mut b = Bench::new(members)?;
        let senders = members.min(10);
        let body = Body::parse(&"x".repeat(100))?;
        b.sends = 0;
        let started = Instant::now();
        for n in 0..messages {
            let session = b.sessions[n as usize % senders];
            let request = Request::SendMessage {
                channel: b.general,
                body: body.clone(),
                nonce: None,
                reply_to: None,
                uploads: Vec::new(),
            };
            b.send(session, request);
        }
        let send_s = started.elapsed().as_secs_f64();
        // Each message: its reply to the sender plus an event to every member.
        let deliveries = b.sends;
        let expected = messages * (members as u64 + 1);
        if deliveries != expected {
            bail!("{deliveries} outputs for {messages} messages to {members} members, not {expected}");
        }
        b.reads = 0;
        let started = Instant::now();
        for n in 0..messages {
            let session = b.sessions[n as usize % members];
            let query = HistoryQuery { channel: b.general, anchor: Anchor::Latest, limit: 50 };
            b.send(session, Request::History(query));
        }
        let history_s = started.elapsed().as_secs_f64();
        if b.reads != messages {
            bail!("{} history reads authorised of {messages}", b.reads);
        }
        let per_message_ns = send_s * 1e9 / messages as f64;
        let per_delivery_ns = send_s * 1e9 / deliveries as f64;
        let history_ns = history_s * 1e9 / messages as f64;
        let rate = messages as f64 / send_s;
        if json_out {
            println!(
                "{}",
                json!({"bench": "hub", "members": members, "messages": messages, "messages_per_s": rate,
                       "ns_per_message": per_message_ns, "ns_per_delivery": per_delivery_ns,
                       "history_ns": history_ns})
            );
        } else {
            println!(
                "{members:>8} {messages:>10} {rate:>12.0} {per_message_ns:>14.0} {per_delivery_ns:>12.0} {history_ns:>14.0}"
            );
        }
    }
    Ok(())
}
