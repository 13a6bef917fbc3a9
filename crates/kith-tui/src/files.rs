//! `/upload`: the app asks its host to upload files from the user's machine
//! ([`Action::Upload`]), shows how it goes in the status bar, and sends the
//! message naming them once every file is stored. A host without the user's
//! files (the telnet gateway) answers that it cannot.

use crate::{Action, App};

/// From the host: how an [`Action::Upload`] is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadInput {
    /// `sent` of `total` bytes of the file called `name` are on the server.
    Progress { id: u64, name: String, sent: u64, total: u64 },
    /// Every file is stored; these keys go in the message.
    Done { id: u64, keys: Vec<String> },
    /// Nothing was sent: why.
    Failed { id: u64, reason: String },
}

/// The upload in progress, if any (one at a time: the status bar has room
/// for one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploading {
    pub id: u64,
    pub channel: u64,
    /// Said with the files.
    pub text: String,
    /// What the status bar shows: `name 45%`.
    pub progress: String,
}

/// `/upload` arguments: paths separated by spaces (a path with spaces in
/// quotes), then optionally ` -- ` and the message.
pub(crate) fn parse(args: &str) -> (Vec<String>, String) {
    let (paths, text) = match args.split_once(" -- ") {
        Some((p, t)) => (p, t.trim().to_owned()),
        None => (args.strip_suffix(" --").unwrap_or(args), String::new()),
    };
    let paths = kith_proto::commands::split(paths).into_iter().filter(|p| !p.is_empty()).collect();
    (paths, text)
}

/// The words of what a terminal pastes when files are dropped on it:
/// separated by spaces or newlines, each quoted (`'…'`, `"…"`),
/// backslash-escaped (`my\ photo.jpg`) or a `file://` URI. Whether they are
/// files is for the host to say ([`crate::Input::PasteFiles`]).
pub fn dropped_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while chars.peek().is_some() {
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            chars.next();
            match c {
                c if c.is_whitespace() => break,
                '\\' => word.extend(chars.next()),
                '\'' | '"' => word.extend(chars.by_ref().take_while(|&x| x != c)),
                c => word.push(c),
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if let Some(uri) = word.strip_prefix("file://") {
            word = percent_decoded(uri);
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// `%20` and the like in a `file://` URI's path.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl App {
    pub(crate) fn upload_command(&mut self, args: &str) {
        let Some(channel) = self.active else {
            return self.complain("join a community first: /join <invite>");
        };
        if self.uploading.is_some() {
            return self.complain("one upload at a time: wait for this one to finish");
        }
        let (paths, text) = parse(args);
        if paths.is_empty() {
            return self.complain("usage: /upload PATH [PATH…] [-- message]");
        }
        if paths.len() > kith_proto::limits::MAX_ATTACHMENTS {
            return self.complain(format!(
                "a message carries at most {} files",
                kith_proto::limits::MAX_ATTACHMENTS
            ));
        }
        let id = self.next_request;
        self.next_request += 1;
        self.uploading = Some(Uploading { id, channel, text, progress: "starting".into() });
        self.actions.push_back(Action::Upload { id, channel, paths });
    }

    pub(crate) fn upload_input(&mut self, input: UploadInput) {
        let current = self.uploading.as_ref().map(|u| u.id);
        match input {
            UploadInput::Progress { id, name, sent, total } if Some(id) == current => {
                let pct = sent.saturating_mul(100).checked_div(total).unwrap_or(100);
                if let Some(u) = &mut self.uploading {
                    u.progress = format!("{} {pct}%", crate::text::clean_line(&name));
                }
            }
            UploadInput::Done { id, keys } if Some(id) == current => {
                let Some(u) = self.uploading.take() else { return };
                let active = self.active;
                self.active = Some(u.channel);
                self.send_with(&u.text, keys);
                self.active = active;
            }
            UploadInput::Failed { id, reason } if Some(id) == current => {
                self.uploading = None;
                self.complain(crate::text::clean_line(&reason));
            }
            // An upload this app no longer waits for.
            _ => {}
        }
    }

    /// Files dropped on the terminal: an `/upload` of them in the input,
    /// what was typed kept as the message, for the user to send with Enter.
    pub(crate) fn paste_files(&mut self, paths: &[String]) {
        let quoted: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
        let typed = self.editor.text().trim().to_owned();
        self.editor.set(&format!("/upload {} -- {typed}", quoted.join(" ")));
        let n = paths.len();
        self.say(format!(
            "Enter sends the {n} file{} (add a message after --)",
            if n == 1 { "" } else { "s" }
        ));
    }

    /// For the status bar: `uploading name 45%`.
    pub(crate) fn upload_status(&self) -> Option<String> {
        self.uploading.as_ref().map(|u| format!("uploading {}", u.progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_on_spaces_quotes_keep_them_and_a_message_follows_two_dashes() {
        assert_eq!(parse("a.jpg b.png"), (vec!["a.jpg".into(), "b.png".into()], String::new()));
        assert_eq!(
            parse("\"my photo.jpg\" clip.mp4 -- from the beach"),
            (vec!["my photo.jpg".into(), "clip.mp4".into()], "from the beach".into())
        );
        assert_eq!(parse("  "), (Vec::new(), String::new()));
        assert_eq!(parse("\"a b.jpg\" --"), (vec!["a b.jpg".into()], String::new()), "nothing said yet");
    }

    #[test]
    fn files_dropped_on_a_terminal_read_as_their_paths() {
        // GNOME Terminal, iTerm2, kitty, Konsole: quotes, escapes, URIs.
        assert_eq!(dropped_paths("'/home/a/my photo.jpg' "), ["/home/a/my photo.jpg"]);
        assert_eq!(
            dropped_paths("/home/a/my\\ photo.jpg /tmp/b.png"),
            ["/home/a/my photo.jpg", "/tmp/b.png"]
        );
        assert_eq!(
            dropped_paths("file:///home/a/my%20photo.jpg\nfile:///tmp/b.png\n"),
            ["/home/a/my photo.jpg", "/tmp/b.png"]
        );
        assert_eq!(dropped_paths("\"/x/y.txt\""), ["/x/y.txt"]);
        assert!(dropped_paths("   ").is_empty());
    }
}
