//! The first run: which server, whether to trust its identity, and who you
//! are there. The host does the connecting; this only asks and remembers.

use kith_proto::limits::{PASSWORD_RULES, USERNAME_RULES, password_problem};
use kith_proto::v1::Registration;

use crate::editor::Editor;

/// What the host should do for the setup screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupAction {
    /// Connect to `address` (`host[:port]` or a `kith://` invite) and report
    /// the server's identity with [`SetupInput::Probed`]. Nothing is pinned yet.
    Probe { address: String },
    /// Log in or register; answer with [`crate::Input::Ready`] on success
    /// (after pinning `fingerprint` and saving the profile) or
    /// [`SetupInput::Failed`].
    SignIn(SignIn),
    /// Come in as a guest (only where [`SignInWays::guests`] offers it);
    /// answered like a sign-in.
    Guest,
}

/// How people may sign in where the server fixes the choice (the telnet
/// gateway's operator decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInWays {
    /// Log in or create an account with a password.
    pub passwords: bool,
    /// Come in as a guest, without an account.
    pub guests: bool,
}

impl Default for SignInWays {
    fn default() -> Self {
        SignInWays { passwords: true, guests: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub server: String,
    /// The identity the user accepted (or the invite vouched for).
    pub fingerprint: String,
    pub username: String,
    pub password: String,
    pub register: bool,
    /// Register with it, or join it after logging in.
    pub invite_code: Option<String>,
    /// Register as the server's owner with this code (a fresh server).
    pub setup_code: Option<String>,
    /// Set `password` as the new one with this code from the server's
    /// owner (a forgotten password, an imported account), and sign in.
    pub reset_code: Option<String>,
}

impl SignIn {
    /// What registering presents: the setup code, else the invite.
    pub fn credential(&self) -> Option<kith_proto::v1::register_request::Credential> {
        use kith_proto::v1::register_request::Credential;
        match (&self.setup_code, &self.invite_code) {
            (Some(setup), _) => Some(Credential::SetupCode(setup.clone())),
            (None, Some(invite)) => Some(Credential::InviteCode(invite.clone())),
            (None, None) => None,
        }
    }

    /// The request that signs in this way.
    pub fn request(&self) -> kith_proto::v1::client_message::Request {
        use kith_proto::v1::{self, client_message::Request};
        if let Some(code) = &self.reset_code {
            return Request::RedeemResetCode(v1::RedeemResetCodeRequest {
                username: self.username.clone(),
                code: code.clone(),
                new_password: self.password.clone(),
            });
        }
        if !self.register {
            return Request::Login(v1::LoginRequest {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        }
        Request::Register(v1::RegisterRequest {
            username: self.username.clone(),
            password: self.password.clone(),
            display_name: String::new(),
            credential: self.credential(),
        })
    }
}

/// What the host reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupInput {
    Probed(Result<Probe, String>),
    Failed(String),
}

/// A server the host reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `host:port`.
    pub server: String,
    /// `sha256:<hex>` of the certificate it presented.
    pub fingerprint: String,
    /// Why the identity needs no confirmation, if it does not: "pinned
    /// earlier", "the invite vouches for it", "valid certificate".
    pub vouched: Option<String>,
    /// The invite's code, when the address was an invite.
    pub invite_code: Option<String>,
    /// What creating an account there needs (`Unspecified`: not known).
    pub registration: Registration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Server,
    Trust,
    Choose,
    Username,
    Password,
    Confirm,
    /// Registering needs a code (an invite, or a fresh server's setup code)
    /// that the user has not given yet: asked first, before the password.
    Code,
    /// Signing in with a password reset code: asked after the username,
    /// before the new password.
    ResetCode,
    Busy,
}

#[derive(Debug)]
pub struct Setup {
    pub step: Step,
    pub field: Editor,
    pub probe: Option<Probe>,
    pub register: bool,
    pub username: String,
    password: String,
    /// What was typed at the `Code` step: a setup code or an invite's code,
    /// by what the server said registering needs. Only registering uses it.
    code: Option<String>,
    /// Signing in with a reset code from the server's owner: the code once
    /// typed, and a new password is chosen (as when registering).
    resetting: bool,
    reset_code: Option<String>,
    pub error: Option<String>,
    /// The server is the one hosting this app (the telnet gateway): no
    /// address or trust steps, and registering asks for an invite code.
    pub fixed: bool,
    /// Shown in red under the server (e.g. that telnet is unencrypted).
    pub warning: Option<String>,
    pub ways: SignInWays,
    /// The sign-in under way is a guest's (a refusal returns to the choice).
    guest: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            step: Step::Server,
            field: Editor::default(),
            probe: None,
            register: false,
            username: String::new(),
            password: String::new(),
            code: None,
            resetting: false,
            reset_code: None,
            error: None,
            fixed: false,
            warning: None,
            ways: SignInWays::default(),
            guest: false,
        }
    }
}

