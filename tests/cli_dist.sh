#!/usr/bin/env bash
# cli_dist.sh — data-parallel `charrnn train` under mpirun (docs/distributed.md,
# docs/errors.md M01-M07): N ranks x global batch B follow one process with
# batch B (parameters within 1e-5 relative, with and without dropout, also
# when B does not split evenly; with
# layer norm step by step: from the same state, one Adam step's parameters
# and one step's gradient of every tensor within 1e-5); a run
# resumes with another number of ranks (1 <-> 2 <-> 3) and continues step,
# schedule and data positions; errors on one rank (missing or different
# corpus, bad options, a batch smaller than the ranks) give one message naming the rank
# and no hang; SIGTERM / SIGUSR1 to mpirun stop every rank at one step and
# rank 0 saves; a rank killed by SIGKILL ends the job non-zero with the model
# file intact. Skipped when charrnn is built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN
CMP=$(dirname "$0")/compare_params.py
python3 -c "
import random
random.seed(1)
w='the cat sat on a mat and then a dog ran far away to the hills where sun'.split()
print('\n'.join(' '.join(random.choice(w) for _ in range(12)) for i in range(600)))" > "$D/t.txt"
sed 's/cat/cot/' "$D/t.txt" > "$D/other.txt"

check "train --help" "$C" train --help
if grep -q "This build has no MPI" "$T_TMP/out"; then
    expect_grep "meson configure build -Dmpi=enabled" "$T_TMP/out" "--help says how to enable MPI"
    expect_grep "libopenmpi-dev and openmpi-bin" "$T_TMP/out" "--help names the packages"
    echo "cli_dist: built without MPI: the mpirun checks are skipped"
    summary
fi
expect_grep "This build has Open MPI: mpirun -np N charrnn train" "$T_TMP/out" "--help says how to train on ranks"
if ! command -v mpirun >/dev/null; then
    echo "cli_dist: mpirun not found: the mpirun checks are skipped"
    summary
fi
# no leak check under mpirun: Open MPI's dlclosed plugins leak by
# LeakSanitizer's count (the same code is leak-checked by the other tests)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
MPI=(timeout 120 "${MPIRUN[@]}")

# ---- N ranks follow one process (only the summation order differs) ----
# Over whole runs with plain cells. With layer norm (the default) the training trajectory itself
# amplifies any rounding-sized change ~10^3-fold in 20 Adam steps (one process whose learning rate
# differs by one ulp drifts as far as 2 ranks do: docs/distributed.md "What is deterministic"), so
# there it is tested step by step, from the same state, further below.
SAME=(--cell lstm --layers 2 --hidden 16 --batch 8 --seq 16 --threads 1 --steps 20 --eval-every 10 --quiet
      --seed 3 --no-layer-norm)
same_params() { # NAME A B: parameters within 1e-5 relative
    if python3 "$CMP" "$2" "$3" 1e-5 >"$D/cmp" 2>&1; then pass "$1 ($(cat "$D/cmp"))"
    else fail "$1" "$(cat "$D/cmp")"; fi
}
for drop in 0 0.3; do
    check "1 process, dropout $drop" "$C" train "$D/t.txt" -o "$D/p1.ckpt" "${SAME[@]}" --dropout $drop
    check "2 ranks, dropout $drop" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/p2.ckpt" "${SAME[@]}" \
        --dropout $drop --log "$D/p2.csv"
    same_params "2 ranks = 1 process after 20 steps, dropout $drop" "$D/p1.ckpt.resume" "$D/p2.ckpt.resume"
    "$C" info "$D/p1.ckpt.resume" | grep -E "training:" | sed 's/, [0-9.]*s of training//' > "$D/i1"
    "$C" info "$D/p2.ckpt.resume" | grep -E "training:" | sed 's/, [0-9.]*s of training//' > "$D/i2"
    cmp -s "$D/i1" "$D/i2" && pass "same step and data position ($(cat "$D/i1"))" || fail "positions differ" \
        "$(cat "$D/i1" "$D/i2")"
