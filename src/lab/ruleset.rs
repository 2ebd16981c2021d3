//! nftables rulesets for the lab routers, as text: one pure function per concern.
//!
//! A router's whole ruleset is loaded with one `nft -f` in its namespace, starting with
//! `flush ruleset`, so loading it again is also how the lab resets NAT state: the sequential
//! counter restarts at its first port and the full-cone maps empty, atomically.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::lab::spec::{NatMode, SEQ_FIRST_PORT};

/// Ports in a sequential NAT's map before it wraps to the first again. A thousand flows is
/// far more than a probe run opens, and keeps the ruleset small.
pub const SEQ_MAX_PORTS: u32 = 1000;

/// How long a full-cone mapping stays open after the last outgoing packet: the kernel's
/// timeout for an answered UDP flow (`nf_conntrack_udp_timeout_stream`), so the filtering
/// state lives about as long as the conntrack entry it mirrors.
pub const FULL_CONE_TIMEOUT_S: u32 = 120;

/// The name of the `inet` table every router rule lives in.
pub const TABLE: &str = "natlens";

/// Names of the full-cone maps (external port → internal address . port), one per protocol.
pub const FULL_CONE_MAPS: [&str; 2] = ["fullcone_udp", "fullcone_tcp"];

/// The complete ruleset of a router whose WAN interface is `wan` with address `wan_ip`.
pub fn router(mode: NatMode, wan_ip: Ipv4Addr, loss_percent: u8) -> String {
    router_with_udp_timeout(mode, wan_ip, loss_percent, None)
}

/// [`router`], with the full-cone UDP map's timeout set to `udp_timeout_s` (the lab's
/// `--udp-timeout`, which also sets conntrack's) instead of [`FULL_CONE_TIMEOUT_S`], so that
/// no UDP state in the router outlives the configured timeout.
pub fn router_with_udp_timeout(
    mode: NatMode,
    wan_ip: Ipv4Addr,
    loss_percent: u8,
    udp_timeout_s: Option<u32>,
) -> String {
    let mut out = String::from("flush ruleset\n");
    let _ = writeln!(out, "table inet {TABLE} {{");
    if mode == NatMode::FullCone {
        out.push_str(&full_cone_maps(udp_timeout_s));
    }
    out.push_str(&input_chain());
    out.push_str(&forward_chain(mode));
    out.push_str(&snat_chain(mode, wan_ip));
    if mode == NatMode::FullCone {
        out.push_str(&full_cone_chains(wan_ip));
    }
    out.push_str("}\n");
    if loss_percent > 0 {
        out.push_str(&loss_table(loss_percent));
    }
    out
}

/// Drops everything addressed to the router itself from the WAN, as home routers do.
///
/// This table's base chains let IPv6 through untouched: the `ip6` table of
/// [`ruleset6`](crate::lab::ruleset6) decides for IPv6.
///
/// A router that answered (ICMP port unreachable, TCP RST) would keep a conntrack entry for the
/// exchange, and that entry then holds the public port the NAT would have given the next
/// outgoing flow: port preservation and sequential allocation both break. Dropping in the input
/// hook comes before conntrack confirms the entry, so no trace is left.
fn input_chain() -> String {
    "  chain input {
    type filter hook input priority filter; policy drop;
    meta nfproto ipv6 accept
    iifname \"lo\" accept
    ct state established,related accept
    iifname \"lan\" accept
  }
"
    .to_owned()
}

/// Forwards LAN → WAN and replies; drops invalid packets, which Linux would not NAT.
///
/// A retransmitted FIN after a conntrack flush, say, is INVALID: without the drop it would
/// leave with its private source address.
fn forward_chain(mode: NatMode) -> String {
    let mut out = String::from(
        "  chain forward {
    type filter hook forward priority filter; policy drop;
    meta nfproto ipv6 accept
    ct state invalid drop
    ct state established,related accept
    iifname \"lan\" oifname \"wan\" accept
",
    );
    if mode == NatMode::FullCone {
        // Unsolicited inbound flows that the full-cone map sent to a LAN host.
        out.push_str("    iifname \"wan\" ct status dnat accept\n");
    }
    out.push_str("  }\n");
    out
}

