//! Photos drawn in the message list, where the terminal can draw them
//! (kitty's graphics protocol, sixel, iTerm2's inline images): the host
//! finds out what its terminal speaks ([`Picker`], given in
//! [`crate::Config::pictures`]); without one — a plain terminal, telnet,
//! or the user's `--pictures off` — a photo stays its file line.
//!
//! A photo's place is reserved from the size the server gives
//! ([`v1::Attachment`]'s width and height), so nothing moves when its
//! preview arrives. The app asks for the previews of the messages a frame
//! shows ([`Action::Pictures`]), once each, and keeps at most [`KEPT`]
//! drawn pictures: one scrolled far away is dropped and asked for again if
//! it comes back into view.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Cursor;

use kith_proto::v1;
pub use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::sliced::{SignedPosition, SlicedImage, SlicedProtocol};

use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::widgets::Widget as _;

use crate::model::Msg;
use crate::{Action, App};

/// The box a photo is fitted into, in cells: a glance, not a viewer
/// (`kith download` gets the file).
pub const MAX_COLS: u16 = 48;
pub const MAX_ROWS: u16 = 12;
/// Pictures held drawn at once: each holds its encoded image (tens of KB).
const KEPT: usize = 64;
/// The largest preview the host should accept from a server: the server's
/// previews are JPEGs of at most 640 pixels a side (tens of KB).
pub const MAX_PREVIEW_BYTES: u64 = 4 << 20;
/// The most pixels a preview may decode to (a hostile server's "preview"
/// must not make the viewer allocate without bound).
const MAX_DECODED_SIDE: u32 = 4096;

/// One picture attachment of a message: (message, attachment index).
pub type PictureKey = (u64, u32);

/// From the host: the preview of picture `index` of `message`, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PictureInput {
    pub channel: u64,
    pub message: u64,
    pub index: u32,
    pub result: Result<Vec<u8>, String>,
}

/// An attachment a message shows as a picture: its index and shown size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub index: u32,
    pub width: u32,
    pub height: u32,
}

impl Shown {
    /// The attachments of `m` that are pictures of known size, of the kinds
    /// the server previews (or that are their own preview when small):
    /// JPEG and PNG. Others (GIF, WebP, HEIF…) stay file lines rather than
    /// be fetched whole to be decoded here.
    pub fn of(attachments: &[v1::Attachment]) -> Vec<Shown> {
        attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.content_type.as_str(), "image/jpeg" | "image/png"))
            .filter(|(_, a)| a.width > 0 && a.height > 0)
            .map(|(i, a)| Shown { index: i as u32, width: a.width, height: a.height })
            .collect()
    }
}

struct Drawn {
    image: SlicedProtocol,
}

/// The pictures' state: what the terminal can draw, what was asked for,
/// what is drawn.
#[derive(Default)]
pub struct Pictures {
    picker: Option<Picker>,
    asked: HashSet<PictureKey>,
    /// Could not be shown (the server had none, or it did not decode):
    /// their place is given back to text.
    failed: HashSet<PictureKey>,
    drawn: HashMap<PictureKey, Drawn>,
    order: VecDeque<PictureKey>,
    /// Messages the last frame showed whose pictures are not asked for yet:
    /// (channel, message, indexes). Filled while drawing, taken by
    /// [`App::poll_action`].
    wanted: RefCell<Vec<(u64, u64, Vec<u32>)>>,
}

impl std::fmt::Debug for Pictures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pictures")
            .field("protocol", &self.picker.as_ref().map(|p| p.protocol_type()))
            .field("asked", &self.asked.len())
            .field("drawn", &self.drawn.len())
            .finish()
    }
}

impl Pictures {
    pub fn new(picker: Option<Picker>) -> Pictures {
        Pictures { picker, ..Pictures::default() }
    }

    /// The cells picture `p` takes: its shape fitted into the box, at the
    /// terminal's font size; `None` when pictures are off or it failed.
    pub fn cells(&self, message: u64, p: &Shown) -> Option<Size> {
        let picker = self.picker.as_ref()?;
        if self.failed.contains(&(message, p.index)) {
            return None;
        }
        let font = picker.font_size();
        let (fw, fh) = (f64::from(font.width.max(1)), f64::from(font.height.max(1)));
        let (w, h) = (f64::from(p.width), f64::from(p.height));
        let scale = (f64::from(MAX_COLS) * fw / w).min(f64::from(MAX_ROWS) * fh / h).min(1.0);
        let cols = ((w * scale / fw).ceil() as u16).clamp(1, MAX_COLS);
        let rows = ((h * scale / fh).ceil() as u16).clamp(1, MAX_ROWS);
        Some(Size::new(cols, rows))
    }

