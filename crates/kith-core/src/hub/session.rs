//! Sessions: every one the hub knows and the indexes that find them
//! ([`Sessions`], the owner: each index changes only with the map, so they
//! cannot disagree), and sessions that outlive their connection —
//! detaching when a connection drops, expiring after the grace window, and
//! resuming without a gap.

use crate::ids::IdMap;
use std::collections::{BTreeSet, HashMap, VecDeque};

use kith_proto::v1::{self, CloseCode, reply::Result as ReplyResult};

use super::replay::Replay;
use super::{Auth, Hub, Outcome, Outgoing, Output, Refusal};
use crate::ids::{SessionId, Timestamp, UserId};
use crate::request::TokenHash;

#[derive(Debug)]
pub(super) struct Session {
    pub(super) auth: Option<Auth>,
    /// The seq of the last event sent to this session.
    pub(super) seq: u64,
    /// The secret a reconnecting client names this session by. `None` for
    /// one that is never resumed (its transport cannot come back, or it has
    /// no token to come back with: a guest's): it keeps no events for a
    /// replay, and ends with its connection.
    resume_key: Option<String>,
    /// Recent events, for replay on resume.
    pub(super) replay: Replay,
    /// When the connection dropped, while the session waits to be resumed.
    pub(super) detached_at: Option<Timestamp>,
    /// The user said they are away from this connection.
    pub(super) afk: bool,
    /// While unauthenticated: when its time to do so is up.
    auth_by: Option<Timestamp>,
}

impl Session {
    /// Whether a client could come back to this session after its
    /// connection drops.
    pub(super) fn resumable(&self) -> bool {
        self.resume_key.is_some()
    }
}

/// A session forgotten by [`Sessions::remove`].
pub(super) struct Removed {
    /// Its account, if this was that account's last session.
    pub(super) last_of: Option<UserId>,
    /// What it could have replayed, for the journal to let go of.
    pub(super) replay: Replay,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    all: IdMap<SessionId, Session>,
    /// Authenticated sessions per user (detached ones included). Ordered so
    /// fan-out order is deterministic.
    by_user: IdMap<UserId, BTreeSet<SessionId>>,
    by_resume_key: HashMap<String, SessionId>,
    /// When each unauthenticated session's time to sign in is up.
    auth_deadlines: BTreeSet<(Timestamp, SessionId)>,
    /// Detached sessions in the order they detached, to expire them.
    detached: VecDeque<(Timestamp, SessionId)>,
}

impl Sessions {
    /// A new connection's session, which must authenticate by `auth_by`.
    pub(super) fn connect(&mut self, id: SessionId, resume_key: Option<String>, auth_by: Timestamp) {
        self.auth_deadlines.insert((auth_by, id));
        let s = Session {
            auth: None,
            seq: 0,
            resume_key,
            replay: Replay::default(),
            detached_at: None,
            afk: false,
            auth_by: Some(auth_by),
        };
        self.all.insert(id, s);
    }

    pub(super) fn get(&self, id: SessionId) -> Option<&Session> {
        self.all.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.all.get_mut(&id)
    }

    /// Who the session is signed in as, if anyone.
    pub(super) fn auth(&self, id: SessionId) -> Option<Auth> {
        self.all.get(&id).and_then(|s| s.auth)
    }

