//! MP4, QuickTime and M4A (ISO base media files): a tree of boxes. Phones
//! write where a video was taken (`©xyz`, Apple's `com.apple.quicktime.
//! location.ISO6709`), the camera, the software and the time into `udta`
//! and `meta` boxes, and XMP into `uuid` boxes.
//!
//! The file keeps its exact length and layout, because sample tables point
//! into the media data by absolute offset: every box the picture and sound
//! do not need becomes a `free` box of the same size full of zeros, by a
//! whitelist per parent (an unknown box is blanked, never kept), and the
//! creation and modification times in the movie, track and media headers
//! are zeroed. The index (`moov`, and a fragment's `moof`) is held in
//! memory to be rewritten — at most [`MAX_INDEX`] bytes; media data
//! streams through.
//!
//! Photos in this family (HEIF, as iPhones take them, and AVIF) keep
//! their Exif and XMP as *items*: entries of the top-level `meta` box whose
//! bytes lie elsewhere in the file, usually in `mdat`. Those bytes are
//! zeroed where they lie; the `meta` box keeps the boxes that describe the
//! picture and blanks the rest.
//!
//! Not done: a timed metadata track (rare; `mebx`) keeps its samples.

use std::io::{self, Read, Write};

use super::bad;

/// The largest index rewritten (a two-hour film's is a few MiB).
const MAX_INDEX: u64 = 64 << 20;

/// Top-level boxes copied as they are: media data, the file type, padding,
/// and the indexes of fragmented files.
const TOP_KEPT: &[&[u8; 4]] =
    &[b"ftyp", b"mdat", b"free", b"skip", b"wide", b"styp", b"sidx", b"mfra", b"pdin"];

/// Which children each rewritten box keeps, and whether each is opened in
/// turn (a container) or kept whole.
fn children(parent: &[u8; 4]) -> &'static [(&'static [u8; 4], bool)] {
    match parent {
        b"moov" => &[(b"mvhd", false), (b"trak", true), (b"mvex", false), (b"iods", false)],
        b"trak" => &[(b"tkhd", false), (b"tref", false), (b"edts", false), (b"mdia", true), (b"tapt", false)],
        b"mdia" => &[(b"mdhd", false), (b"hdlr", false), (b"minf", false), (b"elng", false)],
        b"moof" => &[(b"mfhd", false), (b"traf", false)],
        b"meta" => &[
            (b"hdlr", false),
            (b"pitm", false),
            (b"iloc", false),
            (b"iinf", false),
            (b"iref", false),
            (b"iprp", false),
            (b"idat", false),
            (b"grpl", false),
            (b"dinf", false),
        ],
        _ => &[],
    }
}

/// Box headers that carry a creation and a modification time.
const TIMED: &[&[u8; 4]] = &[b"mvhd", b"tkhd", b"mdhd"];

/// A box header: its type, and the lengths of the header and of the whole
/// box (`None`: to the end of the file).
fn header(bytes: &[u8]) -> io::Result<([u8; 4], usize, Option<u64>)> {
    let too_short = || bad("a box header cut short");
    let size = u32::from_be_bytes(bytes.get(..4).ok_or_else(too_short)?.try_into().expect("4 bytes"));
    let kind: [u8; 4] = bytes.get(4..8).ok_or_else(too_short)?.try_into().expect("4 bytes");
    match size {
        0 => Ok((kind, 8, None)),
        1 => {
            let large =
                u64::from_be_bytes(bytes.get(8..16).ok_or_else(too_short)?.try_into().expect("8 bytes"));
            if large < 16 {
                return Err(bad("a box shorter than its header"));
            }
            Ok((kind, 16, Some(large)))
        }
        2..=7 => Err(bad("a box shorter than its header")),
        n => Ok((kind, 8, Some(u64::from(n)))),
    }
}

/// What a rewrite learned: the first video track's size as shown, and
/// the byte ranges of the file that hold metadata items (to be zeroed).
#[derive(Default)]
struct Found {
    size: Option<(u32, u32)>,
    zero: Vec<Range>,
}

