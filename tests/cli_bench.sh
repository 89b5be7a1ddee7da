#!/usr/bin/env bash
# cli_bench.sh — `charrnn bench`: option handling, the JSON record (fields the
# PyTorch peer also writes), the throughput definition, the data split and
# window layout it reports, several configurations in child processes, and
# the sgemm peak. Tiny runs on a small inline text (English + Korean); the
# real benchmark is tools/bench.
. "$(dirname "$0")/lib.sh"

# ~5,600 code points of mixed text, deterministic: 200 lines of 7 words.
words=(the cat sat on a mat 고양이가 매트 위에 앉았다 한국어 문장 and then it slept 그리고 잠들었다)
: >"$T_TMP/small.txt"
for i in $(seq 0 199); do
    line=""
    for j in 0 1 2 3 4 5 6; do line+="${words[$(((i * 7 + j * 5) % ${#words[@]}))]} "; done
    printf '%s\n' "$line" >>"$T_TMP/small.txt"
done
SMALL=$T_TMP/small.txt
# Expected split: first int(0.9 * n) code points train (as the peer), and the
# vocabulary = distinct code points + <unk>.
read -r N_CHARS N_TRAIN VOCAB < <(python3 - "$SMALL" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
print(len(t), int(len(t) * 0.9), len(set(t)) + 1)
PY
)

# JSON field checker: jget FILE LINE_INDEX KEY (dotted for nested) -> value
jget() {
    python3 - "$@" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith("{")]
v = json.loads(lines[int(sys.argv[2])])
for k in sys.argv[3].split("."):
    v = v[k]
print(v)
PY
}

# ---- one custom-shaped run, JSON --------------------------------------------
check "custom run with --json" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 16 --embed 8 \
    --seq 8 --batch 4 --steps 7 --warmup 2 --sample-len 50 --threads 1 --json --tag t1
cp "$T_TMP/out" "$T_TMP/j1"
[ "$(grep -c '^{' "$T_TMP/j1")" -eq 1 ] && pass "one JSON line" || fail "one JSON line" "$(cat "$T_TMP/j1")"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]' "$T_TMP/j1" \
    && pass "JSON parses (UTF-8 sample head included)" || fail "JSON parses" "$(cat "$T_TMP/j1")"
for key in train_chars_per_s sample_chars_per_s train_gflops peak_rss_mb foreign_cpu_frac steps epochs \
    n_train n_val vocab params flops_per_char_fwd train_bpc_last100 sample_head rss_base_mb; do
    grep -q "\"$key\": " "$T_TMP/j1" && pass "field $key" || fail "field $key"
done
[ "$(jget "$T_TMP/j1" 0 steps)" = 7 ] && pass "ran 7 steps" || fail "ran 7 steps" "$(jget "$T_TMP/j1" 0 steps)"
[ "$(jget "$T_TMP/j1" 0 config.name)" = custom ] && pass "custom config named" || fail "custom config named"
[ "$(jget "$T_TMP/j1" 0 config.cell)" = gru ] && pass "cell override" || fail "cell override"
[ "$(jget "$T_TMP/j1" 0 tag)" = t1 ] && pass "tag copied" || fail "tag copied"
[ "$(jget "$T_TMP/j1" 0 n_train)" = "$N_TRAIN" ] && pass "train split = int(0.9 n) = $N_TRAIN" \
    || fail "train split" "got $(jget "$T_TMP/j1" 0 n_train), want $N_TRAIN"
[ "$(jget "$T_TMP/j1" 0 n_val)" = "$((N_CHARS - N_TRAIN))" ] && pass "validation split" || fail "validation split"
[ "$(jget "$T_TMP/j1" 0 vocab)" = "$VOCAB" ] && pass "vocab = distinct code points + <unk>" \
    || fail "vocab" "got $(jget "$T_TMP/j1" 0 vocab), want $VOCAB"
