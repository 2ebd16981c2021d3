//! The carrier-grade NAT in front of router A (`natlens lab up --cgnat-a MODE`): a second NAT
//! layer, as a home router behind a carrier's NAT has.
//!
//! ```text
//!  a 192.0.2.10 ─ router-a ─────────── carrier-a ──────────── internet
//!       192.0.2.1 (lan) 100.64.0.2 (wan)   100.64.0.1 (lan) 203.0.113.1 (wan)
//! ```
//!
//! Router A's WAN moves onto a carrier segment in RFC 6598 shared address space (the one
//! range outside RFC 5737 the lab uses, because a CGNAT verdict rests on that address class);
//! the carrier takes router A's place on the internet segment, with its public address and
//! MAC. The carrier is built like a router (the same interface names `lan` and `wan`, the
//! same rulesets from [`ruleset::router`], the same sysctls), so everything docs/lab.md says
//! a router needs holds for it too: unsolicited input dropped, `tcp_loose` 0, NAT state reset
//! with the routers'. Router A routes everything through the carrier; the carrier, like a
//! router, has no default route.

use std::net::Ipv4Addr;

use crate::lab::plan::{router_wan, Address, HostPlan, PREFIX_LEN};
use crate::lab::ruleset;
use crate::lab::spec::{Host, LabSpec, Side};

/// The carrier segment, in RFC 6598 shared address space (100.64.0.0/10).
pub const CARRIER_NET: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// The carrier's address on the carrier segment: router A's gateway.
pub const CARRIER_INSIDE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// Router A's WAN address behind the carrier.
pub const ROUTER_BEHIND_CARRIER: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

/// True for addresses on a lab carrier segment.
pub fn is_carrier_segment(addr: Ipv4Addr) -> bool {
    addr.octets()[..3] == CARRIER_NET.octets()[..3]
}

/// The address of a router's own WAN interface: its public address, or its carrier-segment
/// address behind a carrier.
pub fn router_wan_addr(spec: &LabSpec, side: Side) -> Ipv4Addr {
    match spec.cgnat(side) {
        Some(_) => ROUTER_BEHIND_CARRIER,
        None => router_wan(side),
    }
}

/// The nft ruleset of a NAT host (router or carrier); `None` for any other host. Loss is made
/// on the link to the internet segment only, so a carrier does not double it.
pub fn nat_ruleset(spec: &LabSpec, host: Host) -> Option<String> {
    match host {
        Host::Router(side) => {
            let loss = if spec.cgnat(side).is_some() {
                0
            } else {
                spec.loss_percent
            };
            let wan = router_wan_addr(spec, side);
            Some(ruleset::router_with_udp_timeout(
                spec.nat(side),
                wan,
                loss,
                udp_timeout_secs(spec),
            ))
        }
        Host::Carrier(side) => {
            let mode = spec.cgnat(side)?;
            Some(ruleset::router_with_udp_timeout(
                mode,
                router_wan(side),
                spec.loss_percent,
                udp_timeout_secs(spec),
            ))
        }
        _ => None,
    }
}

/// The lab's `--udp-timeout` in whole seconds, for the full-cone UDP maps.
fn udp_timeout_secs(spec: &LabSpec) -> Option<u32> {
    spec.udp_timeout
        .map(|t| u32::try_from(t.as_secs().max(1)).unwrap_or(u32::MAX))
}

/// True for the hosts that NAT: the routers and carriers (conntrack to flush, rulesets to
/// reload).
pub fn is_nat(host: Host) -> bool {
    matches!(host, Host::Router(_) | Host::Carrier(_))
}

/// Addresses, routes and forwarding of the carrier in front of `side`.
pub fn configure(plan: &mut HostPlan, side: Side) {
    plan.addresses.push(Address {
        iface: "wan".to_owned(),
        addr: router_wan(side),
        prefix_len: PREFIX_LEN,
    });
    plan.addresses.push(Address {
        iface: "lan".to_owned(),
        addr: CARRIER_INSIDE,
        prefix_len: PREFIX_LEN,
    });
    plan.forwarding = true;
}

