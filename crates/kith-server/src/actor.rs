//! The one task that owns the hub. Connection tasks send it inputs over a
//! bounded channel; it carries out the hub's outputs: writes to the store
//! writer, frames to per-session outboxes, reads to blocking threads.
//!
//! It never waits on a client: a full outbox means a slow consumer, which is
//! disconnected. It does wait on the store writer when the writer's queue is
//! full — that is the disk pushing back, and it should slow everyone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::store::{AuditRow, Loaded, MessageRow};
use kith_core::{Hub, Input, Outgoing, Output, Read, SessionId, Timestamp};
use kith_proto::v1::{self, CloseCode, ErrorCode, reply::Result as ReplyResult, server_message::Kind};
use tokio::sync::mpsc;

use crate::store::{Batch, Reader, Readers, StoreError};
use crate::voice::{Rooms, VoiceLink};

/// What a session's writer task is asked to do, in order.
#[derive(Debug)]
pub enum OutItem {
    Send(Outgoing),
    /// Write what the transport holds of a frame the hub's turn began to
    /// write ([`crate::edge::stream::Tried::Partly`]): these many bytes.
    Flush(usize),
    /// Flush what came before, then close the connection.
    Close(CloseCode, String),
}

impl OutItem {
    /// Bytes this item puts on the wire (what the outbox limit counts).
    pub fn wire_len(&self) -> usize {
        match self {
            OutItem::Send(out) => crate::edge::framed_len(out),
            OutItem::Flush(rest) => *rest,
            // Never zero: a queued close keeps the hub from writing past it.
            OutItem::Close(_, reason) => reason.len() + 1,
        }
    }
}

/// Closes a connection at once, dropping whatever is unsent. Transport-agnostic
/// so other edges (telnet, web) can register sessions too.
pub type Abort = Arc<dyn Fn(CloseCode, &str) + Send + Sync>;

/// A session's queue of what the hub could not write to its transport at
/// once. futures' channel, not tokio's: tokio's allocates a first block of
/// 32 items (over 1 KiB) with every channel, and every connection has one,
/// mostly empty — this one allocates per queued item, which only the
/// writer's slow path pays.
pub type Outbox = futures_channel::mpsc::UnboundedSender<OutItem>;

/// A session's handles, as the actor keeps them.
#[derive(Clone)]
pub struct SessionHandle {
    pub outbox: Outbox,
    /// Bytes in the outbox, shared with the session's writer task.
    pub queued: Arc<AtomicUsize>,
    /// The most `queued` may reach.
    pub limit: usize,
    pub abort: Abort,
    /// The transport itself, if the hub may write to it past an empty outbox.
    pub direct: Option<Arc<dyn crate::edge::stream::Direct>>,
    /// Where voice for this session is sent, if its transport carries voice.
    pub voice: Option<VoiceLink>,
    /// The session's reads queued or running (at most [`READS_PER_SESSION`]).
    pub reads: Arc<AtomicUsize>,
    /// Counts this session, if it is cut off as a slow consumer.
    pub slow: prometheus_client::metrics::counter::Counter,
}

/// Reads one session may have queued or running at once. A client paging
/// through history needs one or two; past this a flood is refused (with a
/// retry time) rather than taking the pool from everyone else.
pub const READS_PER_SESSION: usize = 8;

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle").finish_non_exhaustive()
    }
}

impl SessionHandle {
    /// Queues an item. A session whose queue would outgrow its limit is a
    /// slow consumer: it is disconnected (and may resume), so that it never
    /// holds up the hub or anyone else. A frame into an empty queue is
    /// always taken, whatever its size: a session is never cut off for the
    /// size of one answer (its own snapshot), only for not reading.
    pub fn push(&self, item: OutItem) {
        // The common case at steady rates: nothing queued, room in the
        // transport. Written now, it wakes no writer and crosses no channel.
        if let (OutItem::Send(frame), Some(direct)) = (&item, &self.direct)
            && direct.try_send(std::slice::from_ref(frame), self)
        {
            return;
        }
        self.enqueue(item);
    }

