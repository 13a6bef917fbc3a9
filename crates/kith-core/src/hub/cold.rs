//! Messages older than what the hub holds (decision 6): a request that
//! names one waits while the store loads what it needs, then runs as if it
//! had always been there.
//!
//! The hub holds each channel's newest messages ([`Timeline`]); below a
//! channel's floor they are the store's alone. Before a request runs, the
//! hub asks [`Hub::cold_need`] whether it names anything below a floor; if
//! so it is parked and `Output::Load` goes out, held behind the writes
//! issued before it (so the store answers with everything the hub has
//! decided). `Input::Loaded` brings the answer back: the request runs with
//! it at hand ([`Hub::stashed`]), and the answer is dropped after — the
//! hub keeps no copy that could go stale.

use crate::ids::IdMap;

use super::{Auth, Cx, Hub, MessageMeta, Outcome, Output, Refusal};
use crate::ids::{ChannelId, CommunityId, MessageId, SessionId, Timestamp, UserId};
use crate::permissions::Permissions;
use crate::request::Request;
use crate::store::{Load, Loaded, StoredMessageMeta};

/// Requests one session may have waiting for the store at once.
pub(super) const PARKED_PER_SESSION: usize = 8;
/// Requests the whole server may have waiting for the store at once.
pub(super) const PARKED: usize = 1024;

/// A request waiting for its [`Load`].
#[derive(Debug)]
struct Parked {
    session: SessionId,
    rid: u64,
    auth: Auth,
    request: Request,
    /// Whose messages an `Authored` load is of.
    author: Option<UserId>,
}

/// The requests waiting for the store, by load.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    next: u64,
    parked: IdMap<u64, Parked>,
    per_session: IdMap<SessionId, usize>,
}

/// What a request runs with once its load came back.
#[derive(Debug)]
pub(super) enum Stash {
    Missing,
    Message(MessageMeta, MessageId, ChannelId),
    Authored { author: UserId, found: Vec<(MessageId, ChannelId, u64)> },
    Weights(Vec<(UserId, u64)>),
}

impl From<StoredMessageMeta> for MessageMeta {
    fn from(m: StoredMessageMeta) -> Self {
        MessageMeta {
            author: m.author,
            reply_to: m.reply_to,
            deleted: m.deleted,
            mentions: m.mentions.into(),
            mention_everyone: m.mention_everyone,
            nonce: m.nonce.map(Into::into),
            attachments: m.attachments.into(),
        }
    }
}

impl Hub {
    /// What `request` needs loaded before it can run, if anything: a
    /// message below its channel's floor (only in a channel `me` can see,
    /// so loads reveal nothing), or the older messages a ban or an account
    /// deletion removes, or what a deleted channel's older messages weigh.
    pub(super) fn cold_need(&self, me: UserId, now: Timestamp, request: &Request) -> Option<Load> {
        let floor = |channel: &ChannelId| self.timelines.get(channel).and_then(|t| t.floor());
        let cold = |channel: ChannelId, id: MessageId| {
            (floor(&channel).is_some_and(|f| id < f) && self.can_view(channel, me))
                .then_some(Load::Message { channel, id })
        };
        match request {
            Request::EditMessage { channel, message, .. }
            | Request::DeleteMessage { channel, message }
            | Request::OpenAttachments { channel, message, .. } => cold(*channel, *message),
            Request::SendMessage { channel, reply_to: Some(target), .. } => cold(*channel, *target),
            // The costlier loads only for someone who may do what they ask:
            // nobody else makes the store scan a channel.
            Request::DeleteChannel { channel } => floor(channel)
                .filter(|_| self.require_in(*channel, me, now, Permissions::MANAGE_CHANNELS, "").is_ok())
                .map(|floor| Load::Weights { channel: *channel, floor }),
            Request::Ban { community, user, delete_message_hours, .. }
                if *delete_message_hours > 0
                    && self.require(*community, me, now, Permissions::BAN_MEMBERS, "").is_ok() =>
            {
                let since = Timestamp(now.0.saturating_sub(u64::from(*delete_message_hours) * 3_600_000));
                self.authored_load(*user, MessageId::first_at(since), Some(*community))
            }
            Request::DeleteAccount { username_fold, remove_messages: true }
                if self.directory.is_owner(me) =>
            {
                let user = self.directory.find(username_fold)?;
                self.authored_load(user, MessageId(0), None)
            }
            _ => None,
        }
    }

