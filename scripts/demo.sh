#!/usr/bin/env bash
# The demo: capture a pgbench workload with pgshovel, show the stream, and land it in a replica.
# Starts the local services when they are not running (they keep running afterwards:
# `make services-down` stops them), makes a database with pgbench's tables, creates a
# replication set over them and runs the stream relay into a file while pgbench writes; a
# second database is bootstrapped as a replica from that stream while pgbench still writes,
# then caught up. It prints the first transactions and a count per table and operation, and
# fails (exit 1) unless the stream holds every committed transaction and `pgshovel set
# verify` finds the replica equal to the source while pgbench writes again.
#
# Environment (all optional):
#   PGSHOVEL_DEMO_STACK=running  use the services whose addresses are in the environment already
#                                (PGHOST, PGPORT, PGUSER, PGSHOVEL_ZOOKEEPER_HOSTS, …, as
#                                `set -a; source .services/env; set +a` sets them) and start none
#   PGSHOVEL_DEMO_CLUSTER        the cluster (default demo); the databases are pgshovel_<cluster>
#                                and pgshovel_<cluster>_replica
#   PGSHOVEL_DEMO_DIR            where the set file and the stream go (default <stack dir>/demo)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$(./scripts/toolchain.sh):/usr/lib/postgresql/15/bin:$PATH"

if [ "${PGSHOVEL_DEMO_STACK:-}" = running ]; then
  for name in PGHOST PGPORT PGUSER PGSHOVEL_ZOOKEEPER_HOSTS; do
    if [ -z "${!name:-}" ]; then
      echo "demo: PGSHOVEL_DEMO_STACK=running, but $name is not set: source the stack's env file first" >&2
      exit 2
    fi
  done
  stack_dir="${PGSHOVEL_STACK_DIR:-$root/.services}"
else
  ./scripts/services.sh up
  # services.sh keeps its state (and the env file) in PGSHOVEL_STACK_DIR when that is set.
  stack_dir="${PGSHOVEL_STACK_DIR:-$root/.services}"
  set -a; source "$stack_dir/env"; set +a
fi

