//! kith-core: the hub and the domain it governs.
//!
//! The hub ([`Hub`]) is a deterministic state machine: inputs with the time
//! passed in, outputs drained by the caller. It does no IO, reads no clock and
//! spawns nothing; this crate does not depend on an async runtime, a socket
//! library or a database, so the compiler holds that line.
//!
//! Wire messages become domain types once, at the edge ([`request::parse`]);
//! past that point the types carry their own validity.

pub mod commands;
pub mod hub;
pub mod ids;
pub mod permissions;
pub mod rate;
pub mod request;
pub mod store;
pub mod text;

pub use hub::{CommunityCreation, Encoded, Grant, Hub, HubConfig, Input, Outgoing, Output, Read, VoiceRoute};
pub use ids::{
    AuditId, ChannelId, CommunityId, IdGen, MessageId, RoleId, SessionId, Timestamp, TokenId, UserId,
};
pub use permissions::Permissions;
