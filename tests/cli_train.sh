#!/usr/bin/env bash
# cli_train.sh — `charrnn train`, `eval`, `info` and tools/plot-loss end to end:
# loss goes down, exact resume, SIGINT saves, damaged files are refused,
# usage errors, eval/info JSON, fine-tuning, and (when the shared corpora are
# present) a short real run on tinyshakespeare.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=$T_TMP
C=$CHARRNN

# ---- our own texts (English + Korean) ------------------------------------
python3 - "$D" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(7)
words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "far", "away",
         "하늘은", "파랗고", "바다는", "넓다", "우리는", "한국어를", "배웁니다", "그리고", "노래한다"]
lines = [" ".join(random.choice(words) for _ in range(random.randint(3, 9))) + "." for _ in range(700)]
open(f"{d}/text.txt", "w", encoding="utf-8").write("\n".join(lines) + "\n")
# a text with characters the first one lacks (for fine-tuning)
lines2 = [l.replace("cat", "cow").replace("바다는", "강물은") + " 끝!" for l in lines[:300]]
open(f"{d}/new.txt", "w", encoding="utf-8").write("\n".join(lines2) + "\n")
PY
TINY=(--cell lstm --layers 1 --hidden 24 --batch 8 --seq 16 --threads 1 --quiet)

jget() { # jget FILE KEY [SUBKEY]: a value from a JSON object file
    python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d = d[k]
print(d)' "$@"
}

# ---- usage errors: exit 2 with a hint -------------------------------------
expect_exit 2 "no arguments" "$C" train
expect_exit 2 "missing -o" "$C" train "$D/text.txt"
expect_exit 2 "unknown option" "$C" train "$D/text.txt" -o "$D/x.ckpt" --no-such-option
expect_exit 2 "--hidden 0" "$C" train "$D/text.txt" -o "$D/x.ckpt" --hidden 0
expect_exit 2 "--time 0" "$C" train "$D/text.txt" -o "$D/x.ckpt" --time 0
expect_exit 2 "--steps -5" "$C" train "$D/text.txt" -o "$D/x.ckpt" --steps -5
expect_exit 2 "--cell foo" "$C" train "$D/text.txt" -o "$D/x.ckpt" --cell foo
expect_exit 2 "--lr abc" "$C" train "$D/text.txt" -o "$D/x.ckpt" --lr abc
expect_grep "Try 'charrnn train --help'" "$T_TMP/err" "usage error names the help"
expect_exit 2 "--extend-vocab without --init-from" "$C" train "$D/text.txt" -o "$D/x.ckpt" --extend-vocab
expect_exit 2 "eval without FILE" "$C" eval "$D/x.ckpt"
expect_exit 2 "info with two files" "$C" info a b
check "train --help" "$C" train --help
expect_grep "--batch N .*default 50" "$T_TMP/out" "help shows --batch default"
expect_grep "--clip F .*default 5" "$T_TMP/out" "help shows --clip default"
expect_grep "default 5m" "$T_TMP/out" "help states the default budget"
expect_exit 1 "missing corpus is a runtime error" "$C" train "$D/missing.txt" -o "$D/x.ckpt" --steps 2 --quiet
expect_grep "missing.txt" "$T_TMP/err" "missing corpus named"
expect_exit 1 "output in a missing directory" "$C" train "$D/text.txt" -o "$D/no/such/dir/m.ckpt" --steps 2 --quiet
expect_grep "no/such/dir" "$T_TMP/err" "missing output directory named"
printf 'short' > "$D/short.txt"
expect_exit 1 "corpus shorter than one window" "$C" train "$D/short.txt" -o "$D/x.ckpt" --steps 2 --quiet

# ---- loss goes down (CSV log), files written --------------------------------
check "train 240 steps" "$C" train "$D/text.txt" -o "$D/m.ckpt" "${TINY[@]}" --steps 240 --eval-every 40 \
    --log "$D/m.csv"
