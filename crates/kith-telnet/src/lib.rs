//! kith-telnet: the server side of the telnet protocol, sans IO.
//!
//! Bytes from the socket go into [`Telnet::receive`]; what the user typed
//! comes out of [`Telnet::poll_event`] as [`Event`]s, and the protocol's own
//! replies accumulate for [`Telnet::take_output`]. Nothing here reads a
//! socket or a clock, so every behaviour is a unit or property test.
//!
//! - Options follow RFC 1143's Q method, so no sequence of requests can make
//!   us loop: we offer ECHO and SUPPRESS-GO-AHEAD (we echo; character at a
//!   time), ask for NAWS (window size) and TERMINAL-TYPE, and refuse every
//!   other option.
//! - `IAC IAC` is a data byte 0xFF; [`escape`] doubles it on the way out.
//! - Subnegotiations are capped at [`MAX_SUBNEGOTIATION`] bytes; a longer one
//!   is dropped whole and reported ([`Event::Oversized`]).
//! - Line ends arrive in many spellings (CR LF, CR NUL, bare CR, bare LF);
//!   each becomes one `\r`, so Enter is one thing to the layers above. A lone
//!   NUL is dropped.

use std::collections::VecDeque;

/// Interpret As Command.
pub const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
/// Interrupt Process: what a telnet client sends for Ctrl+C in line mode.
const IP: u8 = 244;
/// Are You There.
const AYT: u8 = 246;

pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_TTYPE: u8 = 24;
pub const OPT_NAWS: u8 = 31;

/// TERMINAL-TYPE subcommands (RFC 1091).
const TTYPE_IS: u8 = 0;
const TTYPE_SEND: u8 = 1;

/// The longest subnegotiation kept; NAWS needs 4 bytes (8 if every byte is
/// an escaped 0xFF), a terminal type name rarely more than 40.
pub const MAX_SUBNEGOTIATION: usize = 64;
/// Terminal type names are cut to this.
const MAX_TTYPE: usize = 40;

/// What the client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Typed bytes (UTF-8 from any sane client, but not guaranteed), line
    /// ends normalised to `\r`.
    Data(Vec<u8>),
    /// The window's size in columns and rows, as the client reported it
    /// (possibly 0 or absurd: clamp before use).
    Size { width: u16, height: u16 },
    /// The client's terminal type (printable ASCII, at most 40 characters).
    TerminalType(String),
    /// The client sent Interrupt Process.
    Interrupt,
    /// A subnegotiation ran past [`MAX_SUBNEGOTIATION`] bytes. Reported once
    /// per subnegotiation (the rest of it is skipped without being kept): no
    /// honest client does this, so the host should say so and close.
    Oversized,
}

/// One side of one option, in RFC 1143's terms. The server never asks to
/// turn an option off, so neither WANTNO nor the queue bit is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Q {
    No,
    Yes,
    WantYes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// The previous data byte was CR.
    Cr,
    Iac,
    /// IAC followed by WILL, WONT, DO or DONT: waiting for the option.
    Verb(u8),
    /// Inside IAC SB …
    Sub,
    /// IAC seen inside a subnegotiation.
    SubIac,
}

/// A telnet session's protocol state.
#[derive(Debug)]
pub struct Telnet {
    state: State,
    /// Options we perform (WILL/WONT side).
    us: [Q; 256],
    /// Options the client performs (DO/DONT side).
    him: [Q; 256],
    /// Options already refused, per side (0: ours, 1: the client's). A
    /// client that asks again after a refusal is not answered again: one
    /// refusal per option is all a flood of requests can get.
    refused: [[bool; 256]; 2],
    sub: Vec<u8>,
    sub_overflow: bool,
    data: Vec<u8>,
    events: VecDeque<Event>,
    output: Vec<u8>,
}

impl Default for Telnet {
    fn default() -> Self {
        Telnet::new()
    }
}

impl Telnet {
    /// A fresh session; its opening negotiation is already in the output.
    pub fn new() -> Telnet {
        let mut t = Telnet {
            state: State::Data,
            us: [Q::No; 256],
            him: [Q::No; 256],
            refused: [[false; 256]; 2],
            sub: Vec::new(),
            sub_overflow: false,
            data: Vec::new(),
            events: VecDeque::new(),
            output: Vec::new(),
        };
        for opt in [OPT_ECHO, OPT_SGA] {
            t.us[opt as usize] = Q::WantYes;
            t.send(WILL, opt);
        }
        for opt in [OPT_NAWS, OPT_TTYPE] {
            t.him[opt as usize] = Q::WantYes;
            t.send(DO, opt);
        }
        t
    }

