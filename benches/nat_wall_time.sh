#!/usr/bin/env bash
# Wall time of a full NAT report in the netns lab: natlens nat (UDP+TCP) against
# turnutils_natdiscovery -m -f and stun, several rounds, in one run (benches/nat_wall_time.rs),
# and in a dual-stack lab natlens nat --family any against --family 4 alone
# (benches/nat_wall_time/family.rs). Needs root; writes benches/results/nat-wall-time.{md,csv}
# and nat-wall-time-family.{md,csv}, and prints the dual-stack table to paste.
# --families-only runs the dual-stack lab alone (and writes only nat-wall-time-family.*).
#
#   benches/nat_wall_time.sh [--rounds N] [--families-only]
#
# The labs are torn down on every exit path by the natlens lab library (drop, panic, SIGINT,
# SIGTERM, SIGHUP). After a SIGKILL, `natlens lab down --all` removes what is left.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "nat_wall_time: needs root (network namespaces, nft, conntrack)" >&2
    exit 1
fi
exec cargo bench --bench nat_wall_time -- "$@"
