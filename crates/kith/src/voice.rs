//! `kith voice`: headless voice for bots, servers and tests. `join` plays a
//! WAV file into a voice channel and records what the others say.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_voice::{Call, Controls, Impairment, Mode, VoiceConfig};

use crate::commands::{Ctx, find_channel, session};
use crate::output::sanitize;

#[derive(Debug, Subcommand)]
pub enum VoiceCommand {
    /// Join a voice channel, play --input into it and record the others to
    /// --output: `kith voice join Family/lounge --input in.wav --output out.wav`.
    Join {
        /// `Community/channel` (a voice channel).
        channel: String,
        /// A WAV file to say (any rate and channel count; sent as 48 kHz mono Opus).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where to write what the others said (48 kHz mono WAV).
        #[arg(long)]
        output: Option<PathBuf>,
        /// How long to stay [default: the input's length plus 2 s, or until Ctrl-C].
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Opus bitrate in bits per second (6000-128000).
        #[arg(long, default_value_t = kith_voice::codec::DEFAULT_BITRATE)]
        bitrate: u32,
        /// Join muted (listen only).
        #[arg(long)]
        mute: bool,
        /// Simulate this fraction of incoming packets lost (0-1), for testing.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Simulate up to this much random delay on incoming packets, for testing.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        jitter: Duration,
    },
    /// Who is in the voice channels of your communities.
    List,
}

pub async fn voice(ctx: Ctx, command: VoiceCommand) -> Result<()> {
    match command {
        VoiceCommand::List => list(ctx).await,
        VoiceCommand::Join { channel, input, output, duration, bitrate, mute, loss, jitter } => {
            if !(0.0..=1.0).contains(&loss) {
                bail!("--loss is a fraction between 0 and 1");
            }
            let samples = match &input {
                Some(path) => kith_voice::read_wav(path)?,
                None => Vec::new(),
            };
            let played = Duration::from_millis(samples.len() as u64 * 1000 / u64::from(kith_voice::RATE));
            let duration = match duration {
                Some(d) => d,
                None if input.is_some() => played + Duration::from_secs(2),
                // Until interrupted.
                None => Duration::from_secs(365 * 24 * 3600),
            };
            let (client, ready, _) = session(&ctx).await?;
            let (c, ch) = find_channel(&ready, &channel)?;
            if ch.kind() != v1::ChannelKind::Voice {
                bail!("{}/{} is not a voice channel", sanitize(&c.name), sanitize(&ch.name));
            }
            let join = v1::JoinVoiceRequest { channel_id: ch.id, self_mute: mute, self_deaf: false };
            let R::VoiceState(_) = client.request(Request::JoinVoice(join)).await? else {
                bail!("unexpected answer")
            };
            eprintln!("in voice: {}/{} (Ctrl-C leaves)", sanitize(&c.name), sanitize(&ch.name));
            let config = VoiceConfig {
                bitrate,
                impairment: Impairment { loss, jitter_ms: jitter.as_millis() as u64, seed: rand::random() },
            };
            let playback: Box<dyn kith_voice::Playback> = match &output {
                Some(path) => Box::new(kith_voice::WavOut::create(path)?),
                None => Box::new(kith_voice::Discard),
            };
            let client = std::sync::Arc::new(client);
            // The file is said as it is, start to end: an open microphone.
            let controls = Controls { mute, mode: Mode::Open, ..Controls::default() };
            let capture = Box::new(kith_voice::Samples::new(samples));
            let call = Call::start(client.clone(), capture, playback, config, controls);
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                _ = tokio::signal::ctrl_c() => eprintln!("leaving"),
            }
            // Stopping finishes the output file, also after Ctrl-C.
            let stats = call.stop().await.context("voice")?;
            let _ = client.request(Request::LeaveVoice(v1::LeaveVoiceRequest {})).await;
            client.close().await;
            let heard: Vec<String> = stats
                .speakers
                .iter()
                .map(|(user, s)| {
                    let name = username(c, *user);
                    format!(
                        "{name}: {} packets, {} missing, {} late, {} rebuilt by FEC, {} concealed",
                        s.received, s.missing, s.late, s.recovered, s.concealed
                    )
                })
                .collect();
            eprintln!("sent {} packets; heard {}", stats.sent, heard.len());
            for line in heard {
                eprintln!("  {line}");
            }
            Ok(())
        }
    }
}

async fn list(ctx: Ctx) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    for c in &ready.communities {
        for ch in c.channels.iter().filter(|ch| ch.kind() == v1::ChannelKind::Voice) {
            let people: Vec<String> = c
                .voice_states
                .iter()
                .filter(|v| v.channel_id == ch.id)
                .map(|v| {
                    let name = username(c, v.user_id);
                    let mut flags = Vec::new();
                    if v.self_mute || v.server_mute {
                        flags.push("muted");
                    }
                    if v.self_deaf {
                        flags.push("deafened");
                    }
                    if flags.is_empty() { name } else { format!("{name} ({})", flags.join(", ")) }
                })
                .collect();
            println!("{}/{}: {}", sanitize(&c.name), sanitize(&ch.name), people.join(", "));
        }
    }
    client.close().await;
    Ok(())
}

/// A member's username, cleaned for the terminal (the id if unknown).
fn username(c: &v1::Community, id: u64) -> String {
    c.members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .find(|u| u.id == id)
        .map_or_else(|| id.to_string(), |u| sanitize(&u.username))
}
