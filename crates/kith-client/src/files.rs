//! Attachments: uploading a file and fetching a message's files over
//! transfer streams, each its own QUIC stream beside the control stream
//! (proto/kith.proto, "Transfer streams"), so chat stays responsive during
//! a large transfer.

use std::path::Path;

use kith_proto::MAX_TRANSFER_FRAME;
use kith_proto::v1::{self, client_message::Request, reply::Result as ReplyResult};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{Client, Error};

/// Bytes read from a file or stream at a time.
const CHUNK: usize = 256 * 1024;

fn file_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), reason: e.to_string() }
}

/// BLAKE3 of a whole file, read in a blocking thread.
async fn hash_file(path: &Path) -> Result<[u8; 32], Error> {
    let owned = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&owned)?)?;
        Ok(*hasher.finalize().as_bytes())
    })
    .await
    .map_err(|e| file_error(path, e))?;
    hashed.map_err(|e| file_error(path, e))
}

impl Client {
    /// Uploads the file at `path` to attach in `channel`; returns the key
    /// to name in `SendMessageRequest.uploads` once the server has stored
    /// it. `message_bytes` is what all the message's files come to (0 if
    /// not known), so that a message too big is refused before any byte is
    /// sent. `progress(sent, total)` is called as bytes go out (a resumed
    /// upload starts where the server's copy ends).
    pub async fn upload(
        &self,
        channel: u64,
        path: &Path,
        message_bytes: u64,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<String, Error> {
        let size = tokio::fs::metadata(path).await.map_err(|e| file_error(path, e))?.len();
        let blake3 = hash_file(path).await?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let create = v1::CreateUploadRequest {
            channel_id: channel,
            name,
            size,
            blake3: blake3.to_vec(),
            message_bytes,
        };
        let ReplyResult::Upload(upload) = self.request(Request::CreateUpload(create)).await? else {
            return Err(Error::Unexpected);
        };
        let (mut send, mut recv) = self.transfer(&upload.key, 0, 0, false).await?;
        let start = read_status(&mut recv).await?;
        if start.complete {
            progress(size, size);
            return Ok(upload.key);
        }
        let mut file = tokio::fs::File::open(path).await.map_err(|e| file_error(path, e))?;
        file.seek(std::io::SeekFrom::Start(start.offset)).await.map_err(|e| file_error(path, e))?;
        let mut sent = start.offset;
        progress(sent, size);
        let mut buf = vec![0u8; CHUNK];
        while sent < size {
            let n = file.read(&mut buf).await.map_err(|e| file_error(path, e))?;
            if n == 0 {
                return Err(file_error(path, "the file got shorter while it was sent"));
            }
            send.write_all(&buf[..n]).await.map_err(|e| Error::Closed(e.to_string()))?;
            sent += n as u64;
            progress(sent, size);
        }
        let _ = send.finish();
        let done = read_status(&mut recv).await?;
        if !done.complete {
            return Err(Error::Unexpected);
        }
        Ok(upload.key)
    }

    /// A key to fetch `message`'s files, and what they are.
    pub async fn open_attachments(&self, channel: u64, message: u64) -> Result<v1::AttachmentAccess, Error> {
        let open = v1::OpenAttachmentsRequest { channel_id: channel, message_id: message };
        match self.request(Request::OpenAttachments(open)).await? {
            ReplyResult::AttachmentAccess(access) => Ok(access),
            _ => Err(Error::Unexpected),
        }
    }

    /// Fetches attachment `index` of what `access` opens into `out`,
    /// checking its BLAKE3; a partial `out` from an earlier try is
    /// continued. `progress(received, total)` as bytes arrive.
    pub async fn download(
        &self,
        access: &v1::AttachmentAccess,
        index: u32,
        out: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), Error> {
        let attachment = access.attachments.get(index as usize).ok_or(Error::Unexpected)?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .await
            .map_err(|e| file_error(out, e))?;
        let mut have = file.metadata().await.map_err(|e| file_error(out, e))?.len();
        if have > attachment.size {
            file.set_len(0).await.map_err(|e| file_error(out, e))?;
            have = 0;
        }
        let (_send, mut recv) = self.transfer(&access.key, index, have, false).await?;
        let status = read_status(&mut recv).await?;
        let size = status.size;
        progress(have, size);
        let mut buf = vec![0u8; CHUNK];
        while have < size {
            let n = recv
                .read(&mut buf)
                .await
                .map_err(|e| Error::Closed(e.to_string()))?
                .ok_or_else(|| Error::Closed(format!("the download ended at {have} of {size} bytes")))?;
            file.write_all(&buf[..n]).await.map_err(|e| file_error(out, e))?;
            have += n as u64;
            progress(have, size);
        }
        file.flush().await.map_err(|e| file_error(out, e))?;
        drop(file);
        if hash_file(out).await?.as_slice() != attachment.blake3.as_slice() {
            // Wrong bytes are worse than none: start over next time.
            let _ = tokio::fs::remove_file(out).await;
            return Err(file_error(out, "the bytes received do not match the attachment's BLAKE3"));
        }
        Ok(())
    }

    /// The preview of picture `index` of what `access` opens (the file
    /// itself if the server made none), in memory: for showing in a chat
    /// view. Refused as [`Error::Unexpected`] past `max` bytes, so that a
    /// hostile server cannot make a viewer hold a huge "preview".
    pub async fn preview(
        &self,
        access: &v1::AttachmentAccess,
        index: u32,
        max: u64,
    ) -> Result<Vec<u8>, Error> {
        let (_send, mut recv) = self.transfer(&access.key, index, 0, true).await?;
        let size = read_status(&mut recv).await?.size;
        if size > max {
            return Err(Error::Unexpected);
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut recv).take(size).read_to_end(&mut bytes).await.map_err(|e| Error::Closed(e.to_string()))?;
        if (bytes.len() as u64) < size {
            return Err(Error::Closed(format!("the preview ended at {} of {size} bytes", bytes.len())));
        }
        Ok(bytes)
    }

    /// Offers `user_id` a pipe; the key sends its bytes once they accept.
    pub async fn open_pipe(&self, user_id: u64, name: &str, size: u64) -> Result<v1::PipeKey, Error> {
        let open = v1::OpenPipeRequest { user_id, name: name.into(), size };
        match self.request(Request::OpenPipe(open)).await? {
            ReplyResult::PipeKey(k) => Ok(k),
            _ => Err(Error::Unexpected),
        }
    }

    /// Takes a pipe offered to this user; the key receives its bytes.
    pub async fn accept_pipe(&self, pipe_id: u64) -> Result<v1::PipeKey, Error> {
        match self.request(Request::AcceptPipe(v1::AcceptPipeRequest { pipe_id })).await? {
            ReplyResult::PipeKey(k) => Ok(k),
            _ => Err(Error::Unexpected),
        }
    }

    /// Sends everything `input` gives through the pipe `key`, once the
    /// receiver has joined (the server says so first), at the receiver's
    /// pace; `progress(sent)` as bytes go. Returns how many went.
    pub async fn pipe_send(
        &self,
        key: &str,
        mut input: impl tokio::io::AsyncRead + Unpin,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, Error> {
        let (mut send, mut recv) = self.transfer(key, 0, 0, false).await?;
        read_status(&mut recv).await?;
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        loop {
            let n = input.read(&mut buf).await.map_err(|e| file_error(Path::new("stdin"), e))?;
            if n == 0 {
                break;
            }
            send.write_all(&buf[..n]).await.map_err(|e| Error::Closed(format!("the pipe was cut: {e}")))?;
            sent += n as u64;
            progress(sent);
        }
        let _ = send.finish();
        let done = read_status(&mut recv).await?;
        if !done.complete || done.size != sent {
            return Err(Error::Closed(format!("the receiver took {} of {sent} bytes", done.size)));
        }
        Ok(sent)
    }

    /// Receives the pipe `key` into `out` until the sender ends it;
    /// `progress(received)` as bytes come. A pipe cut midway is an error,
    /// never a short success.
    pub async fn pipe_receive(
        &self,
        key: &str,
        mut out: impl tokio::io::AsyncWrite + Unpin,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, Error> {
        let (_send, mut recv) = self.transfer(key, 0, 0, false).await?;
        read_status(&mut recv).await?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    out.write_all(&buf[..n]).await.map_err(|e| file_error(Path::new("stdout"), e))?;
                    got += n as u64;
                    progress(got);
                }
                Ok(None) => break,
                Err(e) => return Err(Error::Closed(format!("the pipe was cut after {got} bytes: {e}"))),
            }
        }
        out.flush().await.map_err(|e| file_error(Path::new("stdout"), e))?;
        Ok(got)
    }

