//! The committed man pages and completions must match what the clap tree renders today.
//!
//! They are committed so packagers and users get them without building, which means a change to
//! `src/cli.rs` can leave them stale. These tests regenerate everything in memory and fail with
//! the command that fixes the drift, so the fix is one command away rather than a diff hunt.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use natlens::exit;
use natlens::generate::{self, Rendered};

/// What a maintainer runs to bring the committed files back in line.
const REGENERATE: &str = "cargo run -- generate --out .";

/// The repository root, where `man/` and `completions/` are committed.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rendered() -> Vec<Rendered> {
    generate::render_all().expect("rendering man pages and completions")
}

/// Generated section-1 pages, as text.
fn pages() -> Vec<(PathBuf, String)> {
    rendered()
        .into_iter()
        .filter(|(path, _)| path.starts_with("man"))
        .map(|(path, bytes)| (path, String::from_utf8(bytes).expect("man pages are UTF-8")))
        .collect()
}

/// "missing" or "out of date" for a rendered file whose committed copy differs, else `None`.
fn drift(path: &Path, expected: &[u8]) -> Option<String> {
    match fs::read(root().join(path)) {
        Err(_) => Some(format!("{} is missing", path.display())),
        Ok(committed) if committed != expected => {
            Some(format!("{} is out of date", path.display()))
        }
        Ok(_) => None,
    }
}

/// Files under the output directories that are neither rendered nor hand-written: pages of a
/// removed subcommand, say, which would otherwise keep shipping.
fn stale(rendered: &[Rendered]) -> Vec<String> {
    let known: BTreeSet<&Path> = rendered.iter().map(|(path, _)| path.as_path()).collect();
    generate::OUTPUT_DIRS
        .iter()
        .filter_map(|dir| fs::read_dir(root().join(dir)).ok())
        .flatten()
        .map(|entry| entry.expect("listing an output directory").path())
        .map(|path| {
            path.strip_prefix(root())
                .expect("inside the root")
                .to_path_buf()
        })
        .filter(|path| !known.contains(path.as_path()) && !generate::is_hand_written(path))
        .map(|path| format!("{} is not generated any more; delete it", path.display()))
        .collect()
}

#[test]
fn committed_files_match_the_cli() {
    let rendered = rendered();
    let mut problems: Vec<String> = rendered
        .iter()
        .filter_map(|(path, bytes)| drift(path, bytes))
        .collect();
    problems.extend(stale(&rendered));
    assert!(
        problems.is_empty(),
        "man pages or completions drifted from src/cli.rs:\n  {}\nrun `{REGENERATE}` and commit \
         man/ and completions/",
        problems.join("\n  ")
    );
}

#[test]
fn every_generated_page_has_exit_status() {
    for (path, page) in pages() {
        let section = page
            .split_once(".SH \"EXIT STATUS\"\n")
            .unwrap_or_else(|| panic!("{} has no EXIT STATUS section", path.display()))
            .1;
        let section = section.split("\n.SH ").next().unwrap_or_default();
        for (code, _) in exit::CODES {
            assert!(
                section.contains(&format!("\\fB{code}\\fR")),
                "{} does not document exit status {code}",
                path.display()
            );
        }
    }
}

#[test]
fn every_generated_page_points_to_the_protocol_page() {
    for (path, page) in pages() {
        let see_also = page
            .split_once(".SH \"SEE ALSO\"\n")
            .unwrap_or_else(|| panic!("{} has no SEE ALSO section", path.display()))
            .1;
        assert!(
            see_also.contains("\\fBnatlens\\-protocol\\fR(7)"),
            "{} does not refer to natlens-protocol(7)",
            path.display()
        );
    }
}

