//! `natlens lab demo`: a lab, a natlens server in it, a client behind each NAT, what each saw.
//!
//! The clients use plain STUN Binding requests (natlens `login`/`call` are not built yet): one
//! to the server's primary address and port, one to its alternate address and port, which is
//! enough to show each NAT's public address and whether its mapping depends on the destination.
//! The router's conntrack table is printed beside it, as the ground truth.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::LabDemoArgs;
use crate::lab::plan::{SERVER_ALTERNATE, SERVER_PRIMARY};
use crate::lab::{Host, Lab, Side};
use crate::wire::attr::{self, AttrType};
use crate::wire::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

/// The server's STUN port on its primary address.
const PRIMARY_PORT: u16 = 3478;
/// Its RFC 5780 alternate port, on the alternate address.
const ALTERNATE_PORT: u16 = 3479;
/// How long the server may take to start listening.
const SERVER_START: Duration = Duration::from_secs(5);
/// Wait per Binding attempt; a lab with `--loss` may need several.
const ATTEMPT_WAIT: Duration = Duration::from_millis(500);
const ATTEMPTS: usize = 6;

pub fn run(args: LabDemoArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::up(super::lab::spec(&args.spec))?;
    print!("{}", super::lab::describe(lab.state()));
    let mut server = start_server(&lab)?;
    let result = clients(&lab);
    let _ = server.kill();
    let _ = server.wait();
    result?;
    lab.down()?;
    Ok(ExitCode::SUCCESS)
}

fn primary() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_PRIMARY, PRIMARY_PORT))
}

fn alternate() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER_ALTERNATE, ALTERNATE_PORT))
}

/// `natlens server --listen 203.0.113.10:3478 --alternate 203.0.113.11:3479` in the server
/// namespace, once it says it is listening.
fn start_server(lab: &Lab) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the natlens executable")?;
    let mut command = Command::new(exe);
    command
        .args(["server", "--listen", &primary().to_string()])
        .args(["--alternate", &alternate().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = lab.spawn(Host::Server, command)?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + SERVER_START;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening udp") => {
                println!(
                    "server: natlens server on {} and {}",
                    primary(),
                    alternate()
                );
                return Ok(child);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("natlens server did not start in the lab's server namespace")
}

fn clients(lab: &Lab) -> anyhow::Result<()> {
    for side in Side::BOTH {
        let host = Host::Lan(side);
        let socket = lab.in_netns(host, || UdpSocket::bind("0.0.0.0:0"))??;
        let local = socket.local_addr()?;
        let first = binding(&socket, primary())?;
        let second = binding(&socket, alternate())?;
        let mode = lab.spec().nat(side);
        let verdict = if first == second {
            "same mapping for both: endpoint-independent"
        } else {
            "a new mapping per destination: symmetric"
        };
        let private = lab.addr(host).expect("LAN host");
        println!(
            "{host} ({private}:{}) behind router-{side} ({mode}):",
            local.port()
        );
        println!("  to {}: public address {first}", primary());
        println!("  to {}: public address {second} ({verdict})", alternate());
        let ports: Vec<String> = lab
            .conntrack_entries(side)?
            .iter()
            .filter(|e| e.proto == "udp" && e.orig_src.port() == local.port())
            .map(|e| format!("{} → {}", e.orig_dst, e.reply_dst))
            .collect();
        println!("  router-{side} conntrack: {}", ports.join(", "));
    }
    Ok(())
}

/// Sends a Binding request to `server` and returns the XOR-MAPPED-ADDRESS of the answer.
fn binding(socket: &UdpSocket, server: SocketAddr) -> anyhow::Result<SocketAddr> {
    let tid = TransactionId(rand::random());
    let mut request = Vec::new();
    MessageBuilder::new(
        &mut request,
        MessageType::new(Method::BINDING, Class::Request),
        tid,
    );
    socket.set_read_timeout(Some(ATTEMPT_WAIT))?;
    let mut buf = [0u8; 1500];
    for _ in 0..ATTEMPTS {
        socket.send_to(&request, server)?;
        let deadline = Instant::now() + ATTEMPT_WAIT;
        while Instant::now() < deadline {
            let Ok((len, _)) = socket.recv_from(&mut buf) else {
                break;
            };
            if let Some(mapped) = mapped_address(&buf[..len], &tid) {
                return Ok(mapped);
            }
        }
    }
    bail!("no Binding response from {server}")
}

fn mapped_address(bytes: &[u8], tid: &TransactionId) -> Option<SocketAddr> {
    let message = Message::parse(bytes).ok()?;
    if message.transaction_id() != *tid || message.class() != Class::Success {
        return None;
    }
    let value = message.get(AttrType::XOR_MAPPED_ADDRESS)?.value;
    attr::decode_xor_address(value, tid).ok()
}
