//! The web edge: the HTTPS side on TCP (pages, the WebTransport details, a
//! WebSocket fallback) and WebTransport on the QUIC port, each speaking
//! kith's frames with a native client on the other end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{PASSWORD, TestServer};
use futures_util::{SinkExt, StreamExt};
use kith_client::Trust;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R, server_message::Kind};
use kith_proto::{FrameDecoder, MAX_SERVER_FRAME, encode_frame};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message as Ws};

const WAIT: Duration = Duration::from_secs(10);

async fn tls(server: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let addr = server.server.web_addr().expect("the web edge is on by default");
    let config = kith_client::https_config(Trust::Pin(server.fingerprint.clone()));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap()
}

/// One HTTP/1.1 GET; the whole answer as text.
async fn get(server: &TestServer, path: &str) -> String {
    String::from_utf8_lossy(&get_bytes(server, path, "").await).into_owned()
}

/// One HTTP/1.1 GET with extra header lines; the whole answer.
async fn get_bytes(server: &TestServer, path: &str, headers: &str) -> Vec<u8> {
    let mut s = tls(server).await;
    let host = server.server.web_addr().unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer)).await.expect("an answer");
    answer
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Both ways of carrying frames from a browser, behind one small client.
#[allow(clippy::large_enum_variant)] // one per test client
enum Transport {
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Wt {
        send: web_transport_quinn::SendStream,
        recv: web_transport_quinn::RecvStream,
        /// Held: the session closes when its last handle goes.
        _session: web_transport_quinn::Session,
    },
}

struct WebClient {
    transport: Transport,
    decoder: FrameDecoder,
    next_id: u64,
}

impl WebClient {
    async fn send(&mut self, request: Request) -> u64 {
        self.next_id += 1;
        let frame = encode_frame(&v1::ClientMessage { request_id: self.next_id, request: Some(request) });
        match &mut self.transport {
            Transport::Ws(ws) => ws.send(Ws::Binary(frame)).await.unwrap(),
            Transport::Wt { send, .. } => send.write_all(&frame).await.unwrap(),
        }
        self.next_id
    }

    /// The next message from the server; `None` when the transport closed.
    async fn next(&mut self) -> Option<v1::ServerMessage> {
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                return Some(v1::ServerMessage::decode(frame).unwrap());
            }
            let chunk: Bytes = match &mut self.transport {
                Transport::Ws(ws) => match tokio::time::timeout(WAIT, ws.next()).await.expect("a message")? {
                    Ok(Ws::Binary(b)) => b,
                    Ok(Ws::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                },
                Transport::Wt { recv, .. } => {
                    match tokio::time::timeout(WAIT, recv.read_chunk(64 * 1024, true)).await.expect("a chunk")
                    {
                        Ok(Some(c)) => c.bytes,
                        _ => return None,
                    }
                }
            };
            self.decoder.extend(&chunk);
        }
    }

    /// Sends `request` and returns its reply, skipping events.
    async fn call(&mut self, request: Request) -> Result<R, v1::Error> {
        let id = self.send(request).await;
        loop {
            match self.next().await.expect("the connection stays open").kind {
                Some(Kind::Reply(r)) if r.request_id == id => return Ok(r.result.unwrap()),
                Some(Kind::Error(e)) if e.request_id == id => return Err(e),
                _ => {}
            }
        }
    }

    /// The next event whose body matches.
    async fn event(&mut self, mut wanted: impl FnMut(&v1::event::Body) -> bool) -> v1::event::Body {
        loop {
            if let Some(Kind::Event(e)) = self.next().await.expect("the connection stays open").kind
                && let Some(body) = e.body
                && wanted(&body)
            {
                return body;
            }
        }
    }
}

fn client(transport: Transport) -> WebClient {
    WebClient { transport, decoder: FrameDecoder::new(MAX_SERVER_FRAME), next_id: 0 }
}

