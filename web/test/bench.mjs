// Figures for BENCHMARKS.md ("Browser client"): what a first load costs,
// how long until the first message shows, and what a tab holding a whole
// long channel weighs. Not a test: it prints numbers. Usage:
//
//   KITH_WEB=https://127.0.0.1:7443/ USERNAME=bench PASSWORD=... \
//   CHROMIUM=/usr/bin/chromium node test/bench.mjs
//
// against a server where USERNAME's first community's first channel holds
// the messages to load (web/test/fill.sh makes one).

import { chromium } from "playwright-core";

const { KITH_WEB, USERNAME, PASSWORD, CHROMIUM } = process.env;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });

/// Bytes received on the wire (compressed) for each response of a page load.
async function measuredLoad(page, action) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  const bytes = new Map();
  cdp.on("Network.loadingFinished", (e) => bytes.set(e.requestId, e.encodedDataLength));
  const urls = new Map();
  cdp.on("Network.responseReceived", (e) => urls.set(e.requestId, new URL(e.response.url).pathname));
  const t0 = Date.now();
  await action();
  const ms = Date.now() - t0;
  const byPath = {};
  for (const [id, n] of bytes) byPath[urls.get(id) ?? id] = n;
  return { ms, byPath, total: [...bytes.values()].reduce((a, b) => a + b, 0) };
}

const page = await ctx.newPage();
const signIn = await measuredLoad(page, async () => {
  await page.goto(KITH_WEB);
  await page.getByLabel("Username").waitFor();
});
await page.getByLabel("Username").fill(USERNAME);
await page.getByLabel("Password").fill(PASSWORD);
await page.getByLabel("Remember me on this browser").check();
await page.getByRole("button", { name: "Sign in" }).click();
try {
  await page.getByRole("log").getByRole("article").first().waitFor();
} catch (e) {
  console.error(await page.evaluate(() => document.body.innerText.slice(0, 400)));
  throw e;
}

// A returning user (token remembered): from navigation to the first message.
const loads = [];
for (let i = 0; i < 5; i++) {
  const p = await ctx.newPage();
  const l = await measuredLoad(p, async () => {
    await p.goto(KITH_WEB);
    try {
      await p.getByRole("log").getByRole("article").first().waitFor();
    } catch (e) {
      console.error("returning page:", await p.evaluate(() => document.body.innerText.slice(0, 400)));
      throw e;
    }
  });
  loads.push(l);
  await p.close();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(JSON.stringify({ first_load_bytes: signIn.byPath, first_load_total: signIn.total }));
console.log(JSON.stringify({ time_to_first_message_ms: loads.map((l) => l.ms), median_ms: median(loads.map((l) => l.ms)), transport: await page.evaluate(() => document.documentElement.dataset.transport) }));

// Scroll back through the whole channel, then weigh the tab.
const log = page.getByRole("log");
const t0 = Date.now();
for (;;) {
  if (await log.getByText(/This is the beginning/).count()) break;
  await log.evaluate((el) => (el.scrollTop = 0));
  await page.waitForTimeout(50);
  if (Date.now() - t0 > 600_000) throw new Error("scrolling back took over 10 minutes");
}
const loadedMs = Date.now() - t0;
const messages = await log.getByRole("article").count();
const cdp = await ctx.newCDPSession(page);
await cdp.send("HeapProfiler.collectGarbage");
const { metrics } = await cdp.send("Performance.getMetrics").then(async () => {
  await cdp.send("Performance.enable");
  return cdp.send("Performance.getMetrics");
});
const metric = (name) => metrics.find((m) => m.name === name)?.value;
// Frame times while reading it all again, oldest to newest, half a screen
// a frame: the window of rows moves through the whole channel.
const frames = await log.evaluate(async (el) => {
  const times = [];
  let last = performance.now();
  for (let i = 0; i < 1500; i++) {
    el.scrollTop += el.clientHeight / 2;
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  times.sort((a, b) => a - b);
  const q = (p) => +times[Math.floor(times.length * p)].toFixed(1);
  return { frames: times.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: +times[times.length - 1].toFixed(1) };
});
const reached = await log.getByRole("article").last().textContent();
console.log(
  JSON.stringify({
    rows_in_page: messages,
    scroll_back_ms: loadedMs,
    last_row_after_reading_down: reached?.slice(-80),
    js_heap_used_mib: +(metric("JSHeapUsedSize") / 1048576).toFixed(1),
    dom_nodes: metric("Nodes"),
    scroll_frame_ms: frames,
  }),
);
await browser.close();