done
# With layer norm: one step from the same state (a 1-process checkpoint), on 1 process and on 2
# ranks. Step 20 of an Adam run: the same parameters; the gradient of every tensor, layer norm's
# gains and biases included: steps 1 and 20 of an SGD run whose last step has lr 100 and no clip,
# so (before - after) / 100 is the gradient (step 1: from the initial parameters, taken from a step
# of lr 1e-12). A gradient that is wrong anywhere by 1e-5 of its tensor's largest value fails.
LN=(--cell lstm --layers 2 --hidden 16 --batch 8 --seq 16 --threads 1 --eval-every 100 --quiet --seed 3)
same_step() { # NAME BEFORE STEP OPTIONS...: one step from BEFORE's state on 1 process and on 2 ranks
    local name=$1 before=$2 step=$3
    shift 3
    rm -f "$D"/s1.ckpt* "$D"/s2.ckpt* # (a MODEL of another run next to MODEL.resume would be resumed instead)
    cp "$before" "$D/s1.ckpt.resume"
    cp "$before" "$D/s2.ckpt.resume"
    check "$name: 1 process" "$C" train --resume "$D/s1.ckpt.resume" --steps "$step" --quiet "$@"
    check "$name: 2 ranks" "${MPI[@]}" -np 2 "$C" train --resume "$D/s2.ckpt.resume" --steps "$step" --quiet "$@"
}
same_grads() { # NAME BEFORE: the step's gradients of the last same_step (lr 100) within 1e-5
    if python3 "$CMP" --step "$2" "$D/s1.ckpt.resume" "$D/s2.ckpt.resume" 100 1e-5 >"$D/cmp" 2>&1
    then pass "$1 ($(cat "$D/cmp"))"; else fail "$1" "$(cat "$D/cmp")"; fi
}
for drop in 0 0.3; do
    check "layer norm, dropout $drop: 19 Adam steps" "$C" train "$D/t.txt" -o "$D/la.ckpt" "${LN[@]}" \
        --dropout $drop --steps 19
    same_step "layer norm, dropout $drop: Adam step 20" "$D/la.ckpt.resume" 20
    same_params "layer norm, dropout $drop: Adam step 20 of 2 ranks = of 1 process" "$D/s1.ckpt.resume" \
        "$D/s2.ckpt.resume"
    SGD=("${LN[@]}" --dropout $drop --optimizer sgd --lr 0.01)
    check "layer norm, dropout $drop: the initial parameters" "$C" train "$D/t.txt" -o "$D/l0.ckpt" "${SGD[@]}" \
        --steps 1 --lr 1e-12
    rm -f "$D"/s1.ckpt* "$D"/s2.ckpt*
    check "layer norm, dropout $drop: step 1, lr 100, 1 process" "$C" train "$D/t.txt" -o "$D/s1.ckpt" \
        "${SGD[@]}" --steps 1 --lr 100 --clip 0
    check "layer norm, dropout $drop: step 1, lr 100, 2 ranks" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" \
        -o "$D/s2.ckpt" "${SGD[@]}" --steps 1 --lr 100 --clip 0
    same_grads "layer norm, dropout $drop: step 1's gradients, 2 ranks = 1 process" "$D/l0.ckpt.resume"
    check "layer norm, dropout $drop: 19 SGD steps" "$C" train "$D/t.txt" -o "$D/l19.ckpt" "${SGD[@]}" --steps 19
    same_step "layer norm, dropout $drop: SGD step 20, lr 100" "$D/l19.ckpt.resume" 20 --lr 100 --clip 0
    same_grads "layer norm, dropout $drop: step 20's gradients, 2 ranks = 1 process" "$D/l19.ckpt.resume"
done
# layer norm and an uneven split (2 ranks x batch 7: 4 + 3 streams): step 1's gradients
SGD=("${LN[@]}" --batch 7 --dropout 0.3 --optimizer sgd --lr 0.01)
check "layer norm, batch 7: the initial parameters" "$C" train "$D/t.txt" -o "$D/l0.ckpt" "${SGD[@]}" --steps 1 \
    --lr 1e-12
rm -f "$D"/s1.ckpt* "$D"/s2.ckpt*
check "layer norm, batch 7: step 1, lr 100, 1 process" "$C" train "$D/t.txt" -o "$D/s1.ckpt" "${SGD[@]}" --steps 1 \
    --lr 100 --clip 0
check "layer norm, batch 7: step 1, lr 100, 2 ranks" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/s2.ckpt" \
    "${SGD[@]}" --steps 1 --lr 100 --clip 0
