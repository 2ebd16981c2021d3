//! What `natlens nat` prints for people, end to end on loopback against `natlens server` in
//! RFC 5780 mode: piped, nothing on stdout is wider than 80 columns (messages on stderr stay one
//! line each in a pipe); in the C locale, nothing is outside ASCII; `-q` leaves stderr empty and
//! `-v` shows every probe. Every packet stays on loopback.

use std::process::{Command, Output};

mod common;
use common::loopback_stun::{Mode, Server};

/// `natlens nat ARGS` with stdout and stderr piped and the locale set to `lang` alone.
fn nat(lang: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natlens"))
        .arg("nat")
        .args(args)
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env_remove("NO_COLOR")
        .env("LANG", lang)
        .output()
        .expect("running natlens nat")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("natlens prints UTF-8")
}

/// Lines wider than `width` characters.
fn too_wide(text: &str, width: usize) -> Vec<String> {
    text.lines()
        .filter(|line| line.chars().count() > width)
        .map(str::to_owned)
        .collect()
}

fn succeeded(run: &Output, server: &Server) {
    assert!(
        run.status.success(),
        "natlens nat failed: {}\n{}\n{}",
        text(&run.stderr),
        text(&run.stdout),
        server.describe()
    );
}

#[test]
fn piped_report_fits_80_columns() {
    let server = Server::natlens(Mode::Full, &[]);
    let address = server.primary.to_string();
    // -v adds a line per probe on stderr.
    let run = nat("C.UTF-8", &["--server", &address, "-v"]);
    succeeded(&run, &server);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(stdout.contains("public address"), "{stdout}");
    assert!(
        stdout.contains('│'),
        "UTF-8 borders in a UTF-8 locale:\n{stdout}"
    );
    // The verdict opens the report as one line, whatever its width: a record to paste into a
    // ticket or match with grep. Everything after it fits.
    let (verdict, rest) = stdout
        .split_once("\n\n")
        .expect("a verdict, then the table");
    assert_eq!(verdict.lines().count(), 1, "{stdout}");
    assert!(verdict.contains("reaches"), "{verdict}");
    assert_eq!(too_wide(rest, 80), Vec::<String>::new(), "{stdout}");
    // Messages on a piped stderr stay one line each, records for grep: -v gave one per probe.
    let probes = stderr
        .lines()
        .filter(|l| l.starts_with("natlens: probe "))
        .count();
    assert_eq!(probes, stderr.lines().count(), "{stderr}");
    assert!(probes > 8, "{stderr}");
    // The narrative is wrapped, not one line per paragraph.
    let narrative = stdout
        .split("\n\n")
        .find(|paragraph| paragraph.starts_with("Over UDP"))
        .unwrap_or_default();
    assert!(narrative.lines().count() > 2, "{stdout}");
}

#[test]
fn c_locale_gets_ascii_only() {
    let server = Server::natlens(Mode::Full, &[]);
    let address = server.primary.to_string();
    let run = nat("C", &["--server", &address, "-v"]);
    succeeded(&run, &server);
    for (stream, bytes) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        let non_ascii: Vec<String> = text(bytes)
            .lines()
            .filter(|line| !line.is_ascii())
            .map(str::to_owned)
            .collect();
        assert_eq!(non_ascii, Vec::<String>::new(), "{stream}");
    }
    let stdout = text(&run.stdout);
    assert!(stdout.contains("+---"), "ASCII borders:\n{stdout}");
    // An arrow spelled in ASCII: the probe lines' "local -> server".
    assert!(text(&run.stderr).contains(" -> "), "{}", text(&run.stderr));
}

#[test]
fn quiet_leaves_stderr_empty_and_verbose_shows_every_probe() {
    let server = Server::natlens(Mode::Full, &[]);
    // A name, so that a normal run says what it resolved to on stderr.
    let name = format!("localhost:{}", server.primary.port());

    let normal = nat("C.UTF-8", &["--server", &name]);
    succeeded(&normal, &server);
    assert!(
        text(&normal.stderr).contains("resolved to 127.0.0.1"),
        "{}",
        text(&normal.stderr)
    );

    let quiet = nat("C.UTF-8", &["--server", &name, "-q"]);
    succeeded(&quiet, &server);
    assert_eq!(text(&quiet.stderr), "", "-q: nothing but the result");
    assert!(text(&quiet.stdout).contains("public address"));

    let verbose = nat(
        "C.UTF-8",
        &["--server", &name, "--verbose", "--samples", "4"],
    );
    succeeded(&verbose, &server);
    let stderr = text(&verbose.stderr);
    for transport in ["udp", "tcp"] {
        let samples = stderr
            .lines()
            .filter(|line| line.starts_with(&format!("natlens: probe {transport} ")))
            .filter(|line| line.contains(" sample "))
            .count();
        assert_eq!(samples, 4, "{transport} samples in\n{stderr}");
    }
    assert!(stderr.contains("(primary): public 127.0.0.1:"), "{stderr}");

    let both = nat("C.UTF-8", &["--server", &name, "-q", "-v"]);
    assert_eq!(both.status.code(), Some(2), "-q and -v conflict");
}
