//! The README's examples and the man pages' EXAMPLES, run as written.
//!
//! README: every ```` ```sh ```` block carries a marker in its info string, ```` ```sh
//! example:KIND ````, and a block without one fails the test. Man pages: the table in
//! `natlens::cli::examples`, which `natlens generate` renders into EXAMPLES. KIND says what an
//! example needs, and the harness provides it:
//!
//! - `lab-host`: each line runs in host `a` of a lab whose own server runs on 203.0.113.10
//!   (`natlens lab up --with-server`, one lab for all of them);
//! - `daemon`: each line runs in the lab's server host and must still run after it says it
//!   listens; it is then stopped;
//! - `listener` / `caller`: each line runs in `a` (`b`) and a call from `b` (a `natlens listen
//!   --id bob` on `a`) is the other end; both must succeed (a caller's listener only must start);
//! - `nothing`: each line runs on this machine and needs nothing;
//! - `root-with-lab`: the block runs as one script on this machine while that lab is left
//!   running by `lab up` and is the only one;
//! - `root`: the block runs as one script on this machine with no lab of ours up; labs it leaves
//!   are torn down after it;
//! - `shown REASON`: shown, not run (a `.example` name, a file of one's own, an install).
//!
//! As written means: `natlens` is the binary this test was built with (its directory first on
//! PATH, and `target/release/natlens` in the scratch directory the commands run in points to
//! it), `sudo` runs the command as is (we are root already), a line starting with `cargo` is
//! the build this test is part of and is skipped. A command that exits non-zero fails the test
//! with its output. Needs root and a lab: otherwise SKIPPED (a failure under CI).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natlens::cli::examples::{self, Needs};
use natlens::lab::{state, teardown};

/// How long one example may take (a demo with a 25 ms delay takes about 2 s).
const EXAMPLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a server or a listener may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(15);
/// How long a caller's listener may take to end after the call before it is interrupted.
const LISTENER_GRACE: Duration = Duration::from_secs(1);

/// One example to run: where it came from, its command line(s), what it needs.
#[derive(Debug, Clone)]
struct Case {
    origin: String,
    script: String,
    needs: Needs,
}

/// Every ```` ```sh ```` block of `markdown` with its kind; an error names a block without one.
fn readme_cases(markdown: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.trim_start().starts_with("```"))
            .collect();
        let mut words = info.split_whitespace();
        if words.next() != Some("sh") {
            continue;
        }
        let origin = format!("README.md:{}", number + 1);
        let kind = words.next().and_then(|w| w.strip_prefix("example:"));
        let needs = match kind {
            Some("lab-host") => Needs::LabHost,
            Some("daemon") => Needs::Daemon,
            Some("listener") => Needs::Listener,
            Some("caller") => Needs::Caller,
            Some("root") => Needs::Root,
            Some("root-with-lab") => Needs::RootWithLab,
            Some("nothing") => Needs::Nothing,
            Some("shown") if words.next().is_some() => Needs::Shown("see README"),
            _ => {
                return Err(format!(
                    "{origin}: ```sh needs example:KIND (shown with a reason)"
                ))
            }
        };
        let script = body.join("\n");
        if matches!(needs, Needs::Root | Needs::RootWithLab | Needs::Shown(_)) {
            cases.push(Case {
                origin,
                script,
                needs,
            });
        } else {
            let commands = body.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
            cases.extend(commands.map(|command| Case {
                origin: origin.clone(),
                script: command.to_owned(),
                needs,
            }));
        }
    }
    Ok(cases)
}

fn man_cases() -> Vec<Case> {
    examples::PAGES
        .iter()
        .flat_map(|(page, list)| {
            list.iter().map(move |example| Case {
                origin: format!("{page}(1)"),
                script: example.command.to_owned(),
                needs: example.needs,
            })
        })
        .collect()
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(path).expect("reading README.md")
}

/// A block without a marker, or shown without a reason, is refused; a marked one is read.
#[test]
fn blocks_must_say_how_they_run() {
    assert!(readme_cases("```sh\nnatlens nat\n```\n").is_err());
    assert!(readme_cases("```sh example:shown\nnatlens nat\n```\n").is_err());
    assert!(readme_cases("```sh example:somewhere\nnatlens nat\n```\n").is_err());
    let cases =
        readme_cases("```sh example:lab-host\nnatlens nat\n\nnatlens nat --json\n```\n").unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[1].script, "natlens nat --json");
    assert_eq!(cases[1].needs, Needs::LabHost);
    let root = readme_cases("```sh example:root\na\nb\n```\n```json\n{}\n```\n").unwrap();
    assert_eq!(
        root.len(),
        1,
        "a root block runs as one script; other languages are not run"
    );
    assert_eq!(root[0].script, "a\nb");
}

