//! GIF: a header, colour tables, then blocks. Kept: frames (image
//! descriptors and their data), the graphic control extension (timing,
//! transparency), plain-text extensions (drawn as part of the picture) and
//! the looping extension of animations (`NETSCAPE2.0`, `ANIMEXTS1.0`).
//! Comments, XMP and every other application extension go.

use std::io::{self, Read, Write};

use super::{bad, byte, within_caps};

const TRAILER: u8 = 0x3B;
const EXTENSION: u8 = 0x21;
const IMAGE: u8 = 0x2C;
const GRAPHIC_CONTROL: u8 = 0xF9;
const PLAIN_TEXT: u8 = 0x01;
const APPLICATION: u8 = 0xFF;
/// Application extensions that only say how an animation loops.
const LOOPING: &[&[u8; 11]] = &[b"NETSCAPE2.0", b"ANIMEXTS1.0"];

/// A colour table of `packed`'s size, if its flag (bit 7) says there is one.
fn table(packed: u8) -> usize {
    if packed & 0x80 != 0 { 3 << ((packed & 7) + 1) } else { 0 }
}

fn copy_exact(r: &mut impl Read, w: &mut impl Write, n: usize) -> io::Result<()> {
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).map_err(|_| bad("the GIF ends too early"))?;
    w.write_all(&buf)
}

/// Data sub-blocks (a length byte, that many bytes; a zero length ends
/// them), copied to `w`.
fn sub_blocks(r: &mut impl Read, w: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 255];
    loop {
        let len = byte(r)?;
        w.write_all(&[len])?;
        if len == 0 {
            return Ok(());
        }
        let block = &mut buf[..usize::from(len)];
        r.read_exact(block).map_err(|_| bad("the GIF ends inside a block"))?;
        w.write_all(block)?;
    }
}

pub(super) fn gif(input: impl Read, output: impl Write) -> io::Result<(u32, u32)> {
    let mut r = io::BufReader::new(input);
    let mut w = io::BufWriter::new(output);
    let mut head = [0u8; 13];
    r.read_exact(&mut head).map_err(|_| bad("not a GIF"))?;
    if &head[..6] != b"GIF87a" && &head[..6] != b"GIF89a" {
        return Err(bad("not a GIF: wrong signature"));
    }
    let le = |b: &[u8]| u32::from(u16::from_le_bytes([b[0], b[1]]));
    let size = within_caps(le(&head[6..8]), le(&head[8..10]))?;
    w.write_all(&head)?;
    copy_exact(&mut r, &mut w, table(head[10]))?;
    let mut frames = 0u32;
    loop {
        match byte(&mut r)? {
            TRAILER => {
                if frames == 0 {
                    return Err(bad("a GIF without a picture"));
                }
                w.write_all(&[TRAILER])?;
                w.flush()?;
                return Ok(size);
            }
            IMAGE => {
                let mut d = [0u8; 9];
                r.read_exact(&mut d).map_err(|_| bad("the GIF ends inside a frame header"))?;
                // Each frame is held to the same caps as the whole.
                within_caps(le(&d[4..6]), le(&d[6..8]))?;
                w.write_all(&[IMAGE])?;
                w.write_all(&d)?;
                copy_exact(&mut r, &mut w, table(d[8]))?;
                copy_exact(&mut r, &mut w, 1)?; // LZW minimum code size
                sub_blocks(&mut r, &mut w)?;
                frames += 1;
            }
            EXTENSION => {
                let label = byte(&mut r)?;
                // The first sub-block says enough to decide (an
                // application's is its name); the rest is streamed.
                let len = byte(&mut r)?;
                let mut first = vec![0u8; usize::from(len)];
                r.read_exact(&mut first).map_err(|_| bad("the GIF ends inside a block"))?;
                let keep = match label {
                    GRAPHIC_CONTROL | PLAIN_TEXT => true,
                    APPLICATION => LOOPING.iter().any(|id| first[..] == id[..]),
                    _ => false,
                };
                if keep {
                    w.write_all(&[EXTENSION, label, len])?;
                    w.write_all(&first)?;
                }
                if len != 0 {
                    if keep { sub_blocks(&mut r, &mut w)? } else { sub_blocks(&mut r, &mut io::sink())? }
                }
            }
            _ => return Err(bad("junk where a GIF block belongs")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Stripped;
    use super::super::tests::strip_bytes;
    use super::*;

    /// A real two-frame looping GIF with a comment and an XMP packet.
    fn animation() -> (Vec<image::RgbaImage>, Vec<u8>) {
        let frames: Vec<image::RgbaImage> = (0..2)
            .map(|f| {
                image::RgbaImage::from_fn(20, 10, |x, _| {
                    image::Rgba([if x < 10 { 255 } else { 0 }, f * 200, 0, 255])
                })
            })
            .collect();
        let mut plain = Vec::new();
        {
            let mut e = image::codecs::gif::GifEncoder::new(&mut plain);
            e.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
            e.encode_frames(frames.iter().cloned().map(image::Frame::new)).unwrap();
        }
        let mut file = plain[..plain.len() - 1].to_vec();
        file.extend_from_slice(&[EXTENSION, 0xFE, 23]);
        file.extend_from_slice(b"taken at grandma's farm");
        file.extend_from_slice(&[0, EXTENSION, APPLICATION, 11]);
        file.extend_from_slice(b"XMP DataXMP");
        file.extend_from_slice(&[9]);
        file.extend_from_slice(b"GPS 48.85");
        file.extend_from_slice(&[0, TRAILER]);
        (frames, file)
    }

    #[test]
    fn a_gif_keeps_its_frames_and_looping_and_loses_comments_and_xmp() {
        let (frames, file) = animation();
        let mut out = Vec::new();
        assert_eq!(
            strip_bytes("image/gif", &file, &mut out).unwrap(),
            Stripped::Cleaned { width: 20, height: 10 }
        );
        let text = String::from_utf8_lossy(&out);
        for secret in ["grandma", "XMP", "GPS"] {
            assert!(!text.contains(secret), "{secret} survived");
        }
        assert!(text.contains("NETSCAPE2.0"), "it still loops");
        use image::AnimationDecoder as _;
        let decoded: Vec<_> = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&out))
            .unwrap()
            .into_frames()
            .map(|f| f.unwrap().into_buffer())
            .collect();
        assert_eq!(decoded, frames, "the same frames");
    }

    #[test]
    fn a_malformed_gif_is_refused() {
        let (_, file) = animation();
        assert!(strip_bytes("image/gif", &file[..file.len() - 1], &mut Vec::new()).is_err(), "no trailer");
        assert!(strip_bytes("image/gif", &file[..40], &mut Vec::new()).is_err(), "cut inside a frame");
        let mut junk = file[..13 + super::table(file[10])].to_vec();
        junk.push(0x99);
        assert!(strip_bytes("image/gif", &junk, &mut Vec::new()).is_err(), "an unknown block");
    }
}
