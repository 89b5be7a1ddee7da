#!/usr/bin/env bash
# cli_classify.sh — `charrnn classify`: a synthetic task that must reach
# 100 %, padding invariance through predict (each line alone vs in sorted
# batches, 1 and 2 threads, in input order), streaming through a pipe, CSV quoting, JSON outputs, repl/info on a classifier, and every
# malformed-input row C01.. of docs/errors.md (message grepped, exit status).
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN

row() {
    local id=$1 code=$2 pat=$3; shift 3
    expect_exit "$code" "$id exit $code" "$@"
    [ -z "$pat" ] || expect_grep "$pat" "$T_TMP/err" "$id says /$pat/"
    [ -z "${CRN_ERRORS_DUMP:-}" ] || printf '%s|%s|%s\n' "$id" "$code" "$(grep -v '^Try ' "$T_TMP/err" | head -1)" >> "$CRN_ERRORS_DUMP"
}

python3 - "$D" <<'PY'
import random, sys
d = sys.argv[1]
syl = "가나다라마바사아자차카타파하"
def parity(path, n, seed):
    r = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\ttext\tlabel\n")
        for i in range(n):
            s = "".join(r.choice(syl) for _ in range(r.randint(1, 16)))
            f.write(f"{i}\t{s}\t{'odd' if s.count('가') % 2 else 'even'}\n")
parity(f"{d}/odd.tsv", 2000, 5)
parity(f"{d}/odd_test.tsv", 500, 6)
# three classes, CSV with RFC 4180 quoting (commas, doubled quotes, a line break)
with open(f"{d}/three.csv", "w", encoding="utf-8", newline="") as f:
    f.write('text,label\r\n')
    r = random.Random(7)
    for i in range(300):
        k = r.choice(["spam", "ham", "eggs"])
        w = {"spam": "win money now", "ham": "see you at lunch", "eggs": "보고서 첨부합니다"}[k]
        f.write(f'"{w}, ""{i}""\nbye",{k}\r\n' if i % 3 == 0 else f"{w} {i},{k}\r\n")
good = "id\tdocument\tlabel\n" + "".join(f"{i}\t좋은 영화 {i}\t{i % 2}\n" for i in range(6000))
open(f"{d}/good.tsv", "w", encoding="utf-8").write(good)
open(f"{d}/nocol.tsv", "w").write("id\tbody\tlabel\n1\tx\t0\n2\ty\t1\n")
open(f"{d}/ragged.tsv", "w").write("id\tdocument\tlabel\n1\tgood\t0\n2\tbad\t1\n3\tshort\n4\tok\t1\n")
open(f"{d}/unterminated.csv", "w").write('text,label\ngood,0\n"never closed,1\nok,0\n')
open(f"{d}/strayquote.csv", "w").write('text,label\ngood,0\nsay "hi",1\n')
open(f"{d}/oneclass.tsv", "w").write("id\tdocument\tlabel\n1\ta\tpos\n2\tb\tpos\n")
open(f"{d}/emptytext.tsv", "w").write("id\tdocument\tlabel\n1\ta\t0\n2\t\t1\n")
open(f"{d}/emptylabel.tsv", "w").write("id\tdocument\tlabel\n1\ta\t0\n2\tb\t\n")
open(f"{d}/headeronly.tsv", "w").write("id\tdocument\tlabel\n")
lines = good.encode().split(b"\n")
lines[5000] = b"4999\t\xec\x95\x88\xff\t1"   # data row 5,000 = line 5,001, column 7
open(f"{d}/badutf8.tsv", "wb").write(b"\n".join(lines))
open(f"{d}/newclass.tsv", "w").write("id\tdocument\tlabel\n1\ta\teven\n2\tb\tmaybe\n")
open(f"{d}/pred_bad.txt", "wb").write("가가\n".encode() + b"ok \xc3\x28\n")
open(f"{d}/t.txt", "w").write("the cat sat on the mat\n" * 200)
PY

