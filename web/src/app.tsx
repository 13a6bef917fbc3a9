// The browser client's interface. Everything other people wrote is
// rendered as text (Preact escapes it), cleaned first (text.ts).

import { Fragment, render } from "preact";
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "preact/hooks";
import type { Channel, Message } from "./gen/kith_pb";
import { ChannelKind, ErrorCode, Permission, PresenceStatus } from "./gen/kith_pb";
import { PAGE, Store } from "./state";
import { clean, cleanName, commandValues, dayLabel, linkify, timeOfDay, words } from "./text";
import { Connection, RequestError, serverInfo } from "./transport";
import { upload } from "./upload";
import { supported as voiceSupported, Voice } from "./voice";

const store = new Store();
let conn: Connection | null = null;
/// The voice call this tab is in, if any.
let voice: Voice | null = null;

const TOKEN = "kith.token";
const params = new URLSearchParams(location.search);
const inviteCode = location.pathname.match(/^\/invite\/([A-Za-z0-9]+)$/)?.[1] ?? null;
// A password reset link from the server's owner: /reset/USERNAME/CODE.
const resetLink = (() => {
  const m = location.pathname.match(/^\/reset\/([^/]+)\/([A-Za-z0-9-]+)$/);
  if (!m) return null;
  try {
    return { username: decodeURIComponent(m[1]), code: m[2] };
  } catch {
    return null;
  }
})();

function savedToken(): string | null {
  return localStorage.getItem(TOKEN) ?? sessionStorage.getItem(TOKEN);
}

function keepToken(token: string, remember: boolean) {
  // Kept only as long as the user chose: this tab, or this browser.
  (remember ? localStorage : sessionStorage).setItem(TOKEN, token);
  (remember ? sessionStorage : localStorage).removeItem(TOKEN);
}

function forgetToken() {
  localStorage.removeItem(TOKEN);
  sessionStorage.removeItem(TOKEN);
}

/// A failure, as a person should read it.
function explain(e: unknown, resetting = false): string {
  if (e instanceof RequestError) {
    switch (e.wire.code) {
      case ErrorCode.BAD_CREDENTIALS:
        return resetting
          ? "That code does not work for that name: it may be mistyped, used already, or more than a day old. Ask the server's owner for a new one."
          : "That username and password do not match. Check both, or ask the server's owner for a reset code.";
      case ErrorCode.TAKEN:
        return "That name is taken; try another.";
      case ErrorCode.INVITE_INVALID:
        return "This invite no longer works (used up, expired or revoked). Ask for a new one.";
      case ErrorCode.RATE_LIMITED:
        return `Slow down a little: ${e.wire.reason}`;
      default:
        return e.wire.reason;
    }
  }
  return e instanceof Error ? e.message : String(e);
}

async function connect(onClosed: (why: string) => void): Promise<Connection> {
  conn?.close("reconnecting");
  conn = await Connection.open(
    {
      event: (e) => {
        store.apply(e);
        if (e.body.case === "messageCreated") notify(e.body.value);
      },
      notice: (e) => store.notice(e.reason),
      closed: (why) => {
        voice?.stop();
        voice = null;
        onClosed(why);
      },
    },
    params.get("transport") ?? undefined,
  );
  document.documentElement.dataset.transport = conn.kind;
  return conn;
}

const NOTIFY_ASKED = "kith.notify.asked";

/// A desktop notification for a mention or a direct message, while the tab
/// is in the background; shown by the browser itself, sent nowhere else.
function notify(m: Message) {
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" || m.authorId === store.me.id) return;
  const channel = store.channel(m.channelId);
  const direct = channel?.kind === ChannelKind.DIRECT || channel?.kind === ChannelKind.GROUP;
  if (!direct && !m.mentionEveryone && !m.mentions.includes(store.me.id)) return;
  const where = direct ? "" : ` in #${cleanName(channel?.name ?? "")}`;
  const n = new Notification(`${cleanName(m.authorName)}${where}`, { body: clean(m.body).slice(0, 200), tag: String(m.channelId) });
  n.onclick = () => window.focus();
}

const THEME = "kith.theme";
const themes = ["system", "dark", "light"] as const;
function applyTheme(theme: string) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}
applyTheme(localStorage.getItem(THEME) ?? "system");

/// Small line icons, drawn here: no icon font, no emoji font needed.
const ICONS = {
  speaker: "M4 9h3l5-4v14l-5-4H4z M16 9a4 4 0 0 1 0 6 M18.5 6.5a8 8 0 0 1 0 11",
  muted: "M4 9h3l5-4v14l-5-4H4z M16 9l5 6 M21 9l-5 6",
  deafened: "M4 14v-2a8 8 0 0 1 16 0v2 M4 14h3v5H4z M17 14h3v5h-3z M3 3l18 18",
  bell: "M6 16V11a6 6 0 0 1 12 0v5l2 2H4z M10 20a2 2 0 0 0 4 0",
};

function Icon({ name, label }: { name: keyof typeof ICONS; label?: string }) {
  return (
    <svg
      class="icon"
      viewBox="0 0 24 24"
      width="16"
      height="16"
      fill="none"
      stroke="currentColor"
      stroke-width="2"
      stroke-linecap="round"
      stroke-linejoin="round"
      role={label ? "img" : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : "true"}
    >
      <path d={ICONS[name]} />
    </svg>
  );
}

function useStore() {
  const [, bump] = useReducer((n: number, _: void) => n + 1, 0);
  // A change between this render and the subscription (an answer that came
  // back quickly, a throttled background tab) must not be missed.
  const seen = store.version;
  useLayoutEffect(() => {
    const unsubscribe = store.subscribe(() => bump());
    if (store.version !== seen) bump();
    return unsubscribe;
  }, []);
  return store;
}

type Phase = { kind: "connecting" } | { kind: "signin"; error?: string } | { kind: "ready" } | { kind: "lost"; why: string };

