//! Bots, end to end: made from the shell, connected with the client
//! library like any program would, answering slash commands that people
//! run with `kith run` — against a real server.

mod common;

use std::path::Path;

use common::*;
use kith_client::proto::{self as v1, event::Body, option_value::Value};
use kith_client::{Client, Trust};

fn option(name: &str, t: v1::OptionType) -> v1::CommandOption {
    v1::CommandOption {
        name: name.into(),
        description: format!("the {name}"),
        r#type: t as i32,
        required: true,
    }
}

fn command(name: &str, description: &str, options: Vec<v1::CommandOption>) -> v1::Command {
    v1::Command { bot_id: 0, name: name.into(), description: description.into(), options }
}

/// A bot as a program would write one: it signs in with its token, offers
/// `/echo text` (answered in public), `/count n` (progress, then an answer
/// for the invoker alone) and `/slow` (never answered), and answers calls
/// until its connection ends. Runs on its own thread.
fn run_bot(server: &Served, token: &str) -> std::thread::JoinHandle<String> {
    let (addr, pin, token) = (server.addr.clone(), server.fingerprint.clone(), token.to_owned());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let bot = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (client, _) = Client::connect(&addr, Trust::Pin(pin)).await.unwrap();
            client.authenticate(&token).await.unwrap();
            let commands = vec![
                command("echo", "says it back", vec![option("text", v1::OptionType::String)]),
                command("count", "counts to n", vec![option("n", v1::OptionType::Integer)]),
                command("slow", "never answers", Vec::new()),
                command("logs", "streams its log", Vec::new()),
            ];
            client.register_commands(commands).await.unwrap();
            ready_tx.send(()).unwrap();
            while let Some(event) = client.next_event().await {
                let Some(Body::Call(call)) = event.body else { continue };
                let value =
                    |name: &str| call.options.iter().find(|o| o.name == name).and_then(|o| o.value.clone());
                let answer = |text: String, last: bool, public: bool| v1::AnswerCallRequest {
                    call_id: call.call_id,
                    text,
                    r#final: last,
                    public,
                    error: String::new(),
                };
                match (call.name.as_str(), value("text"), value("n")) {
                    ("echo", Some(Value::String(text)), _) => {
                        client.answer_call(answer(text, true, true)).await.unwrap();
                    }
                    ("count", _, Some(Value::Integer(n))) => {
                        for i in 1..=n {
                            client.answer_call(answer(i.to_string(), false, false)).await.unwrap();
                        }
                        client.answer_call(answer(format!("counted to {n}"), true, false)).await.unwrap();
                    }
                    ("logs", _, _) => {
                        // A stream for the invoker: a pipe, then the answer.
                        let to = call.user.as_ref().unwrap().id;
                        let pipe = client.open_pipe(to, "log", 0).await.unwrap();
                        let log = b"line one\nline two\n".to_vec();
                        client.pipe_send(&pipe.key, &log[..], |_| {}).await.unwrap();
                        client.answer_call(answer("that was the log".into(), true, false)).await.unwrap();
                    }
                    _ => {}
                }
            }
            client.closed().await
        })
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the bot connected");
    bot
}

fn make_bot(alice: &Path) -> String {
    let made: serde_json::Value =
        serde_json::from_str(&kith(alice, &["bot", "create", "Family", "weather", "--json"], "")).unwrap();
    assert_eq!(made["bot"], "weather");
    made["token"].as_str().unwrap().to_owned()
}

/// Runs `kith run`; returns (stdout, stderr).
fn run(config: &Path, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(KITH)
        .arg("run")
        .args(args)
        .env("KITH_CONFIG_DIR", config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "kith run {args:?} failed: {stderr}");
    (stdout, stderr)
}