# ---- a synthetic task that must be learned exactly -------------------------
check "train parity of 가" $C classify train "$D/odd.tsv" -o "$D/odd.ckpt" --epochs 30 --hidden 32 --embed 16 \
    --pool last --lr 0.01 --threads 1 --quiet --log "$D/odd.csv"
check "eval parity on unseen lines" $C classify eval "$D/odd.ckpt" "$D/odd_test.tsv" --json
expect_grep '"accuracy":1\.000000' "$T_TMP/out" "parity: 100 % on 500 unseen lines"
expect_grep '"confusion":\[\[[0-9]+,0\],\[0,[0-9]+\]\]' "$T_TMP/out" "parity: diagonal confusion matrix"
expect_grep '^step,epoch,seconds,lr,train_loss,val_loss,val_acc,val_f1$' "$D/odd.csv" "CSV log header"

# ---- padding invariance: each line alone (chunk 1) vs padded batches -------
cut -f2 "$D/odd_test.tsv" | tail -n +2 > "$D/lines.txt"
check "predict batched" $C classify predict "$D/odd.ckpt" "$D/lines.txt" --json --threads 1
cp "$T_TMP/out" "$D/batched.json"
check "predict one at a time" $C classify predict "$D/odd.ckpt" "$D/lines.txt" --json --chunk 1 --threads 1
cp "$T_TMP/out" "$D/alone.json"
check "predict batched on 2 threads" $C classify predict "$D/odd.ckpt" "$D/lines.txt" --json --threads 2
cp "$T_TMP/out" "$D/batched2.json"
check "predict in chunks of 37, batches of 5, 2 threads" $C classify predict "$D/odd.ckpt" "$D/lines.txt" --json \
    --chunk 37 --batch 5 --threads 2
cp "$T_TMP/out" "$D/small2.json"
# the answers in input order: line i's probabilities alone = in sorted batches
# (1 and 2 threads); the lines.txt texts differ, so a reordering would show
if python3 - "$D/alone.json" "$D/batched.json" "$D/batched2.json" "$D/small2.json" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
assert len(a) == 500, len(a)
assert len({json.dumps(x) for x in a}) > 100  # distinct answers: an order change is visible
for path in sys.argv[2:]:
    b = [json.loads(l) for l in open(path)]
    assert len(b) == 500, (path, len(b))
    worst = max(abs(x["probs"][k] - y["probs"][k]) for x, y in zip(a, b) for k in x["probs"])
    assert all(x["label"] == y["label"] for x, y in zip(a, b)), path
    assert worst <= 1e-5, (path, worst)
PY
then pass "padding invariance: same probabilities alone and in sorted batches, 1 and 2 threads, in input order"
else fail "padding invariance: same probabilities alone and in sorted batches, 1 and 2 threads, in input order"; fi
# streaming: through a pipe, each answer comes before the input ends (the
# default chunk of 4096 lines is answered as soon as the input pauses)
mkfifo "$D/in.fifo" "$D/out.fifo"
$C classify predict "$D/odd.ckpt" --threads 2 < "$D/in.fifo" > "$D/out.fifo" 2>"$T_TMP/err" &
PRED=$!
exec 7>"$D/in.fifo" 8<"$D/out.fifo"
printf '가나\n' >&7
A1=; A2=
IFS= read -r -t 30 A1 <&8
printf '가가나\n다\n' >&7
IFS= read -r -t 30 A2 <&8
exec 7>&-
IFS= read -r -t 30 A3 <&8
exec 8<&-
if [[ $A1 == odd$'\t'* && $A2 == even$'\t'* && $A3 == even$'\t'* ]]; then pass "predict streams: an answer per line before the input is closed"
else fail "predict streams: an answer per line before the input is closed" "got '$A1' '$A2' '${A3:-}'"; kill "$PRED" 2>/dev/null; fi
if wait "$PRED"; then pass "predict streams: exit 0 at the end of the input"; else fail "predict streams: exit 0 at the end of the input"; fi
printf '가\n가나가\n' | $C classify predict "$D/odd.ckpt" > "$T_TMP/out" 2>"$T_TMP/err"
expect_grep '^odd	0\.[0-9]{4}$' "$T_TMP/out" "predict prints LABEL<TAB>PROBABILITY"
printf '가가가\n' | $C repl "$D/odd.ckpt" > "$T_TMP/out" 2>"$T_TMP/err"
expect_grep '"label":"odd"' "$T_TMP/out" "repl on a classifier labels the line"
check "info on a classifier" $C info "$D/odd.ckpt"
expect_grep 'classifier \(sigmoid head, 2 classes: even odd\)' "$T_TMP/out" "info shows the head"

