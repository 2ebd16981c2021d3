//! Renders man pages and shell completions from the clap tree in [`crate::cli`].
//!
//! The clap tree is the single source of truth for the command line, so nothing here describes an
//! option by hand: an option added to `cli.rs` shows up in `--help`, the man pages and all five
//! completion scripts at once. The outputs are committed (packagers and users without a Rust
//! toolchain need them), and `tests/generated_files.rs` regenerates them in memory through
//! [`render_all`] to catch a commit that changed the tree but not the files.
//!
//! Output is deterministic: no date in `.TH` and no build-dependent text other than the crate
//! version, so regenerating on another machine or day gives the same bytes.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::cli::{examples, Cli};
use crate::exit;

mod lab_completions;

/// One rendered file: its path relative to the repository root and its contents.
pub type Rendered = (PathBuf, Vec<u8>);

/// Files under `man/` and `completions/` that are written by hand, not rendered here.
///
/// [`write_all`] refuses to write over them and the drift test does not call them stale.
pub const HAND_WRITTEN: &[&str] = &["man/natlens-protocol.7"];

/// The directories [`write_all`] writes into, relative to the repository root.
pub const OUTPUT_DIRS: [&str; 2] = ["man", "completions"];

/// The hand-written wire-protocol page, as SEE ALSO names it: (page, section).
const PROTOCOL_PAGE: (&str, &str) = ("natlens-protocol", "7");

/// The hand-written protocol page itself, so `natlens man protocol` needs no copy of `man/`.
const PROTOCOL_TEXT: &str = include_str!("../man/natlens-protocol.7");

/// Every shell clap_complete supports, so no user is left without a script.
const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Writes `man/` and `completions/` under `root` (the repository root).
///
/// Only rendered files are written; hand-written pages such as `man/natlens-protocol.7` are left
/// alone, and a rendered file that would replace one is an error rather than a silent overwrite.
pub fn write_all(root: &Path) -> anyhow::Result<()> {
    for (relative, contents) in render_all()? {
        anyhow::ensure!(
            !is_hand_written(&relative),
            "refusing to overwrite hand-written {}",
            relative.display()
        );
        write_file(&root.join(&relative), &contents)?;
    }
    Ok(())
}

/// Renders every generated file into memory, in a stable order: man pages, then completions.
///
/// This is exactly what [`write_all`] writes; tests compare it with the committed files.
pub fn render_all() -> anyhow::Result<Vec<Rendered>> {
    let mut files = man_pages()?;
    files.extend(completions());
    Ok(files)
}

/// The man page `natlens man PAGE` prints: `asked` names a command (`nat`, `lab-up`,
/// `natlens-nat`, `natlens`, or empty for natlens(1)) or `protocol` for natlens-protocol(7).
/// The bytes are those `man/` holds; `None` for a page that does not exist.
pub fn man_page(asked: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let stem = page_stem(asked);
    if stem == PROTOCOL_PAGE.0 {
        return Ok(Some(PROTOCOL_TEXT.as_bytes().to_vec()));
    }
    let path = PathBuf::from(format!("man/{stem}.1"));
    let page = man_pages()?
        .into_iter()
        .find(|(rendered, _)| *rendered == path);
    Ok(page.map(|(_, contents)| contents))
}

/// The names `natlens man` takes, shortest form (`natlens`, `nat`, `lab-up`, …, `protocol`).
pub fn man_page_names() -> Vec<String> {
    let mut names: Vec<String> = page_commands(man_root())
        .iter()
        .map(|cmd| short_page_name(&page_name(cmd)))
        .collect();
    names.push(short_page_name(PROTOCOL_PAGE.0));
    names
}

/// `natlens-nat` → `nat`; `natlens` stays.
fn short_page_name(page: &str) -> String {
    page.strip_prefix("natlens-").unwrap_or(page).to_owned()
}

