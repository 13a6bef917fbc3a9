//! A per-speaker adaptive jitter buffer, sans-IO: packets go in with their
//! arrival time, and one frame comes out per 20 ms tick.
//!
//! Frames are placed by their timestamp, not their sequence number: a sender
//! with DTX sends nothing during silence, so the timestamp jumps while the
//! sequence does not. Sequence numbers only count losses.
//!
//! Each talk spurt starts playing once its first packet has waited the
//! target delay; the target follows the measured jitter (RFC 3550's
//! estimator) and changes only between spurts, where a shift is inaudible.

use std::collections::BTreeMap;

use bytes::Bytes;
use kith_proto::voice::VoiceHeader;

use crate::codec::{FRAME, FRAME_MS, Play};

/// The shortest and longest playout delay the buffer aims for.
pub const MIN_TARGET_MS: u64 = 40;
pub const MAX_TARGET_MS: u64 = 200;
/// Frames concealed with nothing buffered before the speaker counts as
/// silent again (the end of a talk spurt, or a long outage).
const IDLE_AFTER: u32 = 3;
/// Frames held at most; beyond it the oldest are dropped.
const MAX_FRAMES: usize = 50;

/// What happened to one speaker's packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets taken in (not late, not duplicates).
    pub received: u64,
    /// Sequence numbers never seen (lost on the way, or still to come).
    pub missing: u64,
    /// Arrived after their turn to play had passed.
    pub late: u64,
    pub duplicates: u64,
    /// Frames rebuilt from the next packet's FEC data.
    pub recovered: u64,
    /// Frames concealed (lost with no FEC to recover them).
    pub concealed: u64,
    /// Frames played from their own packet.
    pub played: u64,
    /// Frames dropped to catch up after the buffer grew too deep.
    pub skipped: u64,
}

/// Extends a wrapping counter to 64 bits, assuming consecutive values are
/// less than half the range apart.
#[derive(Debug, Default, Clone, Copy)]
struct Unwrap {
    last: Option<u64>,
}

impl Unwrap {
    fn extend(&mut self, value: u64, bits: u32) -> u64 {
        let range = 1u64 << bits;
        let Some(last) = self.last else {
            // Start one range up, so a slightly earlier packet cannot go below 0.
            let v = range + value;
            self.last = Some(v);
            return v;
        };
        let base = last & !(range - 1);
        let candidates = [base.wrapping_sub(range) + value, base + value, base + range + value];
        let v = candidates.into_iter().min_by_key(|c| c.abs_diff(last)).expect("three candidates");
        self.last = Some(self.last.map_or(v, |l| l.max(v)));
        v
    }
}

#[derive(Debug)]
pub struct JitterBuffer {
    frames: BTreeMap<u64, Bytes>,
    /// The frame to play next, while a spurt plays.
    next: Option<u64>,
    /// Every frame before this one had its turn (played, recovered or
    /// concealed); a packet for one of them is late, spurt or not.
    done_before: u64,
    /// When the first packet of the waiting spurt arrived.
    waiting_since: Option<u64>,
    misses: u32,
    target_ms: u64,
    jitter_ms: f64,
    last_transit: Option<f64>,
    timestamps: Unwrap,
    seqs: Unwrap,
    seq_range: Option<(u64, u64)>,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer {
            frames: BTreeMap::new(),
            next: None,
            done_before: 0,
            waiting_since: None,
            misses: 0,
            target_ms: MIN_TARGET_MS,
            jitter_ms: 0.0,
            last_transit: None,
            timestamps: Unwrap::default(),
            seqs: Unwrap::default(),
            seq_range: None,
            stats: JitterStats::default(),
        }
    }
}

