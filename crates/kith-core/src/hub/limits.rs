//! Every request kind's rate class, and the per-account token buckets that
//! enforce them: one table, matched exhaustively, so a new request kind
//! cannot be added without deciding how often an account may make it.

use super::{HubConfig, Refusal};
use crate::ids::{Timestamp, UserId};
use crate::rate::{Buckets, RateLimit};
use crate::request::Request;

/// How often an account may make a kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// Sending, editing and deleting messages.
    Messages,
    /// Typing notices.
    Typing,
    /// Reading: history pages, the audit log, bans; read marks.
    Reads,
    /// Changing a community: channels, roles, overrides, members, invites,
    /// joining and leaving, moderation. Each fans out to a community.
    Changes,
    /// Profile and presence: each fans out to everyone who can see the user.
    Profile,
    /// Opening and changing conversations: each may add other people to one.
    Groups,
    /// Joining, leaving and muting in voice.
    Voice,
    /// A bot's answers to calls: many calls at once, each streaming.
    Answers,
}

impl RateClass {
    /// The class of `request`, or `None` for requests answered before an
    /// account is known (signing in; `ServerInfo` has its own per-connection
    /// bucket) and logging out.
    pub fn of(request: &Request) -> Option<RateClass> {
        use RateClass::*;
        Some(match request {
            Request::Register(_)
            | Request::Login { .. }
            | Request::Authenticate { .. }
            | Request::Guest { .. }
            | Request::Resume { .. }
            | Request::RedeemResetCode { .. }
            | Request::ServerInfo
            | Request::Logout { .. } => return None,
            // An upload is the first half of sending a message.
            Request::SendMessage { .. }
            | Request::EditMessage { .. }
            | Request::DeleteMessage { .. }
            | Request::CreateUpload { .. } => Messages,
            Request::Typing { .. } => Typing,
            Request::History(_)
            | Request::AuditLog(_)
            | Request::ListBans { .. }
            | Request::ListMembers { .. }
            | Request::Ack { .. }
            | Request::OpenAttachments { .. }
            | Request::ListInvites { .. } => Reads,
            Request::CreateCommunity { .. }
            | Request::CreateInvite { .. }
            | Request::JoinCommunity { .. }
            | Request::LeaveCommunity { .. }
            | Request::CreateChannel { .. }
            | Request::UpdateChannel { .. }
            | Request::DeleteChannel { .. }
            | Request::SetOverride { .. }
            | Request::CreateRole { .. }
            | Request::UpdateRole { .. }
            | Request::DeleteRole { .. }
            | Request::UpdateMember { .. }
            | Request::Kick { .. }
            | Request::Ban { .. }
            | Request::Unban { .. }
            | Request::Timeout { .. }
            | Request::ModerateVoice { .. }
            | Request::CreateBot { .. }
            | Request::RotateBotToken { .. }
            | Request::RegisterCommands { .. }
            | Request::IssueResetCode { .. }
            | Request::RevokeInvite { .. }
            | Request::SuspendUser { .. }
            | Request::DeleteAccount { .. } => Changes,
            // Invoking a command is a member speaking in a channel; so is
            // offering someone a pipe.
            Request::InvokeCommand { .. } | Request::OpenPipe { .. } | Request::AcceptPipe { .. } => Messages,
            Request::AnswerCall { .. } => Answers,
            Request::UpdateProfile { .. } | Request::SetPresence { .. } => Profile,
            Request::OpenDirect { .. } | Request::UpdateGroup { .. } | Request::LeaveGroups { .. } => Groups,
            Request::JoinVoice { .. } | Request::LeaveVoice | Request::UpdateVoiceState { .. } => Voice,
        })
    }

    /// What a refusal says there were too many of.
    fn what(self) -> &'static str {
        match self {
            RateClass::Messages => "messages",
            RateClass::Typing => "typing notices",
            RateClass::Reads => "reads",
            RateClass::Changes => "changes",
            RateClass::Profile => "profile and presence changes",
            RateClass::Groups => "conversation changes",
            RateClass::Voice => "voice changes",
            RateClass::Answers => "answers to calls",
        }
    }
}

/// One set of buckets per class, keyed by account.
#[derive(Debug)]
pub(super) struct Limits {
    messages: Buckets<UserId>,
    guest_messages: Buckets<UserId>,
    typing: Buckets<UserId>,
    reads: Buckets<UserId>,
    changes: Buckets<UserId>,
    profile: Buckets<UserId>,
    groups: Buckets<UserId>,
    voice: Buckets<UserId>,
    answers: Buckets<UserId>,
}

impl Limits {
    pub(super) fn new(config: &HubConfig) -> Limits {
        Limits {
            messages: Buckets::new(config.message_rate),
            guest_messages: Buckets::new(config.guest_message_rate),
            typing: Buckets::new(config.typing_rate),
            reads: Buckets::new(config.read_rate),
            changes: Buckets::new(config.change_rate),
            profile: Buckets::new(config.profile_rate),
            groups: Buckets::new(config.group_rate),
            voice: Buckets::new(config.voice_rate),
            answers: Buckets::new(config.answer_rate),
        }
    }

    /// Takes a token for `request` from `user`'s bucket of its class (and,
    /// for a guest's messages, the guest bucket too).
    pub(super) fn check(
        &mut self,
        now: Timestamp,
        user: UserId,
        guest: bool,
        request: &Request,
    ) -> Result<(), Refusal> {
        let Some(class) = RateClass::of(request) else { return Ok(()) };
        let bucket = match class {
            RateClass::Messages => &mut self.messages,
            RateClass::Typing => &mut self.typing,
            RateClass::Reads => &mut self.reads,
            RateClass::Changes => &mut self.changes,
            RateClass::Profile => &mut self.profile,
            RateClass::Groups => &mut self.groups,
            RateClass::Voice => &mut self.voice,
            RateClass::Answers => &mut self.answers,
        };
        bucket.check(now, &user).map_err(|ms| Refusal::RateLimited(class.what(), ms))?;
        if guest && class == RateClass::Messages {
            self.guest_messages.check(now, &user).map_err(|ms| Refusal::RateLimited(class.what(), ms))?;
        }
        Ok(())
    }
}

/// The defaults, with room for what people do and none for floods.
pub const READ_RATE: RateLimit = RateLimit::new(60, 100);
pub const CHANGE_RATE: RateLimit = RateLimit::new(30, 500);
pub const PROFILE_RATE: RateLimit = RateLimit::new(10, 3_000);
pub const GROUP_RATE: RateLimit = RateLimit::new(10, 6_000);
pub const VOICE_RATE: RateLimit = RateLimit::new(20, 250);
/// A bot answering a crowd: 200 answers at once, then 200 a second.
pub const ANSWER_RATE: RateLimit = RateLimit::new(200, 5);
