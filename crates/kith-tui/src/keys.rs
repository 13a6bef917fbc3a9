//! Keys as the UI understands them, independent of any terminal library:
//! the terminal client maps crossterm's events to these, the telnet gateway
//! its own parse of the bytes a telnet client sends.

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCode {
    Char(char),
    Enter,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Esc,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    /// A function key, F1 to F12.
    F(u8),
}

impl Key {
    /// A key with no modifiers.
    pub fn plain(code: KeyCode) -> Key {
        Key { code, ctrl: false, alt: false, shift: false }
    }

    pub fn ctrl(c: char) -> Key {
        Key { code: KeyCode::Char(c), ctrl: true, alt: false, shift: false }
    }

    pub fn alt(code: KeyCode) -> Key {
        Key { code, ctrl: false, alt: true, shift: false }
    }

    pub fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }
}

impl From<KeyCode> for Key {
    fn from(code: KeyCode) -> Key {
        Key::plain(code)
    }
}
