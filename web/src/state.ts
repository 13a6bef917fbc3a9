// What the client knows: the snapshot from Ready, kept current by events.
// One rule for every change, whoever made it: the server's event is the
// truth (it reaches the acting session too), so a reply never needs a
// second code path to update the view.

import type {
  CallUpdate,
  Channel,
  Community,
  Event,
  Message,
  Member,
  Ready,
  User,
  VoiceState,
} from "./gen/kith_pb";
import { ChannelKind, Permission, PresenceStatus } from "./gen/kith_pb";

export const PAGE = 50;

export interface Timeline {
  /// Oldest first, by id.
  messages: Message[];
  /// The oldest message is the channel's first: nothing older to load.
  complete: boolean;
  loading: boolean;
}

/// Lists `members` in `c`: one already listed is replaced, a new one added
/// at the end; nobody is dropped.
function listMembers(c: Community, members: Member[]) {
  const at = new Map(c.members.map((m, i) => [m.user?.id, i]));
  const list = [...c.members];
  for (const m of members) {
    const i = at.get(m.user?.id);
    if (i === undefined) {
      at.set(m.user?.id, list.length);
      list.push(m);
    } else {
      list[i] = m;
    }
  }
  c.members = list;
  c.memberCount = Math.max(c.memberCount, c.members.length);
}

export class Store {
  me!: User;
  serverOwner = false;
  communities = new Map<bigint, Community>();
  directs = new Map<bigint, Channel>();
  presence = new Map<bigint, PresenceStatus>();
  timelines = new Map<bigint, Timeline>();
  /// Who is typing where, until when (ms).
  typing = new Map<bigint, Map<bigint, number>>();
  voice = new Map<bigint, VoiceState>();
  notices: string[] = [];
  /// +1 for every change, so a view can tell it missed one.
  version = 0;
  private listeners = new Set<() => void>();

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  changed() {
    this.version++;
    for (const f of this.listeners) f();
  }

  /// A page of a large community's members (its snapshot lists only who
  /// is around).
  addMembers(communityId: bigint, members: Member[]) {
    const c = this.communities.get(communityId);
    if (c) listMembers(c, members);
    this.changed();
  }

  /// Bot commands this page invoked, by call id, until their final answer.
  calls = new Map<bigint, string>();
  /// Answers to calls not known yet: a fast bot's first answers can be
  /// decoded in the same read as the reply that names the call, before the
  /// code awaiting that reply has run. Kept (a few) until it does.
  early = new Map<bigint, CallUpdate[]>();

  /// A call this page started: "asked…", then any answers that came early.
  startCall(id: bigint, name: string) {
    this.calls.set(id, name);
    this.notices = [...this.notices.slice(-4), `/${name}: asked…`];
    const early = this.early.get(id) ?? [];
    this.early.delete(id);
    for (const u of early) this.showCall(u);
    this.changed();
  }

  private showCall(u: CallUpdate) {
    const name = this.calls.get(u.callId);
    if (name === undefined) return;
    if (u.final) this.calls.delete(u.callId);
    // Each answer replaces the last one shown for the command.
    const lead = `/${name}: `;
    const said = u.error || (u.messageId ? "answered in the channel" : u.text);
    this.notices = [...this.notices.filter((n) => !n.startsWith(lead)).slice(-4), lead + said];
  }

  notice(text: string) {
    this.notices = [...this.notices.slice(-4), text];
    this.changed();
  }

  load(ready: Ready) {
    this.me = ready.user!;
    this.serverOwner = ready.serverOwner;
    this.communities = new Map(ready.communities.map((c) => [c.id, c]));
    this.directs = new Map(ready.directChannels.map((c) => [c.id, c]));
    this.presence = new Map(ready.presences.map((p) => [p.userId, p.status]));
    this.timelines.clear();
    this.voice.clear();
    for (const c of ready.communities) for (const v of c.voiceStates) this.voice.set(v.userId, v);
    this.changed();
  }