/// Moves a router's WAN onto the carrier segment: its address there, the carrier as its
/// gateway, and no place on the internet segment (no fixed MAC, no neighbours there).
pub fn put_behind_carrier(plan: &mut HostPlan) {
    for address in plan.addresses.iter_mut().filter(|a| a.iface == "wan") {
        address.addr = ROUTER_BEHIND_CARRIER;
    }
    plan.default_via = Some(CARRIER_INSIDE);
    plan.segment_mac = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::{is_documentation, Plan};
    use crate::lab::spec::NatMode;

    fn spec() -> LabSpec {
        LabSpec {
            cgnat_a: Some(NatMode::Cone),
            ..LabSpec::default()
        }
    }

    #[test]
    fn the_carrier_takes_router_a_place_on_the_segment() {
        let plan = Plan::new(&spec(), "nl00aa11");
        let carrier = plan.host(Host::Carrier(Side::A)).unwrap();
        assert_eq!(carrier.netns, "nl00aa11-carrier-a");
        assert_eq!(carrier.segment_mac.as_deref(), Some("02:00:cb:00:71:01"));
        assert!(carrier.forwarding && carrier.default_via.is_none());
        let router = plan.host(Host::Router(Side::A)).unwrap();
        assert_eq!(router.default_via, Some(CARRIER_INSIDE));
        assert!(router.segment_mac.is_none() && router.neighbours.is_empty());
        let wan: Vec<&str> = plan
            .segment
            .iter()
            .filter(|port| port.wan_link)
            .map(|port| port.iface.as_str())
            .collect();
        assert_eq!(wan, ["carrier-a", "router-b"]);
        let carrier_link = plan
            .links
            .iter()
            .find(|l| l.ends[0].0 == Host::Router(Side::A))
            .unwrap();
        assert_eq!(
            carrier_link.ends[1],
            (Host::Carrier(Side::A), "lan".to_owned())
        );
    }

    #[test]
    fn only_the_carrier_segment_leaves_the_documentation_ranges() {
        let plan = Plan::new(&spec(), "nl00aa11");
        for host in &plan.hosts {
            for address in &host.addresses {
                assert!(
                    is_documentation(address.addr) || is_carrier_segment(address.addr),
                    "{address:?}"
                );
            }
        }
    }

    #[test]
    fn without_a_carrier_nothing_changes() {
        let plan = Plan::new(&LabSpec::default(), "nl00aa11");
        assert!(plan.host(Host::Carrier(Side::A)).is_none());
        assert_eq!(
            nat_ruleset(&LabSpec::default(), Host::Carrier(Side::A)),
            None
        );
        let router = plan.host(Host::Router(Side::A)).unwrap();
        assert!(router.default_via.is_none());
    }

    #[test]
    fn the_carrier_nats_to_the_public_address_and_router_a_to_the_carrier_segment() {
        let spec = LabSpec {
            cgnat_a: Some(NatMode::Sequential { delta: 1 }),
            nat_a: NatMode::Sequential { delta: 2 },
            loss_percent: 5,
            ..LabSpec::default()
        };
        let carrier = nat_ruleset(&spec, Host::Carrier(Side::A)).unwrap();
        assert!(
            carrier.contains("snat ip to 203.0.113.1 : numgen"),
            "{carrier}"
        );
        assert!(carrier.contains("numgen random mod 100 < 5 drop"));
        let router = nat_ruleset(&spec, Host::Router(Side::A)).unwrap();
        assert!(
            router.contains("snat ip to 100.64.0.2 : numgen"),
            "{router}"
        );
        assert!(
            !router.contains("netdev"),
            "loss is made once, at the carrier"
        );
        assert!(nat_ruleset(&spec, Host::Router(Side::B))
            .unwrap()
            .contains("netdev"));
    }
}
