//! What natlens knows about the terminal it writes to, in one place: how wide a stream is, which
//! characters it can show, and whether colour is welcome.
//!
//! Every paragraph natlens prints goes through [`wrap`] (or [`prose`]), every message on stderr
//! through [`eprint_message`] and every table through [`fit`], so nothing is pre-wrapped at a
//! guessed width:
//!
//! * Width: the real width of a stream that is a terminal, else [`DEFAULT_WIDTH`] (a pipe, a log
//!   file, a test), so piped output reads well in an 80-column terminal later.
//! * Charset: UTF-8 when the locale says so (`LC_ALL`, else `LC_CTYPE`, else `LANG`, the POSIX
//!   order), else ASCII: table borders, arrows and ellipses are spelled with ASCII characters
//!   so a `LANG=C` terminal or a latin-1 log shows no mojibake.
//! * Colour: only on a terminal and never when `NO_COLOR` is set (no-color.org).

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::OnceLock;

use comfy_table::presets::{ASCII_FULL_CONDENSED, UTF8_FULL_CONDENSED};
use comfy_table::{ContentArrangement, Row, Table};

/// Width used when a stream is not a terminal (or its size cannot be read).
pub const DEFAULT_WIDTH: usize = 80;

/// Narrowest width natlens wraps to, even in a tiny terminal: below it a table's label column
/// and a value could not share a line at all.
const MIN_WIDTH: usize = 20;

/// The two streams natlens writes for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }

    fn terminal_columns(self) -> Option<usize> {
        let size = match self {
            Stream::Stdout => terminal_size::terminal_size_of(std::io::stdout()),
            Stream::Stderr => terminal_size::terminal_size_of(std::io::stderr()),
        };
        size.map(|(terminal_size::Width(columns), _)| usize::from(columns))
    }
}

/// Columns available on `stream`: the terminal's width, or [`DEFAULT_WIDTH`] when it is not a
/// terminal.
pub fn width(stream: Stream) -> usize {
    if !stream.is_terminal() {
        return DEFAULT_WIDTH;
    }
    stream
        .terminal_columns()
        .filter(|&columns| columns > 0)
        .map_or(DEFAULT_WIDTH, |columns| columns.max(MIN_WIDTH))
}

/// Which characters output may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Ascii,
}

/// The charset of this process's locale, read once.
pub fn charset() -> Charset {
    static CHARSET: OnceLock<Charset> = OnceLock::new();
    *CHARSET.get_or_init(|| {
        let var = |name| std::env::var(name).ok();
        charset_of(var("LC_ALL"), var("LC_CTYPE"), var("LANG"))
    })
}

/// The charset a locale names: the first non-empty of `LC_ALL`, `LC_CTYPE`, `LANG` (the order
/// POSIX gives them precedence in) decides; none set is the C locale, which is ASCII.
pub fn charset_of(
    lc_all: Option<String>,
    lc_ctype: Option<String>,
    lang: Option<String>,
) -> Charset {
    let locale = [lc_all, lc_ctype, lang]
        .into_iter()
        .flatten()
        .find(|value| !value.is_empty())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // `en_US.UTF-8`, `C.UTF-8`, `de_DE.utf8`, `en_US.UTF-8@euro`.
    if locale.contains("utf-8") || locale.contains("utf8") {
        Charset::Utf8
    } else {
        Charset::Ascii
    }
}

/// True when `stream` may carry colour: it is a terminal and `NO_COLOR` is unset or empty.
pub fn colour(stream: Stream) -> bool {
    colour_allowed(std::env::var_os("NO_COLOR").as_deref()) && stream.is_terminal()
}

/// `NO_COLOR` set to anything but the empty string turns colour off.
fn colour_allowed(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|value| value.is_empty())
}

/// `text` as this locale can show it (see [`to_ascii`]).
pub fn for_locale(text: &str) -> Cow<'_, str> {
    match charset() {
        Charset::Utf8 => Cow::Borrowed(text),
        Charset::Ascii => to_ascii(text),
    }
}

