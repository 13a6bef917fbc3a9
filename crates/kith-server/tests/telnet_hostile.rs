//! BAD_INPUTS.md T1–T18 against the telnet gateway: each hostile client gets
//! a bounded answer or a clear close, and a canary (two QUIC clients talking
//! through the same server) still sings afterwards.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::telnet::*;
use common::*;
use kith_core::rate::RateLimit;
use kith_server::telnet::TelnetConfig;
use tokio::io::AsyncWriteExt;

struct Setup {
    // Held so that the server runs for the whole test.
    _server: TestServer,
    addr: SocketAddr,
    family: Family,
}

impl Setup {
    async fn canary(&self) {
        canary_still_sings(&self.family.owner, &self.family.members[0], self.family.general).await;
    }

    /// A telnet user signed in as `name` (registered with the family's invite).
    async fn signed_in(&self, name: &str) -> Tn {
        let mut t = Tn::connect(self.addr).await;
        t.register(name, PASSWORD, &self.family.invite).await;
        t.until_shows("#general").await;
        t
    }
}

async fn setup(tweak: impl FnOnce(&mut kith_server::Config)) -> Setup {
    let server = TestServer::start_with(|c| {
        c.telnet = Some(TelnetConfig::new("127.0.0.1:0".parse().unwrap()));
        tweak(c);
    })
    .await;
    let addr = server.server.telnet_addr().expect("telnet enabled");
    let family = family(&server, &["bob"]).await;
    Setup { _server: server, addr, family }
}

/// Sends `bytes` in pieces, reading what comes back in between (as a
/// client that is not a slow reader would).
async fn send_reading(t: &mut Tn, bytes: &[u8]) {
    for piece in bytes.chunks(16 * 1024) {
        t.send(piece).await;
        while t.read_for(Duration::from_millis(1)).await {}
    }
}

/// Sends `bytes` while reading, until the server closes; returns the goodbye.
async fn send_until_closed(t: &mut Tn, bytes: &[u8]) -> String {
    let mut sent = 0;
    let chunk = 64 * 1024;
    while sent < bytes.len() && !t.closed {
        let end = (sent + chunk).min(bytes.len());
        if t.stream.write_all(&bytes[sent..end]).await.is_err() {
            break;
        }
        sent = end;
        while t.read_for(Duration::from_millis(1)).await {}
    }
    t.until_closed(Duration::from_secs(10)).await
}

#[tokio::test]
async fn t1_a_megabyte_of_escaped_iac_is_data_and_closes_at_the_line_cap() {
    let s = setup(|_| {}).await;
    let mut t = s.signed_in("carol").await;
    let goodbye = send_until_closed(&mut t, &[IAC; 2 * 1024 * 1024]).await;
    assert!(goodbye.contains("line too long"), "{goodbye:?}");
    s.canary().await;
}

#[tokio::test]
async fn t2_t7_t8_endless_or_oversized_subnegotiations_close_with_a_message() {
    let s = setup(|_| {}).await;
    // T2: IAC SB and 10 MiB without IAC SE.
    let mut t = Tn::connect(s.addr).await;
    t.until_shows("[l] log in").await;
    let mut sb = vec![IAC, SB, NAWS];
    sb.resize(10 * 1024 * 1024, b'x');
    let goodbye = send_until_closed(&mut t, &sb).await;
    assert!(goodbye.contains("subnegotiation too long"), "{goodbye:?}");
    // T7: LINEMODE SLC with 500 triplets (LINEMODE was never agreed to).
    let mut t = Tn::connect(s.addr).await;
    let mut slc = vec![IAC, WILL, 34, IAC, SB, 34, 3];
    for i in 0..500u32 {
        slc.extend([(i % 30) as u8 + 1, 2, 0]);
    }
    slc.extend([IAC, SE]);
    let goodbye = send_until_closed(&mut t, &slc).await;
    assert!(goodbye.contains("subnegotiation too long"), "{goodbye:?}");
    assert!(t.commands.contains(&(DONT, 34)), "LINEMODE is refused");
    // T8: a 64 KiB terminal type.
    let mut t = Tn::connect(s.addr).await;
    let mut ttype = vec![IAC, SB, TTYPE, 0];
    ttype.resize(64 * 1024, b'A');
    ttype.extend([IAC, SE]);
    let goodbye = send_until_closed(&mut t, &ttype).await;
    assert!(goodbye.contains("subnegotiation too long"), "{goodbye:?}");
    s.canary().await;
}

