#!/usr/bin/env bash
# cli_show.sh — charrnn show and generate --show end to end, on tiny models
# trained here (code point, jamo, grapheme): the page's surprise sums to
# eval's total, the page parses with one coloured span per character (as
# written: combining marks, emoji, RTL, tabs), text is escaped, the cap, the
# CSV, the option errors of docs/errors.md (rows S01..), and a real browser
# (headless Chromium) renders the page, its legend and a selected
# character's candidates. Skips the browser part, saying so, only when
# chromium cannot be installed.
source "$(dirname "$0")/lib.sh"
C=$CHARRNN
CHECK="python3 $(dirname "$0")/show_check.py"

python3 - "$T_TMP" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(5)
lines = ['The cat said "hello (to me)" and sat.', 'A dog (a big one) ran.', '"Where?" asked she.',
         '하늘은 "파랗고" 바다는 (넓다).', '오늘은 날씨가 좋다.', '우리는 "같이" 간다.']
open(f"{d}/train.txt", "w", encoding="utf-8").write("\n".join(random.choice(lines) for _ in range(400)) + "\n")
open(f"{d}/text.txt", "w", encoding="utf-8").write(
    'The cat said "hello (to me)".\n하늘은 "파랗고" 바다는 (넓다).\n'
    "q\u0301 e\u0301 \U0001F469\u200d\U0001F469\u200d\U0001F467 \U0001F1F0\U0001F1F7\t\u05e9\u05dc\u05d5\u05dd "
    "\u0645\u0631\u062d\u0628\u0627\tend.\n" * 3)
open(f"{d}/evil.txt", "w", encoding="utf-8").write(
    "<script>document.title='PWNED'</script> & \"q\" 'a' </div><div id=pwn>x</div>"
    "<img src=x onerror=\"document.title='PWNED'\"> &amp; <!-- c --> ]]> \x01\r\n")
open(f"{d}/long.txt", "w", encoding="utf-8").write("The cat sat. 오늘은 좋다.\n" * 400)
PY
TRAIN=(--steps 60 --hidden 32 --layers 1 --batch 8 --seq 24 --threads 1 --quiet --seed 1 --val-frac 0)
for unit in codepoint jamo grapheme; do
    if ! "$C" train "$T_TMP/train.txt" -o "$T_TMP/$unit.crn" --unit "$unit" "${TRAIN[@]}" >"$T_TMP/train.log" 2>&1; then
        echo "SKIP: charrnn train cannot make a model in this build:"; head -5 "$T_TMP/train.log"; exit 77
    fi
done
"$C" train "$T_TMP/train.txt" -o "$T_TMP/gru.crn" --cell gru "${TRAIN[@]}" >/dev/null 2>&1
M=$T_TMP/codepoint.crn

# ---- surprise agrees with eval (one row from a zero state), every unit ------------
close() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-5 * max(abs(b), 1))' "$1" "$2"; }
for unit in codepoint jamo grapheme; do
    check "$unit: show" "$C" show "$T_TMP/$unit.crn" "$T_TMP/text.txt" -o "$T_TMP/$unit.html" --csv "$T_TMP/$unit.csv"
    sum=$($CHECK csvsum "$T_TMP/$unit.csv")
    eval_bits=$("$C" eval "$T_TMP/$unit.crn" "$T_TMP/text.txt" --batch 1 --json |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["bits_per_token"] * j["targets"], j["bits_per_char"])')
    if close "$sum" "${eval_bits% *}"; then pass "$unit: summed bits $sum = eval's total ${eval_bits% *}"
    else fail "$unit: summed bits $sum != eval's total ${eval_bits% *}"; fi
    bpc=$(grep -o 'id="bpc">[0-9.]*' "$T_TMP/$unit.html" | grep -o '[0-9.]*$')
    if python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 6e-4)' "$bpc" "${eval_bits#* }"
    then pass "$unit: page bits/char $bpc = eval ${eval_bits#* }"; else fail "$unit: page bits/char $bpc != eval ${eval_bits#* }"; fi
    # one coloured span per character, the text as written: a copy has 30 + 20 + 24 grapheme clusters
    # (q+accent, the ZWJ family and the flag are one each; the Hebrew and Arabic letters one each), x 3
    if out=$($CHECK page "$T_TMP/$unit.html" "$T_TMP/text.txt" 2>&1); then pass "$unit: page parses, spans = text ($out)"
    else fail "$unit: page" "$out"; fi
    [ "${out%% *}" = 222 ] && pass "$unit: 222 characters, one span each" || fail "$unit: ${out%% *} spans, want 222"
    rows=$(python3 -c 'import csv,sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1], encoding="utf-8", newline=""))))' "$T_TMP/$unit.csv")
    [ "$rows" = 222 ] && pass "$unit: CSV has a row per character" || fail "$unit: CSV has $rows rows"
