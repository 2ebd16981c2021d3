//! Builds a [`Plan`] out of namespaces, veths, bridges, addresses, routes and sysctls.
//!
//! Every veth is created with both ends already inside lab namespaces (`ip link add … netns X
//! type veth peer … netns Y`), so no lab interface ever exists in the root namespace, not even
//! for a moment, and two labs cannot clash over interface names.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::lab::netns;
use crate::lab::plan::{segment_iface, HostPlan, Plan};
use crate::lab::spec::{Host, LabSpec, Side};

/// How `--delay` is made on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DelayMethod {
    /// No delay asked for: the internet segment is a kernel bridge.
    None,
    /// `tc netem` on both ends of each router's WAN link, with a kernel bridge.
    Netem,
    /// No netem in this kernel: the user-space frame relay is the internet segment.
    Relay,
}

/// The bridge that joins the internet segment's ports when the relay does not.
pub const SEGMENT_BRIDGE: &str = "br0";

/// Creates every namespace and link of `plan`, configures them, and loads the router rulesets.
///
/// On error the caller tears down by prefix: this function leaves partial state behind.
pub fn build(plan: &Plan, spec: &LabSpec) -> anyhow::Result<DelayMethod> {
    let names: Vec<String> = plan.namespaces().map(str::to_owned).collect();
    netns::add(&names)?;
    for host in &plan.hosts {
        host_sysctls(host)?;
        udp_timeout_sysctls(host, spec)?;
    }
    netns::ip_batch(None, &veth_batch(plan)).context("creating veth pairs")?;
    let method = delay_method(plan, spec)?;
    for host in &plan.hosts {
        let bridge_segment = host.host == Host::Internet && method != DelayMethod::Relay;
        netns::ip_batch(Some(&host.netns), &host_batch(plan, host, bridge_segment))
            .with_context(|| format!("configuring {}", host.host))?;
    }
    load_rulesets(plan, spec)?;
    Ok(method)
}

/// Loads (or reloads, which also resets NAT state) every router's ruleset.
pub fn load_rulesets(plan: &Plan, spec: &LabSpec) -> anyhow::Result<()> {
    for host in &plan.hosts {
        let Some(mut text) = crate::lab::carrier::nat_ruleset(spec, host.host) else {
            continue;
        };
        // The router ruleset starts with `flush ruleset`, which also takes miniupnpd's table
        // and the two rules it needs in the lab's table: load them again behind it.
        if host.host == Host::Router(Side::A) && spec.port_mapping.any() {
            text.push_str(&crate::lab::port_mapping::ruleset());
        }
        if let Some(v6) = crate::lab::ruleset6::for_host(spec, &plan.prefix, host.host) {
            text.push_str(&v6);
        }
        let mut nft = netns::command_in(&host.netns, "nft")?;
        nft.args(["-f", "-"]);
        netns::run(&mut nft, Some(&text))
            .with_context(|| format!("loading the nft ruleset of {}", host.host))?;
    }
    Ok(())
}

/// IPv6 where the plan has it, without router advertisements, DAD or link-local addresses
/// (see [`ipv6_sysctls`]); routers forward and treat a stray ACK as invalid rather than as a
/// new flow.
fn host_sysctls(host: &HostPlan) -> anyhow::Result<()> {
    let mut settings = ipv6_sysctls(host);
    if host.forwarding {
        settings.push(("net/ipv4/ip_forward".into(), "1"));
        // With the default 1, an ACK of a forgotten TCP flow becomes a new mapping and eats a
        // sequential port.
        settings.push(("net/netfilter/nf_conntrack_tcp_loose".into(), "0"));
        // Linux allows each destination a burst of 6 ICMP errors, then one a second. The
        // port-unreachables a router without PCP, NAT-PMP or SSDP sends to the port-mapping
        // probe spend that burst, and the path probe's time exceeded of the next `nat` run
        // within a second was not sent: hop 1 read as silent. The lab's routers answer every
        // time, so that a silent hop means what it says.
        settings.push(("net/ipv4/icmp_ratelimit".into(), "0"));
    }
    for (key, value) in settings {
        netns::sysctl(&host.netns, &key, value)?;
    }
    Ok(())
}