/// Every block is classified and every natlens line names the binary as a user would: the
/// part that needs no root.
#[test]
fn every_readme_block_says_how_it_runs() {
    let cases = readme_cases(&readme()).unwrap_or_else(|err| panic!("{err}"));
    assert!(
        cases
            .iter()
            .filter(|c| c.needs != Needs::Shown("see README"))
            .count()
            >= 10,
        "the README should show runnable examples: {cases:#?}"
    );
}

#[test]
fn readme_and_man_page_examples_run_as_written() {
    if !common::lab_available() {
        return;
    }
    if let Some(others) = labs_left_running() {
        common::skip(&format!(
            "labs left running by `lab up` ({others}) would make the examples' lab ambiguous"
        ));
        return;
    }
    let started = Instant::now();
    let scratch = Scratch::new();
    let mut cases = readme_cases(&readme()).unwrap_or_else(|err| panic!("{err}"));
    cases.extend(man_cases());
    let mut seen = BTreeSet::new();
    cases.retain(|case| seen.insert(case.script.clone()));

    let mut lab = SharedLab::up(&scratch);
    let in_lab = [
        Needs::Nothing,
        Needs::LabHost,
        Needs::Daemon,
        Needs::Listener,
        Needs::Caller,
        Needs::RootWithLab,
    ];
    let mut ran = 0;
    for case in cases.iter().filter(|c| in_lab.contains(&c.needs)) {
        let took = Instant::now();
        lab.run(&scratch, case);
        eprintln!(
            "ran {} `{}` in {:?}",
            case.origin,
            case.script,
            took.elapsed()
        );
        ran += 1;
    }
    drop(lab);
    for case in cases.iter().filter(|c| c.needs == Needs::Root) {
        let took = Instant::now();
        run_root(&scratch, case);
        eprintln!("ran {} (root script) in {:?}", case.origin, took.elapsed());
        ran += 1;
    }
    let shown = cases
        .iter()
        .filter(|c| matches!(c.needs, Needs::Shown(_)))
        .count();
    eprintln!(
        "{ran} examples ran, {shown} shown only, in {:.1?}",
        started.elapsed()
    );
}

/// The prefixes of labs left running by `natlens lab up`, when there are any.
fn labs_left_running() -> Option<String> {
    let left: Vec<String> = state::list()
        .into_iter()
        .filter(|s| s.owner_pid.is_none())
        .map(|s| s.prefix)
        .collect();
    (!left.is_empty()).then(|| left.join(", "))
}

