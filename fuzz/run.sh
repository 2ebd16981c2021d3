#!/usr/bin/env bash
# Runs every cargo-fuzz target one after another for FUZZ_SECONDS each (default 600: ten
# minutes per decoder), at nice 10, and writes the figures to
# benches/results/fuzz.md.
#
#   fuzz/run.sh                      # all targets
#   fuzz/run.sh server_core tcp_syn  # some targets (the others keep their last figures)
#   FUZZ_SECONDS=60 fuzz/run.sh      # a shorter run
#   fuzz/run.sh --report             # only rewrite the results from the last figures
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target starts
# from the committed seeds in corpus/<target> (read-only) plus what earlier runs found in
# work/<target> (not committed); crashes land in artifacts/<target>/. Per-target figures are
# kept in logs/<target>.stats, so rerunning one target after a fix leaves the others' figures;
# fuzz/crashes.md (what the runs found and how it was fixed) is appended to the results.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--report" ]; then
    REPORT_ONLY=1
    shift
fi
ALL="stun_message tcp_framing server_core client_session punch_data tcp_syn natpmp pcp path_probe"
TARGETS=${*:-$ALL}
SECONDS_EACH=${FUZZ_SECONDS:-600}
RESULTS=../benches/results/fuzz.md
LIBFUZZER_ARGS="-max_total_time=$SECONDS_EACH -print_final_stats=1 -timeout=10 -rss_limit_mb=2048"
mkdir -p logs work

[ -n "${REPORT_ONLY:-}" ] || nice -n 10 cargo +nightly fuzz build >logs/build.log 2>&1

[ -n "${REPORT_ONLY:-}" ] && TARGETS=""
for target in $TARGETS; do
    mkdir -p "work/$target" "corpus/$target" "artifacts/$target"
    crashes_before=$(find "artifacts/$target" -type f | wc -l)
    started=$(date -u +%FT%TZ)
    t0=$(date +%s)
    echo "== $target: $SECONDS_EACH s from $started"
    status=0
    # shellcheck disable=SC2086
    nice -n 10 cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
        $LIBFUZZER_ARGS >"logs/$target.log" 2>&1 || status=$?
    t1=$(date +%s)
    log="logs/$target.log"
    stat() { grep -a "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }
    # The last status line libFuzzer printed: "#N  DONE  cov: C ft: F corp: U/Sb ...".
    last=$(grep -aE '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
    seeds=$(find "corpus/$target" -type f | wc -l)
    crashes=$(( $(find "artifacts/$target" -type f | wc -l) - crashes_before ))
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$target" "$started" "$((t1 - t0))" \
        "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" \
        "${corp:-?}" "$seeds" "$(stat new_units_added)" "$(stat peak_rss_mb)" \
        "$crashes (exit $status)" >"logs/$target.stats"
    cat "logs/$target.stats"
done

{
    echo "# Fuzzing run, $(date -u +%F)"
    echo
    echo "Produced by \`fuzz/run.sh\` (cargo-fuzz $(cargo +nightly fuzz --version 2>/dev/null | awk '{print $2}'),"
    echo "$(rustc +nightly --version), libFuzzer, AddressSanitizer, debug assertions on), one target at a"
    echo "time under \`nice -n 10\` on a 2-core machine shared with other jobs, so exec/s are low"
    echo "and only comparable between runs on the same machine. Each target ran:"
    echo
    echo "    cargo +nightly fuzz run TARGET fuzz/work/TARGET fuzz/corpus/TARGET -- $LIBFUZZER_ARGS"
    echo
    echo "Executions and exec/s are libFuzzer's final \`stat::number_of_executed_units\` and"
    echo "\`stat::average_exec_per_sec\`; cov (edges) / ft (features) / corpus are from its last status line;"
    echo "seeds are the committed captures in \`fuzz/corpus/TARGET\`; new units are inputs the run added."
    echo
    echo "| target | started (UTC) | seconds | executions | exec/s | cov | ft | corpus (units/bytes) | seeds | new units | peak RSS MB | crashes |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
    for target in $ALL; do
        if [ -f "logs/$target.stats" ]; then
            awk -F'|' '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; print "" }' \
                "logs/$target.stats"
        fi
    done
    if [ -f crashes.md ]; then
        echo
        cat crashes.md
    fi
} >"$RESULTS"
echo "figures: $RESULTS"
