//! Sessions that outlive their connection: detaching when a connection
//! drops, expiring after the grace window, and resuming without a gap.

use kith_proto::v1::{self, CloseCode, reply::Result as ReplyResult};

use super::{Auth, Hub, Outcome, Outgoing, Output, Refusal};
use crate::ids::SessionId;
use crate::request::TokenHash;

impl Hub {
    /// The connection is gone. An authenticated session waits, still
    /// collecting events, for a resume within the grace window; any other is
    /// forgotten.
    pub(super) fn detach(&mut self, session: SessionId) {
        let now = self.now;
        let resumable = self.config.resume_grace_ms > 0 && !self.unresumable(session);
        let user = self.sessions.get(&session).and_then(|s| s.auth).map(|a| a.user);
        // Voice needs the connection: it ends now, not when the session expires.
        self.voice_dirty = true;
        match self.sessions.get_mut(&session) {
            Some(s) if s.auth.is_some() && s.detached_at.is_none() && resumable => {
                s.detached_at = Some(now);
                self.detached.push_back((now, session));
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
        let grace = self.config.resume_grace_ms;
        while let Some(&(at, session)) = self.detached.front() {
            if at.plus_ms(grace) > self.now {
                break;
            }
            self.detached.pop_front();
            // Still detached since that moment (not resumed and dropped again later)?
            if self.sessions.get(&session).is_some_and(|s| s.detached_at == Some(at)) {
                self.drop_session(session);
            }
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
        let (token, user) = *self.tokens.get(&token_hash).ok_or(Refusal::BadCredentials)?;
        let auth = Auth { user, token: Some(token) };
        let old = self.by_resume_key.get(&resume_key).copied();
        let refused = match old.and_then(|id| self.sessions.get(&id).map(|s| (id, s))) {
            // Unknown, expired, or someone else's: all look the same.
            None => Some("the session is unknown or expired"),
            Some((_, s)) if s.auth.and_then(|a| a.token) != Some(token) => {
                Some("the session is unknown or expired")
            }
            Some((_, s)) if last_seq > s.seq => Some("last_seq is ahead of the session"),
            Some((_, s)) => {
                let oldest_kept = s.replay.front().map_or(s.seq + 1, |r| r.seq);
                (last_seq + 1 < oldest_kept).then_some("too many events were missed to replay them")
            }
        };
        if let Some(reason) = refused {
            self.bind(session, rid, auth, String::new(), reason.into());
            return Ok(());
        }
        let old = old.expect("checked above");
        let mut state = self.sessions.remove(&old).expect("checked above");
        if state.detached_at.is_none() {
            // The old connection is still open (half-dead, as far as the
            // client is concerned): close it; this one takes over.
            let reason = "the session was resumed on another connection".to_owned();
            self.emit(Output::Close { session: old, code: CloseCode::SessionTakenOver, reason });
        }
        state.detached_at = None;
        // The new connection's own key was never handed out; the session keeps its name.
        self.sessions.remove(&session);
        let missed: Vec<Outgoing> = state
            .replay
            .iter()
            .filter(|r| r.seq > last_seq)
            .map(|r| Outgoing::Event { seq: r.seq, event: r.event.clone() })
            .collect();
        self.sessions.insert(session, state);
        self.by_resume_key.insert(resume_key.clone(), session);
        let set = self.user_sessions.entry(user).or_default();
        set.remove(&old);
        set.insert(session);
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
        self.sessions.values().filter(|s| s.detached_at.is_some()).count()
    }
}
