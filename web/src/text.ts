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

/// The option values typed after a slash command, read as every kith client
/// reads them (kith_proto::commands::values in the Rust clients): `name:value`
/// or `name=value` for any option, bare words for the options in order, the
/// last text option taking the words left. Throws with the usage on a mistake.
export function commandValues(
  command: { name: string; options: { name: string; type: number; required: boolean }[] },
  words: string[],
): { name: string; value: { case: "string"; value: string } | { case: "integer"; value: bigint } | { case: "boolean"; value: boolean } }[] {
  const typeName = (t: number) => (t === 2 ? "integer" : t === 3 ? "boolean" : "string");
  const usage = `/${command.name}${command.options.map((o) => ` ${o.required ? "" : "["}${o.name}:${typeName(o.type)}${o.required ? "" : "]"}`).join("")}`;
  const given = new Map<number, string>();
  const bare: string[] = [];
  for (const w of words) {
    const m = /^([^:=]+)[:=](.*)$/.exec(w);
    const at = m ? command.options.findIndex((o) => o.name.toLowerCase() === m[1].toLowerCase()) : -1;
    if (m && at >= 0) {
      if (given.has(at)) throw new Error(`${command.options[at].name} is given twice (usage: ${usage})`);
      given.set(at, m[2]);
    } else bare.push(w);
  }
  const free = command.options.map((_, i) => i).filter((i) => !given.has(i));
  while (bare.length) {
    const at = free.shift();
    if (at === undefined) throw new Error(`/${command.name} takes no more than that (usage: ${usage})`);
    const rest = command.options[at].type === 1 && free.length === 0;
    given.set(at, bare.splice(0, rest ? bare.length : 1).join(" "));
  }
  const out = [...given.entries()].sort((a, b) => a[0] - b[0]).map(([at, raw]) => {
    const o = command.options[at];
    if (o.type === 2) {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`${o.name} must be a whole number (usage: ${usage})`);
      return { name: o.name, value: { case: "integer" as const, value: BigInt(raw.trim()) } };
    }
    if (o.type === 3) {
      const v = raw.trim().toLowerCase();
      if (!["true", "yes", "on", "1", "false", "no", "off", "0"].includes(v)) throw new Error(`${o.name} must be yes or no (usage: ${usage})`);
      return { name: o.name, value: { case: "boolean" as const, value: ["true", "yes", "on", "1"].includes(v) } };
    }
    return { name: o.name, value: { case: "string" as const, value: raw } };
  });
  const missing = command.options.find((o) => o.required && !out.some((v) => v.name === o.name));
  if (missing) throw new Error(`/${command.name} needs ${missing.name} (usage: ${usage})`);
  return out;
}

/// Words split at spaces, a double-quoted stretch kept whole.
export function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2]);
  return out;
}
