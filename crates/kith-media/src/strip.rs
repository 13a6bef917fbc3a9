//! Taking what a photo says about its owner out before anyone else sees
//! it: where it was taken (GPS), the camera and its serial number, the
//! time, the editing software, a thumbnail of the original crop.
//!
//! The file is rewritten from the parts an image needs, rather than edited
//! by finding and removing the parts known to be private: a parser that
//! misses one tag would leak it, a whitelist cannot. For a JPEG that means
//! the segments that make up the picture (quantisation and Huffman tables,
//! frame and scan headers, the entropy-coded data, restart intervals), its
//! colour (an ICC profile, Adobe's colour-transform flag) and nothing else:
//! no Exif, XMP, IPTC, comments or other application segments, and nothing
//! after the end of the image. The one thing Exif says that changes how the
//! picture looks, its orientation, is written back as a fresh Exif segment
//! holding that tag alone, so the photo stays upright. For a PNG: the
//! critical chunks and the ancillary chunks that only describe pixels.
//!
//! WebP, GIF and the MP4 family get the same treatment in their own terms
//! (`strip/`). Every parser is small, our own, and fuzzed
//! (`fuzz/fuzz_targets/strip.rs`).

use std::io::{self, Read, Seek, Write};

mod gif;
mod isobmff;
mod webp;

/// What was done to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stripped {
    /// Rewritten without its metadata; the picture's size in pixels as
    /// it is shown (its orientation applied).
    Cleaned { width: u32, height: u32 },
    /// Not an image this knows how to clean: copied as it is.
    Untouched,
}

/// The most pixels a picture may have (a 108-megapixel phone photo fits;
/// a decompression bomb, tiny on disk and gigapixels decoded, does not)...
pub const MAX_PIXELS: u64 = 200_000_000;
/// ...and the longest side.
pub const MAX_SIDE: u32 = 30_000;

/// Copies the file in `input` to `output` without its metadata, if
/// `content_type` (as sniffed from the bytes) is one it cleans: JPEG, PNG,
/// WebP, GIF, HEIF, AVIF, and MP4, QuickTime and M4A. An error means the file is
/// malformed, or a picture bigger than [`MAX_PIXELS`] or [`MAX_SIDE`]
/// (kind `Unsupported`), or the disk failed: refuse the upload. Nothing is
/// decoded: a size is read from the headers (0 × 0 for sound).
pub fn strip(content_type: &str, input: impl Read + Seek, output: impl Write) -> io::Result<Stripped> {
    let (width, height) = match content_type {
        "image/jpeg" => jpeg(input, output)?,
        "image/png" => png(input, output)?,
        "image/webp" => webp::webp(input, output)?,
        "image/gif" => gif::gif(input, output)?,
        "video/mp4" | "video/quicktime" | "audio/m4a" | "image/heif" | "image/avif" => {
            isobmff::isobmff(input, output)?
        }
        _ => return Ok(Stripped::Untouched),
    };
    Ok(Stripped::Cleaned { width, height })
}

/// Refuses a picture too big to show safely.
fn within_caps(width: u32, height: u32) -> io::Result<(u32, u32)> {
    if width == 0 || height == 0 {
        return Err(bad("a picture of no pixels"));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the picture is {width}×{height} pixels; this server takes pictures of at most {} megapixels and {MAX_SIDE} pixels a side",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok((width, height))
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

fn byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8];
    r.read_exact(&mut b).map_err(|_| bad("the image ends too early"))?;
    Ok(b[0])
}

// ----- JPEG ----------------------------------------------------------------

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

/// Segments that carry no pixels and no colour: dropped.
fn private(marker: u8, payload: &[u8]) -> bool {
    match marker {
        APP2 => !payload.starts_with(b"ICC_PROFILE\0"),
        APP14 => !payload.starts_with(b"Adobe"),
        0xE0..=0xEF | 0xFE => true, // every other APPn, and comments
        _ => false,
    }
}

