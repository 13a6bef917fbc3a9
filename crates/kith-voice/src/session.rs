//! A headless voice session on a connected client: plays samples into the
//! voice channel the client joined, and records the mix of everyone else.
//! What `kith voice join` runs, and what the tests and benchmarks drive.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use bytes::Bytes;
use kith_client::Client;
use kith_proto::voice::{VoiceHeader, client_datagram, parse_forwarded};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::time::{Instant, MissedTickBehavior};

use crate::codec::{CodecError, FRAME, FRAME_MS, VoiceDecoder, VoiceEncoder};
use crate::jitter::{JitterBuffer, JitterStats};

/// Network trouble to simulate on the receiving side: each incoming
/// datagram is dropped with probability `loss`, and the rest are delayed by
/// a uniformly random 0..`jitter_ms` (so they also arrive out of order).
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    pub loss: f64,
    pub jitter_ms: u64,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct VoiceConfig {
    pub bitrate: u32,
    pub impairment: Impairment,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig { bitrate: crate::codec::DEFAULT_BITRATE, impairment: Impairment::default() }
    }
}

/// What a session heard and did.
#[derive(Debug, Default)]
pub struct Recording {
    /// Everyone else, mixed, one 20 ms frame per tick from the start.
    pub samples: Vec<i16>,
    pub sent: u64,
    /// Datagrams the impairment dropped.
    pub dropped: u64,
    /// Per speaker (user id).
    pub speakers: BTreeMap<u64, JitterStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the connection closed")]
    Closed,
}

/// A received packet held back by the simulated jitter, ordered by when it
/// is let through (then by arrival).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    release_ms: u64,
    order: u64,
    sender: u64,
    seq: u16,
    timestamp: u32,
    opus: Bytes,
}

struct Speaker {
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
}

/// Runs for `duration`: sends `input` from the start (then nothing more, as
/// a muted microphone would), records what arrives.
pub async fn run(
    client: &Client,
    input: &[i16],
    duration: Duration,
    config: &VoiceConfig,
) -> Result<Recording, VoiceError> {
    let mut encoder = VoiceEncoder::new(config.bitrate)?;
    let mut rng = StdRng::seed_from_u64(config.impairment.seed);
    let mut speakers: BTreeMap<u64, Speaker> = BTreeMap::new();
    // Impaired packets waiting out their delay: (release ms, arrival order).
    let mut delayed: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut recording = Recording::default();
    let start = Instant::now();
    let ms = |at: Instant| at.duration_since(start).as_millis() as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let frames = duration.as_millis() as u64 / FRAME_MS;
    let (mut seq, mut timestamp, mut order) = (0u16, 0u32, 0u64);
    let mut played = 0u64;
    let mut frame_in = [0i16; FRAME];
    let mut frame_out = [0i16; FRAME];
    while played < frames {
        tokio::select! {
            _ = tick.tick() => {
                let now = ms(Instant::now());
                // Capture: the next 20 ms of input, if any is left.
                let at = played as usize * FRAME;
                if at < input.len() {
                    let chunk = &input[at..input.len().min(at + FRAME)];
                    frame_in.fill(0);
                    frame_in[..chunk.len()].copy_from_slice(chunk);
                    if let Some(packet) = encoder.encode(&frame_in)? {
                        let datagram = client_datagram(VoiceHeader { seq, timestamp }, packet);
                        if client.send_datagram(datagram).is_ok() {
                            recording.sent += 1;
                        }
                        seq = seq.wrapping_add(1);
                    }
                    timestamp = timestamp.wrapping_add(FRAME as u32);
                }
                // Delayed packets whose time has come.
                while delayed.peek().is_some_and(|Reverse(h)| h.release_ms <= now) {
                    let Reverse(h) = delayed.pop().expect("peeked");
                    let header = VoiceHeader { seq: h.seq, timestamp: h.timestamp };
                    speaker(&mut speakers, h.sender)?.jitter.push(now, header, h.opus);
                }
                // Playout: one frame per speaker, mixed.
                let mut mix = [0i16; FRAME];
                for s in speakers.values_mut() {
                    if let Some(play) = s.jitter.pop(now) {
                        s.decoder.decode(&play, &mut frame_out);
                        crate::audio::mix_into(&mut mix, &frame_out);
                    }
                }
                recording.samples.extend_from_slice(&mix);
                played += 1;
            }
            datagram = client.read_datagram() => {
                let Some(datagram) = datagram else { return Err(VoiceError::Closed) };
                let Ok(packet) = parse_forwarded(datagram) else { continue };
                let imp = config.impairment;
                if imp.loss > 0.0 && rng.random_bool(imp.loss.min(1.0)) {
                    recording.dropped += 1;
                    continue;
                }
                let now = ms(Instant::now());
                if imp.jitter_ms == 0 {
                    speaker(&mut speakers, packet.sender)?.jitter.push(now, packet.header, packet.opus);
                } else {
                    order += 1;
                    delayed.push(Reverse(Held {
                        release_ms: now + rng.random_range(0..imp.jitter_ms),
                        order,
                        sender: packet.sender,
                        seq: packet.header.seq,
                        timestamp: packet.header.timestamp,
                        opus: packet.opus,
                    }));
                }
            }
        }
    }
    recording.speakers = speakers.into_iter().map(|(id, s)| (id, s.jitter.stats())).collect();
    Ok(recording)
}

fn speaker(speakers: &mut BTreeMap<u64, Speaker>, id: u64) -> Result<&mut Speaker, CodecError> {
    Ok(match speakers.entry(id) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Speaker { jitter: JitterBuffer::default(), decoder: VoiceDecoder::new()? })
        }
    })
}