same_grads "layer norm, batch 7 (uneven): step 1's gradients, 2 ranks = 1 process" "$D/l0.ckpt.resume"
"$C" info "$D/p1.ckpt.resume" | grep -E "validation:" > "$D/v1"
"$C" info "$D/p2.ckpt.resume" | grep -E "validation:" > "$D/v2"
cmp -s "$D/v1" "$D/v2" && pass "validation split over ranks: the same bits/char ($(cat "$D/v1"))" \
    || fail "validation differs" "$(cat "$D/v1" "$D/v2")"
check "2 ranks again" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/p2b.ckpt" "${SAME[@]}" --dropout 0.3
if python3 "$CMP" "$D/p2.ckpt.resume" "$D/p2b.ckpt.resume" 0 >"$D/cmp"; then pass "2 ranks twice: bit-identical"
else fail "2 ranks twice differ" "$(cat "$D/cmp")"; fi
n=$(grep -c '^step,' "$D/p2.csv"); rows=$(grep -c '^[0-9]' "$D/p2.csv")
[ "$n" -eq 1 ] && [ "$rows" -eq 2 ] && pass "one CSV log, written by rank 0 only" || fail "log: $n headers, $rows rows"
check "3 ranks x batch 6 (GRU)" "${MPI[@]}" -np 3 "$C" train "$D/t.txt" -o "$D/g3.ckpt" "${SAME[@]}" --cell gru \
    --batch 6 --dropout 0.2
check "1 process x batch 6 (GRU)" "$C" train "$D/t.txt" -o "$D/g1.ckpt" "${SAME[@]}" --cell gru --batch 6 \
    --dropout 0.2
same_params "3 ranks = 1 process (GRU, dropout 0.2)" "$D/g1.ckpt.resume" "$D/g3.ckpt.resume"
# a batch that does not split evenly: 2 ranks x batch 7 (4 + 3 streams), 3 ranks x batch 8 (3 + 3 + 2)
for nb in "2 7" "3 8"; do
    set -- $nb
    check "1 process x batch $2" "$C" train "$D/t.txt" -o "$D/u1.ckpt" "${SAME[@]}" --batch $2 --dropout 0.3
    check "$1 ranks x batch $2" "${MPI[@]}" -np $1 "$C" train "$D/t.txt" -o "$D/u$1.ckpt" "${SAME[@]}" --batch $2 \
        --dropout 0.3
    same_params "$1 ranks x batch $2 (uneven streams) = 1 process" "$D/u1.ckpt.resume" "$D/u$1.ckpt.resume"
    "$C" info "$D/u1.ckpt.resume" | grep -E "validation:" > "$D/v1"
    "$C" info "$D/u$1.ckpt.resume" | grep -E "validation:" > "$D/v2"
    cmp -s "$D/v1" "$D/v2" && pass "$1 ranks x batch $2: the same validation bits/char" \
        || fail "$1 ranks x batch $2: validation differs" "$(cat "$D/v1" "$D/v2")"
done

# ---- resume with another number of ranks: 2 -> 1 -> 3 and 3 -> 2 -> 1 ----
# Plain cells, as above: with layer norm a 1/3 or 4/7 weighting of the ranks' gradients (rounding)
# grows to ~1e-3 in 10 steps, as any rounding-sized change does there (measured; docs/distributed.md)
RES=(--cell lstm --layers 2 --hidden 16 --batch 6 --seq 16 --threads 1 --eval-every 10 --quiet --seed 5
     --dropout 0.2 --lr-decay 0.5 --lr-decay-after 5 --no-layer-norm)
check "one go: 30 steps in 1 process" "$C" train "$D/t.txt" -o "$D/all.ckpt" "${RES[@]}" --steps 30
run_np() { # NP ARGS...: one process for 1, else mpirun
    local np=$1; shift
    if [ "$np" -eq 1 ]; then "$C" "$@"; else "${MPI[@]}" -np "$np" "$C" "$@"; fi
}
for order in "2 1 3" "3 2 1"; do
    set -- $order
    m="$D/r$1$2$3.ckpt"
    check "ranks $1: steps 0-10" run_np "$1" train "$D/t.txt" -o "$m" "${RES[@]}" --steps 10
    check "ranks $2: resume to 20" run_np "$2" train --resume "$m" --steps 20 --quiet
    check "ranks $3: resume to 30" run_np "$3" train --resume "$m" --steps 30 --quiet
    same_params "ranks $1 -> $2 -> $3 = 30 steps in one go" "$D/all.ckpt.resume" "$m.resume"
    "$C" info "$D/all.ckpt.resume" | grep -E "training:" | sed 's/, [0-9.]*s of training//' > "$D/i1"
    "$C" info "$m.resume" | grep -E "training:" | sed 's/, [0-9.]*s of training//' > "$D/i2"
    cmp -s "$D/i1" "$D/i2" && pass "ranks $1 -> $2 -> $3: step and data position continue" \
        || fail "ranks $1 -> $2 -> $3: positions differ" "$(cat "$D/i1" "$D/i2")"