/// Every page is listed in its parent's SUBCOMMANDS: `natlens-lab` in `natlens`,
/// `natlens-lab-up` in `natlens-lab`.
#[test]
fn parent_pages_list_every_subcommand() {
    let pages = pages();
    for (path, _) in &pages[1..] {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let parent = stem.rsplit_once('-').expect("a subcommand page").0;
        let parent_path = PathBuf::from(format!("man/{parent}.1"));
        let (_, parent_page) = pages
            .iter()
            .find(|(path, _)| *path == parent_path)
            .unwrap_or_else(|| panic!("{} is generated", parent_path.display()));
        let subcommands = parent_page
            .split_once(".SH SUBCOMMANDS\n")
            .unwrap_or_else(|| panic!("{parent} has a SUBCOMMANDS section"))
            .1;
        let listed = format!("{}(1)", stem.replace('-', "\\-"));
        assert!(
            subcommands.contains(&listed),
            "{parent}.1 does not list {stem}"
        );
    }
}

#[test]
fn protocol_page_is_hand_written_and_committed() {
    let page = fs::read_to_string(root().join("man/natlens-protocol.7"))
        .expect("man/natlens-protocol.7 is committed");
    assert!(
        page.contains("\n.TH NATLENS-PROTOCOL 7 "),
        "protocol page has no .TH line"
    );
    let rendered = rendered();
    assert!(
        rendered
            .iter()
            .all(|(path, _)| !generate::is_hand_written(path)),
        "a rendered file would overwrite a hand-written one"
    );
}

/// `write_all` writes exactly what `render_all` returns and leaves a hand-written page alone.
#[test]
fn write_all_writes_the_rendered_files_and_keeps_hand_written_ones() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated_files");
    let _ = fs::remove_dir_all(&out);
    let protocol = out.join("man/natlens-protocol.7");
    fs::create_dir_all(protocol.parent().unwrap()).unwrap();
    fs::write(&protocol, "hand-written\n").unwrap();

    generate::write_all(&out).expect("write_all");

    for (path, bytes) in rendered() {
        assert_eq!(
            fs::read(out.join(&path)).unwrap(),
            bytes,
            "{}",
            path.display()
        );
    }
    assert_eq!(fs::read_to_string(&protocol).unwrap(), "hand-written\n");
}

/// Two renders must give the same bytes, or the drift test would fail on a clean tree.
#[test]
fn rendering_is_deterministic() {
    assert_eq!(rendered(), rendered());
}

/// The hand-written protocol page must show the codes the code actually uses.
#[test]
fn protocol_page_lists_the_wire_constants() {
    use natlens::wire::natlens as nl;
    use natlens::wire::stun::{Class, MessageType};
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/man/natlens-protocol.7"
    ))
    .unwrap();
    let methods = [
        ("LOGIN", nl::LOGIN),
        ("KEEPALIVE", nl::KEEPALIVE),
        ("LOGOUT", nl::LOGOUT),
        ("CALL", nl::CALL),
        ("PEER\\-HELLO", nl::PEER_HELLO),
        ("PUNCH", nl::PUNCH),
    ];
    for (name, method) in methods {
        let row = format!(
            "{name}|{:#05X}|{:#06X}|{:#06X}|{:#06X}|",
            method.0,
            MessageType::new(method, Class::Request).to_u16(),
            MessageType::new(method, Class::Success).to_u16(),
            MessageType::new(method, Class::Error).to_u16()
        )
        .replace("0X", "0x");
        assert!(page.contains(&row), "protocol page lacks the row {row}");
    }
    let attributes = [
        nl::ID,
        nl::PEER_ID,
        nl::CALL_ID,
        nl::SERVER_NAME,
        nl::VIA,
        nl::PUNCH_NONCE,
        nl::PUNCH_ECHO,
        nl::OBSERVED_ADDRESS,
        nl::TRANSPORTS,
        nl::DELTA,
        nl::PREDICTED_PORTS,
        nl::NAT_PROFILE,
        nl::PUNCH_TARGET,
        nl::PUNCH_PROBE,
        nl::EXPIRY,
    ];
    for attribute in attributes {
        let code = format!("{:#06X}", attribute.0).replace("0X", "0x");
        assert!(page.contains(&code), "protocol page lacks attribute {code}");
    }
    use nl::error;
    let codes = [
        error::BAD_REQUEST,
        error::UNAUTHORIZED,
        error::NOT_LOGGED_IN,
        error::UNKNOWN_PEER,
        error::PEER_TIMEOUT,
        error::ID_TAKEN,
        error::NO_SESSION,
        error::STALE_NONCE,
        error::QUOTA_REACHED,
        error::SERVER_FULL,
    ];
    for code in codes {
        assert!(
            page.contains(&format!("\n{code}|")),
            "protocol page lacks error code {code}"
        );
    }
}

