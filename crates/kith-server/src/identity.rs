//! The server's TLS identity: generated on first run (ECDSA P-256, persisted
//! in the data directory so the fingerprint survives restarts) or supplied by
//! the operator (e.g. a CA-issued certificate).

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kith_proto::fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain, its private key, and the leaf's fingerprint.
#[derive(Debug)]
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// `sha256:<hex>` of the leaf certificate: what clients pin.
    pub fingerprint: String,
}

impl Identity {
    /// Loads `cert.pem` and `key.pem` from `dir`, generating them first if absent.
    pub fn load_or_generate(dir: &Path) -> Result<Self> {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        if !cert_path.exists() && !key_path.exists() {
            let names = vec!["localhost".to_owned(), "kith".to_owned()];
            let generated = rcgen::generate_simple_self_signed(names).context("generating a TLS identity")?;
            write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
            fs::write(&cert_path, generated.cert.pem())
                .with_context(|| format!("writing {}", cert_path.display()))?;
            tracing::info!(path = %cert_path.display(), "generated a new TLS identity");
        }
        Self::from_files(&cert_path, &key_path)
    }

    /// Loads an operator-supplied PEM certificate chain and private key.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let certs = CertificateDer::pem_file_iter(cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing {}", cert_path.display()))?;
        let Some(leaf) = certs.first() else { bail!("{} holds no certificate", cert_path.display()) };
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_file(key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        Ok(Self { certs, key, fingerprint })
    }
}

/// Writes a secret (a key, credentials) readable by the owner only,
/// replacing any earlier one.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(())
}
