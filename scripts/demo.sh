#!/usr/bin/env bash
# The demo: capture a pgbench workload with pgshovel and show the stream.
# Starts the local services when they are not running (they keep running
# afterwards: `make services-down` stops them), makes a database with pgbench's
# tables, creates a replication set over them, runs the stream relay into a file
# while pgbench writes, then prints the first transactions and a count per table
# and operation.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$(./scripts/toolchain.sh):/usr/lib/postgresql/15/bin:$PATH"

./scripts/services.sh up
# services.sh keeps its state (and the env file) in PGSHOVEL_STACK_DIR when that is set.
stack_dir="${PGSHOVEL_STACK_DIR:-$root/.services}"
set -a; source "$stack_dir/env"; set +a

demo_dir="$stack_dir/demo"
mkdir -p "$demo_dir"
stream="$demo_dir/stream.jsonl"
rm -f "$stream"
db=pgshovel_demo
dsn="postgresql://$PGUSER@$PGHOST:$PGPORT/$db"
pgshovel() { "$root/bin/pgshovel" --cluster demo --log-level warn "$@"; }
relay_pid=""
cleanup() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then kill -TERM "$relay_pid"; wait "$relay_pid" || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A previous run's set goes first, while its database still exists.
if pgshovel set inspect pgbench >/dev/null 2>&1; then pgshovel set drop pgbench --force; fi

step "1. a database with pgbench's tables"
psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
pgbench -q -i -s 1 "$db" 2>&1 | tail -n 1
# pgbench_history has no primary key; pgshovel needs one to identify rows.
psql -q -d "$db" -c "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY"

step "2. the cluster and a replication set over the four tables"
pgshovel cluster initialize 2>/dev/null || echo "cluster 'demo' exists already"
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
"$root/bin/pgshovel" --cluster demo relay pgbench --sink "file:$stream" --log-level warn &
relay_pid=$!

step "4. a short pgbench workload (2 clients, 5 seconds), plus one rolled-back transaction"
pgbench -n -c 2 -T 5 "$db" 2>&1 | grep -E "^(number of transactions actually processed|tps)" || true
psql -q -d "$db" -c "BEGIN; UPDATE pgbench_branches SET bbalance = -1; ROLLBACK;"
committed=$(psql -Atq -d "$db" -c "SELECT count(*) FROM pgbench_history")
echo "pgbench committed $committed transactions"

step "5. waiting until the stream holds all of them"
for _ in $(seq 1 300); do
  inserts=$(grep -c '"table":"pgbench_history","operation":"INSERT"' "$stream" 2>/dev/null || true)
  [ "${inserts:-0}" -ge "$committed" ] && break
  sleep 0.2
done
echo "stream: $(wc -l <"$stream") messages, ${inserts:-0} history inserts"

step "6. what was captured"
"$root/bin/pgshovel" stream inspect "$stream" --show 3
if [ "${inserts:-0}" -ne "$committed" ]; then
  echo "demo: expected $committed history inserts in the stream, found ${inserts:-0}" >&2
  exit 1
fi
echo
echo "The stream is in $stream; the database $db and the set 'pgbench' (cluster 'demo')"
echo "stay for you to explore, and the services keep running. In your shell:"
echo
echo "  set -a; source ${stack_dir#"$root"/}/env; set +a"
echo "  bin/pgshovel --cluster demo set list"
echo
echo "make services-down stops the services."
