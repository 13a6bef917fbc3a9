//! Validated text: usernames, names, message bodies. Constructing one of these
//! types is the only validation; everything past the edge trusts them.

use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript, skeleton};

/// Why a piece of text was refused. The message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TextError {
    pub field: &'static str,
    pub problem: String,
}

fn refuse<T>(field: &'static str, problem: impl Into<String>) -> Result<T, TextError> {
    Err(TextError { field, problem: problem.into() })
}

/// Characters that change how surrounding text is shown without being seen:
/// bidi overrides and isolates, zero-width joiners and spaces, and the like.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// A registrable username. See `RegisterRequest` in proto/kith.proto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// NFKC-normalised, as the user typed it (case kept for display).
    pub name: String,
    /// Case-folded name: what login looks up.
    pub fold: String,
    /// UTS #39 confusable skeleton of the folded name: what must be unique.
    pub skeleton: String,
}

impl Username {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 32;
    /// Names a mention could not tell from a mass mention.
    pub const RESERVED: &[&str] = &["everyone", "here"];
    pub const GUEST_PREFIX: &str = "guest-";
    pub const DELETED_PREFIX: &str = "deleted-";

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        const F: &str = "username";
        if raw.len() > Self::MAX_CHARS * 4 {
            return refuse(F, format!("at most {} characters", Self::MAX_CHARS));
        }
        if raw.chars().any(|c| c.is_control() || is_invisible_or_bidi(c)) {
            return refuse(F, "contains an invisible or control character");
        }
        let name: String = raw.nfkc().collect();
        let count = name.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&count) {
            return refuse(F, format!("must be {}-{} characters", Self::MIN_CHARS, Self::MAX_CHARS));
        }
        if let Some(c) = name.chars().find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            return refuse(F, format!("may contain letters, digits, '_', '.' and '-', not {c:?}"));
        }
        if !name.chars().all(GeneralSecurityProfile::identifier_allowed) {
            return refuse(F, "contains a character not allowed in identifiers (UTS #39)");
        }
        let fold = Self::fold(&name);
        if Self::RESERVED.contains(&fold.as_str()) {
            return refuse(F, format!("{name:?} is reserved"));
        }
        let skeleton = skeleton(&fold).collect::<String>().to_lowercase();
        for (prefix, whose) in [(Self::GUEST_PREFIX, "guests"), (Self::DELETED_PREFIX, "deleted accounts")] {
            let key = self::skeleton(prefix).collect::<String>();
            if fold.starts_with(prefix) || skeleton.starts_with(&key) {
                return refuse(F, format!("names starting with {prefix:?} are kept for {whose}"));
            }
        }
        Ok(Self { name, fold, skeleton })
    }

    /// The name a deleted account leaves behind: `deleted-ID`. Like a
    /// guest's, no one can register it or a look-alike of it.
    pub fn deleted(id: u64) -> Self {
        let name = format!("{}{id}", Self::DELETED_PREFIX);
        let skeleton = skeleton(&name).collect::<String>().to_lowercase();
        Self { fold: name.clone(), name, skeleton }
    }

    /// The name the server gives its `n`th guest: `guest-7`. Registration
    /// refuses names with this prefix (and their look-alikes), so a guest's
    /// name never collides with or imitates an account's.
    pub fn guest(n: u64) -> Self {
        let name = format!("{}{n}", Self::GUEST_PREFIX);
        let skeleton = skeleton(&name).collect::<String>().to_lowercase();
        Self { fold: name.clone(), name, skeleton }
    }

    /// `n` if a folded name is a guest's (`guest-n`).
    pub fn guest_number(fold: &str) -> Option<u64> {
        let digits = fold.strip_prefix(Self::GUEST_PREFIX)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Absurdly long runs of digits are still guest-shaped.
        Some(digits.parse().unwrap_or(u64::MAX))
    }

    /// True if the name mixes scripts (e.g. Latin with a Cyrillic look-alike).
    /// Checked after uniqueness so that a look-alike of an existing name is
    /// reported as taken.
    pub fn is_mixed_script(&self) -> bool {
        !self.name.is_single_script()
    }

    /// The case-folded form of a name as typed at login.
    pub fn fold(raw: &str) -> String {
        raw.nfkc().flat_map(char::to_lowercase).collect()
    }
}

/// The look-alike keys of a name people see (a username, display name or
/// nickname): its UTS #39 skeleton taken as typed and after case folding.
/// Both, because case hides look-alikes either way: `aIice` (capital i)
/// looks like `alice` but folds to `aiice`; two names look alike when they
/// share a key.
pub fn look_alike_keys(name: &str) -> [String; 2] {
    let typed: String = name.nfkc().collect();
    let as_typed = skeleton(typed.trim()).collect::<String>().to_lowercase();
    let folded = skeleton(&Username::fold(typed.trim())).collect::<String>().to_lowercase();
    [as_typed, folded]
}