/// Blanks a box in place: type `free`, every byte after the header zero.
fn blank(b: &mut [u8], header_len: usize) {
    b[4..8].copy_from_slice(b"free");
    b[header_len..].fill(0);
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
}

/// Zeroes the two times after the version and flags (32-bit fields in
/// version 0, 64-bit in version 1); reads a track header's size.
fn clean_header(kind: &[u8; 4], payload: &mut [u8], found: &mut Found) {
    let Some(&version) = payload.first() else { return };
    let times = if version == 1 { 16 } else { 8 };
    if let Some(t) = payload.get_mut(4..4 + times) {
        t.fill(0);
    }
    if kind == b"tkhd" && found.size.is_none() {
        // Matrix then width and height (16.16 fixed point), after the
        // times, the track id, a reserved word, the duration (4 or 8),
        // 8 reserved bytes, layer, group, volume and 2 reserved bytes.
        let matrix = if version == 1 { 52 } else { 40 };
        let (w, h) = (be32(payload, matrix + 36) >> 16, be32(payload, matrix + 40) >> 16);
        if w > 0 && h > 0 {
            // A quarter turn (a = d = 0) swaps the shown width and height.
            let turned = be32(payload, matrix) == 0 && be32(payload, matrix + 16) == 0;
            found.size = Some(if turned { (h, w) } else { (w, h) });
        }
    }
}

/// Rewrites the children of a box of type `parent` held in `b` (its
/// payload): kept children stay (times zeroed, containers opened), every
/// other one is blanked.
fn rewrite(parent: &[u8; 4], b: &mut [u8], found: &mut Found, depth: u32) -> io::Result<()> {
    let allowed = children(parent);
    let mut at = 0;
    while at < b.len() {
        if b.len() - at < 8 {
            // Trailing bytes too short to be a box: zero them.
            b[at..].fill(0);
            return Ok(());
        }
        let (kind, header_len, size) = header(&b[at..])?;
        let end = match size {
            Some(s) => at.checked_add(usize::try_from(s).map_err(|_| bad("a box too large"))?),
            None => Some(b.len()),
        }
        .filter(|&e| e <= b.len())
        .ok_or_else(|| bad("a box runs past its parent"))?;
        let child = &mut b[at..end];
        match allowed.iter().find(|(k, _)| **k == kind) {
            Some((_, true)) if depth < 8 => rewrite(&kind, &mut child[header_len..], found, depth + 1)?,
            Some(_) if TIMED.contains(&&kind) => clean_header(&kind, &mut child[header_len..], found),
            Some(_) => {}
            None => blank(child, header_len),
        }
        at = end;
    }
    Ok(())
}

/// Bytes `from..to`.
type Range = (u64, u64);

/// A reader of big-endian fields in a box's payload.
struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| bad("an item table cut short"))?;
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// An unsigned number of `n` bytes (0, 2, 4 or 8).
    fn uint(&mut self, n: usize) -> io::Result<u64> {
        Ok(self.take(n)?.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
    }
}

/// The ids of the items that are metadata (`Exif`, and `mime` items such
/// as XMP), from an `iinf` payload.
fn metadata_items(iinf: &[u8]) -> io::Result<Vec<u32>> {
    let mut f = Fields { b: iinf, at: 0 };
    let version = f.uint(1)?;
    f.take(3)?;
    let count = f.uint(if version == 0 { 2 } else { 4 })?;
    let mut items = Vec::new();
    for _ in 0..count {
        let (_, header_len, size) = header(&iinf[f.at..])?;
        let size = size.ok_or_else(|| bad("an item entry without a size"))?;
        let entry = f.take(usize::try_from(size).map_err(|_| bad("an item entry too large"))?)?;
        let mut e = Fields { b: &entry[header_len..], at: 0 };
        let v = e.uint(1)?;
        e.take(3)?;
        if v < 2 {
            // Old entries name no type; they predate Exif items.
            continue;
        }
        let id = e.uint(if v == 2 { 2 } else { 4 })? as u32;
        e.take(2)?; // protection index
        if matches!(e.take(4)?, b"Exif" | b"mime" | b"uri ") {
            items.push(id);
        }
    }
    Ok(items)
}