/// IPv6 settings, made before any lab interface exists in the namespace (the `default` ones
/// are what new interfaces start with).
///
/// A host without IPv6 gets it switched off on every interface created from now on (its
/// loopback keeps `::1`, as on any IPv4-only machine). A host with IPv6 gets no link-local
/// address (`addr_gen_mode` 1) and so sends no router solicitation and no MLD report, does no
/// DAD (addresses are usable at once: nothing races DAD) and ignores router advertisements;
/// only routers forward, and they send every ICMPv6 error, as for IPv4.
fn ipv6_sysctls(host: &HostPlan) -> Vec<(String, &'static str)> {
    if !host.v6.ipv6 {
        return vec![("net/ipv6/conf/default/disable_ipv6".into(), "1")];
    }
    let mut settings = Vec::new();
    for scope in ["all", "default"] {
        let key = |name: &str| format!("net/ipv6/conf/{scope}/{name}");
        settings.push((key("addr_gen_mode"), "1"));
        settings.push((key("accept_dad"), "0"));
        settings.push((key("accept_ra"), "0"));
        settings.push((key("router_solicitations"), "0"));
        settings.push((key("forwarding"), if host.forwarding { "1" } else { "0" }));
    }
    if host.forwarding {
        settings.push(("net/ipv6/icmp/ratelimit".into(), "0"));
    }
    settings
}

/// `--udp-timeout`: both of conntrack's UDP timeouts on the routers (conntrack's sysctls are
/// per namespace). `_stream` applies once a flow has seen packets both ways for 2 s, the plain
/// one before that: setting both makes every idle UDP mapping live exactly this long.
fn udp_timeout_sysctls(host: &HostPlan, spec: &LabSpec) -> anyhow::Result<()> {
    let (Some(timeout), true) = (spec.udp_timeout, crate::lab::carrier::is_nat(host.host)) else {
        return Ok(());
    };
    let seconds = timeout.as_secs().max(1).to_string();
    for key in [
        "net/netfilter/nf_conntrack_udp_timeout",
        "net/netfilter/nf_conntrack_udp_timeout_stream",
    ] {
        netns::sysctl(&host.netns, key, &seconds)?;
    }
    Ok(())
}

/// `link add` lines (run in the root namespace) creating each veth pair between two lab
/// namespaces.
pub fn veth_batch(plan: &Plan) -> String {
    let host = |host: Host| plan.host(host).expect("every link end is planned");
    let mut script = String::new();
    for link in &plan.links {
        let [(left, left_if), (right, right_if)] = &link.ends;
        let (left, right) = (host(*left), host(*right));
        let address = match &left.segment_mac {
            Some(mac) if segment_iface(left.host) == Some(left_if) => format!(" address {mac}"),
            _ => String::new(),
        };
        let _ = writeln!(
            script,
            "link add {left_if} netns {}{address} type veth peer name {right_if} netns {}",
            left.netns, right.netns
        );
    }
    script
}

/// Interface names of a host's veth ends.
fn veth_ends(plan: &Plan, host: Host) -> Vec<String> {
    plan.links
        .iter()
        .flat_map(|link| link.ends.iter())
        .filter(|(end, _)| *end == host)
        .map(|(_, iface)| iface.clone())
        .collect()
}

/// The `ip -batch` script configuring one host inside its namespace.
pub fn host_batch(plan: &Plan, host: &HostPlan, bridge_segment: bool) -> String {
    let mut script = String::from("link set lo up\n");
    let mut bridges = host.bridges.clone();
    if bridge_segment {
        bridges.push(crate::lab::plan::Bridge {
            name: SEGMENT_BRIDGE.to_owned(),
            ports: plan.segment.iter().map(|port| port.iface.clone()).collect(),
        });
    }
    for bridge in &bridges {
        let _ = writeln!(
            script,
            "link add {} type bridge mcast_snooping 0",
            bridge.name
        );
        for port in &bridge.ports {
            let _ = writeln!(script, "link set {port} master {}", bridge.name);
        }
    }
    let ifaces: Vec<String> = veth_ends(plan, host.host)
        .into_iter()
        .chain(bridges.iter().map(|bridge| bridge.name.clone()))
        .collect();
    // Multicast off before any address exists, and bridges without snooping (which joins
    // 224.0.0.106 for router discovery): otherwise IGMP reports turn up in captures, in the
    // relay and as entries in the routers' conntrack tables.
    for iface in &ifaces {
        let _ = writeln!(script, "link set {iface} multicast off");
    }
    for (iface, mac) in &host.v6.macs {
        let _ = writeln!(script, "link set {iface} address {mac}");
    }
    for address in &host.addresses {
        let _ = writeln!(
            script,
            "addr add {}/{} dev {}",
            address.addr, address.prefix_len, address.iface
        );
    }
    ipv6_address_lines(&mut script, host);
    for iface in &ifaces {
        let _ = writeln!(script, "link set {iface} up");
    }
    for n in &host.neighbours {
        let _ = writeln!(
            script,
            "neigh replace {} lladdr {} dev {} nud permanent",
            n.addr, n.mac, n.iface
        );
    }
    ipv6_neighbour_lines(&mut script, host);
    if let Some(gateway) = host.default_via {
        let _ = writeln!(script, "route add default via {gateway}");
    }
    ipv6_route_lines(&mut script, host);
    script
}

