#!/usr/bin/env bash
# Garbage under load: `natlens server` pinned to one CPU takes valid Binding requests mixed 50/50
# with malformed datagrams (benches/loadgen.rs udp-garbage: truncated STUN, empty, random bytes,
# bad lengths, attribute past the end, responses, RTP-looking, bad FINGERPRINT, oversized,
# LOGIN without the magic cookie), sent by the generator pinned to the other CPU as fast as it
# is told to.
#
#   benches/garbage.sh                          # 3 rounds x 10 s at 200,000 datagrams/s offered
#   ROUNDS=1 SECONDS_PER_ROUND=3 benches/garbage.sh   # smoke test
#
# One server instance serves every round, so its memory is followed across the whole run. Per
# round: valid requests sent / answered / lost (each has its own transaction ID, no
# retransmission), answers to garbage (must be 0), the server's VmRSS (first sample, after 1 s
# of warm-up, end, max), and the server's drop counters (SIGUSR1 stats line before and after the
# round) against the garbage the generator sent, reason by reason. The load average is recorded:
# other work on the machine slows the generator (the offered rate is what it managed).
#
# Environment (defaults): ROUNDS=3 SECONDS_PER_ROUND=10 RATE=200000 RATIO=0.5 SERVER_CPU=0
#   GEN_CPU=1 PORT=34300 OUT=benches/results/garbage.md NATLENS_BIN= LOADGEN_BIN=
#   QUIET_MAX_BUSY=0.15 QUIET_TIMEOUT=120  before each round, wait up to QUIET_TIMEOUT s for the
#                                          CPUs to be less than QUIET_MAX_BUSY busy (recorded)
#   AUTOGROUP_NICE=-10                     as in benches/server.sh: this run's scheduler
#                                          autogroup gets this nice value (empty: unchanged)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"

cd "$(dirname "$0")/.."
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-0.15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-120}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
RATE=${RATE:-200000}
RATIO=${RATIO:-0.5}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT=${PORT:-34300}
OUT=${OUT:-benches/results/garbage.md}

bench_autogroup_nice
bench_require taskset jq cargo
bench_build

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natlens-garbage.XXXXXX")
SERVER_LOG="$WORK/server.ndjson"
RAW="$WORK/raw.jsonl"
: >"$RAW"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# All load comes from 127.0.0.1: the per-source answer bucket is off (as in benches/server.sh).
taskset -c "$SERVER_CPU" "$NATLENS_BIN" server --listen "127.0.0.1:$PORT" --json \
    --answer-rate 0 2>"$SERVER_LOG" &
SERVER_PID=$!
"$LOADGEN_BIN" wait-ready --target "127.0.0.1:$PORT" --udp-only >/dev/null ||
    die "server did not start: $(tail -n 3 "$SERVER_LOG")"

# stats: asks the server for a stats line and prints its counters.
stats() {
    local before
    before=$(grep -c '"event":"stats"' "$SERVER_LOG" || true)
    kill -USR1 "$SERVER_PID"
    for _ in $(seq 50); do
        if (($(grep -c '"event":"stats"' "$SERVER_LOG" || true) > before)); then
            grep '"event":"stats"' "$SERVER_LOG" | tail -n1 | jq -c '.counters'
            return
        fi
        sleep 0.1
    done
    die "no stats line after SIGUSR1"
}

# Datagrams the kernel dropped at the server's socket (its receive buffer was full: the server
# did not get the CPU in time), from the drops column of /proc/net/udp.
socket_drops() {
    local hex
    hex=$(printf '%04X' "$PORT")
    awk -v p=":$hex" 'substr($2, length($2) - 4) == p { d += $NF } END { print d + 0 }' \
        /proc/net/udp
}

# One more round at the end with RATIO=0 (all valid, same datagram rate) when CONTROL=1: the
# loss a busy machine causes without any garbage.
CONTROL=${CONTROL:-1}
rounds_list=$(seq "$ROUNDS")
((CONTROL)) && rounds_list="$rounds_list control"

