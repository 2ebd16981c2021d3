//! The man pages' EXAMPLES: a few real command lines per section-1 page, each with a one-line
//! explanation and what it needs to run as written.
//!
//! One table for every page, so that `natlens generate` renders them (src/generate.rs) and
//! `tests/readme_examples.rs` runs them, exactly as printed: an example that stops working
//! fails CI, not a reader. The addresses are the lab's (`natlens lab up --with-server`):
//! 203.0.113.10 is its natlens server (port 3478, RFC 5780 alternate 203.0.113.11:3479), `a`
//! (192.0.2.10) and `b` (198.51.100.10) its LAN hosts behind two NATs.

/// What an example needs to run as written; the test harness provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Runs anywhere, as anyone, and sends nothing.
    Nothing,
    /// Runs in a lab host (`a`, behind a NAT) while the lab's own server runs on 203.0.113.10.
    LabHost,
    /// A server: runs in the lab's server host until it is stopped, and counts as working when
    /// it is still running after it says it listens.
    Daemon,
    /// `natlens listen --id bob` in lab host `a`: it works when a call from `b` connects.
    Listener,
    /// A call to `bob` from lab host `b`, while `natlens listen --id bob` waits on `a`.
    Caller,
    /// Root on this machine: builds (and tears down) labs of its own, no other lab needed.
    Root,
    /// Root on this machine while a lab with its server is left running by `lab up`.
    RootWithLab,
    /// Shown but not run, for the reason given (a `.example` name never resolves; a file of
    /// one's own).
    Shown(&'static str),
}

/// One example: the command line exactly as a user types it, and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    pub command: &'static str,
    pub explain: &'static str,
    pub needs: Needs,
}

const fn ex(command: &'static str, explain: &'static str, needs: Needs) -> Example {
    Example {
        command,
        explain,
        needs,
    }
}

/// The sentence every EXAMPLES section starts with: where its addresses come from.
pub const PREAMBLE: &str = "The addresses are those of the lab that `sudo natlens lab up \
--with-server` builds: 203.0.113.10 is its natlens server, and commands shown without sudo run \
in one of its hosts (a LAN host such as a or b; a server in the server host), as in `sudo \
natlens lab exec a -- COMMAND`. Elsewhere, name your own server.";

/// Every section-1 page with its examples, in the order the pages are generated.
pub const PAGES: &[(&str, &[Example])] = &[
    ("natlens", NATLENS),
    ("natlens-server", SERVER),
    ("natlens-login", LOGIN),
    ("natlens-listen", LISTEN),
    ("natlens-call", CALL),
    ("natlens-lab", LAB),
    ("natlens-lab-up", LAB_UP),
    ("natlens-lab-down", LAB_DOWN),
    ("natlens-lab-status", LAB_STATUS),
    ("natlens-lab-exec", LAB_EXEC),
    ("natlens-lab-demo", LAB_DEMO),
    ("natlens-nat", NAT),
];

/// The examples of page `page` (`natlens-nat`); none for a page not listed.
pub fn for_page(page: &str) -> &'static [Example] {
    PAGES
        .iter()
        .find(|(name, _)| *name == page)
        .map_or(&[], |(_, examples)| examples)
}

const NATLENS: &[Example] = &[
    ex(
        "sudo natlens lab demo",
        "Build a lab of two kernel NATs, fingerprint both, punch a path between them, check it \
         against the routers' conntrack tables and tear the lab down.",
        Needs::Root,
    ),
    ex(
        "natlens nat --server 203.0.113.10",
        "Fingerprint the NAT in front of this host toward a STUN server (port 3478 by default).",
        Needs::LabHost,
    ),
];

const SERVER: &[Example] = &[
    ex(
        "natlens server --listen 127.0.0.1:3478",
        "A location server on loopback: STUN and natlens over UDP and TCP, open to any ID.",
        Needs::Daemon,
    ),
    ex(
        "natlens server --listen 203.0.113.10:3480 --alternate 203.0.113.11:3481",
        "RFC 5780 full mode on two addresses of this host (here ports 3480 and 3481).",
        Needs::Daemon,
    ),
    ex(
        "natlens server --listen 203.0.113.10:3482 --link 203.0.113.10:3478 --name s2",
        "A second server federated with the first: calls to IDs logged in there are relayed.",
        Needs::Daemon,
    ),
    ex(
        "natlens server --listen 0.0.0.0:3478 --credentials /etc/natlens/credentials",
        "On the Internet: only IDs with a key in the credentials file may log in.",
        Needs::Shown("needs a credentials file of your own"),
    ),
];

