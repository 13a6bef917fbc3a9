//! Arbitrary requests from three members of a community, through the real
//! parser into the hub (writes committed at once), then each member's
//! snapshot on a fresh login: the hub never panics, every `Ready` encodes
//! and decodes to itself, and none outgrows the largest frame a client
//! accepts — whatever the others did (BAD_INPUTS R: nothing one member
//! sends can make a co-member's snapshot unloadable).
#![no_main]

use kith_core::request::{Credential, Parsed, Registration, Request, TokenHash, parse};
use kith_core::store::StoredState;
use kith_core::text::{DisplayName, Username};
use kith_core::{Hub, HubConfig, Input, Output, SessionId, Timestamp};
use kith_proto::v1::{self, ClientMessage, reply::Result as R, server_message::Kind};
use kith_proto::{FrameDecoder, MAX_SERVER_FRAME};
use libfuzzer_sys::fuzz_target;
use prost::Message;

struct World {
    hub: Hub,
    now: Timestamp,
    rid: u64,
    /// The last whole frame each session was sent that answers `rid`.
    answers: Vec<(SessionId, Kind)>,
}

impl World {
    fn input(&mut self, input: Input) {
        self.now = self.now.plus_ms(1);
        self.hub.handle(self.now, input);
        while let Some(out) = self.hub.poll_output() {
            match out {
                Output::Persist { ticket, .. } => self.hub.handle(self.now, Input::Committed { ticket }),
                Output::Send { to, message: kith_core::Outgoing::Message(m) } => {
                    let bytes = [&(m.len() as u32).to_be_bytes()[..], &m.bytes()[..]].concat();
                    let mut dec = FrameDecoder::new(MAX_SERVER_FRAME);
                    dec.extend(&bytes);
                    let frame = dec.next_frame().expect("frames fit").expect("whole");
                    let msg = v1::ServerMessage::decode(frame).expect("the hub encodes what it sends");
                    if let Some(kind) = msg.kind {
                        self.answers.push((to, kind));
                    }
                }
                _ => {}
            }
        }
    }

    fn request(&mut self, session: SessionId, request: Request) {
        self.rid += 1;
        self.input(Input::Request { session, request_id: self.rid, request });
    }

    fn connect(&mut self, n: u64) -> SessionId {
        let s = SessionId(n);
        self.input(Input::Connected { session: s, resume_key: format!("key-{n}"), auth_within_ms: 15_000 });
        s
    }

    fn register(&mut self, s: SessionId, name: &str, credential: Credential) {
        let reg = Registration {
            username: Username::parse(name).unwrap(),
            display_name: DisplayName::parse(name).unwrap(),
            password_hash: String::new(),
            token: name.into(),
            token_hash: token(name),
            credential,
        };
        self.request(s, Request::Register(Box::new(reg)));
    }
}

fn token(name: &str) -> TokenHash {
    let mut t = [0u8; 32];
    t[..name.len()].copy_from_slice(name.as_bytes());
    TokenHash(t)
}

const NAMES: [&str; 3] = ["owner", "alice", "mallory"];

fuzz_target!(|data: &[u8]| {
    let config = HubConfig { setup_code: Some("SETUP".into()), ..HubConfig::default() };
    let mut w = World { hub: Hub::new(StoredState::default(), config), now: Timestamp(1_800_000_000_000), rid: 0, answers: Vec::new() };
    let sessions: Vec<SessionId> = (1..=3).map(|n| w.connect(n)).collect();
    w.register(sessions[0], NAMES[0], Credential::SetupCode("SETUP".into()));
    w.request(sessions[0], Request::CreateCommunity { name: kith_core::text::CommunityName::parse("Family").unwrap() });
    // The community's id is the hub's to choose: find it in the answers.
    let community = w.answers.iter().find_map(|(_, k)| match k {
        Kind::Reply(v1::Reply { result: Some(R::Community(c)), .. }) => Some(c.id),
        _ => None,
    });
    let Some(community) = community else { return };
    w.answers.clear();
    w.request(
        sessions[0],
        Request::CreateInvite {
            community: kith_core::CommunityId(community),
            max_uses: None,
            expires_in_ms: None,
            code: "CODE".into(),
        },
    );
    w.register(sessions[1], NAMES[1], Credential::Invite("CODE".into()));
    w.register(sessions[2], NAMES[2], Credential::Invite("CODE".into()));

    // Each request: a byte choosing the session, two of length, the message.
    let mut rest = data;
    while rest.len() >= 3 {
        let who = sessions[usize::from(rest[0]) % 3];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let Ok(msg) = ClientMessage::decode(body) else { continue };
        if let Ok(Parsed::Hub(request)) = parse(msg.request, |_| format!("C{}", w.rid)) {
            w.request(who, request);
            w.answers.clear();
        }
        // Time passes between requests, so rate limits refill sometimes.
        w.now = w.now.plus_ms(u64::from(rest.first().copied().unwrap_or(0)) * 100);
    }

    // Everyone logs in afresh: every snapshot loads.
    for (n, name) in NAMES.iter().enumerate() {
        let fresh = w.connect(100 + n as u64);
        w.answers.clear();
        w.request(fresh, Request::Authenticate { token_hash: token(name) });
        for (_, kind) in &w.answers {
            if let Kind::Reply(v1::Reply { result: Some(R::Ready(ready)), .. }) = kind {
                let bytes = ready.encode_to_vec();
                assert!(bytes.len() < MAX_SERVER_FRAME, "{name}'s snapshot is {} bytes", bytes.len());
                assert_eq!(&v1::Ready::decode(bytes.as_slice()).unwrap(), ready);
            }
        }
    }
});
