//! The lab's IPv6 addressing, beside IPv4's (see [`plan`](crate::lab::plan)): plain data derived
//! from the spec and prefix alone.
//!
//! Every lab has its own /48 inside the documentation prefix 2001:db8::/32 (RFC 3849):
//! `2001:db8:HHHH::/48`, where HHHH is the last four hex digits of the lab's prefix (`nl00aa11`
//! has 2001:db8:aa11::/48). [`fresh_prefix`](crate::lab::teardown::fresh_prefix) never picks a
//! prefix whose /48 a running lab has, and `Lab::up` refuses a given prefix that shares one, so
//! two labs never share addresses. Inside it, each segment is a /64 and the interface IDs repeat
//! the last number of the IPv4 address they sit beside (203.0.113.10 and `N::10`):
//!
//! ```text
//!  a  N:a::10 ─┐                                             ┌─ b  N:b::10
//!  a2 N:a::11 ─┤ router-a ─┐     internet N::/64  ┌─ router-b ├─ b2 N:b::11
//!        N:a::1 (lan)  N::1 (wan)              N::2 (wan)  N:b::1 (lan)
//!                            ├─ server N::10 + N::11 ┤
//!                            └─ public N::20 (optional)
//! ```
//!
//! With `nptv6`, the LAN prefix `N:a::/64` is seen outside as `N:ea::/64` (`N:eb::/64` behind
//! B), interface IDs kept; with `nat66`, as the router's WAN address. With `--cgnat-a`, the
//! carrier routes IPv6 without filtering on a carrier segment `N:c::/64` (carrier `N:c::1`,
//! router A's WAN `N:c::2`) and takes router A's `N::1` on the internet segment.
//!
//! Routes: a LAN host's default route points at its own router; routers have no default route
//! (router A behind a carrier points at the carrier, which has none); the hosts on the internet
//! segment route only the prefixes each side shows outside (its LAN prefix when it routes or
//! firewalls, its NPTv6 prefix, its carrier segment) via that side's WAN address. Nothing
//! outside the lab's /48 has a route anywhere.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::lab::carrier;
use crate::lab::plan::{primary_addr, router_lan, segment_iface, segment_mac, HostPlan, Plan};
use crate::lab::spec::{Host, LabSpec, Side};
use crate::lab::v6mode::V6Mode;

/// Length of a lab's own IPv6 prefix.
pub const LAB_NET6_LEN: u8 = 48;
/// Every IPv6 segment of the lab is a /64.
pub const SUBNET6_LEN: u8 = 64;

/// Subnet IDs inside the lab's /48.
const INTERNET_SUBNET: u16 = 0;
const CARRIER_SUBNET: u16 = 0xc;

/// The lab's /48: `2001:db8:HHHH::`, HHHH the last four hex digits of `prefix`.
pub fn lab_net6(prefix: &str) -> Ipv6Addr {
    let digits = prefix.get(prefix.len().saturating_sub(4)..).unwrap_or("");
    let id = u16::from_str_radix(digits, 16).unwrap_or(0);
    Ipv6Addr::new(0x2001, 0xdb8, id, 0, 0, 0, 0, 0)
}

/// The address with subnet ID `subnet` and interface ID `iid` in the lab's /48.
fn in_subnet(prefix: &str, subnet: u16, iid: u64) -> Ipv6Addr {
    let base = u128::from(lab_net6(prefix));
    Ipv6Addr::from(base | (u128::from(subnet) << 64) | u128::from(iid))
}

fn side_subnet(side: Side) -> u16 {
    match side {
        Side::A => 0xa,
        Side::B => 0xb,
    }
}

/// The internet segment's /64.
pub fn internet_net6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, INTERNET_SUBNET, 0)
}

/// A router's LAN /64 (`N:a::`, `N:b::`).
pub fn lan_net6(prefix: &str, side: Side) -> Ipv6Addr {
    in_subnet(prefix, side_subnet(side), 0)
}

/// The /64 a `nptv6` router shows its LAN as (`N:ea::`, `N:eb::`).
pub fn nptv6_net(prefix: &str, side: Side) -> Ipv6Addr {
    in_subnet(prefix, 0xe0 | side_subnet(side), 0)
}

