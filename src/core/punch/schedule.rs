//! One side's half of a plan: its sockets, the far ports it aims at and in which order, the
//! own ports those flows take, and every send paced at the rate cap, round after round.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::core::punch::birthday;
use crate::core::punch::fanout::Aim;
use crate::core::punch::plan::{LocalSocket, PunchOptions, Send, SidePlan, ROUND_INTERVAL};
use crate::core::punch::profile::{PortModel, SideModel, PORT_RANGE};
use crate::core::punch::strategy::Part;
use crate::core::punch::Role;

/// One destination of one socket: a flow (a binding on a symmetric NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    socket: usize,
    to: SocketAddr,
    /// Index of `to`'s port in the side's predicted ports.
    target: usize,
}

/// The seed of a side's spray: both ends derive it from the call ID, so both know the ports.
fn spray_seed(call_id: u64, role: Role) -> u64 {
    let salt = match role {
        Role::Caller => 0x6361_6c6c_6572,
        Role::Callee => 0x6361_6c6c_6565,
    };
    call_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

/// One side's half from its part: sockets, flows in first-round order, then the paced schedule.
pub(super) fn side_plan(
    role: Role,
    part: Part,
    own: &SideModel,
    far: &SideModel,
    options: &PunchOptions,
    call_id: u64,
) -> SidePlan {
    let far_ip = far.address.expect("checked by unplannable").ip();
    let own_fixed = matches!(own.ports, PortModel::Fixed { .. });
    let one_socket = if own_fixed {
        LocalSocket::Session
    } else {
        LocalSocket::Fresh
    };
    let mut first_round = None;
    let (sockets, flows, repeat): (Vec<LocalSocket>, Vec<(usize, u16)>, bool) = match part {
        Part::Aim { aim, grow_to } => {
            first_round = Some(aim.flows() as usize);
            let ports = aim_ports(aim, grow_to, far, own_fixed);
            (vec![one_socket], ports, true)
        }
        Part::Nudge => (
            vec![one_socket],
            likeliest(far).into_iter().map(|p| (0, p)).collect(),
            true,
        ),
        Part::Listen => (vec![one_socket], Vec::new(), true),
        Part::Hold { sockets, indices } => {
            let sockets = sockets.min(options.max_sockets);
            let flows = (0..sockets)
                .filter_map(|m| Some((m as usize, far.port_at(m % indices.max(1))?)))
                .collect();
            (vec![LocalSocket::Fresh; sockets as usize], flows, true)
        }
        Part::Spray { requests } => {
            let ports = birthday::spray_ports(spray_seed(call_id, role), requests, PORT_RANGE);
            (
                vec![one_socket],
                ports.into_iter().map(|p| (0, p)).collect(),
                false,
            )
        }
    };
    let mut predicted_ports = Vec::new();
    let mut index: HashMap<u16, usize> = HashMap::new();
    let flows: Vec<Flow> = flows
        .into_iter()
        .map(|(socket, port)| {
            let target = *index.entry(port).or_insert_with(|| {
                predicted_ports.push(port);
                predicted_ports.len() - 1
            });
            Flow {
                socket,
                to: SocketAddr::new(far_ip, port),
                target,
            }
        })
        .collect();
    SidePlan {
        role,
        own_ports: own_ports(own, &flows),
        new_mappings: new_mappings(own, &flows),
        first_round: flows[..first_round.unwrap_or(flows.len()).min(flows.len())]
            .iter()
            .map(|f| f.target + 1)
            .max()
            .unwrap_or(0),
        sockets,
        predicted_ports,
        sends: schedule(&flows, first_round.unwrap_or(flows.len()), repeat, options),
        aims_at_port_mapping: far.mapped && !flows.is_empty(),
    }
}

/// Far ports for an aim grown to `grow_to` flows: the fixed port, or `port_at(stride·f)` for
/// each flow (ports that would leave the port space are skipped). A fixed side's destinations
/// all leave from one port, so their order is free: in the first round the far side's most
/// likely index goes first, then outward (the later one first on a tie, since other hosts'
/// flows only ever push ports on). A side whose own port moves with each destination must keep
/// flow `f` on index `stride·f`.
fn aim_ports(aim: Aim, grow_to: u32, far: &SideModel, own_fixed: bool) -> Vec<(usize, u16)> {
    let Aim::Indices { flows, stride } = aim else {
        return far.port_at(0).into_iter().map(|p| (0, p)).collect();
    };
    let mut order: Vec<u32> = match far.ports {
        PortModel::Sequential { expected, .. } if own_fixed => likely_first(flows, expected),
        _ => (0..flows).collect(),
    };
    order.extend(flows..grow_to);
    order
        .into_iter()
        .filter_map(|f| far.port_at(f.checked_mul(stride)?))
        .map(|p| (0, p))
        .collect()
}

/// `0..flows` ordered `center, center + 1, center − 1, center + 2, …`.
fn likely_first(flows: u32, center: u32) -> Vec<u32> {
    let center = i64::from(center.min(flows.saturating_sub(1)));
    let mut order = Vec::with_capacity(flows as usize);
    for d in 0..=i64::from(flows) {
        for k in [center + d, center - d] {
            if (0..i64::from(flows)).contains(&k) && (d > 0 || order.is_empty()) {
                order.push(k as u32);
            }
        }
    }
    order
}

/// The far side's most likely port for a first flow.
fn likeliest(far: &SideModel) -> Option<u16> {
    match far.ports {
        PortModel::Fixed { port } => Some(port),
        PortModel::Sequential { expected, .. } => far.port_at(expected),
        PortModel::Random => far.address.map(|a| a.port()),
    }
}

/// The own public port of each flow at the most likely offset: the fan-out's own destinations
/// `k = 0, 1, …` take `p + k·d` on a symmetric sequential NAT.
fn own_ports(own: &SideModel, flows: &[Flow]) -> Vec<u16> {
    match own.ports {
        PortModel::Fixed { port } => vec![port],
        PortModel::Sequential {
            expected,
            per_destination: true,
            ..
        } => (0..flows.len() as u32)
            .map_while(|f| own.port_at(expected + f))
            .collect(),
        PortModel::Sequential { expected, .. } => own.port_at(expected).into_iter().collect(),
        PortModel::Random => Vec::new(),
    }
}

/// Bindings the side's own NAT creates: none on a fixed NAT (the session binding serves every
/// destination), one per socket on an address-dependent one (one peer address), else one per
/// distinct (socket, destination).
fn new_mappings(own: &SideModel, flows: &[Flow]) -> u32 {
    let per_address = matches!(
        own.ports,
        PortModel::Sequential {
            per_destination: false,
            ..
        }
    );
    let mut keys: Vec<(usize, u16)> = flows
        .iter()
        .map(|f| (f.socket, if per_address { 0 } else { f.to.port() }))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    match own.ports {
        PortModel::Fixed { .. } => 0,
        _ => keys.len() as u32,
    }
}

/// Paces the flows at the rate cap, round after round (if `repeat`) every [`ROUND_INTERVAL`] or
/// one round's length, whichever is longer, until the timeout or the packet budget. Round `r`
/// opens flows up to `(r + 1)·first_round` (new ones first, so the fan-out grows without
/// waiting), then sends the older ones again: re-sending reuses their bindings.
fn schedule(flows: &[Flow], first_round: usize, repeat: bool, options: &PunchOptions) -> Vec<Send> {
    let gap = Duration::from_secs(1) / options.rate;
    let budget = options.max_packets as usize;
    let step = first_round.max(1);
    let mut sends = Vec::new();
    let mut start = Duration::ZERO;
    for r in 0.. {
        let open = flows.len().min(step * (r + 1));
        let old = flows.len().min(step * r);
        let round = flows[old..open].iter().chain(&flows[..old]);
        if start >= options.timeout || flows.is_empty() {
            break;
        }
        for (k, flow) in round.enumerate() {
            let at = start + gap * k as u32;
            if at >= options.timeout || sends.len() >= budget {
                return sends;
            }
            sends.push(Send {
                at,
                socket: flow.socket,
                to: flow.to,
                target: flow.target,
            });
        }
        if !repeat {
            break;
        }
        start += ROUND_INTERVAL.max(gap * open as u32);
    }
    sends
}
