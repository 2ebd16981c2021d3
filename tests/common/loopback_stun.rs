//! STUN servers on loopback for the tests of STUN clients (tests/nat_loopback.rs for `natlens
//! nat`, tests/third_party_clients.rs for coturn's and Debian's clients): `natlens server` or
//! coturn's `turnserver`, in basic mode (one address) or RFC 5780 full mode (primary
//! 127.0.0.1:P1, alternate 127.0.0.2:P2), on free ports. Linux routes all of 127.0.0.0/8 to
//! `lo`, so every packet stays on loopback.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use natlens::core::binding::FullMode;

pub const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const ALTERNATE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long a server gets to answer on every address it should serve.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// One `--listen` address.
    Basic,
    /// RFC 5780: primary 127.0.0.1:P1, alternate 127.0.0.2:P2, serving all four IP x port mixes.
    Full,
}

/// A running server, killed when dropped (also when the test panics).
pub struct Server {
    /// "natlens" or "coturn", for messages.
    pub name: &'static str,
    child: Child,
    /// The command line, for messages.
    pub command: String,
    /// Its stdout and stderr.
    log: PathBuf,
    /// Other files of the server's to remove when it stops.
    scratch: Vec<PathBuf>,
    pub primary: SocketAddr,
    pub alternate: Option<SocketAddr>,
}

enum Start {
    Ready(Server),
    /// The ports were taken between choosing and binding them: try others.
    PortsTaken,
}

impl Server {
    /// `natlens server ARGS` in `mode` on free ports.
    pub fn natlens(mode: Mode, args: &[&str]) -> Server {
        Self::start_with_retries("natlens", mode, |primary, alternate| {
            (Self::natlens_command(primary, alternate, args), Vec::new())
        })
    }

