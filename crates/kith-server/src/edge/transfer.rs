//! Transfer streams: one file each way per stream, beside the control
//! stream (proto/kith.proto, "Transfer streams"). IO only: the hub granted
//! the key ([`crate::files::Files::grant`]), the file store keeps the bytes.

use std::sync::Arc;
use std::time::Duration;

use kith_core::{Input, SessionId};
use kith_proto::MAX_TRANSFER_FRAME;
use kith_proto::v1::{ErrorCode, TransferRequest, TransferStatus};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use super::Edge;
use crate::actor::ToHub;
use crate::files::Files;

/// How long the request frame may take after the stream opens.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long an upload may go without a byte before the stream is dropped
/// (what was received stays, to be continued).
const IDLE: Duration = Duration::from_secs(60);
/// Bytes moved per read.
const CHUNK: usize = 256 * 1024;

/// Serves one transfer stream of `session` to its end.
pub async fn serve(
    edge: &Edge,
    files: &Arc<Files>,
    session: SessionId,
    mut recv: quinn::RecvStream,
    mut send: quinn::SendStream,
) {
    let request = match tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut recv)).await {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => return refuse(&mut send, ErrorCode::Protocol, why).await,
        Err(_) => {
            return refuse(&mut send, ErrorCode::Protocol, "no transfer request within 10 s".into()).await;
        }
    };
    if let Some((pipe, sending)) = files.pipe_key(&request.key, session) {
        return edge.pipes.join(pipe, sending, super::pipes::End { recv, send }).await;
    }
    let outcome = if let Some(up) = files.upload_key(&request.key, Some(session)) {
        upload(edge, files, &request.key, up, &mut recv, &mut send).await
    } else if let Some(message) = files.download_key(&request.key, session, crate::actor::now()) {
        download(edge, files, message, &request, &mut send).await
    } else {
        Err((
            ErrorCode::NotFound,
            "unknown or expired key (keys work on the connection that asked for them)".into(),
        ))
    };
    match outcome {
        Ok(()) => {
            let _ = send.shutdown().await;
        }
        Err((code, why)) => refuse(&mut send, code, why).await,
    }
}

pub(super) type Refusal = (ErrorCode, String);

async fn read_request(recv: &mut (impl AsyncRead + Unpin)) -> Result<TransferRequest, String> {
    let len = recv.read_u32().await.map_err(|e| format!("reading the transfer request: {e}"))? as usize;
    if len > MAX_TRANSFER_FRAME {
        return Err(format!("a transfer request of {len} bytes is over the {MAX_TRANSFER_FRAME}-byte limit"));
    }
    let mut body = vec![0; len];
    recv.read_exact(&mut body).await.map_err(|e| format!("reading the transfer request: {e}"))?;
    TransferRequest::decode(&body[..]).map_err(|e| format!("undecodable transfer request: {e}"))
}

async fn write_status(send: &mut (impl AsyncWrite + Unpin), status: &TransferStatus) -> std::io::Result<()> {
    send.write_all(&kith_proto::encode_frame(status)).await
}

async fn refuse(send: &mut (impl AsyncWrite + Unpin), code: ErrorCode, reason: String) {
    let status = TransferStatus { code: code as i32, reason, ..Default::default() };
    let _ = write_status(send, &status).await;
    let _ = send.shutdown().await;
}

fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "{what}");
    (ErrorCode::Internal, format!("the server failed {what}; try again"))
}

async fn upload(
    edge: &Edge,
    files: &Arc<Files>,
    key: &str,
    up: crate::files::UploadKey,
    recv: &mut (impl AsyncRead + Unpin),
    send: &mut (impl AsyncWrite + Unpin),
) -> Result<(), Refusal> {
    let done = |size| TransferStatus { offset: size, size, complete: true, ..Default::default() };
    let mut receiving = match open_upload(edge, files, key, up).await? {
        Opened::Stored => {
            return write_status(send, &done(up.size)).await.map_err(|e| internal("answering", e));
        }
        Opened::Receiving(r) => r,
    };
    let start = TransferStatus { offset: receiving.have, size: up.size, ..Default::default() };
    write_status(send, &start).await.map_err(|e| internal("answering", e))?;
    receiving.receive(recv).await?;
    receiving.finish(edge, files, key).await?;
    write_status(send, &done(up.size)).await.map_err(|e| internal("answering", e))
}

/// Where an upload stands once its key is presented.
pub(super) enum Opened {
    /// The file is stored already (by anyone, as it is): nothing to send.
    Stored,
    Receiving(Receiving),
}

/// An upload being received: its partial file, and how much is in it.
pub(super) struct Receiving {
    /// Held until the upload ends: one writer per partial file.
    _turn: tokio::sync::OwnedMutexGuard<()>,
    file: tokio::fs::File,
    partial: std::path::PathBuf,
    pub have: u64,
    up: crate::files::UploadKey,
}