/// Checks free-form single-line text: display names, community names, topics.
fn line(field: &'static str, raw: &str, max_chars: usize, allow_empty: bool) -> Result<String, TextError> {
    if raw.len() > max_chars * 4 {
        return refuse(field, format!("at most {max_chars} characters"));
    }
    let text: String = raw.nfc().collect();
    let trimmed = text.trim();
    let count = trimmed.chars().count();
    if count > max_chars {
        return refuse(field, format!("at most {max_chars} characters"));
    }
    if count == 0 && !allow_empty {
        return refuse(field, "must not be empty");
    }
    if trimmed.chars().any(|c| c.is_control() || is_invisible_or_bidi(c)) {
        return refuse(field, "contains a control, invisible or bidi-override character");
    }
    Ok(trimmed.to_owned())
}

/// A display name: 1-64 characters, one line, nothing invisible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(pub String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("display name", raw, 64, false).map(Self)
    }
}

/// A role's name: 1-32 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(pub String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("role name", raw, 32, false).map(Self)
    }
}

/// A per-community nickname: 1-32 characters, one line. `None` clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(pub Option<String>);

impl Nickname {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let text = line("nickname", raw, 32, true)?;
        Ok(Self((!text.is_empty()).then_some(text)))
    }
}

/// A profile's status text: 0-128 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText(pub String);

impl StatusText {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("status", raw, 128, true).map(Self)
    }
}

/// A group conversation's name: 0-64 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(pub String);

impl GroupName {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("group name", raw, 64, true).map(Self)
    }
}

/// A moderator's reason for the audit log: 0-512 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reason(pub String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("reason", raw, 512, true).map(Self)
    }
}

/// A text option's value in a slash command: 1-1000 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionText(pub String);

impl OptionText {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("option value", raw, 1000, false).map(Self)
    }
}

/// A community name: 1-64 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunityName(pub String);

impl CommunityName {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("community name", raw, 64, false).map(Self)
    }
}

/// A channel topic: 0-1024 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(pub String);

impl Topic {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        line("topic", raw, 1024, true).map(Self)
    }
}

/// A channel name: 1-32 of `a-z 0-9 - _`, like Discord's. Uppercase letters
/// are lowered and spaces become dashes, so `General Chat` is `general-chat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(pub String);

impl ChannelName {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        slug("channel name", raw).map(Self)
    }
}

/// A slash command's or command option's name: the same rules as a
/// channel's (`/weather`, `city`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandName(pub String);

impl CommandName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, TextError> {
        slug(field, raw).map(Self)
    }
}

/// What a command or option is for: 0-100 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandText(pub String);

impl CommandText {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, TextError> {
        line(field, raw, 100, true).map(Self)
    }
}

/// 1-32 of `a-z 0-9 - _`; uppercase lowered, spaces made dashes.
fn slug(field: &'static str, raw: &str) -> Result<String, TextError> {
    let name: String =
        raw.trim().chars().map(|c| if c == ' ' { '-' } else { c.to_ascii_lowercase() }).collect();
    if name.is_empty() || name.len() > 32 {
        return refuse(field, "must be 1-32 characters");
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        return refuse(field, format!("may contain a-z, 0-9, '-' and '_', not {c:?}"));
    }
    Ok(name)
}

/// A message body: 1-4000 characters; no control characters but newline and
/// tab. Stored verbatim otherwise: rendering is the clients' job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(pub String);

impl Body {
    pub const MAX_CHARS: usize = kith_proto::limits::MESSAGE_MAX_CHARS;

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        const F: &str = "message";
        if raw.len() > Self::MAX_CHARS * 4 || raw.chars().count() > Self::MAX_CHARS {
            return refuse(F, format!("at most {} characters", Self::MAX_CHARS));
        }
        if raw.trim().is_empty() {
            return refuse(F, "must not be empty");
        }
        if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\n' && c != '\t') {
            return refuse(F, format!("contains the control character U+{:04X}", c as u32));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The `@name` words in the body, case-folded, in order, without repeats.
    pub fn mention_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(at) = rest.find('@') {
            // An '@' inside a word (an e-mail address) is not a mention.
            let before = self.0[..self.0.len() - rest.len() + at].chars().next_back();
            rest = &rest[at + 1..];
            if before.is_some_and(|c| c.is_alphanumeric()) {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(rest.len());
            let name = Username::fold(rest[..end].trim_end_matches(['.', '-']));
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// A client's idempotency nonce: 1-64 bytes of printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nonce(pub String);

impl Nonce {
    /// `None` for the empty string (no deduplication asked for).
    pub fn parse(raw: &str) -> Result<Option<Self>, TextError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return refuse("nonce", "must be 1-64 printable ASCII characters");
        }
        Ok(Some(Self(raw.to_owned())))
    }
}

/// An attachment's file name, cleaned rather than refused: a name is
/// only ever shown, so what a hostile one carries is taken out. What is
/// kept is the last path component, without control, invisible or bidi
/// characters, trimmed, at most 255 bytes; nothing left (or `.`, `..`)
/// becomes "file".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(pub String);

impl FileName {
    pub const MAX_BYTES: usize = 255;

