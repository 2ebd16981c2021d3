//! `--pcap FILE` read back by tshark: `natlens nat` against a natlens server on loopback, and
//! `natlens listen` + `natlens call` punching on loopback, each capture checked packet by packet
//! against what natlens reported, with no frame tshark calls malformed. Live capture needs root
//! (CAP_NET_RAW); the synthesized fallback is run with CAP_NET_RAW taken away (`setpriv`), or
//! as is when not root. tshark comes from Debian's `tshark` package (.ci/run installs it).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::loopback_stun::{Mode, Server};
use common::programs::require_tools;
use common::{is_root, skip};
use serde_json::Value;

const NO_CAP_LINE: &str = "natlens: --pcap: no CAP_NET_RAW, writing the packets natlens sent \
                           and received with synthesized headers";
const STUN_BINDING_REQUEST: &str = "0x0001";
const STUN_BINDING_SUCCESS: &str = "0x0101";

/// A scratch directory for one test's capture files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("natlens-pcap-{test}-{pid}-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// tshark is there (under CI it must be) and, for a live capture, we are root; a root test
/// without CAP_NET_RAW needs setpriv to drop it.
fn ready(test: &str, live: bool) -> bool {
    let tools: &[&str] = if !live && is_root() {
        &["tshark", "setpriv"]
    } else {
        &["tshark"]
    };
    if require_tools(test, tools, "apt-get install tshark util-linux").is_none() {
        return false;
    }
    !live || is_root() || skip(&format!("{test}: a live capture needs root (CAP_NET_RAW)"))
}

fn natlens(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(args).stdin(Stdio::null());
    command
}

/// `natlens ARGS` without CAP_NET_RAW: as root through `setpriv`, which takes it out of the
/// bounding set (so exec cannot grant it) and the inheritable set.
/// How a test starts natlens: with the test's privileges, or without CAP_NET_RAW.
type Launcher = fn(&[&str]) -> Command;