cluster="${PGSHOVEL_DEMO_CLUSTER:-demo}"
demo_dir="${PGSHOVEL_DEMO_DIR:-$stack_dir/demo}"
mkdir -p "$demo_dir"
stream="$demo_dir/stream.jsonl"
rm -f "$stream"
db="pgshovel_$cluster"
replica_db="${db}_replica"
dsn="postgresql://$PGUSER@$PGHOST:$PGPORT/$db"
replica_dsn="postgresql://$PGUSER@$PGHOST:$PGPORT/$replica_db"
pgshovel() { "$root/bin/pgshovel" --cluster "$cluster" --log-level warn "$@"; }
relay_pid=""
replica_pid=""
load_pid=""
load_flag="$demo_dir/load.on"
cleanup() {
  rm -f "$load_flag"
  if [ -n "$load_pid" ]; then wait "$load_pid" 2>/dev/null || true; fi
  if [ -n "$replica_pid" ] && kill -0 "$replica_pid" 2>/dev/null; then kill -TERM "$replica_pid"; wait "$replica_pid" || true; fi
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then kill -TERM "$relay_pid"; wait "$relay_pid" || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
history_rows() { psql -Atq -d "$1" -c "SELECT count(*) FROM pgbench_history"; }

# A previous run's set goes first, while its database still exists.
if pgshovel set inspect pgbench >/dev/null 2>&1; then pgshovel set drop pgbench --force; fi

step "1. a database with pgbench's tables, and an empty one for the replica"
psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -q -d postgres -c "DROP DATABASE IF EXISTS $replica_db WITH (FORCE)" -c "CREATE DATABASE $replica_db"
pgbench -q -i -s 1 "$db" 2>&1 | tail -n 1
# pgbench_history has no primary key; pgshovel needs one to identify rows.
psql -q -d "$db" -c "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY"

step "2. the cluster and a replication set over the four tables"
pgshovel cluster initialize 2>/dev/null || echo "cluster '$cluster' exists already"
cat > "$demo_dir/pgbench-set.yaml" <<YAML
database:
  dsn: $dsn
tables:
  - name: pgbench_accounts
  - name: pgbench_branches
  - name: pgbench_tellers
  - name: pgbench_history
YAML
cat "$demo_dir/pgbench-set.yaml"
pgshovel set create pgbench "$demo_dir/pgbench-set.yaml"
pgshovel set list

step "3. the relay, writing the stream to $stream"
"$root/bin/pgshovel" --cluster "$cluster" relay pgbench --sink "file:$stream" --log-level warn &
relay_pid=$!

step "4. a pgbench workload (2 clients) until the replica is bootstrapped"
touch "$load_flag"
(while [ -e "$load_flag" ]; do pgbench -n -c 2 -T 1 "$db" >/dev/null; done) &
load_pid=$!
for _ in $(seq 1 300); do
  [ "$(history_rows "$db")" -gt 100 ] && break
  sleep 0.2
done

step "5. a replica of the set in $replica_db, bootstrapped from the stream while pgbench writes"
pgshovel replicate pgbench --target "$replica_dsn" --from "file:$stream" --create-tables --until-caught-up
echo "bootstrapped and caught up with the start: $(history_rows "$replica_db") history rows on the replica, $(history_rows "$db") on the source"
rm -f "$load_flag"
wait "$load_pid"
load_pid=""
psql -q -d "$db" -c "BEGIN; UPDATE pgbench_branches SET bbalance = -1; ROLLBACK;"
committed=$(history_rows "$db")
echo "pgbench committed $committed transactions, and one more was rolled back"

step "6. waiting until the stream holds all of them"
for _ in $(seq 1 300); do
  inserts=$(grep -c '"table":"pgbench_history","operation":"INSERT"' "$stream" 2>/dev/null || true)
  [ "${inserts:-0}" -ge "$committed" ] && break
  sleep 0.2
done
echo "stream: $(wc -l <"$stream") messages, ${inserts:-0} history inserts"

step "7. what was captured"
"$root/bin/pgshovel" stream inspect "$stream" --show 3
if [ "${inserts:-0}" -ne "$committed" ]; then
  echo "demo: expected $committed history inserts in the stream, found ${inserts:-0}" >&2
  exit 1
fi

step "8. the replica catches up with the rest of the stream"
pgshovel replicate pgbench --target "$replica_dsn" --from "file:$stream" --until-caught-up

step "9. the replica equals the source: set verify, while pgbench writes again"
# The worker follows the stream; verify holds the source's tables at one tick, waits until
# the replica has applied it, and compares a count and a checksum per table there.
# bin/pgshovel itself, not the pgshovel function: $! must be the worker's pid, not a subshell's.
"$root/bin/pgshovel" --cluster "$cluster" --log-level warn \
  replicate pgbench --target "$replica_dsn" --from "file:$stream" &
replica_pid=$!
touch "$load_flag"
(while [ -e "$load_flag" ]; do pgbench -n -c 2 -T 1 "$db" >/dev/null; done) &
load_pid=$!
verdict=0
pgshovel set verify pgbench --target "$replica_dsn" || verdict=$?
rm -f "$load_flag"
wait "$load_pid"
load_pid=""
kill -TERM "$replica_pid"
wait "$replica_pid" || true
replica_pid=""
if [ "$verdict" -ne 0 ]; then
  echo "demo: set verify found the replica $replica_db unequal to the source $db (exit $verdict)" >&2
  exit 1
fi

echo
echo "The stream is in $stream; the databases $db and $replica_db and the set"
echo "'pgbench' (cluster '$cluster') stay for you to explore, and the services keep running."
echo "In your shell:"
echo
echo "  set -a; source ${stack_dir#"$root"/}/env; set +a"
echo "  bin/pgshovel --cluster $cluster set list"
echo "  psql -d $replica_db -c 'SELECT * FROM pgshovel_$cluster.replica_position'"
echo
echo "make services-down stops the services."