impl Setup {
    /// Signing in to the server that hosts the app: it starts at the choice
    /// between the `ways` it offers.
    pub fn fixed(server: String, warning: Option<String>, ways: SignInWays) -> Setup {
        Setup {
            step: Step::Choose,
            probe: Some(Probe {
                server,
                fingerprint: String::new(),
                vouched: None,
                invite_code: None,
                registration: Registration::Unspecified,
            }),
            fixed: true,
            warning,
            ways,
            ..Setup::default()
        }
    }

    /// The prompt and hint for the current step.
    pub fn prompt(&self) -> (&'static str, &'static str) {
        match self.step {
            Step::Server => (
                "Server address or invite link",
                "e.g. chat.example.org or kith://chat.example.org:7443/CODE?fp=sha256:…",
            ),
            Step::Trust => ("Trust this server? [y/n]", "compare it with what the server's owner sees"),
            Step::Choose => match (self.ways.passwords, self.ways.guests) {
                (true, true) => (
                    "[l] log in   [r] create an account   [g] come in as a guest",
                    "[c] I have a reset code from the server's owner",
                ),
                (false, true) => ("[g] come in as a guest", "guests get a name like guest-7"),
                _ => {
                    ("[l] log in   [r] create an account", "[c] I have a reset code from the server's owner")
                }
            },
            Step::Username if self.resetting => ("Username", "the account the code is for"),
            Step::Username => ("Username", USERNAME_RULES),
            Step::ResetCode => (
                "Reset code",
                "the one-time code the server's owner gave you (case and dashes do not matter)",
            ),
            Step::Password if self.resetting => ("Choose a new password", PASSWORD_RULES),
            Step::Password if self.register => ("Choose a password", PASSWORD_RULES),
            Step::Password => ("Password", "not shown as you type"),
            Step::Confirm => ("Password again", "to be sure it is the one you meant"),
            Step::Code => match self.registration() {
                Registration::SetupCode => (
                    "Setup code",
                    "this server has no owner yet: type the code `kith serve` printed when it first \
                     started, and the account you create owns the server (case and dashes do not matter)",
                ),
                Registration::Invite => ("Invite code or link", "from whoever invited you"),
                Registration::Open | Registration::Unspecified => {
                    ("Invite code or link", "from whoever invited you; empty if this server lets anyone join")
                }
            },
            Step::Busy => ("Connecting…", ""),
        }
    }

    /// What registering needs, as the server said.
    fn registration(&self) -> Registration {
        self.probe.as_ref().map_or(Registration::Unspecified, |p| p.registration)
    }

    /// Registering needs a code the user has not given yet.
    fn needs_code(&self) -> bool {
        let has_invite = self.probe.as_ref().is_some_and(|p| p.invite_code.is_some());
        match self.registration() {
            Registration::SetupCode => true,
            Registration::Invite => !has_invite,
            Registration::Open => false,
            // Not known: a gateway asks (its own server may need one); a
            // client that probed an older server goes ahead.
            Registration::Unspecified => self.fixed && !has_invite,
        }
    }

    /// The server answered `ServerInfo`.
    pub fn registration_known(&mut self, registration: Registration) {
        if let Some(p) = &mut self.probe {
            p.registration = registration;
        }
    }

    pub fn masked(&self) -> bool {
        matches!(self.step, Step::Password | Step::Confirm)
    }

    pub fn probed(&mut self, result: Result<Probe, String>) {
        match result {
            Ok(p) => {
                self.error = None;
                self.step = if p.vouched.is_some() { Step::Choose } else { Step::Trust };
                self.probe = Some(p);
            }
            Err(e) => {
                self.error = Some(e);
                self.step = Step::Server;
            }
        }
    }

    pub fn failed(&mut self, reason: String) {
        self.error = Some(reason);
        self.password.clear();
        self.field.clear();
        if std::mem::take(&mut self.guest) {
            self.step = Step::Choose;
            return;
        }
        if self.resetting && self.reset_code.take().is_some() {
            self.step = Step::ResetCode;
            return;
        }
        if self.register && self.code.take().is_some() {
            self.step = Step::Code;
            return;
        }
        self.step = Step::Username;
        self.field.set(&self.username.clone());
    }

