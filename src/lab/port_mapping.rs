//! miniupnpd in router a (`natlens lab up --port-mapping upnp,pmp,pcp`): a real UPnP IGD,
//! NAT-PMP and PCP gateway for the port-mapping probe and for punching through a mapping.
//!
//! What makes it work in a lab (see docs/lab.md, "Port-mapping daemons"):
//! - miniupnpd refuses a reserved WAN address (every lab address is one), so it learns its
//!   external address by STUN from the lab's own server (`ext_perform_stun`), and the lab's
//!   server must run first. Its STUN test sends CHANGE-REQUESTs: the answers come from the
//!   server's other address and port, unsolicited for conntrack, so router a's input hook lets
//!   UDP from the server's addresses in when a local socket is bound to receive it (`socket
//!   transparent 0` matches only then), and still drops everything else from the WAN.
//! - Its rules go into a table of family `inet` that the lab loads itself (with `ip` every
//!   mapping fails; Debian's nft_init.sh is iptables-flavoured): `natlens_upnp`, whose base
//!   chains jump to the three chains miniupnpd fills. The lab's own forward chain (policy drop)
//!   accepts what miniupnpd's DNAT rules let in (`ct status dnat`).
//! - NAT-PMP and PCP share one switch (`enable_natpmp`) and one port (5351) in miniupnpd 2.3:
//!   `pmp` and `pcp` each switch both on; they cannot be had apart.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::lab::plan::{lan_net, SERVER_ALTERNATE, SERVER_PRIMARY};
use crate::lab::spec::Side;
use crate::lab::{netns, server, state};

/// The nft table miniupnpd's chains live in.
pub const TABLE: &str = "natlens_upnp";
/// miniupnpd's HTTP port (UPnP description and SOAP).
pub const HTTP_PORT: u16 = 5000;
/// How long miniupnpd may take to do its STUN test and open its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const START_POLL: Duration = Duration::from_millis(20);

/// Which port-mapping protocols router a speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMappingSpec {
    /// UPnP IGD (SSDP on 1900, HTTP on [`HTTP_PORT`]).
    pub upnp: bool,
    /// NAT-PMP and PCP together (UDP 5351).
    pub natpmp: bool,
}

impl PortMappingSpec {
    /// True when miniupnpd runs at all.
    pub fn any(self) -> bool {
        self.upnp || self.natpmp
    }
}

impl FromStr for PortMappingSpec {
    type Err = String;

    /// `upnp`, `pmp`, `pcp` (comma-separated, any subset) or `none`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut spec = PortMappingSpec::default();
        for word in text.split(',').map(str::trim) {
            match word {
                "upnp" => spec.upnp = true,
                "pmp" | "natpmp" | "pcp" => spec.natpmp = true,
                "none" | "" => {}
                other => {
                    return Err(format!(
                        "unknown port-mapping protocol `{other}`: use upnp, pmp, pcp or none"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for PortMappingSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [(self.upnp, "upnp"), (self.natpmp, "pmp,pcp")]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, word)| word)
            .collect();
        if words.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&words.join(","))
        }
    }
}

/// The daemon as the state file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiniupnpdState {
    pub pid: u32,
    pub protocols: String,
    /// `/run/natlens/<prefix>-miniupnpd.log`.
    pub log: PathBuf,
}

fn run_file(prefix: &str, suffix: &str) -> PathBuf {
    PathBuf::from(state::STATE_DIR).join(format!("{prefix}-miniupnpd.{suffix}"))
}

/// Where miniupnpd of lab `prefix` logs.
pub fn log_path(prefix: &str) -> PathBuf {
    run_file(prefix, "log")
}

/// Removes the daemon's files (with the lab's state file).
pub fn remove_files(prefix: &str) {
    for suffix in ["log", "conf", "pid"] {
        let _ = std::fs::remove_file(run_file(prefix, suffix));
    }
}

/// The nft text router a loads before miniupnpd starts: its table and chains, and the two
/// rules the lab's own table needs (see the module documentation).
pub fn ruleset() -> String {
    let lab = crate::lab::ruleset::TABLE;
    format!(
        "table inet {TABLE} {{
  chain forward {{ type filter hook forward priority filter - 1; policy accept; jump miniupnpd; }}
  chain miniupnpd {{ }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }}
  chain prerouting_miniupnpd {{ }}
  chain postrouting {{ type nat hook postrouting priority srcnat - 1; policy accept; jump postrouting_miniupnpd; }}
  chain postrouting_miniupnpd {{ }}
}}
add rule inet {lab} input iifname \"wan\" ip saddr {{ {SERVER_PRIMARY}, {SERVER_ALTERNATE} }} meta l4proto udp socket transparent 0 accept
add rule inet {lab} forward iifname \"wan\" ct status dnat accept
"
    )
}

