#!/usr/bin/env bash
# The local stack of real services for development, tests and the demo, all on loopback:
#   PostgreSQL 15 + PgQ (own cluster, initdb'd under .services), pgqd (the PgQ ticker),
#   ZooKeeper (standalone, Debian's jars), Kafka 4.x (KRaft, combined broker+controller,
#   jars fetched from Maven Central by scripts/services/kafka-pom.xml).
#
# Usage: scripts/services.sh up|down|status
#        scripts/services.sh start|stop|restart|kill NAME    NAME: postgres|pgqd|zookeeper|kafka
#        scripts/services.sh install prometheus              tools the tests run themselves
#
# Everything (data, configs, logs, pid files) lives in $PGSHOVEL_STACK_DIR (default: .services in
# the repository root). `up` also writes $PGSHOVEL_STACK_DIR/env, sourceable by bash and make.
# Environment overrides (used by the tests' private throwaway instances too):
#   PGSHOVEL_STACK_DIR                    state directory (default <repo>/.services)
#   PGSHOVEL_STACK_PG_PORT                PostgreSQL port (55432)
#   PGSHOVEL_STACK_ZK_PORT                ZooKeeper client port (22181)
#   PGSHOVEL_STACK_KAFKA_PORT             Kafka broker port (29092)
#   PGSHOVEL_STACK_KAFKA_CONTROLLER_PORT  Kafka KRaft controller port (29093)
#   PGSHOVEL_STACK_KAFKA_LIB              Kafka jars (default <repo>/.services/kafka/lib, shared)
#   PGSHOVEL_STACK_READY_TIMEOUT          seconds to wait for each service (120)
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/services"
STACK_DIR="${PGSHOVEL_STACK_DIR:-$ROOT/.services}"
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
PG_PORT="${PGSHOVEL_STACK_PG_PORT:-55432}"
ZK_PORT="${PGSHOVEL_STACK_ZK_PORT:-22181}"
KAFKA_PORT="${PGSHOVEL_STACK_KAFKA_PORT:-29092}"
KAFKA_CONTROLLER_PORT="${PGSHOVEL_STACK_KAFKA_CONTROLLER_PORT:-29093}"
KAFKA_LIB="${PGSHOVEL_STACK_KAFKA_LIB:-$ROOT/.services/kafka/lib}"
READY_TIMEOUT="${PGSHOVEL_STACK_READY_TIMEOUT:-120}"
STOP_TIMEOUT=60

PG_BIN=/usr/lib/postgresql/15/bin
LOG_DIR="$STACK_DIR/logs"
PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$LOG_DIR/postgres.log"
PGQD_DIR="$STACK_DIR/pgqd"
PGQD_INI="$PGQD_DIR/pgqd.ini"
PGQD_PID="$PGQD_DIR/pgqd.pid"
PGQD_LOG="$LOG_DIR/pgqd.log"
ZK_DIR="$STACK_DIR/zookeeper"
ZK_CFG="$ZK_DIR/zoo.cfg"
ZK_PID="$ZK_DIR/zookeeper.pid"
ZK_LOG="$LOG_DIR/zookeeper.log"
KAFKA_DIR="$STACK_DIR/kafka"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$LOG_DIR/kafka.log"
STACK_DB=pgshovel_stack

SERVICES=(postgres pgqd zookeeper kafka)

log() { echo "services: $*" >&2; }
die() {
  echo "services: ERROR: $*" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi

# ---------------------------------------------------------------- installation

apt_missing=()
need_pkg() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || apt_missing+=("$1")
}

