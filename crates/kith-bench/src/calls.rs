//! `kith-bench calls`: a bot answering slash commands over loopback QUIC.
//! Reports the round trip a person sees (invoke → the bot's call → its
//! answer → the invoker's update), one call at a time, and how many calls a
//! second one bot serves with many in flight, with the server's CPU per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kith_client::Client;
use kith_client::proto::{self as v1, event::Body, option_value::Value};
use serde_json::json;

use crate::server::{ServerProcess, histogram, quantiles_ms, sessions, world};

/// The bot: answers every `/echo` with its text, final and for the invoker
/// alone, each answer in its own task so calls overlap.
async fn serve_echo(bot: Arc<Client>) {
    while let Some(event) = bot.next_event().await {
        let Some(Body::Call(call)) = event.body else { continue };
        let text = match call.options.first().and_then(|o| o.value.clone()) {
            Some(Value::String(t)) => t,
            _ => String::new(),
        };
        let bot = bot.clone();
        tokio::spawn(async move {
            let answer =
                v1::AnswerCallRequest { call_id: call.call_id, text, r#final: true, ..Default::default() };
            let _ = bot.answer_call(answer).await;
        });
    }
}

/// Waits for the final update of any call; returns its id.
async fn next_answer(client: &Client) -> Result<u64> {
    loop {
        match client.next_event().await {
            Some(v1::Event { body: Some(Body::CallUpdate(u)), .. }) if u.r#final => {
                if !u.error.is_empty() {
                    bail!("a call failed: {}", u.error);
                }
                return Ok(u.call_id);
            }
            Some(_) => {}
            None => bail!("the invoker's connection ended"),
        }
    }
}

fn text(t: &str) -> Vec<v1::OptionValue> {
    vec![v1::OptionValue { name: "text".into(), value: Some(Value::String(t.into())) }]
}

pub async fn run(calls: usize, in_flight: usize, json_out: bool) -> Result<()> {
    let server = ServerProcess::start("normal")?;
    let w = world(&server, 1, 1).await?;
    let made = w.owner.create_bot(w.community, "bench-bot").await?;
    let (bot, _) = w.connectors[0].connect(&server.addr).await?;
    bot.authenticate(&made.token).await?;
    let echo = v1::Command {
        bot_id: 0,
        name: "echo".into(),
        description: "says it back".into(),
        options: vec![v1::CommandOption {
            name: "text".into(),
            description: String::new(),
            r#type: v1::OptionType::String as i32,
            required: true,
        }],
    };
    bot.register_commands(vec![echo]).await?;
    let bot_id = made.bot.map_or(0, |b| b.id);
    tokio::spawn(serve_echo(Arc::new(bot)));
    let invoker = sessions(&server, &w, 2, 1).await?.pop().expect("one session");
    let _ = invoker.drain_events().await;

    // One at a time: what a person waits.
    let mut rtt = histogram();
    for i in 0..calls {
        let t = Instant::now();
        let id = invoker.invoke(w.general, bot_id, "echo", text(&format!("ping {i}"))).await?;
        while next_answer(&invoker).await? != id {}
        rtt.record(t.elapsed().as_micros() as u64)?;
    }

    // Many at once: what one bot serves (the hub lets 100 wait on a bot).
    let (cpu0, _) = server.usage();
    let t0 = Instant::now();
    let invoker = Arc::new(invoker);
    let mut sent = 0;
    let mut done = 0;
    let mut open = 0;
    while done < calls {
        while open < in_flight && sent < calls {
            let answer = invoker
                .submit(v1::client_message::Request::InvokeCommand(v1::InvokeCommandRequest {
                    channel_id: w.general,
                    bot_id,
                    name: "echo".into(),
                    options: text("load"),
                }))
                .await?;
            // The reply (CallStarted) is not waited for: updates say enough.
            drop(answer);
            sent += 1;
            open += 1;
        }
        tokio::time::timeout(Duration::from_secs(30), next_answer(&invoker)).await??;
        done += 1;
        open -= 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu1, _) = server.usage();
    let per_second = calls as f64 / secs;
    let cpu_us = (cpu1 - cpu0) * 1e6 / calls as f64;
    if json_out {
        let out = json!({
            "calls": calls,
            "round_trip_ms": quantiles_ms(&rtt),
            "in_flight": in_flight,
            "calls_per_s": per_second,
            "server_cpu_us_per_call": cpu_us,
        });
        println!("{out}");
    } else {
        let q = |p| rtt.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "round trip, one call at a time ({calls} calls): p50 {:.2} ms, p99 {:.2} ms",
            q(0.5),
            q(0.99)
        );
        println!(
            "{in_flight} in flight: {per_second:.0} calls/s, server CPU {cpu_us:.0} µs per call (invoke, call, answer, update)"
        );
    }
    Ok(())
}
