//! What a session can replay when it resumes, kept once for everyone.
//!
//! Every event the hub sends goes into one [`Journal`], in order. A
//! session's [`Replay`] does not hold the events it was sent: it holds runs
//! of them — "seqs 41–90 were journal entries 1 000–1 049" — and an event
//! that went to a whole channel is one entry in the journal and, for each
//! member, the end of a run it already had. What each session keeps is then
//! a few runs rather than 24 bytes per event: with 1 000 members and 30 s
//! of a channel at 50 messages/s, 36 KB in all instead of 36 MB. A session
//! whose events are interleaved with others' (many channels, different
//! members) has shorter runs, at worst one per event — what it cost before.
//!
//! Each entry counts the sessions whose runs include it, and lets go of its
//! event when none does (a session that left, or trimmed it away): events
//! live as long as someone could replay them, as when each session held its
//! own, and the entry itself (a few bytes) until it leaves the journal.
//!
//! The journal forgets entries no session's window reaches any more, and
//! keeps at most [`JOURNAL_EVENTS`] events and [`JOURNAL_BYTES`] of them: a
//! session can replay its last `replay_events` if they are among the last
//! 65 536 the server sent anyone (fewer, if they were large). One that
//! missed more gets a fresh snapshot, as one that missed more than
//! `replay_events` always has.

use std::collections::VecDeque;
use std::sync::Arc;

use kith_proto::v1;

use super::Encoded;
use crate::ids::Timestamp;

/// Entries the journal keeps at most, whatever their age.
pub const JOURNAL_EVENTS: usize = 65_536;
/// Encoded bytes of the events the journal keeps at most: a flood of the
/// largest messages cannot make it hold more than this.
pub const JOURNAL_BYTES: usize = 16 * 1024 * 1024;

/// Every event sent, recently, in the order sent.
#[derive(Debug)]
pub(super) struct Journal {
    /// Entries kept at most ([`JOURNAL_EVENTS`]).
    cap: usize,
    /// The encoded bytes of the events still held at most ([`JOURNAL_BYTES`]), and now.
    max_bytes: usize,
    bytes: usize,
    /// The number of the entry at the front.
    first: u64,
    entries: VecDeque<Entry>,
}

#[derive(Debug)]
struct Entry {
    at: Timestamp,
    /// Sessions whose replay includes this entry.
    refs: u32,
    /// `None` once no session does.
    event: Option<Arc<Encoded<v1::Event>>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new(JOURNAL_EVENTS, JOURNAL_BYTES)
    }
}

impl Journal {
    fn new(cap: usize, max_bytes: usize) -> Self {
        Journal { cap: cap.max(1), max_bytes, bytes: 0, first: 0, entries: VecDeque::new() }
    }

    /// Appends `event`, sent at `now`, and returns its number. What is older
    /// than `oldest` goes, and the oldest past the journal's capacity (an
    /// event larger than all of it is kept alone). Sessions take it with
    /// [`Replay::push`]; then [`Journal::settle`] lets it go if none did.
    pub(super) fn append(
        &mut self,
        now: Timestamp,
        oldest: Timestamp,
        event: Arc<Encoded<v1::Event>>,
    ) -> u64 {
        let len = event.len();
        while let Some(front) = self.entries.front()
            && (front.at < oldest || self.entries.len() >= self.cap || self.bytes + len > self.max_bytes)
        {
            if let Some(e) = &front.event {
                self.bytes -= e.len();
            }
            self.entries.pop_front();
            self.first += 1;
        }
        self.bytes += len;
        self.entries.push_back(Entry { at: now, refs: 0, event: Some(event) });
        self.first + self.entries.len() as u64 - 1
    }

    /// Lets `entry`'s event go if no session took it.
    pub(super) fn settle(&mut self, entry: u64) {
        self.unref(entry, 0);
    }

    fn entry_mut(&mut self, entry: u64) -> Option<&mut Entry> {
        let offset = entry.checked_sub(self.first)?;
        self.entries.get_mut(usize::try_from(offset).ok()?)
    }

    fn get(&self, entry: u64) -> Option<(Timestamp, &Arc<Encoded<v1::Event>>)> {
        let offset = entry.checked_sub(self.first)?;
        let e = self.entries.get(usize::try_from(offset).ok()?)?;
        Some((e.at, e.event.as_ref()?))
    }

    fn take_ref(&mut self, entry: u64) {
        if let Some(e) = self.entry_mut(entry) {
            e.refs += 1;
        }
    }

    /// Drops `n` references to `entry`, and its event with the last.
    fn unref(&mut self, entry: u64, n: u32) {
        let Some(e) = self.entry_mut(entry) else { return };
        e.refs = e.refs.saturating_sub(n);
        if e.refs == 0
            && let Some(event) = e.event.take()
        {
            self.bytes -= event.len();
        }
    }
}

