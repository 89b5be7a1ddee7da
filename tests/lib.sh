# lib.sh — tiny harness for the CLI tests (sourced by tests/cli_*.sh).
# check NAME CMD...        passes if CMD exits 0
# expect_exit CODE NAME CMD...   passes if CMD exits with CODE
# expect_grep PATTERN FILE NAME  passes if FILE matches the ERE PATTERN
# Finish with `summary`: prints "NAME: N passed, N failed" and sets the exit code.
set -u
: "${CHARRNN:?CHARRNN must point to the charrnn binary}"
T_PASS=0
T_FAIL=0
T_NAME=$(basename "$0" .sh)
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-$T_NAME.XXXXXX")
trap 'rm -rf "$T_TMP"' EXIT
SHARED=${CRN_SHARED_CORPORA:-}

pass() { T_PASS=$((T_PASS + 1)); echo "ok   - $1"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $1"; [ $# -gt 1 ] && printf '       %s\n' "${@:2}"; return 0; }

check() {
    local name=$1; shift
    if "$@" >"$T_TMP/out" 2>"$T_TMP/err"; then pass "$name"
    else fail "$name" "exit $?: $*" "$(head -c 600 "$T_TMP/err")"; fi
}

expect_exit() {
    local code=$1 name=$2; shift 2
    "$@" >"$T_TMP/out" 2>"$T_TMP/err"
    local rc=$?
    if [ "$rc" -eq "$code" ]; then pass "$name"
    else fail "$name" "expected exit $code, got $rc: $*" "$(head -c 600 "$T_TMP/err")"; fi
}

expect_grep() {
    local pattern=$1 file=$2 name=$3
    if grep -Eq -- "$pattern" "$file"; then pass "$name"
    else fail "$name" "no match for /$pattern/ in $file:" "$(head -c 600 "$file")"; fi
}

have_shared() { [ -n "$SHARED" ] && [ -f "$SHARED/$1" ]; }

summary() {
    echo "$T_NAME: $T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
    exit $?
}
