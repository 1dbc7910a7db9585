#!/usr/bin/env bash
# cli_expect.sh EXPECT_RC PATTERN -- CMD...: runs CMD, checks its exit status (0, or "nonzero") and that its
# combined output matches the extended regex PATTERN. Used by the CLI tests in tests/CMakeLists.txt.
set -u
want_rc=$1; pattern=$2; shift 3
out=$("$@" 2>&1); rc=$?
echo "$out" | tail -n 40
if [ "$want_rc" = nonzero ]; then
  if [ "$rc" -eq 0 ]; then echo "FAIL: expected a non-zero exit status"; exit 1; fi
  if [ "$rc" -ge 128 ]; then echo "FAIL: killed by signal $((rc - 128)) (crash)"; exit 1; fi
elif [ "$rc" -ne "$want_rc" ]; then echo "FAIL: exit status $rc, expected $want_rc"; exit 1; fi
if ! echo "$out" | grep -Eq -- "$pattern"; then echo "FAIL: output does not match /$pattern/"; exit 1; fi
echo "ok: exit $rc, output matches /$pattern/"
