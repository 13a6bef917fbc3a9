// Voice in the browser: the microphone (with the browser's echo
// cancellation and noise suppression) encoded to Opus by WebCodecs and sent
// as WebTransport datagrams in kith's voice format; what others say,
// decoded per speaker and played through the playback worklet's jitter
// buffers. The packet format (kith_proto::voice):
//
//   to the server:   kind=1 | seq u16 | timestamp u32 | opus
//   from the server: kind=1 | sender u64 | seq u16 | timestamp u32 | opus

const KIND_VOICE = 1;
const RATE = 48_000;
const FRAME = 960;
/// A frame this loud (RMS) is speech, for voice activity and indicators.
const SPEAKING_RMS = 0.01;
/// Speech keeps the microphone open this long after it stops.
const HANG_MS = 400;

export type Mode = "voice-activity" | "push-to-talk";

const VOLUMES = "kith.voice.volumes";

function savedVolumes(): Record<string, number> {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(VOLUMES) ?? "{}");
    if (typeof v !== "object" || v === null) return {};
    // Only gains the slider could have set.
    return Object.fromEntries(
      Object.entries(v).filter((e): e is [string, number] => typeof e[1] === "number" && e[1] >= 0 && e[1] <= 2),
    );
  } catch {
    return {};
  }
}

export interface VoiceListener {
  changed(): void;
}

interface Speaker {
  decoder: AudioDecoder;
  lastSeq: number;
  lastLoud: number;
  packets: number;
}

export function supported(datagrams: unknown): boolean {
  return (
    datagrams !== undefined &&
    typeof AudioEncoder !== "undefined" &&
    typeof AudioDecoder !== "undefined" &&
    typeof AudioWorkletNode !== "undefined" &&
    !!navigator.mediaDevices?.getUserMedia
  );
}

export class Voice {
  mode: Mode = "voice-activity";
  muted = false;
  deafened = false;
  /// Push-to-talk: the key is held.
  talking = false;
  /// Sent and received, for the voice panel's connection info.
  sent = 0;
  received = 0;
  private ctx: AudioContext | null = null;
  private stream: MediaStream | null = null;
  private encoder: AudioEncoder | null = null;
  private playback: AudioWorkletNode | null = null;
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  private speakers = new Map<string, Speaker>();
  private volumes = new Map<string, number>(Object.entries(savedVolumes()));
  private seq = 0;
  private timestamp = 0;
  /// The capture timestamps of the frames given to the encoder and not yet
  /// out of it, oldest first. Chromium numbers its output chunks as if the
  /// input had no gaps, so a chunk's own timestamp loses the silence voice
  /// activity left out; listeners need that gap to start a new spurt.
  private encoding: number[] = [];
  private lastLoud = 0;
  private stopped = false;