/// Consecutive seqs of one session that were consecutive journal entries.
#[derive(Debug, Clone, Copy)]
struct Run {
    seq: u64,
    entry: u64,
    len: u32,
}

/// The events a session was sent that it could still replay.
#[derive(Debug, Default)]
pub(super) struct Replay {
    runs: VecDeque<Run>,
    /// Events in all runs.
    len: usize,
}

impl Replay {
    /// Events it could replay.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Records that the session was sent journal `entry` as `seq` (one more
    /// than the last seq recorded), first letting go of what is older than
    /// `oldest`, gone from the journal, or past `keep` events.
    pub(super) fn push(
        &mut self,
        seq: u64,
        entry: u64,
        keep: usize,
        oldest: Timestamp,
        journal: &mut Journal,
    ) {
        self.trim(keep.saturating_sub(1), oldest, journal);
        if keep == 0 {
            return;
        }
        journal.take_ref(entry);
        self.len += 1;
        if let Some(last) = self.runs.back_mut()
            && last.seq + u64::from(last.len) == seq
            && last.entry + u64::from(last.len) == entry
            && last.len < u32::MAX
        {
            last.len += 1;
            return;
        }
        self.runs.push_back(Run { seq, entry, len: 1 });
    }

    /// Lets go of the oldest events until at most `keep` are left, none
    /// older than `oldest`, and every one still in the journal.
    fn trim(&mut self, keep: usize, oldest: Timestamp, journal: &mut Journal) {
        while let Some(front) = self.runs.front_mut() {
            let gone = match journal.get(front.entry) {
                None => true,
                Some((at, _)) => at < oldest,
            };
            if !gone && self.len <= keep {
                return;
            }
            journal.unref(front.entry, 1);
            front.seq += 1;
            front.entry += 1;
            front.len -= 1;
            self.len -= 1;
            if front.len == 0 {
                self.runs.pop_front();
            }
        }
    }

    /// The events after `last_seq`, with their seqs, if every one of them
    /// can still be replayed; `next_seq` is the seq the session would send
    /// next (one past its last).
    pub(super) fn since(
        &mut self,
        last_seq: u64,
        next_seq: u64,
        journal: &mut Journal,
    ) -> Option<Vec<(u64, Arc<Encoded<v1::Event>>)>> {
        // Only what fell out of the journal since the last push goes here.
        self.trim(usize::MAX, Timestamp(0), journal);
        let oldest_kept = self.runs.front().map_or(next_seq, |r| r.seq);
        if last_seq + 1 < oldest_kept {
            return None;
        }
        let mut missed = Vec::new();
        for run in &self.runs {
            for i in 0..u64::from(run.len) {
                let seq = run.seq + i;
                if seq > last_seq {
                    let (_, event) = journal.get(run.entry + i)?;
                    missed.push((seq, event.clone()));
                }
            }
        }
        Some(missed)
    }

