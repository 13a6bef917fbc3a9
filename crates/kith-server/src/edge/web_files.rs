//! Attachments over HTTPS, for the browser. Uploads: `GET /uploads/KEY`
//! says how much of the file the server holds, `POST /uploads/KEY?offset=N`
//! appends from there (so a dropped upload continues), with the key
//! `create_upload` gave. Downloads: `GET /files/KEY/INDEX`, where
//! KEY is what `open_attachments` gave (128 bits, an hour long — the URL is
//! the authorisation, and it expires). Photos and videos are served inline
//! with their sniffed type and byte ranges (so a video seeks); every other
//! file only as a download. Nothing served here can run: a sandboxing CSP,
//! `nosniff`, and no type the bytes did not prove.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::web::Conn;
use crate::store::ReadFailed;

/// Bytes read from the file at a time.
const CHUNK: usize = 256 * 1024;

/// A single byte range `start..end` (end exclusive) of a file of `size`
/// bytes, from a `Range` header; `None` for a header this does not serve
/// (several ranges, another unit): the whole file then.
pub fn byte_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() { size } else { last.parse::<u64>().ok()?.saturating_add(1).min(size) };
        (start, end)
    };
    Some(if range.0 < range.1 { Ok(range) } else { Err(()) })
}

/// Where an upload stands, as JSON: `{"offset": N, "size": S, "complete": bool}`.
fn progress(offset: u64, size: u64) -> Response {
    let body = serde_json::json!({"offset": offset, "size": size, "complete": offset == size});
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

fn refused((code, reason): super::transfer::Refusal) -> Response {
    let status = match code {
        kith_proto::v1::ErrorCode::NotFound => StatusCode::NOT_FOUND,
        kith_proto::v1::ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        kith_proto::v1::ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, reason).into_response()
}

fn unknown_upload() -> Response {
    (StatusCode::NOT_FOUND, "unknown or expired upload key; ask again with create_upload").into_response()
}

pub async fn upload_status(State(conn): State<Conn>, Path(key): Path<String>) -> Response {
    let edge = &conn.edge;
    let Some(up) = edge.files.upload_key(&key, None) else { return unknown_upload() };
    match super::transfer::open_upload(edge, &edge.files, &key, up).await {
        Ok(super::transfer::Opened::Stored) => progress(up.size, up.size),
        Ok(super::transfer::Opened::Receiving(r)) => progress(r.have, up.size),
        Err(e) => refused(e),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct At {
    offset: u64,
}

pub async fn upload(
    State(conn): State<Conn>,
    Path(key): Path<String>,
    Query(at): Query<At>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !super::web::same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a page from another site may not upload here").into_response();
    }
    let edge = &conn.edge;
    let Some(up) = edge.files.upload_key(&key, None) else { return unknown_upload() };
    let mut receiving = match super::transfer::open_upload(edge, &edge.files, &key, up).await {
        Ok(super::transfer::Opened::Stored) => return progress(up.size, up.size),
        Ok(super::transfer::Opened::Receiving(r)) => r,
        Err(e) => return refused(e),
    };
    if at.offset != receiving.have {
        // The client's idea of where it stopped is not the server's: it
        // asks again (GET) and sends from there.
        return (StatusCode::CONFLICT, progress(receiving.have, up.size)).into_response();
    }
    use futures_util::TryStreamExt as _;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut reader = tokio_util::io::StreamReader::new(stream);
    if let Err(e) = receiving.receive(&mut reader).await {
        return refused(e);
    }
    let have = receiving.have;
    match receiving.finish(edge, &edge.files, &key).await {
        Ok(()) => progress(up.size, up.size),
        // Cut short: what arrived is kept; the answer says how far it got.
        Err(_) if have < up.size => progress(have, up.size),
        Err(e) => refused(e),
    }
}

/// Types shown in the page; anything else is only ever downloaded.
fn inline(content_type: &str) -> bool {
    content_type.starts_with("image/")
        || content_type.starts_with("video/")
        || content_type.starts_with("audio/")
}

/// `filename*=` for a Content-Disposition: percent-encoded UTF-8 (RFC 5987).
fn disposition(kind: &str, name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{kind}; filename*=UTF-8''{encoded}")
}

#[derive(Debug, serde::Deserialize)]
pub struct Want {
    /// `preview`: the small JPEG made for a picture, if there is one.
    size: Option<String>,
}

pub async fn file(
    State(conn): State<Conn>,
    Path((key, index)): Path<(String, u32)>,
    Query(want): Query<Want>,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such file, or its link has expired").into_response();
    let edge = &conn.edge;
    let Some(message) = edge.files.link_key(&key, crate::actor::now()) else { return not_found() };
    let attachments = match edge.readers.run(move |db| db.attachments(message)).await {
        Ok(a) => a,
        Err(ReadFailed::Busy) => return (StatusCode::SERVICE_UNAVAILABLE, "busy; try again").into_response(),
        Err(ReadFailed::Store(e)) => {
            tracing::error!(error = %e, "reading attachments failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the server could not read its store")
                .into_response();
        }
    };
    let Some(mut a) = attachments.into_iter().nth(index as usize) else { return not_found() };
    let path;
    (path, a.content_type) = edge.files.served(&a, want.size.as_deref() == Some("preview"));
    let Ok(mut f) = tokio::fs::File::open(path).await else { return not_found() };
    let Ok(size) = f.metadata().await.map(|m| m.len()) else { return not_found() };
    let wanted = headers.get(header::RANGE).and_then(|h| h.to_str().ok()).and_then(|h| byte_range(h, size));
    let (status, start, end) = match wanted {
        None => (StatusCode::OK, 0, size),
        Some(Ok((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Err(())) => {
            let range = format!("bytes */{size}");
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, range)]).into_response();
        }
    };
    if start > 0 && f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f.take(end - start), CHUNK));
    let shown = inline(&a.content_type);
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(
        h,
        header::CONTENT_TYPE,
        if shown { a.content_type.clone() } else { "application/octet-stream".into() },
    );
    set(h, header::CONTENT_LENGTH, (end - start).to_string());
    set(h, header::CONTENT_DISPOSITION, disposition(if shown { "inline" } else { "attachment" }, &a.name));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        set(h, header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
    }
    // The bytes never change for a key (content-addressed), but the key is
    // a secret: kept by this browser only, for as long as it works.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    response
}

