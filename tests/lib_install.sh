#!/usr/bin/env bash
# lib_install.sh — libcharrnn as a program outside this tree sees it:
# `meson install --destdir` into a temporary directory, then the example
# docs/examples/generate.c is compiled with `pkg-config --cflags --libs
# charrnn` against that installation only, run on a tiny model trained here,
# and its text compared with `charrnn generate` (same seed and settings:
# the same bytes). Also: the shared library exports the API and nothing else.
source "$(dirname "$0")/lib.sh"
: "${CRN_BUILD_ROOT:?CRN_BUILD_ROOT must be the meson build directory}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
DEST=$T_TMP/dest

# ---- install ------------------------------------------------------------------
check "meson install --destdir" meson install -C "$CRN_BUILD_ROOT" --no-rebuild --quiet --destdir "$DEST"
PC=$(find "$DEST" -name charrnn.pc -print -quit)
HDR=$(find "$DEST" -name charrnn.h -print -quit)
SO=$(find "$DEST" -name 'libcharrnn.so.*.*' -print -quit)
if [ -n "$PC" ] && [ -n "$HDR" ] && [ -n "$SO" ] && [ -n "$(find "$DEST" -name libcharrnn.a -print -quit)" ]; then
    pass "installed charrnn.pc, charrnn.h, libcharrnn.so, libcharrnn.a"
else fail "installed charrnn.pc, charrnn.h, libcharrnn.so, libcharrnn.a" "$(cd "$DEST" && find . -type f)"; fi
if [ "$(find "$DEST" -name '*.h' | wc -l)" -eq 1 ]; then pass "one header installed"
else fail "one header installed" "$(find "$DEST" -name '*.h')"; fi
SONAME=$(readelf -d "$SO" 2>/dev/null | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
if [ "$SONAME" = libcharrnn.so.0 ]; then pass "soname libcharrnn.so.0"; else fail "soname libcharrnn.so.0" "got '$SONAME'"; fi

# ---- the exported symbols are exactly the header's CHARRNN_API functions --------
sed -n 's/^CHARRNN_API .*[ *]\(charrnn_[a-z0-9_]*\)(.*/\1/p' "$HDR" | sort -u >"$T_TMP/api"
nm -D --defined-only "$SO" | awk '{print $3}' | sed 's/@.*//' | sort -u >"$T_TMP/exported"
if [ -s "$T_TMP/api" ] && cmp -s "$T_TMP/api" "$T_TMP/exported"; then
    pass "exports exactly the $(wc -l <"$T_TMP/api") API functions"
else fail "exports exactly the API functions" "$(diff "$T_TMP/api" "$T_TMP/exported" | head -20)"; fi

# ---- the example, built against the installation --------------------------------
export PKG_CONFIG_PATH=$(dirname "$PC") PKG_CONFIG_SYSROOT_DIR=$DEST
FLAGS=$(pkg-config --cflags --libs charrnn) || FLAGS=
PCFLAGS=$FLAGS
# a sanitized build's library needs the sanitizer runtimes in the program too
if nm -D "$SO" | grep -q ' U __asan_init'; then FLAGS="$FLAGS -fsanitize=address,undefined"; fi
if [ -n "$PCFLAGS" ] && ! grep -q -- "$SRC" <<<"$PCFLAGS"; then pass "pkg-config --cflags --libs charrnn"
else fail "pkg-config --cflags --libs charrnn" "got '$PCFLAGS'"; fi
# shellcheck disable=SC2086 # the flags are words
check "example compiles against the installed library" \
    "$CC" -std=c11 -Wall -Wextra -Werror "$SRC/docs/examples/generate.c" $FLAGS -o "$T_TMP/generate"
# shellcheck disable=SC2086
check "a C++ compiler accepts the header" \
    sh -c "printf '#include <charrnn.h>\nint main() { return charrnn_version() == CHARRNN_VERSION ? 0 : 1; }\n' |
           ${CXX:-c++} -x c++ - $FLAGS -o '$T_TMP/cxx' && LD_LIBRARY_PATH='$(dirname "$SO")' '$T_TMP/cxx'"

for i in 1 2 3 4 5 6; do
    echo "The cat sat on the mat. The dog ran in the park. A bird sang in the tree."
done >"$T_TMP/text.txt"
"$CHARRNN" train "$T_TMP/text.txt" -o "$T_TMP/m.crn" --steps 40 --hidden 32 --layers 1 --batch 4 --seq 16 \
    --threads 1 --quiet --seed 1 >"$T_TMP/train.log" 2>&1 || fail "train a tiny model" "$(head -5 "$T_TMP/train.log")"

LD_LIBRARY_PATH=$(dirname "$SO") "$T_TMP/generate" "$T_TMP/m.crn" 'The cat' >"$T_TMP/lib.out" 2>"$T_TMP/lib.err"
rc=$?
NCH=$(python3 -c 'import sys; print(len(open(sys.argv[1], encoding="utf-8").read().rstrip("\n")))' "$T_TMP/lib.out" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ "$NCH" = 200 ]; then pass "example generates 200 characters"
else fail "example generates 200 characters" "exit $rc, $NCH chars" "$(head -c 300 "$T_TMP/lib.err")"; fi
"$CHARRNN" generate "$T_TMP/m.crn" --prompt 'The cat' --seed 42 --length 200 --exact >"$T_TMP/cli.out" 2>/dev/null
if [ -s "$T_TMP/cli.out" ] && cmp -s "$T_TMP/lib.out" "$T_TMP/cli.out"; then pass "library and CLI give the same text"
else fail "library and CLI give the same text" "lib: $(head -c 200 "$T_TMP/lib.out")" "cli: $(head -c 200 "$T_TMP/cli.out")"; fi
LD_LIBRARY_PATH=$(dirname "$SO") "$T_TMP/generate" "$T_TMP/missing.crn" >/dev/null 2>"$T_TMP/miss.err"
if [ $? -eq 1 ] && grep -q 'missing.crn' "$T_TMP/miss.err"; then pass "a missing model: message names the file"
else fail "a missing model: message names the file" "$(cat "$T_TMP/miss.err")"; fi

summary
