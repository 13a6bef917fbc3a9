//! Voice in the chat: joining and leaving voice channels, mute, deafen,
//! how the microphone opens, and who is speaking.
//!
//! The app decides; the host makes the sound. Joining is a protocol
//! request like any other; once the server has put the user in the channel
//! the app asks the host to start the call's sound ([`VoiceAction::Start`]),
//! and the host reports back who is heard ([`VoiceInput::Activity`]). A
//! host without sound says so in [`Config::voice`](crate::Config), and the
//! commands explain instead of joining.

use std::collections::BTreeSet;

use kith_proto::v1::{self, client_message::Request};

use crate::{App, Connection, Pending, text};

/// Whether the host can carry sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceSupport {
    Available,
    /// Why not, said to a user who tries to join.
    Unavailable(String),
}

/// When the microphone is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TalkMode {
    /// While the user's voice is detected.
    #[default]
    VoiceActivity,
    /// While the push-to-talk key (Alt+T) is held.
    PushToTalk,
    /// Always.
    Open,
}

/// What the call's sound should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoiceControls {
    pub mute: bool,
    pub deaf: bool,
    pub mode: TalkMode,
    /// Push-to-talk: the key counts as held until then (Unix ms).
    pub held_until_ms: Option<u64>,
}

/// For the host: the call's sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceAction {
    /// The server put the user in a voice channel: start sending and playing.
    Start(VoiceControls),
    /// The controls changed.
    Set(VoiceControls),
    Stop,
}

/// From the host: how the call's sound is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceInput {
    /// Who is heard now, and whether the user's own voice is going out.
    Activity { speaking: Vec<u64>, talking: bool },
    /// The sound stopped by itself (the device failed).
    Ended(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    #[default]
    Idle,
    /// Asked the server; the sound starts with its answer.
    Joining,
    /// In the channel, sound running.
    In,
    /// The connection dropped (and voice with it): rejoin once it is back.
    Rejoin,
}

#[derive(Debug, Default)]
pub(crate) struct VoiceUi {
    /// The channel the user is in, joining, or will rejoin.
    pub channel: Option<u64>,
    pub phase: Phase,
    pub controls: VoiceControls,
    /// Whose voice is heard right now, the user's own included.
    pub speaking: BTreeSet<u64>,
}

/// First press of push-to-talk: long enough to cover a keyboard's delay
/// before it starts repeating (500-660 ms on common defaults).
const PTT_FIRST_MS: u64 = 700;
/// Each repeat while held: several repeat periods, so a late one does not
/// cut the speaker off. Terminals report no key releases, so letting go
/// closes the microphone this long after the last repeat.
const PTT_REPEAT_MS: u64 = 200;

impl App {
    /// `/voice …`
    pub(crate) fn voice_command(&mut self, args: &str) {
        let (verb, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let rest = rest.trim();
        match verb {
            "" if self.voice.channel.is_some() => self.say(self.voice_status()),
            "" | "join" => match self.voice_target(rest) {
                Ok(channel) => self.voice_join(channel),
                Err(why) => self.complain(why),
            },
            "leave" | "part" => self.voice_leave(),
            "vad" | "auto" => self.talk_mode(TalkMode::VoiceActivity),
            "ptt" => self.talk_mode(TalkMode::PushToTalk),
            "open" => self.talk_mode(TalkMode::Open),
            _ => self.complain("usage: /voice [join [channel]] | leave | vad | ptt | open"),
        }
    }

    /// Which voice channel `/voice join [name]` means: the named one in this
    /// community, else the one in view, else the community's only one.
    fn voice_target(&self, name: &str) -> Result<u64, String> {
        let active = self.active.and_then(|id| self.model.channels.get(&id));
        let community = active.map_or(0, |c| c.community_id);
        let voice_channels: Vec<&crate::model::Chan> = self
            .model
            .community(community)
            .map(|c| c.channels.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.model.channels.get(id))
            .filter(|c| c.kind == v1::ChannelKind::Voice)
            .collect();
        let name = name.trim_start_matches('#');
        if !name.is_empty() {
            return voice_channels
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| c.id)
                .ok_or_else(|| format!("no voice channel called {} here", text::clean_line(name)));
        }
        if let Some(ch) = active.filter(|c| c.kind == v1::ChannelKind::Voice) {
            return Ok(ch.id);
        }
        match voice_channels[..] {
            [only] => Ok(only.id),
            [] => Err("this community has no voice channel (create one: /channel <name> --voice)".into()),
            _ => Err("which one? /voice join <channel>".into()),
        }
    }

