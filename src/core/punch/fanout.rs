//! Fan-out in index space: which of the far NAT's flows each side aims at, so that two sides
//! whose ports are predictable meet whatever their unknown offsets.
//!
//! Index `k` of a sequential side is its `k`-th flow counted from the earliest port it predicted
//! ([`SideModel::port_at`]). Its real flows start some unknown *offset* `o` further on (other
//! hosts' flows since the prediction), and on a symmetric NAT every destination it sends to is a
//! flow of its own: its `f`-th destination leaves from index `f + o`. Two flows meet when each
//! is aimed at the other's real index. If both sides step through the other's indices by the same
//! stride, flow `f` of one side meets flow `g` of the other only when `g = f + o₁` and
//! `f = g + o₂`, i.e. `o₁ + o₂ = 0`: never with noise on either side. With strides 1
//! and 2 (side 1 aims flow `j` at far index `j`, side 2 aims flow `i` at `2i`), the conditions
//! `j = i + o₂` and `2i = j + o₁` give `i = o₁ + o₂`, `j = o₁ + 2·o₂`: a meeting for *any*
//! offsets, as long as side 2 sends `o₁ + o₂ + 1` flows and side 1 `o₁ + 2·o₂ + 1`. Offsets that
//! grow while the fan-out is being sent only delay it: `i − o₂(i) − o₁(j(i))` rises by at most
//! one per flow, so it cannot step over zero.

use crate::core::punch::profile::{PortModel, SideModel};

/// Most flows one side fans out over: as many ports as one CALL may predict
/// ([`MAX_PREDICTED_PORTS`](crate::wire::natlens::MAX_PREDICTED_PORTS)); more would mean a
/// prediction too poor to punch through, and each flow costs a port on a symmetric NAT.
pub const MAX_FANOUT: u32 = 256;

/// What one side aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// The far side's fixed port, from one socket.
    Port,
    /// Far indices `stride·f` for flows `f < flows`, from one socket.
    Indices { flows: u32, stride: u32 },
}

impl Aim {
    /// The far index flow `f` is aimed at (0 stands for a fixed far port).
    fn target(self, f: u32) -> u32 {
        match self {
            Aim::Port => 0,
            Aim::Indices { stride, .. } => stride * f,
        }
    }

    /// Destinations, so flows on a symmetric NAT.
    pub fn flows(self) -> u32 {
        match self {
            Aim::Port => 1,
            Aim::Indices { flows, .. } => flows,
        }
    }
}

/// The aims of two predictable sides, neither of which can simply be aimed at (the direct
/// case): `(a, b)` for the sides given as `(a, b)`. `b_second` breaks the tie when both are
/// symmetric-sequential with equal uncertainty: that side gets stride 2. The planner gives it to
/// the caller: it starts a relay after the callee, and the stride-2 side's meeting flow
/// (`o₁ + o₂`) comes sooner than the stride-1 side's (`o₁ + 2·o₂`), whose wait the callee's
/// head start hides.
pub fn pairing(a: &SideModel, b: &SideModel, b_second: bool) -> (Aim, Aim) {
    let (ua, ub) = (a.uncertainty(), b.uncertainty());
    let fan = |flows: u32, stride| Aim::Indices {
        flows: flows.clamp(1, MAX_FANOUT),
        stride,
    };
    // Uncertainties are capped (MAX_UNCERTAINTY), so none of the sums below can overflow.
    match (consumption(a), consumption(b)) {
        (Consumption::Fixed, _) => (fan(ub + 1, 1), Aim::Port),
        (_, Consumption::Fixed) => (Aim::Port, fan(ua + 1, 1)),
        (Consumption::PerDestination, Consumption::PerDestination) => {
            // Side 2 (stride 2) costs o₁ + o₂ + 1 flows and side 1 o₁ + 2·o₂ + 1: the less
            // uncertain side takes stride 2, so the larger offset is counted once.
            let b_is_second = ub < ua || (ub == ua && b_second);
            if b_is_second {
                (fan(ua + 2 * ub + 1, 1), fan(ua + ub + 1, 2))
            } else {
                (fan(ua + ub + 1, 2), fan(2 * ua + ub + 1, 1))
            }
        }
        // One binding toward the peer's address on the address-dependent side, at index oₐ:
        // the other side aims its flow i at index i, meeting at i = oₐ, whose real index
        // oₐ + o_b the address-dependent side must reach.
        (Consumption::PerAddress, Consumption::PerDestination) => {
            (fan(ua + ub + 1, 1), fan(ua + 1, 1))
        }
        (Consumption::PerDestination, Consumption::PerAddress) => {
            (fan(ub + 1, 1), fan(ua + ub + 1, 1))
        }
        (Consumption::PerAddress, Consumption::PerAddress) => (fan(ub + 1, 1), fan(ua + 1, 1)),
    }
}

