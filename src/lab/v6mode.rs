//! What a lab router does with IPv6 (`natlens lab up --v6-a MODE --v6-b MODE`).
//!
//! On IPv6 the usual obstacle is not a NAT but a stateful firewall (RFC 6092), sometimes prefix
//! translation (NPTv6, RFC 6296) or a NAT66; `off` leaves a side IPv4-only. The text forms are
//! shared by the command line, the state file and the tests, like [`NatMode`]'s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::lab::spec::NatMode;

/// Which unsolicited inbound packets a stateful IPv6 firewall lets through to a LAN endpoint
/// that has sent something out (RFC 4787's filtering classes, as RFC 6092 uses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Filtering {
    /// `eif`: from anyone, once the endpoint has sent to anyone.
    EndpointIndependent,
    /// `adf`: from any port of an address the endpoint has sent to.
    AddressDependent,
    /// `apdf`: only from the address and port the endpoint has sent to (conntrack alone).
    AddressAndPortDependent,
}

impl Filtering {
    /// The short name used after `firewall:`.
    pub fn short_name(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "eif",
            Filtering::AddressDependent => "adf",
            Filtering::AddressAndPortDependent => "apdf",
        }
    }
}

/// How a lab router handles IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum V6Mode {
    /// No IPv6 on this side: the router and its LAN hosts have no IPv6 address at all.
    Off,
    /// Plain routing: the LAN prefix is routed and nothing is filtered.
    Open,
    /// A stateful firewall (RFC 6092): outbound opens a pinhole, unsolicited inbound is
    /// dropped unless the filtering lets it through. `firewall` alone is endpoint-independent,
    /// RFC 6092's default for unmanaged gateways (REC-11).
    Firewall(Filtering),
    /// RFC 6296 prefix translation: the LAN prefix is swapped for the router's external prefix
    /// both ways, interface IDs kept; no firewall on top.
    Nptv6,
    /// Masquerade on IPv6, built exactly as the IPv4 NAT mode of the same name (only `cone`,
    /// `seq:D` and `random`).
    Nat66(NatMode),
}

/// The filtering `firewall` means when none is named: RFC 6092 REC-11 says endpoint-independent
/// filtering SHOULD be the default of gateways provisioned without service-provider management.
pub const DEFAULT_FILTERING: Filtering = Filtering::EndpointIndependent;

/// The mode of a side whose mode is not given: every host gets IPv6, behind the firewall a
/// home gateway has by default.
pub const DEFAULT_V6_MODE: V6Mode = V6Mode::Firewall(DEFAULT_FILTERING);

impl Default for V6Mode {
    fn default() -> Self {
        DEFAULT_V6_MODE
    }
}

impl V6Mode {
    /// True unless the side is IPv4-only.
    pub fn has_ipv6(self) -> bool {
        self != V6Mode::Off
    }

    /// True for the modes that rewrite addresses (NPTv6 and NAT66).
    pub fn translates(self) -> bool {
        matches!(self, V6Mode::Nptv6 | V6Mode::Nat66(_))
    }
}

impl fmt::Display for V6Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V6Mode::Off => f.write_str("off"),
            V6Mode::Open => f.write_str("open"),
            V6Mode::Firewall(filtering) => write!(f, "firewall:{}", filtering.short_name()),
            V6Mode::Nptv6 => f.write_str("nptv6"),
            V6Mode::Nat66(NatMode::Cone) => f.write_str("nat66"),
            V6Mode::Nat66(mode) => write!(f, "nat66:{mode}"),
        }
    }
}

const V6_MODES_HINT: &str =
    "use off, open, firewall, firewall:eif, firewall:adf, firewall:apdf, nptv6, nat66, nat66:seq:D or nat66:random";

impl FromStr for V6Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let filtering = |name: &str| match name {
            "eif" => Some(Filtering::EndpointIndependent),
            "adf" => Some(Filtering::AddressDependent),
            "apdf" => Some(Filtering::AddressAndPortDependent),
            _ => None,
        };
        match text {
            "off" => return Ok(V6Mode::Off),
            "open" => return Ok(V6Mode::Open),
            "firewall" => return Ok(V6Mode::Firewall(DEFAULT_FILTERING)),
            "nptv6" => return Ok(V6Mode::Nptv6),
            "nat66" => return Ok(V6Mode::Nat66(NatMode::Cone)),
            _ => {}
        }
        if let Some(name) = text.strip_prefix("firewall:") {
            return filtering(name).map(V6Mode::Firewall).ok_or_else(|| {
                format!("unknown firewall filtering `{name}`: use eif, adf or apdf")
            });
        }
        if let Some(nat) = text.strip_prefix("nat66:") {
            let mode: NatMode = nat.parse()?;
            return match mode {
                NatMode::Cone | NatMode::Sequential { .. } | NatMode::Random => {
                    Ok(V6Mode::Nat66(mode))
                }
                _ => Err(format!("`{text}`: NAT66 is cone, seq:D or random")),
            };
        }
        Err(format!("unknown IPv6 mode `{text}`: {V6_MODES_HINT}"))
    }
}

impl From<V6Mode> for String {
    fn from(mode: V6Mode) -> String {
        mode.to_string()
    }
}

impl TryFrom<String> for V6Mode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_text() {
        for text in [
            "off",
            "open",
            "firewall:eif",
            "firewall:adf",
            "firewall:apdf",
            "nptv6",
            "nat66",
            "nat66:seq:1",
            "nat66:seq:3",
            "nat66:random",
        ] {
            let mode: V6Mode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
        }
        assert_eq!(
            "firewall".parse(),
            Ok(V6Mode::Firewall(Filtering::EndpointIndependent))
        );
        assert_eq!("nat66:cone".parse(), Ok(V6Mode::Nat66(NatMode::Cone)));
    }

    #[test]
    fn bad_modes_say_what_is_allowed() {
        for text in [
            "",
            "firewall:",
            "firewall:xyz",
            "nat",
            "nat66:",
            "nat66:seq:0",
        ] {
            assert!(text.parse::<V6Mode>().is_err(), "{text}");
        }
        assert!("nat66:full-cone"
            .parse::<V6Mode>()
            .unwrap_err()
            .contains("cone, seq:D or random"));
        assert!("v6".parse::<V6Mode>().unwrap_err().contains("nptv6"));
    }

    #[test]
    fn the_default_is_an_endpoint_independent_firewall() {
        assert_eq!(V6Mode::default().to_string(), "firewall:eif");
        assert!(V6Mode::default().has_ipv6() && !V6Mode::default().translates());
        assert!(!V6Mode::Off.has_ipv6());
    }
}