    pub(crate) fn voice_join(&mut self, channel: u64) {
        if let crate::VoiceSupport::Unavailable(why) = &self.config.voice {
            return self.complain(why.clone());
        }
        if self.voice.channel == Some(channel) && self.voice.phase != Phase::Idle {
            return self.say(self.voice_status());
        }
        let c = self.voice.controls;
        let request = Request::JoinVoice(v1::JoinVoiceRequest {
            channel_id: channel,
            self_mute: c.mute,
            self_deaf: c.deaf,
        });
        self.voice.channel = Some(channel);
        if self.voice.phase != Phase::In {
            self.voice.phase = Phase::Joining;
        }
        self.request(request, Pending::VoiceJoin { channel });
    }

    pub(crate) fn voice_joined(&mut self, channel: u64, state: v1::VoiceState) {
        // Left or went elsewhere before the answer came; or the connection
        // dropped meanwhile, taking this voice with it (rejoined once back).
        if self.voice.channel != Some(channel) || self.voice.phase == Phase::Rejoin {
            return;
        }
        self.model.voice.insert(state.user_id, state);
        self.model.people_gen += 1;
        if self.voice.phase != Phase::In {
            self.voice.phase = Phase::In;
            self.actions.push_back(crate::Action::Voice(VoiceAction::Start(self.voice.controls)));
        }
        self.say(format!("{} · Alt+M mute · Alt+D deafen · /voice leave", self.voice_status()));
    }

    pub(crate) fn voice_join_failed(&mut self, channel: u64, reason: &str) {
        if self.voice.channel == Some(channel) {
            match self.voice.phase {
                Phase::Joining => {
                    self.voice.channel = None;
                    self.voice.phase = Phase::Idle;
                }
                // A refused move: still where the server has the user.
                Phase::In => self.voice.channel = self.model.voice.get(&self.model.me).map(|v| v.channel_id),
                Phase::Idle | Phase::Rejoin => {}
            }
        }
        self.complain(format!("cannot join voice: {}", text::clean_line(reason)));
    }

    fn voice_leave(&mut self) {
        if self.voice.channel.is_none() {
            return self.complain("you are not in a voice channel");
        }
        let was_in = matches!(self.voice.phase, Phase::In | Phase::Joining);
        self.voice_stop();
        if was_in {
            self.request(Request::LeaveVoice(v1::LeaveVoiceRequest {}), Pending::Done("left voice".into()));
        } else {
            self.say("left voice");
        }
    }

    /// Ends the sound and forgets the channel (the server is told apart).
    fn voice_stop(&mut self) {
        if self.voice.phase == Phase::In {
            self.actions.push_back(crate::Action::Voice(VoiceAction::Stop));
        }
        self.voice.channel = None;
        self.voice.phase = Phase::Idle;
        self.voice.speaking.clear();
        // This session changed its own state: the server tells its other
        // sessions and everyone else, not this one.
        if self.model.voice.remove(&self.model.me).is_some() {
            self.model.people_gen += 1;
        }
    }

    pub(crate) fn toggle_mute(&mut self) {
        let mut c = self.voice.controls;
        if c.deaf {
            // Unmuting while deafened undeafens too, as elsewhere.
            c.deaf = false;
            c.mute = false;
        } else {
            c.mute = !c.mute;
        }
        self.set_controls(c);
    }

    pub(crate) fn toggle_deaf(&mut self) {
        let mut c = self.voice.controls;
        c.deaf = !c.deaf;
        self.set_controls(c);
    }

    fn talk_mode(&mut self, mode: TalkMode) {
        let c = VoiceControls { mode, held_until_ms: None, ..self.voice.controls };
        self.set_controls(c);
    }

    /// Alt+T in push-to-talk mode: talk while held.
    pub(crate) fn push_to_talk(&mut self) {
        if self.voice.controls.mode != TalkMode::PushToTalk {
            return self.complain("push-to-talk is off; /voice ptt turns it on");
        }
        let held = self.voice.controls.held_until_ms.is_some_and(|t| t > self.now_ms);
        let until = self.now_ms + if held { PTT_REPEAT_MS } else { PTT_FIRST_MS };
        self.voice.controls.held_until_ms = Some(until);
        if self.voice.phase == Phase::In {
            self.actions.push_back(crate::Action::Voice(VoiceAction::Set(self.voice.controls)));
        }
    }

