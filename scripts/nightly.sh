#!/usr/bin/env bash
# Nightly benchmark: runs every strategy on this machine's GPU (on the CPU when there is none),
# compares the results with the committed baseline for this device, bench/baselines/<slug>.json,
# and regenerates REPORT.md and its plots.
#
# Exit status: 0 no regression (or no baseline yet: it says how to make one); 1 a strategy's
# effective tokens/s fell, or its peak memory grew, beyond the tolerance; 2 the results are
# unusable or the baseline ran another configuration; anything else: the build or run failed.
#
# Environment (all optional):
#   NIGHTLY_OUT        folder for results.json, compare.md and the log (default out/nightly)
#   NIGHTLY_TOLERANCE  what counts as noise, "5%" or "0.05" (default 5%)
#   NIGHTLY_ARGS       extra labench options, e.g. "--model 7b --layers 2"; a baseline is only
#                      comparable with results of the same options
#   NIGHTLY_REPORT     the report to write (default REPORT.md; its plots go to plots/ beside it)
#   LABENCH            the labench binary (default ./labench, built with make when absent)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${NIGHTLY_OUT:-out/nightly}
tolerance=${NIGHTLY_TOLERANCE:-5%}
report=${NIGHTLY_REPORT:-REPORT.md}
labench=${LABENCH:-./labench}
if [ -z "${LABENCH:-}" ]; then
    make labench
fi
mkdir -p "$out"
results=$out/results.json

echo "nightly: benchmark -> $results"
# NIGHTLY_ARGS is a list of options: split on purpose.
# shellcheck disable=SC2086
"$labench" --backend auto --out "$results" ${NIGHTLY_ARGS:-} 2>&1 | tee "$out/labench.log"

slug=$("$labench" report --device-slug "$results")
baseline=bench/baselines/$slug.json
status=0
if [ -f "$baseline" ]; then
    echo "nightly: comparing with $baseline (tolerance $tolerance)"
    set +e
    "$labench" compare "$baseline" "$results" --tolerance "$tolerance" > "$out/compare.md"
    status=$?
    set -e
    cat "$out/compare.md"
else
    {
        echo "No baseline for this device yet: $baseline."
        echo "To make these results the baseline (after checking them):"
        echo "  cp $results $baseline && git add $baseline && git commit -m 'baselines: $slug'"
    } | tee "$out/compare.md"
fi

# The report is regenerated whatever the comparison said: it is how a regression gets read.
"$labench" report "$results" -o "$report"

case $status in
0) echo "nightly: ok" ;;
1) echo "nightly: REGRESSION beyond $tolerance against $baseline (table in $out/compare.md)" >&2 ;;
*) echo "nightly: $baseline is not comparable with these results (see above); if the change is intended," \
        "refresh the baseline: cp $results $baseline" >&2 ;;
esac
exit "$status"