async fn websocket(server: &TestServer, origin: Option<&str>) -> Result<WebClient, tungstenite::Error> {
    let host = server.server.web_addr().unwrap();
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("wss://{host}/ws"))?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::client_async(request, tls(server).await).await?;
    Ok(client(Transport::Ws(Box::new(ws))))
}

/// The certificate hash the page is given, base64-decoded.
async fn published_hashes(server: &TestServer) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let answer = get(server, "/api/webtransport").await;
    let json: serde_json::Value = serde_json::from_str(body(&answer)).unwrap();
    assert_eq!(json["path"], "/kith");
    assert_eq!(json["fingerprint"], server.fingerprint.as_str());
    json["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| base64::engine::general_purpose::STANDARD.decode(h.as_str().unwrap()).unwrap())
        .collect()
}

async fn webtransport(server: &TestServer, hashes: Vec<Vec<u8>>, path: &str) -> anyhow::Result<WebClient> {
    let wt = web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes)?;
    let url: url::Url = format!("https://localhost:{}{path}", server.server.local_addr().port()).parse()?;
    let session = wt.connect(url).await?;
    let (send, recv) = session.open_bi().await?;
    Ok(client(Transport::Wt { send, recv, _session: session }))
}

/// An owner on a native client, in a community with a channel, and an
/// invite for the browser user.
async fn family(server: &TestServer) -> (kith_client::Client, u64, String) {
    let (owner, _) = server.owner("olive").await;
    let community = owner.create_community("Family").await.unwrap();
    let channel = community.channels[0].id;
    let invite = owner.create_invite(community.id, 0, None).await.unwrap();
    (owner, channel, invite.code)
}

async fn register(web: &mut WebClient, name: &str, invite: &str) -> v1::Ready {
    let register = v1::RegisterRequest {
        username: name.into(),
        password: PASSWORD.into(),
        display_name: String::new(),
        credential: Some(v1::register_request::Credential::InviteCode(invite.into())),
    };
    match web.call(Request::Register(register)).await {
        Ok(R::Ready(ready)) => ready,
        other => panic!("registering over the web: {other:?}"),
    }
}

/// A browser user and a native user talk both ways in one channel.
async fn chats_both_ways(server: &TestServer, mut web: WebClient) {
    let (owner, channel, invite) = family(server).await;
    let ready = register(&mut web, "wren", &invite).await;
    assert!(ready.communities.iter().any(|c| c.name == "Family"), "landed in the community");

    let send = |body: &str, nonce: &str| {
        Request::SendMessage(v1::SendMessageRequest {
            channel_id: channel,
            body: body.into(),
            nonce: nonce.into(),
            reply_to: 0,
            uploads: Vec::new(),
        })
    };
    let Ok(R::Message(sent)) = web.call(send("hello from the browser", "w1")).await else { panic!() };
    loop {
        let event = tokio::time::timeout(WAIT, owner.next_event()).await.unwrap().unwrap();
        if let Some(v1::event::Body::MessageCreated(m)) = event.body {
            assert_eq!(m.body, "hello from the browser");
            break;
        }
    }
    owner.send_message(channel, "hello from the terminal", "o1").await.unwrap();
    let got = web.event(|b| matches!(b, v1::event::Body::MessageCreated(m) if m.id != sent.id)).await;
    let v1::event::Body::MessageCreated(m) = got else { unreachable!() };
    assert_eq!(m.body, "hello from the terminal");
}

#[tokio::test]
async fn the_page_is_served_over_https_with_a_policy_that_runs_nothing_foreign() {
    let server = TestServer::start().await;
    for path in ["/", "/invite/SOMECODE"] {
        let page = get(&server, path).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{path}: {page}");
        assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"));
        let csp = header(&page, "content-security-policy").expect("a CSP");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&page, "referrer-policy"), Some("no-referrer"));
        // Self-signed: no HSTS, or a browser would refuse the page for a year
        // once its user accepted the warning.
        assert_eq!(header(&page, "strict-transport-security"), None);
    }
    let js = get(&server, "/app.js").await;
    assert_eq!(header(&js, "content-type"), Some("text/javascript; charset=utf-8"));
    assert!(get(&server, "/nothing-here").await.starts_with("HTTP/1.1 404"));
}