    /// `user`'s sessions, connected or detached, in a stable order.
    pub(super) fn of_user(&self, user: UserId) -> impl Iterator<Item = SessionId> + '_ {
        self.by_user.get(&user).into_iter().flatten().copied()
    }

    /// The accounts with at least one session (connected or detached), in
    /// no particular order: everyone an event can reach.
    pub(super) fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.by_user.keys().copied()
    }

    /// How many accounts have a session.
    pub(super) fn users_len(&self) -> usize {
        self.by_user.len()
    }

    /// Signs `id` in: its deadline no longer applies, and it is found by its
    /// account and its resume key (returned).
    pub(super) fn bind(&mut self, id: SessionId, auth: Auth) -> Option<String> {
        let s = self.all.get_mut(&id)?;
        s.auth = Some(auth);
        if let Some(at) = s.auth_by.take() {
            self.auth_deadlines.remove(&(at, id));
        }
        // A resume names the token it continues: without one, none can.
        if auth.token.is_none() {
            s.resume_key = None;
        }
        if let Some(key) = &s.resume_key {
            self.by_resume_key.insert(key.clone(), id);
        }
        self.by_user.entry(auth.user).or_default().insert(id);
        Some(s.resume_key.clone().unwrap_or_default())
    }

    /// Forgets a session for good, with every index that names it.
    pub(super) fn remove(&mut self, id: SessionId) -> Option<Removed> {
        let s = self.all.remove(&id)?;
        if let Some(at) = s.auth_by {
            self.auth_deadlines.remove(&(at, id));
        }
        if let Some(key) = &s.resume_key
            && self.by_resume_key.get(key) == Some(&id)
        {
            self.by_resume_key.remove(key);
        }
        let mut last_of = None;
        if let Some(auth) = s.auth
            && let Some(set) = self.by_user.get_mut(&auth.user)
        {
            set.remove(&id);
            if set.is_empty() {
                self.by_user.remove(&auth.user);
                last_of = Some(auth.user);
            }
        }
        Some(Removed { last_of, replay: s.replay })
    }

    /// Marks a connected session detached at `now`, to expire after the grace.
    fn detach(&mut self, id: SessionId, now: Timestamp) {
        if let Some(s) = self.all.get_mut(&id) {
            s.detached_at = Some(now);
            self.detached.push_back((now, id));
        }
    }

    /// The detached sessions whose grace ended by `now` (and that are still
    /// detached since that moment: not resumed and dropped again later).
    fn expired(&mut self, now: Timestamp, grace_ms: u64) -> Vec<SessionId> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.detached.front() {
            if at.plus_ms(grace_ms) > now {
                break;
            }
            self.detached.pop_front();
            if self.all.get(&id).is_some_and(|s| s.detached_at == Some(at)) {
                out.push(id);
            }
        }
        out
    }

    /// The unauthenticated sessions whose time to sign in is up by `now`.
    pub(super) fn overdue(&mut self, now: Timestamp) -> Vec<SessionId> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.auth_deadlines.first() {
            if at > now {
                break;
            }
            self.auth_deadlines.pop_first();
            if self.all.get(&id).is_some_and(|s| s.auth.is_none()) {
                out.push(id);
            }
        }
        out
    }

    /// The first moment a session's deadline or grace runs out.
    pub(super) fn next_deadline(&self, grace_ms: u64) -> Option<Timestamp> {
        let auth = self.auth_deadlines.first().map(|(at, _)| *at);
        let detached = self.detached.front().map(|(at, _)| at.plus_ms(grace_ms));
        auth.into_iter().chain(detached).min()
    }

    /// The session a client names by `key`.
    fn by_resume_key(&self, key: &str) -> Option<SessionId> {
        self.by_resume_key.get(key).copied()
    }

    /// Moves `old`'s state to the connection of `new` (a resume), dropping
    /// the fresh session `new` had. Returns whether `old` was still
    /// attached to a connection (which must then be closed).
    fn take_over(&mut self, old: SessionId, new: SessionId) -> Option<bool> {
        let mut state = self.all.remove(&old)?;
        let was_attached = state.detached_at.is_none();
        state.detached_at = None;
        // The new connection's own key was never handed out; the session keeps its name.
        if let Some(fresh) = self.all.remove(&new)
            && let Some(at) = fresh.auth_by
        {
            self.auth_deadlines.remove(&(at, new));
        }
        if let Some(key) = &state.resume_key {
            self.by_resume_key.insert(key.clone(), new);
        }
        if let Some(auth) = state.auth {
            let set = self.by_user.entry(auth.user).or_default();
            set.remove(&old);
            set.insert(new);
        }
        self.all.insert(new, state);
        Some(was_attached)
    }

    /// Whether any session may be detached (some that were may have
    /// resumed since): cheap, for the replay journal's window.
    pub(super) fn any_detached(&self) -> bool {
        !self.detached.is_empty()
    }

    fn detached_count(&self) -> usize {
        self.all.values().filter(|s| s.detached_at.is_some()).count()
    }
}

impl Hub {
    /// The connection is gone. An authenticated session waits, still
    /// collecting events, for a resume within the grace window; any other is
    /// forgotten.
    pub(super) fn detach(&mut self, session: SessionId) {
        let now = self.now;
        let grace = self.config.resume_grace_ms > 0;
        let user = self.sessions.auth(session).map(|a| a.user);
        // Voice needs the connection: it ends now, not when the session expires.
        self.voice.sessions_changed();
        match self.sessions.get(session) {
            Some(s) if s.auth.is_some() && s.detached_at.is_none() && grace && s.resumable() => {
                self.sessions.detach(session, now)
            }
            Some(s) if s.detached_at.is_some() => return,
            Some(_) => self.drop_session(session),
            None => return,
        }
        if let Some(user) = user {
            self.refresh_presence(user);
        }
    }

    /// Forgets detached sessions whose grace window has passed.
    pub(super) fn expire_detached(&mut self) {
        for session in self.sessions.expired(self.now, self.config.resume_grace_ms) {
            self.drop_session(session);
        }
    }

