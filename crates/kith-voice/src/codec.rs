//! Opus, as kith voice uses it: 48 kHz mono, 20 ms frames, in-band FEC and
//! DTX. The codec is `ropus`, a Rust port of the reference libopus that is
//! bit-exact with it.

use ropus::{Application, Bitrate, Channels, DecodeMode, Decoder, Encoder, InbandFec};

/// Samples per second everywhere in kith voice.
pub const RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 960;
/// One frame's duration in milliseconds.
pub const FRAME_MS: u64 = 20;
/// The default bitrate: clear speech with room for FEC.
pub const DEFAULT_BITRATE: u32 = 32_000;
/// The packet-loss rate the encoder plans its FEC for.
const EXPECTED_LOSS_PERCENT: u8 = 10;

#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

/// One speaker's encoder.
pub struct VoiceEncoder {
    inner: Encoder,
    packet: Vec<u8>,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEncoder").finish_non_exhaustive()
    }
}

impl VoiceEncoder {
    /// A VoIP encoder at `bitrate` bits per second (clamped to 6-128 kb/s).
    pub fn new(bitrate: u32) -> Result<Self, CodecError> {
        let bits = Bitrate::try_bits(bitrate.clamp(6_000, 128_000)).map_err(|e| CodecError(e.to_string()))?;
        let inner = Encoder::builder(RATE, Channels::Mono, Application::Voip)
            .bitrate(bits)
            .inband_fec(InbandFec::Enabled)
            .packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .dtx(true)
            .build()
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(VoiceEncoder { inner, packet: vec![0; 1500] })
    }

    /// Encodes one frame. `None`: DTX says there is nothing worth sending
    /// (silence); the caller skips the packet but not the timestamp.
    pub fn encode(&mut self, frame: &[i16; FRAME]) -> Result<Option<&[u8]>, CodecError> {
        let n = self.inner.encode(frame, &mut self.packet).map_err(|e| CodecError(e.to_string()))?;
        // Opus marks a DTX frame with a packet of at most 2 bytes.
        Ok((n > 2).then(|| &self.packet[..n]))
    }
}

/// What to decode for one frame slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Play {
    /// The frame's own packet.
    Packet(bytes::Bytes),
    /// The frame was lost, but the next frame's packet is here: recover this
    /// one from the FEC data it carries.
    Fec(bytes::Bytes),
    /// Nothing: conceal the loss (or the sender's silence).
    Conceal,
}

/// One remote speaker's decoder.
pub struct VoiceDecoder {
    inner: Decoder,
}

impl std::fmt::Debug for VoiceDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDecoder").finish_non_exhaustive()
    }
}

impl VoiceDecoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(VoiceDecoder { inner: Decoder::new(RATE, Channels::Mono).map_err(|e| CodecError(e.to_string()))? })
    }

    /// Decodes one 20 ms frame into `out`. A corrupt packet is concealed
    /// like a lost one: a hostile sender cannot stop the mix.
    pub fn decode(&mut self, play: &Play, out: &mut [i16; FRAME]) {
        let done = match play {
            Play::Packet(p) => self.inner.decode(p, out, DecodeMode::Normal),
            Play::Fec(next) => self.inner.decode(next, out, DecodeMode::Fec),
            Play::Conceal => self.inner.decode(&[], out, DecodeMode::Normal),
        };
        match done {
            Ok(FRAME) => {}
            // Another frame length (a foreign sender) or an error: conceal.
            _ => {
                if self.inner.decode(&[], out, DecodeMode::Normal).is_err() {
                    out.fill(0);
                }
            }
        }
    }
}

/// What a perfect network would deliver of `input`: encoded and decoded
/// here, frame by frame, the way a session sends and plays it. The yardstick
/// for measuring what the network path adds.
pub fn round_trip(input: &[i16], bitrate: u32) -> Result<Vec<i16>, CodecError> {
    let mut enc = VoiceEncoder::new(bitrate)?;
    let mut dec = VoiceDecoder::new()?;
    let mut out = Vec::with_capacity(input.len() + FRAME);
    let (mut frame, mut decoded) = ([0i16; FRAME], [0i16; FRAME]);
    for chunk in input.chunks(FRAME) {
        frame.fill(0);
        frame[..chunk.len()].copy_from_slice(chunk);
        let play = match enc.encode(&frame)? {
            Some(p) => Play::Packet(bytes::Bytes::copy_from_slice(p)),
            None => Play::Conceal,
        };
        dec.decode(&play, &mut decoded);
        out.extend_from_slice(&decoded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_not_sent_and_speech_is_about_the_bitrate() {
        let mut enc = VoiceEncoder::new(DEFAULT_BITRATE).unwrap();
        let silent = [0i16; FRAME];
        // DTX starts after a short hangover, then sends a frame every 400 ms.
        let hangover = (0..20).filter(|_| enc.encode(&silent).unwrap().is_some()).count();
        let sent = (0..100).filter(|_| enc.encode(&silent).unwrap().is_some()).count();
        assert!(sent <= 10, "DTX sends {sent} of 100 silent frames (and {hangover} of the first 20)");

        let mut bytes = 0;
        for f in 0..50 {
            let mut frame = [0i16; FRAME];
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (f * FRAME + i) as f64 / RATE as f64;
                *s = (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            }
            bytes += enc.encode(&frame).unwrap().map_or(0, |p| p.len());
        }
        let kbps = bytes as f64 * 8.0 / 1000.0;
        assert!((16.0..48.0).contains(&kbps), "{kbps} kb/s");
    }

    #[test]
    fn garbage_packets_are_concealed_not_fatal() {
        let mut dec = VoiceDecoder::new().unwrap();
        let mut out = [1i16; FRAME];
        for junk in [&[0xffu8; 3][..], &[0u8; 1][..], &[0x7f; 400][..]] {
            dec.decode(&Play::Packet(bytes::Bytes::copy_from_slice(junk)), &mut out);
        }
        dec.decode(&Play::Conceal, &mut out);
    }
}