#[tokio::test]
async fn t3_t4_negotiation_storms_get_one_answer_per_change_and_unknown_options_are_refused_once() {
    let s = setup(|_| {}).await;
    let mut t = Tn::connect(s.addr).await;
    t.until_shows("[l] log in").await;
    // From here on the client answers nothing, so every answer counted is
    // the server's own.
    t.cooperative = false;
    let before = t.commands.len();
    // T3: 100 000 alternating DO ECHO / DONT ECHO, then 1000 repeats of DO ECHO.
    let mut storm = Vec::new();
    for i in 0..100_000 {
        storm.extend([IAC, if i % 2 == 0 { DONT } else { DO }, ECHO]);
    }
    storm.extend([IAC, DO, ECHO].repeat(1000));
    send_reading(&mut t, &storm).await;
    t.until(|t| t.commands.len() >= before + 100_000, "an answer per change").await;
    t.read_for(Duration::from_millis(300)).await;
    assert_eq!(t.commands.len() - before, 100_000, "one answer per state change, none for repeats");

    // T4: WILL and DO for every option, twice.
    let before = t.commands.len();
    let mut all = Vec::new();
    for _ in 0..2 {
        for opt in 0..=255u8 {
            all.extend([IAC, WILL, opt, IAC, DO, opt]);
        }
    }
    t.send(&all).await;
    t.until(|t| t.commands.len() >= before + 509, "refusals").await;
    t.read_for(Duration::from_millis(300)).await;
    let answers = &t.commands[before..];
    for opt in 0..=255u8 {
        let about: Vec<(u8, u8)> = answers.iter().copied().filter(|(_, o)| *o == opt).collect();
        let expected = match opt {
            // The server echoes; the client need not.
            ECHO | SGA => vec![(DONT, opt)],
            // The client reports its size; the server has none to report.
            NAWS => vec![(WONT, NAWS)],
            // The client refused TTYPE at first; offered now, it is taken.
            TTYPE => vec![(DO, TTYPE), (WONT, TTYPE)],
            _ => vec![(DONT, opt), (WONT, opt)],
        };
        assert_eq!(about, expected, "option {opt}: one answer each way, none for the repeat");
    }
    // Still a working session.
    t.typed("l").await;
    t.until_shows("Username").await;
    s.canary().await;
}

#[tokio::test]
async fn t5_absurd_and_stormy_window_sizes_are_clamped_and_coalesced() {
    let s = setup(|_| {}).await;
    let mut t = s.signed_in("carol").await;
    for (w, h) in [(0u16, 0u16), (1, 1), (65535, 65535)] {
        let [w1, w2] = w.to_be_bytes();
        let [h1, h2] = h.to_be_bytes();
        t.send(&naws_bytes(w1, w2, h1, h2)).await;
        t.read_for(Duration::from_millis(100)).await;
    }
    // The widest draw is clamped: no cursor move past column 300.
    let text = String::from_utf8_lossy(&t.raw).into_owned();
    assert!(!text.contains(";301H") && !text.contains(";65535H"), "drawing is clamped to 300 columns");
    // A storm: a new size every millisecond for a second.
    let clears_before = count(&t.raw, b"\x1b[2J");
    let started = std::time::Instant::now();
    let mut i = 0u16;
    while started.elapsed() < Duration::from_secs(1) {
        let w = 60 + i % 40;
        t.send(&naws_bytes(0, w as u8, 0, 25)).await;
        i += 1;
        while t.read_for(Duration::from_millis(1)).await {}
    }
    t.resize(90, 25).await;
    t.until_shows("#general").await;
    t.read_for(Duration::from_millis(300)).await;
    let redraws = count(&t.raw, b"\x1b[2J") - clears_before;
    let elapsed_ms = started.elapsed().as_millis() as usize;
    assert!(
        redraws <= elapsed_ms / 33 + 3,
        "{i} size reports gave {redraws} full redraws in {elapsed_ms} ms: at most one per draw"
    );
    s.canary().await;
}

