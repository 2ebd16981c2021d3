#!/usr/bin/env bash
# Hole punching over IPv6 in the dual-stack netns lab (benches/punch6.rs): success rate and
# time to connect in path round trips, through stateful firewalls (every filtering mode against
# every other) and NAT66 (port-preserving, seq:1, seq:2, random: every pair), 25 ms of delay on
# each router's WAN link, UDP and TCP, listen and call with --family 6. Needs root; prints the
# summary table and writes benches/results/punch-ipv6.{md,csv}.
#
#   benches/punch6.sh [--attempts N] [--transports udp,tcp] [--pairs A/B,...|firewalls|nat66]
#                     [--record STEM]
#
# --pairs firewalls: the nine firewall pairs only; --record STEM writes
# benches/results/STEM.{md,csv} instead (a partial rerun beside the full record).
#
# The labs are torn down on every exit path by the natlens lab library (drop, panic, SIGINT,
# SIGTERM, SIGHUP). After a SIGKILL, `natlens lab down --all` removes what is left.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "punch6: needs root (network namespaces, nft, conntrack)" >&2
    exit 1
fi
exec cargo bench --bench punch6 -- "$@"
