//! Small previews of photos, so a conversation full of 12-megapixel
//! pictures loads like one full of text. Only pictures that passed
//! [`crate::strip`] (whose size in pixels was checked against its caps from
//! the header, before anything is decoded) come here, and the decoder is
//! held to the same caps and a memory ceiling as well; pictures past
//! [`MAX_PIXELS`] get no preview at all.

use std::io::{self, BufRead, Seek};

/// The longest side of a preview, in pixels (twice a phone's inline width
/// in CSS pixels, for sharp screens).
pub const SIDE: u32 = 640;

/// Pictures previewed at most: decoding one takes its pixels in memory, so
/// a bigger one (up to the 200 megapixels a picture may have) gets none,
/// and clients offer it as a download rather than show it.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Bytes a decoder may allocate: a picture of [`MAX_PIXELS`] in RGBA.
const MAX_ALLOC: u64 = MAX_PIXELS * 4 + (16 << 20);

/// A JPEG preview of the picture in `input` (upright: its orientation is
/// applied), or `None` if it is small enough to be its own preview.
pub fn thumbnail(content_type: &str, input: impl BufRead + Seek) -> io::Result<Option<Vec<u8>>> {
    use image::ImageDecoder as _;
    let format = match content_type {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        _ => return Ok(None),
    };
    let mut reader = image::ImageReader::with_format(input, format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::strip::MAX_SIDE);
    limits.max_image_height = Some(crate::strip::MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(io::Error::other)?;
    let (w, h) = decoder.dimensions();
    if w.max(h) <= SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Ok(None);
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = image::DynamicImage::from_decoder(decoder).map_err(io::Error::other)?;
    picture.apply_orientation(orientation);
    let small = picture.thumbnail(SIDE, SIDE).into_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .map_err(io::Error::other)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let picture =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&picture).unwrap();
        out
    }

    #[test]
    fn a_big_photo_gets_a_small_upright_preview_and_a_small_one_none() {
        let preview = thumbnail("image/jpeg", std::io::Cursor::new(jpeg(2000, 1000))).unwrap().unwrap();
        let small = image::load_from_memory(&preview).unwrap();
        assert_eq!((small.width(), small.height()), (640, 320));
        assert!(thumbnail("image/jpeg", std::io::Cursor::new(jpeg(600, 400))).unwrap().is_none());
        assert!(thumbnail("video/mp4", std::io::Cursor::new(Vec::new())).unwrap().is_none());
        assert!(thumbnail("image/jpeg", std::io::Cursor::new(b"broken".to_vec())).is_err());
    }

    #[test]
    fn a_rotated_photo_gets_an_upright_preview() {
        // Exif orientation 6: shown turned a quarter clockwise.
        let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
        let mut segment = vec![0xFF, 0xE1];
        segment.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        segment.append(&mut exif);
        let plain = jpeg(2000, 1000);
        let rotated = [&plain[..2], &segment[..], &plain[2..]].concat();
        let preview = thumbnail("image/jpeg", std::io::Cursor::new(rotated)).unwrap().unwrap();
        let small = image::load_from_memory(&preview).unwrap();
        assert_eq!((small.width(), small.height()), (320, 640));
    }
}
