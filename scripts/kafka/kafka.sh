#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, combined broker+controller) for local
# development and the test-suite. Jars come from Maven Central via
# scripts/kafka/pom.xml; nothing else is downloaded.
#
# Usage: scripts/kafka/kafka.sh {fetch|up|down|status|kill9|start|logs}
#
#   fetch   resolve the Kafka jars into $KAFKA_HOME/libs (once; stamp file)
#   up      fetch, write config, format a FRESH data dir, start, wait until ready
#   down    SIGTERM (graceful), after $KAFKA_STOP_TIMEOUT s SIGKILL; 0 if not running
#   status  print state; exit 0 if running, 3 if not
#   kill9   SIGKILL immediately, keep the data dir (fault-injection)
#   start   start again on the EXISTING data dir (no reformat), wait until ready
#   logs    tail the broker log
#
# Environment (all optional):
#   KAFKA_HOME             jar cache (+ state) dir    (default <repo>/.cache/kafka)
#   KAFKA_STATE_DIR        data/config/pid/log dir    (default $KAFKA_HOME)
#   KAFKA_PORT             client (PLAINTEXT) port    (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port      (default KAFKA_PORT+1)
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default 4.1.1)
#   KAFKA_HEAP_OPTS        (default "-Xms256m -Xmx768m")
#   KAFKA_JVM_OPTS         extra JVM options
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM (default 30)
#   KAFKA_PYTHON           python with kafka-python for the readiness probe
#                          (default <repo>/.venv/bin/python if present)
#   KAFKA_WATCH_PID        if set, a watchdog stops the broker once this pid exits
#                          (the pytest harness sets it so brokers never outlive it)
#   KAFKA_MVN_ARGS         extra maven args for fetch (e.g. "-o")
#
# Files (per port, so several brokers can coexist), S=$KAFKA_STATE_DIR:
#   $S/kafka-$PORT.pid, $S/kafka-$PORT.log, $S/data-$PORT/, $S/config/server-$PORT.properties
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_HOME="${KAFKA_HOME:-$REPO_ROOT/.cache/kafka}"
KAFKA_STATE_DIR="${KAFKA_STATE_DIR:-$KAFKA_HOME}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_MVN_ARGS="${KAFKA_MVN_ARGS:-}"
if [[ -z "${KAFKA_PYTHON:-}" && -x "$REPO_ROOT/.venv/bin/python" ]]; then
  KAFKA_PYTHON="$REPO_ROOT/.venv/bin/python"
fi
KAFKA_PYTHON="${KAFKA_PYTHON:-}"

LIBS="$KAFKA_HOME/libs"
STAMP="$LIBS/.fetched-kafka_2.13-$KAFKA_VERSION"
CONF_DIR="$KAFKA_STATE_DIR/config"
CONF="$CONF_DIR/server-$KAFKA_PORT.properties"
LOG4J_CONF="$CONF_DIR/log4j2.properties"
DATA="$KAFKA_STATE_DIR/data-$KAFKA_PORT"
PIDFILE="$KAFKA_STATE_DIR/kafka-$KAFKA_PORT.pid"
LOG="$KAFKA_STATE_DIR/kafka-$KAFKA_PORT.log"
# Put on the java command line so we can tell our broker from a recycled pid.
MARKER="-Ddriftd.kafka=$KAFKA_STATE_DIR:$KAFKA_PORT"

