//! What the hub sends a session: typed messages, encoded at most once.
//!
//! An in-process host (the telnet gateway) reads the message as it is; a
//! network edge asks for [`Encoded::bytes`], which encodes on first use and
//! is then shared by every recipient — an event going to a thousand
//! sessions is encoded once. Framing (length prefixes, each recipient's
//! `seq`) is the edge's.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use kith_proto::v1;
use prost::Message;

/// A message with its encoded length known and its bytes made on demand.
#[derive(Debug, Clone)]
pub struct Encoded<M> {
    message: M,
    /// `message.encoded_len()`, computed once: the outbox counts it when
    /// the frame is queued and again when it is written.
    len: usize,
    bytes: OnceLock<Bytes>,
}

impl<M: Message> Encoded<M> {
    pub fn new(message: M) -> Self {
        let len = message.encoded_len();
        Encoded { message, len, bytes: OnceLock::new() }
    }

    pub fn message(&self) -> &M {
        &self.message
    }

    pub fn into_message(self) -> M {
        self.message
    }

    /// The encoded length, without encoding.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message encodes to nothing (all fields default).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The protobuf encoding, made on the first call and shared after.
    pub fn bytes(&self) -> &Bytes {
        self.bytes.get_or_init(|| {
            let mut buf = Vec::with_capacity(self.len);
            self.message.encode_raw(&mut buf);
            Bytes::from(buf)
        })
    }
}

impl<M: PartialEq> PartialEq for Encoded<M> {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

/// One thing for one session.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A reply or an error, for this session alone.
    Message(Box<Encoded<v1::ServerMessage>>),
    /// An event: `seq` is this recipient's; the event (with `seq` 0, so
    /// omitted from its encoding) is shared by every recipient.
    Event { seq: u64, event: Arc<Encoded<v1::Event>> },
}

impl Outgoing {
    pub fn message(message: v1::ServerMessage) -> Self {
        Outgoing::Message(Box::new(Encoded::new(message)))
    }

    /// An event to share among recipients.
    pub fn event(body: v1::event::Body) -> Arc<Encoded<v1::Event>> {
        Arc::new(Encoded::new(v1::Event { seq: 0, body: Some(body) }))
    }

    /// The message as a struct, for an in-process host: an event gets its
    /// recipient's `seq`.
    pub fn into_server_message(self) -> v1::ServerMessage {
        match self {
            Outgoing::Message(m) => m.into_message(),
            Outgoing::Event { seq, event } => v1::ServerMessage {
                kind: Some(v1::server_message::Kind::Event(v1::Event { seq, ..event.message().clone() })),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_encodes_once_and_reads_as_sent() {
        let event = Outgoing::event(v1::event::Body::MessageDeleted(v1::MessageDeleted {
            channel_id: 5,
            message_id: 9,
        }));
        let first = event.bytes().clone();
        assert_eq!(first.len(), event.len());
        // The same allocation: encoded once, shared.
        assert_eq!(event.bytes().as_ptr(), first.as_ptr());
        assert_eq!(first, event.message().encode_to_vec());
        let read = Outgoing::Event { seq: 7, event }.into_server_message();
        match read.kind {
            Some(v1::server_message::Kind::Event(e)) => assert_eq!(e.seq, 7),
            other => panic!("{other:?}"),
        }
    }
}
