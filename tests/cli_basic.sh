#!/usr/bin/env bash
# cli_basic.sh — the command-line skeleton: help, version, usage errors.
. "$(dirname "$0")/lib.sh"

check "--help exits 0" "$CHARRNN" --help
expect_grep 'Usage: charrnn <command>' "$T_TMP/out" "--help shows usage"
check "--version exits 0" "$CHARRNN" --version
expect_grep '^charrnn [0-9]+\.[0-9]+\.[0-9]+$' "$T_TMP/out" "--version prints the version"
expect_exit 2 "no arguments is a usage error" "$CHARRNN"
expect_exit 2 "unknown command exits 2" "$CHARRNN" frobnicate
expect_grep "unknown command 'frobnicate'" "$T_TMP/err" "unknown command is named"
expect_grep "Try 'charrnn --help'" "$T_TMP/err" "unknown command gives a hint"
expect_exit 2 "unknown global option exits 2" "$CHARRNN" --frob
for cmd in vocab train generate repl eval info bench; do
    check "$cmd --help exits 0" "$CHARRNN" "$cmd" --help
    expect_grep "Usage: charrnn $cmd" "$T_TMP/out" "$cmd --help shows its usage"
    expect_exit 2 "$cmd with an unknown option exits 2" "$CHARRNN" "$cmd" --no-such-option
    expect_grep "Try 'charrnn $cmd --help'" "$T_TMP/err" "$cmd unknown option gives a hint"
done
summary