/// The file stem of the page `asked` names: `nat`, `natlens-nat` and `nat.1` are `natlens-nat`;
/// empty and `natlens` are `natlens`.
fn page_stem(asked: &str) -> String {
    let asked = asked.trim();
    let asked = asked
        .strip_suffix(".1")
        .or_else(|| asked.strip_suffix(".7"))
        .unwrap_or(asked);
    let name = asked
        .strip_prefix("natlens")
        .unwrap_or(asked)
        .trim_start_matches('-');
    if name.is_empty() {
        "natlens".to_owned()
    } else {
        format!("natlens-{name}")
    }
}

/// The completion script for `shell`, exactly as [`write_all`] writes it to `completions/`.
pub fn completion(shell: Shell) -> Rendered {
    completion_script(&completion_tree(), shell)
}

/// True for paths (relative to the repository root) listed in [`HAND_WRITTEN`].
pub fn is_hand_written(relative: &Path) -> bool {
    HAND_WRITTEN.iter().any(|hand| Path::new(hand) == relative)
}

fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// One page for `natlens` and one for each visible subcommand, nested ones included.
fn man_pages() -> anyhow::Result<Vec<Rendered>> {
    let commands = page_commands(man_root());
    let names: Vec<String> = commands.iter().map(page_name).collect();
    commands
        .iter()
        .map(|cmd| {
            let path = PathBuf::from(format!("man/{}.1", page_name(cmd)));
            Ok((path, render_page(cmd, &names)?))
        })
        .collect()
}

/// The clap tree, built so subcommands know their full names (`natlens-server`, `natlens server`).
///
/// The `help` subcommand is dropped because it has no page of its own; `natlens --help` and
/// `natlens help` stay as they are, since this copy of the tree is only used for rendering.
fn man_root() -> clap::Command {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    root
}

/// `cmd` followed by all its visible descendants, depth first; hidden ones such as `generate`
/// are maintainer tools and get no page.
fn page_commands(cmd: clap::Command) -> Vec<clap::Command> {
    let children: Vec<_> = cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let mut pages = vec![cmd];
    pages.extend(children.into_iter().flat_map(page_commands));
    pages
}

/// `natlens` or `natlens-<sub>`: the page name, which is also the file stem.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned()
}

/// Renders one section-1 page: clap_mangen's sections plus EXIT STATUS and SEE ALSO.
///
/// The sections are assembled one by one (rather than with `Man::render`) so that EXIT STATUS
/// sits before VERSION and SEE ALSO comes last, the order man-pages(7) asks for.
fn render_page(cmd: &clap::Command, all_pages: &[String]) -> anyhow::Result<Vec<u8>> {
    let name = page_name(cmd);
    let man = Man::new(cmd.clone());
    let mut out = Roff::new().render().into_bytes();
    out.extend_from_slice(title_line(cmd).as_bytes());
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        render(&mut buf).map(|()| out.extend_from_slice(strip_preamble(&buf)))
    };
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    if has_visible_arguments(cmd) {
        section(&|w| man.render_options_section(w))?;
    }
    if has_visible_subcommands(cmd) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    if let Some(extra) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        let extra = extra.to_string();
        section(&|w| extra_sections(&extra).to_writer(w))?;
    }
    section(&|w| exit_status_section().to_writer(w))?;
    section(&|w| environment_section(cmd).to_writer(w))?;
    if cmd.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    section(&|w| examples_section(&name).to_writer(w))?;
    let others: Vec<&String> = all_pages.iter().filter(|page| **page != name).collect();
    section(&|w| see_also_section(&others).to_writer(w))?;
    Ok(out)
}

/// `.TH NATLENS-CALL 1 "" "natlens 0.1.0" "natlens manual"`, written by hand.
///
/// clap_mangen renders an empty date as nothing at all rather than `""`, which shifts the source
/// into the date slot and the manual into the source slot. The date stays empty on purpose: a
/// build date would make every regeneration differ. The source names the program, not the
/// subcommand (`natlens 0.1.0`, not `call 0.1.0`).
fn title_line(cmd: &clap::Command) -> String {
    let program = cmd
        .get_bin_name()
        .and_then(|bin| bin.split(' ').next())
        .unwrap_or(cmd.get_name());
    let version = cmd.get_version().unwrap_or_default();
    let title = page_name(cmd).to_uppercase();
    format!(".TH {title} 1 \"\" \"{program} {version}\" \"natlens manual\"\n")
}

