//! Interoperability with third-party STUN clients run against `natlens server` on loopback:
//!
//! - coturn's `turnutils_stunclient` (RFC 5389 Binding, then its RFC 5780 sequence when the server
//!   sends OTHER-ADDRESS: CHANGE-REQUEST with RESPONSE-PORT, then CHANGE-REQUEST with PADDING);
//! - Debian's `stun` (stund 0.97, an RFC 3489 client: no magic cookie, reads MAPPED-ADDRESS);
//! - coturn's `turnutils_natdiscovery -m -f` (RFC 5780 mapping and filtering discovery).
//!
//! Each test starts its own server on free ports and asserts on what the client printed, not just
//! on its exit code. Every packet stays on loopback: the primary address is 127.0.0.1, the RFC 5780
//! alternate is 127.0.0.2 (Linux routes all of 127.0.0.0/8 to `lo`).
//!
//! The clients come from Debian's `coturn` and `stun-client` packages. When one is missing the test
//! fails if `CI` is set (CI must install them) and is otherwise skipped with a SKIPPED line.
//!
//! `coturn_reference` (ignored) runs the same checks against coturn's own `turnserver`, which is
//! the reference these expectations were taken from: `cargo test --test third_party_clients --
//! --ignored`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
use common::loopback_stun::{Mode, Server, PRIMARY_IP};
use common::programs::{self, require_tools, Run};

const INSTALL_HINT: &str = "apt-get install coturn stun-client";

/// `turnutils_stunclient` blocks in `recv` without a timeout when an answer never comes (a
/// RESPONSE-PORT that is not honoured, say); three round trips on loopback take milliseconds.
const STUNCLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// `stun` retransmits on its own and gives up after about a second when nothing answers.
const STUN_TIMEOUT: Duration = Duration::from_secs(20);
/// `turnutils_natdiscovery` waits 3 s per unanswered request; `-m -f` sends at most 5.
const NATDISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The tests against natlens
// ---------------------------------------------------------------------------------------------

