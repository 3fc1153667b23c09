#!/usr/bin/env bash
# `make demo`: start a local Redis, run the nightly pipeline on the bundled sample, start the
# streaming job in the background, serve the API in the foreground. Ctrl-C stops the API, the
# streaming job and the Redis this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .recolake

if [ -z "${RECOLAKE_PSEUDONYMISATION_KEY:-}" ]; then
  [ -s .recolake/pseudonymisation.key ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .recolake/pseudonymisation.key
  RECOLAKE_PSEUDONYMISATION_KEY="$(cat .recolake/pseudonymisation.key)"
  export RECOLAKE_PSEUDONYMISATION_KEY
fi

# Writes (POST /v1/events) need a bearer token: the caller's, or one generated for the demo.
if [ -z "${RECOLAKE_API_TOKEN:-}" ]; then
  [ -s .recolake/api.token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > .recolake/api.token
  RECOLAKE_API_TOKEN="$(cat .recolake/api.token)"
fi
export RECOLAKE_API_TOKEN

# Reads (recommendations, which show a user's recent history) need the read token too: an app
# server holds it, never a browser. Unset RECOLAKE_API_READ_TOKEN="" to serve reads openly.
if [ -z "${RECOLAKE_API_READ_TOKEN+set}" ]; then
  [ -s .recolake/api-read.token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > .recolake/api-read.token
  RECOLAKE_API_READ_TOKEN="$(cat .recolake/api-read.token)"
fi
export RECOLAKE_API_READ_TOKEN
if [ -n "$RECOLAKE_API_READ_TOKEN" ]; then READ_AUTH="-H 'Authorization: Bearer $RECOLAKE_API_READ_TOKEN' "; else READ_AUTH=""; fi

REDIS_PORT="${RECOLAKE_DEMO_REDIS_PORT:-6380}"
export RECOLAKE_REDIS_URL="${RECOLAKE_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/.recolake" --save '' --appendonly no \
  --logfile "$PWD/.recolake/redis.log" &
REDIS_PID=$!
STREAM_PID=""
cleanup() {
  if [ -n "$STREAM_PID" ]; then kill "$STREAM_PID" 2>/dev/null || true; wait "$STREAM_PID" 2>/dev/null || true; fi
  kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "redis-server did not start"; exit 1; }

.venv/bin/recolake nightly

# The streaming job: events posted to the API -> recent items, affinity, trending in Redis.
.venv/bin/recolake streaming > .recolake/streaming.log 2>&1 &
STREAM_PID=$!
STREAM_NOTE="streaming job running (pid $STREAM_PID, log .recolake/streaming.log)"

HOST="${RECOLAKE_API_HOST:-127.0.0.1}"
PORT="${RECOLAKE_API_PORT:-8000}"
API="http://$HOST:$PORT"
cat <<MSG

recolake is serving on $API  (playground and dashboard: $API/ui/ , API docs: $API/docs)
  write token: $RECOLAKE_API_TOKEN
  read token:  ${RECOLAKE_API_READ_TOKEN:-none, reads are open}
  $STREAM_NOTE; report: var/reports/*/evaluation-report/index.html
Try (docs/demo.md has more):
  curl -s ${READ_AUTH}'$API/v1/recommendations/15100?k=5&fields=title,price'
  curl -s -X POST '$API/v1/events' -H 'Authorization: Bearer $RECOLAKE_API_TOKEN' -H 'Content-Type: application/json' \\
    -d "{\"user_id\":\"15100\",\"session_id\":\"demo\",\"item_id\":\"22423\",\"event_type\":\"view\",\"timestamp\":\"\$(date -u +%FT%TZ)\"}"
  curl -s ${READ_AUTH}'$API/v1/recommendations?session_id=demo&k=5'
Ctrl-C stops the API, the streaming job and Redis.
MSG
.venv/bin/recolake serve --host "$HOST" --port "$PORT"