expect_grep "^step,epoch,seconds,train_bpc,val_bpc,lr,chars_per_s$" "$D/m.csv" "CSV header"
rows=$(($(wc -l < "$D/m.csv") - 1))
if [ "$rows" -eq 6 ]; then pass "CSV has one row per eval ($rows)"; else fail "CSV rows" "expected 6, got $rows"; fi
first=$(awk -F, 'NR==2{print $5}' "$D/m.csv"); last=$(awk -F, 'END{print $5}' "$D/m.csv")
if awk -v a="$first" -v b="$last" 'BEGIN{exit !(b < a - 0.5)}'; then pass "val bpc falls ($first -> $last)"
else fail "val bpc falls" "first $first, last $last"; fi
ftr=$(awk -F, 'NR==2{print $4}' "$D/m.csv"); ltr=$(awk -F, 'END{print $4}' "$D/m.csv")
if awk -v a="$ftr" -v b="$ltr" 'BEGIN{exit !(b < a)}'; then pass "train bpc falls ($ftr -> $ltr)"
else fail "train bpc falls" "first $ftr, last $ltr"; fi
[ -s "$D/m.ckpt" ] && [ -s "$D/m.ckpt.resume" ] && pass "MODEL and MODEL.resume written" || fail "model files"

# ---- info ----------------------------------------------------------------
check "info" "$C" info "$D/m.ckpt"
expect_grep "lstm, 1 layers x 24 hidden" "$T_TMP/out" "info shows the config"
expect_grep "하" "$T_TMP/out" "info previews the Korean vocabulary"
check "info --json" sh -c "'$C' info --json '$D/m.ckpt' > '$D/info.json'"
best=$(jget "$D/info.json" training best_val_bpc)
minlog=$(awk -F, 'NR>1 && $5!="" {print $5}' "$D/m.csv" | sort -g | head -1)
if awk -v a="$best" -v b="$minlog" 'BEGIN{d=a-b; exit !(d < 1e-5 && d > -1e-5)}'; then
    pass "MODEL holds the best model ($best = min of log)"; else fail "best model" "info $best, log min $minlog"; fi
steps=$(jget "$D/info.json" training step)
[ "$steps" = 240 ] && pass "info reports 240 steps" || fail "info steps" "got $steps"

# ---- eval ----------------------------------------------------------------
check "eval --json" sh -c "'$C' eval '$D/m.ckpt' '$D/text.txt' --json > '$D/eval.json'"
if python3 - "$D/eval.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("bits_per_char", "bits_per_token", "bits_per_byte", "chars", "tokens"):
    assert k in d, k
assert abs(d["bits_per_char"] - d["bits_per_token"]) < 1e-9        # codepoint unit
assert d["bits_per_byte"] < d["bits_per_char"]                      # Korean: 3 bytes per syllable
assert d["chars"] == d["tokens"] and d["targets"] == d["tokens"] - 1
assert d["unknown"] == 0 and 0.5 < d["bits_per_char"] < 6
PY
then pass "eval JSON keys consistent"; else fail "eval JSON keys consistent" "$(cat "$D/eval.json")"; fi
check "eval of a text with unseen characters" "$C" eval "$D/m.ckpt" "$D/new.txt"
expect_grep "not in the model's vocabulary" "$T_TMP/out" "eval reports unknown characters"

# ---- resume determinism (one thread): 20 + 20 == 40 ----------------------
R=("${TINY[@]}" --dropout 0 --layers 2 --eval-every 7 --seed 5)
check "run A: 20 steps" "$C" train "$D/text.txt" -o "$D/a.ckpt" "${R[@]}" --steps 20
"$C" info --json "$D/a.ckpt.resume" > "$D/a20.json"
check "run A: resume to 40" "$C" train --resume "$D/a.ckpt" --steps 40 --threads 1 --quiet
check "run B: 40 steps straight" "$C" train "$D/text.txt" -o "$D/b.ckpt" "${R[@]}" --steps 40
"$C" info --json "$D/a.ckpt.resume" > "$D/a40.json"
"$C" info --json "$D/b.ckpt.resume" > "$D/b40.json"
pa=$(jget "$D/a40.json" params_crc32); pb=$(jget "$D/b40.json" params_crc32)
oa=$(jget "$D/a40.json" optimizer_crc32); ob=$(jget "$D/b40.json" optimizer_crc32)
p20=$(jget "$D/a20.json" params_crc32)
if [ "$pa" = "$pb" ] && [ "$oa" = "$ob" ] && [ "$p20" != "$pa" ]; then
    pass "resumed == straight, bit for bit (params $pa, optimizer $oa)"