fn jpeg(input: impl Read, output: impl Write) -> io::Result<(u32, u32)> {
    let mut r = io::BufReader::new(input);
    let mut w = io::BufWriter::new(output);
    if byte(&mut r)? != 0xFF || byte(&mut r)? != SOI {
        return Err(bad("not a JPEG: it does not start with SOI"));
    }
    w.write_all(&[0xFF, SOI])?;
    // Segments before the first scan are held until the frame header (SOF):
    // the orientation, if any, is only known once Exif has been read, and
    // it goes first.
    let mut orientation = None;
    let mut kept: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut wrote_head = false;
    // A marker the scan copy already read.
    let mut after_scan = None;
    let mut size = None;
    loop {
        let marker = match after_scan.take() {
            Some(m) => m,
            None => next_marker(&mut r)?,
        };
        match marker {
            EOI => {
                let Some(size) = size.filter(|_| wrote_head) else {
                    return Err(bad("a JPEG without a frame and a scan"));
                };
                w.write_all(&[0xFF, EOI])?;
                w.flush()?;
                // The size as the picture is shown: orientations 5 to 8
                // turn it a quarter.
                let (width, height) = size;
                return Ok(if matches!(orientation, Some(5..=8)) {
                    (height, width)
                } else {
                    (width, height)
                });
            }
            // Restart markers have no length; outside a scan they are stray.
            0xD0..=0xD7 | 0x01 => {
                w.write_all(&[0xFF, marker])?;
                continue;
            }
            SOI => return Err(bad("a second start of image")),
            _ => {}
        }
        let len = u16::from_be_bytes([byte(&mut r)?, byte(&mut r)?]);
        if len < 2 {
            return Err(bad("a JPEG segment shorter than its own length field"));
        }
        let mut payload = vec![0u8; usize::from(len) - 2];
        r.read_exact(&mut payload).map_err(|_| bad("the image ends inside a segment"))?;
        if marker == APP1 && orientation.is_none() {
            orientation = exif_orientation(&payload);
        }
        if private(marker, &payload) {
            continue;
        }
        if !wrote_head {
            let frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if marker != SOS && !frame {
                // Tables (DQT, DHT, DRI…) before the frame: kept, in order.
                kept.push((marker, payload));
                continue;
            }
            if !frame {
                return Err(bad("a JPEG scan before its frame header"));
            }
            // Precision, then height and width.
            let [_, h1, h2, w1, w2, ..] = payload[..] else {
                return Err(bad("a JPEG frame header too short"));
            };
            size = Some(within_caps(
                u32::from(u16::from_be_bytes([w1, w2])),
                u32::from(u16::from_be_bytes([h1, h2])),
            )?);
            if let Some(o) = orientation.filter(|&o| o != 1) {
                segment(&mut w, APP1, &orientation_exif(o))?;
            }
            for (m, p) in kept.drain(..) {
                segment(&mut w, m, &p)?;
            }
            wrote_head = true;
        }
        segment(&mut w, marker, &payload)?;
        if marker == SOS {
            after_scan = Some(copy_scan(&mut r, &mut w)?);
        }
    }
}

fn segment(w: &mut impl Write, marker: u8, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len() + 2).map_err(|_| bad("a segment too long to write"))?;
    w.write_all(&[0xFF, marker])?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)
}

/// The next marker's code, skipping fill bytes (`FF FF…`).
fn next_marker(r: &mut impl Read) -> io::Result<u8> {
    if byte(r)? != 0xFF {
        return Err(bad("junk where a JPEG marker belongs"));
    }
    loop {
        match byte(r)? {
            0xFF => continue,
            0x00 => return Err(bad("a stuffed byte where a JPEG marker belongs")),
            m => return Ok(m),
        }
    }
}

