#!/usr/bin/env bash
# Side-by-side benchmark of `natlens server` and coturn (`turnserver --stun-only`) on loopback,
# driven by the same load generator (benches/loadgen.rs).
#
#   benches/server.sh                      # full run: 5 rounds, about 15-20 minutes
#   ROUNDS=1 UDP_SECONDS=3 SAT_SECONDS=3 TCP_COUNT=2000 HOLD=3 benches/server.sh    # smoke test
#
# Each round runs, for each server in turn (the order alternates between rounds), a fresh server
# instance per test, pinned to SERVER_CPU, with the generator pinned to GEN_CPU:
#   udp-rate      RATE Binding requests/s for UDP_SECONDS: lost, server CPU per request, RTT
#   udp-saturate  closed loop for SAT_SECONDS: maximum answered rate
#   tcp-hold      TCP_COUNT connections (natlens: LOGIN; coturn: one Binding each, with
#                 --max-allocate-timeout raised so it keeps them), held HOLD s: held, RSS/conn
# Results (medians, natlens/coturn ratios, raw JSON lines, machine info) go to
# benches/results/server.md and are printed.
#
# Environment (defaults):
#   ROUNDS=5 SERVERS="natlens coturn" RATE=100000 UDP_SECONDS=10 SAT_SECONDS=10
#   TCP_COUNT=19000 HOLD=10 SERVER_CPU=0 GEN_CPU=1 PORT_BASE=34100
#   MODES="udp-rate udp-saturate tcp-hold"                       tests to run, in this order
#   RATE_ARGS="--sockets 4 --spin"                              extra udp-rate arguments
#   SAT_ARGS="--sockets 4 --window 48 --min-batch 16 --spin --gso"  extra udp-saturate arguments
#   QUIET_MAX_BUSY=0.15 QUIET_TIMEOUT=60   before each test, wait up to QUIET_TIMEOUT s for the
#                                          CPUs to be less than QUIET_MAX_BUSY busy
#   NOISE_MAX=0.15 RETRIES=2               a UDP test during which other work used more than
#                                          NOISE_MAX CPUs is repeated (up to RETRIES times)
#   AUTOGROUP_NICE=-10                     nice value of this run's scheduler autogroup (Linux
#                                          autogroups make plain `nice` useless against other
#                                          sessions); empty to leave it alone
#   OUT=benches/results/server.md   NATLENS_BIN=, LOADGEN_BIN= to skip the build
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SERVERS=${SERVERS:-natlens coturn}
RATE=${RATE:-100000}
UDP_SECONDS=${UDP_SECONDS:-10}
SAT_SECONDS=${SAT_SECONDS:-10}
TCP_COUNT=${TCP_COUNT:-19000}
HOLD=${HOLD:-10}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
PORT_BASE=${PORT_BASE:-34100}
RATE_ARGS=${RATE_ARGS:---sockets 4 --spin}
# 4 x 48 requests in flight stay below what a default 208 KiB SO_RCVBUF holds (about 270 small
# datagrams), so a server that keeps the default buffer is not measured on drops.
# --gso: the generator hands the kernel one buffer per batch (the server still receives one
# datagram per request), which leaves it spare capacity against a server doing 300k requests/s.
SAT_ARGS=${SAT_ARGS:---sockets 4 --window 48 --min-batch 16 --spin --gso}
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-0.15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-60}
NOISE_MAX=${NOISE_MAX:-0.15}
RETRIES=${RETRIES:-2}
AUTOGROUP_NICE=${AUTOGROUP_NICE--10}

bench_require taskset jq turnserver cargo
(($(nproc) > SERVER_CPU && $(nproc) > GEN_CPU)) || die "need CPUs $SERVER_CPU and $GEN_CPU"
bench_autogroup_nice

# Open-file budget: the generator holds TCP_COUNT sockets, the server as many plus its own
# files; both processes share the same limit, which cannot be raised here.
fd_limit=$(ulimit -n)
if [[ "$fd_limit" != unlimited ]] && ((TCP_COUNT > fd_limit - 1000)); then
    log "TCP_COUNT=$TCP_COUNT does not fit the open-file limit $fd_limit: using $((fd_limit - 1000))"
    TCP_COUNT=$((fd_limit - 1000))
fi

bench_build

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natlens-bench.XXXXXX")
RAW="$WORK/raw.jsonl"
ln -s "$(command -v turnserver)" "$WORK/coturn"
NOTES="$WORK/notes.md"
: >"$RAW"
: >"$NOTES"
SERVER_PID=""
SERVER_LOG=""