impl JitterBuffer {
    /// A packet arrived at `now_ms`.
    pub fn push(&mut self, now_ms: u64, header: VoiceHeader, opus: Bytes) {
        let ts = self.timestamps.extend(u64::from(header.timestamp), 32);
        let frame = ts / FRAME as u64;
        let seq = self.seqs.extend(u64::from(header.seq), 16);
        self.seq_range = Some(match self.seq_range {
            None => (seq, seq),
            Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
        });

        // RFC 3550 interarrival jitter, in milliseconds.
        let transit = now_ms as f64 - ts as f64 * 1000.0 / f64::from(crate::codec::RATE);
        if let Some(last) = self.last_transit {
            self.jitter_ms += ((transit - last).abs() - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);

        if frame < self.done_before {
            self.stats.late += 1;
            return;
        }
        if self.frames.insert(frame, opus).is_some() {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.received += 1;
        if self.frames.len() > MAX_FRAMES {
            self.frames.pop_first();
            self.stats.skipped += 1;
        }
        if self.next.is_none() && self.waiting_since.is_none() {
            self.waiting_since = Some(now_ms);
        }
    }

    /// The next 20 ms of this speaker at `now_ms`, or `None` while silent.
    pub fn pop(&mut self, now_ms: u64) -> Option<Play> {
        let next = match self.next {
            Some(n) => n,
            None => {
                let since = self.waiting_since?;
                if now_ms < since + self.target_ms {
                    return None;
                }
                self.waiting_since = None;
                *self.frames.first_key_value()?.0
            }
        };
        // Too deep (a burst after a stall, or the sender's clock runs fast):
        // drop the oldest frames down to the target.
        let target_frames = self.target_ms.div_ceil(FRAME_MS);
        let mut next = next;
        while let Some((&last, _)) = self.frames.last_key_value()
            && last.saturating_sub(next) > target_frames + 5
        {
            if self.frames.remove(&next).is_some() {
                self.stats.skipped += 1;
            }
            next += 1;
        }
        let play = if let Some(p) = self.frames.remove(&next) {
            self.misses = 0;
            self.stats.played += 1;
            Play::Packet(p)
        } else if let Some(p) = self.frames.get(&(next + 1)) {
            self.misses = 0;
            self.stats.recovered += 1;
            Play::Fec(p.clone())
        } else if self.frames.is_empty() && self.misses >= IDLE_AFTER {
            // The spurt is over: wait for the next one, with a target
            // fitted to the jitter seen so far.
            self.next = None;
            self.misses = 0;
            self.target_ms = self.fitted_target();
            return None;
        } else {
            self.misses += 1;
            self.stats.concealed += 1;
            Play::Conceal
        };
        self.next = Some(next + 1);
        self.done_before = next + 1;
        Some(play)
    }

    /// Waiting the jitter out twice over covers nearly every late packet.
    fn fitted_target(&self) -> u64 {
        let wanted = FRAME_MS as f64 + 2.5 * self.jitter_ms;
        (wanted.ceil() as u64).clamp(MIN_TARGET_MS, MAX_TARGET_MS)
    }

    pub fn target_ms(&self) -> u64 {
        self.target_ms
    }

    /// Whether a spurt is playing (the speaker is talking).
    pub fn playing(&self) -> bool {
        self.next.is_some()
    }

    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        if let Some((lo, hi)) = self.seq_range {
            s.missing = (hi - lo + 1).saturating_sub(self.stats.received + self.stats.late);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, frame: u32) -> (VoiceHeader, Bytes) {
        (VoiceHeader { seq, timestamp: frame * FRAME as u32 }, Bytes::from(vec![seq as u8]))
    }

    fn drive(jb: &mut JitterBuffer, arrivals: &[(u64, u16, u32)], until_ms: u64) -> Vec<Option<Play>> {
        let mut out = Vec::new();
        let mut i = 0;
        for now in (0..until_ms).step_by(FRAME_MS as usize) {
            while i < arrivals.len() && arrivals[i].0 <= now {
                let (h, b) = packet(arrivals[i].1, arrivals[i].2);
                jb.push(arrivals[i].0, h, b);
                i += 1;
            }
            out.push(jb.pop(now));
        }
        out
    }

    fn byte(p: &Option<Play>) -> Option<u8> {
        match p {
            Some(Play::Packet(b)) => Some(b[0]),
            _ => None,
        }
    }

    #[test]
    fn a_steady_stream_plays_in_order_after_the_target_delay() {
        let mut jb = JitterBuffer::default();
        let arrivals: Vec<_> = (0..10u16).map(|i| (u64::from(i) * 20, i, u32::from(i))).collect();
        let out = drive(&mut jb, &arrivals, 300);
        let first = out.iter().position(|p| p.is_some()).unwrap();
        assert_eq!(first as u64 * FRAME_MS, MIN_TARGET_MS);
        let played: Vec<u8> = out.iter().filter_map(byte).collect();
        assert_eq!(played, (0..10).collect::<Vec<u8>>());
        assert_eq!(jb.stats().played, 10);
    }

    #[test]
    fn reordered_packets_are_put_back_in_order_and_a_lost_one_is_recovered_from_fec() {
        let mut jb = JitterBuffer::default();
        // 3 arrives before 2; 5 never arrives (6 carries its FEC).
        let arrivals = [(0, 0, 0), (20, 1, 1), (40, 3, 3), (45, 2, 2), (80, 4, 4), (120, 6, 6), (140, 7, 7)];
        let out = drive(&mut jb, &arrivals, 400);
        let kinds: Vec<String> = out
            .iter()
            .flatten()
            .map(|p| match p {
                Play::Packet(b) => format!("p{}", b[0]),
                Play::Fec(b) => format!("fec{}", b[0]),
                Play::Conceal => "plc".into(),
            })
            .collect();
        assert_eq!(&kinds[..8], ["p0", "p1", "p2", "p3", "p4", "fec6", "p6", "p7"]);
        let s = jb.stats();
        assert_eq!((s.recovered, s.missing, s.late), (1, 1, 0));
    }

    #[test]
    fn late_packets_are_dropped_and_silence_ends_the_spurt() {
        let mut jb = JitterBuffer::default();
        // 2 arrives long after its turn; then the sender goes quiet (DTX)
        // and talks again 1 s later: a new spurt with the timestamp jumped.
        let arrivals = [(0, 0, 0), (20, 1, 1), (200, 2, 2), (1000, 3, 50), (1020, 4, 51)];
        let out = drive(&mut jb, &arrivals, 1200);
        assert_eq!(jb.stats().late, 1);
        let played: Vec<u8> = out.iter().filter_map(byte).collect();
        assert_eq!(played, [0, 1, 3, 4]);
        // Between the spurts the speaker is silent, not endlessly concealed.
        let concealed = out.iter().filter(|p| matches!(p, Some(Play::Conceal))).count();
        assert!(concealed <= 2 * IDLE_AFTER as usize, "{concealed} frames concealed");
        assert!(out[30..45].iter().all(|p| p.is_none()));
    }

    #[test]
    fn sequence_and_timestamp_wrap_around_without_a_hiccup() {
        let mut jb = JitterBuffer::default();
        let start = u32::MAX - 2 * FRAME as u32 + 1;
        let mut out = Vec::new();
        for k in 0..6u32 {
            let header = VoiceHeader {
                seq: 65533u16.wrapping_add(k as u16),
                timestamp: start.wrapping_add(k * FRAME as u32),
            };
            jb.push(u64::from(k) * 20, header, Bytes::from(vec![k as u8]));
            out.push(jb.pop(u64::from(k) * 20));
        }
        for t in (120..300).step_by(20) {
            out.push(jb.pop(t));
        }
        let played: Vec<u8> = out.iter().filter_map(byte).collect();
        assert_eq!(played, [0, 1, 2, 3, 4, 5]);
        assert_eq!(jb.stats().missing, 0);
    }

    #[test]
    fn the_target_follows_the_jitter_between_spurts() {
        let mut jb = JitterBuffer::default();
        // A spurt with 0-60 ms of jitter, then silence, then a new spurt.
        let mut arrivals: Vec<(u64, u16, u32)> = (0..50u16)
            .map(|i| (u64::from(i) * 20 + [0, 60, 10, 45][i as usize % 4], i, u32::from(i)))
            .collect();
        arrivals.sort();
        let _ = drive(&mut jb, &arrivals, 2000);
        assert!(jb.target_ms() > MIN_TARGET_MS, "target {} ms", jb.target_ms());
        assert!(jb.target_ms() <= MAX_TARGET_MS);
    }
}