/// Where the `items` lie, from an `iloc` payload: ranges of the file
/// (construction method 0) or of the `idat` box (method 1).
fn item_places(iloc: &[u8], items: &[u32]) -> io::Result<(Vec<Range>, Vec<Range>)> {
    let mut f = Fields { b: iloc, at: 0 };
    let version = f.uint(1)?;
    f.take(3)?;
    let sizes = f.uint(1)?;
    let (offset_size, length_size) = ((sizes >> 4) as usize, (sizes & 15) as usize);
    let sizes = f.uint(1)?;
    let (base_size, index_size) =
        ((sizes >> 4) as usize, if version >= 1 { (sizes & 15) as usize } else { 0 });
    if [offset_size, length_size, base_size, index_size].iter().any(|s| ![0, 4, 8].contains(s)) {
        return Err(bad("an item location table with odd field sizes"));
    }
    let count = f.uint(if version < 2 { 2 } else { 4 })?;
    let (mut in_file, mut in_idat) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let id = f.uint(if version < 2 { 2 } else { 4 })? as u32;
        let method = if version >= 1 { f.uint(2)? & 15 } else { 0 };
        f.take(2)?; // data reference
        let base = f.uint(base_size)?;
        let extents = f.uint(2)?;
        for _ in 0..extents {
            f.uint(index_size)?;
            let offset = f.uint(offset_size)?;
            let length = f.uint(length_size)?;
            if items.contains(&id) {
                let start = base.checked_add(offset).ok_or_else(|| bad("an item past any file"))?;
                let place = (start, start.checked_add(length).ok_or_else(|| bad("an item past any file"))?);
                match method {
                    0 => in_file.push(place),
                    1 => in_idat.push(place),
                    _ => return Err(bad("a metadata item built from other items")),
                }
            }
        }
    }
    Ok((in_file, in_idat))
}

/// A top-level `meta` box's payload (after its version and flags): finds
/// the metadata items, zeroes those held in its `idat`, and notes where the
/// others lie in the file (`at`: where the payload starts in the file).
fn items(b: &mut [u8], at: u64, found: &mut Found) -> io::Result<()> {
    let mut boxes = Vec::new();
    let mut i = 0;
    while b.len().saturating_sub(i) >= 8 {
        let (kind, header_len, size) = header(&b[i..])?;
        let end = size.map_or(Some(b.len()), |s| usize::try_from(s).ok().and_then(|s| i.checked_add(s)));
        let end = end.filter(|&e| e <= b.len()).ok_or_else(|| bad("a box runs past its parent"))?;
        boxes.push((kind, i + header_len, end));
        i = end;
    }
    let find = |k: &[u8; 4]| boxes.iter().find(|(kind, ..)| kind == k).map(|&(_, s, e)| (s, e));
    let Some((s, e)) = find(b"iinf") else { return Ok(()) };
    let metadata = metadata_items(&b[s..e])?;
    if metadata.is_empty() {
        return Ok(());
    }
    let (s, e) = find(b"iloc").ok_or_else(|| bad("items without their locations"))?;
    let (in_file, in_idat) = item_places(&b[s..e], &metadata)?;
    if !in_idat.is_empty() {
        let (s, e) = find(b"idat").ok_or_else(|| bad("items in a missing idat"))?;
        for (from, to) in in_idat {
            let (from, to) = (s as u64 + from, s as u64 + to);
            if to > e as u64 {
                return Err(bad("an item past its idat"));
            }
            b[from as usize..to as usize].fill(0);
        }
    }
    for (from, to) in in_file {
        if from < at + b.len() as u64 {
            // Before (or inside) the index, already written: cannot be
            // zeroed on the way through.
            return Err(bad("metadata stored before the index that names it"));
        }
        found.zero.push((from, to));
    }
    Ok(())
}

