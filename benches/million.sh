#!/usr/bin/env bash
# A million UDP sessions on one `natlens server` (loopback), driven by benches/million.rs:
#
#   benches/million.sh                                   # full run: 1,000,000 sessions, ~3 min
#   SESSIONS=100000 SECONDS_STEADY=5 EXPIRY_WATCH=0 benches/million.sh      # smoke test
#
# The server runs pinned to SERVER_CPU with the generator on GEN_CPU. The generator logs every
# session in (each from its own 127.1.x.y:port source), keeps them alive once per 15 s while
# Binding requests arrive at BINDING_RATE/s for SECONDS_STEADY s, then (EXPIRY_WATCH > 0) stops
# the keepalives and keeps the Binding load on while every session expires. It prints one JSON
# line per phase; this script appends them, with the machine it ran on, to OUT.
#
# Environment (defaults):
#   SESSIONS=1000000 SOCKETS=256 BINDING_RATE=100000 SECONDS_STEADY=30 EXPIRY=45s
#   EXPIRY_WATCH=65 SERVER_CPU=0 GEN_CPU=1 PORT=34600 SERVER_ARGS=  (extra server arguments)
#   LABEL=  (a name for the run in OUT)   OUT=benches/results/million.raw.jsonl
#   NATLENS_BIN=, MILLION_BIN= to skip the build
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-1000000}
SOCKETS=${SOCKETS:-256}
BINDING_RATE=${BINDING_RATE:-100000}
SECONDS_STEADY=${SECONDS_STEADY:-30}
EXPIRY=${EXPIRY:-45s}
EXPIRY_WATCH=${EXPIRY_WATCH:-65}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-34600}
SERVER_ARGS=${SERVER_ARGS:-}
LABEL=${LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
OUT=${OUT:-benches/results/million.raw.jsonl}

bench_require taskset jq cargo
NATLENS_BIN=${NATLENS_BIN:-$(natlens_binary)}
MILLION_BIN=${MILLION_BIN:-$(bench_binary million)}

SERVER_LOG=$(mktemp "${TMPDIR:-/tmp}/natlens-million.XXXXXX")
# shellcheck disable=SC2086 # SERVER_ARGS is a list of arguments
taskset -c "$SERVER_CPU" "$NATLENS_BIN" server -q --listen "127.0.0.1:$PORT" --answer-rate 0 \
    --max-sessions $((SESSIONS + 1000)) --udp-expiry "$EXPIRY" $SERVER_ARGS 2>"$SERVER_LOG" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -f "$SERVER_LOG"' EXIT
sleep 0.5
kill -0 "$SERVER_PID" || die "the server did not start: $(cat "$SERVER_LOG")"

log "run $LABEL: $SESSIONS sessions, server on CPU $SERVER_CPU, generator on CPU $GEN_CPU"
load_before=$(cut -d' ' -f1 /proc/loadavg)
RAW_LINES=$(mktemp "${TMPDIR:-/tmp}/natlens-million-lines.XXXXXX")
taskset -c "$GEN_CPU" "$MILLION_BIN" --target "127.0.0.1:$PORT" --pid "$SERVER_PID" \
    --sessions "$SESSIONS" --sockets "$SOCKETS" --binding-rate "$BINDING_RATE" \
    --seconds "$SECONDS_STEADY" --expiry-watch "$EXPIRY_WATCH" | tee "$RAW_LINES"
machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $load_before"
jq -c --arg run "$LABEL" --arg machine "$machine" '. + {"label": $run, "machine": $machine}' \
    "$RAW_LINES" >>"$OUT"
rm -f "$RAW_LINES"
