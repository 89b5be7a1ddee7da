#!/usr/bin/env bash
# cli_errors.sh — every row of docs/errors.md: a bad input, the one-line
# message charrnn answers with (grep) and the exit status. Rows are numbered
# as in the table ("E12 ..."). Damaged model files are crafted from a real
# tiny model with python (CRCs fixed per docs/model-format.md), so each one
# reaches the check it is about instead of failing the checksum first.
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN
# plain cells: the rows below were written for them (section counts, weights that blow up); the
# layer-norm rows (E39f/r/s/i) ask for it explicitly
TINY=(--cell lstm --layers 1 --hidden 8 --batch 4 --seq 8 --threads 1 --quiet --no-layer-norm)

# row ID EXIT PATTERN CMD...: exit status and a stderr line matching PATTERN
row() {
    local id=$1 code=$2 pat=$3; shift 3
    expect_exit "$code" "$id exit $code" "$@"
    [ -z "$pat" ] || expect_grep "$pat" "$T_TMP/err" "$id says /$pat/"
    # CRN_ERRORS_DUMP=FILE collects the actual answers (to write docs/errors.md)
    [ -z "${CRN_ERRORS_DUMP:-}" ] || printf '%s|%s|%s\n' "$id" "$code" "$(grep -v '^Try ' "$T_TMP/err" | head -1)" >> "$CRN_ERRORS_DUMP"
}
# timed SECONDS ID ...: like row, and the command must finish within SECONDS
timed() {
    local lim=$1; shift
    local t0=$SECONDS
    row "$@"
    local dt=$((SECONDS - t0))
    if [ "$dt" -le "$lim" ]; then pass "$1 took ${dt}s (limit ${lim}s)"; else fail "$1 took ${dt}s (limit ${lim}s)"; fi
}

# ---- inputs ----------------------------------------------------------------
python3 - "$D" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(3)
w = ["the", "cat", "sat", "on", "a", "mat", "하늘은", "파랗고", "바다는", "넓다"]
open(f"{d}/t.txt", "w", encoding="utf-8").write(
    "\n".join(" ".join(random.choice(w) for _ in range(6)) for _ in range(300)) + "\n")
good = ("the cat sat 하늘은 파랗고\n" * 40).encode()   # 32 bytes a line
cases = {
    "bad_start": b"\xff" + good,
    "bad_mid": good[:300] + b"\x80" + good[300:],          # line 10, column 13
    "bad_end": good + b"\xc3",                              # lead byte with no continuation at EOF
    "overlong": good[:100] + b"\xc0\xaf" + good[100:],      # '/' in 2 bytes
    "overlong3": good[:100] + b"\xe0\x80\xaf" + good[100:], # '/' in 3 bytes
    "surrogate": good[:100] + b"\xed\xa0\x80" + good[100:], # U+D800
    "trunc4": good[:100] + b"\xf0\x9f\x98" + good[100:],    # U+1F600 missing its last byte
    "trunc4end": good + b"\xf0\x9f\x98",
    "utf16le": "\ufeffthe cat sat 하늘은\n".encode("utf-16-le") * 40,
    "utf16be": "\ufeffthe cat sat 하늘은\n".encode("utf-16-be") * 40,
    "nul": good[:100] + b"\x00" + good[100:],
    "bom8": b"\xef\xbb\xbf" + good,
    "aa": b"".join(b"a" * 40 + b"\n" for _ in range(200)),
    "bt": b"a" * 40 + b"!\n",
}
for k, v in cases.items():
    open(f"{d}/{k}.txt", "wb").write(v)
PY
: > "$D/empty.txt"
printf 'short' > "$D/short.txt"
check "tiny model" "$C" train "$D/t.txt" -o "$D/m.ckpt" "${TINY[@]}" --steps 5
M=$D/m.ckpt

# ---- corpus files ------------------------------------------------------------
row E01 1 "missing.txt: no such file" "$C" vocab "$D/missing.txt"
row E01t 1 "missing.txt" "$C" train "$D/missing.txt" -o "$D/x.ckpt" "${TINY[@]}" --steps 1
cp "$D/t.txt" "$D/locked.txt"
chmod 000 "$D/locked.txt"
if [ "$(id -u)" -eq 0 ]; then
    # root reads anything: drop to nobody for this row
    chmod 755 "$D"
    if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
        row E02 1 "locked.txt: cannot open: Permission denied" \
            setpriv --reuid=65534 --regid=65534 --clear-groups "$C" vocab "$D/locked.txt"
    else
        echo "skip - E02 unreadable corpus: running as root without setpriv"
    fi
else
    row E02 1 "locked.txt: cannot open: Permission denied" "$C" vocab "$D/locked.txt"
fi
mkdir "$D/adir"
row E03 1 "adir: is a directory, not a text file" "$C" vocab "$D/adir"
row E04 1 "empty.txt: empty file" "$C" vocab "$D/empty.txt"
row E04t 1 "empty.txt: empty file" "$C" train "$D/empty.txt" -o "$D/x.ckpt" "${TINY[@]}" --steps 1
row E05 1 "no text left after cleaning \(300 of 300 lines dropped\)" "$C" vocab "$D/t.txt" --drop .
row E06 1 "train split has 4 tokens; batch 4 x seq 8 needs at least 33" \
    "$C" train "$D/short.txt" -o "$D/x.ckpt" "${TINY[@]}" --steps 1

