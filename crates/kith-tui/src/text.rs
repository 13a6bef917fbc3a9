//! Making other people's text safe and measurable on a cell grid.
//!
//! Everything a user wrote passes through [`clean`] (multi-line bodies) or
//! [`clean_line`] (names, topics) once, when it enters the model; the view
//! only ever draws cleaned text. The rules (BAD_INPUTS T10–T13):
//!
//! - C0 and C1 control characters and DEL become their visible Unicode
//!   "control pictures" (`ESC` → `␛`, `BEL` → `␇`; C1 → `␛`-less `⍰`), so no
//!   message can move the cursor, retitle the window, write the clipboard or
//!   make the victim's terminal answer. CR and BS are shown, never obeyed.
//! - Bidi embeddings, overrides and isolates are replaced by a visible `⁇`:
//!   a message cannot reorder the text around it.
//! - Zero-width characters that can only hide things (ZWSP, word joiner,
//!   BOM, soft hyphen) are dropped; ZWJ and variation selectors stay, since
//!   emoji sequences need them.
//! - A grapheme keeps at most [`MAX_GRAPHEME_CHARS`] characters: one base
//!   character with 10 000 combining marks draws as the base and a few marks,
//!   at its true width, and costs nothing to render.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The longest legitimate graphemes are emoji ZWJ sequences with skin tones
/// (about ten characters); nothing a person types needs more.
pub const MAX_GRAPHEME_CHARS: usize = 12;

/// Tabs expand to this many spaces (a terminal's tab stops are not ours to use).
const TAB: &str = "    ";

/// Cleans a message body for a cell grid (the terminal UI, telnet);
/// newlines are kept as line breaks.
pub fn clean(text: &str) -> String {
    clean_with(text, true, true)
}

/// Cleans single-line text (names, topics) for a cell grid: a newline
/// becomes `␤`.
pub fn clean_line(text: &str) -> String {
    clean_with(text, false, true)
}

/// Cleans text printed as a stream (the CLI): the same safety rules as
/// [`clean`], newlines kept, but emoji left whole — a stream has no cells
/// for a disagreement about widths to break.
pub fn clean_stream(text: &str) -> String {
    clean_with(text, true, false)
}

/// `grid`: also spell emoji the one way every terminal draws at the width
/// we lay out (see [`grid_drops`]).
fn clean_with(text: &str, keep_newlines: bool, grid: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for grapheme in text.graphemes(true) {
        let mut kept = 0;
        // Tag characters spell a subdivision flag after 🏴 (Scotland, Wales);
        // anywhere else they are invisible text (a known smuggling channel).
        let flag = grapheme.starts_with('\u{1f3f4}');
        let mut prev: Option<char> = None;
        for c in grapheme.chars() {
            if kept == MAX_GRAPHEME_CHARS {
                break;
            }
            if grid && grid_drops(c, prev) {
                continue;
            }
            if TAGS.contains(&c) {
                if flag {
                    out.push(c);
                    kept += 1;
                }
                continue;
            }
            prev = Some(c);
            match replacement(c, keep_newlines) {
                Replacement::Keep => out.push(c),
                Replacement::Drop => continue,
                Replacement::With(s) => out.push_str(s),
                Replacement::Char(r) => out.push(r),
            }
            kept += 1;
        }
    }
    out
}

/// What a cell grid leaves out of emoji, because terminals disagree on how
/// wide the result is and a disagreement corrupts the line (measured in
/// tmux 3.3a: `👍🏽` takes 4 cells, `❤️` 1, a family's 25 bytes overflow a
/// cell and lose the last person; kitty and iTerm2 draw each as 2):
/// emoji presentation selectors, skin-tone modifiers, the joiner between
/// two emoji (a family shows as its people, side by side) and subdivision
/// tags (🏴 stays). What is left is drawn at the same width everywhere.
fn grid_drops(c: char, prev: Option<char>) -> bool {
    match c {
        '\u{fe0f}' | '\u{e0000}'..='\u{e007f}' => true,
        '\u{1f3fb}'..='\u{1f3ff}' => prev.is_some(),
        '\u{200d}' => prev.is_some_and(pictographic),
        _ => false,
    }
}

/// Emoji and symbols that take part in emoji sequences (a close superset of
/// Extended_Pictographic for the blocks in use).
fn pictographic(c: char) -> bool {
    matches!(c, '\u{1f000}'..='\u{1faff}' | '\u{2600}'..='\u{27bf}' | '\u{2b00}'..='\u{2bff}' | '\u{2190}'..='\u{21ff}' | '\u{2300}'..='\u{23ff}')
}