function App() {
  const [phase, setPhase] = useState<Phase>({ kind: "connecting" });
  const start = async () => {
    setPhase({ kind: "connecting" });
    try {
      const c = await connect((why) => setPhase({ kind: "lost", why }));
      const token = savedToken();
      if (token && !inviteCode && !resetLink) {
        try {
          const r = await c.request({ case: "authenticate", value: { token } });
          if (r.case === "ready") {
            store.load(r.value);
            setPhase({ kind: "ready" });
            return;
          }
        } catch {
          forgetToken();
        }
      }
      setPhase({ kind: "signin" });
    } catch (e) {
      setPhase({ kind: "lost", why: explain(e) });
    }
  };
  useEffect(() => {
    start();
  }, []);
  switch (phase.kind) {
    case "connecting":
      return <div class="center" role="status">Connecting…</div>;
    case "lost":
      return (
        <div class="center" role="alert">
          <p>Disconnected: {cleanName(phase.why)}</p>
          <button onClick={start}>Reconnect</button>
        </div>
      );
    case "signin":
      return <SignIn onReady={() => setPhase({ kind: "ready" })} />;
    case "ready":
      return <Main />;
  }
}

type Mode = "login" | "register" | "reset";

function SignIn({ onReady }: { onReady: () => void }) {
  const [mode, setMode] = useState<Mode>(resetLink ? "reset" : inviteCode !== null ? "register" : "login");
  const register = mode === "register";
  const reset = mode === "reset";
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [fingerprint, setFingerprint] = useState("");
  useEffect(() => {
    serverInfo().then((i) => setFingerprint(i.fingerprint), () => {});
  }, []);
  const submit = async (e: SubmitEvent) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const username = String(f.get("username") ?? "").trim();
    const password = String(f.get("password") ?? "");
    const remember = f.get("remember") === "on";
    setBusy(true);
    setError("");
    try {
      const r = register
        ? await conn!.request({
            case: "register",
            value: {
              username,
              password,
              displayName: String(f.get("display") ?? "").trim(),
              credential: { case: "inviteCode", value: String(f.get("invite") ?? "").trim() },
            },
          })
        : reset
          ? await conn!.request({
              case: "redeemResetCode",
              value: { username, code: String(f.get("code") ?? "").trim(), newPassword: password },
            })
          : await conn!.request({ case: "login", value: { username, password } });
      if (r.case !== "ready") throw new Error("the server answered something unexpected");
      keepToken(r.value.token, remember);
      store.load(r.value);
      if (inviteCode || resetLink) history.replaceState(null, "", "/");
      onReady();
    } catch (err) {
      setError(explain(err, reset));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">{register ? "Join kith" : reset ? "Choose your password" : "Sign in to kith"}</h1>
        {reset && (
          <p class="hint">With the code the server's owner gave you. It works once, for a day, and signs you out everywhere else.</p>
        )}
        {register && (
          <label>
            Invite code
            <input name="invite" required value={inviteCode ?? ""} autocomplete="off" />
          </label>
        )}
        <label>
          Username
          <input
            name="username"
            required
            autocomplete="username"
            autofocus={!reset}
            value={reset ? resetLink?.username ?? "" : undefined}
          />
        </label>
        {reset && (
          <label>
            Code
            <input name="code" required value={resetLink?.code ?? ""} autocomplete="one-time-code" />
          </label>
        )}
        {register && (
          <label>
            Display name <span class="hint">(optional)</span>
            <input name="display" autocomplete="nickname" />
          </label>
        )}
        <label>
          {reset ? "New password" : "Password"}
          <input
            name="password"
            type="password"
            required
            minLength={8}
            autofocus={reset}
            autocomplete={register || reset ? "new-password" : "current-password"}
          />
        </label>
        <label class="check">
          <input name="remember" type="checkbox" /> Remember me on this browser
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {register ? "Create account" : reset ? "Set password and sign in" : "Sign in"}
        </button>
        {mode === "login" ? (
          <>
            <button type="button" class="link" onClick={() => setMode("register")}>
              I have an invite
            </button>
            <button type="button" class="link" onClick={() => setMode("reset")}>
              I have a code from the server's owner
            </button>
          </>
        ) : (
          <button type="button" class="link" onClick={() => setMode("login")}>
            {register ? "I already have an account" : "Back to sign in"}
          </button>
        )}
        {fingerprint && (
          <p class="hint fingerprint">
            If your browser warned about this site's certificate: this server's identity is{" "}
            <code>{fingerprint}</code>. It should match what the person who runs it told you.
          </p>
        )}
      </form>
    </main>
  );
}

type Place = { community: bigint | null; channel: bigint | null };

function firstTextChannel(community: bigint): bigint | null {
  return store.communities.get(community)?.channels.find((c) => c.kind === ChannelKind.TEXT)?.id ?? null;
}

