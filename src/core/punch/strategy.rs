//! The strategy rules: what each side does, given what both sides' NATs do with a punch's
//! flows, and the odds of it working. The table is in [`plan`](super::plan)'s module doc.

use crate::core::punch::birthday::{self, BIRTHDAY_SOCKETS, TARGET_SUCCESS, TCP_TARGET_SUCCESS};
use crate::core::punch::fanout::{self, Aim, MAX_FANOUT};
use crate::core::punch::plan::{PunchOptions, Strategy, SPRAY_TAIL};
use crate::core::punch::profile::{PortModel, SideModel, PORT_RANGE};
use crate::core::punch::Role;

/// What one side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// A fixed far port or a fan-out over far indices ([`fanout::pairing`]) in the first
    /// round, growing by that many flows a round up to `grow_to`.
    Aim { aim: Aim, grow_to: u32 },
    /// Open this fixed side's filter toward the far address: send to the far side's likeliest
    /// port (it will usually be dropped there; it is the far side's packets that matter).
    Nudge,
    /// Send nothing; answer what arrives. A side its gateway mapped a port for is open to
    /// anyone already, and a packet it sent to the far side's address could only hurt: the flow
    /// the far side then opens to the mapping would have the same inside 4-tuple, and Linux
    /// conntrack drops a new flow whose reply direction clashes with an existing one.
    Listen,
    /// `sockets` fresh sockets, socket `m` re-sending to far index `m mod indices`.
    Hold { sockets: u32, indices: u32 },
    /// `requests` distinct random far ports, once each.
    Spray { requests: u32 },
}

pub(super) struct Decision {
    pub strategy: Strategy,
    pub reason: String,
    pub caller: Part,
    pub callee: Part,
}

/// An aim that grows, round after round, up to [`MAX_FANOUT`] flows: offsets beyond the
/// predicted uncertainty (a slow relay, a burst of other flows) are still reached, a little
/// later, and the stride argument holds for any length. Ports are only spent while no echo
/// has come back.
fn growing(aim: Aim) -> Part {
    let grow_to = match aim {
        Aim::Port => 1,
        Aim::Indices { flows, .. } => flows.max(MAX_FANOUT),
    };
    Part::Aim { aim, grow_to }
}

pub(super) fn decide(a: &SideModel, b: &SideModel, options: &PunchOptions) -> Decision {
    use PortModel::{Fixed, Random, Sequential};
    let decision = |strategy, reason: &str, caller, callee| Decision {
        strategy,
        reason: reason.into(),
        caller,
        callee,
    };
    match (a.ports, b.ports) {
        _ if a.mapped && b.mapped => decision(
            Strategy::Direct,
            "both gateways mapped a port for the punch: the caller aims at the callee's \
             mapping, the callee answers",
            growing(Aim::Port),
            Part::Listen,
        ),
        _ if a.mapped => decision(
            Strategy::Direct,
            "the caller's gateway mapped a port for the punch: the callee aims at it",
            Part::Listen,
            growing(Aim::Port),
        ),
        _ if b.mapped => decision(
            Strategy::Direct,
            "the callee's gateway mapped a port for the punch: the caller aims at it",
            growing(Aim::Port),
            Part::Listen,
        ),
        (Fixed { .. }, Fixed { .. }) => decision(
            Strategy::Direct,
            "both NATs keep one public port per socket: each end aims at the other's",
            growing(Aim::Port),
            growing(Aim::Port),
        ),
        _ if a.is_open() => decision(
            Strategy::Direct,
            "the caller's NAT admits any port of an address it has sent to: the callee aims at it",
            Part::Nudge,
            growing(Aim::Port),
        ),
        _ if b.is_open() => decision(
            Strategy::Direct,
            "the callee's NAT admits any port of an address it has sent to: the caller aims at it",
            growing(Aim::Port),
            Part::Nudge,
        ),
        (Random, Fixed { .. }) => birthday(Role::Caller, options, TARGET_SUCCESS),
        (Fixed { .. }, Random) => birthday(Role::Callee, options, TARGET_SUCCESS),
        (Random, Random) => blind(a, b, options),
        (Random, Sequential { .. }) | (Sequential { .. }, Random) => blind(a, b, options),
        _ => {
            let (aim_a, aim_b) = fanout::pairing(a, b, false);
            decision(
                Strategy::Fanout,
                "predictable ports: fan out over the sequential side's predicted ports, \
                 strides 1 and 2 where both sides' flows move",
                growing(aim_a),
                growing(aim_b),
            )
        }
    }
}

/// The random side (`holder`) holds sockets; the fixed side sprays enough for `target`
/// success, within the budget.
fn birthday(holder: Role, options: &PunchOptions, target: f64) -> Decision {
    let sockets = BIRTHDAY_SOCKETS.min(options.max_sockets).max(1);
    let requests = birthday::requests_for(target, sockets, PORT_RANGE).min(spray_budget(options));
    let (hold, spray) = (
        Part::Hold {
            sockets,
            indices: 1,
        },
        Part::Spray { requests },
    );
    let (caller, callee) = match holder {
        Role::Caller => (hold, spray),
        Role::Callee => (spray, hold),
    };
    Decision {
        strategy: Strategy::Birthday,
        reason: format!(
            "the {}'s NAT picks random ports: it holds {sockets} sockets aimed at the {}'s one \
             port while the {} sprays {requests} random ports",
            holder.as_str(),
            holder.peer().as_str(),
            holder.peer().as_str(),
        ),
        caller,
        callee,
    }
}