# ---- CSV quoting, three classes (softmax), numeric column -------------------
check "train 3 classes from CSV" $C classify train "$D/three.csv" -o "$D/three.ckpt" --epochs 4 --hidden 16 \
    --embed 8 --bidirectional=all --layers 2 --pool mean --threads 1 --quiet
check "eval CSV by column number" $C classify eval "$D/three.ckpt" "$D/three.csv" --text-column 1 --json
expect_grep '^\{"lines":300,' "$T_TMP/out" "CSV: 300 records (quoted commas, quotes and line breaks)"
expect_grep '"label":"eggs".*"label":"ham".*"label":"spam"' "$T_TMP/out" "classes discovered in byte order"
check "info: softmax head" $C info --json "$D/three.ckpt"
expect_grep '"head": "softmax", "classes": \["eggs", "ham", "spam"\], "pooling": "mean", "direction": "all"' \
    "$T_TMP/out" "info --json shows head, pooling and direction"

# ---- a generator is not a classifier, and the other way round ---------------
check "tiny generator" $C train "$D/t.txt" -o "$D/gen.ckpt" --cell gru --hidden 8 --batch 4 --seq 8 --steps 3 \
    --threads 1 --quiet
check "init-from a generator" $C classify train "$D/odd.tsv" -o "$D/init.ckpt" --init-from "$D/gen.ckpt" \
    --bidirectional --epochs 1 --threads 1
expect_grep 'init-from .*gen\.ckpt: 12 tensors copied' "$T_TMP/err" \
    "init-from copies the generator's layers and layer-norm gains (l0.*, l1.*: 8 + 4 ln_g*)"
expect_grep 'model: gru embed 0 hidden 8 layers 2, layer norm,' "$T_TMP/err" "init-from takes the generator's cell, sizes and layer norm"
check "info: a classifier from a layer-norm generator" $C info "$D/init.ckpt"
expect_grep '^model +gru, 2 layer\(s\) x 8, embed 0, dropout 0\.3, layer norm$' "$T_TMP/out" "info shows layer norm"
check "info --json: layer norm" $C info --json "$D/init.ckpt"
expect_grep '"layer_norm": true' "$T_TMP/out" "info --json: \"layer_norm\": true"
# the LN gains are the generator's, not the classifier's initial 1s (ln_g* of a trained generator moved off 1)
check "a plain generator" $C train "$D/t.txt" -o "$D/gen0.ckpt" --cell lstm --hidden 8 --batch 4 --seq 8 --steps 3 \
    --no-layer-norm --threads 1 --quiet
check "init-from a plain generator" $C classify train "$D/odd.tsv" -o "$D/init0.ckpt" --init-from "$D/gen0.ckpt" \
    --epochs 1 --threads 1
expect_grep 'init-from .*gen0\.ckpt: 8 tensors copied' "$T_TMP/err" "init-from a plain generator: 8 tensors, no LN"
expect_grep 'model: lstm embed 0 hidden 8 layers 2, forward' "$T_TMP/err" "init-from a plain generator: no layer norm"
check "a layer-norm LSTM generator" $C train "$D/t.txt" -o "$D/gen1.ckpt" --cell lstm --hidden 8 --batch 4 --seq 8 \
    --steps 3 --threads 1 --quiet
check "init-from a layer-norm LSTM generator, both layers bidirectional" $C classify train "$D/odd.tsv" \
    -o "$D/init1.ckpt" --init-from "$D/gen1.ckpt" --bidirectional=all --epochs 1 --threads 1
