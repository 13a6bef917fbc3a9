// What a browser shows of text other people wrote: the terminal's rules
// (kith_core::text), applied before anything is rendered. Text is always
// rendered as text nodes, never as HTML; this removes what would still
// mislead inside a text node.

/// Bidi embeddings, overrides and isolates: they reorder what follows, so a
/// name or a link can be made to read as something else.
const BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;
/// Zero-width characters: they make two different names look the same.
const INVISIBLE = /[\u200B-\u200D\u2060\uFEFF\u00AD]/g;
/// C0 and C1 controls other than newline and tab (escape sequences included).
const CONTROLS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

export function clean(text: string): string {
  return text.replace(BIDI, "").replace(INVISIBLE, "").replace(CONTROLS, "\uFFFD");
}

/// A name on one line.
export function cleanName(text: string): string {
  return clean(text).replace(/[\n\t]/g, " ");
}

export function timeOfDay(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function dayLabel(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const today = new Date(now);
  const yesterday = new Date(now - 86_400_000);
  const same = (a: Date, b: Date) => a.toDateString() === b.toDateString();
  if (same(d, today)) return "Today";
  if (same(d, yesterday)) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/// Splits a body into plain text and links; links are shown as anchors
/// whose text is the link itself.
export function linkify(body: string): Array<{ text: string; href?: string }> {
  const out: Array<{ text: string; href?: string }> = [];
  const re = /https?:\/\/[^\s<>"]+/g;
  let last = 0;
  for (const m of body.matchAll(re)) {
    const at = m.index ?? 0;
    if (at > last) out.push({ text: body.slice(last, at) });
    out.push({ text: m[0], href: m[0] });
    last = at + m[0].length;
  }
  if (last < body.length) out.push({ text: body.slice(last) });
  return out;
}
