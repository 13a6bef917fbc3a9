//! Drawing the app. Pure: it reads the model and writes cells, and only
//! remembers the message pane's size so that scrolling knows a page.
//!
//! The message pane is laid out from the bottom up and stops once the
//! screen is full, so a frame costs the same with 10 messages or 10 000;
//! wrapped heights are cached per message for scrolling far back.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use kith_proto::v1;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::commands::COMMANDS;
use crate::model::{Chan, Model, Msg, Older};
use crate::pictures::Pictures;
use crate::setup::{Setup, Step};
use crate::text::{self, truncate, width, wrap};
use crate::{App, Connection, Geometry, Overlay, Screen};

/// How a bot is marked after its name, wherever it appears.
const BOT: &str = "[bot]";
/// The time column: `HH:MM `.
const TIME: usize = 6;
/// Wider than this, the member list shows.
const MEMBERS_FROM: u16 = 100;
/// Narrower than this, the sidebar hides.
const SIDEBAR_FROM: u16 = 60;
/// Below this the layout gives up and asks for a larger window.
const MIN_WIDTH: u16 = 20;
const MIN_HEIGHT: u16 = 6;

/// Name colours: 24 from the 256-colour cube that read on a dark or a light
/// background and are told apart from each other. Ten (the basic colours)
/// meant one member in ten shared a colour with the owner; a colour is a
/// hint, never the identity (names cannot pass for each other's).
const PALETTE: [Color; 24] = [
    Color::Indexed(33),
    Color::Indexed(37),
    Color::Indexed(39),
    Color::Indexed(41),
    Color::Indexed(43),
    Color::Indexed(69),
    Color::Indexed(75),
    Color::Indexed(77),
    Color::Indexed(99),
    Color::Indexed(105),
    Color::Indexed(111),
    Color::Indexed(125),
    Color::Indexed(135),
    Color::Indexed(141),
    Color::Indexed(147),
    Color::Indexed(161),
    Color::Indexed(167),
    Color::Indexed(173),
    Color::Indexed(179),
    Color::Indexed(185),
    Color::Indexed(203),
    Color::Indexed(209),
    Color::Indexed(215),
    Color::Indexed(221),
];

