//! Punching over both address families at once, in the spirit of RFC 8305 ("Happy Eyeballs"):
//! which families the two ends share, one plan per shared family, IPv6 first and IPv4 after a
//! short head start, the first path confirmed at the callee kept by both ends (`family_race`).
//!
//! An end's facts describe its session's family (the one the server saw it in) and, in
//! NL-FAMILY-FACTS, its other family. [`facts_in`] cuts out one family's facts, so that
//! [`make_plan`] plans each family exactly as it plans a single-family punch today; both ends
//! cut the same way and so plan the same punches. A family either end lacks is *not shared*:
//! reported, never an error.
//!
//! Bad input is handled here, once, for every family: an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is the IPv4 address it maps (that is how its packets travel), and a
//! link-local (scoped) address is refused for that family, since it means nothing beyond the
//! peer's own link.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::plan::{make_plan, PlanInput, PunchPlan};
use crate::wire::natlens::{IpFamily, NatFacts};

/// How long IPv4 waits behind IPv6. RFC 8305 waits 250 ms between connection attempts because a
/// client cannot tell a slow path from a dead one; a punch's two families are scheduled by both
/// ends alike from one start signal, so the head start only has to let IPv6's first round leave
/// and come back on a typical path before IPv4 spends ports: 50 ms, about one continental round
/// trip. Both ends use the same figure, so their IPv4 schedules still meet.
pub const IPV4_HEAD_START: Duration = Duration::from_millis(50);

/// Which families a punch may use (`--family 4|6|any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyChoice {
    /// Every family both ends have, IPv6 first.
    #[default]
    Any,
    Only(IpFamily),
}

impl FamilyChoice {
    /// The families to try, in order of preference.
    pub fn families(self) -> Vec<IpFamily> {
        match self {
            FamilyChoice::Any => vec![IpFamily::Ipv6, IpFamily::Ipv4],
            FamilyChoice::Only(family) => vec![family],
        }
    }

    /// Whether `family` may be used.
    pub fn allows(self, family: IpFamily) -> bool {
        self == FamilyChoice::Any || self == FamilyChoice::Only(family)
    }
}

/// One family's plan, or why that family is not punched.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyPlan {
    pub family: IpFamily,
    /// How long after the start signal this family's punch starts (IPv4's head start behind
    /// IPv6 when both run).
    pub delay: Duration,
    pub plan: Result<PunchPlan, NotShared>,
}

/// Why a family is not punched: said in the report, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotShared {
    pub reason: String,
}

impl NotShared {
    fn new(reason: impl Into<String>) -> Self {
        NotShared {
            reason: reason.into(),
        }
    }
}

