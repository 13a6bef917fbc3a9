//! A telnet client for tests: raw TCP, the client side of the option
//! negotiation, and a VT100 screen that the server's output is played into,
//! so tests can read what a person would see.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const ECHO: u8 = 1;
pub const SGA: u8 = 3;
pub const TTYPE: u8 = 24;
pub const NAWS: u8 = 31;

/// One telnet connection and what it has shown.
pub struct Tn {
    pub stream: TcpStream,
    pub screen: vt100::Parser,
    /// Every byte received, commands included.
    pub raw: Vec<u8>,
    /// Option commands received, as (verb, option).
    pub commands: Vec<(u8, u8)>,
    /// Whether the connection has ended.
    pub closed: bool,
    state: Parse,
    /// Answer the server's option requests like a real client.
    pub cooperative: bool,
    size: (u16, u16),
}

#[derive(Clone, Copy)]
enum Parse {
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
}

impl Tn {
    /// Connects and lets the first screen arrive, as an 100×30 terminal.
    pub async fn connect(addr: std::net::SocketAddr) -> Tn {
        Tn::connect_sized(addr, (100, 30)).await
    }

    pub async fn connect_sized(addr: std::net::SocketAddr, size: (u16, u16)) -> Tn {
        let stream = TcpStream::connect(addr).await.expect("telnet connect");
        Tn::over(stream, size, true)
    }

    /// A client that ignores negotiation (like `nc`).
    pub async fn raw(addr: std::net::SocketAddr) -> Tn {
        let stream = TcpStream::connect(addr).await.expect("telnet connect");
        Tn::over(stream, (80, 24), false)
    }

    pub fn over(stream: TcpStream, size: (u16, u16), cooperative: bool) -> Tn {
        Tn {
            stream,
            screen: vt100::Parser::new(size.1, size.0, 0),
            raw: Vec::new(),
            commands: Vec::new(),
            closed: false,
            state: Parse::Data,
            cooperative,
            size,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("telnet write");
    }

    /// Types text as a person would: a key at a time (Enter is `\r`).
    pub async fn typed(&mut self, text: &str) {
        self.send(text.as_bytes()).await;
        // Let the gateway see it as keystrokes, not a paste.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Presses Esc, and waits long enough that it is not taken for the start
    /// of a key sequence.
    pub async fn esc(&mut self) {
        self.send(b"\x1b").await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// Reports a new window size.
    pub async fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        self.screen.screen_mut().set_size(height, width);
        let [w1, w2] = width.to_be_bytes();
        let [h1, h2] = height.to_be_bytes();
        self.send(&naws_bytes(w1, w2, h1, h2)).await;
    }

    /// What the screen shows, one line per row.
    pub fn text(&self) -> String {
        self.screen.screen().contents()
    }

    /// Reads for up to `wait`; returns whether anything arrived.
    pub async fn read_for(&mut self, wait: Duration) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(n)) => {
                self.take(&buf[..n]).await;
                true
            }
            Err(_) => false,
        }
    }

    /// Reads until the screen shows `what`, for at most ten seconds.
    pub async fn until_shows(&mut self, what: &str) -> String {
        self.until(|t| t.text().contains(what), &format!("the screen to show {what:?}")).await;
        self.text()
    }

    /// Reads until `done` holds, for at most ten seconds.
    pub async fn until(&mut self, done: impl Fn(&Tn) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(!self.closed, "the connection closed while waiting for {what}; screen:\n{}", self.text());
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; screen:\n{}", self.text());
            self.read_for(left).await;
        }
    }

    /// Reads until the server closes, for at most `wait`; returns the text
    /// received after the screen was left (the goodbye line).
    pub async fn until_closed(&mut self, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "still open after {wait:?}; screen:\n{}", self.text());
            self.read_for(left).await;
        }
        let tail = match self.raw.windows(8).rposition(|w| w == b"\x1b[?1049l") {
            Some(at) => &self.raw[at + 8..],
            None => &self.raw[..],
        };
        String::from_utf8_lossy(tail).into_owned()
    }

    async fn take(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        let mut data = Vec::new();
        let mut replies = Vec::new();
        for &b in bytes {
            self.state = match (self.state, b) {
                (Parse::Data, IAC) => Parse::Iac,
                (Parse::Data, b) => {
                    data.push(b);
                    Parse::Data
                }
                (Parse::Iac, IAC) => {
                    data.push(IAC);
                    Parse::Data
                }
                (Parse::Iac, WILL..=DONT) => Parse::Verb(b),
                (Parse::Iac, SB) => Parse::Sub,
                (Parse::Iac, _) => Parse::Data,
                (Parse::Verb(verb), opt) => {
                    self.commands.push((verb, opt));
                    if self.cooperative {
                        replies.extend(self.answer(verb, opt));
                    }
                    Parse::Data
                }
                (Parse::Sub, IAC) => Parse::SubIac,
                (Parse::Sub, _) => Parse::Sub,
                (Parse::SubIac, SE) => Parse::Data,
                (Parse::SubIac, _) => Parse::Sub,
            };
        }
        self.screen.process(&data);
        if !replies.is_empty() {
            let _ = self.stream.write_all(&replies).await;
        }
    }

    fn answer(&self, verb: u8, opt: u8) -> Vec<u8> {
        match (verb, opt) {
            (DO, NAWS) => {
                let mut out = vec![IAC, WILL, NAWS];
                let [w1, w2] = self.size.0.to_be_bytes();
                let [h1, h2] = self.size.1.to_be_bytes();
                out.extend(naws_bytes(w1, w2, h1, h2));
                out
            }
            (WILL, ECHO | SGA) => vec![IAC, DO, opt],
            (DO, _) => vec![IAC, WONT, opt],
            (WILL, _) => vec![IAC, DONT, opt],
            _ => vec![],
        }
    }

    /// Signs in with an existing account through the sign-in screens.
    pub async fn log_in(&mut self, name: &str, password: &str) {
        self.until_shows("[l] log in").await;
        self.typed("l").await;
        self.until_shows("Username").await;
        self.typed(&format!("{name}\r")).await;
        self.until_shows("Password").await;
        self.typed(&format!("{password}\r")).await;
    }

    /// Creates an account with an invite through the sign-in screens.
    /// Creates an account the way a person does: the code first (an invite,
    /// or a fresh server's setup code), then the name and the password.
    pub async fn register(&mut self, name: &str, password: &str, code: &str) {
        self.until_shows("[r] create an account").await;
        self.typed("r").await;
        self.until(|t| t.text().contains("Invite code") || t.text().contains("Setup code"), "a code prompt")
            .await;
        self.typed(&format!("{code}\r")).await;
        self.until_shows("Username").await;
        self.typed(&format!("{name}\r")).await;
        self.until_shows("Choose a password").await;
        self.typed(&format!("{password}\r")).await;
        self.until_shows("Password again").await;
        self.typed(&format!("{password}\r")).await;
    }
}

/// `IAC SB NAWS w h IAC SE`, with 0xFF bytes doubled.
pub fn naws_bytes(w1: u8, w2: u8, h1: u8, h2: u8) -> Vec<u8> {
    let mut out = vec![IAC, SB, NAWS];
    for b in [w1, w2, h1, h2] {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out.extend([IAC, SE]);
    out
}