#[tokio::test]
async fn t6_new_environ_is_refused_and_nothing_reaches_sign_in() {
    let s = setup(|_| {}).await;
    let mut t = Tn::connect(s.addr).await;
    t.until_shows("[l] log in").await;
    let mut env = vec![IAC, WILL, 39, IAC, SB, 39, 0, 0];
    env.extend(b"USER");
    env.push(1);
    env.extend(b"-f root");
    env.extend([IAC, SE]);
    t.send(&env).await;
    t.read_for(Duration::from_millis(300)).await;
    assert!(t.commands.contains(&(DONT, 39)), "NEW-ENVIRON refused");
    let screen = t.text();
    assert!(screen.contains("[l] log in") && !screen.contains("root"), "{screen}");
    // Ten thousand variables are one oversized subnegotiation.
    let mut many = vec![IAC, SB, 39, 0];
    for i in 0..10_000 {
        many.extend(format!("\0V{i}\x01x").as_bytes());
    }
    many.extend([IAC, SE]);
    let goodbye = send_until_closed(&mut t, &many).await;
    assert!(goodbye.contains("subnegotiation too long"), "{goodbye:?}");
    s.canary().await;
}

#[tokio::test]
async fn t9_a_megabyte_line_without_a_newline_closes_at_the_cap() {
    let s = setup(|_| {}).await;
    let mut t = s.signed_in("carol").await;
    let goodbye = send_until_closed(&mut t, &vec![b'a'; 1024 * 1024]).await;
    assert!(goodbye.contains("line too long"), "{goodbye:?}");
    s.canary().await;
}

#[tokio::test]
async fn t10_to_t13_no_raw_control_byte_from_anyone_reaches_a_telnet_terminal() {
    let s = setup(|_| {}).await;
    let bob = &s.family.members[0];
    let mut t = s.signed_in("carol").await;
    // The server refuses control characters in messages outright (T10, T11).
    for evil in [
        "\x1b[2J",
        "\x1b]0;title\x07",
        "\x1b]52;c;ZXZpbA==\x07",
        "\x1bP+q\x1b\\",
        "\x1b[6n",
        "\u{9b}31m",
        "Alice: hi\rBob: send money",
        "abc\x08\x08\x08xyz",
        &"\x07".repeat(1000),
    ] {
        code_of(bob.send_message(s.family.general, evil, "").await);
    }
    // What is allowed is shown without harm (T12, T13).
    let combining = format!("e{}", "\u{301}".repeat(3999));
    let emoji = "😀".repeat(2000);
    for fine in [&combining, &emoji, "left \u{202E}reversed\u{202C} right", "zero\u{200B}width", "tab\there"]
    {
        bob.send_message(s.family.general, fine, "").await.unwrap();
    }
    // A paste of escape sequences from the telnet user is text, not commands.
    t.send(b"\x1b[200~pasted \x1b]0;owned\x07 \x1b[2J end\x1b[201~").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.typed("\r").await;
    let seen = loop {
        let m = next_message(bob).await;
        if m.author_name == "carol" {
            break m;
        }
    };
    assert!(seen.body.starts_with("pasted") && !seen.body.chars().any(|c| c.is_control()), "{:?}", seen.body);
    let screen = t.until_shows("tab").await;
    assert!(screen.contains("left ⁇reversed"), "bidi controls are made visible:\n{screen}");

    let data = without_telnet_commands(&t.raw);
    for (i, &b) in data.iter().enumerate() {
        match b {
            // Every ESC the terminal gets starts a control sequence the
            // renderer wrote.
            0x1b => assert_eq!(data.get(i + 1), Some(&b'['), "a bare ESC at {i}"),
            b'\r' | b'\n' => {}
            0..=0x1f | 0x7f => panic!("raw control byte {b:#04x} at {i}"),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&data);
    assert!(!text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)), "no C1 controls");
    assert!(!text.contains("\x1b[6n") && !text.contains("\x1b]"), "no queries or OSC");
    s.canary().await;
}