/// Runs the built `natlens` with `args`; its exit code and stdout.
fn natlens(args: &[&str]) -> (Option<i32>, Vec<u8>) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .output()
        .expect("running natlens");
    (output.status.code(), output.stdout)
}

/// `natlens completions SHELL` prints the committed script, byte for byte.
#[test]
fn the_binary_prints_the_committed_completions() {
    let shells = [
        ("bash", "natlens.bash"),
        ("zsh", "_natlens"),
        ("fish", "natlens.fish"),
        ("elvish", "natlens.elv"),
        ("powershell", "_natlens.ps1"),
    ];
    for (shell, file) in shells {
        let committed = fs::read(root().join("completions").join(file)).expect(file);
        assert_eq!(
            natlens(&["completions", shell]),
            (Some(0), committed),
            "natlens completions {shell}"
        );
    }
}

/// `natlens man PAGE` prints the committed page, whichever way PAGE is spelled.
#[test]
fn the_binary_prints_the_committed_man_pages() {
    let committed = |file: &str| fs::read(root().join("man").join(file)).expect(file);
    for (path, _) in rendered().iter().filter(|(p, _)| p.starts_with("man")) {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let short = stem.strip_prefix("natlens-").unwrap_or(stem);
        let file = format!("{stem}.1");
        assert_eq!(
            natlens(&["man", short]),
            (Some(0), committed(&file)),
            "{short}"
        );
        assert_eq!(
            natlens(&["man", stem]),
            (Some(0), committed(&file)),
            "{stem}"
        );
    }
    assert_eq!(natlens(&["man"]), (Some(0), committed("natlens.1")));
    assert_eq!(
        natlens(&["man", "lab", "up"]),
        (Some(0), committed("natlens-lab-up.1"))
    );
    assert_eq!(
        natlens(&["man", "protocol"]),
        (Some(0), committed("natlens-protocol.7"))
    );
    let (code, out) = natlens(&["man", "no-such-page"]);
    assert_eq!((code, out.is_empty()), (Some(2), true));
}

/// The ENVIRONMENT section of a page, or a panic naming the page.
fn environment(path: &Path, page: &str) -> String {
    let section = page
        .split_once(".SH ENVIRONMENT\n")
        .unwrap_or_else(|| panic!("{} has no ENVIRONMENT section", path.display()))
        .1;
    section
        .split("\n.SH ")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Every section-1 page has ENVIRONMENT, listing the variables its command reads and no other.
#[test]
fn every_generated_page_documents_its_environment() {
    let expect = |stem: &str| -> &[&str] {
        match stem {
            "natlens" => &["NATLENS_SERVER", "NATLENS_KEY", "NO_COLOR", "LANG"],
            "natlens-nat" => &["NATLENS_SERVER", "NO_COLOR", "LANG"],
            "natlens-login" | "natlens-listen" | "natlens-call" => {
                &["NATLENS_SERVER", "NATLENS_KEY", "NO_COLOR", "LANG"]
            }
            "natlens-completions" | "natlens-man" => &[],
            _ => &["NO_COLOR", "LANG"],
        }
    };
    let all = [
        "NATLENS_SERVER",
        "NATLENS_KEY",
        "NO_COLOR",
        "LC_ALL",
        "LANG",
    ];
    for (path, page) in pages() {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let section = environment(&path, &page);
        for variable in all {
            let listed = section.contains(&format!("\\fB{variable}\\fR"));
            let wanted = expect(&stem).contains(&variable)
                || (variable == "LC_ALL" && expect(&stem).contains(&"LANG"));
            assert_eq!(listed, wanted, "{stem}: {variable}");
        }
    }
}
