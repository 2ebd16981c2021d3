//! The command-line tree: clap derive types only, no behaviour.
//!
//! This tree is the single source of truth for `--help`, the man pages in `man/` and the shell
//! completions in `completions/`; `natlens generate` writes both and `tests/generated_files.rs`
//! fails when the committed copies drift from it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use event_docs::{LOGIN_OUTPUT, SERVER_OUTPUT};
use nat::{NAT_JSON_SCHEMA, NAT_LONG_ABOUT};
use punch_docs::{CALL_LONG_ABOUT, LISTEN_LONG_ABOUT, PUNCH_OUTPUT};

mod aliases;
mod complete;
mod event_docs;
pub mod examples;
mod lab;
mod nat;
mod parse;
mod punch_docs;
mod server;
mod server_name;
mod session;
mod source;

pub use aliases::resolve_aliases;
pub use complete::{CompletionsArgs, ManArgs, Suggesting, LAB_HOST_NAMES, NAT_MODES};
pub use lab::{
    LabArgs, LabCommand, LabDemoArgs, LabDownArgs, LabExecArgs, LabSpecArgs, LabStatusArgs,
    LabUpArgs, LabWorkerArgs,
};
pub use nat::{
    family_name, FamilyChoice, FamilyServers, NatArgs, PortMappingMode, ProbeTransports,
};
pub use parse::*;
pub use server::ServerArgs;
pub use server_name::{Family, ServerName};
pub use session::{
    CallArgs, ListenArgs, LoginArgs, PortMappingUse, PunchArgs, PunchTransport, SessionArgs,
};
pub use source::{BindAddr, SourceArgs};

/// Transport used to reach the location server (one type for the CLI and the core).
pub use crate::core::Transport;

/// Diagnose NAT routers and connect two hosts behind NATs directly.
#[derive(Debug, Parser)]
#[command(name = "natlens", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: VerbosityArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// `-q` and `-v`, accepted by every command (before or after its name).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct VerbosityArgs {
    /// Print only the result (the report, the JSON, the data received) and errors: no progress
    /// bars, no progress lines, no hints. For `server`: log only warnings, statistics and
    /// federation links, not every login, call and drop.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`,
    /// one line per probe (socket, local and server address, CHANGE-REQUEST, the public address
    /// that came back and the round trip, or "no answer"); for `listen` and `call` also the punch
    /// plan in full under its `plan` line. Other commands print what they print without it.
    #[arg(long, short, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a location server: STUN Binding reflection, logins, call relay, federation.
    #[command(after_long_help = SERVER_OUTPUT)]
    Server(ServerArgs),
    /// Log in to a location server and hold the session, answering calls with this end's facts.
    #[command(after_long_help = LOGIN_OUTPUT)]
    Login(LoginArgs),
    /// Log in, fingerprint this end's NAT, wait for a call and punch a direct path to the
    /// caller; then what one end sends arrives on the other's stdout, netcat-style.
    #[command(long_about = LISTEN_LONG_ABOUT, after_long_help = PUNCH_OUTPUT)]
    Listen(ListenArgs),
    /// Log in, fingerprint this end's NAT, call another ID through the server and punch a direct
    /// path to it (with --no-punch, only print the facts exchanged).
    #[command(long_about = CALL_LONG_ABOUT, after_long_help = PUNCH_OUTPUT)]
    Call(CallArgs),
    /// Build a NAT lab of network namespaces on this machine (needs root) and work in it.
    Lab(LabArgs),
    /// Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning,
    /// port allocation and the next port it will hand out.
    #[command(long_about = NAT_LONG_ABOUT, after_long_help = NAT_JSON_SCHEMA)]
    Nat(NatArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the
    /// same script completions/ holds. Load it with, for example, `source <(natlens completions
    /// bash)`.
    Completions(CompletionsArgs),
    /// Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else
    /// a command's page (`natlens man nat`, `natlens man lab up`) or `protocol` for
    /// natlens-protocol(7). Read it with `natlens man nat | man -l -`.
    Man(ManArgs),
    /// Write man pages and shell completions from this command tree (for maintainers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Output format shared by the client commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout;
    /// call --no-punch: one object on stdout; listen and call: see OUTPUT).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Repository root to write `man/` and `completions/` into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::words;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_name_the_range() {
        let listen = "natlens listen -s 127.0.0.1:1 --id a";
        for args in [
            words(&format!("{listen} --punch-timeout 60s")),
            words(&format!("{listen} --punch-timeout 0s")),
            words(&format!("{listen} --fanout 0")),
            vec!["natlens", "listen", "-s", "127.0.0.1:1", "--id", "a b"],
            words("natlens login -s 127.0.0.1:1 --id a --keepalive 0s"),
            words("natlens server --alternate 127.0.0.2:0"),
            words("natlens server --link 127.0.0.2:0"),
            words("natlens server --tcp-idle 0s"),
        ] {
            let err = Cli::try_parse_from(&args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
