//! The hub's outputs, in order, held until what they reveal is durable
//! (decision 1): once a `Persist` is issued, every later session-facing
//! output waits until that ticket commits.

use std::collections::VecDeque;

use super::Output;
use crate::store::Write;

#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// The last `Persist` ticket issued, and the last one known committed.
    issued: u64,
    committed: u64,
    /// Outputs free to go.
    ready: VecDeque<Output>,
    /// Session-facing outputs waiting for a ticket to commit.
    held: VecDeque<(u64, Output)>,
    /// A write since the last [`Outbox::take_access_changed`] may have
    /// changed who may be where (see [`Write::changes_access`]).
    access_changed: bool,
}

impl Outbox {
    /// Issues `writes` for the store under the next ticket.
    pub(super) fn persist(&mut self, writes: Vec<Write>) {
        self.access_changed |= writes.iter().any(Write::changes_access);
        self.issued += 1;
        self.ready.push_back(Output::Persist { ticket: self.issued, writes });
    }

    /// Queues a session-facing output behind any uncommitted write.
    pub(super) fn emit(&mut self, out: Output) {
        if self.committed < self.issued {
            self.held.push_back((self.issued, out));
        } else {
            self.ready.push_back(out);
        }
    }

    /// Queues an output that reveals nothing unwritten, ahead of held ones
    /// (voice routing: a mute takes effect on the next packet).
    pub(super) fn emit_now(&mut self, out: Output) {
        self.ready.push_back(out);
    }

    /// The store made everything up to `ticket` durable: release what waited.
    pub(super) fn committed(&mut self, ticket: u64) {
        self.committed = self.committed.max(ticket);
        while self.held.front().is_some_and(|(t, _)| *t <= self.committed) {
            let (_, out) = self.held.pop_front().expect("front exists");
            self.ready.push_back(out);
        }
    }

    pub(super) fn pop(&mut self) -> Option<Output> {
        self.ready.pop_front()
    }

    /// Whether a write issued since the last call may have changed access.
    pub(super) fn take_access_changed(&mut self) -> bool {
        std::mem::take(&mut self.access_changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SessionId, UserId};
    use crate::request::Chosen;
    use kith_proto::v1::CloseCode;

    fn close(n: u64) -> Output {
        Output::Close { session: SessionId(n), code: CloseCode::Shutdown, reason: String::new() }
    }

    fn tickets_and_closes(outbox: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| outbox.pop())
            .map(|out| match out {
                Output::Persist { ticket, .. } => format!("persist {ticket}"),
                Output::Close { session, .. } => format!("close {}", session.0),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn outputs_wait_for_the_writes_issued_before_them() {
        let mut outbox = Outbox::default();
        outbox.emit(close(1));
        outbox.persist(Vec::new());
        outbox.emit(close(2));
        outbox.persist(Vec::new());
        outbox.emit(close(3));
        outbox.emit_now(close(4));
        assert_eq!(tickets_and_closes(&mut outbox), ["close 1", "persist 1", "persist 2", "close 4"]);
        outbox.committed(1);
        assert_eq!(tickets_and_closes(&mut outbox), ["close 2"]);
        // Commits may be reported late or out of step; the highest counts.
        outbox.committed(2);
        outbox.committed(1);
        assert_eq!(tickets_and_closes(&mut outbox), ["close 3"]);
        outbox.emit(close(5));
        assert_eq!(tickets_and_closes(&mut outbox), ["close 5"], "nothing pending: nothing held");
    }

    #[test]
    fn only_writes_that_may_change_access_are_noticed() {
        let mut outbox = Outbox::default();
        outbox.persist(vec![Write::SetPresence { user: UserId(1), status: Chosen::Idle }]);
        assert!(!outbox.take_access_changed());
        outbox.persist(vec![Write::RemoveMember { community: crate::CommunityId(2), user: UserId(1) }]);
        assert!(outbox.take_access_changed());
        assert!(!outbox.take_access_changed(), "taken");
    }
}
