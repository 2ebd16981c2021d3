//! What a lab should look like: the NAT mode of each router, impairments, optional hosts.
//!
//! Pure data with text forms (`seq:2`, `router-a`) shared by the command line, the state file and
//! the tests, so a mode or host is spelt the same everywhere.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::v6mode::V6Mode;

/// Lowest port a sequential NAT hands out: high enough to stay clear of the LAN hosts' own
/// ephemeral range (32768–60999) when the step is small, so a preserved port is never mistaken
/// for an allocated one.
pub const SEQ_FIRST_PORT: u16 = 40_000;

/// How a lab router maps and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum NatMode {
    /// Port-preserving, endpoint-independent mapping; address-and-port-dependent filtering.
    Cone,
    /// Endpoint-independent mapping and filtering: any host may send to a live mapping.
    FullCone,
    /// Symmetric: every new flow gets the next port, `delta` after the previous one.
    Sequential { delta: u16 },
    /// Symmetric with random ports.
    Random,
}

impl NatMode {
    /// True for the modes that give every new flow its own public port.
    pub fn is_symmetric(self) -> bool {
        matches!(self, NatMode::Sequential { .. } | NatMode::Random)
    }
}

impl fmt::Display for NatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatMode::Cone => f.write_str("cone"),
            NatMode::FullCone => f.write_str("full-cone"),
            NatMode::Sequential { delta } => write!(f, "seq:{delta}"),
            NatMode::Random => f.write_str("random"),
        }
    }
}

impl FromStr for NatMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cone" => Ok(NatMode::Cone),
            "full-cone" => Ok(NatMode::FullCone),
            "random" => Ok(NatMode::Random),
            _ => {
                let delta = text.strip_prefix("seq:").ok_or_else(|| {
                    format!("unknown NAT mode `{text}`: use cone, full-cone, seq:D or random")
                })?;
                match delta.parse::<u16>() {
                    Ok(delta) if (1..=u16::MAX - SEQ_FIRST_PORT).contains(&delta) => {
                        Ok(NatMode::Sequential { delta })
                    }
                    _ => Err(format!(
                        "`{text}`: the step D of seq:D must be a whole number from 1 to {}",
                        u16::MAX - SEQ_FIRST_PORT
                    )),
                }
            }
        }
    }
}

impl From<NatMode> for String {
    fn from(mode: NatMode) -> String {
        mode.to_string()
    }
}

impl TryFrom<String> for NatMode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// One of the two NAT routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::A, Side::B];
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "a",
            Side::B => "b",
        })
    }
}

/// A machine in the lab; each is one network namespace named `<prefix>-<host>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Host {
    /// The main LAN host behind a router.
    Lan(Side),
    /// The second LAN host behind a router, the one that makes `--noise`.
    Noise(Side),
    /// A NAT router.
    Router(Side),
    /// The server with two public addresses.
    Server,
    /// A public host without NAT (only with `--public-host`).
    Public,
    /// The internet segment itself: a bridge or the delaying frame relay, no address.
    Internet,
    /// A carrier-grade NAT between a router and the internet segment (only with `--cgnat-a`).
    Carrier(Side),
}

impl Host {
    /// Every host, in the order they are created and listed.
    pub const ALL: [Host; 10] = [
        Host::Internet,
        Host::Server,
        Host::Public,
        Host::Carrier(Side::A),
        Host::Router(Side::A),
        Host::Lan(Side::A),
        Host::Noise(Side::A),
        Host::Router(Side::B),
        Host::Lan(Side::B),
        Host::Noise(Side::B),
    ];
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Lan(side) => write!(f, "{side}"),
            Host::Noise(side) => write!(f, "{side}2"),
            Host::Router(side) => write!(f, "router-{side}"),
            Host::Server => f.write_str("server"),
            Host::Public => f.write_str("public"),
            Host::Internet => f.write_str("internet"),
            Host::Carrier(side) => write!(f, "carrier-{side}"),
        }
    }
}

