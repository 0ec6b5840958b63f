#!/bin/sh
# Runs each cmocka test binary given, then prints one closing line: "N passed, N failed".
# A binary that crashes or prints no cmocka summary counts as one failure.
passed=0; failed=0; broken=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -n 1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n 1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; broken="$broken $t(rc=$rc)"; fi
    passed=$((passed + p)); failed=$((failed + f))
done
[ -n "$broken" ] && echo "crashed or exited non-zero without a cmocka failure:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
