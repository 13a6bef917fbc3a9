//! What the CLI prints: JSON lines for scripts, and text for people with every
//! control character from user content made visible.

use kith_client::proto as v1;
use serde::Serialize;

/// Makes user content safe for a terminal: C0/C1 controls (except newline and
/// tab), DEL, and bidi/invisible formatting characters become visible `\u{..}`
/// escapes, so no message can move the cursor, retitle the window or reorder
/// the text around it.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let dangerous = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if dangerous {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
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
            body: &m.body,
            time: rfc3339(m.created_at_ms),
            time_ms: m.created_at_ms,
            edited_ms: (m.edited_at_ms != 0).then_some(m.edited_at_ms),
            reply_to: (m.reply_to != 0).then(|| m.reply_to.to_string()),
            mentions: m.mentions.iter().map(u64::to_string).collect(),
            nonce: &m.nonce,
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
    format!("{time}  {}{reply}: {body}{edited}  [{}]", sanitize(&m.author_name), m.id)
}

pub fn print_json(value: &impl Serialize) {
    println!("{}", serde_json::to_string(value).expect("serialising plain data cannot fail"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_raw_control_or_bidi_character_survives() {
        let hostile = "a\x1b[2J\x1b]0;title\x07\u{9b}31m\rBob: hi\u{202E}evil\x08\x7f";
        let shown = sanitize(hostile);
        assert!(
            shown.chars().all(|c| !c.is_control() && !('\u{202A}'..='\u{202E}').contains(&c)),
            "{shown:?}"
        );
        assert!(shown.contains("\\u{1b}[2J"));
        assert_eq!(sanitize("line\n\ttab"), "line\n\ttab");
    }
}
