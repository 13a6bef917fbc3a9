//! Bots and slash commands. A member with `MANAGE_BOTS` makes a bot (an
//! account that signs in with a token only) in a community; the bot
//! declares its commands; a member invokes one in a channel, and the hub
//! makes a *call* to the bot: an event on the bot's sessions, which the
//! bot answers with `AnswerCall` — progress, then a final answer shown to
//! the invoker alone or posted as the bot's message, or an error. The hub
//! keeps every call's deadline (time comes in with inputs; nothing here
//! reads a clock) and bounds how many one bot has in flight.

use crate::ids::IdMap;
use std::collections::{BTreeMap, BTreeSet};

use kith_proto::v1::{self, event::Body as EventBody, reply::Result as ReplyResult};
use prost::Message as _;

use super::{Cx, Hub, Outcome, Refusal};
use crate::commands::check_invocation;
use crate::ids::{ChannelId, CommunityId, Timestamp, TokenId, UserId};
use crate::permissions::Permissions;
use crate::request::{Chosen, TokenHash};
use crate::store::{StoredToken, StoredUser, Write};
use crate::text::{Body, CommandName, Username};

/// How long a bot has to answer a call, and then between answers.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// Calls one bot may have unanswered at once; more wait (rate-limited).
pub const MAX_CALLS_PER_BOT: usize = 100;
/// Bots one community may have: every member's snapshot lists their
/// commands, so what a member with MANAGE_BOTS can add is capped.
pub const MAX_BOTS_PER_COMMUNITY: usize = 50;

#[derive(Debug)]
struct Call {
    bot: UserId,
    invoker: UserId,
    channel: ChannelId,
    name: String,
    deadline: Timestamp,
}

/// Every bot's commands and every call in flight.
#[derive(Debug, Default)]
pub(super) struct Bots {
    /// Each bot's declared commands (`bot_id` set), as stored.
    commands: IdMap<UserId, Vec<v1::Command>>,
    calls: BTreeMap<u64, Call>,
    /// (deadline, call), for the next one due.
    due: BTreeSet<(Timestamp, u64)>,
    in_flight: IdMap<UserId, usize>,
}

impl Bots {
    /// Loads a bot's stored commands (an encoded `RegisterCommandsRequest`).
    pub(super) fn load(&mut self, bot: UserId, encoded: &[u8]) {
        if let Ok(r) = v1::RegisterCommandsRequest::decode(encoded) {
            self.set(bot, r.commands);
        }
    }

    fn set(&mut self, bot: UserId, mut commands: Vec<v1::Command>) {
        for c in &mut commands {
            c.bot_id = bot.0;
        }
        if commands.is_empty() {
            self.commands.remove(&bot);
        } else {
            self.commands.insert(bot, commands);
        }
    }

    /// When the next call runs out of time.
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.due.first().map(|(t, _)| *t)
    }

    fn start(&mut self, id: u64, call: Call) {
        *self.in_flight.entry(call.bot).or_default() += 1;
        self.due.insert((call.deadline, id));
        self.calls.insert(id, call);
    }

    fn end(&mut self, id: u64) -> Option<Call> {
        let call = self.calls.remove(&id)?;
        self.due.remove(&(call.deadline, id));
        if let Some(n) = self.in_flight.get_mut(&call.bot) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&call.bot);
            }
        }
        Some(call)
    }

    fn extend(&mut self, id: u64, deadline: Timestamp) {
        if let Some(call) = self.calls.get_mut(&id) {
            self.due.remove(&(call.deadline, id));
            call.deadline = deadline;
            self.due.insert((deadline, id));
        }
    }
}

impl Hub {
    /// A user's name as others see it in a message from the server: `@weather`.
    fn at(&self, user: UserId) -> String {
        self.directory.get(user).map_or_else(|| "the bot".to_owned(), |u| format!("@{}", u.stored.username))
    }

    pub(super) fn is_bot(&self, user: UserId) -> bool {
        self.directory.is_bot(user)
    }

