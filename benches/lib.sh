# Shared by the load benches (benches/server.sh, benches/garbage.sh); sourced, not run:
#
#   source "$(dirname "$0")/lib.sh"
#   bench_own_session "$@"
#
# Needs bash with `set -euo pipefail` already on, as both scripts have.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# bench_own_session "$@": runs the calling script again in a session (so a scheduler autogroup)
# of its own, whose priority it may raise without touching the caller's, and exits with its
# status; INT and TERM are forwarded so Ctrl-C still stops everything. Returns at once in that
# inner run, or where there are no autogroups, no setsid, or AUTOGROUP_NICE is set empty.
bench_own_session() {
    if [[ -z "${_NL_BENCH_INNER:-}" && -n "${AUTOGROUP_NICE=-10}" && -e /proc/self/autogroup ]] &&
        command -v setsid >/dev/null; then
        _NL_BENCH_INNER=1 setsid bash "$0" "$@" </dev/null &
        inner=$!
        trap 'kill -TERM "$inner" 2>/dev/null || true' INT TERM
        local rc=0
        while true; do
            wait "$inner" && rc=0 || rc=$?
            kill -0 "$inner" 2>/dev/null || break
        done
        exit "$rc"
    fi
}

# bench_autogroup_nice: gives this run's autogroup the nice value AUTOGROUP_NICE (Linux
# autogroups make plain `nice` useless against other sessions); nothing when it is empty.
# The default applies here too: the inner run (started by bench_own_session) does not inherit
# the outer run's unexported default.
bench_autogroup_nice() {
    local nice=${AUTOGROUP_NICE--10}
    if [[ -n "$nice" && -w /proc/self/autogroup ]]; then
        echo "$nice" >/proc/self/autogroup 2>/dev/null ||
            log "could not set autogroup nice to $nice"
    fi
}

# bench_require TOOL...: dies naming the first TOOL not on PATH.
bench_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
}

# natlens_binary: builds natlens (release) and prints the executable's path.
natlens_binary() {
    log "building natlens (release)"
    cargo build --release --bin natlens --message-format=json-render-diagnostics |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "natlens"
                      and (.target.kind | index("bin")) and .executable != null) | .executable' |
        tail -n1
}

# bench_binary NAME: builds the bench target NAME (bench profile, not run) and prints the
# executable's path.
bench_binary() {
    log "building $1 (bench profile)"
    cargo bench --bench "$1" --no-run --message-format=json-render-diagnostics |
        jq -r --arg name "$1" 'select(.reason == "compiler-artifact" and .target.name == $name
                      and .executable != null) | .executable' | tail -n1
}

# bench_build: sets NATLENS_BIN (release build) and LOADGEN_BIN (bench profile) to the built
# executables, building them unless they are set already; dies when one is missing.
bench_build() {
    NATLENS_BIN=${NATLENS_BIN:-$(natlens_binary)}
    LOADGEN_BIN=${LOADGEN_BIN:-$(bench_binary loadgen)}
    [[ -x "$NATLENS_BIN" ]] || die "natlens binary not found"
    [[ -x "$LOADGEN_BIN" ]] || die "loadgen binary not found"
}