# l0.* (4 + 4 ln), l1.w_h, l1.b_x, l1.b_h and l1's 4 ln tensors (l1.w_x is wider: 2H rows; the generator's are its first H)
expect_grep 'init-from .*gen1\.ckpt: 16 tensors copied' "$T_TMP/err" "init-from an LSTM: its ln_gx, ln_gh, ln_gc, ln_bc too"
check "predict with the bidirectional layer-norm LSTM" $C classify predict "$D/init1.ckpt" "$D/lines.txt" --json --threads 1
cp "$T_TMP/out" "$D/ln_batched.json"
check "predict it line by line" $C classify predict "$D/init1.ckpt" "$D/lines.txt" --json --chunk 1 --threads 2
if cmp -s "$T_TMP/out" "$D/ln_batched.json" || python3 - "$T_TMP/out" "$D/ln_batched.json" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 500
assert max(abs(x["probs"][k] - y["probs"][k]) for x, y in zip(a, b) for k in x["probs"]) <= 1e-5
PY
then pass "layer norm: padding invariance of predict (alone vs sorted batches)"
else fail "layer norm: padding invariance of predict (alone vs sorted batches)"; fi
# the file: layer norm is the FEATURES section (bit 1); a plain classifier has none, the layout of files
# written before layer norm existed (which load as plain classifiers)
sections() { python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n, pos, types = struct.unpack_from("<I", b, 12)[0], 16, []
for _ in range(n):  # section = type:u32 flags:u32 length:u64 payload crc:u32
    types.append(str(struct.unpack_from("<I", b, pos)[0]))
    pos += 16 + struct.unpack_from("<Q", b, pos + 8)[0] + 4
assert pos == len(b)
print(" ".join(types))
PY
}
S1=$(sections "$D/init.ckpt"); S0=$(sections "$D/init0.ckpt")
[[ " $S1 " == *" 7 "* && " $S0 " != *" 7 "* ]] && pass "FEATURES section with layer norm only (sections: $S1 / $S0)" ||
    fail "FEATURES section with layer norm only" "$S1 / $S0"

# ---- Ctrl-C: a last eval, the best model kept, exit 130 ------------------------
$C classify train "$D/odd.tsv" -o "$D/int.ckpt" --time 60s --hidden 16 --embed 8 --balance --eval-every 1000000 \
    --threads 1 >"$T_TMP/out" 2>"$T_TMP/err" &
pid=$!
sleep 2
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && pass "SIGINT: exit 130" || fail "SIGINT: exit 130" "got $rc" "$(tail -3 "$T_TMP/err")"
expect_grep 'interrupted; the best model so far is in' "$T_TMP/err" "SIGINT: says where the model is"
expect_grep 'continue with: charrnn classify train --resume' "$T_TMP/err" "SIGINT: says how to resume"
check "SIGINT: the model is complete" $C classify eval "$D/int.ckpt" "$D/odd_test.tsv"


# ---- resume: exact continuation (one thread) ----------------------------------
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [d := d[k] for k in sys.argv[2:]]; print(d)' "$@"; }
RS=(--hidden 16 --embed 8 --batch 32 --eval-every 7 --threads 1 --quiet)
check "resume: 40 steps (constant lr, dropout)" $C classify train "$D/odd.tsv" -o "$D/ra.ckpt" "${RS[@]}" --constant-lr --steps 40
check "resume: on to 80 (past an epoch end)" $C classify train --resume "$D/ra.ckpt" --steps 80 --threads 1 --quiet
check "resume: 80 steps straight" $C classify train "$D/odd.tsv" -o "$D/rb.ckpt" "${RS[@]}" --constant-lr --steps 80
$C info --json "$D/ra.ckpt.resume" > "$D/ra.json"; $C info --json "$D/rb.ckpt.resume" > "$D/rb.json"
pa=$(jget "$D/ra.json" params_crc32); pb=$(jget "$D/rb.json" params_crc32)
oa=$(jget "$D/ra.json" training optimizer_crc32); ob=$(jget "$D/rb.json" training optimizer_crc32)
[ "$pa" = "$pb" ] && [ "$oa" = "$ob" ] && pass "40 + resume 40 == 80, bit for bit (params $pa, optimizer $oa)" ||
    fail "resume determinism" "params $pa vs $pb, optimizer $oa vs $ob"