done

# an uneven split on both sides of a resume: batch 7 on 2 ranks (4 + 3), then on 3 (3 + 2 + 2)
check "one go: 20 steps x batch 7 in 1 process" "$C" train "$D/t.txt" -o "$D/all7.ckpt" "${RES[@]}" --batch 7 \
    --steps 20
check "2 ranks x batch 7: steps 0-10" run_np 2 train "$D/t.txt" -o "$D/r7.ckpt" "${RES[@]}" --batch 7 --steps 10
check "3 ranks x batch 7: resume to 20" run_np 3 train --resume "$D/r7.ckpt" --steps 20 --quiet
same_params "batch 7: ranks 2 -> 3 = 20 steps in one go" "$D/all7.ckpt.resume" "$D/r7.ckpt.resume"

# ---- errors: one message naming the rank, no hang ----
TINY=(--cell lstm --layers 1 --hidden 8 --batch 6 --seq 8 --threads 1 --steps 3 --quiet)
one_message() { # PATTERN NAME: exactly one line of stderr matches
    local k
    k=$(grep -Ec -- "$1" "$T_TMP/err")
    [ "$k" -eq 1 ] && pass "$2" || fail "$2: $k matching lines" "$(head -c 600 "$T_TMP/err")"
}
expect_exit 1 "M01 batch 3 over 4 ranks" "${MPI[@]}" -np 4 "$C" train "$D/t.txt" -o "$D/e1.ckpt" "${TINY[@]}" \
    --batch 3
one_message "^charrnn train: rank 0: --batch 3 is smaller than the 4 MPI ranks: give at least 4" "M01 says why, once"
ls "$D"/e1.ckpt "$D"/e1.ckpt.resume >/dev/null 2>&1 && fail "M01 model written" || pass "M01 no model written"
expect_exit 1 "M02 corpus missing on rank 1" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" -o "$D/e2.ckpt" "${TINY[@]}" \
    : -np 1 "$C" train "$D/none.txt" -o "$D/e2.ckpt" "${TINY[@]}"
one_message "^charrnn train: rank 1: .*none.txt: no such file" "M02 names rank 1 and the file, once"
expect_exit 1 "M02 corpus missing on rank 0" "${MPI[@]}" -np 1 "$C" train "$D/none.txt" -o "$D/e2.ckpt" \
    "${TINY[@]}" : -np 1 "$C" train "$D/t.txt" -o "$D/e2.ckpt" "${TINY[@]}"
one_message "^charrnn train: rank 0: .*none.txt: no such file" "M02 names rank 0, once"
expect_exit 1 "M03 corpus differs on rank 1" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" -o "$D/e3.ckpt" "${TINY[@]}" \
    : -np 1 "$C" train "$D/other.txt" -o "$D/e3.ckpt" "${TINY[@]}"
one_message "^charrnn train: rank 1: its corpus differs from rank 0's .*t.txt" "M03 names rank 1, once"
ls "$D"/e3.ckpt >/dev/null 2>&1 && fail "M03 model written" || pass "M03 no model written"
expect_exit 2 "a usage error under mpirun" "${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/e4.ckpt" "${TINY[@]}" \
    --hidden 0
one_message "^charrnn train: --hidden: 0 is out of range" "the usage error once (rank 0)"
expect_exit 2 "M02 a usage error on rank 1 only" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" -o "$D/e4.ckpt" \
    "${TINY[@]}" : -np 1 "$C" train "$D/t.txt" -o "$D/e4.ckpt" "${TINY[@]}" --hidden 0
one_message "^charrnn train: rank 1: --hidden: 0 is out of range" "M02 rank 1's usage error, once"

