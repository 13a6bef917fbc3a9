//! The sound card as a call's [`Capture`] and [`Playback`], through cpal.
//!
//! cpal's streams may not move between threads, so they live on a thread of
//! their own for as long as the call holds either end. The callbacks only
//! convert (to and from 48 kHz mono) and move samples through two short
//! queues; the call's 20 ms tick does the rest. Each queue is bounded, so a
//! stall never builds up delay: the microphone keeps its newest second, the
//! speaker its newest 100 ms.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::audio::AudioError;
use crate::call::{Capture, Ends, Playback};
use crate::codec::{FRAME, RATE};

/// Captured audio held at most (1 s).
const MIC_MAX: usize = RATE as usize;
/// Audio queued for the speaker at most, beyond one frame (100 ms).
const SPEAKER_MAX: usize = RATE as usize / 10;

/// Opens the default microphone and speaker.
pub fn open() -> Result<Ends, AudioError> {
    let mic = Arc::new(Mutex::new(VecDeque::<i16>::new()));
    let speaker = Arc::new(Mutex::new(VecDeque::<f32>::new()));
    let (stop, stopped) = mpsc::channel::<()>();
    let (ready, started) = mpsc::channel::<Result<u32, String>>();
    let (m, s) = (mic.clone(), speaker.clone());
    std::thread::Builder::new()
        .name("kith-audio".into())
        .spawn(move || match streams(m, s) {
            Ok((input, output, out_rate)) => {
                let _ = ready.send(Ok(out_rate));
                // Until both ends are dropped.
                let _ = stopped.recv();
                drop((input, output));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        })
        .map_err(|e| AudioError::Device(e.to_string()))?;
    let out_rate = started
        .recv()
        .map_err(|_| AudioError::Device("the audio thread died".into()))?
        .map_err(AudioError::Device)?;
    let stop = Arc::new(Mutex::new(stop));
    let capture = DeviceCapture { mic, _stop: stop.clone() };
    let playback = DevicePlayback { speaker, to_device: Resampler::new(RATE, out_rate), _stop: stop };
    Ok((Box::new(capture), Box::new(playback)))
}

type Streams = (cpal::Stream, cpal::Stream, u32);

fn streams(mic: Arc<Mutex<VecDeque<i16>>>, speaker: Arc<Mutex<VecDeque<f32>>>) -> Result<Streams, String> {
    let host = cpal::default_host();
    let input = host.default_input_device().ok_or("no microphone")?;
    let output = host.default_output_device().ok_or("no speaker")?;
    let in_config = input.default_input_config().map_err(|e| format!("microphone: {e}"))?;
    let out_config = output.default_output_config().map_err(|e| format!("speaker: {e}"))?;
    let out_rate = out_config.sample_rate().0;
    let input = match in_config.sample_format() {
        SampleFormat::F32 => capture::<f32>(&input, &in_config.into(), mic),
        SampleFormat::I16 => capture::<i16>(&input, &in_config.into(), mic),
        SampleFormat::U16 => capture::<u16>(&input, &in_config.into(), mic),
        SampleFormat::I32 => capture::<i32>(&input, &in_config.into(), mic),
        other => Err(format!("microphone: unsupported sample format {other}")),
    }?;
    let output = match out_config.sample_format() {
        SampleFormat::F32 => play::<f32>(&output, &out_config.into(), speaker),
        SampleFormat::I16 => play::<i16>(&output, &out_config.into(), speaker),
        SampleFormat::U16 => play::<u16>(&output, &out_config.into(), speaker),
        SampleFormat::I32 => play::<i32>(&output, &out_config.into(), speaker),
        other => Err(format!("speaker: unsupported sample format {other}")),
    }?;
    input.play().map_err(|e| format!("microphone: {e}"))?;
    output.play().map_err(|e| format!("speaker: {e}"))?;
    Ok((input, output, out_rate))
}

fn capture<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mic: Arc<Mutex<VecDeque<i16>>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let mut to_48k = Resampler::new(config.sample_rate.0, RATE);
    let mut mono = Vec::new();
    device
        .build_input_stream(
            config,
            move |data: &[T], _| {
                mono.clear();
                for frame in data.chunks(channels) {
                    let sum: f32 = frame.iter().map(|s| <f32 as FromSample<T>>::from_sample_(*s)).sum();
                    to_48k.push(sum / channels as f32, &mut mono);
                }
                let Ok(mut q) = mic.lock() else { return };
                q.extend(mono.iter().map(|s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16));
                let excess = q.len().saturating_sub(MIC_MAX);
                q.drain(..excess);
            },
            |e| tracing::warn!("microphone: {e}"),
            None,
        )
        .map_err(|e| format!("microphone: {e}"))
}