function Main() {
  const s = useStore();
  const [place, setPlace] = useState<Place>(() => {
    const first = [...s.communities.keys()][0] ?? null;
    return { community: first, channel: first === null ? null : firstTextChannel(first) };
  });
  // Phones show one pane at a time: the list, or the conversation.
  const [pane, setPane] = useState<"list" | "chat">("list");
  const [switching, setSwitching] = useState(false);
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setSwitching((on) => !on);
      }
    };
    addEventListener("keydown", key);
    return () => removeEventListener("keydown", key);
  }, []);
  const channel = place.channel === null ? undefined : s.channel(place.channel);
  const community = place.community === null ? undefined : s.communities.get(place.community);
  useEffect(() => {
    if (place.community !== null && !s.communities.has(place.community)) {
      const first = [...s.communities.keys()][0] ?? null;
      setPlace({ community: first, channel: first === null ? null : firstTextChannel(first) });
    } else if (place.channel !== null && !s.channel(place.channel)) {
      setPlace({ ...place, channel: place.community === null ? null : firstTextChannel(place.community) });
    }
  });
  const open = (p: Place) => {
    setPlace(p);
    setPane("chat");
  };
  return (
    <div class={`layout pane-${pane}`}>
      <nav class="rail" aria-label="Communities">
        <button
          class={`rail-item ${place.community === null ? "active" : ""}`}
          aria-label="Direct messages"
          title="Direct messages"
          onClick={() => setPlace({ community: null, channel: [...s.directs.keys()][0] ?? null })}
        >
          @
          {[...s.directs.values()].some((d) => d.unreadCount > 0) && <span class="dot" aria-label="unread" />}
        </button>
        {[...s.communities.values()].map((c) => (
          <button
            key={String(c.id)}
            class={`rail-item ${place.community === c.id ? "active" : ""}`}
            title={cleanName(c.name)}
            aria-label={cleanName(c.name)}
            aria-current={place.community === c.id}
            onClick={() => setPlace({ community: c.id, channel: firstTextChannel(c.id) })}
          >
            {cleanName(c.name).slice(0, 2)}
            {c.channels.some((ch) => ch.unreadCount > 0) && <span class="dot" aria-label="unread" />}
          </button>
        ))}
      </nav>
      <nav class="channels" aria-label={community ? `Channels of ${cleanName(community.name)}` : "Direct messages"}>
        <header class="channels-head">
          <h2>{community ? cleanName(community.name) : "Direct messages"}</h2>
          {community && (community.permissions & BigInt(Permission.CREATE_INVITES | Permission.ADMINISTRATOR)) !== 0n && (
            <InviteButton community={community.id} />
          )}
        </header>
        <ul role="list" aria-label="Text channels">
          {(community ? community.channels.filter((c) => c.kind === ChannelKind.TEXT) : [...s.directs.values()]).map(
            (c) => (
              <li key={String(c.id)}>
                <button
                  class={`channel ${place.channel === c.id ? "active" : ""} ${c.unreadCount ? "unread" : ""}`}
                  aria-current={place.channel === c.id}
                  onClick={() => open({ community: place.community, channel: c.id })}
                >
                  <span class="name">{community ? `# ${cleanName(c.name)}` : cleanName(s.directName(c))}</span>
                  {c.mentionCount > 0 ? (
                    <span class="badge mention" aria-label={`${c.mentionCount} mentions`}>
                      {c.mentionCount}
                    </span>
                  ) : c.unreadCount > 0 ? (
                    <span class="badge" aria-label={`${c.unreadCount} unread`}>
                      {c.unreadCount}
                    </span>
                  ) : null}
                </button>
              </li>
            ),
          )}
        </ul>
        {community && <VoiceChannels community={community.id} />}
        <VoicePanel />
        <footer class="me">
          <span class="presence online" aria-hidden="true" />
          <span class="name">{cleanName(s.me.displayName || s.me.username)}</span>
          <Preferences />
          <button
            class="link"
            onClick={async () => {
              try {
                await conn?.request({ case: "logout", value: {} });
              } finally {
                forgetToken();
                location.href = "/";
              }
            }}
          >
            Sign out
          </button>
        </footer>
      </nav>
      {channel ? (
        <Conversation key={String(channel.id)} channel={channel} onBack={() => setPane("list")} />
      ) : (
        <main class="empty">
          <p>{s.communities.size ? "Pick a channel." : "You are not in any community yet. Open an invite link to join one."}</p>
        </main>
      )}
      {community && (
        <aside class="members" aria-label="Members">
          <h3>Members — {Math.max(community.memberCount, community.members.length)}</h3>
          <ul role="list">
            {community.members.map((m) => {
              const id = m.user!.id;
              const status = s.presence.get(id) ?? PresenceStatus.OFFLINE;
              return (
                <li key={String(id)} class={s.isOnline(id) ? "" : "offline"}>
                  <span class={`presence ${PresenceStatus[status].toLowerCase()}`} aria-label={PresenceStatus[status].toLowerCase()} />
                  {cleanName(m.nickname || m.user!.displayName || m.user!.username)}
                  {m.user!.bot && <span class="bot-tag" title="a bot">bot</span>}
                </li>
              );
            })}
          </ul>
          {community.members.length < community.memberCount && (
            <button type="button" class="link more-members" onClick={() => void moreMembers(community.id)}>
              Show {community.memberCount - community.members.length} more
            </button>
          )}
        </aside>
      )}
      {switching && (
        <Switcher
          onPick={(p) => {
            setSwitching(false);
            open(p);
          }}
          onClose={() => setSwitching(false)}
        />
      )}
      <Notices />
    </div>
  );
}

async function joinVoice(channel: Channel) {
  if (!voiceSupported(conn?.datagrams)) {
    store.notice(
      conn?.kind === "websocket"
        ? "Voice needs WebTransport, and this connection fell back to a WebSocket (UDP may be blocked here)."
        : "This browser cannot do voice here (it lacks WebCodecs or audio worklets).",
    );
    return;
  }
  voice?.stop();
  voice = null;
  try {
    await conn!.request({ case: "joinVoice", value: { channelId: channel.id, selfMute: false, selfDeaf: false } });
    const v = new Voice(conn!.datagrams!, { changed: () => store.changed() });
    try {
      await v.start();
    } catch (e) {
      await conn!.request({ case: "leaveVoice", value: {} }).catch(() => {});
      throw e instanceof DOMException && e.name === "NotAllowedError"
        ? new Error("Voice needs the microphone, and the browser was not allowed to use it.")
        : e;
    }
    voice = v;
    store.changed();
  } catch (e) {
    store.notice(explain(e));
  }
}

async function leaveVoice() {
  voice?.stop();
  voice = null;
  await conn?.request({ case: "leaveVoice", value: {} }).catch(() => {});
  store.changed();
}

async function setVoiceState(change: { selfMute?: boolean; selfDeaf?: boolean }) {
  if (!voice) return;
  if (change.selfMute !== undefined) voice.muted = change.selfMute;
  if (change.selfDeaf !== undefined) voice.deafened = change.selfDeaf;
  store.changed();
  try {
    await conn!.request({ case: "updateVoiceState", value: change });
  } catch (e) {
    store.notice(explain(e));
  }
}

/// Speaking indicators fade by time: redraw a few times a second while in a call.
function useVoiceClock() {
  const [, tick] = useReducer((n: number, _: void) => n + 1, 0);
  useEffect(() => {
    const t = setInterval(() => voice && tick(), 250);
    return () => clearInterval(t);
  }, []);
}

