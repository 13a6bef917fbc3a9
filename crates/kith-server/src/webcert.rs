//! Which certificate a TLS handshake gets, chosen by ALPN, on the UDP port
//! and on the HTTPS port.
//!
//! Native clients (`kith/1`) pin the server's long-lived identity. A browser
//! cannot pin: it either trusts a certificate through a CA, or — for
//! WebTransport only — accepts one by the hash the page passes as
//! `serverCertificateHashes`. Browsers take a hash only for an ECDSA
//! certificate valid for at most 14 days, so a server without a CA-signed
//! certificate answers `h3` with a separate short-lived one, made here,
//! replaced before it expires, and published (its hash) by the HTTPS page
//! the user has already accepted. A certificate obtained by ACME
//! (`crate::acme`) takes over for browsers — HTTPS and WebTransport — once
//! it arrives; while it is being obtained, the HTTPS port answers the CA's
//! TLS-ALPN-01 challenge (`acme-tls/1`) with the challenge certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How long a short-lived certificate is valid: browsers refuse hashes of
/// certificates valid for longer than 14 days.
const VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);
/// A certificate is replaced once this old, so a page that fetched its hash
/// just before always has days left to connect with it.
const ROTATE_AFTER: Duration = Duration::from_secs(6 * 24 * 3600);
/// Backdating absorbs a browser's clock running a little behind ours.
const BACKDATE: Duration = Duration::from_secs(3600);

/// One short-lived WebTransport certificate.
#[derive(Debug)]
pub struct WebCert {
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the certificate (DER): what `serverCertificateHashes` takes.
    pub hash: [u8; 32],
    pub made: SystemTime,
}

/// The ALPN of the ACME TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificates both ports answer with.
#[derive(Debug)]
pub struct Resolver {
    identity: Arc<CertifiedKey>,
    /// `None` when the identity is CA-signed: browsers trust it as it is.
    web: Option<Mutex<Arc<WebCert>>>,
    /// A CA-signed certificate obtained by ACME, once there is one.
    ca: RwLock<Option<Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 challenge certificates, by domain, while an order is open.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Resolver {
    /// `short_lived`: make WebTransport certificates (the identity is
    /// self-signed).
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        short_lived: bool,
    ) -> Result<Resolver> {
        let identity = Arc::new(
            CertifiedKey::from_der(certs, key, &provider)
                .context("the TLS certificate and key do not match")?,
        );
        let web = match short_lived {
            true => Some(Mutex::new(Arc::new(make(&provider, SystemTime::now())?))),
            false => None,
        };
        Ok(Resolver { identity, web, ca: RwLock::default(), challenges: Mutex::default(), provider })
    }

    /// The current WebTransport certificate, replaced first if it is due.
    /// `None` when browsers trust the certificate they are given.
    pub fn web_cert(&self) -> Option<Arc<WebCert>> {
        self.web_cert_at(SystemTime::now())
    }

    /// Browsers trust what this server shows them (an operator's or an
    /// ACME certificate): the page may ask for HSTS.
    pub fn ca_signed(&self) -> bool {
        self.web.is_none() || self.ca().is_some()
    }

    /// Serves `chain` and `key` (PEM) to browsers from now on.
    pub fn set_ca(&self, chain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        let key = CertifiedKey::from_der(certs, key, &self.provider)
            .context("the certificate and key do not match")?;
        *self.ca.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(key));
        Ok(())
    }

    /// Answers the TLS-ALPN-01 challenge for `domain` with `cert` (or stops, `None`).
    pub fn set_challenge(&self, domain: &str, cert: Option<Arc<CertifiedKey>>) {
        let mut challenges = self.challenges.lock().unwrap_or_else(|e| e.into_inner());
        match cert {
            Some(cert) => challenges.insert(domain.to_ascii_lowercase(), cert),
            None => challenges.remove(&domain.to_ascii_lowercase()),
        };
    }

    pub fn provider(&self) -> &Arc<rustls::crypto::CryptoProvider> {
        &self.provider
    }

    fn ca(&self) -> Option<Arc<CertifiedKey>> {
        self.ca.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The resolver for the HTTPS port: the ACME challenge when the CA asks
    /// for it, else the CA-signed certificate, else the identity.
    pub fn https(self: &Arc<Self>) -> Arc<Https> {
        Arc::new(Https(self.clone()))
    }

    fn web_cert_at(&self, now: SystemTime) -> Option<Arc<WebCert>> {
        if self.ca().is_some() {
            return None;
        }
        let mut current = self.web.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        let age = now.duration_since(current.made).unwrap_or_default();
        if age >= ROTATE_AFTER {
            match make(&self.provider, now) {
                Ok(fresh) => *current = Arc::new(fresh),
                // Keep serving the old one (days of validity are left) and say so.
                Err(e) => tracing::error!(error = %e, "could not make a new WebTransport certificate"),
            }
        }
        Some(current.clone())
    }
}

