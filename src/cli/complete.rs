//! Values the shell completions offer for arguments whose parser accepts more than a fixed list
//! (`seq:D` takes any step), and the `completions` and `man` subcommands' arguments.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::str::FromStr;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::Args;

/// NAT modes offered for `lab --nat-a/--nat-b`; `seq:D` takes any step from 1, these are the
/// common ones.
pub const NAT_MODES: [&str; 6] = [
    "cone",
    "full-cone",
    "restricted",
    "seq:1",
    "seq:2",
    "random",
];

/// Host names offered for `lab exec`, in [`crate::lab::Host::ALL`]'s order (a test keeps the
/// two lists equal).
pub const LAB_HOST_NAMES: [&str; 10] = [
    "internet",
    "server",
    "public",
    "carrier-a",
    "router-a",
    "a",
    "a2",
    "router-b",
    "b",
    "b2",
];

/// A value parser that parses with `T::from_str` (its error message unchanged) and offers
/// `suggestions` to the shell completions. Arguments using it hide the list from `--help`,
/// whose text already says what is accepted.
#[derive(Clone)]
pub struct Suggesting<T> {
    suggestions: &'static [&'static str],
    parsed: PhantomData<fn() -> T>,
}

impl<T> Suggesting<T> {
    pub const fn new(suggestions: &'static [&'static str]) -> Self {
        Suggesting {
            suggestions,
            parsed: PhantomData,
        }
    }
}

impl<T> TypedValueParser for Suggesting<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        (|text: &str| text.parse::<T>()).parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.suggestions
                .iter()
                .map(|&value| PossibleValue::new(value)),
        ))
    }
}

/// `natlens completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print the script for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `natlens man [PAGE]`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The page: a command (`nat`, `lab up` or `lab-up`, `natlens-nat`) or `protocol` for the
    /// wire protocol, natlens-protocol(7); natlens(1) when left out.
    #[arg(value_name = "PAGE", num_args = 0..)]
    pub page: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Host, NatMode};

    #[test]
    fn every_suggestion_parses() {
        for mode in NAT_MODES {
            mode.parse::<NatMode>().expect(mode);
        }
        let hosts: Vec<String> = Host::ALL.iter().map(Host::to_string).collect();
        assert_eq!(hosts, LAB_HOST_NAMES);
    }
}
