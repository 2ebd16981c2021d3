//! The lab's topology and addressing as plain data, derived from the spec and prefix alone.
//!
//! Every address comes from the RFC 5737 documentation ranges, so nothing in the lab can be
//! mistaken for, or routed to, a real network:
//!
//! ```text
//!  a 192.0.2.10 ─┐                                            ┌─ b 198.51.100.10
//! a2 192.0.2.11 ─┤ router-a ─┐    internet     ┌─ router-b ├─ b2 198.51.100.11
//!      192.0.2.1 (lan) 203.0.113.1 (wan)   203.0.113.2 (wan) 198.51.100.1 (lan)
//!                            ├─ server 203.0.113.10 + .11 ┤
//!                            └─ public 203.0.113.20 (optional)
//! ```
//!
//! With `--cgnat-a`, a carrier-grade NAT takes router A's place on the internet segment and
//! router A's WAN moves behind it, onto a carrier segment in RFC 6598 shared space (see
//! [`carrier`](crate::lab::carrier)):
//!
//! ```text
//!  a 192.0.2.10 ─ router-a ──────────────── carrier-a ──── internet
//!      192.0.2.1 (lan) 100.64.0.2 (wan)  100.64.0.1 (lan) 203.0.113.1 (wan)
//! ```
//!
//! The internet segment is one /24 on one layer-2 segment (a bridge, or the frame relay when
//! delay is asked for and netem is missing), so public hosts need no routes at all. Only the LAN
//! hosts have a default route, and it points at their own lab router, which has none: a packet
//! for anything outside the lab's ranges dies at the router (behind a carrier, router A's
//! default route points at the carrier, which has none).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::lab::carrier;
use crate::lab::spec::{Host, LabSpec, Side};

/// The internet segment, RFC 5737 TEST-NET-3.
pub const INTERNET_NET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);
/// Every lab subnet is a /24.
pub const PREFIX_LEN: u8 = 24;
/// The server's first public address: where `natlens server --listen` goes.
pub const SERVER_PRIMARY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The server's second public address, for RFC 5780 full mode (`--alternate`).
pub const SERVER_ALTERNATE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
/// The public host without NAT.
pub const PUBLIC_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);

/// A router's public (WAN) address.
pub fn router_wan(side: Side) -> Ipv4Addr {
    match side {
        Side::A => Ipv4Addr::new(203, 0, 113, 1),
        Side::B => Ipv4Addr::new(203, 0, 113, 2),
    }
}

/// A router's LAN subnet: TEST-NET-1 behind A, TEST-NET-2 behind B, so a private address in
/// a log says at once which side it came from.
pub fn lan_net(side: Side) -> Ipv4Addr {
    match side {
        Side::A => Ipv4Addr::new(192, 0, 2, 0),
        Side::B => Ipv4Addr::new(198, 51, 100, 0),
    }
}

fn in_lan(side: Side, host: u8) -> Ipv4Addr {
    let [a, b, c, _] = lan_net(side).octets();
    Ipv4Addr::new(a, b, c, host)
}

/// The address of a host on its own segment (a router's is its WAN address).
pub fn primary_addr(host: Host) -> Option<Ipv4Addr> {
    match host {
        Host::Lan(side) => Some(in_lan(side, 10)),
        Host::Noise(side) => Some(in_lan(side, 11)),
        Host::Router(side) | Host::Carrier(side) => Some(router_wan(side)),
        Host::Server => Some(SERVER_PRIMARY),
        Host::Public => Some(PUBLIC_ADDR),
        Host::Internet => None,
    }
}

/// A router's address on its LAN, the LAN hosts' gateway.
pub fn router_lan(side: Side) -> Ipv4Addr {
    in_lan(side, 1)
}

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// A bridge inside a namespace and the interfaces enslaved to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    pub name: String,
    pub ports: Vec<String>,
}

/// A permanent ARP entry: `addr` is at `mac` out of `iface`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub mac: String,
}