#[test]
fn a_bot_made_from_the_shell_answers_slash_commands_run_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    let err = kith_fails(&bob, &["bot", "create", "Family", "other"]);
    assert!(err.contains("lack the permission to make bots"), "{err}");
    let token = make_bot(&alice);
    let bot = run_bot(&server, &token);

    // Progress streams to the invoker in order; the answer is theirs alone.
    let (answer, progress) = run(&bob, &["Family/general", "/count", "n=5"]);
    assert_eq!(answer.trim(), "counted to 5");
    let steps: Vec<&str> = progress.lines().filter_map(|l| l.strip_prefix("… ")).collect();
    assert_eq!(steps, ["1", "2", "3", "4", "5"], "{progress}");
    // A public answer is the bot's message, which everyone sees.
    let (answer, said) = run(&bob, &["Family/general", "echo", "hello", "world"]);
    assert_eq!(answer.trim(), "hello world");
    assert!(said.contains("posted in Family/general as message"), "{said}");
    let history = kith(&carol, &["history", "Family/general", "--json"], "");
    let messages: Vec<serde_json::Value> =
        history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = messages.last().unwrap();
    assert_eq!((last["author"].as_str(), last["body"].as_str()), (Some("weather"), Some("hello world")));
    assert_eq!(last["author_bot"], true);
    assert!(!history.contains("counted to"), "the ephemeral answer went to bob only");

    // A bot may answer with a stream: it arrives on stdout, then the answer.
    let (out, _) = run(&bob, &["Family/general", "/logs"]);
    assert_eq!(out, "line one\nline two\nthat was the log\n");

    // Every member sees what is offered; a wrong call says how to call it.
    let list = kith(&carol, &["bot", "list", "Family"], "");
    assert!(list.contains("weather [bot]") && list.contains("/count n:integer  counts to n"), "{list}");
    let err = kith_fails(&bob, &["run", "Family/general", "/count"]);
    assert!(err.contains("/count needs n (usage: /count n:integer)"), "{err}");
    let err = kith_fails(&bob, &["run", "Family/general", "/weather"]);
    assert!(err.contains("no bot in Family offers /weather") && err.contains("/echo"), "{err}");

    // The bot's token makes a profile; no password opens the account.
    let weather = tmp.path().join("weather");
    kith(&weather, &["login", "weather", "--server", &server.addr, "--token-stdin"], &format!("{token}\n"));
    assert!(kith(&weather, &["whoami"], "").contains("weather"));
    let err = kith_fails_given(
        &tmp.path().join("x"),
        &["login", "weather", "--server", &server.addr, "--password-stdin"],
        b"guess1234\n",
    );
    assert!(err.contains("do not match"), "{err}");

    // A new token disconnects the bot and the old one stops working.
    let fresh = kith(&alice, &["bot", "token", "Family", "weather"], "");
    assert!(fresh.trim().starts_with("kith_") && fresh.trim() != token);
    let why = bot.join().unwrap();
    assert!(why.contains("token was replaced"), "{why}");
    let err = kith_fails(&weather, &["whoami"]);
    assert!(err.contains("signed out"), "{err}");

    // The bot's commands are kept across a restart.
    let addr = server.addr.clone();
    drop(server);
    let _restarted = serve_on(&addr, &data, &[]);
    let list = kith(&carol, &["bot", "list", "Family"], "");
    assert!(list.contains("/echo text:string"), "{list}");
}

#[test]
fn a_command_the_bot_leaves_unanswered_fails_for_the_invoker_after_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let _bot = run_bot(&server, &make_bot(&alice));
    let started = std::time::Instant::now();
    let err = kith_fails(&bob, &["run", "Family/general", "/slow"]);
    assert!(err.contains("@weather did not answer /slow within 10 s"), "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(10));
}

/// Starts an example bot (examples/bots/) as its program would be run, with
/// the bot's profile in `config`; returns once it says it is ready.
fn start_example(program: &[&str], config: &Path, env: &[(&str, &str)]) -> Example {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bots");
    let child = std::process::Command::new(program[0])
        .args(&program[1..])
        .current_dir(&examples)
        .env("KITH", KITH)
        .env("KITH_CONFIG_DIR", config)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed and waited for on drop, ready or not.
    let mut example = Example(child);
    let stderr = example.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line =
            rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the example bot says it is ready");
        if line.contains("ready") {
            return example;
        }
    }
}

struct Example(std::process::Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bots_in_python_and_in_bash_answer_through_the_stdio_bridge() {
    if !have("the example bots", &["python3", "bash", "jq"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    let login = |name: &str| {
        let made: serde_json::Value =
            serde_json::from_str(&kith(&alice, &["bot", "create", "Family", name, "--json"], "")).unwrap();
        let config = tmp.path().join(name);
        let token = format!("{}\n", made["token"].as_str().unwrap());
        kith(&config, &["login", name, "--server", &server.addr, "--token-stdin"], &token);
        config
    };

    // Python, standard library only.
    let helper = login("helper");
    let _python = start_example(&["python3", "echo.py"], &helper, &[]);
    let (answer, _) = run(&bob, &["Family/general", "/echo", "hi", "from", "bob"]);
    assert_eq!(answer.trim(), "hi from bob");
    let (answer, progress) = run(&bob, &["Family/general", "/countdown", "3"]);
    assert_eq!(answer.trim(), "liftoff");
    let steps: Vec<&str> = progress.lines().filter_map(|l| l.strip_prefix("… ")).collect();
    assert_eq!(steps, ["3", "2", "1"], "{progress}");
    let err = kith_fails(&bob, &["run", "Family/general", "/countdown", "1000"]);
    assert!(err.contains("pick a number from 0 to 100"), "the bot's own error: {err}");

    // Bash and jq: it says hello in a channel, then answers /ping.
    let listed = kith(&alice, &["community", "list", "--json"], "");
    let family: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let general = family["channels"][0]["id"].as_str().unwrap().to_owned();
    let pinger = login("pinger");
    let _bash = start_example(&["bash", "ping.sh"], &pinger, &[("CHANNEL_ID", &general)]);
    let (answer, _) = run(&carol, &["Family/general", "ping"]);
    assert_eq!(answer.trim(), "pong");
    let history = kith(&carol, &["history", "Family/general"], "");
    assert!(history.contains("pinger [bot]: pinger is here: try /ping"), "marked as a bot: {history}");
}