#[tokio::test]
async fn t14_silent_connections_are_closed_at_the_deadline_and_the_per_address_cap_refuses_at_once() {
    let s = setup(|c| {
        c.limits.connections_per_ip = 10;
        c.telnet.as_mut().unwrap().sign_in_deadline = Duration::from_secs(1);
    })
    .await;
    // The canary's two QUIC connections count against the cap too.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(Tn::raw(s.addr).await);
    }
    let mut refused = Tn::raw(s.addr).await;
    let goodbye = refused.until_closed(Duration::from_secs(2)).await;
    assert!(goodbye.contains("too many open connections from your address"), "{goodbye:?}");
    for t in &mut silent {
        let goodbye = t.until_closed(Duration::from_secs(5)).await;
        assert!(goodbye.contains("no successful authentication within the deadline"), "{goodbye:?}");
    }
    // Their slots are free again.
    let mut t = Tn::connect(s.addr).await;
    t.until_shows("[l] log in").await;
    s.canary().await;
}

#[tokio::test]
async fn t15_a_burst_of_connections_from_one_address_is_throttled_and_others_are_unaffected() {
    let s = setup(|c| c.limits.connects_per_ip = RateLimit::new(10, 1000)).await;
    let mut refused = 0;
    for _ in 0..30 {
        let mut t = Tn::raw(s.addr).await;
        t.read_for(Duration::from_millis(200)).await;
        if String::from_utf8_lossy(&t.raw).contains("too many new connections") {
            refused += 1;
        }
    }
    assert!(refused >= 19, "{refused} of 30 refused");
    // Another address on the same machine is not throttled.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(s.addr).await.unwrap();
    let mut other = Tn::over(stream, (100, 30), true);
    other.until_shows("[l] log in").await;
    s.canary().await;
}

#[tokio::test]
async fn t16_a_flood_of_lines_is_rate_limited_visibly_then_disconnected() {
    let s = setup(|c| c.limits.messages = RateLimit::new(5, 1000)).await;
    let mut t = s.signed_in("carol").await;
    t.send(&b"spam\r".repeat(10_000)).await;
    let goodbye = t.until_closed(Duration::from_secs(20)).await;
    assert!(goodbye.contains("flooding"), "{goodbye:?}");
    s.canary().await;
}

#[tokio::test]
async fn t17_eof_inside_a_command_or_subnegotiation_is_a_clean_close() {
    let s = setup(|_| {}).await;
    for cut in [&[IAC][..], &[IAC, WILL], &[IAC, SB, NAWS, 0, 80], &[IAC, SB, TTYPE, 0, b'x', IAC]] {
        let mut t = Tn::raw(s.addr).await;
        t.send(cut).await;
        t.stream.shutdown().await.unwrap();
        t.until_closed(Duration::from_secs(5)).await;
    }
    s.canary().await;
}