done
head -1 "$T_TMP/codepoint.csv" > "$T_TMP/hdr"
expect_grep '^index,char,tokens,prefix,bits,p,top1,top1_p,.*,top5_p,l0\.h0,.*,l0\.h31$' "$T_TMP/hdr" "CSV header: top 5 and every unit"

# ---- options ------------------------------------------------------------------------
check "--neurons 0:3,0:7 --top 3 --cell-state" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/n.html" --neurons 0:3,0:7 \
    --top 3 --cell-state --csv "$T_TMP/n.csv" -q
out=$($CHECK page "$T_TMP/n.html" "$T_TMP/text.txt")
[ "${out#* }" = 2 ] && pass "two neuron panels" || fail "neuron panels: $out"
expect_grep 'layer 0, unit 3: .*\(r = [-+]0\.[0-9]{2}\)' "$T_TMP/n.html" "panel labelled with its feature and r"
expect_grep 'LSTM cell state c' "$T_TMP/n.html" "--cell-state named on the page"
head -1 "$T_TMP/n.csv" > "$T_TMP/hdr"
expect_grep ',top3_p,l0\.c0,' "$T_TMP/hdr" "--cell-state CSV columns l0.cN after 3 candidates"
check "--neurons none" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/none.html" --neurons none -q
out=$($CHECK page "$T_TMP/none.html" "$T_TMP/text.txt")
[ "${out#* }" = 0 ] && pass "--neurons none: no panel" || fail "--neurons none: $out"
check "--neurons auto" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/auto.html" --neurons auto
expect_grep '^  neuron 0:[0-9]+ +(quote|bracket|linepos|linestart|hangul|word) +r = [-+]0\.[0-9]{3}$' "$T_TMP/err" \
    "auto: units reported with feature and r"
grep -c '^  neuron' "$T_TMP/err" > "$T_TMP/cnt"
expect_grep '^6$' "$T_TMP/cnt" "auto: one unit per feature (all six vary in the text)"
check "-o - writes to stdout" "$C" show "$M" "$T_TMP/text.txt" -o - -q
cmp -s "$T_TMP/out" "$T_TMP/auto.html" && pass "stdout page = file page" || fail "stdout page differs from file page"

# ---- the cap ----------------------------------------------------------------------
check "--max-chars 100" "$C" show "$M" "$T_TMP/long.txt" -o "$T_TMP/cap.html" --max-chars 100
expect_grep 'showing the first 100 \(--max-chars\)' "$T_TMP/err" "cap reported on stderr"
expect_grep 'id="cap">Showing the first 100 of 8400 characters' "$T_TMP/cap.html" "cap stated on the page"
out=$($CHECK page "$T_TMP/cap.html" "$T_TMP/long.txt")
[ "${out%% *}" = 100 ] && pass "cap: 100 spans" || fail "cap: $out"
check "default cap 20000" "$C" show "$M" "$T_TMP/long.txt" -o "$T_TMP/nocap.html" -q
grep -q 'id="cap"' "$T_TMP/nocap.html" && fail "8400 characters were cut" || pass "8400 characters are under the default cap"

# ---- escaping -----------------------------------------------------------------------
check "show evil.txt" "$C" show "$M" "$T_TMP/evil.txt" -o "$T_TMP/evil.html" --title '<i>t</i>&'
if out=$($CHECK page "$T_TMP/evil.html" "$T_TMP/evil.txt" 2>&1); then pass "evil: every character is text ($out)"
else fail "evil: page" "$out"; fi
expect_grep '<title>charrnn show: &lt;i&gt;t&lt;/i&gt;&amp;</title>' "$T_TMP/evil.html" "--title escaped"

# ---- generate --show ----------------------------------------------------------------
check "generate --show" "$C" generate "$M" --prompt 'The cat' --length 60 --seed 3 --show "$T_TMP/gen.html" --json
python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); open(sys.argv[2],"w",encoding="utf-8").write(j["prompt"]+j["text"])' \
    "$T_TMP/out" "$T_TMP/gen.txt"
if out=$($CHECK page "$T_TMP/gen.html" "$T_TMP/gen.txt" 2>&1); then pass "generate --show: page = prompt + text ($out)"
else fail "generate --show: page" "$out"; fi
n_pre=$(grep -o 'class="s[0-9x]\( nl\)\? pre"' "$T_TMP/gen.html" | wc -l)
[ "$n_pre" -ge 7 ] && pass "generate --show: the prompt's 7 characters drawn as prompt" || fail "prompt spans: $n_pre"
expect_grep 'probability of the chosen character' "$T_TMP/gen.html" "generate --show: probability legend"
expect_grep '"mode":"generated"' "$T_TMP/gen.html" "generate --show: page mode"
check "generate --show, empty prompt, jamo model" "$C" generate "$T_TMP/jamo.crn" --length 30 --seed 2 --show "$T_TMP/genj.html"
expect_grep 'class="s[0-9x] nl pre"' "$T_TMP/genj.html" "empty prompt: the line break the generator starts from is context"

