//! The hub test harness: a hub plus a recorder of everything it asked for.
#![allow(dead_code, unused_imports)] // each spec file uses a different part of the harness

pub use std::collections::HashMap;

pub use kith_core::request::{Anchor, Credential, HistoryQuery, Registration, Request, TokenHash};
pub use kith_core::store::{StoredState, Write};
pub use kith_core::text::{Body, ChannelName, CommunityName, DisplayName, Nonce, Topic, Username};
pub use kith_core::{
    ChannelId, CommunityId, Hub, HubConfig, Input, MessageId, Outgoing, Output, Read, SessionId, Timestamp,
    UserId, VoiceRoute,
};
pub use kith_proto::v1::{self, ErrorCode, event::Body as Ev, reply::Result as R, server_message::Kind};
pub use kith_proto::{FrameDecoder, MAX_SERVER_FRAME, event_frame_header};
pub use prost::Message;

pub const SETUP: &str = "SETUP-CODE";
/// How long a test session has to authenticate.
pub const AUTH_WITHIN_MS: u64 = 15_000;

/// A hub plus a recorder of everything it asked for.
pub struct World {
    pub hub: Hub,
    pub now: Timestamp,
    pub rid: u64,
    pub auto_commit: bool,
    pub issued: u64,
    pub committed: u64,
    pub writes: Vec<(u64, Write)>,
    pub inbox: HashMap<SessionId, Vec<Kind>>,
    pub reads: Vec<(SessionId, u64, Read)>,
    /// Loads asked of the store, not yet answered (tests answer them).
    pub loads: Vec<(u64, kith_core::store::Load)>,
    pub closes: Vec<(SessionId, v1::CloseCode)>,
    /// Each voice room's routing as last published.
    pub rooms: HashMap<ChannelId, Vec<VoiceRoute>>,
    /// Keys granted for transfer streams, in order.
    pub grants: Vec<kith_core::Grant>,
    pub next_session: u64,
    /// The last event seq drained per session, so later checks can continue it.
    pub last_seq: HashMap<SessionId, u64>,
    /// User ids by username, as registered.
    pub ids: HashMap<String, u64>,
}

/// What the hub sent, read the two ways an edge reads it: typed (as the
/// telnet gateway does), and encoded and framed for a stream (as QUIC does,
/// the body shared and the head per recipient). Both must agree.
pub fn decode(out: Outgoing) -> Kind {
    let bytes = match &out {
        Outgoing::Message(m) => [&(m.len() as u32).to_be_bytes()[..], &m.bytes()[..]].concat(),
        Outgoing::Event { seq, event } => {
            let (h, n) = event_frame_header(*seq, event.len());
            [&h[..n], &event.bytes()[..]].concat()
        }
    };
    let mut dec = FrameDecoder::new(MAX_SERVER_FRAME);
    dec.extend(&bytes);
    let frame = dec.next_frame().unwrap().unwrap();
    assert!(!dec.in_frame(), "exactly one frame");
    let decoded = v1::ServerMessage::decode(frame).unwrap();
    assert_eq!(decoded, out.into_server_message(), "the encoding says what the message says");
    decoded.kind.unwrap()
}