    /// Whether we echo (the client agreed to let us): the host echoes typed
    /// text itself, and must not show a password.
    pub fn echoing(&self) -> bool {
        self.us[OPT_ECHO as usize] == Q::Yes
    }

    /// Whether the client refused to let us echo: it echoes typed text
    /// itself, so a password typed there is shown on its screen.
    pub fn echo_refused(&self) -> bool {
        self.us[OPT_ECHO as usize] == Q::No
    }

    /// Whether the client agreed to report its window size.
    pub fn reports_size(&self) -> bool {
        self.him[OPT_NAWS as usize] == Q::Yes
    }

    /// Takes in bytes from the client.
    pub fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
        self.flush_data();
    }

    /// The next thing the client did.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Protocol replies to send to the client (already escaped).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    fn send(&mut self, verb: u8, opt: u8) {
        self.output.extend_from_slice(&[IAC, verb, opt]);
    }

    fn flush_data(&mut self) {
        if !self.data.is_empty() {
            self.events.push_back(Event::Data(std::mem::take(&mut self.data)));
        }
    }

    fn byte(&mut self, b: u8) {
        self.state = match (self.state, b) {
            (State::Data | State::Cr, IAC) => State::Iac,
            // CR LF and CR NUL are the CR already delivered.
            (State::Cr, b'\n' | 0) => State::Data,
            (State::Data | State::Cr, b'\r' | b'\n') => {
                self.data.push(b'\r');
                if b == b'\r' { State::Cr } else { State::Data }
            }
            (State::Data, 0) => State::Data,
            (State::Data | State::Cr, b) => {
                self.data.push(b);
                State::Data
            }
            (State::Iac, IAC) => {
                self.data.push(IAC);
                State::Data
            }
            (State::Iac, WILL | WONT | DO | DONT) => State::Verb(b),
            (State::Iac, SB) => {
                self.sub.clear();
                self.sub_overflow = false;
                State::Sub
            }
            (State::Iac, IP) => {
                self.flush_data();
                self.events.push_back(Event::Interrupt);
                State::Data
            }
            (State::Iac, AYT) => {
                self.output.extend_from_slice(b"\r\n[kith is here]\r\n");
                State::Data
            }
            // GA, NOP, DM, BRK, EC, EL, AO, a stray SE: nothing to do.
            (State::Iac, _) => State::Data,
            (State::Verb(verb), opt) => {
                self.negotiate(verb, opt);
                State::Data
            }
            (State::Sub, IAC) => State::SubIac,
            (State::Sub, b) => {
                self.sub_byte(b);
                State::Sub
            }
            (State::SubIac, SE) => {
                self.subnegotiation();
                State::Data
            }
            (State::SubIac, IAC) => {
                self.sub_byte(IAC);
                State::Sub
            }
            // IAC followed by anything else inside SB is a broken client;
            // drop the subnegotiation and carry on with the byte as a command.
            (State::SubIac, b) => {
                self.sub.clear();
                self.state = State::Iac;
                return self.byte(b);
            }
        };
    }

    fn sub_byte(&mut self, b: u8) {
        if self.sub.len() < MAX_SUBNEGOTIATION {
            self.sub.push(b);
        } else if !self.sub_overflow {
            self.sub_overflow = true;
            self.flush_data();
            self.events.push_back(Event::Oversized);
        }
    }

    fn subnegotiation(&mut self) {
        let sub = std::mem::take(&mut self.sub);
        if self.sub_overflow {
            return;
        }
        match sub.as_slice() {
            [OPT_NAWS, w1, w2, h1, h2] if self.him[OPT_NAWS as usize] == Q::Yes => {
                self.flush_data();
                let width = u16::from_be_bytes([*w1, *w2]);
                let height = u16::from_be_bytes([*h1, *h2]);
                self.events.push_back(Event::Size { width, height });
            }
            [OPT_TTYPE, TTYPE_IS, name @ ..] if self.him[OPT_TTYPE as usize] == Q::Yes => {
                let name: String = name
                    .iter()
                    .filter(|b| b.is_ascii_graphic())
                    .take(MAX_TTYPE)
                    .map(|&b| char::from(b))
                    .collect();
                self.flush_data();
                self.events.push_back(Event::TerminalType(name));
            }
            _ => {}
        }
    }

    /// RFC 1143, section 7.
    fn negotiate(&mut self, verb: u8, opt: u8) {
        let i = opt as usize;
        match verb {
            WILL => match self.him[i] {
                Q::No if wanted_from_client(opt) => {
                    self.him[i] = Q::Yes;
                    self.send(DO, opt);
                    self.enabled_by_client(opt);
                }
                Q::No => self.refuse(1, DONT, opt),
                Q::Yes => {}
                Q::WantYes => {
                    self.him[i] = Q::Yes;
                    self.enabled_by_client(opt);
                }
            },
            WONT => match self.him[i] {
                Q::No => {}
                Q::Yes => {
                    self.him[i] = Q::No;
                    self.send(DONT, opt);
                }
                Q::WantYes => self.him[i] = Q::No,
            },
            DO => match self.us[i] {
                Q::No if offered_by_us(opt) => {
                    self.us[i] = Q::Yes;
                    self.send(WILL, opt);
                }
                Q::No => self.refuse(0, WONT, opt),
                Q::Yes => {}
                Q::WantYes => self.us[i] = Q::Yes,
            },
            DONT => match self.us[i] {
                Q::No => {}
                Q::Yes => {
                    self.us[i] = Q::No;
                    self.send(WONT, opt);
                }
                Q::WantYes => self.us[i] = Q::No,
            },
            _ => {}
        }
    }

    fn refuse(&mut self, side: usize, verb: u8, opt: u8) {
        if !std::mem::replace(&mut self.refused[side][opt as usize], true) {
            self.send(verb, opt);
        }
    }

    fn enabled_by_client(&mut self, opt: u8) {
        if opt == OPT_TTYPE {
            self.output.extend_from_slice(&[IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE]);
        }
    }
}