stop_server() {
    local pid=$SERVER_PID
    SERVER_PID=""
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_server
    if [[ -n "${KEEP_LOGS:-}" ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_seq=0
# start_server NAME: starts a fresh instance on a new port, sets SERVER_PID, SERVER_PORT.
start_server() {
    local name=$1
    SERVER_PORT=$((PORT_BASE + port_seq))
    port_seq=$((port_seq + 1))
    SERVER_LOG="$WORK/$name-$SERVER_PORT.log"
    case "$name" in
    natlens)
        # All load comes from 127.0.0.1: the per-source answer bucket and the per-IP session
        # cap (Internet defaults) are off, to measure capacity as on coturn's side. Their
        # cost is measured apart: benches/results/answer-limit.md.
        taskset -c "$SERVER_CPU" "$NATLENS_BIN" server --listen "127.0.0.1:$SERVER_PORT" \
            --answer-rate 0 --max-sessions-per-ip 1000000 --quiet >"$SERVER_LOG" 2>&1 &
        ;;
    coturn)
        # One relay thread (-m 1) since it is pinned to one CPU; no TLS/DTLS listeners, no CLI,
        # no config file (-n); TCP connections kept up to an hour (default: reset after 3 s).
        # Started through a symlink named "coturn": on a shared machine another job's
        # `pkill turnserver` would otherwise kill it mid-run.
        taskset -c "$SERVER_CPU" "$WORK/coturn" --stun-only --listening-ip 127.0.0.1 \
            --listening-port "$SERVER_PORT" --no-cli --log-file stdout -n --no-tls --no-dtls \
            -m 1 --max-allocate-timeout=3600 --pidfile "$WORK/turnserver-$SERVER_PORT.pid" \
            >"$SERVER_LOG" 2>&1 &
        ;;
    *) die "unknown server $name" ;;
    esac
    SERVER_PID=$!
    local _
    for _ in $(seq 15); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        "$LOADGEN_BIN" wait-ready --target "127.0.0.1:$SERVER_PORT" --timeout 1 >/dev/null &&
            return 0
    done
    return 1
}

# record_error MODE NAME ROUND MESSAGE
record_error() {
    jq -cn --arg mode "$1" --arg lbl "$2" --argjson round "$3" --arg error "$4" \
        '{"mode": $mode, "label": $lbl, "round": $round, "error": $error}' >>"$RAW"
    log "FAILED $2 $1 round $3: $4"
    {
        echo "- **$2 $1, round $3 failed**: $4"
        if [[ -s "$SERVER_LOG" ]]; then
            echo '  Last lines of the server log:'
            echo '  ```'
            tail -n 15 "$SERVER_LOG" | sed 's/^/  /'
            echo '  ```'
        fi
    } >>"$NOTES"
}

wait_quiet() {
    local q
    q=$("$LOADGEN_BIN" wait-quiet --max-busy "$QUIET_MAX_BUSY" --timeout "$QUIET_TIMEOUT" || true)
    if [[ $(jq -r .quiet <<<"$q") != true ]]; then
        log "machine still busy after ${QUIET_TIMEOUT}s ($(jq -r .busy <<<"$q") of the CPUs)"
    fi
}

# run_test MODE NAME ROUND: one fresh server instance, one measurement (UDP ones repeated while
# other work on the machine disturbed them).
run_test() {
    local mode=$1 name=$2 round=$3 args out rc attempt noise
    case "$mode" in
    udp-rate) read -ra args <<<"udp-rate --rate $RATE --duration $UDP_SECONDS $RATE_ARGS" ;;
    udp-saturate) read -ra args <<<"udp-saturate --duration $SAT_SECONDS --warmup 1 $SAT_ARGS" ;;
    tcp-hold)
        args=(tcp-hold --count "$TCP_COUNT" --hold "$HOLD")
        [[ "$name" == natlens ]] || args+=(--stun-binding)
        ;;
    esac
    wait_quiet
    if ! start_server "$name"; then
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            record_error "$mode" "$name" "$round" \
                "server did not answer a UDP Binding and accept TCP on 127.0.0.1:$SERVER_PORT within 15 s"
        else
            wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
            record_error "$mode" "$name" "$round" "server exited at start (status $rc)"
            SERVER_PID=""
        fi
        stop_server
        return 0
    fi
    for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        ((attempt == 0)) || wait_quiet
        rc=0
        out=$(taskset -c "$GEN_CPU" "$LOADGEN_BIN" "${args[@]}" --target "127.0.0.1:$SERVER_PORT" \
            --server-pid "$SERVER_PID" --label "$name" --round "$round" 2>"$WORK/loadgen.err") ||
            rc=$?
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
            record_error "$mode" "$name" "$round" "server exited during the test (status $rc)"
            SERVER_PID=""
            return 0
        fi
        if ((rc != 0)) || [[ -z "$out" ]]; then
            record_error "$mode" "$name" "$round" \
                "loadgen failed (status $rc): $(tail -n 3 "$WORK/loadgen.err" | tr '\n' ' ')"
            stop_server
            return 0
        fi
        noise=$(jq -r '.other_cpu_util // 0' <<<"$out")
        if [[ "$mode" != tcp-hold ]] && ((attempt < RETRIES)) &&
            jq -e --argjson max "$NOISE_MAX" '(.other_cpu_util // 0) > $max' <<<"$out" >/dev/null; then
            log "$name $mode round $round: other work used $noise CPUs, repeating"
            jq -c '. + {superseded: true}' <<<"$out" >>"$RAW"
            continue
        fi
        echo "$out" >>"$RAW"
        log "$name $mode round $round: $(jq -c '{sent, lost, answered_rate, server_cpu_us_per_req,
            logged_in, held_at_end, alive_at_end, rss_per_conn_bytes, errors_total, other_cpu_util}
            | with_entries(select(.value != null))' <<<"$out")"
        break
    done
    stop_server
}

