#!/usr/bin/env bash
# tools_quality.sh — tools/quality and tools/peer_charrnn.py end to end on a
# tiny budget: the equal-step part on config A (charrnn only, then with the
# peer when a torch is importable), the JSON and markdown outputs, a variant
# with extra train options, and the peer's jamo unit on our own Korean text.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=$T_TMP
BUILD=$(dirname "$CHARRNN")

if have_shared tinyshakespeare.txt; then
    check "tools/quality --no-peer, 6 steps" "$ROOT/tools/quality" --no-build --build-dir "$BUILD" --no-peer --no-time \
        --configs A --steps 6 --seeds 1 --variant 'base=' --variant 'fb1=--forget-bias 1 --no-layer-norm' \
        --json "$D/q.json" --markdown "$D/q.md"
    check "its JSON holds both variants with a validation figure" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ok = sorted(x["side"] for x in r) == ["base", "fb1"] and all(0 < x["val_bpc"] < 8 and x["steps"] == 6 for x in r)
ok = ok and "--forget-bias" in [y for x in r for y in x["cmd"]]
sys.exit(0 if ok else 1)' "$D/q.json"
    expect_grep "^\| A \| [0-9.]+ \(6; n=1\) \| [0-9.]+ \(6; n=1\) \| — \|$" "$D/q.md" "its markdown table"
    expect_grep "^\| config \| charrnn base \(layer norm\) \| charrnn fb1 \(no layer norm\) \|" "$D/q.md" \
        "its columns say which cells each side ran (layer norm by default)"
    expect_exit 2 "a variant named peer is refused" "$ROOT/tools/quality" --no-build --variant 'peer=' --no-time
    PY=$(python3 -c 'import importlib.machinery, sys
b = importlib.machinery.SourceFileLoader("b", sys.argv[1]).load_module(); print(b.torch_python())' "$ROOT/tools/bench")
    if "$PY" -c 'import torch' 2>/dev/null; then
        check "tools/quality with the peer ($PY), 4 steps" "$ROOT/tools/quality" --no-build --build-dir "$BUILD" \
            --no-time --configs A --steps 4 --seeds 1 --json "$D/p.json"
        check "the peer side is there" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
p = [x for x in r if x["side"] == "peer"]
sys.exit(0 if len(p) == 1 and [x["layer_norm"] for x in r if x["side"] == "charrnn"] == [True] and p[0]["steps"] == 4 and 0 < p[0]["val_bpc"] < 8 and p[0]["curve"] else 1)' "$D/p.json"
        python3 -c 'import sys; open(sys.argv[1], "w", encoding="utf-8").write("하늘은 파랗고 바다는 넓다. 우리는 노래한다.\n" * 200)' "$D/ko.txt"
        "$PY" "$ROOT/tools/peer_charrnn.py" --data "$D/ko.txt" --steps 3 --batch 4 --seq 8 --hidden 16 --layers 1 \
            --unit jamo --threads 1 > "$D/jamo.json" 2> "$D/jamo.err"
        check "the peer's jamo unit (bits per source character)" python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
sys.exit(0 if j["unit"] == "jamo" and j["vocab"] == 22 and 0 < j["val_bpc"] < 20 else 1)' "$D/jamo.json"
    else
        echo "skip - no importable torch for the peer ($PY)"
    fi
else
    echo "skip - tools/quality needs ../shared/corpora/tinyshakespeare.txt"
fi
summary
