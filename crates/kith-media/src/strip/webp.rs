//! WebP: a RIFF file of chunks. Kept: the picture (`VP8 `, `VP8L`, its
//! alpha `ALPH`), animation (`ANIM`, `ANMF`), the colour profile (`ICCP`)
//! and the header that says which of those there are (`VP8X`, its Exif
//! and XMP flags cleared). Exif, XMP and anything unknown go. The file's
//! length is in its header, so the chunks are walked once to learn what
//! stays, then copied.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::{bad, within_caps};

const KEPT: &[&[u8; 4]] = &[b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"];
/// VP8X flags that announce metadata chunks (which no longer follow).
const EXIF_FLAG: u8 = 0x08;
const XMP_FLAG: u8 = 0x04;
/// Chunks a file may have (an animation has one per frame).
const MAX_CHUNKS: usize = 1 << 20;

struct Chunk {
    at: u64,
    kind: [u8; 4],
    len: u32,
}

impl Chunk {
    /// Header, payload and the pad byte that keeps chunks at even offsets.
    fn total(&self) -> u64 {
        8 + u64::from(self.len) + u64::from(self.len & 1)
    }
}

pub(super) fn webp(mut r: impl Read + Seek, output: impl Write) -> io::Result<(u32, u32)> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).map_err(|_| bad("not a WebP"))?;
    if &head[..4] != b"RIFF" || &head[8..] != b"WEBP" {
        return Err(bad("not a WebP: no RIFF/WEBP header"));
    }
    let end = 8 + u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    let (mut kept, mut size, mut at) = (Vec::new(), None, 12u64);
    while at < end {
        let mut h = [0u8; 8];
        r.read_exact(&mut h).map_err(|_| bad("the WebP ends inside a chunk header"))?;
        let chunk =
            Chunk { at, kind: [h[0], h[1], h[2], h[3]], len: u32::from_le_bytes([h[4], h[5], h[6], h[7]]) };
        if at + chunk.total() > end {
            return Err(bad("a WebP chunk runs past the end of the file"));
        }
        // The first bytes of a chunk that says the picture's size.
        let mut first = [0u8; 10];
        let want = first.len().min(chunk.len as usize);
        r.read_exact(&mut first[..want]).map_err(|_| bad("the WebP ends inside a chunk"))?;
        match &chunk.kind {
            b"VP8X" if kept.is_empty() && want == 10 => {
                let le24 = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
                size = Some(within_caps(le24(&first[4..7]) + 1, le24(&first[7..10]) + 1)?);
            }
            b"VP8X" => return Err(bad("a WebP extended header that is not first, or too short")),
            b"VP8 " if size.is_none() && want == 10 => {
                if first[3..6] != [0x9D, 0x01, 0x2A] {
                    return Err(bad("a VP8 frame without its start code"));
                }
                let le14 = |b: &[u8]| u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x3FFF);
                size = Some(within_caps(le14(&first[6..8]), le14(&first[8..10]))?);
            }
            b"VP8L" if size.is_none() && want >= 5 => {
                if first[0] != 0x2F {
                    return Err(bad("a lossless WebP without its signature"));
                }
                let bits = u32::from_le_bytes([first[1], first[2], first[3], first[4]]);
                size = Some(within_caps((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)?);
            }
            _ => {}
        }
        let total = chunk.total();
        if KEPT.contains(&&chunk.kind) {
            if kept.len() == MAX_CHUNKS {
                return Err(bad("a WebP of too many chunks"));
            }
            kept.push(chunk);
        }
        at += total;
        r.seek(SeekFrom::Start(at))?;
    }
    let size = size.ok_or_else(|| bad("a WebP without a picture"))?;
    let body: u64 = 4 + kept.iter().map(Chunk::total).sum::<u64>();
    let mut w = io::BufWriter::new(output);
    w.write_all(b"RIFF")?;
    w.write_all(&u32::try_from(body).map_err(|_| bad("a WebP too large"))?.to_le_bytes())?;
    w.write_all(b"WEBP")?;
    for c in &kept {
        r.seek(SeekFrom::Start(c.at))?;
        let mut h = [0u8; 8];
        r.read_exact(&mut h)?;
        w.write_all(&h)?;
        let mut payload = (&mut r).take(c.total() - 8);
        if &c.kind == b"VP8X" {
            let mut flags = [0u8];
            payload.read_exact(&mut flags)?;
            w.write_all(&[flags[0] & !(EXIF_FLAG | XMP_FLAG)])?;
        }
        let want = payload.limit();
        if io::copy(&mut payload, &mut w)? != want {
            return Err(bad("the WebP ends inside a chunk"));
        }
    }
    w.flush()?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::super::Stripped;
    use super::super::tests::strip_bytes;
    use super::*;

    fn chunk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut c = kind.to_vec();
        c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        c.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend_from_slice(&body);
        out
    }

    /// A real lossless WebP of 64 × 48, as a phone's editor might save it:
    /// extended header announcing Exif and XMP, the picture, then both.
    fn photo() -> (image::RgbaImage, Vec<u8>) {
        let picture =
            image::RgbaImage::from_fn(64, 48, |x, y| image::Rgba([x as u8 * 4, y as u8 * 5, 90, 255]));
        let mut simple = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut simple)
            .encode(&picture, 64, 48, image::ExtendedColorType::Rgba8)
            .unwrap();
        let vp8l = simple[12..].to_vec(); // the one chunk after the header
        let mut vp8x = vec![0x08 | 0x04 | 0x10, 0, 0, 0];
        vp8x.extend_from_slice(&[63, 0, 0, 47, 0, 0]);
        let file = riff(&[
            chunk(b"VP8X", &vp8x),
            vp8l,
            chunk(b"EXIF", b"MM\0*GPS 48.8584 N 2.2945 E, camera serial 1234"),
            chunk(b"XMP ", b"<x:xmpmeta>grandma's house</x:xmpmeta>"),
            chunk(b"JUNK", b"unknown"),
        ]);
        (picture, file)
    }

    #[test]
    fn a_webp_keeps_its_picture_and_loses_exif_xmp_and_unknown_chunks() {
        let (picture, file) = photo();
        let mut out = Vec::new();
        assert_eq!(
            strip_bytes("image/webp", &file, &mut out).unwrap(),
            Stripped::Cleaned { width: 64, height: 48 }
        );
        let text = String::from_utf8_lossy(&out);
        for secret in ["GPS", "grandma", "EXIF", "XMP", "JUNK", "unknown"] {
            assert!(!text.contains(secret), "{secret} survived");
        }
        assert_eq!(out[20] & (EXIF_FLAG | XMP_FLAG), 0, "the header no longer announces them");
        let decoded = image::load_from_memory_with_format(&out, image::ImageFormat::WebP).unwrap();
        assert_eq!(decoded.to_rgba8(), picture, "the same pixels");
        let mut again = Vec::new();
        strip_bytes("image/webp", &out, &mut again).unwrap();
        assert_eq!(again, out, "already clean");
    }

    #[test]
    fn a_malformed_or_huge_webp_is_refused() {
        let (_, file) = photo();
        assert!(strip_bytes("image/webp", &file[..file.len() - 9], &mut Vec::new()).is_err(), "truncated");
        assert!(
            strip_bytes("image/webp", &riff(&[chunk(b"EXIF", b"GPS")]), &mut Vec::new()).is_err(),
            "no picture"
        );
        let mut huge = file.clone();
        huge[24..27].copy_from_slice(&[0xFF, 0xFF, 0xFF]); // a canvas 16 M pixels wide
        let e = strip_bytes("image/webp", &huge, &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    }
}