/// IPv6 addresses, `nodad`: usable at once, never tentative (accept_dad 0 says the same to the
/// kernel); a secondary address is never chosen as a source by itself.
fn ipv6_address_lines(script: &mut String, host: &HostPlan) {
    for address in &host.v6.addresses {
        let secondary = if address.secondary {
            " preferred_lft 0"
        } else {
            ""
        };
        let _ = writeln!(
            script,
            "addr add {}/{} dev {} nodad{secondary}",
            address.addr, address.prefix_len, address.iface
        );
    }
}

/// Permanent IPv6 neighbours (see [`HostPlan6`](crate::lab::plan6::HostPlan6) for why).
fn ipv6_neighbour_lines(script: &mut String, host: &HostPlan) {
    for n in &host.v6.neighbours {
        let _ = writeln!(
            script,
            "neigh replace {} lladdr {} dev {} nud permanent",
            n.addr, n.mac, n.iface
        );
    }
}

/// IPv6 routes (`::/0` is a LAN host's default route).
fn ipv6_route_lines(script: &mut String, host: &HostPlan) {
    for route in &host.v6.routes {
        let _ = writeln!(
            script,
            "route add {}/{} via {}",
            route.net, route.prefix_len, route.via
        );
    }
}

/// Netem when this kernel has it (tried on the first WAN link), the relay otherwise.
fn delay_method(plan: &Plan, spec: &LabSpec) -> anyhow::Result<DelayMethod> {
    if spec.delay.is_zero() {
        return Ok(DelayMethod::None);
    }
    let mut ends = Vec::new();
    for link in &plan.links {
        if let [(router @ (Host::Router(_) | Host::Carrier(_)), wan), (Host::Internet, port)] =
            &link.ends
        {
            ends.push((*router, wan.clone()));
            ends.push((Host::Internet, port.clone()));
        }
    }
    for (applied, (host, iface)) in ends.iter().enumerate() {
        let netns = &plan.host(*host).expect("planned").netns;
        if !netem(netns, iface, spec.delay) {
            anyhow::ensure!(applied == 0, "netem worked on one link but not on {iface}");
            return Ok(DelayMethod::Relay);
        }
    }
    Ok(DelayMethod::Netem)
}