/// A user's colour: the same on every screen and every run.
fn colour(user: u64) -> Color {
    let h = user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    PALETTE[(h % PALETTE.len() as u64) as usize]
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

impl App {
    /// Draws the whole app into `frame`.
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        if area.is_empty() {
            return;
        }
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let note = truncate("kith: make the window larger", usize::from(area.width));
            frame.buffer_mut().set_string(area.x, area.y, note, Style::new());
            return;
        }
        match &self.screen {
            Screen::Setup(setup) => render_setup(setup, frame),
            Screen::Chat => {
                let cursor = self.render_chat(area, frame.buffer_mut());
                if let Some(c) = cursor {
                    frame.set_cursor_position(c);
                }
            }
        }
    }

    fn render_chat(&self, area: Rect, buf: &mut Buffer) -> Option<Position> {
        let [main, status] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
        self.status_bar(status, buf);
        let sidebar_w = if area.width >= SIDEBAR_FROM { (area.width / 5).clamp(16, 26) } else { 0 };
        let members_w = if area.width >= MEMBERS_FROM { 22 } else { 0 };
        let [sidebar, centre, members] = Layout::horizontal([
            Constraint::Length(sidebar_w),
            Constraint::Min(10),
            Constraint::Length(members_w),
        ])
        .areas(main);
        if sidebar_w > 0 {
            self.sidebar(sidebar, buf);
        }
        let active = self.active.and_then(|id| self.model.channels.get(&id));
        if members_w > 0
            && let Some(ch) = active
        {
            self.members(ch, members, buf);
        }
        let cursor = self.centre(active, centre, buf);
        match &self.overlay {
            Overlay::None => cursor,
            Overlay::Help { scroll } => {
                self.help_last.set(help(area, buf, *scroll));
                None
            }
            Overlay::List => {
                self.list(area, buf);
                None
            }
            Overlay::Switcher { query, selected } => Some(self.switcher(query.text(), *selected, area, buf)),
        }
    }

    fn status_bar(&self, area: Rect, buf: &mut Buffer) {
        let (state, style) = match &self.connection {
            Connection::Connecting => ("connecting…".to_owned(), Style::new().fg(Color::Yellow)),
            Connection::Connected => ("● connected".to_owned(), Style::new().fg(Color::Green)),
            // Why is said in full above the input (`App::notice_line`).
            Connection::Reconnecting { attempt, .. } => {
                (format!("○ reconnecting (attempt {})", attempt + 1), Style::new().fg(Color::Yellow))
            }
            Connection::Ended(_) => ("✕ disconnected".to_owned(), Style::new().fg(Color::Red)),
        };
        let fp = short_fingerprint(&self.config.fingerprint);
        let mut spans = vec![Span::styled(state, style), Span::raw("  ")];
        if self.voice.channel.is_some() {
            let talking = self.voice.speaking.contains(&self.model.me);
            let colour = match () {
                _ if self.voice.controls.mute || self.voice.controls.deaf => Color::Yellow,
                _ if talking => Color::LightGreen,
                _ => Color::Green,
            };
            spans.push(Span::styled(format!("{}  ", self.voice_status()), Style::new().fg(colour)));
        }
        if let Some(up) = self.upload_status() {
            spans.push(Span::styled(format!("{up}  "), Style::new().fg(Color::Cyan)));
        }
        spans.push(Span::raw(self.config.server.clone()));
        if !fp.is_empty() {
            spans.push(Span::styled(format!("  {fp}"), dim()));
        }
        if let Some(w) = &self.config.warning {
            spans.push(Span::styled(
                format!("  ⚠ {w}"),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        let bar = Style::new().bg(Color::Black);
        buf.set_style(area, bar);
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
        let hint = "F1 help · Ctrl+K switch";
        let hw = width(hint) as u16;
        let used = buf.content[buf.index_of(area.x, area.y)..]
            .iter()
            .take(area.width as usize)
            .rposition(|c| c.symbol() != " ")
            .map_or(0, |p| p as u16 + 1);
        if area.width > hw + used + 2 {
            buf.set_string(area.right() - hw - 1, area.y, hint, dim());
        }
    }

    fn sidebar(&self, area: Rect, buf: &mut Buffer) {
        let block = Block::new().borders(Borders::RIGHT).border_style(dim());
        let inner = block.inner(area);
        block.render(area, buf);
        let w = inner.width as usize;
        let mut lines: Vec<Line> = Vec::new();
        let entry = |ch: &Chan, label: String, lead: Span<'static>| -> Line<'static> {
            let active = self.active == Some(ch.id);
            let mut badge = String::new();
            if ch.mentions > 0 {
                badge = format!(" @{}", ch.mentions.min(999));
            } else if ch.unread > 0 {
                badge = format!(" {}", if ch.unread >= 1000 { "999+".into() } else { ch.unread.to_string() });
            }
            let room = w.saturating_sub(width(&badge) + 2);
            let mut style = if ch.unread > 0 { Style::new().add_modifier(Modifier::BOLD) } else { dim() };
            if active {
                style = Style::new().add_modifier(Modifier::REVERSED);
            }
            let badge_style = if ch.mentions > 0 { Style::new().fg(Color::Red) } else { Style::new() };
            let name = truncate(&label, room);
            let pad = " ".repeat(w.saturating_sub(2 + width(&name) + width(&badge)));
            Line::from(vec![
                lead,
                Span::styled(name, style),
                Span::styled(pad, style),
                Span::styled(badge, badge_style.add_modifier(Modifier::BOLD)),
            ])
        };
        for c in &self.model.communities {
            lines.push(Line::styled(truncate(&c.name, w), Style::new().add_modifier(Modifier::BOLD)));
            for ch in c.channels.iter().filter_map(|id| self.model.channels.get(id)) {
                if ch.kind != v1::ChannelKind::Voice {
                    lines.push(entry(ch, ch.name.clone(), Span::raw(" #")));
                    continue;
                }
                lines.push(entry(ch, ch.name.clone(), Span::raw(" ♪")));
                // Who is in it, right under it, as in any voice chat.
                for (name, user, state) in self.occupants(ch) {
                    lines.push(self.occupant(name, user, state, w, 3));
                }
            }
        }
        if !self.model.directs.is_empty() {
            lines.push(Line::styled("Direct messages", Style::new().add_modifier(Modifier::BOLD)));
            for ch in self.model.directs.iter().filter_map(|id| self.model.channels.get(id)) {
                let other = ch.recipients.iter().find(|&&u| u != self.model.me).copied();
                let dot = match other {
                    Some(u) if ch.kind == v1::ChannelKind::Direct => presence_dot(self.model.status(u)),
                    _ => Span::styled("≡", dim()),
                };
                let title = format!(" {}", self.model.title(ch));
                lines.push(entry(ch, title, Span::styled(format!(" {}", dot.content), dot.style)));
            }
        }
        if self.model.communities.is_empty() && self.model.directs.is_empty() {
            lines.push(Line::styled("no communities yet", dim()));
            lines.push(Line::styled("/join <invite>", dim()));
            lines.push(Line::styled("/community <name>", dim()));
        }
        // Keep the active entry on screen in a long list.
        let active_row = lines
            .iter()
            .position(|l| l.spans.iter().any(|s| s.style.add_modifier.contains(Modifier::REVERSED)));
        let skip = active_row.map_or(0, |r| (r + 1).saturating_sub(inner.height as usize));
        for (i, line) in lines.iter().skip(skip).take(inner.height as usize).enumerate() {
            buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
        }
    }

    /// Who is in a voice channel, by name.
    fn occupants<'a>(&'a self, ch: &'a Chan) -> Vec<(&'a str, u64, &'a v1::VoiceState)> {
        let mut people: Vec<(&str, u64, &v1::VoiceState)> = self
            .model
            .voice
            .values()
            .filter(|v| v.channel_id == ch.id)
            .map(|v| (self.model.name_in(ch, v.user_id).unwrap_or("?"), v.user_id, v))
            .collect();
        people.sort_by(|a, b| {
            a.0.chars().flat_map(char::to_lowercase).cmp(b.0.chars().flat_map(char::to_lowercase))
        });
        people
    }

    /// One person in a voice channel: ◉ speaking (green), ◌ not, and
    /// whether they are muted or deafened.
    fn occupant(&self, name: &str, user: u64, v: &v1::VoiceState, w: usize, indent: usize) -> Line<'static> {
        let speaking = self.voice.speaking.contains(&user);
        let (dot, style) = if speaking {
            ("◉", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD))
        } else {
            ("◌", dim())
        };
        let flags = if v.self_deaf {
            " deafened"
        } else if v.server_mute {
            " muted by mod"
        } else if v.self_mute {
            " muted"
        } else {
            ""
        };
        let room = w.saturating_sub(indent + 2 + width(flags));
        let name_style = if speaking { style } else { Style::new() };
        Line::from(vec![
            Span::raw(" ".repeat(indent)),
            Span::styled(dot, style),
            Span::raw(" "),
            Span::styled(truncate(name, room), name_style),
            Span::styled(flags, dim()),
        ])
    }

    /// A voice channel in the centre: who is in it and how to take part.
    fn voice_panel(&self, ch: &Chan, area: Rect, buf: &mut Buffer) {
        let w = usize::from(area.width);
        let people = self.occupants(ch);
        let mut lines = vec![
            Line::raw(""),
            Line::styled(format!(" In voice — {}", people.len()), Style::new().add_modifier(Modifier::BOLD)),
        ];
        for (name, user, state) in &people {
            lines.push(self.occupant(name, *user, state, w, 2));
        }
        if people.is_empty() {
            lines.push(Line::styled("  nobody yet", dim()));
        }
        lines.push(Line::raw(""));
        let hint = if self.in_voice(ch.id) {
            format!(" {} · Alt+M mute · Alt+D deafen · /voice leave", self.voice_status())
        } else if let crate::VoiceSupport::Unavailable(why) = &self.config.voice {
            format!(" {why}")
        } else {
            " Enter joins · /voice ptt for push-to-talk (Alt+T)".to_owned()
        };
        for row in wrap(&hint, w.max(1)) {
            lines.push(Line::styled(hint[row].to_owned(), Style::new().fg(Color::Cyan)));
        }
        for (i, line) in lines.iter().take(usize::from(area.height)).enumerate() {
            buf.set_line(area.x, area.y + i as u16, line, area.width);
        }
    }

    fn members(&self, ch: &Chan, area: Rect, buf: &mut Buffer) {
        let block = Block::new().borders(Borders::LEFT).border_style(dim());
        let inner = block.inner(area);
        block.render(area, buf);
        let w = inner.width as usize;
        let rows = inner.height as usize;
        let key = (ch.id, self.model.people_gen, rows);
        let mut cache = self.roster.borrow_mut();
        let roster = match &mut *cache {
            Some(r) if r.key == key => r,
            slot => slot.insert(Roster::new(&self.model, ch, key)),
        };
        let mut lines = vec![Line::styled(format!("Online — {}", roster.online), dim())];
        let mut said_offline = false;
        for (status, name, u) in &roster.first {
            let offline = *status == v1::PresenceStatus::Offline;
            if offline && !said_offline {
                lines.push(Line::styled(format!("Offline — {}", roster.offline), dim()));
                said_offline = true;
            }
            // In a voice channel of this community: ♪, green while speaking.
            let voice =
                self.model.voice.get(u).filter(|v| v.community_id == ch.community_id && !ch.is_direct());
            let mark = voice.map(|_| {
                if self.voice.speaking.contains(u) {
                    Span::styled(" ♪", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD))
                } else {
                    Span::styled(" ♪", dim())
                }
            });
            let name = truncate(name, w.saturating_sub(2 + if mark.is_some() { 2 } else { 0 }));
            if offline {
                lines.push(Line::styled(format!("  {name}"), dim()));
            } else {
                let mut spans = vec![
                    presence_dot(*status),
                    Span::raw(" "),
                    Span::styled(name, Style::new().fg(colour(*u))),
                ];
                spans.extend(mark);
                lines.push(Line::from(spans));
            }
        }
        if !said_offline {
            lines.push(Line::styled(format!("Offline — {}", roster.offline), dim()));
        }
        for (i, line) in lines.iter().take(rows).enumerate() {
            buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
        }
    }

    /// The header, messages, typing line, reply banner and input. Returns
    /// where the cursor goes.
    fn centre(&self, ch: Option<&Chan>, area: Rect, buf: &mut Buffer) -> Option<Position> {
        let input_w = area.width.saturating_sub(2).max(1) as usize;
        let input_rows =
            wrap_input(self.editor.text(), input_w).len().clamp(1, usize::from(area.height / 3).max(1));
        let banner = u16::from(self.reply_to.is_some() || self.editing.is_some());
        // A notice is shown whole, wrapped, up to a third of the pane.
        let notice = self.notice_line();
        let notice_rows = notice.as_ref().map_or(1, |(text, _)| {
            wrap(text, usize::from(area.width).max(1)).len().clamp(1, usize::from(area.height / 3).max(1))
        });
        let [header, messages, typing, banner_area, input] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(notice_rows as u16),
            Constraint::Length(banner),
            Constraint::Length(input_rows as u16),
        ])
        .areas(area);
        self.geometry.set(Geometry { width: messages.width, height: messages.height });
        if let Some(ch) = ch
            && !header.is_empty()
        {
            let title = self.model.title(ch);
            let mut spans = vec![Span::styled(title, Style::new().add_modifier(Modifier::BOLD))];
            if let Some(c) = self.model.community(ch.community_id) {
                spans.push(Span::styled(format!("  {}", c.name), dim()));
            }
            if !ch.topic.is_empty() {
                spans.push(Span::styled(format!("  — {}", ch.topic), dim()));
            }
            buf.set_line(header.x, header.y, &Line::from(spans), header.width);
            if ch.kind == v1::ChannelKind::Voice {
                self.voice_panel(ch, messages, buf);
            } else {
                self.messages(ch, messages, buf);
            }
        } else {
            let hint = Paragraph::new(vec![
                Line::raw(""),
                Line::raw("You are not in any community yet."),
                Line::raw("Paste an invite: /join kith://…"),
                Line::raw("or start your own: /community <name>"),
            ])
            .style(dim());
            hint.render(messages, buf);
        }
        match notice {
            Some((text, style)) => paragraph(&text, style, typing, buf),
            None => self.typing_line(ch, typing, buf),
        }
        if !banner_area.is_empty() {
            let text = match (self.reply_to, self.editing) {
                (Some(id), _) => {
                    let quoted = ch.and_then(|c| c.find(id)).map_or_else(
                        || "a message".to_owned(),
                        |m| format!("{}: {}", self.author(ch.expect("found in it"), m), first_line(&m.body)),
                    );
                    format!("↳ replying to {quoted}")
                }
                _ => "✎ editing your message".to_owned(),
            };
            let text = truncate(&text, usize::from(banner_area.width).saturating_sub(14));
            buf.set_line(
                banner_area.x,
                banner_area.y,
                &Line::from(vec![
                    Span::styled(text, Style::new().fg(Color::Cyan)),
                    Span::styled("  Esc cancels", dim()),
                ]),
                banner_area.width,
            );
        }
        self.input(ch, input, buf)
    }

    /// The line above the input, when it has something to say: the latest
    /// notice, or else why the connection is down.
    fn notice_line(&self) -> Option<(String, Style)> {
        if let Some(n) = &self.notice {
            let style = if n.error { Style::new().fg(Color::Red) } else { Style::new().fg(Color::Cyan) };
            return Some((n.text.clone(), style));
        }
        let waiting: usize = self.model.channels.values().map(|c| c.sending.len()).sum();
        let queued = match waiting {
            0 => String::new(),
            1 => " · 1 message waits to be sent (/cancel takes it back)".to_owned(),
            n => format!(" · {n} messages wait to be sent (/cancel takes the last back)"),
        };
        match &self.connection {
            Connection::Reconnecting { reason, .. } => Some((
                format!("connection lost: {}; trying again…{queued}", text::clean_line(reason)),
                Style::new().fg(Color::Yellow),
            )),
            Connection::Ended(reason) => {
                Some((format!("disconnected: {}", text::clean(reason)), Style::new().fg(Color::Red)))
            }
            Connection::Connecting | Connection::Connected => None,
        }
    }

    fn typing_line(&self, ch: Option<&Chan>, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let Some(ch) = ch else { return };
        let names: Vec<&str> = ch
            .typing
            .iter()
            .filter(|(_, until)| *until > self.now_ms)
            .filter_map(|(u, _)| self.model.name_in(ch, *u))
            .collect();
        let text = match names[..] {
            [] => return,
            [a] => format!("{a} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            [a, b, c] => format!("{a}, {b} and {c} are typing…"),
            _ => "several people are typing…".to_owned(),
        };
        buf.set_line(area.x, area.y, &Line::styled(truncate(&text, area.width as usize), dim()), area.width);
    }

    fn input(&self, ch: Option<&Chan>, area: Rect, buf: &mut Buffer) -> Option<Position> {
        if area.is_empty() {
            return None;
        }
        let text = self.editor.text();
        let w = area.width.saturating_sub(2).max(1) as usize;
        if text.is_empty() {
            let hint = match ch {
                Some(ch) if ch.kind == v1::ChannelKind::Voice && self.in_voice(ch.id) => {
                    "you are in this voice channel · /voice leave".to_owned()
                }
                Some(ch) if ch.kind == v1::ChannelKind::Voice => "Enter joins this voice channel".to_owned(),
                Some(ch) if !ch.can_send() => "you cannot send messages here".to_owned(),
                Some(ch) => format!("Message {}", self.model.title(ch)),
                None => "/join <invite> · /community <name> · /help".to_owned(),
            };
            buf.set_line(
                area.x,
                area.y,
                &Line::from(vec![
                    Span::styled("> ", Style::new().fg(Color::Cyan)),
                    Span::styled(truncate(&hint, w), dim()),
                ]),
                area.width,
            );
            return Some(Position::new(area.x + 2, area.y));
        }
        let lines = wrap_input(text, w);
        let (cursor_line, cursor_col) = cursor_in(text, &lines, self.editor.cursor());
        let first = (cursor_line + 1).saturating_sub(area.height as usize);
        for (i, r) in lines.iter().skip(first).take(area.height as usize).enumerate() {
            let prompt = if i + first == 0 { "> " } else { "  " };
            buf.set_line(
                area.x,
                area.y + i as u16,
                &Line::from(vec![
                    Span::styled(prompt, Style::new().fg(Color::Cyan)),
                    Span::raw(&text[r.clone()]),
                ]),
                area.width,
            );
        }
        let x = area.x + 2 + cursor_col.min(w) as u16;
        Some(Position::new(x.min(area.right().saturating_sub(1)), area.y + (cursor_line - first) as u16))
    }

    fn author<'a>(&'a self, ch: &'a Chan, m: &'a Msg) -> &'a str {
        self.model.name_in(ch, m.author_id).unwrap_or(&m.author_name)
    }

    fn messages(&self, ch: &Chan, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        let height = usize::from(area.height);
        let need = ch.scroll + height;
        // Rows from the bottom up, until the screen (plus the scrolled-off
        // part) is full.
        let mut rows: Vec<Line> = Vec::new();
        // (message, picture, row from the bottom of its top line)
        let mut pictures = Vec::new();
        for s in ch.sending.iter().rev() {
            let body = text::clean(&s.body);
            let mut lines = wrap(&body, usize::from(area.width).saturating_sub(TIME + 8).max(1));
            lines.reverse();
            let n = lines.len();
            for (i, r) in lines.into_iter().enumerate() {
                let lead = if i + 1 == n { "…     " } else { "      " };
                rows.push(Line::styled(format!("{lead}{}", &body[r]), dim()));
            }
        }
        if !ch.loaded && ch.msgs.is_empty() {
            rows.push(Line::styled("loading…", dim()));
        }
        let today = self.day(self.now_ms);
        // Rows below the view are counted from cached heights, not laid out:
        // a frame far up a long history costs what one at the bottom does.
        let mut skipped = 0;
        for i in (0..ch.msgs.len()).rev() {
            if skipped + rows.len() >= need {
                break;
            }
            let m = &ch.msgs[i];
            let prev = i.checked_sub(1).map(|p| &ch.msgs[p]);
            let marker = ch.marker.is_some_and(|after| m.id > after && prev.is_none_or(|p| p.id <= after));
            let day = self.day(m.created_ms);
            let new_day = prev.is_none_or(|p| self.day(p.created_ms) != day);
            if rows.is_empty() {
                let total = message_rows(&self.model, &self.pictures, ch, m, area.width)
                    + usize::from(marker)
                    + usize::from(new_day);
                if skipped + total <= ch.scroll {
                    skipped += total;
                    continue;
                }
            }
            let mut lines = self.layout_message(ch, m, area.width);
            if self.selected == Some(m.id) {
                for l in &mut lines {
                    l.style = Style::new().bg(Color::DarkGray);
                }
            }
            // Pictures take the message's last rows, in order; each is
            // placed by the row (counted from the bottom) of its top line.
            self.pictures.want(ch.id, m);
            let mut below = rows.len();
            for p in m.pictures.iter().rev() {
                if let Some(size) = self.pictures.cells(m.id, p) {
                    below += usize::from(size.height);
                    pictures.push((i, *p, below - 1));
                }
            }
            rows.extend(lines.into_iter().rev());
            if marker {
                rows.push(rule("new messages", area.width, Style::new().fg(Color::Red)));
            }
            if new_day {
                rows.push(rule(&day_label(day, today), area.width, dim()));
            }
        }
        if skipped + rows.len() < need && ch.loaded {
            let top = match ch.older {
                Older::None => format!("the beginning of {}", self.model.title(ch)),
                Older::Loading | Older::More => "loading older messages…".to_owned(),
            };
            rows.push(Line::styled(top, dim()));
        }
        let scroll = (ch.scroll - skipped.min(ch.scroll)).min(rows.len().saturating_sub(1));
        for (i, line) in rows.iter().skip(scroll).take(height).enumerate() {
            let y = area.bottom() - 1 - i as u16;
            if line.style.bg.is_some() {
                buf.set_style(Rect::new(area.x, y, area.width, 1), line.style);
            }
            buf.set_line(area.x, y, line, area.width);
        }
        for (i, p, top) in pictures {
            let y = i32::from(area.bottom()) - 1 - (top as i32 - scroll as i32);
            self.pictures.draw(&ch.msgs[i], &p, (area.x + TIME as u16, y), area, buf);
        }
        if ch.scroll > 0 {
            let more = if ch.unread > 0 {
                format!(" ↓ {} new ", ch.unread)
            } else {
                " ↓ more below ".to_owned()
            };
            let w = width(&more) as u16;
            if area.width > w {
                buf.set_string(
                    area.right() - w,
                    area.bottom() - 1,
                    &more,
                    Style::new().fg(Color::Black).bg(Color::Yellow),
                );
            }
        }
    }

    /// A message's rows, top to bottom: what it replies to, then the body
    /// wrapped under the time column.
    fn layout_message(&self, ch: &Chan, m: &Msg, w: u16) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        if m.reply_to != 0 {
            let quoted = ch.find(m.reply_to).map_or_else(
                || "an earlier message".to_owned(),
                |r| format!("{}: {}", self.author(ch, r), first_line(&r.body)),
            );
            let line = truncate(&format!("↳ {quoted}"), usize::from(w).saturating_sub(TIME));
            out.push(Line::from(vec![Span::raw(" ".repeat(TIME)), Span::styled(line, dim())]));
        }
        let Content { text: content, name_end, edited_start, action } =
            Content::of(self.author(ch, m), self.model.is_bot(m.author_id), m);
        let body_style = if action { Style::new().add_modifier(Modifier::ITALIC) } else { Style::new() };
        let name_style = Style::new().fg(colour(m.author_id)).add_modifier(Modifier::BOLD);
        let time_style = if m.mentions_me { Style::new().fg(Color::Black).bg(Color::Yellow) } else { dim() };
        for (i, r) in wrap(&content, usize::from(w).saturating_sub(TIME).max(1)).into_iter().enumerate() {
            let mut spans = vec![if i == 0 {
                Span::styled(format!("{} ", self.clock(m.created_ms)), time_style)
            } else {
                Span::raw(" ".repeat(TIME))
            }];
            // Split the row where the name and the "(edited)" mark begin and end.
            let cuts = [r.start, name_end.clamp(r.start, r.end), edited_start.clamp(r.start, r.end), r.end];
            let styles = [name_style, body_style, dim()];
            for (k, style) in styles.iter().enumerate() {
                if cuts[k] < cuts[k + 1] {
                    spans.push(Span::styled(content[cuts[k]..cuts[k + 1]].to_owned(), *style));
                }
            }
            out.push(Line::from(spans));
        }
        for file in &m.files {
            let line = truncate(&format!("📎 {file}"), usize::from(w).saturating_sub(TIME));
            out.push(Line::from(vec![
                Span::raw(" ".repeat(TIME)),
                Span::styled(line, Style::new().fg(Color::Cyan)),
            ]));
        }
        let picture_rows = self.pictures.rows(m);
        out.extend(std::iter::repeat_n(Line::default(), picture_rows));
        out
    }

    pub(crate) fn day(&self, ms: u64) -> NaiveDate {
        self.local(ms).date_naive()
    }

    fn clock(&self, ms: u64) -> String {
        self.local(ms).format("%H:%M").to_string()
    }

    fn local(&self, ms: u64) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(self.config.utc_offset_secs)
            .unwrap_or(FixedOffset::east_opt(0).expect("0 is valid"));
        DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
            .unwrap_or_default()
            .with_timezone(&offset)
    }

    fn switcher(&self, query: &str, selected: usize, area: Rect, buf: &mut Buffer) -> Position {
        let matches = switcher_matches(&self.model, query);
        let w = area.width.saturating_sub(4).min(60);
        let h = (matches.len() as u16 + 3).clamp(4, area.height.saturating_sub(2).max(4));
        let r = centred(area, w, h);
        Clear.render(r, buf);
        let block = Block::bordered().title(" Switch to ").border_style(Style::new().fg(Color::Cyan));
        let inner = block.inner(r);
        block.render(r, buf);
        buf.set_line(
            inner.x,
            inner.y,
            &Line::from(vec![Span::raw("> "), Span::raw(query.to_owned())]),
            inner.width,
        );
        let selected = selected.min(matches.len().saturating_sub(1));
        for (i, (_, label)) in matches.iter().take(inner.height.saturating_sub(1) as usize).enumerate() {
            let style =
                if i == selected { Style::new().add_modifier(Modifier::REVERSED) } else { Style::new() };
            let line = Line::styled(truncate(label, inner.width as usize), style);
            buf.set_line(inner.x, inner.y + 1 + i as u16, &line, inner.width);
        }
        Position::new(inner.x + 2 + width(query).min(inner.width as usize) as u16, inner.y)
    }

    fn list(&self, area: Rect, buf: &mut Buffer) {
        let mut lines = vec![];
        for c in &self.model.communities {
            lines.push(Line::styled(
                format!("{} ({} members)", c.name, c.member_count),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            for ch in c.channels.iter().filter_map(|id| self.model.channels.get(id)) {
                let topic = if ch.topic.is_empty() { String::new() } else { format!(" — {}", ch.topic) };
                lines.push(Line::raw(format!("  #{}{topic}", ch.name)));
            }
        }
        for ch in self.model.directs.iter().filter_map(|id| self.model.channels.get(id)) {
            lines.push(Line::raw(format!("  {} ({} people)", self.model.title(ch), ch.recipients.len())));
        }
        popup(area, buf, " Channels ", lines);
    }
}

fn render_setup(setup: &Setup, frame: &mut Frame) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    let w = area.width.saturating_sub(2).min(76);
    // Laid out for the box's inner width first; the box is as tall as that needs.
    let iw = usize::from(w.saturating_sub(2));
    let mut lines: Vec<Line> = Vec::new();
    if let Some(p) = &setup.probe {
        lines.push(Line::from(vec![
            Span::styled("Server    ", dim()),
            Span::raw(text::clean_line(&p.server)),
        ]));
        let fp = text::clean_line(&p.fingerprint);
        if !fp.is_empty() {
            lines.push(Line::from(vec![
                Span::styled("Identity  ", dim()),
                Span::raw(truncate(&fp, iw.saturating_sub(10))),
            ]));
        }
        if let Some(w) = &setup.warning {
            lines.extend(wrapped(&text::clean_line(w), iw, "          ", Style::new().fg(Color::Red)));
        }
        if !fp.is_empty() && fp.len() > iw.saturating_sub(10) {
            lines.push(Line::raw(format!(
                "          {}",
                truncate(&fp[iw.saturating_sub(11).min(fp.len())..], iw.saturating_sub(10))
            )));
        }
        if let Some(why) = &p.vouched {
            lines.push(Line::styled(format!("          ✓ {why}"), Style::new().fg(Color::Green)));
        }
        if setup.step != Step::Trust && p.invite_code.is_some() {
            let how = if setup.register {
                "your new account joins with the invite"
            } else {
                "you will join with the invite"
            };
            lines.push(Line::styled(format!("          {how}"), dim()));
        }
        lines.push(Line::raw(""));
    } else {
        lines.push(Line::raw("Chat with friends and family on a server one of you runs."));
        lines.push(Line::raw(""));
    }
    if matches!(setup.step, Step::Password | Step::Confirm) {
        lines.push(Line::from(vec![
            Span::styled("Username  ", dim()),
            Span::raw(text::clean_line(&setup.username)),
        ]));
    }
    let (prompt, hint) = setup.prompt();
    lines.push(Line::styled(prompt, Style::new().add_modifier(Modifier::BOLD)));
    let field_row = lines.len() as u16;
    let shown = if setup.masked() {
        "•".repeat(unicode_segmentation::UnicodeSegmentation::graphemes(setup.field.text(), true).count())
    } else {
        setup.field.text().to_owned()
    };
    let takes_text = !matches!(setup.step, Step::Trust | Step::Choose | Step::Busy);
    if takes_text {
        lines.push(Line::from(vec![
            Span::styled("> ", Style::new().fg(Color::Cyan)),
            Span::raw(truncate(&shown, iw.saturating_sub(3))),
        ]));
    }
    if !hint.is_empty() {
        lines.extend(wrapped(hint, iw, "", dim()));
    }
    if let Some(e) = &setup.error {
        lines.extend(wrapped(&format!("✕ {}", text::clean_line(e)), iw, "", Style::new().fg(Color::Red)));
    }
    lines.push(Line::styled("Enter continues · Esc goes back · Ctrl+C quits", dim()));
    let r = centred(area, w, (lines.len() as u16 + 2).max(14).min(area.height));
    let block = Block::bordered().title(" Welcome to kith ").border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(r);
    block.render(r, buf);
    for (i, line) in lines.iter().take(inner.height as usize).enumerate() {
        buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
    if takes_text && field_row + 1 < inner.height {
        let before = if setup.masked() {
            unicode_segmentation::UnicodeSegmentation::graphemes(
                &setup.field.text()[..setup.field.cursor()],
                true,
            )
            .count()
        } else {
            width(&setup.field.text()[..setup.field.cursor()])
        };
        let x = (inner.x + 2 + before as u16).min(inner.right().saturating_sub(1));
        frame.set_cursor_position(Position::new(x, inner.y + field_row));
    }
}

/// The key column of the help screen.
const HELP_KEYS: usize = 20;

/// Every key and command, fitted to the terminal: descriptions wrap under
/// their own column, and what does not fit scrolls (`scroll` rows down).
/// Returns how far it can scroll.
fn help(area: Rect, buf: &mut Buffer, scroll: usize) -> usize {
    let keys = [
        ("Enter", "send"),
        ("Alt+Enter", "new line"),
        ("Tab", "complete @name, #channel, /command"),
        ("↑ (empty input)", "edit your last message"),
        ("↑ / ↓", "input history"),
        ("Ctrl+↑", "pick a message: r reply, e edit, d delete"),
        ("PgUp / PgDn, wheel", "scroll (older history loads at the top)"),
        ("Esc", "cancel reply/edit, else mark read and jump to the end"),
        ("Alt+↑ / Alt+↓", "previous / next channel"),
        ("Alt+M / Alt+D", "voice: mute / deafen"),
        ("Alt+T", "voice: push-to-talk (hold; after /voice ptt)"),
        ("Ctrl+K", "quick switcher"),
        ("Ctrl+W / Ctrl+U", "delete word / to line start"),
        ("F1, /help", "this screen"),
        ("Ctrl+C, /quit", "leave"),
        ("● ◐ ⊖ ○", "online, idle, do not disturb, offline (or invisible)"),
    ];
    let w = usize::from(area.width.saturating_sub(4)).max(HELP_KEYS + 10);
    let room = w - HELP_KEYS - 1;
    let mut lines: Vec<Line> = Vec::new();
    let mut entry = |key: String, what: &str| {
        for (i, r) in wrap(what, room).into_iter().enumerate() {
            let lead = if i == 0 { format!("{key:<HELP_KEYS$} ") } else { " ".repeat(HELP_KEYS + 1) };
            lines.push(Line::from(vec![
                Span::styled(lead, Style::new().fg(Color::Cyan)),
                Span::raw(what[r].to_owned()),
            ]));
        }
    };
    for (key, what) in keys {
        entry(key.to_owned(), what);
    }
    entry(String::new(), "");
    for (name, args, what) in COMMANDS {
        entry(format!("/{name} {args}"), what);
    }
    let shown = usize::from(area.height.saturating_sub(2));
    let last = lines.len().saturating_sub(shown);
    let scroll = scroll.min(last);
    let title = if last > 0 {
        format!(" Keys and commands · ↑↓ scroll {}/{} · other keys close ", scroll + 1, last + 1)
    } else {
        " Keys and commands (any key closes) ".to_owned()
    };
    popup(area, buf, &title, lines.into_iter().skip(scroll).collect());
    last
}

fn popup(area: Rect, buf: &mut Buffer, title: &str, lines: Vec<Line>) {
    let w = area.width.saturating_sub(2).min(100);
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = centred(area, w, h);
    Clear.render(r, buf);
    let block = Block::bordered().title(title.to_owned()).border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(r);
    block.render(r, buf);
    for (i, line) in lines.iter().take(inner.height as usize).enumerate() {
        buf.set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}

/// Cleaned text wrapped into `area`, as many rows as fit.
fn paragraph(text: &str, style: Style, area: Rect, buf: &mut Buffer) {
    for (i, r) in
        wrap(text, usize::from(area.width).max(1)).into_iter().take(usize::from(area.height)).enumerate()
    {
        buf.set_line(area.x, area.y + i as u16, &Line::styled(text[r].to_owned(), style), area.width);
    }
}

/// Cleaned text wrapped to `w` cells as styled lines, each led by `indent`.
fn wrapped(text: &str, w: usize, indent: &str, style: Style) -> Vec<Line<'static>> {
    let room = w.saturating_sub(width(indent)).max(1);
    wrap(text, room).into_iter().map(|r| Line::styled(format!("{indent}{}", &text[r]), style)).collect()
}

fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

fn rule(label: &str, w: u16, style: Style) -> Line<'static> {
    let label = format!(" {label} ");
    let side = (usize::from(w).saturating_sub(width(&label))) / 2;
    Line::styled(
        format!("{}{label}{}", "─".repeat(side.min(3)), "─".repeat(side.saturating_sub(3).min(200))),
        style,
    )
}