/// The source NAT rule that gives each mode its mapping and allocation behaviour.
fn snat_chain(mode: NatMode, wan_ip: Ipv4Addr) -> String {
    let rule = match mode {
        // masquerade keeps the LAN port whenever that leaves the reply tuple unique: the same
        // public port toward every destination, i.e. endpoint-independent mapping.
        NatMode::Cone | NatMode::FullCone => "oifname \"wan\" masquerade".to_owned(),
        // `numgen inc mod N offset P` would write the port in host byte order (40000 leaves
        // as 16540); a map from counter to port is stored in network order.
        NatMode::Sequential { delta } => format!(
            "oifname \"wan\" meta l4proto {{ tcp, udp }} snat ip to {wan_ip} : {}\n    \
             oifname \"wan\" masquerade",
            sequential_ports(delta)
        ),
        NatMode::Random => "oifname \"wan\" masquerade fully-random".to_owned(),
    };
    // The router's own packets (miniupnpd's STUN test, say) already carry its WAN address: a
    // home router does not translate them, and a random or sequential rule that did would make
    // miniupnpd believe it sits behind a symmetric NAT and turn port forwarding off.
    format!(
        "  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    meta nfproto ipv6 accept
    ip saddr {wan_ip} accept
    {rule}
  }}
"
    )
}

/// `numgen inc mod N map { 0 : P, 1 : P+D, … }`: one counter for TCP and UDP, one step per
/// new flow.
fn sequential_ports(delta: u16) -> String {
    let ports = sequential_port_list(delta);
    let entries: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{i} : {port}"))
        .collect();
    format!(
        "numgen inc mod {} map {{ {} }}",
        ports.len(),
        entries.join(", ")
    )
}

/// The ports a sequential NAT with step `delta` hands out, in order.
pub fn sequential_port_list(delta: u16) -> Vec<u16> {
    let delta = u32::from(delta.max(1));
    let room = (u32::from(u16::MAX) - u32::from(SEQ_FIRST_PORT)) / delta + 1;
    (0..room.min(SEQ_MAX_PORTS))
        .map(|i| (u32::from(SEQ_FIRST_PORT) + i * delta) as u16)
        .collect()
}

fn full_cone_maps(udp_timeout_s: Option<u32>) -> String {
    let mut out = String::new();
    for (map, proto) in FULL_CONE_MAPS.iter().zip(["udp", "tcp"]) {
        let timeout = match proto {
            "udp" => udp_timeout_s.unwrap_or(FULL_CONE_TIMEOUT_S),
            _ => FULL_CONE_TIMEOUT_S,
        };
        let _ = write!(
            out,
            "  map {map} {{
    typeof {proto} dport : ip daddr . {proto} dport
    flags dynamic,timeout
    timeout {timeout}s
  }}
"
        );
    }
    out
}

/// Endpoint-independent filtering on top of masquerade's endpoint-independent mapping.
///
/// Every outgoing packet records (or refreshes) public port → LAN address . port; an unsolicited
/// inbound packet to a recorded port is DNATed to that LAN endpoint, whoever sent it. The
/// learning chain runs after source NAT (priority srcnat + 10), when the reply tuple holds the
/// public port, and only for the original direction: the reply tuple of an inbound flow would
/// record the remote port instead.
fn full_cone_chains(wan_ip: Ipv4Addr) -> String {
    let mut learn = String::new();
    let mut admit = String::new();
    for (map, proto) in FULL_CONE_MAPS.iter().zip(["udp", "tcp"]) {
        let _ = writeln!(
            learn,
            "    oifname \"wan\" ct direction original meta l4proto {proto} \
             update @{map} {{ ct reply proto-dst : ct original ip saddr . ct original proto-src }}"
        );
        let _ = writeln!(
            admit,
            "    iifname \"wan\" ip daddr {wan_ip} meta l4proto {proto} \
             dnat ip to {proto} dport map @{map}"
        );
    }
    format!(
        "  chain fullcone_learn {{
    type filter hook postrouting priority srcnat + 10; policy accept;
{learn}  }}
  chain fullcone_admit {{
    type nat hook prerouting priority dstnat; policy accept;
{admit}  }}
"
    )
}

