//! Slash commands and tab completion.

use kith_proto::v1::{self, client_message::Request};

use crate::model::Model;
use crate::{App, Overlay, Pending, text};

/// Every command: name, arguments, what it does (for /help and completion).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("join", "<invite>", "join a community with an invite link or code"),
    ("leave", "", "leave this community (also /drop)"),
    ("community", "<name>", "create a community of your own"),
    ("channel", "<name> [topic] [--voice]", "create a channel (--voice: a voice channel)"),
    ("voice", "[join [channel]|leave|vad|ptt|open]", "join or leave voice; how the microphone opens"),
    ("mute", "", "mute or unmute your microphone (Alt+M)"),
    ("deafen", "", "stop or start hearing voice (Alt+D)"),
    ("list", "", "channels and conversations, with member counts"),
    ("nick", "[name]", "your name in this community; empty clears it"),
    ("dm", "<user> [message]", "open the direct conversation with someone"),
    ("me", "<action>", "say what you are doing (/me waves)"),
    ("upload", "<path>… [-- message]", "attach files from this computer (\"quotes\" for spaces)"),
    ("topic", "[text]", "show or change this channel's topic"),
    ("invite", "", "create an invite link to this community"),
    ("reply", "[text]", "reply to the picked message (Ctrl+↑) or the newest from others"),
    ("edit", "[text]", "edit your newest message here"),
    ("delete", "", "delete your newest message here"),
    ("cancel", "", "take back your newest message not sent yet (it goes back to the input)"),
    ("presence", "<online|idle|dnd|invisible>", "how others see you"),
    (
        "admin",
        "reset|suspend|unsuspend|delete <user> …",
        "the server owner's: a password reset code, a suspension, deleting an account",
    ),
    ("help", "", "keys and commands"),
    ("quit", "", "leave kith (also /exit)"),
];

