#!/usr/bin/env bash
# The shared registry (natlens server --registry) on loopback: call setup latency p50/p99 across
# three servers and one Redis against a single server, and registry operations per second at a
# million entries (benches/registry.rs). Starts its own redis-server on a free loopback port
# (Debian's redis-server); writes benches/results/registry.md.
#
#   benches/registry.sh [--calls N] [--entries N]
set -euo pipefail
cd "$(dirname "$0")/.."
out=benches/results/registry.md
{
    echo "# Shared registry (--registry) on loopback"
    echo
    echo "Recorded $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -r)), $(redis-server --version | cut -d' ' -f1-3)."
    # The machine may be shared: the load around the run says how much the figures can be trusted.
    echo "Load average (1, 5, 15 min) at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    cargo bench --bench registry -- "$@"
    echo
    echo "Load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out.tmp"
mv "$out.tmp" "$out"
