//! `kith-bench mumble`: the voice workload of `kith-bench voice` against
//! Mumble's server (murmur; Debian's `mumble-server`), for the comparison
//! issue 23 asks for. murmur is started here with a config of its own and
//! pinned as `kith serve` is. Each bot is a Mumble client of its own, as
//! Mumble's clients are: a TLS control connection, and a UDP socket whose
//! voice is encrypted with OCB2-AES128 under the key the server handed out.
//! Every bot is in murmur's root channel, so one room is measured. Speakers
//! send the same 80-byte payload every 20 ms, stamped with its send time;
//! listeners time and count what arrives. Server CPU per forwarded packet is
//! murmur's, from /proc, as for kith.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use anyhow::{Context, Result, bail, ensure};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::pin;
use crate::server::{Reaped, histogram};
use crate::voice::{Outcome, PACKET_BYTES, PACKET_INTERVAL, Shape, print_as, sent_at, stamp};

/// A murmur child process in a temporary directory; killed on drop.
struct Murmur {
    child: Reaped,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Murmur {
    /// Starts `binary` on a free loopback port with room for `users` and
    /// nothing in the load's way: no autoban for many connections from one
    /// address, a bandwidth cap above the load's 50 kb/s per speaker.
    async fn start(binary: &str, users: usize) -> Result<Murmur> {
        let dir = tempfile::tempdir()?;
        // Started as root, murmur switches to the `mumble-server` user,
        // which must be able to write its database here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let ini = dir.path().join("murmur.ini");
        std::fs::write(
            &ini,
            format!(
                "database={db}\nlogfile={log}\nhost=127.0.0.1\nport={port}\nusers={users}\n\
                 bandwidth=128000\ntimeout=60\nautobanAttempts=0\nwelcometext=\nopusthreshold=0\n\
                 bonjour=false\nallowping=false\n",
                db = dir.path().join("murmur.sqlite").display(),
                log = dir.path().join("murmur.log").display(),
                users = users + 10,
            ),
        )?;
        let child = std::process::Command::new(binary)
            .arg("-fg")
            .arg("-ini")
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary} (Debian: apt-get install mumble-server)"))?;
        let murmur = Murmur { child: Reaped(child), port, _dir: dir };
        // It listens before it has made its certificate: ready is when a
        // TLS handshake succeeds.
        let tls = connector();
        for _ in 0..200 {
            if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await
                && tls.connect("localhost".try_into()?, tcp).await.is_ok()
            {
                pin::server(murmur.child.id())?;
                return Ok(murmur);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{binary} did not accept TLS on 127.0.0.1:{port} within 10 s")
    }

    fn usage(&self) -> (f64, u64) {
        self.child.usage()
    }
}

/// TLS for the control connection. murmur makes a self-signed certificate
/// when it starts; this is its own child on loopback, so any is accepted.
fn connector() -> tokio_rustls::TlsConnector {
    let mut config = kith_client::https_config(kith_client::Trust::FirstUse);
    config.alpn_protocols.clear();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

// The control protocol: a big-endian u16 type and u32 length, then a
// protobuf message (Mumble.proto; only the fields the bench uses).
const VERSION: u16 = 0;
const UDP_TUNNEL: u16 = 1;
const AUTHENTICATE: u16 = 2;
const PING: u16 = 3;
const REJECT: u16 = 4;
const SERVER_SYNC: u16 = 5;
const CRYPT_SETUP: u16 = 15;
/// The largest control message read (murmur's own limit is 8 MiB).
const MAX_MESSAGE: usize = 8 << 20;

#[derive(Clone, PartialEq, prost::Message)]
struct Version {
    #[prost(uint32, optional, tag = "1")]
    version: Option<u32>,
    #[prost(string, optional, tag = "2")]
    release: Option<String>,
    #[prost(string, optional, tag = "3")]
    os: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Authenticate {
    #[prost(string, optional, tag = "1")]
    username: Option<String>,
    #[prost(bool, optional, tag = "5")]
    opus: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(uint64, optional, tag = "1")]
    timestamp: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reject {
    #[prost(string, optional, tag = "2")]
    reason: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServerSync {
    #[prost(uint32, optional, tag = "1")]
    session: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CryptSetup {
    #[prost(bytes = "vec", optional, tag = "1")]
    key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    client_nonce: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    server_nonce: Option<Vec<u8>>,
}

async fn send(w: &mut (impl AsyncWrite + Unpin), kind: u16, msg: &impl Message) -> Result<()> {
    let body = msg.encode_to_vec();
    let mut frame = Vec::with_capacity(6 + body.len());
    frame.extend(kind.to_be_bytes());
    frame.extend((body.len() as u32).to_be_bytes());
    frame.extend(body);
    w.write_all(&frame).await?;
    Ok(w.flush().await?)
}

async fn recv(r: &mut (impl AsyncRead + Unpin)) -> Result<(u16, Vec<u8>)> {
    let mut head = [0u8; 6];
    r.read_exact(&mut head).await?;
    let kind = u16::from_be_bytes([head[0], head[1]]);
    let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    ensure!(len <= MAX_MESSAGE, "a {len}-byte control message");
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((kind, body))
}

// Voice packets (Mumble's legacy UDP format): a header byte (type << 5 |
// target), then Mumble's own variable-length integers.
const UDP_PING: u8 = 1;
const UDP_OPUS: u8 = 4;

/// Appends `v` in Mumble's variable-length encoding (the non-negative forms).
fn put_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..0x80 => out.push(v as u8),
        0x80..0x4000 => out.extend([0x80 | (v >> 8) as u8, v as u8]),
        0x4000..0x20_0000 => out.extend([0xC0 | (v >> 16) as u8, (v >> 8) as u8, v as u8]),
        0x20_0000..0x1000_0000 => {
            out.extend([0xE0 | (v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8, v as u8])
        }
        0x1000_0000..0x1_0000_0000 => {
            out.push(0xF0);
            out.extend((v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xF4);
            out.extend(v.to_be_bytes());
        }
    }
}

/// Takes one variable-length integer off the front of `b`; `None` for a
/// truncated one or one of the negative forms (murmur sends none here).
fn take_varint(b: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = b.split_first()?;
    let (more, high) = match first {
        0x00..=0x7F => (0, first),
        0x80..=0xBF => (1, first & 0x3F),
        0xC0..=0xDF => (2, first & 0x1F),
        0xE0..=0xEF => (3, first & 0x0F),
        0xF0..=0xF3 => (4, 0),
        0xF4..=0xF7 => (8, 0),
        _ => return None,
    };
    let (bytes, rest) = rest.split_at_checked(more)?;
    *b = rest;
    Some(bytes.iter().fold(u64::from(high), |v, &byte| (v << 8) | u64::from(byte)))
}

/// A client's voice packet: one Opus frame, not the last of its stream.
fn voice_packet(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![UDP_OPUS << 5];
    put_varint(&mut p, seq);
    put_varint(&mut p, payload.len() as u64);
    p.extend_from_slice(payload);
    p
}

/// The Opus frame of a voice packet as murmur forwards it (header, the
/// speaker's session, sequence, frame length with the terminator bit).
fn forwarded_opus(p: &[u8]) -> Option<&[u8]> {
    let (&header, mut rest) = p.split_first()?;
    if header >> 5 != UDP_OPUS {
        return None;
    }
    let _session = take_varint(&mut rest)?;
    let _seq = take_varint(&mut rest)?;
    let len = (take_varint(&mut rest)? & 0x1FFF) as usize;
    rest.get(..len)
}

type Block = [u8; 16];

fn xor(a: &Block, b: &Block) -> Block {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Multiplication by x in GF(2^128), big-endian, as OCB2 steps its offset.
fn double(b: &Block) -> Block {
    let x = u128::from_be_bytes(*b);
    ((x << 1) ^ if x >> 127 == 1 { 0x87 } else { 0 }).to_be_bytes()
}

/// OCB2 with AES-128, as Mumble uses it (CryptState): a full 16-byte tag, of
/// which a packet carries the first three bytes.
struct Ocb2(Aes128);

impl Ocb2 {
    fn new(key: &Block) -> Ocb2 {
        Ocb2(Aes128::new(key.into()))
    }

    fn encrypt(&self, b: &Block) -> Block {
        let mut x = (*b).into();
        self.0.encrypt_block(&mut x);
        x.into()
    }

    fn decrypt(&self, b: &Block) -> Block {
        let mut x = (*b).into();
        self.0.decrypt_block(&mut x);
        x.into()
    }

    /// The final (possibly partial, possibly empty) block's pad.
    fn pad(&self, delta: &Block, len: usize) -> Block {
        let mut bits = [0u8; 16];
        bits[8..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        self.encrypt(&xor(&bits, delta))
    }

    fn tag(&self, delta: &Block, checksum: &Block) -> Block {
        let three = xor(&double(delta), delta);
        self.encrypt(&xor(&three, checksum))
    }

    /// The ciphertext of `plain` and its tag. murmur 1.3.1+ alters or refuses
    /// a plaintext whose second-last block starts with eight zero bytes (its
    /// guard against the XEX* attack on OCB2); such a plaintext is refused
    /// here, and the bench's packets never are one.
    fn seal(&self, nonce: &Block, plain: &[u8]) -> Result<(Vec<u8>, Block)> {
        let mut out = Vec::with_capacity(plain.len());
        let mut delta = self.encrypt(nonce);
        let mut checksum = [0u8; 16];
        let mut rest = plain;
        while rest.len() > 16 {
            let (block, tail) = rest.split_at(16);
            let block: Block = block.try_into().expect("16 bytes");
            ensure!(tail.len() > 16 || block[..8] != [0; 8], "a plaintext murmur would alter");
            delta = double(&delta);
            out.extend(xor(&delta, &self.encrypt(&xor(&delta, &block))));
            checksum = xor(&checksum, &block);
            rest = tail;
        }
        delta = double(&delta);
        let pad = self.pad(&delta, rest.len());
        let mut last = pad;
        last[..rest.len()].copy_from_slice(rest);
        checksum = xor(&checksum, &last);
        out.extend(&xor(&pad, &last)[..rest.len()]);
        Ok((out, self.tag(&delta, &checksum)))
    }

    /// The plaintext of `cipher` and the tag it should have come with.
    fn open(&self, nonce: &Block, cipher: &[u8]) -> (Vec<u8>, Block) {
        let mut out = Vec::with_capacity(cipher.len());
        let mut delta = self.encrypt(nonce);
        let mut checksum = [0u8; 16];
        let mut rest = cipher;
        while rest.len() > 16 {
            let (block, tail) = rest.split_at(16);
            delta = double(&delta);
            let plain = xor(&delta, &self.decrypt(&xor(&delta, block.try_into().expect("16 bytes"))));
            out.extend(plain);
            checksum = xor(&checksum, &plain);
            rest = tail;
        }
        delta = double(&delta);
        let mut last = [0u8; 16];
        last[..rest.len()].copy_from_slice(rest);
        let last = xor(&last, &self.pad(&delta, rest.len()));
        checksum = xor(&checksum, &last);
        out.extend(&last[..rest.len()]);
        (out, self.tag(&delta, &checksum))
    }
}

/// Adds one to a little-endian counter (Mumble's nonces count from byte 0).
fn increment(iv: &mut [u8]) {
    for b in iv {
        *b = b.wrapping_add(1);
        if *b != 0 {
            break;
        }
    }
}

fn decrement(iv: &mut [u8]) {
    for b in iv {
        *b = b.wrapping_sub(1);
        if *b != 0xFF {
            break;
        }
    }
}

/// The sending half of a Mumble crypt state: each packet is the nonce's
/// low byte, three bytes of tag, and the ciphertext.
struct Seal {
    ocb: Arc<Ocb2>,
    iv: Block,
}

impl Seal {
    fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>> {
        increment(&mut self.iv);
        let (body, tag) = self.ocb.seal(&self.iv, plain)?;
        let mut packet = Vec::with_capacity(4 + body.len());
        packet.push(self.iv[0]);
        packet.extend(&tag[..3]);
        packet.extend(body);
        Ok(packet)
    }
}

/// The receiving half: rebuilds the sender's nonce from its low byte,
/// allowing for packets a little late or a few lost, as Mumble does.
struct Open {
    ocb: Arc<Ocb2>,
    iv: Block,
}

impl Open {
    fn open(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        let (&low, rest) = packet.split_first()?;
        let (tag, cipher) = rest.split_at_checked(3)?;
        let saved = self.iv;
        let mut late = false;
        if self.iv[0].wrapping_add(1) == low {
            if low < self.iv[0] {
                increment(&mut self.iv[1..]);
            }
        } else {
            let diff = match i32::from(low) - i32::from(self.iv[0]) {
                d if d > 128 => d - 256,
                d if d < -128 => d + 256,
                d => d,
            };
            match (low > self.iv[0], diff) {
                (false, -29..=-1) => late = true,
                (true, -29..=-1) => {
                    decrement(&mut self.iv[1..]);
                    late = true;
                }
                (true, 1..) => {}
                (false, 1..) => increment(&mut self.iv[1..]),
                _ => return None,
            }
        }
        self.iv[0] = low;
        let (plain, full) = self.ocb.open(&self.iv, cipher);
        if full[..3] != *tag || late {
            self.iv = saved;
        }
        (full[..3] == *tag).then_some(plain)
    }
}

/// One connected bot, its UDP path proven both ways.
struct Bot {
    udp: Arc<UdpSocket>,
    seal: Seal,
    open: Open,
}

fn nonce(bytes: Option<Vec<u8>>, what: &str) -> Result<Block> {
    bytes.and_then(|b| b.try_into().ok()).with_context(|| format!("CryptSetup without a 16-byte {what}"))
}

/// Connects bot `i`: authenticates, takes the crypt state, and pings over
/// UDP until murmur answers — which proves the keys both ways and tells
/// murmur where this bot's voice goes. The control connection is then
/// read (counting voice that came over TCP instead) and pinged in tasks
/// of its own.
async fn join(
    tls: &tokio_rustls::TlsConnector,
    port: u16,
    i: usize,
    tunneled: Arc<AtomicU64>,
) -> Result<Bot> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (mut read, mut write) = tokio::io::split(tls.connect("localhost".try_into()?, tcp).await?);
    let version = Version {
        version: Some(1 << 16 | 3 << 8 | 4),
        release: Some("kith-bench".into()),
        os: Some("Linux".into()),
    };
    send(&mut write, VERSION, &version).await?;
    send(&mut write, AUTHENTICATE, &Authenticate { username: Some(format!("bot{i}")), opus: Some(true) })
        .await?;
    let mut crypt = None;
    loop {
        let (kind, body) = recv(&mut read).await?;
        match kind {
            CRYPT_SETUP => crypt = Some(CryptSetup::decode(&*body)?),
            SERVER_SYNC => {
                ServerSync::decode(&*body)?.session.context("ServerSync without a session")?;
                break;
            }
            REJECT => bail!("murmur refused bot{i}: {}", Reject::decode(&*body)?.reason.unwrap_or_default()),
            _ => {}
        }
    }
    let crypt = crypt.context("no CryptSetup before ServerSync")?;
    let ocb = Arc::new(Ocb2::new(&nonce(crypt.key, "key")?));
    // The client seals with the client nonce; the server with its own.
    let mut seal = Seal { ocb: ocb.clone(), iv: nonce(crypt.client_nonce, "client nonce")? };
    let mut open = Open { ocb, iv: nonce(crypt.server_nonce, "server nonce")? };
    let udp = UdpSocket::bind("127.0.0.1:0").await?;
    udp.connect(("127.0.0.1", port)).await?;
    let mut buf = [0u8; 1500];
    let mut proven = false;
    for attempt in 0..10 {
        let mut ping = vec![UDP_PING << 5];
        put_varint(&mut ping, attempt);
        udp.send(&seal.seal(&ping)?).await?;
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), udp.recv(&mut buf)).await
            && open.open(&buf[..n]).is_some_and(|p| p.first().map(|h| h >> 5) == Some(UDP_PING))
        {
            proven = true;
            break;
        }
    }
    ensure!(proven, "murmur never answered bot{i}'s UDP ping");
    tokio::spawn(async move {
        while let Ok((kind, _)) = recv(&mut read).await {
            if kind == UDP_TUNNEL {
                tunneled.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // murmur drops a client it has not heard from over TCP within its timeout.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if send(&mut write, PING, &Ping { timestamp: Some(0) }).await.is_err() {
                break;
            }
        }
    });
    Ok(Bot { udp: Arc::new(udp), seal, open })
}

/// One room of `size` bots in murmur's root channel, `speakers` of them
/// speaking, measured as `kith-bench voice` measures kith.
pub async fn run(binary: &str, shape: Shape, json_out: bool) -> Result<()> {
    let Shape { size, speakers, duration, .. } = shape;
    ensure!(shape.rooms == 1, "murmur's root channel is the one room");
    ensure!(size >= 2 && speakers >= 1 && speakers <= size, "a room needs a speaker and a listener");
    let murmur = Murmur::start(binary, size).await?;
    let tls = connector();
    let tunneled = Arc::new(AtomicU64::new(0));
    let mut bots = Vec::with_capacity(size);
    // One at a time: murmur's listen backlog is 50.
    for i in 0..size {
        bots.push(join(&tls, murmur.port, i, tunneled.clone()).await?);
    }
    let origin = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let mut listeners = tokio::task::JoinSet::new();
    let mut talkers = Vec::new();
    for (i, bot) in bots.into_iter().enumerate() {
        let Bot { udp, seal, mut open } = bot;
        if i < speakers {
            talkers.push((udp.clone(), seal));
        }
        let (received, mut stopped) = (received.clone(), stopped.clone());
        listeners.spawn(async move {
            let mut h = histogram();
            let mut buf = [0u8; 1500];
            loop {
                let n = tokio::select! {
                    n = udp.recv(&mut buf) => n,
                    _ = stopped.changed() => break,
                };
                let Ok(n) = n else { break };
                let Some(plain) = open.open(&buf[..n]) else { continue };
                let Some(sent_us) = forwarded_opus(&plain).and_then(sent_at) else { continue };
                let now_us = origin.elapsed().as_micros() as u64;
                let _ = h.record(now_us.saturating_sub(sent_us).max(1));
                received.fetch_add(1, Ordering::Relaxed);
            }
            h
        });
    }
    let (cpu0, _) = murmur.usage();
    let started = Instant::now();
    let mut speaking = tokio::task::JoinSet::new();
    for (udp, mut seal) in talkers {
        speaking.spawn(async move {
            let mut tick = tokio::time::interval(PACKET_INTERVAL);
            let mut payload = [0x5au8; PACKET_BYTES];
            let mut sent = 0u64;
            while started.elapsed() < duration {
                tick.tick().await;
                stamp(&mut payload, origin);
                let packet = seal.seal(&voice_packet(sent, &payload))?;
                if udp.send(&packet).await.is_ok() {
                    sent += 1;
                }
            }
            anyhow::Ok(sent)
        });
    }
    let mut sent = 0;
    while let Some(s) = speaking.join_next().await {
        sent += s??;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    // Let what is in flight arrive, as for kith.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu1, rss_kib) = murmur.usage();
    let _ = stop.send(true);
    let mut delay = histogram();
    while let Some(h) = listeners.join_next().await {
        delay.add(&h?)?;
    }
    let out = Outcome {
        sent,
        expected: sent * (size as u64 - 1),
        received: received.load(Ordering::Relaxed),
        delay,
        cpu_s: cpu1 - cpu0,
        elapsed_s,
        rss_kib,
        acks: None,
    };
    print_as("mumble", &out, shape, json_out);
    let tunneled = tunneled.load(Ordering::Relaxed);
    if tunneled > 0 {
        eprintln!("kith-bench: {tunneled} voice packets came over TCP instead of UDP (not counted)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(n: usize) -> Vec<u8> {
        (0..n as u8).collect()
    }

    #[test]
    fn ocb2_matches_the_published_test_vectors() {
        // draft-krovetz-ocb-00 (AES-128, key and nonce 00..0f), which
        // Mumble's own tests check its CryptState against.
        let key: Block = std::array::from_fn(|i| i as u8);
        let ocb = Ocb2::new(&key);
        let (empty, tag) = ocb.seal(&key, &[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(tag, u128::to_be_bytes(0xBF3108130773AD5EC70EC69E7875A7B0));
        let (cipher, tag) = ocb.seal(&key, &counting(40)).unwrap();
        let expected: Vec<u8> = [0xF75D6BC8B4DC8D66B836A2B08B32A636u128, 0x9F1CD3C5228D79FD6C267F5F6AA7B231]
            .iter()
            .flat_map(|b| b.to_be_bytes())
            .chain(0xC7DFB9D59951AE9Cu64.to_be_bytes())
            .collect();
        assert_eq!(cipher, expected);
        assert_eq!(tag, u128::to_be_bytes(0x9DB0CDF880F73E3E10D4EB3217766688));
    }

    #[test]
    fn what_is_sealed_opens_at_every_length_and_a_changed_byte_does_not() {
        let key = [7u8; 16];
        let ocb = Arc::new(Ocb2::new(&key));
        for len in 0..100 {
            let plain: Vec<u8> = (0..len).map(|i| (i as u8) | 0x80).collect();
            let mut seal = Seal { ocb: ocb.clone(), iv: [3; 16] };
            let mut open = Open { ocb: ocb.clone(), iv: [3; 16] };
            let packet = seal.seal(&plain).unwrap();
            assert_eq!(open.open(&packet).as_deref(), Some(&plain[..]), "length {len}");
            let mut bad = seal.seal(&plain).unwrap();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            if len > 0 {
                assert_eq!(open.open(&bad), None, "length {len}");
            }
        }
    }

    #[test]
    fn a_plaintext_murmur_would_alter_is_refused_not_sent() {
        let ocb = Ocb2::new(&[1; 16]);
        let mut guarded = vec![0u8; 20];
        assert!(ocb.seal(&[0; 16], &guarded).is_err(), "second-last block starts with eight zeros");
        guarded[3] = 1;
        assert!(ocb.seal(&[0; 16], &guarded).is_ok());
        let mut first_block_zero = [0u8; 40];
        first_block_zero[16] = 1;
        assert!(ocb.seal(&[0; 16], &first_block_zero).is_ok(), "only the second-last block is guarded");
    }

    #[test]
    fn a_receiver_follows_the_senders_nonce_through_loss_lateness_and_wrapping() {
        let ocb = Arc::new(Ocb2::new(&[9; 16]));
        let mut seal = Seal { ocb: ocb.clone(), iv: [0xF0; 16] };
        let mut open = Open { ocb, iv: [0xF0; 16] };
        let packets: Vec<Vec<u8>> = (0..600u32).map(|i| seal.seal(&i.to_be_bytes()).unwrap()).collect();
        // In order past two wraps of the low byte, a few lost, one late.
        let order = (0..300).chain(305..398).chain([399, 398]).chain(400..600);
        for i in order {
            let plain = open.open(&packets[i]).unwrap_or_else(|| panic!("packet {i}"));
            assert_eq!(plain, (i as u32).to_be_bytes());
        }
    }

    #[test]
    fn varints_round_trip_in_every_width() {
        for v in [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1F_FFFF, 0x20_0000, 0xFFF_FFFF, 0x1000_0000, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut rest = &b[..];
            assert_eq!(take_varint(&mut rest), Some(v));
            assert!(rest.is_empty());
        }
        assert_eq!(take_varint(&mut &[0x80][..]), None, "truncated");
    }

    #[test]
    fn a_forwarded_voice_packet_yields_its_opus_frame() {
        let mut p = vec![UDP_OPUS << 5];
        put_varint(&mut p, 42); // session
        put_varint(&mut p, 7); // sequence
        put_varint(&mut p, 0x2000 | 3); // three bytes, the last frame
        p.extend([1, 2, 3, 4]);
        assert_eq!(forwarded_opus(&p), Some(&[1, 2, 3][..]));
        assert_eq!(forwarded_opus(&[UDP_PING << 5, 0]), None);
    }
}