fn play<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    speaker: Arc<Mutex<VecDeque<f32>>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    device
        .build_output_stream(
            config,
            move |data: &mut [T], _| {
                let mut q = speaker.lock().ok();
                for frame in data.chunks_mut(channels) {
                    // Nothing queued (nobody talking, or a late tick): silence.
                    let s = q.as_mut().and_then(|q| q.pop_front()).unwrap_or(0.0);
                    frame.fill(<T as FromSample<f32>>::from_sample_(s));
                }
            },
            |e| tracing::warn!("speaker: {e}"),
            None,
        )
        .map_err(|e| format!("speaker: {e}"))
}

struct DeviceCapture {
    mic: Arc<Mutex<VecDeque<i16>>>,
    _stop: Arc<Mutex<mpsc::Sender<()>>>,
}

impl Capture for DeviceCapture {
    fn read(&mut self, frame: &mut [i16; FRAME]) -> bool {
        let Ok(mut q) = self.mic.lock() else { return false };
        if q.len() < FRAME {
            return false;
        }
        for (out, s) in frame.iter_mut().zip(q.drain(..FRAME)) {
            *out = s;
        }
        true
    }
}

struct DevicePlayback {
    speaker: Arc<Mutex<VecDeque<f32>>>,
    to_device: Resampler,
    _stop: Arc<Mutex<mpsc::Sender<()>>>,
}

impl Playback for DevicePlayback {
    fn play(&mut self, frame: &[i16; FRAME]) -> Result<(), AudioError> {
        let mut out = Vec::with_capacity(FRAME * 2);
        for s in frame {
            self.to_device.push(f32::from(*s) / 32768.0, &mut out);
        }
        let mut q = self.speaker.lock().map_err(|_| AudioError::Device("the speaker failed".into()))?;
        q.extend(out);
        // The device's clock and ours drift apart: never let the difference
        // pile up as delay.
        let limit = SPEAKER_MAX * usize::try_from(self.to_device.to).unwrap_or(1) / RATE as usize + FRAME;
        let excess = q.len().saturating_sub(limit);
        q.drain(..excess);
        Ok(())
    }
}

/// Streaming linear-interpolation resampling, one sample in at a time.
#[derive(Debug, Clone)]
struct Resampler {
    to: u32,
    /// Input samples per output sample.
    step: f64,
    /// Where the next output falls, between the previous input (0) and the
    /// current one (1).
    pos: f64,
    last: f32,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Resampler {
        Resampler { to, step: f64::from(from.max(1)) / f64::from(to.max(1)), pos: 1.0, last: 0.0 }
    }

    fn push(&mut self, x: f32, out: &mut Vec<f32>) {
        while self.pos <= 1.0 {
            out.push(self.last + (x - self.last) * self.pos as f32);
            self.pos += self.step;
        }
        self.pos -= 1.0;
        self.last = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_rate_and_the_signal() {
        for (from, to) in [(44_100, 48_000), (48_000, 48_000), (96_000, 48_000), (48_000, 44_100)] {
            let mut r = Resampler::new(from, to);
            let mut out = Vec::new();
            let input: Vec<f32> = (0..from).map(|i| (i as f32 * 0.01).sin()).collect();
            for x in &input {
                r.push(*x, &mut out);
            }
            let expected = to as usize;
            assert!(out.len().abs_diff(expected) <= 1, "{from} -> {to}: {}", out.len());
            // A slow sine stays a slow sine: neighbours stay close.
            assert!(out.windows(2).skip(1).all(|w| (w[0] - w[1]).abs() < 0.03), "{from} -> {to}");
        }
    }
}
