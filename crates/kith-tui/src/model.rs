//! What the user can see, kept current from the server's snapshot and
//! events. Every string from the server is cleaned here, on the way in.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use compact_str::CompactString;
use kith_proto::v1::{self, event::Body};

use crate::text::{clean, clean_line};

/// Messages held per channel. Scrolling further back fetches older pages
/// and lets the newest go (fetched again on the way down), so memory stays
/// flat however long a channel's history is.
pub const WINDOW: usize = 1000;
/// Messages per history request.
pub const PAGE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Names are kept inline (up to 24 bytes, past any username), and
    /// shared between the models a [`Names`] serves.
    pub username: CompactString,
    pub display_name: CompactString,
    pub bot: bool,
}

/// Commands as a server sent them, with every text a person will see
/// cleaned (a hostile server's names must not reach the terminal raw).
fn clean_commands(commands: &[v1::Command]) -> Vec<v1::Command> {
    commands
        .iter()
        .map(|c| v1::Command {
            bot_id: c.bot_id,
            name: clean_line(&c.name),
            description: clean_line(&c.description),
            options: c
                .options
                .iter()
                .map(|o| v1::CommandOption {
                    name: clean_line(&o.name),
                    description: clean_line(&o.description),
                    ..*o
                })
                .collect(),
        })
        .collect()
}

impl UserInfo {
    fn from_wire(u: &v1::User) -> UserInfo {
        UserInfo {
            username: clean_line(&u.username).into(),
            display_name: clean_line(&u.display_name).into(),
            bot: u.bot,
        }
    }

    pub fn label(&self) -> &str {
        if self.display_name.is_empty() { &self.username } else { &self.display_name }
    }
}

/// Users' names, kept once for all the models given the same `Names`: a
/// server that hosts many terminal sessions gives them one, so that a
/// community's names are not copied into every member's session.
///
/// Sharing only deduplicates equal values. Each model still maps ids to
/// names from its own snapshot and events, so a session never shows a name
/// its own stream has not told it (a rename reaches each session in its
/// turn), and looking someone up by name (`/dm`) finds only people that
/// session knows of.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<Mutex<Interned>>);

#[derive(Debug, Default)]
struct Interned {
    /// The latest names given for each user id.
    latest: HashMap<u64, Arc<UserInfo>>,
    /// How many entries the last sweep kept.
    kept: usize,
}

impl Names {
    fn intern(&self, id: u64, info: UserInfo) -> Arc<UserInfo> {
        let mut names = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = names.latest.get(&id)
            && **known == info
        {
            return known.clone();
        }
        let shared = Arc::new(info);
        names.latest.insert(id, shared.clone());
        // Names no model holds any more are forgotten once the table has
        // doubled since the last sweep: O(1) per name, amortised, and the
        // table stays within twice what the models hold.
        if names.latest.len() > 2 * names.kept + 64 {
            names.latest.retain(|_, n| Arc::strong_count(n) > 1);
            names.kept = names.latest.len();
        }
        shared
    }

    /// How many users' names are held (for tests of the sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).latest.len()
    }
}

/// Someone this session knows of.
#[derive(Debug, Clone)]
struct Person {
    /// `None` while only a presence has been heard of them.
    info: Option<Arc<UserInfo>>,
    presence: v1::PresenceStatus,
}

#[derive(Debug, Clone)]
pub struct CommunityInfo {
    pub id: u64,
    pub name: String,
    /// Member ids in the server's order. In a large community, only who
    /// has been around since the snapshot (see `member_count`).
    pub members: Vec<u64>,
    /// The nicknames of the members who have one (most have none, and a
    /// session holds this for every community it is in).
    nicknames: HashMap<u64, String>,
    /// How many members it has, listed or not.
    pub member_count: usize,
    pub channels: Vec<u64>,
    /// The slash commands its bots offer (names and texts cleaned).
    pub commands: Vec<v1::Command>,
}

impl CommunityInfo {
    /// A member's nickname here, if they have one.
    pub fn nickname(&self, user: u64) -> Option<&str> {
        self.nicknames.get(&user).map(String::as_str)
    }

    pub fn has_member(&self, user: u64) -> bool {
        self.members.contains(&user)
    }

