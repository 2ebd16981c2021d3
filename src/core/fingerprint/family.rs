//! The fingerprint per address family: `natlens nat` probes IPv4 and IPv6 separately (each
//! against a server of its own family) and reports each. IPv4 stays where it always was (the
//! report's `udp` and `tcp`); IPv6 gets its own object of the same shape, with what only IPv6
//! has to say: whether there is translation at all (behind a plain stateful firewall there is
//! none), and if so whether it is prefix translation (NPTv6, RFC 6296) or a NAT66.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use super::{Observation, Report, TransportReport};

/// What sits between this host's IPv6 address and the one the server saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Translation {
    /// The server saw this host's own address: no translation (a firewall may still filter).
    None,
    /// The prefix changed, the interface ID (the low 64 bits) did not: network prefix
    /// translation, stateless and port-preserving by design.
    Nptv6,
    /// Another address altogether: a NAT66 (masquerade), with its own mapping and allocation.
    Nat66,
}

impl Translation {
    pub fn as_str(self) -> &'static str {
        match self {
            Translation::None => "none",
            Translation::Nptv6 => "nptv6",
            Translation::Nat66 => "nat66",
        }
    }
}

/// The translation between `local` (the probe's source) and `public` (what the server saw);
/// `None` when they are not both IPv6 (a broken answer; IPv4 has its own words).
pub fn translation(local: IpAddr, public: IpAddr) -> Option<Translation> {
    let (IpAddr::V6(local), IpAddr::V6(public)) = (local, public) else {
        return None;
    };
    Some(if local == public {
        Translation::None
    } else if interface_id(local) == interface_id(public) {
        Translation::Nptv6
    } else {
        Translation::Nat66
    })
}

/// The low 64 bits, which NPTv6 keeps (with a /48 prefix its checksum adjustment goes into
/// the subnet ID, RFC 6296 section 3.4; Linux's stateful prefix NAT adjusts nothing).
fn interface_id(ip: Ipv6Addr) -> u64 {
    (u128::from(ip) & u128::from(u64::MAX)) as u64
}

/// The translation the first answered probe shows (discovery first), over any transport.
pub fn translation_of<'a>(
    observations: impl IntoIterator<Item = &'a Observation>,
) -> Option<Translation> {
    observations
        .into_iter()
        .find_map(|o| Some((o.local.ip(), o.public()?.ip())))
        .and_then(|(local, public)| translation(local, public))
}

/// The IPv6 fingerprint: `udp` and `tcp` of the same shape as the report's IPv4 ones, and what
/// the family as a whole shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyReport {
    /// The family's primary server (the first --server of the family).
    pub server: SocketAddr,
    /// Every server of the family asked, the primary first.
    pub servers: Vec<SocketAddr>,
    /// The family's own verdict line (the transports' as for IPv4, after the translation).
    pub verdict: Option<String>,
    /// `false` when the server saw this host's own address (no translation; a firewall may
    /// still filter), `true` under NPTv6 or NAT66; `None` when no transport was answered.
    pub behind_nat: Option<bool>,
    pub translation: Option<Translation>,
    pub udp: Option<TransportReport>,
    pub tcp: Option<TransportReport>,
}

impl FamilyReport {
    /// The IPv6 part of a run, from the report its fingerprints made (a report of its own, as
    /// an IPv4 one) and the translation they showed.
    pub fn new(report: Report, translation: Option<Translation>) -> Self {
        let behind_nat = [&report.udp, &report.tcp]
            .into_iter()
            .flatten()
            .find_map(|t| t.behind_nat);
        let verdict = report.verdict.as_ref().map(|line| match translation {
            Some(Translation::Nptv6) => format!("NPTv6, {line}"),
            Some(Translation::Nat66) => format!("NAT66, {line}"),
            _ => line.clone(),
        });
        FamilyReport {
            server: report.server,
            servers: report.servers,
            verdict,
            behind_nat,
            translation,
            udp: report.udp,
            tcp: report.tcp,
        }
    }

    /// The public IPv6 address the server saw (UDP's, else TCP's).
    pub fn public_ip(&self) -> Option<IpAddr> {
        [&self.udp, &self.tcp]
            .into_iter()
            .flatten()
            .find_map(|t| t.public_address.map(|a| a.ip()))
    }
}

