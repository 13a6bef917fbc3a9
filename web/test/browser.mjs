// The browser client, end to end: a real headless Chromium against a real
// `kith serve`, with a real `kith` CLI user on the other side. Run by
// crates/kith/tests/browser.rs, which starts the server, makes the CLI
// user (alice, the owner of Family) and passes:
//
//   KITH_BIN       the kith binary
//   KITH_WEB       the server's https://HOST:PORT/
//   ALICE          alice's config directory (KITH_CONFIG_DIR for the CLI)
//   INVITE         an invite code to Family
//   TRANSPORT      "webtransport" or "websocket" (forced with ?transport=)
//   SHOTS          where screenshots go
//   CHROMIUM       the browser binary
//   SCENARIO       "chat" (the default), "reset" (bob, on the CLI, gets
//                  a reset link from alice), "large" (Family past the
//                  server's member_list), "three" (two browsers and alice
//                  in `kith chat` under tmux), "acme" (a CA-signed server,
//                  whose CA is in the NSS database under HOME; HOSTS maps
//                  its domain to 127.0.0.1) or "voice"; voice also takes
//   SAID, HEARD    the WAV the browser's fake microphone plays, and where
//                  alice's recording of the browser user goes
//
// Any console error, page error or failed expectation fails the run.

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const [WEB, SHOTS] = ["KITH_WEB", "SHOTS"].map(env);
// The CLI user and the transport, for every scenario but "acme".
const [BIN, ALICE, INVITE, TRANSPORT] = ["KITH_BIN", "ALICE", "INVITE", "TRANSPORT"].map((k) => process.env[k]);
mkdirSync(SHOTS, { recursive: true });

