#!/usr/bin/env bash
# Start a server on the embedded model, stream a clip at real-time pace, show partials and finals, stop the server.
set -euo pipefail
clip=${1:-../shared/eval/synth_dialogue_clean.wav}
port=${DEMO_PORT:-50071}
bin=.venv/bin
# The server's log is shown only if it fails to start, and removed on every exit: a demo leaves nothing behind.
log=$(mktemp -t hws-demo.XXXXXX.log)
trap 'rm -f "$log"' EXIT
$bin/hws-server --port "$port" --metrics-port 0 --log-format console >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
printf 'waiting for the server'
for _ in $(seq 1 120); do
  if $bin/hws-healthcheck --addr "localhost:$port" >/dev/null 2>&1; then break; fi
  kill -0 $server 2>/dev/null || { echo; cat "$log"; exit 1; }
  printf '.'; sleep 0.5
done
echo " serving"
echo "streaming $clip at real-time pace (partials are redrawn in place on a terminal):"
$bin/hws-client "$clip" --addr "localhost:$port"