impl App {
    pub(crate) fn command(&mut self, line: &str) {
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let channel = self.active.and_then(|id| self.model.channels.get(&id));
        let community = channel.map(|c| c.community_id).filter(|&c| c != 0);
        match (name.to_lowercase().as_str(), rest) {
            ("help" | "h" | "?", _) => self.overlay = Overlay::Help { scroll: 0 },
            ("quit" | "exit" | "q", _) => self.actions.push_back(crate::Action::Quit),
            ("join", "") => self.complain("usage: /join <invite link or code>"),
            ("join", invite) => match kith_proto::invite::InviteLink::parse(invite) {
                Ok(link) => {
                    let request = Request::JoinCommunity(v1::JoinCommunityRequest { code: link.code });
                    self.request(request, Pending::Community { verb: "joined" });
                }
                Err(e) => self.complain(e.to_string()),
            },
            ("leave" | "drop" | "part", _) => {
                let Some(community_id) = community else {
                    return self.complain("/leave works in a community's channel");
                };
                let name = self.model.community(community_id).map(|c| c.name.clone()).unwrap_or_default();
                let request = Request::LeaveCommunity(v1::LeaveCommunityRequest { community_id });
                self.request(request, Pending::Done(format!("left {name}")));
            }
            ("community", "") => self.complain("usage: /community <name>"),
            ("community", name) => {
                let request = Request::CreateCommunity(v1::CreateCommunityRequest { name: name.to_owned() });
                self.request(request, Pending::Community { verb: "created" });
            }
            ("channel", args) => {
                let Some(community_id) = community else {
                    return self.complain("/channel works in a community's channel");
                };
                let words: Vec<&str> = args.split_whitespace().collect();
                let voice = words.contains(&"--voice");
                let mut words = words.into_iter().filter(|w| *w != "--voice");
                let Some(name) = words.next() else {
                    return self.complain("usage: /channel <name> [topic] [--voice]");
                };
                let kind = if voice { v1::ChannelKind::Voice } else { v1::ChannelKind::Text };
                let request = Request::CreateChannel(v1::CreateChannelRequest {
                    community_id,
                    name: name.trim_start_matches('#').to_owned(),
                    topic: words.collect::<Vec<_>>().join(" "),
                    kind: kind as i32,
                });
                self.request(request, Pending::Channel);
            }
            ("list", _) => self.overlay = Overlay::List,
            ("voice" | "v", args) => self.voice_command(args),
            ("mute", _) => self.toggle_mute(),
            ("deafen" | "deaf", _) => self.toggle_deaf(),
            ("nick", nick) => match community {
                Some(community_id) => {
                    let request = Request::UpdateMember(v1::UpdateMemberRequest {
                        community_id,
                        user_id: self.model.me,
                        nickname: Some(nick.to_owned()),
                        ..Default::default()
                    });
                    let done = if nick.is_empty() {
                        "nickname cleared".into()
                    } else {
                        format!("you are now {nick} here")
                    };
                    self.request(request, Pending::Done(done));
                }
                None => {
                    let request = Request::UpdateProfile(v1::UpdateProfileRequest {
                        display_name: Some(nick.to_owned()),
                        status_text: None,
                    });
                    self.request(request, Pending::Done("display name changed".into()));
                }
            },
            ("dm" | "msg" | "query", args) => {
                let (who, message) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
                let who = who.trim_start_matches('@');
                if who.is_empty() {
                    return self.complain("usage: /dm <user> [message]");
                }
                let Some(id) = self.model.find_username(who) else {
                    return self.complain(format!(
                        "nobody called {} shares a community with you",
                        text::clean_line(who)
                    ));
                };
                let then_send = Some(message.trim().to_owned()).filter(|m| !m.is_empty());
                let request =
                    Request::OpenDirect(v1::OpenDirectRequest { user_ids: vec![id], name: String::new() });
                self.request(request, Pending::OpenDirect { then_send });
            }
            ("cancel", _) => self.cancel_unsent(),
            ("upload" | "attach", args) => self.upload_command(args),
            ("me", "") => self.complain("usage: /me <action>"),
            // Sent as Discord does: the whole body in underscores (italics).
            ("me", action) => self.send(&format!("_{action}_")),
            ("topic", "") => {
                let topic = channel.map(|c| c.topic.clone()).unwrap_or_default();
                if topic.is_empty() { self.say("no topic") } else { self.say(format!("topic: {topic}")) }
            }
            ("topic", topic) => {
                let Some(channel_id) = self.active.filter(|_| community.is_some()) else {
                    return self.complain("/topic works in a community's channel");
                };
                let request = Request::UpdateChannel(v1::UpdateChannelRequest {
                    channel_id,
                    name: None,
                    topic: Some(topic.to_owned()),
                });
                self.request(request, Pending::Done("topic changed".into()));
            }
            ("invite", _) => {
                let Some(community_id) = community else {
                    return self.complain("/invite works in a community's channel");
                };
                let request =
                    Request::CreateInvite(v1::CreateInviteRequest { community_id, ..Default::default() });
                self.request(request, Pending::Invite);
            }
            ("reply", text) => {
                let me = self.model.me;
                let target = self.selected.take().or_else(|| {
                    channel.and_then(|c| c.msgs.iter().rev().find(|m| m.author_id != me)).map(|m| m.id)
                });
                let Some(target) = target else { return self.complain("nothing to reply to") };
                self.reply_to = Some(target);
                if !text.is_empty() {
                    self.send(text);
                }
            }
            ("edit", text) => {
                let me = self.model.me;
                let Some(m) = channel.and_then(|c| c.msgs.iter().rev().find(|m| m.author_id == me)) else {
                    return self.complain("you have no message here to edit");
                };
                let (id, body) = (m.id, m.body.clone());
                if text.is_empty() {
                    self.begin_edit(id, &body);
                } else {
                    self.editing = Some(id);
                    self.editor.set(text);
                    self.submit();
                }
            }
            ("delete", _) => {
                let me = self.model.me;
                match channel.and_then(|c| c.msgs.iter().rev().find(|m| m.author_id == me)).map(|m| m.id) {
                    Some(id) => self.delete(id),
                    None => self.complain("you have no message here to delete"),
                }
            }
            ("presence" | "status" | "away", arg) => {
                let status = match (name, arg) {
                    ("away", _) | (_, "idle" | "away") => v1::PresenceStatus::Idle,
                    (_, "online") => v1::PresenceStatus::Online,
                    (_, "dnd") => v1::PresenceStatus::Dnd,
                    (_, "invisible") => v1::PresenceStatus::Invisible,
                    _ => return self.complain("usage: /presence online|idle|dnd|invisible"),
                };
                let request =
                    Request::SetPresence(v1::SetPresenceRequest { status: Some(status as i32), afk: None });
                self.request(request, Pending::Done(format!("you are {}", status_name(status))));
            }
            ("admin", args) => self.admin_command(args),
            (other, args) => {
                if !self.bot_command(community, other, args) {
                    self.complain(format!("unknown command /{}; /help lists them", text::clean_line(other)))
                }
            }
        }
    }
}

