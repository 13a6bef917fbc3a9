//! The hub alone: requests through `Hub::handle` and `poll_output`, no
//! network, no disk, no clock but a counter. What one message costs the
//! hub's single task is the ceiling of durable ingest and a share of every
//! delivery; this puts a number on it that does not depend on how noisy
//! the machine's network and disk are.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use kith_core::request::{Anchor, Credential, HistoryQuery, Registration, Request, TokenHash};
use kith_core::store::StoredState;
use kith_core::text::{Body, CommunityName, DisplayName, Username};
use kith_core::{ChannelId, CommunityId, Hub, HubConfig, Input, Output, SessionId, Timestamp};
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
}

impl Bench {
    fn new(members: usize) -> Result<Self> {
        let config = HubConfig {
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
        };
        let mut b = Bench {
            hub: Hub::new(StoredState::default(), config),
            now: Timestamp(1_800_000_000_000),
            rid: 0,
            issued: 0,
            sessions: Vec::new(),
            general: ChannelId(0),
            sends: 0,
            reads: 0,
            answer: None,
            keep: None,
        };
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
        let session = SessionId(self.sessions.len() as u64 + 1);
        let auth_within_ms = 60_000;
        self.input(Input::Connected { session, resume_key: format!("resume-{name}"), auth_within_ms });
        let mut token_hash = [0u8; 32];
        token_hash[..8].copy_from_slice(&session.0.to_le_bytes());
        let registration = Registration {
            username: Username::parse(name)?,
            display_name: DisplayName::parse(name)?,
            password_hash: "$argon2id$bench".into(),
            token: format!("token-{name}"),
            token_hash: TokenHash(token_hash),
            credential,
        };
        self.call(session, Request::Register(Box::new(registration)))?;
        Ok(session)
    }
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
