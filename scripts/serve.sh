#!/usr/bin/env bash
# README command 1: build everything and start the server on the default catalog (config/catalog.json:
# the tiny stories model, plus Mistral-7B-Instruct-v0.1 once you point it at a GGUF file).
# Arguments are passed to `wai serve` (e.g. --port 9000, -m model.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
if [ $# -eq 0 ]; then set -- --catalog config/catalog.json; fi
exec build/bin/wai serve "$@"
