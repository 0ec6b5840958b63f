#!/bin/sh
# Runs each libFuzzer harness (make fuzz builds them) for SECONDS, from its committed seeds in
# tests/fuzz/corpus/TARGET plus what earlier runs found (build-fuzz/corpus/TARGET), and prints one
# line per target: executions, coverage (edges, features), corpus size, crashes.
# Usage: tests/fuzz/run.sh SECONDS TARGET...   Exit status 1 when any target found a failure.
set -u
secs=$1; shift
status=0
mkdir -p build-fuzz/artifacts build-fuzz/logs
for t in "$@"; do
    bin=build-fuzz/fuzz/fuzz_$t
    work=build-fuzz/corpus/$t
    log=build-fuzz/logs/$t.log
    mkdir -p "$work"
    dict=""   # the dictionary whose "# targets:" line names this target
    for d in tests/fuzz/*.dict; do
        grep -Eq "^# targets:.* $t( |\$)" "$d" && dict="-dict=$d"
    done
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/artifacts/$t-" $dict "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    if [ "$rc" -eq 0 ]; then verdict="0 crashes"; else verdict="FAILED (exit $rc; log $log)"; status=1; fi
    echo "fuzz $t: ${runs:-?} executions in $secs s, cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?}: $verdict"
    if [ "$rc" -ne 0 ]; then
        grep -E "contract broken|ERROR: |runtime error|SUMMARY|Test unit written" "$log" | head -n 12
    fi
done
exit $status
