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
        let mut nft = netns::command_in(&host.netns, "nft")?;
        nft.args(["-f", "-"]);
        netns::run(&mut nft, Some(&text))
            .with_context(|| format!("loading the nft ruleset of {}", host.host))?;
    }
    Ok(())
}

/// IPv6 off everywhere (no router solicitations or DAD in captures and conntrack tables);
/// routers forward and treat a stray ACK as invalid rather than as a new flow.
fn host_sysctls(host: &HostPlan) -> anyhow::Result<()> {
    let mut settings = vec![
        ("net/ipv6/conf/all/disable_ipv6", "1"),
        ("net/ipv6/conf/default/disable_ipv6", "1"),
    ];
    if host.forwarding {
        settings.push(("net/ipv4/ip_forward", "1"));
        // With the default 1, an ACK of a forgotten TCP flow becomes a new mapping and eats a
        // sequential port.
        settings.push(("net/netfilter/nf_conntrack_tcp_loose", "0"));
        // Linux allows each destination a burst of 6 ICMP errors, then one a second. The
        // port-unreachables a router without PCP, NAT-PMP or SSDP sends to the port-mapping
        // probe spend that burst, and the path probe's time exceeded of the next `nat` run
        // within a second was not sent: hop 1 read as silent. The lab's routers answer every
        // time, so that a silent hop means what it says.
        settings.push(("net/ipv4/icmp_ratelimit", "0"));
    }
    for (key, value) in settings {
        netns::sysctl(&host.netns, key, value)?;
    }
    Ok(())
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
    for address in &host.addresses {
        let _ = writeln!(
            script,
            "addr add {}/{} dev {}",
            address.addr, address.prefix_len, address.iface
        );
    }
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
    if let Some(gateway) = host.default_via {
        let _ = writeln!(script, "route add default via {gateway}");
    }
    script
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
        assert!(!script.contains("route"));
    }

    #[test]
    fn lan_host_routes_via_its_router() {
        let plan = plan();
        let host = plan.host(Host::Lan(Side::B)).unwrap();
        let script = host_batch(&plan, host, false);
        assert_eq!(
            script,
            "link set lo up\nlink set eth0 multicast off\naddr add 198.51.100.10/24 dev eth0\nlink set eth0 up\n\
             route add default via 198.51.100.1\n"
        );
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
