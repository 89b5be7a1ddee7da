#!/usr/bin/env bash
# cli_blas.sh — OpenBLAS kernel selection (src/blas.h, cli.c): on a CPU that
# Debian's OpenBLAS does not know it falls back to generic SSE3 kernels;
# charrnn then runs itself again with the kernel family the CPU supports. The
# user's OPENBLAS_CORETYPE and CHARRNN_BLAS_KEEP=1 win. The matrix-product
# tests run again under the family charrnn picks, so those kernels are the
# ones checked against the plain loops.
#   cli_blas.sh TEST_KERNELS_BINARY
. "$(dirname "$0")/lib.sh"
TEST_KERNELS=${1:?usage: cli_blas.sh TEST_KERNELS_BINARY}
GENERIC='Prescott|Core2|Penryn|Nehalem|Katmai|Coppermine|Northwood|Banias|Atom|Dunnington|Opteron|Barcelona'

check "--version names the OpenBLAS kernels" "$CHARRNN" --version
expect_grep '^OpenBLAS kernels: [A-Za-z0-9]+' "$T_TMP/out" "--version has an 'OpenBLAS kernels' line"
picked=$(sed -n 's/^OpenBLAS kernels: \([A-Za-z0-9]*\).*/\1/p' "$T_TMP/out")

# The kernels OpenBLAS picks by itself, with charrnn's choice switched off.
CHARRNN_BLAS_KEEP=1 "$CHARRNN" --version >"$T_TMP/keep" 2>&1
own=$(sed -n 's/^OpenBLAS kernels: \([A-Za-z0-9]*\).*/\1/p' "$T_TMP/keep")
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    # the environment chose: charrnn must not override it
    if [ "$picked" = "$own" ]; then pass "OPENBLAS_CORETYPE from the environment is kept ($picked)"
    else fail "OPENBLAS_CORETYPE from the environment is kept" "picked $picked, OpenBLAS alone $own"; fi
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    if echo "$picked" | grep -Eqx "$GENERIC"; then fail "an AVX2 CPU gets AVX2 kernels" "picked $picked"
    else pass "an AVX2 CPU gets AVX2 kernels ($picked; OpenBLAS alone: $own)"; fi
    if echo "$own" | grep -Eqx "$GENERIC"; then
        expect_grep "chosen by charrnn: OpenBLAS had fallen back to $own" "$T_TMP/out" "--version says charrnn chose the kernels"
    else
        [ "$picked" = "$own" ] && pass "a CPU OpenBLAS knows keeps OpenBLAS's choice ($own)" \
            || fail "a CPU OpenBLAS knows keeps OpenBLAS's choice" "picked $picked, OpenBLAS alone $own"
    fi
else
    pass "no AVX2 on this CPU: nothing to choose ($picked)"
fi

OPENBLAS_CORETYPE=Prescott "$CHARRNN" --version >"$T_TMP/user" 2>&1
expect_grep '^OpenBLAS kernels: Prescott$' "$T_TMP/user" "the user's OPENBLAS_CORETYPE wins"
expect_grep '^OpenBLAS kernels: ' "$T_TMP/keep" "CHARRNN_BLAS_KEEP=1 still reports the kernels"
if grep -q 'chosen by charrnn' "$T_TMP/keep"; then fail "CHARRNN_BLAS_KEEP=1 keeps OpenBLAS's own choice"
else pass "CHARRNN_BLAS_KEEP=1 keeps OpenBLAS's own choice"; fi

# A command still works after the re-exec (arguments, stdin and exit code pass through).
printf 'abcabcabc\n' >"$T_TMP/t.txt"
check "vocab runs after the re-exec" "$CHARRNN" vocab "$T_TMP/t.txt"
expect_grep 'distinct|tokens' "$T_TMP/out" "vocab prints its statistics"
expect_exit 2 "a usage error still exits 2 after the re-exec" "$CHARRNN" vocab --no-such-option

# The products charrnn runs, against the plain loops, under the chosen kernels.
if OPENBLAS_CORETYPE=$picked "$TEST_KERNELS" >"$T_TMP/kern" 2>&1; then pass "test_kernels passes under $picked kernels"
else fail "test_kernels passes under $picked kernels" "$(tail -5 "$T_TMP/kern")"; fi
summary
