//! A real server on 127.0.0.1:0 in a temporary directory, and real clients.

#![allow(dead_code)] // Each test binary uses a different part of this.

pub mod telnet;

use std::time::Duration;

use kith_client::proto::{
    self as v1, client_message::Request, register_request::Credential, reply::Result as R,
};
use kith_client::{Client, Trust};
use kith_server::{Config, Server};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestServer {
    pub server: Server,
    pub addr: String,
    pub fingerprint: String,
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
        // Every test client comes from 127.0.0.1: limits are tested on their own.
        config.limits = kith_server::Limits::unlimited();
        tweak(&mut config);
        let server = start_retrying(config).await;
        TestServer {
            addr: server.local_addr().to_string(),
            fingerprint: server.fingerprint().to_owned(),
            server,
            dir,
        }
    }

    /// A connected, unauthenticated client that pins this server.
    pub async fn client(&self) -> Client {
        Client::connect(&self.addr, Trust::Pin(self.fingerprint.clone())).await.unwrap().0
    }

    /// Registers the owner with the setup code.
    pub async fn owner(&self, name: &str) -> (Client, v1::Ready) {
        let code = self.server.setup_code().expect("no owner yet").to_owned();
        let c = self.client().await;
        let ready = c.register(name, PASSWORD, Some(Credential::SetupCode(code))).await.unwrap();
        (c, ready)
    }

    /// Registers a user with an invite code.
    pub async fn member(&self, name: &str, invite: &str) -> (Client, v1::Ready) {
        let c = self.client().await;
        let ready = c.register(name, PASSWORD, Some(Credential::InviteCode(invite.into()))).await.unwrap();
        (c, ready)
    }
}

/// Starts a server, retrying while a just-stopped server's sockets on the
/// same ports are still being released: its aborted tasks (the web edge's
/// listener, connections still ending) drop them when next polled, which
/// on a loaded CI machine has taken over 2 s.
pub async fn start_retrying(config: Config) -> Server {
    let mut last = String::new();
    for _ in 0..500 {
        match Server::start(config.clone()).await {
            Ok(server) => return server,
            Err(e) if format!("{e:#}").contains("in use") => {
                last = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e:#}"),
        }
    }
    panic!("{} stayed in use for 10 s: {last}", config.listen);
}

/// An owner, a community `Family` and `members` who joined it by invite.
pub struct Family {
    pub owner: Client,
    pub community: v1::Community,
    pub general: u64,
    pub members: Vec<Client>,
    pub invite: String,
}

pub async fn family(server: &TestServer, members: &[&str]) -> Family {
    let (owner, _) = server.owner("owner").await;
    let community = create_community(&owner, "Family").await;
    let invite = create_invite(&owner, community.id).await;
    let mut clients = Vec::new();
    for m in members {
        clients.push(server.member(m, &invite).await.0);
    }
    Family { owner, general: community.channels[0].id, community, members: clients, invite }
}

pub async fn create_community(c: &Client, name: &str) -> v1::Community {
    match c.request(Request::CreateCommunity(v1::CreateCommunityRequest { name: name.into() })).await.unwrap()
    {
        R::Community(c) => c,
        other => panic!("{other:?}"),
    }
}

pub async fn create_invite(c: &Client, community_id: u64) -> String {
    let req = v1::CreateInviteRequest { community_id, max_uses: 0, expires_in_ms: 0 };
    match c.request(Request::CreateInvite(req)).await.unwrap() {
        R::Invite(i) => i.code,
        other => panic!("{other:?}"),
    }
}

/// The next `message_created` event, waiting at most five seconds.
pub async fn next_message(c: &Client) -> v1::Message {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), c.next_event())
            .await
            .expect("an event within 5 s")
            .expect("connection open");
        if let Some(v1::event::Body::MessageCreated(m)) = event.body {
            return m;
        }
    }
}

/// Proves the server still serves: the canary sends, and the listener sees it.
pub async fn canary_still_sings(canary: &Client, listener: &Client, channel: u64) {
    let text = format!("canary {}", rand_suffix());
    let sent = tokio::time::timeout(Duration::from_secs(5), canary.send_message(channel, &text, ""))
        .await
        .expect("canary acked within 5 s")
        .expect("canary accepted");
    // Earlier traffic may still be queued for the listener; the canary's
    // message must arrive after it.
    loop {
        let seen = next_message(listener).await;
        if seen.id == sent.id {
            assert_eq!(seen.body, text);
            return;
        }
        assert!(seen.id < sent.id, "events arrive in order");
    }
}

/// Sends a canary message every 100 ms until the returned sender fires,
/// and collects each one's send→seen latency at the listener: what a flood
/// costs everyone else while it runs.
pub fn canary_during(
    canary: std::sync::Arc<Client>,
    listener: std::sync::Arc<Client>,
    channel: u64,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Vec<Duration>>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut latencies = Vec::new();
        loop {
            let started = tokio::time::Instant::now();
            let text = format!("canary {}", rand_suffix());
            let sent = canary.send_message(channel, &text, "").await.expect("canary accepted");
            loop {
                let seen = next_message(&listener).await;
                if seen.id == sent.id {
                    break;
                }
            }
            latencies.push(started.elapsed());
            tokio::select! {
                _ = &mut stopped => return latencies,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    (stop, task)
}

/// The median and the worst of some latencies, in ms, for a report line.
pub fn median_and_max_ms(mut latencies: Vec<Duration>) -> (f64, f64) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match (latencies.get(latencies.len() / 2), latencies.last()) {
        (Some(m), Some(x)) => (ms(*m), ms(*x)),
        _ => (0.0, 0.0),
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The error code of a failed request.
pub fn code_of<T: std::fmt::Debug>(r: Result<T, kith_client::Error>) -> v1::ErrorCode {
    match r {
        Err(e) => e.code().unwrap_or_else(|| panic!("not a server refusal: {e}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}
