//! The IPv6 half of a lab router's ruleset: one `table ip6 natlens6` per [`V6Mode`], loaded
//! right after the IPv4 ruleset in the same `nft -f` (whose `flush ruleset` also resets it).
//!
//! The IPv4 table is an `inet` table; its base chains accept IPv6 packets at once, leaving every
//! IPv6 decision to this table (a packet must be accepted by every base chain of a hook, and an
//! accept in one only hands it to the next).

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use crate::lab::plan6;
use crate::lab::ruleset::{sequential_port_list, FULL_CONE_TIMEOUT_S};
use crate::lab::spec::{Host, LabSpec, NatMode, Side};
use crate::lab::v6mode::{Filtering, V6Mode};

/// The name of the `ip6` table every IPv6 router rule lives in.
pub const TABLE6: &str = "natlens6";

/// Names of a firewall's pinhole sets, one per protocol.
pub const PINHOLE_SETS: [&str; 2] = ["pinhole_udp", "pinhole_tcp"];

/// The addresses a router's IPv6 rules name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterNets6 {
    /// The router's own WAN address (what NAT66 translates to).
    pub wan: Ipv6Addr,
    /// Its LAN /64.
    pub lan_net: Ipv6Addr,
    /// The /64 NPTv6 shows the LAN as.
    pub nptv6_net: Ipv6Addr,
}

impl RouterNets6 {
    /// The addresses of router `side` in lab `prefix`.
    pub fn of(prefix: &str, spec: &LabSpec, side: Side) -> RouterNets6 {
        RouterNets6 {
            wan: plan6::router_own_wan6(prefix, spec, side),
            lan_net: plan6::lan_net6(prefix, side),
            nptv6_net: plan6::nptv6_net(prefix, side),
        }
    }
}

/// The IPv6 table of a NAT host (router or carrier) of lab `prefix`; `None` for other hosts.
/// A carrier routes IPv6 without filtering; an `off` side gets a table that drops all IPv6.
pub fn for_host(spec: &LabSpec, prefix: &str, host: Host) -> Option<String> {
    let udp_timeout = spec
        .udp_timeout
        .map(|t| u32::try_from(t.as_secs().max(1)).unwrap_or(u32::MAX));
    match host {
        Host::Router(side) => Some(router6(
            spec.v6(side),
            RouterNets6::of(prefix, spec, side),
            udp_timeout,
        )),
        Host::Carrier(side) if spec.cgnat(side).is_some() => Some(match spec.v6(side) {
            V6Mode::Off => closed6(),
            _ => carrier6(),
        }),
        _ => None,
    }
}

/// The IPv6 table of a router in `mode`. `udp_timeout_s` is the lab's `--udp-timeout`, which
/// the UDP pinholes follow as the full-cone maps do.
pub fn router6(mode: V6Mode, nets: RouterNets6, udp_timeout_s: Option<u32>) -> String {
    let mut out = format!("table ip6 {TABLE6} {{\n");
    match mode {
        V6Mode::Off => return closed6(),
        V6Mode::Open => out.push_str(&open_forward()),
        V6Mode::Firewall(filtering) => {
            out.push_str(&pinhole_sets(filtering, udp_timeout_s));
            out.push_str(&firewall_forward(filtering));
        }
        V6Mode::Nptv6 => {
            out.push_str(&open_forward());
            out.push_str(&nptv6_chains(nets));
        }
        V6Mode::Nat66(nat) => {
            out.push_str(&nat66_forward());
            out.push_str(&nat66_chain(nat, nets.wan));
        }
    }
    out.push_str(&input_chain());
    out.push_str("}\n");
    out
}

/// A carrier routes IPv6 as an ISP does: no filtering, no translation.
fn carrier6() -> String {
    format!(
        "table ip6 {TABLE6} {{\n{}{}}}\n",
        open_forward(),
        input_chain()
    )
}

/// An IPv4-only side: IPv6 is off on its interfaces already, and this drops whatever IPv6
/// might still arrive.
fn closed6() -> String {
    format!(
        "table ip6 {TABLE6} {{
  chain input {{
    type filter hook input priority filter; policy drop;
    iifname \"lo\" accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
  }}
}}
"
    )
}

/// The router's own input, as for IPv4: unsolicited packets from the WAN are dropped before
/// conntrack confirms them (see docs/lab.md). Neighbour discovery is let in: it is untracked
/// (never a conntrack entry), and without it a LAN host could not find its gateway.
fn input_chain() -> String {
    "  chain input {
    type filter hook input priority filter; policy drop;
    iifname \"lo\" accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    ct state established,related accept
    iifname \"lan\" accept
  }