/// One namespace and how it is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: Host,
    /// `<prefix>-<host>`.
    pub netns: String,
    pub addresses: Vec<Address>,
    /// Bridges to create (a router's LAN); the internet bridge is added by the plumbing only
    /// when the frame relay is not used.
    pub bridges: Vec<Bridge>,
    /// The gateway of a LAN host: its own router, never anything outside the lab.
    pub default_via: Option<Ipv4Addr>,
    /// Routers forward and NAT.
    pub forwarding: bool,
    /// The fixed MAC of this host's internet-segment interface, if it has one.
    pub segment_mac: Option<String>,
    /// Permanent ARP entries for every other host on the internet segment.
    pub neighbours: Vec<Neighbour>,
    /// IPv6: addresses, routes and permanent neighbours; `ipv6` false leaves IPv6 off on the
    /// host's lab interfaces (see [`plan6`](crate::lab::plan6)).
    #[serde(default, flatten)]
    pub v6: crate::lab::plan6::HostPlan6,
}

/// A veth pair: the two ends, each `(host, interface name in that host's namespace)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub ends: [(Host, String); 2],
}

/// A port of the internet segment, in the `internet` namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPort {
    pub iface: String,
    /// True for a router's WAN link, the links `--delay` and `--loss` act on.
    pub wan_link: bool,
}

/// The whole lab as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub prefix: String,
    pub hosts: Vec<HostPlan>,
    pub links: Vec<Link>,
    pub segment: Vec<SegmentPort>,
}

impl Plan {
    /// The plan for `spec` under `prefix`.
    pub fn new(spec: &LabSpec, prefix: &str) -> Plan {
        let hosts: Vec<Host> = Host::ALL
            .into_iter()
            .filter(|host| match host {
                Host::Public => spec.public_host,
                Host::Carrier(side) => spec.cgnat(*side).is_some(),
                _ => true,
            })
            .collect();
        let mut plan = Plan {
            prefix: prefix.to_owned(),
            hosts: hosts
                .iter()
                .map(|host| host_plan(prefix, *host, spec))
                .collect(),
            links: Vec::new(),
            segment: Vec::new(),
        };
        for host in hosts {
            plan.add_links(host, spec);
        }
        plan.add_neighbours();
        crate::lab::plan6::add_ipv6(&mut plan, spec);
        plan
    }

    /// Fills every segment host's ARP table with the others, so no first packet waits for ARP.
    ///
    /// Without this, the first datagram to a new peer pays an extra round trip (with `--delay`,
    /// twice the delay again) for ARP: a lab artefact a real router, whose gateway's MAC is long
    /// known, does not show.
    fn add_neighbours(&mut self) {
        let segment: Vec<(Host, String, Vec<Ipv4Addr>)> = self
            .hosts
            .iter()
            .filter_map(|h| {
                let addrs = h.addresses.iter().filter(|a| on_segment(a.addr));
                let addrs: Vec<Ipv4Addr> = addrs.map(|a| a.addr).collect();
                Some((h.host, h.segment_mac.clone()?, addrs))
            })
            .collect();
        for host in &mut self.hosts {
            let on_segment = segment_iface(host.host).filter(|_| host.segment_mac.is_some());
            let Some(iface) = on_segment else {
                continue;
            };
            for (other, mac, addrs) in &segment {
                if *other == host.host {
                    continue;
                }
                host.neighbours.extend(addrs.iter().map(|addr| Neighbour {
                    iface: iface.to_owned(),
                    addr: *addr,
                    mac: mac.clone(),
                }));
            }
        }
    }

    /// The plan of one host, if the lab has it.
    pub fn host(&self, host: Host) -> Option<&HostPlan> {
        self.hosts.iter().find(|plan| plan.host == host)
    }