/// miniupnpd.conf for router a. `ipv6_disable`: router a has IPv6 now, and miniupnpd serves the
/// IPv4 mappings it always did, without IPv6 pinholes of its own in the lab's firewall.
pub fn config(spec: PortMappingSpec) -> String {
    let yes_no = |on: bool| if on { "yes" } else { "no" };
    let lan = lan_net(Side::A);
    let stun = server::primary();
    format!(
        "ext_ifname=wan\nlistening_ip=lan\nport={HTTP_PORT}\nipv6_disable=yes\n\
         enable_upnp={}\nenable_natpmp={}\n\
         ext_perform_stun=yes\next_stun_host={}\next_stun_port={}\n\
         upnp_table_name={TABLE}\nupnp_nat_table_name={TABLE}\n\
         upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\n\
         upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
         secure_mode=yes\nuuid=6e61746c-656e-7300-0000-00000000000a\n\
         allow 1024-65535 {lan}/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
        yes_no(spec.upnp),
        yes_no(spec.natpmp),
        stun.ip(),
        stun.port(),
    )
}

/// What the log says once each switched-on protocol listens.
fn ready_lines(spec: PortMappingSpec) -> Vec<&'static str> {
    let mut lines = vec!["Port forwarding is now enabled"];
    if spec.upnp {
        lines.push("HTTP listening on port");
    }
    if spec.natpmp {
        lines.push("Listening for NAT-PMP/PCP traffic");
    }
    lines
}

/// Loads the ruleset in router a (`netns`) and starts miniupnpd there, detached, once the lab's
/// server runs; returns when every asked protocol listens.
pub fn start(
    netns_name: &str,
    prefix: &str,
    spec: PortMappingSpec,
) -> anyhow::Result<MiniupnpdState> {
    let mut nft = netns::command_in(netns_name, "nft")?;
    nft.args(["-f", "-"]);
    netns::run(&mut nft, Some(&ruleset())).context("loading miniupnpd's nft table in router a")?;
    let conf = run_file(prefix, "conf");
    std::fs::write(&conf, config(spec)).with_context(|| format!("writing {}", conf.display()))?;
    let log = log_path(prefix);
    let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = netns::command_in(netns_name, "miniupnpd")?;
    command
        .arg("-d")
        .arg("-f")
        .arg(&conf)
        .arg("-P")
        .arg(run_file(prefix, "pid"))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    crate::lab::process::detach(&mut command);
    let mut child = command
        .spawn()
        .context("starting miniupnpd (apt-get install miniupnpd-nftables)")?;
    wait_ready(&mut child, &log, spec)?;
    Ok(MiniupnpdState {
        pid: child.id(),
        protocols: spec.to_string(),
        log,
    })
}

fn wait_ready(
    child: &mut std::process::Child,
    log: &Path,
    spec: PortMappingSpec,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ready_lines(spec).iter().all(|line| text.contains(line)) {
            return Ok(());
        }
        let exited = child.try_wait().context("waiting for miniupnpd")?;
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("miniupnpd did not start in router a:\n{}", text.trim_end());
        }
        std::thread::sleep(START_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_in_any_subset() {
        let parse = |t: &str| t.parse::<PortMappingSpec>().unwrap();
        assert_eq!(
            parse("upnp"),
            PortMappingSpec {
                upnp: true,
                natpmp: false
            }
        );
        assert_eq!(
            parse("pmp,pcp"),
            PortMappingSpec {
                upnp: false,
                natpmp: true
            }
        );
        assert_eq!(parse("pcp"), parse("pmp"));
        assert_eq!(parse("upnp,pmp,pcp").to_string(), "upnp,pmp,pcp");
        assert!(!parse("none").any());
        assert!("igd".parse::<PortMappingSpec>().is_err());
    }

    #[test]
    fn config_switches_the_protocols_and_points_stun_at_the_lab_server() {
        let text = config(PortMappingSpec {
            upnp: true,
            natpmp: false,
        });
        assert!(
            text.contains("enable_upnp=yes\nenable_natpmp=no\n"),
            "{text}"
        );
        assert!(
            text.contains("ext_stun_host=203.0.113.10\next_stun_port=3478\n"),
            "{text}"
        );
        assert!(
            text.contains("allow 1024-65535 192.0.2.0/24 1024-65535"),
            "{text}"
        );
    }

    #[test]
    fn ruleset_admits_only_the_servers_udp_to_bound_sockets() {
        let text = ruleset();
        assert!(text.contains(
            "ip saddr { 203.0.113.10, 203.0.113.11 } meta l4proto udp socket transparent 0 accept"
        ));
        assert!(text.contains("table inet natlens_upnp"));
    }
}