"
    .to_owned()
}

/// Routing without filtering (`open`, `nptv6`, a carrier). Conntrack still tracks every flow
/// (the IPv4 table's `ct` rules turn it on for both families), so the flows show in
/// `conntrack -L -f ipv6`.
fn open_forward() -> String {
    "  chain forward {
    type filter hook forward priority filter; policy accept;
  }
"
    .to_owned()
}

/// NAT66 filters as the IPv4 NATs do: replies only.
fn nat66_forward() -> String {
    "  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state invalid drop
    ct state established,related accept
    iifname \"lan\" oifname \"wan\" accept
  }
"
    .to_owned()
}

/// The key a pinhole set stores for an outgoing packet, and the one an inbound packet must
/// match, for one protocol.
fn pinhole_keys(filtering: Filtering, proto: &str) -> (String, String) {
    match filtering {
        Filtering::EndpointIndependent => (
            format!("ip6 saddr . {proto} sport"),
            format!("ip6 daddr . {proto} dport"),
        ),
        _ => (
            format!("ip6 saddr . {proto} sport . ip6 daddr"),
            format!("ip6 daddr . {proto} dport . ip6 saddr"),
        ),
    }
}

/// The pinhole sets of an endpoint-independent or address-dependent firewall (the
/// address-and-port-dependent one needs none: conntrack's reply matching is that filtering).
fn pinhole_sets(filtering: Filtering, udp_timeout_s: Option<u32>) -> String {
    if filtering == Filtering::AddressAndPortDependent {
        return String::new();
    }
    let mut out = String::new();
    for (set, proto) in PINHOLE_SETS.iter().zip(["udp", "tcp"]) {
        let timeout = match proto {
            "udp" => udp_timeout_s.unwrap_or(FULL_CONE_TIMEOUT_S),
            _ => FULL_CONE_TIMEOUT_S,
        };
        let (key, _) = pinhole_keys(filtering, proto);
        let _ = write!(
            out,
            "  set {set} {{
    typeof {key}
    flags dynamic,timeout
    timeout {timeout}s
  }}
"
        );
    }
    out
}

/// RFC 6092's stateful firewall: everything out, replies in, and unsolicited inbound packets
/// only to a LAN endpoint whose pinhole admits the sender.
///
/// Every outgoing packet records (or refreshes) its pinhole: the LAN address and port (and the
/// remote address, for address-dependent filtering). An inbound packet that matches a pinhole
/// starts a flow of its own, which conntrack then follows.
fn firewall_forward(filtering: Filtering) -> String {
    let mut out = String::from(
        "  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state invalid drop
    ct state established,related accept
",
    );
    if filtering != Filtering::AddressAndPortDependent {
        for (set, proto) in PINHOLE_SETS.iter().zip(["udp", "tcp"]) {
            let (learn, admit) = pinhole_keys(filtering, proto);
            let _ = writeln!(
                out,
                "    iifname \"lan\" oifname \"wan\" meta l4proto {proto} update @{set} {{ {learn} }}"
            );
            let _ = writeln!(
                out,
                "    iifname \"wan\" oifname \"lan\" meta l4proto {proto} {admit} @{set} accept"
            );
        }
    }
    out.push_str("    iifname \"lan\" oifname \"wan\" accept\n  }\n");
    out
}

/// NPTv6 (RFC 6296) as a 1:1 prefix map both ways: `snat`/`dnat ip6 prefix to` keep the
/// interface ID (the kernel's netmap), so `N:a::10` is `N:ea::10` outside, and a packet from
/// outside to `N:ea::10` reaches `N:a::10`. Unlike RFC 6296's checksum-neutral mapping, which
/// alters one 16-bit word of a /64's interface ID, the kernel rewrites the transport checksum
/// instead; the mapping lives in conntrack (nft has no stateless NPTv6 statement).
fn nptv6_chains(nets: RouterNets6) -> String {
    let (lan, ext) = (nets.lan_net, nets.nptv6_net);
    format!(
        "  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"wan\" ip6 daddr {ext}/64 dnat ip6 prefix to {lan}/64
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"wan\" ip6 saddr {lan}/64 snat ip6 prefix to {ext}/64
  }}
"
    )
}

