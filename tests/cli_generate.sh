#!/usr/bin/env bash
# cli_generate.sh — (being written; exits 77 = skipped)
exit 77
