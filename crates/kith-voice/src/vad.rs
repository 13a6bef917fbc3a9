//! Voice-activity detection: decides, frame by frame, whether the
//! microphone hears someone talking, so that an open microphone sends
//! nothing (and shows no speaking indicator) while the room is quiet.
//!
//! An energy detector against an adaptive noise floor: the floor drops at
//! once to a quieter frame and creeps up slowly, so steady background noise
//! (a fan, hum) is learned within seconds and ignored, while speech, which
//! rises well above it in bursts, opens the gate. A hangover keeps the gate
//! open across the short pauses inside and between words, so that syllables
//! are not clipped.

use crate::audio::level;

/// Voice must be this far above the noise floor.
const MARGIN_DB: f32 = 12.0;
/// Below this nothing counts as voice, however quiet the room.
const ABSOLUTE_FLOOR_DB: f32 = -55.0;
/// How fast the floor rises towards a louder background, per 20 ms frame
/// (1.5 dB a second): slower than any syllable, so speech never becomes
/// the floor, but steady noise does within seconds.
const RISE_DB: f32 = 0.03;
/// Frames the gate stays open after the last loud one (300 ms).
const HANGOVER: u32 = 15;

#[derive(Debug, Clone)]
pub struct Vad {
    floor_db: f32,
    hangover: u32,
}

impl Default for Vad {
    fn default() -> Self {
        Vad { floor_db: -70.0, hangover: 0 }
    }
}

/// A frame's RMS level in dB of full scale (-100 for digital silence).
pub fn dbfs(frame: &[i16]) -> f32 {
    let l = level(frame);
    if l <= 1e-5 { -100.0 } else { 20.0 * l.log10() }
}

impl Vad {
    /// Takes the next 20 ms frame; says whether voice is on.
    pub fn update(&mut self, frame: &[i16]) -> bool {
        let db = dbfs(frame);
        if db < self.floor_db {
            self.floor_db = db.max(-100.0);
        } else {
            self.floor_db += RISE_DB;
        }
        let threshold = (self.floor_db + MARGIN_DB).max(ABSOLUTE_FLOOR_DB);
        if db > threshold {
            self.hangover = HANGOVER;
            true
        } else if self.hangover > 0 {
            self.hangover -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FRAME;

    fn frames(samples: &[i16]) -> impl Iterator<Item = &[i16]> {
        samples.chunks_exact(FRAME)
    }

    /// Deterministic noise at roughly `amplitude` RMS.
    fn noise(n: usize, amplitude: f64, seed: u64) -> Vec<i16> {
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                (u * amplitude * 1.73) as i16
            })
            .collect()
    }

    #[test]
    fn silence_is_not_voice() {
        let mut vad = Vad::default();
        assert!(frames(&vec![0; FRAME * 100]).all(|f| !vad.update(f)));
        let mut vad = Vad::default();
        // A very quiet room (about -70 dBFS) stays closed too.
        assert!(frames(&noise(FRAME * 100, 10.0, 1)).all(|f| !vad.update(f)));
    }

    #[test]
    fn speech_opens_the_gate_and_pauses_inside_it_do_not_close_it() {
        let mut vad = Vad::default();
        let speech = crate::audio::speech_like(3.0);
        let on = frames(&speech).filter(|f| vad.update(f)).count();
        let total = speech.len() / FRAME;
        // The 50 ms gaps between syllables are bridged: nearly all of it is voice.
        assert!(on * 100 >= total * 95, "{on} of {total} frames");
    }

    #[test]
    fn steady_background_noise_is_learned_and_speech_still_cuts_through() {
        let mut vad = Vad::default();
        // A fan at about -35 dBFS: loud enough to open the gate at first.
        let fan = noise(FRAME * 50 * 20, 600.0, 7);
        let late: Vec<bool> = frames(&fan).map(|f| vad.update(f)).collect();
        assert!(late[..5].iter().any(|&v| v), "a sudden noise counts at first");
        assert!(late[late.len() - 100..].iter().all(|&v| !v), "after 20 s of it, it is background");
        // Speech over the same fan is heard.
        let speech = crate::audio::speech_like(1.0);
        let mixed: Vec<i16> =
            speech.iter().zip(noise(speech.len(), 600.0, 9)).map(|(s, n)| s.saturating_add(n)).collect();
        let on = frames(&mixed).filter(|f| vad.update(f)).count();
        assert!(on * 100 >= mixed.len() / FRAME * 80, "{on}");
    }

    #[test]
    fn the_gate_closes_after_the_hangover() {
        let mut vad = Vad::default();
        let speech = crate::audio::speech_like(0.5);
        for f in frames(&speech) {
            vad.update(f);
        }
        let silence = vec![0i16; FRAME * 40];
        let open: Vec<bool> = frames(&silence).map(|f| vad.update(f)).collect();
        let closed_at = open.iter().position(|&v| !v).expect("closes");
        assert!(closed_at <= HANGOVER as usize, "{closed_at}");
        assert!(open[closed_at..].iter().all(|&v| !v));
    }
}
