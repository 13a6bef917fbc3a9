// The browser's half of `kith-bench voice --latency --browser`: a signed-in
// tab joins the voice channel with Chromium's fake microphone playing
// SAID (a click train, looped), and reports when each click passed two
// points of the page's own audio graph, in wall-clock milliseconds:
//
//   mouth: the microphone's samples entering the graph (what the page's
//          capture worklet is fed), and
//   ear:   the playback worklet's output, plus the output latency the
//          AudioContext reports (when the sample reaches the speaker).
//
// The probe is one AudioWorklet added beside the page's own nodes by an
// init script; the page's code is not changed. Not a test: kith-bench
// pairs these times with its native client's and prints the delays.
//
//   KITH_WEB=https://127.0.0.1:PORT/ TOKEN=… SAID=clicks.wav SECONDS=12 \
//   CHROMIUM=/usr/bin/chromium node test/voice-latency.mjs

import { chromium } from "playwright-core";

const { KITH_WEB, TOKEN, SAID, CHROMIUM } = process.env;
const SECONDS = Number(process.env.SECONDS ?? 12);
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${SAID}`,
  ],
});
// The probe's module is a data: URL, which the page's CSP rightly refuses;
// the measuring context alone lifts it.
const ctx = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true });
await ctx.grantPermissions(["microphone"], { origin: KITH_WEB });
await ctx.addInitScript((token) => {
  localStorage.setItem("kith.token", token);
  const probe = `
    // An onset is a sample above the threshold after 200 ms below it.
    const THRESHOLD = 0.05, QUIET = 0.2 * sampleRate;
    registerProcessor("latency-probe", class extends AudioWorkletProcessor {
      constructor() { super(); this.quiet = QUIET; }
      process(inputs) {
        const now = Date.now();
        const channel = inputs[0] && inputs[0][0];
        if (!channel) return true;
        for (let i = 0; i < channel.length; i++) {
          if (Math.abs(channel[i]) > THRESHOLD) {
            if (this.quiet >= QUIET) this.port.postMessage(now + (i * 1000) / sampleRate);
            this.quiet = 0;
          } else this.quiet++;
        }
        return true;
      }
    });`;
  const url = "data:text/javascript;base64," + btoa(probe);
  window.__onsets = { mouth: [], ear: [] };
  const tap = (context, source, kind, extraMs) =>
    context.audioWorklet.addModule(url).then(() => {
      const node = new Original(context, "latency-probe", { numberOfOutputs: 0 });
      node.port.onmessage = (e) => window.__onsets[kind].push(e.data + extraMs());
      source.connect(node);
    });
  const Original = window.AudioWorkletNode;
  window.AudioWorkletNode = class extends Original {
    constructor(context, name, options) {
      super(context, name, options);
      if (name === "kith-playback") {
        tap(context, this, "ear", () => (context.outputLatency || 0) * 1000);
        window.__voiceContext = context;
      }
    }
  };
  // How long the page's Opus encoder holds each frame: encode() to output
  // (one 20 ms frame in, one chunk out, in order).
  window.__encoderMs = [];
  const OriginalEncoder = window.AudioEncoder;
  window.AudioEncoder = class extends OriginalEncoder {
    constructor(init) {
      const given = [];
      super({
        ...init,
        output: (chunk, meta) => {
          window.__encoderMs.push(performance.now() - given.shift());
          init.output(chunk, meta);
        },
      });
      this.given = given;
    }
    encode(data) {
      this.given.push(performance.now());
      super.encode(data);
    }
  };
  const createSource = AudioContext.prototype.createMediaStreamSource;
  AudioContext.prototype.createMediaStreamSource = function (stream) {
    const source = createSource.call(this, stream);
    tap(this, source, "mouth", () => 0);
    return source;
  };
}, TOKEN);

const page = await ctx.newPage();
const problems = [];
page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
page.on("pageerror", (e) => problems.push(e.message));
await page.goto(KITH_WEB);
await page.getByRole("button", { name: /^Join voice channel / }).first().click();
await page.getByRole("region", { name: "Voice" }).waitFor();
console.error("browser: in voice");
await page.waitForTimeout(SECONDS * 1000);
const onsets = await page.evaluate(() => ({
  ...window.__onsets,
  latency: { base: window.__voiceContext.baseLatency, output: window.__voiceContext.outputLatency },
  encoderMs: window.__encoderMs.sort((a, b) => a - b)[window.__encoderMs.length >> 1],
  encoded: window.__encoderMs.length,
}));
await browser.close();
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(JSON.stringify(onsets));