/// The goal for a first load: the script and the stylesheet, as sent.
const FIRST_LOAD_BUDGET: usize = 150 * 1024;

#[tokio::test]
async fn the_client_goes_out_gzipped_and_within_its_first_load_budget() {
    use std::io::Read as _;
    let server = TestServer::start().await;
    let mut sent = 0;
    for path in ["/app.js", "/app.css"] {
        let plain = get_bytes(&server, path, "").await;
        let zipped = get_bytes(&server, path, "Accept-Encoding: br, gzip;q=0.9\r\n").await;
        let split = |r: &[u8]| {
            let at = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            (String::from_utf8_lossy(&r[..at]).into_owned(), r[at + 4..].to_vec())
        };
        let (plain_head, plain_body) = split(&plain);
        let (head, body) = split(&zipped);
        assert_eq!(header(&plain_head, "content-encoding"), None);
        assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
        assert_eq!(header(&head, "vary"), Some("accept-encoding"));
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, plain_body, "{path} unzips to the file itself");
        println!("{path}: {} bytes, {} gzipped", plain_body.len(), body.len());
        sent += body.len();
    }
    println!("first load: {sent} bytes of script and style");
    assert!(sent <= FIRST_LOAD_BUDGET, "{sent} bytes > {FIRST_LOAD_BUDGET}");
}

#[tokio::test]
async fn a_browser_on_the_websocket_fallback_chats_with_a_native_client() {
    let server = TestServer::start().await;
    let host = server.server.web_addr().unwrap();
    let web = websocket(&server, Some(&format!("https://{host}"))).await.unwrap();
    chats_both_ways(&server, web).await;
}

#[tokio::test]
async fn a_websocket_opened_by_another_sites_page_is_refused() {
    let server = TestServer::start().await;
    match websocket(&server, Some("https://evil.example")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("another origin's WebSocket was accepted"),
    }
}

#[tokio::test]
async fn a_websocket_text_message_is_refused_with_a_reason() {
    let server = TestServer::start().await;
    let mut web = websocket(&server, None).await.unwrap();
    let Transport::Ws(ws) = &mut web.transport else { unreachable!() };
    ws.send(Ws::Text("hello".into())).await.unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Ws::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap()
    .expect("a close frame");
    assert_eq!(u16::from(closed.code), 4000 + v1::CloseCode::Protocol as u16);
    assert!(closed.reason.contains("binary"), "{}", closed.reason);
}

#[tokio::test]
async fn a_browser_on_webtransport_chats_with_a_native_client_on_the_same_udp_port() {
    let server = TestServer::start().await;
    let hashes = published_hashes(&server).await;
    assert_eq!(hashes.len(), 1, "a self-signed server publishes its WebTransport certificate's hash");
    let web = webtransport(&server, hashes, "/kith").await.unwrap();
    chats_both_ways(&server, web).await;
}

#[tokio::test]
async fn webtransport_is_answered_with_the_short_lived_certificate_not_the_identity() {
    let server = TestServer::start().await;
    let identity = {
        let pem = std::fs::read(server.dir.path().join("data/cert.pem")).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        ring::digest::digest(&ring::digest::SHA256, &der).as_ref().to_vec()
    };
    assert!(!published_hashes(&server).await.contains(&identity));
    // Browsers refuse a hash for a certificate valid longer than 14 days;
    // the identity's hash does not open a session.
    let refused = webtransport(&server, vec![identity], "/kith").await.err().expect("refused");
    assert!(format!("{refused:#}").contains("certificate"), "{refused:#}");
}

#[tokio::test]
async fn a_webtransport_session_to_another_path_is_refused() {
    let server = TestServer::start().await;
    let hashes = published_hashes(&server).await;
    let refused = webtransport(&server, hashes, "/elsewhere").await.err().expect("refused");
    assert!(format!("{refused:#}").contains("404"), "{refused:#}");
}