else fail "resume determinism" "params $pa vs $pb, optimizer $oa vs $ob (20 steps: $p20)"; fi
[ "$(jget "$D/a40.json" training step)" = 40 ] && pass "resumed run counts steps as totals" || fail "resume step total"
# MODEL.resume of another run (its run_id differs from MODEL's) is passed over
cp "$D/a.ckpt" "$D/r.ckpt"
cp "$D/b.ckpt.resume" "$D/r.ckpt.resume"
ra=$(jget "$D/a40.json" training run_id); rb=$(jget "$D/b40.json" training run_id)
"$C" train --resume "$D/r.ckpt" --steps 41 --threads 1 --quiet 2>"$D/r.err"
"$C" info --json "$D/r.ckpt.resume" > "$D/r.json"
if [ "$ra" != "$rb" ] && grep -q "r.ckpt.resume belongs to another run" "$D/r.err" &&
   [ "$(jget "$D/r.json" training run_id)" = "$ra" ]; then
    pass "a MODEL.resume of another run is not resumed (run_id $rb vs $ra)"
else fail "run_id checked on resume" "ids $ra $rb -> $(jget "$D/r.json" training run_id)" "$(cat "$D/r.err")"; fi
check "resuming the same run again" "$C" train --resume "$D/a.ckpt" --steps 41 --threads 1 --quiet
if ! grep -q "another run" "$T_TMP/err"; then pass "same run: no run_id warning"
else fail "same run: no run_id warning" "$(cat "$T_TMP/err")"; fi
# the same with dropout and a GRU, resuming across an epoch boundary (95 windows per epoch)
R2=(--cell gru --layers 2 --hidden 16 --batch 8 --seq 16 --dropout 0.2 --threads 1 --quiet --eval-every 50 --seed 9)
"$C" train "$D/text.txt" -o "$D/c.ckpt" "${R2[@]}" --steps 90 &&
"$C" train --resume "$D/c.ckpt" --steps 110 --threads 1 --quiet &&
"$C" train "$D/text.txt" -o "$D/e.ckpt" "${R2[@]}" --steps 110
"$C" info --json "$D/c.ckpt.resume" > "$D/c.json"; "$C" info --json "$D/e.ckpt.resume" > "$D/e.json"
if [ "$(jget "$D/c.json" params_crc32)" = "$(jget "$D/e.json" params_crc32)" ] &&
   [ "$(jget "$D/c.json" optimizer_crc32)" = "$(jget "$D/e.json" optimizer_crc32)" ]; then
    pass "GRU + dropout resume across an epoch wrap is exact"
else fail "GRU + dropout resume" "$(jget "$D/c.json" params_crc32) vs $(jget "$D/e.json" params_crc32)"; fi

# --time is per session: resuming a time-limited run without budget options trains again
check "1 s run" "$C" train "$D/text.txt" -o "$D/t.ckpt" "${TINY[@]}" --time 1s --eval-every 0
t1=$("$C" info --json "$D/t.ckpt.resume" | python3 -c 'import json,sys; print(json.load(sys.stdin)["training"]["step"])')
check "resume it (no budget options)" "$C" train --resume "$D/t.ckpt" --threads 1 --quiet
t2=$("$C" info --json "$D/t.ckpt.resume" | python3 -c 'import json,sys; print(json.load(sys.stdin)["training"]["step"])')
[ "$t2" -gt "$t1" ] && pass "resumed session trained again ($t1 -> $t2 steps)" || fail "time per session" "$t1 -> $t2"

# resume refuses incompatible overrides
expect_exit 2 "resume refuses --hidden change" "$C" train --resume "$D/a.ckpt" --hidden 64 --steps 50
expect_grep "conflicts with the checkpoint" "$T_TMP/err" "resume conflict explained"
expect_exit 2 "resume refuses --unit change" "$C" train --resume "$D/a.ckpt" --unit jamo --steps 50

