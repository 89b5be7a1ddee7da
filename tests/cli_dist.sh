#!/usr/bin/env bash
# cli_dist.sh — charrnn train and MPI (docs/errors.md M01): --help says
# whether this build has MPI and how to enable it; under mpirun with two ranks
# train refuses (until training is split across ranks) with one message, a
# non-zero exit and no files written; one rank under mpirun trains as usual.
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN
TINY=(--cell lstm --layers 1 --hidden 8 --batch 4 --seq 8 --threads 1 --steps 2 --quiet)
python3 -c "print('\n'.join('the cat sat on the mat %d' % i for i in range(200)))" > "$D/t.txt"

check "train --help" "$C" train --help
if grep -q "This build has no MPI" "$T_TMP/out"; then
    expect_grep "meson configure build -Dmpi=enabled" "$T_TMP/out" "--help says how to enable MPI"
    expect_grep "libopenmpi-dev and openmpi-bin" "$T_TMP/out" "--help names the packages"
    echo "cli_dist: built without MPI: the mpirun checks are skipped"
elif ! command -v mpirun >/dev/null; then
    expect_grep "This build has Open MPI" "$T_TMP/out" "--help says MPI is built in"
    echo "cli_dist: mpirun not found: the mpirun checks are skipped"
else
    expect_grep "This build has Open MPI" "$T_TMP/out" "--help says MPI is built in"
    # no leak check under mpirun: Open MPI's dlclosed plugins leak by
    # LeakSanitizer's count (the same code is leak-checked by the other tests)
    MPI=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 120 mpirun --allow-run-as-root
         --oversubscribe)
    expect_exit 2 "M01 two ranks: refused" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/m2.ckpt" "${TINY[@]}"
    expect_grep "started with 2 MPI ranks: this version trains in one process only" "$T_TMP/err" \
        "M01 says why"
    n=$(grep -c "started with 2 MPI ranks" "$T_TMP/err")
    [ "$n" -eq 1 ] && pass "M01 one message, from rank 0" || fail "M01 $n messages"
    ls "$D"/m2.ckpt* >/dev/null 2>&1 && fail "M01 files written" || pass "M01 no files written"
    check "one rank under mpirun trains" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" -o "$D/m1.ckpt" "${TINY[@]}"
    check "its model loads" "$C" info "$D/m1.ckpt"
fi
summary