fn day_label(day: NaiveDate, today: NaiveDate) -> String {
    if day == today {
        "Today".into()
    } else if Some(day) == today.pred_opt() {
        "Yesterday".into()
    } else if day.year() == today.year() {
        day.format("%A, %-d %B").to_string()
    } else {
        day.format("%A, %-d %B %Y").to_string()
    }
}

/// A presence as a shape and a colour, so that it reads without colour too
/// (a monochrome terminal, colour blindness).
fn presence_dot(s: v1::PresenceStatus) -> Span<'static> {
    let (shape, colour) = match s {
        v1::PresenceStatus::Online => ("●", Color::Green),
        v1::PresenceStatus::Idle => ("◐", Color::Yellow),
        v1::PresenceStatus::Dnd => ("⊖", Color::Red),
        v1::PresenceStatus::Offline | v1::PresenceStatus::Invisible => ("○", Color::DarkGray),
    };
    Span::styled(shape, Style::new().fg(colour))
}

/// `sha256:0123abcd…` (the first 8 hex digits; the whole in `/invite`).
fn short_fingerprint(fp: &str) -> String {
    match fp.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 8 => format!("sha256:{}…", &hex[..8]),
        _ => text::clean_line(fp),
    }
}

fn first_line(body: &str) -> &str {
    body.split('\n').next().unwrap_or("")
}

