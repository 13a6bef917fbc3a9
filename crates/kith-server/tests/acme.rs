//! A server with a domain name gets a certificate browsers trust by ACME:
//! a real ACME server (Pebble, with pebble-challtestsrv answering its DNS)
//! validates the TLS-ALPN-01 challenge on kith's own HTTPS port, and then
//! HTTPS and WebTransport present a certificate that chains to the CA,
//! while native clients keep their pinned identity on the same port.
//!
//! Needs Debian's `pebble` (`.ci/run` installs it); without it the test
//! says it was skipped, except under CI (`CI=true`), where it fails.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PASSWORD, start_retrying};
use kith_client::Trust;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "chat.kith.test";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(program: &str) -> bool {
    Command::new(program).arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A port free on both TCP and UDP (kith takes the pair).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Pebble's own API certificate (for 127.0.0.1) and the CA that signed it
/// (what kith is told to trust for the API), written to `dir`.
fn api_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    // Named: a certificate without a subject must mark its alternative
    // names critical, which webpki refuses.
    ca.distinguished_name.push(rcgen::DnType::CommonName, "kith test ACME API CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "pebble");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let (root, crt, pem_key) = (dir.join("pebble-ca.crt"), dir.join("pebble.crt"), dir.join("pebble.key"));
    std::fs::write(&root, ca_cert.pem()).unwrap();
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&pem_key, key.serialize_pem()).unwrap();
    (root, crt, pem_key)
}