function VoiceChannels({ community }: { community: bigint }) {
  const s = useStore();
  useVoiceClock();
  const c = s.communities.get(community);
  const rooms = c?.channels.filter((ch) => ch.kind === ChannelKind.VOICE) ?? [];
  if (!rooms.length) return null;
  const mine = s.voice.get(s.me.id)?.channelId;
  return (
    <ul role="list" aria-label="Voice channels" class="voice-channels">
      {rooms.map((ch) => {
        const inside = [...s.voice.values()].filter((v) => v.channelId === ch.id);
        return (
          <li key={String(ch.id)}>
            <button
              class={`channel ${mine === ch.id ? "active" : ""}`}
              disabled={!s.may(ch, Permission.CONNECT)}
              onClick={() => (mine === ch.id ? leaveVoice() : joinVoice(ch))}
              aria-label={`${mine === ch.id ? "Leave" : "Join"} voice channel ${cleanName(ch.name)}`}
            >
              <span class="name">
                <Icon name="speaker" /> {cleanName(ch.name)}
              </span>
            </button>
            <ul role="list" class="in-voice">
              {inside.map((v) => {
                const id = String(v.userId);
                const me = v.userId === s.me.id;
                const speaking = voice && (me ? voice.selfSpeaking : voice.speaking(id));
                const name = cleanName(s.nameOf(v.userId, ch));
                return (
                  <li key={id} class={speaking ? "speaking" : ""} aria-label={`${name}${speaking ? ", speaking" : ""}`}>
                    <span class="avatar" aria-hidden="true">
                      {name.slice(0, 1).toUpperCase()}
                    </span>
                    {name}
                    {(v.selfMute || v.serverMute) && <Icon name="muted" label="muted" />}
                    {v.selfDeaf && <Icon name="deafened" label="deafened" />}
                    {voice && !me && mine === ch.id && (
                      <input
                        type="range"
                        min="0"
                        max="2"
                        step="0.05"
                        value={voice.volume(id)}
                        aria-label={`Volume of ${name}`}
                        onInput={(e) => voice?.setVolume(id, Number((e.target as HTMLInputElement).value))}
                      />
                    )}
                  </li>
                );
              })}
            </ul>
          </li>
        );
      })}
    </ul>
  );
}

function VoicePanel() {
  const s = useStore();
  const state = s.voice.get(s.me.id);
  useEffect(() => {
    // Push to talk: hold V anywhere but a text field.
    const typing = (e: KeyboardEvent) => e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    const down = (e: KeyboardEvent) => {
      if (voice?.mode === "push-to-talk" && e.key.toLowerCase() === "v" && !typing(e) && !voice.talking) {
        voice.talking = true;
        store.changed();
      }
    };
    const up = (e: KeyboardEvent) => {
      if (voice && e.key.toLowerCase() === "v" && voice.talking) {
        voice.talking = false;
        store.changed();
      }
    };
    addEventListener("keydown", down);
    addEventListener("keyup", up);
    return () => {
      removeEventListener("keydown", down);
      removeEventListener("keyup", up);
    };
  }, []);
  if (!voice || !state?.channelId) return null;
  const room = s.channel(state.channelId);
  const v = voice;
  const hold = (on: boolean) => {
    v.talking = on;
    store.changed();
  };
  return (
    <section class="voice-panel" aria-label="Voice">
      <p>
        <strong>Voice connected</strong> — <Icon name="speaker" /> {cleanName(room?.name ?? "")}
      </p>
      <div class="row">
        <button aria-pressed={v.muted} onClick={() => setVoiceState({ selfMute: !v.muted })}>
          {v.muted ? "Unmute" : "Mute"}
        </button>
        <button aria-pressed={v.deafened} onClick={() => setVoiceState({ selfDeaf: !v.deafened })}>
          {v.deafened ? "Undeafen" : "Deafen"}
        </button>
        <button class="danger" onClick={leaveVoice}>
          Leave
        </button>
      </div>
      <label class="check">
        <input
          type="checkbox"
          checked={v.mode === "push-to-talk"}
          onChange={(e) => {
            v.mode = (e.target as HTMLInputElement).checked ? "push-to-talk" : "voice-activity";
            store.changed();
          }}
        />{" "}
        Push to talk (hold V)
      </label>
      {v.mode === "push-to-talk" && (
        <button
          class={v.talking ? "talking" : ""}
          onPointerDown={() => hold(true)}
          onPointerUp={() => hold(false)}
          onPointerLeave={() => hold(false)}
        >
          {v.talking ? "Talking…" : "Hold to talk"}
        </button>
      )}
      <p class="hint">
        sent {v.sent} · received {v.received} packets
      </p>
    </section>
  );
}