    /// A basic-mode natlens server on `listen` (port 0: the kernel picks, the log tells).
    pub fn natlens_at(listen: SocketAddr) -> Server {
        let command = Self::natlens_command(listen, None, &[]);
        let mut server = Self::spawn("natlens", command, Vec::new(), listen, None);
        let deadline = Instant::now() + READY_TIMEOUT;
        while server.primary.port() == 0 && Instant::now() < deadline {
            server.primary = server
                .log_text()
                .lines()
                .find_map(|line| {
                    line.split(" listening udp ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(server.primary);
            thread::sleep(Duration::from_millis(20));
        }
        server
            .wait_ready()
            .unwrap_or_else(|e| panic!("{e}\n{}", server.describe()));
        server
    }

    fn natlens_command(
        primary: SocketAddr,
        alternate: Option<SocketAddr>,
        args: &[&str],
    ) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natlens"));
        cmd.arg("server")
            .args(args)
            .args(["--listen", &primary.to_string()]);
        if let Some(alternate) = alternate {
            cmd.args(["--alternate", &alternate.to_string()]);
        }
        cmd
    }

    /// coturn's `turnserver` in `mode`: STUN only, no TLS, DTLS or CLI.
    pub fn coturn(turnserver: &Path, mode: Mode) -> Server {
        Self::start_with_retries("coturn", mode, |primary, alternate| {
            let pidfile = scratch_path("turnserver.pid");
            let mut cmd = Command::new(turnserver);
            cmd.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls"])
                .args(["--log-file=stdout", "--simple-log"])
                .arg(format!("--pidfile={}", pidfile.display()))
                .args(["-L", &primary.ip().to_string()])
                .args(["--listening-port", &primary.port().to_string()]);
            if let Some(alternate) = alternate {
                // coturn 4.6 turns RFC 5780 on when it has two listening IPs of one family and
                // an alternate port.
                cmd.args(["-L", &alternate.ip().to_string()])
                    .args(["--alt-listening-port", &alternate.port().to_string()]);
            }
            (cmd, vec![pidfile])
        })
    }

    fn start_with_retries(
        name: &'static str,
        mode: Mode,
        command: impl Fn(SocketAddr, Option<SocketAddr>) -> (Command, Vec<PathBuf>),
    ) -> Server {
        let ips: &[Ipv4Addr] = match mode {
            Mode::Basic => &[PRIMARY_IP],
            Mode::Full => &[PRIMARY_IP, ALTERNATE_IP],
        };
        for _ in 0..5 {
            let p1 = free_port(ips, None);
            let primary = SocketAddr::new(IpAddr::V4(PRIMARY_IP), p1);
            let alternate = (mode == Mode::Full)
                .then(|| SocketAddr::new(IpAddr::V4(ALTERNATE_IP), free_port(ips, Some(p1))));
            let (cmd, scratch) = command(primary, alternate);
            match Self::start(name, cmd, scratch, primary, alternate) {
                Start::Ready(server) => return server,
                Start::PortsTaken => continue,
            }
        }
        panic!("{name}: could not find free ports in 5 tries");
    }

    fn start(
        name: &'static str,
        cmd: Command,
        scratch: Vec<PathBuf>,
        primary: SocketAddr,
        alternate: Option<SocketAddr>,
    ) -> Start {
        let mut server = Self::spawn(name, cmd, scratch, primary, alternate);
        match server.wait_ready() {
            Ok(()) => Start::Ready(server),
            Err(_) if server.log_text().contains("in use") => Start::PortsTaken,
            Err(e) => panic!("{name} did not get ready ({e})\n{}", server.describe()),
        }
    }

    fn spawn(
        name: &'static str,
        mut cmd: Command,
        scratch: Vec<PathBuf>,
        primary: SocketAddr,
        alternate: Option<SocketAddr>,
    ) -> Server {
        let log = scratch_path(&format!("{name}.log"));
        let file = File::create(&log).expect("create server log");
        let command = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        Server {
            name,
            child,
            command,
            log,
            scratch,
            primary,
            alternate,
        }
    }

    /// Every address the server serves: the primary, or all four IP x port mixes.
    fn served_addresses(&self) -> Vec<SocketAddr> {
        match self.alternate {
            // The same four IP x port mixes the server itself binds.
            Some(alternate) => FullMode {
                primary: self.primary,
                alternate,
            }
            .addresses()
            .to_vec(),
            None => vec![self.primary],
        }
    }

    /// Waits until every served address answers a Binding request over UDP and accepts TCP.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for addr in self.served_addresses() {
            loop {
                if let Some(status) = self.child.try_wait().expect("wait for server") {
                    return Err(format!("exited: {status}"));
                }
                if Instant::now() >= deadline {
                    return Err(format!("no answer on {addr} within {READY_TIMEOUT:?}"));
                }
                if binding_answered(addr) && TcpStream::connect(addr).is_ok() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Everything the server has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The command line and the last 40 lines of the log.
    pub fn describe(&self) -> String {
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "server: {}\nserver log (last 40 lines):\n{}",
            self.command,
            tail.join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for path in std::iter::once(&self.log).chain(&self.scratch) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sends one RFC 8489 Binding request to `addr` and waits briefly for its success response.
fn binding_answered(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let txid = transaction_id();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&txid);
    if socket.send_to(&request, addr).is_err() {
        thread::sleep(Duration::from_millis(50));
        return false;
    }
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        if n >= 20 && buf[0..2] == [0x01, 0x01] && buf[8..20] == txid {
            return true;
        }
    }
    false
}

/// A transaction ID no earlier request of this process had: a late answer to one never counts.
fn transaction_id() -> [u8; 12] {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
    id[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

/// A port free for both UDP and TCP on every one of `ips`, other than `not`. It is released
/// before the server binds it; `start_with_retries` copes with the rare race.
pub fn free_port(ips: &[Ipv4Addr], not: Option<u16>) -> u16 {
    loop {
        let probe = UdpSocket::bind((ips[0], 0)).expect("bind a loopback UDP port");
        let port = probe.local_addr().expect("local addr").port();
        if Some(port) == not {
            continue;
        }
        let tcp_ok = ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());
        let udp_ok = ips[1..]
            .iter()
            .all(|ip| UdpSocket::bind((*ip, port)).is_ok());
        if tcp_ok && udp_ok {
            return port;
        }
    }
}

/// A unique path in the temporary directory.
fn scratch_path(suffix: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "natlens-stun-server-{}-{n}-{suffix}",
        std::process::id()
    ))
}