/// Whether the cleaner would change `c` (other than a tab or newline): a
/// control, bidi, invisible or tag character. For output that must keep
/// text exact (JSON) but safe for a terminal: escape these.
pub fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        _ if TAGS.contains(&c) => true,
        _ => !matches!(replacement(c, true), Replacement::Keep),
    }
}

/// Unicode tag characters (U+E0000–U+E007F).
const TAGS: std::ops::RangeInclusive<char> = '\u{e0000}'..='\u{e007f}';

enum Replacement {
    Keep,
    Drop,
    With(&'static str),
    Char(char),
}

fn replacement(c: char, keep_newlines: bool) -> Replacement {
    match c {
        '\n' if keep_newlines => Replacement::Keep,
        '\n' => Replacement::Char('␤'),
        '\t' => Replacement::With(TAB),
        // C0: the control pictures block mirrors 0x00-0x1F at U+2400.
        '\0'..='\u{1f}' => Replacement::Char(char::from_u32(0x2400 + c as u32).unwrap_or('⍰')),
        '\u{7f}' => Replacement::Char('␡'),
        '\u{80}'..='\u{9f}' => Replacement::Char('⍰'),
        // Bidi embeddings, overrides, isolates and marks.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}' => {
            Replacement::Char('⁇')
        }
        // Invisible characters with no legitimate use in chat: zero-width
        // space, word joiner and invisible operators, BOM, soft hyphen, the
        // Mongolian vowel separator, Hangul fillers (they draw as blanks
        // that make names look alike), interlinear annotation marks.
        '\u{200b}'
        | '\u{2060}'..='\u{2064}'
        | '\u{feff}'
        | '\u{00ad}'
        | '\u{180e}'
        | '\u{115f}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}' => Replacement::Drop,
        // Line and paragraph separators would break lines behind our back.
        '\u{2028}' | '\u{2029}' => Replacement::Char(if keep_newlines { '\n' } else { '␤' }),
        _ => Replacement::Keep,
    }
}

/// The display width of cleaned text (no newlines).
/// A file size for people: `512 B`, `1.5 kB`, `2.4 MB`, `1.1 GB` (decimal
/// units, as file managers show them).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a file is, on one line: `beach.jpg · 4032×3024 · 2.4 MB ·
/// image/jpeg` (the size in pixels when it is a picture), cleaned.
pub fn attachment(name: &str, bytes: u64, content_type: &str, width: u32, height: u32) -> String {
    let pixels = if width > 0 && height > 0 { format!(" · {width}×{height}") } else { String::new() };
    format!("{}{pixels} · {} · {}", clean_line(name), size(bytes), clean_line(content_type))
}

pub fn width(text: &str) -> usize {
    text.graphemes(true).map(grapheme_width).sum()
}

/// One grapheme's width in cells, as ratatui will draw it.
pub fn grapheme_width(g: &str) -> usize {
    g.width()
}

/// Cuts cleaned single-line text to at most `max` cells, ending in `…` if cut.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let w = grapheme_width(g);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push_str(g);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// Wraps cleaned text into lines of at most `width` cells: at spaces where
/// possible, inside a word when one word is wider than a line. Newlines
/// always break. Returns byte ranges into `text`.
pub fn wrap(text: &str, width: usize) -> Vec<std::ops::Range<usize>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut offset = 0;
    for paragraph in text.split('\n') {
        wrap_paragraph(paragraph, offset, width, &mut lines);
        offset += paragraph.len() + 1;
    }
    lines
}

fn wrap_paragraph(p: &str, base: usize, width: usize, lines: &mut Vec<std::ops::Range<usize>>) {
    let mut start = 0; // start of the current line
    let mut used = 0; // its width so far
    let mut last_space: Option<(usize, usize)> = None; // (byte after the space, width up to it)
    for (i, g) in p.grapheme_indices(true) {
        let w = grapheme_width(g);
        if used + w > width && i > start {
            match last_space {
                // Break at the last space, unless what follows it still
                // cannot take this grapheme.
                Some((after, w_before)) if after > start && used - w_before + w <= width => {
                    lines.push(base + start..base + after - 1);
                    start = after;
                    used -= w_before;
                }
                _ => {
                    lines.push(base + start..base + i);
                    start = i;
                    used = 0;
                }
            }
            last_space = None;
        }
        used += w;
        if g == " " {
            last_space = Some((i + 1, used));
        }
    }
    lines.push(base + start..base + p.len());
}