    pub(super) fn create_bot(
        &mut self,
        cx: Cx,
        community: CommunityId,
        name: Username,
        token: String,
        token_hash: TokenHash,
    ) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::MANAGE_BOTS, "make bots in this community")?;
        let bots = self.communities[&community].members.keys().filter(|u| self.is_bot(**u)).count();
        if bots >= MAX_BOTS_PER_COMMUNITY {
            return Err(Refusal::Invalid("this community has the most bots it may have (50)"));
        }
        if !self.directory.name_free(&name) {
            return Err(Refusal::Taken("username"));
        }
        if name.is_mixed_script() {
            return Err(Refusal::Invalid("username mixes scripts (e.g. Latin with Cyrillic look-alikes)"));
        }
        let bot = StoredUser {
            id: UserId(self.ids.next(cx.now)),
            username: name.name.clone(),
            fold: name.fold.clone(),
            skeleton: name.skeleton.clone(),
            display_name: name.name.clone(),
            status_text: String::new(),
            server_owner: false,
            presence: Chosen::Online,
            bot: true,
            deleted: false,
        };
        let stored = StoredToken { id: TokenId(self.ids.next(cx.now)), user: bot.id, hash: token_hash };
        // No password: the store keeps an empty hash, which no password matches.
        self.persist(vec![
            Write::CreateUser { user: bot.clone(), password_hash: String::new(), created_at: cx.now },
            Write::CreateToken { token: stored.clone(), created_at: cx.now },
        ]);
        let id = bot.id;
        self.directory.add(bot);
        self.directory.add_token(stored.hash, stored.id, id);
        self.add_member(cx.now, community, id, None);
        let answer = v1::BotToken { bot: Some(self.user_wire(id)), token };
        self.reply(cx.session, cx.rid, ReplyResult::BotToken(answer));
        Ok(())
    }

    /// A new token for a bot; every old one is revoked and the bot's
    /// connections closed.
    pub(super) fn rotate_bot_token(
        &mut self,
        cx: Cx,
        community: CommunityId,
        bot: UserId,
        token: String,
        token_hash: TokenHash,
    ) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::MANAGE_BOTS, "manage this community's bots")?;
        let member = self.communities.get(&community).is_some_and(|c| c.members.contains_key(&bot));
        if !member || !self.is_bot(bot) {
            return Err(Refusal::NotFound("bot"));
        }
        let old = self.directory.revoke_all(bot);
        let stored = StoredToken { id: TokenId(self.ids.next(cx.now)), user: bot, hash: token_hash };
        let mut writes: Vec<Write> = old.iter().map(|&id| Write::RevokeToken { id }).collect();
        writes.push(Write::CreateToken { token: stored.clone(), created_at: cx.now });
        self.persist(writes);
        self.directory.add_token(stored.hash, stored.id, bot);
        let sessions: Vec<_> = self.sessions.of_user(bot).collect();
        for s in sessions {
            self.drop_session(s);
            let reason = "this bot's token was replaced".to_owned();
            self.emit(super::Output::Close { session: s, code: v1::CloseCode::TokenRevoked, reason });
        }
        self.refresh_presence(bot);
        let answer = v1::BotToken { bot: Some(self.user_wire(bot)), token };
        self.reply(cx.session, cx.rid, ReplyResult::BotToken(answer));
        Ok(())
    }

    /// The commands offered in `community`: those of its bot members.
    pub(super) fn community_commands(&self, community: CommunityId) -> Vec<v1::Command> {
        let Some(c) = self.communities.get(&community) else { return Vec::new() };
        let mut bots: Vec<&UserId> =
            self.bots.commands.keys().filter(|b| c.members.contains_key(b)).collect();
        bots.sort();
        bots.into_iter().flat_map(|b| self.bots.commands[b].iter().cloned()).collect()
    }

    /// Tells every member of `communities` what commands they now offer
    /// (after a bot declared, joined or left).
    pub(super) fn commands_changed(&mut self, communities: &[CommunityId]) {
        for &community in communities {
            let commands = self.community_commands(community);
            let changed = v1::CommandsChanged { community_id: community.0, commands };
            self.fan_out_community(community, EventBody::CommandsChanged(changed));
        }
    }

    /// Whether `user` is a bot that offers commands (its joining or leaving
    /// a community changes what is offered there).
    pub(super) fn offers_commands(&self, user: UserId) -> bool {
        self.bots.commands.contains_key(&user)
    }

    pub(super) fn register_commands(&mut self, cx: Cx, commands: Vec<v1::Command>) -> Outcome {
        if !self.is_bot(cx.me) {
            return Err(super::forbidden("only bots offer slash commands (make one with `kith bot create`)"));
        }
        let encoded = v1::RegisterCommandsRequest { commands: commands.clone() }.encode_to_vec();
        self.persist(vec![Write::PutCommands { bot: cx.me, commands: encoded }]);
        self.bots.set(cx.me, commands);
        self.reply_empty(cx.session, cx.rid);
        let communities: Vec<CommunityId> = self.memberships.communities(cx.me).collect();
        self.commands_changed(&communities);
        Ok(())
    }

    pub(super) fn invoke_command(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        bot: UserId,
        name: CommandName,
        options: Vec<v1::OptionValue>,
    ) -> Outcome {
        let (community, perms) = self.channel_permissions(channel, cx.me, cx.now)?;
        let Some(community) = community else { return Err(Refusal::NotFound("command")) };
        let member = self.communities.get(&community).is_some_and(|c| c.members.contains_key(&bot));
        let command = self
            .bots
            .commands
            .get(&bot)
            .filter(|_| member)
            .and_then(|cs| cs.iter().find(|c| c.name == name.0))
            .ok_or(Refusal::NotFound("command"))?;
        check_invocation(command, &options).map_err(Refusal::Unfit)?;
        if !perms.contains(Permissions::USE_COMMANDS) {
            return Err(self.lacking(Some(community), cx.me, cx.now, "use commands in this channel"));
        }
        let at = self.at(bot);
        if !self.can_view(channel, bot) {
            return Err(super::forbidden(format!("{at} cannot see this channel")));
        }
        if self.sessions.of_user(bot).next().is_none() {
            return Err(Refusal::Unfit(format!("{at} is not connected right now; try again later")));
        }
        if self.bots.in_flight.get(&bot).copied().unwrap_or(0) >= MAX_CALLS_PER_BOT {
            return Err(Refusal::Busy("the bot is answering as many calls as it may at once", 1000));
        }
        let id = self.ids.next(cx.now);
        let deadline = cx.now.plus_ms(CALL_TIMEOUT_MS);
        self.bots.start(id, Call { bot, invoker: cx.me, channel, name: name.0.clone(), deadline });
        self.reply(cx.session, cx.rid, ReplyResult::CallStarted(v1::CallStarted { call_id: id }));
        let call = v1::Call {
            call_id: id,
            name: name.0,
            options,
            channel_id: channel.0,
            community_id: community.0,
            user: Some(self.user_wire(cx.me)),
            deadline_ms: deadline.0,
        };
        self.fan_out(&[bot], EventBody::Call(call));
        Ok(())
    }

    pub(super) fn answer_call(
        &mut self,
        cx: Cx,
        id: u64,
        text: String,
        last: bool,
        public: bool,
        error: String,
    ) -> Outcome {
        let gone = Refusal::NotFound("call (it was answered, timed out, or never given to you)");
        let Some(call) = self.bots.calls.get(&id).filter(|c| c.bot == cx.me) else { return Err(gone) };
        let (channel, invoker) = (call.channel, call.invoker);
        let mut update =
            v1::CallUpdate { call_id: id, channel_id: channel.0, r#final: last, ..Default::default() };
        if public && error.is_empty() {
            // Posted like any message of the bot's: its permissions apply,
            // and the bot's reply is the message.
            let body = Body(text);
            update.message_id = self.post_message(cx, channel, body, None, None, &[])?.0;
        } else {
            update.text = text;
            update.error = error;
            self.reply_empty(cx.session, cx.rid);
        }
        if last {
            self.bots.end(id);
        } else {
            self.bots.extend(id, cx.now.plus_ms(CALL_TIMEOUT_MS));
        }
        self.fan_out(&[invoker], EventBody::CallUpdate(update));
        Ok(())
    }

    /// Calls whose time is up end with an error for their invokers.
    pub(super) fn expire_calls(&mut self) {
        while let Some(&(deadline, id)) = self.bots.due.first() {
            if deadline > self.now {
                break;
            }
            let Some(call) = self.bots.end(id) else { continue };
            let error = format!(
                "{} did not answer /{} within {} s",
                self.at(call.bot),
                call.name,
                CALL_TIMEOUT_MS / 1000
            );
            self.fail_call(id, &call, error);
        }
    }

    /// A bot's last session ended: its calls cannot be answered.
    pub(super) fn bot_gone(&mut self, bot: UserId) {
        let ids: Vec<u64> = self.bots.calls.iter().filter(|(_, c)| c.bot == bot).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(call) = self.bots.end(id) {
                let error = format!("{} went away before answering /{}", self.at(bot), call.name);
                self.fail_call(id, &call, error);
            }
        }
    }

    fn fail_call(&mut self, id: u64, call: &Call, error: String) {
        let update = v1::CallUpdate {
            call_id: id,
            channel_id: call.channel.0,
            r#final: true,
            error,
            ..Default::default()
        };
        self.fan_out(&[call.invoker], EventBody::CallUpdate(update));
    }
}
