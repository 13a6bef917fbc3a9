//! A real `kith serve` child process and real CLI invocations, shared by
//! the shell specs and the terminal client's end-to-end test.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const KITH: &str = env!("CARGO_BIN_EXE_kith");

/// A `kith serve` child process and what it announced.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub fingerprint: String,
    pub setup_code: Option<String>,
    /// The reset code printed for an owner without a password (imported).
    pub owner_code: Option<String>,
    /// The telnet gateway's address, when it was asked for.
    pub telnet: Option<String>,
    /// `https://HOST:PORT/`: the browser client, unless `--no-web`.
    pub web: Option<String>,
    /// `http://HOST:PORT/`: metrics and health, with `--metrics`.
    pub metrics: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(data: &Path) -> Served {
    serve_with(data, &[])
}

/// `kith serve` with extra flags (e.g. `--telnet 127.0.0.1:0`).
pub fn serve_with(data: &Path, extra: &[&str]) -> Served {
    serve_on("127.0.0.1:0", data, extra)
}

/// `kith serve` listening on `listen` (a restart on the same address).
pub fn serve_on(listen: &str, data: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(KITH)
        .args(["serve", "--listen", listen, "--data"])
        .arg(data)
        .args(extra)
        .env("KITH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kith serve starts");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let field = |key: &str| {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("{ready}"))
            .to_owned()
    };
    assert!(ready.starts_with("kith ready "), "{ready}");
    let (addr, fingerprint) = (field("quic="), field("fingerprint="));
    assert!(fingerprint.starts_with("sha256:") && fingerprint.len() == 71);
    // The setup code or the owner's reset code (if any) was printed to
    // stderr before the ready line.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(code) = line.split("--setup-code ").nth(1) {
                let _ = tx.send((true, code.trim().to_owned()));
            } else if let Some(code) = line.split(" --code ").nth(1) {
                let _ = tx.send((false, code.trim().to_owned()));
            }
        }
    });
    let code = rx.recv_timeout(std::time::Duration::from_millis(500)).ok();
    let setup_code = code.clone().filter(|(setup, _)| *setup).map(|(_, c)| c);
    let owner_code = code.filter(|(setup, _)| !*setup).map(|(_, c)| c);
    let telnet = ready.split_whitespace().find_map(|w| w.strip_prefix("telnet=")).map(str::to_owned);
    let web = ready.split_whitespace().find_map(|w| w.strip_prefix("web=")).map(str::to_owned);
    let metrics = ready.split_whitespace().find_map(|w| w.strip_prefix("metrics=")).map(str::to_owned);
    Served { child, addr, fingerprint, setup_code, owner_code, telnet, web, metrics }
}

/// Runs a CLI command with its own config dir; returns stdout, panics with
/// stderr on failure.
pub fn kith(config: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(KITH)
        .args(args)
        .env("KITH_CONFIG_DIR", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kith {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a CLI command that must fail, with `stdin` as its input; returns
/// its stderr.
pub fn kith_fails_given(config: &Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(KITH)
        .args(args)
        .env("KITH_CONFIG_DIR", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command may refuse before reading it all.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "kith {args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

/// Runs a CLI command that must fail; returns its stderr.
pub fn kith_fails(config: &Path, args: &[&str]) -> String {
    let out =
        Command::new(KITH).args(args).env("KITH_CONFIG_DIR", config).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "kith {args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

/// Alice registers as the owner (config in `alice`) and creates Family;
/// returns what `community create --json` printed (its invites included).
pub fn owner_creates_family(alice: &Path, server: &Served) -> serde_json::Value {
    let code = server.setup_code.clone().expect("a fresh server prints a setup code");
    kith(
        alice,
        &["register", "alice", "--server", &server.addr, "--setup-code", &code, "--password-stdin"],
        "alice's password\n",
    );
    serde_json::from_str(&kith(alice, &["community", "create", "Family", "--json"], "")).unwrap()
}

/// Alice (the owner) creates Family; bob and carol join it by invite. Returns
/// their config directories.
pub fn family_from_the_shell(tmp: &Path, server: &Served) -> [std::path::PathBuf; 3] {
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| tmp.join(n));
    let created = owner_creates_family(&alice, server);
    let invite = created["invite"].as_str().unwrap().to_owned();
    kith(&bob, &["register", "bob", "--invite", &invite, "--password-stdin"], "bob's password!\n");
    kith(&carol, &["register", "carol", "--invite", &invite, "--password-stdin"], "carol's password\n");
    [alice, bob, carol]
}

/// A program on the PATH, if it is there.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Whether `programs` are all installed. A test that needs one that is not
/// says it was skipped — except under CI (`CI=true`), where it fails,
/// because `.ci/run` installs them.
pub fn have(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| which(p).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run under CI: {} missing (.ci/run installs it)", missing.join(", "));
    }
    eprintln!("SKIPPED: {test} needs {}", missing.join(", "));
    false
}

/// A file of `len` bytes that compresses to nothing useful (so no layer
/// can cheat by shrinking it); returns the bytes.
pub fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(path, &bytes).unwrap();
    bytes
}
