//! A hostile *server* against the CLI (shared/BAD_INPUTS.md, S): every name,
//! topic, message, error reason and close reason it sends carries terminal
//! escape sequences (clipboard writes, screen clears, window titles), bidi
//! overrides and invisible characters. No byte of them may reach the
//! terminal raw, from any command.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::KITH;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R, server_message::Kind};
use prost::Message as _;

/// Escapes, a C1 CSI, bidi and tag characters, in every string it sends.
const EVIL: &str = "\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}gnp\u{e0041}\u{200b}";

fn evil(what: &str) -> String {
    format!("{what}{EVIL}")
}

fn user(id: u64) -> v1::User {
    v1::User {
        id,
        username: evil("user"),
        display_name: evil("display"),
        status_text: evil("status"),
        bot: false,
        deleted: false,
    }
}

fn ready() -> v1::Ready {
    let channel = |id, kind: v1::ChannelKind| v1::Channel {
        id,
        community_id: 10,
        name: evil("chan"),
        topic: evil("topic"),
        permissions: u64::MAX >> 1,
        kind: kind as i32,
        unread_count: 3,
        mention_count: 1,
        ..Default::default()
    };
    let member = |id| v1::Member { user: Some(user(id)), nickname: evil("nick"), ..Default::default() };
    v1::Ready {
        user: Some(user(1)),
        token: "token".into(),
        session_id: "s".into(),
        communities: vec![v1::Community {
            id: 10,
            name: evil("community"),
            owner_id: 1,
            channels: vec![channel(11, v1::ChannelKind::Text), channel(12, v1::ChannelKind::Voice)],
            members: vec![member(1), member(2)],
            permissions: u64::MAX >> 1,
            voice_states: vec![v1::VoiceState {
                user_id: 2,
                channel_id: 12,
                community_id: 10,
                ..Default::default()
            }],
            ..Default::default()
        }],
        direct_channels: vec![v1::Channel {
            id: 20,
            name: evil("group"),
            kind: v1::ChannelKind::Group as i32,
            recipients: vec![user(1), user(2)],
            unread_count: 2,
            ..Default::default()
        }],
        presences: vec![v1::Presence { user_id: 2, status: v1::PresenceStatus::Online as i32 }],
        ..Default::default()
    }
}

fn message(id: u64) -> v1::Message {
    v1::Message {
        id,
        channel_id: 11,
        author_id: 2,
        author_name: evil("author"),
        body: evil("body"),
        created_at_ms: 1_795_262_400_000,
        ..Default::default()
    }
}

/// What the hostile server answers to each request.
fn answer(request: Option<Request>) -> Kind {
    let reply = |result| Kind::Reply(v1::Reply { request_id: 0, result: Some(result) });
    match request {
        Some(Request::Login(_) | Request::Authenticate(_) | Request::Register(_)) => reply(R::Ready(ready())),
        Some(Request::History(_)) => {
            reply(R::Messages(v1::MessagePage { messages: vec![message(100), message(101)] }))
        }
        Some(Request::AuditLog(_)) => reply(R::AuditLog(v1::AuditLogPage {
            entries: vec![v1::AuditEntry {
                id: 5,
                actor_name: evil("actor"),
                target_id: 2,
                target_name: evil("target"),
                reason: evil("reason"),
                detail: evil("detail"),
                action: v1::AuditAction::Kick as i32,
                ..Default::default()
            }],
        })),
        Some(Request::CreateInvite(_)) => reply(R::Invite(v1::Invite {
            code: "ABCD".into(),
            community_name: evil("community"),
            link: evil("kith://"),
            ..Default::default()
        })),
        Some(Request::SendMessage(_) | Request::EditMessage(_)) => reply(R::Message(message(102))),
        Some(Request::ListBans(_)) => reply(R::Bans(v1::BanList {
            bans: vec![v1::Ban { user: Some(user(2)), reason: evil("ban"), ..Default::default() }],
        })),
        // Everything else is refused, with a hostile reason.
        _ => Kind::Error(v1::Error {
            request_id: 0,
            code: v1::ErrorCode::Forbidden as i32,
            reason: evil("refused"),
            retry_after_ms: 0,
        }),
    }
}