# dropout for the budget of a named model: rank 0's measured speed for every rank (else
# their options could differ), and a corpus missing on one rank still gives one message
TWO=(--cell gru --layers 2 --hidden 8 --batch 6 --seq 8 --threads 1 --eval-every 1000)
"${MPI[@]}" -np 2 "$C" train "$D/t.txt" -o "$D/bd.ckpt" "${TWO[@]}" --time 3s > /dev/null 2> "$T_TMP/err"
rc=$?
[ $rc -eq 0 ] && pass "2 ranks, a named model's time budget: the ranks choose one dropout" \
    || fail "2 ranks, a named model's time budget: exit $rc" "$(head -c 600 "$T_TMP/err")"
one_message "^dropout 0\.[0-9]+ for the budget: .* in 3 s at ~[0-9]+k tokens/s \(measured\)" "... said once (rank 0)"
expect_exit 1 "M02 corpus missing on rank 1, a named model's time budget" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" \
    -o "$D/e6.ckpt" "${TWO[@]}" --time 3s : -np 1 "$C" train "$D/none.txt" -o "$D/e6.ckpt" "${TWO[@]}" --time 3s
one_message "^charrnn train: rank 1: .*none.txt: no such file" "... names rank 1 and the file, once"

expect_exit 1 "M07 other options on rank 1" "${MPI[@]}" -np 1 "$C" train "$D/t.txt" -o "$D/e5.ckpt" "${TINY[@]}" \
    : -np 1 "$C" train "$D/t.txt" -o "$D/e5.ckpt" "${TINY[@]}" --steps 4
one_message "^charrnn train: rank 1: its training options differ from rank 0's" "M07 names rank 1, once"

# ---- signals: every rank stops at one step, rank 0 saves ----
LONG=(--cell lstm --layers 1 --hidden 32 --batch 8 --seq 16 --threads 1 --steps 1000000 --eval-every 50 --quiet)
for sig in TERM USR1; do
    m="$D/s$sig.ckpt"
    "${MPIRUN[@]}" -np 2 "$C" train "$D/t.txt" -o "$m" "${LONG[@]}" >"$D/sig.out" 2>"$D/sig.err" &
    mp=$!
    for _ in $(seq 600); do [ -f "$m" ] && break; sleep 0.1; done
    sleep 0.5
    kill -$sig $mp
    ( sleep 60; kill -KILL $mp 2>/dev/null ) & guard=$!
    wait $mp; rc=$?
    kill $guard 2>/dev/null; wait $guard 2>/dev/null
    [ "$rc" -ne 0 ] && pass "SIG$sig to mpirun: non-zero exit ($rc)" || fail "SIG$sig: exit 0"
    k=$(grep -c "^charrnn train: interrupted after step" "$D/sig.err")
    [ "$k" -eq 1 ] && pass "SIG$sig: one 'interrupted' message (rank 0)" || fail "SIG$sig: $k messages" \
        "$(head -c 600 "$D/sig.err")"
    check "SIG$sig: the saved state loads" "$C" info "$m.resume"
    expect_grep "status: +interrupted" "$T_TMP/out" "SIG$sig: saved as interrupted"
    step=$(sed -n 's/^charrnn train: interrupted after step \([0-9]*\).*/\1/p' "$D/sig.err")
    expect_grep "training: +step $step " "$T_TMP/out" "SIG$sig: saved at the step reported ($step)"
done

# ---- a rank killed with SIGKILL: mpirun fails, the model file stays intact ----
m="$D/k.ckpt"
"${MPIRUN[@]}" -np 2 "$C" train "$D/t.txt" -o "$m" "${LONG[@]}" >"$D/k.out" 2>"$D/k.err" &
mp=$!
for _ in $(seq 600); do [ -f "$m" ] && break; sleep 0.1; done
sleep 0.5
victim=$(pgrep -f "^$C train $D/t.txt -o $m" | tail -1)
[ -n "$victim" ] && kill -KILL "$victim"
( sleep 60; kill -KILL $mp 2>/dev/null ) & guard=$!
wait $mp; rc=$?
kill $guard 2>/dev/null; wait $guard 2>/dev/null
[ "$rc" -ne 0 ] && pass "M05 a rank killed: mpirun exits non-zero ($rc)" || fail "M05 mpirun exit 0"
expect_grep "exited on signal 9" "$D/k.err" "M05 mpirun says which rank died"
check "M05 the model file still loads" "$C" info "$m"
check "M05 and generates" "$C" generate "$m" --length 20 --seed 1
summary