/// `_waves_` (what /me sends) is shown as an action.
fn action_text(body: &str) -> Option<&str> {
    let inner = body.strip_prefix('_')?.strip_suffix('_')?;
    (!inner.is_empty() && !inner.contains(['_', '\n'])).then_some(inner)
}

fn wrap_input(text: &str, w: usize) -> Vec<std::ops::Range<usize>> {
    let mut lines = wrap(text, w);
    // A cursor after a trailing full line sits on a line of its own.
    if let Some(last) = lines.last()
        && last.end == text.len()
        && width(&text[last.clone()]) >= w
    {
        lines.push(text.len()..text.len());
    }
    lines
}

fn cursor_in(text: &str, lines: &[std::ops::Range<usize>], cursor: usize) -> (usize, usize) {
    for (i, r) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let next_start = lines.get(i + 1).map_or(usize::MAX, |n| n.start);
        if cursor >= r.start && (cursor < next_start || last) {
            let col = width(&text[r.start..cursor.min(r.end).max(r.start)]);
            return (i, col);
        }
    }
    (0, 0)
}

/// Channels and conversations whose name contains `query` (case-insensitive),
/// unread first.
pub(crate) fn switcher_matches(model: &Model, query: &str) -> Vec<(u64, String)> {
    let q = query.to_lowercase();
    let mut out: Vec<(bool, u64, String)> = model
        .nav_order()
        .into_iter()
        .filter_map(|id| model.channels.get(&id))
        .map(|ch| {
            let place = model.community(ch.community_id).map(|c| format!("  {}", c.name)).unwrap_or_default();
            (ch.unread == 0, ch.id, format!("{}{place}", model.title(ch)))
        })
        .filter(|(_, _, label)| label.to_lowercase().contains(&q))
        .collect();
    out.sort_by_key(|(read, _, _)| *read);
    out.into_iter().map(|(_, id, label)| (id, label)).collect()
}