/// Copies entropy-coded data (stuffed zeros, restart markers and fill
/// bytes included) up to the next real marker, and returns that marker's
/// code (both of its bytes consumed).
fn copy_scan<R: Read>(r: &mut io::BufReader<R>, w: &mut impl Write) -> io::Result<u8> {
    use io::BufRead;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(bad("the image ends inside its scan"));
        }
        // Everything up to an FF is data.
        let Some(ff) = buf.iter().position(|&b| b == 0xFF) else {
            let n = buf.len();
            w.write_all(buf)?;
            r.consume(n);
            continue;
        };
        w.write_all(&buf[..ff])?;
        r.consume(ff + 1);
        // After an FF (fill bytes may repeat it): data, or a marker.
        let mut next = byte(r)?;
        while next == 0xFF {
            next = byte(r)?;
        }
        if next == 0x00 || (0xD0..=0xD7).contains(&next) {
            w.write_all(&[0xFF, next])?;
            continue;
        }
        return Ok(next);
    }
}

/// The Orientation tag (0x0112) of IFD0 in an Exif APP1 payload, if any.
fn exif_orientation(payload: &[u8]) -> Option<u16> {
    let tiff = payload.strip_prefix(b"Exif\0\0")?;
    let big = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|i| {
        let entry = ifd.checked_add(2 + 12 * i)?;
        // Tag 0x0112, type SHORT (3), one value, stored in the entry itself.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3 && u32_at(entry + 4)? == 1)
            .then(|| u16_at(entry + 8))
            .flatten()
            .filter(|o| (1..=8).contains(o))
    })
}