# ---- --layer-norm: saved in the model, shown by info, kept on resume -----
check "layer-norm run" "$C" train "$D/text.txt" -o "$D/ln.ckpt" "${TINY[@]}" --cell gru --layer-norm --steps 6 \
    --eval-every 3
"$C" info --json "$D/ln.ckpt" > "$D/ln.json"
[ "$(jget "$D/ln.json" layer_norm)" = "True" ] && pass "info --json: layer_norm true" || fail "info --json layer_norm"
"$C" info "$D/ln.ckpt" > "$D/ln.txt"
expect_grep "gru, 1 layers x 24 hidden, one-hot input, layer norm" "$D/ln.txt" "info shows layer norm"
"$C" info --json "$D/a.ckpt" > "$D/a.json"
[ "$(jget "$D/a.json" layer_norm)" = "True" ] && pass "info --json: layer_norm true by default" ||
    fail "layer norm is the default" "$(cat "$D/a.json")"
check "--no-layer-norm run" "$C" train "$D/text.txt" -o "$D/noln.ckpt" "${TINY[@]}" --layer-norm --no-layer-norm \
    --steps 3
"$C" info --json "$D/noln.ckpt" > "$D/noln.json"
[ "$(jget "$D/noln.json" layer_norm)" = "False" ] && pass "info --json: layer_norm false (the last option wins)" ||
    fail "info --json no LN" "$(cat "$D/noln.json")"
"$C" info "$D/noln.ckpt" > "$D/noln.txt"
if grep -q "layer norm" "$D/noln.txt"; then fail "info of a plain model names no layer norm" "$(cat "$D/noln.txt")"
else pass "info of a plain model names no layer norm"; fi
check "resume a plain run without the option" "$C" train --resume "$D/noln.ckpt" --steps 5 --threads 1 --quiet
"$C" info --json "$D/noln.ckpt.resume" > "$D/noln2.json"
[ "$(jget "$D/noln2.json" layer_norm)" = "False" ] && pass "the resumed plain run stays plain (the model's setting wins)" ||
    fail "plain resume" "$(cat "$D/noln2.json")"
expect_exit 2 "resume refuses --layer-norm on a plain model" "$C" train --resume "$D/noln.ckpt" --layer-norm --steps 6 \
    --quiet
expect_exit 2 "resume refuses --no-layer-norm on a layer-norm model" "$C" train --resume "$D/a.ckpt" --no-layer-norm \
    --steps 60 --quiet
expect_grep "--no-layer-norm conflicts with the checkpoint \(layer norm on\)" "$T_TMP/err" "the conflict names it"
check "resume a layer-norm run without the option" "$C" train --resume "$D/ln.ckpt" --steps 9 --threads 1 --quiet
check "resume with --layer-norm repeated" "$C" train --resume "$D/ln.ckpt" --layer-norm --steps 12 --threads 1 --quiet
"$C" info --json "$D/ln.ckpt.resume" > "$D/ln2.json"
[ "$(jget "$D/ln2.json" layer_norm)" = "True" ] && [ "$(jget "$D/ln2.json" training step)" = "12" ] &&
    pass "resumed layer-norm run kept it (step 12)" || fail "layer-norm resume" "$(cat "$D/ln2.json")"
check "generate from a layer-norm model (binary16)" "$C" generate "$D/ln.ckpt" --length 30 --seed 1
check "generate from a layer-norm model (--exact)" "$C" generate "$D/ln.ckpt" --length 30 --seed 1 --exact

# ---- SIGINT: finish the step, save, exit 130 -----------------------------
"$C" train "$D/text.txt" -o "$D/s.ckpt" --layers 1 --hidden 32 --batch 8 --seq 16 --time 120s --eval-every 20 \
    --log "$D/s.csv" --threads 1 > "$D/s.out" 2> "$D/s.err" &
pid=$!
for _ in $(seq 200); do
    [ -f "$D/s.csv" ] && [ "$(wc -l < "$D/s.csv")" -ge 3 ] && break
    sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] && pass "SIGINT exits 130" || fail "SIGINT exit status" "got $rc" "$(tail -3 "$D/s.err")"