/// A message's text as laid out: `name body (edited)`, or `* name action`
/// for /me, with where the name ends and the edited mark begins.
struct Content {
    text: String,
    name_end: usize,
    edited_start: usize,
    action: bool,
}

impl Content {
    /// `bot`: the author is a bot, which every client marks.
    fn of(name: &str, bot: bool, m: &Msg) -> Content {
        let action = action_text(&m.body);
        let name = if bot { format!("{name} {BOT}") } else { name.to_owned() };
        let lead = match action {
            Some(_) => format!("* {name}"),
            None => name,
        };
        let edited = if m.edited { " (edited)" } else { "" };
        let text = format!("{lead} {}{edited}", action.unwrap_or(&m.body));
        Content {
            name_end: lead.len(),
            edited_start: text.len() - edited.len(),
            text,
            action: action.is_some(),
        }
    }
}

/// How many rows a message takes at pane width `w` (its own rows, not the
/// separators between messages). Cached per width and author name (a
/// message's body never changes: an edit replaces the whole `Msg`).
pub(crate) fn message_rows(model: &Model, pictures: &Pictures, ch: &Chan, m: &Msg, w: u16) -> usize {
    let name = model.name_in(ch, m.author_id).unwrap_or(&m.author_name);
    let name_hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        name.hash(&mut h);
        h.finish()
    };
    if let Some((cw, hash, rows)) = m.layout.get()
        && cw == w
        && hash == name_hash
    {
        return usize::from(rows);
    }
    let content = Content::of(name, model.is_bot(m.author_id), m);
    let rows = wrap(&content.text, usize::from(w).saturating_sub(TIME).max(1)).len()
        + usize::from(m.reply_to != 0)
        + m.files.len()
        + pictures.rows(m);
    m.layout.set(Some((w, name_hash, rows.min(usize::from(u16::MAX)) as u16)));
    rows
}

