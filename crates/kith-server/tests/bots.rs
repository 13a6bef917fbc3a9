//! Calls to a bot under load, against a real server: a thousand invocations
//! at once are bounded at the bot (the rest told to wait), and with retries
//! every one is answered exactly once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use kith_client::proto::{self as v1, client_message::Request, event::Body};
use kith_server::Limits;

fn echo() -> v1::Command {
    v1::Command {
        bot_id: 0,
        name: "echo".into(),
        description: String::new(),
        options: vec![v1::CommandOption {
            name: "text".into(),
            description: String::new(),
            r#type: v1::OptionType::String as i32,
            required: true,
        }],
    }
}

fn invoke(channel_id: u64, bot_id: u64, i: usize) -> Request {
    Request::InvokeCommand(v1::InvokeCommandRequest {
        channel_id,
        bot_id,
        name: "echo".into(),
        options: vec![v1::OptionValue {
            name: "text".into(),
            value: Some(v1::option_value::Value::String(format!("call {i}"))),
        }],
    })
}

#[tokio::test]
async fn a_thousand_calls_at_once_are_bounded_at_the_bot_and_none_is_lost() {
    let server = TestServer::start_with(|c| c.limits = Limits::unlimited()).await;
    let (owner, _) = server.owner("olive").await;
    let community = owner.create_community("Family").await.unwrap();
    let channel = community.channels[0].id;
    let made = owner.create_bot(community.id, "echo-bot").await.unwrap();
    let bot_id = made.bot.unwrap().id;
    let bot = Arc::new(server.client().await);
    bot.authenticate(&made.token).await.unwrap();
    bot.register_commands(vec![echo()]).await.unwrap();

    // The bot holds every call until told, then answers each once.
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let given = {
        let bot = bot.clone();
        tokio::spawn(async move {
            let mut given = Vec::new();
            let mut held = Vec::new();
            let mut release = release;
            loop {
                tokio::select! {
                    event = bot.next_event() => {
                        let Some(v1::Event { body: Some(Body::Call(call)), .. }) = event else { continue };
                        given.push(call.call_id);
                        if *release.borrow() {
                            answer(&bot, call.call_id).await;
                        } else {
                            held.push(call.call_id);
                        }
                    }
                    changed = release.changed() => {
                        if changed.is_err() { break }
                        for id in held.drain(..) { answer(&bot, id).await; }
                    }
                }
                if given.len() == 1000 && held.is_empty() {
                    break;
                }
            }
            given
        })
    };

    // A thousand at once, pipelined on one connection.
    let mut answers = Vec::new();
    for i in 0..1000 {
        answers.push(owner.submit(invoke(channel, bot_id, i)).await.unwrap());
    }
    let mut waiting = Vec::new();
    let mut started = 0;
    for (i, a) in answers.into_iter().enumerate() {
        match a.answer().await {
            Ok(v1::reply::Result::CallStarted(_)) => started += 1,
            Err(e) if e.code() == Some(v1::ErrorCode::RateLimited) => waiting.push(i),
            other => panic!("call {i}: {other:?}"),
        }
    }
    assert_eq!(started, kith_core::hub::MAX_CALLS_PER_BOT, "the bot holds at most 100 unanswered");
    assert_eq!(waiting.len(), 1000 - started, "the rest are told to wait, not dropped");

    // The bot answers; the refused ones are asked again until they go.
    release_tx.send(true).unwrap();
    while let Some(i) = waiting.pop() {
        match owner.request(invoke(channel, bot_id, i)).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(v1::ErrorCode::RateLimited) => {
                waiting.push(i);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("call {i}: {e}"),
        }
    }
    let mut finished = HashSet::new();
    while finished.len() < 1000 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), owner.next_event())
            .await
            .expect("every call is answered")
            .expect("the connection stays");
        if let Some(Body::CallUpdate(u)) = event.body {
            assert!(u.r#final && u.error.is_empty(), "{u:?}");
            assert!(finished.insert(u.call_id), "answered once");
        }
    }
    let given: HashSet<u64> = given.await.unwrap().into_iter().collect();
    assert_eq!(given, finished, "every call the bot was given was answered, and only those");
}

async fn answer(bot: &kith_client::Client, call_id: u64) {
    let answer = v1::AnswerCallRequest { call_id, text: "echo".into(), r#final: true, ..Default::default() };
    bot.answer_call(answer).await.unwrap();
}
