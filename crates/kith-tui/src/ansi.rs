//! What a terminal sends when keys are pressed, decoded into [`Input`]s.
//!
//! The telnet gateway has no crossterm on the far end of its socket, only
//! bytes: UTF-8 text, control characters, and escape sequences in the
//! xterm / VT220 dialects every common terminal speaks (`ESC [ A` for ↑,
//! `ESC [ 5 ~` for PgUp, `ESC [ 1 ; 5 A` for Ctrl+↑, `ESC O P` for F1,
//! `ESC x` for Alt+x, `ESC [ 200 ~ … ESC [ 201 ~` around a paste).
//!
//! A lone ESC is ambiguous: it is the Esc key, or the start of a sequence
//! whose rest has not arrived. The decoder holds it and the host calls
//! [`Decoder::flush`] when nothing more came for a moment.
//!
//! Unknown sequences are dropped whole; invalid UTF-8 is dropped; every
//! buffer is capped, so no input can make the decoder hold more than a
//! paste's cap.

use crate::{Input, Key, KeyCode};

/// A bracketed paste is cut to this many bytes (the input box holds less).
pub const MAX_PASTE: usize = 64 * 1024;
/// Parameter bytes of one escape sequence kept; longer ones are dropped.
const MAX_PARAMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// After `ESC [`, collecting parameters.
    Csi {
        params: Vec<u8>,
        overflow: bool,
    },
    /// After `ESC O`.
    Ss3,
    /// Inside a bracketed paste; `tail` is how much of its end marker has been seen.
    Paste {
        tail: usize,
    },
}

const PASTE_END: &[u8] = b"\x1b[201~";

