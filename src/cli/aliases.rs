//! Deprecated spellings kept for scripts: after parsing, each is moved to the flag that now
//! carries its meaning, with a one-line warning to print. One meaning per flag: the session
//! transport is --login-transport everywhere (login's -t/--transport was it), --transport is what
//! is probed or punched; --timeout meant three things, now --server-timeout (nat),
//! --punch-timeout (listen, call) and --call-timeout (call).

use super::{Cli, Command};

/// Moves every deprecated value of `cli` to its flag; the warnings to print, one line each.
pub fn resolve_aliases(cli: &mut Cli) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    match &mut cli.command {
        Command::Login(args) => {
            if let Some(transport) = args.deprecated_transport.take() {
                args.login_transport = transport;
                warnings.push(
                    "login -t/--transport is deprecated: use --login-transport (the session's \
                     transport, as on listen and call)",
                );
            }
        }
        Command::Nat(args) => {
            if let Some(timeout) = args.deprecated_timeout.take() {
                args.timeout = timeout;
                warnings.push("nat --timeout is deprecated: use --server-timeout");
            }
        }
        Command::Listen(args) => {
            if let Some(timeout) = args.punch.deprecated_timeout.take() {
                args.punch.timeout = timeout;
                warnings.push("listen --timeout is deprecated: use --punch-timeout");
            }
        }
        Command::Call(args) => {
            if let Some(timeout) = args.punch.deprecated_timeout.take() {
                args.punch.timeout = timeout;
                args.call_timeout.get_or_insert(timeout);
                warnings
                    .push("call --timeout is deprecated: use --punch-timeout and --call-timeout");
            }
            args.punch.call_timeout = args.call_timeout;
        }
        _ => {}
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::words;
    use clap::Parser;
    use std::time::Duration;

    fn parse(args: &[&str]) -> (Cli, Vec<&'static str>) {
        let mut cli = Cli::try_parse_from(args).unwrap();
        let warnings = resolve_aliases(&mut cli);
        (cli, warnings)
    }

    #[test]
    fn old_spellings_still_work_with_a_warning() {
        let (cli, warnings) = parse(&words("natlens login -s 127.0.0.1:1 --id a -t tcp"));
        let Command::Login(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.login_transport, crate::core::Transport::Tcp);
        assert_eq!(warnings.len(), 1);
        let (cli, warnings) = parse(&words("natlens call b -s 127.0.0.1:1 --id a --timeout 3s"));
        let Command::Call(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.punch.timeout, Duration::from_secs(3));
        assert_eq!(args.punch.call_wait(), Duration::from_secs(3));
        assert!(warnings[0].contains("--punch-timeout"));
        let (cli, warnings) = parse(&words("natlens nat -s 127.0.0.1:1 --timeout 300ms"));
        let Command::Nat(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.timeout, Duration::from_millis(300));
        assert_eq!(
            warnings,
            ["nat --timeout is deprecated: use --server-timeout"]
        );
    }

    #[test]
    fn new_spellings_warn_nothing_and_keep_their_meanings_apart() {
        let (cli, warnings) = parse(&words("natlens call b -s 127.0.0.1:1 --id a --punch-timeout 5s --call-timeout 20s --login-transport tcp --transport udp"));
        assert!(warnings.is_empty());
        let Command::Call(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.punch.timeout, Duration::from_secs(5));
        assert_eq!(args.punch.call_wait(), Duration::from_secs(20));
        // Both spellings at once is a usage error.
        let both = Cli::try_parse_from([
            "natlens",
            "listen",
            "-s",
            "127.0.0.1:1",
            "--id",
            "a",
            "--timeout",
            "5s",
            "--punch-timeout",
            "5s",
        ]);
        assert_eq!(both.unwrap_err().exit_code(), 2);
    }

    /// Every duration flag (value name DURATION) of the commands that have them takes `25ms`.
    #[test]
    fn every_duration_takes_milliseconds() {
        use clap::CommandFactory;
        let root = Cli::command();
        let server = ["-s", "127.0.0.1:1"];
        let bases: [(&str, Vec<&str>); 5] = [
            ("server", vec![]),
            ("login", [&server[..], &["--id", "a"]].concat()),
            ("listen", [&server[..], &["--id", "a"]].concat()),
            ("call", [&["b"][..], &server, &["--id", "a"]].concat()),
            ("nat", server.to_vec()),
        ];
        let mut checked = 0;
        for (name, base) in bases {
            let command = root.find_subcommand(name).unwrap();
            for arg in command.get_arguments() {
                let names = arg.get_value_names().unwrap_or_default();
                let (true, Some(long)) = (names.iter().any(|n| *n == "DURATION"), arg.get_long())
                else {
                    continue;
                };
                let flag = format!("--{long}");
                let argv = [&["natlens", name][..], &base, &[&flag, "25ms"]].concat();
                let parsed = Cli::try_parse_from(&argv);
                assert!(parsed.is_ok(), "{argv:?}: {:?}", parsed.err());
                checked += 1;
            }
        }
        // keepalive, duration, punch/call timeouts, nat's server timeout, the server's
        // expiry, idle and stats intervals, and the hidden old spellings.
        assert!(checked >= 12, "{checked}");
    }
}
