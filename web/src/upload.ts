// Attaching files from the browser: BLAKE3 of the file (the server checks
// it), `create_upload` on the session, then the bytes over HTTPS —
// `GET /uploads/KEY` says how much the server holds, `POST
// /uploads/KEY?offset=N` sends the rest — so a dropped upload continues
// where it stopped instead of starting over.

import { blake3 } from "@noble/hashes/blake3.js";
import type { Connection } from "./transport";

/// Bytes hashed at a time: a phone's memory holds a slice, not the video.
const SLICE = 4 << 20;
/// Tries of the HTTPS part before giving up.
const TRIES = 5;

export async function hashFile(file: Blob): Promise<Uint8Array> {
  const h = blake3.create();
  for (let at = 0; at < file.size; at += SLICE) {
    h.update(new Uint8Array(await file.slice(at, at + SLICE).arrayBuffer()));
  }
  return h.digest();
}

interface Progress {
  offset: number;
  size: number;
  complete: boolean;
}

async function status(key: string): Promise<Progress> {
  const r = await fetch(`/uploads/${encodeURIComponent(key)}`, { cache: "no-store" });
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

/// Sends `file` from `offset`, reporting bytes on the server as they go.
function send(key: string, file: Blob, offset: number, onProgress: (sent: number) => void): Promise<Progress> {
  return new Promise((ok, fail) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/uploads/${encodeURIComponent(key)}?offset=${offset}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => onProgress(offset + e.loaded);
    xhr.onload = () => {
      if (xhr.status === 200 || xhr.status === 409) ok(xhr.response as Progress);
      else fail(new Error(typeof xhr.response === "string" ? xhr.response : `the upload was refused (${xhr.status})`));
    };
    xhr.onerror = () => fail(new Error("the connection dropped during the upload"));
    xhr.send(file.slice(offset));
  });
}

/// Uploads `file` for a message in `channelId` whose files come to
/// `messageBytes` (so that a message too big is refused before any byte is
/// sent); resolves with the key to name in `sendMessage.uploads` once the
/// server has stored it.
export async function upload(
  conn: Connection,
  channelId: bigint,
  file: File,
  messageBytes: number,
  onProgress: (fraction: number) => void,
): Promise<string> {
  const hash = await hashFile(file);
  const answer = await conn.request({
    case: "createUpload",
    value: { channelId, name: file.name, size: BigInt(file.size), blake3: hash, messageBytes: BigInt(messageBytes) },
  });
  if (answer.case !== "upload") throw new Error("unexpected answer");
  const key = answer.value.key;
  let lastError: unknown = null;
  for (let attempt = 0; attempt < TRIES; attempt++) {
    try {
      let at = await status(key);
      if (!at.complete) at = await send(key, file, at.offset, (sent) => onProgress(file.size ? sent / file.size : 1));
      if (at.complete) {
        onProgress(1);
        return key;
      }
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
  throw lastError instanceof Error ? lastError : new Error("the upload did not finish");
}