async fn serve_connection(conn: quinn::Connection) {
    let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
    let mut decoder = kith_proto::FrameDecoder::new(kith_proto::MAX_CLIENT_FRAME);
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        decoder.extend(&chunk.bytes);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let Ok(msg) = v1::ClientMessage::decode(frame) else { return };
            let logout = matches!(msg.request, Some(Request::Logout(_)));
            let mut kind = answer(msg.request);
            match &mut kind {
                Kind::Reply(r) => r.request_id = msg.request_id,
                Kind::Error(e) => e.request_id = msg.request_id,
                Kind::Event(_) => {}
            }
            let _ = send.write_all(&kith_proto::encode_frame(&v1::ServerMessage { kind: Some(kind) })).await;
            // A pushed event too, for `tail`.
            let event = v1::Event { seq: 1, body: Some(v1::event::Body::MessageCreated(message(103))) };
            let event = v1::ServerMessage { kind: Some(Kind::Event(event)) };
            let _ = send.write_all(&kith_proto::encode_frame(&event)).await;
            if logout {
                conn.close(0u32.into(), evil("bye").as_bytes());
                return;
            }
        }
    }
}

/// The hostile server: a real QUIC endpoint with a self-signed identity.
fn start(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> (SocketAddr, String) {
    let identity = kith_server::identity::Identity::load_or_generate(dir).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.certs, identity.key)
        .unwrap();
    tls.alpn_protocols = vec![kith_proto::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let _guard = runtime.enter();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    runtime.spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    serve_connection(conn).await;
                }
            });
        }
    });
    (addr, identity.fingerprint)
}

/// Runs `kith ARGS` and returns everything it wrote to the terminal.
fn run(config: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(KITH)
        .args(args)
        .env("KITH_CONFIG_DIR", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    // `tail` follows for ever: give it a moment, then stop it.
    if args[0] == "tail" {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_hostile_server_cannot_write_escape_sequences_to_the_terminal_through_any_command() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (addr, fingerprint) = start(&runtime, tmp.path());
    let config = tmp.path().join("cfg");
    let addr = addr.to_string();
    let invite = format!("kith://{addr}/ABCD?fp={fingerprint}");
    let commands: Vec<(Vec<&str>, &str)> = vec![
        (vec!["login", "mallory", "--server", &addr, "--password-stdin"], "some password\n"),
        (vec!["whoami"], ""),
        (vec!["whoami", "--json"], ""),
        (vec!["community", "list"], ""),
        (vec!["members", "10"], ""),
        (vec!["history", "10/11"], ""),
        (vec!["history", "10/11", "--json"], ""),
        (vec!["send", "10/11", "hi"], ""),
        (vec!["send", "10/11", "hi", "--json"], ""),
        (vec!["edit", "10/11", "100", "fixed"], ""),
        (vec!["delete", "10/11", "100"], ""),
        (vec!["tail", "10/11"], ""),
        (vec!["unread"], ""),
        (vec!["dms"], ""),
        (vec!["presence"], ""),
        (vec!["voice", "list"], ""),
        (vec!["audit", "10"], ""),
        (vec!["bans", "10"], ""),
        (vec!["invite", "create", "10"], ""),
        (vec!["join", &invite], ""),
        (vec!["channel", "create", "10/new"], ""),
        (vec!["kick", "10", "2"], ""),
        (vec!["nick", "10", "x"], ""),
        (vec!["read", "10/11"], ""),
        (vec!["logout"], ""),
    ];
    for (args, stdin) in &commands {
        let shown = run(&config, args, stdin);
        let raw: Vec<char> = shown
            .chars()
            .filter(|c| {
                (c.is_control() && !matches!(c, '\n' | '\t'))
                    || matches!(c, '\u{202a}'..='\u{202e}' | '\u{200b}' | '\u{e0000}'..='\u{e007f}')
            })
            .collect();
        assert!(raw.is_empty(), "kith {args:?} let {raw:?} through:\n{shown}");
        if std::env::var_os("KITH_SHOW").is_some() {
            eprintln!("$ kith {}\n{shown}", args.join(" "));
        }
    }
}