    /// Continues an earlier session on this connection, or, if that cannot be
    /// honoured, starts a fresh one and says why.
    pub(super) fn resume(
        &mut self,
        session: SessionId,
        rid: u64,
        token_hash: TokenHash,
        resume_key: String,
        last_seq: u64,
    ) -> Outcome {
        let (token, user) = self.directory.token(&token_hash).ok_or(Refusal::BadCredentials)?;
        let auth = Auth { user, token: Some(token) };
        let old = self.sessions.by_resume_key(&resume_key);
        let journal = &mut self.journal;
        let mut missed = Vec::new();
        let refused = match old.and_then(|id| self.sessions.get_mut(id)) {
            // Unknown, expired, or someone else's: all look the same.
            None => Some("the session is unknown or expired"),
            Some(s) if s.auth.and_then(|a| a.token) != Some(token) => {
                Some("the session is unknown or expired")
            }
            Some(s) if last_seq > s.seq => Some("last_seq is ahead of the session"),
            Some(s) => match s.replay.since(last_seq, s.seq + 1, journal) {
                Some(events) => {
                    missed = events;
                    None
                }
                None => Some("too many events were missed to replay them"),
            },
        };
        if let Some(reason) = refused {
            self.bind(session, rid, auth, String::new(), reason.into());
            return Ok(());
        }
        let old = old.expect("checked above");
        if self.sessions.take_over(old, session).expect("checked above") {
            // The old connection is still open (half-dead, as far as the
            // client is concerned): close it; this one takes over.
            let reason = "the session was resumed on another connection".to_owned();
            self.emit(Output::Close { session: old, code: CloseCode::SessionTakenOver, reason });
        }
        let missed: Vec<Outgoing> =
            missed.into_iter().map(|(seq, event)| Outgoing::Event { seq, event }).collect();
        let replayed = missed.len() as u64;
        for message in missed {
            self.emit(Output::Send { to: session, message });
        }
        self.reply(session, rid, ReplyResult::Resumed(v1::Resumed { session_id: resume_key, replayed }));
        self.refresh_presence(user);
        Ok(())
    }

    /// Sessions detached and waiting to be resumed (for metrics and tests).
    pub fn detached_sessions(&self) -> usize {
        self.sessions.detached_count()
    }

    /// How many events `session` keeps for a resume (for tests).
    pub fn replayable_events(&self, session: SessionId) -> usize {
        self.sessions.get(session).map_or(0, |s| s.replay.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TokenId;

    fn signed_in(sessions: &mut Sessions, id: u64, user: u64, key: &str) {
        sessions.connect(SessionId(id), Some(key.into()), Timestamp(1_000));
        sessions.bind(SessionId(id), Auth { user: UserId(user), token: Some(TokenId(id)) }).unwrap();
    }

    #[test]
    fn a_removed_session_leaves_no_index_behind() {
        let mut s = Sessions::default();
        signed_in(&mut s, 1, 7, "k1");
        signed_in(&mut s, 2, 7, "k2");
        s.connect(SessionId(3), Some("k3".into()), Timestamp(500));
        assert_eq!(s.of_user(UserId(7)).collect::<Vec<_>>(), [SessionId(1), SessionId(2)]);
        assert_eq!(s.next_deadline(60_000), Some(Timestamp(500)), "only the unauthenticated one's deadline");
        assert!(s.remove(SessionId(1)).unwrap().last_of.is_none());
        assert_eq!(s.remove(SessionId(2)).unwrap().last_of, Some(UserId(7)), "the account's last session");
        assert!(s.remove(SessionId(3)).unwrap().last_of.is_none());
        assert!(s.all.is_empty() && s.by_user.is_empty() && s.by_resume_key.is_empty());
        assert!(s.auth_deadlines.is_empty());
        assert_eq!(s.next_deadline(60_000), None);
    }

    #[test]
    fn a_resume_moves_the_session_and_its_indexes_to_the_new_connection() {
        let mut s = Sessions::default();
        signed_in(&mut s, 1, 7, "k1");
        s.get_mut(SessionId(1)).unwrap().seq = 41;
        s.detach(SessionId(1), Timestamp(2_000));
        s.connect(SessionId(2), Some("fresh".into()), Timestamp(3_000));
        assert_eq!(s.take_over(SessionId(1), SessionId(2)), Some(false), "it was detached");
        assert_eq!(s.get(SessionId(2)).unwrap().seq, 41);
        assert_eq!(s.by_resume_key("k1"), Some(SessionId(2)), "the session keeps its name");
        assert_eq!(s.by_resume_key("fresh"), None);
        assert_eq!(s.of_user(UserId(7)).collect::<Vec<_>>(), [SessionId(2)]);
        assert!(s.auth_deadlines.is_empty(), "the fresh session's deadline went with it");
        // The old detach entry expires nothing: the session was resumed.
        assert!(s.expired(Timestamp(1_000_000), 60_000).is_empty());
        assert_eq!(s.detached_count(), 0);
    }

    #[test]
    fn a_session_detached_again_expires_by_its_latest_detach() {
        let mut s = Sessions::default();
        signed_in(&mut s, 1, 7, "k1");
        s.detach(SessionId(1), Timestamp(1_000));
        s.get_mut(SessionId(1)).unwrap().detached_at = None; // resumed on the same id
        s.detach(SessionId(1), Timestamp(50_000));
        assert!(s.expired(Timestamp(61_000), 60_000).is_empty(), "the first detach is stale");
        assert_eq!(s.expired(Timestamp(110_000), 60_000), [SessionId(1)]);
    }
}
