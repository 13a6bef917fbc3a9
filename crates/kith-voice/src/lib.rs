//! kith-voice: the client side of kith voice.
//!
//! Capture → Opus encoder (20 ms frames, in-band FEC, DTX) → a QUIC datagram
//! with a small header ([`kith_proto::voice`]). Receive → a jitter buffer per
//! speaker → Opus decoder with FEC recovery and loss concealment → mix.
//! The server in between only forwards (kith-server's `voice` module).

pub mod audio;
pub mod call;
pub mod codec;
#[cfg(feature = "device")]
pub mod device;
pub mod jitter;
pub mod vad;

pub use audio::{Match, compare, read_wav, speech_like, write_wav};
pub use call::{
    Activity, Call, CallStats, Capture, Controls, Discard, Ends, Impairment, Mode, Playback, Recorder,
    Recording, Samples, VoiceConfig, VoiceError, WavOut, run,
};
pub use codec::{FRAME, FRAME_MS, Play, RATE, VoiceDecoder, VoiceEncoder, round_trip};
pub use jitter::{JitterBuffer, JitterStats};