# numbers that must hold by definition
python3 - "$T_TMP/j1" "$N_TRAIN" <<'PY' && pass "throughput, epochs, GFLOPS consistent" || fail "throughput, epochs, GFLOPS consistent"
import json, sys
r = json.loads(open(sys.argv[1], encoding="utf-8").readline())
n_train = int(sys.argv[2])
B, T, steps = 4, 8, r["steps"]
ok = True
# overall rate: batch*seq*steps / train_s (train_s is rounded to 10 ms)
ok &= r["train_s"] == 0 or abs(r["train_chars_per_s_overall"] * r["train_s"] - B * T * steps) <= 0.02 * B * T * steps + r["train_chars_per_s_overall"] * 0.006
ok &= r["train_chars_per_s"] > 0 and r["sample_chars_per_s"] > 0
# karpathy layout: n_win = (n_train - 1) // (B*T) windows per epoch
n_win = (n_train - 1) // (B * T)
ok &= abs(r["epochs"] - (steps // n_win + (steps % n_win) / n_win)) < 1e-3
ok &= abs(r["train_gflops"] - 3 * r["flops_per_char_fwd"] * r["train_chars_per_s"] / 1e9) < 0.01 + 1e-3 * r["train_gflops"]
ok &= r["pct_of_peak"] is None  # no --peak-gflops given
ok &= 0 < r["train_bpc_last100"] < 10
sys.exit(0 if ok else 1)
PY

# same seed, one thread: the same losses
check "second identical run" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 16 --embed 8 \
    --seq 8 --batch 4 --steps 7 --warmup 2 --sample-len 50 --threads 1 --json
[ "$(jget "$T_TMP/out" 0 train_bpc_last100)" = "$(jget "$T_TMP/j1" 0 train_bpc_last100)" ] \
    && pass "seeded: same loss twice" || fail "seeded: same loss twice"
[ "$(jget "$T_TMP/out" 0 sample_head)" = "$(jget "$T_TMP/j1" 0 sample_head)" ] \
    && pass "seeded: same sample twice" || fail "seeded: same sample twice"
check "other seed" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 16 --embed 8 \
    --seq 8 --batch 4 --steps 7 --warmup 2 --sample-len 50 --threads 1 --json --seed 7
[ "$(jget "$T_TMP/out" 0 train_bpc_last100)" != "$(jget "$T_TMP/j1" 0 train_bpc_last100)" ] \
    && pass "--seed changes the run" || fail "--seed changes the run"

# ---- validation pass (--eval): every validation target counted once --------
check "--eval" "$CHARRNN" bench --corpus "$SMALL" --hidden 16 --embed 8 --seq 8 --batch 4 --steps 3 --warmup 1 \
    --sample-len 5 --eval --eval-seq 16 --json
[ "$(jget "$T_TMP/out" 0 val_targets)" = "$((N_CHARS - N_TRAIN - 1))" ] && pass "val targets = n_val - 1" \
    || fail "val targets = n_val - 1" "got $(jget "$T_TMP/out" 0 val_targets)"
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if 0 < r["val_bpc"] < 10 else 1)' \
    "$T_TMP/out" && pass "val bpc is a number" || fail "val bpc is a number" "$(cat "$T_TMP/out")"
[ "$(jget "$T_TMP/j1" 0 val_bpc)" = None ] && pass "no --eval: val_bpc null" || fail "no --eval: val_bpc null"

# ---- readable output ----------------------------------------------------------
check "readable line" "$CHARRNN" bench --corpus "$SMALL" --hidden 8 --seq 4 --batch 2 --steps 6 --warmup 1 \
    --sample-len 20 --peak-gflops 100
expect_grep '^custom lstm 2x8 one-hot, seq 4 x batch 2, layer norm, [a-z0-9]+ kernels: train [0-9]+ chars/s \(6 steps, .* % of 100, .*sample [0-9]+ chars/s, peak RSS [0-9.]+ MB, foreign CPU' \
    "$T_TMP/out" "readable line has the numbers"

check "--sample-len 0" "$CHARRNN" bench --corpus "$SMALL" --hidden 8 --seq 4 --batch 2 --steps 4 --warmup 1 --sample-len 0
if grep -q 'chars/s (4 steps' "$T_TMP/out" && ! grep -qi 'nan\|sample' "$T_TMP/out"; then pass "... no sampling figure (not 'sample nan')"
else fail "--sample-len 0 line" "$(cat "$T_TMP/out")"; fi

check "--no-layer-norm" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 8 --seq 4 --batch 2 --steps 4 --warmup 1 \
    --sample-len 20 --no-layer-norm --json
[ "$(jget "$T_TMP/out" 0 config.layer_norm)" = 0 ] && pass "... its JSON says layer_norm 0" ||
    fail "--no-layer-norm JSON" "$(cat "$T_TMP/out")"
check "--no-layer-norm --layer-norm" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 8 --seq 4 --batch 2 \
    --steps 4 --warmup 1 --sample-len 20 --no-layer-norm --layer-norm
expect_grep '^custom gru 2x8 one-hot, seq 4 x batch 2, layer norm, [a-z0-9]+ kernels: train [0-9]+ chars/s' "$T_TMP/out" \
    "the layer-norm run says so (the last option wins)"
check "--no-layer-norm, readable" "$CHARRNN" bench --corpus "$SMALL" --cell gru --hidden 8 --seq 4 --batch 2 \
    --steps 4 --warmup 1 --sample-len 20 --no-layer-norm
expect_grep '^custom gru 2x8 one-hot, seq 4 x batch 2, no layer norm, [a-z0-9]+ kernels: train [0-9]+ chars/s' "$T_TMP/out" \
    "the plain run says so"

# ---- --isa: the kernels' instruction set, capped (the same run at each level) ----
for isa in plain avx2; do
    check "--isa $isa" "$CHARRNN" bench --corpus "$SMALL" --hidden 8 --seq 4 --batch 2 --steps 4 --warmup 1 \
        --sample-len 10 --isa $isa --json
    got=$(jget "$T_TMP/out" 0 config.isa)
    # the CPU may lack AVX2: then the cap gives plain
    case "$isa/$got" in plain/plain | avx2/avx2 | avx2/plain) pass "... JSON isa $got (asked $isa)" ;;
    *) fail "--isa $isa JSON" "$(cat "$T_TMP/out")" ;; esac
