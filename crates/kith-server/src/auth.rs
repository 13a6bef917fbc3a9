//! Password hashing and token minting: the slow or secret parts of accounts,
//! done at the edge so the hub never waits on them.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use kith_core::request::TokenHash;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// argon2id with OWASP's minimum: 19 MiB, 2 passes, 1 lane.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(32)).expect("constant parameters are valid")
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Password hashing on a fixed set of threads, each owning one 19 MiB
/// block of memory that it reuses for every hash. argon2 allocating per
/// call on tokio's blocking threads left its memory in glibc's per-thread
/// arenas: 30 concurrent logins held 700 MB, waves of failed logins 3.5 GB.
/// Now the memory is at most `threads` × 19 MiB, whatever arrives; jobs
/// beyond a short queue are refused as busy rather than queued without end.
/// A hasher gives its memory back after [`Hashers::RELEASE_AFTER`] without a
/// job: a server nobody is signing in to does not hold 38 MiB for it.
#[derive(Debug)]
pub struct Hashers {
    jobs: crossbeam_channel::Sender<HashJob>,
}

enum HashJob {
    Hash { password: String, reply: tokio::sync::oneshot::Sender<String> },
    Verify { password: String, stored: Option<String>, reply: tokio::sync::oneshot::Sender<bool> },
}

/// The hashers' queue is full: the caller should say "busy, retry".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashersBusy;

impl Hashers {
    /// How long a hasher keeps its memory without a job. Allocating it again
    /// (19 MiB, mapped fresh) costs a few milliseconds of a first hash's ~40.
    pub const RELEASE_AFTER: Duration = Duration::from_secs(5);

    /// Starts `threads` hashing threads with `queue` jobs' room to wait,
    /// each giving its memory back after `release_after` without a job.
    pub fn start(threads: usize, queue: usize, release_after: Duration) -> std::io::Result<Hashers> {
        let (jobs, rx) = crossbeam_channel::bounded::<HashJob>(queue);
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("kith-hasher-{n}")).spawn(move || {
                let mut memory = Vec::new();
                loop {
                    let job = match rx.recv_timeout(release_after) {
                        Ok(job) => job,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            memory = Vec::new();
                            continue;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    };
                    if memory.is_empty() {
                        memory = hashing_memory(params().block_count());
                    }
                    match job {
                        HashJob::Hash { password, reply } => {
                            let _ = reply.send(hash_with(&password, &mut memory));
                        }
                        HashJob::Verify { password, stored, reply } => {
                            let _ = reply.send(verify_with(&password, stored.as_deref(), &mut memory));
                        }
                    }
                }
            })?;
        }
        Ok(Hashers { jobs })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashersBusy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.try_send(HashJob::Hash { password, reply }).map_err(|_| HashersBusy)?;
        answer.await.map_err(|_| HashersBusy)
    }

    /// Checks a password against a stored PHC string; with none (an unknown
    /// user) against a dummy, so that both take as long and answer the same.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, HashersBusy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.try_send(HashJob::Verify { password, stored, reply }).map_err(|_| HashersBusy)?;
        answer.await.map_err(|_| HashersBusy)
    }
}

/// Room for `blocks` of argon2's memory, which goes back to the system when
/// dropped. glibc serves an allocation from its own mapping, and unmaps it
/// when freed, once it is past its mmap threshold; the threshold rises with
/// what is freed but never past 32 MiB. So the room reserved is past that,
/// and only the `blocks` written are resident.
fn hashing_memory(blocks: usize) -> Vec<Block> {
    const ALWAYS_MAPPED: usize = 32 * 1024 * 1024 / std::mem::size_of::<Block>() + 1;
    let mut memory = Vec::with_capacity(blocks.max(ALWAYS_MAPPED));
    memory.resize(blocks, Block::default());
    memory
}

/// Hashes a password into a PHC string, in the caller's memory.
fn hash_with(password: &str, memory: &mut [Block]) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    argon2(params())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut *memory)
        .expect("hashing with valid parameters and a 16-byte salt cannot fail");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params().try_into().expect("valid parameters"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    };
    phc.to_string()
}

/// Checks a password against a PHC string, in the caller's memory (a hash
/// made with more memory than that gets its own, once).
fn verify_with(password: &str, stored: Option<&str>, memory: &mut Vec<Block>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (DUMMY.get_or_init(|| hash_with("not a real password", memory)).as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let hashed = argon2(params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut memory[..blocks],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected) && real
}

/// A new bearer token (256 random bits) and its hash.
pub fn new_token() -> (String, TokenHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String =
        std::iter::once("kith_".to_owned()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect();
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Random letters and digits from an alphabet without look-alikes (no 0/O,
/// 1/I/L) and in one case, so a code read aloud or copied by hand works;
/// the hub compares codes without case and dashes (`request::code_key`).
/// 5 bits a character: 12 characters are 60 bits.
pub fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// A one-time code for a person to type: 12 characters of
/// [`random_code`] in groups of four (`7KQ2-MXNB-4HTR`).
pub fn grouped_code() -> String {
    let c = random_code(12);
    format!("{}-{}-{}", &c[..4], &c[4..8], &c[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hashers = Hashers::start(1, 4, Duration::from_millis(50)).unwrap();
        let phc = hashers.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        // The hasher's memory went back meanwhile, and comes again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(hashers.verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!hashers.verify("wrong horse".into(), Some(phc)).await.unwrap());
        assert!(!hashers.verify("not a real password".into(), None).await.unwrap());
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        use argon2::password_hash::PasswordHasher;
        // What earlier versions stored (and what any argon2id PHC string is).
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let phc = argon2(Params::new(8 * 1024, 1, 1, None).unwrap())
            .hash_password(b"old password", &salt)
            .unwrap()
            .to_string();
        let mut memory = vec![Block::default(); 8];
        assert!(verify_with("old password", Some(&phc), &mut memory));
        assert!(!verify_with("new password", Some(&phc), &mut memory));
        assert!(!verify_with("old password", Some("$argon2id$garbage"), &mut memory));
    }

    #[test]
    fn tokens_are_distinct_and_hash_stably() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(token_hash(&a), ha);
        assert_eq!(a.len(), 5 + 64);
    }
}
