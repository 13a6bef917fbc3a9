//! `kith bridge`: the protocol on stdin and stdout, for programs that have
//! no QUIC library — a bot in bash and jq, Python with nothing installed,
//! or anything at the end of `ssh host kith bridge`.
//!
//! The bridge signs in with the profile, writes the `Ready` as the answer
//! to request 0, then relays: every `ClientMessage` read is sent (its
//! `request_id` is the program's; the answer comes back with it), and every
//! `ServerMessage` — replies, errors, events, calls to a bot — is written.
//! Frames are the QUIC framing (a 4-byte big-endian length, then the
//! protobuf), or with `--json` one object per line in the standard
//! protobuf JSON mapping. The bridge ends when stdin ends (after the
//! answers still owed) or the connection does.

use anyhow::{Result, bail};
use kith_client::Error as ClientError;
use kith_client::proto::{self as v1, server_message::Kind};
use prost::Message as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::commands::{Ctx, session};

/// What the bridge speaks on stdin and stdout.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Frames,
    Json,
}

impl Codec {
    fn encode(self, message: &v1::ServerMessage) -> Result<Vec<u8>> {
        Ok(match self {
            Codec::Frames => kith_proto::encode_frame(message).to_vec(),
            Codec::Json => {
                let mut line = serde_json::to_vec(message)?;
                line.push(b'\n');
                line
            }
        })
    }
}

/// Reads the program's next message; `None` at the end of its input. A
/// message that cannot be read is an error for the program, not the end.
async fn next_message(
    codec: Codec,
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Option<Result<v1::ClientMessage, String>> {
    match codec {
        Codec::Json => loop {
            let mut line = String::new();
            // A line longer than any frame is refused, not buffered.
            let read = (&mut *input).take(kith_proto::MAX_CLIENT_FRAME as u64 * 4).read_line(&mut line).await;
            match read {
                Ok(0) => return None,
                Err(e) => return Some(Err(format!("cannot read stdin: {e}"))),
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) if !line.ends_with('\n') && line.len() >= kith_proto::MAX_CLIENT_FRAME * 4 => {
                    return Some(Err("a line longer than any request can be".into()));
                }
                Ok(_) => {
                    return Some(
                        serde_json::from_str(&line).map_err(|e| format!("not a ClientMessage in JSON: {e}")),
                    );
                }
            }
        },
        Codec::Frames => {
            let len = match input.read_u32().await {
                Ok(len) => len as usize,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
                Err(e) => return Some(Err(format!("cannot read stdin: {e}"))),
            };
            if len > kith_proto::MAX_CLIENT_FRAME {
                return Some(Err(format!(
                    "a frame of {len} bytes; at most {}",
                    kith_proto::MAX_CLIENT_FRAME
                )));
            }
            let mut body = vec![0u8; len];
            if let Err(e) = input.read_exact(&mut body).await {
                return Some(Err(format!("stdin ended inside a frame: {e}")));
            }
            Some(v1::ClientMessage::decode(&body[..]).map_err(|e| format!("not a ClientMessage: {e}")))
        }
    }
}

fn error(request_id: u64, code: v1::ErrorCode, reason: String, retry_after_ms: u64) -> v1::ServerMessage {
    v1::ServerMessage {
        kind: Some(Kind::Error(v1::Error { request_id, code: code as i32, reason, retry_after_ms })),
    }
}

fn answered(request_id: u64, answer: Result<v1::reply::Result, ClientError>) -> v1::ServerMessage {
    match answer {
        Ok(result) => {
            v1::ServerMessage { kind: Some(Kind::Reply(v1::Reply { request_id, result: Some(result) })) }
        }
        Err(ClientError::Server { code, reason, retry_after }) => {
            let ms = retry_after.map_or(0, |d| d.as_millis() as u64);
            error(request_id, code, reason, ms)
        }
        Err(e) => error(request_id, v1::ErrorCode::Unspecified, e.to_string(), 0),
    }
}