# ---- encodings ---------------------------------------------------------------
row E07 1 "bad_start.txt:1:1: invalid UTF-8 \(byte offset 0\)" "$C" vocab "$D/bad_start.txt"
row E08 1 "bad_mid.txt:10:13: invalid UTF-8 \(byte offset 300\)" "$C" vocab "$D/bad_mid.txt"
row E09 1 "bad_end.txt:41:1: invalid UTF-8 \(byte offset 1280\)" "$C" vocab "$D/bad_end.txt"
row E10 1 "overlong.txt:4:5: invalid UTF-8 \(byte offset 100\)" "$C" vocab "$D/overlong.txt"
row E10b 1 "overlong3.txt:4:5: invalid UTF-8 \(byte offset 100\)" "$C" vocab "$D/overlong3.txt"
row E11 1 "surrogate.txt:4:5: invalid UTF-8 \(byte offset 100\)" "$C" vocab "$D/surrogate.txt"
row E12 1 "trunc4.txt:4:5: invalid UTF-8 \(byte offset 100\)" "$C" vocab "$D/trunc4.txt"
row E12b 1 "trunc4end.txt:41:1: invalid UTF-8 \(byte offset 1280\)" "$C" vocab "$D/trunc4end.txt"
row E12t 1 "bad_mid.txt:10:13: invalid UTF-8 \(byte offset 300\)" \
    "$C" train "$D/bad_mid.txt" -o "$D/x.ckpt" "${TINY[@]}" --steps 1
row E13 0 "" "$C" vocab "$D/bad_mid.txt" --invalid replace
expect_grep "invalid sequences: +1 \(--invalid replace\)" "$T_TMP/out" "E13 counts the repaired sequence"
row E13b 0 "" "$C" vocab "$D/surrogate.txt" --invalid skip
# ED A0 80 is three maximal ill-formed subparts (Unicode's U+FFFD policy), not one
expect_grep "invalid sequences: +3 \(--invalid skip\)" "$T_TMP/out" "E13b counts the skipped subparts"
row E14 1 "utf16le.txt:1:1: looks like UTF-16 \(BOM FF FE\), not UTF-8; convert it with iconv -f UTF-16 -t UTF-8" \
    "$C" vocab "$D/utf16le.txt"
row E14b 1 "utf16be.txt:1:1: looks like UTF-16 \(BOM FE FF\), not UTF-8" "$C" vocab "$D/utf16be.txt"
# refused under every --invalid policy (eval repairs by default)
row E14c 1 "utf16le.txt:1:1: looks like UTF-16 \(BOM FF FE\), not UTF-8" "$C" eval "$M" "$D/utf16le.txt"
row E14d 1 "utf16be.txt:1:1: looks like UTF-16 \(BOM FE FF\), not UTF-8" "$C" vocab "$D/utf16be.txt" --invalid skip
row E15 1 "nul.txt:4:5: NUL byte \(byte offset 100\); is this UTF-16 or binary\?" "$C" vocab "$D/nul.txt"
row E16 0 "" "$C" vocab "$D/bom8.txt"
expect_grep "BOM: +yes \(UTF-8 byte order mark, dropped\)" "$T_TMP/out" "E16 reports the dropped BOM"
expect_grep "characters: +800 " "$T_TMP/out" "E16 the BOM is not a character"

