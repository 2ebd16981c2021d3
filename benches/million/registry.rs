//! `million --registry-only`: the session registry alone, timed in this process by the thread's
//! CPU time (no sockets, and the machine's other load does not count): login, refresh and the
//! expiry of every session, batch by batch, with the longest single `expire` call (what one turn
//! of the server's loop can stall for on a core of its own).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

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

use natlens::core::registry::{Limits, Registry, Route};
use serde_json::{json, Value};

pub fn measure(sessions: usize) -> Value {
    let local: SocketAddr = "127.0.0.1:3478".parse().unwrap();
    let route = |i: usize| {
        let ip = Ipv4Addr::from(u32::from_be_bytes([127, 1, 0, 1]) + (i % 3907) as u32);
        let remote = SocketAddr::V4(SocketAddrV4::new(ip, 10_000 + (i / 3907) as u16));
        (Route::Udp { local, remote }, remote)
    };
    let ids: Vec<String> = (0..sessions).map(|i| format!("s{i:07}")).collect();
    let limits = Limits {
        sessions: usize::MAX,
        per_ip: usize::MAX,
    };
    let mut registry = Registry::default();
    let start = Instant::now();
    let t = cpu_now();
    for (i, id) in ids.iter().enumerate() {
        let (route, remote) = route(i);
        registry.login(start, id, route, remote, limits).unwrap();
    }
    let login = cpu_now() - t;
    let t = cpu_now();
    for (i, id) in ids.iter().enumerate() {
        black_box(registry.refresh(start, id, route(i).0));
    }
    let refresh = cpu_now() - t;
    let expiry = Duration::from_secs(45);
    let later = start + expiry + Duration::from_secs(2);
    let (mut calls, mut expired, mut longest) = (0, 0, Duration::ZERO);
    let t = cpu_now();
    loop {
        let call = cpu_now();
        let batch = registry.expire(later, expiry);
        longest = longest.max(cpu_now() - call);
        calls += 1;
        expired += batch.len();
        drop(batch);
        if !registry.expire_pending(later, expiry) {
            break;
        }
    }
    let expire_all = cpu_now() - t;
    json!({
        "phase": "registry",
        "sessions": sessions,
        "login_cpu_ns": login.as_nanos() as f64 / sessions as f64,
        "refresh_cpu_ns": refresh.as_nanos() as f64 / sessions as f64,
        "expired": expired,
        "expire_calls": calls,
        "expire_all_cpu_ms": expire_all.as_secs_f64() * 1e3,
        "longest_expire_call_cpu_us": longest.as_secs_f64() * 1e6,
    })
}