/// Random loss on the WAN link, both directions, at the device itself.
///
/// The netdev hooks sit outside conntrack: an outgoing packet lost here has already created its
/// NAT mapping, as on a real lossy line, and an incoming one is gone before conntrack sees it.
/// Only IP (IPv4 and IPv6) is dropped, so ARP cannot stall the link in ways no real NAT shows;
/// IPv6 neighbour discovery is spared too (the WAN neighbours are permanent anyway).
fn loss_table(percent: u8) -> String {
    let rule = format!(
        "icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n    \
         meta protocol {{ ip, ip6 }} numgen random mod 100 < {percent} drop"
    );
    format!(
        "table netdev {TABLE}_loss {{
  chain wan_in {{
    type filter hook ingress device \"wan\" priority filter; policy accept;
    {rule}
  }}
  chain wan_out {{
    type filter hook egress device \"wan\" priority filter; policy accept;
    {rule}
  }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    #[test]
    fn cone_is_plain_masquerade_without_maps() {
        let text = router(NatMode::Cone, WAN, 0);
        assert!(text.starts_with("flush ruleset\n"));
        assert!(text.contains("oifname \"wan\" masquerade\n"));
        assert!(!text.contains("map"));
        assert!(!text.contains("netdev"));
    }

    #[test]
    fn every_mode_drops_unsolicited_input_and_invalid_forwards() {
        for mode in ["cone", "full-cone", "seq:3", "random"] {
            let text = router(mode.parse().unwrap(), WAN, 0);
            assert!(
                text.contains("hook input priority filter; policy drop;"),
                "{mode}"
            );
            assert!(text.contains("ct state invalid drop"), "{mode}");
            assert!(text.contains("hook forward priority filter; policy drop;"));
        }
    }

    #[test]
    fn sequential_uses_a_counter_map_not_an_offset() {
        let text = router(NatMode::Sequential { delta: 2 }, WAN, 0);
        assert!(text.contains(
            "snat ip to 203.0.113.1 : numgen inc mod 1000 map { 0 : 40000, 1 : 40002, 2 : 40004,"
        ));
        assert!(text.contains("998 : 41996, 999 : 41998 }"));
        assert!(!text.contains("offset"));
    }

    #[test]
    fn sequential_ports_stop_at_65535() {
        assert_eq!(sequential_port_list(1).len(), 1000);
        let wide = sequential_port_list(100);
        assert_eq!(wide.len(), 256);
        assert_eq!(*wide.last().unwrap(), 65_500);
        assert_eq!(sequential_port_list(25_535), [40_000, 65_535]);
    }

    #[test]
    fn random_is_fully_random_masquerade() {
        let text = router(NatMode::Random, WAN, 0);
        assert!(text.contains("masquerade fully-random"));
    }

    #[test]
    fn full_cone_learns_after_snat_and_admits_by_map() {
        let text = router(NatMode::FullCone, WAN, 0);
        assert!(text.contains("typeof udp dport : ip daddr . udp dport"));
        assert!(text.contains("priority srcnat + 10"));
        assert!(text.contains(
            "ct direction original meta l4proto udp update @fullcone_udp \
             { ct reply proto-dst : ct original ip saddr . ct original proto-src }"
        ));
        assert!(text.contains(
            "iifname \"wan\" ip daddr 203.0.113.1 meta l4proto tcp dnat ip to tcp dport map @fullcone_tcp"
        ));
        assert!(text.contains("ct status dnat accept"));
    }

    #[test]
    fn udp_timeout_shortens_only_the_udp_full_cone_map() {
        let text = router_with_udp_timeout(NatMode::FullCone, WAN, 0, Some(20));
        let udp = text.find("map fullcone_udp").unwrap();
        let tcp = text.find("map fullcone_tcp").unwrap();
        assert!(text[udp..tcp].contains("timeout 20s"), "{text}");
        assert!(text[tcp..].contains(&format!("timeout {FULL_CONE_TIMEOUT_S}s")));
        assert_eq!(
            router(NatMode::FullCone, WAN, 0)
                .matches(&format!("timeout {FULL_CONE_TIMEOUT_S}s"))
                .count(),
            2
        );
    }

    #[test]
    fn loss_drops_ip_both_ways_at_the_device() {
        let text = router(NatMode::Cone, WAN, 25);
        assert!(text.contains("hook ingress device \"wan\""));
        assert!(text.contains("hook egress device \"wan\""));
        assert_eq!(
            text.matches("meta protocol { ip, ip6 } numgen random mod 100 < 25 drop")
                .count(),
            2
        );
    }
}
