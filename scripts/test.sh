#!/usr/bin/env bash
# Runs the whole suite (unit, then e2e against the compiled binary) and ends with
# "N passed, N failed". Exits non-zero when any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh || exit 1
log=$(mktemp)
# Everything the tests (and the processes they start) put under the temporary directory goes into
# one directory for this run, removed at the end: a hundred runs must not fill /tmp.
run_tmp=$(mktemp -d /tmp/ocireg-run.XXXXXX)
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR="$run_tmp"
status=0
if ! bunx tsc --noEmit -p .; then echo "typecheck failed"; status=1; fi
for suite in test/unit test/contract test/e2e; do
  bun test --timeout 120000 "$suite" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
passed=$(grep -cE '^\(pass\)' "$log")
failed=$(grep -E '^\(fail\)' "$log" | sort -u | wc -l)
rm -f "$log"
[ "$failed" -eq 0 ] || status=1
[ "$passed" -gt 0 ] || { echo "no tests ran"; status=1; }
echo "$passed passed, $failed failed"
exit $status