/// Requests a spray may send: the packet budget, and the time before [`SPRAY_TAIL`].
fn spray_budget(options: &PunchOptions) -> u32 {
    let seconds = options.timeout.saturating_sub(SPRAY_TAIL).as_secs_f64();
    let by_time = (seconds * f64::from(options.rate)).floor() as u32;
    by_time.min(options.max_packets).max(1)
}

/// Random against random, or against a symmetric sequential NAT: refused unless forced; forced,
/// both sides send blind within the budget.
fn blind(a: &SideModel, b: &SideModel, options: &PunchOptions) -> Decision {
    let requests = spray_budget(options);
    let sockets = BIRTHDAY_SOCKETS.min(options.max_sockets).max(1);
    let (caller, callee, why) = match (a.ports, b.ports) {
        (PortModel::Random, PortModel::Random) => (
            Part::Spray { requests },
            Part::Spray { requests },
            "both NATs pick ports at random: a packet meets one only if both guesses are right",
        ),
        (PortModel::Random, _) => (
            Part::Hold {
                sockets,
                indices: b.uncertainty() + 1,
            },
            Part::Spray { requests },
            "the caller's NAT picks random ports and the callee's gives every destination a new \
             one: a birthday spray has no single port to find",
        ),
        _ => (
            Part::Spray { requests },
            Part::Hold {
                sockets,
                indices: a.uncertainty() + 1,
            },
            "the callee's NAT picks random ports and the caller's gives every destination a new \
             one: a birthday spray has no single port to find",
        ),
    };
    let strategy = if options.force {
        Strategy::Birthday
    } else {
        Strategy::Refused
    };
    let advice = if options.force {
        "forced"
    } else {
        "use --force to try anyway, or a relay"
    };
    Decision {
        strategy,
        reason: format!("{why}; {advice}"),
        caller,
        callee,
    }
}

/// `--fanout K` replaces this end's number of far ports: fan-out flows (at most
/// [`MAX_FANOUT`]) or spray requests (within the spray budget).
pub(super) fn apply_fanout_override(decision: &mut Decision, role: Role, options: &PunchOptions) {
    let Some(k) = options.fanout else { return };
    let part = match role {
        Role::Caller => &mut decision.caller,
        Role::Callee => &mut decision.callee,
    };
    *part = match *part {
        Part::Aim {
            aim: Aim::Indices { stride, .. },
            ..
        } => Part::Aim {
            aim: Aim::Indices {
                flows: k.min(MAX_FANOUT),
                stride,
            },
            grow_to: k.min(MAX_FANOUT),
        },
        Part::Spray { .. } => Part::Spray {
            requests: k.min(spray_budget(options)),
        },
        other => other,
    };
}

pub(super) fn expected_success(decision: &Decision, a: &SideModel, b: &SideModel) -> f64 {
    match (decision.caller, decision.callee) {
        (
            Part::Aim {
                aim: aim_a,
                grow_to: to_a,
            },
            Part::Aim {
                aim: aim_b,
                grow_to: to_b,
            },
        ) => fanout::coverage(a, grown(aim_a, to_a), b, grown(aim_b, to_b)),
        (Part::Nudge | Part::Listen, _) | (_, Part::Nudge | Part::Listen) => 1.0,
        (Part::Spray { requests: pa }, Part::Spray { requests: pb }) => {
            birthday::blind_pair_success(pa, pb, PORT_RANGE)
        }
        (Part::Hold { sockets, indices }, Part::Spray { requests })
        | (Part::Spray { requests }, Part::Hold { sockets, indices }) => {
            if indices == 1 {
                birthday::success(sockets, requests, PORT_RANGE)
            } else {
                // Every holder socket aimed at the right index has one chance in N.
                birthday::success(1, sockets, PORT_RANGE)
            }
        }
        _ => 0.0,
    }
}

/// An aim at its full length.
fn grown(aim: Aim, grow_to: u32) -> Aim {
    match aim {
        Aim::Indices { stride, .. } => Aim::Indices {
            flows: grow_to,
            stride,
        },
        Aim::Port => Aim::Port,
    }
}

/// Over TCP, a birthday's spray is sized for [`TCP_TARGET_SUCCESS`] instead of
/// [`TARGET_SUCCESS`] (within the same budget): the holder opens its kernel sockets one relay
/// after the sprayer starts and at the rate cap, so the first few hundred spray SYNs meet fewer
/// than all of its ports; and the spray stops at the first adoption, so the extra SYNs are only
/// sent when a miss was likely. `--fanout` keeps the length it chose; other decisions stand.
pub(super) fn for_tcp(decision: &mut Decision, options: &PunchOptions) {
    if decision.strategy != Strategy::Birthday || options.fanout.is_some() {
        return;
    }
    let holder = match (decision.caller, decision.callee) {
        (Part::Hold { indices: 1, .. }, Part::Spray { .. }) => Role::Caller,
        (Part::Spray { .. }, Part::Hold { indices: 1, .. }) => Role::Callee,
        _ => return,
    };
    *decision = birthday(holder, options, TCP_TARGET_SUCCESS);
    decision.reason.push_str(
        " (over TCP: kernel sockets connect from the random side, the fixed side sends \
         crafted SYNs from its one port, and the connection is adopted where they meet)",
    );
}