    /// Opens a transfer stream and writes its request.
    async fn transfer(
        &self,
        key: &str,
        index: u32,
        offset: u64,
        preview: bool,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), Error> {
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| Error::Closed(e.to_string()))?;
        let request = v1::TransferRequest { key: key.to_owned(), index, offset, preview };
        send.write_all(&kith_proto::encode_frame(&request))
            .await
            .map_err(|e| Error::Closed(e.to_string()))?;
        Ok((send, recv))
    }
}

/// One `TransferStatus` frame; a refusal becomes [`Error::Server`].
async fn read_status(recv: &mut quinn::RecvStream) -> Result<v1::TransferStatus, Error> {
    let closed = |e: std::io::Error| Error::Closed(format!("the transfer stream ended: {e}"));
    let len = recv.read_u32().await.map_err(closed)? as usize;
    if len > MAX_TRANSFER_FRAME {
        return Err(Error::Unexpected);
    }
    let mut body = vec![0; len];
    recv.read_exact(&mut body).await.map_err(|e| Error::Closed(e.to_string()))?;
    let status = v1::TransferStatus::decode(&body[..]).map_err(|_| Error::Unexpected)?;
    if status.code != 0 {
        return Err(Error::Server {
            code: v1::ErrorCode::try_from(status.code).unwrap_or(v1::ErrorCode::Unspecified),
            reason: status.reason,
            retry_after: None,
        });
    }
    Ok(status)
}
