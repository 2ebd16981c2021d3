//! A fake gateway on loopback that answers every request with garbage first (short, oversized,
//! wrong version, an answer to something else) and from a second socket (the wrong address),
//! then, if asked to, with the real answer: the probes must ignore and count the garbage, take
//! the real answer, and never hang past their budget.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::{pcp, pmp};
use crate::wire::natpmp::{self, ResponseBody};
use crate::wire::pcp as pcp_wire;

const EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const WRONG: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

/// Garbage datagrams sent before each answer.
fn garbage() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0],
        vec![0, 128, 0],
        vec![0xff; 3000],
        vec![7; 24],
        vec![2, 0x81, 0, 0, 0, 0, 0, 0],
    ]
}

/// The real answer to `request`, for NAT-PMP or PCP; `external` as the address it reports.
fn answer(request: &[u8], external: Ipv4Addr) -> Option<Vec<u8>> {
    if let Ok(natpmp::RequestRepr::ExternalAddress) = natpmp::RequestRepr::parse(request) {
        let body = ResponseBody::ExternalAddress(external);
        let result = natpmp::ResultCode::Success;
        return Some(
            natpmp::ResponseRepr {
                result,
                epoch: 9,
                body,
            }
            .to_bytes(),
        );
    }
    let request = pcp_wire::RequestRepr::parse(request).ok()?;
    let map = request.map.map(|map| pcp_wire::MapRepr {
        external_address: IpAddr::V4(external),
        ..map
    });
    let opcode = if map.is_some() {
        pcp_wire::Opcode::Map
    } else {
        pcp_wire::Opcode::Announce
    };
    let result = pcp_wire::ResultCode::Success;
    Some(
        pcp_wire::ResponseRepr {
            opcode,
            result,
            lifetime_secs: 120,
            epoch: 9,
            map,
        }
        .to_bytes(),
    )
}

/// Serves on a loopback socket until `stop`; `honest`: send the real answer after the junk.
fn serve(honest: bool, stop: Arc<AtomicBool>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let liar = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            for junk in garbage() {
                let _ = socket.send_to(&junk, from);
            }
            if let Some(real) = answer(&buffer[..len], EXTERNAL) {
                // A well-formed answer from the wrong address, with the wrong external address.
                let _ = liar.send_to(&answer(&buffer[..len], WRONG).unwrap(), from);
                if honest {
                    let _ = socket.send_to(&real, from);
                }
            }
        }
    });
    address
}

fn fake(honest: bool) -> (Gateway, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let pmp = serve(honest, Arc::clone(&stop));
    let gateway = Gateway {
        pmp,
        // Nothing listens there: the UPnP probe is not exercised here.
        ssdp: SocketAddr::new(pmp.ip(), 9),
        local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    (gateway, stop)
}

const BUDGET: Duration = Duration::from_millis(250);

#[test]
fn garbage_and_wrong_source_answers_are_ignored_and_counted() {
    let (gateway, stop) = fake(true);
    let nat_pmp = pmp::probe(&gateway, BUDGET);
    assert!(nat_pmp.present, "{nat_pmp:?}");
    assert_eq!(nat_pmp.external_address, Some(IpAddr::V4(EXTERNAL)));
    // Six junk datagrams and the wrong-address answer came first.
    assert!(nat_pmp.ignored >= 7, "{nat_pmp:?}");
    let pcp = pcp::probe(&gateway, BUDGET);
    assert!(pcp.present, "{pcp:?}");
    assert_eq!(pcp.external_address, Some(IpAddr::V4(EXTERNAL)));
    assert_eq!(pcp.lifetime_s, Some(120));
    assert!(pcp.ignored >= 7, "{pcp:?}");
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn a_gateway_that_only_sends_garbage_ends_within_the_budget() {
    let (gateway, stop) = fake(false);
    let start = Instant::now();
    let nat_pmp = pmp::probe(&gateway, BUDGET);
    let pcp = pcp::probe(&gateway, BUDGET);
    let elapsed = start.elapsed();
    assert!(!nat_pmp.present && !pcp.present, "{nat_pmp:?} {pcp:?}");
    assert!(
        nat_pmp.ignored >= 7 && pcp.ignored >= 7,
        "{nat_pmp:?} {pcp:?}"
    );
    assert!(
        elapsed < BUDGET * 2 + Duration::from_millis(200),
        "{elapsed:?}"
    );
    // The mapping request gives up too, with every protocol's reason.
    let internal = SocketAddr::new(gateway.local_ip, 40000);
    let err = super::request_mapping_from(
        &gateway,
        crate::core::Transport::Udp,
        internal,
        Duration::from_secs(60),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("PCP") && err.contains("NAT-PMP") && err.contains("UPnP"),
        "{err}"
    );
    stop.store(true, Ordering::Relaxed);
}