install_packages() {
  apt_missing=()
  local p
  for p in "$@"; do need_pkg "$p"; done
  [ "${#apt_missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${apt_missing[*]}); run as root to install them"
  log "installing ${apt_missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their system-wide services (a default PostgreSQL cluster, pgqd):
  # this stack runs its own instances. policy-rc.d exit 101 forbids starts during the install.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  # postgresql-common first, so that the distribution does not create and start its own
  # default cluster on 5432: this stack runs its own cluster.
  if [[ " ${apt_missing[*]} " == *" postgresql-15 "* ]]; then
    apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
    sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
  fi
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
}

# The C capture function of statement mode (ext/pgshovel_capture, docs/capture.md), built with
# PGXS against the installed server. Debian's postgresql-server-dev-15 is pinned to the installed
# server's own version, so that installing the headers never upgrades the server. A checksum of
# the sources beside the installed files skips the build when nothing changed.
ensure_capture_extension() {
  local src="$ROOT/ext/pgshovel_capture" pg_config="$PG_BIN/pg_config" sum stamp build version
  sum="$(cat "$src"/Makefile "$src"/*.c "$src"/*.control "$src"/*.sql | sha256sum | cut -d' ' -f1)"
  stamp="$("$pg_config" --sharedir)/extension/pgshovel_capture.sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] &&
    [ -f "$("$pg_config" --pkglibdir)/pgshovel_capture.so" ]; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "the pgshovel_capture extension is not installed; run as root to build and install it"
  if [ ! -f "$("$pg_config" --includedir-server)/postgres.h" ]; then
    version="$(dpkg-query -W -f='${Version}' postgresql-15)"
    log "installing postgresql-server-dev-15=$version with apt-get"
    apt-get update -qq >"$LOG_DIR/apt-server-dev.log" 2>&1 ||
      die "apt-get update failed (see $LOG_DIR/apt-server-dev.log)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "postgresql-server-dev-15=$version" >>"$LOG_DIR/apt-server-dev.log" 2>&1 ||
      die "could not install postgresql-server-dev-15=$version (see $LOG_DIR/apt-server-dev.log)"
  fi
  log "building the pgshovel_capture extension"
  build="$STACK_DIR/build/pgshovel_capture"
  rm -rf "$build" && mkdir -p "$build" && cp "$src"/Makefile "$src"/*.c "$src"/*.control "$src"/*.sql "$build"/
  make -C "$build" PG_CONFIG="$pg_config" install >"$LOG_DIR/pgshovel_capture-build.log" 2>&1 ||
    die "could not build the pgshovel_capture extension (see $LOG_DIR/pgshovel_capture-build.log)"
  echo "$sum" >"$stamp"
}

ensure_installed() {
  case "$1" in
    postgres)
      install_packages postgresql-15 postgresql-15-pgq3
      mkdir -p "$LOG_DIR"
      ensure_capture_extension
      ;;
    pgqd) install_packages pgqd ;;
    zookeeper) install_packages zookeeper openjdk-17-jre-headless ;;
    kafka)
      install_packages openjdk-17-jre-headless maven
      ensure_kafka_lib
      ;;
    # Not a service of the stack: the metrics tests start private instances, and promtool
    # checks the shipped alert rules. Its package's own service is kept from starting.
    prometheus) install_packages prometheus ;;
  esac
}

# Kafka's jars come from Maven Central; a stamp of the pom's checksum avoids re-running Maven.
ensure_kafka_lib() {
  local pom="$HERE/kafka-pom.xml" stamp="$KAFKA_LIB/.pom.sha256" sum
  sum="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  log "fetching Kafka jars with Maven into $KAFKA_LIB"
  rm -rf "$KAFKA_LIB"
  mkdir -p "$KAFKA_LIB"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIB" >"$STACK_DIR/maven.log" 2>&1 ||
    die "Maven could not fetch Kafka (see $STACK_DIR/maven.log)"
  echo "$sum" >"$stamp"
}

# ---------------------------------------------------------------- process helpers

# pid_matches PID NEEDLE: the process exists and its command line contains NEEDLE
pid_matches() {
  local pid="$1" needle="$2"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"
}

read_pid() { [ -f "$1" ] && head -n1 "$1" | tr -dc '0-9' || true; }

# wait_gone PID SECONDS: true when the process has exited in time
wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    # a zombie counts as gone
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# terminate PID NAME: SIGTERM, then SIGKILL after a bound; also kills its direct children
terminate() {
  local pid="$1" name="$2" kids
  kids="$(pgrep -P "$pid" || true)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    log "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
  fi
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
}

# hard_kill PID: SIGKILL the process and its direct children (simulates a crash)
hard_kill() {
  local pid="$1" kids k
  kids="$(pgrep -P "$pid" || true)"
  kill -KILL "$pid" 2>/dev/null || true
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  wait_gone "$pid" 10 || true
  for k in $kids; do wait_gone "$k" 10 || true; done
}

# port_listeners PORT: pids listening on TCP PORT (any address)
# Stops the process a pid function names (SIGTERM, SIGKILL past a bound), then drops its pid file.
stop_process() { # NAME PID_FUNCTION PID_FILE
  local pid
  pid="$("$2")"
  [ -z "$pid" ] && return 0
  log "stopping $1 (pid $pid)"
  terminate "$pid" "$1"
  rm -f "$3"
}

# SIGKILL, to simulate a crash; the pid file stays, as a crash would leave it.
kill_process() { # PID_FUNCTION
  local pid
  pid="$("$1")"
  [ -n "$pid" ] && hard_kill "$pid"
  return 0
}

port_listeners() {
  ss -H -ltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

# port_owned_by PORT PID: PID listens on PORT
port_owned_by() { port_listeners "$1" | grep -qx "$2"; }

# require_port_free NAME PORT LOG: fail clearly when another process holds the port
require_port_free() {
  local holders
  holders="$(port_listeners "$2" | tr '\n' ' ')"
  if [ -n "$holders" ] || (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
    die "$1 cannot start: port $2 on 127.0.0.1 is already in use${holders:+ by pid $holders}(set another port, or stop that process); log: $3"
  fi
}

# wait_exec PID NEEDLE: waits (up to 10 s) until a child started with `&` has exec'd the
# service (its command line names NEEDLE) or has died. Fork and exec are two steps: for a
# moment the child's command line is still this script's, and the service's pid function
# would take it for a process that is not the service any more.
wait_exec() {
  local pid="$1" needle="$2" i
  for ((i = 0; i < 100; i++)); do
    pid_matches "$pid" "$needle" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# start_java PID_FILE LOG NEEDLE JAVA_ARGS...: starts a headless JVM in its own session,
# detached, output appended to LOG; records its pid and waits until it has exec'd.
start_java() {
  local pid_file="$1" logfile="$2" needle="$3"
  shift 3
  (exec setsid java -Djava.awt.headless=true "$@" >>"$logfile" 2>&1 </dev/null 9>&-) &
  echo $! >"$pid_file"
  wait_exec "$(read_pid "$pid_file")" "$needle"
}

# wait_ready NAME LOG PIDFN PROBEFN [PORT]: polls until the service's own process (PIDFN)
# listens on PORT and PROBEFN succeeds; fails fast when the process died
wait_ready() {
  local name="$1" logfile="$2" pidfn="$3" probe="$4" port="${5:-}" deadline=$((SECONDS + READY_TIMEOUT)) pid
  while :; do
    pid="$("$pidfn")"
    if [ -z "$pid" ]; then
      die "$name exited during startup; see its log: $logfile"
    fi
    if { [ -z "$port" ] || port_owned_by "$port" "$pid"; } && "$probe"; then return 0; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "$name not ready after ${READY_TIMEOUT}s; see its log: $logfile"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- PostgreSQL

pg_pid() {
  local pid
  pid="$(read_pid "$PG_DATA/postmaster.pid")"
  if pid_matches "$pid" "$PG_DATA"; then echo "$pid"; fi
}

psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

pg_configure() {
  mkdir -p "$PG_DIR" "$PG_RUN" "$LOG_DIR"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initdb $PG_DATA"
    rm -rf "$PG_DATA"
    mkdir -p "$PG_DATA"
    [ "${#AS_PG[@]}" -gt 0 ] && chown postgres:postgres "$PG_DATA"
    chmod 700 "$PG_DATA"
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 \
      --no-locale >"$LOG_DIR/initdb.log" 2>&1 || die "initdb failed; see $LOG_DIR/initdb.log"
    echo "include = 'pgshovel.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  # Rewritten at every start so that port and paths follow the environment.
  cat >"$PG_DATA/pgshovel.conf" <<EOF
# Written by scripts/services.sh: a development/test cluster, loopback only.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 300
max_prepared_transactions = 50
shared_buffers = 128MB
# Durability is traded for speed: this is a throwaway dev/test stack, never production.
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
  # Members of password_required must give a password (tests provoke authentication failures
  # with them); everyone else is trusted on loopback and the unix socket.
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# Written by scripts/services.sh
local all all                                trust
host  all +password_required 127.0.0.1/32    scram-sha-256
host  all all                127.0.0.1/32    trust
EOF
  touch "$PG_LOG"
  if [ "${#AS_PG[@]}" -gt 0 ]; then
    chown postgres:postgres "$PG_RUN" "$PG_LOG" "$PG_DATA/pgshovel.conf" "$PG_DATA/pg_hba.conf"
  fi
}

pg_probe() {
  psql_admin -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

pg_setup_stack_db() {
  psql_admin -d postgres >/dev/null <<'EOF'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'password_required') THEN
    CREATE ROLE password_required NOLOGIN;
  END IF;
END $$;
EOF
  if [ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$STACK_DB'")" != 1 ]; then
    psql_admin -d postgres -c "CREATE DATABASE $STACK_DB" >/dev/null
  fi
  psql_admin -d "$STACK_DB" -c 'CREATE EXTENSION IF NOT EXISTS pgq' >/dev/null 2>&1 ||
    die "postgres: CREATE EXTENSION pgq failed in $STACK_DB; see $PG_LOG"
  psql_admin -d "$STACK_DB" -tAc 'SELECT pgq.version()' >/dev/null ||
    die "postgres: SELECT pgq.version() failed in $STACK_DB; see $PG_LOG"
}

start_postgres() {
  ensure_installed postgres
  pg_configure
  if [ -z "$(pg_pid)" ]; then
    # No live postmaster owns the lock file (e.g. after a kill; a zombie not yet reaped would
    # still pass PostgreSQL's own kill(pid, 0) check): it is stale.
    rm -f "$PG_DATA/postmaster.pid" "$PG_RUN/.s.PGSQL.$PG_PORT.lock"
    require_port_free postgres "$PG_PORT" "$PG_LOG"
    log "starting postgres on 127.0.0.1:$PG_PORT"
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$READY_TIMEOUT" start \
      >/dev/null 9>&- || die "postgres did not start; see its log: $PG_LOG"
  fi
  wait_ready postgres "$PG_LOG" pg_pid pg_probe "$PG_PORT"
  pg_setup_stack_db
}

stop_postgres() {
  local pid
  pid="$(pg_pid)"
  [ -z "$pid" ] && return 0
  log "stopping postgres (pid $pid)"
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 || true
  if kill -0 "$pid" 2>/dev/null; then terminate "$pid" postgres; fi
  wait_postgres_children_gone
}

# Backends exit soon after their postmaster; wait for this cluster's (their working directory
# is the data directory) so that a restart finds no shared memory still attached.
wait_postgres_children_gone() {
  local deadline=$((SECONDS + 20)) p left
  while :; do
    left=()
    for p in $(pgrep -u postgres 2>/dev/null || true); do
      if [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$PG_DATA" ] &&
        [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
        left+=("$p")
      fi
    done
    [ "${#left[@]}" -eq 0 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "${left[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.2
  done
}

kill_postgres() {
  local pid
  pid="$(pg_pid)"
  [ -z "$pid" ] && return 0
  hard_kill "$pid"
  wait_postgres_children_gone
}

# ---------------------------------------------------------------- pgqd

pgqd_pid() {
  local pid
  pid="$(read_pid "$PGQD_PID")"
  if pid_matches "$pid" "$PGQD_INI"; then echo "$pid"; fi
}

start_pgqd() {
  ensure_installed pgqd
  mkdir -p "$PGQD_DIR" "$LOG_DIR"
  # No database_list: pgqd discovers every database with PgQ, also ones created later
  # (checked every check_period seconds).
  cat >"$PGQD_INI" <<EOF
[pgqd]
logfile = $PGQD_LOG
pidfile = $PGQD_PID
base_connstr = host=127.0.0.1 port=$PG_PORT user=postgres
initial_database = postgres
check_period = 5
retry_period = 30
maint_period = 120
ticker_period = 1
EOF
  if [ -z "$(pgqd_pid)" ]; then
    rm -f "$PGQD_PID"
    log "starting pgqd"
    pgqd -d "$PGQD_INI" >>"$PGQD_LOG" 2>&1 9>&- || die "pgqd did not start; see its log: $PGQD_LOG"
    # the daemonized child writes the pid file shortly after the parent returned
    local deadline=$((SECONDS + 15))
    while [ -z "$(pgqd_pid)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  fi
  wait_ready pgqd "$PGQD_LOG" pgqd_pid pgqd_probe
}

pgqd_probe() { [ -n "$(pgqd_pid)" ]; }

stop_pgqd() { stop_process pgqd pgqd_pid "$PGQD_PID"; }
kill_pgqd() { kill_process pgqd_pid; }

# ---------------------------------------------------------------- ZooKeeper

zk_classpath() {
  # zookeeper.jar's manifest names its own dependencies; add an slf4j binding (to stderr,
  # which goes to the log file).
  echo "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
}

zk_pid() {
  local pid
  pid="$(read_pid "$ZK_PID")"
  if pid_matches "$pid" "$ZK_CFG"; then echo "$pid"; fi
}

zk_probe() {
  local answer=""
  answer="$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; printf ruok >&3; head -c 4 <&3" 2>/dev/null || true)"
  [ "$answer" = imok ]
}

start_zookeeper() {
  ensure_installed zookeeper
  mkdir -p "$ZK_DIR/data" "$LOG_DIR"
  cat >"$ZK_CFG" <<EOF
# Written by scripts/services.sh: standalone ZooKeeper on loopback.
tickTime=2000
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
# dev stack: no fsync per transaction, small log preallocation
forceSync=no
preAllocSize=4096
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  if [ -z "$(zk_pid)" ]; then
    require_port_free zookeeper "$ZK_PORT" "$ZK_LOG"
    log "starting zookeeper on 127.0.0.1:$ZK_PORT"
    start_java "$ZK_PID" "$ZK_LOG" "$ZK_CFG" -Xms64m -Xmx256m \
      -Dzookeeper.admin.enableServer=false -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd\ HH:mm:ss.SSS \
      -cp "$(zk_classpath)" org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_CFG"
  fi
  wait_ready zookeeper "$ZK_LOG" zk_pid zk_probe "$ZK_PORT"
}

stop_zookeeper() { stop_process zookeeper zk_pid "$ZK_PID"; }
kill_zookeeper() { kill_process zk_pid; }

# ---------------------------------------------------------------- Kafka

kafka_pid() {
  local pid
  pid="$(read_pid "$KAFKA_PID")"
  if pid_matches "$pid" "$KAFKA_PROPS"; then echo "$pid"; fi
}

# The probe needs a Node (scripts/toolchain.sh provides one) but no npm package: the stack
# starts on a fresh clone, before `make setup`.
node_bin() {
  local dir
  dir="$("$ROOT/scripts/toolchain.sh")"
  echo "$dir/node"
}

kafka_probe() {
  timeout 10 "$NODE" "$HERE/kafka-ready.mjs" "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
}

start_kafka() {
  ensure_installed kafka
  NODE="$(node_bin)"
  mkdir -p "$KAFKA_DIR/data" "$LOG_DIR"
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/services.sh: single-node KRaft (combined broker+controller) on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=67108864
EOF
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
# Written by scripts/services.sh: everything to stdout, which goes to the log file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    if [ ! -s "$KAFKA_DIR/cluster.id" ]; then
      # A random 16-byte UUID in Kafka's URL-safe base64 form. One in 64 would start with
      # "-", which reads as an option on a command line: its first character is replaced
      # by "A" (another valid id), and the id is passed as --cluster-id=ID besides.
      head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | sed 's/^-/A/' >"$KAFKA_DIR/cluster.id"
    fi
    log "formatting Kafka storage (cluster id $(cat "$KAFKA_DIR/cluster.id"))"
    java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIB/*" \
      kafka.tools.StorageTool format --cluster-id="$(cat "$KAFKA_DIR/cluster.id")" --config="$KAFKA_PROPS" \
      --ignore-formatted >>"$KAFKA_LOG" 2>&1 || die "kafka storage format failed; see $KAFKA_LOG"
  fi
  if [ -z "$(kafka_pid)" ]; then
    require_port_free kafka "$KAFKA_PORT" "$KAFKA_LOG"
    require_port_free "kafka controller" "$KAFKA_CONTROLLER_PORT" "$KAFKA_LOG"
    log "starting kafka on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    start_java "$KAFKA_PID" "$KAFKA_LOG" "$KAFKA_PROPS" -Xms512m -Xmx512m -server \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
      -Dkafka.logs.dir="$LOG_DIR" -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_PROPS"
  fi
  wait_ready kafka "$KAFKA_LOG" kafka_pid kafka_probe "$KAFKA_PORT"
}

stop_kafka() { stop_process kafka kafka_pid "$KAFKA_PID"; }
kill_kafka() { kill_process kafka_pid; }

# ---------------------------------------------------------------- commands

write_env() {
  cat >"$STACK_DIR/env" <<EOF
# Written by scripts/services.sh up: source it (set -a; source .services/env; set +a).
PGHOST=127.0.0.1
PGPORT=$PG_PORT
PGUSER=postgres
PGDATABASE=postgres
PGSHOVEL_ZOOKEEPER_HOSTS=127.0.0.1:$ZK_PORT
PGSHOVEL_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
PGSHOVEL_STACK_DIR=$STACK_DIR
PGSHOVEL_STACK_PG_PORT=$PG_PORT
PGSHOVEL_STACK_ZK_PORT=$ZK_PORT
PGSHOVEL_STACK_KAFKA_PORT=$KAFKA_PORT
PGSHOVEL_STACK_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
EOF
}

status_line() {
  local name="$1" pid port
  case "$name" in
    postgres) pid="$(pg_pid)" port="$PG_PORT" ;;
    pgqd) pid="$(pgqd_pid)" port="-" ;;
    zookeeper) pid="$(zk_pid)" port="$ZK_PORT" ;;
    kafka) pid="$(kafka_pid)" port="$KAFKA_PORT" ;;
  esac
  if [ -n "$pid" ]; then
    printf '%-10s up    pid %-8s port %s\n' "$name" "$pid" "$port"
  else
    printf '%-10s down  pid %-8s port %s\n' "$name" "-" "$port"
  fi
}

check_name() {
  case "${1:-}" in
    postgres | pgqd | zookeeper | kafka) ;;
    *) die "unknown service '${1:-}' (postgres|pgqd|zookeeper|kafka)" ;;
  esac
}

lock() {
  exec 9>"$STACK_DIR/.lock"
  flock 9
}

usage() {
  echo "usage: $0 up|down|status | start|stop|restart|kill postgres|pgqd|zookeeper|kafka | install prometheus" >&2
  exit 2
}

cmd="${1:-}"
case "$cmd" in
  up)
    lock
    ensure_installed prometheus
    start_postgres
    start_pgqd
    start_zookeeper
    start_kafka
    write_env
    for s in "${SERVICES[@]}"; do status_line "$s"; done
    log "ready; environment in $STACK_DIR/env"
    ;;
  down)
    lock
    stop_pgqd
    stop_kafka
    stop_zookeeper
    stop_postgres
    ;;
  status)
    for s in "${SERVICES[@]}"; do status_line "$s"; done
    ;;
  install)
    [ "${2:-}" = prometheus ] || die "unknown tool '${2:-}' (prometheus)"
    lock
    ensure_installed prometheus
    ;;
  start | stop | restart | kill)
    check_name "${2:-}"
    lock
    case "$cmd" in
      start) "start_$2" ;;
      stop) "stop_$2" ;;
      kill) "kill_$2" ;;
      restart)
        "stop_$2"
        "start_$2"
        ;;
    esac
    ;;
  *) usage ;;
esac