impl World {
    pub fn new(config: HubConfig) -> Self {
        World {
            hub: Hub::new(StoredState::default(), config),
            now: Timestamp(1_800_000_000_000),
            rid: 0,
            auto_commit: true,
            issued: 0,
            committed: 0,
            writes: Vec::new(),
            inbox: HashMap::new(),
            reads: Vec::new(),
            loads: Vec::new(),
            closes: Vec::new(),
            grants: Vec::new(),
            rooms: HashMap::new(),
            next_session: 0,
            last_seq: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    pub fn default() -> Self {
        Self::new(HubConfig {
            open_registration: false,
            setup_code: Some(SETUP.into()),
            ..HubConfig::default()
        })
    }

    pub fn input(&mut self, input: Input) {
        self.now = self.now.plus_ms(1);
        self.hub.handle(self.now, input);
        self.drain();
        if self.auto_commit {
            self.commit();
        }
    }

    pub fn commit(&mut self) {
        if self.committed < self.issued {
            self.committed = self.issued;
            self.hub.handle(self.now, Input::Committed { ticket: self.issued });
            self.drain();
        }
    }

    pub fn drain(&mut self) {
        while let Some(out) = self.hub.poll_output() {
            match out {
                Output::Persist { ticket, writes } => {
                    assert_eq!(ticket, self.issued + 1, "tickets are consecutive");
                    self.issued = ticket;
                    self.writes.extend(writes.into_iter().map(|w| (ticket, w)));
                }
                Output::Send { to, message } => self.inbox.entry(to).or_default().push(decode(message)),
                Output::Read { to, request_id, read } => self.reads.push((to, request_id, read)),
                Output::Load { id, load } => self.loads.push((id, load)),
                Output::Close { session, code, .. } => self.closes.push((session, code)),
                Output::Grant(grant) => self.grants.push(grant),
                Output::VoiceRoom { channel, members } => {
                    if members.is_empty() {
                        self.rooms.remove(&channel);
                    } else {
                        self.rooms.insert(channel, members);
                    }
                }
            }
        }
    }

    pub fn connect(&mut self) -> SessionId {
        self.connect_with(|s| Some(format!("resume-{}", s.0)))
    }

    /// A connection whose transport never comes back to its session (a
    /// terminal's).
    pub fn connect_once(&mut self) -> SessionId {
        self.connect_with(|_| None)
    }

    fn connect_with(&mut self, resume_key: impl FnOnce(SessionId) -> Option<String>) -> SessionId {
        self.next_session += 1;
        let s = SessionId(self.next_session);
        self.input(Input::Connected {
            session: s,
            resume_key: resume_key(s),
            auth_within_ms: AUTH_WITHIN_MS,
        });
        s
    }

    /// Sends a request and returns the request id.
    pub fn send(&mut self, session: SessionId, request: Request) -> u64 {
        self.rid += 1;
        let rid = self.rid;
        self.input(Input::Request { session, request_id: rid, request });
        rid
    }

    /// Sends a request and returns its reply (or error).
    pub fn call(&mut self, session: SessionId, request: Request) -> Result<R, (ErrorCode, String)> {
        let rid = self.send(session, request);
        self.take_answer(session, rid).expect("an answer")
    }

    pub fn take_answer(&mut self, session: SessionId, rid: u64) -> Option<Result<R, (ErrorCode, String)>> {
        let inbox = self.inbox.entry(session).or_default();
        let pos = inbox.iter().position(|k| match k {
            Kind::Reply(r) => r.request_id == rid,
            Kind::Error(e) => e.request_id == rid,
            Kind::Event(_) => false,
        })?;
        Some(match inbox.remove(pos) {
            Kind::Reply(r) => Ok(r.result.unwrap()),
            Kind::Error(e) => Err((e.code(), e.reason)),
            Kind::Event(_) => unreachable!(),
        })
    }

    pub fn events(&mut self, session: SessionId) -> Vec<v1::Event> {
        let inbox = self.inbox.entry(session).or_default();
        let (events, rest): (Vec<_>, Vec<_>) = inbox.drain(..).partition(|k| matches!(k, Kind::Event(_)));
        *inbox = rest;
        let events: Vec<v1::Event> =
            events.into_iter().map(|k| if let Kind::Event(e) = k { e } else { unreachable!() }).collect();
        if let Some(last) = events.last() {
            self.last_seq.insert(session, last.seq);
        }
        events
    }

    pub fn register(
        &mut self,
        name: &str,
        credential: Credential,
    ) -> Result<(SessionId, v1::Ready), ErrorCode> {
        let s = self.connect();
        let reg = Registration {
            username: Username::parse(name).unwrap(),
            display_name: DisplayName::parse(name).unwrap(),
            password_hash: "$argon2id$test".into(),
            token: format!("token-{name}"),
            token_hash: TokenHash(*blake(name)),
            credential,
        };
        match self.call(s, Request::Register(Box::new(reg))) {
            Ok(R::Ready(ready)) => {
                self.ids.insert(name.to_owned(), ready.user.as_ref().unwrap().id);
                Ok((s, ready))
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err((code, _)) => Err(code),
        }
    }

    /// Another session of an existing user (authenticated by their token).
    pub fn login(&mut self, name: &str) -> (SessionId, v1::Ready) {
        let s = self.connect();
        match self.call(s, Request::Authenticate { token_hash: TokenHash(*blake(name)) }) {
            Ok(R::Ready(ready)) => (s, ready),
            other => panic!("{other:?}"),
        }
    }

    /// The id of a registered user.
    pub fn id(&self, name: &str) -> u64 {
        self.ids[name]
    }

    pub fn owner(&mut self) -> SessionId {
        self.register("owner", Credential::SetupCode(SETUP.into())).unwrap().0
    }

    pub fn community(&mut self, s: SessionId, name: &str) -> v1::Community {
        match self.call(s, Request::CreateCommunity { name: CommunityName::parse(name).unwrap() }).unwrap() {
            R::Community(c) => c,
            other => panic!("{other:?}"),
        }
    }

    pub fn invite(&mut self, s: SessionId, community: u64) -> String {
        let code = format!("code{}", self.rid);
        let req = Request::CreateInvite {
            community: CommunityId(community),
            max_uses: None,
            expires_in_ms: None,
            code: code.clone(),
        };
        match self.call(s, req).unwrap() {
            R::Invite(i) => i.code,
            other => panic!("{other:?}"),
        }
    }

    /// An owner with a community, and `n` members who joined it by invite.
    pub fn family(&mut self, members: &[&str]) -> (SessionId, v1::Community, Vec<SessionId>) {
        let owner = self.owner();
        let c = self.community(owner, "Family");
        let sessions = members
            .iter()
            .map(|m| {
                let code = self.invite(owner, c.id);
                self.register(m, Credential::Invite(code)).unwrap().0
            })
            .collect();
        for s in [owner].iter().chain(&sessions) {
            self.events(*s);
        }
        (owner, c, sessions)
    }

    pub fn say(
        &mut self,
        s: SessionId,
        channel: u64,
        text: &str,
        nonce: Option<&str>,
    ) -> Result<R, (ErrorCode, String)> {
        self.call(
            s,
            Request::SendMessage {
                channel: ChannelId(channel),
                body: Body::parse(text).unwrap(),
                nonce: nonce.map(|n| Nonce::parse(n).unwrap().unwrap()),
                reply_to: None,
                uploads: Vec::new(),
            },
        )
    }
}

/// A distinct 32-byte value per name (the hub never inspects it).
pub fn blake(name: &str) -> Box<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        out[i % 32] ^= b.wrapping_mul(31).wrapping_add(i as u8);
    }
    out[31] = name.len() as u8;
    Box::new(out)
}

pub fn message(r: R) -> v1::Message {
    match r {
        R::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}