    /// `author`'s messages from `since` on below the floors of `community`'s
    /// channels (or every channel's), if any floor is above `since`.
    fn authored_load(
        &self,
        author: UserId,
        since: MessageId,
        community: Option<CommunityId>,
    ) -> Option<Load> {
        let in_scope = |channel: &ChannelId| match community {
            Some(c) => self.communities.get(&c).is_some_and(|c| c.channels.contains_key(channel)),
            None => true,
        };
        let mut channels: Vec<(ChannelId, MessageId)> = self
            .timelines
            .iter()
            .filter(|(channel, _)| in_scope(channel))
            .filter_map(|(channel, t)| Some((*channel, t.floor()?)))
            .filter(|(_, floor)| *floor > since)
            .collect();
        channels.sort();
        (!channels.is_empty()).then_some(Load::Authored { author, channels, since })
    }

    /// Parks an authenticated request until `load` comes back.
    pub(super) fn park(&mut self, cx: Cx, auth: Auth, request: Request, load: Load) -> Outcome {
        let waiting = &mut self.waiting;
        let mine = waiting.per_session.get(&cx.session).copied().unwrap_or(0);
        if mine >= PARKED_PER_SESSION || waiting.parked.len() >= PARKED {
            return Err(Refusal::Busy("the server is busy reading older messages", 100));
        }
        waiting.next += 1;
        let id = waiting.next;
        let author = match &load {
            Load::Authored { author, .. } => Some(*author),
            _ => None,
        };
        waiting.parked.insert(id, Parked { session: cx.session, rid: cx.rid, auth, request, author });
        *waiting.per_session.entry(cx.session).or_default() += 1;
        self.emit(Output::Load { id, load });
        Ok(())
    }

    /// The store answered load `id` (`None`: it could not, now): the
    /// request that waited runs, if its session is still signed in as it
    /// was.
    pub(super) fn loaded(&mut self, id: u64, loaded: Option<Loaded>) {
        let Some(parked) = self.waiting.parked.remove(&id) else { return };
        let Parked { session, rid, auth, request, author } = parked;
        if let Some(n) = self.waiting.per_session.get_mut(&session) {
            *n -= 1;
            if *n == 0 {
                self.waiting.per_session.remove(&session);
            }
        }
        if self.sessions.auth(session).map(|a| a.user) != Some(auth.user) {
            return;
        }
        let outcome = match loaded {
            None => Err(Refusal::Busy("the server is busy reading; try again", 100)),
            Some(loaded) => {
                self.stash = Some(match loaded {
                    Loaded::Message(Some(m)) => {
                        let (id, channel) = (m.id, m.channel);
                        Stash::Message(m.into(), id, channel)
                    }
                    // Not there: the request finds nothing and says so.
                    Loaded::Message(None) => Stash::Missing,
                    Loaded::Authored(found) => match author {
                        Some(author) => Stash::Authored { author, found },
                        None => Stash::Missing,
                    },
                    Loaded::Weights(w) => Stash::Weights(w),
                });
                let cx = Cx { now: self.now, session, rid, me: auth.user };
                let outcome = self.serve(cx, auth, request);
                self.stash = None;
                outcome
            }
        };
        if let Err(refusal) = outcome {
            self.refused(session, rid, refusal);
        }
    }

    /// A session is gone: nothing it parked runs.
    pub(super) fn forget_parked(&mut self, session: SessionId) {
        if self.waiting.per_session.remove(&session).is_some() {
            self.waiting.parked.retain(|_, p| p.session != session);
        }
    }

    /// The message a request loaded, if it is `id` in `channel`.
    pub(super) fn stashed(&self, channel: ChannelId, id: MessageId) -> Option<&MessageMeta> {
        match &self.stash {
            Some(Stash::Message(m, i, c)) if (*i, *c) == (id, channel) => Some(m),
            _ => None,
        }
    }

    pub(super) fn stashed_mut(&mut self, channel: ChannelId, id: MessageId) -> Option<&mut MessageMeta> {
        match &mut self.stash {
            Some(Stash::Message(m, i, c)) if (*i, *c) == (id, channel) => Some(m),
            _ => None,
        }
    }

    /// The older messages of `author` a request loaded (a ban's or an
    /// account deletion's): (id, channel, bytes of files).
    pub(super) fn stashed_authored(&self, of: UserId) -> &[(MessageId, ChannelId, u64)] {
        match &self.stash {
            Some(Stash::Authored { author, found }) if *author == of => found,
            _ => &[],
        }
    }

    /// What a deleted channel's older messages weigh, by author.
    pub(super) fn stashed_weights(&self) -> &[(UserId, u64)] {
        match &self.stash {
            Some(Stash::Weights(w)) => w,
            _ => &[],
        }
    }
}