[ "$(jget "$D/ra.json" training step)" = 80 ] && pass "resumed run counts steps as totals" || fail "resume step total"
# SIGTERM anywhere, then resume with the same (cosine) budget == the run in one go
# (a budget long enough that the signal comes mid-run on a fast idle machine too;
# the signal is sent once the run has saved its first state, so it is training)
RC=(--hidden 16 --embed 8 --batch 32 --eval-every 50 --threads 1 --quiet --steps 20000)
check "resume: 20000 steps straight (cosine)" $C classify train "$D/odd.tsv" -o "$D/rs.ckpt" "${RC[@]}"
$C classify train "$D/odd.tsv" -o "$D/rt.ckpt" "${RC[@]}" 2>"$T_TMP/err" &
pid=$!
for _ in $(seq 600); do [ -f "$D/rt.ckpt.resume" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && pass "SIGTERM: exit 130" || fail "SIGTERM: exit 130" "got $rc"
check "SIGTERM: the run state loads" $C info --json "$D/rt.ckpt.resume"
expect_grep '"stop": "interrupted"' "$T_TMP/out" "SIGTERM: the run state records the interrupt"
st=$($C info --json "$D/rt.ckpt.resume" | python3 -c 'import json,sys; print(json.load(sys.stdin)["training"]["step"])')
check "resume after SIGTERM (same budget)" $C classify train --resume "$D/rt.ckpt.resume" --threads 1 --quiet
pt=$($C info --json "$D/rt.ckpt.resume" | python3 -c 'import json,sys; print(json.load(sys.stdin)["params_crc32"])')
ps=$($C info --json "$D/rs.ckpt.resume" | python3 -c 'import json,sys; print(json.load(sys.stdin)["params_crc32"])')
[ "$pt" = "$ps" ] && pass "stopped at step $st + resumed == straight (params $ps)" ||
    fail "SIGTERM resume determinism" "stopped at $st: $pt vs $ps"
check "the best model of a resumed run" $C classify eval "$D/rt.ckpt" "$D/odd_test.tsv"

# ---- progress: a live line on a terminal, one line per eval otherwise ---------
PG=(--hidden 16 --embed 8 --steps 300 --eval-every 100 --threads 1)
check "progress without a terminal" $C classify train "$D/odd.tsv" -o "$D/pg.ckpt" "${PG[@]}"
[ "$(grep -c '^step [0-9]*  epoch' "$T_TMP/err")" = 3 ] && ! grep -q 'lines/s' "$T_TMP/err" &&
    pass "not a terminal: one plain line per eval (3), no live line" || fail "plain progress" "$(cat "$T_TMP/err")"
script -qec "$C classify train '$D/odd.tsv' -o '$D/pg.ckpt' ${PG[*]}" /dev/null > "$D/tty.out" 2>&1
tr '\r' '\n' < "$D/tty.out" > "$D/tty.txt"
expect_grep '^epoch [0-9.]+ \| step [0-9]+/300 \| lr .* \| train loss [0-9.]+ \| val acc .* lines/s \| .* left' "$D/tty.txt" \
    "terminal: the live line (epoch, step/total, loss, accuracy, rate, time left)"
[ "$(grep -c '^step [0-9]*  epoch' "$D/tty.txt")" = 3 ] && pass "terminal: the 3 eval lines stay" ||
    fail "terminal eval lines" "$(head -c 600 "$D/tty.txt")"

# ---- cleaning: --drop/--replace at train, stored, applied at eval and predict --
python3 - "$D" <<'PY2'
import random, sys
r = random.Random(3)
with open(f"{sys.argv[1]}/spam.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(600):
        k = r.choice(["spam", "ham"])
        w = {"spam": "WIN money now", "ham": "see you at lunch"}[k]
        f.write(f"{w} {i}\t{k}\n" if i % 10 else f"IGNORE {w}\t{k}\n")
PY2
CL=(--drop '^IGNORE' --replace '[0-9]+=#' --replace 'WIN=win' --epochs 2 --hidden 8 --embed 4 --threads 1)
check "train with --drop and --replace" $C classify train "$D/spam.tsv" -o "$D/sp.ckpt" "${CL[@]}"
expect_grep 'cleaning: 60 rows left out by --keep/--drop' "$T_TMP/err" "train: --drop leaves out the 60 IGNORE rows"
check "eval with the model's cleaning" $C classify eval "$D/sp.ckpt" "$D/spam.tsv" --json
expect_grep '^\{"lines":540,' "$T_TMP/out" "eval: the same rows left out (540 of 600)"
check "info: the replacements left no digit in the vocabulary" $C info --json "$D/sp.ckpt"
expect_grep '"vocab_size": 1[0-9],' "$T_TMP/out" "vocabulary of the cleaned texts (no digits, no 'W', 'I', 'N')"
printf 'see you 12345\nsee you #\nWIN money 7\nwin money #\n' | $C classify predict "$D/sp.ckpt" --json > "$D/sp.json"
if python3 - "$D/sp.json" <<'PY2'
import json, sys
p = [json.loads(l)["probs"] for l in open(sys.argv[1])]
assert len(p) == 4 and p[0] == p[1] and p[2] == p[3], p
PY2
then pass "predict applies the stored replacements (digits -> #, WIN -> win)"
else fail "predict applies the stored replacements" "$(cat "$D/sp.json")"; fi
check "resume keeps the cleaning" $C classify train --resume "$D/sp.ckpt" --epochs 3 --threads 1 --quiet
check "eval after the resume" $C classify eval "$D/sp.ckpt" "$D/spam.tsv" --json
expect_grep '^\{"lines":540,' "$T_TMP/out" "resumed run: same rows left out"

# ---- malformed inputs: rows C01.. of docs/errors.md --------------------------
TR=(--epochs 1 --hidden 8 --embed 4 --threads 1 --quiet)
row C01 1 'nocol\.tsv:1:1: no text column .document. or .text. in the header' \
    $C classify train "$D/nocol.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C02 1 'good\.tsv:1:1: column 7 requested, the header has 3 columns' \
    $C classify train "$D/good.tsv" -o "$D/x.ckpt" --label-column 7 "${TR[@]}"
row C03 1 'ragged\.tsv:4:8: ragged row: 2 fields, the header has 3' \
    $C classify train "$D/ragged.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C04 1 'unterminated\.csv:3:1: unterminated quoted field' \
    $C classify train "$D/unterminated.csv" -o "$D/x.ckpt" "${TR[@]}"
row C05 1 'strayquote\.csv:3:5: quote inside an unquoted CSV field' \
    $C classify train "$D/strayquote.csv" -o "$D/x.ckpt" "${TR[@]}"
row C06 1 "oneclass\.tsv:2:5: only one class \('pos'\) in column 'label'" \
    $C classify train "$D/oneclass.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C07 1 "emptytext\.tsv:3:3: empty text in column 'document'" \
    $C classify train "$D/emptytext.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C08 1 'badutf8\.tsv:5001:7: invalid UTF-8' \
    $C classify train "$D/badutf8.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C09 1 "emptylabel\.tsv:3:5: empty label in column 'label'" \
    $C classify train "$D/emptylabel.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C10 1 'headeronly\.tsv:2:1: no data rows after the header' \
    $C classify train "$D/headeronly.tsv" -o "$D/x.ckpt" "${TR[@]}"
row C11 1 "newclass\.tsv:3:5: label 'maybe' is not one of the 2 classes" \
    $C classify eval "$D/odd.ckpt" "$D/newclass.tsv"
row C12 1 "good\.tsv:2:1[0-9]: label '0' is not one of the 2 classes" \
    $C classify train "$D/good.tsv" -o "$D/x.ckpt" --classes a,b "${TR[@]}"
row C13 1 'pred_bad\.txt:2:4: invalid UTF-8' \
    $C classify predict "$D/odd.ckpt" "$D/pred_bad.txt"
row C14 1 'gen\.ckpt: this is a character generator, not a classifier' \
    $C classify predict "$D/gen.ckpt" "$D/lines.txt"
row C15 1 'odd\.ckpt: this is a classifier \(2 classes\), not a character generator' \
    $C generate "$D/odd.ckpt" --length 5
row C16 2 "unknown pooling 'avg'" \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --pool avg
row C17 2 'unknown subcommand .fit.' \
    $C classify fit "$D/odd.tsv"
row C18 2 '--hidden conflicts with the run being resumed \(16\)' \
    $C classify train --resume "$D/ra.ckpt" --hidden 64
row C18 2 "DATA '.*three\.csv' conflicts with the run being resumed" \
    $C classify train --resume "$D/ra.ckpt" "$D/three.csv"
row C18 2 '--drop conflicts with the run being resumed \(1 --drop patterns\)' \
    $C classify train --resume "$D/sp.ckpt" --drop x
row C18 2 '--no-layer-norm conflicts with the run being resumed \(layer norm\)' \
    $C classify train --resume "$D/ra.ckpt" --no-layer-norm
check "resume: --layer-norm as the run has it" $C classify train --resume "$D/ra.ckpt" --layer-norm --steps 81 \
    --threads 1 --quiet
row C19 1 'nope\.ckpt\.resume: cannot open model file' \
    $C classify train --resume "$D/nope.ckpt"
cp "$D/odd.ckpt" "$D/norun.ckpt.resume"
row C20 1 'norun\.ckpt\.resume: no run state' \
    $C classify train --resume "$D/norun.ckpt"
row C21 1 "--keep: bad regex '\(' at offset 1: missing closing parenthesis" \
    $C classify train "$D/spam.tsv" -o "$D/x.ckpt" --keep '(' "${TR[@]}"
row C22 1 'spam\.tsv: no rows left after --keep/--drop \(600 of 600 dropped\)' \
    $C classify train "$D/spam.tsv" -o "$D/x.ckpt" --keep zzz "${TR[@]}"
row C23 2 '--no-layer-norm conflicts with --init-from .*gen\.ckpt \(a generator with layer norm\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen.ckpt" --no-layer-norm "${TR[@]}"
row C23 2 '--layer-norm conflicts with --init-from .*gen0\.ckpt \(a generator without layer norm\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen0.ckpt" --layer-norm "${TR[@]}"
row C23b 2 '--hidden 16 conflicts with --init-from .*gen\.ckpt \(a generator with hidden 8\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen.ckpt" --hidden 16 --epochs 1 --threads 1 --quiet
row C23b 2 '--cell lstm conflicts with --init-from .*gen\.ckpt \(a generator of gru cells\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen.ckpt" --cell lstm --epochs 1 --threads 1 --quiet
row C23b 2 '--layers 3 conflicts with --init-from .*gen\.ckpt \(a generator with 2 layers\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen.ckpt" --layers 3 --epochs 1 --threads 1 --quiet
row C23b 2 '--embed 4 conflicts with --init-from .*gen\.ckpt \(a generator with embed 0\)' \
    $C classify train "$D/odd.tsv" -o "$D/x.ckpt" --init-from "$D/gen.ckpt" --embed 4 --epochs 1 --threads 1 --quiet
[ ! -e "$D/x.ckpt" ] && pass "no model written by a failed train" || fail "no model written by a failed train"
check "init-from with the generator's own sizes given" $C classify train "$D/odd.tsv" -o "$D/same.ckpt" \
    --init-from "$D/gen.ckpt" --cell gru --hidden 8 --layers 2 --embed 0 --epochs 1 --threads 1 --quiet

summary