expect_grep "continue with: charrnn train --resume" "$D/s.err" "SIGINT says how to resume"
check "interrupted model loads" "$C" info "$D/s.ckpt"
check "interrupted resume state loads" "$C" info --json "$D/s.ckpt.resume"
expect_grep '"stop": "interrupted"' "$T_TMP/out" "resume state records the interrupt"
s_step=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["training"]["step"])' "$T_TMP/out" 2>/dev/null || echo 0)
check "resume after SIGINT" "$C" train --resume "$D/s.ckpt" --steps $((s_step + 5)) --threads 1 --quiet

# ---- damaged files: exit 1 with a message, never a crash -----------------
size=$(stat -c %s "$D/m.ckpt")
head -c $((size / 2)) "$D/m.ckpt" > "$D/trunc.ckpt"
expect_exit 1 "truncated model" "$C" info "$D/trunc.ckpt"
expect_grep "trunc.ckpt" "$T_TMP/err" "truncated model named in the message"
head -c 10 "$D/m.ckpt" > "$D/trunc10.ckpt"
expect_exit 1 "model truncated in the header" "$C" info "$D/trunc10.ckpt"
: > "$D/empty.ckpt"
expect_exit 1 "empty model file" "$C" info "$D/empty.ckpt"
for frac in 10 40 70 95; do
    cp "$D/m.ckpt" "$D/bad.ckpt"
    off=$((size * frac / 100))
    byte=$(od -An -tu1 -j "$off" -N1 "$D/bad.ckpt" | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$D/bad.ckpt" bs=1 seek="$off" conv=notrunc 2>/dev/null
    expect_exit 1 "model with a flipped byte at $frac%" "$C" info "$D/bad.ckpt"
    expect_exit 1 "eval refuses the damaged model ($frac%)" "$C" eval "$D/bad.ckpt" "$D/text.txt"
done
expect_exit 1 "missing model" "$C" info "$D/nope.ckpt"
expect_exit 1 "resume of a missing model" "$C" train --resume "$D/nope.ckpt" --steps 5

# ---- jamo unit: bits per char against NFC code points --------------------
check "train --unit jamo" "$C" train "$D/text.txt" -o "$D/j.ckpt" "${TINY[@]}" --unit jamo --steps 30 --eval-every 0
check "eval jamo --json" sh -c "'$C' eval '$D/j.ckpt' '$D/text.txt' --json > '$D/j.json'"
if python3 - "$D/j.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["unit"] == "jamo" and d["tokens"] > d["chars"]      # syllables split into 2-3 jamo
ratio = d["bits_per_char"] / d["bits_per_token"]
expect = d["targets"] / (d["chars"] - 1)
assert abs(ratio - expect) < 1e-4, (ratio, expect)
PY
then pass "jamo bits per char = bits / (code points - 1)"; else fail "jamo bpc" "$(cat "$D/j.json")"; fi

# ---- fine-tuning ---------------------------------------------------------
check "init-from (unknown chars to <unk>)" "$C" train "$D/new.txt" -o "$D/f.ckpt" --init-from "$D/m.ckpt" \
    --steps 10 --batch 8 --seq 16 --threads 1
expect_grep "not in its vocabulary and map to <unk>" "$T_TMP/err" "init-from reports unknown characters"
v0=$("$C" info --json "$D/m.ckpt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vocab_size"])')
v1=$("$C" info --json "$D/f.ckpt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vocab_size"])')
check "init-from --extend-vocab" "$C" train "$D/new.txt" -o "$D/g.ckpt" --init-from "$D/m.ckpt" --extend-vocab \
    --steps 10 --batch 8 --seq 16 --threads 1
v2=$("$C" info --json "$D/g.ckpt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vocab_size"])')
[ "$v1" = "$v0" ] && [ "$v2" -gt "$v0" ] && pass "vocabulary kept ($v0) / extended ($v2)" ||
    fail "fine-tune vocab" "base $v0, init-from $v1, extend $v2"
expect_exit 2 "init-from refuses --hidden" "$C" train "$D/new.txt" -o "$D/h.ckpt" --init-from "$D/m.ckpt" --hidden 99