    fn set_controls(&mut self, c: VoiceControls) {
        let before = self.voice.controls;
        self.voice.controls = c;
        if self.voice.phase == Phase::In {
            self.actions.push_back(crate::Action::Voice(VoiceAction::Set(c)));
            if (before.mute, before.deaf) != (c.mute, c.deaf) {
                let request = Request::UpdateVoiceState(v1::UpdateVoiceStateRequest {
                    self_mute: Some(c.mute),
                    self_deaf: Some(c.deaf),
                });
                self.request(request, Pending::VoiceState);
            }
        }
        let when = if self.voice.channel.is_none() { " (when you join voice)" } else { "" };
        self.say(format!("{}{when}", controls_text(&c)));
    }

    /// The answer to a mute or deafen: the user's state as others see it.
    pub(crate) fn voice_state_answered(&mut self, state: v1::VoiceState) {
        if self.voice.phase == Phase::In {
            self.model.voice.insert(state.user_id, state);
            self.model.people_gen += 1;
        }
    }

    /// The user's own voice state changed on the server (a moderator moved
    /// or disconnected them, they lost permission to be there).
    pub(crate) fn my_voice_changed(&mut self) {
        if self.voice.phase != Phase::In {
            return;
        }
        match self.model.voice.get(&self.model.me).map(|v| v.channel_id) {
            None => {
                self.voice_stop();
                self.complain("you were disconnected from voice");
            }
            Some(c) if Some(c) != self.voice.channel => {
                self.voice.channel = Some(c);
                let name = self.model.channels.get(&c).map_or_else(String::new, |ch| ch.name.clone());
                self.say(format!("you were moved to ♪ {name}"));
            }
            Some(_) => {}
        }
    }

    pub(crate) fn voice_input(&mut self, input: VoiceInput) {
        match input {
            VoiceInput::Activity { speaking, talking } => {
                if self.voice.phase != Phase::In {
                    return;
                }
                self.voice.speaking = speaking.into_iter().collect();
                if talking {
                    self.voice.speaking.insert(self.model.me);
                }
            }
            VoiceInput::Ended(reason) => {
                if self.voice.phase == Phase::In {
                    // The sound is gone already (so no Stop for the host):
                    // leave the channel rather than stay in it as a ghost.
                    self.voice.phase = Phase::Idle;
                    self.voice_stop();
                    self.request(Request::LeaveVoice(v1::LeaveVoiceRequest {}), Pending::Quiet);
                    self.complain(format!("voice stopped: {}", text::clean_line(&reason)));
                }
            }
        }
    }

    /// The connection changed: voice goes with a lost connection, and comes
    /// back with it.
    pub(crate) fn voice_connection(&mut self, c: &Connection) {
        match c {
            Connection::Reconnecting { .. } if matches!(self.voice.phase, Phase::In | Phase::Joining) => {
                if self.voice.phase == Phase::In {
                    self.actions.push_back(crate::Action::Voice(VoiceAction::Stop));
                }
                self.voice.phase = Phase::Rejoin;
                self.voice.speaking.clear();
            }
            Connection::Connected if self.voice.phase == Phase::Rejoin => {
                if let Some(channel) = self.voice.channel.take() {
                    self.voice.phase = Phase::Idle;
                    self.voice_join(channel);
                }
            }
            Connection::Ended(_) => self.voice_stop(),
            _ => {}
        }
    }

    /// "in ♪ lounge · muted · push-to-talk (Alt+T)"
    pub(crate) fn voice_status(&self) -> String {
        let Some(channel) = self.voice.channel else { return "not in voice".into() };
        let name = self.model.channels.get(&channel).map_or_else(String::new, |c| c.name.clone());
        let verb = match self.voice.phase {
            Phase::In => "in",
            Phase::Joining => "joining",
            Phase::Rejoin => "rejoining",
            Phase::Idle => "left",
        };
        format!("{verb} ♪ {name} · {}", controls_text(&self.voice.controls))
    }

    pub(crate) fn in_voice(&self, channel: u64) -> bool {
        self.voice.channel == Some(channel) && self.voice.phase == Phase::In
    }
}

fn controls_text(c: &VoiceControls) -> String {
    let mode = match c.mode {
        TalkMode::VoiceActivity => "voice activity",
        TalkMode::PushToTalk => "push-to-talk (hold Alt+T)",
        TalkMode::Open => "open microphone",
    };
    match (c.mute, c.deaf) {
        (_, true) => format!("deafened · {mode}"),
        (true, false) => format!("muted · {mode}"),
        (false, false) => mode.to_owned(),
    }
}
