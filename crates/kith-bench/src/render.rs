//! `kith-bench render`: what one frame of `kith chat` costs, with a busy
//! channel loaded. No server: the app is fed the same protocol data a
//! session delivers (a snapshot, a page of history, then message events),
//! and drawn through ratatui's crossterm backend into a sink, so each figure
//! includes laying out, diffing and encoding the ANSI output.

use std::time::Instant;

use anyhow::Result;
use hdrhistogram::Histogram;
use kith_client::proto::{self as v1, client_message::Request, event::Body, reply::Result as R};
use kith_tui::{Action, App, Bell, Config, Input};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use serde_json::json;

const CHANNEL: u64 = 11;
const COMMUNITY: u64 = 10;
/// 2026-11-21 12:00 UTC.
const START_MS: u64 = 1_795_262_400_000;

const WORDS: &[&str] = &[
    "dinner",
    "tonight",
    "the",
    "kids",
    "photos",
    "from",
    "grandma's",
    "birthday",
    "are",
    "up",
    "who",
    "is",
    "bringing",
    "cake",
    "日本語",
    "👍",
    "see",
    "you",
    "at",
    "seven",
    "maybe",
    "later",
    "café",
];

fn body(i: u64) -> String {
    let n = 4 + (i * 7 % 23) as usize;
    (0..n).map(|k| WORDS[((i as usize) * 31 + k * 17) % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

fn message(i: u64, people: u64) -> v1::Message {
    let author = 100 + i % people;
    v1::Message {
        id: 1_000 + i,
        channel_id: CHANNEL,
        author_id: author,
        author_name: format!("user{author}"),
        body: body(i),
        created_at_ms: START_MS + i * 2_000,
        reply_to: if i.is_multiple_of(10) && i > 1 { 1_000 + i - 1 } else { 0 },
        ..Default::default()
    }
}

fn ready(people: u64) -> v1::Ready {
    let member = |id: u64| v1::Member {
        user: Some(v1::User { id, username: format!("user{id}"), ..Default::default() }),
        ..Default::default()
    };
    v1::Ready {
        user: Some(v1::User { id: 100, username: "user100".into(), ..Default::default() }),
        communities: vec![v1::Community {
            id: COMMUNITY,
            name: "Family".into(),
            channels: vec![v1::Channel {
                id: CHANNEL,
                community_id: COMMUNITY,
                name: "general".into(),
                permissions: u64::MAX >> 1,
                ..Default::default()
            }],
            members: (100..100 + people).map(member).collect(),
            ..Default::default()
        }],
        presences: (100..100 + people)
            .step_by(2)
            .map(|u| v1::Presence { user_id: u, status: v1::PresenceStatus::Online as i32 })
            .collect(),
        ..Default::default()
    }
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn run(messages: u64, width: u16, height: u16, frames: u64, json_out: bool) -> Result<()> {
    let people = 30;
    let before = rss_kib();
    let config = Config {
        server: "bench:7443".into(),
        fingerprint: format!("sha256:{}", "0".repeat(64)),
        warning: None,
        bell: Bell::Never,
        utc_offset_secs: 0,
        nonce_prefix: "bench".into(),
        names: kith_tui::Names::default(),
        voice: kith_tui::VoiceSupport::Unavailable("a benchmark makes no sound".into()),
        pictures: None,
    };
    let mut app = App::new(config);
    let mut now = START_MS + messages * 2_000;
    app.handle(now, Input::Ready(Box::new(ready(people))));
    // The newest page of history, as a session's first fetch returns it...
    let page: Vec<_> = (0..messages.min(100)).map(|i| message(i, people)).collect();
    while let Some(action) = app.poll_action() {
        if let Action::Request { id, request: Request::History(_) } = action {
            let result = Ok(R::Messages(v1::MessagePage { messages: page.clone() }));
            app.handle(now, Input::Reply { id, result });
        }
    }
    // ...then the rest as they are posted.
    for i in page.len() as u64..messages {
        app.handle(
            now,
            Input::Event(Box::new(v1::Event {
                seq: i,
                body: Some(Body::MessageCreated(message(i, people))),
            })),
        );
    }
    while app.poll_action().is_some() {}
    let loaded = rss_kib();

    let backend = CrosstermBackend::new(std::io::sink());
    let viewport = Viewport::Fixed(Rect::new(0, 0, width, height));
    let mut terminal = Terminal::with_options(backend, TerminalOptions { viewport })?;
    terminal.draw(|f| app.render(f))?;

    let mut run = |name: &str, step: &mut dyn FnMut(&mut App, u64)| -> Result<serde_json::Value> {
        let mut h = Histogram::<u64>::new(3)?;
        for frame in 0..frames {
            step(&mut app, frame);
            let t = Instant::now();
            terminal.draw(|f| app.render(f))?;
            h.record(t.elapsed().as_nanos() as u64)?;
        }
        Ok(json!({
            "case": name,
            "p50_us": h.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_us": h.value_at_quantile(0.99) as f64 / 1000.0,
            "max_us": h.max() as f64 / 1000.0,
        }))
    };
    let idle = run("unchanged", &mut |_, _| {})?;
    let arriving = run("a message arrives", &mut |app, frame| {
        now += 1_000;
        let m = message(messages + frame, people);
        app.handle(now, Input::Event(Box::new(v1::Event { seq: 0, body: Some(Body::MessageCreated(m)) })));
        while app.poll_action().is_some() {}
    })?;
    let scrolling = run("scrolling back a line", &mut |app, _| {
        app.handle(now, Input::Scroll(1));
        // Older pages are not answered: the window stays what was loaded.
        while app.poll_action().is_some() {}
    })?;
    let summary = json!({
        "bench": "render",
        "width": width,
        "height": height,
        "messages_fed": messages,
        "messages_held": app.held_messages(),
        "rss_kib_before": before,
        "rss_kib_loaded": loaded,
        "frames": [idle, arriving, scrolling],
    });
    if json_out {
        println!("{summary}");
    } else {
        println!(
            "render {width}x{height}: {messages} messages fed, {} held; RSS {before} KiB -> {loaded} KiB",
            app.held_messages()
        );
        for f in summary["frames"].as_array().into_iter().flatten() {
            println!(
                "  {:<24} p50 {:>8.1} us   p99 {:>8.1} us   max {:>8.1} us",
                f["case"].as_str().unwrap_or(""),
                f["p50_us"].as_f64().unwrap_or(0.0),
                f["p99_us"].as_f64().unwrap_or(0.0),
                f["max_us"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
