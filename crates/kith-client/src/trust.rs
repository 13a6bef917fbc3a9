//! Server identity checks: pinning (like SSH's known_hosts), trust on first
//! use, and ordinary CA validation.

use std::sync::{Arc, Mutex};

use kith_proto::fingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};

/// How to decide whether the server is the one we mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Only a server whose certificate has this fingerprint (`sha256:<hex>`).
    Pin(String),
    /// Any server; the fingerprint seen is reported so the caller can pin it.
    /// A certificate that also validates against the web PKI is reported as such.
    FirstUse,
    /// A certificate from a public CA, valid for the host name.
    Ca,
}

/// What the handshake showed of the server's identity.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub fingerprint: Option<String>,
    pub ca_valid: bool,
}

#[derive(Debug)]
pub(crate) struct Verifier {
    trust: Trust,
    webpki: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
    pub(crate) seen: Arc<Mutex<Seen>>,
}

impl Verifier {
    pub(crate) fn new(trust: Trust, provider: &Arc<CryptoProvider>) -> Self {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("the bundled root store is not empty");
        Self { trust, webpki, algorithms: provider.signature_verification_algorithms, seen: Arc::default() }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let fp = fingerprint(end_entity);
        let ca_valid = self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .is_ok();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
            Seen { fingerprint: Some(fp.clone()), ca_valid };
        match &self.trust {
            Trust::Pin(pin) if *pin == fp => Ok(ServerCertVerified::assertion()),
            Trust::Pin(pin) => {
                Err(TlsError::General(format!("server identity changed: pinned {pin}, got {fp}")))
            }
            Trust::FirstUse => Ok(ServerCertVerified::assertion()),
            Trust::Ca if ca_valid => Ok(ServerCertVerified::assertion()),
            Trust::Ca => Err(TlsError::General(format!(
                "the certificate ({fp}) is not valid for this host under the web PKI"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