/// The carrier segment's /64 (only with `--cgnat-a`).
pub fn carrier_net6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, CARRIER_SUBNET, 0)
}

/// A router's address on the internet segment (`N::1`, `N::2`); behind a carrier, the
/// carrier's. NAT66 translates to it (see [`router_own_wan6`] behind a carrier).
pub fn router_wan6(prefix: &str, side: Side) -> Ipv6Addr {
    let iid = match side {
        Side::A => 1,
        Side::B => 2,
    };
    in_subnet(prefix, INTERNET_SUBNET, iid)
}

/// A router's address on its LAN, the LAN hosts' gateway (`N:a::1`).
pub fn router_lan6(prefix: &str, side: Side) -> Ipv6Addr {
    in_subnet(prefix, side_subnet(side), 1)
}

/// The carrier's address on the carrier segment, router A's gateway behind it.
pub fn carrier_inside6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, CARRIER_SUBNET, 1)
}

/// Router A's WAN address behind a carrier.
pub fn router_behind_carrier6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, CARRIER_SUBNET, 2)
}

/// The address of a router's own WAN interface: on the internet segment, or on the carrier
/// segment behind a carrier. A `nat66` router translates to this address.
pub fn router_own_wan6(prefix: &str, spec: &LabSpec, side: Side) -> Ipv6Addr {
    match spec.cgnat(side) {
        Some(_) => router_behind_carrier6(prefix),
        None => router_wan6(prefix, side),
    }
}

/// The server's first IPv6 address (beside 203.0.113.10).
pub fn server_primary6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, INTERNET_SUBNET, 0x10)
}

/// The server's second IPv6 address, for RFC 5780 full mode (beside 203.0.113.11).
pub fn server_alternate6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, INTERNET_SUBNET, 0x11)
}

/// The public host's IPv6 address (beside 203.0.113.20).
pub fn public_addr6(prefix: &str) -> Ipv6Addr {
    in_subnet(prefix, INTERNET_SUBNET, 0x20)
}

/// The IPv6 address of a host on its own segment, whatever the modes (a router's is its
/// internet-segment address): `Lab::addr6` adds whether the host has IPv6 at all.
pub fn primary_addr6(prefix: &str, host: Host) -> Option<Ipv6Addr> {
    match host {
        Host::Lan(side) => Some(in_subnet(prefix, side_subnet(side), 0x10)),
        Host::Noise(side) => Some(in_subnet(prefix, side_subnet(side), 0x11)),
        Host::Router(side) | Host::Carrier(side) => Some(router_wan6(prefix, side)),
        Host::Server => Some(server_primary6(prefix)),
        Host::Public => Some(public_addr6(prefix)),
        Host::Internet => None,
    }
}

/// What a `nptv6` router on `side` turns LAN address `inside` into: the external /64 with the
/// interface ID kept.
pub fn nptv6_translate(prefix: &str, side: Side, inside: Ipv6Addr) -> Ipv6Addr {
    let iid = u128::from(inside) & u128::from(u64::MAX);
    Ipv6Addr::from(u128::from(nptv6_net(prefix, side)) | iid)
}

/// One IPv6 address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address6 {
    pub iface: String,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    /// Usable when bound, never picked as a source by itself (`preferred_lft 0`): the server's
    /// second address, so that, as with IPv4's secondary 203.0.113.11, a socket bound to the
    /// wildcard answers from the first. Without it Linux picks the newer address.
    #[serde(default)]
    pub secondary: bool,
}

/// A route to `net`/`prefix_len` (`::`/0: the default route) via `via`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route6 {
    pub net: Ipv6Addr,
    pub prefix_len: u8,
    pub via: Ipv6Addr,
}

/// A permanent neighbour entry: `addr` is at `mac` out of `iface`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour6 {
    pub iface: String,
    pub addr: Ipv6Addr,
    pub mac: String,
}

