//! Client-side state in the config directory: named profiles (server, user,
//! token) and pinned server identities (like SSH's known_hosts).
//!
//! The directory is `$KITH_CONFIG_DIR`, `--config-dir`, or the XDG config
//! directory (`~/.config/kith`). Files holding tokens are written 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    pub server: String,
    pub username: String,
    pub token: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfilesFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownServers {
    /// Server address → `sha256:<hex>`.
    #[serde(default)]
    servers: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    pub fn new(explicit: Option<PathBuf>) -> Result<Self> {
        let dir = match explicit {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "kith")
                .context("cannot find a home directory; pass --config-dir")?
                .config_dir()
                .to_owned(),
        };
        Ok(Self { dir })
    }

    pub fn profile(&self, name: &str) -> Result<Profile> {
        let file: ProfilesFile = read_toml(&self.dir.join("profiles.toml"))?;
        match file.profiles.get(name) {
            Some(p) => Ok(p.clone()),
            None => bail!(
                "no profile named {name:?} in {}; run `kith register` or `kith login` first",
                self.dir.display()
            ),
        }
    }

    pub fn save_profile(&self, name: &str, profile: Profile) -> Result<()> {
        let path = self.dir.join("profiles.toml");
        let mut file: ProfilesFile = read_toml(&path)?;
        file.profiles.insert(name.to_owned(), profile);
        write_toml(&path, &file)
    }

    pub fn forget_profile(&self, name: &str) -> Result<()> {
        let path = self.dir.join("profiles.toml");
        let mut file: ProfilesFile = read_toml(&path)?;
        file.profiles.remove(name);
        write_toml(&path, &file)
    }

    pub fn pinned(&self, server: &str) -> Result<Option<String>> {
        let file: KnownServers = read_toml(&self.dir.join("known_servers.toml"))?;
        Ok(file.servers.get(server).cloned())
    }

    pub fn pin(&self, server: &str, fingerprint: &str) -> Result<()> {
        let path = self.dir.join("known_servers.toml");
        let mut file: KnownServers = read_toml(&path)?;
        file.servers.insert(server.to_owned(), fingerprint.to_owned());
        write_toml(&path, &file)
    }
}

fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes via a temporary file and a rename, so a crash never leaves half a file.
fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().expect("config files live in a directory");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, toml::to_string_pretty(value)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A parsed invite: `kith://HOST:PORT/CODE?fp=sha256:HEX`, or a bare code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub server: Option<String>,
    pub code: String,
    pub fingerprint: Option<String>,
}

impl Invite {
    pub fn parse(s: &str) -> Result<Self> {
        let Some(rest) = s.strip_prefix("kith://") else {
            return Ok(Invite { server: None, code: s.to_owned(), fingerprint: None });
        };
        let (server, rest) = rest.split_once('/').context("an invite looks like kith://HOST:PORT/CODE")?;
        let (code, fingerprint) = match rest.split_once("?fp=") {
            Some((code, fp)) => (code, Some(fp.to_owned())),
            None => (rest, None),
        };
        if code.is_empty() || server.is_empty() {
            bail!("an invite looks like kith://HOST:PORT/CODE");
        }
        if let Some(fp) = &fingerprint
            && !(fp.starts_with("sha256:") && fp.len() == 7 + 64)
        {
            bail!("the invite's fingerprint is malformed");
        }
        Ok(Invite { server: Some(with_default_port(server)), code: code.to_owned(), fingerprint })
    }

    pub fn render(server: &str, code: &str, fingerprint: Option<&str>) -> String {
        match fingerprint {
            Some(fp) => format!("kith://{server}/{code}?fp={fp}"),
            None => format!("kith://{server}/{code}"),
        }
    }
}

/// The default port is 7443.
pub fn with_default_port(server: &str) -> String {
    let has_port = match server.rsplit_once(':') {
        Some((host, port)) => port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')),
        None => false,
    };
    if has_port { server.to_owned() } else { format!("{server}:7443") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invites_round_trip() {
        let fp = format!("sha256:{}", "ab".repeat(32));
        let s = Invite::render("127.0.0.1:7443", "Abc123", Some(&fp));
        let i = Invite::parse(&s).unwrap();
        assert_eq!(i.server.as_deref(), Some("127.0.0.1:7443"));
        assert_eq!(i.code, "Abc123");
        assert_eq!(i.fingerprint, Some(fp));
        assert_eq!(Invite::parse("Abc123").unwrap().server, None);
        assert!(Invite::parse("kith://host/code?fp=md5:1").is_err());
    }

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("example.org"), "example.org:7443");
        assert_eq!(with_default_port("example.org:9000"), "example.org:9000");
        assert_eq!(with_default_port("[::1]:9000"), "[::1]:9000");
        assert_eq!(with_default_port("[::1]"), "[::1]:7443");
    }
}
