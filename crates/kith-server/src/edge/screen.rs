//! What a terminal session's user sees, kept small between draws.
//!
//! Drawing only what changed needs the screen as last sent. Ratatui keeps
//! that as two buffers of 48-byte cells per terminal: 288 KB a session at
//! 100×30, most of a session's memory. Here each session keeps its last
//! screen encoded ([`Shown`]: a few kilobytes, one byte for most cells), and
//! the cell buffers belong to one [`Painter`] per thread, which every session
//! on that thread borrows for its draw: load the session's screen as the
//! previous frame, render, let ratatui send the difference, keep the new
//! screen encoded. Drawing is synchronous, so a thread's painter is never
//! wanted by two sessions at once.
//!
//! The encoding is ours, not a wire format: it is only ever read back by the
//! code that wrote it, in the same process.

use std::cell::RefCell;
use std::rc::Rc;

use ratatui::backend::CrosstermBackend;
use ratatui::buffer::{Buffer, Cell, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use ratatui::{Frame, Terminal, TerminalOptions, Viewport};

/// A screen as last drawn, encoded as runs of cells that share a style.
///
/// A run is the style ([`STYLE_LEN`] bytes), how many cells it spans (u16),
/// then each cell's symbol: a symbol of one character is that character's
/// UTF-8, anything else (a grapheme cluster) is [`CLUSTER`], its length
/// (u32) and its bytes. `0xFF` never starts a UTF-8 character.
#[derive(Debug, Default)]
pub(crate) struct Shown {
    area: Rect,
    runs: Vec<u8>,
}

const CLUSTER: u8 = 0xFF;
/// fg and bg (4 bytes each), modifier (2), diff option (3).
const STYLE_LEN: usize = 13;

type Style = [u8; STYLE_LEN];

impl Shown {
    /// Nothing on the screen: the next draw sends every cell that is not
    /// blank (the caller has cleared the user's screen).
    pub(crate) fn forget(&mut self) {
        self.area = Rect::default();
        self.runs = Vec::new();
    }

    /// Whether this is a screen of `area` (not forgotten, not another size).
    pub(crate) fn is(&self, area: Rect) -> bool {
        self.area == area && !self.runs.is_empty()
    }

    /// Keeps `buffer` as the screen last drawn.
    pub(crate) fn store(&mut self, buffer: &Buffer) {
        self.area = buffer.area;
        self.runs.clear();
        // Where the current run's count is, its style's cell, and its count.
        let mut run: Option<(usize, &Cell, u16)> = None;
        for cell in &buffer.content {
            match &mut run {
                Some((at, first, n)) if *n < u16::MAX && same_style(first, cell) => {
                    *n += 1;
                    self.runs[*at..*at + 2].copy_from_slice(&n.to_le_bytes());
                }
                _ => {
                    self.runs.extend_from_slice(&style_of(cell));
                    run = Some((self.runs.len(), cell, 1));
                    self.runs.extend_from_slice(&1u16.to_le_bytes());
                }
            }
            let symbol = cell.symbol();
            let mut chars = symbol.chars();
            match (chars.next(), chars.next()) {
                (Some(_), None) => self.runs.extend_from_slice(symbol.as_bytes()),
                _ => {
                    self.runs.push(CLUSTER);
                    self.runs.extend_from_slice(&(symbol.len() as u32).to_le_bytes());
                    self.runs.extend_from_slice(symbol.as_bytes());
                }
            }
        }
        // Capacity is kept from draw to draw (no reallocation each time),
        // but not what a much busier screen once needed.
        if self.runs.capacity() > 2 * self.runs.len() + 1024 {
            self.runs.shrink_to_fit();
        }
    }

    /// Writes the stored screen into `buffer`, which is blank and of the
    /// same area (blank cells are left as they are: most of a screen is
    /// blank). False if there is none to write.
    pub(crate) fn load(&self, buffer: &mut Buffer) -> bool {
        if !self.is(buffer.area) {
            return false;
        }
        let mut at = 0;
        let mut cells = buffer.content.iter_mut();
        while at < self.runs.len() {
            let style: &Style = self.runs[at..at + STYLE_LEN].try_into().expect("a run starts with a style");
            let (fg, bg, modifier, diff_option) = style_from(style);
            let plain = *style == style_of(&Cell::EMPTY);
            let count = u16::from_le_bytes([self.runs[at + STYLE_LEN], self.runs[at + STYLE_LEN + 1]]);
            at += STYLE_LEN + 2;
            for _ in 0..count {
                let (symbol, next) = symbol_at(&self.runs, at);
                at = next;
                let Some(cell) = cells.next() else { break };
                if plain && symbol == " " {
                    continue;
                }
                cell.set_symbol(symbol);
                (cell.fg, cell.bg, cell.modifier, cell.diff_option) = (fg, bg, modifier, diff_option);
            }
        }
        true
    }
}

fn symbol_at(runs: &[u8], at: usize) -> (&str, usize) {
    let (start, len) = if runs[at] == CLUSTER {
        let len = u32::from_le_bytes(runs[at + 1..at + 5].try_into().expect("four bytes")) as usize;
        (at + 5, len)
    } else {
        (at, utf8_len(runs[at]))
    };
    let symbol = std::str::from_utf8(&runs[start..start + len]).expect("written from a str");
    (symbol, start + len)
}

/// The length of the UTF-8 character that starts with `first`.
fn utf8_len(first: u8) -> usize {
    match first.leading_ones() {
        0 => 1,
        n => n as usize,
    }
}

fn style_of(cell: &Cell) -> Style {
    let mut s = [0u8; STYLE_LEN];
    s[0..4].copy_from_slice(&color_bytes(cell.fg));
    s[4..8].copy_from_slice(&color_bytes(cell.bg));
    s[8..10].copy_from_slice(&cell.modifier.bits().to_le_bytes());
    let (tag, width) = match cell.diff_option {
        CellDiffOption::None => (0, 0),
        CellDiffOption::Skip => (1, 0),
        CellDiffOption::AlwaysUpdate => (2, 0),
        CellDiffOption::ForcedWidth(w) => (3, w.get()),
    };
    s[10] = tag;
    s[11..13].copy_from_slice(&width.to_le_bytes());
    s
}

/// What a run shares. `skip` (deprecated for the diff option) is not kept:
/// ratatui's diff reads it only on the new screen's cells, never on the
/// previous one's.
fn same_style(a: &Cell, b: &Cell) -> bool {
    a.fg == b.fg && a.bg == b.bg && a.modifier == b.modifier && a.diff_option == b.diff_option
}

fn style_from(s: &Style) -> (Color, Color, Modifier, CellDiffOption) {
    let diff_option = match (s[10], std::num::NonZeroU16::new(u16::from_le_bytes([s[11], s[12]]))) {
        (1, _) => CellDiffOption::Skip,
        (2, _) => CellDiffOption::AlwaysUpdate,
        (3, Some(w)) => CellDiffOption::ForcedWidth(w),
        _ => CellDiffOption::None,
    };
    (
        color_from(&s[0..4]),
        color_from(&s[4..8]),
        Modifier::from_bits_retain(u16::from_le_bytes([s[8], s[9]])),
        diff_option,
    )
}

fn color_bytes(color: Color) -> [u8; 4] {
    let named = |tag: u8| [tag, 0, 0, 0];
    match color {
        Color::Reset => named(0),
        Color::Black => named(1),
        Color::Red => named(2),
        Color::Green => named(3),
        Color::Yellow => named(4),
        Color::Blue => named(5),
        Color::Magenta => named(6),
        Color::Cyan => named(7),
        Color::Gray => named(8),
        Color::DarkGray => named(9),
        Color::LightRed => named(10),
        Color::LightGreen => named(11),
        Color::LightYellow => named(12),
        Color::LightBlue => named(13),
        Color::LightMagenta => named(14),
        Color::LightCyan => named(15),
        Color::White => named(16),
        Color::Rgb(r, g, b) => [17, r, g, b],
        Color::Indexed(i) => [18, i, 0, 0],
    }
}

fn color_from(b: &[u8]) -> Color {
    match b[0] {
        1 => Color::Black,
        2 => Color::Red,
        3 => Color::Green,
        4 => Color::Yellow,
        5 => Color::Blue,
        6 => Color::Magenta,
        7 => Color::Cyan,
        8 => Color::Gray,
        9 => Color::DarkGray,
        10 => Color::LightRed,
        11 => Color::LightGreen,
        12 => Color::LightYellow,
        13 => Color::LightBlue,
        14 => Color::LightMagenta,
        15 => Color::LightCyan,
        16 => Color::White,
        17 => Color::Rgb(b[1], b[2], b[3]),
        18 => Color::Indexed(b[1]),
        _ => Color::Reset,
    }
}

/// A thread's cell buffers, and the terminal that diffs them into ANSI.
struct Painter {
    terminal: Terminal<CrosstermBackend<Ansi>>,
    /// What the terminal wrote (the backend owns the other handle).
    ansi: Ansi,
    area: Rect,
    /// Set while a draw is under way: found set, the draw panicked (its
    /// session is gone) and the buffers are not known to be blank.
    drawing: bool,
}

#[derive(Debug, Clone, Default)]
struct Ansi(Rc<RefCell<Vec<u8>>>);

impl std::io::Write for Ansi {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static PAINTER: RefCell<Option<Painter>> = const { RefCell::new(None) };
}

/// Draws `render` over `area` and appends to `out` the ANSI that turns
/// `shown` into it (everything not blank if `shown` is not of this area);
/// `shown` becomes the new screen.
pub(crate) fn paint(area: Rect, shown: &mut Shown, render: impl FnOnce(&mut Frame), out: &mut Vec<u8>) {
    PAINTER.with_borrow_mut(|painter| {
        if painter.as_ref().is_some_and(|p| p.drawing) {
            *painter = None;
        }
        let p = painter.get_or_insert_with(|| {
            let ansi = Ansi::default();
            let terminal = Terminal::with_options(
                CrosstermBackend::new(ansi.clone()),
                TerminalOptions { viewport: Viewport::Fixed(area) },
            )
            .expect("drawing into memory cannot fail");
            Painter { terminal, ansi, area, drawing: false }
        });
        if p.area != area {
            let _ = p.terminal.resize(area);
            p.area = area;
        }
        // The session's screen becomes the previous frame; the one to render
        // into starts blank. (Ratatui leaves the current buffer blank after
        // each draw, and a resize blanks both.)
        shown.load(p.terminal.current_buffer_mut());
        p.terminal.swap_buffers();
        // Resizing wrote clears meant for nobody.
        p.ansi.0.borrow_mut().clear();
        p.drawing = true;
        match p.terminal.draw(render) {
            Ok(done) => {
                shown.store(done.buffer);
                p.drawing = false;
            }
            // Not for a writer into memory; if it were, the session's next
            // draw starts over on a cleared screen, and so does the painter.
            Err(_) => shown.forget(),
        }
        out.append(&mut p.ansi.0.borrow_mut());
    });
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use ratatui::style::Style;
    use ratatui::text::Line;

    use super::*;

    fn color() -> impl Strategy<Value = Color> {
        prop_oneof![
            (0u8..17).prop_map(|t| color_from(&[t, 0, 0, 0])),
            any::<(u8, u8, u8)>().prop_map(|(r, g, b)| Color::Rgb(r, g, b)),
            any::<u8>().prop_map(Color::Indexed),
        ]
    }

    fn cell() -> impl Strategy<Value = Cell> {
        let symbol = prop_oneof![
            Just(" ".to_owned()),
            "[a-z]",
            Just("é".to_owned()),
            Just("界".to_owned()),
            Just("e\u{301}".to_owned()),
            Just("👍🏽".to_owned()),
            Just(String::new()),
        ];
        (symbol, color(), color(), any::<u16>(), 0u8..4, 1u16..4).prop_map(|(symbol, fg, bg, m, diff, w)| {
            let mut c = Cell::EMPTY;
            c.set_symbol(&symbol);
            c.fg = fg;
            c.bg = bg;
            c.modifier = Modifier::from_bits_retain(m);
            c.diff_option = match diff {
                1 => CellDiffOption::Skip,
                2 => CellDiffOption::AlwaysUpdate,
                3 => CellDiffOption::ForcedWidth(std::num::NonZeroU16::new(w).unwrap()),
                _ => CellDiffOption::None,
            };
            c
        })
    }

    /// A draw that panics (a bug in one session's view) leaves the next
    /// session on the same thread a painter as good as new.
    #[test]
    fn a_draw_that_panics_does_not_spoil_the_next_sessions_screen() {
        let area = Rect::new(0, 0, 20, 3);
        let (mut first, mut second) = (Shown::default(), Shown::default());
        let mut out = Vec::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            paint(
                area,
                &mut first,
                |f| {
                    f.render_widget(Line::from("half-drawn"), f.area());
                    panic!("a bug in the view");
                },
                &mut out,
            )
        }));
        assert!(panicked.is_err());
        out.clear();
        paint(area, &mut second, |f| f.render_widget(Line::from("hello-half"), f.area()), &mut out);
        let sent = String::from_utf8_lossy(&out);
        assert!(sent.contains("hello-half"), "drawn whole, against a blank screen: {sent:?}");
    }

    proptest! {
        /// Whatever a screen holds, it reads back cell for cell.
        #[test]
        fn a_stored_screen_reads_back_as_it_was(
            (w, h, cells) in (1u16..12, 1u16..6).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), prop::collection::vec(cell(), (w * h) as usize))
            })
        ) {
            let area = Rect::new(0, 0, w, h);
            let mut buffer = Buffer::empty(area);
            buffer.content = cells;
            let mut shown = Shown::default();
            shown.store(&buffer);
            let mut back = Buffer::empty(area);
            prop_assert!(shown.load(&mut back));
            prop_assert_eq!(back, buffer);
        }
    }

    /// A long run of one style, past what one run counts, reads back.
    #[test]
    fn a_screen_of_one_style_longer_than_a_run_reads_back() {
        let area = Rect::new(0, 0, 300, 240);
        let mut buffer = Buffer::empty(area);
        buffer.set_string(0, 239, "the last row", Style::default().fg(Color::Red));
        let mut shown = Shown::default();
        shown.store(&buffer);
        let mut back = Buffer::empty(area);
        assert!(shown.load(&mut back));
        assert_eq!(back, buffer);
    }

    /// Drawing through the painter sends only what changed since the
    /// session's own last screen, even when another session drew between.
    #[test]
    fn each_session_is_sent_only_what_changed_on_its_own_screen() {
        let area = Rect::new(0, 0, 20, 3);
        let draw = |text: &'static str| move |f: &mut Frame| f.render_widget(Line::from(text), f.area());
        let (mut alice, mut bob) = (Shown::default(), Shown::default());
        let mut out = Vec::new();
        paint(area, &mut alice, draw("hello-alice"), &mut out);
        assert!(String::from_utf8_lossy(&out).contains("hello-alice"));
        out.clear();
        paint(Rect::new(0, 0, 30, 5), &mut bob, draw("bonjour-bob"), &mut out);
        assert!(String::from_utf8_lossy(&out).contains("bonjour-bob"));
        out.clear();
        paint(area, &mut alice, draw("hello-alina"), &mut out);
        let sent = String::from_utf8_lossy(&out);
        assert!(sent.contains("na"), "the changed cells are sent: {sent:?}");
        assert!(!sent.contains("hello"), "the unchanged ones are not: {sent:?}");
        out.clear();
        paint(area, &mut alice, draw("hello-alina"), &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("alina"), "nothing changed, nothing drawn");
        assert_eq!(alice.runs.len(), STYLE_LEN + 2 + 60, "one style, one run, a byte a cell");
    }
}