/// Drops the apostrophe-string preamble (`.ds Aq`) that roff writes before every fragment.
///
/// Each `render_*` call emits it; the page needs it once, at the top, where [`render_page`]
/// already put it.
fn strip_preamble(fragment: &[u8]) -> &[u8] {
    let preamble = Roff::new().render();
    fragment
        .strip_prefix(preamble.as_bytes())
        .unwrap_or(fragment)
}

fn has_visible_arguments(cmd: &clap::Command) -> bool {
    cmd.get_arguments().any(|arg| !arg.is_hide_set())
}

fn has_visible_subcommands(cmd: &clap::Command) -> bool {
    cmd.get_subcommands().any(|sub| !sub.is_hide_set())
}

/// Man sections from a command's `after_long_help`, which is written to read well in `--help`
/// too: a line without lowercase letters starts a section (`JSON OUTPUT`), a line indented by
/// two spaces is a `key  meaning` entry, anything else is running text.
///
/// clap_mangen's own rendering would put it all in one paragraph under the heading EXTRA.
fn extra_sections(text: &str) -> Roff {
    let mut roff = Roff::new();
    let mut in_list = false;
    for line in text.lines() {
        if let Some(entry) = line.strip_prefix("  ") {
            let (key, meaning) = entry.split_once("  ").unwrap_or((entry, ""));
            roff.control("TP", []);
            roff.text([bold(key.trim())]);
            roff.text([roman(meaning.trim())]);
            in_list = true;
        } else if line.trim().is_empty() {
            roff.control("PP", []);
            in_list = false;
        } else if !line.chars().any(char::is_lowercase) {
            roff.control("SH", [line.trim()]);
            in_list = false;
        } else {
            if in_list {
                roff.control("PP", []);
                in_list = false;
            }
            roff.text([roman(line)]);
        }
    }
    roff
}

/// EXIT STATUS: each code from [`exit::CODES`], then the one exception scripts may trip over.
fn exit_status_section() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit::CODES {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(meaning)]);
    }
    roff.control("PP", []);
    // Mirrors `exit::report`: `natlens ... | head` closing the pipe early is not a failure.
    roff.text([roman(
        "A closed standard output (for example when piping into head) ends natlens quietly \
         with status 0.",
    )]);
    roff
}

/// EXAMPLES from [`examples`]: the preamble that says where the addresses come from, then each
/// command line in bold with its explanation. Nothing for a page without examples.
fn examples_section(page: &str) -> Roff {
    let mut roff = Roff::new();
    let examples = examples::for_page(page);
    if examples.is_empty() {
        return roff;
    }
    roff.control("SH", ["EXAMPLES"]);
    roff.text([roman(examples::PREAMBLE)]);
    for example in examples {
        roff.control("TP", []);
        roff.text([bold(example.command)]);
        let mut explain = example.explain.to_owned();
        if let examples::Needs::Shown(why) = example.needs {
            explain = format!("{explain} (Not run by the tests: {why}.)");
        }
        roff.text([roman(explain)]);
    }
    roff
}

/// Variables about the terminal: every command that prints for people reads them.
const TERMINAL_VARIABLES: [(&str, &str); 4] = [
    (
        "NO_COLOR",
        "When set to a non-empty value, natlens writes no colour or other terminal styling \
         (no-color.org).",
    ),
    (
        "LC_ALL",
        "The first of LC_ALL, LC_CTYPE and LANG that is set and not empty is the locale. One \
         naming UTF-8 (en_US.UTF-8, C.UTF-8) gets box-drawing table borders, arrows and \
         ellipses; any other (C, POSIX, or none set) gets them spelled in ASCII (|, +, ->, ...), \
         so nothing natlens prints is outside ASCII.",
    ),
    ("LC_CTYPE", "See LC_ALL."),
    ("LANG", "See LC_ALL."),
];