fn copy_n(r: &mut impl Read, w: &mut impl Write, n: Option<u64>) -> io::Result<()> {
    match n {
        Some(n) => {
            if io::copy(&mut r.take(n), w)? != n {
                return Err(bad("the file ends inside a box"));
            }
        }
        None => {
            io::copy(r, w)?;
        }
    }
    Ok(())
}

/// Streams the file's top-level boxes from `input` to `output`, rewriting
/// the indexes; returns the first video track's size (0 × 0 for sound).
pub(super) fn isobmff(input: impl Read, output: impl Write) -> io::Result<(u32, u32)> {
    let mut r = io::BufReader::new(input);
    let mut w = Zeroing { w: io::BufWriter::new(output), at: 0, zero: Vec::new() };
    let mut found = Found::default();
    let mut index = false;
    loop {
        let mut head = [0u8; 16];
        let got = read_up_to(&mut r, &mut head[..8])?;
        if got == 0 {
            break;
        }
        if got < 8 {
            return Err(bad("the file ends inside a box header"));
        }
        if head[..4] == [0, 0, 0, 1] {
            r.read_exact(&mut head[8..]).map_err(|_| bad("the file ends inside a box header"))?;
        }
        let (kind, header_len, size) = header(&head)?;
        let rest = size.map(|s| s - header_len as u64);
        let head = &head[..header_len];
        if matches!(&kind, b"moov" | b"moof" | b"meta") {
            let len = rest.ok_or_else(|| bad("an index box without a size"))?;
            if len > MAX_INDEX {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "a video index larger than 64 MiB"));
            }
            let mut b = vec![0u8; len as usize];
            r.read_exact(&mut b).map_err(|_| bad("the file ends inside its index"))?;
            if &kind == b"meta" {
                // A full box: version and flags come before its children.
                let at = w.at + header_len as u64 + 4;
                let children = b.get_mut(4..).ok_or_else(|| bad("a meta box cut short"))?;
                items(children, at, &mut found)?;
                rewrite(&kind, children, &mut found, 0)?;
                w.zero.append(&mut found.zero);
            } else {
                rewrite(&kind, &mut b, &mut found, 0)?;
            }
            w.write_all(head)?;
            w.write_all(&b)?;
            index = true;
        } else if TOP_KEPT.contains(&&kind) {
            w.write_all(head)?;
            copy_n(&mut r, &mut w, rest)?;
        } else {
            // Blanked: the same length, in zeros.
            let mut free = head.to_vec();
            free[4..8].copy_from_slice(b"free");
            w.write_all(&free)?;
            let skipped = io::copy(&mut (&mut r).take(rest.unwrap_or(u64::MAX)), &mut io::sink())?;
            if rest.is_some_and(|n| n != skipped) {
                return Err(bad("the file ends inside a box"));
            }
            io::copy(&mut io::repeat(0).take(skipped), &mut w)?;
        }
        if size.is_none() {
            break;
        }
    }
    if !index {
        return Err(bad("a file of this kind without its index (moov or meta)"));
    }
    if w.zero.iter().any(|&(_, to)| to > w.at) {
        return Err(bad("metadata said to lie past the end of the file"));
    }
    w.flush()?;
    Ok(found.size.unwrap_or((0, 0)))
}

/// A writer that knows where in the file it is, and writes zeros over the
/// ranges it was given (metadata items).
struct Zeroing<W> {
    w: W,
    at: u64,
    zero: Vec<Range>,
}