/// How a side's flows map to its own indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// One port for everything (index 0).
    Fixed,
    /// Flow `f` at index `f + o`.
    PerDestination,
    /// Every flow toward the peer's address at index `o`.
    PerAddress,
}

pub fn consumption(side: &SideModel) -> Consumption {
    match side.ports {
        PortModel::Sequential {
            per_destination: false,
            ..
        } => Consumption::PerAddress,
        PortModel::Sequential { .. } | PortModel::Random => Consumption::PerDestination,
        PortModel::Fixed { .. } => Consumption::Fixed,
    }
}

/// The real index of a side's flow `f` at offset `o`.
fn actual(consumption: Consumption, f: u32, o: u32) -> u32 {
    match consumption {
        Consumption::Fixed => 0,
        Consumption::PerDestination => f + o,
        Consumption::PerAddress => o,
    }
}

/// Whether two sides with these aims meet at constant offsets `(oa, ob)`.
pub fn meets(a: (Consumption, Aim), b: (Consumption, Aim), oa: u32, ob: u32) -> bool {
    (0..a.1.flows()).any(|fa| {
        let aimed = a.1.target(fa);
        let from = actual(a.0, fa, oa);
        let flows_b = b.1.flows();
        // The flows of b that really have index `aimed`.
        let (lo, hi) = match b.0 {
            Consumption::PerDestination => match aimed.checked_sub(ob) {
                Some(g) if g < flows_b => (g, g + 1),
                _ => return false,
            },
            Consumption::Fixed if aimed == 0 => (0, flows_b),
            Consumption::PerAddress if aimed == ob => (0, flows_b),
            _ => return false,
        };
        (lo..hi).any(|g| b.1.target(g) == from)
    })
}

/// Offsets tried per side when estimating coverage: every one up to this many, evenly spread
/// samples beyond, so that a planner fed large uncertainties stays fast.
const COVERAGE_SAMPLES: u32 = 64;

