#!/bin/sh
# Runs each cmocka test binary given, then prints one closing line:
# "N passed, N failed, N skipped". A binary that crashes or prints no cmocka summary counts as one
# failure. (GPU tests skip where no GPU is usable, and say why.)
passed=0; failed=0; skipped=0; broken=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -n 1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n 1)
    k=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' | tail -n 1)
    [ -z "$k" ] && k=$(printf '%s\n' "$out" | sed -n 's/^ \([0-9]*\) SKIPPED TEST(S)$/\1/p' | tail -n 1)
    p=${p:-0}; f=${f:-0}; k=${k:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; broken="$broken $t(rc=$rc)"; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
done
[ -n "$broken" ] && echo "crashed or exited non-zero without a cmocka failure:$broken"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