impl FromStr for Host {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Host::ALL
            .into_iter()
            .find(|host| host.to_string() == text)
            .ok_or_else(|| {
                let names: Vec<String> = Host::ALL.iter().map(Host::to_string).collect();
                format!("unknown lab host `{text}`: use one of {}", names.join(", "))
            })
    }
}

impl From<Host> for String {
    fn from(host: Host) -> String {
        host.to_string()
    }
}

impl TryFrom<String> for Host {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// Everything `Lab::up` needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSpec {
    /// NAT mode of router A.
    pub nat_a: NatMode,
    /// NAT mode of router B.
    pub nat_b: NatMode,
    /// New UDP flows per second opened by the second LAN host behind A (0: none).
    pub noise_a: f64,
    /// New UDP flows per second opened by the second LAN host behind B (0: none).
    pub noise_b: f64,
    /// One-way delay added on each router's WAN link, in each direction.
    #[serde(with = "millis")]
    pub delay: Duration,
    /// Percentage of IP packets dropped on each router's WAN link, in each direction.
    pub loss_percent: u8,
    /// Whether to add a public host without NAT.
    pub public_host: bool,
    /// Name prefix (`nl` and 6 hex digits); `None` picks a fresh random one.
    pub prefix: Option<String>,
    /// How long the routers keep an idle UDP mapping (conntrack's UDP timeouts and the
    /// full-cone maps' UDP timeout); `None` keeps the kernel's defaults. The ground truth of the
    /// mapping lifetime tests.
    #[serde(
        default,
        with = "optional_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub udp_timeout: Option<Duration>,
    /// Port-mapping protocols miniupnpd serves in router a (detached labs only: it needs the
    /// lab's server for its STUN test); absent in older state files.
    #[serde(default)]
    pub port_mapping: crate::lab::port_mapping::PortMappingSpec,
    /// NAT mode of a carrier-grade NAT between router A and the internet segment; `None`: no
    /// carrier, router A sits on the segment itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgnat_a: Option<NatMode>,
    /// What router A does with IPv6 (see [`V6Mode`]); state files from before IPv6 read as the
    /// default.
    #[serde(default)]
    pub v6_a: V6Mode,
    /// What router B does with IPv6.
    #[serde(default)]
    pub v6_b: V6Mode,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            nat_a: NatMode::Cone,
            nat_b: NatMode::Cone,
            noise_a: 0.0,
            noise_b: 0.0,
            delay: Duration::ZERO,
            loss_percent: 0,
            public_host: false,
            prefix: None,
            udp_timeout: None,
            port_mapping: Default::default(),
            cgnat_a: None,
            v6_a: V6Mode::default(),
            v6_b: V6Mode::default(),
        }
    }
}

impl LabSpec {
    /// The NAT mode of one router.
    pub fn nat(&self, side: Side) -> NatMode {
        match side {
            Side::A => self.nat_a,
            Side::B => self.nat_b,
        }
    }

    /// The NAT mode of the carrier NAT in front of one router, if it has one (only router A
    /// can).
    pub fn cgnat(&self, side: Side) -> Option<NatMode> {
        match side {
            Side::A => self.cgnat_a,
            Side::B => None,
        }
    }

    /// What one router does with IPv6.
    pub fn v6(&self, side: Side) -> V6Mode {
        match side {
            Side::A => self.v6_a,
            Side::B => self.v6_b,
        }
    }

    /// The noise rate behind one router.
    pub fn noise(&self, side: Side) -> f64 {
        match side {
            Side::A => self.noise_a,
            Side::B => self.noise_b,
        }
    }