/// Adds `netem delay` to one interface's egress; false when that fails (no `sch_netem` in
/// this kernel, or no `tc`), which leaves the relay to make the delay.
fn netem(netns: &str, iface: &str, delay: Duration) -> bool {
    let mut tc = Command::new("tc");
    let delay = format!("{}us", delay.as_micros());
    tc.args([
        "-n", netns, "qdisc", "add", "dev", iface, "root", "netem", "delay", &delay,
    ]);
    netns::run(&mut tc, None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::Side;

    fn plan() -> Plan {
        Plan::new(&LabSpec::default(), "nl00aa11")
    }

    #[test]
    fn veths_are_born_inside_lab_namespaces() {
        let script = veth_batch(&plan());
        assert!(script.contains(
            "link add wan netns nl00aa11-router-a address 02:00:cb:00:71:01 \
             type veth peer name router-a netns nl00aa11-internet\n"
        ));
        assert!(script.contains(
            "link add eth0 netns nl00aa11-a2 type veth peer name lan1 netns nl00aa11-router-a\n"
        ));
        for line in script.lines() {
            assert_eq!(line.matches(" netns nl00aa11-").count(), 2, "{line}");
        }
    }

    #[test]
    fn router_bridges_its_lan_and_has_no_default_route() {
        let plan = plan();
        let router = plan.host(Host::Router(Side::A)).unwrap();
        let script = host_batch(&plan, router, false);
        assert!(script
            .contains("link add lan type bridge mcast_snooping 0\nlink set lan0 master lan\n"));
        assert!(script.contains("addr add 203.0.113.1/24 dev wan\n"));
        assert!(script.contains("addr add 192.0.2.1/24 dev lan\n"));
        assert!(script.contains("link set lan multicast off\n"));
        assert!(script.contains(
            "neigh replace 203.0.113.10 lladdr 02:00:cb:00:71:0a dev wan nud permanent\n"
        ));
        // Routes only to the other side's LAN prefix (routed, as B firewalls), no default.
        let routes: Vec<&str> = script.lines().filter(|l| l.contains("route")).collect();
        assert_eq!(
            routes,
            ["route add 2001:db8:aa11:b::/64 via 2001:db8:aa11::2"]
        );
        assert!(script.contains("addr add 2001:db8:aa11::1/64 dev wan nodad\n"));
        assert!(script.contains("link set lan address 02:00:c0:00:02:01\n"));
        assert!(script.contains(
            "neigh replace 2001:db8:aa11:a::10 lladdr 02:00:c0:00:02:0a dev lan nud permanent\n"
        ));
    }

    #[test]
    fn lan_host_routes_via_its_router() {
        let plan = plan();
        let host = plan.host(Host::Lan(Side::B)).unwrap();
        let script = host_batch(&plan, host, false);
        assert_eq!(
            script,
            "link set lo up\nlink set eth0 multicast off\nlink set eth0 address 02:00:c6:33:64:0a\n\
             addr add 198.51.100.10/24 dev eth0\naddr add 2001:db8:aa11:b::10/64 dev eth0 nodad\n\
             link set eth0 up\n\
             neigh replace 2001:db8:aa11:b::1 lladdr 02:00:c6:33:64:01 dev eth0 nud permanent\n\
             route add default via 198.51.100.1\nroute add ::/0 via 2001:db8:aa11:b::1\n"
        );
    }

    #[test]
    fn the_server_second_ipv6_address_is_never_a_default_source() {
        let plan = plan();
        let server = plan.host(Host::Server).unwrap();
        let script = host_batch(&plan, server, false);
        assert!(script.contains("addr add 2001:db8:aa11::10/64 dev eth0 nodad\n"));
        assert!(script.contains("addr add 2001:db8:aa11::11/64 dev eth0 nodad preferred_lft 0\n"));
    }

    #[test]
    fn only_hosts_with_ipv6_turn_it_on_and_only_routers_forward_it() {
        let spec = LabSpec {
            v6_b: crate::lab::V6Mode::Off,
            ..LabSpec::default()
        };
        let plan = Plan::new(&spec, "nl00aa11");
        let settings = |host: Host| ipv6_sysctls(plan.host(host).unwrap());
        for host in [Host::Internet, Host::Lan(Side::B), Host::Router(Side::B)] {
            assert_eq!(
                settings(host),
                [("net/ipv6/conf/default/disable_ipv6".to_owned(), "1")]
            );
        }
        let lan = settings(Host::Lan(Side::A));
        assert!(lan.contains(&("net/ipv6/conf/all/forwarding".into(), "0")));
        assert!(lan.contains(&("net/ipv6/conf/default/accept_dad".into(), "0")));
        assert!(lan.contains(&("net/ipv6/conf/default/addr_gen_mode".into(), "1")));
        let router = settings(Host::Router(Side::A));
        assert!(router.contains(&("net/ipv6/conf/all/forwarding".into(), "1")));
        assert!(router.contains(&("net/ipv6/icmp/ratelimit".into(), "0")));
    }

    #[test]
    fn internet_is_a_bridge_unless_the_relay_runs_it() {
        let plan = plan();
        let internet = plan.host(Host::Internet).unwrap();
        let bridged = host_batch(&plan, internet, true);
        assert!(bridged.contains("link set router-b master br0\n"));
        assert!(bridged.contains("link set br0 up\n"));
        let relayed = host_batch(&plan, internet, false);
        assert!(!relayed.contains("br0"));
        assert!(relayed.contains("link set server up\n"));
        assert!(!relayed.contains("addr"));
    }
}
