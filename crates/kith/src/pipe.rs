//! `kith pipe`: bytes from one person to another through the server, never
//! stored. `kith pipe @bob < photos.tar` offers them; `kith pipe --accept
//! alice > photos.tar` takes them. Either side may start first: an offer
//! waits a minute for its taker, and a taker waits for the offer.

use anyhow::{Result, bail};
use kith_client::proto as v1;

use crate::commands::{Ctx, session};
use crate::output::sanitize;

pub async fn pipe(ctx: Ctx, to: Option<String>, accept: Option<String>, name: Option<String>) -> Result<()> {
    let (client, ready, profile) = session(&ctx).await?;
    let result = match (to, accept) {
        (Some(to), None) => {
            let user = crate::social::find_user(&ready, &to)?.clone();
            // The size, when stdin is a file (`< photos.tar`); a pipe's is unknown.
            let size = std::fs::metadata("/dev/stdin").ok().filter(|m| m.is_file()).map_or(0, |m| m.len());
            let offer = client.open_pipe(user.id, name.as_deref().unwrap_or(""), size).await?;
            eprintln!(
                "kith: waiting for {who} to take it: `kith pipe --accept {me}` on their side",
                who = sanitize(&user.username),
                me = sanitize(&profile.username),
            );
            let bar = crate::output::progress(name.as_deref().unwrap_or("pipe"));
            if size > 0 {
                bar.set_length(size);
            }
            let sent = client.pipe_send(&offer.key, tokio::io::stdin(), |n| bar.set_position(n)).await;
            let sent = sent.inspect_err(|_| bar.abandon())?;
            bar.finish_and_clear();
            eprintln!("kith: {} sent to {}", kith_tui::text::size(sent), sanitize(&user.username));
            Ok(())
        }
        (None, Some(from)) => {
            let from = from.trim_start_matches('@').to_owned();
            eprintln!("kith: waiting for {} to pipe something to you", sanitize(&from));
            let offer = loop {
                let Some(event) = client.next_event().await else {
                    bail!("the connection ended: {}", sanitize(&client.closed().await));
                };
                if let Some(v1::event::Body::PipeOffered(o)) = event.body
                    && o.from.as_ref().is_some_and(|u| u.username.eq_ignore_ascii_case(&from))
                {
                    break o;
                }
            };
            let taken = client.accept_pipe(offer.pipe_id).await?;
            let bar = crate::output::progress(&offer.name);
            if offer.size > 0 {
                bar.set_length(offer.size);
            }
            let got = client.pipe_receive(&taken.key, tokio::io::stdout(), |n| bar.set_position(n)).await;
            let got = got.inspect_err(|_| bar.abandon())?;
            bar.finish_and_clear();
            eprintln!("kith: {} received from {}", kith_tui::text::size(got), sanitize(&from));
            Ok(())
        }
        _ => Err(anyhow::anyhow!(
            "say whom to pipe to (`kith pipe @bob < FILE`) or whose pipe to take (`kith pipe --accept alice > FILE`)"
        )),
    };
    client.close().await;
    result
}