fn natlens_without_cap_net_raw(args: &[&str]) -> Command {
    if !is_root() {
        return natlens(args);
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"])
        .arg(env!("CARGO_BIN_EXE_natlens"))
        .args(args)
        .stdin(Stdio::null());
    command
}

/// One row of `tshark -T fields` per frame matching `filter`.
fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut command = Command::new("tshark");
    command
        .arg("-r")
        .arg(file)
        .args(["-Y", filter, "-T", "fields"]);
    command.args([
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("running tshark");
    assert!(
        output.status.success(),
        "tshark -r {} -Y {filter:?} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// tshark reads the whole file and calls no frame malformed.
fn assert_not_malformed(file: &Path) {
    let frames = tshark_fields(file, "frame", &["frame.number"]);
    assert!(!frames.is_empty(), "{} holds no frame", file.display());
    let malformed = tshark_fields(file, "_ws.malformed", &["frame.number"]);
    assert!(
        malformed.is_empty(),
        "tshark calls frames {malformed:?} of {} malformed",
        file.display()
    );
}

/// A STUN message in a capture.
#[derive(Debug)]
struct Stun {
    src_port: u16,
    dst_port: u16,
    kind: String,
    id: String,
    /// Ports of the (XOR-)MAPPED-ADDRESS and other address attributes.
    ports: Vec<u16>,
}

fn stun_messages(file: &Path, transport: &str) -> Vec<Stun> {
    let src = format!("{transport}.srcport");
    let dst = format!("{transport}.dstport");
    let fields = [
        src.as_str(),
        dst.as_str(),
        "stun.type",
        "stun.id",
        "stun.att.port",
    ];
    tshark_fields(file, &format!("stun && {transport}"), &fields)
        .into_iter()
        .map(|row| Stun {
            src_port: row[0].parse().unwrap(),
            dst_port: row[1].parse().unwrap(),
            kind: row[2].clone(),
            id: row[3].clone(),
            ports: row[4]
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap())
                .collect(),
        })
        .collect()
}

/// Checks one transport of a `nat` report against its capture: the mapping socket's request
/// and answer, and for every allocation sample a request from its port; the samples answered
/// in the file are exactly as many as natlens counted, each answer naming the sample's port.
fn assert_transport_matches(file: &Path, transport: &str, report: &Value, server_port: u16) {
    let stun = stun_messages(file, transport);
    let requests: Vec<&Stun> = stun
        .iter()
        .filter(|m| m.kind == STUN_BINDING_REQUEST)
        .collect();
    let answers: Vec<&Stun> = stun
        .iter()
        .filter(|m| m.kind == STUN_BINDING_SUCCESS)
        .collect();
    let asked: HashSet<&str> = requests.iter().map(|m| m.id.as_str()).collect();
    for answer in &answers {
        assert!(
            asked.contains(answer.id.as_str()),
            "{transport}: an answer to a request not in the file: {answer:?}"
        );
    }
    let answered_to = |port: u16| {
        answers
            .iter()
            .any(|a| a.dst_port == port && a.ports.contains(&port))
    };
    let public: SocketAddr = report["public_address"].as_str().unwrap().parse().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.src_port == public.port() && r.dst_port == server_port),
        "{transport}: no request from the mapping socket {public} in {stun:#?}"
    );
    assert!(
        answered_to(public.port()),
        "{transport}: no answer to {public}"
    );

    let allocation = &report["allocation"];
    let ports: Vec<u16> = allocation["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_u64().map(|p| p as u16))
        .collect();
    assert_eq!(ports.len() as u64, allocation["answered"].as_u64().unwrap());
    let samples = allocation["samples"].as_u64().unwrap() as usize;
    assert!(samples >= ports.len() && samples >= 2);
    for port in &ports {
        assert!(
            requests
                .iter()
                .any(|r| r.src_port == *port && r.dst_port == server_port),
            "{transport}: no request from sample port {port}"
        );
    }
    let answered_in_file = ports.iter().filter(|&&p| answered_to(p)).count();
    assert_eq!(
        answered_in_file,
        ports.len(),
        "{transport}: natlens counted {} answered samples, the file shows {answered_in_file}",
        ports.len()
    );
}

fn run(mut command: Command) -> Output {
    let output = command.output().expect("running natlens");
    assert!(
        output.status.success(),
        "natlens failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn nat_args<'a>(server: &'a str, pcap: &'a str) -> Vec<&'a str> {
    vec!["nat", "--server", server, "--json", "--pcap", pcap]
}

#[test]
fn nat_capture_holds_every_probe_and_answer_natlens_counted() {
    if !ready("nat_capture", true) {
        return;
    }
    let scratch = Scratch::new("nat");
    let file = scratch.file("nat.pcapng");
    let server = Server::natlens(Mode::Full, &[]);
    let primary = server.primary.to_string();
    let output = run(natlens(&nat_args(&primary, file.to_str().unwrap())));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("--pcap"),
        "a live capture says nothing: {stderr}"
    );

    assert_not_malformed(&file);
    for transport in ["udp", "tcp"] {
        assert_transport_matches(&file, transport, &report[transport], server.primary.port());
    }
    // Captured, not synthesized: no comments, and the TCP handshakes are there.
    let comments = tshark_fields(&file, "frame.comment", &["frame.number"]);
    assert!(
        comments.is_empty(),
        "live frames carry comments: {comments:?}"
    );
    let syns = tshark_fields(
        &file,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["tcp.srcport"],
    );
    let tcp_samples = report["tcp"]["allocation"]["samples"].as_u64().unwrap() as usize;
    assert!(
        syns.len() > tcp_samples,
        "{} SYNs for {tcp_samples} samples",
        syns.len()
    );
}

#[test]
fn nat_without_cap_net_raw_writes_udp_and_tcp_with_synthesized_headers() {
    if !ready("nat_synthesized", false) {
        return;
    }
    let scratch = Scratch::new("synth");
    let file = scratch.file("nat.pcapng");
    let server = Server::natlens(Mode::Full, &[]);
    let primary = server.primary.to_string();
    let output = run(natlens_without_cap_net_raw(&nat_args(
        &primary,
        file.to_str().unwrap(),
    )));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("--pcap")).collect();
    assert_eq!(said, [NO_CAP_LINE], "stderr: {stderr}");

    assert_not_malformed(&file);
    for transport in ["udp", "tcp"] {
        assert_transport_matches(&file, transport, &report[transport], server.primary.port());
    }
    // Every frame is marked, and every checksum verifies.
    let frames = tshark_fields(&file, "frame", &["frame.comment"]);
    assert!(frames
        .iter()
        .all(|row| row[0].starts_with("synthesized by natlens")));
    assert_checksums_good(&file);

    // TCP: one Binding request over its own connection per allocation sample, each stream
    // a whole conversation Wireshark finds nothing wrong with: a handshake first, sequence
    // numbers without a gap, and the RST each prober connection closes with (SO_LINGER 0).
    let tcp = &report["tcp"];
    let mapping: SocketAddr = tcp["public_address"].as_str().unwrap().parse().unwrap();
    let samples = tcp["allocation"]["samples"].as_u64().unwrap() as usize;
    // The TCP filtering test's control connection (it sends the CHANGE-REQUESTs) is no sample.
    let filtering_control: HashSet<u16> =
        tshark_fields(&file, "tcp && stun.att.type == 0x0003", &["tcp.srcport"])
            .iter()
            .map(|row| row[0].parse().unwrap())
            .collect();
    let sample_requests = stun_messages(&file, "tcp")
        .iter()
        .filter(|m| m.kind == STUN_BINDING_REQUEST)
        .filter(|m| m.dst_port == server.primary.port() && m.src_port != mapping.port())
        .filter(|m| !filtering_control.contains(&m.src_port))
        .count();
    assert_eq!(
        sample_requests, samples,
        "TCP Binding requests from fresh ports in the file vs samples natlens reports"
    );
    assert_tcp_analysis_clean(&file);
    let streams = tcp_streams(&file);
    assert!(streams.len() > samples, "{} TCP streams", streams.len());
    for (stream, flags) in &streams {
        assert_eq!(
            flags[..3],
            ["SYN", "SYN-ACK", "ACK"],
            "stream {stream} opens with {flags:?}"
        );
        assert_eq!(
            flags.last().map(String::as_str),
            Some("RST-ACK"),
            "stream {stream}: {flags:?}"
        );
    }
}

/// `nat -t tcp` against a server on [::1] without CAP_NET_RAW: the synthesized TCP is IPv6,
/// and reads back as cleanly as over IPv4.
#[test]
fn nat_over_ipv6_without_cap_net_raw_writes_tcp_with_synthesized_headers() {
    if !ready("nat_synthesized_ipv6", false) {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        skip("nat_synthesized_ipv6: this host has no IPv6 loopback");
        return;
    }
    let scratch = Scratch::new("synth6");
    let file = scratch.file("nat6.pcapng");
    let server = Server::natlens_at("[::1]:0".parse().unwrap());
    let primary = server.primary.to_string();
    let mut args = nat_args(&primary, file.to_str().unwrap());
    args.extend(["--transport", "tcp"]);
    let output = run(natlens_without_cap_net_raw(&args));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_not_malformed(&file);
    // IPv6 results are under ipv6 (udp and tcp are IPv4's).
    let tcp = &report["ipv6"]["tcp"];
    assert_transport_matches(&file, "tcp", tcp, server.primary.port());
    assert_tcp_analysis_clean(&file);
    assert_checksums_good(&file);
    let families = tshark_fields(&file, "tcp && !ipv6", &["frame.number"]);
    assert!(families.is_empty(), "IPv4 frames in {families:?}");
}

/// Every IPv4, UDP and TCP checksum in a capture verifies (tshark's status 1 is Good; IPv6
/// has no header checksum).
fn assert_checksums_good(file: &Path) {
    let checks = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(["-o", "tcp.check_checksum:TRUE"])
        .args(["-T", "fields", "-E", "occurrence=f"])
        .args(["-e", "ip.checksum.status"])
        .args(["-e", "udp.checksum.status", "-e", "tcp.checksum.status"])
        .output()
        .unwrap();
    let statuses: BTreeSet<String> = String::from_utf8_lossy(&checks.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let good = |row: &String| {
        let fields: Vec<&str> = row.split('\t').collect();
        let transports = fields.get(1..3).unwrap_or_default();
        matches!(fields[0], "" | "1") && transports.contains(&"1") && transports.contains(&"")
    };
    assert!(
        !statuses.is_empty() && statuses.iter().all(good),
        "checksum statuses (ip, udp, tcp; 1 is Good): {statuses:?}"
    );
}

/// Wireshark's TCP analysis flags nothing: no segment missing, out of order, retransmitted,
/// duplicate-acknowledged or acknowledging what it never saw.
fn assert_tcp_analysis_clean(file: &Path) {
    let flagged = tshark_fields(
        file,
        "tcp.analysis.flags",
        &["frame.number", "_ws.expert.message"],
    );
    assert!(
        flagged.is_empty(),
        "{}: TCP analysis flags {flagged:?}",
        file.display()
    );
}

/// Each TCP stream of a capture (tshark's index) with the flags of its segments in order:
/// "SYN", "SYN-ACK", "ACK", "PSH-ACK", "FIN-ACK", "RST-ACK".
fn tcp_streams(file: &Path) -> BTreeMap<u32, Vec<String>> {
    let mut streams: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for row in tshark_fields(file, "tcp", &["tcp.stream", "tcp.flags"]) {
        let bits = u16::from_str_radix(row[1].trim_start_matches("0x"), 16).unwrap();
        let names: Vec<&str> = [(0x08, "PSH"), (0x02, "SYN"), (0x01, "FIN"), (0x04, "RST")]
            .into_iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| name)
            .chain((bits & 0x10 != 0).then_some("ACK"))
            .collect();
        streams
            .entry(row[0].parse().unwrap())
            .or_default()
            .push(names.join("-"));
    }
    streams
}

/// A background `natlens listen`, killed when dropped (a failed test leaves no process).
struct Listening(std::process::Child);

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a punch test runs `listen` and `call`: the punch's transport, the session's
/// (`--login-transport`), and how natlens is started.
#[derive(Clone, Copy)]
struct PunchRun {
    transport: &'static str,
    login: &'static str,
    natlens: Launcher,
    /// Without CAP_NET_RAW: the file holds the connection natlens made, not its failed tries.
    synthesized: bool,
}

/// `natlens listen --pcap` in the background, once it says it is waiting for a call.
fn start_listen(server: &str, pcap: &Path, run: PunchRun) -> Listening {
    let mut child = (run.natlens)(&[
        "listen",
        "--server",
        server,
        "--id",
        "alice",
        "--no-data",
        "--json",
    ])
    .args(["--transport", run.transport, "--login-transport", run.login])
    .arg("--pcap")
    .arg(pcap)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let listening = Listening(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("waiting") => return listening,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("listen never said it was waiting");
}

/// The punch report on stdout (`--no-data`): the line with `schema_version`.
fn punch_report(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("schema_version").is_some())
        .expect("a punch report")
}

/// Frames of `transport` from `from` to `to` in a capture.
fn frames_between(file: &Path, transport: &str, from: SocketAddr, to: SocketAddr) -> usize {
    let filter = format!(
        "ip.src == {} && {transport}.srcport == {} && ip.dst == {} && {transport}.dstport == {}",
        from.ip(),
        from.port(),
        to.ip(),
        to.port()
    );
    tshark_fields(file, &filter, &["frame.number"]).len()
}

/// Both ends' captures of a punch and their reports, removed with the scratch directory.
struct PunchCaptures {
    _scratch: Scratch,
    server_port: u16,
    /// The caller's file and report, then the callee's.
    ends: [(PathBuf, Value); 2],
}

/// listen and call punch on loopback, each writing a capture that must hold the session with
/// the server and the punched path both ways.
fn punch_with_captures(run: PunchRun) -> PunchCaptures {
    let scratch = Scratch::new(&format!("punch-{}-{}", run.transport, run.login));
    let (listen_file, call_file) = (scratch.file("listen.pcapng"), scratch.file("call.pcapng"));
    let server = Server::natlens(Mode::Basic, &[]);
    let primary = server.primary.to_string();
    let mut listener = start_listen(&primary, &listen_file, run);
    let call = (run.natlens)(&[
        "call",
        "alice",
        "--server",
        &primary,
        "--id",
        "bob",
        "--no-data",
    ])
    .args([
        "--json",
        "--transport",
        run.transport,
        "--login-transport",
        run.login,
    ])
    .arg("--pcap")
    .arg(&call_file)
    .output()
    .unwrap();
    let mut listen_stdout = Vec::new();
    listener
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut listen_stdout)
        .unwrap();
    let listen_status = listener.0.wait().unwrap();
    assert!(
        call.status.success(),
        "call: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    assert!(listen_status.success(), "listen: {listen_status}");

    let server_port = server.primary.port();
    let ends = [
        (call_file, punch_report(&call.stdout)),
        (listen_file, punch_report(&listen_stdout)),
    ];
    for (file, report) in &ends {
        assert_capture_holds_the_punch(file, report, run, server_port);
    }
    PunchCaptures {
        _scratch: scratch,
        server_port,
        ends,
    }
}

/// The local and peer addresses of a punch report's path.
fn punched_path(report: &Value) -> (SocketAddr, SocketAddr) {
    let address = |key: &str| report["path"][key].as_str().unwrap().parse().unwrap();
    (address("local"), address("peer"))
}

/// One end's capture against its report: the punched path both ways (at least as many frames
/// out as the probes natlens counted, when captured live), the session with the server (over
/// the login transport), and no malformed frame.
fn assert_capture_holds_the_punch(file: &Path, report: &Value, run: PunchRun, server_port: u16) {
    assert_eq!(report["result"], "connected", "{report}");
    let (local, peer) = punched_path(report);
    let transport = run.transport;
    let role = if report["role"] == "caller" {
        "caller"
    } else {
        "callee"
    };
    let sent = report["directions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["from"] == role)
        .and_then(|d| d["packets_sent"].as_u64())
        .unwrap() as usize;
    assert_not_malformed(file);
    let to_peer = frames_between(file, transport, local, peer);
    let from_peer = frames_between(file, transport, peer, local);
    // A synthesized TCP capture holds the connection, not the connect() tries that failed.
    let least = if run.synthesized && transport == "tcp" {
        1
    } else {
        sent.max(1)
    };
    assert!(
        to_peer >= least && from_peer >= 1,
        "{}: {to_peer} frames {local} -> {peer} (natlens sent {sent} probes), {from_peer} back",
        file.display()
    );
    let session = format!("stun && {}.port == {server_port}", run.login);
    assert!(
        !tshark_fields(file, &session, &["frame.number"]).is_empty(),
        "{}: no STUN with the server",
        file.display()
    );
}

#[test]
fn listen_and_call_captures_hold_the_udp_punch_both_ways() {
    if !ready("punch_capture_udp", true) {
        return;
    }
    punch_with_captures(PunchRun {
        transport: "udp",
        login: "udp",
        natlens,
        synthesized: false,
    });
}

#[test]
fn listen_and_call_captures_hold_the_tcp_punch_both_ways() {
    if !ready("punch_capture_tcp", true) {
        return;
    }
    punch_with_captures(PunchRun {
        transport: "tcp",
        login: "udp",
        natlens,
        synthesized: false,
    });
}

/// Ctrl-C during `nat --pcap` (live): the file is finished before natlens exits with 130, and
/// holds every request the server had received when the signal was sent, even the one sent
/// just before (a frame waits up to 250 ms for its socket before it is written).
#[test]
fn interrupted_nat_finishes_the_file_and_exits_130() {
    if !ready("interrupted_nat", true) {
        return;
    }
    let scratch = Scratch::new("interrupt");
    let file = scratch.file("nat.pcapng");
    // A server that takes requests and never answers: natlens retransmits until interrupted.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let mut child = natlens(&["nat", "--server", &server, "--transport", "udp"])
        .args(["--timeout", "10s", "--pcap"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 1500];
    let mut received = 0;
    while received < 2 {
        // SO_RCVTIMEO makes a signal to this test process (another test's) end the wait with
        // EINTR even under SA_RESTART: wait again.
        match silent.recv_from(&mut buf) {
            Ok(_) => received += 1,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => panic!("natlens's requests: {err}"),
        }
    }
    // Retransmissions are about 360 ms apart: the signal lands between two.
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    silent.set_nonblocking(true).unwrap();
    let mut total = received;
    while silent.recv_from(&mut buf).is_ok() {
        total += 1;
    }
    assert_not_malformed(&file);
    let requests = stun_messages(&file, "udp")
        .into_iter()
        .filter(|m| m.kind == STUN_BINDING_REQUEST)
        .count();
    assert!(
        (received..=total).contains(&requests),
        "{requests} requests in the file; the server had {received} at the signal, {total} in all"
    );
}

/// In the lab, through real NATs: a TCP punch from a cone (host b, calling) to a sequential NAT
/// (host a, listening) sprays crafted low-TTL SYNs at a's predicted ports. The caller's capture
/// holds every one of them as sent (TTL --syn-ttl, from the punched port), and both captures
/// hold the connection the punch reported; nothing is malformed.
#[test]
fn lab_tcp_punch_capture_holds_the_crafted_syns() {
    use common::lab_cli::{self, Proc, ALT_PORT, PORT};
    use natlens::lab::plan::SERVER_PRIMARY;
    use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};

    if !ready("lab_pcap", true) {
        return;
    }
    let Some(_serial) = lab_cli::lab_lock() else {
        return;
    };
    let lab = Lab::up(LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        nat_b: NatMode::Cone,
        ..LabSpec::default()
    })
    .expect("building the lab");
    let _server = lab_cli::server(&lab, "s1", PORT, ALT_PORT, None);
    let server = format!("{SERVER_PRIMARY}:{PORT}");
    let scratch = Scratch::new("lab");
    let (listen_file, call_file) = (scratch.file("listen.pcapng"), scratch.file("call.pcapng"));

    let mut listen = lab_cli::natlens(&["listen", "--server", &server, "--id", "alice"]);
    listen
        .args(["--transport", "tcp", "--json", "--pcap"])
        .arg(&listen_file);
    let listen = Proc::spawn(&lab, Host::Lan(Side::A), listen);
    assert!(listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(15)));
    let mut call = lab_cli::natlens(&["call", "alice", "--server", &server, "--id", "bob"]);
    call.args(["--transport", "tcp", "--json", "--pcap"])
        .arg(&call_file);
    let call = Proc::spawn(&lab, Host::Lan(Side::B), call);
    let limit = Instant::now() + lab_cli::ATTEMPT_LIMIT;
    let (call, listen) = (call.finish(limit), listen.finish(limit));
    assert!(call.connected(), "{}", call.context());
    assert!(listen.connected(), "{}", listen.context());

    let report = &call.report;
    let local: SocketAddr = report["path"]["local"].as_str().unwrap().parse().unwrap();
    let sent = report["directions"][0]["packets_sent"].as_u64().unwrap() as usize;
    let crafted = format!(
        "tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.ttl == {} && tcp.srcport == {}",
        natlens::io::punch_tcp::DEFAULT_SYN_TTL,
        local.port()
    );
    let aimed: BTreeSet<u16> = tshark_fields(&call_file, &crafted, &["tcp.dstport"])
        .iter()
        .map(|row| row[0].parse().unwrap())
        .collect();
    let syns = tshark_fields(&call_file, &crafted, &["frame.number"]).len();
    let predicted: BTreeSet<u16> = report["directions"][0]["predicted_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u16)
        .collect();
    // natlens counts a SYN the kernel would not take (a full raw socket queue) as sent, as a
    // lost one: the file holds at most that many, and one at every predicted port.
    assert!(
        syns <= sent && aimed.is_superset(&predicted),
        "{syns} crafted SYNs in the caller's capture (natlens reports {sent} sent), aimed at \
         {aimed:?}; predicted {predicted:?}"
    );
    assert!(
        !call.context().contains("--pcap"),
        "the capture said something: {}",
        call.context()
    );
    for (file, end) in [(&call_file, &call), (&listen_file, &listen)] {
        assert_not_malformed(file);
        let local: SocketAddr = end.report["path"]["local"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let peer: SocketAddr = end.report["path"]["peer"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            frames_between(file, "tcp", local, peer) >= 1,
            "{}",
            file.display()
        );
        assert!(
            frames_between(file, "tcp", peer, local) >= 1,
            "{}",
            file.display()
        );
    }
}

#[test]
fn listen_and_call_without_cap_net_raw_record_the_udp_punch_both_ways() {
    if !ready("punch_synthesized", false) {
        return;
    }
    punch_with_captures(PunchRun {
        transport: "udp",
        login: "udp",
        natlens: natlens_without_cap_net_raw,
        synthesized: true,
    });
}

/// Without CAP_NET_RAW the TCP punch is a plain simultaneous open, and the session goes over
/// TCP too: each end's file holds both streams as Wireshark would have seen them, the
/// session's STUN reassembled from the stream, the punched connection's handshake, the hellos
/// both ways and this end's FIN, with nothing the TCP analysis flags.
#[test]
fn listen_and_call_without_cap_net_raw_record_the_tcp_punch_and_session_streams() {
    if !ready("punch_synthesized_tcp", false) {
        return;
    }
    let captures = punch_with_captures(PunchRun {
        transport: "tcp",
        login: "tcp",
        natlens: natlens_without_cap_net_raw,
        synthesized: true,
    });
    let hello_len = natlens::wire::tcp_hello::HELLO_LEN;
    for (file, report) in &captures.ends {
        assert_tcp_analysis_clean(file);
        assert_checksums_good(file);
        let (local, peer) = punched_path(report);
        let between = |from: SocketAddr, to: SocketAddr, filter: &str| {
            let filter = format!(
                "ip.src == {} && tcp.srcport == {} && ip.dst == {} && tcp.dstport == {} && {filter}",
                from.ip(),
                from.port(),
                to.ip(),
                to.port()
            );
            tshark_fields(file, &filter, &["frame.number"]).len()
        };
        let syns =
            between(local, peer, "tcp.flags.syn == 1") + between(peer, local, "tcp.flags.syn == 1");
        assert_eq!(syns, 2, "{}: one SYN and one SYN-ACK", file.display());
        let hellos = format!("tcp.len == {hello_len}");
        assert_eq!(
            (between(local, peer, &hellos), between(peer, local, &hellos)),
            (1, 1),
            "{}: the hellos",
            file.display()
        );
        assert_eq!(
            between(local, peer, "tcp.flags.fin == 1"),
            1,
            "{}: our FIN after the exchange",
            file.display()
        );
        // The session: its STUN over the stream, and the FIN of its close (the prober's
        // connections to the server end with a RST).
        let session_fin = format!(
            "tcp.dstport == {} && tcp.flags.fin == 1",
            captures.server_port
        );
        assert_eq!(
            tshark_fields(file, &session_fin, &["frame.number"]).len(),
            1,
            "{}: the session's FIN",
            file.display()
        );
    }
}