/// The share of offset pairs, uniform over `[0, Ua] × [0, Ub]`, for which the two sides meet:
/// the expected success of a fan-out whose offsets stay inside the sides' uncertainties.
/// Exact up to 64 offsets a side, sampled evenly beyond.
pub fn coverage(a: &SideModel, aim_a: Aim, b: &SideModel, aim_b: Aim) -> f64 {
    let samples = |u: u32| -> Vec<u32> {
        let n = (u + 1).min(COVERAGE_SAMPLES);
        (0..n)
            .map(|i| (u64::from(i) * u64::from(u + 1) / u64::from(n)) as u32)
            .collect()
    };
    let (oas, obs) = (samples(a.uncertainty()), samples(b.uncertainty()));
    let (ca, cb) = (consumption(a), consumption(b));
    let mut met = 0u64;
    for &oa in &oas {
        for &ob in &obs {
            met += u64::from(meets((ca, aim_a), (cb, aim_b), oa, ob));
        }
    }
    met as f64 / (oas.len() * obs.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::natlens::Dependence;

    fn seq(expected: u32, rate: u32, per_destination: bool) -> SideModel {
        SideModel {
            mapped: false,
            address: None,
            ports: PortModel::Sequential {
                base: 40000,
                delta: 1,
                expected,
                per_destination,
            },
            filtering: Some(Dependence::AddressAndPortDependent),
            foreign_flows_per_second: rate,
        }
    }

    fn fixed() -> SideModel {
        SideModel {
            mapped: false,
            ports: PortModel::Fixed { port: 5555 },
            ..seq(0, 0, true)
        }
    }

    #[test]
    fn equal_strides_meet_only_when_offsets_cancel() {
        let same = Aim::Indices {
            flows: 64,
            stride: 1,
        };
        let p = Consumption::PerDestination;
        assert!(meets((p, same), (p, same), 0, 0));
        assert!(!meets((p, same), (p, same), 3, 0));
        assert!(!meets((p, same), (p, same), 2, 5));
    }

    #[test]
    fn strides_one_and_two_meet_for_any_offsets_inside_the_fan_out() {
        let (a, b) = (seq(6, 20, true), seq(2, 0, true));
        let (aim_a, aim_b) = pairing(&a, &b, true);
        // Ua = 6 + 8 + 2 = 16, Ub = 2 + 0 + 2 = 4: b is less sure of nothing, so b steps by 2.
        assert_eq!(
            aim_a,
            Aim::Indices {
                flows: 25,
                stride: 1
            }
        );
        assert_eq!(
            aim_b,
            Aim::Indices {
                flows: 21,
                stride: 2
            }
        );
        assert_eq!(coverage(&a, aim_a, &b, aim_b), 1.0);
        // One flow fewer on either side loses the corner case.
        let short_a = Aim::Indices {
            flows: 24,
            stride: 1,
        };
        assert!(coverage(&a, short_a, &b, aim_b) < 1.0);
        assert!(!meets(
            (Consumption::PerDestination, short_a),
            (Consumption::PerDestination, aim_b),
            16,
            4
        ));
    }

    #[test]
    fn a_fixed_side_fans_out_and_the_sequential_side_sends_once() {
        let (f, s) = (fixed(), seq(3, 20, true));
        let (aim_f, aim_s) = pairing(&f, &s, true);
        assert_eq!(
            aim_f,
            Aim::Indices {
                flows: 14,
                stride: 1
            }
        );
        assert_eq!(aim_s, Aim::Port);
        assert_eq!(coverage(&f, aim_f, &s, aim_s), 1.0);
        let (aim_s, aim_f) = pairing(&s, &f, false);
        assert_eq!((aim_s, aim_f.flows()), (Aim::Port, 14));
    }

    #[test]
    fn address_dependent_sides_cover_every_offset() {
        for (a, b) in [
            (seq(2, 20, false), seq(4, 0, true)),
            (seq(2, 20, true), seq(4, 0, false)),
            (seq(2, 20, false), seq(4, 0, false)),
        ] {
            let (aim_a, aim_b) = pairing(&a, &b, true);
            assert_eq!(coverage(&a, aim_a, &b, aim_b), 1.0, "{a:?} {b:?}");
        }
    }

    #[test]
    fn wild_facts_stay_cheap() {
        let wild = seq(60_000, 255, true);
        assert_eq!(
            wild.uncertainty(),
            crate::core::punch::profile::MAX_UNCERTAINTY
        );
        let (aim_a, aim_b) = pairing(&wild, &wild, true);
        let odds = coverage(&wild, aim_a, &wild, aim_b);
        assert!(odds < 0.05, "{odds}");
    }

    #[test]
    fn fan_out_is_capped() {
        let (a, b) = (seq(200, 255, true), seq(200, 255, true));
        let (aim_a, aim_b) = pairing(&a, &b, true);
        assert_eq!(aim_a.flows(), MAX_FANOUT);
        assert_eq!(aim_b.flows(), MAX_FANOUT);
        assert!(coverage(&a, aim_a, &b, aim_b) < 0.5);
    }
}