fn wanted_from_client(opt: u8) -> bool {
    matches!(opt, OPT_NAWS | OPT_TTYPE)
}

fn offered_by_us(opt: u8) -> bool {
    matches!(opt, OPT_ECHO | OPT_SGA)
}

/// Doubles every 0xFF so data cannot be read as a command; newlines become
/// CR LF, as the network virtual terminal wants.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            IAC => out.extend_from_slice(&[IAC, IAC]),
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(t: &mut Telnet) -> Vec<Event> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    /// Joins consecutive data events (how they split depends on the calls).
    fn joined(events: Vec<Event>) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        for e in events {
            match (out.last_mut(), e) {
                (Some(Event::Data(a)), Event::Data(b)) => a.extend(b),
                (_, e) => out.push(e),
            }
        }
        out
    }

    #[test]
    fn opens_by_offering_echo_and_asking_for_the_window_size() {
        let mut t = Telnet::new();
        assert_eq!(
            t.take_output(),
            [IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, OPT_NAWS, IAC, DO, OPT_TTYPE]
        );
        t.receive(&[IAC, DO, OPT_ECHO, IAC, DO, OPT_SGA, IAC, WILL, OPT_NAWS, IAC, WILL, OPT_TTYPE]);
        assert!(t.echoing() && t.reports_size());
        // Agreed requests need no answer, except asking for the terminal type.
        assert_eq!(t.take_output(), [IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE]);
        t.receive(&[IAC, SB, OPT_NAWS, 0, 120, 0, 40, IAC, SE]);
        t.receive(&[IAC, SB, OPT_TTYPE, TTYPE_IS]);
        t.receive(b"XTERM-256\x1bCOLOR");
        t.receive(&[IAC, SE]);
        assert_eq!(
            events(&mut t),
            [Event::Size { width: 120, height: 40 }, Event::TerminalType("XTERM-256COLOR".into())]
        );
    }

    #[test]
    fn other_options_are_refused_and_repeats_are_not_answered() {
        let mut t = Telnet::new();
        t.take_output();
        t.receive(&[IAC, WILL, 39, IAC, DO, 39, IAC, DO, 34]);
        assert_eq!(t.take_output(), [IAC, DONT, 39, IAC, WONT, 39, IAC, WONT, 34]);
        t.receive(&[IAC, WILL, 39, IAC, DO, 39, IAC, DO, 34].repeat(100));
        assert_eq!(
            t.take_output(),
            [] as [u8; 0],
            "an option is refused once, however often it is asked for"
        );
        t.receive(&[IAC, DO, OPT_ECHO, IAC, DO, OPT_ECHO, IAC, DO, OPT_ECHO]);
        assert_eq!(t.take_output(), [] as [u8; 0], "an option already on is not acknowledged again");
        // The client turns echo off and on again: each change answered once.
        t.receive(&[IAC, DONT, OPT_ECHO, IAC, DO, OPT_ECHO]);
        assert_eq!(t.take_output(), [IAC, WONT, OPT_ECHO, IAC, WILL, OPT_ECHO]);
    }

    #[test]
    fn a_client_that_refuses_our_echo_is_known_to_echo_itself() {
        let mut t = Telnet::new();
        assert!(!t.echoing() && !t.echo_refused(), "no answer yet");
        t.receive(&[IAC, DONT, OPT_ECHO]);
        assert!(!t.echoing() && t.echo_refused());
        t.receive(&[IAC, DO, OPT_ECHO]);
        assert!(t.echoing() && !t.echo_refused());
    }

    #[test]
    fn line_ends_and_nuls_are_normalised_one_way() {
        let mut t = Telnet::new();
        t.receive(b"a\r\nb\r\0c\rd\ne\0f\r");
        t.receive(b"\n");
        assert_eq!(joined(events(&mut t)), [Event::Data(b"a\rb\rc\rd\ref\r".to_vec())]);
    }

    #[test]
    fn escaped_iac_is_data_and_oversized_subnegotiations_are_dropped() {
        let mut t = Telnet::new();
        t.receive(&[b'x', IAC, IAC, b'y']);
        let mut long = vec![IAC, SB, OPT_NAWS];
        long.extend(std::iter::repeat_n(7, 10_000));
        long.extend([IAC, SE, b'z']);
        t.receive(&long);
        t.receive(&[IAC, IP]);
        assert_eq!(
            joined(events(&mut t)),
            [Event::Data(vec![b'x', IAC, b'y']), Event::Oversized, Event::Data(vec![b'z']), Event::Interrupt]
        );
    }

    #[test]
    fn eof_inside_a_sequence_leaves_nothing_half_done() {
        for cut in [&[IAC][..], &[IAC, SB, OPT_NAWS, 0], &[IAC, WILL], &[IAC, SB, OPT_TTYPE, 0, IAC]] {
            let mut t = Telnet::new();
            t.receive(cut);
            assert_eq!(events(&mut t), []);
        }
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_give_the_same_result(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut whole = Telnet::new();
            whole.receive(&bytes);
            let mut split = Telnet::new();
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut start = 0;
            for end in at.into_iter().chain([bytes.len()]) {
                split.receive(&bytes[start..end]);
                start = end;
            }
            prop_assert_eq!(joined(events(&mut whole)), joined(events(&mut split)));
            prop_assert_eq!(whole.take_output(), split.take_output());
        }

        #[test]
        fn escaped_data_comes_back_unchanged(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let data: Vec<u8> = data.into_iter().filter(|b| !matches!(b, b'\r' | b'\n' | 0)).collect();
            let mut wire = Vec::new();
            escape(&data, &mut wire);
            let mut t = Telnet::new();
            t.receive(&wire);
            let got: Vec<u8> = joined(events(&mut t)).into_iter().flat_map(|e| match e {
                Event::Data(d) => d,
                _ => Vec::new(),
            }).collect();
            prop_assert_eq!(got, data);
        }

        /// Negotiation never amplifies: each command gets at most one
        /// answer (plus the one terminal-type request), so two endpoints
        /// cannot loop.
        #[test]
        fn negotiation_never_loops(commands in proptest::collection::vec((251u8..=254, any::<u8>()), 0..200)) {
            let mut t = Telnet::new();
            t.take_output();
            let wire: Vec<u8> = commands.iter().flat_map(|&(verb, opt)| [IAC, verb, opt]).collect();
            t.receive(&wire);
            let out = t.take_output();
            prop_assert!(out.len() <= 3 * commands.len() + 6, "{} bytes for {} commands", out.len(), commands.len());
            // Feeding a peer that agrees with everything we asked settles at once.
            let mut again = Telnet::new();
            let opening = again.take_output();
            let agreed: Vec<u8> = opening.chunks(3).flat_map(|c| [IAC, if c[1] == WILL { DO } else { WILL }, c[2]]).collect();
            again.receive(&agreed);
            again.take_output();
            again.receive(&agreed);
            prop_assert!(again.take_output().is_empty());
        }
    }
}