/// alice, on the command line.
function alice(...args) {
  return execFileSync(BIN, args, { env: { ...process.env, KITH_CONFIG_DIR: ALICE }, encoding: "utf8" });
}
function aliceHistory(channel) {
  return alice("history", channel, "--json", "--limit", "100")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
async function eventually(what, f, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
function expect(ok, what) {
  if (!ok) throw new Error(`expected ${what}`);
  console.log(`ok - ${what}`);
}

const problems = [];
const SCENARIO = process.env.SCENARIO ?? "chat";
const args = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"];
if (SCENARIO === "voice") {
  // The microphone is a WAV file, looped; permission is granted as a user would.
  args.push("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${env("SAID")}`);
}
if (SCENARIO === "acme") {
  args.push(`--host-resolver-rules=${env("HOSTS")}`);
}
const browser = await chromium.launch({ executablePath: env("CHROMIUM"), headless: true, args });

async function person(name, viewport = { width: 1280, height: 800 }, trusted = false) {
  // The self-signed page is accepted once, as its user would after
  // comparing the fingerprint; WebTransport then goes by the hash. A
  // CA-signed server needs no exception.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: !trusted, viewport });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on("dialog", (d) => {
    if (d.type() === "confirm") d.accept();
    else {
      problems.push(`${name}: unexpected ${d.type()} dialog: ${d.message()}`);
      d.dismiss();
    }
  });
  return page;
}

const query = TRANSPORT === "websocket" ? "?transport=websocket" : "";
const shot = (page, name) => page.screenshot({ path: `${SHOTS}/${TRANSPORT ?? SCENARIO}-${name}.png` });

/// alice runs a command in the background; resolves with its output when it ends.
function aliceAsync(...args) {
  return new Promise((ok, fail) => {
    const child = spawn(BIN, args, { env: { ...process.env, KITH_CONFIG_DIR: ALICE } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => (code === 0 ? ok(out) : fail(new Error(`kith ${args.join(" ")}: ${out}`))));
  });
}

async function voice() {
  const wren = await person("wren");
  const granted = wren.context().grantPermissions(["microphone"], { origin: WEB });
  await granted;
  // Note the capture timestamp of every voice datagram the page sends
  // (kind 1 | seq u16 | timestamp u32 | opus), to check what goes out.
  await wren.addInitScript(() => {
    window.__voiceTimestamps = [];
    const write = WritableStreamDefaultWriter.prototype.write;
    WritableStreamDefaultWriter.prototype.write = function (chunk) {
      if (chunk instanceof Uint8Array && chunk.length > 7 && chunk[0] === 1) {
        window.__voiceTimestamps.push(new DataView(chunk.buffer, chunk.byteOffset).getUint32(3));
      }
      return write.call(this, chunk);
    };
  });
  await wren.goto(`${WEB}invite/${INVITE}`);
  await wren.getByLabel("Username").fill("wren");
  await wren.getByLabel("Password").fill("wren's password");
  await wren.getByRole("button", { name: "Create account" }).click();
  const join = wren.getByRole("button", { name: "Join voice channel lounge" });
  await join.waitFor();

  // alice records the lounge while wren talks into it from the browser.
  const recording = aliceAsync("voice", "join", "Family/lounge", "--mute", "--output", env("HEARD"), "--duration", "7s");
  await eventually("alice to be in the lounge", () => alice("voice", "list").includes("alice"));
  await join.click();
  await wren.getByRole("region", { name: "Voice" }).waitFor();
  await wren.getByRole("listitem", { name: "wren, speaking" }).waitFor();
  expect(true, "wren's own speaking indicator lights while her microphone plays");
  await shot(wren, "voice");
  const report = await recording;
  expect(/wren: /.test(report), `alice's recorder heard wren (${report.trim().split("\n").pop()})`);
  // Each spurt after a silence carries its own capture time: the page's
  // timestamps jump over the second of silence voice activity left out
  // (Chromium's encoder would have them run on as if it were not there,
  // and listeners would take each new spurt for a late tail).
  const stamps = await wren.evaluate(() => window.__voiceTimestamps);
  const jumps = stamps.slice(1).map((t, i) => (t - stamps[i]) >>> 0);
  const skipped = jumps.filter((d) => d >= 24_000).length;
  expect(skipped >= 1 && jumps.every((d) => d >= 960), `the timestamps step by a frame and skip the silences (${skipped} skips in ${stamps.length} packets)`);
  const sent = Number((await wren.getByText(/sent \d+/).textContent()).match(/sent (\d+)/)[1]);
  expect(sent > 100, `the browser sent ${sent} voice packets`);

  // And back: alice says the same file; wren sees her speak and hears it.
  await wren.getByRole("button", { name: "Mute" }).click();
  const saying = aliceAsync("voice", "join", "Family/lounge", "--input", env("SAID"));
  await wren.getByRole("listitem", { name: "alice, speaking" }).waitFor({ timeout: 15_000 });
  expect(true, "alice's speaking indicator lights in the browser while she talks");
  const volume = wren.getByRole("slider", { name: "Volume of alice" });
  await volume.fill("0.5");
  const kept = await wren.evaluate(() => JSON.parse(localStorage.getItem("kith.voice.volumes") ?? "{}"));
  expect(Object.values(kept).includes(0.5), "alice's volume is kept for the next call");
  await saying;
  const received = Number((await wren.getByText(/received \d+/).textContent()).match(/received (\d+)/)[1]);
  expect(received > 50, `the browser received ${received} of alice's packets`);
  await wren.getByRole("button", { name: "Leave", exact: true }).click();
  await wren.getByRole("region", { name: "Voice" }).waitFor({ state: "detached" });
  await eventually("wren to be gone from the lounge", () => !alice("voice", "list").includes("wren"));
  expect(true, "leaving empties the lounge");
}

async function photos() {
  const wren = await person("wren");
  await wren.goto(`${WEB}invite/${INVITE}`);
  await wren.getByLabel("Username").fill("wren");
  await wren.getByLabel("Password").fill("wren's password");
  await wren.getByRole("button", { name: "Create account" }).click();
  const log = wren.getByRole("log");
  await log.getByText("photo 12").waitFor();
  await eventually(
    "all twelve photos to load",
    () => wren.evaluate(() => [...document.querySelectorAll("img.photo")].filter((i) => i.complete && i.naturalWidth === 120).length === 12),
    30_000,
  ).catch(async (e) => {
    console.error(await wren.evaluate(() => document.body.innerText.slice(0, 600)));
    throw e;
  });
  expect(true, "every photo shows, though the server asked the page to slow down");
  // Sent twice, a file is stored once, and each message still knows its size.
  const captions = await log.locator("a.file-link").allTextContents();
  expect(captions.length === 12 && captions.every((c) => c.startsWith("pebble.png · 120×80 · ")), `each caption names the picture's size (${captions[11]})`);
  await shot(wren, "photos");
}

/// alice's `kith chat`, in a tmux server of its own.
class Terminal {
  constructor() {
    this.socket = `kith-browser-${process.pid}`;
    this.tmux("new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", `env KITH_CONFIG_DIR=${ALICE} ${BIN} chat`);
  }
  tmux(...args) {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" });
  }
  screen() {
    return this.tmux("capture-pane", "-p", "-t", "chat");
  }
  async waitFor(text) {
    try {
      return await eventually(`the terminal to show ${JSON.stringify(text)}`, () => this.screen().includes(text), 20_000);
    } catch (e) {
      throw new Error(`${e.message}; the screen:\n${this.screen()}`);
    }
  }
  type(text) {
    this.tmux("send-keys", "-t", "chat", "-l", text);
    this.tmux("send-keys", "-t", "chat", "Enter");
  }
  close() {
    try {
      this.tmux("kill-server");
    } catch {
      // Already gone.
    }
  }
}

async function join(name) {
  const page = await person(name);
  await page.goto(`${WEB}invite/${INVITE}${query}`);
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(`${name}'s password`);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("textbox", { name: "Message # general" }).waitFor();
  return page;
}

async function say(page, text) {
  const box = page.getByRole("textbox", { name: "Message # general" });
  await box.fill(text);
  await box.press("Enter");
}

async function three() {
  const term = new Terminal();
  try {
    await term.waitFor("● connected");
    const wren = await join("wren");
    const robin = await join("robin");
    await say(wren, "wren here, from a browser");
    await robin.getByRole("log").getByText("wren here, from a browser").waitFor();
    await term.waitFor("wren here, from a browser");
    expect(true, "a browser user's message reaches the other browser and kith chat");
    term.type("alice here, from a terminal");
    await wren.getByRole("log").getByText("alice here, from a terminal").waitFor();
    await robin.getByRole("log").getByText("alice here, from a terminal").waitFor();
    expect(true, "kith chat's message reaches both browsers");
    await say(robin, "robin too");
    await wren.getByRole("log").getByText("robin too").waitFor();
    await term.waitFor("robin too");
    expect(true, "and the second browser's reaches everyone");
    await robin.getByRole("textbox", { name: "Message # general" }).pressSequentially("typing…");
    await wren.getByText("robin is typing…").waitFor();
    expect(true, "typing shows in the other browser");
    await shot(wren, "three");
  } finally {
    term.close();
  }
}

/// A server with a CA-signed certificate: the page loads without any
/// exception and connects with no certificate hash. Chromium refuses QUIC
/// to a root installed locally (only publicly trusted roots may serve
/// QUIC), so against the test CA the page falls back to the WebSocket; a
/// public CA's certificate gets WebTransport (the Rust side checks `h3`
/// with the same certificate).
/// The Rust side runs examples/bots/echo.py (/echo, /countdown) in Family.
async function bots() {
  const page = await join("wren");
  await say(page, "/echo hi from the web");
  await page.getByRole("log").getByText("hi from the web").waitFor();
  expect(true, "a bot's public answer to a browser user's /echo is its message in the channel");
  const status = page.getByRole("status");
  await say(page, "/countdown 2");
  await status.getByText("/countdown: liftoff").waitFor();
  expect(true, "an answer for the invoker alone shows as a notice");
  await say(page, "/countdown lots");
  await status.getByText("n must be a whole number").waitFor();
  const box = page.getByRole("textbox", { name: "Message # general" });
  expect((await box.inputValue()) === "/countdown lots", "a mistyped command stays in the box, with how to call it");
  await shot(page, "bot");
}

/// A community past the server's `member_list` (3 here: alice and four
/// more, made on the CLI and never online, and the newcomer): its list
/// shows who is around and how many there are, and the rest when asked.
async function large() {
  const page = await join("wren");
  const members = page.getByRole("complementary", { name: "Members" });
  await members.getByText("Members — 6").waitFor();
  expect(!(await members.getByText("carol", { exact: true }).isVisible()), "an offline member is not listed at first");
  await shot(page, "large-at-first");
  await members.getByRole("button", { name: /^Show \d+ more$/ }).click();
  for (const name of ["alice", "bob", "carol", "dave", "erin", "wren"]) {
    await members.getByText(name, { exact: true }).waitFor();
  }
  expect((await members.getByRole("button").count()) === 0, "once everyone is listed, there is nothing more to ask for");
  await shot(page, "large");
}

/// A member whose account needs a password (imported, or forgotten) opens
/// the reset link the owner made, chooses one, and is in; the link works once.
async function reset() {
  const made = JSON.parse(alice("admin", "reset-password", "bob", "--json"));
  expect(made.web_link.startsWith(`${WEB}reset/bob/`), "the owner's reset code comes as a browser link");
  const bob = await person("bob");
  await bob.goto(`${made.web_link}${query}`);
  await bob.getByRole("heading", { name: "Choose your password" }).waitFor();
  expect((await bob.getByLabel("Username").inputValue()) === "bob", "the link fills in who it is for");
  await shot(bob, "reset");
  await bob.getByLabel("New password").fill("bob's new password");
  await bob.getByRole("button", { name: "Set password and sign in" }).click();
  await bob.getByRole("textbox", { name: "Message # general" }).waitFor();
  expect(new URL(bob.url()).pathname === "/", "signed in, and the code is gone from the address bar");
  await say(bob, "in with my new password");
  await eventually("alice to see bob's message", () =>
    aliceHistory("Family/general").some((m) => m.body === "in with my new password"),
  );
  expect(true, "bob chats after choosing his password");

  // The same link again: refused, saying what to do.
  const again = await person("someone with the old link");
  await again.goto(`${made.web_link}${query}`);
  await again.getByLabel("New password").fill("another password");
  await again.getByRole("button", { name: "Set password and sign in" }).click();
  await again.getByRole("alert").getByText("used already").waitFor();
  await shot(again, "reset-used");
  expect(true, "a used link is refused with what to do");

  // On a phone: the same page, fitting the screen.
  const fresh = JSON.parse(alice("admin", "reset-password", "bob", "--json"));
  const phone = await person("bob on a phone", { width: 390, height: 844 });
  await phone.goto(`${fresh.web_link}${query}`);
  await phone.getByRole("button", { name: "Set password and sign in" }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  expect(!overflow, "the reset page fits a phone's width");
  await shot(phone, "reset-phone");
}

async function acme() {
  const visitor = await person("visitor", undefined, true);
  await visitor.goto(WEB);
  await visitor.getByRole("heading", { name: /kith/ }).waitFor();
  expect(true, "the page loads with the CA-signed certificate and no exception");
  await eventually("the page to connect", async () => (await visitor.evaluate(() => document.documentElement.dataset.transport)) !== undefined);
  const transport = await visitor.evaluate(() => document.documentElement.dataset.transport);
  expect(transport === "webtransport" || transport === "websocket", `and speaks over ${transport}`);
  // The one console error that rule causes is expected; any other still fails.
  const refused = /QUIC_TLS_CERTIFICATE_UNKNOWN/;
  for (let i = problems.length - 1; i >= 0; i--) if (refused.test(problems[i])) problems.splice(i, 1);
  const details = await visitor.evaluate(async () => (await fetch("/api/webtransport")).json());
  expect(details.hashes.length === 0, "without any certificate hash");
  await shot(visitor, "acme");
}

async function chat() {
  const wren = await person("wren");
  await wren.goto(`${WEB}invite/${INVITE}${query}`);
  await wren.getByLabel("Username").fill("wren");
  await wren.getByLabel("Password").fill("wren's password");
  await shot(wren, "join");
  await wren.getByRole("button", { name: "Create account" }).click();

  // She lands in Family and sees the newest of alice's 120 messages.
  const log = wren.getByRole("log");
  await log.getByText("message number 120", { exact: true }).waitFor();
  expect((await wren.evaluate(() => document.documentElement.dataset.transport)) === TRANSPORT, `the page speaks over ${TRANSPORT}`);
  expect(new URL(wren.url()).pathname === "/", "the invite link is gone from the address bar once joined");
  await shot(wren, "channel");

  // Both ways, with the CLI.
  const composer = wren.getByRole("textbox", { name: "Message # general" });
  await composer.fill("hello from the browser");
  await composer.press("Enter");
  await log.getByText("hello from the browser").waitFor();
  const mine = await eventually("alice to see wren's message", () =>
    aliceHistory("Family/general").find((m) => m.body === "hello from the browser" && m.author === "wren"),
  );
  expect(mine, "alice reads wren's message with `kith history`");
  alice("send", "Family/general", "hello from the terminal");
  await log.getByText("hello from the terminal").waitFor();
  expect(true, "wren sees alice's reply at once");

  // Her own edit shows on her screen at once, and on alice's.
  await composer.press("ArrowUp");
  const edit = wren.getByRole("textbox", { name: "Edit message" });
  await edit.fill("hello from the browser, edited");
  await edit.press("Enter");
  await log.getByText("hello from the browser, edited").waitFor();
  await log.getByRole("article").filter({ hasText: "hello from the browser, edited" }).getByText("(edited)").waitFor();
  await eventually("alice to see the edit", () =>
    aliceHistory("Family/general").find((m) => m.id === mine.id && m.body === "hello from the browser, edited"),
  );
  expect(true, "an edit shows at once on both screens");

  // alice edits and deletes hers; wren sees both.
  const theirs = aliceHistory("Family/general").find((m) => m.body === "hello from the terminal");
  alice("edit", "Family/general", theirs.id, "hello from the terminal (fixed)");
  await log.getByText("hello from the terminal (fixed)").waitFor();
  alice("delete", "Family/general", theirs.id);
  await log.getByText("hello from the terminal (fixed)").waitFor({ state: "detached" });
  expect(true, "alice's edit and delete reach the browser");

  // A reply, with a mention completed from the member list.
  const question = log.getByRole("article").filter({ hasText: "message number 120" });
  await question.hover();
  await question.getByRole("button", { name: "Reply to message" }).click();
  await wren.getByText("Replying to alice").waitFor();
  await composer.fill("");
  await composer.pressSequentially("thanks @al");
  await wren.getByRole("option", { name: /alice/ }).waitFor();
  await composer.press("Tab");
  expect((await composer.inputValue()) === "thanks @alice ", "@al completes to @alice");
  await composer.pressSequentially("for all of these");
  await composer.press("Enter");
  const reply = await eventually("alice to get the reply", () =>
    aliceHistory("Family/general").find((m) => m.body === "thanks @alice for all of these"),
  );
  const m120 = aliceHistory("Family/general").find((m) => m.body === "message number 120");
  expect(reply.mentions.length === 1 && reply.mentions[0] === m120.author_id, "the reply mentions alice");
  expect(reply.reply_to === m120.id, "and answers message 120");
  await log.getByText("↪ alice: message number 120").waitFor();

  // wren deletes her own.
  const row = log.getByRole("article").filter({ hasText: "hello from the browser, edited" });
  await row.hover();
  await row.getByRole("button", { name: "Delete message" }).click();
  await row.waitFor({ state: "detached" });
  await eventually("the delete to reach alice", () => !aliceHistory("Family/general").some((m) => m.id === mine.id));
  expect(true, "a delete shows at once on both screens");

  // Scrolling back loads older pages until the channel's beginning.
  for (let i = 0; i < 20; i++) {
    await log.evaluate((el) => (el.scrollTop = 0));
    if (await log.getByText("message number 1", { exact: true }).count()) break;
    await wren.waitForTimeout(300);
  }
  await log.getByText("message number 1", { exact: true }).waitFor();
  await log.getByText("This is the beginning of # general.").waitFor();
  expect(true, "scrolling back loads older pages down to the first message");
  await shot(wren, "scrolled-back");
  await log.evaluate((el) => (el.scrollTop = el.scrollHeight));

  // Unread badges, and opening the channel clears them.
  alice("channel", "create", "Family/news");
  const news = wren.getByRole("button", { name: /# news/ });
  await news.waitFor();
  alice("send", "Family/news", "the news");
  await news.getByLabel("1 unread").waitFor();
  expect(true, "a message in another channel shows as an unread badge");
  await news.click();
  await wren.getByRole("log").getByText("the news").waitFor();
  await eventually("the badge to clear", async () => (await news.getByLabel(/unread/).count()) === 0);
  expect(true, "reading the channel clears its badge");

  // Ctrl+K jumps anywhere by name.
  await wren.keyboard.press("Control+k");
  await wren.getByRole("textbox", { name: "Jump to" }).fill("gen");
  await wren.keyboard.press("Enter");
  await wren.getByRole("textbox", { name: "Message # general" }).waitFor();
  expect(true, "Ctrl+K, a few letters and Enter open #general");

  // The theme follows the system until chosen.
  await wren.getByRole("button", { name: /^Theme: system/ }).click();
  expect((await wren.evaluate(() => document.documentElement.dataset.theme)) === "dark", "the theme can be switched to dark");
  await shot(wren, "dark");
  await wren.getByRole("button", { name: /^Theme: dark/ }).click();
  await wren.getByRole("button", { name: /^Theme: light/ }).click();

  // A direct message.
  alice("send", "@wren", "psst, just you");
  await wren.getByRole("button", { name: "Direct messages" }).click();
  await wren.getByRole("button", { name: /alice/ }).click();
  await wren.getByRole("log").getByText("psst, just you").waitFor();
  expect(true, "a direct message from the CLI arrives in the browser");
  const dm = wren.getByRole("textbox", { name: "Message alice" });
  await dm.fill("got it");
  await dm.press("Enter");
  await eventually("alice to read the DM reply", () => aliceHistory("@wren").some((m) => m.body === "got it"));
  expect(true, "and the answer reaches alice");

  // Hostile content renders as inert text.
  await wren.getByRole("button", { name: "Family" }).click();
  await wren.getByRole("button", { name: /# general/ }).click();
  const hostile = [
    '<script>alert("x")</script><img src=x onerror=alert(1)>',
    // (The server refuses control characters such as ESC outright.)
    "\u202Eevil\u202C and zero\u200Bwidth and \u2066isolated\u2069",
    `https://example.org/"><b>bold</b>`,
  ];
  for (const h of hostile) alice("send", "Family/general", h);
  const general = wren.getByRole("log");
  await general.getByText('<script>alert("x")</script>', { exact: false }).waitFor();
  const inert = await general.evaluate((el) => ({
    scripts: el.querySelectorAll("script, img, b").length,
    text: el.textContent,
    links: [...el.querySelectorAll("a")].map((a) => ({ rel: a.rel, target: a.target, href: a.getAttribute("href") })),
  }));
  expect(inert.scripts === 0, "markup in a message stays text");
  expect(!/[\u202A-\u202E\u2066-\u2069\u200B\u001b]/.test(inert.text), "bidi, zero-width and escape characters are removed");
  expect(inert.links.length > 0 && inert.links.every((l) => l.rel.includes("noopener") && l.rel.includes("noreferrer")), "links open with noopener noreferrer");
  await shot(wren, "hostile");

  // Files alice attaches are listed under her message, with a hostile name
  // made inert (no path, no bidi override).
  const file = `${mkdtempSync(`${tmpdir()}/kith-`)}/\u202Egpj.exe`;
  writeFileSync(file, "\xFF\xD8\xFF\xE0 hello");
  alice("send", "Family/general", "--file", file, "a file for you");
  const files = general.getByRole("list", { name: "Attached files" }).last();
  await files.waitFor();
  const listed = await files.textContent();
  expect(/^gpj\.exe · \d+ B · application\/octet-stream$/.test(listed), `the file is listed by cleaned name, size and type (${listed})`);
  const link = files.getByRole("link", { name: /gpj\.exe/ });
  expect((await link.getAttribute("download")) === "gpj.exe", "a file that is not media is a download link, never shown");
  const served = await wren.evaluate(async (href) => {
    const r = await fetch(href);
    return { status: r.status, type: r.headers.get("content-type"), disposition: r.headers.get("content-disposition"), csp: r.headers.get("content-security-policy") };
  }, await link.getAttribute("href"));
  expect(served.status === 200 && served.type === "application/octet-stream" && served.disposition.startsWith("attachment") && served.csp.includes("sandbox"), `it is served as an inert download (${JSON.stringify(served)})`);
  // A photo is shown in the conversation (a 240×160 PNG).
  alice("send", "Family/general", "--file", env("PHOTO"), "a photo");
  const photo = general.getByRole("img", { name: "sunset.png" });
  await photo.waitFor();
  expect((await photo.getAttribute("width")) === "240" && (await photo.getAttribute("height")) === "160", "its place is kept before it loads (240×160)");
  await eventually("the photo to load", () => photo.evaluate((img) => img.complete && img.naturalWidth === 240));
  expect(true, "a photo is shown inline, fetched with the message's expiring key");

  // wren attaches a photo from her side (the picker a phone opens on its
  // gallery or camera), and alice gets the very same bytes.
  await wren.locator('input[type="file"]').setInputFiles(env("PHOTO"));
  await wren.getByRole("list", { name: "Files to send" }).getByText("sunset.png").waitFor();
  await wren.getByLabel("Message # general").fill("my sunset");
  await shot(wren, "attaching");
  await wren.getByRole("button", { name: "Send", exact: true }).click();
  await general.getByRole("img", { name: "sunset.png" }).nth(1).waitFor();
  const sent = await eventually("alice to see wren's photo", () =>
    aliceHistory("Family/general").find((m) => m.body === "my sunset" && m.attachments?.length === 1),
  );
  const saved = mkdtempSync(`${tmpdir()}/kith-`);
  alice("download", "Family/general", sent.id, "--out", saved);
  expect(readFileSync(`${saved}/sunset.png`).equals(readFileSync(env("PHOTO"))), "a photo sent from the browser reaches the CLI byte for byte");
  await shot(wren, "file");

  // A huge message is wrapped, not a page as wide as itself.
  alice("send", "Family/general", "x".repeat(3900));
  await general.getByText("x".repeat(100), { exact: false }).waitFor();
  const wide = await wren.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  expect(!wide, "a 3900-character word wraps inside the window");

  // The phone-sized screen: one pane at a time.
  const phone = await person("wren on a phone", { width: 390, height: 844 });
  await phone.goto(`${WEB}${query}`);
  await phone.getByLabel("Username").fill("wren");
  await phone.getByLabel("Password").fill("wren's password");
  await phone.getByRole("button", { name: "Sign in" }).click();
  await phone.getByRole("button", { name: /# general/ }).waitFor();
  await shot(phone, "phone-channels");
  expect(!(await phone.getByRole("log").isVisible().catch(() => false)), "a phone shows the channel list alone first");
  await phone.getByRole("button", { name: /# general/ }).click();
  await phone.getByRole("log").getByText("hello from the terminal", { exact: false }).count();
  await phone.getByRole("textbox", { name: "Message # general" }).waitFor();
  expect(!(await phone.getByRole("navigation", { name: /Channels of/ }).isVisible()), "then the conversation alone");
  await shot(phone, "phone-conversation");
  await phone.getByRole("button", { name: "Back to channels" }).click();
  await phone.getByRole("button", { name: /# general/ }).waitFor();
  expect(true, "and back");

  // Signing out revokes the token: the next visit asks again.
  await wren.getByRole("button", { name: "Sign out" }).click();
  await wren.getByRole("button", { name: "Sign in" }).waitFor();
  expect(true, "signing out returns to the sign-in page");
}

try {
  await ({ voice, three, acme, photos, bots, reset, large, chat }[SCENARIO] ?? chat)();
} catch (e) {
  problems.push(e.stack ?? String(e));
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("all browser checks passed");
