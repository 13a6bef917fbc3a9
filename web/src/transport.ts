// The connection to the server: kith's own frames (a 4-byte big-endian
// length, then a protobuf message) over WebTransport on the server's UDP
// port, or, where UDP is blocked, over a WebSocket on the HTTPS port.
// Replies are matched to requests by request_id; events and
// connection-level errors go to the listener.

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  ClientMessageSchema,
  type ClientMessage,
  type Error as WireError,
  type Event,
  type Reply,
  ServerMessageSchema,
} from "./gen/kith_pb";

/// The most a server frame may be (kith_proto::MAX_SERVER_FRAME).
const MAX_SERVER_FRAME = 16 * 1024 * 1024;

export type Request = MessageInitShape<typeof ClientMessageSchema>["request"];
export type Result = Reply["result"];

export class RequestError extends Error {
  constructor(readonly wire: WireError) {
    super(wire.reason);
  }
}

export interface Listener {
  event(e: Event): void;
  /// A connection-level error (request_id 0): shown, never silent.
  notice(e: WireError): void;
  closed(reason: string): void;
}

/// Bytes in, whole frames out.
export class FrameReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    this.buf = joined;
    const frames: Uint8Array[] = [];
    while (this.buf.length >= 4) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0);
      if (len > MAX_SERVER_FRAME) throw new Error(`the server sent a frame of ${len} bytes`);
      if (this.buf.length < 4 + len) break;
      frames.push(this.buf.slice(4, 4 + len));
      this.buf = this.buf.slice(4 + len);
    }
    return frames;
  }
}

function frame(msg: ClientMessage): Uint8Array {
  const body = toBinary(ClientMessageSchema, msg);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

interface Wire {
  kind: "webtransport" | "websocket";
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
  /// Voice datagrams, where the transport carries them.
  datagrams?: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
}

export class Connection {
  private nextId = 1n;
  private pending = new Map<bigint, { ok: (r: Result) => void; fail: (e: Error) => void }>();
  private wire!: Wire;
  private closedReason: string | null = null;

  private constructor(private listener: Listener) {}

  get kind(): string {
    return this.wire.kind;
  }

  get datagrams() {
    return this.wire.datagrams;
  }

  /// Connects by WebTransport, or by WebSocket when that fails or when
  /// `force` asks for it (`?transport=websocket`).
  static async open(listener: Listener, force?: string): Promise<Connection> {
    const c = new Connection(listener);
    const reader = new FrameReader();
    const onBytes = (chunk: Uint8Array) => {
      for (const f of reader.push(chunk)) c.dispatch(f);
    };
    const onClose = (why: string) => c.close(why);
    let wire: Wire | null = null;
    if (force !== "websocket" && typeof WebTransport !== "undefined") {
      try {
        wire = await openWebTransport(onBytes, onClose);
      } catch (e) {
        console.info("WebTransport unavailable, using the WebSocket:", e);
      }
    }
    c.wire = wire ?? (await openWebSocket(onBytes, onClose));
    return c;
  }

  request(request: Request): Promise<Result> {
    if (this.closedReason !== null) return Promise.reject(new Error(this.closedReason));
    const requestId = this.nextId++;
    const msg = create(ClientMessageSchema, { requestId, request });
    return new Promise((ok, fail) => {
      this.pending.set(requestId, { ok, fail });
      this.wire.write(frame(msg)).catch((e) => {
        this.pending.delete(requestId);
        fail(e instanceof Error ? e : new Error(String(e)));
      });
    });
  }

  close(reason = "closed") {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.wire?.close();
    for (const p of this.pending.values()) p.fail(new Error(reason));
    this.pending.clear();
    this.listener.closed(reason);
  }

  private dispatch(bytes: Uint8Array) {
    const msg = fromBinary(ServerMessageSchema, bytes);
    switch (msg.kind.case) {
      case "reply": {
        const p = this.pending.get(msg.kind.value.requestId);
        this.pending.delete(msg.kind.value.requestId);
        p?.ok(msg.kind.value.result);
        break;
      }
      case "error": {
        const e = msg.kind.value;
        const p = this.pending.get(e.requestId);
        if (p) {
          this.pending.delete(e.requestId);
          p.fail(new RequestError(e));
        } else {
          this.listener.notice(e);
        }
        break;
      }
      case "event":
        this.listener.event(msg.kind.value);
        break;
    }
  }
}

interface WebTransportInfo {
  path: string;
  hashes: string[];
  fingerprint: string;
}

export async function serverInfo(): Promise<WebTransportInfo> {
  const r = await fetch("/api/webtransport", { cache: "no-store" });
  if (!r.ok) throw new Error(`the server answered ${r.status}`);
  return r.json();
}

async function openWebTransport(onBytes: (b: Uint8Array) => void, onClose: (why: string) => void): Promise<Wire> {
  const info = await serverInfo();
  const serverCertificateHashes = info.hashes.map((h) => ({
    algorithm: "sha-256",
    value: Uint8Array.from(atob(h), (c) => c.charCodeAt(0)),
  }));
  const url = `https://${location.host}${info.path}`;
  const wt = new WebTransport(url, serverCertificateHashes.length ? { serverCertificateHashes } : {});
  const timeout = new Promise<never>((_, fail) => setTimeout(() => fail(new Error("timed out")), 5000));
  await Promise.race([wt.ready, timeout]);
  const stream = await wt.createBidirectionalStream();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onBytes(value);
      }
      onClose("the server closed the connection");
    } catch (e) {
      onClose(await closeReason(wt, e));
    }
  })();
  wt.closed.then(
    (info) => onClose(info.reason || "the server closed the connection"),
    (e) => onClose(String(e)),
  );
  return {
    kind: "webtransport",
    write: (bytes) => writer.write(bytes),
    close: () => {
      writer.close().catch(() => {});
      setTimeout(() => wt.close(), 500);
    },
    datagrams: wt.datagrams as Wire["datagrams"],
  };
}

async function closeReason(wt: WebTransport, e: unknown): Promise<string> {
  try {
    const info = await Promise.race([wt.closed, new Promise<null>((ok) => setTimeout(() => ok(null), 200))]);
    if (info?.reason) return info.reason;
  } catch {
    // Closed with an error: fall back to what the read said.
  }
  return e instanceof Error ? e.message : String(e);
}

function openWebSocket(onBytes: (b: Uint8Array) => void, onClose: (why: string) => void): Promise<Wire> {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    let open = false;
    ws.onopen = () => {
      open = true;
      ok({
        kind: "websocket",
        write: async (bytes) => ws.send(bytes),
        close: () => ws.close(1000, "bye"),
      });
    };
    ws.onmessage = (m) => onBytes(new Uint8Array(m.data as ArrayBuffer));
    ws.onclose = (c) => {
      if (!open) fail(new Error("could not reach the server"));
      onClose(c.reason || "the connection to the server was lost");
    };
  });
}
