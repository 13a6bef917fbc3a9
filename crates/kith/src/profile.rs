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

    /// Where pinned identities are kept.
    pub fn known_servers(&self) -> PathBuf {
        self.dir.join("known_servers.toml")
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