#[tokio::test]
async fn t18_line_end_spellings_and_nuls_at_the_password_prompt_are_one_thing() {
    let s = setup(|_| {}).await;
    let mut t = Tn::connect(s.addr).await;
    t.until_shows("[l] log in").await;
    t.typed("l").await;
    t.until_shows("Username").await;
    t.typed("bob\r\0").await;
    t.until_shows("Password").await;
    // Empty passwords, in every line-end spelling, never sign in.
    for empty in ["\r", "\n", "\r\n", "\r\0", "\0\r"] {
        t.typed(empty).await;
    }
    t.read_for(Duration::from_millis(200)).await;
    assert!(t.text().contains("Password") && !t.text().contains("#general"), "{}", t.text());
    // NULs inside the password are dropped; CR LF ends it.
    let with_nul = PASSWORD.replacen(' ', "\0 ", 1);
    t.typed(&format!("{with_nul}\r\n")).await;
    t.until_shows("#general").await;
    s.canary().await;
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The data bytes of a telnet stream (commands and subnegotiations removed).
fn without_telnet_commands(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1)) {
            (IAC, Some(&IAC)) => {
                out.push(IAC);
                i += 2;
            }
            (IAC, Some(&(WILL..=DONT))) => i += 3,
            (IAC, Some(&SB)) => {
                while i < raw.len() && !(raw[i] == IAC && raw.get(i + 1) == Some(&SE)) {
                    i += 1;
                }
                i += 2;
            }
            (IAC, _) => i += 2,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Isolation: a client that keeps typing but never reads its screen is cut
/// off once a write waits past the deadline; others are not held up.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_holds_nobody_up() {
    let s = setup(|c| {
        c.limits = kith_server::Limits::unlimited();
        c.telnet.as_mut().unwrap().write_deadline = Duration::from_secs(1);
    })
    .await;
    // A channel full of long lines, so that every redraw is large.
    let bob = &s.family.members[0];
    for n in 0..150 {
        bob.send_message(s.family.general, &format!("{n} {}", "the quick brown fox ".repeat(14)), "")
            .await
            .unwrap();
    }
    let mut bystander = s.signed_in("carol").await;

    // A tiny receive window; it signs in, then never reads again while its
    // window size flips every few milliseconds (each draw a full 300×120
    // redraw).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Tn::over(socket.connect(s.addr).await.unwrap(), (100, 30), true);
    slow.register("dave", PASSWORD, &s.family.invite).await;
    slow.until_shows("#general").await;
    let started = std::time::Instant::now();
    let mut flips = 0u32;
    let closed = loop {
        let (w, h) = if flips.is_multiple_of(2) { (300u16, 120u16) } else { (299, 119) };
        let [w1, w2] = w.to_be_bytes();
        let [h1, h2] = h.to_be_bytes();
        let naws = naws_bytes(w1, w2, h1, h2);
        let wrote = tokio::time::timeout(Duration::from_secs(1), slow.stream.write_all(&naws)).await;
        if matches!(wrote, Ok(Err(_))) {
            break true;
        }
        flips += 1;
        // The bystander's screen keeps up meanwhile.
        if flips.is_multiple_of(100) {
            bystander.typed(&format!("still here {flips}\r")).await;
            bystander.until_shows(&format!("still here {flips}")).await;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Well before the sign-in deadline would matter, and it was typing all along.
    assert!(closed, "a client that never reads is still connected after {:?}", started.elapsed());
    s.canary().await;
}

/// The regression: a paste over 64 KiB disconnected the user although the
/// paste itself is capped; only typing without an Enter meets the line cap.
#[tokio::test]
async fn a_paste_larger_than_the_line_cap_is_cut_not_punished() {
    let s = setup(|_| {}).await;
    let mut t = s.signed_in("carol").await;
    let mut paste = b"\x1b[200~".to_vec();
    paste.extend(std::iter::repeat_n(b'x', 100 * 1024));
    paste.extend(b"\x1b[201~");
    t.send(&paste).await;
    t.read_for(Duration::from_millis(300)).await;
    assert!(!t.closed, "still connected after a 100 KiB paste");
    // The input holds what fits; the session goes on.
    t.typed("\x15hello after the paste\r").await;
    let seen = loop {
        let m = next_message(&s.family.owner).await;
        if m.author_name == "carol" {
            break m;
        }
    };
    assert_eq!(seen.body, "hello after the paste");
    s.canary().await;
}