/// Shows the `<t:UNIX_SECONDS>` tokens the server puts in reasons and audit
/// details (`kith_proto::time_token`) in the reader's time zone, with how
/// far away they are: "14:05 (in 9 min)", "Tue 14:05 (in 2 days)",
/// "3 Mar 2027 09:00 (in 3 months)". Anything else is left as it is.
pub fn times(text: &str, now_ms: u64, utc_offset_secs: i32) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("<t:") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let token = after.find('>').map(|end| (&after[..end], end)).filter(|(digits, _)| {
            !digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit())
        });
        match token {
            Some((digits, end)) => {
                let secs: u64 = digits.parse().unwrap_or(0);
                out.push_str(&when(secs.saturating_mul(1000), now_ms, utc_offset_secs));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("<t:");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A moment as a person reads it: local time, and how far from now.
pub fn when(ms: u64, now_ms: u64, utc_offset_secs: i32) -> String {
    use chrono::{DateTime, FixedOffset};
    let offset =
        FixedOffset::east_opt(utc_offset_secs).unwrap_or(FixedOffset::east_opt(0).expect("0 is valid"));
    let local = |ms: u64| {
        DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
            .unwrap_or_default()
            .with_timezone(&offset)
    };
    let (then, now) = (local(ms), local(now_ms));
    let days = (then.date_naive() - now.date_naive()).num_days();
    let clock = if days == 0 {
        then.format("%H:%M").to_string()
    } else if days.abs() < 7 {
        then.format("%a %H:%M").to_string()
    } else if then.format("%Y").to_string() == now.format("%Y").to_string() {
        then.format("%-d %b %H:%M").to_string()
    } else {
        then.format("%-d %b %Y %H:%M").to_string()
    };
    format!("{clock} ({})", relative(ms as i64 - now_ms as i64))
}

/// "in 9 min", "2 h ago", "now".
fn relative(delta_ms: i64) -> String {
    let secs = delta_ms.unsigned_abs() / 1000;
    let span = match secs {
        0..45 => return "now".into(),
        45..3_600 => format!("{} min", secs.div_ceil(60).max(1)),
        3_600..86_400 => {
            let (h, m) = (secs / 3600, (secs % 3600) / 60);
            if m == 0 { format!("{h} h") } else { format!("{h} h {m} min") }
        }
        86_400..2_592_000 => format!("{} days", (secs + 43_200) / 86_400),
        _ => format!("{} months", (secs + 1_296_000) / 2_592_000),
    };
    let span = span.replace("1 days", "1 day").replace("1 months", "1 month");
    if delta_ms >= 0 { format!("in {span}") } else { format!("{span} ago") }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 kB");
        assert_eq!(size(2_400_000), "2.4 MB");
        assert_eq!(size(999_999), "1.0 MB");
        assert_eq!(size(1 << 30), "1.1 GB");
    }

    use super::*;

    /// 2026-11-21 12:00 UTC.
    const NOON: u64 = 1_795_262_400_000;

    #[test]
    fn time_tokens_read_as_local_time_and_distance() {
        let in_9_min = format!("until <t:{}>", (NOON + 9 * 60_000) / 1000);
        assert_eq!(times(&in_9_min, NOON, 0), "until 12:09 (in 9 min)");
        assert_eq!(times(&in_9_min, NOON, 3600), "until 13:09 (in 9 min)", "in the reader's zone");
        let two_days = format!("<t:{}>", (NOON + 2 * 86_400_000) / 1000);
        assert_eq!(times(&two_days, NOON, 0), "Mon 12:00 (in 2 days)");
        let past = format!("<t:{}>", (NOON - 2 * 3_600_000) / 1000);
        assert_eq!(times(&past, NOON, 0), "10:00 (2 h ago)");
        let next_year = format!("<t:{}>", (NOON + 200 * 86_400_000) / 1000);
        assert_eq!(times(&next_year, NOON, 0), "9 Jun 2027 12:00 (in 7 months)");
        // Not tokens: left alone.
        for plain in ["<t:>", "<t:12ab>", "a <t: b", "<t:1234567890123456>"] {
            assert_eq!(times(plain, NOON, 0), plain);
        }
    }

    use proptest::prelude::*;

    #[test]
    fn escapes_are_shown_not_obeyed() {
        let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;aGk=\u{7}\u{1b}P1$q\u{1b}\\\u{1b}[6n\u{9b}31m";
        let shown = clean(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.starts_with("␛[2J␛]0;pwned␇"));
    }

    #[test]
    fn carriage_return_and_backspace_cannot_rewrite_a_line() {
        assert_eq!(clean("Alice: hi\rBob: send money\u{8}\u{8}"), "Alice: hi␍Bob: send money␈␈");
    }

    #[test]
    fn bidi_overrides_are_neutralised_and_invisibles_dropped() {
        assert_eq!(clean("abc\u{202e}fed\u{2066}x\u{200b}y\u{feff}"), "abc⁇fed⁇xy");
        // Printed as a stream, ZWJ emoji sequences survive whole.
        assert_eq!(clean_stream("👨\u{200d}👩\u{200d}👧"), "👨\u{200d}👩\u{200d}👧");
    }

    #[test]
    fn invisible_look_alike_and_smuggling_characters_go() {
        for c in
            ['\u{061c}', '\u{2060}', '\u{00ad}', '\u{180e}', '\u{3164}', '\u{115f}', '\u{fff9}', '\u{fffb}']
        {
            let shown = clean_stream(&format!("a{c}b"));
            assert!(shown == "ab" || shown == "a⁇b", "U+{:04X} → {shown:?}", c as u32);
        }
        assert_eq!(clean_stream("a\u{2028}b"), "a\nb");
        assert_eq!(clean_line("a\u{2029}b"), "a␤b");
        // Tag characters: hidden text is dropped, a subdivision flag kept.
        assert_eq!(clean_stream("hi\u{e0049}\u{e0067}\u{e006e}"), "hi");
        let scotland = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}";
        assert_eq!(clean_stream(scotland), scotland);
    }

    #[test]
    fn on_a_grid_emoji_are_spelled_the_way_every_terminal_draws_them() {
        // A family is its people, side by side: 8 cells everywhere.
        assert_eq!(clean("👨\u{200d}👩\u{200d}👧\u{200d}👦"), "👨👩👧👦");
        assert_eq!(width(&clean("👨\u{200d}👩\u{200d}👧\u{200d}👦")), 8);
        assert_eq!(clean("👍\u{1f3fd}"), "👍");
        assert_eq!(clean("❤\u{fe0f}"), "❤");
        assert_eq!(width(&clean("❤\u{fe0f}")), 1);
        assert_eq!(clean("🇫🇷"), "🇫🇷", "flags are drawn as 2 cells alike");
        assert_eq!(clean("\u{1f3f4}\u{e0067}\u{e0062}\u{e007f}"), "\u{1f3f4}");
        // A joiner between letters of other scripts shapes them: it stays.
        assert_eq!(clean("क\u{94d}\u{200d}ष"), "क\u{94d}\u{200d}ष");
    }

    #[test]
    fn a_grapheme_keeps_a_few_combining_marks() {
        let zalgo = format!("e{}", "\u{301}".repeat(10_000));
        let shown = clean(&zalgo);
        assert_eq!(shown.chars().count(), MAX_GRAPHEME_CHARS);
        assert_eq!(width(&shown), 1);
    }

    #[test]
    fn wide_characters_take_two_cells() {
        assert_eq!(width("日本"), 4);
        assert_eq!(width("👍"), 2);
        assert_eq!(width("e\u{301}"), 1);
    }

    #[test]
    fn wrapping_prefers_spaces_and_splits_long_words() {
        let text = "the quick brown fox";
        let lines: Vec<_> = wrap(text, 10).into_iter().map(|r| &text[r]).collect();
        assert_eq!(lines, ["the quick", "brown fox"]);
        let text = "abcdefghij";
        let lines: Vec<_> = wrap(text, 4).into_iter().map(|r| &text[r]).collect();
        assert_eq!(lines, ["abcd", "efgh", "ij"]);
        let text = "a\n\nb";
        let lines: Vec<_> = wrap(text, 4).into_iter().map(|r| &text[r]).collect();
        assert_eq!(lines, ["a", "", "b"]);
        let text = "日本語のテキスト";
        let lines: Vec<_> = wrap(text, 5).into_iter().map(|r| &text[r]).collect();
        assert_eq!(lines, ["日本", "語の", "テキ", "スト"]);
    }

    #[test]
    fn truncation_respects_width() {
        assert_eq!(truncate("general", 10), "general");
        assert_eq!(truncate("a-very-long-name", 6), "a-ver…");
        assert_eq!(truncate("日本語", 4), "日…");
    }

    proptest! {
        #[test]
        fn no_control_or_bidi_character_survives(s in any::<String>()) {
            let shown = clean(&s);
            for c in shown.chars() {
                prop_assert!(c == '\n' || !c.is_control(), "{:?}", c);
                let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
                prop_assert!(!bidi, "bidi control {:?}", c);
            }
            prop_assert!(!clean_line(&s).contains('\n'));
        }

        #[test]
        fn wrapped_lines_fit_and_cover_the_text(s in "[a-z 日👍\n]{0,80}", w in 2usize..30) {
            let lines = wrap(&s, w);
            for r in &lines {
                prop_assert!(width(&s[r.clone()]) <= w, "{:?} wider than {}", &s[r.clone()], w);
            }
            let letters: String = lines.iter().map(|r| &s[r.clone()]).collect::<String>().replace(' ', "");
            prop_assert_eq!(letters, s.replace([' ', '\n'], ""));
        }
    }
}