# E16b: "Zalgo" text, 100,000 combining marks of alternating classes on one
# base letter: canonical ordering is quadratic in the run, so runs are cut
# every 30 non-starters (Stream-Safe Text Format) — instant instead of 30 s
python3 -c '
import sys
open(sys.argv[1], "w", encoding="utf-8").write("hello world\n" * 10 + "a" + "\u0301\u0316" * 50000 + "\n")' "$D/zalgo.txt"
timed 10 E16b 0 "" "$C" vocab "$D/zalgo.txt" --unit grapheme --json --top 0
expect_grep '"chars": 100121,' "$T_TMP/out" "E16b every mark is kept"
# E17: one line of 50 MiB (no '\n' at all): fine, bounded by a few copies of the line
python3 -c '
import sys
s = ("the cat sat 하늘은 파랗고 " * 4096).encode()        # 32 bytes per 11 chars... 128 KiB
n = 50 * 1024 * 1024
b = (s * (n // len(s) + 1))[:n]
while b[-1] >= 0x80: b = b[:-1]                          # end on a whole character
open(sys.argv[1], "wb").write(b)' "$D/big.txt"
chars=$(python3 -c 'import sys; print(len(open(sys.argv[1], encoding="utf-8").read()))' "$D/big.txt")
if [ -x /usr/bin/time ]; then
    timed 30 E17 0 "" /usr/bin/time -f "maxrss_kb %M" "$C" vocab "$D/big.txt" --json --top 3
    rss=$(awk '/^maxrss_kb/ {print $2}' "$T_TMP/err")
    echo "     E17: 50 MiB single line, peak RSS ${rss} KB"
    if [ "${rss:-0}" -lt 600000 ]; then pass "E17 peak RSS ${rss} KB < 600 MB"; else fail "E17 peak RSS ${rss} KB"; fi
else
    timed 30 E17 0 "" "$C" vocab "$D/big.txt" --json --top 3
fi
expect_grep "\"chars\": $chars," "$T_TMP/out" "E17 counts all $chars characters"
rm -f "$D/big.txt"

# E18: huge files without line breaks fail fast (a line is one piece in memory)
if truncate -s 1T "$D/sparse.txt" 2>/dev/null; then
    timed 10 E18 1 "sparse.txt:1: line longer than 256 MiB \(byte offset 0\); charrnn reads text line by line" \
        "$C" vocab "$D/sparse.txt"
else
    echo "skip - E18: no sparse 1 TiB file on this filesystem"
fi
rm -f "$D/sparse.txt"
printf 'hello\nworld\n' > "$D/sparse2.txt"
if truncate -s 300M "$D/sparse2.txt" 2>/dev/null; then
    timed 10 E18b 1 "sparse2.txt:3: line longer than 256 MiB \(byte offset 12\)" "$C" vocab "$D/sparse2.txt"
fi
rm -f "$D/sparse2.txt"
# E19: an endless device is read into memory only up to 1 GiB
timed 30 E19 1 "/dev/zero: more than 1024 MiB from a pipe or device; save the text to a regular file" \
    "$C" vocab /dev/zero

# ---- model files ---------------------------------------------------------------
# craft SRC KIND DST: a damaged copy of SRC with the CRCs of edited sections fixed
craft() {
    python3 - "$@" <<'PY'
import struct, sys, zlib
src, kind, dst = sys.argv[1:4]
arg = sys.argv[4] if len(sys.argv) > 4 else None
d = bytearray(open(src, "rb").read())
def sections():
    o, r = 16, {}
    while o < len(d):
        t, f, l = struct.unpack_from("<IIQ", d, o)
        r[t] = (o, l)
        o += 16 + l + 4
    return r
S = sections()
def fix(t):
    o, l = sections()[t]
    struct.pack_into("<I", d, o + 16 + l, zlib.crc32(bytes(d[o:o + 16 + l])))
co = S[1][0] + 16                                   # CONFIG payload
if kind == "cut":                                   # arg: SECTION:DELTA or a byte count
    if ":" in arg:
        t, delta = arg.split(":")
        n = S[int(t)][0] + int(delta)
    else:
        n = int(arg)
    d = d[:n]
elif kind == "magic": d[0:8] = b"GPT2MODL"
elif kind == "version": struct.pack_into("<I", d, 8, 7)
elif kind == "version0": struct.pack_into("<I", d, 8, 0)
elif kind == "crc":
    o, l = S[3]
    d[o + 16 + l // 2] ^= 0x01
elif kind == "count": struct.pack_into("<I", d, 12, 2**31)
elif kind == "vocab": struct.pack_into("<I", d, co + 8, 2**31); fix(1)
elif kind == "hidden0": struct.pack_into("<I", d, co + 16, 0); fix(1)
elif kind == "nparams": struct.pack_into("<Q", d, co + 28, 2**62 + 5); fix(1)
elif kind == "rows":                                # first tensor's rows: 2^63 + 1
    n = struct.unpack_from("<I", d, co + 40)[0]
    struct.pack_into("<Q", d, co + 40 + 4 + n + 8, 2**63 + 1); fix(1)
elif kind == "seclen":                              # PARAMS length 2^64 - 8
    o, l = S[3]
    struct.pack_into("<Q", d, o + 8, 2**64 - 8)
elif kind == "vocabsize":                           # the VOCAB blob's size field
    struct.pack_into("<I", d, S[2][0] + 16 + 16, 2**31); fix(2)
elif kind == "huge":                                # largest legal shape; arg: its parameter count
    struct.pack_into("<I", d, co + 8, 2**22)
    struct.pack_into("<I", d, co + 16, 16384)
    struct.pack_into("<I", d, co + 20, 64)
    if arg: struct.pack_into("<Q", d, co + 28, int(arg))
    fix(1)
elif kind == "nan":
    struct.pack_into("<f", d, S[3][0] + 16 + 40, float("nan")); fix(3)
elif kind == "scale":                               # every parameter times arg (finite, CRC fixed)
    o, l = S[3]
    for i in range(l // 4):
        v = struct.unpack_from("<f", d, o + 16 + 4 * i)[0]
        struct.pack_into("<f", d, o + 16 + 4 * i, v * float(arg))
    fix(3)
elif kind == "trailing": d += b"\0"
elif kind == "features":                            # FEATURES (layer norm) bits := arg
    struct.pack_into("<I", d, S[7][0] + 16, int(arg)); fix(7)
else: sys.exit("craft: unknown kind " + kind)
open(dst, "wb").write(d)
PY
}
B=$D/bad.ckpt
# truncated inside every part of the file (m.ckpt: CONFIG VOCAB PARAMS OPTIM TRAIN)
craft "$M" cut "$B" 0
row E20 1 "header at byte 0: truncated: the file is 0 bytes, the header needs 16" "$C" info "$B"
craft "$M" cut "$B" 11
row E21 1 "header at byte 11: truncated: the file is 11 bytes, the header needs 16" "$C" info "$B"
craft "$M" cut "$B" 16
row E22 1 "section #1 at byte 16: truncated: the file ends at byte 16 inside the header" "$C" info "$B"
craft "$M" cut "$B" 1:10
row E23 1 "section CONFIG at byte 16: truncated: the file ends at byte 26 inside the header" "$C" info "$B"
for sec in 1:CONFIG 2:VOCAB 3:PARAMS 4:OPTIM 5:TRAIN; do
    craft "$M" cut "$B" "${sec%%:*}:40"
    row "E24-${sec#*:}" 1 "section ${sec#*:} at byte [0-9]+: truncated: a payload of [0-9]+ bytes and its checksum do not fit" \
        "$C" info "$B"
done
craft "$M" cut "$B" $(($(stat -c %s "$M") - 1))
row E25 1 "section TRAIN at byte [0-9]+: truncated: .*\(the file ends at byte $(($(stat -c %s "$M") - 1))" "$C" info "$B"
row E25g 1 "section TRAIN at byte [0-9]+: truncated" "$C" generate "$B"
craft "$M" magic "$B"
row E26 1 "header at byte 0: not a charrnn model file \(bad magic\)" "$C" info "$B"
row E26t 1 "t.txt: header at byte 0: not a charrnn model file \(bad magic\)" "$C" generate "$D/t.txt"
craft "$M" version "$B"
row E27 1 "format version 7 is newer than this charrnn \(1\); upgrade charrnn" "$C" info "$B"
row E27r 1 "format version 7 is newer than this charrnn" "$C" train --resume "$B" --steps 1 --quiet
craft "$M" version0 "$B"
row E28 1 "header at byte 8: format version 0 is invalid" "$C" info "$B"
craft "$M" crc "$B"
row E29 1 "section PARAMS at byte [0-9]+: checksum mismatch \(stored [0-9a-f]{8}, computed [0-9a-f]{8}\)" "$C" info "$B"
row E29e 1 "checksum mismatch" "$C" eval "$B" "$D/t.txt"
craft "$M" count "$B"
row E30 1 "header at byte 12: absurd section count 2147483648" "$C" info "$B"
craft "$M" vocab "$B"
row E31 1 "section CONFIG at byte [0-9]+: model config: vocab 2147483648 not in \[1, 4194304\]" "$C" info "$B"
craft "$M" vocabsize "$B"
row E32 1 "section VOCAB at byte [0-9]+: vocabulary: absurd token count 2147483648 for [0-9]+ bytes" "$C" info "$B"
craft "$M" hidden0 "$B"
row E33 1 "section CONFIG at byte [0-9]+: model config: hidden 0 not in \[1, 16384\]" "$C" info "$B"
craft "$M" nparams "$B"
row E34 1 "parameter count 4611686018427387909 does not match the config" "$C" info "$B"
craft "$M" rows "$B"
row E35 1 "tensor l0.w_x: offset 0, shape \(9223372036854775809, [0-9]+\) disagree with the config" "$C" info "$B"
craft "$M" seclen "$B"
row E36 1 "section PARAMS at byte [0-9]+: truncated: a payload of 18446744073709551608 bytes" "$C" info "$B"
craft "$M" huge "$B"
"$C" info "$B" 2>"$D/huge.err"
n=$(sed -n 's/.*does not match the config (\([0-9]*\)).*/\1/p' "$D/huge.err")
craft "$M" huge "$B" "${n:-0}"
row E37 1 "section PARAMS at byte [0-9]+: payload of [0-9]+ bytes does not hold the $n float32 parameters" "$C" info "$B"
craft "$M" nan "$B"
row E38 1 "section PARAMS at byte [0-9]+: parameter l0.w_x\[0,10\] is NaN" "$C" info "$B"
craft "$M" trailing "$B"
row E39 1 "1 unexpected bytes after the last of 5 sections" "$C" info "$B"
# layer norm: the FEATURES section, and the option against a checkpoint
check "tiny layer-norm model" "$C" train "$D/t.txt" -o "$D/ln.ckpt" "${TINY[@]}" --layer-norm --steps 3
craft "$D/ln.ckpt" features "$B" 3
row E39f 1 "section FEATURES at byte [0-9]+: unknown feature bits 0x2 \(written by a newer charrnn\?\)" "$C" info "$B"
row E39r 2 "--layer-norm conflicts with the checkpoint \(layer norm off\)" \
    "$C" train --resume "$M" --layer-norm --steps 6 --quiet
row E39s 2 "--no-layer-norm conflicts with the checkpoint \(layer norm on\)" \
    "$C" train --resume "$D/ln.ckpt" --no-layer-norm --steps 6 --quiet
row E39i 2 "--layer-norm cannot be combined with --init-from" \
    "$C" train "$D/t.txt" -o "$D/ft.ckpt" --init-from "$M" --layer-norm --steps 1 --quiet
row E39a 2 "activation relu applies to cell rnn only \(this run's cell is lstm\)" \
    "$C" train "$D/t.txt" -o "$D/act.ckpt" --cell lstm --activation relu --steps 1 --quiet
row E40 1 "missing.ckpt: cannot open model file: No such file or directory" "$C" info "$D/missing.ckpt"
row E41 1 "adir: is a directory, not a model file" "$C" generate "$D/adir"
mkfifo "$D/fifo.ckpt"
timed 5 E42 1 "fifo.ckpt: not a regular file" timeout 10 "$C" info "$D/fifo.ckpt"
row E42b 1 "/dev/zero: not a regular file" "$C" generate /dev/zero
if truncate -s 8G "$D/disk.img" 2>/dev/null; then
    timed 5 E43 1 "disk.img: header at byte 0: not a charrnn model file \(bad magic\)" "$C" info "$D/disk.img"
fi
rm -f "$D/disk.img"
cp "$M" "$D/fb.ckpt"
printf 'garbage' > "$D/fb.ckpt.resume"
row E44 0 "warning: .*fb.ckpt.resume: header at byte 0: not a charrnn model file \(bad magic\); trying .*fb.ckpt" \
    "$C" train --resume "$D/fb.ckpt" --steps 7 --quiet
check "E44 the run went on into MODEL.resume" "$C" info "$D/fb.ckpt.resume"

# ---- prompts --------------------------------------------------------------------
row E45 0 "the prompt has 2 characters the model has never seen \(x🙂\); fed as <unk> \(--strict refuses them\)" \
    "$C" generate "$M" --prompt "x 🙂 the" --length 5 --seed 1
row E46 1 "prompt: 'x' \(byte offset 0\) is a character the model has never seen" \
    "$C" generate "$M" --prompt "x 🙂 the" --length 5 --seed 1 --strict
row E47 1 "prompt: looks like UTF-16" "$C" generate "$M" --prompt $'\xff\xfe' --length 3
# E103: bits per char of an NFD text under --normalize none: per NFC code point
python3 -c 'import sys, unicodedata; open(sys.argv[1], "w", encoding="utf-8").write(unicodedata.normalize("NFD", open(sys.argv[2], encoding="utf-8").read()))' "$D/nfd.txt" "$D/t.txt"
check "E103 code point model of NFD text" "$C" train "$D/nfd.txt" -o "$D/nfd.ckpt" "${TINY[@]}" --normalize none --steps 5
row E103 0 "" sh -c "'$C' eval '$D/nfd.ckpt' '$D/nfd.txt' --json > '$D/nfd.json'"
if python3 -c 'import json, sys, unicodedata
e = json.load(open(sys.argv[1])); n = len(unicodedata.normalize("NFC", open(sys.argv[2], encoding="utf-8").read()))
assert e["chars"] == n and abs(e["bits_per_char"] / e["bits_per_token"] - e["targets"] / (n - 1)) < 1e-4, (e, n)' \
    "$D/nfd.json" "$D/nfd.txt" 2>"$D/nfd.err"; then pass "E103 eval divides by NFC code points"
else fail "E103 eval divides by NFC code points" "$(cat "$D/nfd.err")"; fi
# E102: a jamo model continuing the prompt's open syllable 가 (over 20 seeds
# some completions): the completed syllable, 5 characters, no bare jamo
check "E102 jamo model" "$C" train "$D/t.txt" -o "$D/jamo.ckpt" "${TINY[@]}" --unit jamo --steps 20
for seed in $(seq 1 20); do
    "$C" generate "$D/jamo.ckpt" --prompt '가' --length 5 --seed "$seed" --temperature 1.5 --json
done > "$D/jamo.json" 2>"$T_TMP/err"
row E102 0 "" python3 - "$D/jamo.json" <<'PY'
import json, sys, unicodedata
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    t, r = o["text"], o["replaced"]
    assert len(t) == 5 and not any(0x1100 <= ord(c) <= 0x11FF for c in t), o
    full = ("" if r else "가") + t
    assert unicodedata.normalize("NFC", full) == full, o
    n += r == 3 and 0xAC00 < ord(t[0]) <= 0xAC1B
assert n > 0, "no completed syllable in 20 samples"
PY

# ---- regexes ----------------------------------------------------------------------
row E50 1 "--keep: bad regex '\(' at offset 1: missing closing parenthesis" "$C" vocab "$D/t.txt" --keep '('
row E51 1 "--drop: bad regex '\[a-' at offset 3: missing terminating \] for character class" \
    "$C" train "$D/t.txt" -o "$D/x.ckpt" "${TINY[@]}" --steps 1 --drop '[a-'
row E52 1 "--replace: bad regex '\(\?<n>x' at offset 6: missing closing parenthesis" "$C" vocab "$D/t.txt" --replace '(?<n>x=y'
row E53 1 "--replace 'abc': expected REGEX=TEXT" "$C" vocab "$D/t.txt" --replace abc
row E54 1 "--replace: bad replacement '\\\$9' for regex 'a' at offset 2: unknown substring" "$C" vocab "$D/t.txt" --replace 'a=$9'
row E55 2 "--stop: bad regex '\(' at offset 1: missing closing parenthesis" "$C" generate "$M" --stop '('
row E56 2 "--match: bad regex '\[z-a\]' at offset 3: range out of order" "$C" generate "$M" --match '[z-a]'
printf ':stop (\nthe\n:quit\n' > "$D/repl.in"
row E57 0 "bad regex '\(' at offset 1" sh -c "'$C' repl '$M' --length 5 --seed 1 < '$D/repl.in'"
row E58 0 "sample 1: no token can continue a match of 'q\+'" "$C" generate "$M" --match 'q+' --length 5 --seed 1
# catastrophic backtracking: stopped by the match limit, quickly
timed 10 E60 1 "bt.txt:1: --keep: regex '\^\(a\+\)\+\\$' gave up \(match limit exceeded\): simplify the pattern" \
    "$C" vocab "$D/bt.txt" --keep '^(a+)+$'
timed 10 E61 1 "--replace: regex '\(a\|aa\)\+\[\^a!\]' gave up \(match limit exceeded\)" \
    "$C" vocab "$D/bt.txt" --replace '(a|aa)+[^a!]=x'
check "a model that writes aaaa..." "$C" train "$D/aa.txt" -o "$D/aa.ckpt" "${TINY[@]}" --steps 150 --lr 0.02
timed 10 E62 1 "--stop: regex '\(a\|aa\)\+\[\^a\]' gave up \(match limit exceeded\)" \
    "$C" generate "$D/aa.ckpt" --temperature 0 --length 300 --stop '(a|aa)+[^a]'
timed 10 E63 1 "--match: regex '\(a\|aa\)\+\[\^a\]' gave up \(match limit exceeded\)" \
    "$C" generate "$D/aa.ckpt" --temperature 0 --length 300 --match '(a|aa)+[^a]'

# ---- option values ------------------------------------------------------------------
X=("$D/t.txt" -o "$D/x.ckpt")
row E70 2 "--hidden: 0 is out of range \[1, 16384\]" "$C" train "${X[@]}" --hidden 0
row E71 2 "--hidden: -3 is out of range" "$C" train "${X[@]}" --hidden -3
row E72 2 "--hidden: 'abc' is not an integer" "$C" train "${X[@]}" --hidden abc
row E73 2 "--hidden: '12x' is not an integer" "$C" train "${X[@]}" --hidden 12x
row E74 2 "--hidden: '99999999999999999999' is not an integer" "$C" train "${X[@]}" --hidden 99999999999999999999
row E75 2 "--hidden: 20000 is out of range \[1, 16384\]" "$C" train "${X[@]}" --hidden 20000
row E75b 2 "--embed: 20000 is out of range \[0, 16384\]" "$C" train "${X[@]}" --embed 20000
row E76 2 "--time: the duration must be positive, got '0'" "$C" train "${X[@]}" --time 0
row E77 2 "--time: the duration must be positive, got '-1m'" "$C" train "${X[@]}" --time -1m
row E78 2 "--time: 'abc' is not a duration \(examples: 90s, 10m, 1.5h\)" "$C" train "${X[@]}" --time abc
row E79 2 "--steps: -5 is out of range" "$C" train "${X[@]}" --steps -5
row E80 2 "--lr: 'nan' is not a number" "$C" train "${X[@]}" --lr nan
row E81 2 "--lr: -0.1 is out of range" "$C" train "${X[@]}" --lr -0.1
row Q1 2 "--init: 'he' is not pytorch, xavier or orthogonal" "$C" train "${X[@]}" --init he
row Q2 2 "--forget-bias: 'x' is not a number" "$C" train "${X[@]}" --forget-bias x
row Q3 2 "--forget-bias: 1000 is out of range \[-100, 100\]" "$C" train "${X[@]}" --forget-bias 1000
row Q4 2 "--preset: 'huge' is not tiny, small, medium or large" "$C" train "${X[@]}" --preset huge
row Q5 2 "--schedule: 'exp' is not constant, step, cosine or linear" "$C" train "${X[@]}" --schedule exp
row Q6 2 "--preset cannot be combined with --init-from" "$C" train "${X[@]}" --preset tiny --init-from "$M"
row E82 2 "--length: 0 is out of range \[1, 1000000\]" "$C" generate "$M" --length 0
row E83 2 "--temperature: 'abc' is not a number" "$C" generate "$M" --temperature abc
row E84 2 "--batch: 0 is out of range \[1, 4096\]" "$C" eval "$M" "$D/t.txt" --batch 0
expect_grep "Try 'charrnn eval --help'" "$T_TMP/err" "E84 points to the help"
row E85 0 "error: :temp wants a number in \[0, 100\], got 'abc'" \
    sh -c "printf ':temp abc\nthe\n:quit\n' | '$C' repl '$M' --length 5 --seed 1"
# E100: changing sgd's momentum on resume; the files written must load everywhere
check "E100 sgd run" "$C" train "$D/t.txt" -o "$D/sgd.ckpt" "${TINY[@]}" --optimizer sgd --steps 5
cp "$D/sgd.ckpt" "$D/sgd0.ckpt"
row E100 0 "" "$C" train --resume "$D/sgd.ckpt" --momentum 0.9 --steps 10 --quiet
for f in sgd.ckpt sgd.ckpt.resume; do
    check "E100 $f generates" "$C" generate "$D/$f" --length 5 --seed 1
    check "E100 $f evaluates" "$C" eval "$D/$f" "$D/t.txt"
done
row E100b 0 "" "$C" train --resume "$D/sgd.ckpt" --momentum 0 --steps 15 --quiet
check "E100b MODEL.resume resumes" "$C" train --resume "$D/sgd.ckpt" --steps 20 --quiet
check "E100b generates" "$C" generate "$D/sgd.ckpt" --length 5 --seed 1
# E101: a subnormal temperature is greedy, like 0
"$C" generate "$M" --temperature 0 --length 40 --seed 3 > "$D/t0.out" 2>/dev/null
row E101 0 "" "$C" generate "$M" --temperature 0x1p-1074 --length 40 --seed 3
if cmp -s "$T_TMP/out" "$D/t0.out"; then pass "E101 the same text as --temperature 0"
else fail "E101 the same text as --temperature 0" "$(head -c 100 "$T_TMP/out")" "$(head -c 100 "$D/t0.out")"; fi
row E101b 0 "" sh -c "printf ':temp 1e-9\nthe\n:quit\n' | '$C' repl '$M' --length 5 --seed 1"
expect_grep "temperature 1e-09 \(argmax\)" "$T_TMP/out" "E101b :temp 1e-9 is argmax"

# ---- output paths and saving --------------------------------------------------------
row E90 1 "no/such/dir" "$C" train "$D/t.txt" -o "$D/no/such/dir/m.ckpt" "${TINY[@]}" --steps 1
row E91 1 "cannot write .*adir: it is a directory" "$C" train "$D/t.txt" -o "$D/adir" "${TINY[@]}" --steps 1
cp "$D/t.txt" "$D/corpus.txt"
row E95 1 "cannot write .*corpus.txt: it is the corpus .*corpus.txt" \
    "$C" train "$D/corpus.txt" -o "$D/../$(basename "$D")/corpus.txt" "${TINY[@]}" --steps 1
row E95l 1 "cannot write .*corpus.txt: it is the corpus" \
    "$C" train "$D/corpus.txt" -o "$D/y.ckpt" --log "$D/corpus.txt" "${TINY[@]}" --steps 1
cmp -s "$D/corpus.txt" "$D/t.txt" && pass "E95 the corpus is intact" || fail "E95 the corpus was overwritten"
cp "$D/t.txt" "$D/c.ckpt.ids"
row E95i 1 "cannot write .*c.ckpt.ids: it is the corpus" "$C" train "$D/c.ckpt.ids" -o "$D/c.ckpt" "${TINY[@]}" --steps 1
cmp -s "$D/c.ckpt.ids" "$D/t.txt" && pass "E95i the corpus is intact" || fail "E95i the corpus was overwritten"
# the token id cache MODEL.ids (docs/errors.md E99*)
cp "$D/t.txt" "$D/ic.txt"
IC=("$C" train "$D/ic.txt" -o "$D/ic.ckpt" --cell lstm --layers 1 --hidden 8 --batch 4 --seq 8 --threads 1 --steps 1)
row E99n 0 "token ids: .*ic.ckpt.ids \(created\)" "${IC[@]}"
row E99r 0 "token ids: .*ic.ckpt.ids \(reused\)" "${IC[@]}"
printf 'one more line\n' >> "$D/ic.txt"
row E99s 0 "token ids: .*ic.ckpt.ids \(stale, rebuilt\)" "${IC[@]}"
truncate -s -3 "$D/ic.ckpt.ids"
row E99t 0 "token ids: .*ic.ckpt.ids \(truncated or corrupt, rebuilt\)" "${IC[@]}"
check "E99t the rebuilt cache is reused" "${IC[@]}"
expect_grep "\\(reused\\)" "$T_TMP/err" "E99t the rebuilt cache is reused"
rm -f "$D/ic.ckpt.ids"; mkdir "$D/ic.ckpt.ids"
row E99d 1 "ic.ckpt.ids: the token id cache is not a regular file" "${IC[@]}"
rmdir "$D/ic.ckpt.ids"
ls "$D"/ic.ckpt.ids.tmp.* >/dev/null 2>&1 && fail "E99 temp file left" || pass "E99 no temp file left"
cp "$M" "$D/keep.ckpt"
cp "$M.resume" "$D/keep.ckpt.resume"
cp "$M" "$D/keep.orig"
# the simulated full disk exists only in the test build of the CLI (charrnn-hooks)
CRN_FAULT_WRITE_AFTER=1000 expect_exit 1 "E92 exit 1" "${CHARRNN_HOOKS:?}" train --resume "$D/keep.ckpt" --steps 8 --quiet
expect_grep "cannot write .*keep.ckpt.*tmp.*: No space left on device" "$T_TMP/err" "E92 says /No space left on device/"
cmp -s "$D/keep.ckpt" "$D/keep.orig" && pass "E92 the previous model is unchanged" || fail "E92 model changed"
check "E92 the previous model loads" "$C" info "$D/keep.ckpt"
ls "$D"/keep.ckpt*.tmp.* >/dev/null 2>&1 && fail "E92 temp file left" || pass "E92 no temp file left"
cp "$M" "$D/prod.ckpt"
cp "$M.resume" "$D/prod.ckpt.resume"
CRN_FAULT_WRITE_AFTER=1000 expect_exit 0 "E92 charrnn itself has no fault hook" "$C" train --resume "$D/prod.ckpt" --steps 8 --quiet

# E96: weights that are finite but blown up (a relu RNN's parameters x 1e20,
# CRCs fixed): every step's loss overflows; each is skipped with a warning,
# the state rolled back and the lr halved; after 5 in a row training stops
check "a tiny relu RNN" "$C" train "$D/t.txt" -o "$D/relu.ckpt" --cell rnn --activation relu --layers 1 --hidden 8 \
    --batch 4 --seq 8 --threads 1 --quiet --steps 3 --no-layer-norm # (layer norm would undo the x 1e20)
craft "$D/relu.ckpt" scale "$D/blown.ckpt" 1e20
row E96 1 "5 non-finite steps in a row at step 8 \(loss or gradient is NaN/Inf\); try a lower --lr or --clip; the last good state is in .*blown.ckpt.resume" \
    "$C" train --resume "$D/blown.ckpt" --steps 20
expect_grep "warning: step 4: non-finite loss; update skipped, learning rate halved \(1 in a row\)" "$T_TMP/err" \
    "E96 each skipped step is reported"
check "E96 the saved state loads" "$C" info "$D/blown.ckpt.resume"
# E96b: a run that diverges now and then (plain relu RNN, SGD at lr 20, no
# clipping) recovers: rolled back to the last eval's state with half the lr
row E96b 0 "warning: step [0-9]+: non-finite loss; update skipped, learning rate halved \(1 in a row\)" \
    "$C" train "$D/t.txt" -o "$D/div.ckpt" --cell rnn --activation relu --layers 2 --hidden 64 --batch 4 --seq 16 \
    --threads 1 --steps 100 --eval-every 10 --optimizer sgd --lr 20 --clip 0 --seed 1 --no-layer-norm
check "E96b the final model evaluates to a finite loss" "$C" eval "$D/div.ckpt.resume" "$D/t.txt"
# E98: eval and generate say so instead of printing "-nan" (invalid JSON) or garbage
row E98 1 "blown.ckpt: the model's predictions on .*t.txt are not finite \(NaN/Inf\): its weights have blown up" \
    "$C" eval "$D/blown.ckpt" "$D/t.txt" --json
row E98g 1 "the model's output is not finite \(NaN/Inf\): its weights have blown up; use an earlier checkpoint" \
    "$C" generate "$D/blown.ckpt" --length 100 --seed 1
row S12 1 "t.txt: the model's predictions are not finite \(NaN/Inf\): its weights have blown up" \
    "$C" show "$D/blown.ckpt" "$D/t.txt" -o "$D/blown.html"

# E97: a hang-up (terminal or ssh session closed) saves and stops like Ctrl-C;
# under nohup (SIGHUP ignored) training goes on
LONG=("$D/t.txt" "${TINY[@]}" --steps 100000000)
# a script started with SIGHUP ignored (nohup) cannot un-ignore it for its children
hup_mask=$(awk '/^SigIgn:/ {print $2}' /proc/$$/status 2>/dev/null)
if [ -n "$hup_mask" ] && (( (16#$hup_mask & 1) != 0 )); then
    echo "cli_errors: SIGHUP is ignored by whoever started this test (nohup?): the E97 hang-up check is skipped"
else
    "$C" train "${LONG[@]}" -o "$D/hup.ckpt" 2>"$D/hup.err" &
    pid=$!
    sleep 1
    kill -HUP $pid
    wait $pid
    rc=$?
    [ $rc -eq 130 ] && pass "E97 SIGHUP: exit 130" || fail "E97 SIGHUP: exit $rc (expected 130)"
    expect_grep "interrupted after step [0-9]+; nothing lost" "$D/hup.err" "E97 says /interrupted after step N; nothing lost/"
    check "E97 the saved state loads" "$C" info "$D/hup.ckpt.resume"
fi
(trap '' HUP; exec "$C" train "${LONG[@]}" -o "$D/nohup.ckpt" 2>"$D/nohup.err") &
pid=$!
sleep 1
kill -HUP $pid
sleep 0.5
kill -0 $pid 2>/dev/null && pass "E97b SIGHUP ignored (nohup): still training" || fail "E97b stopped by an ignored SIGHUP"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && pass "E97b SIGTERM afterwards: exit 130" || fail "E97b SIGTERM: exit $rc (expected 130)"

# real filesystems (root only): a full 64 KiB tmpfs and a read-only mount, in a
# private mount namespace so nothing outlives the test
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
    mkdir -p "$D/fs" "$D/ro"
    cat > "$D/mounts.sh" <<EOF
set -u
mount -t tmpfs -o size=64k tmpfs '$D/fs' || exit 77
mount -t tmpfs -o ro,size=64k tmpfs '$D/ro' || exit 77
'$C' train '$D/t.txt' -o '$D/fs/m.ckpt' ${TINY[*]} --steps 5 || exit 70
cp '$D/fs/m.ckpt' '$D/fs.orig'
dd if=/dev/zero of='$D/fs/fill' bs=1k 2>/dev/null
'$C' train --resume '$D/fs/m.ckpt' --steps 10 --quiet 2>'$D/full.err'; echo "full_rc=\$?"
cmp -s '$D/fs/m.ckpt' '$D/fs.orig' && echo unchanged
'$C' info '$D/fs/m.ckpt' >/dev/null && echo loads
'$C' info '$D/fs/m.ckpt.resume' >/dev/null && echo resume_loads
ls '$D/fs' | grep -c '\.tmp\.' | sed 's/^/tmpfiles=/'
'$C' train '$D/t.txt' -o '$D/ro/m.ckpt' ${TINY[*]} --steps 1 2>'$D/ro.err'; echo "ro_rc=\$?"
EOF
    unshare -m bash "$D/mounts.sh" > "$D/mounts.out" 2>&1
    if grep -q "full_rc=" "$D/mounts.out"; then
        expect_grep "^full_rc=1$" "$D/mounts.out" "E93 disk full: exit 1"
        expect_grep "No space left on device" "$D/full.err" "E93 says /No space left on device/"
        expect_grep "^unchanged$" "$D/mounts.out" "E93 the previous model is unchanged"
        expect_grep "^loads$" "$D/mounts.out" "E93 the previous model loads"
        expect_grep "^resume_loads$" "$D/mounts.out" "E93 MODEL.resume loads"
        expect_grep "^tmpfiles=0$" "$D/mounts.out" "E93 no temp file left"
        expect_grep "^ro_rc=1$" "$D/mounts.out" "E94 read-only directory: exit 1"
        expect_grep "directory '.*ro' is not writable: Read-only file system" "$D/ro.err" "E94 says /Read-only file system/"
    else
        fail "E93/E94 mounts" "$(head -c 600 "$D/mounts.out")"
    fi
else
    echo "skip - E93/E94 (real full and read-only filesystems) need root and unshare -m; E92 covers disk full"
fi

summary
