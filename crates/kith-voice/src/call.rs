//! A voice call on a connected client: every 20 ms it takes what the
//! microphone captured, sends it if the user is talking, and plays the mix
//! of everyone else through the jitter buffers.
//!
//! Where sound comes from and goes is a [`Capture`] and a [`Playback`]: a
//! WAV file and a recorder for `kith voice join`, the tests and the
//! benchmarks; the sound card (the `device` feature) for `kith chat`. The
//! same loop runs either way, so the tests exercise what people use.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kith_client::Client;
use kith_proto::voice::{VoiceHeader, client_datagram, parse_forwarded};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::audio::AudioError;
use crate::codec::{CodecError, FRAME, FRAME_MS, VoiceDecoder, VoiceEncoder};
use crate::jitter::{JitterBuffer, JitterStats};
use crate::vad::Vad;

/// Where the call's outgoing sound comes from: 48 kHz mono, 20 ms at a time.
pub trait Capture: Send {
    /// Fills `frame` with the next 20 ms if it has been captured; false if
    /// not yet (a sound card delivers in its own rhythm, so a tick may find
    /// none or several).
    fn read(&mut self, frame: &mut [i16; FRAME]) -> bool;
}

/// Where the mix of the others goes, 20 ms at a time.
pub trait Playback: Send {
    fn play(&mut self, frame: &[i16; FRAME]) -> Result<(), AudioError>;
    /// The call is over: flush (a file's header is completed here).
    fn finish(&mut self) -> Result<(), AudioError> {
        Ok(())
    }
}

/// Both ends of a call's sound.
pub type Ends = (Box<dyn Capture>, Box<dyn Playback>);

/// Samples played once from the start: a file as a microphone that keeps
/// pace with the clock, a frame each 20 ms from the first read, and then
/// falls silent as if unplugged (nothing more is sent, not even Opus's
/// comfort noise).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    samples: Vec<i16>,
    frames: u64,
    start: Option<Instant>,
}

impl Samples {
    pub fn new(samples: Vec<i16>) -> Samples {
        Samples { samples, frames: 0, start: None }
    }
}

impl Capture for Samples {
    fn read(&mut self, frame: &mut [i16; FRAME]) -> bool {
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start.elapsed().as_millis() as u64 / FRAME_MS + 1;
        let at = (self.frames as usize).saturating_mul(FRAME);
        if self.frames >= due || at >= self.samples.len() {
            return false;
        }
        frame.fill(0);
        let rest = &self.samples[at..];
        let n = rest.len().min(FRAME);
        frame[..n].copy_from_slice(&rest[..n]);
        self.frames += 1;
        true
    }
}

/// Keeps everything played, in memory.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub samples: Vec<i16>,
}

impl Playback for Recorder {
    fn play(&mut self, frame: &[i16; FRAME]) -> Result<(), AudioError> {
        self.samples.extend_from_slice(frame);
        Ok(())
    }
}

/// Listening with nowhere to put the sound: the call still reports who
/// spoke and what arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Playback for Discard {
    fn play(&mut self, _: &[i16; FRAME]) -> Result<(), AudioError> {
        Ok(())
    }
}

/// Writes what is played to a WAV file as it goes (memory stays flat
/// however long the call).
pub struct WavOut {
    path: String,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl WavOut {
    pub fn create(path: &Path) -> Result<WavOut, AudioError> {
        let path = path.display().to_string();
        match hound::WavWriter::create(&path, crate::audio::WAV_SPEC) {
            Ok(w) => Ok(WavOut { path, writer: Some(w) }),
            Err(e) => Err(AudioError::Wav { path, reason: e.to_string() }),
        }
    }

    fn err(&self, e: hound::Error) -> AudioError {
        AudioError::Wav { path: self.path.clone(), reason: e.to_string() }
    }
}

impl std::fmt::Debug for WavOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavOut").finish_non_exhaustive()
    }
}