/// Which families were probed, and why one was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Families {
    pub ipv4: FamilyStatus,
    pub ipv6: FamilyStatus,
}

/// One family's line in [`Families`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyStatus {
    pub probed: bool,
    /// The family's primary server; `None` when it has none.
    pub server: Option<SocketAddr>,
    /// Why the family was not probed (no server of the family, --family, --bind of the other
    /// family, no route); `None` when it was.
    pub reason: Option<String>,
}

impl FamilyStatus {
    pub fn probed(server: SocketAddr) -> Self {
        FamilyStatus {
            probed: true,
            server: Some(server),
            reason: None,
        }
    }

    pub fn not_probed(server: Option<SocketAddr>, reason: impl Into<String>) -> Self {
        FamilyStatus {
            probed: false,
            server,
            reason: Some(reason.into()),
        }
    }
}

impl Families {
    /// A run over `server`'s family alone, the other not asked (the punch's fingerprint, and
    /// reports made before the families are known).
    pub fn only(server: SocketAddr) -> Self {
        let other = FamilyStatus::not_probed(None, "not asked");
        let probed = FamilyStatus::probed(server);
        match server {
            SocketAddr::V4(_) => Families {
                ipv4: probed,
                ipv6: other,
            },
            SocketAddr::V6(_) => Families {
                ipv4: other,
                ipv6: probed,
            },
        }
    }
}

/// The verdict line of a run over both families: `IPv4: … || IPv6: …` (each family's line as
/// for one family; ` || ` because a family's own line may hold ` | ` between its transports),
/// a family's alone when only it was probed (IPv4's then unprefixed, as before there was
/// IPv6), `None` when neither has one.
pub fn dual_line(ipv4_probed: bool, ipv4: Option<&str>, ipv6: Option<&str>) -> Option<String> {
    let ipv4 = ipv4.filter(|_| ipv4_probed);
    match (ipv4, ipv6) {
        (Some(v4), Some(v6)) => Some(format!("IPv4: {v4} || IPv6: {v6}")),
        (Some(v4), None) => Some(v4.to_owned()),
        (None, Some(v6)) => Some(format!("IPv6: {v6}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn translation_tells_none_nptv6_and_nat66_apart() {
        let local = ip("2001:db8:a::1234:5678:9abc:def0");
        assert_eq!(translation(local, local), Some(Translation::None));
        // A /48 mapped onto another /48, the interface ID kept.
        let prefix = ip("2001:db8:ff::1234:5678:9abc:def0");
        assert_eq!(translation(local, prefix), Some(Translation::Nptv6));
        // Checksum-neutral NPTv6 with a /48 adjusts the subnet ID: still the same host.
        let adjusted = ip("2001:db8:ff:4d2:1234:5678:9abc:def0");
        assert_eq!(translation(local, adjusted), Some(Translation::Nptv6));
        // Masquerade: the router's own address.
        assert_eq!(
            translation(local, ip("2001:db8:ff::1")),
            Some(Translation::Nat66)
        );
        // Not both IPv6: not this module's to judge.
        assert_eq!(translation(ip("192.0.2.1"), ip("198.51.100.1")), None);
        assert_eq!(translation(local, ip("198.51.100.1")), None);
    }

    #[test]
    fn the_dual_line_names_each_family_probed() {
        assert_eq!(
            dual_line(true, Some("UDP: no NAT"), Some("UDP: no NAT | TCP: x")).as_deref(),
            Some("IPv4: UDP: no NAT || IPv6: UDP: no NAT | TCP: x")
        );
        assert_eq!(
            dual_line(true, Some("UDP: a"), None).as_deref(),
            Some("UDP: a")
        );
        assert_eq!(
            dual_line(false, None, Some("UDP: b")).as_deref(),
            Some("IPv6: UDP: b")
        );
        assert_eq!(dual_line(true, None, None), None);
    }

    #[test]
    fn families_of_a_single_family_run() {
        let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let families = Families::only(v6);
        assert!(families.ipv6.probed && !families.ipv4.probed);
        assert_eq!(families.ipv4.reason.as_deref(), Some("not asked"));
    }
}
