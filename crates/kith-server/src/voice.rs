//! The selective forwarding unit: voice datagrams in, the same datagrams out
//! to the others in the room, never decoded.
//!
//! The hub decides who is in which room and who may speak or hear; it
//! publishes each room's list ([`kith_core::Output::VoiceRoom`]). The actor
//! turns that into one [`Route`] per speaking session and hands it to the
//! session's connection task through a [`RouteSlot`]. The connection task
//! then forwards every packet by reading its route: no message to the hub and
//! no lock shared with other rooms on the per-packet path.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use kith_core::{ChannelId, SessionId, UserId, VoiceRoute};

/// Packets per second a sender may average: a 20 ms codec sends 50, a 10 ms
/// one 100; anything above is a misbehaving or hostile client (Q11).
pub const PACKETS_PER_SECOND: f64 = 100.0;
/// Packets a sender may send at once above that rate (a burst after a
/// stall, or FEC catching up).
pub const PACKET_BURST: f64 = 25.0;

/// Where one speaking session's packets go.
#[derive(Debug)]
pub struct Route {
    /// The account stamped on each packet.
    pub sender: UserId,
    pub room: Arc<Room>,
    pub from: SessionId,
}

/// The sessions in one voice room who hear.
#[derive(Debug, Default)]
pub struct Room {
    pub listeners: Vec<(SessionId, Datagrams)>,
}

/// Where a session's voice datagrams go out: a native QUIC connection, or a
/// browser's WebTransport session (whose datagrams carry the session's
/// stream id in front; the library adds and strips it). The packet format
/// inside is the same.
#[derive(Debug, Clone)]
pub enum Datagrams {
    Quic(quinn::Connection),
    // A WebTransport session is some 800 bytes of handles; boxed, a room's
    // listener list stays dense.
    Web(Box<web_transport_quinn::Session>),
}

impl Datagrams {
    /// The next datagram the peer sent; `None` once the connection is gone.
    async fn receive(&self) -> Option<bytes::Bytes> {
        match self {
            Datagrams::Quic(c) => c.read_datagram().await.ok(),
            Datagrams::Web(s) => s.read_datagram().await.ok(),
        }
    }

    /// Queues one datagram; dropped, oldest first, when the peer's send
    /// buffer is full (late audio is worth nothing), and dropped as well
    /// when the peer is gone.
    fn send(&self, datagram: bytes::Bytes) {
        match self {
            Datagrams::Quic(c) => {
                let _ = c.send_datagram(datagram);
            }
            Datagrams::Web(s) => {
                let _ = s.send_datagram(datagram);
            }
        }
    }
}

/// What the actor keeps of a session that can carry voice (QUIC and
/// WebTransport; the telnet gateway's and WebSocket sessions have none).
#[derive(Debug, Clone)]
pub struct VoiceLink {
    pub conn: Datagrams,
    pub route: RouteSlot,
}

impl VoiceLink {
    /// A link for `conn`, and the slot its connection task reads.
    pub fn new(conn: Datagrams) -> (VoiceLink, RouteSlot) {
        let route = RouteSlot::default();
        (VoiceLink { conn, route: route.clone() }, route)
    }
}

/// A session's current route: set by the actor, read for every packet by
/// the session's connection task. Nobody waits for it to change, so a lock
/// is all it takes: a `watch` channel's wakers cost every connection some
/// 350 bytes, voice or not.
#[derive(Debug, Clone, Default)]
pub struct RouteSlot(Arc<RwLock<Option<Arc<Route>>>>);

impl RouteSlot {
    pub fn set(&self, route: Option<Arc<Route>>) {
        // A panic elsewhere cannot leave an `Option` half-written.
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = route;
    }

    /// The route now, cloned out so that no lock is held while sending.
    pub fn get(&self) -> Option<Arc<Route>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The actor's side: the sessions of each room as last published, to take
/// routes away from those that left.
#[derive(Debug, Default)]
pub struct Rooms {
    members: HashMap<ChannelId, Vec<SessionId>>,
}

impl Rooms {
    /// Applies one published room. `link` finds a session's voice link.
    pub fn publish<'a>(
        &mut self,
        channel: ChannelId,
        members: &[VoiceRoute],
        link: impl Fn(SessionId) -> Option<&'a VoiceLink>,
    ) {
        let old = self.members.remove(&channel).unwrap_or_default();
        for gone in old.iter().filter(|s| !members.iter().any(|m| m.session == **s)) {
            if let Some(l) = link(*gone) {
                l.route.set(None);
            }
        }
        if members.is_empty() {
            return;
        }
        let listeners = members
            .iter()
            .filter(|m| m.hears)
            .filter_map(|m| link(m.session).map(|l| (m.session, l.conn.clone())))
            .collect();
        let room = Arc::new(Room { listeners });
        for m in members {
            if let Some(l) = link(m.session) {
                let route =
                    m.speaks.then(|| Arc::new(Route { sender: m.user, room: room.clone(), from: m.session }));
                l.route.set(route);
            }
        }
        self.members.insert(channel, members.iter().map(|m| m.session).collect());
    }
}

/// A token bucket for one sender's packets.
#[derive(Debug)]
pub struct PacketBudget {
    tokens: f64,
    last: Instant,
}

impl Default for PacketBudget {
    fn default() -> Self {
        PacketBudget { tokens: PACKET_BURST, last: Instant::now() }
    }
}

impl PacketBudget {
    /// Takes one packet's token at `now`; false: over the rate, drop it.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).min(Duration::from_secs(1));
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * PACKETS_PER_SECOND).min(PACKET_BURST);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Forwards the session's voice datagrams by the route the hub last
/// published for it; without one (not in voice, or muted) they are dropped.
pub async fn receive(conn: Datagrams, route: RouteSlot, metrics: Arc<crate::metrics::Metrics>) {
    let mut budget = PacketBudget::default();
    while let Some(datagram) = conn.receive().await {
        if !budget.take(Instant::now()) {
            metrics.voice_dropped.inc();
            continue;
        }
        let current = route.get();
        match forward(current.as_deref(), &datagram) {
            Some(n) => metrics.voice_forwarded.inc_by(n),
            None => metrics.voice_dropped.inc(),
        };
    }
}

/// Forwards one datagram a session sent, by its current route; how many
/// listeners it went to, or `None` if it went nowhere (no route, or not a
/// voice packet).
pub fn forward(route: Option<&Route>, datagram: &[u8]) -> Option<u64> {
    let route = route?;
    kith_proto::voice::check_client(datagram).ok()?;
    let out = kith_proto::voice::forward(route.sender.0, datagram);
    let mut sent = 0;
    for (session, conn) in &route.room.listeners {
        if *session != route.from {
            conn.send(out.clone());
            sent += 1;
        }
    }
    Some(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_is_held_to_its_rate_after_a_burst() {
        let mut b = PacketBudget::default();
        let t0 = Instant::now();
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, PACKET_BURST as usize);
        // One second later: one second's worth, no more.
        let t1 = t0 + Duration::from_secs(1);
        let more = (0..1000).filter(|_| b.take(t1)).count();
        assert_eq!(more, PACKET_BURST as usize, "the refill is capped at the burst");
        // At 50 packets a second (a 20 ms codec) nothing is dropped.
        let mut b = PacketBudget::default();
        let steady = (1..=500).filter(|i| b.take(t0 + Duration::from_millis(20 * i))).count();
        assert_eq!(steady, 500);
    }
}