impl App {
    /// The server owner's tools, as `kith admin` has them (the server
    /// refuses anyone else, saying so).
    fn admin_command(&mut self, args: &str) {
        const USAGE: &str = "usage: /admin reset <user> | suspend <user> [reason] | unsuspend <user> | \
                             delete <user> [--remove-messages] --yes";
        let mut words = args.split_whitespace();
        let (Some(verb), Some(user)) = (words.next(), words.next()) else { return self.complain(USAGE) };
        let username = user.trim_start_matches('@').to_owned();
        let shown = text::clean_line(&username);
        let rest: Vec<&str> = words.collect();
        match verb.to_lowercase().as_str() {
            "reset" => {
                let request = Request::ResetPassword(v1::ResetPasswordRequest { username });
                self.request(request, Pending::ResetCode);
            }
            "suspend" | "unsuspend" => {
                let suspended = verb.eq_ignore_ascii_case("suspend");
                let reason = rest.join(" ");
                let request = Request::SuspendUser(v1::SuspendUserRequest { username, suspended, reason });
                let done = match suspended {
                    true => format!("suspended {shown}: their logins ended, and they cannot sign in"),
                    false => format!("{shown} may sign in again"),
                };
                self.request(request, Pending::Done(done));
            }
            "delete" => {
                let remove_messages = rest.contains(&"--remove-messages");
                if !rest.contains(&"--yes") {
                    let flags = if remove_messages { " --remove-messages" } else { "" };
                    return self.complain(format!(
                        "this deletes {shown}'s account for good: type /admin delete {shown}{flags} --yes"
                    ));
                }
                let request = Request::DeleteAccount(v1::DeleteAccountRequest { username, remove_messages });
                let what = if remove_messages { "account and messages" } else { "account" };
                self.request(request, Pending::Done(format!("deleted {shown}'s {what}")));
            }
            _ => self.complain(USAGE),
        }
    }

    /// A bot's command typed in a community's channel: invoked if one of
    /// its bots offers it (false: no bot does).
    fn bot_command(&mut self, community: Option<u64>, name: &str, args: &str) -> bool {
        let name = name.to_lowercase();
        let (Some(channel), Some(c)) = (self.active, community.and_then(|c| self.model.community(c))) else {
            return false;
        };
        // Several bots offering one name: the first (the oldest bot)
        // answers here; `kith run --bot` names another.
        let Some(spec) = c.commands.iter().find(|x| x.name == name).cloned() else { return false };
        match kith_proto::commands::values(&spec, &kith_proto::commands::split(args)) {
            Ok(options) => {
                let request = Request::InvokeCommand(v1::InvokeCommandRequest {
                    channel_id: channel,
                    bot_id: spec.bot_id,
                    name: spec.name.clone(),
                    options,
                });
                self.request(request, Pending::Call { name: spec.name });
            }
            Err(e) => self.complain(text::clean_line(&e)),
        }
        true
    }

    /// How a call this user made goes: progress and the answer in the
    /// notice line (an answer in public is the bot's message, in the
    /// channel already).
    pub(crate) fn call_update(&mut self, u: &v1::CallUpdate) {
        let Some(name) = self.calls.get(&u.call_id).cloned() else { return };
        if u.r#final {
            self.calls.remove(&u.call_id);
        }
        if !u.error.is_empty() {
            self.complain(format!("/{name}: {}", text::clean_line(&u.error)));
        } else if u.message_id != 0 {
            self.say(format!("/{name}: answered in the channel"));
        } else {
            self.say(format!("/{name}: {}", text::clean(&u.text)));
        }
    }
}

pub fn status_name(s: v1::PresenceStatus) -> &'static str {
    match s {
        v1::PresenceStatus::Online => "online",
        v1::PresenceStatus::Idle => "idle",
        v1::PresenceStatus::Dnd => "do not disturb",
        v1::PresenceStatus::Invisible => "invisible",
        v1::PresenceStatus::Offline => "offline",
    }
}

/// What Tab may turn the word before the cursor into.
pub fn completions(model: &Model, active: Option<u64>, word: &str, at_start: bool) -> Vec<String> {
    let lower = word.to_lowercase();
    let channel = active.and_then(|id| model.channels.get(&id));
    let mut out: Vec<String> = if let Some(prefix) = lower.strip_prefix('/').filter(|_| at_start) {
        // The app's own, then those the community's bots offer.
        let bots = channel.and_then(|c| model.community(c.community_id)).map(|c| c.commands.as_slice());
        COMMANDS
            .iter()
            .map(|(n, _, _)| *n)
            .chain(bots.unwrap_or_default().iter().map(|c| c.name.as_str()))
            .filter(|n| n.starts_with(prefix))
            .map(|n| format!("/{n} "))
            .collect()
    } else if let Some(prefix) = lower.strip_prefix('@') {
        let people = channel.map(|c| model.people(c)).unwrap_or_default();
        let mut names: Vec<String> = people
            .iter()
            .filter(|&&u| u != model.me)
            .filter_map(|&u| model.username(u))
            .filter(|n| n.to_lowercase().starts_with(prefix))
            .map(|n| format!("@{n} "))
            .collect();
        if "everyone".starts_with(prefix) && channel.is_some_and(|c| !c.is_direct()) {
            names.push("@everyone ".into());
        }
        names
    } else if let Some(prefix) = lower.strip_prefix('#') {
        let community = channel.map_or(0, |c| c.community_id);
        let ids = model.community(community).map(|c| c.channels.as_slice()).unwrap_or_default();
        ids.iter()
            .filter_map(|id| model.channels.get(id))
            .filter(|ch| ch.name.starts_with(prefix))
            .map(|ch| format!("#{} ", ch.name))
            .collect()
    } else {
        Vec::new()
    };
    out.sort();
    out.dedup();
    out
}