impl Playback for WavOut {
    fn play(&mut self, frame: &[i16; FRAME]) -> Result<(), AudioError> {
        let Some(w) = &mut self.writer else { return Ok(()) };
        let mut s = w.get_i16_writer(FRAME as u32);
        for x in frame {
            s.write_sample(*x);
        }
        s.flush().map_err(|e| self.err(e))
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|e| self.err(e)),
            None => Ok(()),
        }
    }
}

/// When the microphone is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// While voice is detected ([`crate::vad`]).
    #[default]
    VoiceActivity,
    /// While the push-to-talk key is held (`Controls::held_until`).
    PushToTalk,
    /// Always (Opus DTX still sends next to nothing in silence).
    Open,
}

/// What the user wants, changed at any time during the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Controls {
    pub mute: bool,
    /// Hear nothing (the server also stops sending).
    pub deaf: bool,
    pub mode: Mode,
    /// Push-to-talk: the key counts as held until then.
    pub held_until: Option<Instant>,
}

impl Controls {
    fn open(&self, now: Instant, voiced: bool) -> bool {
        if self.mute || self.deaf {
            return false;
        }
        match self.mode {
            Mode::VoiceActivity => voiced,
            Mode::PushToTalk => self.held_until.is_some_and(|t| now < t),
            Mode::Open => true,
        }
    }
}

/// Who can be heard right now, for speaking indicators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Others whose voice is playing (user ids).
    pub speaking: BTreeSet<u64>,
    /// The user's own voice is going out.
    pub talking: bool,
}

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

/// What a call sent and heard.
#[derive(Debug, Default, Clone)]
pub struct CallStats {
    pub sent: u64,
    /// Datagrams the impairment dropped.
    pub dropped: u64,
    /// Per speaker (user id).
    pub speakers: BTreeMap<u64, JitterStats>,
}

/// What a headless session heard and did.
#[derive(Debug, Default)]
pub struct Recording {
    /// Everyone else, mixed, one 20 ms frame per tick from the start.
    pub samples: Vec<i16>,
    pub stats: CallStats,
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("the connection closed")]
    Closed,
}

/// Plays `input` into the voice channel the client joined (from the start,
/// open microphone, then nothing) and records what arrives, for `duration`.
pub async fn run(
    client: &Client,
    input: &[i16],
    duration: Duration,
    config: &VoiceConfig,
) -> Result<Recording, VoiceError> {
    let controls = Controls { mode: Mode::Open, ..Controls::default() };
    let (_keep, mut controls) = watch::channel(controls);
    let (activity, _) = watch::channel(Activity::default());
    let mut capture = Samples::new(input.to_vec());
    let mut recorder = Recorder::default();
    let frames = duration.as_millis() as u64 / FRAME_MS;
    let stats =
        drive(client, &mut capture, &mut recorder, config, Some(frames), &mut controls, &activity).await?;
    Ok(Recording { samples: recorder.samples, stats })
}

/// A call running on its own task. Dropping it without [`Call::stop`]
/// ends it too, without waiting for the playback to finish.
pub struct Call {
    controls: watch::Sender<Controls>,
    activity: watch::Receiver<Activity>,
    task: tokio::task::JoinHandle<Result<CallStats, VoiceError>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("controls", &*self.controls.borrow()).finish_non_exhaustive()
    }
}

impl Call {
    /// Starts sending `capture` and playing into `playback` on `client`
    /// (which has joined a voice channel).
    pub fn start(
        client: Arc<Client>,
        mut capture: Box<dyn Capture>,
        mut playback: Box<dyn Playback>,
        config: VoiceConfig,
        controls: Controls,
    ) -> Call {
        let (controls, mut controls_rx) = watch::channel(controls);
        let (activity_tx, activity) = watch::channel(Activity::default());
        let task = tokio::spawn(async move {
            let result =
                drive(&client, &mut *capture, &mut *playback, &config, None, &mut controls_rx, &activity_tx)
                    .await;
            let finished = playback.finish();
            let stats = result?;
            finished?;
            Ok(stats)
        });
        Call { controls, activity, task }
    }

