//! Password hashing and token minting: the slow or secret parts of accounts,
//! done at the edge so the hub never waits on them.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use kith_core::request::TokenHash;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// argon2id with OWASP's minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string. CPU- and memory-heavy: call it from a
/// blocking thread, under the edge's hashing semaphore.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters and a fresh salt cannot fail")
        .to_string()
}

/// Checks a password against a stored PHC string. With no stored hash (an
/// unknown user) it verifies against a fixed dummy so the answer takes as
/// long as for a real account.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (DUMMY.get_or_init(|| hash_password("not a real password")).as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    argon2().verify_password(password.as_bytes(), &parsed).is_ok() && real
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

/// A random code from an alphabet without look-alikes (no 0/O, 1/I/l).
/// Random letters and digits from an alphabet without look-alikes (no 0/O,
/// 1/I/L) and in one case, so a code read aloud or copied by hand works;
/// the hub compares codes without case and dashes (`request::code_key`).
/// 5 bits a character: 12 characters are 60 bits.
pub fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", Some(&phc)));
        assert!(!verify_password("wrong horse", Some(&phc)));
        assert!(!verify_password("not a real password", None));
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
