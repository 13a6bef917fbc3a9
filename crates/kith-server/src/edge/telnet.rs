//! The telnet gateway: `telnet host 2323` gets the same interface as
//! `kith chat`, rendered on the server by the terminal host
//! ([`super::terminal`]). This file is telnet's part only: accepting
//! connections, and the protocol ([`kith_telnet`]) — option negotiation,
//! window sizes, interrupts, and escaping the screen's bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_telnet::{Event, Telnet};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::Edge;
pub use super::terminal::GuestAccess;
use super::terminal::{self, Doors, End, Host, Wire};
use crate::admission::Refused;

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct TelnetConfig {
    /// TCP address to listen on. Telnet is cleartext: anything but loopback
    /// needs `allow_public`.
    pub listen: SocketAddr,
    /// The operator knowingly serves telnet beyond this machine.
    pub allow_public: bool,
    /// A connection that has not signed in by then is closed. Longer than
    /// QUIC's: a person types a name and a password here.
    pub sign_in_deadline: Duration,
    /// Timestamps are shown in this offset from UTC (the server's own zone:
    /// telnet does not say where its user is).
    pub utc_offset_secs: i32,
    /// A screen update the client does not take within this marks a reader
    /// too slow to keep up: the session is closed.
    pub write_deadline: Duration,
    /// Logging in and creating accounts with a password is offered.
    pub passwords: bool,
    /// Guest access, if offered.
    pub guests: Option<GuestAccess>,
}

impl TelnetConfig {
    pub fn new(listen: SocketAddr) -> TelnetConfig {
        TelnetConfig {
            listen,
            allow_public: false,
            sign_in_deadline: Duration::from_secs(90),
            utc_offset_secs: 0,
            write_deadline: Duration::from_secs(30),
            passwords: true,
            guests: None,
        }
    }
}

/// Shown at sign-in when the client will not let us echo: it shows what is
/// typed itself, and we cannot hide a password from its screen.
const ECHOES_WARNING: &str = "unencrypted, and your telnet client shows what you type: a password typed here is visible \
     on your screen (use guest access or `kith chat`)";
/// The status bar's marker on every telnet screen.
const UNENCRYPTED: &str = "unencrypted";

/// What every telnet session shares.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub listen: SocketAddr,
    pub doors: Arc<Doors>,
}

impl Gateway {
    /// `fingerprint`: `sha256:<hex>` of the server's TLS identity.
    pub(crate) fn new(config: &TelnetConfig, fingerprint: &str) -> Gateway {
        let doors = Doors {
            transport: "telnet",
            fingerprint: fingerprint.to_owned(),
            warning: Some(UNENCRYPTED.to_owned()),
            passwords: config.passwords,
            guests: config.guests.clone(),
            sign_in_deadline: config.sign_in_deadline,
            write_deadline: config.write_deadline,
            utc_offset_secs: config.utc_offset_secs,
            names: kith_tui::Names::default(),
        };
        Gateway { listen: config.listen, doors: Arc::new(doors) }
    }
}

/// Accepts telnet connections until the task is aborted.
pub(crate) async fn accept_loop(listener: TcpListener, edge: Arc<Edge>, gateway: Arc<Gateway>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: back off (up to a
                // second), keep serving once they are back.
                if backoff >= Duration::from_millis(640) {
                    tracing::warn!(error = %e, "accepting telnet connections keeps failing");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match edge.admission.connect(remote.ip()) {
            Ok(slot) => {
                let session = edge.session_id();
                let local =
                    stream.local_addr().map_or_else(|_| gateway.listen.to_string(), |a| a.to_string());
                let (reader, writer) = stream.into_split();
                let doors = gateway.doors.clone();
                let task = tokio::spawn(terminal::run(
                    reader,
                    writer,
                    TelnetWire::new(),
                    local,
                    remote,
                    session,
                    edge.clone(),
                    doors,
                ));
                tokio::spawn(terminal::supervise(task, remote, slot, edge.clone(), session));
            }
            Err(refused) => {
                tokio::spawn(refuse(stream, refused));
            }
        }
    }
}

/// Says why a connection is turned away, then closes it.
async fn refuse(mut stream: TcpStream, refused: Refused) {
    tracing::debug!(%refused, "telnet connection refused");
    let line =
        format!("kith: {}; try again in {} s\r\n", refused.reason, refused.retry_after_ms.div_ceil(1000));
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes())).await;
}

/// The telnet protocol under a terminal session.
struct TelnetWire {
    telnet: Telnet,
}

impl TelnetWire {
    fn new() -> TelnetWire {
        TelnetWire { telnet: Telnet::new() }
    }
}

impl Wire for TelnetWire {
    fn greeting(&mut self) -> Vec<u8> {
        self.telnet.take_output()
    }

    fn received(&mut self, bytes: &[u8], host: &mut Host, out: &mut Vec<u8>) -> Result<(), End> {
        self.telnet.receive(bytes);
        out.extend_from_slice(&self.telnet.take_output());
        if !host.signed_in() && self.telnet.echo_refused() {
            // Checked on every read before sign-in: cheap, and typing
            // redraws anyway.
            host.warn_at_sign_in(ECHOES_WARNING.to_owned());
        }
        while let Some(event) = self.telnet.poll_event() {
            match event {
                Event::Data(data) => host.typed(&data)?,
                Event::Size { width, height } => host.resized(width, height),
                Event::TerminalType(_) => {}
                Event::Interrupt => host.interrupted(),
                Event::Oversized => {
                    return Err(End::Closed("telnet protocol error: subnegotiation too long".into()));
                }
            }
        }
        host.received_done();
        Ok(())
    }

    fn frame(&self, screen: &[u8], out: &mut Vec<u8>) {
        kith_telnet::escape(screen, out);
    }
}