    /// Sends `frames`, in order, written to the transport in one go if it
    /// can take them at once; `frames` is left empty.
    pub fn push_frames(&self, frames: &mut Vec<Outgoing>) {
        if let Some(direct) = &self.direct
            && !frames.is_empty()
            && direct.try_send(frames, self)
        {
            frames.clear();
            return;
        }
        for frame in frames.drain(..) {
            self.enqueue(OutItem::Send(frame));
        }
    }

    /// Puts an item in the outbox, for the session's writer (see `push`).
    pub(crate) fn enqueue(&self, item: OutItem) {
        let len = item.wire_len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.slow.inc();
            (self.abort)(CloseCode::SlowConsumer, "slow consumer: events were not read fast enough");
            return;
        }
        if self.outbox.unbounded_send(item).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

/// Frames for each session, gathered over one turn of the hub and written
/// once per session when the turn ends: a commit that releases many
/// replies and events to one connection costs one stream write, not one
/// each. Anything that must come after a session's frames (a close, a read
/// answered from another thread) flushes that session's first.
#[derive(Default)]
struct Gathered {
    /// The first `used` are this turn's, in the order each session first
    /// got a frame; the rest keep their vectors for the next turn.
    slots: Vec<(SessionId, Vec<Outgoing>)>,
    used: usize,
    index: HashMap<SessionId, usize>,
}

impl Gathered {
    fn add(&mut self, to: SessionId, frame: Outgoing) {
        let slot = match self.index.get(&to) {
            Some(&slot) => slot,
            None => {
                if self.used == self.slots.len() {
                    self.slots.push((to, Vec::new()));
                }
                self.slots[self.used].0 = to;
                self.index.insert(to, self.used);
                self.used += 1;
                self.used - 1
            }
        };
        self.slots[slot].1.push(frame);
    }

    /// Writes what `to` has gathered, before something that must follow it.
    fn flush_one(&mut self, to: SessionId, sessions: &HashMap<SessionId, SessionHandle>) {
        if let Some(slot) = self.index.remove(&to) {
            let frames = &mut self.slots[slot].1;
            match sessions.get(&to) {
                Some(s) => s.push_frames(frames),
                None => frames.clear(),
            }
        }
    }

    /// Writes everything gathered, in the order the sessions first got a frame.
    fn flush(&mut self, sessions: &HashMap<SessionId, SessionHandle>) {
        for (to, frames) in &mut self.slots[..self.used] {
            match sessions.get(to) {
                Some(s) if !frames.is_empty() => s.push_frames(frames),
                _ => frames.clear(),
            }
        }
        self.used = 0;
        self.index.clear();
    }
}

/// Messages to the actor.
/// What a new session is given, which depends on its transport.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    /// How long it has to authenticate (the hub keeps the deadline).
    pub auth_within: std::time::Duration,
    /// Whether its client can come back to it after the connection drops. A
    /// terminal's or a webhook's cannot, and the hub keeps nothing for them
    /// to resume with.
    pub resumable: bool,
}

#[derive(Debug)]
pub enum ToHub {
    Open {
        session: SessionId,
        handle: SessionHandle,
        terms: Terms,
    },
    Input(Input),
    /// New settings for what may change while running (SIGHUP).
    Reconfigure(Box<kith_core::HubConfig>),
    /// Stop taking requests, flush the store, close every session.
    Shutdown,
}

/// What the store writer reports back.
pub type CommitReport = Result<u64, StoreError>;

pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Timestamp(ms)
}

/// An error frame answering `request_id`.
pub fn error_frame(request_id: u64, code: ErrorCode, reason: impl Into<String>) -> Outgoing {
    error(request_id, code, reason.into(), 0)
}

/// A RATE_LIMITED error: try again after `retry_after_ms`.
pub fn error_frame_after(request_id: u64, reason: String, retry_after_ms: u64) -> Outgoing {
    error(request_id, ErrorCode::RateLimited, reason, retry_after_ms)
}

fn error(request_id: u64, code: ErrorCode, reason: String, retry_after_ms: u64) -> Outgoing {
    Outgoing::message(v1::ServerMessage {
        kind: Some(Kind::Error(v1::Error { request_id, code: code as i32, reason, retry_after_ms })),
    })
}

