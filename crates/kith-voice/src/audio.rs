//! Audio files and signals: WAV in (any rate, any channel count) as 48 kHz
//! mono, WAV out, mixing, and the quality measure the tests assert on.

use std::path::Path;

use crate::codec::RATE;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {reason}")]
    Wav { path: String, reason: String },
    /// The sound card: none there, or it refused or failed.
    #[error("audio device: {0}")]
    Device(String),
}

/// What kith writes: 48 kHz mono 16-bit.
pub(crate) const WAV_SPEC: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: RATE,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

/// Reads a WAV file as 48 kHz mono 16-bit samples: channels are averaged
/// and other rates resampled (linearly; enough for speech).
pub fn read_wav(path: &Path) -> Result<Vec<i16>, AudioError> {
    let err = |reason: String| AudioError::Wav { path: path.display().to_string(), reason };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()
        }
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
    }
    .map_err(|e| err(e.to_string()))?;
    let mono: Vec<f32> = samples.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect();
    let resampled = resample(&mono, spec.sample_rate, RATE);
    Ok(resampled.iter().map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).collect())
}

/// Writes 48 kHz mono 16-bit samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), AudioError> {
    let err = |reason: String| AudioError::Wav { path: path.display().to_string(), reason };
    let mut w = hound::WavWriter::create(path, WAV_SPEC).map_err(|e| err(e.to_string()))?;
    for s in samples {
        w.write_sample(*s).map_err(|e| err(e.to_string()))?;
    }
    w.finalize().map_err(|e| err(e.to_string()))
}

/// Linear-interpolation resampling.
pub(crate) fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let k = pos as usize;
            let frac = (pos - k as f64) as f32;
            let a = input[k.min(input.len() - 1)];
            let b = input[(k + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// Adds `frame` into `mix`, saturating.
pub fn mix_into(mix: &mut [i16], frame: &[i16]) {
    for (m, s) in mix.iter_mut().zip(frame) {
        *m = m.saturating_add(*s);
    }
}

/// The root-mean-square level of a frame, 0.0-1.0 of full scale.
pub fn level(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    ((sum / frame.len() as f64).sqrt() / 32768.0) as f32
}

/// How closely a recording matches what was played into the channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Where in the recording the reference begins, in samples.
    pub delay: usize,
    /// Normalised correlation at that delay (1.0: identical up to gain).
    pub correlation: f64,
    /// Signal-to-noise ratio in dB after the best gain.
    pub snr_db: f64,
}

/// Finds `reference` in `recording` (it must start within `max_delay`
/// samples) and says how well it matches. Coarse search on 1 ms averages,
/// then sample-exact around the best coarse lag, so a few seconds of audio
/// take milliseconds even unoptimised.
pub fn compare(reference: &[i16], recording: &[i16], max_delay: usize) -> Match {
    const DECIMATE: usize = 48;
    let coarse = |x: &[i16]| -> Vec<f64> {
        x.chunks(DECIMATE)
            .map(|c| c.iter().map(|s| f64::from(*s).abs()).sum::<f64>() / c.len() as f64)
            .collect()
    };
    let (r, y) = (coarse(reference), coarse(recording));
    let best_coarse = (0..=max_delay / DECIMATE)
        .max_by(|a, b| {
            let score = |lag: usize| correlation(&r, y.get(lag..).unwrap_or(&[]));
            score(*a).total_cmp(&score(*b))
        })
        .unwrap_or(0);
    let lo = (best_coarse * DECIMATE).saturating_sub(2 * DECIMATE);
    let hi = (best_coarse * DECIMATE + 2 * DECIMATE).min(max_delay);
    let as_f = |x: &[i16]| x.iter().map(|s| f64::from(*s)).collect::<Vec<f64>>();
    let (rf, yf) = (as_f(reference), as_f(recording));
    let delay = (lo..=hi)
        .max_by(|a, b| {
            let score = |lag: usize| correlation(&rf, yf.get(lag..).unwrap_or(&[]));
            score(*a).total_cmp(&score(*b))
        })
        .unwrap_or(0);
    let aligned = yf.get(delay..).unwrap_or(&[]);
    let n = rf.len().min(aligned.len());
    let (x, y) = (&rf[..n], &aligned[..n]);
    let corr = correlation(x, y);
    let xy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let yy: f64 = y.iter().map(|b| b * b).sum();
    let gain = if yy > 0.0 { xy / yy } else { 0.0 };
    let signal: f64 = x.iter().map(|a| a * a).sum();
    let noise: f64 = x.iter().zip(y).map(|(a, b)| (a - gain * b).powi(2)).sum();
    let snr_db = if noise > 0.0 { 10.0 * (signal / noise).log10() } else { f64::INFINITY };
    Match { delay, correlation: corr, snr_db }
}

/// Normalised correlation of the overlapping parts; 0 if either is silent.
fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let xy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let xx: f64 = x.iter().map(|a| a * a).sum();
    let yy: f64 = y.iter().map(|b| b * b).sum();
    if xx == 0.0 || yy == 0.0 { 0.0 } else { xy / (xx * yy).sqrt() }
}

/// A test signal that behaves like speech for a codec: a rising and falling
/// voiced tone with harmonics, in syllable-length bursts with short pauses.
pub fn speech_like(seconds: f64) -> Vec<i16> {
    let n = (seconds * f64::from(RATE)) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let pitch = 140.0 + 60.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * pitch / f64::from(RATE);
            // 4 syllables a second, each 200 ms of voice then 50 ms of quiet.
            let syllable = (t * 4.0).fract();
            let envelope = if syllable < 0.8 { (std::f64::consts::PI * syllable / 0.8).sin() } else { 0.0 };
            let voice = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
            (7000.0 * envelope * voice) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_a_delayed_copy_and_rejects_silence() {
        let x = speech_like(1.0);
        let mut delayed = vec![0i16; 3333];
        delayed.extend(x.iter().map(|s| s / 2));
        let m = compare(&x, &delayed, 10_000);
        assert_eq!(m.delay, 3333);
        assert!(m.correlation > 0.999 && m.snr_db > 40.0, "{m:?}");
        let silence = vec![0i16; x.len() + 10_000];
        let m = compare(&x, &silence, 10_000);
        assert_eq!(m.correlation, 0.0);
        assert!(m.snr_db <= 0.0, "{m:?}");
    }

    #[test]
    fn resampling_keeps_duration_and_pitch() {
        let at_22k: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.1).sin()).collect();
        let out = resample(&at_22k, 22050, 48000);
        assert_eq!(out.len(), 48000);
    }
}