/// Every row of a channel's held history at width `w`, with separators.
pub(crate) fn total_rows(
    model: &Model,
    pictures: &Pictures,
    ch: &Chan,
    w: u16,
    utc_offset_secs: i32,
) -> usize {
    let mut total = 1; // the "beginning" or "loading" line at the top
    let mut prev_day = None;
    for m in &ch.msgs {
        total += message_rows(model, pictures, ch, m, w);
        let day = (m.created_ms as i64 + i64::from(utc_offset_secs) * 1000).div_euclid(86_400_000);
        if prev_day != Some(day) {
            total += 1;
        }
        prev_day = Some(day);
    }
    total + usize::from(ch.marker.is_some()) + ch.sending.len()
}

/// The member list's first rows (online first, then by name), with the
/// counts. Building it is O(members); it is rebuilt only when the channel,
/// the people in it (`Model::people_gen`) or the pane's height change, so
/// that a busy channel's frames do not each sort a big community.
#[derive(Debug)]
pub(crate) struct Roster {
    key: (u64, u64, usize),
    online: usize,
    offline: usize,
    first: Vec<(v1::PresenceStatus, String, u64)>,
}

impl Roster {
    fn new(model: &Model, ch: &Chan, key: (u64, u64, usize)) -> Roster {
        let rows = key.2;
        let mut people: Vec<(bool, &str, u64)> = model
            .roster(ch)
            .into_iter()
            .map(|(u, name)| (model.status(u) == v1::PresenceStatus::Offline, name, u))
            .collect();
        let online = people.iter().filter(|p| !p.0).count();
        // Those a large community's snapshot left out are offline.
        let offline = model.people_count(ch).max(people.len()) - online;
        let cmp = |a: &(bool, &str, u64), b: &(bool, &str, u64)| {
            // Case-insensitive, comparing the lowercased characters as they
            // come: no copy of either name.
            a.0.cmp(&b.0).then_with(|| {
                a.1.chars().flat_map(char::to_lowercase).cmp(b.1.chars().flat_map(char::to_lowercase))
            })
        };
        // Only the first rows are ever shown: order those, not everyone.
        if people.len() > rows {
            people.select_nth_unstable_by(rows, cmp);
            people.truncate(rows);
        }
        people.sort_by(cmp);
        let first = people
            .into_iter()
            .map(|(_, name, u)| {
                let name = if model.is_bot(u) { format!("{name} {BOT}") } else { name.to_owned() };
                (model.status(u), name, u)
            })
            .collect();
        Roster { key, online, offline, first }
    }
}