    fn set_nickname(&mut self, user: u64, nickname: &str) {
        let nickname = clean_line(nickname);
        if nickname.is_empty() {
            self.nicknames.remove(&user);
        } else {
            self.nicknames.insert(user, nickname);
        }
    }

    fn add_member(&mut self, user: u64, nickname: &str) {
        if !self.has_member(user) {
            self.members.push(user);
        }
        self.set_nickname(user, nickname);
    }

    fn remove_member(&mut self, user: u64) {
        self.members.retain(|&id| id != user);
        self.nicknames.remove(&user);
    }
}

/// One message, cleaned for display.
#[derive(Debug)]
pub struct Msg {
    pub id: u64,
    pub author_id: u64,
    /// The username at send time; the view prefers the current name.
    pub author_name: String,
    pub body: String,
    pub created_ms: u64,
    pub edited: bool,
    pub reply_to: u64,
    pub mentions_me: bool,
    /// One line per attached file: `name · size · type`, cleaned.
    pub files: Vec<String>,
    /// The attachments that are pictures, drawn below where the terminal can.
    pub pictures: Vec<crate::pictures::Shown>,
    /// (width, hash of the author's shown name, rows) of the last layout,
    /// so scrolling a long window does not re-wrap every message.
    pub layout: Cell<Option<(u16, u64, u16)>>,
}