    /// Rows the pictures of `m` take below its lines.
    pub fn rows(&self, m: &Msg) -> usize {
        m.pictures.iter().filter_map(|p| self.cells(m.id, p)).map(|s| usize::from(s.height)).sum()
    }

    pub fn has_wanted(&self) -> bool {
        !self.wanted.borrow().is_empty()
    }

    /// Called while drawing message `m` of `channel`: its pictures will be
    /// asked for after the frame.
    pub fn want(&self, channel: u64, m: &Msg) {
        if self.picker.is_none() {
            return;
        }
        let missing: Vec<u32> = m
            .pictures
            .iter()
            .map(|p| p.index)
            .filter(|&i| !self.asked.contains(&(m.id, i)) && !self.failed.contains(&(m.id, i)))
            .collect();
        if !missing.is_empty() {
            let mut wanted = self.wanted.borrow_mut();
            if !wanted.iter().any(|(_, id, _)| *id == m.id) {
                wanted.push((channel, m.id, missing));
            }
        }
    }

    /// Draws picture `p` of message `m` with its top-left cell at `at`
    /// (possibly above or below `clip`, the message pane: only the rows
    /// inside are drawn).
    pub fn draw(&self, m: &Msg, p: &Shown, at: (u16, i32), clip: Rect, buf: &mut Buffer) {
        let Some(drawn) = self.drawn.get(&(m.id, p.index)) else { return };
        let y = at.1 - i32::from(clip.y);
        let Ok(y) = i16::try_from(y) else { return };
        let x = i16::try_from(at.0.saturating_sub(clip.x)).unwrap_or(i16::MAX);
        SlicedImage::new(&drawn.image, SignedPosition { x, y }).render(clip, buf);
    }
}

impl App {
    /// The picture requests the last frame gave rise to.
    pub(crate) fn take_wanted_pictures(&mut self) {
        let wanted = std::mem::take(&mut *self.pictures.wanted.borrow_mut());
        for (channel, message, indexes) in wanted {
            let fresh: Vec<u32> =
                indexes.into_iter().filter(|&i| self.pictures.asked.insert((message, i))).collect();
            if !fresh.is_empty() {
                self.actions.push_back(Action::Pictures { channel, message, indexes: fresh });
            }
        }
    }

    pub(crate) fn picture_input(&mut self, input: PictureInput) {
        let key = (input.message, input.index);
        let Some(picker) = &self.pictures.picker else { return };
        if !self.pictures.asked.contains(&key) {
            return;
        }
        let Some(m) = self.model.channels.get(&input.channel).and_then(|ch| ch.find(input.message)) else {
            // Gone meanwhile (deleted, or its channel left).
            self.pictures.asked.remove(&key);
            return;
        };
        let Some(shown) = m.pictures.iter().find(|p| p.index == input.index).copied() else { return };
        let Some(size) = self.pictures.cells(m.id, &shown) else { return };
        let image = input.result.and_then(|bytes| decode(&bytes)).and_then(|img| {
            SlicedProtocol::new(picker, img, Some(size)).map_err(|e| format!("cannot draw it: {e}"))
        });
        match image {
            Ok(image) => {
                self.pictures.drawn.insert(key, Drawn { image });
                self.pictures.order.push_back(key);
                while self.pictures.order.len() > KEPT {
                    if let Some(old) = self.pictures.order.pop_front() {
                        self.pictures.drawn.remove(&old);
                        self.pictures.asked.remove(&old);
                    }
                }
            }
            Err(_) => {
                // Its place goes back to text: the file line stays.
                self.pictures.failed.insert(key);
                m.layout.set(None);
            }
        }
    }
}

/// A preview's pixels, upright, within bounds whatever the server sent.
fn decode(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    use image::ImageDecoder as _;
    let mut reader =
        image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(u64::from(MAX_DECODED_SIDE) * u64::from(MAX_DECODED_SIDE) * 4);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    picture.apply_orientation(orientation);
    Ok(picture)
}
