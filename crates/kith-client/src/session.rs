//! A session that outlives its connections: when one drops, [`Session`]
//! reconnects with jittered exponential backoff and resumes where the event
//! stream left off, so the application sees every event exactly once, in
//! order — or, when the server cannot honour the resume, an explicit
//! [`Update::Reset`] with a fresh snapshot. Never a silent gap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_proto::v1::{self, client_message::Request, reply::Result as ReplyResult};
use rand::Rng;
use tokio::sync::mpsc;

use crate::{Client, Connector, Error};

/// What a [`Session`] tells its application, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A pushed event; `seq` runs without gaps until a `Reset`.
    Event(v1::Event),
    /// The connection dropped; the next attempt comes after `delay`.
    Reconnecting { attempt: u32, delay: Duration, reason: String },
    /// Back, with no gap: the `replayed` events just delivered were missed
    /// while away.
    Resumed { replayed: u64 },
    /// The session could not be resumed (`ready.resume_refused` says why).
    /// This snapshot replaces all state; refetch any history on show.
    Reset(Box<v1::Ready>),
    /// The session is over for good (logged out, token revoked, or the
    /// server's identity changed — `identity` then says how); no more updates.
    Ended { reason: String, identity: Option<IdentityChange> },
}

/// A server that came back with another identity than the pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    pub addr: String,
    pub pinned: String,
    pub presented: String,
}

/// Reconnection timing: full-jitter exponential backoff (a random delay up
/// to `initial * 2^attempt`, capped at `max`), so that clients cut off
/// together do not return together.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.initial.saturating_mul(1 << attempt.min(20)).min(self.max);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// Updates buffered for the application; past this, reading the connection
/// pauses (and the server's own buffer takes over).
const UPDATE_BUFFER: usize = 1024;

/// An authenticated session that resumes by itself.
#[derive(Debug)]
pub struct Session {
    current: Arc<Mutex<Arc<Client>>>,
    updates: tokio::sync::Mutex<mpsc::Receiver<Update>>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

impl Session {
    /// Connects to `addr` with `connector`, authenticates with `token`, and
    /// keeps the session alive until it ends or is dropped.
    pub async fn start(
        connector: Connector,
        addr: &str,
        token: &str,
        backoff: Backoff,
    ) -> Result<(Session, v1::Ready), Error> {
        let (client, _) = connector.connect(addr).await?;
        let ready = client.authenticate(token).await?;
        let client = Arc::new(client);
        let current = Arc::new(Mutex::new(client.clone()));
        let (tx, rx) = mpsc::channel(UPDATE_BUFFER);
        let supervisor = Supervisor {
            connector,
            addr: addr.to_owned(),
            token: token.to_owned(),
            backoff,
            current: current.clone(),
            session_id: ready.session_id.clone(),
            last_seq: 0,
            updates: tx,
        };
        let supervisor = tokio::spawn(supervisor.run(client));
        Ok((Session { current, updates: tokio::sync::Mutex::new(rx), supervisor }, ready))
    }

    /// Whether the session is over for good (after `Ended`): requests on it
    /// cannot succeed any more.
    pub fn ended(&self) -> bool {
        self.supervisor.is_finished()
    }

    /// The next update, or `None` after `Ended`.
    pub async fn next_update(&self) -> Option<Update> {
        self.updates.lock().await.recv().await
    }

    /// The current connection, for requests. During a reconnect it is the
    /// dead one and requests fail with [`Error::Closed`]; sends are safe to
    /// retry with the same nonce.
    pub fn client(&self) -> Arc<Client> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends one request on the current connection.
    pub async fn request(&self, request: Request) -> Result<ReplyResult, Error> {
        self.client().request(request).await
    }

