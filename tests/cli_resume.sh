#!/usr/bin/env bash
# cli_resume.sh — a property of `train --resume`: whatever option is changed
# on resume, no command writes a file the loader refuses. For every base
# optimizer and every option a resumed run may take (and a sample of those it
# must refuse), resume a copy of a tiny run with the option changed; then
#   - accepted (exit 0): MODEL and MODEL.resume both load with `info`,
#     `generate`, `eval` and another `train --resume`;
#   - refused (exit 2): MODEL and MODEL.resume are byte-identical to before.
# Anything else (exit 1, a file the loader refuses) fails. Issue 10 item 1:
# `--momentum` on resume of an sgd run wrote "sgd needs 1 state buffers, the
# file has 0" files.
. "$(dirname "$0")/lib.sh"
D=$T_TMP
C=$CHARRNN

python3 - "$D" <<'PY'
import random, sys
random.seed(11)
w = ["the", "cat", "sat", "on", "a", "mat", "하늘은", "파랗고", "바다는", "넓다"]
open(f"{sys.argv[1]}/t.txt", "w", encoding="utf-8").write(
    "\n".join(" ".join(random.choice(w) for _ in range(6)) for _ in range(200)) + "\n")
PY
TINY=(--cell lstm --layers 1 --hidden 8 --batch 4 --seq 8 --threads 1 --quiet)

# loads FILE LABEL: every reader accepts FILE
loads() {
    local f=$1 label=$2 ok=1 why=
    "$C" info "$f" >/dev/null 2>"$D/lerr" || { ok=0; why="info: $(head -1 "$D/lerr")"; }
    [ $ok = 1 ] && { "$C" generate "$f" --length 5 --seed 1 >/dev/null 2>"$D/lerr" ||
        { ok=0; why="generate: $(head -1 "$D/lerr")"; }; }
    [ $ok = 1 ] && { "$C" eval "$f" "$D/t.txt" --threads 1 >/dev/null 2>"$D/lerr" ||
        { ok=0; why="eval: $(head -1 "$D/lerr")"; }; }
    if [ $ok = 1 ]; then
        rm -rf "$D/again" && mkdir "$D/again" && cp "$f" "$D/again/m.crn"
        "$C" train --resume "$D/again/m.crn" "$D/t.txt" --steps 40 --quiet >/dev/null 2>"$D/lerr" ||
            { ok=0; why="train --resume: $(head -1 "$D/lerr")"; }
    fi
    if [ $ok = 1 ]; then pass "$label loads"; else fail "$label loads" "$why"; fi
}

# resume_case BASE NAME EXPECT ARGS...: EXPECT is 0 (accepted) or 2 (refused)
resume_case() {
    local base=$1 name=$2 want=$3; shift 3
    local r=$D/r
    rm -rf "$r" && mkdir "$r"
    cp "$D/$base.crn" "$r/m.crn" && cp "$D/$base.crn.resume" "$r/m.crn.resume"
    "$C" train --resume "$r/m.crn" "$D/t.txt" --steps 30 --quiet "$@" >/dev/null 2>"$D/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$base $name: exit $rc, expected $want" "$(head -2 "$D/err")"
        return
    fi
    if [ "$rc" -eq 2 ]; then
        if cmp -s "$r/m.crn" "$D/$base.crn" && cmp -s "$r/m.crn.resume" "$D/$base.crn.resume"; then
            pass "$base $name: refused, files untouched"
        else fail "$base $name: refused but a file changed"; fi
        return
    fi
    pass "$base $name: resumed"
    local out=$r/m.crn
    [ -f "$r/other.crn" ] && out=$r/other.crn
    loads "$out" "$base $name: MODEL"
    loads "$out.resume" "$base $name: MODEL.resume"
}

for base in sgd0 sgdm adam adamw rmsprop adagrad; do
    case $base in
    sgd0) opt=(--optimizer sgd) ;;
    sgdm) opt=(--optimizer sgd --momentum 0.9) ;;
    *) opt=(--optimizer "$base") ;;
    esac
    check "$base: base run" "$C" train "$D/t.txt" -o "$D/$base.crn" "${TINY[@]}" "${opt[@]}" --steps 10 --eval-every 5
    [ -f "$D/$base.crn.resume" ] || cp "$D/$base.crn" "$D/$base.crn.resume"
    # every option a resumed run may change (cli_train.c apply_common)
    resume_case $base momentum-0.9 0 --momentum 0.9
    resume_case $base momentum-0 0 --momentum 0
    resume_case $base momentum-0.5 0 --momentum 0.5
    resume_case $base lr 0 --lr 0.01
    resume_case $base weight-decay 0 --weight-decay 0.1
    resume_case $base weight-decay-0 0 --weight-decay 0
    resume_case $base clip-0 0 --clip 0
    resume_case $base clip-1 0 --clip 1
    resume_case $base schedule-step 0 --schedule step --lr-decay 0.5 --lr-decay-after 12
    resume_case $base schedule-cosine 0 --schedule cosine
    resume_case $base warmup 0 --warmup 5
    resume_case $base epochs 0 --epochs 1
    resume_case $base time 0 --time 2s
    resume_case $base eval-every 0 --eval-every 3
    resume_case $base patience 0 --patience 1
    resume_case $base save-every 0 --save-every 2
    resume_case $base no-optimizer-state 0 --no-optimizer-state
    resume_case $base seed 0 --seed 99
    resume_case $base threads 0 --threads 2
    resume_case $base log 0 --log "$D/log.csv"
    resume_case $base sample 0 --sample-every 5 --sample-len 5
    resume_case $base output 0 -o "$D/r/other.crn"
    # options a resumed run refuses (usage error, nothing written)
    resume_case $base optimizer 2 --optimizer "$([ $base = adam ] && echo rmsprop || echo adam)"
    resume_case $base hidden 2 --hidden 9
    resume_case $base batch 2 --batch 5
    resume_case $base unit 2 --unit jamo
done

summary