fn offers(hello: &ClientHello<'_>, alpn: &[u8]) -> bool {
    hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == alpn))
}

/// The UDP port: native clients get the identity they pin; browsers
/// (`h3`) the CA-signed certificate, or else the short-lived one.
impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !offers(&hello, crate::edge::webtransport::ALPN) {
            return Some(self.identity.clone());
        }
        match (self.ca(), self.web_cert()) {
            (Some(ca), _) => Some(ca),
            (None, Some(web)) => Some(web.key.clone()),
            (None, None) => Some(self.identity.clone()),
        }
    }
}

/// The HTTPS port's view of the [`Resolver`].
#[derive(Debug)]
pub struct Https(Arc<Resolver>);

impl ResolvesServerCert for Https {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if offers(&hello, ACME_TLS_ALPN) {
            // Only the challenge, for only the name asked about (RFC 8737 §3).
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.0.challenges.lock().unwrap_or_else(|e| e.into_inner()).get(&name).cloned();
        }
        Some(self.0.ca().unwrap_or_else(|| self.0.identity.clone()))
    }
}

/// The period a certificate made at `now` is valid for.
fn validity(now: SystemTime) -> (SystemTime, SystemTime) {
    (now - BACKDATE, now - BACKDATE + VALIDITY)
}

fn make(provider: &Arc<rustls::crypto::CryptoProvider>, now: SystemTime) -> Result<WebCert> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "kith".to_owned()])?;
    let (not_before, not_after) = validity(now);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params.self_signed(&key)?;
    let der = cert.der().clone();
    let hash = ring::digest::digest(&ring::digest::SHA256, &der);
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let key = CertifiedKey::from_der(vec![der], private, provider)?;
    Ok(WebCert {
        key: Arc::new(key),
        hash: hash.as_ref().try_into().expect("SHA-256 is 32 bytes"),
        made: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        let identity = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Resolver::new(vec![identity.cert.der().clone()], key, provider, true).unwrap()
    }

    #[test]
    fn a_web_certificate_is_valid_for_less_than_fourteen_days_and_replaced_before_it_expires() {
        let r = resolver();
        let first = r.web_cert().unwrap();
        let hash = ring::digest::digest(&ring::digest::SHA256, &first.key.cert[0]);
        assert_eq!(hash.as_ref(), first.hash, "the published hash is the certificate's");
        let (from, until) = validity(first.made);
        assert!(
            from <= first.made && until.duration_since(from).unwrap() < Duration::from_secs(14 * 24 * 3600)
        );

        let young = first.made + ROTATE_AFTER - Duration::from_secs(1);
        assert_eq!(r.web_cert_at(young).unwrap().hash, first.hash, "kept while young");
        let due = first.made + ROTATE_AFTER;
        let second = r.web_cert_at(due).unwrap();
        assert_ne!(second.hash, first.hash, "replaced once due");
        // A page that fetched the old hash just before still has days to use it.
        assert!(until.duration_since(due).unwrap() > Duration::from_secs(5 * 24 * 3600));
        assert_eq!(r.web_cert_at(due).unwrap().hash, second.hash, "the new one is kept");
    }

    #[test]
    fn a_ca_signed_identity_serves_browsers_as_it_is() {
        let identity = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let r = Resolver::new(vec![identity.cert.der().clone()], key, provider, false).unwrap();
        assert!(r.web_cert().is_none());
    }
}