# ---- errors (docs/errors.md, rows S01..) ---------------------------------------------------
row() {
    local id=$1 code=$2 pat=$3; shift 3
    expect_exit "$code" "$id exit $code" "$@"
    expect_grep "$pat" "$T_TMP/err" "$id says /$pat/"
}
row S01 2 "missing -o PAGE.html" "$C" show "$M" "$T_TMP/text.txt"
row S02 2 "expected MODEL and TEXT" "$C" show "$M" -o "$T_TMP/x.html"
row S03 2 "--top: 0 is out of range \[1, 50\]" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/x.html" --top 0
row S04 2 "--max-chars: 0 is out of range \[1, 1000000\]" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/x.html" --max-chars 0
row S05 2 "--neurons: neuron '1x' is not LAYER:UNIT" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/x.html" --neurons 0:1,1x
row S06 1 "neuron 1:0 is out of range: the model has 1 layer of 32 units" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/x.html" --neurons 1:0
row S07 1 "cell states exist only in LSTM models; this one is gru" "$C" show "$T_TMP/gru.crn" "$T_TMP/text.txt" -o "$T_TMP/x.html" --cell-state
row S08 1 "missing.txt: No such file or directory" "$C" show "$M" "$T_TMP/missing.txt" -o "$T_TMP/x.html"
: > "$T_TMP/empty.txt"
row S09 1 "empty.txt: no text to show" "$C" show "$M" "$T_TMP/empty.txt" -o "$T_TMP/x.html"
row S10 1 "nodir/x.html: cannot create: No such file or directory" "$C" show "$M" "$T_TMP/text.txt" -o "$T_TMP/nodir/x.html"
row S11 2 "--show writes one sample's page: use --num 1" "$C" generate "$M" --num 2 --show "$T_TMP/x.html"

# ---- a real browser ------------------------------------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
    echo "note: chromium missing; trying tools/setup --no-build to install it"
    "$(dirname "$0")/../tools/setup" --no-build >/dev/null 2>&1 || true
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "SKIP: browser checks: chromium is not installed and could not be installed (tools/setup installs Debian's chromium)"
else
    CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$T_TMP/chrome")
    url="file://$T_TMP/codepoint.html"
    timeout 120 "${CHROME[@]}" --window-size=1200,900 --screenshot="$T_TMP/shot.png" "$url#sel=40" >/dev/null 2>&1
    # swatches of the surprise legend (0 and 9+ bits) and the neuron legend (-1 and +1)
    if out=$($CHECK png "$T_TMP/shot.png" a8202b 2166ac b2182b 2>&1); then pass "chromium screenshot is not blank, shows the legends ($out)"
    else fail "chromium screenshot" "$out"; fi
    timeout 120 "${CHROME[@]}" --virtual-time-budget=3000 --dump-dom "$url#sel=40" > "$T_TMP/dom.html" 2>/dev/null
    if out=$($CHECK dom "$T_TMP/dom.html" 40 2>&1); then pass "chromium: character 40 selected, its candidates shown ($out)"
    else fail "chromium: selected character's candidates" "$out"; fi
    timeout 120 "${CHROME[@]}" --virtual-time-budget=3000 --dump-dom "file://$T_TMP/evil.html#sel=3" > "$T_TMP/edom.html" 2>/dev/null
    if out=$($CHECK dom "$T_TMP/edom.html" 3 2>&1) && grep -q '<title>charrnn show: ' "$T_TMP/edom.html" &&
        ! grep -q 'PWNED</title>' "$T_TMP/edom.html"; then pass "chromium: evil text ran nothing ($out)"
    else fail "chromium: evil page" "$out"; fi
    # hovering (a script dispatches the event in the page, then the DOM is dumped)
    sed 's|</body>|<script>var t=document.getElementById("text").children[7];t.dispatchEvent(new MouseEvent("mouseover",{bubbles:true}));</script></body>|' \
        "$T_TMP/jamo.html" > "$T_TMP/hover.html"
    timeout 120 "${CHROME[@]}" --virtual-time-budget=3000 --dump-dom "file://$T_TMP/hover.html" > "$T_TMP/hdom.html" 2>/dev/null
    if out=$($CHECK dom "$T_TMP/hdom.html" 7 2>&1); then pass "chromium: hovering character 7 shows its candidates ($out)"
    else fail "chromium: hover" "$out"; fi
fi
summary
