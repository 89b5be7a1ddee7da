#!/usr/bin/env bash
# cli_vocab.sh — `charrnn vocab`: statistics checked against an independent
# count in Python (json, unicodedata; Hangul split arithmetically), cleaning
# options, invalid UTF-8, BOM, and the error exits.
. "$(dirname "$0")/lib.sh"

HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then HAVE_PY=1; else echo "python3 not found: skipping the independent counts"; fi

# Independent counts in Python, batched into one run (Python's start-up is
# the slow part): pyq NAME JSON TEXT UNIT NORM POLICY queues a comparison of
# the JSON output of `vocab` with Python's count of TEXT; pyrun runs the queue
# and records one pass/fail per comparison.
# The Python side reads the bytes, drops a BOM, decodes (repairing like the
# policy), normalises, and counts code points, tokens (jamo split
# arithmetically) and distinct tokens; the top list must hold true counts in
# descending order.
PYQ_N=0
pyq() {
    PYQ_N=$((PYQ_N + 1))
    cp "$2" "$T_TMP/pyq$PYQ_N.json"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$T_TMP/pyq$PYQ_N.json" "$3" "$4" "$5" "$6" >>"$T_TMP/pyq.tsv"
}
pyrun() {
    [ -s "$T_TMP/pyq.tsv" ] || return 0
    python3 - "$T_TMP/pyq.tsv" >"$T_TMP/pyq.out" 2>&1 <<'EOF'
import json, sys, unicodedata

def jamo(s):
    for ch in s:
        o = ord(ch) - 0xAC00
        if 0 <= o < 11172:
            yield chr(0x1100 + o // 588)
            yield chr(0x1161 + (o % 588) // 28)
            if o % 28:
                yield chr(0x11A7 + o % 28)
        else:
            yield ch

def compare(jf, tf, unit, norm, policy):
    got = json.load(open(jf, encoding="utf-8"))
    whole = open(tf, "rb").read()
    raw = whole[3:] if whole.startswith(b"\xef\xbb\xbf") else whole
    text = raw.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if policy == "skip":
        text = raw.decode("utf-8", errors="ignore")
    if norm != "none":
        text = unicodedata.normalize(norm.upper(), text)
    toks = list(jamo(text)) if unit == "jamo" else list(text)
    want = {"chars": len(text), "tokens": len(toks), "distinct": len(set(toks)), "invalid": invalid,
            "bom": len(raw) != len(whole), "bytes": len(whole), "unit": unit, "normalize": norm}
    bad = [f"{k}: got {got.get(k)!r}, want {v!r}" for k, v in want.items() if got.get(k) != v]
    counts = {}
    for t in toks:
        counts[t] = counts.get(t, 0) + 1
    prev = None
    for e in got.get("top", []):
        if counts.get(e["token"]) != e["count"]:
            bad.append(f"top {e['token']!r}: got {e['count']}, want {counts.get(e['token'])}")
        if prev is not None and e["count"] > prev:
            bad.append("top list not sorted")
        prev = e["count"]
    if not got.get("top") or got["top"][0]["count"] != max(counts.values()):
        bad.append("the top list does not start with the most frequent token")
    return bad

for line in open(sys.argv[1], encoding="utf-8"):
    name, *args = line.rstrip("\n").split("\t")
    try:
        bad = compare(*args)
    except Exception as e:
        bad = [repr(e)]
    print("\t".join(["FAIL" if bad else "ok", name, "; ".join(bad)]))
EOF
    local st name why n=0
    while IFS=$'\t' read -r st name why; do
        n=$((n + 1))
        if [ "$st" = ok ]; then pass "$name"; else fail "$name" "$why"; fi
    done <"$T_TMP/pyq.out"
    [ "$n" -gt 0 ] || fail "python comparisons ran" "$(head -c 600 "$T_TMP/pyq.out")"
    : >"$T_TMP/pyq.tsv"
}

# ---- small texts written here ---------------------------------------------
KO="$T_TMP/ko.txt"
printf '안녕하세요, 세계! Hello, world.\n한국어 문장입니다. 😀👍🏽\n' >"$KO"
printf 'e\xcc\x81t\xc3\xa9 \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab\xea\xb8\x80 \xef\xbc\xa1\xe2\x91\xa0 \xef\xac\x81\n' >>"$KO" # NFD é, NFD 한, 글, Ａ①, ﬁ
printf '    \t끝\n' >>"$KO"

for unit in codepoint jamo; do
    for norm in nfc nfkc none; do
        check "vocab --json --unit $unit --normalize $norm exits 0" \
            "$CHARRNN" vocab "$KO" --unit "$unit" --normalize "$norm" --json --top 5
        cp "$T_TMP/out" "$T_TMP/ko-$unit-$norm.json"
        pyq "$unit/$norm counts agree with Python" "$T_TMP/ko-$unit-$norm.json" "$KO" "$unit" "$norm" error
    done
done

# graphemes: the NFD é and the NFD 한 are one cluster each, 👍🏽 too
check "vocab --unit grapheme --normalize none" "$CHARRNN" vocab "$KO" --unit grapheme --normalize none --json
cp "$T_TMP/out" "$T_TMP/graph.json"
if [ $HAVE_PY = 1 ]; then
    check "grapheme tokens = code points minus joined marks" python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))
