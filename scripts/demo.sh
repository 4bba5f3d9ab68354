#!/usr/bin/env bash
# `make demo`: the credit-scoring story end to end on a local broker, ending by itself.
#   broker → reference profile → webhook receiver → driftd → producer (v1, then a bad v2)
#   → drift detected → signed rollback request printed by the receiver.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEMO=.cache/demo
export KAFKA_PORT=${KAFKA_PORT:-9092}
BOOT=127.0.0.1:$KAFKA_PORT
SINK_PORT=${DEMO_SINK_PORT:-18080}
HTTP_PORT=${DEMO_HTTP_PORT:-9108}
TOPIC=predictions-$(date +%s)
export DRIFTD_WEBHOOK_SECRET=${DRIFTD_WEBHOOK_SECRET:-demo-secret-$RANDOM$RANDOM}
export DRIFTD_KAFKA__BOOTSTRAP_SERVERS="[\"$BOOT\"]"
export DRIFTD_KAFKA__TOPICS="[\"$TOPIC\"]"
export DRIFTD_KAFKA__GROUP_ID="driftd-demo-$TOPIC"
export DRIFTD_ACTIONS__ROLLBACK__URL="http://127.0.0.1:$SINK_PORT/rollback"
export DRIFTD_HTTP__LISTEN="127.0.0.1:$HTTP_PORT"
mkdir -p "$DEMO"
rm -rf "$DEMO/state"

pids=()
started_kafka=0
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$started_kafka" = 1 ]; then scripts/kafka/kafka.sh down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/6 Apache Kafka (KRaft, single node) on $BOOT"
if ! scripts/kafka/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka/kafka.sh up
  started_kafka=1
else
  echo "already running"
fi

step "2/6 Reference profile from 20,000 events of v1 (training-time baseline)"
$PY -m driftd.demo.credit --events 20000 --version v1 --seed 1 > "$DEMO/reference.jsonl"
$PY -m driftd profile build -c config/demo.yaml --monitor credit \
    --input "$DEMO/reference.jsonl" --out "$DEMO/credit-profile.json"

step "3/6 Webhook receiver on :$SINK_PORT (verifies the HMAC signature)"
$PY -m driftd.demo.sink --port "$SINK_PORT" --secret-env DRIFTD_WEBHOOK_SECRET --expect 1 \
    --out "$DEMO/rollback-requests.jsonl" &
sink_pid=$!
pids+=("$sink_pid")

step "4/6 driftd run (metrics and API on http://127.0.0.1:$HTTP_PORT)"
# the topic as services have it: 4 partitions, events keyed by event id (each version in all)
$PY -m driftd.demo.producer --bootstrap "$BOOT" --topic "$TOPIC" --partitions 4 --create-only
$PY -m driftd run -c config/demo.yaml > "$DEMO/driftd.log" 2>&1 &
driftd_pid=$!
pids+=("$driftd_pid")
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$driftd_pid" 2>/dev/null || { cat "$DEMO/driftd.log"; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz"; echo

step "5/6 Producer: 15,000 predictions of v1, then 15,000 of v2 (the bad update), keyed by event id"
$PY -m driftd.demo.producer --bootstrap "$BOOT" --topic "$TOPIC" --rate 5000 &
pids+=("$!")

step "6/6 Waiting for drift → alert → signed rollback request (up to 90 s)"
ok=0
for _ in $(seq 1 180); do
  if ! kill -0 "$sink_pid" 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
if [ "$ok" != 1 ]; then
  echo "no rollback request arrived in time; driftd log:"; tail -40 "$DEMO/driftd.log"; exit 1
fi

echo
$PY -m driftd.demo.show --url "http://127.0.0.1:$HTTP_PORT" --monitor credit
echo
echo "driftd's alert log line:"
grep -h "drift.detected" "$DEMO/driftd.log" | head -3 || true
kill -TERM "$driftd_pid" 2>/dev/null || true
wait "$driftd_pid" 2>/dev/null || true
echo
echo "Demo done: v2 shifted the approval score, driftd detected it, and the deployer received"
echo "a signed rollback request naming rollback_to=v1 ($DEMO/rollback-requests.jsonl)."