    /// Enter on the current step: the next step, and maybe an action.
    pub fn submit(&mut self) -> Option<SetupAction> {
        let value = self.field.text().trim().to_owned();
        match self.step {
            Step::Server if value.is_empty() => None,
            Step::Server => {
                self.error = None;
                self.step = Step::Busy;
                self.field.clear();
                Some(SetupAction::Probe { address: value })
            }
            Step::Username if value.is_empty() => None,
            Step::Username => {
                self.username = value;
                self.field.clear();
                self.step = if self.resetting { Step::ResetCode } else { Step::Password };
                None
            }
            Step::ResetCode if value.is_empty() => None,
            Step::ResetCode => {
                self.error = None;
                self.reset_code = Some(value);
                self.field.clear();
                self.step = Step::Password;
                None
            }
            Step::Password if self.field.text().is_empty() => None,
            Step::Password => {
                let choosing = self.register || self.resetting;
                let problem = if choosing {
                    password_problem(self.field.text())
                } else if self.field.text().len() > kith_proto::limits::PASSWORD_MAX_BYTES {
                    Some("that is longer than any password can be")
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.error = Some(problem.to_owned());
                    self.field.clear();
                    return None;
                }
                self.error = None;
                self.password = self.field.take_secret();
                if choosing {
                    self.step = Step::Confirm;
                    None
                } else {
                    self.sign_in()
                }
            }
            Step::Confirm => {
                if self.field.take_secret() != self.password {
                    self.error = Some("the passwords differ; type it again".into());
                    self.password.clear();
                    self.step = Step::Password;
                    return None;
                }
                self.sign_in()
            }
            Step::Code if value.is_empty() && self.registration() != Registration::Unspecified => None,
            Step::Code => {
                self.error = None;
                if self.registration() == Registration::SetupCode {
                    self.code = Some(value);
                } else if !value.is_empty() {
                    // A full invite link works as well as its code.
                    match kith_proto::invite::InviteLink::parse(&value) {
                        Ok(link) => self.code = Some(link.code),
                        Err(e) => {
                            self.error = Some(e.to_string());
                            return None;
                        }
                    }
                }
                self.field.clear();
                self.step = Step::Username;
                None
            }
            Step::Trust | Step::Choose | Step::Busy => None,
        }
    }

    /// A one-letter answer on the trust and choice steps.
    pub fn answer(&mut self, c: char) -> Option<SetupAction> {
        match (self.step, c.to_ascii_lowercase()) {
            (Step::Trust, 'y') => self.step = Step::Choose,
            (Step::Trust, 'n') => {
                self.probe = None;
                self.step = Step::Server;
                self.error = Some("not trusted; nothing was saved".into());
            }
            (Step::Choose, 'l' | 'r' | 'c') if self.ways.passwords => {
                self.register = c.eq_ignore_ascii_case(&'r');
                self.resetting = c.eq_ignore_ascii_case(&'c');
                self.code = None;
                self.reset_code = None;
                self.step = if self.register && self.needs_code() { Step::Code } else { Step::Username };
                self.error = None;
            }
            (Step::Choose, 'g') if self.ways.guests => {
                self.step = Step::Busy;
                self.error = None;
                self.guest = true;
                return Some(SetupAction::Guest);
            }
            _ => {}
        }
        None
    }

    fn sign_in(&mut self) -> Option<SetupAction> {
        let probe = self.probe.clone()?;
        let setup_code = match self.registration() {
            Registration::SetupCode if self.register => self.code.clone(),
            _ => None,
        };
        self.step = Step::Busy;
        self.error = None;
        Some(SetupAction::SignIn(SignIn {
            server: probe.server,
            fingerprint: probe.fingerprint,
            username: self.username.clone(),
            password: std::mem::take(&mut self.password),
            register: self.register,
            invite_code: probe.invite_code.or(match setup_code {
                None if self.register => self.code.clone(),
                _ => None,
            }),
            setup_code,
            reset_code: self.reset_code.clone().filter(|_| self.resetting),
        }))
    }

    /// Esc: one step back.
    pub fn back(&mut self) {
        self.error = None;
        self.field.clear();
        self.step = match self.step {
            _ if self.fixed && matches!(self.step, Step::Choose | Step::Busy) => Step::Choose,
            Step::Server | Step::Trust | Step::Busy => {
                self.probe = None;
                Step::Server
            }
            Step::Choose => Step::Server,
            Step::Code => Step::Choose,
            Step::Username if self.register && self.needs_code() => Step::Code,
            Step::Username => Step::Choose,
            Step::ResetCode => Step::Username,
            Step::Password | Step::Confirm if self.resetting => Step::ResetCode,
            Step::Password | Step::Confirm => Step::Username,
        };
    }
}