    /// Rejects values the lab cannot build, with a message that says which.
    pub fn validate(&self) -> Result<(), String> {
        if self.loss_percent > 100 {
            return Err(format!("loss {}% is over 100%", self.loss_percent));
        }
        for side in Side::BOTH {
            let rate = self.noise(side);
            if !(0.0..=10_000.0).contains(&rate) {
                return Err(format!(
                    "noise rate {rate}/s behind {side} is not in 0–10000"
                ));
            }
        }
        if let Some(timeout) = self.udp_timeout {
            if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&timeout) {
                return Err(format!("UDP timeout {timeout:?} is not in 1 s–24 h"));
            }
        }
        if self.delay > Duration::from_secs(10) {
            return Err(format!("delay {:?} is over 10 s", self.delay));
        }
        match &self.prefix {
            Some(prefix) if !is_prefix(prefix) => {
                Err(format!("prefix `{prefix}` is not `nl` and 6 hex digits"))
            }
            _ => Ok(()),
        }
    }
}

/// True for names natlens gives labs: `nl` and 6 lowercase hex digits.
pub fn is_prefix(text: &str) -> bool {
    text.len() == 8
        && text.starts_with("nl")
        && text[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Durations as whole milliseconds in the state file, which people read.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Duration, D::Error> {
        u64::deserialize(input).map(Duration::from_millis)
    }
}

/// An optional duration as whole milliseconds (absent when `None`).
mod optional_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, out: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => out.serialize_u64(value.as_millis() as u64),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(input)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_text() {
        for text in ["cone", "full-cone", "seq:1", "seq:2", "seq:25535", "random"] {
            let mode: NatMode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
        }
        assert_eq!("seq:7".parse(), Ok(NatMode::Sequential { delta: 7 }));
    }

    #[test]
    fn bad_modes_say_what_is_allowed() {
        for text in [
            "",
            "cone ",
            "seq",
            "seq:0",
            "seq:-1",
            "seq:25536",
            "symmetric",
        ] {
            let err = text.parse::<NatMode>().unwrap_err();
            assert!(
                err.contains("cone") || err.contains("seq:D"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn hosts_round_trip_through_text() {
        for host in Host::ALL {
            assert_eq!(host.to_string().parse(), Ok(host));
        }
        assert_eq!("router-b".parse(), Ok(Host::Router(Side::B)));
        assert_eq!("a2".parse(), Ok(Host::Noise(Side::A)));
        assert_eq!("carrier-a".parse(), Ok(Host::Carrier(Side::A)));
        assert!("router-c".parse::<Host>().unwrap_err().contains("router-a"));
    }

    #[test]
    fn prefixes_are_nl_and_six_hex_digits() {
        assert!(is_prefix("nl0a9f3c"));
        for bad in [
            "nl0a9f3",
            "nl0a9f3cd",
            "xx0a9f3c",
            "nl0A9F3C",
            "nl0a9g3c",
            "nl-a9f3c",
        ] {
            assert!(!is_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn spec_survives_the_state_file() {
        let spec = LabSpec {
            nat_b: NatMode::Sequential { delta: 2 },
            delay: Duration::from_millis(40),
            loss_percent: 5,
            noise_a: 2.5,
            udp_timeout: Some(Duration::from_secs(20)),
            cgnat_a: Some(NatMode::Random),
            ..LabSpec::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains("\"seq:2\"")
                && json.contains("\"delay\":40")
                && json.contains("\"udp_timeout\":20000"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<LabSpec>(&json).unwrap(), spec);
        // A state file written before the field existed still reads.
        let old = json.replace(",\"udp_timeout\":20000", "");
        assert_eq!(
            serde_json::from_str::<LabSpec>(&old).unwrap().udp_timeout,
            None
        );
    }

    #[test]
    fn validation_names_the_bad_value() {
        let bad = LabSpec {
            loss_percent: 101,
            ..LabSpec::default()
        };
        assert!(bad.validate().unwrap_err().contains("101"));
        let bad = LabSpec {
            prefix: Some("lab1".into()),
            ..LabSpec::default()
        };
        assert!(bad.validate().unwrap_err().contains("lab1"));
        assert_eq!(LabSpec::default().validate(), Ok(()));
    }
}
