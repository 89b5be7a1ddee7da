#!/usr/bin/env bash
# cli_bpc.sh — every bits-per-char figure is per NFC code point of the text,
# in every unit and under --normalize none (issue 10 item 3).
#
# One Korean + ASCII text, as an NFC and an NFD copy. Three runs see the very
# same token sequence (the jamo of every syllable), so with one seed they
# train bit-identical models and every figure must be identical:
#   jamo  on the NFC copy (nfc)
#   jamo  on the NFD copy (--normalize none)
#   codepoint on the NFD copy (--normalize none: its code points are jamo)
# checked: the training figure and the validation figure of every eval (--log
# CSV), and `eval` of each model on its own copy (bits per char, and the
# "chars" it divides by = NFC code points), and `show` against `eval --batch
# 1`. Grapheme clusters of the two
# copies are the same characters spelt differently (ids may be permuted), so
# those figures must be close, not equal. Before the fix the code point run
# reported bits per jamo, and the NFD jamo run's training and eval figures
# were per jamo too (~2.4x lower).
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN

python3 - "$D" <<'PY'
import random, sys, unicodedata
d = sys.argv[1]
random.seed(5)
w = ["하늘은", "파랗고", "바다는", "넓다", "우리는", "한국어를", "배웁니다", "값진", "닭", "the", "cat"]
text = "\n".join(" ".join(random.choice(w) for _ in range(7)) for _ in range(400)) + "\n"
open(f"{d}/nfc.txt", "w", encoding="utf-8").write(unicodedata.normalize("NFC", text))
open(f"{d}/nfd.txt", "w", encoding="utf-8").write(unicodedata.normalize("NFD", text))
PY
RUN=(--cell lstm --layers 1 --hidden 16 --batch 4 --seq 16 --threads 1 --quiet --seed 3 --steps 30 --eval-every 10)

train_run() { # NAME FILE ARGS...
    local name=$1 file=$2; shift 2
    check "train $name" "$C" train "$D/$file" -o "$D/$name.crn" "${RUN[@]}" --log "$D/$name.csv" "$@"
    check "eval $name" sh -c "'$C' eval '$D/$name.crn.resume' '$D/$file' --threads 1 --json > '$D/$name.eval'"
}
train_run jamo-nfc nfc.txt --unit jamo
train_run jamo-nfd nfd.txt --unit jamo --normalize none
train_run cp-nfd nfd.txt --unit codepoint --normalize none
train_run gr-nfc nfc.txt --unit grapheme
train_run gr-nfd nfd.txt --unit grapheme --normalize none
# `show` reports the same figure as `eval --batch 1`, per NFC code point too
for run in jamo-nfc:nfc cp-nfd:nfd; do
    name=${run%:*} file=${run#*:}.txt
    "$C" eval "$D/$name.crn.resume" "$D/$file" --batch 1 --threads 1 --json > "$D/$name.eval1" 2>/dev/null
    "$C" show "$D/$name.crn.resume" "$D/$file" -o "$D/$name.html" 2> "$D/$name.show"
    a=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["bits_per_char"])' "$D/$name.eval1")
    if grep -q ", $a bits/char" "$D/$name.show"; then pass "show $name: $a bits/char, as eval --batch 1"
    else fail "show $name: $a bits/char, as eval --batch 1" "$(head -2 "$D/$name.show")"; fi
done

if python3 - "$D" > "$D/py.out" 2>&1 <<'PY'
import csv, json, sys, unicodedata
d = sys.argv[1]
nfc_chars = len(unicodedata.normalize("NFC", open(f"{d}/nfc.txt", encoding="utf-8").read()))
def figures(name):
    rows = list(csv.DictReader(open(f"{d}/{name}.csv")))
    e = json.load(open(f"{d}/{name}.eval"))
    assert e["chars"] == nfc_chars, f"{name}: eval divides by {e['chars']} chars, the text has {nfc_chars} NFC code points"
    assert abs(e["bits_per_char"] * (e["chars"] - 1) - e["bits_per_token"] * e["targets"]) < 1e-6 * e["bits_per_char"] * e["chars"], e
    return [(float(r["train_bpc"]), float(r["val_bpc"])) for r in rows], e["bits_per_char"]
ref_log, ref_eval = figures("jamo-nfc")
assert len(ref_log) == 3, ref_log
for name in ("jamo-nfd", "cp-nfd"):
    log, ev = figures(name)
    for (a, b), (c, e) in zip(log, ref_log):
        assert abs(a - c) < 1e-5 * c and abs(b - e) < 1e-5 * e, f"{name}: train/val bpc {log} vs jamo-nfc {ref_log}"
    assert abs(ev - ref_eval) < 1e-5 * ref_eval, f"{name}: eval {ev} vs jamo-nfc {ref_eval}"
    print(f"{name}: identical to jamo-nfc (eval {ev:.4f} bits/char)")
g1, e1 = figures("gr-nfc")
g2, e2 = figures("gr-nfd")
for (a, b), (c, e) in zip(g1, g2):
    assert 0.85 < a / c < 1.18 and 0.85 < b / e < 1.18, f"grapheme nfc {g1} vs nfd {g2}"
assert 0.85 < e1 / e2 < 1.18, (e1, e2)
print(f"grapheme: nfc {e1:.4f}, nfd {e2:.4f} bits/char")
PY
then pass "bits per char are per NFC code point ($(tr '\n' ';' < "$D/py.out"))"
else fail "bits per char are per NFC code point" "$(cat "$D/py.out")"; fi

summary
