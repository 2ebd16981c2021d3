//! The million-session server in a reduced size: 100,000 UDP sessions logged in to a real
//! `natlens server` from 100,000 distinct loopback source transport addresses (256 sockets, each
//! sending from 391 addresses 127.1.x.y; see benches/million/swarm.rs), then every one of them
//! kept alive once. Asserts: every login and every keepalive answered with success (0 lost,
//! after the retries a lossy moment may need for a login), and the server's RSS growth per
//! session at most 256 bytes. The full million is benches/million.sh.
//!
//! The RSS figure is VmRSS after the logins minus VmRSS before, over the sessions: it counts
//! every page the registry touched, including the unused half of a table or slab that has just
//! doubled, and the memory of transient work (event queues, allocator arenas) that is not given
//! back, so it overstates the steady cost per session; the bound is the one the million-session
//! goal sets, with that overstatement inside it.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::ServerProcess;

#[path = "../benches/million/swarm.rs"]
#[allow(dead_code)]
mod swarm;

use swarm::{rss_bytes, Kind, Swarm};

const SESSIONS: usize = 100_000;
const SOCKETS: usize = 256;
const MAX_RSS_PER_SESSION: f64 = 256.0;

#[test]
fn a_hundred_thousand_udp_sessions_fit_in_256_bytes_each_and_all_stay_reachable() {
    let started = Instant::now();
    let server = ServerProcess::start(&[
        "-q",
        "--listen",
        "127.0.0.1:0",
        "--answer-rate",
        "0",
        "--max-sessions",
        "200000",
    ]);
    let SocketAddr::V4(target) = server.addr() else {
        panic!("an IPv4 listening address");
    };
    let target = SocketAddrV4::new(*target.ip(), target.port());
    let mut swarm = Swarm::new(SESSIONS, SOCKETS, target).expect("opening the swarm's sockets");

    let rss_before = rss_bytes(server.pid()).unwrap();
    let login = swarm.login_all(2048).unwrap();
    let rss_after = rss_bytes(server.pid()).unwrap();
    assert_eq!(
        login.not_logged_in, 0,
        "sessions not logged in: {login:?}, errors {:?}",
        swarm.first_errors
    );
    let per_session = (rss_after as f64 - rss_before as f64) / SESSIONS as f64;
    eprintln!(
        "{SESSIONS} logins in {:.2} s ({:.0}/s, {} lost on the first pass), RSS {} -> {} KiB: \
         {per_session:.0} B per session",
        login.first_pass.as_secs_f64(),
        SESSIONS as f64 / login.first_pass.as_secs_f64(),
        login.first_pass_lost,
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        per_session <= MAX_RSS_PER_SESSION,
        "{per_session:.0} B of RSS per session (at most {MAX_RSS_PER_SESSION})"
    );

    // Every session keeps alive once, in windows so the sockets' buffers never overflow: a
    // keepalive error would mean a session is not where the server should have it.
    let first_seq = swarm.next_seq();
    for first in (0..SESSIONS).step_by(2048) {
        swarm
            .send(Kind::Keepalive, first, 2048.min(SESSIONS - first))
            .unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until && swarm.receive(Duration::from_millis(5)).unwrap() > 0 {}
    }
    swarm.settle(Duration::from_millis(500)).unwrap();
    let keepalives = swarm.tally(Kind::Keepalive);
    let lost = swarm.unanswered_since(first_seq);
    eprintln!("keepalives: {keepalives:?}, {lost} lost");
    assert_eq!(keepalives.errors, 0, "errors: {:?}", swarm.first_errors);
    assert_eq!(lost, 0, "keepalives without an answer");
    assert_eq!(keepalives.ok, SESSIONS as u64);
    let stats = server.stats();
    assert!(stats.contains("sessions udp=100000"), "{stats}");
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