/// A message's file over HTTPS, as the browser fetches it: by the link
/// `open_attachments` gave, with byte ranges (a video seeks), as a download
/// unless the bytes proved it media, and never by a made-up key.
#[tokio::test]
async fn a_file_is_served_by_its_expiring_link_with_ranges_and_as_an_inert_download() {
    let server = TestServer::start().await;
    let (owner, channel, _) = family(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.html");
    std::fs::write(&path, "<script>alert('not here')</script> 0123456789").unwrap();
    let key = owner.upload(channel, &path, 0, |_, _| {}).await.unwrap();
    let send = v1::SendMessageRequest { channel_id: channel, uploads: vec![key], ..Default::default() };
    let Ok(R::Message(m)) = owner.request(Request::SendMessage(send)).await else { panic!() };
    let access = owner.open_attachments(channel, m.id).await.unwrap();
    let url = format!("/files/{}/0", access.key);

    let whole = get(&server, &url).await;
    assert!(whole.starts_with("HTTP/1.1 200"), "{whole}");
    assert_eq!(
        header(&whole, "content-type"),
        Some("application/octet-stream"),
        "HTML is never served as HTML"
    );
    assert_eq!(header(&whole, "content-disposition"), Some("attachment; filename*=UTF-8''notes.html"));
    assert!(header(&whole, "content-security-policy").unwrap().contains("sandbox"));
    assert_eq!(header(&whole, "x-content-type-options"), Some("nosniff"));
    assert!(body(&whole).ends_with("0123456789"));

    let part = String::from_utf8(get_bytes(&server, &url, "Range: bytes=-4\r\n").await).unwrap();
    assert!(part.starts_with("HTTP/1.1 206"), "{part}");
    let len = access.attachments[0].size;
    assert_eq!(header(&part, "content-range"), Some(format!("bytes {}-{}/{len}", len - 4, len - 1).as_str()));
    assert_eq!(body(&part), "6789");
    let past =
        String::from_utf8(get_bytes(&server, &url, &format!("Range: bytes={len}-\r\n")).await).unwrap();
    assert!(past.starts_with("HTTP/1.1 416"), "{past}");

    for wrong in [format!("/files/{}/1", access.key), "/files/NOTAKEYNOTAKEYNOTAKEYNOTA/0".to_owned()] {
        assert!(get(&server, &wrong).await.starts_with("HTTP/1.1 404"), "{wrong}");
    }
}

/// A big photo gets a small preview for the conversation; the link without
/// `?size=preview` is the photo itself.
#[tokio::test]
async fn a_big_photo_is_previewed_small_and_served_whole_on_request() {
    let server = TestServer::start().await;
    let (owner, channel, _) = family(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("harbour.jpg");
    let picture =
        image::RgbImage::from_fn(2400, 1600, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, 60]));
    picture.save(&path).unwrap();
    let key = owner.upload(channel, &path, 0, |_, _| {}).await.unwrap();
    let send = v1::SendMessageRequest { channel_id: channel, uploads: vec![key], ..Default::default() };
    let Ok(R::Message(m)) = owner.request(Request::SendMessage(send)).await else { panic!() };
    assert_eq!((m.attachments[0].width, m.attachments[0].height), (2400, 1600));
    let access = owner.open_attachments(channel, m.id).await.unwrap();
    let whole = get_bytes(&server, &format!("/files/{}/0", access.key), "").await;
    let small = get_bytes(&server, &format!("/files/{}/0?size=preview", access.key), "").await;
    let split = |r: &[u8]| {
        let at = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (String::from_utf8_lossy(&r[..at]).into_owned(), r[at + 4..].to_vec())
    };
    let ((whole_head, whole_body), (small_head, small_body)) = (split(&whole), split(&small));
    assert_eq!(header(&whole_head, "content-type"), Some("image/jpeg"));
    assert_eq!(whole_body.len() as u64, m.attachments[0].size);
    assert_eq!(header(&small_head, "content-type"), Some("image/jpeg"));
    let preview = image::load_from_memory(&small_body).unwrap();
    assert_eq!((preview.width(), preview.height()), (640, 427));
    assert!(small_body.len() * 4 < whole_body.len(), "{} vs {}", small_body.len(), whole_body.len());
    // The same preview over a QUIC transfer stream (what `kith chat` draws),
    // and a viewer's cap on it holds.
    let over_quic = owner.preview(&access, 0, 1 << 20).await.unwrap();
    assert_eq!(over_quic, small_body);
    assert!(owner.preview(&access, 0, 1000).await.is_err(), "bigger than the viewer's cap");
}