log() { echo "kafka.sh[$KAFKA_PORT]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ helpers

alive() { # pid -> 0 if the process exists and is not (entirely) a zombie
  # A SIGKILLed JVM can show its main thread as Z while the kernel is still
  # tearing down the other threads (sockets/locks still held), so a process
  # only counts as dead once every task is Z/X (or it is gone/reaped).
  local pid="$1" st
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -d "/proc/$pid/task" ]] || return 0
  for st in /proc/"$pid"/task/*/stat; do
    [[ -r "$st" ]] || continue
    case "$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "$st" 2>/dev/null)" in
      Z | X | "") ;;
      *) return 0 ;;
    esac
  done
  return 1
}

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

is_ours() { # pid -> 0 if it is alive and is our broker for this port
  local pid="$1"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$MARKER"
  fi
}

running_pid() { # prints pid and returns 0 if our broker is running
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if is_ours "$pid"; then echo "$pid"; return 0; fi
  return 1
}

tail_log() {
  if [[ -f "$LOG" ]]; then
    echo "----- last 60 lines of $LOG -----" >&2
    tail -n 60 "$LOG" >&2 || true
    echo "-----" >&2
  fi
}

java_cp() { echo "$LIBS/*"; }

# ------------------------------------------------------------------ fetch

cmd_fetch() {
  if [[ -f "$STAMP" ]]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not on PATH"
  mkdir -p "$KAFKA_HOME"
  # Serialise concurrent fetches (parallel test runners).
  exec 9>"$KAFKA_HOME/.fetch.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [[ -f "$STAMP" ]]; then exec 9>&-; return 0; fi
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (first run only)..."
  local tmp="$KAFKA_HOME/libs.tmp.$$"
  rm -rf "$tmp"
  # (Debian's maven prints stray ANSI resets even with -B; strip them.)
  # shellcheck disable=SC2086
  if ! mvn -B -q -f "$SCRIPT_DIR/pom.xml" $KAFKA_MVN_ARGS \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1 \
      | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then
    rm -rf "$tmp"
    die "maven dependency resolution failed"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  touch "$STAMP"
  exec 9>&-
  log "jars in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) files)"
}

# ------------------------------------------------------------------ config

write_config() {
  mkdir -p "$CONF_DIR"
  cat >"$CONF" <<EOF
# Generated by scripts/kafka/kafka.sh -- single-node KRaft (broker+controller).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# single node: every replication factor / ISR is 1
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true

# allow ~3 MB messages (plus headroom for batching/compression overhead)
message.max.bytes=10485760
replica.fetch.max.bytes=10485760

# test data may carry old (replayed) timestamps: never delete by time
log.retention.ms=-1
log.cleaner.dedupe.buffer.size=16777216

# a restarted node (kill9 + start) must be able to re-register quickly
# (after kill9 the controller keeps the old registration until its session expires)
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000

num.network.threads=3
num.io.threads=4
EOF
  cat >"$LOG4J_CONF" <<'EOF'
# Generated by scripts/kafka/kafka.sh; stdout is redirected to kafka-<port>.log
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

format_storage() {
  local cid="" py="${KAFKA_PYTHON:-$(command -v python3 || true)}"
  if [[ -n "$py" ]]; then
    # Same format as `StorageTool random-uuid` (base64url, no padding, no
    # leading '-') without paying for another JVM start.
    cid="$("$py" -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break' 2>/dev/null || true)"
  fi
  if [[ -z "$cid" ]]; then
    cid="$(java -cp "$(java_cp)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  fi
  [[ -n "$cid" ]] || die "could not generate a cluster id"
  rm -rf "$DATA"
  local flog="$KAFKA_STATE_DIR/format-$KAFKA_PORT.log"
  if ! java -Xmx256m -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$(java_cp)" \
      kafka.tools.StorageTool format -t "$cid" -c "$CONF" >"$flog" 2>&1; then
    tail -n 40 "$flog" >&2 || true
    die "storage format failed (full output: $flog)"
  fi
  : >"$LOG"
  log "formatted $DATA (cluster id $cid)"
}

# ------------------------------------------------------------------ start / wait

probe_metadata() { # 0 if the broker answers a metadata request with itself in it
  [[ -n "$KAFKA_PYTHON" ]] || return 0
  "$KAFKA_PYTHON" - "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 <<'EOF'
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                         bootstrap_timeout_ms=5000, client_id="kafka.sh-probe")
try:
    cluster = admin.describe_cluster()
    admin.list_topics()
    sys.exit(0 if cluster.get("brokers") else 1)
finally:
    admin.close()
EOF
}

start_java() {
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP_OPTS \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -Dkafka.logs.dir="$KAFKA_STATE_DIR" \
    "$MARKER" \
    $KAFKA_JVM_OPTS \
    -cp "$(java_cp)" kafka.Kafka "$CONF" </dev/null >>"$LOG" 2>&1 &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  start_watchdog "$pid"
  wait_ready "$pid"
}

start_watchdog() { # pid
  local pid="$1" watch="${KAFKA_WATCH_PID:-}"
  [[ -n "$watch" ]] || return 0
  (
    trap '' HUP INT
    while alive "$watch" && alive "$pid"; do sleep 1; done
    if is_ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 "$KAFKA_STOP_TIMEOUT"); do alive "$pid" || break; sleep 1; done
      kill -KILL "$pid" 2>/dev/null || true
      [[ "$(cat "$PIDFILE" 2>/dev/null)" == "$pid" ]] && rm -f "$PIDFILE"
    fi
  ) </dev/null >/dev/null 2>&1 &
}

wait_ready() { # pid
  local pid="$1" t0=$SECONDS
  while ((SECONDS - t0 < KAFKA_START_TIMEOUT)); do
    if ! alive "$pid"; then
      rm -f "$PIDFILE"
      tail_log
      die "broker process $pid exited during startup"
    fi
    if grep -q "Kafka Server started" "$LOG" 2>/dev/null && port_open "$KAFKA_PORT" \
        && probe_metadata; then
      log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
      return 0
    fi
    sleep 0.5
  done
  tail_log
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  die "broker not ready after ${KAFKA_START_TIMEOUT}s (killed)"
}

precheck_ports() {
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is already in use by another process"
  done
  return 0
}

# ------------------------------------------------------------------ commands

cmd_up() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  rm -f "$PIDFILE"
  command -v java >/dev/null || die "java not on PATH"
  cmd_fetch
  precheck_ports
  mkdir -p "$KAFKA_STATE_DIR"
  write_config
  format_storage
  start_java
}

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  rm -f "$PIDFILE"
  [[ -f "$DATA/meta.properties" && -f "$CONF" ]] \
    || die "no formatted data dir at $DATA (run 'up' first)"
  [[ -f "$STAMP" ]] || die "jars missing (run 'fetch' or 'up' first)"
  precheck_ports
  echo "===== kafka.sh start (restart on existing data) $(date -Is) =====" >>"$LOG"
  start_java
}

stop_pid() { # pid signal timeout
  local pid="$1" sig="$2" timeout="$3" i
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  return 1
}

cmd_down() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  if ! stop_pid "$pid" TERM "$KAFKA_STOP_TIMEOUT"; then
    log "no exit ${KAFKA_STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
    stop_pid "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

cmd_kill9() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  stop_pid "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  rm -f "$PIDFILE"
  log "killed -9 (pid $pid); data kept in $DATA"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running pid=$pid bootstrap=127.0.0.1:$KAFKA_PORT controller=127.0.0.1:$KAFKA_CONTROLLER_PORT data=$DATA log=$LOG"
    return 0
  fi
  echo "stopped (port $KAFKA_PORT)"
  return 3
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  up) cmd_up ;;
  down | stop) cmd_down ;;
  status) cmd_status ;;
  kill9) cmd_kill9 ;;
  start) cmd_start ;;
  logs) tail -n "${2:-100}" "$LOG" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