  constructor(
    private datagrams: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> },
    private listener: VoiceListener,
  ) {}

  /// Opens the microphone and the speakers. Throws if the user refuses
  /// the microphone; then nothing was started.
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    this.ctx = ctx;
    await ctx.audioWorklet.addModule("/worklet.js");
    const capture = new AudioWorkletNode(ctx, "kith-capture", { numberOfOutputs: 0 });
    ctx.createMediaStreamSource(this.stream).connect(capture);
    capture.port.onmessage = (e: MessageEvent<Float32Array<ArrayBuffer>>) => this.captured(e.data);
    this.playback = new AudioWorkletNode(ctx, "kith-playback", { outputChannelCount: [2] });
    this.playback.connect(ctx.destination);
    this.encoder = new AudioEncoder({
      // One 20 ms frame in, one chunk out, in order.
      output: (chunk) => this.send(chunk, this.encoding.shift() ?? 0),
      error: (e) => console.warn("voice encoder:", e),
    });
    this.encoder.configure({
      codec: "opus",
      sampleRate: RATE,
      numberOfChannels: 1,
      bitrate: 32_000,
      opus: { frameDuration: 20_000, useinbandfec: true },
    } as AudioEncoderConfig);
    this.writer = this.datagrams.writable.getWriter();
    this.reader = this.datagrams.readable.getReader();
    this.receive();
    if (ctx.state === "suspended") await ctx.resume();
  }

  stop() {
    this.stopped = true;
    this.stream?.getTracks().forEach((t) => t.stop());
    for (const s of this.speakers.values()) if (s.decoder.state !== "closed") s.decoder.close();
    this.speakers.clear();
    if (this.encoder?.state !== "closed") this.encoder?.close();
    this.reader?.cancel().catch(() => {});
    this.writer?.releaseLock();
    this.ctx?.close();
  }

  /// Whether `sender` (a user id as a decimal string) spoke in the last moment.
  speaking(sender: string): boolean {
    const s = this.speakers.get(sender);
    return !!s && performance.now() - s.lastLoud < HANG_MS;
  }

  get selfSpeaking(): boolean {
    return this.open && performance.now() - this.lastLoud < HANG_MS;
  }

  volume(sender: string): number {
    return this.volumes.get(sender) ?? 1;
  }

  /// Kept in this browser, per person, across calls and reloads.
  setVolume(sender: string, gain: number) {
    this.volumes.set(sender, gain);
    localStorage.setItem(VOLUMES, JSON.stringify(Object.fromEntries(this.volumes)));
    this.playback?.port.postMessage({ sender, gain });
    this.listener.changed();
  }

  /// The microphone is sending now.
  private get open(): boolean {
    if (this.muted || this.deafened) return false;
    return this.mode === "push-to-talk" ? this.talking : true;
  }

  private captured(pcm: Float32Array<ArrayBuffer>) {
    if (this.stopped || !this.encoder) return;
    let sum = 0;
    for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
    const loud = Math.sqrt(sum / pcm.length) > SPEAKING_RMS;
    const now = performance.now();
    const wasSpeaking = this.selfSpeaking;
    if (loud) this.lastLoud = now;
    const ts = this.timestamp;
    this.timestamp = (this.timestamp + FRAME) >>> 0;
    // Voice activity: only speech (and its tail) goes out.
    const send = this.open && (this.mode === "push-to-talk" || now - this.lastLoud < HANG_MS);
    if (wasSpeaking !== this.selfSpeaking) this.listener.changed();
    if (!send) return;
    const data = new AudioData({
      format: "f32-planar",
      sampleRate: RATE,
      numberOfFrames: pcm.length,
      numberOfChannels: 1,
      timestamp: Math.round((ts * 1e6) / RATE),
      data: pcm,
    });
    this.encoding.push(ts);
    this.encoder.encode(data);
    data.close();
  }

  /// `timestamp`: when the frame was captured, in samples.
  private send(chunk: EncodedAudioChunk, timestamp: number) {
    if (this.stopped || !this.writer || chunk.byteLength > 400) return;
    const out = new Uint8Array(7 + chunk.byteLength);
    const view = new DataView(out.buffer);
    out[0] = KIND_VOICE;
    view.setUint16(1, this.seq);
    this.seq = (this.seq + 1) & 0xffff;
    view.setUint32(3, timestamp);
    chunk.copyTo(out.subarray(7));
    this.sent++;
    // Datagrams are best effort: a full queue drops the packet, as it should.
    this.writer.write(out).catch(() => {});
  }

  private async receive() {
    const reader = this.reader!;
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch {
        return;
      }
      if (next.done || this.stopped) return;
      this.packet(next.value);
    }
  }

  private packet(d: Uint8Array) {
    if (d.length <= 15 || d[0] !== KIND_VOICE || this.deafened) return;
    const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const sender = view.getBigUint64(1).toString();
    const seq = view.getUint16(9);
    const ts = view.getUint32(11);
    let s = this.speakers.get(sender);
    if (!s) s = this.speaker(sender);
    // Late (reordered past its turn): the jitter buffer has moved on.
    const ahead = (seq - s.lastSeq) & 0xffff;
    if (s.packets > 0 && (ahead === 0 || ahead > 0x8000)) return;
    s.lastSeq = seq;
    s.packets++;
    this.received++;
    s.decoder.decode(
      new EncodedAudioChunk({ type: "key", timestamp: Math.round((ts * 1e6) / RATE), data: d.subarray(15) }),
    );
  }

  private speaker(sender: string): Speaker {
    const s: Speaker = {
      lastSeq: 0,
      lastLoud: 0,
      packets: 0,
      decoder: new AudioDecoder({
        output: (data) => {
          const pcm = new Float32Array(data.numberOfFrames);
          data.copyTo(pcm, { planeIndex: 0, format: "f32-planar" });
          data.close();
          let sum = 0;
          for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
          const was = this.speaking(sender);
          if (Math.sqrt(sum / pcm.length) > SPEAKING_RMS) s.lastLoud = performance.now();
          if (was !== this.speaking(sender)) this.listener.changed();
          this.playback?.port.postMessage({ sender, pcm, gain: this.volume(sender) }, [pcm.buffer]);
        },
        error: (e) => console.warn("voice decoder:", e),
      }),
    };
    s.decoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 1 });
    this.speakers.set(sender, s);
    return s;
  }
}