  channel(id: bigint): Channel | undefined {
    const d = this.directs.get(id);
    if (d) return d;
    for (const c of this.communities.values()) {
      const ch = c.channels.find((ch) => ch.id === id);
      if (ch) return ch;
    }
    return undefined;
  }

  /// What the receiver may do in a channel (the server's own count).
  may(channel: Channel | undefined, p: Permission): boolean {
    if (!channel) return false;
    if (channel.kind === ChannelKind.DIRECT || channel.kind === ChannelKind.GROUP) {
      return p !== Permission.MANAGE_MESSAGES && p !== Permission.MANAGE_CHANNELS;
    }
    const bits = channel.permissions;
    return (bits & BigInt(Permission.ADMINISTRATOR)) !== 0n || (bits & BigInt(p)) !== 0n;
  }

  member(community: bigint, user: bigint): Member | undefined {
    return this.communities.get(community)?.members.find((m) => m.user?.id === user);
  }

  /// How someone is called where they are seen.
  nameOf(user: bigint, channel?: Channel): string {
    if (user === this.me.id) return this.me.displayName || this.me.username;
    if (channel?.communityId) {
      const m = this.member(channel.communityId, user);
      if (m) return m.nickname || m.user?.displayName || m.user?.username || "someone";
    }
    for (const c of this.communities.values()) {
      const m = c.members.find((m) => m.user?.id === user);
      if (m?.user) return m.user.displayName || m.user.username;
    }
    for (const d of this.directs.values()) {
      const u = d.recipients.find((u) => u.id === user);
      if (u) return u.displayName || u.username;
    }
    return "someone";
  }

  directName(d: Channel): string {
    if (d.name) return d.name;
    const others = d.recipients.filter((u) => u.id !== this.me.id);
    return (others.length ? others : d.recipients).map((u) => u.displayName || u.username).join(", ");
  }

  timeline(channel: bigint): Timeline {
    let t = this.timelines.get(channel);
    if (!t) {
      t = { messages: [], complete: false, loading: false };
      this.timelines.set(channel, t);
    }
    return t;
  }

  /// Adds a page of history (oldest first) to what is kept.
  addPage(channel: bigint, page: Message[], older: boolean) {
    const t = this.timeline(channel);
    const known = new Set(t.messages.map((m) => m.id));
    const fresh = page.filter((m) => !known.has(m.id));
    t.messages = [...t.messages, ...fresh].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (older && page.length < PAGE) t.complete = true;
    this.changed();
  }