done
check "--isa plain, readable" "$CHARRNN" bench --corpus "$SMALL" --hidden 8 --seq 4 --batch 2 --steps 4 --warmup 1 \
    --sample-len 0 --isa plain
expect_grep '^custom lstm 2x8 one-hot, seq 4 x batch 2, layer norm, plain kernels: train' "$T_TMP/out" \
    "the line names the kernels' level"
expect_exit 2 "--isa sse" "$CHARRNN" bench --isa sse
expect_grep "'sse' is not plain, avx2 or avx512" "$T_TMP/err" "unknown --isa named"

# ---- several canonical configurations, each in a child process --------------
check "--config A,B" "$CHARRNN" bench --corpus "$SMALL" --config A,B --steps 3 --warmup 1 --sample-len 10 --json
[ "$(grep -c '^{' "$T_TMP/out")" -eq 2 ] && pass "two JSON lines" || fail "two JSON lines" "$(cat "$T_TMP/out")"
[ "$(jget "$T_TMP/out" 0 config.name)/$(jget "$T_TMP/out" 1 config.name)" = A/B ] \
    && pass "A then B" || fail "A then B"
[ "$(jget "$T_TMP/out" 0 config.hidden)x$(jget "$T_TMP/out" 0 config.seq)x$(jget "$T_TMP/out" 0 config.batch)/$(jget "$T_TMP/out" 0 config.embed)" = 128x50x50/0 ] \
    && pass "A is lstm 2x128 one-hot 50x50" || fail "A shape"
[ "$(jget "$T_TMP/out" 1 config.cell)/$(jget "$T_TMP/out" 1 config.hidden)/$(jget "$T_TMP/out" 1 config.embed)/$(jget "$T_TMP/out" 1 config.seq)x$(jget "$T_TMP/out" 1 config.batch)" = rnn/256/64/64x32 ] \
    && pass "B is rnn 2x256 e64 64x32" || fail "B shape"
[ "$(jget "$T_TMP/out" 0 flops_per_char_fwd)" = "$((2 * (VOCAB + 128) * 512 + 2 * 256 * 512 + 2 * 128 * VOCAB))" ] \
    && pass "A forward FLOP/char as the peer counts it" || fail "A FLOP/char" "$(jget "$T_TMP/out" 0 flops_per_char_fwd)"

# ---- errors --------------------------------------------------------------------
expect_exit 2 "unknown config" "$CHARRNN" bench --config Z
expect_grep "'Z' is not one of A, B, C, D" "$T_TMP/err" "unknown config named"
expect_exit 2 "custom shapes need one config" "$CHARRNN" bench --config A,B --hidden 8
expect_exit 2 "--steps 0" "$CHARRNN" bench --steps 0
expect_exit 2 "stray argument" "$CHARRNN" bench extra
expect_exit 1 "missing corpus" "$CHARRNN" bench --corpus "$T_TMP/nope.txt" --steps 2
expect_grep "nope.txt" "$T_TMP/err" "missing corpus is named"
printf 'short text\n' >"$T_TMP/short.txt"
expect_exit 1 "corpus shorter than a window" "$CHARRNN" bench --corpus "$T_TMP/short.txt" --config A --steps 2

# ---- sgemm peak --------------------------------------------------------------------
check "--gemm-peak (small)" "$CHARRNN" bench --gemm-peak --gemm-n 96 --seconds 0.05 --json
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if r["n"]==96 and r["gflops"]>0 and r["runs"]>=5 and r["gflops"]>=r["gflops_median"] else 1)' \
    "$T_TMP/out" && pass "gemm JSON: n, runs >= 5, best >= median" || fail "gemm JSON" "$(cat "$T_TMP/out")"

summary
