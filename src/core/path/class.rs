//! What kind of address a hop answered from: the evidence the NAT-layer verdict rests on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// The address space an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local addresses (fc00::/7).
    Private,
    /// RFC 6598 shared address space, 100.64.0.0/10: carrier-grade NAT's inside.
    Shared,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and RFC 3849 (2001:db8::/32).
    Documentation,
    /// Anything else that may not appear on the Internet: unspecified, multicast, 0/8, 240/4.
    Reserved,
    /// A globally routable address.
    Public,
}

impl AddressClass {
    /// Whether an address of this class stands for the Internet side of a NAT. Documentation
    /// addresses count as public: the NAT lab builds its "Internet" out of them, and no real
    /// path carries them, so the rule costs nothing outside the lab.
    pub fn counts_as_public(self) -> bool {
        matches!(self, AddressClass::Public | AddressClass::Documentation)
    }

    /// Inside addresses a NAT translates from: private or shared space.
    pub fn is_inside(self) -> bool {
        matches!(self, AddressClass::Private | AddressClass::Shared)
    }
}

/// The class of `addr` (IPv4-mapped IPv6 addresses are judged as IPv4).
pub fn classify(addr: IpAddr) -> AddressClass {
    match addr {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(addr: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = addr.octets();
    match (a, b, c) {
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::Shared,
        (169, 254, _) => AddressClass::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (0, _, _) | (224..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(addr: Ipv6Addr) -> AddressClass {
    let segments = addr.segments();
    if addr.is_loopback() {
        AddressClass::Loopback
    } else if addr.is_unspecified() || segments[0] & 0xff00 == 0xff00 {
        AddressClass::Reserved
    } else if segments[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if segments[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        AddressClass::Documentation
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn every_class_has_its_ranges() {
        use AddressClass::*;
        let cases = [
            ("127.0.0.1", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.254", Private),
            ("192.168.1.1", Private),
            ("fd00::1", Private),
            ("100.64.0.1", Shared),
            ("100.127.255.254", Shared),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.10", Documentation),
            ("2001:db8::1", Documentation),
            ("0.0.0.0", Reserved),
            ("224.0.0.1", Reserved),
            ("ff02::1", Reserved),
            ("::ffff:100.64.0.1", Shared),
        ];
        for (text, want) in cases {
            assert_eq!(class(text), want, "{text}");
        }
    }

    /// The edges of the ranges that sit next to public space.
    #[test]
    fn neighbours_of_the_ranges_are_public() {
        for text in [
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.3.1",
            "2001:db9::1",
        ] {
            assert_eq!(class(text), AddressClass::Public, "{text}");
        }
    }

    #[test]
    fn documentation_counts_as_public_and_only_private_and_shared_are_inside() {
        assert!(AddressClass::Documentation.counts_as_public());
        assert!(AddressClass::Public.counts_as_public());
        assert!(!AddressClass::Shared.counts_as_public());
        assert!(AddressClass::Shared.is_inside() && AddressClass::Private.is_inside());
        assert!(!AddressClass::Documentation.is_inside());
        assert!(!AddressClass::Loopback.is_inside());
    }
}