    /// Drops the current connection as a network failure would; the session
    /// reconnects and resumes. What an application does when it knows the
    /// network changed (and what tests use to cut a connection).
    pub fn drop_connection(&self) {
        self.client().abort();
    }
}

struct Supervisor {
    connector: Connector,
    addr: String,
    token: String,
    backoff: Backoff,
    current: Arc<Mutex<Arc<Client>>>,
    session_id: String,
    last_seq: u64,
    updates: mpsc::Sender<Update>,
}

/// Closes after which reconnecting is pointless.
fn terminal(code: Option<v1::CloseCode>) -> bool {
    matches!(code, Some(v1::CloseCode::TokenRevoked | v1::CloseCode::Normal))
}

impl Supervisor {
    async fn run(mut self, mut client: Arc<Client>) {
        loop {
            if !self.forward(&client, None).await {
                return;
            }
            let code = client.close_code();
            let reason = client.close_reason().unwrap_or_else(|| "connection lost".into());
            if terminal(code) {
                let _ = self.updates.send(Update::Ended { reason, identity: None }).await;
                return;
            }
            match self.reconnect(reason).await {
                Some(next) => client = next,
                None => return,
            }
        }
    }

    /// Passes events on until the connection closes (or, with `limit`, until
    /// that many have passed). False once the application is gone.
    async fn forward(&mut self, client: &Client, limit: Option<u64>) -> bool {
        let mut passed = 0;
        while limit.is_none_or(|l| passed < l) {
            let Some(event) = client.next_event().await else { return true };
            if event.seq != self.last_seq + 1 {
                // Our own buffer overflowed and dropped events: resume from
                // the last one we passed on rather than leave a gap.
                tracing::warn!(expected = self.last_seq + 1, got = event.seq, "event gap; resuming");
                client.abort();
                return true;
            }
            self.last_seq = event.seq;
            passed += 1;
            if self.updates.send(Update::Event(event)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Reconnects until resumed, reset or ended. `None` if the session ended.
    async fn reconnect(&mut self, mut reason: String) -> Option<Arc<Client>> {
        let mut attempt = 0;
        loop {
            let delay = self.backoff.delay(attempt);
            let update = Update::Reconnecting { attempt, delay, reason: reason.clone() };
            if self.updates.send(update).await.is_err() {
                return None;
            }
            tokio::time::sleep(delay).await;
            attempt = attempt.saturating_add(1);
            let client = match self.connector.connect(&self.addr).await {
                Ok((c, _)) => Arc::new(c),
                // An alarm, not an outage: trying again cannot help, and
                // must not quietly succeed later either.
                Err(e @ Error::IdentityChanged { .. }) => {
                    let Error::IdentityChanged { addr, pinned, presented } = &e else { unreachable!() };
                    let identity = IdentityChange {
                        addr: addr.clone(),
                        pinned: pinned.clone(),
                        presented: presented.clone(),
                    };
                    let _ = self
                        .updates
                        .send(Update::Ended { reason: e.to_string(), identity: Some(identity) })
                        .await;
                    return None;
                }
                Err(e) => {
                    reason = e.to_string();
                    continue;
                }
            };
            let resume = v1::ResumeRequest {
                token: self.token.clone(),
                session_id: self.session_id.clone(),
                last_seq: self.last_seq,
            };
            match client.request(Request::Resume(resume)).await {
                Ok(ReplyResult::Resumed(r)) => {
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = client.clone();
                    // The missed events arrived before the reply: pass them on first.
                    if !self.forward(&client, Some(r.replayed)).await {
                        return None;
                    }
                    if self.updates.send(Update::Resumed { replayed: r.replayed }).await.is_err() {
                        return None;
                    }
                    return Some(client);
                }
                Ok(ReplyResult::Ready(ready)) => {
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = client.clone();
                    self.session_id = ready.session_id.clone();
                    self.last_seq = 0;
                    if self.updates.send(Update::Reset(Box::new(ready))).await.is_err() {
                        return None;
                    }
                    return Some(client);
                }
                Ok(_) => reason = "the server answered the resume oddly".into(),
                Err(Error::Server { code: v1::ErrorCode::BadCredentials, reason, .. }) => {
                    let _ = self.updates.send(Update::Ended { reason, identity: None }).await;
                    return None;
                }
                Err(e) => reason = e.to_string(),
            }
        }
    }
}
