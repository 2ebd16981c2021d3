//! `million --core-only`: where a login's server CPU goes, without sockets. Times, in this
//! thread's CPU time, N logins through the server core's whole UDP path (`handle_udp` on the
//! request's bytes, with its commands and events drained as the shell does), and the parts of
//! it alone: the STUN parse with the ID read, and the registry's login. The rest of a login's
//! server CPU in `million.sh` is the kernel's (recvmmsg, sendmmsg and, on loopback, the
//! delivery to the generator's socket).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use natlens::core::registry::{Limits, Registry, Route};
use natlens::core::server::home_registry::HomeRegistry;
use natlens::core::server::{ServerConfig, ServerCore};
use natlens::wire::natlens as nl;
use natlens::wire::stun::Message;
use serde_json::{json, Value};

use super::swarm::{build, Kind};

/// CPU time this thread has used.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) into a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Session `i`'s source address, as the swarm spreads them (3,907 addresses, 256 ports).
fn source(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(u32::from_be_bytes([127, 1, 0, 1]) + (i % 3907) as u32);
    SocketAddr::V4(SocketAddrV4::new(ip, 10_000 + (i / 3907) as u16))
}

/// Nanoseconds per session of `run` over every session.
fn per_session(sessions: usize, mut run: impl FnMut(usize)) -> f64 {
    let start = cpu_now();
    for i in 0..sessions {
        run(i);
    }
    (cpu_now() - start).as_nanos() as f64 / sessions as f64
}

pub fn measure(sessions: usize) -> Value {
    let local: SocketAddr = "127.0.0.1:3478".parse().unwrap();
    let requests: Vec<[u8; 36]> = (0..sessions)
        .map(|i| {
            let mut bytes = [0; 36];
            build(&mut bytes, Kind::Login, i as u32, i as u32);
            bytes
        })
        .collect();
    let request = |i: usize| &requests[i][..32];

    let parse_ns = per_session(sessions, |i| {
        let message = Message::parse(request(i)).unwrap();
        black_box(nl::read_name(&message, nl::ID));
    });

    let limits = Limits {
        sessions: usize::MAX,
        per_ip: usize::MAX,
    };
    let mut registry = Registry::default();
    let now = Instant::now();
    let ids: Vec<String> = (0..sessions).map(|i| nl_id(&requests[i][24..32])).collect();
    let registry_ns = per_session(sessions, |i| {
        let remote = source(i);
        let route = Route::Udp { local, remote };
        registry.login(now, &ids[i], route, remote, limits).unwrap();
    });
    drop(registry);

    // With --registry, each login is also a claim for the shared registry.
    let mut home = HomeRegistry::new(local, Duration::from_secs(15));
    home.connected();
    let home_ns = per_session(sessions, |i| {
        home.session_up(now, &ids[i]);
        if i % 64 == 63 {
            // The shell takes the batched claims after each turn of its loop.
            while let Some(op) = home.poll_op() {
                black_box(op);
            }
        }
    });
    drop(home);

    let mut config = ServerConfig::new("core-bench");
    config.max_sessions = sessions + 1;
    config.answer_rate = None;
    config.addresses = vec![local];
    let mut core = ServerCore::new(config, now, 1);
    let mut reply = Vec::with_capacity(512);
    let (mut answered, mut events) = (0usize, 0usize);
    let server_ns = per_session(sessions, |i| {
        if core
            .handle_udp(now, local, source(i), request(i), &mut reply)
            .is_some()
        {
            answered += 1;
        }
        while core.poll_command().is_some() {}
        while let Some(event) = core.poll_event() {
            black_box(&event);
            events += 1;
        }
    });
    assert_eq!(core.session_counts().0, sessions, "every login succeeded");
    json!({
        "phase": "core",
        "sessions": sessions,
        "answered": answered,
        "events": events,
        "server_core_login_cpu_ns": server_ns,
        "parse_and_id_cpu_ns": parse_ns,
        "registry_login_cpu_ns": registry_ns,
        "rest_cpu_ns": server_ns - parse_ns - registry_ns,
        "home_registry_session_up_cpu_ns": home_ns,
    })
}

fn nl_id(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the swarm's IDs are ASCII")
}
