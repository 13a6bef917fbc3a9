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

/// Cleans a message body; newlines are kept as line breaks.
pub fn clean(text: &str) -> String {
    clean_with(text, true)
}

/// Cleans single-line text (names, topics): a newline becomes `␤`.
pub fn clean_line(text: &str) -> String {
    clean_with(text, false)
}

fn clean_with(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for grapheme in text.graphemes(true) {
        let mut kept = 0;
        for c in grapheme.chars() {
            if kept == MAX_GRAPHEME_CHARS {
                break;
            }
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
        // Invisible characters with no legitimate use in chat.
        '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}' => Replacement::Drop,
        // Line and paragraph separators would break lines behind our back.
        '\u{2028}' | '\u{2029}' => Replacement::Char(if keep_newlines { '\n' } else { '␤' }),
        _ => Replacement::Keep,
    }
}

/// The display width of cleaned text (no newlines).
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

#[cfg(test)]
mod tests {
    use super::*;
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
        // ZWJ emoji sequences survive whole.
        assert_eq!(clean("👨\u{200d}👩\u{200d}👧"), "👨\u{200d}👩\u{200d}👧");
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
