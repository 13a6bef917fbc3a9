//! What the CLI prints: JSON lines for scripts, and text for people with every
//! control character from user content made visible.

use kith_client::proto as v1;
use serde::Serialize;

/// Makes what a server sent safe to print on a terminal: the one cleaner
/// every client uses (`kith_tui::text`), in its form for streams, where
/// emoji stay whole. Control characters show as pictures (`␛`), bidi
/// controls as `⁇`, invisible characters go.
pub use kith_tui::text::clean_stream as sanitize;

/// Server text for a person: safe to print, with `<t:…>` times in local
/// time and how far off they are ("until 14:05 (in 9 min)").
pub fn shown(text: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let offset = chrono::Local::now().offset().local_minus_utc();
    sanitize(&kith_tui::text::times(text, now, offset))
}

/// Ids go out as strings: they exceed 2^53, past which JSON numbers lose
/// precision in many languages.
#[derive(Debug, Serialize)]
pub struct MessageJson<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub channel: &'a str,
    pub channel_id: String,
    pub author: &'a str,
    pub author_id: String,
    /// Set only when the author is a bot.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub author_bot: bool,
    pub body: &'a str,
    pub time: String,
    pub time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub mentions: Vec<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub nonce: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct AttachmentJson<'a> {
    pub name: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub blake3: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl<'a> MessageJson<'a> {
    pub fn new(kind: &'static str, channel: &'a str, m: &'a v1::Message) -> Self {
        MessageJson {
            kind,
            id: m.id.to_string(),
            channel,
            channel_id: m.channel_id.to_string(),
            author: &m.author_name,
            author_id: m.author_id.to_string(),
            author_bot: m.author_bot,
            body: &m.body,
            time: rfc3339(m.created_at_ms),
            time_ms: m.created_at_ms,
            edited_ms: (m.edited_at_ms != 0).then_some(m.edited_at_ms),
            reply_to: (m.reply_to != 0).then(|| m.reply_to.to_string()),
            mentions: m.mentions.iter().map(u64::to_string).collect(),
            nonce: &m.nonce,
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentJson {
                    name: &a.name,
                    size: a.size,
                    content_type: &a.content_type,
                    blake3: a.blake3.iter().map(|b| format!("{b:02x}")).collect(),
                    width: (a.width > 0).then_some(a.width),
                    height: (a.height > 0).then_some(a.height),
                })
                .collect(),
        }
    }
}

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// One message for people: `2026-11-21 09:30:16  alice: hello  [id]`, with
/// continuation lines indented.
pub fn human(m: &v1::Message) -> String {
    let time = rfc3339(m.created_at_ms);
    let time = time.get(..19).unwrap_or(&time).replace('T', " ");
    let edited = if m.edited_at_ms != 0 { " (edited)" } else { "" };
    let reply = if m.reply_to != 0 { format!(" ↪{}", m.reply_to) } else { String::new() };
    let body = sanitize(&m.body).replace('\n', "\n    ");
    let bot = if m.author_bot { " [bot]" } else { "" };
    let mut line = format!("{time}  {}{bot}{reply}: {body}{edited}  [{}]", sanitize(&m.author_name), m.id);
    for a in &m.attachments {
        line.push_str(&format!("\n    📎 {}", attachment_line(a)));
    }
    line
}

/// A running count on stderr when it is a terminal; hidden when piped.
pub fn counter(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{pos} {msg} {per_sec}").expect("a valid template");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// A byte progress bar on stderr when it is a terminal; hidden when piped.
pub fn progress(name: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar.set_message(sanitize(name));
    bar
}

/// `photo.jpg · 4032×3024 · 2.4 MB · image/jpeg`: what a file is, for a
/// terminal (cleaned by the one rule `kith_tui::text` keeps).
pub fn attachment_line(a: &v1::Attachment) -> String {
    kith_tui::text::attachment(&a.name, a.size, &a.content_type, a.width, a.height)
}

/// One line of JSON. Characters a terminal could obey or hide (C1 controls,
/// bidi, invisible and tag characters) are written as `\uXXXX` escapes —
/// the same JSON to any parser, inert on a screen (serde_json escapes only
/// C0). They can only occur inside strings, so escaping cannot break syntax.
pub fn print_json(value: &impl Serialize) {
    println!("{}", safe_json(&serde_json::to_string(value).expect("serialising plain data cannot fail")));
}

fn safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if kith_tui::text::is_unsafe(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_what_a_terminal_could_obey_and_parses_to_the_same_text() {
        let text = "a\u{9b}31m\u{202e}b\u{e0041}c👨\u{200d}👩";
        let line = serde_json::to_string(&text).unwrap();
        assert!(line.contains('\u{9b}'), "serde_json alone leaves C1 raw");
        let out = safe_json(&line);
        assert!(!out.chars().any(kith_tui::text::is_unsafe), "{out}");
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
    }

    #[test]
    fn no_raw_control_or_bidi_character_survives() {
        let hostile = "a\x1b[2J\x1b]0;title\x07\u{9b}31m\rBob: hi\u{202E}evil\x08\x7f";
        let shown = sanitize(hostile);
        assert!(
            shown.chars().all(|c| !c.is_control() && !('\u{202A}'..='\u{202E}').contains(&c)),
            "{shown:?}"
        );
        assert!(shown.contains("␛[2J"));
        assert_eq!(sanitize("line\nx"), "line\nx");
        // Emoji sequences print whole (they were once escaped into `\u{200d}`).
        assert_eq!(sanitize("👨\u{200d}👩\u{200d}👧"), "👨\u{200d}👩\u{200d}👧");
    }
}