/// The directory the examples run in: `target/release/natlens` there is this test's natlens, a
/// `sudo` that runs its command as is comes second on PATH. Removed on drop.
struct Scratch {
    dir: PathBuf,
    path: std::ffi::OsString,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("natlens-examples-{}", std::process::id()));
        let release = dir.join("target/release");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_natlens"), release.join("natlens")).unwrap();
        let sudo = bin.join("sudo");
        std::fs::write(&sudo, "#!/bin/sh\nexec \"$@\"\n").unwrap();
        std::process::Command::new("chmod")
            .args(["755", sudo.to_str().unwrap()])
            .status()
            .unwrap();
        let exe_dir = Path::new(env!("CARGO_BIN_EXE_natlens")).parent().unwrap();
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let dirs = [exe_dir.to_path_buf(), bin]
            .into_iter()
            .chain(std::env::split_paths(&inherited));
        let path = std::env::join_paths(dirs).unwrap();
        Scratch { dir, path }
    }

    /// `bash -e -o pipefail -c SCRIPT` in the scratch directory, on this machine (a failing
    /// command fails the script, also before a pipe); `cargo` lines are the build this test is
    /// part of.
    fn shell(&self, script: &str) -> Command {
        let script: Vec<&str> = script
            .lines()
            .filter(|l| !l.trim_start().starts_with("cargo "))
            .collect();
        let mut command = Command::new("bash");
        command
            .args(["-e", "-o", "pipefail", "-c", &script.join("\n")])
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .stdin(Stdio::null());
        command
    }

    /// `natlens lab exec --lab PREFIX HOST -- bash -o pipefail -c COMMAND` in the scratch
    /// directory.
    fn in_host(&self, prefix: &str, host: &str, command: &str) -> Command {
        let mut exec = Command::new(env!("CARGO_BIN_EXE_natlens"));
        exec.args([
            "lab", "exec", "--lab", prefix, host, "--", "bash", "-o", "pipefail", "-c", command,
        ])
        .current_dir(&self.dir)
        .env("PATH", &self.path)
        .stdin(Stdio::null());
        exec
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command` to its end (killing it after `EXAMPLE_LIMIT`); fails the test unless it
/// exits 0.
fn run_ok(case: &Case, mut command: Command) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("starting the example");
    let output = wait_limited(child, EXAMPLE_LIMIT);
    assert!(
        output.status.success(),
        "{}: `{}` failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        case.origin,
        case.script,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn wait_limited(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// A process whose stderr is read line by line on a thread, to wait for a readiness line.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    fn spawn(mut command: Command, stdin: Option<&str>) -> Watched {
        command.stderr(Stdio::piped()).stdout(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("starting the example");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; false when it ended or took too long.
    fn wait_for(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + READY_LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    fn stderr(&mut self) -> String {
        self.seen.extend(self.lines.try_iter());
        self.seen.join("\n")
    }

    /// SIGINT, as Ctrl-C: natlens logs out on the way out, so the ID is free again at once.
    fn interrupt(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab the examples share, left running by `natlens lab up --with-server` as a reader's
/// would be; brought up again when an example (`lab down`) took it away. Torn down on drop.
struct SharedLab {
    prefix: String,
}

impl SharedLab {
    fn up(scratch: &Scratch) -> SharedLab {
        let mut command = scratch.shell("natlens lab up --with-server --json");
        let up = command.output().unwrap();
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let state: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
        SharedLab {
            prefix: state["prefix"].as_str().unwrap().to_owned(),
        }
    }

    fn run(&mut self, scratch: &Scratch, case: &Case) {
        if teardown::is_gone(&self.prefix) {
            *self = SharedLab::up(scratch);
        }
        match case.needs {
            Needs::Nothing | Needs::RootWithLab => drop(run_ok(case, scratch.shell(&case.script))),
            Needs::LabHost => drop(run_ok(
                case,
                scratch.in_host(&self.prefix, "a", &case.script),
            )),
            Needs::Daemon => self.daemon(scratch, case),
            Needs::Listener => self.listener(scratch, case),
            Needs::Caller => self.caller(scratch, case),
            Needs::Root | Needs::Shown(_) => unreachable!("not run in the shared lab"),
        }
    }

    /// A server in the server host: it must say it listens and still run a moment later.
    fn daemon(&self, scratch: &Scratch, case: &Case) {
        let command = scratch.in_host(&self.prefix, "server", &format!("exec {}", case.script));
        let mut server = Watched::spawn(command, None);
        let listening = server.wait_for("listening");
        std::thread::sleep(Duration::from_millis(300));
        let running = server.child.try_wait().unwrap().is_none();
        assert!(
            listening && running,
            "{}: `{}` did not keep running:\n{}",
            case.origin,
            case.script,
            server.stderr()
        );
    }

    /// The example listens on a; a call from b must connect and both must exit 0.
    fn listener(&self, scratch: &Scratch, case: &Case) {
        let mut listen = Watched::spawn(scratch.in_host(&self.prefix, "a", &case.script), None);
        assert!(
            listen.wait_for("waiting"),
            "{}: `{}` never waited for a call:\n{}",
            case.origin,
            case.script,
            listen.stderr()
        );
        let call = "natlens call bob --server 203.0.113.10 --id test-caller";
        let caller = Case {
            origin: format!("the call to {}", case.origin),
            script: call.to_owned(),
            needs: Needs::Caller,
        };
        let mut command = scratch.in_host(&self.prefix, "b", call);
        command.stdin(Stdio::piped());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello from the test\n")
            .unwrap();
        let output = wait_limited(child, EXAMPLE_LIMIT);
        assert!(
            output.status.success(),
            "{}: {}",
            caller.origin,
            String::from_utf8_lossy(&output.stderr)
        );
        let deadline = Instant::now() + EXAMPLE_LIMIT;
        let status = loop {
            if let Some(status) = listen.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: listen never ended",
                case.origin
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "{}: `{}` failed ({status}):\n{}",
            case.origin,
            case.script,
            listen.stderr()
        );
    }

    /// `natlens listen --id bob` waits on a; the example calls from b and must exit 0.
    fn caller(&self, scratch: &Scratch, case: &Case) {
        let listen = "exec natlens listen --server 203.0.113.10 --id bob";
        let mut listener = Watched::spawn(scratch.in_host(&self.prefix, "a", listen), Some(""));
        assert!(
            listener.wait_for("waiting"),
            "{}: bob's listener never waited:\n{}",
            case.origin,
            listener.stderr()
        );
        run_ok(case, scratch.in_host(&self.prefix, "b", &case.script));
        // A call that punched ends the listener too; one that did not (--no-punch, --dry-run)
        // leaves it waiting: Ctrl-C logs it out, so bob is free for the next example.
        let deadline = Instant::now() + LISTENER_GRACE;
        while listener.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        listener.interrupt();
        let _ = listener.child.wait();
    }
}

impl Drop for SharedLab {
    fn drop(&mut self) {
        let _ = teardown::by_prefix(&self.prefix);
    }
}

/// A root script on this machine; labs it leaves behind are torn down after it.
fn run_root(scratch: &Scratch, case: &Case) {
    let before = teardown::all_prefixes();
    let result = std::panic::catch_unwind(|| run_ok(case, scratch.shell(&case.script)));
    for prefix in teardown::all_prefixes().difference(&before) {
        let _ = teardown::by_prefix(prefix);
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
