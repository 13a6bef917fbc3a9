// Audio on the audio thread: "kith-capture" hands the microphone to the
// page in 20 ms frames (960 samples at 48 kHz); "kith-playback" mixes each
// speaker's decoded frames through a jitter buffer per speaker and plays
// them. Loaded with audioWorklet.addModule("/worklet.js").

// The AudioWorklet global scope (not in TypeScript's DOM library).
declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}

const FRAME = 960;

class Capture extends AudioWorkletProcessor {
  private frame = new Float32Array(FRAME);
  private filled = 0;

  process(inputs: Float32Array[][]): boolean {
    const input = inputs[0]?.[0];
    if (!input) return true;
    let i = 0;
    while (i < input.length) {
      const n = Math.min(FRAME - this.filled, input.length - i);
      this.frame.set(input.subarray(i, i + n), this.filled);
      this.filled += n;
      i += n;
      if (this.filled === FRAME) {
        this.port.postMessage(this.frame, [this.frame.buffer]);
        this.frame = new Float32Array(FRAME);
        this.filled = 0;
      }
    }
    return true;
  }
}

/// One speaker's queue: frames wait until `prefill` samples are buffered
/// (absorbing arrival jitter), then play continuously; a queue that runs
/// dry waits to refill, one that grows past `max` drops its oldest audio
/// (latency would otherwise creep up for good).
class Queue {
  chunks: Float32Array[] = [];
  offset = 0;
  buffered = 0;
  playing = false;
  gain = 1;

  push(pcm: Float32Array, max: number) {
    this.chunks.push(pcm);
    this.buffered += pcm.length;
    while (this.buffered > max && this.chunks.length > 1) {
      const dropped = this.chunks.shift()!;
      this.buffered -= dropped.length - this.offset;
      this.offset = 0;
    }
  }

  mixInto(out: Float32Array, prefill: number) {
    if (!this.playing) {
      if (this.buffered < prefill) return;
      this.playing = true;
    }
    let i = 0;
    while (i < out.length && this.chunks.length) {
      const c = this.chunks[0];
      const n = Math.min(out.length - i, c.length - this.offset);
      for (let k = 0; k < n; k++) out[i + k] += c[this.offset + k] * this.gain;
      i += n;
      this.offset += n;
      this.buffered -= n;
      if (this.offset === c.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    if (i < out.length) this.playing = false;
  }
}

class Playback extends AudioWorkletProcessor {
  private queues = new Map<string, Queue>();
  /// 60 ms of buffering before a speaker starts; at most 200 ms.
  private prefill = Math.round(sampleRate * 0.06);
  private max = Math.round(sampleRate * 0.2);

  constructor() {
    super();
    this.port.onmessage = (e: MessageEvent) => {
      const m = e.data as { sender: string; pcm?: Float32Array; gain?: number; gone?: boolean };
      let q = this.queues.get(m.sender);
      if (m.gone) {
        this.queues.delete(m.sender);
        return;
      }
      if (!q) {
        q = new Queue();
        this.queues.set(m.sender, q);
      }
      if (m.gain !== undefined) q.gain = m.gain;
      if (m.pcm) q.push(m.pcm, this.max);
    };
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const out = outputs[0][0];
    out.fill(0);
    for (const q of this.queues.values()) q.mixInto(out, this.prefill);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("kith-capture", Capture);
registerProcessor("kith-playback", Playback);
