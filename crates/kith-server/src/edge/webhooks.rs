//! Incoming webhooks: `POST /hooks/CHANNEL/TOKEN` with `{"content": "…"}`
//! posts a message as the bot whose token it is — for alerts, CI, a door
//! bell, anything that can make an HTTP request and has no kith client.
//!
//! A webhook is a bot ([`crate`]'s `CreateBot`, `kith webhook create`), so
//! everything a bot is held to holds: its roles and the channel's overrides
//! decide where it may post, its message rate limits a flood, and replacing
//! its token (`kith bot token`) kills the old URL. Each POST is one short
//! session through the same path as every edge's requests ([`super::submit`]):
//! authenticate with the token, send, close.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kith_proto::v1::{self, ErrorCode, client_message::Request, server_message::Kind};

use super::web::Conn;
use crate::actor::{OutItem, Terms, ToHub};

/// The largest body a webhook takes: a message is at most 4000 characters.
pub const MAX_BODY: usize = 32 * 1024;
/// How long one POST may take inside the server.
const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, serde::Deserialize)]
struct Post {
    /// The message (`text` is accepted too, as Slack's hooks name it).
    #[serde(alias = "text")]
    content: String,
    /// Sending again with the same nonce posts once (a retried delivery).
    #[serde(default)]
    nonce: String,
}

fn answer(status: StatusCode, why: impl Into<String>) -> Response {
    (status, why.into()).into_response()
}

/// An error the hub gave, as HTTP.
fn refused(e: v1::Error) -> Response {
    let status = match ErrorCode::try_from(e.code) {
        // A wrong or replaced token and a channel the bot cannot see read
        // the same: nothing tells a guesser which part was wrong.
        Ok(ErrorCode::BadCredentials | ErrorCode::NotFound) => {
            return answer(StatusCode::NOT_FOUND, "no such webhook, or it may not post there");
        }
        Ok(ErrorCode::Forbidden) => StatusCode::FORBIDDEN,
        Ok(ErrorCode::RateLimited) => {
            let mut r = answer(StatusCode::TOO_MANY_REQUESTS, e.reason);
            let secs = e.retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Ok(ErrorCode::Invalid | ErrorCode::TooLarge) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    answer(status, e.reason)
}

pub async fn post(
    State(conn): State<Conn>,
    Path((channel, token)): Path<(u64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON: {\"content\": \"the message\"}");
    }
    let post: Post = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not a webhook message ({e}); send {{\"content\": \"…\"}}"),
            );
        }
    };
    let edge = conn.edge.clone();
    let session = edge.session_id();
    let abort: crate::actor::Abort = Arc::new(|_, _| {});
    // One request per session: nothing to come back to.
    let terms = Terms { auth_within: WITHIN, resumable: false };
    let Some(mut opened) = edge.open(session, "webhook", abort, None, None, terms).await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let steps = [
        Request::Authenticate(v1::AuthenticateRequest { token }),
        Request::SendMessage(v1::SendMessageRequest {
            channel_id: channel,
            body: post.content,
            nonce: post.nonce,
            ..Default::default()
        }),
    ];
    let mut result = answer(StatusCode::INTERNAL_SERVER_ERROR, "no answer");
    for (i, request) in steps.into_iter().enumerate() {
        let rid = i as u64 + 1;
        let msg = v1::ClientMessage { request_id: rid, request: Some(request) };
        if !super::submit(msg, session, conn.ip, &edge, &opened.handle).await {
            result = answer(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
            break;
        }
        match tokio::time::timeout(WITHIN, reply(&mut opened.outbox, &opened.handle.queued, rid)).await {
            Ok(Some(Ok(v1::reply::Result::Message(m)))) => {
                let body =
                    serde_json::json!({"id": m.id.to_string(), "channel_id": m.channel_id.to_string()});
                result = ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
            }
            // Only a bot's token makes a webhook: a person's login token
            // in a URL would be a leak, not a feature.
            Ok(Some(Ok(v1::reply::Result::Ready(r)))) if !r.user.as_ref().is_some_and(|u| u.bot) => {
                result = answer(StatusCode::NOT_FOUND, "no such webhook, or it may not post there");
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => {
                result = refused(e);
                break;
            }
            Ok(None) | Err(_) => {
                result = answer(StatusCode::SERVICE_UNAVAILABLE, "the server did not answer in time");
                break;
            }
        }
    }
    let _ = edge.hub.send(ToHub::Input(kith_core::Input::Closed { session })).await;
    result
}

/// The answer to request `rid` on a webhook's session (events skipped).
async fn reply(
    outbox: &mut futures_channel::mpsc::UnboundedReceiver<OutItem>,
    queued: &std::sync::atomic::AtomicUsize,
    rid: u64,
) -> Option<Result<v1::reply::Result, v1::Error>> {
    while let Ok(item) = outbox.recv().await {
        // Taken here, not by a writer task: count it out as one would.
        queued.fetch_sub(item.wire_len(), std::sync::atomic::Ordering::Relaxed);
        let OutItem::Send(out) = item else { return None };
        match out.into_server_message().kind {
            Some(Kind::Reply(r)) if r.request_id == rid => return r.result.map(Ok),
            Some(Kind::Error(e)) if e.request_id == rid || e.request_id == 0 => return Some(Err(e)),
            _ => {}
        }
    }
    None
}