function Preferences() {
  const [theme, setTheme] = useState(localStorage.getItem(THEME) ?? "system");
  const [asked, setAsked] = useState(
    typeof Notification === "undefined" || Notification.permission !== "default" || localStorage.getItem(NOTIFY_ASKED) !== null,
  );
  const next = themes[(themes.indexOf(theme as (typeof themes)[number]) + 1) % themes.length];
  return (
    <>
      {!asked && (
        <button
          class="link"
          aria-label="Turn on desktop notifications"
          title="Desktop notifications for mentions and direct messages while this tab is in the background"
          onClick={async () => {
            // Asked once: whatever the answer, the button goes.
            localStorage.setItem(NOTIFY_ASKED, "1");
            setAsked(true);
            await Notification.requestPermission();
          }}
        >
          <Icon name="bell" />
        </button>
      )}
      <button
        class="link"
        aria-label={`Theme: ${theme}; switch to ${next}`}
        title={`Theme: ${theme}`}
        onClick={() => {
          localStorage.setItem(THEME, next);
          applyTheme(next);
          setTheme(next);
        }}
      >
        {theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐"}
      </button>
    </>
  );
}

/// Ctrl+K (⌘K): jump to any channel or conversation by typing part of its name.
function Switcher({ onPick, onClose }: { onPick: (p: Place) => void; onClose: () => void }) {
  const s = store;
  const [q, setQ] = useState("");
  const [i, setI] = useState(0);
  const all: Array<{ label: string; place: Place }> = [];
  for (const c of s.communities.values()) {
    for (const ch of c.channels.filter((ch) => ch.kind === ChannelKind.TEXT)) {
      all.push({ label: `#${cleanName(ch.name)} — ${cleanName(c.name)}`, place: { community: c.id, channel: ch.id } });
    }
  }
  for (const d of s.directs.values()) all.push({ label: `@${cleanName(s.directName(d))}`, place: { community: null, channel: d.id } });
  const found = all.filter((x) => x.label.toLowerCase().includes(q.toLowerCase())).slice(0, 12);
  return (
    <div class="dialog switcher" role="dialog" aria-label="Jump to a conversation">
      <input
        autofocus
        aria-label="Jump to"
        placeholder="Where to?"
        value={q}
        onInput={(e) => {
          setQ((e.target as HTMLInputElement).value);
          setI(0);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape") onClose();
          else if (e.key === "ArrowDown") setI((i + 1) % Math.max(found.length, 1));
          else if (e.key === "ArrowUp") setI((i + found.length - 1) % Math.max(found.length, 1));
          else if (e.key === "Enter" && found[i]) onPick(found[i].place);
          else return;
          e.preventDefault();
        }}
      />
      <ul role="listbox" aria-label="Conversations">
        {found.map((x, k) => (
          <li key={x.label} role="option" aria-selected={k === i} class={k === i ? "chosen" : ""} onMouseDown={() => onPick(x.place)}>
            {x.label}
          </li>
        ))}
      </ul>
    </div>
  );
}

function InviteButton({ community }: { community: bigint }) {
  const [link, setLink] = useState<string | null>(null);
  const create = async () => {
    try {
      const r = await conn!.request({ case: "createInvite", value: { communityId: community, maxUses: 0, expiresInMs: 0n } });
      if (r.case === "invite") setLink(r.value.webLink || `${location.origin}/invite/${r.value.code}`);
    } catch (e) {
      store.notice(explain(e));
    }
  };
  return (
    <>
      <button class="link invite" onClick={create} aria-label="Invite people">
        Invite
      </button>
      {link && (
        <div class="dialog" role="dialog" aria-label="Invite link">
          <p>Anyone with this link can join, from a browser:</p>
          <input readOnly value={link} aria-label="Invite link" onFocus={(e) => (e.target as HTMLInputElement).select()} />
          <div class="row">
            <button onClick={() => navigator.clipboard?.writeText(link).then(() => store.notice("Invite link copied"), () => {})}>Copy</button>
            <button class="link" onClick={() => setLink(null)}>
              Close
            </button>
          </div>
        </div>
      )}
    </>
  );
}

function Notices() {
  const s = useStore();
  if (!s.notices.length) return null;
  return (
    <div class="notices" role="status">
      {s.notices.map((n, i) => (
        <p key={i}>
          {cleanName(n)}
          <button class="link" aria-label="Dismiss" onClick={() => ((s.notices = s.notices.filter((_, j) => j !== i)), s.changed())}>
            ×
          </button>
        </p>
      ))}
    </div>
  );
}

/// Rows in the page at once, however long the channel: the reader's view
/// moves through the timeline by STEP rows when it comes within EDGE_PX of
/// the window's top or bottom.
const WINDOW = 150;
const STEP = 50;
const EDGE_PX = 400;

/// The index of the first message with an id at or after `id`.
function lowerBound(msgs: Message[], id: bigint): number {
  let lo = 0;
  let hi = msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (msgs[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return Math.min(lo, Math.max(0, msgs.length - 1));
}

/// Where the next page of each large community's members starts (the
/// server's cursor; absent: the first page).
const memberPages = new Map<bigint, bigint>();

/// The next page of a large community's members: its snapshot lists only
/// who is around, and the rest come a page at a time when asked for.
async function moreMembers(communityId: bigint) {
  try {
    const afterUserId = memberPages.get(communityId) ?? 0n;
    const r = await patiently(() =>
      conn!.request({ case: "listMembers", value: { communityId, afterUserId, limit: 0 } }),
    );
    if (r.case !== "memberPage") return;
    // Past the last page, the next ask starts over (members come and go).
    memberPages.set(communityId, r.value.nextAfterUserId);
    store.addMembers(communityId, r.value.members);
  } catch (e) {
    store.notice(explain(e));
  }
}

async function loadOlder(channel: bigint) {
  const t = store.timeline(channel);
  if (t.loading || t.complete) return;
  t.loading = true;
  const oldest = t.messages[0]?.id;
  try {
    const r = await patiently(() =>
      conn!.request({
        case: "history",
        value: { channelId: channel, limit: PAGE, anchor: oldest ? { case: "before", value: oldest } : { case: undefined } },
      }),
    );
    if (r.case === "messages") store.addPage(channel, r.value.messages, true);
  } catch (e) {
    store.notice(explain(e));
  } finally {
    t.loading = false;
    // What was asked for while this page loaded (the reader kept
    // scrolling) is answered by the next render's edge check.
    store.changed();
  }
}

function Conversation({ channel, onBack }: { channel: Channel; onBack: () => void }) {
  const s = useStore();
  const t = s.timeline(channel.id);
  const list = useRef<HTMLDivElement>(null);
  const [editing, setEditing] = useState<bigint | null>(null);
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const stick = useRef(true);
  // The row the reader is looking at, and how far from the top of the
  // view: whatever is added or removed around it, it stays put.
  const anchor = useRef<{ id: bigint; top: number } | null>(null);
  // Only a window of the timeline is in the page; `firstId` is its first
  // message, or null while it follows the newest.
  const [firstId, setFirstId] = useState<bigint | null>(null);
  const msgs = t.messages;
  const start = firstId === null ? Math.max(0, msgs.length - WINDOW) : lowerBound(msgs, firstId);
  const end = Math.min(msgs.length, start + WINDOW);
  const canSend = s.may(channel, Permission.SEND_MESSAGES);
  const canManage = s.may(channel, Permission.MANAGE_MESSAGES);
  const direct = channel.kind === ChannelKind.DIRECT || channel.kind === ChannelKind.GROUP;
  const title = direct ? cleanName(s.directName(channel)) : `# ${cleanName(channel.name)}`;

  useEffect(() => {
    if (!t.messages.length) loadOlder(channel.id);
  }, [channel.id]);

  // Keep the view where the reader left it: at the bottom while they are
  // there, and on the same message when rows come or go above or below;
  // then move the window if the reader is near one of its edges.
  const keepPlace = () => {
    const el = list.current;
    if (!el) return;
    if (stick.current) {
      el.scrollTop = el.scrollHeight;
    } else if (anchor.current) {
      const node = el.querySelector<HTMLElement>(`[data-id="${anchor.current.id}"]`);
      if (node) el.scrollTop = node.offsetTop - anchor.current.top;
    }
  };
  useLayoutEffect(() => {
    keepPlace();
    edges();
  });

  // Read up to the newest message while it is on screen.
  const newest = t.messages[t.messages.length - 1];
  useEffect(() => {
    if (newest && stick.current && document.visibilityState === "visible" && newest.id > channel.lastReadId) {
      conn?.request({ case: "ack", value: { channelId: channel.id, messageId: newest.id } }).catch(() => {});
    }
  }, [newest?.id]);

  /// Near the window's top: show older rows (loading them first if none
  /// are kept); near its bottom: newer ones, until it follows the newest.
  const edges = () => {
    const el = list.current;
    if (!el) return;
    const below = el.scrollHeight - el.scrollTop - el.clientHeight;
    if (el.scrollTop < EDGE_PX) {
      if (start > 0) setFirstId(msgs[Math.max(0, start - STEP)].id);
      else if (!t.complete && !t.loading) loadOlder(channel.id);
    } else if (below < EDGE_PX && end < msgs.length) {
      const next = start + STEP;
      setFirstId(next + WINDOW >= msgs.length ? null : msgs[next].id);
    }
  };

  const onScroll = () => {
    const el = list.current!;
    stick.current = end === msgs.length && el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    // The first row whose bottom is in view.
    for (const node of el.querySelectorAll<HTMLElement>("[data-id]")) {
      if (node.offsetTop + node.offsetHeight > el.scrollTop) {
        anchor.current = { id: BigInt(node.dataset.id!), top: node.offsetTop - el.scrollTop };
        break;
      }
    }
    edges();
  };

  const mine = (m: Message) => m.authorId === s.me.id;
  const typers = s.typers(channel.id);
  let lastDay = "";
  let previous: Message | undefined;
  return (
    <main class="conversation" aria-label={title}>
      <header class="conversation-head">
        <button class="back" aria-label="Back to channels" onClick={onBack}>
          ‹
        </button>
        <h2>{title}</h2>
        {channel.topic && <span class="topic">{cleanName(channel.topic)}</span>}
      </header>
      <div class="messages" ref={list} onScroll={onScroll} onLoadCapture={keepPlace} role="log" aria-live="polite" aria-label={`Messages in ${title}`}>
        {t.complete && start === 0 && <p class="beginning">This is the beginning of {title}.</p>}
        {msgs.slice(start, end).map((m) => {
          const day = dayLabel(Number(m.createdAtMs));
          const separator = day !== lastDay ? <div class="day" role="separator">{day}</div> : null;
          // A run of one person's messages shows their name once, as long
          // as no day or five minutes pass.
          const grouped =
            !separator &&
            !m.replyTo &&
            previous?.authorId === m.authorId &&
            Number(m.createdAtMs - previous.createdAtMs) < 5 * 60_000;
          lastDay = day;
          previous = m;
          return (
            <Fragment key={String(m.id)}>
              {separator}
              <MessageRow
                m={m}
                grouped={grouped}
                channel={channel}
                editing={editing === m.id}
                onEdit={mine(m) ? () => setEditing(m.id) : undefined}
                onDelete={mine(m) || canManage ? () => deleteMessage(m) : undefined}
                onReply={canSend ? () => setReplyTo(m) : undefined}
                onDone={() => setEditing(null)}
              />
            </Fragment>
          );
        })}
      </div>
      {end < msgs.length && (
        <button
          class="jump"
          onClick={() => {
            stick.current = true;
            setFirstId(null);
          }}
        >
          Jump to the newest messages
        </button>
      )}
      <div class="typing" aria-live="polite">
        {typers.length ? `${typers.join(", ")} ${typers.length > 1 ? "are" : "is"} typing…` : ""}
      </div>
      {canSend ? (
        <Composer
          channel={channel}
          title={title}
          replyTo={replyTo}
          onReplied={() => setReplyTo(null)}
          onEditLast={() => {
            const last = [...t.messages].reverse().find(mine);
            if (last) setEditing(last.id);
          }}
        />
      ) : (
        <p class="readonly">You cannot send messages here.</p>
      )}
    </main>
  );
}

async function deleteMessage(m: Message) {
  if (!confirm("Delete this message?")) return;
  try {
    await conn!.request({ case: "deleteMessage", value: { channelId: m.channelId, messageId: m.id } });
  } catch (e) {
    store.notice(explain(e));
  }
}

function MessageRow(props: {
  m: Message;
  grouped: boolean;
  channel: Channel;
  editing: boolean;
  onEdit?: () => void;
  onDelete?: () => void;
  onReply?: () => void;
  onDone: () => void;
}) {
  const { m, channel } = props;
  const s = store;
  const mentioned = m.mentionEveryone || m.mentions.includes(s.me.id);
  const replied = m.replyTo ? s.timeline(channel.id).messages.find((x) => x.id === m.replyTo) : undefined;
  return (
    <article class={`message ${mentioned ? "mentioned" : ""} ${props.grouped ? "grouped" : ""}`} data-id={String(m.id)} aria-label={`${cleanName(m.authorName)} at ${timeOfDay(Number(m.createdAtMs))}`}>
      {replied && (
        <p class="reply-to">
          ↪ {cleanName(replied.authorName)}: {cleanName(replied.body).slice(0, 80)}
        </p>
      )}
      <header>
        <span class="author">{cleanName(m.authorName) || s.nameOf(m.authorId, channel)}</span>
        {m.authorBot && <span class="bot-tag" title="a bot">bot</span>}
        <time dateTime={new Date(Number(m.createdAtMs)).toISOString()}>{timeOfDay(Number(m.createdAtMs))}</time>
        {m.editedAtMs > 0n && <span class="edited">(edited)</span>}
        <span class="actions">
          {props.onReply && (
            <button class="link" onClick={props.onReply} aria-label="Reply to message">
              Reply
            </button>
          )}
          {props.onEdit && (
            <button class="link" onClick={props.onEdit} aria-label="Edit message">
              Edit
            </button>
          )}
          {props.onDelete && (
            <button class="link danger" onClick={props.onDelete} aria-label="Delete message">
              Delete
            </button>
          )}
        </span>
      </header>
      {props.editing ? <EditBox m={m} onDone={props.onDone} /> : m.body && <Body text={m.body} />}
      {m.attachments.length > 0 && <Files m={m} />}
    </article>
  );
}

/// Asks, and when the server says to slow down (a busy server, or a reader
/// scrolling fast through a channel of photos), waits as long as it says
/// and asks again, rather than leave the page without what was asked for.
async function patiently<T>(ask: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await ask();
    } catch (e) {
      const wait = e instanceof RequestError && e.wire.code === ErrorCode.RATE_LIMITED ? Number(e.wire.retryAfterMs) : 0;
      if (!wait || attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, Math.min(wait, 5000)));
    }
  }
}