log "natlens: $NATLENS_BIN"
log "loadgen: $LOADGEN_BIN"
log "rounds=$ROUNDS servers=[$SERVERS] rate=$RATE udp=${UDP_SECONDS}s sat=${SAT_SECONDS}s tcp=$TCP_COUNT hold=${HOLD}s"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
read -ra server_list <<<"$SERVERS"
for ((round = 1; round <= ROUNDS; round++)); do
    order=("${server_list[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#server_list[@]} - 1; i >= 0; i--)); do order+=("${server_list[i]}"); done
    fi
    for mode in ${MODES:-udp-rate udp-saturate tcp-hold}; do
        for name in "${order[@]}"; do
            run_test "$mode" "$name" "$round"
        done
    done
done
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- report ------------------------------------------------------------------------------------
mkdir -p benches/results
OUT=${OUT:-benches/results/server.md}
summary=$("$LOADGEN_BIN" summarize --input "$RAW" --a natlens --b coturn)
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
{
    echo "# natlens server vs coturn, $(date -u +%Y-%m-%d)"
    echo
    echo "Run with \`benches/server.sh\` from $started to $finished (UTC), natlens at \`$git_rev\`$git_dirty."
    echo
    echo "## Machine"
    echo
    echo "- CPUs (nproc): $(nproc); CPU model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- Kernel: $(uname -srm)"
    echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); open-file limit: $fd_limit"
    echo "- coturn: $(turnserver --version 2>/dev/null | head -n1); $(rustc --version 2>/dev/null || true)"
    echo "- Server pinned to CPU $SERVER_CPU, generator to CPU $GEN_CPU (taskset); autogroup nice: ${AUTOGROUP_NICE:-unchanged}"
    echo
    echo "## Method"
    echo
    echo "$ROUNDS rounds; in each, every test runs once per server on a fresh server instance, the"
    echo "server order alternating between rounds. Medians over rounds, with the range in brackets."
    echo "- **udp-rate**: $RATE Binding requests/s offered for ${UDP_SECONDS}s (\`$RATE_ARGS\`,"
    echo "  connected UDP sockets, sendmmsg/recvmmsg), 1 s grace; lost = never answered. Server CPU"
    echo "  per request = (utime+stime, or schedstat run time) / answered requests."
    echo "- **udp-saturate**: closed loop (\`$SAT_ARGS\`; with --gso each batch is one UDP GSO"
    echo "  buffer that the kernel splits into 20-byte datagrams before the server's socket), 1 s"
    echo "  warm-up then ${SAT_SECONDS}s measured."
    echo "  The generator spins (never sleeps); \`gen_idle_frac\` is the share of its time that found"
    echo "  nothing to do: well above 0 with the server's CPU near 1.0 means the server is the limit,"
    echo "  near 0 with the server below 1.0 means the generator is."
    echo "- **tcp-hold**: $TCP_COUNT connections from 8 source IPs (127.0.0.2-9), 256 being set up at"
    echo "  a time; natlens: LOGIN with a unique NL-ID; coturn: one Binding (it has no LOGIN). Held"
    echo "  ${HOLD}s, then one more request (natlens KEEPALIVE, coturn Binding) on each. RSS per"
    echo "  connection = (VmRSS at the end of the hold - VmRSS before connecting) / connections held."
    echo "  $TCP_COUNT because generator and server each need one descriptor per connection under"
    echo "  the per-process limit of $fd_limit, less a margin for their other files."
    echo "- Other work on the machine shares its CPUs (\`other_cpu_util\`: busy CPU time not used by"
    echo "  the server or the generator). A UDP test during which it exceeded $NOISE_MAX CPUs was"
    echo "  repeated up to $RETRIES times; superseded runs are in the raw lines, marked. Answers per"
    echo "  server CPU-second do not depend on how much of its CPU the server was given, so they are"
    echo "  the steadiest comparison of UDP capacity; the answered rate also measures that share."
    echo "- coturn is started through a symlink named \`coturn\` (so that another job's"
    echo "  \`pkill turnserver\` on a shared machine cannot stop it mid-run)."
    echo
    echo "## Results"
    echo
    echo "$summary"
    echo
    if [[ -s "$NOTES" ]]; then
        echo "## Failures"
        echo
        cat "$NOTES"
        echo
    fi
    echo "## Raw JSON lines"
    echo
    echo '```json'
    cat "$RAW"
    echo '```'
} >"$OUT"
cat "$OUT"
log "written to $OUT"
