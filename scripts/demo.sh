#!/usr/bin/env bash
# `make demo`: start a local Redis, run the nightly pipeline on the bundled sample, serve the
# API in the foreground. Ctrl-C stops the API and the Redis this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .recolake

if [ -z "${RECOLAKE_PSEUDONYMISATION_KEY:-}" ]; then
  [ -s .recolake/pseudonymisation.key ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .recolake/pseudonymisation.key
  RECOLAKE_PSEUDONYMISATION_KEY="$(cat .recolake/pseudonymisation.key)"
  export RECOLAKE_PSEUDONYMISATION_KEY
fi

REDIS_PORT="${RECOLAKE_DEMO_REDIS_PORT:-6380}"
export RECOLAKE_REDIS_URL="${RECOLAKE_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/.recolake" --save '' --appendonly no \
  --logfile "$PWD/.recolake/redis.log" &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "redis-server did not start"; exit 1; }

.venv/bin/recolake nightly

HOST="${RECOLAKE_API_HOST:-127.0.0.1}"
PORT="${RECOLAKE_API_PORT:-8000}"
cat <<MSG

recolake API on http://$HOST:$PORT (docs: http://$HOST:$PORT/docs). Try:
  curl -s 'http://$HOST:$PORT/v1/recommendations/15100?k=5'        # a known customer (ALS)
  curl -s 'http://$HOST:$PORT/v1/recommendations/new-visitor?k=5'  # unknown: popular items
  curl -s 'http://$HOST:$PORT/healthz'
Ctrl-C stops the API and Redis.
MSG
.venv/bin/recolake serve --host "$HOST" --port "$PORT"