/// `text` with every non-ASCII character spelled in ASCII: `→` as `->`, `…` as `...`, a check
/// mark as `ok`; a character with no usual spelling becomes `?`.
pub fn to_ascii(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if c.is_ascii() => out.push(c),
            '→' | '⟶' => out.push_str("->"),
            '←' | '⟵' => out.push_str("<-"),
            '↔' | '⟷' => out.push_str("<->"),
            '…' => out.push_str("..."),
            '✓' | '✔' => out.push_str("ok"),
            '✗' | '✘' => out.push('x'),
            '−' | '‐' | '‑' | '–' => out.push('-'),
            '—' => out.push_str("--"),
            '×' => out.push('x'),
            '·' | '•' => out.push('*'),
            '≈' => out.push('~'),
            '≤' => out.push_str("<="),
            '≥' => out.push_str(">="),
            '±' => out.push_str("+/-"),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push('"'),
            '§' => out.push_str("sec. "),
            '\u{a0}' => out.push(' '),
            _ => out.push('?'),
        }
    }
    Cow::Owned(out)
}

/// `text` wrapped to `width` columns, never inside a word: each line of `text` is wrapped on its
/// own (so paragraphs and lists stay apart) and a continuation keeps its line's indentation. A
/// single word wider than `width` gets a line of its own rather than being cut.
pub fn wrap(text: &str, width: usize) -> String {
    text.split('\n')
        .map(|line| wrap_line(line, width))
        .collect::<Vec<_>>()
        .join("\n")
}

fn wrap_line(line: &str, width: usize) -> String {
    let line = line.trim_end();
    let indent = &line[..line.len() - line.trim_start().len()];
    // An indentation as wide as the line would leave no room for words: drop it then.
    let indent = if indent.len() * 2 > width { "" } else { indent };
    let options = textwrap::Options::new(width)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .initial_indent(indent)
        .subsequent_indent(indent);
    textwrap::wrap(line.trim_start(), options).join("\n")
}

/// A paragraph for `stream`: wrapped to its width and spelled for the locale.
pub fn prose(text: &str, stream: Stream) -> String {
    wrap(&for_locale(text), width(stream))
}

/// Prints a message on stderr (an error, a warning, a hint, a `-v` detail), spelled for the
/// locale: wrapped to the width of a terminal, but one line in a pipe or a log file, where a
/// line is a record that scripts and `grep` match whole.
pub fn eprint_message(text: &str) {
    if Stream::Stderr.is_terminal() {
        eprintln!("{}", prose(text, Stream::Stderr));
    } else {
        eprintln!("{}", for_locale(text));
    }
}

/// True while stderr carries an NDJSON event stream (`listen`, `call`, `server` with `--json`):
/// a warning then goes out as a `hint` event, so that the stream stays JSON only.
static STDERR_IS_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether stderr carries NDJSON events (set once, before the command runs).
pub fn set_stderr_is_json(json: bool) {
    STDERR_IS_JSON.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// A warning from deep in a driver that has no event channel at hand (an input thread, a drop
/// handler): `natlens: warning: ...` for people, or a `hint` event in an NDJSON stderr.
pub fn warn(message: &str) {
    if STDERR_IS_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        let hint = crate::report::Event::Hint {
            message: message.to_owned(),
        };
        eprintln!("{}", hint.json());
    } else {
        eprint_message(&format!("natlens: warning: {message}"));
    }
}

/// `table` made to fit `stream`: the locale's borders, at most the stream's width (columns wrap
/// their cells, between words where they can), and its cells spelled for the locale.
pub fn fit(table: Table, stream: Stream) -> Table {
    fit_to(table, width(stream), charset())
}

/// [`fit`] with the width and charset given, for tests.
pub fn fit_to(table: Table, width: usize, charset: Charset) -> Table {
    let mut table = match charset {
        Charset::Utf8 => table,
        Charset::Ascii => ascii_cells(&table),
    };
    table.load_preset(match charset {
        Charset::Utf8 => UTF8_FULL_CONDENSED,
        Charset::Ascii => ASCII_FULL_CONDENSED,
    });
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_width(u16::try_from(width).unwrap_or(u16::MAX));
    table
}