    pub fn clean(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let kept: String = last.chars().filter(|&c| !c.is_control() && !is_invisible_or_bidi(c)).collect();
        let mut name = kept.trim();
        if name.len() > Self::MAX_BYTES {
            let mut end = Self::MAX_BYTES;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name = name[..end].trim_end();
        }
        match name {
            "" | "." | ".." => Self("file".into()),
            n => Self(n.to_owned()),
        }
    }
}

/// A password as received, before hashing: 8-1024 bytes.
///
/// The upper bound keeps argon2 cost independent of the attacker (A3); it is
/// checked before any hashing work.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub const MAX_BYTES: usize = kith_proto::limits::PASSWORD_MAX_BYTES;

    pub fn parse(raw: String) -> Result<Self, TextError> {
        match kith_proto::limits::password_problem(&raw) {
            Some(problem) => refuse("password", problem),
            None => Ok(Self(raw)),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn file_names_are_cleaned_to_something_safe_to_show() {
        let clean = |raw: &str| FileName::clean(raw).0;
        assert_eq!(clean("photo.jpg"), "photo.jpg");
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(clean("\u{202E}gpj.exe"), "gpj.exe");
        assert_eq!(clean("a\u{1b}[2Jb\u{0}c\u{200B}.txt"), "a[2Jbc.txt");
        assert_eq!(clean("  spaced  "), "spaced");
        for nothing in ["", "..", ".", "dir/", "\u{202E}"] {
            assert_eq!(clean(nothing), "file", "{nothing:?}");
        }
        let long = clean(&"é".repeat(200));
        assert!(long.len() <= FileName::MAX_BYTES && long.chars().all(|c| c == 'é'), "{}", long.len());
    }

    use super::*;

    fn key(name: &str) -> String {
        Username::parse(name).unwrap().skeleton
    }

    #[test]
    fn confusable_usernames_share_a_skeleton() {
        let alice = key("alice");
        assert_eq!(key("ALICE"), alice);
        assert_eq!(key("\u{0430}lice"), alice, "Cyrillic a");
        assert_eq!(key("ａｌｉｃｅ"), alice, "fullwidth");
        assert_eq!(key("a1ice"), key("alice"), "digit one as l");
        assert_ne!(key("bob"), alice);
    }

    #[test]
    fn invisible_and_control_characters_are_refused_in_usernames() {
        for bad in ["alice\u{200D}", "al\u{202E}ice", "alice\0x", "al ice", "a", "x".repeat(33).as_str()] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_deleted_accounts_name_and_its_look_alikes_cannot_be_registered() {
        let tombstone = Username::deleted(42);
        assert_eq!(tombstone.name, "deleted-42");
        for taken in [tombstone.name.as_str(), "Deleted-1", "de1eted-9", "deleted-bob"] {
            let refused = Username::parse(taken).unwrap_err().to_string();
            assert!(refused.contains("kept for deleted accounts"), "{taken:?}: {refused}");
        }
        assert!(Username::parse("deleted").is_ok() && Username::parse("undeleted-1").is_ok());
    }

    #[test]
    fn guest_names_and_their_look_alikes_cannot_be_registered() {
        for taken in ["guest-7", "Guest-12", "guest-", "guest-x", "gue\u{0455}t-1", "ｇｕｅｓｔ-3"] {
            let refused = Username::parse(taken).unwrap_err().to_string();
            assert!(refused.contains("kept for guests"), "{taken:?}: {refused}");
        }
        for fine in ["guest", "guests", "guest_7", "myguest-1"] {
            assert!(Username::parse(fine).is_ok(), "{fine:?}");
        }
        let g = Username::guest(7);
        assert_eq!((g.name.as_str(), Username::guest_number(&g.fold)), ("guest-7", Some(7)));
        assert_eq!(Username::guest_number("guest-x"), None);
        assert_eq!(Username::guest_number("guest-"), None);
    }

    #[test]
    fn mixed_script_is_detected() {
        assert!(Username::parse("\u{0430}lice").unwrap().is_mixed_script());
        assert!(!Username::parse("алиса").unwrap().is_mixed_script());
        assert!(!Username::parse("alice_01").unwrap().is_mixed_script());
    }

    #[test]
    fn body_refuses_control_characters_but_newline_and_tab() {
        assert!(Body::parse("line one\n\tline two").is_ok());
        for bad in ["\x1b[2J", "a\rb", "bell\x07", "\u{9b}31m", "", "  \n "] {
            assert!(Body::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Body::parse(&"x".repeat(4000)).is_ok());
        assert!(Body::parse(&"x".repeat(4001)).is_err());
    }

    #[test]
    fn mentions_are_words_after_at() {
        let body = Body::parse("hi @Alice and @bob, mail me@example.com @alice @carol.").unwrap();
        assert_eq!(body.mention_names(), ["alice", "bob", "carol"]);
    }

    #[test]
    fn channel_names_are_lowered_and_dashed() {
        assert_eq!(ChannelName::parse("General Chat").unwrap().0, "general-chat");
        assert!(ChannelName::parse("naïve").is_err());
    }

    #[test]
    fn password_length_is_capped_before_hashing() {
        assert!(Password::parse("x".repeat(1 << 20)).is_err());
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
    }
}
