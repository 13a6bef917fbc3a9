//! Attachments' bytes, understood just enough to be safe: what a file is,
//! from its bytes ([`content_type`]), and photos rewritten without what
//! they say about their owner ([`strip`]). No IO of its own and no
//! dependency on the rest of kith, so it is fuzzed on its own.

pub mod strip;
pub mod thumbnail;

/// The type a file's first bytes show, from a short list of types clients
/// may show inline or play; anything else — HTML, SVG, scripts, archives
/// with a misleading name — is a plain download. The name never counts.
pub fn content_type(head: &[u8]) -> String {
    const SHOWN: &[&str] = &[
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/heif",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "audio/mpeg",
        "audio/ogg",
        "audio/x-wav",
        "audio/x-flac",
        "audio/m4a",
        "application/pdf",
    ];
    match infer::get(head).map(|t| t.mime_type()) {
        Some(t) if SHOWN.contains(&t) => t.to_owned(),
        _ => "application/octet-stream".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_bytes_and_only_known_media_are_named() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R'];
        assert_eq!(content_type(&png), "image/png");
        assert_eq!(content_type(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F']), "image/jpeg");
        // An HTML page named photo.jpg, an SVG with script, nothing at all.
        assert_eq!(content_type(b"<!DOCTYPE html><script>alert(1)</script>"), "application/octet-stream");
        assert_eq!(content_type(b"<svg onload=alert(1)>"), "application/octet-stream");
        assert_eq!(content_type(b""), "application/octet-stream");
    }
}