impl<W: Write> Write for Zeroing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (start, end) = (self.at, self.at + buf.len() as u64);
        let n = if self.zero.iter().any(|&(from, to)| from < end && to > start) {
            let mut owned = buf.to_vec();
            for &(from, to) in &self.zero {
                let (a, b) = (from.max(start), to.min(end));
                if a < b {
                    owned[(a - start) as usize..(b - start) as usize].fill(0);
                }
            }
            self.w.write_all(&owned)?;
            buf.len()
        } else {
            self.w.write(buf)?
        };
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Reads until `buf` is full or the input ends; how many bytes came.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::super::Stripped;
    use super::super::tests::strip_bytes;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// A version-0 header box with times and (for a track) a size.
    fn timed(kind: &[u8; 4], size: Option<(u32, u32, bool)>) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&0xD5B0_2A00u32.to_be_bytes()); // created 2017
        p.extend_from_slice(&0xD5B0_2A10u32.to_be_bytes()); // modified
        if let Some((w, h, turned)) = size {
            p.extend_from_slice(&[0; 28]); // id, reserved, duration, reserved, layer, group, volume, reserved
            let (a, b, c, d) =
                if turned { (0, 0x1_0000, 0xFFFF_0000u32, 0) } else { (0x1_0000, 0, 0, 0x1_0000) };
            for v in [a, b, 0, c, d, 0, 0, 0, 0x4000_0000] {
                p.extend_from_slice(&v.to_be_bytes());
            }
            p.extend_from_slice(&(w << 16).to_be_bytes());
            p.extend_from_slice(&(h << 16).to_be_bytes());
        } else {
            p.extend_from_slice(&[7; 12]);
        }
        boxed(kind, &p)
    }

    /// A phone video, reduced to its boxes: where it was taken in `udta`
    /// and `meta`, XMP in a `uuid`, the samples in `mdat`.
    fn video(turned: bool) -> Vec<u8> {
        let location = boxed(b"\xA9xyz", b"+48.8584+002.2945/");
        let meta = boxed(b"meta", b"com.apple.quicktime.location.ISO6709 +48.8584+002.2945");
        let minf = boxed(b"minf", &boxed(b"stbl", &boxed(b"stco", b"\0\0\0\0\0\0\0\x01\0\0\0\x30")));
        let mdia = boxed(b"mdia", &[timed(b"mdhd", None), boxed(b"hdlr", b"vide"), minf].concat());
        let trak = boxed(
            b"trak",
            &[
                timed(b"tkhd", Some((1920, 1080, turned))),
                mdia,
                boxed(b"udta", &location),
                boxed(b"meta", b"camera"),
            ]
            .concat(),
        );
        let moov = boxed(
            b"moov",
            &[timed(b"mvhd", None), trak, boxed(b"udta", &location), meta, boxed(b"uuid", b"<x:xmpmeta/>")]
                .concat(),
        );
        [
            boxed(b"ftyp", b"qt  \0\0\0\0qt  "),
            moov,
            boxed(b"mdat", b"the pictures and the sound"),
            boxed(b"uuid", b"XMP!"),
        ]
        .concat()
    }

    #[test]
    fn a_video_loses_where_it_was_taken_and_keeps_its_layout_and_samples() {
        let file = video(false);
        let mut out = Vec::new();
        let cleaned = strip_bytes("video/quicktime", &file, &mut out).unwrap();
        assert_eq!(cleaned, Stripped::Cleaned { width: 1920, height: 1080 });
        assert_eq!(out.len(), file.len(), "the same length: sample offsets still point at the samples");
        let text = String::from_utf8_lossy(&out);
        for secret in ["48.8584", "location", "camera", "xmpmeta", "XMP!", "udta", "meta", "uuid"] {
            assert!(!text.contains(secret), "{secret} survived");
        }
        let at = file.windows(26).position(|w| w == b"the pictures and the sound").unwrap();
        assert_eq!(&out[at..at + 26], b"the pictures and the sound");
        for kept in
            ["ftyp", "moov", "mvhd", "trak", "tkhd", "mdia", "mdhd", "hdlr", "minf", "stbl", "stco", "mdat"]
        {
            assert!(text.contains(kept), "{kept} went");
        }
        assert!(!out.windows(4).any(|w| w == 0xD5B0_2A00u32.to_be_bytes()), "the times are zeroed");
        let mut again = Vec::new();
        strip_bytes("video/quicktime", &out, &mut again).unwrap();
        assert_eq!(again, out, "already clean");
    }

    /// An iPhone photo reduced to its boxes: the picture and its Exif (with
    /// GPS) are items whose bytes are in `mdat`; XMP in an `xml ` box.
    fn heic() -> Vec<u8> {
        let infe = |id: u16, kind: &[u8; 4]| {
            let mut p = vec![2, 0, 0, 0];
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&[0, 0]);
            p.extend_from_slice(kind);
            p.push(0); // no name
            boxed(b"infe", &p)
        };
        let iinf = boxed(b"iinf", &[vec![0, 0, 0, 0, 0, 2], infe(1, b"hvc1"), infe(2, b"Exif")].concat());
        let picture: &[u8] = b"HEVC coded picture";
        let exif: &[u8] = b"\0\0\0\x06Exif\0\0MM\0*GPS 48.8584 N 2.2945 E";
        let ftyp = boxed(b"ftyp", b"heic\0\0\0\0mif1");
        let meta = |mdat_start: usize| {
            let mut iloc = vec![0, 0, 0, 0, 0x44, 0x00, 0, 2];
            for (id, from, len) in
                [(1u16, mdat_start, picture.len()), (2, mdat_start + picture.len(), exif.len())]
            {
                iloc.extend_from_slice(&id.to_be_bytes());
                iloc.extend_from_slice(&[0, 0, 0, 1]); // data reference, one extent
                iloc.extend_from_slice(&(from as u32).to_be_bytes());
                iloc.extend_from_slice(&(len as u32).to_be_bytes());
            }
            boxed(
                b"meta",
                &[
                    vec![0, 0, 0, 0],
                    boxed(b"hdlr", b"\0\0\0\0\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0"),
                    boxed(b"pitm", &[0, 0, 0, 0, 0, 1]),
                    iinf.clone(),
                    boxed(b"iloc", &iloc),
                    boxed(b"iprp", b"ispe 4032 3024"),
                    boxed(b"xml ", b"<x:xmpmeta>grandma's house</x:xmpmeta>"),
                ]
                .concat(),
            )
        };
        // The items' offsets count from the file's start, past the meta box.
        let meta = meta(ftyp.len() + meta(0).len() + 8);
        [ftyp, meta, boxed(b"mdat", &[picture, exif].concat())].concat()
    }

    #[test]
    fn an_iphone_photo_loses_its_exif_item_and_xmp_and_keeps_its_picture() {
        let file = heic();
        assert_eq!(crate::content_type(&file), "image/heif");
        let mut out = Vec::new();
        strip_bytes("image/heif", &file, &mut out).unwrap();
        assert_eq!(out.len(), file.len());
        let text = String::from_utf8_lossy(&out);
        // (The item entry still says an Exif item exists; its bytes are zeros.)
        for secret in ["GPS", "48.8584", "grandma", "xmpmeta", "MM\0*"] {
            assert!(!text.contains(secret), "{secret} survived");
        }
        for kept in ["HEVC coded picture", "iinf", "iloc", "hvc1", "pitm", "iprp", "ispe 4032 3024"] {
            assert!(text.contains(kept), "{kept} went");
        }
        let mut again = Vec::new();
        strip_bytes("image/heif", &out, &mut again).unwrap();
        assert_eq!(again, out, "already clean");
    }

    #[test]
    fn a_portrait_video_reports_the_size_it_is_shown_at() {
        let cleaned = strip_bytes("video/mp4", &video(true), &mut Vec::new()).unwrap();
        assert_eq!(cleaned, Stripped::Cleaned { width: 1080, height: 1920 });
    }

    #[test]
    fn a_malformed_video_is_refused() {
        let file = video(false);
        assert!(strip_bytes("video/mp4", &file[..file.len() - 3], &mut Vec::new()).is_err(), "truncated");
        assert!(strip_bytes("video/mp4", &boxed(b"mdat", b"no index"), &mut Vec::new()).is_err(), "no moov");
        let mut overrun = file.clone();
        let moov = file.windows(4).position(|w| w == b"mvhd").unwrap() - 4;
        overrun[moov..moov + 4].copy_from_slice(&0x7FFFu32.to_be_bytes());
        assert!(strip_bytes("video/mp4", &overrun, &mut Vec::new()).is_err(), "a child past its parent");
    }
}