/// Opens the upload `key` allows: says so to the hub at once if the file
/// is stored already, or opens its partial file (what an earlier, cut-off
/// upload of the same file by the same account left) to append to.
pub(super) async fn open_upload(
    edge: &Edge,
    files: &Arc<Files>,
    key: &str,
    up: crate::files::UploadKey,
) -> Result<Opened, Refusal> {
    let partial = files.partial(up.user, &up.blake3);
    // Another upload of this file by this account goes first; it may
    // leave the file stored.
    let turn = files.receive_turn(&partial).await;
    if files.blob(&up.blake3).exists() {
        let blake3 = up.blake3;
        let f = files.clone();
        let kept = tokio::task::spawn_blocking(move || f.describe(&blake3))
            .await
            .map_err(|e| internal("checking a stored file", e))?
            .map_err(|e| internal("checking a stored file", e))?;
        stored(edge, key, kept).await?;
        return Ok(Opened::Stored);
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .map_err(|e| internal("opening an upload", e))?;
    let mut have = file.metadata().await.map_err(|e| internal("opening an upload", e))?.len();
    if have > up.size {
        file.set_len(0).await.map_err(|e| internal("restarting an upload", e))?;
        have = 0;
    }
    files.room_for(up.size - have).map_err(|why| (ErrorCode::TooLarge, why))?;
    Ok(Opened::Receiving(Receiving { _turn: turn, file, partial, have, up }))
}

impl Receiving {
    /// Appends what `recv` brings until the file is whole, the sender
    /// stops, or it goes quiet for a minute. More than declared is refused
    /// (and the partial file emptied).
    pub(super) async fn receive(&mut self, recv: &mut (impl AsyncRead + Unpin)) -> Result<(), Refusal> {
        let size = self.up.size;
        let mut buf = vec![0u8; CHUNK];
        while self.have < size {
            let n = match tokio::time::timeout(IDLE, recv.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            };
            let take = n.min((size - self.have) as usize);
            self.file.write_all(&buf[..take]).await.map_err(|e| internal("writing an upload", e))?;
            self.have += take as u64;
            if take < n {
                let _ = self.file.set_len(0).await;
                return Err((
                    ErrorCode::Invalid,
                    format!("more than the {size} bytes declared; send the file again"),
                ));
            }
        }
        self.file.flush().await.map_err(|e| internal("writing an upload", e))
    }

    /// A whole file is checked, stored and reported to the hub; a partial
    /// one is kept, to be continued by the next upload of the same file.
    pub(super) async fn finish(self, edge: &Edge, files: &Arc<Files>, key: &str) -> Result<(), Refusal> {
        if self.have < self.up.size {
            self.file.sync_data().await.map_err(|e| internal("writing an upload", e))?;
            return Err((
                ErrorCode::Invalid,
                format!(
                    "the upload stopped at {} of {} bytes; upload the same file again to continue",
                    self.have, self.up.size
                ),
            ));
        }
        drop(self.file);
        let _turn = files
            .commits
            .acquire()
            .await
            .map_err(|_| (ErrorCode::Internal, "the server is stopping".into()))?;
        let (f, blake3, partial) = (files.clone(), self.up.blake3, self.partial);
        let kept = tokio::task::spawn_blocking(move || f.commit(&partial, &blake3))
            .await
            .map_err(|e| internal("storing an upload", e))?
            .map_err(|why| (ErrorCode::Invalid, why))?;
        edge.metrics.uploads.inc();
        edge.metrics.upload_bytes.inc_by(kept.size);
        stored(edge, key, kept).await
    }
}

/// Tells the hub before the client hears it: the client's next request
/// (a message naming the upload) queues behind this.
async fn stored(edge: &Edge, key: &str, kept: crate::files::Stored) -> Result<(), Refusal> {
    let crate::files::Stored { content_type, blake3, size, width, height } = kept;
    let input = Input::UploadStored { key: key.to_owned(), content_type, blake3, size, width, height };
    edge.hub
        .send(ToHub::Input(input))
        .await
        .map_err(|_| (ErrorCode::Internal, "the server is stopping".into()))
}

async fn download(
    edge: &Edge,
    files: &Files,
    message: kith_core::MessageId,
    request: &TransferRequest,
    send: &mut (impl AsyncWrite + Unpin),
) -> Result<(), Refusal> {
    let attachments = edge.readers.run(move |db| db.attachments(message)).await.map_err(|e| match e {
        crate::store::ReadFailed::Busy => (ErrorCode::RateLimited, e.to_string()),
        crate::store::ReadFailed::Store(e) => internal("reading attachments", e),
    })?;
    let Some(a) = attachments.get(request.index as usize) else {
        return Err((ErrorCode::NotFound, "no such attachment".into()));
    };
    let (path, content_type) = files.served(a, request.preview);
    let mut file = tokio::fs::File::open(path).await.map_err(|e| internal("opening a file", e))?;
    let size = file.metadata().await.map_err(|e| internal("reading a file", e))?.len();
    if request.offset > size {
        return Err((
            ErrorCode::Invalid,
            format!("offset {} is past the end ({size} bytes)", request.offset),
        ));
    }
    file.seek(std::io::SeekFrom::Start(request.offset)).await.map_err(|e| internal("reading a file", e))?;
    let status = TransferStatus {
        offset: request.offset,
        size,
        name: a.name.clone(),
        content_type,
        ..Default::default()
    };
    write_status(send, &status).await.map_err(|e| internal("answering", e))?;
    // A peer that stops reading stalls only this stream: QUIC flow control.
    // Big reads: each read of a tokio file is a trip to a blocking thread.
    let mut file = tokio::io::BufReader::with_capacity(CHUNK, file.take(size - request.offset));
    let _ = tokio::io::copy_buf(&mut file, send).await;
    Ok(())
}