rss_start=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
rows=()
all_ok=1
for round in $rounds_list; do
    ratio=$RATIO
    [[ "$round" == control ]] && ratio=0
    qline=$("$LOADGEN_BIN" wait-quiet --max-busy "$QUIET_MAX_BUSY" --timeout "$QUIET_TIMEOUT" ||
        true)
    quiet=$(jq -r 'if .quiet then "quiet" else "busy \(.busy)" end' <<<"$qline")
    load="$(cut -d' ' -f1-3 /proc/loadavg), $quiet"
    before=$(stats)
    kdrops_before=$(socket_drops)
    label=natlens
    [[ "$round" == control ]] && label=control
    line=$(taskset -c "$GEN_CPU" "$LOADGEN_BIN" udp-garbage --target "127.0.0.1:$PORT" \
        --server-pid "$SERVER_PID" --rate "$RATE" --duration "$SECONDS_PER_ROUND" \
        --garbage-ratio "$ratio" --round "${round/control/0}" --label "$label") || true
    after=$(stats)
    kdrops=$(($(socket_drops) - kdrops_before))
    [[ -n "$line" ]] || die "loadgen printed nothing"
    echo "$line" >>"$RAW"
    # Drops the server counted during the round, by reason, against what was sent.
    drops=$(jq -nc --argjson a "$after" --argjson b "$before" '
        $a.drops | with_entries(.value -= ($b.drops[.key] // 0)) | with_entries(select(.value > 0))')
    match=$(jq -nc --argjson d "$drops" --argjson l "$line" \
        '$d == ($l.expected_drops | with_entries(select(.value > 0)))')
    total_drops=$(jq -nc --argjson d "$drops" '[$d[]] | add // 0')
    bindings=$(jq -nc --argjson a "$after" --argjson b "$before" '$a.bindings - $b.bindings')
    ok=$(jq -nc --argjson l "$line" --argjson m "$match" \
        '$l.valid_lost == 0 and $l.answers_to_garbage == 0 and $m')
    [[ "$ok" == true || "$round" == control ]] || all_ok=0
    rows+=("$(jq -nr --argjson l "$line" --arg load "$load" --argjson td "$total_drops" \
        --argjson m "$match" --argjson bi "$bindings" --arg r "$round" --argjson kd "$kdrops" '
        "| \($r) | \($l.offered_per_sec | floor) | \($l.valid_sent) | \($l.valid_answered)"
        + " | \($l.valid_lost) | \($kd) | \($bi) | \($l.garbage_sent) | \($td) | \(if $m then "yes" else "NO" end)"
        + " | \($l.answers_to_garbage) | \($l.rss_kb_first) | \($l.rss_kb_after_warmup)"
        + " | \($l.rss_kb_end) | \($l.rss_kb_max) | \($load) |"')")
    log "round $round: $(jq -c '{offered_per_sec, valid_sent, valid_lost, answers_to_garbage,
        rss_kb_after_warmup, rss_kb_end}' <<<"$line") drops match: $match"
done
rss_end=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")

{
    echo "# natlens server under 50% garbage, $(date -u '+%F %H:%M UTC')"
    echo
    echo "benches/garbage.sh: ROUNDS=$ROUNDS SECONDS_PER_ROUND=$SECONDS_PER_ROUND RATE=$RATE"
    echo "(datagrams/s offered, valid and garbage together) RATIO=$RATIO; server pinned to CPU"
    echo "$SERVER_CPU, generator (benches/loadgen.rs udp-garbage, 4 sockets) to CPU $GEN_CPU; one"
    echo "server instance for all rounds. Machine: $(nproc) CPUs, $(uname -r)."
    echo
    echo "Valid requests each carry their own transaction ID and are sent once; \"lost\" = sent"
    echo "minus answered after a 1 s grace. Drops = the server's own counters (SIGUSR1 stats line"
    echo "before/after the round); \"match\" = equal, reason by reason, to the garbage the generator"
    echo "sent. RSS in KiB (VmRSS of the server): first sample of the round, after 1 s of load,"
    echo "end, max. Load = /proc/loadavg at the start of the round (other sessions build here), and"
    echo "whether the CPUs were quiet (< $QUIET_MAX_BUSY busy) after waiting up to ${QUIET_TIMEOUT} s."
    echo "Kernel drops = datagrams the kernel dropped at the server's socket during the round (its"
    echo "receive buffer was full because the server did not get the CPU in time; /proc/net/udp)."
    echo "Round \"control\": the same datagram rate with no garbage (all valid), for comparison."
    echo
    echo "| round | offered/s | valid sent | answered | lost | kernel drops | server bindings | garbage sent | server drops | match | answers to garbage | RSS first | RSS warm | RSS end | RSS max | load 1/5/15, quiet |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Server VmRSS before the first round: $rss_start KiB; after the last: $rss_end KiB."
    echo
    echo "Garbage kinds per round (equal shares): $(head -n1 "$RAW" | jq -c '.garbage_by_kind')"
    echo
    echo "<details><summary>raw loadgen lines</summary>"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
    echo "</details>"
} >"$OUT"
log "results: $OUT"
cat "$OUT"
((all_ok)) || die "a round lost valid requests, answered garbage or miscounted drops"