/// Commands that print files verbatim: no terminal variable changes what they print.
const VERBATIM_PAGES: [&str; 2] = ["natlens-completions", "natlens-man"];

/// ENVIRONMENT: the variables this page's command (or, for natlens(1) and natlens-lab(1), one
/// of its subcommands) reads, and nothing else.
fn environment_section(cmd: &clap::Command) -> Roff {
    let mut variables: Vec<(&str, &str)> = Vec::new();
    if any_argument(cmd, &|arg| {
        arg.get_env() == Some(OsStr::new("NATLENS_SERVER"))
    }) {
        variables.push((
            "NATLENS_SERVER",
            "The server (HOST[:PORT], as --server takes it) when --server is not given.",
        ));
    }
    if any_argument(cmd, &|arg| arg.get_long() == Some("key-file")) {
        variables.push((
            "NATLENS_KEY",
            "This ID's key when --key-file is not given, for a server run with --credentials. \
             Prefer --key-file on a shared host: other users may read a process's environment.",
        ));
    }
    if !VERBATIM_PAGES.contains(&page_name(cmd).as_str()) {
        variables.extend(TERMINAL_VARIABLES);
    }
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in variables {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
    roff
}

/// True when `cmd` or one of its visible subcommands has an argument `matches` accepts.
fn any_argument(cmd: &clap::Command, matches: &dyn Fn(&clap::Arg) -> bool) -> bool {
    cmd.get_arguments().any(matches)
        || cmd
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .any(|sub| any_argument(sub, matches))
}

/// SEE ALSO: the other generated pages, then the hand-written protocol page.
fn see_also_section(other_pages: &[&String]) -> Roff {
    let mut refs: Vec<(&str, &str)> = other_pages
        .iter()
        .map(|page| (page.as_str(), "1"))
        .collect();
    refs.push(PROTOCOL_PAGE);
    let mut line = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        let separator = if i + 1 < refs.len() { "), " } else { ")" };
        line.push(bold(*name));
        line.push(roman(format!("({section}{separator}")));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text(line);
    roff
}

/// One completion script per shell in [`SHELLS`], named the way each shell expects.
fn completions() -> Vec<Rendered> {
    let tree = completion_tree();
    SHELLS
        .iter()
        .map(|&shell| completion_script(&tree, shell))
        .collect()
}

/// The command tree the completion scripts are generated from: built, hidden commands left out.
fn completion_tree() -> clap::Command {
    let mut tree = Cli::command();
    tree.build();
    without_hidden(&tree)
}

/// clap_complete's script for `shell`, with the lab prefixes it cannot list statically.
fn completion_script(tree: &clap::Command, shell: Shell) -> Rendered {
    let bin = tree.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut tree.clone(), &bin, &mut script);
    let script = lab_completions::add(shell, script);
    (Path::new("completions").join(shell.file_name(&bin)), script)
}

/// A copy of a built command tree without its hidden subcommands, for the completion scripts.
///
/// clap_complete offers hidden subcommands too (clap issue #1335), and `clap::Command` cannot
/// remove a subcommand, so the tree is copied with only what the generators read: name, about,
/// version, visible aliases, arguments and subcommands. The source must be built, so that its
/// `--help`/`--version` flags, global options and `help` subcommand already exist; the copy then
/// turns clap's own additions off, so nothing appears twice. A unit test checks that, with
/// nothing hidden, the copy completes exactly like the original.
fn without_hidden(built: &clap::Command) -> clap::Command {
    let visible = built.get_subcommands().filter(|sub| !sub.is_hide_set());
    let mut copy = clap::Command::new(interned(built.get_name()))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .allow_external_subcommands(built.is_allow_external_subcommands_set())
        .visible_aliases(built.get_visible_aliases().map(interned))
        // The built source has already propagated its global arguments (-q, -v) to every
        // subcommand except clap's own `help`; left global here, they would be propagated
        // again, into the copied `help` too.
        .args(built.get_arguments().map(|arg| arg.clone().global(false)))
        .subcommands(visible.map(without_hidden));
    if let Some(about) = built.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = built.get_version() {
        copy = copy.version(interned(version));
    }
    copy
}

