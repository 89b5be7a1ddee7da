#!/usr/bin/env bash
# cli_vocab.sh — (being written; exits 77 = skipped)
exit 77
