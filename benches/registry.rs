//! The shared registry (`natlens server --registry`), measured on loopback:
//!
//! 1. call setup latency, p50 and p99, from a CALL sent by a logged-in caller to its answer:
//!    one server holding both ends, against three servers sharing one Redis with the caller
//!    on the first and the callees on the other two (lookup, forward over the link dialled on
//!    demand, delivery, answer back);
//! 2. registry operations per second at a million entries, driving the registry code
//!    directly (the core's `HomeRegistry` batches, the Redis thread's pipelines): a million
//!    claims (logins), a million refreshes (one tick's batch), a million releases; and, for
//!    comparison under the same load, the same million refreshes sent the way they were before
//!    the scripts ran by SHA1: EVAL with the script's text in every command.
//!
//! Starts its own `redis-server` on free loopback ports (nothing else). Run with
//! `benches/registry.sh`; the record is `benches/results/registry.md`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natlens::core::server::home_registry::{HomeRegistry, RegistryOp, RegistryReply};
use natlens::io::server::redis_registry::{
    RedisRegistry, RegistryTarget, KEY_PREFIX, REFRESH_SCRIPT,
};
use natlens::wire::natlens as nl;
use natlens::wire::stun::{Class, Message, MessageType};
use natlens::wire::{MessageBuilder, TransactionId};

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis(dir: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("redis-server")
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    std::thread::sleep(Duration::from_millis(300));
    (Killed(child), port)
}

