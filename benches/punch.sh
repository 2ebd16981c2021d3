#!/usr/bin/env bash
# Hole-punching success rate and time to the first packet through, per NAT pair, in the netns
# lab with 25 ms of delay on each NAT's WAN link: natlens listen on host a, natlens
# call on host b, every pair of {cone, full-cone, seq:1, seq:2, random}, fresh NAT state before
# each attempt (benches/punch.rs). Needs root; writes benches/results/punch-udp.{md,csv}
# (punch-tcp with --transport tcp).
#
#   benches/punch.sh [--transport udp|tcp] [--attempts N] [--random-attempts N]
#                    [--refused-attempts N] [--pairs a:b,...]
#
# The labs are torn down on every exit path by the natlens lab library (drop, panic, SIGINT,
# SIGTERM, SIGHUP). After a SIGKILL, `natlens lab down --all` removes what is left.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "punch: needs root (network namespaces, nft, conntrack)" >&2
    exit 1
fi
exec cargo bench --bench punch -- "$@"
