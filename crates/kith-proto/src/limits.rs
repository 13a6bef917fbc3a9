//! The protocol's text limits, in one place: the server enforces them
//! (`kith_core::text`), clients check them before sending and tell people
//! the rules before asking (a password's before it is typed twice).

/// A message body: 1 to this many characters (Unicode scalar values).
pub const MESSAGE_MAX_CHARS: usize = 4000;

/// Files one message carries at most.
pub const MAX_ATTACHMENTS: usize = 10;

/// A password: at least this many characters, not all of them spaces...
pub const PASSWORD_MIN_CHARS: usize = 8;
/// ...and at most this many bytes of UTF-8 (argon2's cost stays ours to set).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// The password rules as a person reads them.
pub const PASSWORD_RULES: &str = "at least 8 characters, not only spaces";

/// A username: 2-32 letters, digits, `-` or `_`.
pub const USERNAME_RULES: &str = "2-32 letters, digits, '-' or '_'";

/// Why `password` breaks the rules, if it does.
pub fn password_problem(password: &str) -> Option<&'static str> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Some("too short: a password needs at least 8 characters");
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Some("too long: a password may be at most 1024 bytes");
    }
    if password.trim().is_empty() {
        return Some("a password cannot be only spaces");
    }
    if password.contains('\0') {
        return Some("a password cannot contain a NUL character");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_rules_as_stated() {
        assert_eq!(password_problem("correct horse"), None);
        assert!(password_problem("short").is_some());
        assert!(password_problem("        ").is_some(), "eight spaces");
        assert!(password_problem(&"x".repeat(1025)).is_some());
        assert_eq!(password_problem("ééééééééé"), None, "counted in characters, not bytes");
    }
}