fn reply_frame(request_id: u64, result: ReplyResult) -> Outgoing {
    Outgoing::message(v1::ServerMessage {
        kind: Some(Kind::Reply(v1::Reply { request_id, result: Some(result) })),
    })
}

/// Runs the hub until shutdown or a store failure. Returns the store error,
/// if that is what ended it.
pub async fn run(
    mut hub: Hub,
    mut inbox: mpsc::Receiver<ToHub>,
    mut commits: mpsc::UnboundedReceiver<CommitReport>,
    writer: mpsc::Sender<Batch>,
    readers: Arc<Readers>,
    files: Arc<crate::files::Files>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(), StoreError> {
    let mut sessions: HashMap<SessionId, SessionHandle> = HashMap::new();
    // The hub's refusal counts as last added to the metrics.
    let mut refusals_seen: HashMap<&'static str, u64> = HashMap::new();
    let mut rooms = Rooms::default();
    let mut writer = Some(writer);
    let mut result = Ok(());
    // The hub's next deadline, as one timer re-armed only when it moves (not
    // once per turn: the actor turns tens of thousands of times a second).
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Timestamp> = None;
    // The store's answers to `Output::Load`, from the reader threads.
    let (loaded_tx, mut loaded_rx) = mpsc::unbounded_channel::<(u64, Option<Loaded>)>();
    let mut gathered = Gathered::default();
    loop {
        let next = hub.poll_timeout();
        if next != armed {
            armed = next;
            if let Some(at) = next {
                let wait = std::time::Duration::from_millis(at.0.saturating_sub(now().0));
                timer.as_mut().reset(tokio::time::Instant::now() + wait);
            }
        }
        // Commits first: they release acknowledgements that clients wait on.
        tokio::select! {
            biased;
            report = commits.recv() => match report {
                Some(Ok(ticket)) => hub.handle(now(), Input::Committed { ticket }),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "the store failed; stopping without acknowledging unwritten data");
                    result = Err(e);
                    break;
                }
                // The writer is gone: after a shutdown it has flushed everything.
                None => break,
            },
            msg = inbox.recv(), if writer.is_some() => match msg {
                Some(ToHub::Open { session, handle, terms }) => {
                    sessions.insert(session, handle);
                    let auth_within_ms = u64::try_from(terms.auth_within.as_millis()).unwrap_or(u64::MAX);
                    let resume_key = terms.resumable.then(|| crate::auth::random_code(32));
                    hub.handle(now(), Input::Connected { session, resume_key, auth_within_ms });
                }
                Some(ToHub::Input(input)) => {
                    if let Input::Disconnected { session } | Input::Closed { session } = &input {
                        sessions.remove(session);
                    }
                    hub.handle(now(), input);
                }
                Some(ToHub::Reconfigure(config)) => hub.reconfigure(*config),
                Some(ToHub::Shutdown) | None => {
                    // Dropping the writer's sender lets it finish its queue and exit;
                    // its last commits still come in above.
                    writer = None;
                }
            },
            Some((id, loaded)) = loaded_rx.recv() => hub.handle(now(), Input::Loaded { id, loaded }),
            () = &mut timer, if armed.is_some() => {
                armed = None;
                hub.handle(now(), Input::Tick);
            }
        }
        metrics.sessions.set(sessions.len() as i64);
        for (what, n) in hub.rate_refusals() {
            let before = refusals_seen.insert(what, n).unwrap_or(0);
            if n > before {
                metrics
                    .rate_limited
                    .get_or_create(&crate::metrics::Limit { limit: what.to_owned() })
                    .inc_by(n - before);
            }
        }
        while let Some(out) = hub.poll_output() {
            match out {
                Output::Persist { ticket, writes } => {
                    let Some(w) = &writer else {
                        // Shutting down: a request raced the shutdown. Its reply is
                        // held behind this write and will never be sent, which is
                        // right: it was not made durable.
                        continue;
                    };
                    // Waiting for room in the writer's queue (the disk pushing
                    // back) must not hold up what this turn has already released.
                    let permit = match w.try_reserve() {
                        Ok(permit) => Ok(permit),
                        Err(mpsc::error::TrySendError::Full(())) => {
                            gathered.flush(&sessions);
                            w.reserve().await
                        }
                        Err(mpsc::error::TrySendError::Closed(())) => Err(mpsc::error::SendError(())),
                    };
                    let Ok(permit) = permit else {
                        // The writer died; its error report is already queued.
                        break;
                    };
                    permit.send((ticket, writes));
                }
                Output::Send { to, message } => {
                    if sessions.contains_key(&to) {
                        metrics.deliveries.inc();
                        gathered.add(to, message);
                    }
                }
                Output::Close { session, code, reason } => {
                    gathered.flush_one(session, &sessions);
                    if let Some(s) = sessions.get(&session) {
                        s.push(OutItem::Close(code, reason));
                    }
                }
                Output::VoiceRoom { channel, members } => {
                    rooms.publish(channel, &members, |s| sessions.get(&s).and_then(|h| h.voice.as_ref()));
                }
                Output::Grant(grant) => files.grant(grant),
                Output::Load { id, load } => {
                    let tx = loaded_tx.clone();
                    let job = move |db: &dyn Reader| {
                        let loaded = db
                            .load(&load)
                            .inspect_err(|e| tracing::error!(error = %e, "loading older messages failed"))
                            .ok();
                        let _ = tx.send((id, loaded));
                    };
                    if readers.submit(job).is_err() {
                        // The pool is full: the request is told to retry.
                        let _ = loaded_tx.send((id, None));
                    }
                }
                Output::Read { to, request_id, read } => {
                    // The answer comes from a reader thread, after what came before.
                    gathered.flush_one(to, &sessions);
                    let Some(s) = sessions.get(&to).cloned() else { continue };
                    if s.reads.fetch_add(1, Ordering::Relaxed) >= READS_PER_SESSION {
                        s.reads.fetch_sub(1, Ordering::Relaxed);
                        let reason = format!(
                            "slow down: at most {READS_PER_SESSION} reads at once per connection; retry in 50 ms"
                        );
                        s.push(OutItem::Send(error_frame_after(request_id, reason, 50)));
                        continue;
                    }
                    let job = {
                        let s = s.clone();
                        move |db: &dyn Reader| {
                            s.push(OutItem::Send(answer_read(db, request_id, read)));
                            s.reads.fetch_sub(1, Ordering::Relaxed);
                        }
                    };
                    if readers.submit(job).is_err() {
                        s.reads.fetch_sub(1, Ordering::Relaxed);
                        let reason = "the server is busy reading; retry in 100 ms".to_owned();
                        s.push(OutItem::Send(error_frame_after(request_id, reason, 100)));
                    }
                }
            }
        }
        gathered.flush(&sessions);
    }
    let (code, reason) = match &result {
        Ok(()) => (CloseCode::Shutdown, "the server is shutting down"),
        Err(_) => (CloseCode::Internal, "the server hit a storage error"),
    };
    for s in sessions.values() {
        s.push(OutItem::Close(code, reason.into()));
    }
    result
}

fn answer_read(reader: &dyn Reader, request_id: u64, read: Read) -> Outgoing {
    let answer = match read {
        Read::History(query) => reader.history(query).map(|rows| {
            ReplyResult::Messages(v1::MessagePage {
                messages: rows.into_iter().map(MessageRow::into_wire).collect(),
            })
        }),
        Read::Message(id) => reader.message(id).map(|m| match m {
            Some(m) => ReplyResult::Message(m.into_wire()),
            // The hub only asks for messages it knows are committed.
            None => ReplyResult::Empty(v1::Empty {}),
        }),
        Read::Audit(query) => reader.audit(query).map(|rows| {
            ReplyResult::AuditLog(v1::AuditLogPage {
                entries: rows.into_iter().map(AuditRow::into_wire).collect(),
            })
        }),
    };
    match answer {
        Ok(result) => reply_frame(request_id, result),
        Err(e) => {
            tracing::error!(error = %e, "reading from the store failed");
            error_frame(request_id, ErrorCode::Internal, "the server could not read its store; try again")
        }
    }
}