/// Links to a message's files, by message id: `/files/KEY/INDEX` with the
/// key `open_attachments` gave, until it expires (an hour).
const fileLinks = new Map<string, Promise<{ key: string; until: number }>>();
/// Asked one after another: a screen of photos asking all at once would be
/// told to slow down by the dozen, and a page that keeps collecting
/// refusals is taken for a flood and disconnected.
let fileLinksAsked: Promise<unknown> = Promise.resolve();

function filesKey(m: Message): Promise<{ key: string; until: number }> {
  const id = String(m.id);
  const known = fileLinks.get(id);
  const fresh = known?.then((k) => k.until - Date.now() > 60_000).catch(() => false) ?? Promise.resolve(false);
  return fresh.then((ok) => {
    if (ok && known) return known;
    const ask = () => conn!.request({ case: "openAttachments", value: { channelId: m.channelId, messageId: m.id } });
    const asked = fileLinksAsked
      .then(() => patiently(ask))
      .then((r) => {
        if (r.case !== "attachmentAccess") throw new Error("unexpected answer");
        return { key: r.value.key, until: Number(r.value.expiresAtMs) };
      });
    fileLinks.set(id, asked);
    fileLinksAsked = asked.catch(() => fileLinks.delete(id));
    return asked;
  });
}

/// A message's files: photos shown (click for full size), videos and audio
/// played with seeking, anything else a download link. Only types the
/// server found in the bytes are shown inline.
function Files({ m }: { m: Message }) {
  const [key, setKey] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    filesKey(m)
      .then((k) => live && setKey(k.key))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [String(m.id)]);
  return (
    <ul class="files" aria-label="Attached files">
      {m.attachments.map((a, i) => {
        const name = cleanName(a.name);
        const pixels = a.width && a.height ? ` · ${a.width}×${a.height}` : "";
        const label = `${name}${pixels} · ${size(Number(a.size))} · ${cleanName(a.contentType)}`;
        const url = key ? `/files/${encodeURIComponent(key)}/${i}` : null;
        const type = a.contentType;
        // Past 50 megapixels the server makes no preview; a phone would
        // choke decoding the picture inline, so it is a download.
        const huge = a.width * a.height > 50_000_000;
        return (
          <li key={i}>
            {url && INLINE_PICTURES.includes(type) && !huge && (
              <a href={url} target="_blank" rel="noopener noreferrer" aria-label={`Open ${name} full size`}>
                <img src={`${url}?size=preview`} alt={name} loading="lazy" class="photo" width={a.width || undefined} height={a.height || undefined} />
              </a>
            )}
            {/* `#t=0.1` makes phones' browsers (Safari) draw a first frame, not black, before playing. */}
            {url && type.startsWith("video/") && (
              <video src={`${url}#t=0.1`} controls preload="metadata" class="photo" aria-label={name} />
            )}
            {url && type.startsWith("audio/") && <audio src={url} controls preload="metadata" aria-label={name} />}
            {url ? (
              <a href={url} download={name} rel="noopener noreferrer" class="file-link">
                {label}
              </a>
            ) : (
              <span>{label}</span>
            )}
          </li>
        );
      })}
    </ul>
  );
}