const LOGIN: &[Example] = &[
    ex(
        "natlens login --server 203.0.113.10 --id carol --duration 2s",
        "Log in as carol, answer calls with this end's NAT facts for two seconds, log out.",
        Needs::LabHost,
    ),
    ex(
        "natlens login --server 203.0.113.10 --id carol --calls 1 --json",
        "Stay logged in until one call has been answered, with NDJSON events on stdout.",
        Needs::Shown("waits for a call nobody makes"),
    ),
];

const LISTEN: &[Example] = &[
    ex(
        "natlens listen --server 203.0.113.10 --id bob",
        "Wait for a call to bob, punch a direct path to the caller, then relay stdin and stdout.",
        Needs::Listener,
    ),
    ex(
        "natlens listen --server 203.0.113.10 --id bob --json > received.txt",
        "The same, keeping what the caller sends in a file and the report as JSON on stderr.",
        Needs::Listener,
    ),
];

const CALL: &[Example] = &[
    ex(
        "echo hello | natlens call bob --server 203.0.113.10 --id alice",
        "Call bob, punch a direct path and send one line over it.",
        Needs::Caller,
    ),
    ex(
        "natlens call bob --server 203.0.113.10 --id alice --send /etc/hostname --json",
        "Send a file instead of stdin; the report goes to stderr as one JSON object.",
        Needs::Caller,
    ),
    ex(
        "natlens call bob --server 203.0.113.10 --id alice --no-punch",
        "Only exchange NAT facts through the server and print both ends' facts.",
        Needs::Caller,
    ),
];

const LAB: &[Example] = &[
    ex(
        "sudo natlens lab demo --nat-b seq:1",
        "The whole story in one command, with a sequential symmetric NAT behind b.",
        Needs::Root,
    ),
    ex(
        "sudo natlens lab exec b -- natlens nat --server 203.0.113.10",
        "Fingerprint router-b from its LAN host, in a lab left running by lab up --with-server.",
        Needs::RootWithLab,
    ),
];

const LAB_UP: &[Example] = &[
    ex(
        "sudo natlens lab up --with-server",
        "A lab with two port-preserving NATs and its own natlens server on 203.0.113.10.",
        Needs::Root,
    ),
    ex(
        "sudo natlens lab up --nat-a full-cone --nat-b random --delay 25ms --loss 10",
        "Other NAT modes, 25 ms each way on each WAN link and 10% loss.",
        Needs::Root,
    ),
];

const LAB_DOWN: &[Example] = &[
    ex(
        "sudo natlens lab down",
        "Tear down the lab lab up left running (name its prefix when there are several).",
        Needs::RootWithLab,
    ),
    ex(
        "sudo natlens lab down --all",
        "Tear down every lab no running process owns, leftovers of a crash included.",
        Needs::RootWithLab,
    ),
];

const LAB_STATUS: &[Example] = &[
    ex(
        "sudo natlens lab status",
        "Every lab: hosts, addresses, NAT modes, its server, conntrack entry counts.",
        Needs::RootWithLab,
    ),
    ex(
        "sudo natlens lab status --json",
        "The same as JSON, one object per lab.",
        Needs::RootWithLab,
    ),
];

const LAB_EXEC: &[Example] = &[
    ex(
        "sudo natlens lab exec a -- natlens nat --server 203.0.113.10",
        "Fingerprint router-a from host a; natlens is found even where it is not on root's PATH.",
        Needs::RootWithLab,
    ),
    ex(
        "sudo natlens lab exec b -- ip -brief address",
        "Any command runs in a lab host: here, host b's addresses.",
        Needs::RootWithLab,
    ),
];

const LAB_DEMO: &[Example] = &[
    ex(
        "sudo natlens lab demo",
        "Two port-preserving NATs: both fingerprints, the predicted ports checked, a UDP punch.",
        Needs::Root,
    ),
    ex(
        "sudo natlens lab demo --nat-a cone --nat-b seq:2 --delay 25ms",
        "A sequential NAT stepping by 2 behind b, and 50 ms more round trip on each side.",
        Needs::Root,
    ),
];