impl Msg {
    pub fn from_wire(m: &v1::Message, me: u64) -> Msg {
        Msg {
            id: m.id,
            author_id: m.author_id,
            author_name: clean_line(&m.author_name),
            body: clean(&m.body),
            created_ms: m.created_at_ms,
            edited: m.edited_at_ms != 0,
            reply_to: m.reply_to,
            mentions_me: m.mention_everyone || m.mentions.contains(&me),
            files: m
                .attachments
                .iter()
                .map(|a| crate::text::attachment(&a.name, a.size, &a.content_type, a.width, a.height))
                .collect(),
            pictures: crate::pictures::Shown::of(&m.attachments),
            layout: Cell::new(None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Older {
    /// There may be older messages than those held.
    More,
    Loading,
    /// The oldest message of the channel is held.
    None,
}

/// A message the user sent that the server has not confirmed yet.
#[derive(Debug, Clone)]
pub struct Sending {
    pub nonce: String,
    pub body: String,
}

#[derive(Debug)]
pub struct Chan {
    pub id: u64,
    pub community_id: u64,
    pub kind: v1::ChannelKind,
    pub name: String,
    pub topic: String,
    pub recipients: Vec<u64>,
    pub permissions: u64,
    pub msgs: VecDeque<Msg>,
    /// The newest page has been fetched (or is being: `loading`).
    pub loaded: bool,
    pub loading: bool,
    pub older: Older,
    /// Newer messages exist than those held (dropped while scrolled back).
    pub newer_missing: bool,
    /// Rows scrolled up from the bottom.
    pub scroll: usize,
    pub last_read_id: u64,
    pub unread: u32,
    pub mentions: u32,
    /// "New messages" line: shown after this message id.
    pub marker: Option<u64>,
    /// (user, lapses at ms).
    pub typing: Vec<(u64, u64)>,
    pub sending: Vec<Sending>,
}

impl Chan {
    fn from_wire(c: &v1::Channel) -> Chan {
        Chan {
            id: c.id,
            community_id: c.community_id,
            kind: c.kind(),
            name: clean_line(&c.name),
            topic: clean_line(&c.topic),
            recipients: c.recipients.iter().map(|u| u.id).collect(),
            permissions: c.permissions,
            msgs: VecDeque::new(),
            loaded: false,
            loading: false,
            older: Older::More,
            newer_missing: false,
            scroll: 0,
            last_read_id: c.last_read_id,
            unread: c.unread_count,
            mentions: c.mention_count,
            marker: None,
            typing: Vec::new(),
            sending: Vec::new(),
        }
    }

    fn update_meta(&mut self, c: &v1::Channel) {
        self.name = clean_line(&c.name);
        self.topic = clean_line(&c.topic);
        self.recipients = c.recipients.iter().map(|u| u.id).collect();
        self.permissions = c.permissions;
    }

    pub fn is_direct(&self) -> bool {
        self.community_id == 0
    }

    pub fn can_send(&self) -> bool {
        self.kind != v1::ChannelKind::Voice && self.permissions & v1::Permission::SendMessages as u64 != 0
    }

    pub fn newest_id(&self) -> Option<u64> {
        self.msgs.back().map(|m| m.id)
    }

    pub fn find(&self, id: u64) -> Option<&Msg> {
        let i = self.msgs.binary_search_by_key(&id, |m| m.id).ok()?;
        self.msgs.get(i)
    }

    /// Inserts messages in id order, replacing any already held.
    pub fn merge(&mut self, page: impl IntoIterator<Item = Msg>) {
        for m in page {
            match self.msgs.binary_search_by_key(&m.id, |x| x.id) {
                Ok(i) => self.msgs[i] = m,
                Err(i) => self.msgs.insert(i, m),
            }
        }
    }

    /// Drops the oldest messages beyond the window.
    pub fn trim_front(&mut self) {
        while self.msgs.len() > WINDOW {
            self.msgs.pop_front();
            self.older = Older::More;
        }
    }

    /// Drops the newest messages beyond the window (while scrolled back).
    pub fn trim_back(&mut self) {
        while self.msgs.len() > WINDOW {
            self.msgs.pop_back();
            self.newer_missing = true;
        }
    }
}

/// The world as this user sees it.
#[derive(Debug, Default)]
pub struct Model {
    pub me: u64,
    /// Everyone this session knows of (names and presence), by user id.
    people: HashMap<u64, Person>,
    names: Names,
    pub communities: Vec<CommunityInfo>,
    /// Direct and group conversations, in the server's order.
    pub directs: Vec<u64>,
    pub channels: HashMap<u64, Chan>,
    /// Who is in voice (in channels this user can view), by user id.
    pub voice: HashMap<u64, v1::VoiceState>,
    /// Changes whenever who is in a community or conversation, their names
    /// or their presence may have changed: views derived from people (the
    /// sorted member list) are kept until it moves.
    pub people_gen: u64,
}

/// What an event meant, for the parts of the app that react to it.
#[derive(Debug, Default)]
pub struct Effect {
    /// A message from someone else arrived in this channel.
    pub incoming: Option<(u64, bool)>,
    /// This channel went away.
    pub removed_channel: Option<u64>,
}

impl Model {
    /// A model whose users' names are kept in `names`.
    pub fn new(names: Names) -> Model {
        Model { names, ..Model::default() }
    }

    /// Whether `user` is a bot account.
    pub fn is_bot(&self, user: u64) -> bool {
        self.user(user).is_some_and(|u| u.bot)
    }

    /// What this session knows of a user's names.
    pub fn user(&self, id: u64) -> Option<&UserInfo> {
        self.people.get(&id)?.info.as_deref()
    }

    /// Someone this session knows of, by username (any case).
    pub fn find_username(&self, username: &str) -> Option<u64> {
        self.people
            .iter()
            .find(|(_, p)| p.info.as_ref().is_some_and(|u| u.username.eq_ignore_ascii_case(username)))
            .map(|(id, _)| *id)
    }

    fn know(&mut self, u: &v1::User) {
        let info = self.names.intern(u.id, UserInfo::from_wire(u));
        self.people
            .entry(u.id)
            .or_insert(Person { info: None, presence: v1::PresenceStatus::Offline })
            .info = Some(info);
    }

    fn set_presence(&mut self, user: u64, presence: v1::PresenceStatus) {
        match self.people.get_mut(&user) {
            Some(p) => p.presence = presence,
            // Offline is what an unknown user already is.
            None if presence == v1::PresenceStatus::Offline => {}
            None => {
                self.people.insert(user, Person { info: None, presence });
            }
        }
    }

    /// Replaces everything with a snapshot. History is refetched on show.
    pub fn load(&mut self, ready: &v1::Ready) {
        let me = ready.user.as_ref().map_or(0, |u| u.id);
        let names = std::mem::take(&mut self.names);
        *self = Model { me, names, people_gen: self.people_gen + 1, ..Model::default() };
        if let Some(u) = &ready.user {
            self.know(u);
        }
        for c in &ready.communities {
            self.add_community(c);
        }
        for d in &ready.direct_channels {
            self.add_channel(d);
        }
        for p in &ready.presences {
            self.set_presence(p.user_id, p.status());
        }
    }

    fn add_community(&mut self, c: &v1::Community) {
        self.voice.retain(|_, v| v.community_id != c.id);
        for v in &c.voice_states {
            self.voice.insert(v.user_id, *v);
        }
        let mut info = CommunityInfo {
            id: c.id,
            name: clean_line(&c.name),
            members: Vec::with_capacity(c.members.len()),
            nicknames: HashMap::new(),
            channels: Vec::new(),
            commands: clean_commands(&c.commands),
            member_count: (c.member_count as usize).max(c.members.len()),
        };
        // The snapshot lists each member once: no search of the list so far
        // (which would make a large community's snapshot quadratic).
        for m in &c.members {
            if let Some(u) = &m.user {
                self.know(u);
                info.members.push(u.id);
                info.set_nickname(u.id, &m.nickname);
            }
        }
        match self.communities.iter_mut().find(|x| x.id == c.id) {
            Some(existing) => {
                let channels = std::mem::take(&mut existing.channels);
                *existing = CommunityInfo { channels, ..info };
            }
            None => self.communities.push(info),
        }
        for ch in &c.channels {
            self.add_channel(ch);
        }
    }

    fn add_channel(&mut self, c: &v1::Channel) {
        for u in &c.recipients {
            self.know(u);
        }
        if let Some(existing) = self.channels.get_mut(&c.id) {
            existing.update_meta(c);
            return;
        }
        self.channels.insert(c.id, Chan::from_wire(c));
        if c.community_id == 0 {
            self.directs.push(c.id);
        } else if let Some(com) = self.communities.iter_mut().find(|x| x.id == c.community_id) {
            com.channels.push(c.id);
        }
    }

    fn remove_channel(&mut self, id: u64) {
        self.channels.remove(&id);
        self.directs.retain(|&d| d != id);
        for c in &mut self.communities {
            c.channels.retain(|&x| x != id);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, now_ms: u64, body: &Body) -> Effect {
        let mut effect = Effect::default();
        let about_messages = matches!(
            body,
            Body::MessageCreated(_)
                | Body::MessageUpdated(_)
                | Body::MessageDeleted(_)
                | Body::TypingStarted(_)
                | Body::ReadStateUpdated(_)
        );
        if !about_messages {
            self.people_gen += 1;
        }
        match body {
            Body::MessageCreated(m) => {
                let me = self.me;
                let Some(ch) = self.channels.get_mut(&m.channel_id) else { return effect };
                ch.typing.retain(|(u, _)| *u != m.author_id);
                if m.author_id == me {
                    ch.sending.retain(|s| s.nonce != m.nonce);
                }
                let msg = Msg::from_wire(m, me);
                if m.author_id != me {
                    effect.incoming = Some((m.channel_id, msg.mentions_me));
                }
                // Held only when contiguous with what is held; otherwise the
                // next fetch brings it.
                if (ch.loaded || ch.loading) && !ch.newer_missing {
                    ch.merge([msg]);
                    if ch.scroll == 0 {
                        ch.trim_front();
                    } else {
                        ch.trim_back();
                    }
                }
            }
            Body::MessageUpdated(m) => {
                if let Some(ch) = self.channels.get_mut(&m.channel_id)
                    && ch.find(m.id).is_some()
                {
                    ch.merge([Msg::from_wire(m, self.me)]);
                }
            }
            Body::MessageDeleted(d) => {
                if let Some(ch) = self.channels.get_mut(&d.channel_id)
                    && let Ok(i) = ch.msgs.binary_search_by_key(&d.message_id, |m| m.id)
                {
                    ch.msgs.remove(i);
                }
            }
            Body::ChannelCreated(c) | Body::ChannelUpdated(c) => self.add_channel(c),
            Body::ChannelDeleted(d) => {
                self.remove_channel(d.channel_id);
                effect.removed_channel = Some(d.channel_id);
            }
            Body::CommunityJoined(c) | Body::CommunityUpdated(c) => self.add_community(c),
            Body::CommunityLeft(l) => {
                if let Some(i) = self.communities.iter().position(|c| c.id == l.community_id) {
                    let gone = self.communities.remove(i);
                    for id in gone.channels {
                        self.channels.remove(&id);
                        effect.removed_channel = Some(id);
                    }
                }
            }
            Body::MemberJoined(j) => {
                if let Some(m) = &j.member
                    && let Some(u) = &m.user
                {
                    self.know(u);
                    if let Some(c) = self.communities.iter_mut().find(|c| c.id == j.community_id) {
                        c.add_member(u.id, &m.nickname);
                        c.member_count += 1;
                    }
                }
            }
            Body::MemberLeft(l) => {
                if let Some(c) = self.communities.iter_mut().find(|c| c.id == l.community_id) {
                    c.remove_member(l.user_id);
                    c.member_count = c.member_count.saturating_sub(1).max(c.members.len());
                }
            }
            // Also how a large community's member who comes online is
            // introduced: one not listed yet is added.
            Body::MemberUpdated(u) => {
                if let Some(m) = &u.member
                    && let Some(user) = &m.user
                    && let Some(i) = self.communities.iter().position(|c| c.id == u.community_id)
                {
                    if !self.communities[i].has_member(user.id) {
                        self.know(user);
                    }
                    let c = &mut self.communities[i];
                    c.add_member(user.id, &m.nickname);
                    c.member_count = c.member_count.max(c.members.len());
                }
            }
            Body::UserUpdated(u) => self.know(u),
            Body::PresenceUpdated(p) => self.set_presence(p.user_id, p.status()),
            Body::TypingStarted(t) => {
                if t.user_id != self.me
                    && t.until_ms > now_ms
                    && let Some(ch) = self.channels.get_mut(&t.channel_id)
                {
                    ch.typing.retain(|(u, _)| *u != t.user_id);
                    ch.typing.push((t.user_id, t.until_ms));
                }
            }
            Body::ReadStateUpdated(r) => {
                if let Some(ch) = self.channels.get_mut(&r.channel_id) {
                    ch.last_read_id = r.last_read_id;
                    ch.unread = r.unread_count;
                    ch.mentions = r.mention_count;
                }
            }
            Body::VoiceStateUpdated(v) => {
                if v.channel_id == 0 {
                    self.voice.remove(&v.user_id);
                } else {
                    self.voice.insert(v.user_id, *v);
                }
            }
            Body::CommandsChanged(c) => {
                if let Some(community) = self.communities.iter_mut().find(|x| x.id == c.community_id) {
                    community.commands = clean_commands(&c.commands);
                }
            }
            // Calls are a bot's to answer; how one's own go is the app's
            // (`App::call_update`).
            Body::Call(_) | Body::CallUpdate(_) | Body::PipeOffered(_) => {}
            Body::RoleCreated(_) | Body::RoleUpdated(_) | Body::RoleDeleted(_) => {}
        }
        effect
    }

    /// Drops lapsed typing indicators; true if any lapsed.
    pub fn expire_typing(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for ch in self.channels.values_mut() {
            let before = ch.typing.len();
            ch.typing.retain(|(_, until)| *until > now_ms);
            changed |= ch.typing.len() != before;
        }
        changed
    }

    pub fn username(&self, id: u64) -> Option<&str> {
        self.user(id).map(|u| u.username.as_str())
    }

    /// How `user` is called in `channel`: nickname, display name, username.
    pub fn name_in(&self, channel: &Chan, user: u64) -> Option<&str> {
        if !channel.is_direct()
            && let Some(nick) = self.community(channel.community_id).and_then(|c| c.nickname(user))
        {
            return Some(nick);
        }
        self.user(user).map(UserInfo::label)
    }

    pub fn community(&self, id: u64) -> Option<&CommunityInfo> {
        self.communities.iter().find(|c| c.id == id)
    }

    /// A conversation's title: its name, or the other participants.
    pub fn title(&self, ch: &Chan) -> String {
        if ch.kind == v1::ChannelKind::Voice {
            return format!("♪ {}", ch.name);
        }
        if !ch.is_direct() {
            return format!("#{}", ch.name);
        }
        if !ch.name.is_empty() {
            return ch.name.clone();
        }
        let others: Vec<&str> =
            ch.recipients.iter().filter(|&&u| u != self.me).filter_map(|&u| self.username(u)).collect();
        if others.is_empty() { "(just you)".into() } else { others.join(", ") }
    }

    /// The people in a channel: a community's members, or a conversation's
    /// participants.
    pub fn people(&self, ch: &Chan) -> Vec<u64> {
        if ch.is_direct() {
            ch.recipients.clone()
        } else {
            self.community(ch.community_id).map(|c| c.members.clone()).unwrap_or_default()
        }
    }

    /// How many people a channel's roster stands for: a large community's
    /// lists only who has been around.
    pub fn people_count(&self, ch: &Chan) -> usize {
        match self.community(ch.community_id) {
            Some(c) if !ch.is_direct() => c.member_count.max(c.members.len()),
            _ => ch.recipients.len(),
        }
    }

    /// Everyone in a channel with the name shown for them, in one pass (a
    /// community of a thousand is a thousand lookups, not a million).
    pub fn roster(&self, ch: &Chan) -> Vec<(u64, &str)> {
        let label = |u: u64| self.user(u).map_or("?", UserInfo::label);
        if ch.is_direct() {
            return ch.recipients.iter().map(|&u| (u, label(u))).collect();
        }
        self.community(ch.community_id)
            .map(|c| c.members.iter().map(|&u| (u, c.nickname(u).unwrap_or_else(|| label(u)))).collect())
            .unwrap_or_default()
    }

    pub fn status(&self, user: u64) -> v1::PresenceStatus {
        self.people.get(&user).map_or(v1::PresenceStatus::Offline, |p| p.presence)
    }

    /// Channels in sidebar order: each community's, then the conversations.
    pub fn nav_order(&self) -> Vec<u64> {
        let mut order: Vec<u64> = self.communities.iter().flat_map(|c| c.channels.iter().copied()).collect();
        order.extend(&self.directs);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: u64 = 10;
    const WORK: u64 = 20;

    fn user(id: u64, name: &str) -> v1::User {
        v1::User { id, username: name.into(), ..Default::default() }
    }

    fn member(id: u64, name: &str, nickname: &str) -> v1::Member {
        v1::Member { user: Some(user(id, name)), nickname: nickname.into(), ..Default::default() }
    }

    /// `me` signed in, in one community with `members`.
    fn signed_in(names: &Names, me: (u64, &str), community: u64, members: Vec<v1::Member>) -> Model {
        let mut model = Model::new(names.clone());
        model.load(&v1::Ready {
            user: Some(user(me.0, me.1)),
            communities: vec![v1::Community {
                id: community,
                name: "c".into(),
                members,
                ..Default::default()
            }],
            ..Default::default()
        });
        model
    }

    fn shared(a: &Model, b: &Model, id: u64) -> bool {
        let info = |m: &Model| m.people.get(&id).and_then(|p| p.info.clone());
        matches!((info(a), info(b)), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y))
    }

    #[test]
    fn sessions_given_one_names_keep_one_copy_of_each_persons_names() {
        let names = Names::default();
        let family = || vec![member(1, "alice", ""), member(2, "bob", "")];
        let alice = signed_in(&names, (1, "alice"), FAMILY, family());
        let bob = signed_in(&names, (2, "bob"), FAMILY, family());
        assert!(shared(&alice, &bob, 1) && shared(&alice, &bob, 2));
        assert_eq!(names.len(), 2);
        // Apps that are not given the same `Names` share nothing.
        let apart = signed_in(&Names::default(), (2, "bob"), FAMILY, family());
        assert!(!shared(&alice, &apart, 1));
    }

    #[test]
    fn a_rename_reaches_each_session_with_its_own_events() {
        let names = Names::default();
        let family = || vec![member(1, "alice", ""), member(2, "bob", "")];
        let mut alice = signed_in(&names, (1, "alice"), FAMILY, family());
        let bob = signed_in(&names, (2, "bob"), FAMILY, family());
        let renamed = v1::User { display_name: "Al".into(), ..user(1, "alice") };
        alice.apply(0, &Body::UserUpdated(renamed.clone()));
        assert_eq!(alice.user(1).map(UserInfo::label), Some("Al"));
        // Bob's session has not been told yet: it shows what it was told.
        assert_eq!(bob.user(1).map(UserInfo::label), Some("alice"));
        let mut bob = bob;
        bob.apply(0, &Body::UserUpdated(renamed));
        assert_eq!(bob.user(1).map(UserInfo::label), Some("Al"));
        assert!(shared(&alice, &bob, 1), "the new names are shared again");
    }

    #[test]
    fn nobody_is_found_by_name_whom_only_another_session_knows() {
        let names = Names::default();
        let alice =
            signed_in(&names, (1, "alice"), FAMILY, vec![member(1, "alice", ""), member(3, "carol", "")]);
        let bob = signed_in(&names, (2, "bob"), WORK, vec![member(2, "bob", "")]);
        assert_eq!(alice.find_username("Carol"), Some(3));
        assert_eq!(bob.find_username("carol"), None);
        assert_eq!(bob.find_username("alice"), None);
    }

    #[test]
    fn names_no_session_holds_any_more_are_forgotten() {
        let names = Names::default();
        let kept = signed_in(&names, (1, "alice"), FAMILY, vec![member(1, "alice", "")]);
        let mut most = 0;
        for i in 0..10_000u64 {
            let id = 100 + i;
            let gone = signed_in(&names, (id, &format!("u{id}")), FAMILY, vec![member(id, "x", "")]);
            drop(gone);
            most = most.max(names.len());
        }
        // Two held at any time (alice, and whoever is signing in): the
        // table stays within twice that, plus the sweep's slack.
        assert!(most <= 2 * 2 + 64 + 1, "the table held {most} names for two that are held");
        assert_eq!(kept.user(1).map(|u| u.username.as_str()), Some("alice"));
    }

    #[test]
    fn nicknames_are_kept_for_those_who_have_one() {
        let names = Names::default();
        let mut model = signed_in(
            &names,
            (1, "alice"),
            FAMILY,
            vec![member(1, "alice", ""), member(2, "bob", "Bobby"), member(3, "carol", "")],
        );
        let ch = Chan::from_wire(&v1::Channel { id: 5, community_id: FAMILY, ..Default::default() });
        assert_eq!(model.name_in(&ch, 2), Some("Bobby"));
        assert_eq!(model.name_in(&ch, 3), Some("carol"));
        assert_eq!(model.communities[0].nicknames.len(), 1);
        let renamed = |nickname: &str| {
            Body::MemberUpdated(v1::MemberUpdated {
                community_id: FAMILY,
                member: Some(member(2, "bob", nickname)),
            })
        };
        model.apply(0, &renamed(""));
        assert_eq!(model.name_in(&ch, 2), Some("bob"));
        assert!(model.communities[0].nicknames.is_empty());
        model.apply(0, &renamed("B"));
        model.apply(
            0,
            &Body::MemberLeft(v1::MemberLeft { community_id: FAMILY, user_id: 2, ..Default::default() }),
        );
        assert!(model.communities[0].nicknames.is_empty(), "a nickname leaves with its member");
        assert_eq!(model.communities[0].members, vec![1, 3]);
    }

    #[test]
    fn a_presence_heard_before_the_person_is_kept() {
        let names = Names::default();
        let mut model = signed_in(&names, (1, "alice"), FAMILY, vec![member(1, "alice", "")]);
        let online = v1::Presence { user_id: 2, status: v1::PresenceStatus::Online as i32 };
        model.apply(0, &Body::PresenceUpdated(online));
        assert_eq!(model.status(2), v1::PresenceStatus::Online);
        assert_eq!(model.user(2), None);
        model.apply(
            0,
            &Body::MemberJoined(v1::MemberJoined {
                community_id: FAMILY,
                member: Some(member(2, "bob", "")),
            }),
        );
        assert_eq!(model.status(2), v1::PresenceStatus::Online);
        assert_eq!(model.username(2), Some("bob"));
        // Someone unknown going offline leaves nothing behind.
        let offline = v1::Presence { user_id: 9, status: v1::PresenceStatus::Offline as i32 };
        model.apply(0, &Body::PresenceUpdated(offline));
        assert!(!model.people.contains_key(&9));
    }
}