/// A host's IPv6 setup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan6 {
    /// False: IPv6 stays off on the host's lab interfaces (the internet segment's namespace,
    /// and every host of an `off` side).
    pub ipv6: bool,
    pub addresses: Vec<Address6>,
    pub routes: Vec<Route6>,
    /// Permanent entries for every IPv6 neighbour the host talks to: the other hosts on the
    /// internet segment, a LAN host's router, a router's LAN hosts, a carrier and the router
    /// behind it. Hosts have no link-local address, and Linux sends no neighbour solicitation
    /// for a forwarded packet from an interface without one: a router could not find a LAN host
    /// that had not spoken first. So the lab needs no neighbour discovery at all (as the IPv4
    /// neighbours save the first packet's ARP round trip).
    pub neighbours: Vec<Neighbour6>,
    /// Fixed MACs of the interfaces the permanent neighbour entries point at, set before they
    /// come up: `(interface, MAC)`. Segment interfaces have theirs already.
    pub macs: Vec<(String, String)>,
}

/// True when `host` has IPv6 in a lab built from `spec`.
pub fn has_ipv6(spec: &LabSpec, host: Host) -> bool {
    match host {
        Host::Internet => false,
        Host::Server | Host::Public => true,
        Host::Lan(side) | Host::Noise(side) | Host::Router(side) | Host::Carrier(side) => {
            spec.v6(side).has_ipv6()
        }
    }
}

/// The prefixes `side` shows on the internet segment, which the hosts there route via its WAN
/// address: its LAN prefix when it routes or firewalls, its NPTv6 prefix, and its carrier
/// segment (where a NAT66 router A's WAN address sits behind a carrier). A NAT66 router's own
/// address is on the segment already.
pub fn routed_nets6(prefix: &str, spec: &LabSpec, side: Side) -> Vec<Ipv6Addr> {
    let mut nets = match spec.v6(side) {
        V6Mode::Off => return Vec::new(),
        V6Mode::Open | V6Mode::Firewall(_) => vec![lan_net6(prefix, side)],
        V6Mode::Nptv6 => vec![nptv6_net(prefix, side)],
        V6Mode::Nat66(_) => Vec::new(),
    };
    if spec.cgnat(side).is_some() {
        nets.push(carrier_net6(prefix));
    }
    nets
}

/// Fills in every host's IPv6 setup; called by [`Plan::new`] once IPv4 is planned.
pub fn add_ipv6(plan: &mut Plan, spec: &LabSpec) {
    let prefix = plan.prefix.clone();
    for host in &mut plan.hosts {
        if has_ipv6(spec, host.host) {
            host.v6 = host_plan6(&prefix, spec, host.host);
        }
    }
    add_neighbours6(plan);
}

fn address6(iface: &str, addr: Ipv6Addr) -> Address6 {
    Address6 {
        iface: iface.to_owned(),
        addr,
        prefix_len: SUBNET6_LEN,
        secondary: false,
    }
}

fn route6(net: Ipv6Addr, prefix_len: u8, via: Ipv6Addr) -> Route6 {
    Route6 {
        net,
        prefix_len,
        via,
    }
}