# ---- plot ----------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
    check "plot-loss" "$ROOT/tools/plot-loss" "$D/m.csv" -o "$D/loss.png"
    [ "$(head -c 4 "$D/loss.png" | od -An -c | tr -d ' ')" = "211PNG" ] && pass "plot is a PNG" || fail "plot is a PNG"
else
    echo "skip - gnuplot not installed: plot-loss not tested"
fi
expect_exit 1 "plot-loss of a non-log" "$ROOT/tools/plot-loss" "$D/text.txt" -o "$D/x.png"

# ---- a real text ---------------------------------------------------------
if have_shared tinyshakespeare.txt; then
    check "tinyshakespeare 800 steps" "$C" train "$SHARED/tinyshakespeare.txt" -o "$D/ts.ckpt" --layers 1 \
        --hidden 64 --batch 32 --seq 32 --lr 1e-2 --steps 800 --eval-every 400 --val-frac 0.02 \
        --log "$D/ts.csv" --threads 1 --quiet
    v=$(awk -F, 'END{print $5}' "$D/ts.csv")
    if awk -v a="$v" 'BEGIN{exit !(a != "" && a < 3.2)}'; then pass "tinyshakespeare val bpc $v < 3.2 (about 2.9 expected)"
    else fail "tinyshakespeare val bpc" "got '$v' (want < 3.2)"; fi
else
    echo "skip - \$CRN_SHARED_CORPORA/tinyshakespeare.txt absent: real-text run not done"
fi

# ---- initialisation, a schedule that knows the time, presets, automatic configuration (issue 12)
check "--init orthogonal --forget-bias 1" "$C" train "$D/text.txt" -o "$D/i.ckpt" "${TINY[@]}" --steps 3 \
    --init orthogonal --forget-bias 1
"$C" info "$D/i.ckpt" > "$D/i.info"
expect_grep "init orthogonal, forget bias 1" "$D/i.info" "info shows the init"
check "--cell gru without --init" "$C" train "$D/text.txt" -o "$D/gi.ckpt" --cell gru --layers 1 --hidden 8 \
    --batch 4 --seq 8 --threads 1 --quiet --steps 2
"$C" info "$D/gi.ckpt" > "$D/gi.info"
expect_grep "init orthogonal$" "$D/gi.info" "the default init of a gru is orthogonal"
check "resume keeps the init" "$C" train --resume "$D/i.ckpt" --steps 5 --quiet
expect_exit 2 "--init differs on resume" "$C" train --resume "$D/i.ckpt" --steps 6 --init xavier --quiet
expect_grep "--init conflicts with the checkpoint \(init orthogonal\)" "$T_TMP/err" "the conflict names the init"
for sched in cosine linear; do
    check "$sched with only --time" "$C" train "$D/text.txt" -o "$D/$sched.ckpt" "${TINY[@]}" --time 2s \
        --schedule $sched --eval-every 10 --log "$D/$sched.csv"
    check "$sched: lr starts at 2e-3 and ends near 0 when the time runs out" python3 -c '
import csv, sys
lr = [float(r["lr"]) for r in csv.DictReader(open(sys.argv[1]))]
print(lr[0], lr[-1], len(lr))
sys.exit(0 if len(lr) >= 4 and lr[0] > 1.5e-3 and lr[-1] < 1e-4 and lr == sorted(lr, reverse=True) else 1)' "$D/$sched.csv"
done
"$C" train "$D/text.txt" -o "$D/auto.ckpt" --time 2s --threads 1 --eval-every 50 2> "$D/auto.err"
expect_grep "^auto configuration: preset tiny \(lstm 1x128 layer norm, embed 32, dropout 0, batch 32 x seq 64, adam lr 0.002, constant rate: a short run\)" \
    "$D/auto.err" "a run without model options prints its automatic configuration"