    pub fn set(&self, controls: Controls) {
        self.controls.send_replace(controls);
    }

    /// Speaking indicators; `changed()` wakes on each change.
    pub fn activity(&mut self) -> &mut watch::Receiver<Activity> {
        &mut self.activity
    }

    /// Whether the call ended by itself (the connection closed, the
    /// playback failed); [`Call::stop`] then says why.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the call and finishes its playback.
    pub async fn stop(self) -> Result<CallStats, VoiceError> {
        drop(self.controls);
        match self.task.await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
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

/// Frames of captured sound taken per tick at most: a sound card that
/// delivered a burst is caught up with, without one tick sending a flood.
const CATCH_UP: usize = 5;

/// Ticks without captured sound after which the user counts as silent.
const NO_CAPTURE_TICKS: u32 = 5;

/// The call's loop: runs for `frames` ticks, or until the controls' sender
/// is dropped.
async fn drive<C: Capture + ?Sized, P: Playback + ?Sized>(
    client: &Client,
    capture: &mut C,
    playback: &mut P,
    config: &VoiceConfig,
    frames: Option<u64>,
    controls: &mut watch::Receiver<Controls>,
    activity: &watch::Sender<Activity>,
) -> Result<CallStats, VoiceError> {
    let mut encoder = VoiceEncoder::new(config.bitrate)?;
    let mut vad = Vad::default();
    let mut rng = StdRng::seed_from_u64(config.impairment.seed);
    let mut speakers: BTreeMap<u64, Speaker> = BTreeMap::new();
    let mut delayed: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut stats = CallStats::default();
    let start = Instant::now();
    let ms = |at: Instant| at.duration_since(start).as_millis() as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let (mut seq, mut timestamp, mut order) = (0u16, 0u32, 0u64);
    let mut played = 0u64;
    let mut frame_in = [0i16; FRAME];
    let mut frame_out = [0i16; FRAME];
    let mut wanted = *controls.borrow_and_update();
    let (mut talking, mut quiet_ticks) = (false, 0u32);
    while frames.is_none_or(|f| played < f) {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let now_ms = ms(now);
                // Capture: whatever the microphone has delivered. A tick that
                // finds nothing new (the card's rhythm is not ours) keeps the
                // last verdict on whether the user is talking, for a while.
                quiet_ticks += 1;
                for _ in 0..CATCH_UP {
                    if !capture.read(&mut frame_in) {
                        break;
                    }
                    quiet_ticks = 0;
                    let voiced = vad.update(&frame_in);
                    let open = wanted.open(now, voiced);
                    talking = voiced && open;
                    if open && let Some(packet) = encoder.encode(&frame_in)? {
                        let datagram = client_datagram(VoiceHeader { seq, timestamp }, packet);
                        if client.send_datagram(datagram).is_ok() {
                            stats.sent += 1;
                        }
                        seq = seq.wrapping_add(1);
                    }
                    // The timestamp counts captured time, sent or not, so the
                    // listeners' buffers see the silence as a gap.
                    timestamp = timestamp.wrapping_add(FRAME as u32);
                }
                if quiet_ticks > NO_CAPTURE_TICKS {
                    talking = false; // the microphone delivers nothing
                }
                // Delayed packets whose time has come.
                while delayed.peek().is_some_and(|Reverse(h)| h.release_ms <= now_ms) {
                    let Reverse(h) = delayed.pop().expect("peeked");
                    let header = VoiceHeader { seq: h.seq, timestamp: h.timestamp };
                    speaker(&mut speakers, h.sender)?.jitter.push(now_ms, header, h.opus);
                }
                // Playout: one frame per speaker, mixed.
                let mut mix = [0i16; FRAME];
                for s in speakers.values_mut() {
                    if let Some(play) = s.jitter.pop(now_ms) {
                        s.decoder.decode(&play, &mut frame_out);
                        crate::audio::mix_into(&mut mix, &frame_out);
                    }
                }
                if wanted.deaf {
                    mix.fill(0);
                }
                playback.play(&mix)?;
                played += 1;
                let speaking = speakers.iter().filter(|(_, s)| s.jitter.playing()).map(|(id, _)| *id).collect();
                let now_active = Activity { speaking, talking };
                activity.send_if_modified(|a| {
                    let changed = *a != now_active;
                    *a = now_active;
                    changed
                });
            }
            changed = controls.changed() => {
                if changed.is_err() {
                    break;
                }
                wanted = *controls.borrow_and_update();
                // Muting silences the indicator at once, not at the next frame.
                talking &= !(wanted.mute || wanted.deaf);
            }
            datagram = client.read_datagram() => {
                let Some(datagram) = datagram else { return Err(VoiceError::Closed) };
                let Ok(packet) = parse_forwarded(datagram) else { continue };
                let imp = config.impairment;
                if imp.loss > 0.0 && rng.random_bool(imp.loss.min(1.0)) {
                    stats.dropped += 1;
                    continue;
                }
                let now_ms = ms(Instant::now());
                if imp.jitter_ms == 0 {
                    speaker(&mut speakers, packet.sender)?.jitter.push(now_ms, packet.header, packet.opus);
                } else {
                    order += 1;
                    delayed.push(Reverse(Held {
                        release_ms: now_ms + rng.random_range(0..imp.jitter_ms),
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
    stats.speakers = speakers.into_iter().map(|(id, s)| (id, s.jitter.stats())).collect();
    Ok(stats)
}

fn speaker(speakers: &mut BTreeMap<u64, Speaker>, id: u64) -> Result<&mut Speaker, CodecError> {
    Ok(match speakers.entry(id) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Speaker { jitter: JitterBuffer::default(), decoder: VoiceDecoder::new()? })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_file_microphone_keeps_pace_with_the_clock_then_is_unplugged() {
        let mut s = Samples::new((1..=1500).map(|x| x as i16).collect());
        let mut f = [0i16; FRAME];
        assert!(s.read(&mut f));
        assert_eq!((f[0], f[FRAME - 1]), (1, 960));
        assert!(!s.read(&mut f), "the next 20 ms have not been spoken yet");
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(s.read(&mut f));
        assert_eq!((f[0], f[539], f[540]), (961, 1500, 0));
        tokio::time::advance(Duration::from_millis(40)).await;
        assert!(!s.read(&mut f), "the file is over");
    }

    #[test]
    fn the_microphone_opens_by_mode_and_never_when_muted_or_deafened() {
        let now = Instant::now();
        let later = now + Duration::from_millis(100);
        let c = |mode, mute, deaf, held_until| Controls { mute, deaf, mode, held_until };
        assert!(c(Mode::VoiceActivity, false, false, None).open(now, true));
        assert!(!c(Mode::VoiceActivity, false, false, None).open(now, false));
        assert!(c(Mode::Open, false, false, None).open(now, false));
        assert!(c(Mode::PushToTalk, false, false, Some(later)).open(now, false));
        assert!(!c(Mode::PushToTalk, false, false, Some(later)).open(later, true), "released");
        assert!(!c(Mode::PushToTalk, false, false, None).open(now, true));
        for mode in [Mode::VoiceActivity, Mode::Open, Mode::PushToTalk] {
            assert!(!c(mode, true, false, Some(later)).open(now, true));
            assert!(!c(mode, false, true, Some(later)).open(now, true));
        }
    }

    #[test]
    fn a_wav_written_as_it_goes_reads_back() {
        let dir = std::env::temp_dir().join(format!("kith-wavout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.wav");
        let mut out = WavOut::create(&path).unwrap();
        let frame: [i16; FRAME] = std::array::from_fn(|i| i as i16);
        out.play(&frame).unwrap();
        out.play(&frame).unwrap();
        out.finish().unwrap();
        let back = crate::audio::read_wav(&path).unwrap();
        assert_eq!(back.len(), 2 * FRAME);
        assert_eq!(&back[..FRAME], &frame[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