/// Routes to the prefixes `sides` show outside, each via its side's internet-segment address.
fn routes_to_sides(prefix: &str, spec: &LabSpec, sides: &[Side]) -> Vec<Route6> {
    sides
        .iter()
        .flat_map(|side| {
            let via = router_wan6(prefix, *side);
            let nets = routed_nets6(prefix, spec, *side);
            nets.into_iter()
                .map(move |net| route6(net, SUBNET6_LEN, via))
        })
        .collect()
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

/// The fixed MAC of a non-segment interface: `02:00` and the four bytes of its IPv4 address,
/// as for the segment ones (`02:00:c0:00:02:0a` is a's eth0, 192.0.2.10).
fn mac_of(addr: Ipv4Addr) -> String {
    segment_mac(addr)
}

fn neighbour6(iface: &str, addr: Ipv6Addr, mac: String) -> Neighbour6 {
    Neighbour6 {
        iface: iface.to_owned(),
        addr,
        mac,
    }
}

/// Fixed MACs and permanent neighbours on the links that are not the internet segment: LANs
/// and the carrier segment.
fn link_neighbours(prefix: &str, spec: &LabSpec, host: Host, plan: &mut HostPlan6) {
    let v4 = |host: Host| primary_addr(host).expect("an addressed host");
    match host {
        Host::Lan(side) | Host::Noise(side) => {
            plan.macs.push(("eth0".into(), mac_of(v4(host))));
            let router = mac_of(router_lan(side));
            let gateway = router_lan6(prefix, side);
            plan.neighbours.push(neighbour6("eth0", gateway, router));
        }
        Host::Router(side) => {
            plan.macs.push(("lan".into(), mac_of(router_lan(side))));
            for lan_host in [Host::Lan(side), Host::Noise(side)] {
                let addr = primary_addr6(prefix, lan_host).expect("a LAN host");
                let mac = mac_of(v4(lan_host));
                plan.neighbours.push(neighbour6("lan", addr, mac));
            }
            if spec.cgnat(side).is_some() {
                plan.macs
                    .push(("wan".into(), mac_of(carrier::ROUTER_BEHIND_CARRIER)));
                let mac = mac_of(carrier::CARRIER_INSIDE);
                let carrier = carrier_inside6(prefix);
                plan.neighbours.push(neighbour6("wan", carrier, mac));
            }
        }
        Host::Carrier(_) => {
            plan.macs
                .push(("lan".into(), mac_of(carrier::CARRIER_INSIDE)));
            let mac = mac_of(carrier::ROUTER_BEHIND_CARRIER);
            let router = router_behind_carrier6(prefix);
            plan.neighbours.push(neighbour6("lan", router, mac));
        }
        Host::Server | Host::Public | Host::Internet => {}
    }
}

fn host_plan6(prefix: &str, spec: &LabSpec, host: Host) -> HostPlan6 {
    let mut plan = HostPlan6 {
        ipv6: true,
        ..HostPlan6::default()
    };
    link_neighbours(prefix, spec, host, &mut plan);
    match host {
        Host::Lan(side) | Host::Noise(side) => {
            let addr = primary_addr6(prefix, host).expect("a LAN host has an address");
            plan.addresses.push(address6("eth0", addr));
            let gateway = router_lan6(prefix, side);
            plan.routes.push(route6(Ipv6Addr::UNSPECIFIED, 0, gateway));
        }
        Host::Router(side) => {
            let wan = router_own_wan6(prefix, spec, side);
            plan.addresses.push(address6("wan", wan));
            plan.addresses
                .push(address6("lan", router_lan6(prefix, side)));
            plan.routes = match spec.cgnat(side) {
                Some(_) => vec![route6(Ipv6Addr::UNSPECIFIED, 0, carrier_inside6(prefix))],
                None => routes_to_sides(prefix, spec, &[other(side)]),
            };
        }
        Host::Carrier(side) => {
            plan.addresses
                .push(address6("wan", router_wan6(prefix, side)));
            plan.addresses
                .push(address6("lan", carrier_inside6(prefix)));
            let inside = router_behind_carrier6(prefix);
            let carrier = carrier_net6(prefix);
            let own = routed_nets6(prefix, spec, side).into_iter();
            plan.routes = own
                .filter(|net| *net != carrier)
                .map(|net| route6(net, SUBNET6_LEN, inside))
                .chain(routes_to_sides(prefix, spec, &[other(side)]))
                .collect();
        }
        Host::Server => {
            plan.addresses
                .push(address6("eth0", server_primary6(prefix)));
            plan.addresses.push(Address6 {
                secondary: true,
                ..address6("eth0", server_alternate6(prefix))
            });
            plan.routes = routes_to_sides(prefix, spec, &Side::BOTH);
        }
        Host::Public => {
            plan.addresses.push(address6("eth0", public_addr6(prefix)));
            plan.routes = routes_to_sides(prefix, spec, &Side::BOTH);
        }
        Host::Internet => {}
    }
    plan
}

/// Gives every IPv6 host on the internet segment a permanent entry for each other one.
fn add_neighbours6(plan: &mut Plan) {
    let on_segment = |host: &HostPlan| -> Option<(Host, String, Vec<Ipv6Addr>)> {
        let iface = segment_iface(host.host)?;
        let mac = host.segment_mac.clone()?;
        let addrs = host.v6.addresses.iter().filter(|a| a.iface == iface);
        Some((host.host, mac, addrs.map(|a| a.addr).collect()))
    };
    let segment: Vec<_> = plan
        .hosts
        .iter()
        .filter(|h| h.v6.ipv6)
        .filter_map(on_segment)
        .collect();
    for host in plan.hosts.iter_mut().filter(|h| h.v6.ipv6) {
        let Some((me, _, _)) = on_segment(host) else {
            continue;
        };
        let iface = segment_iface(me).expect("a segment host");
        for (other, mac, addrs) in segment.iter().filter(|(other, ..)| *other != me) {
            let _ = other;
            host.v6
                .neighbours
                .extend(addrs.iter().map(|addr| Neighbour6 {
                    iface: iface.to_owned(),
                    addr: *addr,
                    mac: mac.clone(),
                }));
        }
    }
}

/// True for addresses in the documentation prefix 2001:db8::/32.
pub fn is_documentation6(addr: Ipv6Addr) -> bool {
    addr.segments()[..2] == [0x2001, 0xdb8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::NatMode;

    const PREFIX: &str = "nl00aa11";

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn each_lab_has_its_own_48_from_its_prefix() {
        assert_eq!(lab_net6(PREFIX), addr("2001:db8:aa11::"));
        assert_eq!(lab_net6("nl12f00d"), addr("2001:db8:f00d::"));
        assert_eq!(server_primary6(PREFIX), addr("2001:db8:aa11::10"));
        assert_eq!(server_alternate6(PREFIX), addr("2001:db8:aa11::11"));
        assert_eq!(router_wan6(PREFIX, Side::A), addr("2001:db8:aa11::1"));
        assert_eq!(router_wan6(PREFIX, Side::B), addr("2001:db8:aa11::2"));
        assert_eq!(router_lan6(PREFIX, Side::B), addr("2001:db8:aa11:b::1"));
        assert_eq!(
            primary_addr6(PREFIX, Host::Noise(Side::A)),
            Some(addr("2001:db8:aa11:a::11"))
        );
        assert_eq!(
            nptv6_translate(PREFIX, Side::A, addr("2001:db8:aa11:a::10")),
            addr("2001:db8:aa11:ea::10")
        );
    }

    #[test]
    fn every_host_but_the_segment_has_ipv6_by_default() {
        let plan = Plan::new(&LabSpec::default(), PREFIX);
        for host in &plan.hosts {
            assert_eq!(host.v6.ipv6, host.host != Host::Internet, "{}", host.host);
            for a in &host.v6.addresses {
                assert!(is_documentation6(a.addr), "{a:?}");
                assert_eq!(u128::from(a.addr) >> 80, u128::from(lab_net6(PREFIX)) >> 80);
            }
        }
        let server = plan.host(Host::Server).unwrap();
        let addrs: Vec<Ipv6Addr> = server.v6.addresses.iter().map(|a| a.addr).collect();
        assert_eq!(addrs, [server_primary6(PREFIX), server_alternate6(PREFIX)]);
    }

    #[test]
    fn an_off_side_has_no_ipv6_and_nobody_routes_to_it() {
        let spec = LabSpec {
            v6_b: V6Mode::Off,
            ..LabSpec::default()
        };
        let plan = Plan::new(&spec, PREFIX);
        for host in [
            Host::Router(Side::B),
            Host::Lan(Side::B),
            Host::Noise(Side::B),
        ] {
            assert_eq!(plan.host(host).unwrap().v6, HostPlan6::default());
        }
        let server = plan.host(Host::Server).unwrap();
        assert_eq!(
            server.v6.routes,
            [route6(
                lan_net6(PREFIX, Side::A),
                64,
                router_wan6(PREFIX, Side::A)
            )]
        );
        let router_a = plan.host(Host::Router(Side::A)).unwrap();
        assert!(router_a.v6.routes.is_empty());
        assert!(router_a
            .v6
            .neighbours
            .iter()
            .all(|n| n.addr != router_wan6(PREFIX, Side::B)));
    }

    #[test]
    fn only_lan_hosts_have_a_default_route_and_only_to_their_router() {
        let spec = LabSpec {
            v6_a: V6Mode::Nptv6,
            v6_b: V6Mode::Nat66(NatMode::Random),
            public_host: true,
            ..LabSpec::default()
        };
        let plan = Plan::new(&spec, PREFIX);
        for host in &plan.hosts {
            for route in &host.v6.routes {
                assert!(is_documentation6(route.via));
                if route.prefix_len == 0 {
                    let (Host::Lan(side) | Host::Noise(side)) = host.host else {
                        panic!("{} has a default route", host.host);
                    };
                    assert_eq!(route.via, router_lan6(PREFIX, side));
                }
            }
        }
        // Outside, A is seen as its NPTv6 prefix and B (NAT66) as its WAN address alone.
        let public = plan.host(Host::Public).unwrap();
        assert_eq!(
            public.v6.routes,
            [route6(
                nptv6_net(PREFIX, Side::A),
                64,
                router_wan6(PREFIX, Side::A)
            )]
        );
    }

    #[test]
    fn segment_hosts_know_each_other_without_neighbour_discovery() {
        let plan = Plan::new(&LabSpec::default(), PREFIX);
        let router = plan.host(Host::Router(Side::A)).unwrap();
        let known: Vec<(Ipv6Addr, &str)> = router
            .v6
            .neighbours
            .iter()
            .filter(|n| n.iface == "wan")
            .map(|n| (n.addr, n.mac.as_str()))
            .collect();
        assert_eq!(
            known,
            [
                (server_primary6(PREFIX), "02:00:cb:00:71:0a"),
                (server_alternate6(PREFIX), "02:00:cb:00:71:0a"),
                (router_wan6(PREFIX, Side::B), "02:00:cb:00:71:02"),
            ]
        );
    }

    #[test]
    fn lan_neighbours_are_permanent_both_ways() {
        let plan = Plan::new(&LabSpec::default(), PREFIX);
        let a = plan.host(Host::Lan(Side::A)).unwrap();
        assert_eq!(
            a.v6.macs,
            [("eth0".to_owned(), "02:00:c0:00:02:0a".to_owned())]
        );
        assert_eq!(
            a.v6.neighbours,
            [neighbour6(
                "eth0",
                router_lan6(PREFIX, Side::A),
                "02:00:c0:00:02:01".into()
            )]
        );
        let router = plan.host(Host::Router(Side::A)).unwrap();
        assert!(router
            .v6
            .macs
            .contains(&("lan".into(), "02:00:c0:00:02:01".into())));
        assert!(router.v6.neighbours.contains(&neighbour6(
            "lan",
            addr("2001:db8:aa11:a::11"),
            "02:00:c0:00:02:0b".into()
        )));
    }

    #[test]
    fn behind_a_carrier_router_a_routes_through_it() {
        let spec = LabSpec {
            cgnat_a: Some(NatMode::Cone),
            v6_a: V6Mode::Nat66(NatMode::Cone),
            ..LabSpec::default()
        };
        let plan = Plan::new(&spec, PREFIX);
        let router = plan.host(Host::Router(Side::A)).unwrap();
        assert_eq!(router.v6.addresses[0].addr, router_behind_carrier6(PREFIX));
        assert_eq!(
            router.v6.routes,
            [route6(Ipv6Addr::UNSPECIFIED, 0, carrier_inside6(PREFIX))]
        );
        let carrier = plan.host(Host::Carrier(Side::A)).unwrap();
        assert_eq!(carrier.v6.addresses[0].addr, router_wan6(PREFIX, Side::A));
        let server = plan.host(Host::Server).unwrap();
        assert!(server.v6.routes.contains(&route6(
            carrier_net6(PREFIX),
            64,
            router_wan6(PREFIX, Side::A)
        )));
    }
}
