//! `-q/--quiet` and `-v/--verbose`, global flags of every command: how much natlens says on
//! stderr besides the result.
//!
//! The level is set once, right after the command line is parsed, and read by the renderers
//! (progress bars, event lines, the server's log), so no driver has to carry it: it changes
//! what is printed, never what is done.

use std::sync::atomic::{AtomicU8, Ordering};

/// How much to say on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: the result only (the report, the JSON, the received data) and errors; no progress
    /// bars and no progress lines.
    Quiet,
    /// Progress bars on a terminal and one line per step.
    #[default]
    Normal,
    /// `-v`: also the detail a network engineer debugging wants: each probe's request and
    /// answer, each step of a punch.
    Verbose,
}

impl Verbosity {
    /// From the two flags; clap makes them mutually exclusive.
    pub fn from_flags(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, _) => Verbosity::Verbose,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Verbosity::Quiet,
            2 => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Verbosity::Quiet => 0,
            Verbosity::Normal => 1,
            Verbosity::Verbose => 2,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(1);

/// Sets the level for the rest of the run.
pub fn set(level: Verbosity) {
    LEVEL.store(level.as_u8(), Ordering::Relaxed);
}

/// The level of this run ([`Verbosity::Normal`] until [`set`]).
pub fn get() -> Verbosity {
    Verbosity::from_u8(LEVEL.load(Ordering::Relaxed))
}

/// True under `-q`.
pub fn quiet() -> bool {
    get() == Verbosity::Quiet
}

/// True under `-v`.
pub fn verbose() -> bool {
    get() == Verbosity::Verbose
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_levels_and_back() {
        assert_eq!(Verbosity::from_flags(true, 0), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(false, 0), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(false, 2), Verbosity::Verbose);
        for level in [Verbosity::Quiet, Verbosity::Normal, Verbosity::Verbose] {
            assert_eq!(Verbosity::from_u8(level.as_u8()), level);
        }
    }
}