/// One end's facts in `family`: the session's own when the server saw it in that family, else
/// its NL-FAMILY-FACTS side turned into facts of their own (with `observed` the public address
/// the end's own fingerprint saw there). `whose` names the end in the reason ("we", "the peer").
pub fn facts_in(facts: &NatFacts, family: IpFamily, whose: &str) -> Result<NatFacts, NotShared> {
    let observed = facts.observed.map(canonical);
    if let Some(session) = observed.filter(|a| IpFamily::of(a.ip()) == family) {
        check_usable(session, whose)?;
        let port_mapping = facts
            .port_mapping
            .filter(|m| IpFamily::of(m.external.ip()) == family);
        return Ok(NatFacts {
            observed: Some(session),
            port_mapping,
            other_family: None,
            ..facts.clone()
        });
    }
    let side = facts
        .other_family
        .as_ref()
        .filter(|side| side.family == family);
    let Some(side) = side else {
        return Err(NotShared::new(format!(
            "{whose} said nothing about {}",
            family.label()
        )));
    };
    let Some(public) = side.public else {
        let has = if whose == "we" { "have" } else { "has" };
        return Err(NotShared::new(format!(
            "{whose} {has} no {}",
            family.label()
        )));
    };
    if IpFamily::of(public.ip()) != family {
        return Err(NotShared::new(format!(
            "{whose} gave the IPv4-mapped address {public} as {}: refused",
            family.label()
        )));
    }
    check_usable(public, whose)?;
    Ok(NatFacts {
        observed: Some(public),
        transports: facts.transports,
        delta: side.delta,
        predicted_ports: side.predicted_ports.clone(),
        profile: side.profile,
        port_mapping: facts
            .port_mapping
            .filter(|m| IpFamily::of(m.external.ip()) == family),
        other_family: None,
    })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// Refuses an address a peer beyond the link cannot reach: link-local (fe80::/10, 169.254/16)
/// or unspecified.
fn check_usable(address: SocketAddr, whose: &str) -> Result<(), NotShared> {
    let scoped = match address.ip() {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.segments()[0] & 0xffc0 == 0xfe80,
    };
    if scoped {
        return Err(NotShared::new(format!(
            "{whose} gave the link-local (scoped) address {address}: refused"
        )));
    }
    if address.ip().is_unspecified() || address.port() == 0 {
        return Err(NotShared::new(format!(
            "{whose} gave the unusable address {address}: refused"
        )));
    }
    Ok(())
}

/// The plans of every family `choice` allows, in order of preference (IPv6 first): the plan
/// `make_plan` makes from both ends' facts in that family, or why the family is not shared.
/// The first family planned starts at once, every later one [`IPV4_HEAD_START`] after it.
pub fn plan_families(input: &PlanInput<'_>, choice: FamilyChoice) -> Vec<FamilyPlan> {
    let mut delay = Duration::ZERO;
    choice
        .families()
        .into_iter()
        .map(|family| {
            let shared = facts_in(input.own, family, "we")
                .and_then(|own| Ok((own, facts_in(input.peer, family, "the peer")?)));
            let plan = shared.map(|(own, peer)| {
                make_plan(&PlanInput {
                    own: &own,
                    peer: &peer,
                    ..*input
                })
            });
            let this = FamilyPlan {
                family,
                delay,
                plan,
            };
            if this.plan.is_ok() {
                delay = IPV4_HEAD_START;
            }
            this
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::punch::plan::PunchOptions;
    use crate::core::punch::{Role, Strategy};
    use crate::core::Transport;
    use crate::wire::natlens::{Dependence, FamilySide, NatProfile, PortPattern, Transports};

    fn cone() -> NatProfile {
        NatProfile {
            mapping: Some(Dependence::EndpointIndependent),
            filtering: Some(Dependence::AddressAndPortDependent),
            allocation: Some(PortPattern::Preserving),
            foreign_flows_per_second: 0,
        }
    }

    fn end(session: &str, other: Option<&str>) -> NatFacts {
        let session: SocketAddr = session.parse().unwrap();
        let family = IpFamily::of(session.ip()).other();
        NatFacts {
            observed: Some(session),
            transports: Transports {
                udp: true,
                tcp: false,
            },
            predicted_ports: vec![session.port()],
            profile: Some(cone()),
            other_family: Some(match other {
                Some(public) => {
                    let public: SocketAddr = public.parse().unwrap();
                    FamilySide {
                        family,
                        public: Some(public),
                        delta: None,
                        predicted_ports: vec![public.port()],
                        profile: Some(cone()),
                    }
                }
                None => FamilySide::absent(family),
            }),
            ..NatFacts::default()
        }
    }

    fn plans(own: &NatFacts, peer: &NatFacts, choice: FamilyChoice) -> Vec<FamilyPlan> {
        let options = PunchOptions::default();
        let input = PlanInput {
            role: Role::Caller,
            transport: Transport::Udp,
            call_id: 7,
            own,
            peer,
            options: &options,
        };
        plan_families(&input, choice)
    }

    #[test]
    fn two_dual_stack_ends_plan_ipv6_first_and_ipv4_after_the_head_start() {
        // One logged in over IPv4, the other over IPv6: both families are still shared.
        let own = end("198.51.100.1:4000", Some("[2001:db8:1::1]:4000"));
        let peer = end("[2001:db8:2::2]:5000", Some("203.0.113.2:5000"));
        let plans = plans(&own, &peer, FamilyChoice::Any);
        assert_eq!(plans.len(), 2);
        assert_eq!(
            (plans[0].family, plans[0].delay),
            (IpFamily::Ipv6, Duration::ZERO)
        );
        assert_eq!(
            (plans[1].family, plans[1].delay),
            (IpFamily::Ipv4, IPV4_HEAD_START)
        );
        let v6 = plans[0].plan.as_ref().unwrap();
        assert_eq!(v6.peer, Some("[2001:db8:2::2]:5000".parse().unwrap()));
        assert_eq!(v6.strategy, Strategy::Direct);
        let v4 = plans[1].plan.as_ref().unwrap();
        assert_eq!(v4.peer, Some("203.0.113.2:5000".parse().unwrap()));
        assert_eq!(v4.local().predicted_ports.first(), Some(&5000));
    }

    #[test]
    fn a_family_the_peer_lacks_is_not_shared_and_ipv4_then_starts_at_once() {
        let own = end("198.51.100.1:4000", Some("[2001:db8:1::1]:4000"));
        let peer = end("203.0.113.2:5000", None);
        let plans = plans(&own, &peer, FamilyChoice::Any);
        let reason = &plans[0].plan.as_ref().unwrap_err().reason;
        assert_eq!(reason, "the peer has no IPv6");
        assert_eq!(plans[1].delay, Duration::ZERO, "nothing to wait behind");
        assert!(plans[1].plan.is_ok());
        // An older peer that says nothing about its other family.
        let older = NatFacts {
            other_family: None,
            ..peer
        };
        let plans = plans_only(&own, &older, IpFamily::Ipv6);
        assert_eq!(
            plans[0].plan.as_ref().unwrap_err().reason,
            "the peer said nothing about IPv6"
        );
    }

    fn plans_only(own: &NatFacts, peer: &NatFacts, family: IpFamily) -> Vec<FamilyPlan> {
        plans(own, peer, FamilyChoice::Only(family))
    }

    #[test]
    fn family_choice_limits_the_plans() {
        let own = end("198.51.100.1:4000", Some("[2001:db8:1::1]:4000"));
        let peer = end("[2001:db8:2::2]:5000", Some("203.0.113.2:5000"));
        let plans = plans_only(&own, &peer, IpFamily::Ipv4);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].family, IpFamily::Ipv4);
        assert_eq!(plans[0].delay, Duration::ZERO);
    }

    #[test]
    fn scoped_mapped_and_unspecified_addresses_are_refused_per_family() {
        let own = end("198.51.100.1:4000", Some("[2001:db8:1::1]:4000"));
        for (bad, says) in [
            ("[fe80::1]:5000", "link-local"),
            ("[::ffff:203.0.113.9]:5000", "IPv4-mapped"),
            ("[::]:5000", "unusable"),
        ] {
            let mut peer = end("203.0.113.2:5000", Some("[2001:db8:2::2]:5000"));
            peer.other_family.as_mut().unwrap().public = Some(bad.parse().unwrap());
            let plans = plans(&own, &peer, FamilyChoice::Any);
            let reason = &plans[0].plan.as_ref().unwrap_err().reason;
            assert!(reason.contains(says), "{bad}: {reason}");
            assert!(plans[1].plan.is_ok(), "IPv4 is unaffected");
        }
        // A session address the server saw as IPv4-mapped (a dual-stack socket) is IPv4.
        let peer = end("[::ffff:203.0.113.2]:5000", None);
        let v4 = facts_in(&peer, IpFamily::Ipv4, "the peer").unwrap();
        assert_eq!(v4.observed, Some("203.0.113.2:5000".parse().unwrap()));
        // A link-local session address refuses that family too.
        let peer = end("[fe80::2]:5000", None);
        assert!(facts_in(&peer, IpFamily::Ipv6, "the peer").is_err());
    }
}