/// NAT66 to the router's WAN address, with the allocation of the IPv4 mode of the same name:
/// port-preserving masquerade, a sequential counter map, or fully random ports. Its counter is
/// its own: the IPv4 and IPv6 NATs of a router allocate independently.
fn nat66_chain(mode: NatMode, wan: Ipv6Addr) -> String {
    let rule = match mode {
        NatMode::Sequential { delta } => {
            let ports = sequential_port_list(delta);
            let entries: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(i, port)| format!("{i} : {port}"))
                .collect();
            format!(
                "oifname \"wan\" meta l4proto {{ tcp, udp }} snat ip6 to [{wan}] : numgen inc mod {} map {{ {} }}\n    \
                 oifname \"wan\" masquerade",
                ports.len(),
                entries.join(", ")
            )
        }
        NatMode::Random => "oifname \"wan\" masquerade fully-random".to_owned(),
        _ => "oifname \"wan\" masquerade".to_owned(),
    };
    format!(
        "  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr {wan} accept
    {rule}
  }}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> RouterNets6 {
        RouterNets6::of("nl00aa11", &LabSpec::default(), Side::A)
    }

    fn text(mode: &str) -> String {
        router6(mode.parse().unwrap(), nets(), None)
    }

    #[test]
    fn every_mode_drops_unsolicited_input_but_lets_neighbour_discovery_in() {
        for mode in [
            "open",
            "firewall:eif",
            "firewall:adf",
            "firewall:apdf",
            "nptv6",
            "nat66",
            "nat66:seq:2",
            "nat66:random",
        ] {
            let text = text(mode);
            assert!(text.starts_with("table ip6 natlens6 {\n"), "{mode}");
            assert!(text.contains("hook input priority filter; policy drop;"));
            assert!(text.contains("nd-neighbor-solicit, nd-neighbor-advert"));
        }
    }

    #[test]
    fn open_forwards_everything_and_off_nothing() {
        assert!(text("open").contains("hook forward priority filter; policy accept;"));
        let off = text("off");
        assert!(off.contains("hook forward priority filter; policy drop;\n  }"));
        assert!(!off.contains("nd-neighbor"));
    }

    #[test]
    fn firewall_filtering_picks_the_pinhole_key() {
        let eif = text("firewall:eif");
        assert!(eif.contains("typeof ip6 saddr . udp sport\n"));
        assert!(eif.contains(
            "iifname \"wan\" oifname \"lan\" meta l4proto udp ip6 daddr . udp dport @pinhole_udp accept"
        ));
        let adf = text("firewall:adf");
        assert!(adf.contains("update @pinhole_tcp { ip6 saddr . tcp sport . ip6 daddr }"));
        assert!(adf.contains("ip6 daddr . tcp dport . ip6 saddr @pinhole_tcp accept"));
        let apdf = text("firewall:apdf");
        assert!(!apdf.contains("pinhole"));
        for text in [eif, adf, apdf] {
            assert!(text.contains("policy drop;\n    ct state invalid drop\n"));
        }
    }

    #[test]
    fn udp_pinholes_follow_the_udp_timeout() {
        let text = router6("firewall".parse().unwrap(), nets(), Some(20));
        let udp = text.find("set pinhole_udp").unwrap();
        let tcp = text.find("set pinhole_tcp").unwrap();
        assert!(text[udp..tcp].contains("timeout 20s"));
        assert!(text[tcp..].contains(&format!("timeout {FULL_CONE_TIMEOUT_S}s")));
    }

    #[test]
    fn nptv6_maps_the_prefix_both_ways() {
        let text = text("nptv6");
        assert!(text.contains(
            "iifname \"wan\" ip6 daddr 2001:db8:aa11:ea::/64 dnat ip6 prefix to 2001:db8:aa11:a::/64"
        ));
        assert!(text.contains(
            "oifname \"wan\" ip6 saddr 2001:db8:aa11:a::/64 snat ip6 prefix to 2001:db8:aa11:ea::/64"
        ));
    }

    #[test]
    fn nat66_allocates_as_the_ipv4_modes_do() {
        assert!(text("nat66").contains("    oifname \"wan\" masquerade\n"));
        assert!(text("nat66:random").contains("masquerade fully-random"));
        let seq = text("nat66:seq:3");
        assert!(seq.contains(
            "snat ip6 to [2001:db8:aa11::1] : numgen inc mod 1000 map { 0 : 40000, 1 : 40003,"
        ));
        assert!(seq.contains("ip6 saddr 2001:db8:aa11::1 accept"));
    }

    #[test]
    fn only_nat_hosts_get_a_table() {
        let spec = LabSpec::default();
        assert!(for_host(&spec, "nl00aa11", Host::Router(Side::B)).is_some());
        assert!(for_host(&spec, "nl00aa11", Host::Server).is_none());
        assert!(for_host(&spec, "nl00aa11", Host::Carrier(Side::A)).is_none());
    }
}