/// Picture types every browser draws (HEIF, which only Safari does, is a
/// download like any file).
const INLINE_PICTURES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"];

/// A file size as file managers show it: 512 B, 1.5 kB, 2.4 MB.
function size(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 999.95 && unit + 1 < units.length) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function Body({ text }: { text: string }) {
  return (
    <p class="body">
      {linkify(clean(text)).map((part, i) =>
        part.href ? (
          <a key={i} href={part.href} target="_blank" rel="noopener noreferrer">
            {part.text}
          </a>
        ) : (
          part.text
        ),
      )}
    </p>
  );
}

function EditBox({ m, onDone }: { m: Message; onDone: () => void }) {
  const [text, setText] = useState(m.body);
  const save = async () => {
    if (text.trim() === "" || text === m.body) return onDone();
    try {
      await conn!.request({ case: "editMessage", value: { channelId: m.channelId, messageId: m.id, body: text } });
      onDone();
    } catch (e) {
      store.notice(explain(e));
    }
  };
  return (
    <textarea
      class="edit"
      aria-label="Edit message"
      value={text}
      autofocus
      onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
      onKeyDown={(e) => {
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          save();
        } else if (e.key === "Escape") onDone();
      }}
    />
  );
}

let nonceCounter = 0;

/// People who can be mentioned in a channel: its community's members, or
/// the conversation's participants.
function mentionable(channel: Channel): Array<{ username: string; name: string }> {
  if (channel.communityId) {
    return (store.communities.get(channel.communityId)?.members ?? []).map((m) => ({
      username: m.user!.username,
      name: cleanName(m.nickname || m.user!.displayName || m.user!.username),
    }));
  }
  return channel.recipients.map((u) => ({ username: u.username, name: cleanName(u.displayName || u.username) }));
}

/// The `@word` being typed at the caret, if any.
function mentionAt(text: string, caret: number): { start: number; prefix: string } | null {
  const m = /(^|[^\p{L}\p{N}])@([\p{L}\p{N}_.-]*)$/u.exec(text.slice(0, caret));
  return m ? { start: caret - m[2].length - 1, prefix: m[2].toLowerCase() } : null;
}