/// A copy of `table` with every header and cell spelled in ASCII. Tables built for people here
/// carry text only (no per-cell styling): the copy keeps the text and the column constraints.
fn ascii_cells(table: &Table) -> Table {
    let ascii_row = |row: &Row| -> Vec<String> {
        row.cell_iter()
            .map(|cell| to_ascii(&cell.content()).into_owned())
            .collect()
    };
    let mut copy = Table::new();
    if let Some(header) = table.header() {
        copy.set_header(ascii_row(header));
    }
    for row in table.row_iter() {
        copy.add_row(ascii_row(row));
    }
    for (index, column) in table.column_iter().enumerate() {
        if let (Some(constraint), Some(copied)) = (column.constraint(), copy.column_mut(index)) {
            copied.set_constraint(*constraint);
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Widest line, in characters (every character here is one column wide).
    fn longest_line(text: &str) -> usize {
        text.lines()
            .map(|line| line.chars().count())
            .max()
            .unwrap_or(0)
    }

    const PARAGRAPH: &str = "Over UDP, the server sees you as 198.51.100.1:40000. Your NAT keeps \
        one public port per destination address and port (address-and-port-dependent mapping), so \
        a peer cannot reuse the port the server saw; it hands out ports sequentially, one step of \
        +1 per new flow, so the next flow should get 40013 (candidates 40013 to 40028).";

    #[test]
    fn wrapping_at_80_keeps_words_whole_and_lines_short() {
        let wrapped = wrap(PARAGRAPH, 80);
        assert!(wrapped.lines().count() > 1, "{wrapped}");
        assert!(longest_line(&wrapped) <= 80, "{wrapped}");
        let words =
            |text: &str| -> Vec<String> { text.split_whitespace().map(str::to_owned).collect() };
        // Same words in the same order: none was split or joined.
        assert_eq!(words(&wrapped), words(PARAGRAPH));
    }

    #[test]
    fn wrapping_keeps_lines_apart_and_indentation() {
        let text = format!("first line\n\n  {PARAGRAPH}");
        let wrapped = wrap(&text, 40);
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(&lines[..2], ["first line", ""]);
        assert!(lines[2..].iter().all(|l| l.starts_with("  ")), "{wrapped}");
        assert!(longest_line(&wrapped) <= 40, "{wrapped}");
    }

    #[test]
    fn a_word_wider_than_the_line_is_not_cut() {
        assert_eq!(wrap("aa bb cc dd", 5), "aa bb\ncc dd");
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            "averyveryverylongword\nx"
        );
        assert_eq!(wrap("", 5), "");
    }

    #[test]
    fn the_locale_decides_the_charset_in_posix_order() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(charset_of(None, None, s("en_US.UTF-8")), Charset::Utf8);
        assert_eq!(charset_of(None, None, s("C.utf8")), Charset::Utf8);
        assert_eq!(charset_of(None, None, s("C")), Charset::Ascii);
        assert_eq!(charset_of(None, None, None), Charset::Ascii);
        assert_eq!(
            charset_of(s("C"), s("en_US.UTF-8"), s("en_US.UTF-8")),
            Charset::Ascii
        );
        assert_eq!(charset_of(s(""), s("de_DE.UTF-8"), s("C")), Charset::Utf8);
        assert_eq!(
            charset_of(None, s("POSIX"), s("en_US.UTF-8")),
            Charset::Ascii
        );
    }

    #[test]
    fn no_color_set_to_anything_turns_colour_off() {
        use std::ffi::OsStr;
        assert!(colour_allowed(None));
        assert!(colour_allowed(Some(OsStr::new(""))));
        assert!(!colour_allowed(Some(OsStr::new("1"))));
    }

    #[test]
    fn ascii_spelling_leaves_only_ascii() {
        let text = "40003 +2 → 40005: hit; 40013 40014 … (16 in all) ✓ −1 «x»";
        let ascii = to_ascii(text);
        assert!(ascii.is_ascii(), "{ascii}");
        assert_eq!(
            ascii,
            "40003 +2 -> 40005: hit; 40013 40014 ... (16 in all) ok -1 ?x?"
        );
        assert!(matches!(to_ascii("plain"), Cow::Borrowed("plain")));
    }

    fn sample_table() -> Table {
        let mut table = Table::new();
        table.set_header(vec!["", "UDP"]);
        table.add_row(vec![
            "two-probe rule",
            "40003, 40004 (delta +1) → 40005: hit",
        ]);
        table.add_row(vec!["candidates", "40013 40014 40015 40016 … (16 in all)"]);
        table
    }

    #[test]
    fn an_ascii_table_is_all_ascii() {
        let text = fit_to(sample_table(), 80, Charset::Ascii).to_string();
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains("-> 40005: hit"), "{text}");
        assert!(text.contains("... (16 in all)"), "{text}");
    }

    #[test]
    fn a_table_fits_the_width_it_is_given() {
        for width in [40, 60, 80] {
            let text = fit_to(sample_table(), width, Charset::Utf8).to_string();
            assert!(longest_line(&text) <= width, "{width}:\n{text}");
        }
    }
}