const NAT: &[Example] = &[
    ex(
        "natlens nat --server 203.0.113.10",
        "Mapping, filtering, hairpinning, port allocation and the next port, over UDP and TCP.",
        Needs::LabHost,
    ),
    ex(
        "natlens nat --server 203.0.113.10 --json",
        "The same report as one JSON object on stdout.",
        Needs::LabHost,
    ),
    ex(
        "NATLENS_SERVER=203.0.113.10 natlens nat --transport udp",
        "The server from the environment when --server is absent; UDP only.",
        Needs::LabHost,
    ),
    ex(
        "natlens nat --server stun.lab.example:3478",
        "Servers by name (A and AAAA; the address used is printed), port 3478 unless given.",
        Needs::Shown("a .example name never resolves"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    /// The words of an example's natlens command line, without `sudo`, environment
    /// assignments, what it pipes into it or redirects: what clap sees.
    pub(crate) fn natlens_argv(command: &str) -> Vec<&str> {
        let after_pipe = command.rsplit('|').next().unwrap_or(command);
        let words: Vec<&str> = after_pipe
            .split_whitespace()
            .take_while(|word| !word.starts_with('>'))
            .collect();
        let start = words
            .iter()
            .position(|word| *word == "natlens")
            .expect("every example runs natlens");
        words[start..].to_vec()
    }

    /// `stun.lab.example:3478` as `203.0.113.10:3478`; other words as they are.
    fn without_example_name(word: &str) -> String {
        match word.split_once(".example") {
            Some((_, port)) => format!("203.0.113.10{port}"),
            None => word.to_owned(),
        }
    }

    /// Every example parses with today's command tree: a renamed flag breaks this first.
    #[test]
    fn every_example_parses() {
        for (page, examples) in PAGES {
            for example in *examples {
                let mut argv = natlens_argv(example.command);
                // clap reads NATLENS_SERVER from the environment, which a test cannot set
                // safely among threads: the flag it stands for is parsed instead.
                let env_server = example
                    .command
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("NATLENS_SERVER="));
                if let Some(server) = env_server {
                    argv.extend(["--server", server]);
                }
                // A `.example` name would be looked up while parsing (and never resolve): an
                // address stands in for it, so the rest of the line is still checked.
                let argv: Vec<String> =
                    argv.iter().map(|word| without_example_name(word)).collect();
                if let Err(err) = crate::cli::Cli::try_parse_from(&argv) {
                    panic!("{page}: `{}` does not parse:\n{err}", example.command);
                }
            }
        }
    }

    /// Every page the generator renders has examples, and every page listed here exists.
    #[test]
    fn every_page_has_examples() {
        for (page, examples) in PAGES {
            assert!(!examples.is_empty(), "{page} has no examples");
            let stem = page.strip_prefix("natlens").unwrap_or(page);
            assert!(stem.is_empty() || stem.starts_with('-'), "{page}");
        }
    }

    /// Examples that use root show `sudo`, the others do not: what a reader types.
    #[test]
    fn root_examples_and_only_they_say_sudo() {
        for (page, examples) in PAGES {
            for example in *examples {
                let root = matches!(example.needs, Needs::Root | Needs::RootWithLab);
                let sudo = example.command.starts_with("sudo ");
                assert_eq!(root, sudo, "{page}: {}", example.command);
            }
        }
    }

    /// Network safety: only lab (RFC 5737), loopback or `.example` addresses.
    #[test]
    fn examples_name_only_documentation_addresses() {
        for (_, examples) in PAGES {
            for example in *examples {
                for word in example.command.split([' ', ':', '=']) {
                    if word.parse::<std::net::Ipv4Addr>().is_ok() {
                        assert!(
                            ["203.0.113.", "192.0.2.", "198.51.100.", "127.", "0.0.0.0"]
                                .iter()
                                .any(|range| word.starts_with(range)),
                            "{word} in `{}`",
                            example.command
                        );
                    }
                }
                if example.command.contains(".example") {
                    assert!(matches!(example.needs, Needs::Shown(_)));
                }
            }
        }
    }
}
