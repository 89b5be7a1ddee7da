#!/usr/bin/env bash
# run_crashes.sh BUILD_DIR CRASH_DIR — run every saved crash input
# CRASH_DIR/TARGET-N once through BUILD_DIR/TARGET (libFuzzer runs a file
# argument once and exits 0 when it passes). Each one is a regression test:
# it crashed once, and must not any more.
set -u
build=$1 dir=$2
pass=0 fail=0
shopt -s nullglob
for f in "$dir"/*-*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    target=${name%-*}
    exe=$build/$target
    if [ ! -x "$exe" ]; then
        echo "FAIL $name: no fuzz target $target"; fail=$((fail + 1)); continue
    fi
    if out=$("$exe" -runs=1 -timeout=20 "$f" 2>&1); then
        echo "ok   $name"; pass=$((pass + 1))
    else
        echo "FAIL $name: $target still crashes on it:"; echo "$out" | grep -E 'ERROR|invariant|SUMMARY|#[0-9]+ ' | head -20
        fail=$((fail + 1))
    fi
done
echo "fuzz-crashes: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
