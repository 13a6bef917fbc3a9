//! A certificate browsers trust, obtained and renewed by ACME (RFC 8555),
//! for servers with a domain name (`kith serve --domain chat.example.org`).
//!
//! The challenge is TLS-ALPN-01 (RFC 8737), answered on the HTTPS port the
//! server already listens on: nothing else needs to be open. The account
//! and each certificate live in `DATA/acme/`; a certificate is used from
//! the moment it arrives (or, at start, from disk) for HTTPS and
//! WebTransport, and replaced when a third of its life is left. Native
//! clients keep pinning the server's own identity.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use crate::identity::write_private;
use crate::webcert::Resolver;

/// Let's Encrypt, unless the operator names another CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// How often a failed order is tried again.
const RETRY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub domain: String,
    /// The CA's directory URL.
    pub directory: String,
    /// A PEM root to trust for the CA's own API (a test CA such as Pebble).
    pub ca_root: Option<PathBuf>,
    /// `mailto:` contacts given to the CA, for expiry warnings.
    pub contact: Vec<String>,
}

/// What is kept of an issued certificate beside its PEM files.
#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    /// Seconds since the Unix epoch.
    issued_at: u64,
    /// The validity the CA gave, in seconds (from the certificate).
    valid_for: u64,
}

/// Loads a stored certificate into `certs` and starts the task that
/// obtains (or renews) it.
pub fn start(config: AcmeConfig, certs: Arc<Resolver>, data: &Path) -> Result<tokio::task::JoinHandle<()>> {
    let dir = data.join("acme");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stored = load(&dir, &config.domain, &certs);
    if stored.is_some() {
        tracing::info!(domain = %config.domain, "using the stored ACME certificate");
    }
    Ok(tokio::spawn(run(config, certs, dir, stored)))
}

async fn run(config: AcmeConfig, certs: Arc<Resolver>, dir: PathBuf, mut issued: Option<Issued>) {
    loop {
        let wait = match &issued {
            // Renew with a third of the validity left (Let's Encrypt's advice).
            Some(i) => {
                let renew_at = i.issued_at + i.valid_for * 2 / 3;
                Duration::from_secs(renew_at.saturating_sub(now_secs()))
            }
            None => Duration::ZERO,
        };
        tokio::time::sleep(wait).await;
        match obtain(&config, &certs, &dir).await {
            Ok(fresh) => {
                tracing::info!(domain = %config.domain, days = fresh.valid_for / 86_400, "obtained a certificate by ACME");
                issued = Some(fresh);
            }
            Err(e) => {
                tracing::error!(domain = %config.domain, error = %format!("{e:#}"), "obtaining a certificate by ACME failed; trying again in 15 minutes");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn paths(dir: &Path, domain: &str) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join(format!("{domain}.crt")), dir.join(format!("{domain}.key")), dir.join(format!("{domain}.json")))
}

fn load(dir: &Path, domain: &str, certs: &Resolver) -> Option<Issued> {
    let (crt, key, meta) = paths(dir, domain);
    let issued: Issued = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
    if now_secs() >= issued.issued_at + issued.valid_for {
        return None;
    }
    let chain = std::fs::read_to_string(crt).ok()?;
    let key = std::fs::read_to_string(key).ok()?;
    match certs.set_ca(&chain, &key) {
        Ok(()) => Some(issued),
        Err(e) => {
            tracing::warn!(error = %e, "the stored ACME certificate is unusable; obtaining a new one");
            None
        }
    }
}

async fn account(config: &AcmeConfig, dir: &Path) -> Result<Account> {
    let builder = || match &config.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let stored = dir.join("account.json");
    if let Ok(bytes) = std::fs::read(&stored)
        && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&bytes)
    {
        return Ok(builder()?.from_credentials(credentials).await?);
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?.create(&new, config.directory.clone(), None).await?;
    write_private(&stored, &serde_json::to_vec(&credentials)?)?;
    Ok(account)
}

async fn obtain(config: &AcmeConfig, certs: &Resolver, dir: &Path) -> Result<Issued> {
    let account = account(config, dir).await.context("the ACME account")?;
    let identifiers = [Identifier::Dns(config.domain.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("ordering")?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => bail!("the CA's authorization is {other:?}"),
        }
        let mut challenge = authorization
            .challenge(ChallengeType::TlsAlpn01)
            .context("the CA offers no TLS-ALPN-01 challenge")?;
        let digest = challenge.key_authorization().digest();
        certs.set_challenge(&config.domain, Some(challenge_cert(&config.domain, digest.as_ref(), certs)?));
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retries).await;
    certs.set_challenge(&config.domain, None);
    match status? {
        OrderStatus::Ready => {}
        other => bail!("the order is {other:?}, not ready"),
    }
    let key_pem = order.finalize().await.context("finalizing")?;
    let chain_pem = order.poll_certificate(&retries).await.context("fetching the certificate")?;
    certs.set_ca(&chain_pem, &key_pem)?;
    let (crt, key, meta) = paths(dir, &config.domain);
    std::fs::write(&crt, &chain_pem)?;
    write_private(&key, key_pem.as_bytes())?;
    let issued =
        Issued { issued_at: now_secs(), valid_for: validity_secs(&chain_pem).unwrap_or(90 * 86_400) };
    std::fs::write(meta, serde_json::to_vec(&issued)?)?;
    Ok(issued)
}

/// The certificate RFC 8737 asks for: self-signed, for the domain alone,
/// carrying the key authorization's digest in the acmeIdentifier extension.
fn challenge_cert(domain: &str, digest: &[u8], certs: &Resolver) -> Result<Arc<rustls::sign::CertifiedKey>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension that
    // RFC 8737 requires. The key was made for this certificate just above.
    let signer = certs.provider().key_provider.load_private_key(private)?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signer)))
}

/// The leaf's validity period in seconds, read from its DER (notBefore and
/// notAfter of the TBSCertificate), or `None` if it cannot be read.
fn validity_secs(chain_pem: &str) -> Option<u64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes()).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let validity = cert.validity();
    u64::try_from(validity.not_after.timestamp() - validity.not_before.timestamp()).ok()
}
