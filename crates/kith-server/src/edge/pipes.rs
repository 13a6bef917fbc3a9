//! The edge's half of pipes (`kith_core::hub::pipes`): each end presents
//! its key on a transfer stream; the first to come waits (a minute at most)
//! for the other, and then the sender's stream is copied into the
//! receiver's. Nothing is stored and little is held: the copy reads as the
//! receiver's stream takes, so QUIC's flow control makes a sender whose
//! receiver stops reading wait, instead of the server buffering for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kith_proto::v1::{ErrorCode, TransferStatus};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

/// How long one end waits for the other.
pub const MEET_WITHIN: Duration = Duration::from_secs(60);
/// Bytes moved per read.
const CHUNK: usize = 256 * 1024;

/// One end's streams.
#[derive(Debug)]
pub struct End {
    pub recv: quinn::RecvStream,
    pub send: quinn::SendStream,
}

/// Ends waiting for their other half, by pipe.
#[derive(Default)]
pub struct Pipes {
    waiting: Mutex<HashMap<u64, (bool, oneshot::Sender<End>)>>,
}

impl std::fmt::Debug for Pipes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.waiting.lock().map(|w| w.len()).unwrap_or(0);
        f.debug_struct("Pipes").field("waiting", &n).finish()
    }
}

async fn status(send: &mut quinn::SendStream, status: &TransferStatus) -> std::io::Result<()> {
    send.write_all(&kith_proto::encode_frame(status)).await.map_err(std::io::Error::other)
}

impl Pipes {
    /// Joins this end of `pipe` (`sending`: the sender's) with the other,
    /// and moves the bytes; returns when the pipe is done.
    pub async fn join(&self, pipe: u64, sending: bool, mut mine: End) {
        let waiting = {
            let mut w = self.waiting.lock().expect("pipes lock");
            match w.remove(&pipe) {
                Some((other_sending, tx)) if other_sending != sending => Err(tx),
                Some(same) => {
                    // Both ends claim the same side: only a second use of a
                    // key could do that, and keys are used once.
                    w.insert(pipe, same);
                    Ok(None)
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    w.insert(pipe, (sending, tx));
                    Ok(Some(rx))
                }
            }
        };
        let other = match waiting {
            // The other end is here: hand it this one; it moves the bytes.
            Err(tx) => {
                if let Err(back) = tx.send(mine) {
                    // It gave up a moment ago.
                    mine = back;
                    refuse(&mut mine.send, "the other end stopped waiting").await;
                }
                return;
            }
            Ok(None) => return refuse(&mut mine.send, "this end of the pipe is already joined").await,
            Ok(Some(rx)) => match tokio::time::timeout(MEET_WITHIN, rx).await {
                Ok(Ok(other)) => other,
                _ => {
                    self.waiting.lock().expect("pipes lock").remove(&pipe);
                    let why = if sending {
                        "nobody took the pipe within a minute (the other side runs `kith pipe --accept YOU`)"
                    } else {
                        "the sender did not come within a minute"
                    };
                    return refuse(&mut mine.send, why).await;
                }
            },
        };
        let (mut from, mut to) = if sending { (mine, other) } else { (other, mine) };
        let begin = TransferStatus { offset: 0, ..Default::default() };
        if status(&mut from.send, &begin).await.is_err() || status(&mut to.send, &begin).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; CHUNK];
        let mut moved = 0u64;
        let outcome: Result<(), String> = loop {
            match from.recv.read(&mut buf).await {
                Ok(None) => break Ok(()),
                Ok(Some(n)) => {
                    if let Err(e) = to.send.write_all(&buf[..n]).await {
                        break Err(format!("the receiver went away ({e})"));
                    }
                    moved += n as u64;
                }
                Err(e) => break Err(format!("the sender went away ({e})")),
            }
        };
        match outcome {
            Ok(()) => {
                let _ = to.send.finish();
                let done =
                    TransferStatus { offset: moved, size: moved, complete: true, ..Default::default() };
                let _ = status(&mut from.send, &done).await;
                let _ = from.send.finish();
            }
            Err(why) => {
                // The receiver must not take a cut pipe for a whole one.
                let _ = to.send.reset(1u32.into());
                let _ = from.recv.stop(1u32.into());
                refuse(&mut from.send, &why).await;
            }
        }
    }
}

async fn refuse(send: &mut quinn::SendStream, why: &str) {
    let s = TransferStatus { code: ErrorCode::NotFound as i32, reason: why.to_owned(), ..Default::default() };
    let _ = status(send, &s).await;
    let _ = send.finish();
    let _ = send.flush().await;
}