/// What a file response may do if a browser renders it anyway: nothing.
pub const FILE_POLICY: &str = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_one_span_or_the_whole_file() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Ok((0, 100))));
        assert_eq!(byte_range("bytes=500-", 1000), Some(Ok((500, 1000))));
        assert_eq!(byte_range("bytes=-100", 1000), Some(Ok((900, 1000))));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some(Ok((900, 1000))), "clamped to the end");
        assert_eq!(byte_range("bytes=1000-", 1000), Some(Err(())), "past the end");
        assert_eq!(byte_range("bytes=-0", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None, "several: the whole file");
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=x-y", 1000), None);
    }

    proptest::proptest! {
        /// Whatever a peer puts in `Range`, the span served lies inside the
        /// file and is never empty.
        #[test]
        fn any_range_header_serves_a_span_inside_the_file(header in ".{0,40}", tail in "[0-9 ,-]{0,20}", size in 0u64..10_000) {
            for h in [header.clone(), format!("bytes={tail}")] {
                if let Some(Ok((start, end))) = byte_range(&h, size) {
                    proptest::prop_assert!(start < end && end <= size, "{h:?} of {size}: {start}..{end}");
                }
            }
        }
    }

    #[test]
    fn names_in_a_disposition_cannot_break_the_header() {
        assert_eq!(
            disposition("attachment", "a b\"\r\n.txt"),
            "attachment; filename*=UTF-8''a%20b%22%0D%0A.txt"
        );
        assert_eq!(disposition("inline", "café.jpg"), "inline; filename*=UTF-8''caf%C3%A9.jpg");
    }
}