fn server(name: &str, port: u16, registry: Option<u16>) -> Killed {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.args(["server", "--listen", &format!("127.0.0.1:{port}")]);
    command.args(["--name", name, "--answer-rate", "0", "-q"]);
    if let Some(redis) = registry {
        command.args(["--registry", &format!("redis://127.0.0.1:{redis}")]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

fn request(
    method: natlens::wire::stun::Method,
    tid: [u8; 12],
    add: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = MessageType::new(method, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, ty, TransactionId(tid));
    add(&mut builder);
    builder.fingerprint();
    builder.finish().to_vec()
}

/// A UDP socket logged in as `id` on `server`.
fn logged_in(server: SocketAddr, id: &str) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let login = request(nl::LOGIN, [7; 12], |b| {
        b.attribute(nl::ID, id.as_bytes());
    });
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        socket.send_to(&login, server).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if Message::parse(&buf[..n]).is_ok_and(|m| m.class() == Class::Success) {
                return socket;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{id} could not log in on {server}");
}

/// Answers every call delivered to `socket` until the process ends.
fn answer_calls(socket: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        socket.set_read_timeout(None).unwrap();
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(message) = Message::parse(&buf[..n]) else {
                continue;
            };
            if message.method() == nl::CALL && message.class() == Class::Request {
                let mut out = Vec::new();
                let ty = MessageType::new(nl::CALL, Class::Success);
                let mut builder = MessageBuilder::new(&mut out, ty, message.transaction_id());
                builder.fingerprint();
                let bytes = builder.finish().to_vec();
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
}

/// Sequential calls from `caller` to `callees` (round robin); call setup times in µs, sorted.
fn call_times(caller: &UdpSocket, server: SocketAddr, callees: &[&str], calls: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(calls);
    let mut buf = [0u8; 2048];
    for i in 0..calls {
        let callee = callees[i % callees.len()];
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        let bytes = request(nl::CALL, tid, |b| {
            b.attribute(nl::PEER_ID, callee.as_bytes());
            b.attribute(nl::CALL_ID, &(i as u64).to_be_bytes());
        });
        let started = Instant::now();
        caller.send_to(&bytes, server).unwrap();
        loop {
            let (n, _) = caller
                .recv_from(&mut buf)
                .expect("a call answer within 2 s");
            let Ok(message) = Message::parse(&buf[..n]) else {
                continue;
            };
            if message.transaction_id().0 == tid {
                assert_eq!(message.class(), Class::Success, "call {i} to {callee}");
                break;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(redis_port: u16, calls: usize) {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let _single = server("single", ports[0], None);
    let _s1 = server("s1", ports[1], Some(redis_port));
    let _s2 = server("s2", ports[2], Some(redis_port));
    let _s3 = server("s3", ports[3], Some(redis_port));
    std::thread::sleep(Duration::from_millis(500));
    answer_calls(logged_in(addr(ports[0]), "bob"));
    answer_calls(logged_in(addr(ports[2]), "carol"));
    answer_calls(logged_in(addr(ports[3]), "dave"));
    let one = logged_in(addr(ports[0]), "alice");
    let many = logged_in(addr(ports[1]), "alice");
    std::thread::sleep(Duration::from_millis(300));
    // Warm-up: links dialled, caches hot; not measured.
    call_times(&one, addr(ports[0]), &["bob"], 200);
    call_times(&many, addr(ports[1]), &["carol", "dave"], 200);
    let single = call_times(&one, addr(ports[0]), &["bob"], calls);
    let across = call_times(&many, addr(ports[1]), &["carol", "dave"], calls);
    println!("| setup | calls | p50 µs | p99 µs | max µs |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, times) in [
        ("one server, both ends on it", &single),
        ("three servers + Redis, callee on another server", &across),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} |",
            times.len(),
            percentile(times, 0.5),
            percentile(times, 0.99),
            times.last().unwrap()
        );
    }
    println!(
        "\np50 difference: {:.0} µs; p99 difference: {:.0} µs\n",
        percentile(&across, 0.5) - percentile(&single, 0.5),
        percentile(&across, 0.99) - percentile(&single, 0.99)
    );
}

/// Carries `op` out and waits until Redis has done it (a lookup behind it is answered).
fn timed(registry: &RedisRegistry, ops: Vec<RegistryOp>) -> Duration {
    let started = Instant::now();
    for op in ops {
        registry.send(op);
    }
    registry.send(RegistryOp::Lookup {
        call: 0,
        id: "fence".into(),
    });
    loop {
        match registry.try_reply() {
            Some(RegistryReply::Found { call: 0, .. }) => return started.elapsed(),
            Some(RegistryReply::Lost { reason }) => panic!("redis lost: {reason}"),
            Some(RegistryReply::LookupFailed { .. }) => panic!("lookup failed"),
            _ => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// The refreshes of `ids` as the registry thread sent them before it ran scripts by SHA1:
/// EVAL with the script's text, in pipelines of the same size (10,000).
fn refresh_by_eval(redis_port: u16, ids: &[String], home: &str, ttl: Duration) -> Duration {
    let client = redis::Client::open(format!("redis://127.0.0.1:{redis_port}")).unwrap();
    let mut conn = client.get_connection().unwrap();
    let started = Instant::now();
    for chunk in ids.chunks(10_000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("EVAL")
                .arg(REFRESH_SCRIPT)
                .arg(1)
                .arg(format!("{KEY_PREFIX}{id}"))
                .arg(home)
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    started.elapsed()
}

fn throughput(redis_port: u16, entries: usize) {
    let target = RegistryTarget {
        urls: vec![format!("redis://127.0.0.1:{redis_port}")],
        cluster: false,
    };
    let own: SocketAddr = "127.0.0.1:3478".parse().unwrap();
    let refresh = Duration::from_secs(15);
    let mut core = HomeRegistry::new(own, refresh);
    let registry =
        RedisRegistry::start(target, own.to_string(), core.ttl(), Arc::new(|| {})).unwrap();
    // Wait for the connection.
    loop {
        if let Some(RegistryReply::Connected) = registry.try_reply() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    core.connected();
    let t0 = Instant::now();
    let ids: Vec<String> = (0..entries).map(|i| format!("user-{i:07}")).collect();
    let drain = |core: &mut HomeRegistry| std::iter::from_fn(|| core.poll_op()).collect::<Vec<_>>();
    let decide = Instant::now();
    for id in &ids {
        core.session_up(t0, id);
    }
    let claims = drain(&mut core);
    let decide = decide.elapsed();
    let claim = timed(&registry, claims);
    core.handle_timeout(t0 + refresh);
    let refreshes = drain(&mut core);
    let refresh_time = timed(&registry, refreshes);
    let refresh_eval = refresh_by_eval(redis_port, &ids, &own.to_string(), core.ttl());
    for id in &ids {
        core.session_down(id);
    }
    let releases = drain(&mut core);
    let release = timed(&registry, releases);
    println!("| operation ({entries} entries, pipelined) | seconds | ops/s |");
    println!("| --- | --- | --- |");
    for (name, time) in [
        ("claim (SET PX, at login)", claim),
        (
            "refresh (one-key Lua by SHA1, EVALSHA: renew if ours or gone)",
            refresh_time,
        ),
        (
            "refresh, same script sent as text (EVAL, before: comparison)",
            refresh_eval,
        ),
        ("release (one-key Lua by SHA1: delete if ours)", release),
    ] {
        println!(
            "| {name} | {:.2} | {:.0} |",
            time.as_secs_f64(),
            entries as f64 / time.as_secs_f64()
        );
    }
    println!(
        "\nCore decisions (HomeRegistry::session_up for {entries} IDs, batching included): {:.0} ms",
        decide.as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (calls, entries) = (value("--calls", 5000), value("--entries", 1_000_000));
    let dir = std::env::temp_dir().join(format!("natlens-bench-registry-{}", std::process::id()));
    let (_redis, port) = redis(&dir);
    println!("## Call setup latency (loopback, UDP, sequential calls)\n");
    latency(port, calls);
    println!("## Registry operations at {entries} entries\n");
    throughput(port, entries);
    let _ = std::fs::remove_dir_all(&dir);
}
