//! Invite links: `kith://HOST[:PORT]/CODE[?fp=sha256:HEX]`.
//!
//! One parser and one renderer for every program that shows or reads an
//! invite — the server (which puts the link in `Invite.link`), the terminal
//! client and the CLI — so that they cannot disagree about the format.
//! `HOST` is a name, an IPv4 address or a bracketed IPv6 address; the port
//! defaults to [`DEFAULT_PORT`]. The fingerprint, when present, is the
//! server identity the invite vouches for (see proto/README.md, "Invites").

use std::net::IpAddr;

/// The port a server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7443;

/// A parsed invite: a link, or a bare code (which names no server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// `host:port`, the port always present; `None` for a bare code.
    pub server: Option<String>,
    pub code: String,
    /// `sha256:<64 hex>`, if the link carries one.
    pub fingerprint: Option<String>,
}

/// Why an invite could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("an invite looks like kith://HOST:PORT/CODE (or is the bare CODE)")]
    Shape,
    #[error("the invite's fingerprint is malformed (expected sha256: and 64 hex digits)")]
    Fingerprint,
    #[error("the invite's code may only contain letters and digits")]
    Code,
}

impl InviteLink {
    /// Reads a `kith://` link or a bare code. Surrounding whitespace (a
    /// pasted line) is ignored.
    pub fn parse(text: &str) -> Result<InviteLink, InviteError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("kith://") else {
            return Ok(InviteLink { server: None, code: valid_code(text)?, fingerprint: None });
        };
        let (server, rest) = rest.split_once('/').ok_or(InviteError::Shape)?;
        let (code, fingerprint) = match rest.split_once("?fp=") {
            Some((code, fp)) => (code, Some(fp)),
            None => (rest, None),
        };
        if server.is_empty() || server.contains(char::is_whitespace) {
            return Err(InviteError::Shape);
        }
        if let Some(fp) = fingerprint {
            let hex = fp.strip_prefix("sha256:").ok_or(InviteError::Fingerprint)?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(InviteError::Fingerprint);
            }
        }
        Ok(InviteLink {
            server: Some(with_default_port(server)),
            code: valid_code(code)?,
            fingerprint: fingerprint.map(str::to_ascii_lowercase),
        })
    }

    /// The link for `code` on `server` (`host[:port]`).
    pub fn render(server: &str, code: &str, fingerprint: Option<&str>) -> String {
        let server = with_default_port(server);
        match fingerprint {
            Some(fp) => format!("kith://{server}/{code}?fp={fp}"),
            None => format!("kith://{server}/{code}"),
        }
    }

    /// The browser link for `code` on `server`: the web client's invite
    /// page, on the same port number over HTTPS.
    pub fn render_web(server: &str, code: &str) -> String {
        format!("https://{}/invite/{code}", with_default_port(server))
    }

    /// A password reset code as a link to the browser client.
    pub fn render_reset(server: &str, username: &str, code: &str) -> String {
        format!("https://{}/reset/{username}/{code}", with_default_port(server))
    }

    /// Whether the link only works on the machine that made it (it names
    /// `localhost` or a loopback address).
    pub fn is_local(&self) -> bool {
        self.server.as_deref().is_some_and(is_local_address)
    }
}

/// Whether `host[:port]` names this machine only.
pub fn is_local_address(server: &str) -> bool {
    let host = host_of(server);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// The host part of `host[:port]`, without IPv6 brackets.
pub fn host_of(server: &str) -> &str {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')) => {
            host
        }
        _ => server,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `server` with the default port added when it names none. A bare IPv6
/// address gets brackets.
pub fn with_default_port(server: &str) -> String {
    let has_port = match server.rsplit_once(':') {
        Some((host, port)) => port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')),
        None => false,
    };
    if has_port {
        server.to_owned()
    } else if server.contains(':') && !server.starts_with('[') {
        format!("[{server}]:{DEFAULT_PORT}")
    } else {
        format!("{server}:{DEFAULT_PORT}")
    }
}

fn valid_code(code: &str) -> Result<String, InviteError> {
    if code.is_empty() {
        return Err(InviteError::Shape);
    }
    if !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(InviteError::Code);
    }
    Ok(code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn links_round_trip() {
        let link = InviteLink::render("127.0.0.1:7443", "Abc123", Some(&fp()));
        let i = InviteLink::parse(&link).unwrap();
        assert_eq!(i.server.as_deref(), Some("127.0.0.1:7443"));
        assert_eq!(i.code, "Abc123");
        assert_eq!(i.fingerprint, Some(fp()));
    }

    #[test]
    fn a_bare_code_names_no_server() {
        let i = InviteLink::parse("  Abc123\n").unwrap();
        assert_eq!((i.server, i.code.as_str()), (None, "Abc123"));
    }

    #[test]
    fn ipv6_and_the_default_port() {
        let i = InviteLink::parse("kith://[2001:db8::1]/CODE").unwrap();
        assert_eq!(i.server.as_deref(), Some("[2001:db8::1]:7443"));
        assert_eq!(InviteLink::render("2001:db8::1", "C", None), "kith://[2001:db8::1]:7443/C");
        assert_eq!(InviteLink::render_web("chat.example.org", "C"), "https://chat.example.org:7443/invite/C");
        assert_eq!(InviteLink::render_web("[2001:db8::1]:8443", "C"), "https://[2001:db8::1]:8443/invite/C");
        assert_eq!(InviteLink::parse("kith://[::1]:9000/C").unwrap().server.as_deref(), Some("[::1]:9000"));
        assert_eq!(with_default_port("example.org"), "example.org:7443");
        assert_eq!(with_default_port("example.org:9000"), "example.org:9000");
        assert_eq!(host_of("[::1]:9000"), "::1");
    }

    #[test]
    fn malformed_links_are_refused_with_a_reason() {
        assert_eq!(InviteLink::parse("kith://host/code?fp=md5:1"), Err(InviteError::Fingerprint));
        assert_eq!(InviteLink::parse("kith://host"), Err(InviteError::Shape));
        assert_eq!(InviteLink::parse("kith:///CODE"), Err(InviteError::Shape));
        assert_eq!(InviteLink::parse("kith://host/"), Err(InviteError::Shape));
        assert_eq!(InviteLink::parse("kith://host/co de"), Err(InviteError::Code));
        assert_eq!(InviteLink::parse(""), Err(InviteError::Shape));
    }

    #[test]
    fn local_links_are_recognised() {
        for local in ["kith://localhost:7443/C", "kith://127.0.0.1/C", "kith://[::1]:7443/C"] {
            assert!(InviteLink::parse(local).unwrap().is_local(), "{local}");
        }
        assert!(!InviteLink::parse("kith://chat.example.org/C").unwrap().is_local());
        assert!(!InviteLink::parse("kith://192.168.1.20/C").unwrap().is_local());
    }
}
