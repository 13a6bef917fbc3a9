//! Browser-side sessions for the benchmarks: WebTransport to the QUIC port,
//! authenticated with a token, held idle, exactly as the web client does.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use kith_client::proto::{self as v1, client_message::Request, server_message::Kind};
use kith_proto::{FrameDecoder, MAX_SERVER_FRAME, encode_frame};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::ServerProcess;

/// One WebTransport session, authenticated; dropped, it closes.
#[allow(dead_code)] // held for their lifetime only
pub struct WebSession {
    session: web_transport_quinn::Session,
    send: web_transport_quinn::SendStream,
    recv: web_transport_quinn::RecvStream,
}

/// A WebTransport client that accepts the server's published certificate
/// hash, fetched over HTTPS from the pinned identity, as a browser does.
pub async fn client(server: &ServerProcess) -> Result<web_transport_quinn::Client> {
    let web = server.web.as_deref().context("the server serves no web client")?;
    let host = web.trim_start_matches("https://").trim_end_matches('/');
    let config = kith_client::https_config(kith_client::Trust::Pin(server.fingerprint().to_owned()));
    let tcp = tokio::net::TcpStream::connect(host).await?;
    let mut tls =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect("localhost".try_into()?, tcp).await?;
    let request = format!("GET /api/webtransport HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).context("an HTTP answer")?;
    let info: serde_json::Value = serde_json::from_str(body)?;
    let hashes = info["hashes"]
        .as_array()
        .context("hashes")?
        .iter()
        .filter_map(|h| base64::engine::general_purpose::STANDARD.decode(h.as_str()?).ok())
        .collect();
    Ok(web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes)?)
}

/// Opens a session on the QUIC port at `addr` and authenticates it with `token`.
pub async fn session_at(client: &web_transport_quinn::Client, addr: &str, token: &str) -> Result<WebSession> {
    let port = addr.rsplit_once(':').context("a port")?.1;
    let url: url::Url = format!("https://localhost:{port}/kith").parse()?;
    let session = client.connect(url).await?;
    let (mut send, mut recv) = session.open_bi().await?;
    let hello = v1::ClientMessage {
        request_id: 1,
        request: Some(Request::Authenticate(v1::AuthenticateRequest { token: token.to_owned() })),
    };
    send.write_all(&encode_frame(&hello)).await?;
    let mut decoder = FrameDecoder::new(MAX_SERVER_FRAME);
    loop {
        if let Some(frame) = decoder.next_frame()? {
            match v1::ServerMessage::decode(frame)?.kind {
                Some(Kind::Reply(r)) if r.request_id == 1 => return Ok(WebSession { session, send, recv }),
                Some(Kind::Error(e)) => bail!("authenticating over WebTransport: {}", e.reason),
                _ => continue,
            }
        }
        let chunk = recv.read_chunk(64 * 1024, true).await?.context("the session closed")?;
        decoder.extend(&chunk.bytes);
    }
}