# joined into a previous code point: U+0301, the V and T of the NFD 한, the skin tone
assert g["tokens"] == g["chars"] - 4, (g["tokens"], g["chars"])' "$T_TMP/graph.json"
fi

# text output: the labels, and blanks shown visibly
check "vocab text output" "$CHARRNN" vocab "$KO" --top 40
for label in 'file:' 'bytes:' 'BOM:' 'characters:' 'tokens:' 'distinct tokens:' 'invalid sequences:' 'lines dropped:' 'top [0-9]+ tokens:'; do
    expect_grep "^$label" "$T_TMP/out" "text output has '$label'"
done
expect_grep '␠  \(U\+0020\)' "$T_TMP/out" "space is shown as ␠"
expect_grep '\\n  \(U\+000A\)' "$T_TMP/out" "newline is shown as \\n"
expect_grep '\\t  \(U\+0009\)' "$T_TMP/out" "tab is shown as \\t"

# ---- BOM ----------------------------------------------------------------------
BOMF="$T_TMP/bom.txt"
printf '\xef\xbb\xbf가나다\n' >"$BOMF"
check "vocab on a file with a BOM" "$CHARRNN" vocab "$BOMF" --json
cp "$T_TMP/out" "$T_TMP/bom.json"
expect_grep '"chars": 4,' "$T_TMP/bom.json" "BOM is not a character"
expect_grep '"bom": true,' "$T_TMP/bom.json" "BOM is reported"
pyq "BOM dropped and reported" "$T_TMP/bom.json" "$BOMF" codepoint nfc error

# ---- invalid UTF-8 --------------------------------------------------------------
BAD="$T_TMP/bad.txt"
printf 'ok line\n가c\xffz \xed\xa0\x80 \xc3\n끝\n' >"$BAD"
expect_exit 1 "invalid UTF-8 is an error by default" "$CHARRNN" vocab "$BAD"
expect_grep "^charrnn vocab: $BAD:2:3: invalid UTF-8 \(byte offset 12\)$" "$T_TMP/err" "error names file:line:col and byte offset"
for policy in replace skip; do
    check "--invalid $policy" "$CHARRNN" vocab "$BAD" --invalid "$policy" --json
    cp "$T_TMP/out" "$T_TMP/bad.json"
    expect_grep '"invalid": 5,' "$T_TMP/bad.json" "--invalid $policy counts 5 bad sequences"
    pyq "--invalid $policy counts agree with Python" "$T_TMP/bad.json" "$BAD" codepoint nfc "$policy"
done

# ---- cleaning ---------------------------------------------------------------------
CL="$T_TMP/clean.txt"
printf '첫 줄 123\nenglish only\n광고 문의 010-1234\n둘째 줄 45 ㅋㅋㅋㅋ\n셋째\n' >"$CL"
check "--keep/--drop/--replace" "$CHARRNN" vocab "$CL" --keep '[가-힣]' --drop '광고' \
    --replace '[0-9]+=#' --replace '#=<n>' --replace 'ㅋ{2,}=ㅋㅋ' --json
cp "$T_TMP/out" "$T_TMP/clean.json"
expect_grep '"lines_dropped": 2,' "$T_TMP/clean.json" "two lines dropped"
if [ $HAVE_PY = 1 ]; then
    check "cleaned counts agree with Python" python3 -c '
import json, re, sys
g = json.load(open(sys.argv[1]))
out = []
for line in open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]:
    if not re.search("[가-힣]", line) or re.search("광고", line):
        continue
    line = re.sub("ㅋ{2,}", "ㅋㅋ", re.sub("#", "<n>", re.sub("[0-9]+", "#", line)))
    out.append(line + "\n")
t = "".join(out)
assert (g["chars"], g["distinct"]) == (len(t), len(set(t))), (g, t)' "$T_TMP/clean.json" "$CL"
fi
expect_exit 1 "everything dropped is an error" "$CHARRNN" vocab "$CL" --drop '.'
expect_grep "$CL: no text left after cleaning" "$T_TMP/err" "empty after cleaning is explained"
expect_exit 1 "bad regex exits 1" "$CHARRNN" vocab "$CL" --keep '가(나'
expect_grep "bad regex '가\(나' at offset 7" "$T_TMP/err" "bad regex shows the pattern and offset"
expect_exit 1 "--replace without = exits 1" "$CHARRNN" vocab "$CL" --replace 'abc'
expect_grep "REGEX=TEXT" "$T_TMP/err" "--replace format is explained"