  private upsert(m: Message) {
    const t = this.timelines.get(m.channelId);
    if (!t) return;
    const i = t.messages.findIndex((x) => x.id === m.id);
    if (i >= 0) t.messages[i] = m;
    else {
      t.messages.push(m);
      t.messages.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    t.messages = [...t.messages];
  }

  apply(e: Event) {
    const b = e.body;
    switch (b.case) {
      case "messageCreated": {
        const m = b.value;
        this.upsert(m);
        const ch = this.channel(m.channelId);
        if (ch && m.authorId !== this.me.id) {
          ch.unreadCount += 1;
          if (m.mentionEveryone || m.mentions.includes(this.me.id)) ch.mentionCount += 1;
        }
        this.typing.get(m.channelId)?.delete(m.authorId);
        break;
      }
      case "messageUpdated":
        this.upsert(b.value);
        break;
      case "messageDeleted": {
        const t = this.timelines.get(b.value.channelId);
        if (t) t.messages = t.messages.filter((m) => m.id !== b.value.messageId);
        break;
      }
      case "channelCreated":
      case "channelUpdated": {
        const ch = b.value;
        if (!ch.communityId) {
          this.directs.set(ch.id, ch);
          break;
        }
        const c = this.communities.get(ch.communityId);
        if (!c) break;
        const i = c.channels.findIndex((x) => x.id === ch.id);
        if (i >= 0) c.channels[i] = ch;
        else c.channels.push(ch);
        break;
      }
      case "channelDeleted": {
        const c = this.communities.get(b.value.communityId);
        if (c) c.channels = c.channels.filter((x) => x.id !== b.value.channelId);
        this.directs.delete(b.value.channelId);
        this.timelines.delete(b.value.channelId);
        break;
      }
      case "communityJoined":
      case "communityUpdated":
        this.communities.set(b.value.id, b.value);
        break;
      case "communityLeft": {
        const c = this.communities.get(b.value.communityId);
        this.communities.delete(b.value.communityId);
        if (c && b.value.byUserId) {
          const by = this.nameOf(b.value.byUserId);
          const why = b.value.moderatorReason ? `: ${b.value.moderatorReason}` : "";
          this.notices = [...this.notices, `You were removed from ${c.name} by ${by}${why}`];
        }
        break;
      }
      case "memberJoined": {
        const c = this.communities.get(b.value.communityId);
        if (c && b.value.member) {
          c.members = [...c.members.filter((m) => m.user?.id !== b.value.member?.user?.id), b.value.member];
          c.memberCount = Math.max(c.memberCount + 1, c.members.length);
        }
        break;
      }
      case "memberLeft": {
        const c = this.communities.get(b.value.communityId);
        if (c) {
          c.members = c.members.filter((m) => m.user?.id !== b.value.userId);
          c.memberCount = Math.max(c.memberCount - 1, c.members.length);
        }
        break;
      }
      case "memberUpdated": {
        const c = this.communities.get(b.value.communityId);
        const m = b.value.member;
        // Also how a large community's member who comes online is
        // introduced (its snapshot lists only who is around): one not
        // listed yet is added.
        if (c && m) listMembers(c, [m]);
        break;
      }
      case "userUpdated": {
        const u = b.value;
        if (u.id === this.me.id) this.me = u;
        for (const c of this.communities.values()) for (const m of c.members) if (m.user?.id === u.id) m.user = u;
        for (const d of this.directs.values()) d.recipients = d.recipients.map((r) => (r.id === u.id ? u : r));
        break;
      }
      case "presenceUpdated":
        this.presence.set(b.value.userId, b.value.status);
        break;
      case "typingStarted": {
        const t = this.typing.get(b.value.channelId) ?? new Map();
        t.set(b.value.userId, Number(b.value.untilMs));
        this.typing.set(b.value.channelId, t);
        break;
      }
      case "readStateUpdated": {
        const ch = this.channel(b.value.channelId);
        if (ch) {
          ch.lastReadId = b.value.lastReadId;
          ch.unreadCount = b.value.unreadCount;
          ch.mentionCount = b.value.mentionCount;
        }
        break;
      }
      case "voiceStateUpdated": {
        const v = b.value;
        if (v.channelId) this.voice.set(v.userId, v);
        else this.voice.delete(v.userId);
        break;
      }
      case "commandsChanged": {
        const c = this.communities.get(b.value.communityId);
        if (c) c.commands = b.value.commands;
        break;
      }
      case "callUpdate": {
        const u = b.value;
        if (this.calls.has(u.callId)) {
          this.showCall(u);
        } else {
          // Bounded: a call this page never hears of is forgotten.
          this.early.set(u.callId, [...(this.early.get(u.callId) ?? []), u].slice(-8));
          if (this.early.size > 16) this.early.delete(this.early.keys().next().value!);
        }
        break;
      }
      default:
        break;
    }
    this.changed();
  }

  typers(channel: bigint, now = Date.now()): string[] {
    const t = this.typing.get(channel);
    if (!t) return [];
    const ch = this.channel(channel);
    return [...t.entries()].filter(([u, until]) => until > now && u !== this.me.id).map(([u]) => this.nameOf(u, ch));
  }

  isOnline(user: bigint): boolean {
    const p = this.presence.get(user);
    return p !== undefined && p !== PresenceStatus.OFFLINE && p !== PresenceStatus.INVISIBLE;
  }
}