    /// Namespace names, in creation order.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|host| host.netns.as_str())
    }

    fn add_links(&mut self, host: Host, spec: &LabSpec) {
        match host {
            Host::Router(side) if spec.cgnat(side).is_some() => self.links.push(Link {
                ends: [
                    (host, "wan".to_owned()),
                    (Host::Carrier(side), "lan".to_owned()),
                ],
            }),
            Host::Server | Host::Public | Host::Router(_) | Host::Carrier(_) => {
                self.add_segment_link(host)
            }
            Host::Lan(side) => self.add_lan_link(host, side, "lan0"),
            Host::Noise(side) => self.add_lan_link(host, side, "lan1"),
            Host::Internet => {}
        }
    }

    /// Links `host` to the internet segment; the segment-side end is named after the host.
    fn add_segment_link(&mut self, host: Host) {
        let iface = segment_iface(host).expect("a segment host");
        let port = host.to_string();
        self.links.push(Link {
            ends: [(host, iface.to_owned()), (Host::Internet, port.clone())],
        });
        self.segment.push(SegmentPort {
            iface: port,
            wan_link: matches!(host, Host::Router(_) | Host::Carrier(_)),
        });
    }

    fn add_lan_link(&mut self, host: Host, side: Side, router_port: &str) {
        self.links.push(Link {
            ends: [
                (host, "eth0".to_owned()),
                (Host::Router(side), router_port.to_owned()),
            ],
        });
    }
}

/// The interface by which a host sits on the internet segment.
pub fn segment_iface(host: Host) -> Option<&'static str> {
    match host {
        Host::Server | Host::Public => Some("eth0"),
        Host::Router(_) | Host::Carrier(_) => Some("wan"),
        _ => None,
    }
}

fn on_segment(addr: Ipv4Addr) -> bool {
    addr.octets()[..3] == INTERNET_NET.octets()[..3]
}

