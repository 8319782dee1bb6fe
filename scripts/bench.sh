#!/usr/bin/env bash
# npm run bench: build, then run the side-by-side benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run -s build
node dist/bench/run.js "$@"