    /// The session is gone: its events need not be kept for it.
    pub(super) fn release(self, journal: &mut Journal) {
        for run in self.runs {
            for i in 0..u64::from(run.len) {
                journal.unref(run.entry + i, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(n: u64) -> Arc<Encoded<v1::Event>> {
        super::super::Outgoing::event(v1::event::Body::TypingStarted(v1::TypingStarted {
            channel_id: n,
            ..Default::default()
        }))
    }

    fn number(e: &Encoded<v1::Event>) -> u64 {
        match &e.message().body {
            Some(v1::event::Body::TypingStarted(t)) => t.channel_id,
            _ => unreachable!(),
        }
    }

    proptest! {
        /// Against a model that keeps every session's events itself, as the
        /// hub did before, and a journal that is a plain list: the same
        /// events replay, with the same seqs, and a resume is refused
        /// exactly when the model has lost one it needs.
        #[test]
        fn a_replay_gives_back_what_a_session_kept_of_its_own(
            steps in prop::collection::vec((0u8..16, 0u64..3), 1..300),
            keep in 0usize..40,
            window in 1u64..50,
            cap in 1usize..120,
            max_bytes in 1usize..400,
            resume in 0usize..4,
            back in 0u64..60,
        ) {
            let mut journal = Journal::new(cap, max_bytes);
            let mut replays: Vec<Replay> = (0..4).map(|_| Replay::default()).collect();
            let mut seqs = [0u64; 4];
            // The model: (seq, time, entry) per session, and (entry, time,
            // bytes) in the journal.
            let mut model: Vec<Vec<(u64, u64, u64)>> = vec![Vec::new(); 4];
            let mut live: Vec<(u64, u64, usize)> = Vec::new();
            let mut now = 0;
            for (n, (to, dt)) in steps.into_iter().enumerate() {
                now += dt;
                // The journal reaches further back than a session's window
                // (as a detached session's grace does past a connected one's).
                let oldest = Timestamp(now.saturating_sub(window));
                let journal_oldest = Timestamp(now.saturating_sub(2 * window));
                let e = event(n as u64);
                let len = e.len();
                let entry = journal.append(Timestamp(now), journal_oldest, e);
                prop_assert_eq!(entry, n as u64);
                // Oldest first, while too old, too many or too large.
                while let Some(&(_, at, _)) = live.first() {
                    let bytes: usize = live.iter().map(|l| l.2).sum();
                    if at >= journal_oldest.0 && live.len() < cap && bytes + len <= max_bytes {
                        break;
                    }
                    live.remove(0);
                }
                live.push((entry, now, len));
                for s in (0..4).filter(|s| to & (1 << s) != 0) {
                    seqs[s] += 1;
                    replays[s].push(seqs[s], entry, keep, oldest, &mut journal);
                    let m = &mut model[s];
                    m.retain(|&(_, at, e)| at >= oldest.0 && live.iter().any(|l| l.0 == e));
                    while !m.is_empty() && m.len() >= keep {
                        m.remove(0);
                    }
                    if keep > 0 {
                        m.push((seqs[s], now, entry));
                    }
                }
            }
            let last_seq = seqs[resume].saturating_sub(back);
            let got = replays[resume].since(last_seq, seqs[resume] + 1, &mut journal);
            let m: Vec<_> =
                model[resume].iter().filter(|r| live.iter().any(|l| l.0 == r.2)).copied().collect();
            let oldest_kept = m.first().map_or(seqs[resume] + 1, |r| r.0);
            if last_seq + 1 < oldest_kept {
                prop_assert!(got.is_none());
            } else {
                let got: Vec<(u64, u64)> =
                    got.expect("replayable").into_iter().map(|(seq, e)| (seq, number(&e))).collect();
                let want: Vec<(u64, u64)> =
                    m.iter().filter(|r| r.0 > last_seq).map(|r| (r.0, r.2)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn an_event_to_a_whole_channel_extends_each_members_one_run() {
        let mut journal = Journal::default();
        let mut replays: Vec<Replay> = (0..1000).map(|_| Replay::default()).collect();
        for n in 0..500 {
            let entry = journal.append(Timestamp(n), Timestamp(0), event(n));
            for r in &mut replays {
                r.push(n + 1, entry, 4096, Timestamp(0), &mut journal);
            }
        }
        assert!(replays.iter().all(|r| r.runs.len() == 1 && r.len == 500));
        assert_eq!(journal.entries.len(), 500, "each event once");
    }

    /// Events live as long as a session could replay them: not past the
    /// last session that left, nor a moment for an event nobody took.
    #[test]
    fn an_event_goes_with_the_last_session_that_could_replay_it() {
        let mut journal = Journal::default();
        let (mut a, mut b) = (Replay::default(), Replay::default());
        for n in 0..10 {
            let entry = journal.append(Timestamp(n), Timestamp(0), event(n));
            a.push(n + 1, entry, 4096, Timestamp(0), &mut journal);
            if n < 5 {
                b.push(n + 1, entry, 4096, Timestamp(0), &mut journal);
            }
            journal.settle(entry);
        }
        let nobody = journal.append(Timestamp(10), Timestamp(0), event(10));
        journal.settle(nobody);
        let held = |j: &Journal| j.entries.iter().filter(|e| e.event.is_some()).count();
        assert_eq!(held(&journal), 10, "the event nobody took is gone");
        a.release(&mut journal);
        assert_eq!(held(&journal), 5, "b's are still there");
        assert_eq!(b.since(0, 6, &mut journal).map(|m| m.len()), Some(5));
        b.release(&mut journal);
        assert_eq!((held(&journal), journal.bytes), (0, 0));
    }

    /// A member flooding the largest messages cannot make the journal hold
    /// more than its bytes, however recent they are.
    #[test]
    fn a_flood_of_large_messages_keeps_the_journal_within_its_bytes() {
        let mut journal = Journal::default();
        let big = v1::Message { body: "x".repeat(8000), ..Default::default() };
        for n in 0..10_000 {
            let event = super::super::Outgoing::event(v1::event::Body::MessageCreated(big.clone()));
            journal.append(Timestamp(n), Timestamp(0), event);
        }
        let held: usize = journal.entries.iter().filter_map(|e| e.event.as_ref()).map(|e| e.len()).sum();
        assert_eq!(held, journal.bytes);
        assert!(held <= JOURNAL_BYTES, "{held} bytes held");
        assert!(held > JOURNAL_BYTES - 9000, "and it keeps as many as fit: {held}");
    }
}