#[test]
fn turnutils_stunclient_basic_mode() {
    let Some(tools) = require_tools(
        "turnutils_stunclient_basic_mode",
        &["turnutils_stunclient"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let server = Server::natlens(Mode::Basic, &["--quiet"]);
    check_stunclient_basic(&tools[0], &server);
}

#[test]
fn turnutils_stunclient_full_mode() {
    let Some(tools) = require_tools(
        "turnutils_stunclient_full_mode",
        &["turnutils_stunclient"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let server = Server::natlens(Mode::Full, &["--quiet"]);
    check_stunclient_full(&tools[0], &server);
}

#[test]
fn stun_client_basic_mode() {
    let Some(tools) = require_tools("stun_client_basic_mode", &["stun"], INSTALL_HINT) else {
        return;
    };
    let server = Server::natlens(Mode::Basic, &["--quiet"]);
    check_stun(&tools[0], &server);
}

#[test]
fn stun_client_full_mode() {
    let Some(tools) = require_tools("stun_client_full_mode", &["stun"], INSTALL_HINT) else {
        return;
    };
    let server = Server::natlens(Mode::Full, &["--quiet"]);
    check_stun(&tools[0], &server);
}

#[test]
fn turnutils_natdiscovery_full_mode() {
    let Some(tools) = require_tools(
        "turnutils_natdiscovery_full_mode",
        &["turnutils_natdiscovery"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let server = Server::natlens(Mode::Full, &["--quiet"]);
    check_natdiscovery(&tools[0], &server);
}

/// The same checks against coturn, to tell a client's quirk from a natlens bug.
#[test]
#[ignore = "reference run against coturn's turnserver; run with --ignored"]
fn coturn_reference() {
    let names = [
        "turnserver",
        "turnutils_stunclient",
        "stun",
        "turnutils_natdiscovery",
    ];
    let Some(tools) = require_tools("coturn_reference", &names, INSTALL_HINT) else {
        return;
    };
    let basic = Server::coturn(&tools[0], Mode::Basic);
    check_stunclient_basic(&tools[1], &basic);
    check_stun(&tools[2], &basic);
    drop(basic);
    let full = Server::coturn(&tools[0], Mode::Full);
    check_stunclient_full(&tools[1], &full);
    check_stun(&tools[2], &full);
    check_natdiscovery(&tools[3], &full);
}

// ---------------------------------------------------------------------------------------------
// The checks, shared by natlens and coturn
// ---------------------------------------------------------------------------------------------

/// `turnutils_stunclient -p P 127.0.0.1` against a server without an alternate address: one
/// Binding request, one line `0: : IPv4. UDP reflexive addr: 127.0.0.1:PORT` (4.6.1 prints the
/// first log line of the process twice, hence the de-duplication). No OTHER-ADDRESS may come back,
/// or the client would start its RFC 5780 sequence and print `RFC 5780 response N`.
fn check_stunclient_basic(tool: &Path, server: &Server) {
    let run = run_client(tool, &stunclient_args(server), STUNCLIENT_TIMEOUT);
    let ctx = context(server, &run);
    assert!(run.succeeded(), "turnutils_stunclient failed\n{ctx}");
    let lines = dedup_lines(&run.stdout);
    assert!(
        !lines.iter().any(|l| l.starts_with("RFC 5780 response")),
        "a server without --alternate must not send OTHER-ADDRESS\n{ctx}"
    );
    let mapped: Vec<SocketAddr> = lines
        .iter()
        .filter_map(|l| addr_after(l, "UDP reflexive addr"))
        .collect();
    assert_eq!(mapped.len(), 1, "expected one reflexive address\n{ctx}");
    assert_eq!(mapped[0].ip(), IpAddr::V4(PRIMARY_IP), "{ctx}");
    assert_ne!(mapped[0].port(), 0, "{ctx}");
}

/// `turnutils_stunclient -p P 127.0.0.1` against a full-mode server. OTHER-ADDRESS in the first
/// answer makes the client send two more requests:
/// 2. from the same socket, CHANGE-REQUEST (change IP + port) and RESPONSE-PORT = its local port
///    + 1; it reads the answer on a new socket it bound to that port;
/// 3. from that new socket, CHANGE-REQUEST (change IP + port) and a 1500-byte PADDING.
///
/// So answer 3 must map to the port of answer 1 plus one: that proves answer 1 reported the
/// client's real source port, which the client itself never prints.
fn check_stunclient_full(tool: &Path, server: &Server) {
    let alternate = server.alternate.expect("full mode");
    let mut run = run_client(tool, &stunclient_args(server), STUNCLIENT_TIMEOUT);
    if run.stderr.contains("Address already in use") {
        // Local port + 1 was taken by someone else: the client's choice, not the server's fault.
        run = run_client(tool, &stunclient_args(server), STUNCLIENT_TIMEOUT);
    }
    let ctx = context(server, &run);
    let answers = parse_rfc5780_responses(&run.stdout);
    assert_eq!(
        answers.len(),
        3,
        "expected 3 RFC 5780 answers; answer 2 goes to RESPONSE-PORT (RFC 5780 section 7.5) and \
         answer 3 is for a request carrying PADDING, so a server that ignores RESPONSE-PORT leaves \
         the client waiting on its new socket\n{ctx}"
    );
    assert!(run.succeeded(), "turnutils_stunclient failed\n{ctx}");
    let [first, second, third] = [&answers[0], &answers[1], &answers[2]];

    assert_eq!(
        first.origin,
        Some(server.primary),
        "answer 1 RESPONSE-ORIGIN\n{ctx}"
    );
    assert_eq!(
        first.other,
        Some(alternate),
        "answer 1 OTHER-ADDRESS\n{ctx}"
    );
    let mapped = first.reflexive.expect("answer 1 has XOR-MAPPED-ADDRESS");
    assert_eq!(mapped.ip(), IpAddr::V4(PRIMARY_IP), "{ctx}");
    assert_ne!(mapped.port(), 0, "{ctx}");

    assert_eq!(
        second.origin,
        Some(alternate),
        "answer 2 must come from the changed IP and port\n{ctx}"
    );
    assert_eq!(
        second.reflexive,
        Some(mapped),
        "answer 2 mapped address\n{ctx}"
    );

    let moved = SocketAddr::new(mapped.ip(), mapped.port().wrapping_add(1));
    assert_eq!(
        third.origin,
        Some(alternate),
        "answer 3 must come from the changed IP and port\n{ctx}"
    );
    assert_eq!(
        third.reflexive,
        Some(moved),
        "answer 3 comes from local port + 1\n{ctx}"
    );
}

fn stunclient_args(server: &Server) -> Vec<String> {
    let port = server.primary.port().to_string();
    vec!["-p".into(), port, server.primary.ip().to_string()]
}

/// `stun 127.0.0.1:P -v -p S -i 127.0.0.1`: stund binds S and S + 1 on 127.0.0.1 and runs the
/// RFC 3489 tests. Its requests carry no magic cookie (a random 128-bit transaction ID), and it
/// reads MAPPED-ADDRESS, which RFC 8489 section 12 (backwards compatibility) says a server SHOULD
/// send such a client. With `-v` it prints every answer on stderr:
///
/// ```text
/// Received stun message: 84 bytes
/// MappedAddress = 127.0.0.1:45010
/// SourceAddress = 127.0.0.1:40200
/// ChangedAddress = 127.0.0.2:40201
/// Received message of type 257  id=1
/// ```
///
/// id 1 is test I: a plain Binding request from S, so MappedAddress must be 127.0.0.1:S. On stdout
/// it prints its verdict, `Primary: Open` when there is no NAT. It reaches that verdict only with
/// a CHANGED-ADDRESS to send test I(2) to and an answer to test II (CHANGE-REQUEST change-IP), so
/// the verdict is asserted in full mode only (coturn says `Open` there too).
fn check_stun(tool: &Path, server: &Server) {
    let source = free_udp_port_pair();
    let args = vec![
        server.primary.to_string(),
        "-v".into(),
        "-p".into(),
        source.to_string(),
        "-i".into(),
        PRIMARY_IP.to_string(),
    ];
    let run = run_client(tool, &args, STUN_TIMEOUT);
    let ctx = context(server, &run);
    // stund exits with a NAT-type bit mask (1 for "Open"), never 0: only a timeout is a failure.
    assert!(!run.timed_out(), "stun did not finish\n{ctx}");
    // RFC 3489 attributes are multiples of 4 bytes long (section 11.2.6); stund rejects the whole
    // message otherwise (`stun ... 1 -v` then prints `ok=0`), though its NAT test ignores that.
    let complaints: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("problem parsing") || l.starts_with("Bad length"))
        .collect();
    assert!(
        complaints.is_empty(),
        "stund could not parse the answer: {complaints:?}\n{ctx}"
    );
    let answers = parse_stund_answers(&run.stderr);
    let test1 = answers
        .iter()
        .find(|a| a.message_type == 0x0101 && a.id == 1)
        .unwrap_or_else(|| panic!("no Binding success answer to stund's test I\n{ctx}"));
    let expected = SocketAddr::new(IpAddr::V4(PRIMARY_IP), source);
    assert_eq!(
        test1.attr("MappedAddress"),
        Some(expected.to_string().as_str()),
        "stund test I MAPPED-ADDRESS\n{ctx}"
    );
    if let Some(alternate) = server.alternate {
        assert_eq!(
            test1.attr("ChangedAddress"),
            Some(alternate.to_string().as_str()),
            "stund test I CHANGED-ADDRESS\n{ctx}"
        );
        let verdict = run.stdout.lines().find_map(|l| l.strip_prefix("Primary:"));
        assert_eq!(verdict.map(str::trim), Some("Open"), "stund verdict\n{ctx}");
    }
}

/// `turnutils_natdiscovery -m -f -L 127.0.0.1 -p P 127.0.0.1` against a full-mode server. `-L`
/// makes it print `Local addr: : 127.0.0.1:PORT` and declare "No NAT!" when that equals the
/// reflexive address. The requests, each from a fresh socket:
///
/// mapping:   1. to P1 (primary IP, primary port), no CHANGE-REQUEST;
///            2. to the OTHER-ADDRESS IP with the *primary* port, from the same local port;
/// filtering: 3. to P1 from a new local port;
///            4. to P1 with CHANGE-REQUEST change-IP + change-port, same local port.
///
/// natdiscovery accepts answer 4 from any address, so RESPONSE-ORIGIN is what shows that the
/// answer really came from the alternate IP and port.
fn check_natdiscovery(tool: &Path, server: &Server) {
    let alternate = server.alternate.expect("full mode");
    let args: Vec<String> = ["-m", "-f", "-L", "127.0.0.1", "-p"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            server.primary.port().to_string(),
            server.primary.ip().to_string(),
        ])
        .collect();
    let run = run_client(tool, &args, NATDISCOVERY_TIMEOUT);
    let ctx = context(server, &run);
    assert!(run.succeeded(), "turnutils_natdiscovery failed\n{ctx}");
    assert!(
        !run.stdout.contains("STUN receive timeout"),
        "an answer never came\n{ctx}"
    );
    let report = parse_natdiscovery(&run.stdout);

    // coturn's results in the same setup (see coturn_reference).
    let no_nat = "No NAT! (Endpoint Independent Mapping)";
    let mapping = [no_nat, "NAT with Endpoint Independent Mapping!"];
    let filtering = [no_nat, "NAT with Endpoint Independent Filtering!"];
    assert_eq!(report.mapping.verdicts, mapping, "mapping verdicts\n{ctx}");
    assert_eq!(
        report.filtering.verdicts, filtering,
        "filtering verdicts\n{ctx}"
    );
    assert_eq!(report.mapping.answers.len(), 2, "mapping answers\n{ctx}");
    assert_eq!(
        report.filtering.answers.len(),
        2,
        "filtering answers\n{ctx}"
    );

    let alternate_ip_primary_port = SocketAddr::new(alternate.ip(), server.primary.port());
    let expected_origins = [
        (&report.mapping.answers[0], server.primary),
        (&report.mapping.answers[1], alternate_ip_primary_port),
        (&report.filtering.answers[0], server.primary),
        (&report.filtering.answers[1], alternate),
    ];
    for (n, (answer, origin)) in expected_origins.into_iter().enumerate() {
        let n = n + 1;
        assert_eq!(
            answer.origin,
            Some(origin),
            "answer {n} RESPONSE-ORIGIN\n{ctx}"
        );
        let local = answer.local.expect("natdiscovery prints its local address");
        assert_eq!(
            local.ip(),
            IpAddr::V4(PRIMARY_IP),
            "answer {n} local address\n{ctx}"
        );
        assert_eq!(
            answer.reflexive,
            Some(local),
            "answer {n} mapped address\n{ctx}"
        );
    }
    assert_eq!(
        report.mapping.answers[0].other,
        Some(alternate),
        "answer 1 OTHER-ADDRESS\n{ctx}"
    );
    assert_eq!(
        report.filtering.answers[0].other,
        Some(alternate),
        "answer 3 OTHER-ADDRESS\n{ctx}"
    );
    let alg = run
        .stdout
        .lines()
        .filter(|l| l.contains("ALG detected"))
        .count();
    assert_eq!(
        alg, 0,
        "MAPPED-ADDRESS differs from XOR-MAPPED-ADDRESS\n{ctx}"
    );
}

// ---------------------------------------------------------------------------------------------
// Parsing what the clients print
// ---------------------------------------------------------------------------------------------

/// One `RFC 5780 response N` block of coturn's clients.
#[derive(Debug, Default, Clone)]
struct Rfc5780Answer {
    origin: Option<SocketAddr>,
    other: Option<SocketAddr>,
    reflexive: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

impl Rfc5780Answer {
    /// Reads one line such as `0: : IPv4. Response origin: : 127.0.0.1:40100`.
    fn absorb(&mut self, line: &str) {
        let fields = [
            ("Response origin", &mut self.origin),
            ("Other addr", &mut self.other),
            ("UDP reflexive addr", &mut self.reflexive),
            ("Local addr", &mut self.local),
        ];
        for (label, field) in fields {
            if let Some(addr) = addr_after(line, label) {
                field.get_or_insert(addr);
            }
        }
    }
}

fn parse_rfc5780_responses(stdout: &str) -> Vec<Rfc5780Answer> {
    let mut answers: Vec<Rfc5780Answer> = Vec::new();
    for line in dedup_lines(stdout) {
        if line.starts_with("RFC 5780 response") {
            answers.push(Rfc5780Answer::default());
        } else if let Some(current) = answers.last_mut() {
            current.absorb(&line);
        }
    }
    answers
}

#[derive(Debug, Default)]
struct DiscoverySection {
    answers: Vec<Rfc5780Answer>,
    verdicts: Vec<String>,
}

#[derive(Debug, Default)]
struct DiscoveryReport {
    mapping: DiscoverySection,
    filtering: DiscoverySection,
}

/// Splits natdiscovery's stdout at `-= Mapping Behavior Discovery =-` and
/// `-= Filtering Behavior Discovery =-`; verdicts are the lines starting `No NAT!` or `NAT with`,
/// printed between two rows of `=`.
fn parse_natdiscovery(stdout: &str) -> DiscoveryReport {
    let mut report = DiscoveryReport::default();
    let mut section: Option<&mut DiscoverySection> = None;
    for line in dedup_lines(stdout) {
        if line.contains("-= Mapping Behavior Discovery =-") {
            section = Some(&mut report.mapping);
        } else if line.contains("-= Filtering Behavior Discovery =-") {
            section = Some(&mut report.filtering);
        } else if let Some(current) = section.as_deref_mut() {
            if line.starts_with("RFC 5780 response") {
                current.answers.push(Rfc5780Answer::default());
            } else if line.starts_with("No NAT!") || line.starts_with("NAT with") {
                current.verdicts.push(line);
            } else if let Some(answer) = current.answers.last_mut() {
                answer.absorb(&line);
            }
        }
    }
    report
}

/// One answer as stund prints it with `-v`.
#[derive(Debug)]
struct StundAnswer {
    message_type: u16,
    id: u32,
    attrs: Vec<(String, String)>,
}

impl StundAnswer {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Collects `Name = value` lines from `Received stun message:` up to
/// `Received message of type T  id=N`.
fn parse_stund_answers(stderr: &str) -> Vec<StundAnswer> {
    let mut answers = Vec::new();
    let mut attrs: Option<Vec<(String, String)>> = None;
    for line in stderr.lines().map(str::trim) {
        if line.starts_with("Received stun message:") {
            attrs = Some(Vec::new());
        } else if let Some(rest) = line.strip_prefix("Received message of type ") {
            let mut parts = rest.split_whitespace();
            let message_type = parts.next().and_then(|t| t.parse().ok());
            let id = parts
                .next()
                .and_then(|i| i.strip_prefix("id="))
                .and_then(|i| i.parse().ok());
            if let (Some(message_type), Some(id)) = (message_type, id) {
                let attrs = attrs.take().unwrap_or_default();
                answers.push(StundAnswer {
                    message_type,
                    id,
                    attrs,
                });
            }
        } else if let (Some(attrs), Some((k, v))) = (attrs.as_mut(), line.split_once(" = ")) {
            attrs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    answers
}

/// The address in the last word of `line`, when `line` contains `label`.
fn addr_after(line: &str, label: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(label)?;
    rest.split_whitespace().last()?.parse().ok()
}

/// Trimmed, non-empty lines with consecutive repeats removed (coturn 4.6.1 prints the first log
/// line of a process twice).
fn dedup_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    lines.dedup();
    lines
}

// ---------------------------------------------------------------------------------------------
// Running the clients
// ---------------------------------------------------------------------------------------------

/// Runs a client with no stdin and kills it after `timeout`.
fn run_client(program: &Path, args: &[String], timeout: Duration) -> Run {
    programs::run(Command::new(program).args(args), timeout)
}

/// What an assertion message shows: the client run and the server.
fn context(server: &Server, run: &Run) -> String {
    let status = match run.status {
        Some(s) => s.to_string(),
        None => "killed after timeout".into(),
    };
    format!(
        "client: {}\nclient status: {status}\n--- client stdout ---\n{}\n--- client stderr \
         ---\n{}\n--- {} ---\n{}",
        run.command,
        run.stdout,
        run.stderr,
        server.name,
        server.describe()
    )
}

/// A port S with S and S + 1 free for UDP on 127.0.0.1 (stund binds both).
fn free_udp_port_pair() -> u16 {
    loop {
        let first = UdpSocket::bind((PRIMARY_IP, 0)).expect("bind a loopback UDP port");
        let port = first.local_addr().expect("local addr").port();
        if port < u16::MAX && UdpSocket::bind((PRIMARY_IP, port + 1)).is_ok() {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parsers, on output captured from coturn 4.6.1 and stund 0.97 (Debian 12)
// ---------------------------------------------------------------------------------------------

#[test]
fn parses_stunclient_rfc5780_output() {
    let stdout = "
========================================
RFC 5780 response 1
0: : IPv4. Response origin: : 127.0.0.1:40100
0: : IPv4. Response origin: : 127.0.0.1:40100
0: : IPv4. Other addr: : 127.0.0.2:40101
0: : IPv4. UDP reflexive addr: 127.0.0.1:53038

========================================
RFC 5780 response 2
0: : IPv4. Response origin: : 127.0.0.2:40101
0: : IPv4. Other addr: : 127.0.0.2:40101
0: : IPv4. UDP reflexive addr: 127.0.0.1:53038
";
    let answers = parse_rfc5780_responses(stdout);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].origin, Some("127.0.0.1:40100".parse().unwrap()));
    assert_eq!(answers[0].other, Some("127.0.0.2:40101".parse().unwrap()));
    assert_eq!(
        answers[0].reflexive,
        Some("127.0.0.1:53038".parse().unwrap())
    );
    assert_eq!(answers[1].origin, Some("127.0.0.2:40101".parse().unwrap()));
    assert_eq!(answers[1].local, None);
}

#[test]
fn parses_natdiscovery_output() {
    let stdout = "
-= Mapping Behavior Discovery =-

========================================
RFC 5780 response 1
No ALG: Mapped == XOR-Mapped
0: : IPv4. Response origin: : 127.0.0.1:40100
0: : IPv4. Other addr: : 127.0.0.2:40101
0: : IPv4. UDP reflexive addr: 127.0.0.1:47755
0: : IPv4. Local addr: : 127.0.0.1:47755

========================================
No NAT! (Endpoint Independent Mapping)
========================================

-= Filtering Behavior Discovery =-

========================================
RFC 5780 response 2
No ALG: Mapped == XOR-Mapped
0: : IPv4. Response origin: : 127.0.0.2:40101
0: : IPv4. UDP reflexive addr: 127.0.0.1:53462
0: : IPv4. Local addr: : 127.0.0.1:53462

========================================
NAT with Endpoint Independent Filtering!
========================================
";
    let report = parse_natdiscovery(stdout);
    assert_eq!(
        report.mapping.verdicts,
        ["No NAT! (Endpoint Independent Mapping)"]
    );
    assert_eq!(report.mapping.answers.len(), 1);
    assert_eq!(
        report.mapping.answers[0].local,
        Some("127.0.0.1:47755".parse().unwrap())
    );
    assert_eq!(
        report.filtering.verdicts,
        ["NAT with Endpoint Independent Filtering!"]
    );
    assert_eq!(
        report.filtering.answers[0].origin,
        Some("127.0.0.2:40101".parse().unwrap())
    );
}

#[test]
fn parses_stund_verbose_output() {
    let stderr = "Opened port 45000 with fd 3
About to send msg of len 28 to 127.0.0.1:40100
Received stun message: 84 bytes
MappedAddress = 127.0.0.1:45000
SourceAddress = 127.0.0.1:40100
ChangedAddress = 127.0.0.2:40101
ServerName = Coturn-4.6.1 'Gorst'
Received message of type 257  id=1
Received stun message: 128 bytes
ErrorCode = 4 20 Unknown attribute: TURN server was configured without RFC 5780 support
Received message of type 273  id=2
test I = 1
";
    let answers = parse_stund_answers(stderr);
    assert_eq!(answers.len(), 2);
    assert_eq!((answers[0].message_type, answers[0].id), (257, 1));
    assert_eq!(answers[0].attr("MappedAddress"), Some("127.0.0.1:45000"));
    assert_eq!(answers[0].attr("ChangedAddress"), Some("127.0.0.2:40101"));
    assert_eq!((answers[1].message_type, answers[1].id), (273, 2));
    assert!(answers[1].attr("MappedAddress").is_none());
}