/// A rustls client that trusts only `root` (the CA Pebble issues from).
fn trusting(root: &CertificateDer<'static>, alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// Pebble's current root, from its management API (served with the API
/// certificate, signed by the CA the test made).
async fn pebble_root(management: SocketAddr, api_root: &Path) -> CertificateDer<'static> {
    let api = CertificateDer::from_pem_file(api_root).unwrap();
    let tls = trusting(&api, b"http/1.1");
    let tcp = tokio::net::TcpStream::connect(management).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(
        format!("GET /roots/0 HTTP/1.1\r\nHost: {management}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let pem = answer.split_once("\r\n\r\n").unwrap().1;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Runs web/test/browser.mjs's "acme" scenario against the server, with
/// Pebble's root trusted by Chromium the way a user's system trusts a public
/// CA: in the NSS database of a home directory of its own. Without Node,
/// Playwright, Chromium or NSS's certutil it says so and returns, except
/// under CI.
fn in_chromium(root: &CertificateDer<'_>, port: u16, tmp: &Path) {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let chromium = ["chromium", "chromium-browser"].into_iter().find_map(on_path);
    let ready = on_path("node").is_some()
        && on_path("certutil").is_some()
        && web.join("node_modules/playwright-core").exists()
        && chromium.is_some();
    if !ready {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the ACME browser check needs Node, npm ci in web/, Chromium and certutil under CI (.ci/run installs them)"
        );
        eprintln!(
            "SKIPPED: the ACME browser check needs Node, `npm ci` in web/, Chromium and certutil (libnss3-tools)"
        );
        return;
    }
    let home = tmp.join("home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let root_pem = tmp.join("pebble-root.pem");
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(root)
    };
    std::fs::write(&root_pem, format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"))
        .unwrap();
    let db = format!("sql:{}", nssdb.display());
    let certutil = |args: &[&str]| {
        let ok = Command::new("certutil").args(args).stdout(Stdio::null()).status().unwrap().success();
        assert!(ok, "certutil {args:?}");
    };
    certutil(&["-d", &db, "-N", "--empty-password"]);
    certutil(&["-d", &db, "-A", "-n", "pebble", "-t", "C,,", "-i", root_pem.to_str().unwrap()]);
    let out = Command::new("node")
        .arg("test/browser.mjs")
        .current_dir(&web)
        .env("SCENARIO", "acme")
        .env("HOME", &home)
        .env("KITH_WEB", format!("https://{DOMAIN}:{port}/"))
        .env("HOSTS", format!("MAP {DOMAIN} 127.0.0.1"))
        .env("SHOTS", tmp.join("shots"))
        .env("CHROMIUM", chromium.unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Where `program` is on the PATH, if it is.
fn on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[tokio::test]
async fn a_server_with_a_domain_gets_a_certificate_browsers_trust_by_acme() {
    if !installed("pebble") || !installed("pebble-challtestsrv") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the ACME test needs Debian's pebble under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: the ACME test needs Pebble (Debian package `pebble`)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (api_root, api_cert, api_key) = api_certificate(tmp.path());
    let (kith_port, acme_port, management_port, dns_port, dns_management) =
        (free_port(), free_port(), free_port(), free_port(), free_port());

    // Every name resolves to 127.0.0.1: where kith listens.
    let _dns = Killed(
        Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{dns_management}"), "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{management_port}"),
        "certificate": api_cert, "privateKey": api_key,
        "httpPort": 5002, "tlsPort": kith_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    let config_path = tmp.path().join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let _pebble = Killed(
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random pauses and no deliberately bad nonces: a test, not a soak.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let directory = format!("https://127.0.0.1:{acme_port}/dir");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", acme_port)).await.is_err() {
        assert!(Instant::now() < deadline, "pebble did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let data = tmp.path().join("data");
    let start = |data: std::path::PathBuf| {
        let mut config = kith_server::Config::new(format!("127.0.0.1:{kith_port}").parse().unwrap(), data);
        config.limits = kith_server::Limits::unlimited();
        config.public_address = Some(format!("{DOMAIN}:{kith_port}"));
        config.acme = Some(kith_server::acme::AcmeConfig {
            domain: DOMAIN.into(),
            directory: directory.clone(),
            ca_root: Some(api_root.clone()),
            contact: vec![],
        });
        config
    };
    let server = start_retrying(start(data.clone())).await;
    let root = pebble_root(format!("127.0.0.1:{management_port}").parse().unwrap(), &api_root).await;

    // Within a minute the HTTPS port presents a certificate for the domain
    // that chains to the CA.
    let https = Arc::new(trusting(&root, b"http/1.1"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let tls = loop {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", kith_port)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(https.clone());
        match connector.connect(ServerName::try_from(DOMAIN).unwrap(), tcp).await {
            Ok(tls) => break tls,
            Err(e) => {
                assert!(Instant::now() < deadline, "no CA-signed certificate after a minute: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let get = async |path: &str| {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", kith_port)).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(https.clone())
            .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await.unwrap();
        answer
    };
    drop(tls);
    let page = get("/").await;
    assert!(page.to_ascii_lowercase().contains("strict-transport-security"), "HSTS once trusted: {page}");
    let details = get("/api/webtransport").await;
    assert!(details.contains(r#""hashes":[]"#), "no certificate hashes needed: {details}");

    // WebTransport on the UDP port presents the same CA-signed certificate.
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(trusting(&root, b"h3")).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn =
        endpoint.connect(server.local_addr(), DOMAIN).unwrap().await.expect("h3 with the CA's certificate");
    let url: url::Url = format!("https://{DOMAIN}:{kith_port}/kith").parse().unwrap();
    web_transport_quinn::Session::connect(conn, url).await.expect("a WebTransport session");

    // Native clients still pin the server's own identity on the same port.
    let (native, _) = kith_client::Client::connect(
        &server.local_addr().to_string(),
        Trust::Pin(server.fingerprint().into()),
    )
    .await
    .unwrap();
    let code = server.setup_code().unwrap().to_owned();
    native
        .register("olive", PASSWORD, Some(kith_client::proto::register_request::Credential::SetupCode(code)))
        .await
        .unwrap();
    native.close().await;

    // And Chromium, trusting Pebble's root as it would a public CA's, loads
    // the page and opens WebTransport without any hash.
    let scratch = tmp.path().to_owned();
    let ca = root.clone();
    // Off the runtime's thread: the server in this process must keep serving.
    tokio::task::spawn_blocking(move || in_chromium(&ca, kith_port, &scratch)).await.unwrap();

    // The certificate is kept: a restart serves it at once, before any order.
    assert!(data.join(format!("acme/{DOMAIN}.crt")).exists());
    server.shutdown().await.unwrap();
    let server = start_retrying(start(data.clone())).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", kith_port)).await.unwrap();
    tokio_rustls::TlsConnector::from(https.clone())
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .expect("the stored certificate, right after the restart");
    server.shutdown().await.unwrap();
}
