//! Pipes: one person streams bytes to another through the server, never
//! stored (`kith pipe @bob < photos.tar`, `kith pipe --accept alice >
//! photos.tar`). The hub decides who may pipe to whom (people who share a
//! community or a conversation), keeps the offers and their 60 s deadline,
//! and grants each end a key ([`Grant::Pipe`]); the edge joins the sender's
//! transfer stream to the receiver's, and QUIC's flow control paces the
//! sender to the receiver.

use std::collections::{BTreeMap, BTreeSet};

use kith_proto::v1::{self, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Cx, Grant, Hub, Outcome, Output, Refusal};
use crate::ids::{Timestamp, UserId};
use crate::text::FileName;

/// How long an offer waits to be accepted.
pub const OFFER_MS: u64 = 60_000;
/// Offers one person may have waiting at once.
pub const OFFERS_PER_USER: usize = 8;

#[derive(Debug)]
struct Offer {
    from: UserId,
    to: UserId,
    name: String,
    size: u64,
    expires: Timestamp,
}

#[derive(Debug, Default)]
pub(super) struct Pipes {
    offers: BTreeMap<u64, Offer>,
    due: BTreeSet<(Timestamp, u64)>,
}

impl Pipes {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.due.first().map(|(t, _)| *t)
    }

    fn take(&mut self, id: u64) -> Option<Offer> {
        let offer = self.offers.remove(&id)?;
        self.due.remove(&(offer.expires, id));
        Some(offer)
    }
}

impl Hub {
    fn offer_wire(&self, id: u64, o: &Offer) -> v1::PipeOffered {
        v1::PipeOffered {
            pipe_id: id,
            from: Some(self.user_wire(o.from)),
            name: o.name.clone(),
            size: o.size,
            expires_at_ms: o.expires.0,
        }
    }

    /// Whether `a` and `b` are in a community or a conversation together.
    fn together(&self, a: UserId, b: UserId) -> bool {
        self.memberships.communities(a).any(|c| self.communities[&c].members.contains_key(&b))
            || self.memberships.directs(a).any(|d| self.directs[&d].members.contains(&b))
    }

    pub(super) fn open_pipe(
        &mut self,
        cx: Cx,
        to: UserId,
        name: FileName,
        size: u64,
        key: String,
    ) -> Outcome {
        if to == cx.me {
            return Err(Refusal::Invalid("a pipe goes to someone else"));
        }
        if !self.directory.contains(to) || !self.together(cx.me, to) {
            return Err(Refusal::NotFound("user"));
        }
        if self.pipes.offers.values().filter(|o| o.from == cx.me).count() >= OFFERS_PER_USER {
            return Err(Refusal::Busy(
                "you have as many pipes waiting as you may; let one be taken or lapse",
                5000,
            ));
        }
        let id = self.ids.next(cx.now);
        let expires = cx.now.plus_ms(OFFER_MS);
        let offer = Offer { from: cx.me, to, name: name.0, size, expires };
        let wire = self.offer_wire(id, &offer);
        self.pipes.due.insert((expires, id));
        self.pipes.offers.insert(id, offer);
        self.emit(Output::Grant(Grant::Pipe {
            key: key.clone(),
            session: cx.session,
            pipe: id,
            sending: true,
        }));
        self.reply(cx.session, cx.rid, ReplyResult::PipeKey(v1::PipeKey { pipe_id: id, key }));
        self.fan_out(&[to], EventBody::PipeOffered(wire));
        Ok(())
    }

    pub(super) fn accept_pipe(&mut self, cx: Cx, pipe: u64, key: String) -> Outcome {
        let gone = Refusal::NotFound("pipe (it was taken, it lapsed, or it is not for you)");
        if self.pipes.offers.get(&pipe).is_none_or(|o| o.to != cx.me) {
            return Err(gone);
        }
        self.pipes.take(pipe);
        self.emit(Output::Grant(Grant::Pipe { key: key.clone(), session: cx.session, pipe, sending: false }));
        self.reply(cx.session, cx.rid, ReplyResult::PipeKey(v1::PipeKey { pipe_id: pipe, key }));
        Ok(())
    }

    /// Offers nobody took in time are forgotten (the sender's transfer
    /// stream is told so by the edge when it gives up waiting).
    pub(super) fn expire_pipes(&mut self) {
        while let Some(&(at, id)) = self.pipes.due.first() {
            if at > self.now {
                break;
            }
            self.pipes.take(id);
        }
    }

    /// The offers waiting for `user`, for a session that just signed in.
    pub(super) fn offers_for(&self, user: UserId) -> Vec<v1::PipeOffered> {
        self.pipes
            .offers
            .iter()
            .filter(|(_, o)| o.to == user)
            .map(|(id, o)| self.offer_wire(*id, o))
            .collect()
    }
}
