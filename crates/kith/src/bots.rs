//! `kith bot` (making bots and their tokens) and `kith run` (invoking a
//! bot's slash command from the shell, its answers printed as they come).

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use kith_client::proto as v1;
use serde::Serialize;

use crate::commands::{Ctx, find_channel, find_community, session};
use crate::output::{print_json, sanitize};

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Make a bot in a community (needs manage_bots) and print its token,
    /// once: `kith bot create Family weather`.
    Create {
        community: String,
        name: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Replace a bot's token: the old one stops working and the bot is
    /// disconnected.
    Token {
        community: String,
        name: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// The community's bots and the slash commands they offer.
    List {
        community: String,
        #[command(flatten)]
        json: crate::Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Make an incoming webhook for a channel: a bot whose token is in a
    /// URL; an HTTP POST of `{"content": "…"}` there posts as it.
    Create {
        /// `Community/channel`.
        channel: String,
        /// The bot's name [default: CHANNEL-hook].
        name: Option<String>,
        #[command(flatten)]
        json: crate::Json,
    },
}

pub async fn webhook(ctx: Ctx, command: WebhookCommand) -> Result<()> {
    let WebhookCommand::Create { channel, name, json } = command;
    let (client, ready, profile) = session(&ctx).await?;
    let (c, ch) = find_channel(&ready, &channel)?;
    let name = name.unwrap_or_else(|| format!("{}-hook", ch.name));
    let made = client.create_bot(c.id, &name).await?;
    client.close().await;
    // HTTPS is on the same port number as QUIC, over TCP.
    let url = format!("https://{}/hooks/{}/{}", profile.server, ch.id, made.token);
    if json.json {
        print_json(&serde_json::json!({"bot": name, "url": url}));
    } else {
        println!("{url}");
        eprintln!(
            "kith: POST JSON there to post in {} as {} (keep the URL secret), e.g.\n      \
             curl -H 'Content-Type: application/json' -d '{{\"content\": \"hello\"}}' {url}\n      \
             `kith bot token {} {}` replaces it (the old URL stops working)",
            sanitize(&channel),
            sanitize(&name),
            sanitize(&c.name),
            sanitize(&name),
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct TokenJson<'a> {
    bot: &'a str,
    bot_id: String,
    token: &'a str,
}

#[derive(Debug, Serialize)]
struct CommandJson {
    bot: String,
    bot_id: String,
    name: String,
    usage: String,
    description: String,
}

pub async fn bot(ctx: Ctx, command: BotCommand) -> Result<()> {
    let (client, ready, profile) = session(&ctx).await?;
    match command {
        BotCommand::Create { community, name, json } => {
            let c = find_community(&ready, &community)?;
            let t = client.create_bot(c.id, &name).await?;
            print_token(&t, &profile.server, json.json);
        }
        BotCommand::Token { community, name, json } => {
            let c = find_community(&ready, &community)?;
            let bot = find_bot(c, &name)?;
            let t = client.rotate_bot_token(c.id, bot.id).await?;
            print_token(&t, &profile.server, json.json);
        }
        BotCommand::List { community, json } => {
            let c = find_community(&ready, &community)?;
            for m in &c.members {
                let Some(u) = m.user.as_ref().filter(|u| u.bot) else { continue };
                let offered: Vec<&v1::Command> = c.commands.iter().filter(|x| x.bot_id == u.id).collect();
                if json.json {
                    for x in offered {
                        print_json(&CommandJson {
                            bot: u.username.clone(),
                            bot_id: u.id.to_string(),
                            name: x.name.clone(),
                            usage: kith_proto::commands::usage(x),
                            description: x.description.clone(),
                        });
                    }
                    continue;
                }
                println!("{} [bot]", sanitize(&u.username));
                if offered.is_empty() {
                    println!("    (no commands yet)");
                }
                for x in offered {
                    println!(
                        "    {}  {}",
                        sanitize(&kith_proto::commands::usage(x)),
                        sanitize(&x.description)
                    );
                }
            }
        }
    }
    client.close().await;
    Ok(())
}

fn find_bot<'a>(c: &'a v1::Community, name: &str) -> Result<&'a v1::User> {
    c.members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .find(|u| u.bot && u.username.eq_ignore_ascii_case(name.trim_start_matches('@')))
        .with_context(|| format!("{} has no bot called {:?}", sanitize(&c.name), sanitize(name)))
}

fn print_token(t: &v1::BotToken, server: &str, json: bool) {
    let bot = t.bot.clone().unwrap_or_default();
    if json {
        print_json(&TokenJson { bot: &bot.username, bot_id: bot.id.to_string(), token: &t.token });
        return;
    }
    println!("{}", t.token);
    eprintln!(
        "kith: the token of bot {name} (shown once; keep it secret). The bot signs in with it, e.g.\n      \
         kith --profile {name} login {name} --server {server} --token-stdin",
        name = sanitize(&bot.username),
    );
}

#[derive(Debug, Serialize)]
struct UpdateJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    #[serde(rename = "final")]
    last: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

/// `kith run Family/general /weather city=Paris`: invokes the command,
/// prints its progress on stderr as it comes and its answer on stdout
/// (a public answer is the bot's message in the channel: its text, and its
/// id on stderr). A pipe the bot opens to the invoker meanwhile (a log, a
/// file) goes to stdout as it streams. Fails with the bot's error, or if
/// it does not answer.
pub async fn run(
    ctx: Ctx,
    channel: &str,
    command: &str,
    words: &[String],
    bot: Option<&str>,
    json: bool,
) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (c, ch) = find_channel(&ready, channel)?;
    let name = command.trim_start_matches('/').to_ascii_lowercase();
    let offered: Vec<&v1::Command> = c
        .commands
        .iter()
        .filter(|x| x.name == name)
        .filter(|x| bot.is_none_or(|b| bot_name(c, x.bot_id).eq_ignore_ascii_case(b.trim_start_matches('@'))))
        .collect();
    let spec = match offered[..] {
        [one] => one,
        [] => bail!(
            "no bot in {} offers /{}{}",
            sanitize(&c.name),
            sanitize(&name),
            if c.commands.is_empty() {
                String::new()
            } else {
                format!(
                    "; offered: {}",
                    c.commands.iter().map(|x| format!("/{}", x.name)).collect::<Vec<_>>().join(", ")
                )
            }
        ),
        _ => bail!(
            "several bots offer /{}: say which with --bot ({})",
            sanitize(&name),
            offered.iter().map(|x| bot_name(c, x.bot_id)).collect::<Vec<_>>().join(", ")
        ),
    };
    let options = kith_proto::commands::values(spec, words).map_err(|e| anyhow::anyhow!(sanitize(&e)))?;
    let call = client.invoke(ch.id, spec.bot_id, &spec.name, options).await?;
    let mut posted: Vec<v1::Message> = Vec::new();
    let result = loop {
        let Some(event) = client.next_event().await else {
            bail!("the connection ended before the answer came: {}", sanitize(&client.closed().await));
        };
        let update = match event.body {
            // A bot may answer with a stream: a pipe from it, taken onto
            // stdout while the call lasts.
            Some(v1::event::Body::PipeOffered(p)) if p.from.as_ref().is_some_and(|u| u.id == spec.bot_id) => {
                let taken = client.accept_pipe(p.pipe_id).await?;
                client.pipe_receive(&taken.key, tokio::io::stdout(), |_| {}).await?;
                continue;
            }
            Some(v1::event::Body::MessageCreated(m)) => {
                posted.push(m);
                // Only the newest few can be the answer.
                if posted.len() > 16 {
                    posted.remove(0);
                }
                continue;
            }
            Some(v1::event::Body::CallUpdate(u)) if u.call_id == call => u,
            _ => continue,
        };
        if json {
            let message_id = (update.message_id != 0).then(|| update.message_id.to_string());
            print_json(&UpdateJson {
                kind: "call_update",
                text: &update.text,
                last: update.r#final,
                error: &update.error,
                message_id,
            });
        }
        if !update.r#final {
            if !json {
                eprintln!("… {}", sanitize(&update.text));
            }
            continue;
        }
        break update;
    };
    client.close().await;
    if !result.error.is_empty() {
        bail!("{}", sanitize(&result.error));
    }
    if json {
        return Ok(());
    }
    if result.message_id != 0 {
        if let Some(m) = posted.iter().find(|m| m.id == result.message_id) {
            println!("{}", sanitize(&m.body));
        }
        eprintln!("kith: posted in {} as message {}", sanitize(channel), result.message_id);
    } else {
        println!("{}", sanitize(&result.text));
    }
    Ok(())
}

fn bot_name(c: &v1::Community, id: u64) -> String {
    c.members
        .iter()
        .filter_map(|m| m.user.as_ref())
        .find(|u| u.id == id)
        .map_or_else(|| id.to_string(), |u| sanitize(&u.username))
}
