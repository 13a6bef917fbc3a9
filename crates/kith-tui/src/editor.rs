//! The input line: a grapheme-aware editor with history. Its buffer never
//! holds a control character other than newline, so it can be drawn as is.

use unicode_segmentation::UnicodeSegmentation;

use crate::text;

/// Entries kept in the input history.
const HISTORY: usize = 200;
/// The longest input accepted (the server's own limit is 4000 characters;
/// this only stops a runaway paste from growing without bound).
pub const MAX_INPUT: usize = 16 * 1024;

#[derive(Debug, Default)]
pub struct Editor {
    buf: String,
    /// Byte offset, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history, and the draft it replaced.
    browsing: Option<(usize, String)>,
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.buf
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn set(&mut self, text: &str) {
        self.buf = sanitize_input(text);
        self.cursor = self.buf.len();
        self.browsing = None;
    }

    /// Takes the text out (for sending) and remembers it in the history.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.buf);
        self.cursor = 0;
        self.browsing = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(text.clone());
        }
        text
    }

    /// Takes a secret out without keeping it in the input history.
    pub fn take_secret(&mut self) -> String {
        let text = std::mem::take(&mut self.buf);
        self.clear();
        text
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    pub fn insert(&mut self, text: &str) {
        let clean = sanitize_input(text);
        let room = MAX_INPUT.saturating_sub(self.buf.len());
        let clean = &clean[..floor_boundary(&clean, room)];
        self.buf.insert_str(self.cursor, clean);
        self.cursor += clean.len();
    }

    pub fn backspace(&mut self) {
        if let Some(prev) = self.prev_boundary() {
            self.buf.replace_range(prev..self.cursor, "");
            self.cursor = prev;
        }
    }

    pub fn delete(&mut self) {
        if let Some(next) = self.next_boundary() {
            self.buf.replace_range(self.cursor..next, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(p) = self.prev_boundary() {
            self.cursor = p;
        }
    }

    pub fn right(&mut self) {
        if let Some(n) = self.next_boundary() {
            self.cursor = n;
        }
    }

    /// To the start of the current line.
    pub fn home(&mut self) {
        self.cursor = self.buf[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
    }

    /// To the end of the current line.
    pub fn end(&mut self) {
        self.cursor = self.buf[self.cursor..].find('\n').map_or(self.buf.len(), |i| self.cursor + i);
    }

    pub fn word_left(&mut self) {
        self.cursor = self.word_start();
    }

    pub fn word_right(&mut self) {
        let rest = &self.buf[self.cursor..];
        let skip_space = rest.len() - rest.trim_start().len();
        let word = rest[skip_space..].find(char::is_whitespace).unwrap_or(rest.len() - skip_space);
        self.cursor += skip_space + word;
    }

    /// Ctrl+W: deletes the word before the cursor.
    pub fn delete_word(&mut self) {
        let start = self.word_start();
        self.buf.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Ctrl+U: deletes everything before the cursor.
    pub fn delete_to_start(&mut self) {
        self.buf.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// The word being typed (from the last whitespace to the cursor).
    pub fn current_word(&self) -> &str {
        &self.buf[self.typed_word_start()..self.cursor]
    }

    /// Replaces the word being typed with `with`.
    pub fn replace_current_word(&mut self, with: &str) {
        let start = self.typed_word_start();
        self.buf.replace_range(start..self.cursor, with);
        self.cursor = start + with.len();
    }

    fn typed_word_start(&self) -> usize {
        let before = &self.buf[..self.cursor];
        before
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8))
    }

    /// Where Ctrl+W deletes back to: over trailing spaces, then a word.
    fn word_start(&self) -> usize {
        let before = &self.buf[..self.cursor];
        let trimmed = before.trim_end();
        trimmed
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + trimmed[i..].chars().next().map_or(1, char::len_utf8))
    }

    /// Older history (↑). False when there is none.
    pub fn history_prev(&mut self) -> bool {
        let index = match &self.browsing {
            Some((0, _)) => return false,
            Some((i, _)) => i - 1,
            None if self.history.is_empty() => return false,
            None => self.history.len() - 1,
        };
        let draft = self.browsing.take().map_or_else(|| self.buf.clone(), |(_, d)| d);
        self.buf = self.history[index].clone();
        self.cursor = self.buf.len();
        self.browsing = Some((index, draft));
        true
    }

    /// Newer history (↓), back to the draft after the newest.
    pub fn history_next(&mut self) -> bool {
        let Some((i, draft)) = self.browsing.take() else { return false };
        if i + 1 < self.history.len() {
            self.buf = self.history[i + 1].clone();
            self.browsing = Some((i + 1, draft));
        } else {
            self.buf = draft;
        }
        self.cursor = self.buf.len();
        true
    }

    pub fn is_multiline(&self) -> bool {
        self.buf.contains('\n')
    }

    /// Whether the cursor is on the first / last line of a multi-line input.
    pub fn on_first_line(&self) -> bool {
        !self.buf[..self.cursor].contains('\n')
    }

    pub fn on_last_line(&self) -> bool {
        !self.buf[self.cursor..].contains('\n')
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.buf[..self.cursor].grapheme_indices(true).next_back().map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.buf[self.cursor..].graphemes(true).next().map(|g| self.cursor + g.len())
    }
}

/// What may enter the input: text with tabs as spaces, CR/CRLF as newlines,
/// and no other control characters (a pasted escape sequence stays inert).
fn sanitize_input(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    // In one's own input, dropping a control character is kinder than
    // showing a picture of it; `clean` then handles bidi and grapheme caps.
    let text: String = text.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t')).collect();
    text::clean(&text)
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_moves_by_grapheme() {
        let mut e = Editor::default();
        e.insert("ae\u{301}👍");
        e.left();
        e.backspace();
        assert_eq!(e.text(), "a👍");
        e.home();
        e.delete();
        assert_eq!(e.text(), "👍");
    }

    #[test]
    fn words_and_history() {
        let mut e = Editor::default();
        e.insert("hello big world");
        e.delete_word();
        assert_eq!(e.text(), "hello big ");
        assert_eq!(e.current_word(), "");
        e.insert("@al");
        assert_eq!(e.current_word(), "@al");
        e.replace_current_word("@alice ");
        assert_eq!(e.take(), "hello big @alice ");
        e.insert("draft");
        assert!(e.history_prev());
        assert_eq!(e.text(), "hello big @alice ");
        assert!(!e.history_prev());
        assert!(e.history_next());
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn pasted_controls_stay_inert() {
        let mut e = Editor::default();
        e.insert("a\u{1b}[2Jb\r\nc\td");
        assert_eq!(e.text(), "a[2Jb\nc    d");
    }
}