# --min-count: the vocabulary that would give
check "--min-count 2" "$CHARRNN" vocab "$CL" --min-count 2 --json
cp "$T_TMP/out" "$T_TMP/min.json"
if [ $HAVE_PY = 1 ]; then
    check "--min-count figures agree with Python" python3 -c '
import json, sys, unicodedata
g = json.load(open(sys.argv[1]))
t = open(sys.argv[2], encoding="utf-8").read()
c = {}
for ch in t: c[ch] = c.get(ch, 0) + 1
kept = sum(1 for v in c.values() if v >= 2)
rare = sum(v for v in c.values() if v < 2)
assert (g["vocab_size"], g["unk_tokens"], g["distinct"]) == (kept + 1, rare, len(c)), g' "$T_TMP/min.json" "$CL"
fi

# ---- a pipe ------------------------------------------------------------------------
pipe_vocab() { printf '가나다 abc\n' | "$CHARRNN" vocab /dev/stdin --json; }
check "vocab reads a pipe (/dev/stdin)" pipe_vocab
expect_grep '"chars": 8, "tokens": 8, "distinct": 8,' "$T_TMP/out" "piped text is counted"

# ---- errors and usage --------------------------------------------------------------
expect_exit 1 "missing file exits 1" "$CHARRNN" vocab "$T_TMP/nope.txt"
expect_grep "^charrnn vocab: $T_TMP/nope.txt: no such file" "$T_TMP/err" "missing file is named"
expect_exit 1 "a directory exits 1" "$CHARRNN" vocab "$T_TMP"
expect_grep "$T_TMP: is a directory" "$T_TMP/err" "directory is named"
: >"$T_TMP/empty.txt"
expect_exit 1 "an empty file exits 1" "$CHARRNN" vocab "$T_TMP/empty.txt"
expect_grep "empty.txt: empty file" "$T_TMP/err" "empty file is named"
expect_exit 2 "unknown option exits 2" "$CHARRNN" vocab "$KO" --frobnicate
expect_grep "unrecognized option" "$T_TMP/err" "getopt names the unknown option"
expect_grep "Try 'charrnn vocab --help'" "$T_TMP/err" "unknown option gives a hint"
expect_exit 2 "bad --unit exits 2" "$CHARRNN" vocab "$KO" --unit bytes
expect_exit 2 "bad --normalize exits 2" "$CHARRNN" vocab "$KO" --normalize nfd
expect_exit 2 "bad --invalid exits 2" "$CHARRNN" vocab "$KO" --invalid ignore
expect_exit 2 "--min-count 0 exits 2" "$CHARRNN" vocab "$KO" --min-count 0
expect_exit 2 "--top x exits 2" "$CHARRNN" vocab "$KO" --top x
expect_exit 2 "no CORPUS exits 2" "$CHARRNN" vocab
expect_exit 2 "two CORPUS files exit 2" "$CHARRNN" vocab "$KO" "$KO"
check "vocab --help" "$CHARRNN" vocab --help
for opt in --unit --normalize --invalid --min-count --keep --drop --replace --top --json --help; do
    expect_grep "^  (-h, )?$opt" "$T_TMP/out" "--help lists $opt"
done
expect_grep 'default: codepoint' "$T_TMP/out" "--help shows the default unit"
expect_grep 'default: nfc' "$T_TMP/out" "--help shows the default normalisation"
expect_grep 'default: error' "$T_TMP/out" "--help shows the default invalid policy"

# ---- the shared corpora -------------------------------------------------------------
if [ -n "$SHARED" ] && [ -d "$SHARED" ] && [ $HAVE_PY = 1 ]; then
    for f in "$SHARED"/*.txt; do
        b=$(basename "$f")
        check "vocab --json $b" "$CHARRNN" vocab "$f" --json --top 10
        pyq "$b: code points agree with Python" "$T_TMP/out" "$f" codepoint nfc error
    done
    if have_shared korean_koconovel.txt; then
        check "vocab --unit jamo korean_koconovel.txt" "$CHARRNN" vocab "$SHARED/korean_koconovel.txt" --unit jamo --json --top 10
        pyq "korean_koconovel.txt: jamo tokens agree with Python" "$T_TMP/out" "$SHARED/korean_koconovel.txt" jamo nfc error
    fi
else
    echo "shared corpora or python3 not available: skipping the shared-corpus checks"
fi

if [ $HAVE_PY = 1 ]; then pyrun; fi
summary
