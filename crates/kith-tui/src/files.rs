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
        None => (args, String::new()),
    };
    let mut out = Vec::new();
    let mut rest = paths.trim();
    while !rest.is_empty() {
        let (path, after) = match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
            Some((quoted, after)) => (quoted, after),
            None => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
        };
        if !path.is_empty() {
            out.push(path.to_owned());
        }
        rest = after.trim_start();
    }
    (out, text)
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
    }
}