function Composer(props: {
  channel: Channel;
  title: string;
  replyTo: Message | null;
  onReplied: () => void;
  onEditLast: () => void;
}) {
  const { channel, title } = props;
  const [text, setText] = useState("");
  const [caret, setCaret] = useState(0);
  const [choice, setChoice] = useState(0);
  /// Files chosen to go with the next message, and how their upload goes.
  const [files, setFiles] = useState<File[]>([]);
  const [uploading, setUploading] = useState<string | null>(null);
  const box = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const canAttach = store.may(channel, Permission.ATTACH_FILES);
  const add = (chosen: FileList | File[] | null | undefined) => {
    if (!canAttach || !chosen) return;
    const more = Array.from(chosen);
    if (more.length) setFiles((have) => [...have, ...more].slice(0, 10));
  };
  const lastTyping = useRef(0);
  const at = mentionAt(text, caret);
  const candidates = at
    ? mentionable(channel)
        .filter((p) => p.username.toLowerCase().startsWith(at.prefix) || p.name.toLowerCase().startsWith(at.prefix))
        .slice(0, 8)
    : [];
  const complete = (username: string) => {
    if (!at) return;
    const next = `${text.slice(0, at.start)}@${username} ${text.slice(caret)}`;
    const pos = at.start + username.length + 2;
    // Set the box at once, caret included: keys typed before the next
    // render must land after the completed name.
    if (box.current) {
      box.current.value = next;
      box.current.setSelectionRange(pos, pos);
    }
    setText(next);
    setCaret(pos);
    setChoice(0);
  };
  const send = async () => {
    const body = text.trim();
    if (!body && !files.length) return;
    // A bot's slash command: invoked, its answers shown as they come.
    const slash = /^\/(\S+)\s*(.*)$/s.exec(body);
    const community = "communityId" in channel ? store.communities.get(channel.communityId) : undefined;
    const command = slash && !files.length ? community?.commands.find((c) => c.name === slash[1].toLowerCase()) : undefined;
    if (slash && command) {
      try {
        const options = commandValues(command, words(slash[2]));
        setText("");
        const answer = await conn!.request({
          case: "invokeCommand",
          value: { channelId: channel.id, botId: command.botId, name: command.name, options },
        });
        if (answer.case === "callStarted") store.startCall(answer.value.callId, command.name);
      } catch (e) {
        setText(body);
        store.notice(e instanceof Error && !(e instanceof RequestError) ? e.message : explain(e));
      }
      return;
    }
    const uploads: string[] = [];
    if (files.length) {
      try {
        const messageBytes = files.reduce((sum, f) => sum + f.size, 0);
        for (const f of files) {
          const name = cleanName(f.name);
          setUploading(`Uploading ${name}…`);
          uploads.push(await upload(conn!, channel.id, f, messageBytes, (p) => setUploading(`Uploading ${name} ${Math.floor(p * 100)}%`)));
        }
      } catch (e) {
        setUploading(null);
        store.notice(explain(e));
        return;
      }
      setUploading(null);
      setFiles([]);
    }
    const nonce = `${Date.now().toString(36)}-${(nonceCounter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const replyTo = props.replyTo?.id ?? 0n;
    // The message ends this typing; the next keystroke announces the next.
    lastTyping.current = 0;
    setText("");
    props.onReplied();
    try {
      await conn!.request({ case: "sendMessage", value: { channelId: channel.id, body, nonce, replyTo, uploads } });
    } catch (e) {
      setText(body);
      store.notice(explain(e));
    }
  };
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
      onDragOver={(e) => canAttach && e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        add(e.dataTransfer?.files);
      }}
    >
      {(files.length > 0 || uploading) && (
        <ul class="chosen-files" aria-label="Files to send">
          {uploading && <li role="status">{uploading}</li>}
          {!uploading &&
            files.map((f, i) => (
              <li key={i}>
                {cleanName(f.name)} · {size(f.size)}
                <button type="button" class="link" aria-label={`Remove ${cleanName(f.name)}`} onClick={() => setFiles(files.filter((_, j) => j !== i))}>
                  ×
                </button>
              </li>
            ))}
        </ul>
      )}
      {props.replyTo && (
        <p class="replying">
          Replying to {cleanName(props.replyTo.authorName)}
          <button type="button" class="link" aria-label="Cancel reply" onClick={props.onReplied}>
            ×
          </button>
        </p>
      )}
      {candidates.length > 0 && (
        <ul class="mentions" role="listbox" aria-label="People to mention">
          {candidates.map((p, i) => (
            <li
              key={p.username}
              role="option"
              aria-selected={i === choice}
              class={i === choice ? "chosen" : ""}
              onMouseDown={(e) => {
                e.preventDefault();
                complete(p.username);
              }}
            >
              {p.name} <span class="hint">@{cleanName(p.username)}</span>
            </li>
          ))}
        </ul>
      )}
      <div class="row">
        <textarea
          ref={box}
          aria-label={`Message ${title}`}
          placeholder={`Message ${title}`}
          rows={1}
          value={text}
          onPaste={(e) => {
            // A pasted picture (a screenshot) is a file to attach.
            if (e.clipboardData?.files.length) {
              e.preventDefault();
              add(e.clipboardData.files);
            }
          }}
          onInput={(e) => {
            const el = e.target as HTMLTextAreaElement;
            setText(el.value);
            setCaret(el.selectionStart);
            setChoice(0);
            const now = Date.now();
            if (now - lastTyping.current > 4000) {
              lastTyping.current = now;
              conn?.request({ case: "typing", value: { channelId: channel.id } }).catch(() => {});
            }
          }}
          onKeyUp={(e) => setCaret((e.target as HTMLTextAreaElement).selectionStart)}
          onClick={(e) => setCaret((e.target as HTMLTextAreaElement).selectionStart)}
          onKeyDown={(e) => {
            if (candidates.length) {
              if (e.key === "ArrowDown" || e.key === "ArrowUp") {
                e.preventDefault();
                const n = candidates.length;
                setChoice((choice + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
                return;
              }
              if (e.key === "Tab" || e.key === "Enter") {
                e.preventDefault();
                complete(candidates[choice].username);
                return;
              }
            }
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              send();
            } else if (e.key === "ArrowUp" && text === "") {
              e.preventDefault();
              props.onEditLast();
            } else if (e.key === "Escape" && props.replyTo) {
              props.onReplied();
            }
          }}
        />
        {canAttach && (
          <>
            <input ref={picker} type="file" multiple hidden aria-hidden="true" onChange={(e) => add((e.target as HTMLInputElement).files)} />
            <button type="button" class="attach" aria-label="Attach files" onClick={() => picker.current?.click()}>
              +
            </button>
          </>
        )}
        <button type="submit" aria-label="Send" disabled={uploading !== null}>
          Send
        </button>
      </div>
    </form>
  );
}

render(<App />, document.getElementById("app")!);