pub async fn bridge(ctx: Ctx, json: bool) -> Result<()> {
    let codec = if json { Codec::Json } else { Codec::Frames };
    let (client, ready, _) = session(&ctx).await?;
    let client = std::sync::Arc::new(client);
    // One writer, so replies and events never interleave mid-frame.
    let (out_tx, mut out_rx) = mpsc::channel::<v1::ServerMessage>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = out_rx.recv().await {
            let bytes = codec.encode(&message)?;
            stdout.write_all(&bytes).await?;
            stdout.flush().await?;
        }
        anyhow::Ok(())
    });
    out_tx.send(answered(0, Ok(v1::reply::Result::Ready(ready)))).await?;
    let events = {
        let (client, out) = (client.clone(), out_tx.clone());
        tokio::spawn(async move {
            while let Some(event) = client.next_event().await {
                if out.send(v1::ServerMessage { kind: Some(Kind::Event(event)) }).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut owed = tokio::task::JoinSet::new();
    loop {
        let message = tokio::select! {
            m = next_message(codec, &mut input) => m,
            _ = client.closed() => break,
        };
        let Some(message) = message else { break };
        let message = match message {
            Ok(m) => m,
            Err(why) => {
                out_tx.send(error(0, v1::ErrorCode::Protocol, why, 0)).await?;
                // A bad line is one line; a bad frame leaves no way to find
                // the next one.
                match codec {
                    Codec::Json => continue,
                    Codec::Frames => break,
                }
            }
        };
        let (id, Some(request)) = (message.request_id, message.request) else {
            let reason = "no request in that message".to_owned();
            out_tx.send(error(message.request_id, v1::ErrorCode::Unsupported, reason, 0)).await?;
            continue;
        };
        // Written now, in order; answered whenever the server answers.
        let answer = client.submit(request).await;
        let out = out_tx.clone();
        owed.spawn(async move {
            let result = match answer {
                Ok(a) => a.answer().await,
                Err(e) => Err(e),
            };
            let _ = out.send(answered(id, result)).await;
        });
    }
    while owed.join_next().await.is_some() {}
    let ended = client.close_reason();
    events.abort();
    drop(out_tx);
    writer.await??;
    if let Some(reason) = ended {
        bail!("the connection ended: {}", crate::output::sanitize(&reason));
    }
    Ok(())
}

/// Every message in `bytes`, read as stdin is.
#[cfg(test)]
async fn read_all(codec: Codec, bytes: &[u8]) -> Vec<Result<v1::ClientMessage, String>> {
    let mut input = tokio::io::BufReader::new(bytes);
    let mut out = Vec::new();
    while let Some(m) = next_message(codec, &mut input).await {
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_lines_and_frames_read_as_client_messages_and_garbage_is_said_to_be() {
        let lines = b"{\"requestId\": \"7\", \"sendMessage\": {\"channelId\": \"5\", \"body\": \"hi\"}}\n\nnot json\n";
        let read = read_all(Codec::Json, lines).await;
        let Ok(first) = &read[0] else { panic!("{read:?}") };
        assert_eq!(first.request_id, 7);
        let Some(v1::client_message::Request::SendMessage(s)) = &first.request else { panic!() };
        assert_eq!((s.channel_id, s.body.as_str()), (5, "hi"));
        assert!(read[1].as_ref().unwrap_err().contains("not a ClientMessage in JSON"));
        assert_eq!(read.len(), 2, "a blank line is skipped");

        let message = v1::ClientMessage {
            request_id: 9,
            request: Some(v1::client_message::Request::ServerInfo(v1::ServerInfoRequest {})),
        };
        let mut frames = kith_proto::encode_frame(&message).to_vec();
        frames.extend_from_slice(&u32::MAX.to_be_bytes());
        let read = read_all(Codec::Frames, &frames).await;
        assert_eq!(read[0].as_ref().unwrap().request_id, 9);
        assert!(read[1].as_ref().unwrap_err().contains("at most"), "{read:?}");
    }
}