/// A `'static` copy of `text`, which is what clap's builder takes for names without its `string`
/// feature. The few bytes leak once per generated tree; only `natlens generate` and tests build one.
fn interned(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no subcommand hidden, [`without_hidden`] must not change a single completion line;
    /// otherwise it drops something the generators read and the scripts silently lose options.
    #[test]
    fn copying_the_tree_keeps_every_completion() {
        let unhidden = || {
            Cli::command()
                .mut_subcommand("generate", |sub| sub.hide(false))
                .mut_subcommand("lab", |lab| {
                    lab.mut_subcommand("worker", |sub| sub.hide(false))
                })
        };
        let mut built = unhidden();
        built.build();
        for shell in SHELLS {
            let original = script(shell, unhidden());
            let copied = script(shell, without_hidden(&built));
            assert_eq!(copied, original, "{shell} completions changed by the copy");
        }
    }

    /// `generate` and `lab worker` are the hidden subcommands and no help text mentions either
    /// word, so any occurrence in a script means it is offered.
    #[test]
    fn completions_leave_out_hidden_subcommands() {
        for (path, script) in completions() {
            let text = String::from_utf8(script).expect("completions are UTF-8");
            for hidden in ["generate", "worker"] {
                assert!(
                    !text.contains(hidden),
                    "{} offers `{hidden}`",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn pages_skip_hidden_subcommands_and_help() {
        let names: Vec<String> = page_commands(man_root()).iter().map(page_name).collect();
        assert_eq!(
            names,
            [
                "natlens",
                "natlens-server",
                "natlens-login",
                "natlens-listen",
                "natlens-call",
                "natlens-lab",
                "natlens-lab-up",
                "natlens-lab-down",
                "natlens-lab-status",
                "natlens-lab-exec",
                "natlens-lab-demo",
                "natlens-nat",
                "natlens-completions",
                "natlens-man",
            ]
        );
    }

    #[test]
    fn after_long_help_becomes_man_sections() {
        let roff =
            extra_sections("JSON OUTPUT\nSome text.\n\n  key  What it means.\nMore.").render();
        for needle in [
            ".SH \"JSON OUTPUT\"",
            "Some text.",
            ".PP",
            ".TP",
            "\\fBkey\\fR",
        ] {
            assert!(roff.contains(needle), "{needle:?} missing from\n{roff}");
        }
        assert!(roff.ends_with(".PP\nMore.\n"), "{roff}");
    }

    /// Every page with examples shows each command line as written (the test that runs them
    /// reads the same table), before SEE ALSO.
    #[test]
    fn pages_show_their_examples() {
        let pages = man_pages().expect("rendering the man pages");
        for (page, examples) in examples::PAGES {
            let path = PathBuf::from(format!("man/{page}.1"));
            let (_, roff) = pages.iter().find(|(p, _)| *p == path).expect("a page");
            let text = String::from_utf8_lossy(roff).replace("\\-", "-");
            let at = text.find(".SH EXAMPLES").expect("an EXAMPLES section");
            assert!(at < text.find(".SH \"SEE ALSO\"").unwrap(), "{page}");
            for example in *examples {
                assert!(
                    text[at..].contains(example.command),
                    "{page}: {}",
                    example.command
                );
            }
        }
    }

    #[test]
    fn title_line_keeps_an_empty_date_in_place() {
        let root = man_root();
        let call = root.find_subcommand("call").expect("call subcommand");
        let version = env!("CARGO_PKG_VERSION");
        let expected =
            format!(".TH NATLENS-CALL 1 \"\" \"natlens {version}\" \"natlens manual\"\n");
        assert_eq!(title_line(call), expected);
    }

    fn script(shell: Shell, mut cmd: clap::Command) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "natlens", &mut out);
        String::from_utf8(out).expect("completions are UTF-8")
    }
}