expect_grep "vocabulary [0-9]+$" "$D/auto.err" "... and why (the vocabulary, the budget)"
"$C" info "$D/auto.ckpt" > "$D/auto.info"
expect_grep "lstm, 1 layers x 128 hidden, embedding input \(32\)" "$D/auto.info" "the automatic model is trained"
expect_grep "batch 32 x seq 64; adam lr 0.002, clip 5, constant schedule" "$D/auto.info" "... with its batch and schedule"
# a run of an hour, stopped as soon as it has said its choice (the probe may take
# seconds under a sanitizer on a loaded machine)
until_auto_line() { # ERR-FILE ARGS...: run charrnn train ARGS until ERR-FILE has the line (at most 60 s)
    local err=$1; shift
    "$C" train "$@" 2> "$err" &
    local pid=$! i=0
    while [ $i -lt 600 ] && ! grep -q "^auto configuration" "$err" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
until_auto_line "$D/auto3.err" "$D/text.txt" -o "$D/auto3.ckpt" --time 1h --threads 1 --eval-every 5
expect_grep "^auto configuration: preset tiny .*cosine to 0 over the budget\): .*~[0-9]+ steps\) in 3600 s" "$D/auto3.err" \
    "a long budget gets the cosine schedule"
until_auto_line "$D/auto4.err" "$D/text.txt" -o "$D/auto4.ckpt" --time 1h --threads 1 --eval-every 5 --no-layer-norm
expect_grep "^auto configuration: preset tiny \(lstm 1x128, embed 32," "$D/auto4.err" "--no-layer-norm keeps the automatic choice"
"$C" train "$D/text.txt" -o "$D/auto2.ckpt" --time 1s --threads 1 --batch 4 --dropout 0.3 --schedule constant 2> "$D/auto2.err"
expect_grep "^auto configuration" "$D/auto2.err" "options that leave the shape open keep the automatic choice"
"$C" info "$D/auto2.ckpt" > "$D/auto2.info"
expect_grep "dropout 0.3" "$D/auto2.info" "... and the given dropout wins"
expect_grep "batch 4 x seq 64; adam lr 0.002, clip 5, constant schedule" "$D/auto2.info" "... the given batch and schedule win"
"$C" train "$D/text.txt" -o "$D/noauto.ckpt" "${TINY[@]}" --time 1s 2> "$D/noauto.err"
if grep -q "auto configuration" "$D/noauto.err"; then fail "a given model shape turns the automatic choice off" "$(cat "$D/noauto.err")"
else pass "a given model shape turns the automatic choice off"; fi
check "--preset small --hidden 32" "$C" train "$D/text.txt" -o "$D/p.ckpt" --preset small --hidden 32 --steps 2 \
    --threads 1 --quiet
"$C" info "$D/p.ckpt" > "$D/p.info"
expect_grep "lstm, 2 layers x 32 hidden, embedding input \(64\), dropout 0.1" "$D/p.info" "the preset, with the given option winning"

# ---- dropout for the budget: a named model with no --dropout ----------------
TWO=(--cell gru --layers 2 --hidden 16 --batch 8 --seq 16 --threads 1 --eval-every 1000)
"$C" train "$D/text.txt" -o "$D/bd.ckpt" "${TWO[@]}" --steps 1200 2> "$D/bd.err"
expect_grep "^dropout 0\.[0-9]+ for the budget: [0-9.]+ epochs of [0-9.]+k tokens; --dropout 0 turns it off$" "$D/bd.err" \
    "a named model whose budget covers many epochs gets dropout, and says why"
check "... the dropout is the rule's for the epochs, and the model has it" python3 -c '
import json, math, re, sys
m = re.search(r"^dropout ([0-9.]+) for the budget: ([0-9.]+) epochs", open(sys.argv[1]).read(), re.M)
d, e = float(m.group(1)), float(m.group(2))
want = round(100 * min(0.25, 0.15 * math.log2(e / 3))) / 100
info = json.load(open(sys.argv[2]))
print(d, e, want, info["dropout"])
sys.exit(0 if e > 3 and abs(d - want) < 1e-9 and abs(info["dropout"] - d) < 1e-6 else 1)' "$D/bd.err" \
    <("$C" info --json "$D/bd.ckpt")
"$C" train "$D/text.txt" -o "$D/bd0.ckpt" "${TWO[@]}" --steps 1200 --dropout 0 2> "$D/bd0.err"
if grep -q "for the budget" "$D/bd0.err"; then fail "--dropout 0 keeps dropout off" "$(cat "$D/bd0.err")"
else pass "--dropout 0 keeps dropout off"; fi
expect_no_dropout() { # NAME CKPT: the model has no dropout
    if "$C" info "$2" | grep -q "dropout"; then fail "$1" "$("$C" info "$2")"; else pass "$1"; fi
}
expect_no_dropout "... and the model has none" "$D/bd0.ckpt"
"$C" train "$D/text.txt" -o "$D/bd1.ckpt" "${TWO[@]}" --steps 60 2> "$D/bd1.err"
if grep -q "for the budget" "$D/bd1.err"; then fail "a budget of under 3 epochs gets no dropout" "$(cat "$D/bd1.err")"
else pass "a budget of under 3 epochs gets no dropout"; fi
expect_no_dropout "... and the model has none" "$D/bd1.ckpt"
"$C" train "$D/text.txt" -o "$D/bd2.ckpt" --cell gru --layers 1 --hidden 16 --batch 8 --seq 16 --threads 1 \
    --steps 1200 --eval-every 1000 2> "$D/bd2.err"
expect_no_dropout "one layer gets no dropout (it acts between layers)" "$D/bd2.ckpt"
# ~5.7 epochs: past the gated cells' 3, short of the Elman RNN's 7
"$C" train "$D/text.txt" -o "$D/bd4.ckpt" "${TWO[@]}" --steps 800 2> "$D/bd4.err"
expect_grep "^dropout 0\.1[0-9] for the budget: [5-6]\.[0-9] epochs" "$D/bd4.err" "a GRU's budget of ~6 epochs gets dropout"
"$C" train "$D/text.txt" -o "$D/bd5.ckpt" "${TWO[@]}" --cell rnn --steps 800 2> "$D/bd5.err"
if grep -q "for the budget" "$D/bd5.err"; then fail "an Elman RNN's budget of ~6 epochs gets none" "$(cat "$D/bd5.err")"
else pass "an Elman RNN's budget of ~6 epochs gets none (it overfits later)"; fi
expect_no_dropout "... and the model has none" "$D/bd5.ckpt"
until_line() { # ERR-FILE PATTERN ARGS...: run charrnn train ARGS until ERR-FILE has PATTERN (at most 60 s)
    local err=$1 pat=$2; shift 2
    "$C" train "$@" 2> "$err" &
    local pid=$! i=0
    while [ $i -lt 600 ] && ! grep -q "$pat" "$err" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
until_line "$D/bd3.err" "for the budget" "$D/text.txt" -o "$D/bd3.ckpt" "${TWO[@]}" --time 1h
expect_grep "^dropout 0\.25 for the budget: [0-9.]+ epochs of [0-9.]+k tokens in 3600 s at ~[0-9]+k tokens/s \(measured\)" \
    "$D/bd3.err" "a time budget is priced by the model's measured speed"
# a corpus of 64 MB or more is counted only when the most epochs its budget may
# cover call for dropout (a text holds a token per 4 bytes or more)
{ yes "the quick brown fox jumps over the lazy dog, again and again." || true; } | head -c 70000000 > "$D/big.txt"
until_line "$D/bd6.err" "for the budget" "$D/big.txt" -o "$D/bd6.ckpt" "${TWO[@]}" --epochs 6
expect_grep "^dropout 0\.15 for the budget: 6\.0 epochs of 63\.0M tokens; --dropout 0 turns it off$" "$D/bd6.err" \
    "a large corpus whose budget calls for dropout is counted (63.0M tokens: its 90 % for training)"
"$C" train "$D/big.txt" -o "$D/bd7.ckpt" "${TWO[@]}" --epochs 2 --steps 2 --val-frac 0.001 2> "$D/bd7.err"
if grep -q "for the budget" "$D/bd7.err"; then fail "a large corpus with a budget under 3 epochs gets no dropout" "$(cat "$D/bd7.err")"
else pass "a large corpus with a budget under 3 epochs gets no dropout"; fi
expect_no_dropout "... and the model has none" "$D/bd7.ckpt"
rm -f "$D/big.txt" "$D"/bd7.ckpt*

summary
