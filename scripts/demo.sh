#!/usr/bin/env bash
# npm run demo: build, then boot the default guest with its console (COM1) on this terminal.
set -uo pipefail
cd "$(dirname "$0")/.."
npm run -s build || exit 4
make -s -C tests/guests || exit 4
echo "+ bhyve -c 2 -s 0,hostbridge -s 1,lpc -l com1,stdio -l bootrom,tests/guests/out/hello.bin -A -H -P -m 256M hello"
node dist/bundle/bhyve.js -c 2 -s 0,hostbridge -s 1,lpc -l com1,stdio -l bootrom,tests/guests/out/hello.bin -A -H -P -m 256M hello
status=$?
names=(reset power-off halt "triple fault" error)
echo "bhyve exited with status $status (${names[$status]:-unknown})"
# A guest that powers itself off is the demo working.
[ "$status" = 1 ] && exit 0
exit "$status"