/// An Exif APP1 payload holding the Orientation tag and nothing else.
fn orientation_exif(orientation: u16) -> Vec<u8> {
    let mut p = b"Exif\0\0MM\0*".to_vec();
    p.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after the header
    p.extend_from_slice(&1u16.to_be_bytes()); // one entry
    p.extend_from_slice(&0x0112u16.to_be_bytes());
    p.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    p.extend_from_slice(&1u32.to_be_bytes()); // one value
    p.extend_from_slice(&orientation.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // padding of the value field
    p.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    p
}

// ----- PNG -----------------------------------------------------------------

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Chunks kept: the critical ones, and ancillary ones that only say how to
/// show the pixels (colour, transparency, animation). Text, time and Exif
/// chunks, and any chunk this does not know, go.
const PNG_KEPT: &[&[u8; 4]] = &[
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP",
    b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT",
];

/// The largest PNG chunk copied (a bigger one is malformed or hostile).
const PNG_MAX_CHUNK: u32 = 1 << 30;

fn png(input: impl Read, output: impl Write) -> io::Result<(u32, u32)> {
    let mut r = io::BufReader::new(input);
    let mut w = io::BufWriter::new(output);
    let mut signature = [0u8; 8];
    r.read_exact(&mut signature).map_err(|_| bad("not a PNG"))?;
    if &signature != PNG_SIGNATURE {
        return Err(bad("not a PNG: wrong signature"));
    }
    w.write_all(PNG_SIGNATURE)?;
    // IHDR comes first, and says the size.
    let mut ihdr = [0u8; 8 + 13 + 4];
    r.read_exact(&mut ihdr).map_err(|_| bad("the PNG ends in its header"))?;
    if &ihdr[..8] != b"\0\0\0\x0dIHDR" {
        return Err(bad("a PNG that does not start with its header chunk"));
    }
    let be = |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    let size = within_caps(be(8), be(12))?;
    w.write_all(&ihdr)?;
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head).map_err(|_| bad("the PNG ends without IEND"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if len > PNG_MAX_CHUNK {
            return Err(bad("a PNG chunk too large"));
        }
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        let keep = PNG_KEPT.contains(&&kind);
        if keep {
            w.write_all(&head)?;
        }
        // Data and CRC (4 bytes), copied or skipped without holding them.
        let mut body = (&mut r).take(u64::from(len) + 4);
        let moved = if keep { io::copy(&mut body, &mut w)? } else { io::copy(&mut body, &mut io::sink())? };
        if moved != u64::from(len) + 4 {
            return Err(bad("the PNG ends inside a chunk"));
        }
        if &kind == b"IHDR" {
            return Err(bad("a second PNG header chunk"));
        }
        if &kind == b"IEND" {
            w.flush()?;
            return Ok(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn strip_bytes(kind: &str, bytes: &[u8], out: impl Write) -> io::Result<Stripped> {
        strip(kind, io::Cursor::new(bytes), out)
    }

    /// A tiny JPEG made of named segments and a fake scan, to check which
    /// survive (the decoder-level check is in the upload spec).
    fn jpeg_with(segments: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![0xFF, SOI];
        for (m, p) in segments {
            segment(&mut out, *m, p).unwrap();
        }
        // DQT, SOF0, DHT, SOS, then scan data with a stuffed byte and a
        // restart marker, then EOI and trailing junk.
        for (m, p) in
            [(0xDBu8, &[0u8; 65][..]), (0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0][..]), (0xC4, &[0u8; 17][..])]
        {
            segment(&mut out, m, p).unwrap();
        }
        segment(&mut out, SOS, &[1, 1, 0, 0, 63, 0]).unwrap();
        out.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        out.extend_from_slice(&[0xFF, EOI]);
        out.extend_from_slice(b"PK\x03\x04 a zip hidden after the image");
        out
    }

    fn exif(orientation: u16, gps: bool) -> Vec<u8> {
        // Little-endian TIFF: IFD0 with Orientation and (maybe) a GPS pointer.
        let mut p = b"Exif\0\0II*\0".to_vec();
        p.extend_from_slice(&8u32.to_le_bytes());
        let entries: u16 = if gps { 2 } else { 1 };
        p.extend_from_slice(&entries.to_le_bytes());
        p.extend_from_slice(&0x0112u16.to_le_bytes());
        p.extend_from_slice(&3u16.to_le_bytes());
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&orientation.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        if gps {
            p.extend_from_slice(&0x8825u16.to_le_bytes());
            p.extend_from_slice(&4u16.to_le_bytes());
            p.extend_from_slice(&1u32.to_le_bytes());
            p.extend_from_slice(&0u32.to_le_bytes());
        }
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(b"GPS 48.8584 N 2.2945 E");
        p
    }

    fn cleaned(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        assert_eq!(
            strip_bytes("image/jpeg", input, &mut out).unwrap(),
            Stripped::Cleaned { width: 1, height: 1 }
        );
        out
    }

    fn markers(jpeg: &[u8]) -> Vec<u8> {
        let mut found = Vec::new();
        let mut i = 2;
        while i + 4 <= jpeg.len() {
            let m = jpeg[i + 1];
            if m == EOI {
                found.push(m);
                break;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            found.push(m);
            if m == SOS {
                // Skip to EOI for this test's fixed scan.
                let eoi = jpeg.windows(2).rposition(|w| w == [0xFF, EOI]).unwrap();
                found.push(EOI);
                assert_eq!(eoi + 2, jpeg.len(), "nothing after EOI");
                break;
            }
            i += 2 + len;
        }
        found
    }

    #[test]
    fn a_jpeg_keeps_its_picture_and_colour_and_loses_exif_xmp_comments_and_trailers() {
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret</x:xmpmeta>";
        let input = jpeg_with(&[
            (0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"),
            (APP1, &exif(1, true)),
            (APP1, xmp),
            (APP2, b"ICC_PROFILE\0\x01\x01colour"),
            (0xED, b"Photoshop 3.0\0IPTC caption"),
            (0xFE, b"taken at grandma's house"),
            (APP14, b"Adobe\0\x64\0\0\0\0\x01"),
        ]);
        let out = cleaned(&input);
        assert_eq!(markers(&out), [APP2, APP14, 0xDB, 0xC0, 0xC4, SOS, EOI]);
        let text = String::from_utf8_lossy(&out);
        for secret in ["GPS", "secret", "IPTC", "grandma", "JFIF", "PK"] {
            assert!(!text.contains(secret), "{secret} survived");
        }
        // The scan is copied byte for byte (stuffing and restarts included).
        assert!(out.windows(7).any(|w| w == [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]));
    }

    #[test]
    fn a_rotated_photo_keeps_only_its_orientation_first() {
        let out = cleaned(&jpeg_with(&[(APP1, &exif(6, true))]));
        assert_eq!(markers(&out)[0], APP1);
        let payload_len = usize::from(u16::from_be_bytes([out[4], out[5]])) - 2;
        let payload = &out[6..6 + payload_len];
        assert_eq!(payload, orientation_exif(6));
        assert_eq!(exif_orientation(payload), Some(6));
        // Upright already: no Exif at all.
        assert_eq!(markers(&cleaned(&jpeg_with(&[(APP1, &exif(1, false))])))[0], 0xDB);
    }

    #[test]
    fn a_turned_photo_reports_the_size_it_is_shown_at() {
        // A frame 1 pixel wide and 2 high, turned a quarter by orientation 6.
        let tall = |orientation| {
            let mut input = jpeg_with(&[(APP1, &exif(orientation, false))]);
            let sof = input.windows(4).position(|w| w == [0xFF, 0xC0, 0, 11]).unwrap();
            input[sof + 6] = 2;
            let mut out = Vec::new();
            strip_bytes("image/jpeg", &input[..], &mut out).unwrap()
        };
        assert_eq!(tall(6), Stripped::Cleaned { width: 2, height: 1 });
        assert_eq!(tall(1), Stripped::Cleaned { width: 1, height: 2 });
    }

    #[test]
    fn malformed_jpegs_are_refused_not_passed_through() {
        let good = jpeg_with(&[]);
        for bad in [&b"not a jpeg"[..], &good[..good.len() / 2], &[0xFF, SOI, 0xFF, 0xDB, 0x00, 0x01][..]] {
            assert!(strip_bytes("image/jpeg", bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_png_loses_its_text_time_and_exif_chunks() {
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]); // CRC (not checked here)
            c
        };
        let mut png = PNG_SIGNATURE.to_vec();
        for (k, d) in [
            (b"IHDR", &b"\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0"[..]),
            (b"tEXt", b"Author\0grandma"),
            (b"eXIf", b"MM\0*GPS"),
            (b"tIME", b"\x07\xe9\x01\x01\0\0\0"),
            (b"gAMA", b"\0\0\xb1\x8f"),
            (b"IDAT", b"pixels"),
            (b"IEND", b""),
        ] {
            png.extend(chunk(k, d));
        }
        let mut out = Vec::new();
        assert_eq!(
            strip_bytes("image/png", &png[..], &mut out).unwrap(),
            Stripped::Cleaned { width: 1, height: 1 }
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("IHDR") && text.contains("gAMA") && text.contains("IDAT") && text.contains("IEND")
        );
        for gone in ["tEXt", "grandma", "eXIf", "GPS", "tIME"] {
            assert!(!text.contains(gone), "{gone} survived");
        }
        assert!(strip_bytes("image/png", &png[..png.len() - 5], &mut Vec::new()).is_err(), "truncated");
    }

    #[test]
    fn a_decompression_bomb_is_refused_by_its_header_before_any_decoding() {
        // 50 000 × 50 000 pixels: a few kilobytes on disk, 10 GB decoded.
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(b"\0\0\0\x0dIHDR");
        png.extend_from_slice(&50_000u32.to_be_bytes());
        png.extend_from_slice(&50_000u32.to_be_bytes());
        png.extend_from_slice(b"\x08\x02\0\0\0\0\0\0\0");
        let e = strip_bytes("image/png", &png[..], &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("50000×50000"), "{e}");
        // The same for a JPEG's frame header (65 535 × 65 535).
        let mut jpeg = vec![0xFF, SOI];
        segment(&mut jpeg, 0xC0, &[8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0]).unwrap();
        let e = strip_bytes("image/jpeg", &jpeg[..], &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    }

    #[test]
    fn other_files_are_left_alone() {
        assert_eq!(
            strip_bytes("application/pdf", &b"%PDF"[..], &mut Vec::new()).unwrap(),
            Stripped::Untouched
        );
    }
}