/// A load balancer or monitor asks the HTTPS port whether the server works.
#[tokio::test]
async fn the_https_port_answers_health_checks() {
    let server = TestServer::start().await;
    let response = get(&server, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(body(&response), "ok\n");
}

/// One HTTP/1.1 POST; the whole answer as text.
async fn post(server: &TestServer, path: &str, content_type: &str, body: &[u8]) -> String {
    let mut s = tls(server).await;
    let host = server.server.web_addr().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer)).await.expect("an answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A webhook is a bot's token in a URL: a POST of JSON posts as the bot,
/// where the bot may; anything else is refused plainly; a new token kills
/// the old URL.
#[tokio::test]
async fn a_webhook_posts_as_its_bot_and_dies_with_its_token() {
    let server = TestServer::start().await;
    let (owner, channel, _) = family(&server).await;
    let c = owner.create_community("Alerts").await.unwrap();
    let alerts = c.channels[0].id;
    let hook = owner.create_bot(c.id, "door-bell").await.unwrap();
    let path = format!("/hooks/{alerts}/{}", hook.token);

    let posted = post(
        &server,
        &path,
        "application/json",
        br#"{"content": "someone is at the door", "nonce": "ring-1"}"#,
    )
    .await;
    assert!(posted.starts_with("HTTP/1.1 200"), "{posted}");
    let page = owner.history(alerts, None, 10).await.unwrap();
    let m = page.last().unwrap();
    assert_eq!(
        (m.body.as_str(), m.author_name.as_str(), m.author_bot),
        ("someone is at the door", "door-bell", true)
    );
    assert!(body(&posted).contains(&m.id.to_string()), "{posted}");
    // A retried delivery with the same nonce posts once.
    post(&server, &path, "application/json", br#"{"content": "someone is at the door", "nonce": "ring-1"}"#)
        .await;
    assert_eq!(owner.history(alerts, None, 10).await.unwrap().len(), page.len());
    // Slack's shape works too.
    assert!(
        post(&server, &path, "application/json", br#"{"text": "ding"}"#).await.starts_with("HTTP/1.1 200")
    );

    // Refusals, plainly: not JSON, not a message, too big, a channel the
    // bot is not in, a wrong token.
    assert!(post(&server, &path, "text/plain", b"ding").await.starts_with("HTTP/1.1 415"));
    assert!(post(&server, &path, "application/json", b"{\"x\": 1}").await.starts_with("HTTP/1.1 400"));
    let huge = format!("{{\"content\": \"{}\"}}", "a".repeat(40_000));
    assert!(post(&server, &path, "application/json", huge.as_bytes()).await.starts_with("HTTP/1.1 413"));
    let elsewhere = format!("/hooks/{channel}/{}", hook.token);
    assert!(
        post(&server, &elsewhere, "application/json", br#"{"content": "x"}"#)
            .await
            .starts_with("HTTP/1.1 404")
    );
    let guessed = format!("/hooks/{alerts}/kith_{}", "0".repeat(64));
    assert!(
        post(&server, &guessed, "application/json", br#"{"content": "x"}"#).await.starts_with("HTTP/1.1 404")
    );

    let bot = hook.bot.unwrap().id;
    owner.rotate_bot_token(c.id, bot).await.unwrap();
    let dead = post(&server, &path, "application/json", br#"{"content": "still there?"}"#).await;
    assert!(dead.starts_with("HTTP/1.1 404"), "{dead}");
}