/// A fixed, locally administered MAC for a segment interface: `02:00` and the four bytes of its
/// first address, so captures read easily (`02:00:cb:00:71:01` is 203.0.113.1). Unique within a
/// lab; labs never share a segment.
pub fn segment_mac(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// `<prefix>-<host>`: the namespace of a host.
pub fn netns_name(prefix: &str, host: Host) -> String {
    format!("{prefix}-{host}")
}

fn address(iface: &str, addr: Ipv4Addr) -> Address {
    Address {
        iface: iface.to_owned(),
        addr,
        prefix_len: PREFIX_LEN,
    }
}

fn host_plan(prefix: &str, host: Host, spec: &LabSpec) -> HostPlan {
    let mut plan = HostPlan {
        host,
        netns: netns_name(prefix, host),
        addresses: Vec::new(),
        bridges: Vec::new(),
        default_via: None,
        forwarding: false,
        segment_mac: None,
        neighbours: Vec::new(),
        v6: Default::default(),
    };
    match host {
        Host::Lan(side) | Host::Noise(side) => {
            plan.addresses
                .push(address("eth0", primary_addr(host).unwrap()));
            plan.default_via = Some(router_lan(side));
        }
        Host::Router(side) => {
            plan.addresses.push(address("wan", router_wan(side)));
            plan.addresses.push(address("lan", router_lan(side)));
            plan.bridges.push(Bridge {
                name: "lan".to_owned(),
                ports: vec!["lan0".to_owned(), "lan1".to_owned()],
            });
            plan.forwarding = true;
        }
        Host::Server => {
            plan.addresses.push(address("eth0", SERVER_PRIMARY));
            plan.addresses.push(address("eth0", SERVER_ALTERNATE));
        }
        Host::Public => plan.addresses.push(address("eth0", PUBLIC_ADDR)),
        Host::Carrier(side) => carrier::configure(&mut plan, side),
        Host::Internet => {}
    }
    if segment_iface(host).is_some() {
        plan.segment_mac = plan.addresses.first().map(|a| segment_mac(a.addr));
    }
    if let Host::Router(side) = host {
        if spec.cgnat(side).is_some() {
            carrier::put_behind_carrier(&mut plan);
        }
    }
    plan
}

/// True for addresses in the three RFC 5737 documentation ranges.
pub fn is_documentation(addr: Ipv4Addr) -> bool {
    matches!(
        addr.octets(),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::NatMode;

    fn full() -> Plan {
        let spec = LabSpec {
            public_host: true,
            ..LabSpec::default()
        };
        Plan::new(&spec, "nl00aa11")
    }

    #[test]
    fn every_address_is_a_documentation_address() {
        let plan = full();
        for host in &plan.hosts {
            for address in &host.addresses {
                assert!(is_documentation(address.addr), "{address:?}");
            }
            if let Some(gateway) = host.default_via {
                assert!(is_documentation(gateway));
            }
        }
    }

    #[test]
    fn only_lan_hosts_route_and_only_to_their_own_router() {
        let plan = full();
        for host in &plan.hosts {
            match (host.host, host.default_via) {
                (Host::Lan(side) | Host::Noise(side), Some(via)) => {
                    let router = plan.host(Host::Router(side)).unwrap();
                    assert!(router.addresses.iter().any(|a| a.addr == via), "{host:?}");
                }
                (_, None) => {}
                (other, Some(via)) => panic!("{other} routes via {via}"),
            }
        }
    }

    #[test]
    fn every_link_joins_two_lab_namespaces() {
        let plan = full();
        // server, public, two routers, four LAN hosts.
        assert_eq!(plan.links.len(), 8);
        for link in &plan.links {
            for (host, iface) in &link.ends {
                assert!(plan.host(*host).is_some(), "{link:?}");
                assert!(!iface.is_empty() && iface.len() <= 15, "IFNAMSIZ: {iface}");
            }
            assert_ne!(link.ends[0].0, link.ends[1].0);
        }
    }

    #[test]
    fn namespaces_carry_the_prefix_and_are_unique() {
        let plan = full();
        let names: Vec<&str> = plan.namespaces().collect();
        assert!(names.iter().all(|name| name.starts_with("nl00aa11-")));
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(names.contains(&"nl00aa11-router-a"));
    }

    #[test]
    fn server_has_two_public_addresses_and_public_host_is_optional() {
        let plan = full();
        let server = plan.host(Host::Server).unwrap();
        let addrs: Vec<Ipv4Addr> = server.addresses.iter().map(|a| a.addr).collect();
        assert_eq!(addrs, [SERVER_PRIMARY, SERVER_ALTERNATE]);
        let small = Plan::new(&LabSpec::default(), "nl00aa11");
        assert!(small.host(Host::Public).is_none());
        assert!(small.segment.iter().all(|port| port.iface != "public"));
    }

    #[test]
    fn segment_hosts_know_each_other_without_arp() {
        let plan = full();
        let router = plan.host(Host::Router(Side::A)).unwrap();
        assert_eq!(router.segment_mac.as_deref(), Some("02:00:cb:00:71:01"));
        let known: Vec<(Ipv4Addr, &str)> = router
            .neighbours
            .iter()
            .map(|n| (n.addr, n.mac.as_str()))
            .collect();
        assert_eq!(
            known,
            [
                (SERVER_PRIMARY, "02:00:cb:00:71:0a"),
                (SERVER_ALTERNATE, "02:00:cb:00:71:0a"),
                (PUBLIC_ADDR, "02:00:cb:00:71:14"),
                (router_wan(Side::B), "02:00:cb:00:71:02"),
            ]
        );
        assert!(router.neighbours.iter().all(|n| n.iface == "wan"));
        let lan = plan.host(Host::Lan(Side::A)).unwrap();
        assert!(lan.segment_mac.is_none() && lan.neighbours.is_empty());
    }

    #[test]
    fn only_router_links_are_wan_links() {
        let plan = Plan::new(
            &LabSpec {
                nat_a: NatMode::Random,
                public_host: true,
                ..LabSpec::default()
            },
            "nl00aa11",
        );
        let wan: Vec<&str> = plan
            .segment
            .iter()
            .filter(|port| port.wan_link)
            .map(|port| port.iface.as_str())
            .collect();
        assert_eq!(wan, ["router-a", "router-b"]);
        assert_eq!(plan.segment.len(), 4);
    }
}