/// Turns a terminal's bytes into keys and pastes.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// An incomplete UTF-8 character.
    utf8: Vec<u8>,
    /// The paste being collected (bytes, decoded when it ends).
    paste: Vec<u8>,
    out: Vec<Input>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { state: State::Ground, utf8: Vec::new(), paste: Vec::new(), out: Vec::new() }
    }

    /// Decodes `bytes`, appending what they mean to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &b in bytes {
            self.byte(b);
        }
        out.append(&mut self.out);
    }

    /// Whether a bracketed paste is under way (its bytes are capped here,
    /// at [`MAX_PASTE`]).
    pub fn in_paste(&self) -> bool {
        matches!(self.state, State::Paste { .. })
    }

    /// Whether an ESC is waiting to learn whether it starts a sequence.
    pub fn pending(&self) -> bool {
        matches!(self.state, State::Esc | State::Csi { .. } | State::Ss3)
    }

    /// Nothing more arrived: a held ESC was the Esc key, and a half sequence
    /// is dropped (its ESC still counts as Esc).
    pub fn flush(&mut self, out: &mut Vec<Input>) {
        if self.pending() {
            self.state = State::Ground;
            self.out.push(Input::Key(Key::plain(KeyCode::Esc)));
        }
        out.append(&mut self.out);
    }

    fn key(&mut self, key: Key) {
        self.out.push(Input::Key(key));
    }

    fn byte(&mut self, b: u8) {
        match std::mem::replace(&mut self.state, State::Ground) {
            State::Ground => self.ground(b),
            State::Esc => self.after_esc(b),
            State::Csi { mut params, overflow } => match b {
                // Parameter and intermediate bytes.
                0x20..=0x3f => {
                    let overflow = overflow || params.len() >= MAX_PARAMS;
                    if !overflow {
                        params.push(b);
                    }
                    self.state = State::Csi { params, overflow };
                }
                0x40..=0x7e if !overflow => self.csi(&params, b),
                0x40..=0x7e => {}
                // A control byte inside a sequence: the sequence was broken off.
                _ => self.ground(b),
            },
            State::Ss3 => match b {
                b'A'..=b'D' | b'H' | b'F' => self.csi(b"", b),
                b'P'..=b'S' => self.key(Key::plain(KeyCode::F(b - b'P' + 1))),
                _ => {}
            },
            State::Paste { tail } => self.paste_byte(b, tail),
        }
    }

    fn ground(&mut self, b: u8) {
        if !self.utf8.is_empty() || b >= 0x80 {
            return self.utf8_byte(b);
        }
        let key = match b {
            0x1b => {
                self.state = State::Esc;
                return;
            }
            b'\r' | b'\n' => Key::plain(KeyCode::Enter),
            b'\t' => Key::plain(KeyCode::Tab),
            0x7f | 0x08 => Key::plain(KeyCode::Backspace),
            // Ctrl+Space and Ctrl+@: nothing the interface uses.
            0x00 => return,
            0x01..=0x1a => Key::ctrl(char::from(b'a' + b - 1)),
            0x1c..=0x1f => Key::ctrl(char::from(b'\\' + b - 0x1c)),
            _ => Key::char(char::from(b)),
        };
        self.key(key);
    }

    fn after_esc(&mut self, b: u8) {
        match b {
            b'[' => self.state = State::Csi { params: Vec::new(), overflow: false },
            b'O' => self.state = State::Ss3,
            // ESC ESC: the first was the Esc key; the second may start a sequence.
            0x1b => {
                self.key(Key::plain(KeyCode::Esc));
                self.state = State::Esc;
            }
            _ => {
                // Alt+key: decode the key on its own and add Alt to it. (Alt
                // with a non-ASCII character arrives as just the character.)
                let before = self.out.len();
                self.ground(b);
                if let Some(Input::Key(k)) = self.out.get_mut(before) {
                    k.alt = true;
                }
            }
        }
    }

    fn utf8_byte(&mut self, b: u8) {
        if self.utf8.is_empty() {
            if !(0xc2..=0xf4).contains(&b) {
                return; // a stray continuation byte or an impossible lead byte
            }
            self.utf8.push(b);
            return;
        }
        if b & 0xc0 != 0x80 {
            // The character was cut short; this byte starts something new.
            self.utf8.clear();
            return self.ground(b);
        }
        self.utf8.push(b);
        let want = match self.utf8[0] {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        if self.utf8.len() < want {
            return;
        }
        let bytes = std::mem::take(&mut self.utf8);
        if let Ok(s) = std::str::from_utf8(&bytes)
            && let Some(c) = s.chars().next()
            // C1 controls are never keys.
            && !('\u{80}'..='\u{9f}').contains(&c)
        {
            self.key(Key::char(c));
        }
    }

    fn csi(&mut self, params: &[u8], fin: u8) {
        let text = std::str::from_utf8(params).unwrap_or("");
        let mut fields = text.split(';').map(|f| f.parse::<u16>().ok());
        let first = fields.next().flatten();
        // xterm's modifier parameter: 1 + (shift 1 | alt 2 | ctrl 4).
        let modifier = fields.next().flatten().unwrap_or(1).saturating_sub(1);
        let code = match (fin, first) {
            (b'A', _) => KeyCode::Up,
            (b'B', _) => KeyCode::Down,
            (b'C', _) => KeyCode::Right,
            (b'D', _) => KeyCode::Left,
            (b'H', _) => KeyCode::Home,
            (b'F', _) => KeyCode::End,
            (b'Z', _) => KeyCode::BackTab,
            (b'~', Some(1 | 7)) => KeyCode::Home,
            (b'~', Some(4 | 8)) => KeyCode::End,
            (b'~', Some(3)) => KeyCode::Delete,
            (b'~', Some(5)) => KeyCode::PageUp,
            (b'~', Some(6)) => KeyCode::PageDown,
            (b'~', Some(n @ 11..=15)) => KeyCode::F((n - 10) as u8),
            (b'~', Some(n @ 17..=21)) => KeyCode::F((n - 11) as u8),
            (b'~', Some(n @ 23..=24)) => KeyCode::F((n - 12) as u8),
            (b'~', Some(200)) => {
                self.paste.clear();
                self.state = State::Paste { tail: 0 };
                return;
            }
            // Insert, a stray paste end, mouse reports, focus events, replies
            // to queries we never sent: nothing to do.
            _ => return,
        };
        self.key(Key { code, shift: modifier & 1 != 0, alt: modifier & 2 != 0, ctrl: modifier & 4 != 0 });
    }

    fn paste_byte(&mut self, b: u8, tail: usize) {
        if b == PASTE_END[tail] {
            if tail + 1 == PASTE_END.len() {
                let text = String::from_utf8_lossy(&self.paste).into_owned();
                self.paste = Vec::new();
                self.out.push(Input::Paste(text));
            } else {
                self.state = State::Paste { tail: tail + 1 };
            }
            return;
        }
        // What looked like the end marker was text after all.
        let mut held = PASTE_END[..tail].to_vec();
        held.push(b);
        // An ESC that breaks a partial marker may itself start the marker.
        let restart = b == PASTE_END[0];
        if restart {
            held.pop();
        }
        for b in held {
            if self.paste.len() < MAX_PASTE {
                self.paste.push(if b == b'\r' { b'\n' } else { b });
            }
        }
        self.state = State::Paste { tail: usize::from(restart) };
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode(bytes: &[u8]) -> Vec<Input> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(bytes, &mut out);
        d.flush(&mut out);
        out
    }

    fn keys(bytes: &[u8]) -> Vec<Key> {
        decode(bytes)
            .into_iter()
            .map(|i| match i {
                Input::Key(k) => k,
                other => panic!("expected a key, got {other:?}"),
            })
            .collect()
    }

    fn ctrl(code: KeyCode) -> Key {
        Key { code, ctrl: true, alt: false, shift: false }
    }

    #[test]
    fn text_and_control_keys() {
        assert_eq!(
            keys("hé€😀\r\t\x7f\x08\x03\x0b".as_bytes()),
            [
                Key::char('h'),
                Key::char('é'),
                Key::char('€'),
                Key::char('😀'),
                KeyCode::Enter.into(),
                KeyCode::Tab.into(),
                KeyCode::Backspace.into(),
                KeyCode::Backspace.into(),
                Key::ctrl('c'),
                Key::ctrl('k'),
            ]
        );
    }

    #[test]
    fn cursor_and_editing_keys_in_both_dialects() {
        assert_eq!(
            keys(b"\x1b[A\x1bOB\x1b[C\x1b[D\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[3~\x1b[5~\x1b[6~\x1b[Z"),
            [
                KeyCode::Up.into(),
                KeyCode::Down.into(),
                KeyCode::Right.into(),
                KeyCode::Left.into(),
                KeyCode::Home.into(),
                KeyCode::End.into(),
                KeyCode::Home.into(),
                KeyCode::End.into(),
                KeyCode::Delete.into(),
                KeyCode::PageUp.into(),
                KeyCode::PageDown.into(),
                KeyCode::BackTab.into(),
            ]
        );
        assert_eq!(
            keys(b"\x1bOP\x1b[15~\x1b[24~"),
            [Key::plain(KeyCode::F(1)), Key::plain(KeyCode::F(5)), Key::plain(KeyCode::F(12))]
        );
    }

    #[test]
    fn modifiers_and_alt_prefix() {
        assert_eq!(keys(b"\x1b[1;5A"), [ctrl(KeyCode::Up)]);
        assert_eq!(keys(b"\x1b[1;3B"), [Key::alt(KeyCode::Down)]);
        assert_eq!(keys(b"\x1bk\x1b\r"), [Key::alt(KeyCode::Char('k')), Key::alt(KeyCode::Enter)]);
    }

    #[test]
    fn a_lone_escape_waits_for_the_flush() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(b"\x1b", &mut out);
        assert!(out.is_empty() && d.pending());
        d.flush(&mut out);
        assert_eq!(out, [Input::Key(KeyCode::Esc.into())]);
        // Split across two reads, a sequence is still one key.
        let mut out = Vec::new();
        d.feed(b"\x1b[", &mut out);
        d.feed(b"5~", &mut out);
        assert_eq!(out, [Input::Key(KeyCode::PageUp.into())]);
        assert_eq!(keys(b"\x1b\x1b"), [KeyCode::Esc.into(), KeyCode::Esc.into()]);
    }

    #[test]
    fn bracketed_paste_is_one_input_with_its_escapes_kept_as_text() {
        let got = decode(b"a\x1b[200~line one\rline \x1b[201 two\x1b[201~b");
        assert_eq!(
            got,
            [
                Input::Key(Key::char('a')),
                Input::Paste("line one\nline \x1b[201 two".into()),
                Input::Key(Key::char('b')),
            ]
        );
    }

    #[test]
    fn junk_is_dropped_without_losing_what_follows() {
        // Invalid UTF-8, C1 controls, an unknown sequence, an overlong one,
        // a mouse report and a cursor position reply.
        let junk =
            b"\xff\xfe\x80\xc2\x9b\xe2\x82x\x1b[?1049h\x1b[99999999999999999999999~\x1b[<0;1;1M\x1b[3;1Ry";
        assert_eq!(keys(junk), [Key::char('x'), Key::char('y')]);
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_decode_the_same(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let whole = decode(&bytes);
            let mut d = Decoder::new();
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for cut in cuts {
                d.feed(&bytes[at..cut], &mut out);
                at = cut;
            }
            d.feed(&bytes[at..], &mut out);
            d.flush(&mut out);
            prop_assert_eq!(whole, out);
        }

        #[test]
        fn printable_text_comes_back_as_its_characters(text in "[^\\x00-\\x1f\\x7f-\\u{9f}]{0,100}") {
            let got: String = keys(text.as_bytes())
                .into_iter()
                .map(|k| match k.code { KeyCode::Char(c) => c, other => panic!("{other:?}") })
                .collect();
            prop_assert_eq!(got, text);
        }
    }
}
